"""Hostile input: every command, fed what an attacker, a typo or a broken file system gives it.

One table, one row per case.  Each case runs against its own copy of the example LMS
(source database, media, config, a ledger with a notice for acme and two finished export
packages) and asserts what design §3 promises:

* the documented exit code;
* exactly one line on stderr that starts ``learnexit: error:`` — the other stderr lines
  may only be the command's own event lines (``learnexit: <event> key=value``) — and no
  traceback anywhere;
* ``--json`` is given to every command that takes it: stdout stays empty (``verify`` and
  ``audit --verify`` are the exception: their JSON document *is* the failed result);
* **no change**: the whole world is checksummed before and after — source database,
  media tree, config, the ledger database file and every export folder (file names,
  types, modes, contents, symlink targets).  Cases that fail *after* an export was
  recorded as started (exit 1, e.g. a media row pointing outside the root) may change the
  ledger in exactly one way: the export is recorded as ``failed``, with its two audit
  entries; the source and the export folder still do not change.

Most cases run in-process through Click's test runner (fast; it also lets a NUL byte
reach the command, which a real ``argv`` cannot carry); the cases marked ``process``
run the real ``python -m learnexit`` in a subprocess.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sqlite3
import stat
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from typer.testing import CliRunner

from learnexit.cli import app
from learnexit.demo import build_example

NOW = "2026-11-29T11:15:00"  # Stockholm local time = 10:15:00Z: the package name is known
PACKAGE_NOW = "acme-2026-11-29T101500Z"
EVENT_LINE = re.compile(r"^learnexit: (?:(?:warning|info|debug): )?[a-z_.]+(?: [a-z_]+=\S*)*$")
runner = CliRunner()


# --------------------------------------------------------------------------- the world


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example LMS with notices for acme and initech, and two acme packages (a folder and a zip)."""
    root = tmp_path_factory.mktemp("hostile")
    ex = root / "ex"
    build_example(ex, activity_rows=150)
    cfg = str(ex / "learnexit.toml")
    env = {"LEARNEXIT_ACTOR": "tester@example"}
    steps = [
        ("2026-11-20T09:00:00", ["notice", "acme", "--received", "2026-11-20"]),
        ("2026-11-21T09:00:00", ["notice", "initech", "--received", "2026-11-21"]),
        ("2026-11-28T12:00:00", ["export", "acme", "-f", "csv"]),
        ("2026-11-28T12:00:05", ["export", "acme", "-f", "csv", "--zip"]),
    ]
    for now, args in steps:
        result = runner.invoke(app, [*args, "--config", cfg, "--json"], env={**env, "LEARNEXIT_NOW": now})
        assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (ex / "exports").iterdir()) == [
        "acme-2026-11-28T110000Z",
        "acme-2026-11-28T110005Z.zip",
    ]
    return root


BAG = "ex/exports/acme-2026-11-28T110000Z"
ZIP = "ex/exports/acme-2026-11-28T110005Z.zip"


def tree_digest(root: Path) -> dict[str, str]:
    """Every path below ``root``: type, mode, and content hash (or link target)."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            path = Path(dirpath, name)
            rel = path.relative_to(root).as_posix()
            st = os.lstat(path)
            mode = stat.S_IMODE(st.st_mode)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = f"link {os.readlink(path)}"
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = f"dir {mode:o}"
            elif stat.S_ISREG(st.st_mode):
                out[rel] = f"file {mode:o} {hashlib.sha256(path.read_bytes()).hexdigest()}"
            else:
                out[rel] = f"special {stat.S_IFMT(st.st_mode):o}"
    return out


def ledger_dump(db: Path) -> dict[str, list[tuple]]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        return {t: conn.execute(f'SELECT * FROM "{t}" ORDER BY 1').fetchall() for t in tables}


def column_index(db: Path, table: str, column: str) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        names = [r[1] for r in conn.execute(f'PRAGMA table_info("{table}")')]
    return names.index(column)


# --------------------------------------------------------------------------- setups


def sql(statement: str) -> Callable[[Path], None]:
    def setup(root: Path) -> None:
        with sqlite3.connect(root / "ex" / "lms.db") as conn:
            conn.execute(statement)

    return setup


def write(rel: str, text: str | bytes) -> Callable[[Path], None]:
    def setup(root: Path) -> None:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8")

    return setup


def config_with(old: str, new: str, name: str = "bad.toml") -> Callable[[Path], None]:
    """A copy of the example config with one text replaced."""

    def setup(root: Path) -> None:
        text = (root / "ex" / "learnexit.toml").read_text(encoding="utf-8")
        assert old in text, old
        (root / "ex" / name).write_text(text.replace(old, new, 1), encoding="utf-8")

    return setup


def config_plus(extra: str, name: str = "bad.toml") -> Callable[[Path], None]:
    def setup(root: Path) -> None:
        text = (root / "ex" / "learnexit.toml").read_text(encoding="utf-8")
        (root / "ex" / name).write_text(text + "\n" + extra, encoding="utf-8")

    return setup


def both(*setups: Callable[[Path], None]) -> Callable[[Path], None]:
    def setup(root: Path) -> None:
        for s in setups:
            s(root)

    return setup


def tamper_csv(root: Path) -> None:
    path = root / BAG / "data" / "csv" / "users.csv"
    data = bytearray(path.read_bytes())
    data[-4] ^= 1
    path.write_bytes(bytes(data))


def truncate_zip(root: Path) -> None:
    path = root / ZIP
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def zip_slip(root: Path) -> None:
    with zipfile.ZipFile(root / ZIP, "a") as zf:
        zf.writestr("acme-2026-11-28T110005Z/../../../evil.txt", b"owned")


def symlink_in_bag(root: Path) -> None:
    os.symlink("/etc/passwd", root / BAG / "data" / "csv" / "passwd.csv")


def fifo(root: Path) -> None:
    os.mkfifo(root / "ex" / "exports" / "pipe.zip")


def media_symlink(root: Path) -> None:
    os.symlink("/etc", root / "ex" / "media" / "acme" / "escape")
    sql("UPDATE attachments SET storage_path = 'acme/escape/passwd' WHERE id = 1")(root)


def tamper_ledger(root: Path) -> None:
    with sqlite3.connect(root / "ex" / "learnexit-state.db") as conn:
        conn.execute("UPDATE audit SET actor = 'mallory@example' WHERE id = 1")


def immutable(rel: str) -> Callable[[Path], None]:
    """A folder nobody can write into — root included (chattr +i), else chmod 555."""

    def setup(root: Path) -> None:
        path = root / rel
        path.mkdir()
        if os.geteuid() != 0:
            path.chmod(0o555)
            return
        done = subprocess.run(["chattr", "+i", str(path)], capture_output=True)
        if done.returncode != 0:
            pytest.skip("running as root without chattr +i: cannot make a folder read-only")
        IMMUTABLE.append(path)

    return setup


IMMUTABLE: list[Path] = []


@pytest.fixture(autouse=True)
def _release_immutable():
    yield
    while IMMUTABLE:
        subprocess.run(["chattr", "-i", str(IMMUTABLE.pop())], check=False)


# --------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class Case:
    id: str
    args: tuple[str, ...]  # "{root}" is the world copy; --config and --json are added
    code: int
    message: str  # a piece of the error line
    setup: Callable[[Path], None] | None = None
    env: dict[str, str] = field(default_factory=dict)
    config: str | None = "ex/learnexit.toml"  # None: no --config
    json: bool = True
    stdout: str = "empty"  # "empty" | "json-invalid" (verify / audit --verify)
    ledger: str = "same"  # "same" | "failed-export"
    process: bool = False  # run the real entry point in a subprocess


def C(id: str, *args: str, code: int, message: str, **kw) -> Case:  # noqa: N802 - a table row
    return Case(id, args, code, message, **kw)


K = "customer key"
BAD_DATETIME = (  # SQLite keeps any text in a DATETIME column
    "UPDATE activity_log SET created_at = 'yesterday-ish' WHERE id = (SELECT MIN(id) FROM activity_log "
    "WHERE organisation_id = (SELECT id FROM organisations WHERE slug = 'acme'))"
)
# fmt: off
CASES: list[Case] = [
    # ---- customer keys, every command
    C("inspect-unknown", "inspect", "nobody", code=2, message="unknown customer 'nobody'"),
    C("inspect-sql-injection", "inspect", "' OR 1=1 --", code=2, message="unknown customer \"' OR 1=1 --\""),
    C("export-sql-injection", "export", "acme' OR '1'='1", code=2, message="unknown customer", process=True),
    C("export-path-traversal", "export", "../x", code=2, message="unknown customer '../x'"),
    C("export-empty-key", "export", "", code=2, message="name a customer"),
    C("inspect-empty-key", "inspect", "", code=2, message=f"{K} is empty"),
    C("status-10000-chars", "status", "a" * 10_000, code=2, message=f"{K} is 10000 characters long"),
    C("notice-nul-byte", "notice", "ac\x00me", "--received", "2026-11-20", code=2, message="control characters"),
    C("hold-emoji", "hold", "🦄acme", "--reason", "x", code=2, message="unknown customer '🦄acme'"),
    C("release-sql-injection", "release", "acme; DROP TABLE organisations", code=2, message="unknown customer"),
    C("confirm-unknown", "confirm", "%s%s%n", "--by", "x", code=2, message="unknown customer '%s%s%n'"),
    C("purge-path-traversal", "purge", "../../etc", "--yes", code=2, message="unknown customer '../../etc'"),
    C("inspect-newline-key", "inspect", "acme\nglobex", code=2, message="control characters"),
    C("export-escape-sequence", "export", "\x1b[2Jacme", code=2, message="control characters"),
    C("inspect-like-wildcard", "inspect", "%", code=2, message="unknown customer '%'"),
    C("inspect-case-variant", "inspect", "ACME", code=2, message="unknown customer 'ACME'"),
    C("inspect-trailing-space", "inspect", "acme ", code=2, message="unknown customer 'acme '"),
    # ---- dates and terms
    C("notice-feb-30", "notice", "acme", "--received", "2026-02-30", code=2, message="no such day in the calendar"),
    C("notice-dmy", "notice", "acme", "--received", "31/12/2026", code=2, message="use ISO 8601"),
    C("notice-unpadded", "notice", "acme", "--received", "2026-1-5", code=2, message="use ISO 8601"),
    C("notice-datetime", "notice", "acme", "--received", "2026-11-29T10:00", code=2, message="use ISO 8601"),
    C("notice-far-past", "notice", "acme", "--received", "0001-01-01", code=2, message="between 1900 and 2200"),
    C("notice-far-future", "notice", "acme", "--received", "9999-12-31", code=2, message="between 1900 and 2200"),
    C("notice-bad-period-end", "notice", "acme", "--received", "2026-11-20", "--period-end", "2026-13-01",
      code=2, message="invalid --period-end"),
    C("notice-period-end-before", "notice", "globex", "--received", "2026-11-20", "--period-end", "1999-01-01",
      code=2, message="after the given period end"),
    C("notice-zero-term", "notice", "globex", "--received", "2026-11-20", "--contract-start", "2026-01-01",
      "--term-months", "0", code=2, message="--term-months"),
    C("notice-negative-term", "notice", "globex", "--received", "2026-11-20", "--contract-start", "2026-01-01",
      "--term-months", "-12", code=2, message="--term-months", process=True),
    C("notice-huge-term", "notice", "globex", "--received", "2026-11-20", "--contract-start", "2026-01-01",
      "--term-months", "99999999999999999999", code=2, message="--term-months"),
    C("notice-source-zero-term", "notice", "globex", "--received", "2026-11-20", code=2,
      message="term_months must be at least 1", setup=sql("UPDATE contracts SET term_months = 0 WHERE id = 2")),
    C("notice-source-negative-term", "notice", "globex", "--received", "2026-11-20", code=2,
      message="term_months must be at least 1", setup=sql("UPDATE contracts SET term_months = -6 WHERE id = 2")),
    C("notice-source-bad-date", "notice", "globex", "--received", "2026-11-20", code=2,
      message="contracts.starts_on: the stored contract start of 'globex' is not a valid date",
      setup=sql("UPDATE contracts SET starts_on = 'soon' WHERE id = 2")),
    C("notice-bad-channel", "notice", "globex", "--received", "2026-11-20", "--channel", "pigeon",
      code=2, message="unknown channel 'pigeon'"),
    C("notice-multiline-reference", "notice", "globex", "--received", "2026-11-20", "--reference", "T-1\nT-2",
      code=2, message="--reference must be one line"),
    C("status-bad-now", "status", code=2, message="invalid LEARNEXIT_NOW", env={"LEARNEXIT_NOW": "yesterday"}),
    C("status-check-bad-now", "status", "--check", code=2, message="invalid LEARNEXIT_NOW",
      env={"LEARNEXIT_NOW": "2026-02-30"}),
    # ---- configuration
    C("config-bad-toml", "inspect", "acme", code=2, message="invalid TOML",
      setup=write("ex/bad.toml", '[source\nurl = "x"\n'), config="ex/bad.toml"),
    C("config-unknown-key", "export", "acme", code=2, message="[export] outt: unknown key",
      setup=config_with('out = "exports"', 'outt = "exports"'), config="ex/bad.toml"),
    C("config-unknown-section", "status", code=2, message="[sorce]: unknown section",
      setup=config_plus('[sorce]\nurl = "x"\n'), config="ex/bad.toml"),
    C("config-wrong-type", "notice", "acme", "--received", "2026-11-20", code=2,
      message="[contract] notice_days: must be a whole number, not str 'thirty'",
      setup=config_with("notice_days = 30", 'notice_days = "thirty"'), config="ex/bad.toml"),
    C("config-negative-window", "status", code=2, message="[contract] export_window_days: must be between 0",
      setup=config_with("export_window_days = 90", "export_window_days = -1"), config="ex/bad.toml"),
    C("config-boolean-for-number", "purge", "acme", "--yes", code=2, message="[purge] batch_size: must be a whole",
      setup=config_with("batch_size = 20000", "batch_size = true"), config="ex/bad.toml"),
    C("config-missing-table", "inspect", "acme", code=2,
      message="[customer] table: table 'organizations' does not exist in the source",
      setup=config_with('table = "organisations"', 'table = "organizations"'), config="ex/bad.toml"),
    C("config-missing-column", "export", "acme", code=2,
      message="[tables.users] personal_columns: column users.phone_number does not exist",
      setup=config_with('"phone"]', '"phone_number"]'), config="ex/bad.toml"),
    C("config-relation-nowhere", "inspect", "acme", code=2,
      message="[[relations]] #1 to: table 'nowhere' does not exist",
      setup=config_plus('[[relations]]\nfrom = "logins.user_id"\nto = "nowhere.id"\n'), config="ex/bad.toml"),
    C("config-relation-malformed", "inspect", "acme", code=2,
      message="[relations #1] from: must be written table.column",
      setup=config_plus('[[relations]]\nfrom = "logins"\nto = "users.id"\n'), config="ex/bad.toml"),
    C("config-nul-in-url", "inspect", "acme", code=2, message="control character",
      setup=config_with('"sqlite:///lms.db"', '"sqlite:///lms\\u0000.db"'), config="ex/bad.toml"),
    C("config-nul-in-key", "inspect", "acme", code=2, message="[customer] key: must not contain control characters",
      setup=config_with('key = "slug"', 'key = "sl\\u0000ug"'), config="ex/bad.toml", process=True),
    C("config-not-utf8", "status", code=2, message="not UTF-8 text",
      setup=write("ex/bad.toml", b'[source]\nurl = "sqlite:///lms.db"\n# \xff\xfe\n'), config="ex/bad.toml"),
    C("config-missing-file", "status", code=2, message="config file not found", config="ex/nope.toml"),
    C("config-is-a-folder", "status", code=2, message="is a folder, not a config file", config="ex/media"),
    C("config-no-config", "status", code=2, message="no configuration", config=None),
    C("config-state-url-customer", "status", code=2, message="[state] url: must not contain {customer}",
      setup=config_with('"sqlite:///learnexit-state.db"', '"sqlite:///state-{customer}.db"'),
      config="ex/bad.toml"),
    C("config-bad-url", "inspect", "acme", code=2, message="not a database URL",
      setup=config_with('"sqlite:///lms.db"', '"not a url at all"'), config="ex/bad.toml"),
    C("config-source-file-missing", "inspect", "acme", code=2, message="does not exist",
      setup=config_with('"sqlite:///lms.db"', '"sqlite:///lsm.db"'), config="ex/bad.toml"),
    C("source-unreachable", "export", "acme", code=1, message="cannot read source",
      env={"LEARNEXIT_SOURCE_URL": "postgresql://learnexit@127.0.0.1:9/nothing"}, process=True),
    C("ledger-unreachable", "status", code=1, message="cannot open the ledger",
      env={"LEARNEXIT_STATE_URL": "postgresql://learnexit@127.0.0.1:9/nothing"}),
    C("ledger-folder-missing", "status", code=1, message="ledger folder",
      env={"LEARNEXIT_STATE_URL": "sqlite:////nonexistent-learnexit/state.db"}),
    # ---- the export folder
    C("export-out-is-a-file", "export", "acme", "-f", "csv", "--out", "{root}/ex/learnexit.toml",
      code=2, message="is a file"),
    C("export-out-below-a-file", "export", "acme", "-f", "csv", "--out", "{root}/ex/lms.db/exports",
      code=1, message="cannot create output folder"),
    C("export-out-read-only", "export", "acme", "-f", "csv", "--out", "{root}/ex/sealed", code=1,
      message="cannot create", setup=immutable("ex/sealed")),
    C("export-out-in-proc", "export", "acme", "-f", "csv", "--out", "/proc/learnexit-nope", code=1,
      message="cannot create output folder"),
    C("export-path-exists", "export", "acme", "-f", "csv", code=2, message="exists already; not overwriting",
      setup=write(f"ex/exports/{PACKAGE_NOW}/keep.txt", "an earlier export")),
    C("export-partial-exists", "export", "acme", "-f", "csv", code=2, message="another export is running",
      setup=write(f"ex/exports/{PACKAGE_NOW}.partial/data/x.csv", "id\r\n")),
    C("export-source-bad-datetime", "export", "acme", "-f", "csv", code=1,
      message="activity_log.created_at: the stored value in the row with id = ", setup=sql(BAD_DATETIME),
      ledger="failed-export"),
    C("export-source-bad-datetime-all", "export", "acme", code=1,
      message="activity_log.created_at: the stored value ", setup=sql(BAD_DATETIME), ledger="failed-export"),
    C("export-unknown-format", "export", "acme", "--format", "csv,exe", code=2, message="unknown or unavailable"),
    C("export-bad-recipient", "export", "acme", "--encrypt-to", "age1notakey", code=2, message="not an age recipient"),
    C("export-recipient-file-nul", "export", "acme", "--encrypt-to", "{root}/ex/keys.txt", code=2,
      message="not an age recipient", setup=write("ex/keys.txt", "age1\x00evil\n")),
    C("export-bad-dialect", "export", "acme", "--sql-dialect", "oracle", code=2, message="--sql-dialect"),
    C("export-bad-lang", "export", "acme", "--lang", "de", code=2, message="--lang"),
    C("export-late-blank-reason", "export", "acme", "--late", "--reason", "   ", code=2,
      message="--reason must say why"),
    # ---- media rows
    C("media-outside-root", "export", "acme", "-f", "media", code=1, message="leaves the media root",
      setup=sql("UPDATE attachments SET storage_path = '../../../../etc/passwd' WHERE id = 1"),
      ledger="failed-export"),
    C("media-absolute-path", "export", "acme", "-f", "media", code=1, message="is absolute",
      setup=sql("UPDATE attachments SET storage_path = '/etc/passwd' WHERE id = 1"), ledger="failed-export"),
    C("media-through-symlink", "export", "acme", "-f", "media", code=1, message="resolves outside the media root",
      setup=media_symlink, ledger="failed-export"),
    C("media-nul-in-path", "export", "acme", "-f", "media", code=1, message="control characters",
      setup=sql("UPDATE attachments SET storage_path = 'acme/x' || char(0) || '/../../etc/passwd' WHERE id = 1"),
      ledger="failed-export"),
    # ---- verify
    C("verify-tampered-bag", "verify", f"{{root}}/{BAG}", code=1, message="verification failed",
      setup=tamper_csv, config=None, stdout="json-invalid"),
    C("verify-truncated-zip", "verify", f"{{root}}/{ZIP}", code=1, message="verification failed",
      setup=truncate_zip, config=None, stdout="json-invalid"),
    C("verify-zip-slip", "verify", f"{{root}}/{ZIP}", code=1, message="verification failed",
      setup=zip_slip, config=None, stdout="json-invalid", process=True),
    C("verify-symlink-in-bag", "verify", f"{{root}}/{BAG}", code=1, message="verification failed",
      setup=symlink_in_bag, config=None, stdout="json-invalid"),
    C("verify-missing", "verify", "{root}/ex/exports/nope", code=2, message="does not exist", config=None),
    C("verify-fifo", "verify", "{root}/ex/exports/pipe.zip", code=2, message="not a regular file",
      setup=fifo, config=None),
    C("verify-device", "verify", "/dev/zero", code=2, message="not a regular file", config=None),
    C("verify-encrypted", "verify", "{root}/ex/exports/x.zip.age", code=2, message="is encrypted",
      setup=write("ex/exports/x.zip.age", b"age-encryption.org/v1\n"), config=None),
    # ---- confirm, hold, release, purge, audit
    C("confirm-without-export", "confirm", "initech", "--by", "Jane", code=3, message="no complete export"),
    C("confirm-no-notice", "confirm", "globex", "--by", "Jane", code=3, message="no notice recorded for globex"),
    C("confirm-blank-by", "confirm", "acme", "--by", "  ", code=2, message="--by must not be empty"),
    C("confirm-reason-alone", "confirm", "acme", "--by", "Jane", "--reason", "x", code=2,
      message="--reason goes with --without-export"),
    C("hold-blank-reason", "hold", "acme", "--reason", "", code=2, message="--reason"),
    C("hold-multiline-reason", "hold", "acme", "--reason", "a\r\nb", code=2, message="one line"),
    C("hold-10000-char-reason", "hold", "acme", "--reason", "x" * 10_000, code=2, message="at most 2000"),
    C("purge-not-due", "purge", "acme", "--yes", code=3, message="not due"),
    C("purge-no-terminal", "purge", "acme", code=3, message="not due"),
    C("purge-force-blank-reason", "purge", "acme", "--force", "--reason", " ", "--yes", code=2,
      message="--reason must say why"),
    C("purge-both-customer-and-due", "purge", "acme", "--due", code=2, message="not both"),
    C("purge-bad-lang", "purge", "acme", "--lang", "xx", code=2, message="--lang must be en or sv"),
    C("audit-verify-edited", "audit", "--verify", code=1, message="audit chain broken",
      setup=tamper_ledger, stdout="json-invalid"),
    # ---- the command line itself
    C("unknown-option", "inspect", "acme", "--frobnicate", code=2, message="No such option: --frobnicate"),
    C("missing-argument", "inspect", code=2, message="Missing argument", process=True),
    C("unknown-command", "frobnicate", code=2, message="No such command", config=None, json=False),
    C("bad-log-format", "--log-format", "xml", "status", code=2, message="--log-format must be text or json"),
]
# fmt: on

assert len({c.id for c in CASES}) == len(CASES)


# --------------------------------------------------------------------------- the runner


def run_case(case: Case, root: Path) -> tuple[int, str, str]:
    args = [a.replace("{root}", str(root)) for a in case.args]
    if case.config is not None:
        args += ["--config", str(root / case.config)]
    if case.json:
        args.append("--json")
    env = {k: v.replace("{root}", str(root)) for k, v in case.env.items()}
    env.setdefault("LEARNEXIT_NOW", NOW)
    env["LEARNEXIT_ACTOR"] = "tester@example"
    if case.process:
        full = dict(os.environ, **env)
        done = subprocess.run(
            [sys.executable, "-m", "learnexit", *args],
            env=full,
            cwd=root,
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )
        return done.returncode, done.stdout, done.stderr
    old = os.getcwd()
    os.chdir(root)  # a stray ./learnexit.toml is never picked up
    try:
        result = runner.invoke(app, args, env=env)
    finally:
        os.chdir(old)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"{case.id}: uncaught {result.exception!r}") from result.exception
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input(case: Case, base: Path, tmp_path: Path) -> None:
    root = tmp_path / "world"
    shutil.copytree(base, root, symlinks=True)
    if case.setup is not None:
        case.setup(root)
    ledger_db = root / "ex" / "learnexit-state.db"
    before = tree_digest(root)
    ledger_before = ledger_dump(ledger_db)

    code, stdout, stderr = run_case(case, root)

    # the exit code, one error line, no traceback
    assert code == case.code, f"{case.id}: exit {code}, wanted {case.code}\nstdout: {stdout}\nstderr: {stderr}"
    assert "Traceback" not in stderr + stdout and "internal error" not in stderr, stderr
    lines = stderr.splitlines()
    errors = [line for line in lines if line.startswith("learnexit: error:")]
    assert len(errors) == 1, f"{case.id}: want one error line, got:\n{stderr}"
    assert case.message in errors[0], f"{case.id}: {errors[0]!r} lacks {case.message!r}"
    others = [line for line in lines if line not in errors]
    assert all(EVENT_LINE.match(line) for line in others), f"{case.id}: stray stderr lines: {others}"
    assert "\x00" not in stderr and "\x1b" not in stderr  # control characters are shown escaped
    if case.stdout == "empty":
        assert stdout == "", f"{case.id}: stdout not empty: {stdout[:300]!r}"
    else:
        document = json.loads(stdout)
        assert document["valid"] is False and document["problems"]

    # nothing changed
    after = tree_digest(root)
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    if case.ledger == "same":
        assert not changed, f"{case.id}: changed {changed}"
        return
    assert changed == ["ex/learnexit-state.db"], f"{case.id}: changed {changed}"
    ledger_after = ledger_dump(ledger_db)
    diff = {t for t in ledger_after if ledger_after[t] != ledger_before.get(t)}
    assert diff <= {"exports", "audit", "meta", "identities"}, diff  # (the attempt opened the case)
    new_exports = ledger_after["exports"][len(ledger_before["exports"]) :]
    assert ledger_after["exports"][: len(ledger_before["exports"])] == ledger_before["exports"]
    status = column_index(ledger_db, "exports", "status")
    assert len(new_exports) == 1 and new_exports[0][status] == "failed", new_exports
    new_audit = ledger_after["audit"][len(ledger_before["audit"]) :]
    event = column_index(ledger_db, "audit", "event")
    assert [e[event] for e in new_audit] == ["export_started", "export_failed"]


def test_the_table_is_big_and_covers_every_command() -> None:
    assert len(CASES) >= 40
    commands = {next(a for a in c.args if not a.startswith("-") and a not in ("xml",)) for c in CASES}
    assert {
        "notice",
        "status",
        "confirm",
        "hold",
        "release",
        "audit",
        "export",
        "verify",
        "purge",
        "inspect",
    } <= commands


def test_a_nul_byte_cannot_travel_in_argv_or_the_environment() -> None:
    """Why the NUL-byte cases run in-process or through files: the OS refuses them in argv."""
    with pytest.raises(ValueError, match="null byte"):
        subprocess.run([sys.executable, "-m", "learnexit", "inspect", "ac\x00me"], check=False)
    with pytest.raises(ValueError, match="null byte"):
        subprocess.run([sys.executable, "-c", "pass"], env={"LEARNEXIT_NOW": "2026\x00"}, check=False)


def test_reference_cycles_in_the_config_are_resolved_not_looped(base: Path, tmp_path: Path) -> None:
    """[[relations]] that close a cycle are not an error: discovery breaks the cycle and says so."""
    root = tmp_path / "world"
    shutil.copytree(base, root, symlinks=True)
    config_plus(
        '[[relations]]\nfrom = "courses.id"\nto = "course_sections.id"\n'
        '[[relations]]\nfrom = "organisations.id"\nto = "courses.id"\n'
    )(root)
    case = Case("cycle", ("inspect", "acme"), 0, "", config="ex/bad.toml")
    code, stdout, stderr = run_case(case, root)
    assert code == 0, stderr
    data = json.loads(stdout)
    assert any("would form a cycle" in n for n in data["notes"]), data["notes"]
    plain = Case("plain", ("inspect", "acme"), 0, "")
    code, reference, _ = run_case(plain, root)
    rows = {t["table"]: t["rows"] for t in json.loads(reference)["tables"]}
    assert {t["table"]: t["rows"] for t in data["tables"]} == rows  # the same rows are found

"""Secrets and files: a database password never leaks; packages are private; the audit chain
shows edits.

The PostgreSQL world uses a role created for the test with a password (the server trusts
127.0.0.1, so any password would do — the point is that the one in the URL is never
repeated).  Every command runs as a real process, in text and ``--json`` output, with
``--traceback`` and with ``--log-format json``; then stdout, stderr, every ledger table
and every file of the export packages (zip members and PDF text included) are searched
for the password, raw and percent-encoded.
"""

from __future__ import annotations

import io
import json
import os
import sqlite3
import stat
import subprocess
import sys
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from conftest import PG_ADMIN, DatabaseFactory
from typer.testing import CliRunner

from learnexit import urls as urls_module  # (the remembered passwords live there)
from learnexit.cli import app
from learnexit.demo import build_example, build_shared_schema, populate_shared

PASSWORD = "Hunter2-S3cr3t!x#y/z@w%q"
runner = CliRunner()
NOW = "2026-11-29T11:15:00"


def leaks(text: str | bytes) -> list[str]:
    """Which forms of the password (or a telling part of it) occur in ``text``."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    forms = {PASSWORD, quote(PASSWORD, safe=""), quote(PASSWORD), "S3cr3t"}
    return sorted(f for f in forms if f in text)


def run(
    args: list[str], env: dict[str, str] | None = None, *, umask: int | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "LEARNEXIT_ACTOR": "tester@example", "LEARNEXIT_NOW": NOW, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "learnexit", *args],
        env=full,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
        cwd=cwd,
        preexec_fn=(lambda: os.umask(umask)) if umask is not None else None,  # noqa: PLW1509
    )


# --------------------------------------------------------------------------- the PostgreSQL world


@dataclass
class PgWorld:
    root: Path
    config: Path
    role: str
    source_url: str  # with the password
    state_url: str
    state_admin: str  # the same database, as the admin (to dump it)
    outputs: list[tuple[str, str]] = field(default_factory=list)  # (what, text) of every run


@pytest.fixture(scope="module")
def pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgWorld]:
    root = tmp_path_factory.mktemp("secrets")
    factory = DatabaseFactory("postgresql", root)
    role = f"le_secret_{uuid.uuid4().hex[:8]}"
    assert factory.admin is not None
    try:
        src = factory.new("secret_src")
        state = factory.new("secret_state")
        with factory.admin.connect() as conn:
            conn.execute(sa.text(f"CREATE ROLE {role} LOGIN PASSWORD '{PASSWORD}'"))
            for url in (src, state):
                conn.exec_driver_sql(f'ALTER DATABASE "{url.rsplit("/", 1)[1]}" OWNER TO {role}')
        for url in (src, state):
            admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.exec_driver_sql(f"ALTER SCHEMA public OWNER TO {role}")
            admin.dispose()

        def as_role(url: str) -> str:
            host_db = url.split("@", 1)[1]
            return f"postgresql+psycopg://{role}:{quote(PASSWORD, safe='')}@{host_db}"

        source_url, state_url = as_role(src), as_role(state)
        engine = sa.create_engine(source_url)
        build_shared_schema(engine)
        populate_shared(engine, media_root=None, activity_rows=100)
        engine.dispose()
        build_example(root / "ex", activity_rows=100)  # the config and the media files
        text = (root / "ex" / "learnexit.toml").read_text(encoding="utf-8")
        text = text.replace('url = "sqlite:///lms.db"', f'url = "{source_url}"')
        text = text.replace('url = "sqlite:///learnexit-state.db"', f'url = "{state_url}"')
        config = root / "ex" / "pg.toml"
        config.write_text(text, encoding="utf-8")
        yield PgWorld(root, config, role, source_url, state_url, state)
    finally:
        factory.drop_all()
        admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP ROLE IF EXISTS {role}")
        admin.dispose()


VARIANTS = {
    "text": ["--traceback"],
    "json": ["--log-format", "json", "--json", "--traceback"],
}
CLOCK: list[int] = []


def cli(
    pg: PgWorld, what: str, args: list[str], codes: tuple[int, ...] = (0,), env: dict | None = None, process=False
) -> None:
    """Run ``args`` in text and in JSON (output and log lines), with --traceback; keep all it printed.

    In-process runs start from an empty list of known secrets, as a new process would.
    """
    for variant, extra in VARIANTS.items():
        if variant == "json":
            full = [*extra[:2], *args, "--config", str(pg.config), *extra[2:]]
        else:
            full = [*args, "--config", str(pg.config), *extra]
        CLOCK.append(len(CLOCK))  # every run its own second: exports get their own names
        now = f"2026-11-29T12:{len(CLOCK) // 60:02d}:{len(CLOCK) % 60:02d}"
        run_env = {"LEARNEXIT_NOW": now, "LEARNEXIT_ACTOR": "tester@example", **(env or {})}
        if process:
            done = run(full, run_env)
            code, stdout, stderr = done.returncode, done.stdout, done.stderr
        else:
            urls_module._SECRETS.clear()
            result = runner.invoke(app, full, env=run_env)
            assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
            code, stdout, stderr = result.exit_code, result.stdout, result.stderr
        assert code in codes, (what, variant, code, stderr[-2000:])
        pg.outputs.append((f"{what} [{variant}] stdout", stdout))
        pg.outputs.append((f"{what} [{variant}] stderr", stderr))
        if variant == "json":
            if code == 0:
                json.loads(stdout)  # one document, nothing else
            for line in stderr.splitlines():
                if not line.startswith("Traceback") and line.startswith("{"):
                    json.loads(line)  # every log line is a JSON object


def package_texts(folder: Path) -> Iterator[tuple[str, bytes]]:
    """Every file below ``folder``, every member of every zip container in it, and the
    text of every PDF."""

    def expand(name: str, data: bytes) -> Iterator[tuple[str, bytes]]:
        yield name, data
        if data[:2] == b"PK":
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                for info in zf.infolist():
                    if not info.is_dir():
                        yield from expand(f"{name}!{info.filename}", zf.read(info))
        elif data[:5] == b"%PDF-":
            import pypdf

            reader = pypdf.PdfReader(io.BytesIO(data))
            yield f"{name} (text)", "\n".join(page.extract_text() or "" for page in reader.pages).encode()

    for path in sorted(folder.rglob("*")):
        if path.is_file():
            yield from expand(str(path.relative_to(folder)), path.read_bytes())


@pytest.mark.postgres
def test_the_password_never_appears(pg: PgWorld) -> None:
    cli(pg, "inspect", ["inspect", "acme"])
    cli(pg, "notice", ["notice", "acme", "--received", "2026-11-20"])
    cli(pg, "status acme --check", ["status", "acme", "--check"], codes=(0, 5))
    done = run(["--log-format", "json", "export", "acme", "--config", str(pg.config), "--json", "--traceback"])
    assert done.returncode == 0, done.stderr
    pg.outputs += [("export all formats stdout", done.stdout), ("export all formats stderr", done.stderr)]
    cli(pg, "export csv zip", ["export", "acme", "-f", "csv,sql", "--zip"])
    cli(pg, "hold", ["hold", "acme", "--reason", "case 17"])
    cli(pg, "release", ["release", "acme"])
    cli(pg, "audit", ["audit", "--verify"])
    cli(pg, "purge dry run", ["purge", "acme", "--dry-run"], codes=(0, 3))
    cli(pg, "purge refused", ["purge", "acme", "--yes"], codes=(3,))
    forced = ["purge", "globex", "--force", "--reason", "test of secrets", "--yes", "--json", "--traceback"]
    assert run(["notice", "globex", "--received", "2026-11-20", "--config", str(pg.config)]).returncode == 0
    done = run(["--log-format", "json", *forced, "--config", str(pg.config)])
    assert done.returncode == 0, done.stderr
    pg.outputs += [("purge stdout", done.stdout), ("purge stderr", done.stderr)]
    certificate = Path(json.loads(done.stdout)["customers"][0]["certificate"])
    assert certificate.is_file()
    # failures whose messages carry the URL: the password must be masked there too
    bad_port = pg.source_url.replace("127.0.0.1:5432", "127.0.0.1:9")
    for what, args, env in (
        ("source unreachable", ["inspect", "acme"], {"LEARNEXIT_SOURCE_URL": bad_port}),
        ("export, source unreachable", ["export", "acme", "-f", "csv"], {"LEARNEXIT_SOURCE_URL": bad_port}),
        ("ledger missing", ["status"], {"LEARNEXIT_STATE_URL": pg.state_url.rsplit("/", 1)[0] + "/le_nothing"}),
        ("source database missing", ["export", "acme"], {"LEARNEXIT_SOURCE_URL": pg.source_url + "_nothing"}),
    ):
        cli(pg, what, args, codes=(1,), env=env, process=True)
    no_driver = pg.source_url.replace("postgresql+psycopg", "postgresql+nodriver")
    cli(pg, "unknown driver", ["inspect", "acme"], codes=(1, 2), env={"LEARNEXIT_SOURCE_URL": no_driver})
    not_a_url = pg.source_url.replace("postgresql+psycopg://", "postgresql+psycopg:/")
    cli(pg, "mangled URL", ["inspect", "acme"], codes=(1, 2), env={"LEARNEXIT_SOURCE_URL": not_a_url})

    assert len(pg.outputs) > 50
    found = [(what, leaks(text)) for what, text in pg.outputs if leaks(text)]
    assert not found, found
    # the failures did say what failed, with the password masked
    joined = "\n".join(text for _, text in pg.outputs)
    assert f"{pg.role}:***@127.0.0.1:9" in joined
    assert "Traceback (most recent call last)" in joined  # --traceback really printed some

    # the ledger: every table, every row
    engine = sa.create_engine(pg.state_admin)
    with engine.connect() as conn:
        tables = sa.inspect(conn).get_table_names()
        assert {"notices", "exports", "audit", "holds"} <= set(tables)
        for table in tables:
            rows = conn.exec_driver_sql(f'SELECT * FROM "{table}"').all()
            assert not leaks(repr(rows)), table
        assert conn.exec_driver_sql("SELECT count(*) FROM exports WHERE status = 'complete'").scalar() == 3
    engine.dispose()

    # every file of every package (xlsx/docx/zip members, PDF text), and the certificate
    files = list(package_texts(pg.root / "ex" / "exports")) + list(package_texts(certificate.parent))
    assert len(files) > 100 and any(name.endswith("(text)") for name, _ in files)
    assert any(name.endswith(".sql") for name, _ in files)
    bad = [name for name, data in files if leaks(data)]
    assert not bad, bad


# --------------------------------------------------------------------------- files are private


def modes(root: Path) -> dict[str, int]:
    return {p.relative_to(root).as_posix(): stat.S_IMODE(os.lstat(p).st_mode) for p in [root, *root.rglob("*")]}


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("files")
    build_example(root / "ex", activity_rows=100)
    return root


def test_packages_are_private_under_umask_000(example: Path) -> None:
    pyrage = pytest.importorskip("pyrage")
    cfg = str(example / "ex" / "learnexit.toml")
    out = example / "handover" / "new" / "deeper"  # missing folders are created 0700
    key = str(pyrage.x25519.Identity.generate().to_public())
    letters = example / "letters"
    for second, args in enumerate(
        (
            ["notice", "acme", "--received", "2026-11-20", "--letter", str(letters)],
            ["export", "acme", "--out", str(out)],  # every format: documents, media, sql ...
            ["export", "acme", "-f", "csv,xlsx", "--zip", "--out", str(out)],
            ["export", "acme", "-f", "csv", "--encrypt-to", key, "--out", str(out)],
        )
    ):
        done = run([*args, "--config", cfg, "--json"], umask=0, env={"LEARNEXIT_NOW": f"2026-11-29T11:15:{second:02d}"})
        assert done.returncode == 0, done.stderr
    found = modes(example / "handover")
    assert found.pop("new") == 0o700 and found.pop(".") == 0o700
    assert any(p.endswith(".zip") for p in found) and any(p.endswith(".zip.age") for p in found)
    assert sum(p.endswith(".pdf") for p in found) > 5 and any("/media/" in p for p in found)
    wrong = {p: oct(m) for p, m in found.items() if m != (0o700 if (example / "handover" / p).is_dir() else 0o600)}
    assert not wrong, wrong
    letter_modes = modes(letters)
    assert len(letter_modes) == 4 and all(m == 0o600 for p, m in letter_modes.items() if p != "."), letter_modes
    # the zip entries carry the private modes too (unzip restores them)
    zipped = next(p for p in (example / "handover").rglob("*.zip"))
    with zipfile.ZipFile(zipped) as zf:
        assert {(i.external_attr >> 16) & 0o777 for i in zf.infolist()} == {0o600, 0o700}
    # the SQLite ledger a umask of 000 created is not writable by others
    assert not stat.S_IMODE((example / "ex" / "learnexit-state.db").stat().st_mode) & 0o022


# --------------------------------------------------------------------------- the audit chain


@pytest.fixture
def chained(example: Path, tmp_path: Path) -> Path:
    """A ledger with a dozen audit entries, copied for each test."""
    ledger = tmp_path / "state.db"
    cfg = tmp_path / "learnexit.toml"
    text = (example / "ex" / "learnexit.toml").read_text(encoding="utf-8")
    text = text.replace('url = "sqlite:///lms.db"', f'url = "sqlite:///{example / "ex" / "lms.db"}"')
    text = text.replace('url = "sqlite:///learnexit-state.db"', f'url = "sqlite:///{ledger}"')
    cfg.write_text(text, encoding="utf-8")
    env = {"LEARNEXIT_NOW": NOW, "LEARNEXIT_ACTOR": "tester@example"}
    for args in (
        ["notice", "globex", "--received", "2026-11-20"],
        ["notice", "initech", "--received", "2026-11-21"],
        ["hold", "globex", "--reason", "case 1"],
        ["release", "globex"],
        ["hold", "globex", "--reason", "case 2"],
        ["release", "globex"],
        ["hold", "initech", "--reason", "case 3"],
    ):
        assert runner.invoke(app, [*args, "--config", str(cfg)], env=env).exit_code == 0
    verify = runner.invoke(app, ["audit", "--verify", "--config", str(cfg), "--json"])
    assert verify.exit_code == 0 and json.loads(verify.stdout)["checked"] == 7
    return cfg


def entry_hash_of(conn: sqlite3.Connection, entry_id: int) -> str:
    """Recompute an entry's hash the way the ledger does (the attacker knows the algorithm)."""
    from datetime import datetime

    from learnexit.ledger.store import entry_hash

    row = conn.execute(
        "SELECT id, at, actor, command, customer, event, details, prev_hash FROM audit WHERE id = ?", (entry_id,)
    ).fetchone()
    keys = ("id", "at", "actor", "command", "customer", "event", "details", "prev_hash")
    entry = dict(zip(keys, row, strict=True))
    entry["at"] = datetime.fromisoformat(entry["at"])
    return entry_hash(entry)


EDITS = {
    "edit details": ("UPDATE audit SET details = replace(details, 'hold_id', 'hold_jd') WHERE id = 3", "edited"),
    "edit actor": ("UPDATE audit SET actor = 'someone-else@example' WHERE id = 1", "edited"),
    "edit time": ("UPDATE audit SET at = '2020-01-01 00:00:00.000000' WHERE id = 4", "edited"),
    "edit customer": ("UPDATE audit SET customer = 'initech' WHERE id = 5", "edited"),
    "delete middle": ("DELETE FROM audit WHERE id = 4", "entry 4 is missing"),
    "delete first": ("DELETE FROM audit WHERE id = 1", "entry 1 is missing"),
    "delete last": ("DELETE FROM audit WHERE id = 7", "entries at the end are missing"),
    "delete all": ("DELETE FROM audit", "entries at the end are missing"),
    "swap two": ("SWAP", "does not follow the previous entry"),
    "rehash one": ("REHASH", "does not follow the previous entry"),
}


@pytest.mark.parametrize("edit", list(EDITS))
def test_the_audit_chain_detects_edits(chained: Path, edit: str) -> None:
    statement, expected = EDITS[edit]
    ledger = chained.parent / "state.db"
    with sqlite3.connect(ledger) as conn:
        if statement == "REHASH":  # edit an entry and give it a matching hash: the next one no longer follows
            conn.execute("UPDATE audit SET actor = 'mallory@example' WHERE id = 2")
            conn.execute("UPDATE audit SET hash = ? WHERE id = 2", (entry_hash_of(conn, 2),))
        elif statement == "SWAP":  # entries 3 and 4 change places
            for old_id, new_id in ((3, 1000), (4, 3), (1000, 4)):
                conn.execute("UPDATE audit SET id = ? WHERE id = ?", (new_id, old_id))
        else:
            conn.execute(statement)
    result = runner.invoke(app, ["audit", "--verify", "--config", str(chained), "--json"])
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["valid"] is False and any(expected in p for p in data["problems"]), data["problems"]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("learnexit: error: audit chain broken"), result.stderr
    text = runner.invoke(app, ["audit", "--verify", "--config", str(chained)])
    assert text.exit_code == 1 and "Chain BROKEN" in text.stdout

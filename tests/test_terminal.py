"""The person at the terminal: narrow screens, global options, a dry run without a notice,
and a ledger that holds rehearsed records.

- Every table-printing command (``status``, ``status CUSTOMER``, ``audit``, ``inspect``,
  ``export``, ``export --list-formats``, ``purge``) at 80 and 200 columns on a terminal and
  piped: every customer key, state, date, event and table name appears whole (no ``…``,
  no word cut at the edge of a column).
- ``learnexit --config X --json status`` works like ``learnexit status --config X --json``;
  ``-h`` is ``--help``.
- ``purge CUSTOMER --dry-run`` without a notice shows the plan (and says why it is refused).
- A command run with ``LEARNEXIT_NOW`` marks its audit entries and the ledger; ``status``
  and ``audit`` on the real clock say so.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from learnexit.cli import app
from learnexit.demo import build_example

runner = CliRunner()
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
SCREENS = {
    "terminal-80": {"FORCE_COLOR": "1", "COLUMNS": "80"},
    "terminal-200": {"FORCE_COLOR": "1", "COLUMNS": "200"},
    "piped": {},
}


def cli(args: list[str], env: dict[str, str] | None = None) -> Any:
    base = {"LEARNEXIT_NOW": None, "FORCE_COLOR": None, "COLUMNS": None, "NO_COLOR": None, "TERM": None}
    return runner.invoke(app, args, env={**base, **(env or {})})


def screen_text(result: Any) -> str:
    return ANSI.sub("", result.stdout)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example after notice (acme, globex), a CSV export and confirmation of acme, and
    a rehearsed purge of acme: every state the tables show."""
    root = tmp_path_factory.mktemp("screens")
    build_example(root / "ex", activity_rows=100)
    config = str(root / "ex" / "learnexit.toml")
    rehearsal = {"LEARNEXIT_NOW": "2026-12-01"}
    steps = [
        (["notice", "acme", "--received", "2026-11-29"], rehearsal),
        (["notice", "globex", "--received", "2026-11-30"], rehearsal),
        (["export", "acme", "--format", "csv"], rehearsal),
        (["confirm", "acme", "--by", "Eva Ek", "--waive-window"], rehearsal),
        (["purge", "acme", "--yes"], {"LEARNEXIT_NOW": "2027-02-01"}),
    ]
    for args, env in steps:
        result = cli(["--config", config, *args], env)
        assert result.exit_code == 0, (args, result.stdout, result.stderr)
    return root / "ex"


def whole_words(data: Any, keys: set[str]) -> set[str]:
    """The values under ``keys`` anywhere in a JSON document (what the table shows)."""
    found: set[str] = set()
    if isinstance(data, dict):
        for key, value in data.items():
            if key in keys and isinstance(value, str) and value:
                found.add(value)
            found |= whole_words(value, keys)
    elif isinstance(data, list):
        for item in data:
            found |= whole_words(item, keys)
    return found


DATES = {"termination_date", "export_deadline"}
TABLE_COMMANDS = {
    "status": (["status"], {"customer", "state", *DATES}),
    "status one": (["status", "acme"], {"customer", "state", "event", "received", "period_end", *DATES}),
    "audit": (["audit"], {"customer", "event", "command", "termination_date", "received"}),
    "inspect": (["inspect", "acme"], {"table", "status", "category"}),
    "list formats": (["export", "--list-formats"], {"name"}),
}


@pytest.mark.parametrize("screen", list(SCREENS))
@pytest.mark.parametrize("command", list(TABLE_COMMANDS))
def test_tables_keep_every_key_fact_whole(world: Path, command: str, screen: str) -> None:
    args, keys = TABLE_COMMANDS[command]
    config = ["--config", str(world / "learnexit.toml")]
    data = json.loads(cli([*config, *args, "--json"]).stdout)
    facts = whole_words(data, keys)
    assert facts, "the command shows nothing to check"
    result = cli([*config, *args], SCREENS[screen])
    assert result.exit_code == 0, result.stderr
    text = screen_text(result)
    assert "…" not in text
    missing = sorted(f for f in facts if f not in text)
    assert not missing, f"cut or broken at {screen}: {missing}\n{text}"
    if screen == "terminal-80":  # (a line may be wider only if it is one word: a long path)
        assert all(len(line) <= 80 or " " not in line.strip() for line in text.splitlines()), text


@pytest.mark.parametrize("screen", list(SCREENS))
def test_export_and_purge_tables_keep_table_names_whole(world: Path, tmp_path: Path, screen: str) -> None:
    """A fresh example per run: export globex, then purge it (forced) at each width."""
    build_example(tmp_path / "ex", activity_rows=100)
    config = ["--config", str(tmp_path / "ex" / "learnexit.toml")]
    rehearsal = {"LEARNEXIT_NOW": "2026-12-01"}
    assert cli([*config, "notice", "globex", "--received", "2026-11-30"], rehearsal).exit_code == 0
    export = cli([*config, "export", "globex", "--format", "csv"], {**rehearsal, **SCREENS[screen]})
    assert export.exit_code == 0, export.stderr
    purge = cli(
        [*config, "purge", "globex", "--yes", "--force", "--reason", "test of the result table"],
        {**rehearsal, **SCREENS[screen]},
    )
    assert purge.exit_code == 0, purge.stderr
    for result in (export, purge):
        text = screen_text(result)
        assert "…" not in text
        for name in ("survey_questions", "course_materials", "quiz_attempts", "activity_log"):
            assert name in text


def test_options_before_the_command_and_dash_h(world: Path) -> None:
    config = str(world / "learnexit.toml")
    after = cli(["status", "--config", config, "--json"])
    before = cli(["--config", config, "--json", "status"])
    short = cli(["-c", config, "--json", "status"])
    assert after.exit_code == before.exit_code == short.exit_code == 0, before.stderr
    strip = lambda r: {k: v for k, v in json.loads(r.stdout).items() if k != "as_of"}  # noqa: E731
    assert strip(before) == strip(after) == strip(short)
    assert [c["customer"] for c in json.loads(before.stdout)["customers"]] == ["acme", "globex"]
    # the command's own option wins over the global one
    elsewhere = cli(["--config", "/nonexistent/learnexit.toml", "status", "--config", config])
    assert elsewhere.exit_code == 0, elsewhere.stderr
    for args in (["-h"], ["status", "-h"], ["purge", "-h"]):
        result = cli(args)
        assert result.exit_code == 0 and "Usage:" in result.stdout and "--help" in result.stdout
        assert "-h, --help" in result.stdout


def test_traceback_before_the_command(world: Path) -> None:
    result = cli(["--config", str(world / "learnexit.toml"), "--traceback", "status", "nosuch"])
    assert result.exit_code == 2
    assert "Traceback (most recent call last)" in result.stderr


def _fingerprint(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_dry_run_without_a_notice_shows_the_plan(tmp_path: Path) -> None:
    info = build_example(tmp_path / "ex", activity_rows=100)
    config = ["--config", str(tmp_path / "ex" / "learnexit.toml")]
    assert cli([*config, "status"]).exit_code == 0  # (the ledger exists before the fingerprint)
    before = _fingerprint(tmp_path / "ex")
    text = cli([*config, "purge", "acme", "--dry-run"])
    data = cli([*config, "purge", "acme", "--dry-run", "--json"])
    assert text.exit_code == data.exit_code == 3
    assert "REFUSED: no notice is recorded for acme" in text.stdout
    assert "Would delete" in text.stdout and "Retained:" in text.stdout
    plan = json.loads(data.stdout)["customers"][0]
    assert any("no notice" in r for r in plan["refusals"])
    planned = {t["table"]: t["delete"] + t["retained"] + t["kept_shared"] for t in plan["tables"]}
    assert planned == {t: n for t, n in info.counts["acme"].items() if n}
    assert _fingerprint(tmp_path / "ex") == before  # a dry run changes nothing


def test_a_rehearsed_clock_is_marked_and_shown(tmp_path: Path) -> None:
    build_example(tmp_path / "real", activity_rows=100)
    build_example(tmp_path / "rehearsed", activity_rows=100)
    real = ["--config", str(tmp_path / "real" / "learnexit.toml")]
    rehearsed = ["--config", str(tmp_path / "rehearsed" / "learnexit.toml")]
    assert cli([*real, "notice", "acme", "--received", "2026-11-29"]).exit_code == 0
    result = cli([*rehearsed, "notice", "acme", "--received", "2026-11-29"], {"LEARNEXIT_NOW": "2027-02-01"})
    assert result.exit_code == 0, result.stderr
    warning = "records made under a rehearsed clock"
    for args in (["status"], ["status", "acme"], ["status", "--check"], ["audit"], ["audit", "--verify"]):
        plain = cli([*real, *args])
        marked = cli([*rehearsed, *args])
        assert warning not in plain.stdout and warning in marked.stdout, args
        assert json.loads(cli([*real, *args, "--json"]).stdout)["rehearsed_clock"] is False
        assert json.loads(cli([*rehearsed, *args, "--json"]).stdout)["rehearsed_clock"] is True
    audit = json.loads(cli([*rehearsed, "audit", "--verify", "--json"]).stdout)
    assert audit["valid"] is True
    assert [e["details"].get("clock") for e in audit["entries"]] == ["rehearsed"]
    assert "clock" not in json.loads(cli([*real, "audit", "--json"]).stdout)["entries"][0]["details"]
    # under the rehearsed clock itself, the warning is not repeated on every screen
    assert warning not in cli([*rehearsed, "status"], {"LEARNEXIT_NOW": "2027-02-01"}).stdout

"""docs/runbook.md is executed: every command in it runs, and its output must match.

How the runbook is read
-----------------------
- Fenced blocks tagged ``console`` are executed, in document order, as one story.
  Lines starting with ``$ `` are commands (a trailing ``\\`` continues one on the next
  line); the lines after a command, up to the next ``$``, are its expected output
  (stdout and stderr together, as on a terminal).
- ``# exit N`` at the end of a command line is its expected exit code (default 0).
- ``cd DIR`` changes the folder of the following commands, ``export NAME=VALUE`` sets a
  variable for them (``unset NAME`` removes it), as in one shell session (the runbook
  sets ``LEARNEXIT_NOW`` this way, visibly, so a reader can rehearse the same dates);
  every other command runs
  with ``bash -c`` (as typed at a prompt: the exit code of a pipeline is its last
  command's) and ``learnexit`` (this checkout) first on PATH.
- ``<!-- now: 2027-04-02 -->`` (any value ``$LEARNEXIT_NOW`` accepts) sets the date the
  following blocks run at, until the next ``now`` comment; ``<!-- now: -->`` clears it.
  The reader does not see these comments, the tool does (``learnexit.offboarding.clock.now``).
  A ``now`` comment wins over an exported ``LEARNEXIT_NOW``.
- Blocks tagged anything else (``text``, ``toml``, ...) are not run.  A ``text`` block
  that shows ``$ learnexit CMD`` for a command that exists fails the suite, unless it is
  preceded by ``<!-- not-run: why -->`` (for what cannot happen in a test, e.g. a real
  database outage).
- The story starts in an empty folder: the runbook's first command must be
  ``learnexit init --example demo``.

Comparing output
----------------
Trailing spaces and trailing empty lines are ignored.  In the expected output:

- a line ``...`` matches any number of lines (also none);
- ``...`` inside a line matches any text within that line;
- the output is normalised before comparing, so the expected text uses placeholders for
  what differs from run to run:

  ``<DEMO>``       the absolute path of the example folder (the story runs in a folder
                   whose path always has the same length, so tables keep their layout)
  ``<TIMESTAMP>``  a date-time taken from the real clock during the run (audit times,
                   package names such as ``acme-<TIMESTAMP>``); dates set through
                   ``now`` comments are deterministic and are written out literally
  ``<HASH>``       a hexadecimal digest of 32 or more digits (hash-chain heads,
                   manifests), also when a table cuts it short with ``…``
  ``<VERSION>``    learnexit's version

The environment is fixed like a terminal session without colours: ``NO_COLOR=1``,
``COLUMNS=100``, ``LEARNEXIT_LOG_LEVEL=warning``, ``LEARNEXIT_ACTOR=sam@vendor.example``.

``RUNBOOK_UPDATE=1 pytest tests/test_runbook.py`` writes the actual (normalised) output
into the runbook where it differs (exit codes are never rewritten): use it to capture
real output, then read the diff before keeping it.
"""

from __future__ import annotations

import difflib
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import typer
from conftest import needs_tool

from learnexit import __version__
from learnexit.cli import app

ROOT = Path(__file__).resolve().parents[1]
RUNBOOK = ROOT / "docs" / "runbook.md"
ACTOR = "sam@vendor.example"
EXAMPLE_TZ = ZoneInfo("Europe/Stockholm")


# --------------------------------------------------------------------------- parsing


@dataclass
class Command:
    line: int  # 1-based line of the `$ ` in the runbook
    text: str
    exit_code: int
    expected: list[str]
    expected_span: tuple[int, int]  # 0-based [start, end) lines of the expected output
    now: str | None


@dataclass
class Block:
    line: int  # 1-based line of the opening fence
    lang: str
    body: list[str]
    now: str | None
    not_run: str | None = None
    commands: list[Command] = field(default_factory=list)


_FENCE = re.compile(r"^```([\w-]*)\s*$")
_NOW = re.compile(r"^<!--\s*now:\s*(\S*)\s*-->\s*$")
_NOT_RUN = re.compile(r"^<!--\s*not-run:\s*(.+?)\s*-->\s*$")
_EXIT = re.compile(r"\s+#\s*exit\s+(\d+)\s*$")


def parse_runbook(text: str) -> list[Block]:
    lines = text.splitlines()
    blocks: list[Block] = []
    now: str | None = None
    not_run: str | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        if m := _NOW.match(line.strip()):
            now = m.group(1) or None
        elif m := _NOT_RUN.match(line.strip()):
            not_run = m.group(1)
        elif m := _FENCE.match(line):
            start = i
            i += 1
            while i < len(lines) and lines[i].rstrip() != "```":
                i += 1
            if i >= len(lines):
                raise ValueError(f"runbook line {start + 1}: unclosed ``` block")
            block = Block(start + 1, m.group(1), lines[start + 1 : i], now, not_run)
            if block.lang == "console":
                block.commands = _commands(block, start + 1)
            blocks.append(block)
            not_run = None
        i += 1
    return blocks


def _commands(block: Block, first: int) -> list[Command]:
    """Split a console block into commands and their expected output."""
    commands: list[Command] = []
    body = block.body
    j = 0
    if body and not body[0].startswith("$ "):
        raise ValueError(f"runbook line {block.line}: a console block must start with a `$ ` command")
    while j < len(body):
        start = j
        text = body[j][2:]
        while text.endswith("\\") and j + 1 < len(body):
            j += 1
            text = text[:-1] + "\n" + body[j]
        j += 1
        exit_code = 0
        if m := _EXIT.search(text):
            exit_code = int(m.group(1))
            text = text[: m.start()]
        out_start = j
        while j < len(body) and not body[j].startswith("$ "):
            j += 1
        expected = body[out_start:j]
        commands.append(
            Command(first + start + 1, text.strip(), exit_code, expected, (first + out_start, first + j), block.now)
        )
    return commands


# --------------------------------------------------------------------------- comparing


_STAMPS = [
    # 2026-11-29T06:13:20.716Z, 2026-11-29T06:13:20+00:00, 2026-11-29T06:13:20
    (re.compile(r"\b(\d{4}-\d{2}-\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.\d+)?(Z|[+-]\d{2}:\d{2})?"), "iso"),
    # 2026-11-29T061320Z (package names)
    (re.compile(r"\b(\d{4}-\d{2}-\d{2})T(\d{2})(\d{2})(\d{2})(Z)"), "compact"),
    # 20261129T061320Z
    (re.compile(r"\b(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})(Z)"), "basic"),
    # 2026-11-29 06:13:18, 2026-11-29 06:13Z
    (re.compile(r"\b(\d{4}-\d{2}-\d{2}) (\d{2}):(\d{2})(?::(\d{2}))?(Z)?(?![\d:])"), "space"),
]
_HASH = re.compile(r"\b[0-9a-f]{32,}\b…?|\b[0-9a-f]{32,}…")


@dataclass
class Clock:
    """The real-clock window of this run: instants inside it are run-specific."""

    started: datetime

    def is_run_specific(self, naive: datetime, zone: str | None) -> bool:
        low, high = self.started - timedelta(minutes=2), datetime.now(UTC) + timedelta(minutes=2)
        if zone in ("Z", "+00:00"):
            candidates = [naive.replace(tzinfo=UTC)]
        elif zone:
            sign = 1 if zone[0] == "+" else -1
            offset = timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6])) * sign
            candidates = [(naive - offset).replace(tzinfo=UTC)]
        else:  # no zone: UTC (the ledger) or the example's local time
            candidates = [naive.replace(tzinfo=UTC), naive.replace(tzinfo=EXAMPLE_TZ)]
        return any(low <= c <= high for c in candidates)


def _stamp_value(kind: str, m: re.Match[str]) -> tuple[datetime, str | None] | None:
    try:
        if kind == "basic":
            y, mo, d, h, mi, s, zone = m.groups()
            return datetime(int(y), int(mo), int(d), int(h), int(mi), int(s)), zone
        day, h, mi, s, zone = m.groups()
        base = datetime.fromisoformat(day)
        return base.replace(hour=int(h), minute=int(mi), second=int(s or 0)), zone
    except ValueError:
        return None


def _normalise_text(text: str, demo: Path, clock: Clock) -> str:
    text = text.replace(str(demo), "<DEMO>")
    for pattern, kind in _STAMPS:

        def stamp(m: re.Match[str], kind: str = kind) -> str:
            value = _stamp_value(kind, m)
            if value is None:
                return m.group(0)
            naive, zone = value
            if kind == "space" and m.group(4) is None:
                # minute precision: run-specific when the whole minute overlaps the run
                return "<TIMESTAMP>" if clock.is_run_specific(naive + timedelta(seconds=30), zone) else m.group(0)
            return "<TIMESTAMP>" if clock.is_run_specific(naive, zone) else m.group(0)

        text = pattern.sub(stamp, text)
    text = _HASH.sub("<HASH>", text)
    return text.replace(f"learnexit {__version__}", "learnexit <VERSION>")


_CELL_BORDER = re.compile(r"([│┃])")


def normalise(text: str, demo: Path, clock: Clock) -> list[str]:
    """Replace run-specific values by placeholders; in table rows keep the columns aligned."""
    lines = []
    for line in text.splitlines():
        if _CELL_BORDER.search(line):
            parts = _CELL_BORDER.split(line)
            # cells keep their width: a shorter placeholder is padded at the end of its cell
            line = "".join(
                part if _CELL_BORDER.fullmatch(part) else _normalise_text(part, demo, clock).ljust(len(part))
                for part in parts
            )
        else:
            line = _normalise_text(line, demo, clock)
        lines.append(line.rstrip())
    while lines and not lines[-1]:
        lines.pop()
    return lines


def _line_matches(expected: str, actual: str) -> bool:
    if "..." not in expected:
        return expected == actual
    pattern = ".*".join(re.escape(part) for part in expected.split("..."))
    return re.fullmatch(pattern, actual) is not None


def output_matches(expected: list[str], actual: list[str]) -> bool:
    """Line-wise comparison; an expected line `...` matches any number of lines."""
    exp = [line.rstrip() for line in expected]
    while exp and not exp[-1]:
        exp.pop()
    memo: dict[tuple[int, int], bool] = {}

    def match(i: int, j: int) -> bool:
        key = (i, j)
        if key in memo:
            return memo[key]
        if i == len(exp):
            result = j == len(actual)
        elif exp[i] == "...":
            result = match(i + 1, j) or (j < len(actual) and match(i, j + 1))
        else:
            result = j < len(actual) and _line_matches(exp[i], actual[j]) and match(i + 1, j + 1)
        memo[key] = result
        return result

    return match(0, 0)


# --------------------------------------------------------------------------- running


def _commands_in_tree() -> set[str]:
    return set(getattr(typer.main.get_command(app), "commands", {}))


def _learnexit_subcommand(command: str) -> str | None:
    """The learnexit subcommand a shell command runs (None when it runs no learnexit)."""
    try:
        words = shlex.split(command, comments=True)
    except ValueError:
        return None
    while words and re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]):
        words.pop(0)
    if not words or words[0] != "learnexit":
        return None
    i = 1
    while i < len(words) and words[i].startswith("-"):
        i += 2 if words[i] in ("--log-format", "--log-level") else 1
    return words[i] if i < len(words) else None


_EXPORT = re.compile(r"^export ([A-Za-z_][A-Za-z0-9_]*)=(\S*)$")
_UNSET = re.compile(r"^unset ([A-Za-z_][A-Za-z0-9_]*)$")


@dataclass
class Session:
    root: Path
    bin_dir: Path
    cwd: Path
    clock: Clock
    exported: dict[str, str] = field(default_factory=dict)

    @property
    def demo(self) -> Path:
        return self.root / "demo"

    def env(self, now: str | None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LEARNEXIT_", "FORCE_COLOR", "PYTEST_"))}
        env.update(
            PATH=f"{self.bin_dir}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}",
            NO_COLOR="1",
            TERM="dumb",
            COLUMNS="100",
            LINES="50",
            TZ="UTC",
            LANG="C.UTF-8",
            PYTHONUNBUFFERED="1",
            LEARNEXIT_LOG_LEVEL="warning",
            LEARNEXIT_ACTOR=ACTOR,
        )
        env.update(self.exported)
        if now:
            env["LEARNEXIT_NOW"] = now
        return env

    def run(self, command: Command) -> tuple[int, list[str]]:
        if m := _EXPORT.match(command.text):
            self.exported[m.group(1)] = shlex.split(m.group(2))[0] if m.group(2) else ""
            return 0, []
        if m := _UNSET.match(command.text):
            self.exported.pop(m.group(1), None)
            return 0, []
        words = command.text.split()
        if words and words[0] == "cd" and len(words) == 2 and "\n" not in command.text:
            target = (self.cwd / words[1]).resolve()
            if not target.is_dir():
                return 1, [f"bash: cd: {words[1]}: No such file or directory"]
            self.cwd = target
            return 0, []
        result = subprocess.run(
            ["bash", "--noprofile", "--norc", "-c", command.text],
            cwd=self.cwd,
            env=self.env(command.now),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=600,
        )
        return result.returncode, normalise(result.stdout.decode("utf-8", "replace"), self.demo, self.clock)


@pytest.fixture
def session() -> Iterator[Session]:
    """An empty folder whose path always has the same length (so tables keep their layout)."""
    base = "/tmp" if os.path.isdir("/tmp") else None
    root = Path(tempfile.mkdtemp(prefix="learnexit-runbook-", dir=base))
    bin_dir = root / ".bin"
    bin_dir.mkdir()
    script = bin_dir / "learnexit"
    script.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m learnexit "$@"\n', encoding="utf-8")
    script.chmod(0o755)
    try:
        yield Session(root, bin_dir, root, Clock(datetime.now(UTC)))
    finally:
        shutil.rmtree(root, ignore_errors=True)


# --------------------------------------------------------------------------- the framework itself


SAMPLE = """\
# Title

<!-- now: 2027-01-10 -->
```console
$ learnexit init --example demo
Wrote ...
$ cd demo
$ learnexit purge acme --yes   # exit 3
learnexit: error: ...
...
```

<!-- not-run: needs a real outage -->
```text
$ learnexit purge --due
```

<!-- now: -->
```console
$ echo a \\
b
a b
```
"""


def test_parser_reads_commands_exit_codes_and_now() -> None:
    blocks = parse_runbook(SAMPLE)
    assert [b.lang for b in blocks] == ["console", "text", "console"]
    first = blocks[0]
    assert [c.text for c in first.commands] == [
        "learnexit init --example demo",
        "cd demo",
        "learnexit purge acme --yes",
    ]
    assert [c.exit_code for c in first.commands] == [0, 0, 3]
    assert first.commands[0].expected == ["Wrote ..."]
    assert first.commands[2].expected == ["learnexit: error: ...", "..."]
    assert first.commands[0].now == "2027-01-10" and first.commands[0].line == 5
    assert blocks[1].not_run == "needs a real outage" and blocks[1].now == "2027-01-10"
    assert blocks[2].now is None and blocks[2].commands[0].text == "echo a \nb"
    assert blocks[2].commands[0].expected == ["a b"]


def test_matcher_wildcards() -> None:
    assert output_matches(["a", "...", "d"], ["a", "b", "c", "d"])
    assert output_matches(["a", "...", "b"], ["a", "b"])
    assert output_matches(["x ... z"], ["x yyy z"])
    assert output_matches(["a", ""], ["a"])
    assert not output_matches(["a"], ["a", "b"])
    assert not output_matches(["x ... z"], ["x y"])
    assert not output_matches(["a.b"], ["aXb"])  # only `...` is special


def test_normalise_placeholders(tmp_path: Path) -> None:
    clock = Clock(datetime.now(UTC) - timedelta(seconds=5))
    now = datetime.now(UTC)
    text = (
        f"{tmp_path}/exports/acme-{now:%Y-%m-%dT%H%M%S}Z\n"
        f"at {now:%Y-%m-%d %H:%M:%S} by x   \n"
        f"recorded {now:%Y-%m-%d %H:%M}Z\n"
        f'"time": "{now:%Y-%m-%dT%H:%M:%S.123}Z"\n'
        "received 2026-11-02 11:00Z, purge 2027-05-29T22:00:00+00:00\n"
        f"head {'ab' * 32}. cut {'0f' * 20}…\n"
        f"learnexit {__version__}\n"
        f"│ {now:%Y-%m-%d %H:%M} │ path={tmp_path}/x │\n\n\n"
    )
    assert normalise(text, tmp_path, clock) == [
        "<DEMO>/exports/acme-<TIMESTAMP>",
        "at <TIMESTAMP> by x",
        "recorded <TIMESTAMP>",
        '"time": "<TIMESTAMP>"',
        "received 2026-11-02 11:00Z, purge 2027-05-29T22:00:00+00:00",  # deterministic: kept
        "head <HASH>. cut <HASH>",
        "learnexit <VERSION>",
        "│ <TIMESTAMP>      │ path=<DEMO>/x" + " " * (len(str(tmp_path)) - len("<DEMO>")) + " │",
    ]


# --------------------------------------------------------------------------- the runbook


def test_runbook_exists_and_starts_from_nothing() -> None:
    blocks = parse_runbook(RUNBOOK.read_text(encoding="utf-8"))
    commands = [c for b in blocks if b.lang == "console" for c in b.commands if not _EXPORT.match(c.text)]
    assert len(commands) >= 10
    assert commands[0].text == "learnexit init --example demo"
    assert commands[1].text == "cd demo"


def test_no_runnable_command_hides_in_a_text_block() -> None:
    """Once a command exists, its runbook examples must run (```console), unless marked not-run."""
    have = _commands_in_tree()
    hidden = []
    for block in parse_runbook(RUNBOOK.read_text(encoding="utf-8")):
        if block.lang == "console" or block.not_run:
            continue
        for offset, line in enumerate(block.body):
            if line.startswith("$ ") and _learnexit_subcommand(line[2:]) in have:
                hidden.append(f"line {block.line + 1 + offset}: {line}")
    assert not hidden, "make these ```console blocks (or mark them <!-- not-run: why -->):\n" + "\n".join(hidden)


def _tools(blocks: list[Block]) -> set[str]:
    """The programs the runbook's commands call (the first word of each pipeline stage)."""
    tools = set()
    for block in blocks:
        for command in block.commands if block.lang == "console" else []:
            lexer = shlex.shlex(command.text, posix=True, punctuation_chars=True)
            lexer.whitespace_split = True
            at_command = True
            for token in lexer:
                if token in ("|", "||", "&&", ";", "&"):
                    at_command = True
                elif at_command and not re.match(r"^[A-Z_][A-Z0-9_]*=", token):
                    if token not in ("cd", "learnexit", "echo", "export", "unset"):
                        tools.add(token)
                    at_command = False
    return tools


def test_runbook_commands_run_and_print_what_the_runbook_says(session: Session) -> None:
    text = RUNBOOK.read_text(encoding="utf-8")
    blocks = parse_runbook(text)
    have = _commands_in_tree()
    needs_tool(*sorted(_tools(blocks)), package="jq sqlite3 poppler-utils", why="the runbook's commands use it")
    problems: list[str] = []
    updates: list[tuple[tuple[int, int], list[str]]] = []
    for block in blocks:
        if block.lang != "console":
            continue
        for command in block.commands:
            sub = _learnexit_subcommand(command.text)
            if sub is not None and sub not in have:
                problems.append(f"line {command.line}: `learnexit {sub}` does not exist (use a ```text block)")
                continue
            code, actual = session.run(command)
            where = f"runbook line {command.line}: $ {command.text}"
            if code != command.exit_code:
                problems.append(
                    f"{where}\n  exit {code}, the runbook says {command.exit_code}\n  " + "\n  ".join(actual)
                )
            if not output_matches(command.expected, actual):
                diff = difflib.unified_diff(command.expected, actual, "runbook", "actual", lineterm="", n=2)
                problems.append(f"{where}\n  output differs:\n  " + "\n  ".join(diff))
                updates.append((command.expected_span, actual))
    if updates and os.environ.get("RUNBOOK_UPDATE") == "1":
        lines = text.splitlines()
        for (start, end), actual in sorted(updates, reverse=True):
            lines[start:end] = actual
        RUNBOOK.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert not problems, f"{len(problems)} problem(s) in docs/runbook.md:\n\n" + "\n\n".join(problems)

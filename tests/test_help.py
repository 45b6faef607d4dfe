"""Help that teaches, output that stays clean.

- Every command (walking the application's own Click tree) has a one-line summary, an
  ``Example(s):`` block whose lines are real commands with real options, and an
  ``Exit codes:`` line naming only the codes of design §3; every option and argument has
  help text; ``--help`` exits 0 without a traceback.
- Plain output: piped output and ``NO_COLOR=1`` (even on a terminal) carry no ANSI codes.
- ``--json`` prints exactly one JSON document on stdout, also with ``--log-format json``
  (events go to stderr only).
- Shell completion is offered and works.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from helpers import copy_example
from typer.testing import CliRunner

from learnexit.cli import app

ROOT_COMMAND = typer.main.get_command(app)
ANSI = re.compile(r"\x1b[\[\]()>=]")
KNOWN_EXIT_CODES = {0, 1, 2, 3, 4, 5}
runner = CliRunner()


def walk(command: Any = ROOT_COMMAND, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """(path of names, command) for every command and subcommand, depth first."""
    yield path, command
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        yield from walk(sub, (*path, name))


COMMANDS = [(path, cmd) for path, cmd in walk() if path]
IDS = [" ".join(path) for path, _ in COMMANDS]


def help_text(cmd: Any) -> str:
    return (cmd.help or "").strip()


def example_lines(text: str) -> list[str]:
    """The indented command lines of the ``Example:``/``Examples:`` block."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if re.fullmatch(r"\s*Examples?:\s*", line)), None)
    if start is None:
        return []
    found = []
    for line in lines[start + 1 :]:
        if line.strip() == "\b":
            continue  # Click's "do not rewrap the next paragraph" marker
        if line.strip() and not line.startswith((" ", "\t")):
            break  # the next paragraph (e.g. "Exit codes:")
        stripped = line.strip()
        if found and found[-1].endswith("\\"):
            found[-1] = found[-1][:-1].rstrip() + " " + stripped  # a continued line
        elif stripped and not stripped.startswith("#"):
            found.append(stripped)
    return found


def example_argv(line: str) -> list[str]:
    """The argv after ``learnexit`` in one example line (env prefixes and comments dropped)."""
    words = shlex.split(line, comments=True)
    while words and re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]):
        words.pop(0)
    assert words and words[0] == "learnexit", f"an example must start with `learnexit`: {line!r}"
    return words[1:]


def parse_with_click(argv: list[str]) -> None:
    """Parse argv with the application's Click tree: unknown commands or options raise."""
    ctx = ROOT_COMMAND.make_context("learnexit", list(argv))
    rest = list(getattr(ctx, "_protected_args", None) or getattr(ctx, "protected_args", [])) + list(ctx.args)
    command: Any = ROOT_COMMAND
    while rest and getattr(command, "commands", None):
        name = rest.pop(0)
        assert name in command.commands, f"no such command: {name}"
        command = command.commands[name]
        ctx = command.make_context(name, rest, parent=ctx)
        rest = list(getattr(ctx, "_protected_args", None) or getattr(ctx, "protected_args", [])) + list(ctx.args)


# --------------------------------------------------------------------------- help texts


def test_the_tree_has_the_foundation_commands() -> None:
    assert {"init", "inspect"} <= {path[0] for path, _ in COMMANDS}


def test_root_help_has_summary_and_exit_codes() -> None:
    text = help_text(ROOT_COMMAND)
    summary = text.split("\n\n")[0]
    assert summary.strip().endswith("."), summary
    assert "Exit codes:" in text


@pytest.mark.parametrize(("path", "cmd"), COMMANDS, ids=IDS)
def test_command_help_has_summary_example_and_exit_codes(path: tuple[str, ...], cmd: Any) -> None:
    name = " ".join(path)
    text = help_text(cmd)
    assert text, f"`learnexit {name}` has no help text"
    lines = text.splitlines()
    summary = lines[0].strip()
    assert summary and summary[0].isupper() and summary.endswith("."), f"{name}: summary {summary!r}"
    assert len(summary) <= 100, f"{name}: the summary line is {len(summary)} characters (keep it ≤ 100)"
    assert len(lines) == 1 or not lines[1].strip(), f"{name}: the summary must be one line followed by a blank line"
    examples = example_lines(text)
    assert examples, f"`learnexit {name} --help` has no Example(s): block with indented command lines"
    exit_lines = [line for line in lines if line.strip().startswith("Exit codes:")]
    assert len(exit_lines) == 1, f"`learnexit {name} --help` needs one line starting with 'Exit codes:'"
    start = lines.index(exit_lines[0])
    paragraph = " ".join(line.strip() for line in lines[start:]).split("\n\n")[0]
    codes = {int(c) for c in re.findall(r"(?:^|[:·,;])\s*(\d)\b", paragraph.removeprefix("Exit codes:").strip())}
    assert 0 in codes and codes <= KNOWN_EXIT_CODES, f"{name}: exit codes {sorted(codes)} in {paragraph!r}"


@pytest.mark.parametrize(("path", "cmd"), COMMANDS, ids=IDS)
def test_examples_in_help_are_real_commands(path: tuple[str, ...], cmd: Any) -> None:
    for line in example_lines(help_text(cmd)):
        argv = example_argv(line)
        assert argv[: len(path)] == list(path), f"an example of `{' '.join(path)}` runs another command: {line!r}"
        try:
            parse_with_click(argv)
        except Exception as exc:  # noqa: BLE001 - Click's UsageError, whichever Click typer ships
            raise AssertionError(f"`{line}` in `learnexit {' '.join(path)} --help`: {exc}") from None


def example_block(text: str) -> list[str]:
    """The example block's lines as written (continuations and comments kept), stripped."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if re.fullmatch(r"\s*Examples?:\s*", line)), len(lines))
    found = []
    for line in lines[start + 1 :]:
        if line.strip() == "\b" or not line.strip():
            continue
        if not line.startswith((" ", "\t")):
            break
        found.append(line.strip())
    return found


@pytest.mark.parametrize("columns", ["60", "200"])
@pytest.mark.parametrize(("path", "cmd"), COMMANDS, ids=IDS)
def test_help_examples_keep_their_lines_at_any_width(path: tuple[str, ...], cmd: Any, columns: str) -> None:
    """Click rewraps help paragraphs to the terminal: an example must not be folded into
    its neighbour or broken in the middle, at 60 columns or at 200."""
    expected = example_block(help_text(cmd))
    assert expected
    result = runner.invoke(app, [*path, "--help"], env={"NO_COLOR": "1", "COLUMNS": columns})
    assert result.exit_code == 0, result.output
    shown = [line.strip() for line in result.stdout.splitlines()]
    missing = [line for line in expected if line not in shown]
    assert not missing, f"`learnexit {' '.join(path)} --help` at {columns} columns breaks: {missing}"


def test_dash_h_is_help() -> None:
    for path in [(), *[p for p, _ in COMMANDS]]:
        short = runner.invoke(app, [*path, "-h"], env={"NO_COLOR": "1", "COLUMNS": "100"})
        long = runner.invoke(app, [*path, "--help"], env={"NO_COLOR": "1", "COLUMNS": "100"})
        assert short.exit_code == 0 and short.stdout == long.stdout, path


@pytest.mark.parametrize(("path", "cmd"), [((), ROOT_COMMAND), *COMMANDS], ids=["learnexit", *IDS])
def test_every_option_and_argument_has_help(path: tuple[str, ...], cmd: Any) -> None:
    missing = [p.name for p in cmd.params if not (getattr(p, "help", None) or "").strip()]
    assert not missing, f"`learnexit {' '.join(path)}`: no help text for {', '.join(missing)}"


@pytest.mark.parametrize("path", [(), *[p for p, _ in COMMANDS]], ids=["learnexit", *IDS])
def test_help_exits_0_without_traceback(path: tuple[str, ...]) -> None:
    result = runner.invoke(app, [*path, "--help"], env={"NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output and "Traceback" not in result.stderr
    assert result.stdout.startswith("Usage: learnexit"), result.stdout[:200]
    assert not ANSI.search(result.stdout)
    if path:
        assert "Exit codes:" in result.stdout


def test_help_as_a_real_process() -> None:
    """`learnexit --help` through the console entry point, in a pipe (no terminal)."""
    result = subprocess.run(
        [sys.executable, "-m", "learnexit", "--help"], capture_output=True, text=True, timeout=120, env=_env()
    )
    assert result.returncode == 0 and result.stderr == ""
    assert not ANSI.search(result.stdout)
    for path, _cmd in COMMANDS:
        assert re.search(rf"^\s+{re.escape(path[0])}\s", result.stdout, re.MULTILINE), path


# --------------------------------------------------------------------------- plain output


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LEARNEXIT_", "FORCE_COLOR", "NO_COLOR"))}
    env.update(LEARNEXIT_ACTOR="tester@example", COLUMNS="120")
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory, example_template: Path) -> Path:
    return copy_example(example_template, tmp_path_factory.mktemp("help") / "demo")


def _human_commands() -> list[list[str]]:
    """Read-only commands with rich output (tables, bold, colours), those that exist."""
    have = set(getattr(ROOT_COMMAND, "commands", {}))
    candidates = [
        ["inspect", "acme"],
        ["notice", "acme", "--received", "2026-11-20", "--dry-run"],
        # late (fewer than 30 days before the period end): "LATE" in bold red on a terminal
        ["notice", "acme", "--received", "2026-11-20", "--period-end", "2026-12-10", "--dry-run"],
        ["status"],
        ["status", "--check"],
        ["audit"],
        ["export", "--list-formats"],
        ["purge", "--due", "--dry-run"],
    ]
    return [argv for argv in candidates if argv[0] in have]


def _pty_run(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, bytes]:
    """Run learnexit with stdout on a pseudo-terminal; return (exit code, what it printed)."""
    import pty

    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "learnexit", *argv],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=slave,
        stderr=subprocess.PIPE,
    )
    os.close(slave)
    output = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO once the child closed the terminal
            break
        if not chunk:
            break
        output += chunk
    os.close(master)
    proc.wait(timeout=120)
    return proc.returncode, output


@pytest.mark.parametrize("argv", _human_commands(), ids=lambda a: " ".join(a))
def test_piped_output_is_plain_text(argv: list[str], demo: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "learnexit", *argv], cwd=demo, capture_output=True, timeout=300, env=_env()
    )
    assert result.returncode in (0, 5), result.stderr
    assert result.stdout.strip()
    assert not ANSI.search(result.stdout.decode()), result.stdout[:300]
    assert not ANSI.search(result.stderr.decode()), result.stderr[:300]


def test_terminal_output_uses_styles_but_no_color_disables_them(demo: Path) -> None:
    """On a terminal rich styles the output; NO_COLOR=1 must make it plain text (no-color.org)."""
    if not hasattr(os, "openpty"):
        pytest.skip("no pseudo-terminals on this platform")
    code, styled = _pty_run(["inspect", "acme"], demo, _env(TERM="xterm-256color"))
    assert code == 0
    assert ANSI.search(styled.decode()), "sanity: on a terminal the output is styled"
    offenders = []
    for argv in _human_commands():
        code, plain = _pty_run(argv, demo, _env(TERM="xterm-256color", NO_COLOR="1"))
        assert code in (0, 5), (argv, plain[:300])
        if ANSI.search(plain.decode()):
            offenders.append(f"learnexit {' '.join(argv)}: {plain.decode()[:80]!r}")
    assert not offenders, "NO_COLOR=1 on a terminal still printed ANSI codes:\n" + "\n".join(offenders)


# --------------------------------------------------------------------------- --json


@pytest.mark.parametrize("log_format", [None, "text", "json"])
def test_json_output_is_one_document_even_with_json_logs(demo: Path, log_format: str | None) -> None:
    pre = [] if log_format is None else ["--log-format", log_format]
    argv = [*pre, "inspect", "acme", "--json", "--config", str(demo / "learnexit.toml")]
    result = subprocess.run(
        [sys.executable, "-m", "learnexit", *argv], capture_output=True, text=True, timeout=300, env=_env()
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)  # the entire stdout: exactly one document
    assert data["customer"] == "acme"
    if log_format == "json":
        for line in result.stderr.splitlines():
            assert isinstance(json.loads(line), dict), line


def test_every_json_command_prints_one_document(demo: Path, tmp_path: Path) -> None:
    """All commands that exist, with --json and JSON logs: stdout parses whole, stderr is JSON lines."""
    have = set(getattr(ROOT_COMMAND, "commands", {}))
    env = {"LEARNEXIT_CONFIG": str(demo / "learnexit.toml"), "LEARNEXIT_LOG_FORMAT": "json"}
    argvs = [["inspect", "acme"], *_human_commands()]
    if "notice" in have:
        argvs.append(["notice", "globex", "--received", "2026-11-20", "--dry-run"])
    checked = 0
    for argv in argvs:
        if argv[0] not in have:
            continue
        result = runner.invoke(app, [*argv, "--json"], env=env)
        assert result.exit_code in (0, 5), (argv, result.output)
        json.loads(result.stdout)
        for line in result.stderr.splitlines():
            assert isinstance(json.loads(line), dict), (argv, line)
        checked += 1
    assert checked >= 2


# --------------------------------------------------------------------------- completion


def test_completion_options_exist() -> None:
    names = {opt for p in ROOT_COMMAND.params for opt in p.opts}
    assert {"--install-completion", "--show-completion"} <= names


def _console_script() -> Path:
    script = Path(sys.executable).parent / "learnexit"
    if not script.exists():
        pytest.skip(f"no learnexit console script next to {sys.executable} (pip install -e . first)")
    return script


def test_show_completion_for_bash() -> None:
    """`learnexit --show-completion` typed at a bash prompt prints the bash completion script.

    Typer finds the shell by looking at the parent processes (shellingham), so the command
    runs inside bash, as it would for a person; `; exit` keeps bash from exec'ing it.
    """
    script = _console_script()
    result = subprocess.run(
        ["bash", "--noprofile", "--norc", "-c", f'"{script}" --show-completion; exit $?'],
        capture_output=True,
        text=True,
        timeout=120,
        env=_env(SHELL="/bin/bash"),
    )
    assert result.returncode == 0, result.stderr
    assert "complete -o default -F _learnexit_completion learnexit" in result.stdout, result.stdout
    assert "Traceback" not in result.stderr


def test_completion_completes_commands() -> None:
    """What bash asks the completion script for: `learnexit in<TAB>` offers init and inspect."""
    script = _console_script()
    result = subprocess.run(
        [str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        env=_env(_LEARNEXIT_COMPLETE="complete_bash", COMP_WORDS="learnexit in", COMP_CWORD="1"),
    )
    assert result.returncode == 0, result.stderr
    assert {"init", "inspect"} <= set(result.stdout.split()), result.stdout

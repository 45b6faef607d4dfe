"""The Typer application and what every command shares: options, errors, output.

A command parses its arguments, calls one library function and renders the result.
Library errors carry their exit code; this module is the one place that turns them
into a one-line message on stderr (design §3).  Results go to stdout; with --json,
exactly one JSON document and nothing else.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from typer.core import TyperGroup

try:  # the Click that parses our command line: typer ships its own copy since 0.20
    from typer import _click as click  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - older typer uses the click package
    import click  # type: ignore[no-redef]

from .. import __version__
from ..config import Settings, load_settings, scrub
from ..errors import EXIT_FAILURE, LearnexitError, printable
from ..valuefree import first_line

EXIT_CODES_HELP = (
    "Exit codes: 0 done · 1 operational failure · 2 bad input or config · "
    "3 refused by policy · 4 busy (purge lock) · 5 needs attention (status --check)."
)


def keep_example_lines(text: str | None) -> str | None:
    """Help text whose indented paragraphs (the example commands) keep their lines at any
    terminal width: Click rewraps every paragraph unless it starts with a ``\\b`` line."""
    if not text:
        return text
    out: list[str] = []
    paragraph: list[str] = []
    for line in [*text.splitlines(), ""]:
        if line.strip():
            paragraph.append(line)
            continue
        if paragraph and all(p.startswith((" ", "\t")) for p in paragraph):
            paragraph.insert(0, "\b")  # (unindented: the lines keep their own indentation)
        out += [*paragraph, line]
        paragraph = []
    return "\n".join(out[:-1])


class _OneLineErrors(TyperGroup):
    """Click's usage errors (unknown option, bad value, missing argument) as the one-line
    ``learnexit: error: ...`` every other error gets, exit 2 (design §3), not a usage block.
    Also keeps the commands' example lines whole (``keep_example_lines``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for command in self.commands.values():
            command.help = keep_example_lines(command.help)

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, windows_expand_args, **extra)
        try:
            code = super().main(args, prog_name, complete_var, False, windows_expand_args, **extra)
        except click.exceptions.ClickException as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":
                exc.show()  # `learnexit` alone prints the help
                sys.exit(exc.exit_code)
            hint = ""
            if isinstance(exc, click.exceptions.UsageError) and exc.ctx is not None:
                hint = f" (see `{exc.ctx.command_path} --help`)"
            text = " ".join(exc.format_message().split())
            sys.stderr.write(f"learnexit: error: {scrub(printable(text))}{hint}\n")
            sys.exit(exc.exit_code)
        except typer.Abort:
            sys.stderr.write("learnexit: error: aborted\n")
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    cls=_OneLineErrors,
    name="learnexit",
    help=(
        "Offboarding toolkit for an LMS: record termination notices, export every row "
        "of a customer's data in a verifiable package, confirm the handover, close the "
        "account and purge everything when the window ends — provably.\n\n" + EXIT_CODES_HELP
    ),
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="Config file (default: $LEARNEXIT_CONFIG, else ./learnexit.toml).",
        show_default=False,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout and nothing else there.")]
TracebackOpt = Annotated[
    bool, typer.Option("--traceback", help="On error, show the full Python traceback (for support).")
]


def _version(value: bool) -> None:
    if value:
        from ..exporters import speedups

        print(f"learnexit {__version__}\nC speedups: {speedups.status()}")
        raise typer.Exit()


GLOBAL_OPTIONS: dict[str, Any] = {}  # --config, --json, --traceback given before the command


@app.callback()
def _main(
    ctx: typer.Context,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Show the version, and whether the C speedups are on, and exit.",
            callback=_version,
            is_eager=True,
        ),
    ] = False,
    log_format: Annotated[
        str,
        typer.Option(
            "--log-format",
            envvar="LEARNEXIT_LOG_FORMAT",
            help="Events on stderr as 'text' or 'json' (one object per line, for cron and CI logs).",
        ),
    ] = "text",
    log_level: Annotated[
        str | None,
        typer.Option(
            "--log-level",
            envvar="LEARNEXIT_LOG_LEVEL",
            help="debug, info, warning or error (default: warning on a terminal, info otherwise).",
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="Config file for the command (default: $LEARNEXIT_CONFIG, else ./learnexit.toml).",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="The command prints one JSON document on stdout.")] = False,
    show_traceback: Annotated[
        bool, typer.Option("--traceback", help="On error, show the full Python traceback (for support).")
    ] = False,
) -> None:
    """learnexit."""
    from .. import logs

    # ``learnexit --config X status`` is ``learnexit status --config X`` (the command's own wins)
    GLOBAL_OPTIONS.clear()
    GLOBAL_OPTIONS.update(config=config, as_json=as_json, show_traceback=show_traceback)

    if log_format not in logs.FORMATS:
        sys.stderr.write(f"learnexit: error: --log-format must be text or json, not {log_format!r}\n")
        raise typer.Exit(2)
    if log_level is not None and log_level not in logs.LEVELS:
        sys.stderr.write(f"learnexit: error: --log-level must be one of {', '.join(logs.LEVELS)}\n")
        raise typer.Exit(2)
    logs.configure(log_format, log_level, ctx.invoked_subcommand)


def json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def make_console(*, stderr: bool) -> Console:
    """A console that is plain text when NO_COLOR is set (no-color.org) or TERM=dumb."""
    plain = bool(os.environ.get("NO_COLOR")) or os.environ.get("TERM") == "dumb"
    return Console(
        stderr=stderr,
        highlight=False,
        soft_wrap=True,
        markup=False,
        force_terminal=False if plain else None,
        no_color=plain,
    )


@dataclass
class Ctx:
    """What a command knows about how it was invoked."""

    config: Path | None
    as_json: bool
    show_traceback: bool

    def __post_init__(self) -> None:
        if self.config is None:
            self.config = GLOBAL_OPTIONS.get("config")
        self.as_json = self.as_json or bool(GLOBAL_OPTIONS.get("as_json"))
        self.show_traceback = self.show_traceback or bool(GLOBAL_OPTIONS.get("show_traceback"))

    @property
    def out(self) -> Console:
        return make_console(stderr=False)

    @property
    def err(self) -> Console:
        return make_console(stderr=True)

    def settings(self, *, require_file: bool = True) -> Settings:
        return load_settings(self.config, require_file=require_file)

    def emit(self, data: dict[str, Any], render: Callable[[Console], None]) -> None:
        """Print the result: JSON for scripts, rich text for people."""
        if self.as_json:
            sys.stdout.write(scrub(json.dumps(data, default=json_default, ensure_ascii=False, indent=2)) + "\n")
            sys.stdout.flush()
        else:
            render(self.out)

    def note(self, text: str) -> None:
        """A message for the person at the terminal: stderr, never stdout."""
        self.err.print(scrub(text), markup=False)

    def fail(self, exc: BaseException) -> NoReturn:
        if isinstance(exc, LearnexitError):
            code, message = exc.exit_code, exc.message
        else:
            code = EXIT_FAILURE
            message = printable(f"internal error: {first_line(exc)}")
            if not self.show_traceback:
                message += " (run again with --traceback for details)"
        if self.show_traceback:
            sys.stderr.write(scrub(traceback.format_exc()))
        from .. import logs

        if logs.json_mode():
            # cron/CI logs: the error is one JSON object like every other event
            logs.event("error", level=40, exit_code=code, message=message)
            raise typer.Exit(code)
        sys.stderr.write(f"learnexit: error: {scrub(message)}\n")
        sys.stderr.flush()
        raise typer.Exit(code)


def run(ctx: Ctx, body: Callable[[], int | None]) -> NoReturn:
    """Run a command body; map every error to its message and exit code."""
    try:
        code = body() or 0
    except typer.Exit:
        raise
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # noqa: BLE001 - the one place errors become exit codes
        ctx.fail(exc)
    raise typer.Exit(code)


def is_interactive() -> bool:
    return sys.stdin.isatty() and sys.stderr.isatty() and os.environ.get("CI") != "true"

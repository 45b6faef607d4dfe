"""`export` and `verify`: hand the customer their data, and check a package later."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from ..errors import BadInput, VerificationFailed, printable
from .app import ConfigOpt, Ctx, JsonOpt, TracebackOpt, app, run
from .progress import progress_bars
from .tables import print_table

if TYPE_CHECKING:  # (the library is imported when a command runs: --help stays fast)
    from ..export.run import ExportResult

# Test-only: seconds to pause after each table of an export's read pass, so tests can
# interrupt an export mid-way deterministically.  Never set it in production.
SLOW_EXPORT_ENV = "LEARNEXIT_TEST_SLOW_EXPORT"


def _pause_after_table() -> float:
    """``SLOW_EXPORT_ENV`` in seconds (0: no pause); the one place it is read."""
    text = os.environ.get(SLOW_EXPORT_ENV) or "0"
    try:
        return float(text)
    except ValueError:
        raise BadInput(f"{SLOW_EXPORT_ENV} must be a number of seconds, not {text!r}") from None


def _size(n: int) -> str:
    """Decimal units (kB, MB), as the export summary and index.html write them."""
    from ..documents.i18n import format_bytes

    return format_bytes(n, "en")


class _Bars:
    """A progress bar per step (each format's rows, media files, documents) on stderr, with
    its total and the time left (only used when stderr is a terminal)."""

    def __init__(self, console: Console) -> None:
        self.progress = progress_bars(console, transient=False)
        self.tasks: dict[str, Any] = {}

    def __enter__(self) -> _Bars:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def __call__(self, label: str, done: int, total: int | None) -> None:
        if label not in self.tasks:
            self.tasks[label] = self.progress.add_task(label, total=total)
        self.progress.update(self.tasks[label], completed=done, total=total)


CustomerArg = Annotated[
    str | None, typer.Argument(help="The customer's key (e.g. the organisation slug).", show_default=False)
]
FormatsOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--format",
        "-f",
        help="Formats, comma-separated or repeated (default: [export] formats of the config).",
        metavar="FORMAT[,FORMAT...]",
        show_default=False,
    ),
]
OutOpt = Annotated[Path | None, typer.Option("--out", help="Folder to write the package in (default: [export] out).")]
ZipOpt = Annotated[bool, typer.Option("--zip", help="Deliver one .zip instead of a folder.")]
DialectOpt = Annotated[str | None, typer.Option("--sql-dialect", help="SQL dump dialect: sqlite, postgresql or mysql.")]
LangOpt = Annotated[str | None, typer.Option("--lang", help="Language of index.html and documents: en or sv.")]
LateOpt = Annotated[bool, typer.Option("--late", help="Export after the export deadline (needs --reason; recorded).")]
ReasonOpt = Annotated[str | None, typer.Option("--reason", help="Why the export is late (with --late).")]
MissingMediaOpt = Annotated[
    bool,
    typer.Option("--allow-missing-media", help="Finish even if media files are missing; they are listed as notes."),
]
ListFormatsOpt = Annotated[
    bool, typer.Option("--list-formats", help="List the available formats and exit (no customer needed).")
]
EncryptOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--encrypt-to",
        help="Encrypt for this age recipient (age1… or ssh- key, or a file of them); repeatable; implies --zip.",
        metavar="AGE_RECIPIENT",
        show_default=False,
    ),
]


@app.command("export")
def export_command(
    customer: CustomerArg = None,
    formats: FormatsOpt = None,
    out: OutOpt = None,
    zip_output: ZipOpt = False,
    sql_dialect: DialectOpt = None,
    lang: LangOpt = None,
    late: LateOpt = False,
    reason: ReasonOpt = None,
    allow_missing_media: MissingMediaOpt = False,
    list_formats: ListFormatsOpt = False,
    encrypt_to: EncryptOpt = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
    show_traceback: TracebackOpt = False,
) -> None:
    """Export every row of a customer's data into a verifiable package (BagIt folder or zip).

    Tables are read once, from one consistent snapshot, into every chosen format; the
    package is built under a .partial name and renamed only when complete, and the
    export is recorded in the ledger and the audit log. An earlier export of the customer
    that was killed on this host is recorded as failed and its .partial build removed
    first. With [source] read_url set the data is read from that read replica (the
    customer's row checked against the primary's); the package records where it was read
    and, on a PostgreSQL standby, the replay position.

    Examples:

        learnexit export acme

        learnexit export acme --format csv,xlsx --zip --out /srv/handover

        learnexit export acme --late --reason "customer asked on 2027-03-02, ticket 4411"

        learnexit export acme --encrypt-to handover-recipients.txt --out /srv/handover

        learnexit export --list-formats

    Exit codes: 0 exported · 1 failed (nothing delivered; also when the customer's ledger
    records disagree with the audit) · 2 bad input · 3 export window closed.
    """
    ctx = Ctx(config, as_json, show_traceback)

    def body() -> None:
        from ..export.hooks import ExportHooks
        from ..export.options import available_formats
        from ..export.run import run_export

        if list_formats:
            listing = available_formats()
            ctx.emit({"formats": listing}, lambda console: _render_formats(console, listing))
            return
        if not customer:
            raise BadInput("name a customer: learnexit export CUSTOMER (or --list-formats)")
        if late and not reason:
            raise BadInput("--late needs --reason TEXT: say why the export is late")
        if reason and not late:
            raise BadInput("--reason goes with --late")
        settings = ctx.settings()
        kwargs: dict[str, Any] = {
            "formats": formats or None,
            "out": out,
            "zip_output": zip_output,
            "sql_dialect": sql_dialect,
            "lang": lang,
            "late_reason": reason if late else None,
            "allow_missing_media": allow_missing_media,
            "encrypt_to": tuple(encrypt_to or ()),
            "hooks": ExportHooks(pause_after_table=_pause_after_table()),
        }
        if sys.stderr.isatty():
            with _Bars(ctx.err) as bars:
                result = run_export(settings, customer, progress=bars, **kwargs)
        else:
            result = run_export(settings, customer, **kwargs)
        ctx.emit(result.as_dict(), lambda console: _render_export(console, result))

    run(ctx, body)


def _render_formats(console: Console, listing: list[dict[str, str]]) -> None:
    table = Table(title="Export formats")
    table.add_column("format")
    table.add_column("description")
    for item in listing:
        table.add_row(item["name"], item["description"])
    print_table(console, table)


def _render_export(console: Console, result: ExportResult) -> None:
    from ..documents.notes import note_sentence

    table = Table(title=f"Exported {result.customer} — {result.rows:,} rows")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, rows in result.tables.items():
        table.add_row(printable(name), f"{rows:,}")  # a name with a line break: one row
    print_table(console, table)
    console.print(f"Package: {result.path}")
    console.print(
        f"{result.files} files, {_size(result.bytes)}; formats: {', '.join(result.formats)}; "
        f"manifest sha256 {result.manifest_sha256}"
    )
    if result.read is not None and result.read.reads == "replica":  # (the URL's password masked)
        console.print(f"Read from: {printable(result.read.url)} ({result.read.tag()})")
    for note in result.notes:
        console.print(f"note: {note_sentence(note)}")


@app.command("verify")
def verify_command(
    path: Annotated[Path, typer.Argument(help="A package folder or .zip made by `learnexit export`.")],
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
    show_traceback: TracebackOpt = False,
) -> None:
    """Check an export package: manifests, completeness, checksums and row counts.

    Works on the folder or the .zip, offline, without the config or the source; a zip is
    read in place (never extracted), unsafe entry names are reported, and a zip bomb
    (members that would inflate over 200 times) is refused unread.

    Examples:

        learnexit verify exports/acme-2026-11-29T101500Z

        learnexit verify exports/acme-2026-11-29T101500Z.zip --json

    Exit codes: 0 valid · 1 verification failed (the first differences are listed) · 2 no such path, or encrypted.
    """
    ctx = Ctx(config, as_json, show_traceback)

    def body() -> int:
        from ..package.verify import verify_package

        result = verify_package(path)

        def render(out_console: Console) -> None:
            if result.valid:
                out_console.print(f"valid: {result.path}")
            else:
                out_console.print(f"INVALID: {result.path}")
                for problem in result.problems:
                    out_console.print(f"  {problem}")

        ctx.emit(result.as_dict(), render)
        if not result.valid:
            # the one error line on stderr, with --json too (stdout holds the result)
            first = printable(" ".join(result.problems[0].split())) if result.problems else ""
            ctx.note(f"learnexit: error: verification failed: {len(result.problems)} problem(s); first: {first}")
            return VerificationFailed.exit_code
        return 0

    run(ctx, body)

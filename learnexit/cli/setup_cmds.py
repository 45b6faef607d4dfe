"""`init` and `inspect`: get a configuration and see the data map."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ..errors import BadInput
from .app import ConfigOpt, Ctx, JsonOpt, TracebackOpt, app, run
from .tables import print_table

ExampleOpt = Annotated[
    Path | None,
    typer.Option("--example", help="Write the example LMS (SQLite + media) and its config into DIR.", metavar="DIR"),
]
FromDatabaseOpt = Annotated[
    str | None,
    typer.Option(
        "--from-database",
        help="Draft the config from this database's schema and data (a SQLAlchemy URL).",
        metavar="URL",
    ),
]
CustomerTableOpt = Annotated[
    str | None,
    typer.Option("--customer-table", help="With --from-database: the tenant table (shared tenancy).", metavar="T"),
]
ExactOpt = Annotated[
    bool, typer.Option("--exact", help="With --from-database: count every row instead of sampling big tables.")
]
InitOutOpt = Annotated[
    Path | None,
    typer.Option("--out", help="Where to write the config ('-': print it). Default: --config or ./learnexit.toml."),
]


@app.command("init")
def init_command(
    example: ExampleOpt = None,
    from_database: FromDatabaseOpt = None,
    customer_table: CustomerTableOpt = None,
    exact: ExactOpt = False,
    out: InitOutOpt = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
    show_traceback: TracebackOpt = False,
) -> None:
    """Write a commented starting config, mode 0600 (or, with --example DIR, the example LMS).

    The config names every section and key (see docs/configuration.md); the optional
    ones are commented out.

    With --from-database URL the config is drafted from the database: references the
    schema does not declare are measured in the data and proposed with their evidence,
    system tables as shared, payments as retained (legal basis to FILL IN), secret
    columns as not exported, roles from the names.  Read it, edit it, then `inspect`.

    Examples:

        learnexit init                       # ./learnexit.toml to edit

        learnexit init --example demo        # demo/lms.db, demo/media/, demo/learnexit.toml,
                                             # demo/legacy/ (database tenancy, no foreign keys)

        learnexit init --from-database postgresql://lms@db/site_a --out learnexit.toml

    Exit codes: 0 written · 1 database unreachable · 2 the target exists already or bad input.
    """
    ctx = Ctx(config, as_json, show_traceback)

    def body() -> None:
        if from_database is not None:
            from .draft_cmd import write_draft

            write_draft(ctx, from_database, customer_table, exact, out or ctx.config or Path("learnexit.toml"))
            return
        if customer_table is not None or exact:
            raise BadInput("--customer-table and --exact go with --from-database URL")
        if example is not None:
            _write_example(ctx, example)
            return
        from ..skeleton import write_skeleton

        target = ctx.config or Path("learnexit.toml")
        write_skeleton(target)
        ctx.emit(
            {"config": str(target.resolve())}, lambda out: out.print(f"Wrote {target}; edit [source] and [customer].")
        )

    run(ctx, body)


def _write_example(ctx: Ctx, example: Path) -> None:
    from ..demo import build_example

    if (example / "lms.db").exists() or (example / "learnexit.toml").exists():
        raise BadInput(f"{example} already holds an example; choose an empty folder")
    info = build_example(example)
    data = {
        "path": str(example.resolve()),
        "config": str((example / "learnexit.toml").resolve()),
        "legacy_config": str((example / "legacy" / "learnexit.toml").resolve()),
        "customers": info.customers,
    }

    def render(out: Console) -> None:
        out.print(f"Wrote the example LMS to {example}/ (customers: {', '.join(info.customers)}).")
        out.print(f"Next: cd {example} && learnexit inspect acme")

    ctx.emit(data, render)


@app.command("inspect")
def inspect_command(
    customer: Annotated[str, typer.Argument(help="The customer's key (e.g. the organisation slug).")],
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
    show_traceback: TracebackOpt = False,
) -> None:
    """Show the data map: every table, owned/shared/unclassified, how it is reached, rows.

    Example:

        learnexit inspect acme --json

    Exit codes: 0 done · 1 source unreachable · 2 unknown customer or bad config.
    """
    ctx = Ctx(config, as_json, show_traceback)

    def body() -> None:
        from ..source.inspection import inspect_customer

        settings = ctx.settings()
        report = inspect_customer(settings, customer)

        def render(out: Console) -> None:
            table = Table(title=f"{report.name} ({report.customer}) — {report.source}")
            for col in ("table", "status", "rows", "category", "how it is reached"):
                table.add_column(col, justify="right" if col == "rows" else "left")
            for t in report.tables:
                extra = f" · keep {t.retain}: {t.legal_basis}" if t.retain else ""
                rule = settings.rule(t.table)
                if t.status == "owned" and not rule.export:
                    extra += " · purged, not exported"
                elif t.status == "owned" and rule.omit_columns:
                    extra += f" · not exported: {', '.join(rule.omit_columns)}"
                if report.tenancy == "database" and t.references:
                    extra += " · " + "; ".join(t.references)
                table.add_row(
                    t.table,
                    t.status,
                    "" if t.rows is None else f"{t.rows:,}",
                    t.category or "",
                    (t.via or t.note or "") + extra,
                )
            print_table(out, table)
            owned = [t for t in report.tables if t.status == "owned"]
            out.print(
                f"{len(owned)} owned tables, {sum(t.rows or 0 for t in owned):,} rows; "
                f"{sum(t.status == 'shared' for t in report.tables)} shared; "
                f"{len(report.unclassified)} unclassified."
            )
            for t in report.tables:
                if t.status == "unclassified":
                    out.print(f"unclassified: {t.table}: {t.note}")
            for note in report.notes:
                out.print(f"note: {note}")

        ctx.emit(report.as_dict(), render)

    run(ctx, body)

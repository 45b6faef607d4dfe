"""`init --from-database`: draft a config from the source database and write it."""

from __future__ import annotations

import sys
from pathlib import Path

from rich.console import Console

from ..errors import BadInput
from .app import Ctx


def write_draft(ctx: Ctx, url: str, customer_table: str | None, exact: bool, target: Path) -> None:
    from ..draft import draft_config

    to_stdout = str(target) == "-"
    if not to_stdout and target.exists():
        raise BadInput(f"{target} exists already; not overwriting it (choose another --out)")
    draft = draft_config(url, customer_table=customer_table, exact=exact)
    p = draft.proposal
    if to_stdout and not ctx.as_json:
        sys.stdout.write(draft.text)
        return
    if not to_stdout:
        target.write_text(draft.text, encoding="utf-8")
    data = {
        "config": None if to_stdout else str(target.resolve()),
        "tables": draft.tables,
        "tenancy": p.tenancy,
        "customer_table": p.customer_table,
        "relations": [
            {"from": f"{r.from_table}.{r.from_column}", "to": f"{r.to_table}.{r.to_column}", "evidence": r.comment}
            | ({"sentinels": list(r.sentinels)} if r.sentinels else {})
            for r in p.relations
        ],
        "rejected": p.rejected,
        "shared": sorted(n for n, t in p.tables.items() if t.settings.get("shared")),
        "retained": sorted(n for n, t in p.tables.items() if t.settings.get("retain")),
        "omitted_columns": {n: t.settings["omit_columns"] for n, t in p.tables.items() if "omit_columns" in t.settings},
        "roles": p.roles,
        "seconds": round(p.seconds, 2),
    }
    if to_stdout:
        data["text"] = draft.text

    def render(out: Console) -> None:
        out.print(
            f"Wrote {target}: {draft.tables} tables, {len(p.relations)} references found in the data "
            f"({len(p.rejected)} name matches rejected), tenancy {p.tenancy}, {len(p.roles)} roles."
        )
        if p.rejected:
            out.print("Rejected name matches are listed at the end of the relations, with their evidence.")
        out.print(f"Next: read {target}, fill in every FILL IN, then `learnexit inspect CUSTOMER --config {target}`.")

    ctx.emit(data, render)

"""`init --from-database`: draft a config from the source database and write it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from ..errors import BadInput
from .app import Ctx

if TYPE_CHECKING:  # the drafter (SQLAlchemy and all) loads only when a draft is made
    from ..draft.propose import RelationProposal


def _relation(r: RelationProposal) -> dict[str, Any]:
    """One relation for --json: ``from``/``to`` a ``table.column``, or lists of them."""
    froms, tos = r.ends()
    out: dict[str, Any] = {
        "from": froms if r.from_columns else froms[0],
        "to": tos if r.to_columns else tos[0],
        "evidence": r.comment,
    }
    return out | ({"sentinels": list(r.sentinels)} if r.sentinels else {})


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
        "relations": [_relation(r) for r in p.relations],
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

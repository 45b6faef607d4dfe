"""``inspect``: the data map for one customer — every table, its classification, how it
is reached and its rows, with the notes an operator must read before an export or purge."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ..config import Settings, mask_url
from ..quiet_loss import quiet_loss_notes
from .customer import PinnedRow
from .ownership import ContestedTable
from .reader import Source, cycle_can_break, unbreakable_cycle_note


@dataclass
class TableReport:
    table: str
    status: str
    rows: int | None
    via: str
    category: str | None
    retain: str | None
    legal_basis: str | None
    note: str | None
    references: list[str] = field(default_factory=list)
    contested: int = 0


@dataclass
class InspectReport:
    customer: str
    name: str
    tenancy: str
    source: str
    tables: list[TableReport]
    notes: list[str]
    sub_organisations: list[str] = field(default_factory=list)
    contested: list[ContestedTable] = field(default_factory=list)

    @property
    def unclassified(self) -> list[str]:
        return [t.table for t in self.tables if t.status == "unclassified"]

    def as_dict(self) -> dict[str, Any]:
        """The report for ``--json`` (with ``unclassified``, listed after the tables)."""
        return {
            "customer": self.customer,
            "name": self.name,
            "tenancy": self.tenancy,
            "source": self.source,
            "tables": [asdict(t) for t in self.tables],
            "unclassified": self.unclassified,
            "notes": self.notes,
            "sub_organisations": self.sub_organisations,
            "contested": [asdict(c) for c in self.contested],
        }


def _table_reports(src: Source, settings: Settings, conn: Any, contested: list[ContestedTable]) -> list[TableReport]:
    dm = src.datamap
    by_table = {c.table: c.rows for c in contested}
    reports = []
    for name in dm.order:
        info = dm.info[name]
        rule = settings.rule(name)
        rows = src.count(conn, name) if info.owned else None
        refs = [
            f"{','.join(e.child_cols)} → {e.parent}.{','.join(e.parent_cols)}"
            + ("" if e.declared else " ([[relations]])")
            for e in dm.edges
            if e.child == name
        ]
        reports.append(
            TableReport(
                name,
                info.status,
                rows,
                info.via,
                rule.category,
                rule.retain,
                rule.legal_basis,
                info.note,
                refs,
                by_table.get(name, 0),
            )
        )
    return reports


def inspect_customer(settings: Settings, customer: str, *, pinned: PinnedRow | None = None) -> InspectReport:
    """The data map for one customer: every table, its classification, chain and rows,
    the sub-organisations, the contested rows and the cycles a purge could not break."""
    with Source(settings, customer, pinned=pinned) as src:
        dm = src.datamap
        with src.snapshot() as conn:
            contested = src.contested_report(conn)
            subs = src.sub_organisations(conn)
            reports = _table_reports(src, settings, conn, contested)
        notes = list(dm.notes) + quiet_loss_notes(dm)
        if subs:
            notes.append(f"sub-organisations of {customer} (theirs is the customer's): {', '.join(subs)}")
        notes += [c.note() for c in contested]
        notes += [unbreakable_cycle_note(src, e) for e in dm.back_edges() if not cycle_can_break(src, e)]
        return InspectReport(
            customer, src.customer_name(), src.tenancy, mask_url(src.url), reports, notes, subs, contested
        )

"""What a purge plans and what it did: the values the CLI prints (``--json``), the ledger
stores and the certificate states.  Data only: nothing here reads or writes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from ..contract import DEFAULT_TIMEZONE

__all__ = ["DueReport", "Progress", "PurgePlan", "PurgeResult", "TablePlan", "export_summary"]

Progress = Callable[[str, int, int | None], None]
"""The progress callback: (table or step, rows just done, rows planned or None)."""


@dataclass
class TablePlan:
    """One owned table in the plan, in deletion order."""

    table: str
    how: str
    delete: int
    retained: int = 0
    kept_shared: int = 0
    minimise: tuple[str, ...] = ()
    until: date | None = None
    legal_basis: str | None = None
    reason: str | None = None
    strategy: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "how": self.how,
            "delete": self.delete,
            "retained": self.retained,
            "kept_shared": self.kept_shared,
            "minimise": list(self.minimise),
            "until": self.until,
            "legal_basis": self.legal_basis,
            "reason": self.reason,
            "strategy": self.strategy,
        }


@dataclass
class PurgePlan:
    """What a purge of one customer would do now, and why it may not."""

    customer: str
    name: str
    kind: str  # full | retention | none (nothing left to do)
    tenancy: str
    now: datetime
    termination_date: date | None = None
    purge_due_at: datetime | None = None
    forced_reason: str | None = None
    tables: list[TablePlan] = field(default_factory=list)
    media_files: int = 0
    media_kept_shared: int = 0
    media_retained: int = 0
    exports: list[dict[str, Any]] = field(default_factory=list)
    closure_pending: list[str] = field(default_factory=list)
    unlink: list[str] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    resume_of: int | None = None
    last_purge: dict[str, Any] | None = None
    backup_note: str | None = None
    timezone: str = DEFAULT_TIMEZONE
    contested: dict[str, int] = field(default_factory=dict)  # rows that stay: owners disagree

    @property
    def deleted(self) -> dict[str, int]:
        return {t.table: t.delete for t in self.tables}

    @property
    def retention(self) -> dict[str, dict[str, Any]]:
        return {
            t.table: {
                "rows": t.retained,
                "until": t.until.isoformat() if t.until else None,
                "legal_basis": t.legal_basis,
                "reason": t.reason,
                "minimised": list(t.minimise),
            }
            for t in self.tables
            if t.retained
        }

    @property
    def retained(self) -> dict[str, int]:
        return {t.table: t.retained for t in self.tables if t.retained}

    @property
    def kept_shared(self) -> dict[str, int]:
        return {t.table: t.kept_shared for t in self.tables if t.kept_shared}

    def as_dict(self) -> dict[str, Any]:
        """The ``purge --json`` entry of a dry run (design §3 keys first)."""
        return {
            "customer": self.customer,
            "dry_run": True,
            "deleted": self.deleted,
            "retained": self.retained,
            "kept_shared": self.kept_shared,
            "verified": None,
            "certificate": None,
            "name": self.name,
            "kind": self.kind,
            "status": "refused" if self.refusals else ("nothing" if self.kind == "none" else "planned"),
            "tenancy": self.tenancy,
            "termination_date": self.termination_date,
            "purge_due_at": self.purge_due_at,
            "forced_reason": self.forced_reason,
            "retention": self.retention,
            "tables": [t.as_dict() for t in self.tables],
            "media": {
                "delete": self.media_files,
                "kept_shared": self.media_kept_shared,
                "retained": self.media_retained,
            },
            "exports": [export_summary(e) for e in self.exports],
            "closure": self.closure_pending,
            "unlink": self.unlink,
            "contested": self.contested,
            "refusals": self.refusals,
            "notes": self.notes,
            "resume_of": self.resume_of,
            "backup_note": self.backup_note,
        }


@dataclass
class PurgeResult:
    """What a purge did (or why it did nothing)."""

    customer: str
    status: str  # done | failed | refused | nothing
    kind: str | None = None
    purge_id: int | None = None
    name: str | None = None
    deleted: dict[str, int] = field(default_factory=dict)
    retention: dict[str, dict[str, Any]] = field(default_factory=dict)
    kept_shared: dict[str, int] = field(default_factory=dict)
    media: dict[str, int] = field(default_factory=dict)
    exports: list[dict[str, Any]] = field(default_factory=list)
    verified: bool | None = None
    verification: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    certificate: str | None = None
    audit_head: str | None = None
    forced_reason: str | None = None
    error: str | None = None
    exit_code: int = 0
    resumed: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def retained(self) -> dict[str, int]:
        return {t: int(v.get("rows") or 0) for t, v in self.retention.items() if v.get("rows")}

    @property
    def ok(self) -> bool:
        return self.status in ("done", "nothing")

    def as_dict(self) -> dict[str, Any]:
        return {
            "customer": self.customer,
            "dry_run": False,
            "deleted": self.deleted,
            "retained": self.retained,
            "kept_shared": self.kept_shared,
            "verified": self.verified,
            "certificate": self.certificate,
            "status": self.status,
            "kind": self.kind,
            "purge_id": self.purge_id,
            "name": self.name,
            "retention": self.retention,
            "media": self.media,
            "exports": self.exports,
            "verification": self.verification,
            "problems": self.problems,
            "audit_head": self.audit_head,
            "forced_reason": self.forced_reason,
            "resumed": self.resumed,
            "error": self.error,
            "notes": self.notes,
        }


@dataclass
class DueReport:
    """What ``purge --due`` did: closures, purges, and customers left alone."""

    now: datetime
    closures: list[dict[str, Any]] = field(default_factory=list)
    results: list[PurgeResult] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    interrupted_exports: list[dict[str, Any]] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        codes = [r.exit_code for r in self.results if not r.ok]
        codes += [1 for c in self.closures if c.get("error")]
        if not codes:
            return 0
        return 1 if 1 in codes else max(codes)

    def as_dict(self) -> dict[str, Any]:
        return {
            "now": self.now,
            "customers": [r.as_dict() for r in self.results],
            "closures": self.closures,
            "skipped": self.skipped,
            "interrupted_exports": self.interrupted_exports,
        }


def export_summary(row: dict[str, Any]) -> dict[str, Any]:
    """An export as the plan and the certificate list it (its package by name only)."""
    return {
        "id": row.get("id"),
        "status": row.get("status"),
        "finished_at": row.get("finished_at"),
        "manifest_sha256": row.get("manifest_sha256"),
        "files": row.get("files"),
        "bytes": row.get("bytes"),
        "package": Path(str(row["path"])).name if row.get("path") else None,
    }

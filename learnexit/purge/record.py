"""The ledger's ``purges`` row of one purge and its audit entries, from start to end.

Started (``purge.started``, or ``purge.reapply_started``; with ``purge.forced`` when
forced) or resumed (``purge.resumed``); then ``purge.failed``, or ``purge.verified``
and ``purge.done`` (``purge.reapplied``) with the certificate's SHA-256.  Counts, keys
and hashes only: once the purge is done, media paths are replaced by their SHA-256.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..config import scrub
from ..ledger.consistency import digest as text_sha256
from ..ledger.purge_records import (
    add_purge,
    add_purge_keys,
    mark_purge_done,
    mark_purge_failed,
    mark_purge_running,
    mark_purge_unverified,
    purge_keys_like,
    purge_row,
    purge_started_at,
    set_purge_key,
)
from ..ledger.store import Ledger, aware, naive_utc
from ..logs import event
from .journal import MEDIA, RETAINED
from .keys import dumps, json_or
from .results import PurgePlan, export_summary

__all__ = [
    "Counts",
    "Started",
    "record_done",
    "record_failure",
    "record_unverified",
    "record_verified",
    "retained_entries",
    "resume_purge",
    "start_purge",
    "started_at",
]

# Audit events of a purge kind that are not purge.started / purge.done
_START_EVENTS = {"reapply": "purge.reapply_started"}
_DONE_EVENTS = {"reapply": "purge.reapplied"}


@dataclass
class Started:
    """A purge row ready to run: its id, the rows it found, the plan as stored."""

    purge_id: int
    before: dict[str, int]
    stored_plan: dict[str, Any]
    expire_all: bool


@dataclass
class Counts:
    """What a finished run found, as the ``purges`` row stores it."""

    deleted: dict[str, int]
    retention: dict[str, dict[str, Any]]
    kept: dict[str, int]
    verification: dict[str, Any]


def resume_purge(ledger: Ledger, plan: PurgePlan) -> Started:
    """Mark the unfinished purge ``plan`` resumes running again (``purge.resumed``)."""
    assert plan.resume_of is not None
    purge_id = plan.resume_of
    with ledger.transaction() as conn:
        row = purge_row(conn, purge_id)
        stored = json_or(row["plan"], {}) or {}
        mark_purge_running(conn, purge_id)
        ledger.append_audit(
            conn,
            "purge",
            "purge.resumed",
            plan.customer,
            {"purge_id": purge_id, "kind": row["kind"], "was": row["status"]},
        )
    before = {k: int(v) for k, v in (stored.get("before") or {}).items()}
    event("purge_resumed", customer=plan.customer, purge_id=purge_id)
    return Started(purge_id, before, stored, bool(stored.get("expire_all")))


def start_purge(ledger: Ledger, plan: PurgePlan, now: datetime, addendum: dict[str, Any]) -> Started:
    """Record a new purge of ``plan`` (``purge.started``); ``addendum``: the purge a
    reapply purge adds to (``history.addendum_facts``), else empty."""
    # reapply: deleted data that came back (a restored backup), added to the case's first
    # purge; once a retention purge is done nothing of the case is retained any more
    expire_all = plan.kind == "retention" and plan.forced_reason is not None
    expire_all = expire_all or bool(addendum.get("retention_done"))
    before = {t.table: t.delete + t.retained + t.kept_shared for t in plan.tables}
    stored = {
        "name": plan.name,
        "tenancy": plan.tenancy,
        "termination_date": plan.termination_date,
        "before": before,
        "deleted": plan.deleted,
        "retained": plan.retention,
        "kept_shared": plan.kept_shared,
        "media": {"delete": plan.media_files, "kept_shared": plan.media_kept_shared},
        "exports": [export_summary(e) for e in plan.exports],
        "closure": plan.closure_pending,
        "expire_all": expire_all,
    }
    addendum_to = addendum.get("purge_id")
    with ledger.transaction() as conn:
        purge_id = add_purge(
            conn,
            customer=plan.customer,
            identity_id=ledger.case_id(conn, plan.customer),
            kind=plan.kind,
            started_at=naive_utc(now),
            plan=dumps(stored),
            forced_reason=plan.forced_reason,
            recorded_by=ledger.actor,
        )
        details = {
            "purge_id": purge_id,
            "kind": plan.kind,
            "termination_date": plan.termination_date,
            "rows": sum(before.values()),
            "tables": len(plan.tables),
            "forced": plan.forced_reason is not None,
            "plan_sha256": text_sha256(dumps(stored)),
        }
        if addendum_to is not None:
            details["addendum_to"] = addendum_to
        started = _START_EVENTS.get(plan.kind, "purge.started")
        ledger.append_audit(conn, "purge", started, plan.customer, details)
        if plan.forced_reason is not None:
            ledger.append_audit(
                conn, "purge", "purge.forced", plan.customer,
                {"purge_id": purge_id, "purge_due_at": plan.purge_due_at},
            )  # fmt: skip
    event("purge_started", customer=plan.customer, purge_id=purge_id, kind=plan.kind)
    return Started(purge_id, before, json.loads(dumps(stored)), expire_all)


def record_failure(ledger: Ledger, purge_id: int, customer: str, text: str, finished: datetime) -> None:
    """The purge stopped with an error (``text``, scrubbed): ``failed``, ``purge.failed``."""
    with ledger.transaction() as conn:
        mark_purge_failed(conn, purge_id, error=text, finished_at=finished)
        ledger.append_audit(conn, "purge", "purge.failed", customer, {"purge_id": purge_id, "error": text[:300]})


def record_unverified(
    ledger: Ledger,
    purge_id: int,
    customer: str,
    finished: datetime,
    counts: Counts,
    error: str,
    summary: dict[str, Any],
) -> None:
    """Verification found something left: ``failed`` with the counts, ``purge.failed``."""
    with ledger.transaction() as conn:
        mark_purge_unverified(
            conn,
            purge_id,
            finished_at=finished,
            deleted=dumps(counts.deleted),
            retained=dumps(counts.retention),
            kept_shared=dumps(counts.kept),
            verification=dumps(counts.verification),
            error=scrub(error)[:2000],
        )
        ledger.append_audit(conn, "purge", "purge.failed", customer, summary)


def record_verified(ledger: Ledger, customer: str, summary: dict[str, Any]) -> str:
    """``purge.verified``; the audit chain's head hash (printed on the certificate)."""
    with ledger.transaction() as conn:
        return ledger.append_audit(conn, "purge", "purge.verified", customer, summary)


def record_done(
    ledger: Ledger,
    plan: PurgePlan,
    purge_id: int,
    counts: Counts,
    retained_rows: list[dict[str, Any]],
    certificate: tuple[str, str, datetime],
    audit_head: str,
    addendum: dict[str, Any] | None,
) -> None:
    """``done``: media paths hashed, retained people's keys kept for the retention purge,
    ``purge.done`` (``purge.reapplied``) with the certificate's (path, sha256, finished)."""
    path, digest, finished = certificate
    customer = plan.customer
    with ledger.transaction() as conn:
        # No file names stay in the ledger once the files are gone: keep their hashes.
        for rid, _, text in purge_keys_like(conn, purge_id, MEDIA):
            path_text = json.loads(text)[0]
            if not str(path_text).startswith("sha256:"):
                hashed = "sha256:" + hashlib.sha256(str(path_text).encode("utf-8")).hexdigest()
                set_purge_key(conn, rid, json.dumps([hashed, {}]))
        if retained_rows:
            add_purge_keys(conn, retained_rows)
        mark_purge_done(
            conn,
            purge_id,
            finished_at=finished,
            deleted=dumps(counts.deleted),
            retained=dumps(counts.retention),
            kept_shared=dumps(counts.kept),
            verification=dumps(counts.verification),
            certificate=path,
        )
        done = {"purge_id": purge_id, "certificate_sha256": digest, "audit_head": audit_head,
                "retained_sha256": text_sha256(dumps(counts.retention)), "finished_at": finished}  # fmt: skip
        if addendum is not None:
            done["addendum_to"] = addendum.get("purge_id")
        finished_event = _DONE_EVENTS.get(plan.kind, "purge.done")
        ledger.append_audit(conn, "purge", finished_event, customer, done)
        if plan.kind == "full":
            # The customer's row is gone: a row that later gets the same key is a new
            # customer, with a case of its own (the retention purge still runs for this one).
            ledger.finish_case(conn, ledger.case_id(conn, customer))


def retained_entries(
    purge_id: int, retention: dict[str, Any], via: set[str], keys: dict[str, list[str]]
) -> list[dict[str, Any]]:
    """``retained:<table>`` entries: the people retention keeps, for the retention purge."""
    rows = []
    for t in retention:
        if t in via:
            for key in keys.get(t, []):
                rows.append({"purge_id": purge_id, "table_name": RETAINED + t, "key": key})
    return rows


def started_at(ledger: Ledger, purge_id: int) -> datetime | None:
    """When the purge started (aware UTC)."""
    return aware(purge_started_at(ledger, purge_id))

"""Verify, before the certificate: a fresh discovery re-counts everything.

Zero rows of the customer outside retention and outside what others still need, no
personal data in the rows kept, zero media files marked deleted still there, no
export package left.  Anything left marks the purge ``failed`` (exit 1).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..config import Settings
from ..source.keys import chunks, key_cols, key_in, tables_with_rows
from .conditions import count_rows, db_error, flag_counts, not_true
from .exports import exports_left
from .journal import MEDIA_STATES, Journal
from .keys import CHUNK, decode_keys, dumps, key_json, keys_from_json
from .media import MediaStore
from .scope import Scope
from .source import PurgeSource, open_source

__all__ = ["Verification", "verify"]


@dataclass
class Verification:
    """What verification found (``record``: as the ledger and ``--json`` keep it)."""

    record: dict[str, Any]
    problems: list[str]
    retention: dict[str, dict[str, Any]]
    kept: dict[str, int]
    media: dict[str, int]
    order: list[str] = field(default_factory=list)  # the owned tables, children first
    via_tables: set[str] = field(default_factory=set)
    retained_keys: dict[str, list[str]] = field(default_factory=dict)  # people retention keeps


def verify(
    settings: Settings,
    journal: Journal,
    termination: date | None,
    now: datetime,
    *,
    expire_all: bool,
    before: dict[str, int],
) -> Verification:
    """Re-discover and re-count: zero owned rows outside retention, zero media files
    (the scope as the run decided it: ``termination``, ``now``, ``expire_all``)."""
    found = Verification({}, [], {}, {}, {})
    tables: dict[str, dict[str, int]] = {}
    with open_source(settings, journal.ledger, journal.customer, row_may_be_gone=True) as src:
        scope = Scope(settings, src, termination, now, expire_all=expire_all)
        found.via_tables = set(scope.via)
        found.order = list(scope.children_first)
        new = src.datamap.unclassified()
        if new:
            found.problems.append(f"unclassified tables appeared during the purge: {', '.join(new)}")
        try:
            with src.snapshot() as conn:
                scope.settle(conn)
                holding = tables_with_rows(conn, [src.table(t) for t in scope.children_first])
                for t in scope.children_first:
                    entry = {"before": before.get(t, 0), "after": 0, "retained": 0, "kept_shared": 0}
                    if t not in holding:
                        pass  # an empty table: nothing left, retained or kept
                    elif t in scope.via:
                        _count_via(conn, src, scope, t, entry, journal.candidates.get(t, set()), found)
                    else:
                        _count_chain(conn, src, scope, t, entry, found.problems)
                    _sum_up(scope, t, entry, found)
                    tables[t] = entry
        except sa.exc.SQLAlchemyError as exc:
            raise db_error("verification could not read the source", exc) from None
    if settings.media is not None:
        found.media = _media_left(settings, journal, found.problems)
    found.problems += exports_left(journal.ledger, journal.customer)
    record = {"tables": tables, "media": found.media, "problems": found.problems, "checked_at": now}
    found.record = json.loads(dumps(record))
    return found


def _count_via(
    conn: Connection,
    src: PurgeSource,
    scope: Scope,
    t: str,
    entry: dict[str, int],
    candidates: set[str],
    found: Verification,
) -> None:
    """An owned_via table: the customer's rows and the purge's candidates, counted."""
    table = src.table(t)
    keep = scope.ret(t)
    pk = key_cols(table)
    other = scope.other_ref(t)
    # after: pred, not other, not keep; kept_shared: pred and other;
    # retained: pred, not other, keep
    flags = flag_counts(conn, table, [src.predicate(t)], other, keep)
    entry["after"] = sum(n for (o, k), n in flags.items() if not o and not k)
    retained_keys: list[str] = []
    flag_cols = [sa.case((c, 1), else_=0) for c in (other, keep) if c is not None]
    for chunk in chunks(decode_keys(candidates), CHUNK):
        # candidates outside the customer's data now: kept for others
        # (other), retained (keep), or left over — one statement
        inside = [key_in(pk, chunk), not_true(src.predicate(t))]
        stmt = sa.select(*pk, *flag_cols).where(*inside).order_by(*pk)
        for r in conn.execute(stmt):
            o, k = r[len(pk)], (r[len(pk) + 1] if keep is not None else 0)
            if o:
                entry["kept_shared"] += 1
            elif k:
                retained_keys.append(key_json(tuple(r[: len(pk)])))
            else:
                entry["after"] += 1
    entry["kept_shared"] += sum(n for (o, _k), n in flags.items() if o)
    entry["retained"] = len(retained_keys)
    entry["retained"] += sum(n for (o, k), n in flags.items() if not o and k)
    found.retained_keys[t] = retained_keys
    if entry["retained"]:
        values, dirty = scope.personal(t)
        if dirty is not None:
            unblanked = 0
            for chunk in chunks(keys_from_json(retained_keys), CHUNK):
                unblanked += count_rows(conn, table, key_in(pk, chunk), dirty)
            if unblanked:
                found.problems.append(f"{t}: {unblanked} retained rows still hold personal data")


def _count_chain(
    conn: Connection, src: PurgeSource, scope: Scope, t: str, entry: dict[str, int], problems: list[str]
) -> None:
    """A table the customer owns directly or through a chain: rows left, retained, kept."""
    table = src.table(t)
    keep = scope.ret(t)
    entry["after"] = count_rows(conn, table, scope.doomed(t))
    entry["retained"] = count_rows(conn, table, keep) if keep is not None else 0
    shared = scope.shared_only(t)
    entry["kept_shared"] = count_rows(conn, table, shared) if shared is not None else 0
    kept_cond = scope.minimise_cond(t)
    if kept_cond is not None and (entry["retained"] or entry["kept_shared"]):
        _values, dirty = scope.personal(t)
        if dirty is not None:
            unblanked = count_rows(conn, table, kept_cond, dirty)
            if unblanked:
                problems.append(f"{t}: {unblanked} kept rows still hold personal data")


def _sum_up(scope: Scope, t: str, entry: dict[str, int], found: Verification) -> None:
    """Rows left are problems; retained and kept rows go into the result."""
    if entry["after"]:
        found.problems.append(f"{t}: {entry['after']} rows of the customer are still there")
    if entry["retained"]:
        until, basis, reason = scope.retention_info(t)
        found.retention[t] = {
            "rows": entry["retained"],
            "until": until.isoformat() if until else None,
            "legal_basis": basis,
            "reason": reason,
            "minimised": list(scope.personal(t)[0]) if reason else [],
        }
    if entry["kept_shared"]:
        found.kept[t] = entry["kept_shared"]


def _media_left(settings: Settings, journal: Journal, problems: list[str]) -> dict[str, int]:
    """The media files by state; files marked deleted that exist, or left unprocessed,
    are problems."""
    assert settings.media is not None
    media: dict[str, int] = {}
    rows = journal.media_rows(MEDIA_STATES)
    for _rid, state, _path, _values in rows:
        media[state] = media.get(state, 0) + 1
    store = MediaStore(settings.media) if rows else None
    still = sum(1 for _r, state, path, _v in rows if state == "deleted" and store and store.exists(path))
    if still:
        problems.append(f"{still} media files marked deleted still exist")
    for state in ("file", "deleting"):
        if media.get(state):
            problems.append(f"{media[state]} media files were not processed")
    if media.get("unsafe"):
        problems.append(
            f"{media['unsafe']} media files are refused by the media path rules (named outside the "
            "media root, or not a regular file) and were not deleted"
        )
    return {
        "deleted": media.get("deleted", 0),
        "kept_shared": media.get("kept_shared", 0),
        "retained": media.get("retained", 0),
        "missing": media.get("missing", 0),
        "unsafe": media.get("unsafe", 0),
        "left": still,
    }

"""The deletion engine: plan → execute → verify → certify (design §1 and §5).

This is the most dangerous code in learnexit.  The rules it keeps:

* **Plan first, and the plan is honest.**  :func:`plan_purge` only reads.  Per owned
  table, children first, it counts the rows that go, the rows retained under a legal
  basis (and the parent rows those reference, which are kept minimised), and, for
  ``owned_via`` tables (people), the rows kept because someone outside the customer's
  data still references them.  It lists media files and export packages, and every
  refusal: unclassified tables, an active hold, not yet due, no notice.
* **Live predicates, bounded batches, one transaction per batch.**  A batch selects at
  most ``[purge] batch_size`` keys with the *current* ownership predicate (never a stale
  list), deletes them by key (MySQL forbids a DELETE whose subquery reads the same
  table), and commits.  Rows written for the customer while the purge runs are found by
  the next select, and a final sweep pass re-checks every table.
* **The ledger always knows more than the source.**  Before a batch is deleted its keys
  are written to the ledger as *pending* (``purge_keys``), with the ``owned_via`` keys its
  rows reference and the media files they name; after the source commits, progress is
  recorded and the pending entry dropped — lazily, in the ledger transaction of the next
  batch's pending entry (or the table's end), so a batch costs one ledger commit.  A purge
  killed anywhere resumes (the purge row stays ``running``), reconciles pending batches
  against the source, and ends in the same state with exact counts.
* **People go only when nobody else needs them.**  An ``owned_via`` row (a user) is
  deleted only when no row anywhere still references it; a person who also belongs to
  another customer is kept untouched and reported as ``kept_shared``.  Likewise a row of
  the customer that data outside it still references (a ``shared = true`` key store
  pointing at the organisation) stays, with its personal columns blanked, and the rows
  it references stay with it; it is reported as ``kept_shared`` too.
* **Order.**  Children before parents; a self-reference deepest rows first (ownership
  that flows down a tree is never cut), a cycle in the data by clearing the nullable
  link inside one transaction; a declared reference that closes a cycle between tables
  is cleared (nullable, not an ownership edge) before the deletion starts, or refused.
  PostgreSQL's JIT is switched off for the purge's connections (it cost seconds per
  statement on these nested ownership conditions).
* **Retention.**  Rows of a ``retain`` table stay until ``retention_until(E, retain)``;
  the rows they reference stay too, with the table's ``personal_columns`` blanked.  A
  later purge of kind ``retention`` removes them when their time has come.
* **All copies.**  Media files go after their rows (never a file another row still
  names); export packages learnexit wrote are overwritten and removed; backups outside
  the tool's reach are named on the certificate with ``[purge] backup_note``.
* **Verify, then certify.**  A fresh discovery re-counts everything; anything left marks
  the purge ``failed`` (exit 1).  Otherwise a PDF certificate without personal data
  states what was deleted, what is kept under which law until when, and the audit
  chain's head hash.

The ledger keeps counts, keys (ids) and hashes, never personal data: media paths are
replaced by their SHA-256 once the purge is done.  Library code never prints; it reports
through :func:`learnexit.logs.event` and an optional ``progress`` callback.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import re
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from . import contract
from .config import LANGS, MediaSettings, Settings, mask_url, scrub
from .errors import (
    BadInput,
    ConfigError,
    LearnexitError,
    OperationalError,
    Refused,
    UnknownCustomer,
    VerificationFailed,
)
from .ledger import schema as L
from .ledger.consistency import all_problems, refusal, require_consistent
from .ledger.consistency import digest as text_sha256
from .ledger.records import known_customers
from .ledger.store import Ledger, aware, holder_is_dead, naive_utc, utcnow
from .logs import event
from .media_paths import FileId, MediaProblem, media_columns
from .offboarding import clock
from .offboarding.cases import require_customer
from .offboarding.closure import due_closures, run_closure
from .offboarding.facts import active_hold, customer_facts
from .package import destroy_path, looks_like_package, package_paths
from .purge_media import Matcher, MediaStore, media_path
from .source import (
    Edge,
    PinnedRow,
    Source,
    check_customer_key,
    cycle_can_break,
    describe_db_error,
    make_engine,
    unbreakable_cycle_note,
)
from .valuefree import first_line

__all__ = [
    "KILL_AT_ENV",
    "KILL_ENV",
    "DueReport",
    "PurgePlan",
    "PurgeResult",
    "TablePlan",
    "due_work",
    "execute_purge",
    "plan_due",
    "plan_purge",
    "purge_due",
]

# Audit events of a purge kind that are not purge.started / purge.done
_START_EVENTS = {"reapply": "purge.reapply_started"}
_DONE_EVENTS = {"reapply": "purge.reapplied"}

# Test-only fault injection: SIGKILL this process at the N-th batch boundary.
KILL_ENV = "LEARNEXIT_TEST_KILL_AFTER_BATCHES"
KILL_AT_ENV = "LEARNEXIT_TEST_KILL_AT"  # batch (default) | delete | pending

MAX_PASSES = 3  # the first pass deletes; the next ones sweep rows written meanwhile
_CHUNK = 500  # keys per DELETE/UPDATE statement (bind-parameter limits)
_WIDE_CHUNK = 2000  # keys per plain DELETE (SQLite since 3.32, PostgreSQL and MySQL take far more)
_SCAN_ROWS = 2000  # media rows streamed per fetch while checking which files stay
_KEY_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")

# purge_keys.table_name prefixes (the bare table name holds owned_via candidates)
PENDING = "pending:"
RETAINED = "retained:"
MEDIA = "media:"
MEDIA_STATES = ("file", "deleting", "deleted", "missing", "kept_shared", "retained", "unsafe")

Progress = Callable[[str, int, int | None], None]


# --------------------------------------------------------------------------- results


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
    timezone: str = "Europe/Stockholm"
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
            "exports": [_export_summary(e) for e in self.exports],
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


def _export_summary(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row.get("id"),
        "status": row.get("status"),
        "finished_at": row.get("finished_at"),
        "manifest_sha256": row.get("manifest_sha256"),
        "files": row.get("files"),
        "bytes": row.get("bytes"),
        "package": Path(str(row["path"])).name if row.get("path") else None,
    }


# --------------------------------------------------------------------------- small helpers


def _aware_now(settings: Settings, now: datetime | None) -> datetime:
    if now is None:
        return clock.now(settings.contract.timezone)
    if now.tzinfo is None:
        raise BadInput("now must be timezone-aware")
    return now.astimezone(UTC)


def _json(text: str | None, default: Any) -> Any:
    if not text:
        return default
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return default


def _dumps(value: Any) -> str:
    def default(v: Any) -> Any:
        if isinstance(v, (datetime, date)):
            return v.isoformat()
        if isinstance(v, Decimal):
            return str(v)
        raise TypeError(type(v).__name__)

    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=default)


def _enc(value: Any) -> Any:
    """A key value as JSON (typed where JSON has no type for it)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return {"$f": repr(value)}
    if isinstance(value, Decimal):
        return {"$d": str(value)}
    if isinstance(value, datetime):
        return {"$dt": value.isoformat()}
    if isinstance(value, date):
        return {"$date": value.isoformat()}
    if isinstance(value, uuid.UUID):
        return {"$u": str(value)}
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"$b": base64.b64encode(bytes(value)).decode("ascii")}
    raise OperationalError(f"cannot record a key value of type {type(value).__name__} in the ledger")


def _preload_pdf() -> None:
    try:
        import weasyprint  # noqa: F401 - imported for later use
    except Exception:  # noqa: BLE001 - the certificate step reports any real problem
        pass


_PLAIN_TYPES = frozenset((int, str))


def _enc_keys(keys: list[tuple[Any, ...]]) -> Sequence[Sequence[Any]]:
    """``_enc`` of every value of every key (integers and text, the usual keys, as they are:
    ``json.dumps`` writes a tuple as the array a list would be)."""
    if keys and len(keys[0]) == 1:
        types = {type(key[0]) for key in keys}
    else:
        types = {type(v) for key in keys for v in key}
    if types <= _PLAIN_TYPES:
        return keys
    return [[_enc(v) for v in key] for key in keys]


def _dec(value: Any) -> Any:
    if isinstance(value, dict) and len(value) == 1:
        ((tag, text),) = value.items()
        if tag == "$f":
            return float(text)
        if tag == "$d":
            return Decimal(text)
        if tag == "$dt":
            return datetime.fromisoformat(text)
        if tag == "$date":
            return date.fromisoformat(text)
        if tag == "$u":
            return uuid.UUID(text)
        if tag == "$b":
            return base64.b64decode(text)
    return value


def _key_json(key: tuple[Any, ...]) -> str:
    return json.dumps([_enc(v) for v in key], separators=(",", ":"), ensure_ascii=False)


def _named_keys(values: list[Any]) -> set[str]:
    """``_key_json`` of the distinct non-NULL values: a batch names the same person in many
    rows, so the values are made distinct first (by type too: 1 and 1.0 are equal in a set,
    not in JSON)."""
    try:
        distinct = {(type(v), v) for v in values if v is not None}
    except TypeError:  # an unhashable value (a driver's memoryview): each one on its own
        return {_key_json((v,)) for v in values if v is not None}
    return {_key_json((v,)) for _t, v in distinct}


def _key_from_json(text: str) -> tuple[Any, ...]:
    return tuple(_dec(v) for v in json.loads(text))


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _not_true(cond: ColumnElement[bool]) -> ColumnElement[bool]:
    """NOT cond, where NULL (unknown) counts as not true."""
    return sa.case((cond, 0), else_=1) == 1


def _outside_of(pred: ColumnElement[bool]) -> Callable[[Any], ColumnElement[bool]]:
    """For ``_ref_exists``: the referencing row is not one of the customer's."""

    def condition(_child: Any) -> ColumnElement[bool]:
        return _not_true(pred)

    return condition


def _not_owned_by(src: Source, name: str) -> Callable[[Any], ColumnElement[bool]]:
    """For ``_ref_exists``: the referencing row (of ``name``, or an alias of it for a
    self-reference) is not one of the customer's."""

    def condition(row: Any) -> ColumnElement[bool]:
        return src.not_owned(name, row)

    return condition


def _in(table: Any, cols: Sequence[str], sub: Any) -> ColumnElement[bool]:
    if len(cols) == 1:
        return table.c[cols[0]].in_(sub)
    return sa.tuple_(*[table.c[c] for c in cols]).in_(sub)


def _key_cols(table: sa.Table) -> list[sa.Column[Any]]:
    return list(table.primary_key.columns)


def _delete_keys(conn: Connection, table: sa.Table, pk: list[sa.Column[Any]], keys: list[tuple[Any, ...]]) -> int:
    """DELETE the rows with these keys; the rows deleted.

    A one-column integer or text key goes as a plain ``DELETE … WHERE key IN (…)`` with
    the driver's placeholders, 2,000 keys a statement (the keys are exactly what the
    driver returned): at a few hundred thousand rows, SQLAlchemy's expansion of large IN
    lists costs more than the deletes.  It still goes through ``exec_driver_sql``, so a
    lost connection is handled (invalidated) as SQLAlchemy handles it.  Other keys go
    through SQLAlchemy's statements."""
    style = conn.dialect.paramstyle
    mark = {"qmark": "?", "format": "%s", "pyformat": "%s"}.get(style)
    simple = len(pk) == 1 and mark is not None
    if simple:
        try:
            simple = pk[0].type.python_type in (int, str)
        except NotImplementedError:
            simple = False
    n = 0
    if not simple or any(type(k[0]) not in (int, str) for k in keys):
        for chunk in _chunks(keys, _CHUNK):
            n += conn.execute(table.delete().where(_key_in(pk, chunk))).rowcount or 0
        return n
    assert mark is not None  # simple implies a known placeholder style
    preparer = conn.dialect.identifier_preparer
    head = f"DELETE FROM {preparer.format_table(table)} WHERE {preparer.quote(pk[0].name)} IN "
    wide = _WIDE_CHUNK
    if conn.dialect.name == "sqlite" and getattr(conn.dialect.loaded_dbapi, "sqlite_version_info", (0,)) < (3, 32):
        wide = _CHUNK  # older SQLite takes at most 999 parameters
    for chunk in _chunks(keys, wide):
        sql = head + "(" + ", ".join([mark] * len(chunk)) + ")"
        n += conn.exec_driver_sql(sql, tuple(k[0] for k in chunk)).rowcount or 0
    return n


def _key_after(cols: Sequence[Any], key: tuple[Any, ...]) -> ColumnElement[bool]:
    """Rows whose key comes after ``key`` (in the order ``ORDER BY`` the key columns gives)."""
    if len(cols) == 1:
        return cols[0] > key[0]
    return sa.tuple_(*cols) > sa.tuple_(*[sa.literal(v) for v in key])


def _key_in(cols: Sequence[Any], keys: Sequence[tuple[Any, ...]]) -> ColumnElement[bool]:
    if len(cols) == 1:
        return cols[0].in_([k[0] for k in keys])
    return sa.tuple_(*cols).in_([tuple(k) for k in keys])


def _db_error(what: str, exc: BaseException) -> OperationalError:
    return OperationalError(f"{what}: {describe_db_error(exc)}")


_BATCHES_DONE = 0


def _kill_point(point: str) -> None:
    """Test-only: SIGKILL ourselves at the N-th batch boundary ($LEARNEXIT_TEST_KILL_*)."""
    wanted = os.environ.get(KILL_ENV)
    if not wanted:
        return
    at = os.environ.get(KILL_AT_ENV, "batch")
    global _BATCHES_DONE
    if point == "batch":
        _BATCHES_DONE += 1
        count = _BATCHES_DONE
    else:
        count = _BATCHES_DONE + 1
    if point == at and count == int(wanted):
        os.kill(os.getpid(), signal.SIGKILL)


# --------------------------------------------------------------------------- the source


class _PurgeSource(Source):
    """A Source that still builds its predicates once the customer's own row is gone.

    A purge deletes the customer table's row last; resuming, verifying and the later
    retention purge must still be able to ask "what is left of this customer?".  The
    case's pinned row decides: once the purge has deleted it, a row that now carries the
    same key (a new customer) is never taken for it.
    """

    def __init__(self, settings: Settings, customer: str, *, row_may_be_gone: bool, pinned: PinnedRow | None) -> None:
        self.row_may_be_gone = row_may_be_gone
        self.customer_row_gone = False
        super().__init__(settings, customer, pinned=pinned)
        if self.engine.dialect.name == "postgresql":
            # The purge runs many small, selective statements whose nested ownership
            # subqueries look expensive to the planner: PostgreSQL's JIT would spend a
            # second compiling each one (measured: 37 s instead of 3 s on a tiny schema).
            self.engine.dispose()
            sa.event.listen(self.engine, "connect", _jit_off)

    def __enter__(self) -> _PurgeSource:
        return self

    def _find_customer(self) -> Any:
        pinned = self.pinned
        if not (self.row_may_be_gone and pinned is not None and pinned.deleted):
            try:
                return super()._find_customer()
            except (UnknownCustomer, Refused):
                if not self.row_may_be_gone:
                    raise
        # The row is gone (or the key names a newcomer): the predicates still name the
        # case's own row, by key and pinned primary key, and so match nothing new.
        self.customer_row_gone = True
        table = self.table(self.settings.customer.table or "")
        if pinned is not None:
            self.customer_pk = tuple(
                _as_column_type(col, value) for col, value in zip(table.primary_key.columns, pinned.pk, strict=False)
            )
        return _as_column_type(table.c[self.settings.customer.key], self.customer)


def _as_column_type(column: Any, text: Any) -> Any:
    try:
        return column.type.python_type(text)
    except (NotImplementedError, TypeError, ValueError, ArithmeticError):
        return text


def _jit_off(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("SET jit = off")
    finally:
        cursor.close()
    dbapi_connection.commit()


def _open_source(settings: Settings, ledger: Ledger, customer: str, *, row_may_be_gone: bool) -> _PurgeSource:
    case = ledger.case_of(customer)
    pinned = None
    if case is not None and case["row_pk"] is not None:
        pinned = PinnedRow(case["row_pk"], deleted=_root_deleted(settings, ledger, customer))
    return _PurgeSource(settings, customer, row_may_be_gone=row_may_be_gone, pinned=pinned)


def _root_deleted(settings: Settings, ledger: Ledger, customer: str) -> bool:
    """Has a purge of the current case deleted the customer's own row already?"""
    table = settings.customer.table
    if not table:
        return False
    p, progress = L.purges, L.purge_progress
    try:
        with ledger.engine.connect() as conn:
            stmt = (
                sa.select(sa.func.count())
                .select_from(progress.join(p, p.c.id == progress.c.purge_id))
                .where(ledger.in_case(conn, p, customer), progress.c.step == table, progress.c.done.is_(True))
            )
            return bool(conn.execute(stmt).scalar())
    except sa.exc.SQLAlchemyError as exc:
        raise _db_error("cannot read the ledger", exc) from None


# --------------------------------------------------------------------------- the scope


class _Scope:
    """Which of one customer's rows go and which stay, as SQL conditions (no writes)."""

    def __init__(
        self,
        settings: Settings,
        src: Source,
        termination: date | None,
        now: datetime,
        *,
        expire_all: bool = False,
    ) -> None:
        self.settings = settings
        self.src = src
        self.dm = src.datamap
        self.today = contract.today(settings.contract.timezone, now)
        owned = [t for t in self.dm.order if self.dm.info[t].owned]
        self.children_first = list(reversed(owned))
        self.owned = set(owned)
        self.via = {t for t in owned if self.dm.info[t].how == "owned_via"}
        self.retain_until: dict[str, date] = {}
        self.expired: dict[str, date] = {}
        for t in owned:
            rule = settings.rule(t)
            if rule.retain and termination is not None:
                until = contract.retention_until(termination, rule.retain)
                if expire_all or self.today > until:
                    self.expired[t] = until
                else:
                    self.retain_until[t] = until
        self.refs: dict[str, list[Edge]] = {}
        for e in self.dm.edges:
            self.refs.setdefault(e.parent, []).append(e)
        self.self_edges: dict[str, list[Edge]] = {}
        for e in self.dm.edges:
            if e.child == e.parent:
                self.self_edges.setdefault(e.child, []).append(e)
        self.notes: list[str] = []
        self._ret: dict[str, ColumnElement[bool] | None] = {}
        self._because: dict[str, set[str]] = {}
        self._busy: set[str] = set()
        self._held: dict[str, ColumnElement[bool] | None] = {}
        self._held_by: dict[str, set[str]] = {}
        self._held_busy: list[str] = []
        self._held_cut = False
        self._via_busy: set[str] = set()
        self._alias_n = 0

    # -- retention ---------------------------------------------------------------

    def ret(self, t: str) -> ColumnElement[bool] | None:
        """Rows of ``t`` kept by retention (retained rows and what they reference), or None."""
        if t in self._ret:
            return self._ret[t]
        if t in self._busy:
            return None
        self._busy.add(t)
        try:
            cond: ColumnElement[bool] | None
            because: set[str] = set()
            if t in self.retain_until:
                cond, because = self.src.predicate(t), {t}
            else:
                table = self.src.table(t)
                conds = []
                for e in self.refs.get(t, []):
                    if e.child == t or e.child not in self.owned:
                        continue
                    child_cond = self.ret(e.child)
                    if child_cond is None:
                        if e.child in self._busy and self.retain_until:
                            self.notes.append(f"retention does not follow {e.label}: it closes a cycle of references")
                        continue
                    child = self.src.table(e.child)
                    sub = sa.select(*[child.c[c] for c in e.child_cols]).where(
                        child_cond, *[child.c[c].isnot(None) for c in e.child_cols]
                    )
                    conds.append(_in(table, e.parent_cols, sub))
                    because |= self._because.get(e.child, set())
                if conds:
                    cond = sa.or_(*conds)
                    cond = self._ancestors(table, self.self_edges.get(t, []), cond)
                    if t not in self.via:
                        cond = sa.and_(cond, self.src.predicate(t))
                    cond = self.src.keyed(t, cond, "kept")
                else:
                    cond = None
            self._ret[t] = cond
            self._because[t] = because
            return cond
        finally:
            self._busy.discard(t)

    def _ancestors(self, table: sa.Table, edges: list[Edge], base: ColumnElement[bool]) -> ColumnElement[bool]:
        """Rows matching ``base`` and every row they reach through the self-references."""
        if not edges:
            return base
        self._alias_n += 1
        key = tuple(dict.fromkeys(c for e in edges for c in e.parent_cols))
        anc = sa.select(*[table.c[c] for c in key]).where(base).cte(name=f"le_keep_{self._alias_n}", recursive=True)
        row = table.alias(f"le_keep_row_{self._alias_n}")
        up = table.alias(f"le_keep_up_{self._alias_n}")
        links = [
            sa.and_(
                *[row.c[cc].isnot(None) for cc in e.child_cols],
                *[up.c[pc] == row.c[cc] for cc, pc in zip(e.child_cols, e.parent_cols, strict=True)],
            )
            for e in edges
        ]
        step = sa.select(*[up.c[c] for c in key]).where(*[row.c[c] == anc.c[c] for c in key], sa.or_(*links))
        anc = anc.union(step)
        return _in(table, key, sa.select(*[anc.c[c] for c in key]))

    def retention_info(self, t: str) -> tuple[date | None, str | None, str | None]:
        """(until, legal basis, reason) for the retained rows of ``t``."""
        self.ret(t)
        because = sorted(self._because.get(t, set()))
        if not because:
            return None, None, None
        until = max(self.retain_until[b] for b in because)
        bases = []
        for b in because:
            basis = self.settings.rule(b).legal_basis
            if basis and basis not in bases:
                bases.append(basis)
        reason = None if t in self.retain_until else "referenced by retained " + ", ".join(because)
        return until, "; ".join(bases) or None, reason

    # -- what goes ---------------------------------------------------------------

    # -- kept for others ------------------------------------------------------------

    def _outside_refs(self, t: str) -> tuple[ColumnElement[bool] | None, set[str]]:
        """Rows of ``t`` that rows outside the customer's data reference: another
        customer's, contested, shared or unclassified rows (a row of ``t`` itself
        included), and people (owned_via rows) that stay.  Every reference counts, the
        ones rows are found by too: the database must never cascade for the purge."""
        tests, sources = [], set()
        for e in self.refs.get(t, []):
            if e.child in self.via:
                if self.dm.info[e.child].how == "owned_via":
                    tests.append(self._ref_exists(t, e, self._via_stays))
                    sources.add(e.child)
                continue
            if e.child in self.owned:
                if self.dm.info[e.child].how == "database":
                    continue  # the whole database is the customer's
                tests.append(self._ref_exists(t, e, _not_owned_by(self.src, e.child)))
            else:
                tests.append(self._ref_exists(t, e, None))
            sources.add(e.child)
        return (sa.or_(*tests) if tests else None), sources

    def _via_stays(self, child: Any) -> ColumnElement[bool]:
        """owned_via rows (of ``child``, a table or an alias) that the purge leaves: not
        the customer's, or referenced from outside its data."""
        name = child.name if isinstance(child, sa.Table) else child.element.name
        stays = _not_true(self.src.predicate(name))
        if name in self._via_busy or child is not self.src.table(name):
            return stays
        self._via_busy.add(name)
        try:
            return sa.or_(stays, self.other_ref(name))
        finally:
            self._via_busy.discard(name)

    def held(self, t: str) -> ColumnElement[bool] | None:
        """The customer's rows of ``t`` kept because data outside it still references them.

        Closed upwards: the rows such a row references are kept too.  (owned_via tables
        are decided row by row from their candidates instead.)  Tables that reference
        each other in a cycle are followed round it twice, and a condition built while
        the cycle was cut short is not remembered: the table asked for first sees the
        others complete.
        """
        if t in self._held:
            return self._held[t]
        if t in self.via:
            return None
        if self._held_busy.count(t) >= 2:
            self._held_cut = True
            return None
        outer_cut = self._held_cut
        self._held_cut = False
        self._held_busy.append(t)
        try:
            table = self.src.table(t)
            outside, sources = self._outside_refs(t)
            conds = [outside] if outside is not None else []
            for e in self.refs.get(t, []):
                if e.child == t or e.child not in self.owned or e.child in self.via:
                    continue
                child_cond = self.held(e.child)
                if child_cond is None:
                    continue
                child = self.src.table(e.child)
                sub = sa.select(*[child.c[c] for c in e.child_cols]).where(
                    child_cond, *[child.c[c].isnot(None) for c in e.child_cols]
                )
                conds.append(_in(table, e.parent_cols, sub))
                sources |= self._held_by.get(e.child, set())
            cond: ColumnElement[bool] | None = None
            if conds:
                cond = self._ancestors(table, self.self_edges.get(t, []), sa.or_(*conds))
                cond = self.src.keyed(t, sa.and_(cond, self.src.predicate(t)), "held")
            if not self._held_cut or len(self._held_busy) == 1:
                self._held[t] = cond
            self._held_by[t] = sources
            return cond
        finally:
            self._held_busy.pop()
            self._held_cut = self._held_cut or outer_cut

    def held_by(self, t: str) -> list[str]:
        self.held(t)
        return sorted(self._held_by.get(t, set()))

    def keep(self, t: str) -> ColumnElement[bool] | None:
        """Rows of ``t`` that stay: retained, or kept for data outside the customer's."""
        conds = [c for c in (self.ret(t), self.held(t)) if c is not None]
        return sa.or_(*conds) if conds else None

    def shared_only(self, t: str) -> ColumnElement[bool] | None:
        """Rows kept for others and not retained (reported as kept_shared)."""
        held = self.held(t)
        if held is None:
            return None
        ret = self.ret(t)
        return held if ret is None else sa.and_(held, _not_true(ret))

    def minimise_cond(self, t: str) -> ColumnElement[bool] | None:
        """Kept rows whose personal columns go (never the legally retained rows themselves)."""
        if t in self.retain_until:
            return None
        return self.keep(t)

    def doomed(self, t: str) -> ColumnElement[bool]:
        """This customer's rows of ``t`` that are to be deleted now (chain tables)."""
        pred = self.src.predicate(t)
        keep = self.keep(t)
        return pred if keep is None else sa.and_(pred, _not_true(keep))

    def going(self, t: str) -> ColumnElement[bool]:
        """Rows of ``t`` the purge deletes: for owned_via tables only those no row that
        stays references (a person kept for another organisation is never changed)."""
        if t not in self.via:
            return self.doomed(t)
        keep = self.ret(t)
        conds = [self.src.predicate(t), _not_true(self.other_ref(t))]
        return sa.and_(*conds, *([_not_true(keep)] if keep is not None else []))

    def _ref_exists(self, t: str, e: Edge, extra: Callable[[Any], ColumnElement[bool]] | None) -> Any:
        table = self.src.table(t)
        child: Any = self.src.table(e.child)
        if e.child != t:
            # Uncorrelated: the referencing keys are collected once per statement (hashed
            # or indexed by the database), not looked up per row of ``t`` — without an
            # index on the referencing column, EXISTS scans the child table for each row.
            sub = (
                sa.select(*[child.c[c] for c in e.child_cols])
                .where(*[child.c[c].isnot(None) for c in e.child_cols])
                .correlate(None)
            )
            if extra is not None:
                sub = sub.where(extra(child))
            return sa.and_(*[table.c[c].isnot(None) for c in e.parent_cols], _in(table, e.parent_cols, sub))
        conds = []
        if e.child == t:
            self._alias_n += 1
            child = child.alias(f"le_ref_{self._alias_n}")
            pk = _key_cols(table)
            if pk:
                conds.append(sa.not_(sa.and_(*[child.c[c.name] == table.c[c.name] for c in pk])))
        conds += [child.c[cc] == table.c[pc] for cc, pc in zip(e.child_cols, e.parent_cols, strict=True)]
        if extra is not None:
            conds.append(extra(child))
        return sa.exists().where(*conds)

    def any_ref(self, t: str) -> ColumnElement[bool]:
        """Some row anywhere still references this row of ``t``."""
        tests = [self._ref_exists(t, e, None) for e in self.refs.get(t, [])]
        return sa.or_(*tests) if tests else sa.false()

    def other_ref(self, t: str) -> ColumnElement[bool]:
        """A row that stays after the purge references this row of ``t``: a row outside
        the customer's data, or one of the customer's rows kept for others."""
        tests = []
        for e in self.refs.get(t, []):
            if e.child == t or e.child not in self.owned or e.child in self.via:
                tests.append(self._ref_exists(t, e, None))
                continue
            pred = self.src.predicate(e.child)
            held = None if t in self._via_busy else self.held(e.child)
            if held is None:
                tests.append(self._ref_exists(t, e, _outside_of(pred)))
            else:
                tests.append(self._ref_exists(t, e, _outside_of(sa.and_(pred, _not_true(held)))))
        return sa.or_(*tests) if tests else sa.false()

    def personal(self, t: str) -> tuple[dict[str, Any], ColumnElement[bool] | None]:
        """(blank values, "not yet blank" condition) for the personal columns of ``t``."""
        rule = self.settings.rule(t)
        table = self.src.table(t)
        values: dict[str, Any] = {}
        dirty: list[ColumnElement[bool]] = []
        unique_cols: set[str] = set()
        for constraint in table.constraints:
            if isinstance(constraint, (sa.UniqueConstraint, sa.PrimaryKeyConstraint)):
                unique_cols |= {c.name for c in constraint.columns}
        for index in table.indexes:
            if index.unique:
                unique_cols |= {c.name for c in index.columns if isinstance(c, sa.Column)}
        for name in rule.personal_columns:
            col = table.c[name]
            if col.nullable:
                values[name] = None
                dirty.append(col.isnot(None))
            elif isinstance(col.type, sa.String) and name not in unique_cols:
                values[name] = ""
                dirty.append(col != "")
            else:
                why = "is unique" if name in unique_cols else "is NOT NULL and not text"
                raise ConfigError(
                    f"{self.settings.label}: [tables.{t}] personal_columns: {t}.{name} cannot be blanked "
                    f"(it {why}); a retained {t} row could not be minimised"
                )
        return values, (sa.or_(*dirty) if dirty else None)


# --------------------------------------------------------------------------- media


def _media_columns(media: MediaSettings) -> list[str]:
    return media_columns(media)


def _media_path(media: MediaSettings, values: dict[str, Any]) -> str | None:
    return media_path(media, values)


_MediaStore = MediaStore  # the purge's store (learnexit.purge_media)


def _sibling_urls(settings: Settings, customer: str, ledger: Ledger) -> tuple[list[str], str | None]:
    """(URLs of the other customers' databases, a note when they could not be listed)."""
    pattern = settings.source_url
    if "{customer}" not in pattern:
        return [], None
    found: list[str] = []
    note = None
    parsed = sa.engine.make_url(pattern.replace("{customer}", "LEARNEXITKEY"))
    db = parsed.database or ""
    try:
        if parsed.drivername.startswith("sqlite"):
            path_pattern = pattern.split(":///", 1)[1].split("?", 1)[0]
            prefix, _, suffix = path_pattern.partition("{customer}")
            if prefix.endswith("/"):
                folder, head = Path(prefix), ""
            else:
                folder, head = Path(prefix).parent, Path(prefix).name
            if "/" in suffix or "{customer}" in suffix:
                raise ValueError("customer key in a folder name")
            for entry in sorted(folder.iterdir()) if folder.is_dir() else []:
                name = entry.name
                if name.startswith(head) and name.endswith(suffix) and len(name) > len(head) + len(suffix):
                    key = name[len(head) : len(name) - len(suffix)]
                    if key != customer and _KEY_PATTERN.fullmatch(key):
                        found.append(pattern.replace("{customer}", key))
        elif "LEARNEXITKEY" in db and "LEARNEXITKEY" not in str(parsed.host or ""):
            head, _, tail = db.partition("LEARNEXITKEY")
            admin = make_engine(pattern.replace("{customer}", customer))
            try:
                with admin.connect() as conn:
                    if admin.dialect.name == "postgresql":
                        names = [r[0] for r in conn.exec_driver_sql("SELECT datname FROM pg_database")]
                    else:
                        names = [r[0] for r in conn.exec_driver_sql("SHOW DATABASES")]
            finally:
                admin.dispose()
            for name in sorted(names):
                if name.startswith(head) and name.endswith(tail) and len(name) > len(head) + len(tail):
                    key = name[len(head) : len(name) - len(tail)]
                    if key != customer and _KEY_PATTERN.fullmatch(key):
                        found.append(pattern.replace("{customer}", key))
        else:
            raise ValueError("customer key not in the database name")
    except (ValueError, OSError, sa.exc.SQLAlchemyError) as exc:
        keys = [c for c in known_customers(ledger) if c != customer and _KEY_PATTERN.fullmatch(c)]
        found = [pattern.replace("{customer}", k) for k in keys]
        note = (
            f"could not list the other customers' databases ({scrub(str(exc)).splitlines()[0] if str(exc) else exc}); "
            f"media files were checked against the {len(keys)} customers the ledger knows"
        )
    return found, note


class _MediaRefs:
    """Answers "does any row that stays name this file, under any spelling?" in this
    and the sibling databases (learnexit.purge_media.Matcher), streaming the rows."""

    def __init__(self, settings: Settings, src: Source, scope: _Scope, ledger: Ledger, store: MediaStore) -> None:
        self.settings = settings
        self.media = settings.media
        self.src = src
        self.scope = scope
        self.store = store
        self.columns = _media_columns(self.media) if self.media else []
        self.notes: list[str] = []
        self._siblings: list[tuple[sa.Engine, sa.Table | None]] | None = None
        self.ledger = ledger

    def _scan(self, conn: Connection, table: Any, where: Any, matcher: Matcher, out: dict[str, str], cls: str) -> None:
        """Stream the media rows matching ``where``; mark the files they name ``cls``."""
        assert self.media is not None
        stmt = sa.select(*[table.c[c] for c in self.columns])
        if where is not None:
            stmt = stmt.where(where)
        for row in conn.execute(stmt.execution_options(yield_per=_SCAN_ROWS)):
            path = _media_path(self.media, dict(zip(self.columns, row, strict=True)))
            if path is None:
                continue
            for real in matcher.hits(path):
                if cls == "retained" or out[real] == "free":
                    out[real] = cls

    def siblings(self) -> list[tuple[sa.Engine, sa.Table | None]]:
        if self._siblings is None:
            self._siblings = []
            if self.settings.customer.tenancy == "database" and self.media is not None:
                urls, note = _sibling_urls(self.settings, self.src.customer, self.ledger)
                if note:
                    self.notes.append(note)
                for url in urls:
                    engine = make_engine(url)
                    try:
                        with engine.connect() as conn:
                            table = sa.Table(
                                self.media.table, sa.MetaData(), autoload_with=conn, schema=self.settings.source_schema
                            )
                    except sa.exc.NoSuchTableError:
                        table = None
                    except sa.exc.SQLAlchemyError as exc:
                        engine.dispose()
                        raise _db_error(f"cannot check media references in {mask_url(url)}", exc) from None
                    self._siblings.append((engine, table))
        return self._siblings

    def classify(self, files: list[FileId], conn: Connection | None = None) -> dict[str, str]:
        """For each file (by its real path): "retained", "kept_shared" or "free".

        With ``conn`` (the plan's snapshot) the customer's doomed rows are still there
        and are discounted; without, they are gone and every remaining row stays."""
        out = {f.real: "free" for f in files}
        if not files or self.media is None:
            return out
        matcher = self.store.matcher(files)
        name = self.media.table
        table = self.src.table(name)
        pred = self.src.predicate(name)
        mine = pred if conn is None else sa.and_(pred, _not_true(self.scope.doomed(name)))
        try:
            if conn is None:
                with self.src.engine.connect() as own:
                    self._scan(own, table, _not_true(pred), matcher, out, "kept_shared")
                    self._scan(own, table, mine, matcher, out, "retained")
            else:
                self._scan(conn, table, _not_true(pred), matcher, out, "kept_shared")
                self._scan(conn, table, mine, matcher, out, "retained")
        except sa.exc.SQLAlchemyError as exc:
            raise _db_error("cannot check media references", exc) from None
        for engine, sib in self.siblings():
            if sib is None or any(c not in sib.c for c in self.columns):
                continue
            try:
                with engine.connect() as sconn:
                    self._scan(sconn, sib, None, matcher, out, "kept_shared")
            except sa.exc.SQLAlchemyError as exc:
                raise _db_error("cannot check media references in another customer's database", exc) from None
        return out

    def close(self) -> None:
        for engine, _ in self._siblings or []:
            engine.dispose()


def _listed(keys: list[str], limit: int = 10) -> str:
    """Row keys for a message: the first ``limit``, then how many more."""
    shown = ", ".join(keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def _plan_media(
    plan: PurgePlan, settings: Settings, src: Source, scope: _Scope, ledger: Ledger, conn: Connection
) -> None:
    """The plan's media files: the customer's doomed rows, each file under the path
    rules (a row naming a folder or another non-regular file refuses the purge),
    classified against the rows that stay, a chunk of files at a time."""
    media = settings.media
    assert media is not None
    table = src.table(media.table)
    pk = _key_cols(table)
    cols = _media_columns(media)
    store = MediaStore(media)
    files: dict[str, FileId] = {}
    unsafe: list[str] = []
    not_files: list[str] = []
    stmt = sa.select(*pk, *[table.c[c] for c in cols]).where(scope.doomed(media.table))
    for number, row in enumerate(conn.execute(stmt), start=1):
        path = _media_path(media, dict(zip(cols, row[len(pk) :], strict=True)))
        if path is None:
            continue
        key = ",".join("" if v is None else str(v) for v in row[: len(pk)]) if pk else f"#{number}"
        try:
            fid = store.identify(path, check=False)
        except MediaProblem:
            unsafe.append(key)
            continue
        if fid.exists and not fid.regular:
            not_files.append(key)
            continue
        files.setdefault(fid.real, fid)
    where = media.path_column or "path_template"
    if not_files:
        plan.refusals.append(
            f"[media] {media.table} rows {_listed(not_files)}: {where} names a folder or another "
            "file that is not a regular file; fix the rows or the files before purging"
        )
    if unsafe:
        plan.notes.append(
            f"[media] {media.table} rows {_listed(unsafe)}: {where} is refused by the media path rules "
            "(absolute, '..', or outside the media root); those rows go, no file is deleted for them"
        )
    refs = _MediaRefs(settings, src, scope, ledger, store)
    try:
        for chunk in _chunks(list(files.values()), max(settings.purge.batch_size, _CHUNK)):
            classes = refs.classify(list(chunk), conn)
            plan.media_files += sum(1 for c in classes.values() if c == "free")
            plan.media_kept_shared += sum(1 for c in classes.values() if c == "kept_shared")
            plan.media_retained += sum(1 for c in classes.values() if c == "retained")
    finally:
        refs.close()
    plan.notes += refs.notes


# --------------------------------------------------------------------------- exports


# --------------------------------------------------------------------------- ledger reads


def _ledger_rows(ledger: Ledger, table: sa.Table, customer: str) -> list[dict[str, Any]]:
    try:
        return ledger.rows(table, customer)
    except sa.exc.SQLAlchemyError as exc:
        raise _db_error("cannot read the ledger", exc) from None


def _exports_running(settings: Settings, ledger: Ledger, customer: str) -> list[dict[str, Any]]:
    """Exports of ``customer`` running now: a purge waits for them (the export, for its
    part, refuses to start once a purge has, and removes its package if one overtook it).

    Running means the export's lock is held by a live process: on this host one that
    exists; on another host one whose lock is younger than ``lock_stale_minutes``.  A
    killed export therefore blocks nothing (on another host: not for long)."""
    from .export import export_lock_name

    stale = timedelta(minutes=settings.purge.lock_stale_minutes)
    here = f" host {socket.gethostname()} pid "
    live = []
    for row in _ledger_rows(ledger, L.exports, customer):
        if row["status"] != "running":
            continue
        try:
            with ledger.engine.connect() as conn:
                lock = conn.execute(sa.select(L.locks).where(L.locks.c.name == export_lock_name(row["id"]))).first()
        except sa.exc.SQLAlchemyError as exc:
            raise _db_error("cannot read the ledger", exc) from None
        if lock is None or holder_is_dead(lock.holder):
            continue
        if here in lock.holder or utcnow() - lock.heartbeat_at < stale:
            live.append(row)
    return live


def _pending_retention(purge: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out = {}
    for table, info in (_json(purge.get("retained"), {}) or {}).items():
        if isinstance(info, dict) and int(info.get("rows") or 0) > 0 and info.get("until"):
            out[table] = info
    return out


def _retention_due_day(retention: dict[str, dict[str, Any]]) -> date | None:
    days = []
    for info in retention.values():
        try:
            days.append(date.fromisoformat(str(info["until"])) + timedelta(days=1))
        except (ValueError, KeyError):
            continue
    return min(days) if days else None


def _earlier_keys(ledger: Ledger, customer: str, prefix: str, exclude: int | None) -> dict[str, set[str]]:
    """purge_keys rows named ``prefix<table>`` of this customer's earlier purges."""
    out: dict[str, set[str]] = {}
    stmt = (
        sa.select(L.purge_keys.c.table_name, L.purge_keys.c.key)
        .join(L.purges, L.purges.c.id == L.purge_keys.c.purge_id)
        .where(L.purge_keys.c.table_name.like(prefix + "%"))
    )
    if exclude is not None:
        stmt = stmt.where(L.purges.c.id != exclude)
    try:
        with ledger.engine.connect() as conn:
            for name, key in conn.execute(stmt.where(ledger.in_case(conn, L.purges, customer))):
                out.setdefault(name[len(prefix) :], set()).add(key)
    except sa.exc.SQLAlchemyError as exc:
        raise _db_error("cannot read the ledger", exc) from None
    return out


# --------------------------------------------------------------------------- plan


def plan_purge(
    settings: Settings,
    ledger: Ledger,
    customer: str,
    now: datetime | None = None,
    force_reason: str | None = None,
    *,
    count: bool = True,
) -> PurgePlan:
    """What purging ``customer`` now would do; reads only.  Refusals are in ``plan.refusals``.

    ``force_reason`` (``--force --reason``) lifts the "not yet due" refusal, nothing else:
    a hold, unclassified tables and a missing notice always refuse.

    ``count=False`` checks without counting: the same refusals and errors (an unknown
    customer, a hold, not due, unclassified tables, a cycle of references that cannot be
    ordered), but no row counts, media or notes — what ``purge --yes`` needs to refuse
    before it takes the lock, while the counted plan is made once, under the lock.
    """
    check_customer_key(customer)
    settings = settings.for_customer(customer)  # ({customer} in [media] root)
    if force_reason is not None:
        force_reason = " ".join(force_reason.split())
        if not force_reason:
            raise BadInput("--reason must say why the purge is forced")
    now = _aware_now(settings, now)
    require_consistent(ledger, customer)  # decide on records that agree with the audit chain
    facts = customer_facts(ledger, customer)
    purges = _ledger_rows(ledger, L.purges, customer)
    plan = PurgePlan(
        customer=customer,
        name=customer,
        kind="full",
        tenancy=settings.customer.tenancy,
        now=now,
        backup_note=settings.purge.backup_note,
        timezone=settings.contract.timezone,
    )
    hold = active_hold(ledger, customer)
    if hold is not None:
        plan.refusals.append(
            f"{customer} is on legal hold since {aware(hold['placed_at']):%Y-%m-%d} (placed by "
            f"{hold['placed_by']}); release it first (learnexit release {customer})"
        )
    running = _exports_running(settings, ledger, customer)
    if running:
        plan.refusals.append(
            f"an export of {customer} is running (export #{running[0]['id']}, started "
            f"{aware(running[0]['started_at']):%Y-%m-%d %H:%MZ}); purge when it has finished"
        )
    tl = facts.timeline
    if tl is None:
        plan.refusals.append(f"no notice is recorded for {customer}; record it first (learnexit notice)")
        require_customer(settings, ledger, customer)
        if count and not purges:  # the dry run still shows what a purge would delete
            _count_without_notice(plan, settings, ledger, customer, now)
        return plan
    plan.termination_date = tl.termination_date
    plan.purge_due_at = contract.effective_purge_due_at(facts)
    unfinished = purges[-1] if purges and purges[-1]["status"] in ("running", "failed") else None
    done = [p for p in purges if p["status"] == "done"]
    full_done = any(p["kind"] == "full" for p in done)
    today = contract.today(settings.contract.timezone, now)
    expire_all = False
    if unfinished is not None:
        plan.kind = unfinished["kind"]
        plan.resume_of = int(unfinished["id"])
        plan.forced_reason = unfinished["forced_reason"] or force_reason
        expire_all = plan.kind == "retention" and bool(unfinished["forced_reason"])
        plan.notes.append(
            f"purge #{unfinished['id']} ({unfinished['kind']}) started {aware(unfinished['started_at']):%Y-%m-%d %H:%MZ} "
            f"is {unfinished['status']}; this run resumes it"
        )
    elif facts.withdrawn:
        plan.refusals.append(f"the notice of {customer} was withdrawn; nothing is to be purged")
        return plan
    elif not full_done:
        due = plan.purge_due_at
        assert due is not None
        if now < due:
            if force_reason:
                plan.forced_reason = force_reason
                plan.notes.append(f"forced before the purge is due ({due:%Y-%m-%d %H:%MZ}): {force_reason}")
            else:
                plan.refusals.append(
                    f"the purge of {customer} is not due until {due:%Y-%m-%d %H:%MZ} "
                    f"(export window open through {tl.export_deadline.isoformat()}); "
                    "use --force --reason TEXT to purge earlier"
                )
    else:
        last = done[-1]
        pending = _pending_retention(last)
        plan.last_purge = {
            "id": last["id"],
            "kind": last["kind"],
            "finished_at": aware(last["finished_at"]),
            "certificate": last["certificate"],
            "retained": pending,
        }
        if not pending:
            plan.kind = "none"
            plan.notes.append(
                f"{customer} was purged on {aware(last['finished_at'] or last['started_at']):%Y-%m-%d}; nothing is left"
            )
            return plan
        plan.kind = "retention"
        due_day = _retention_due_day(pending)
        if due_day is None or today < due_day:
            if force_reason:
                plan.forced_reason = force_reason
                expire_all = True
                plan.notes.append(f"retention purge forced before it is due: {force_reason}")
            else:
                until = max(str(info["until"]) for info in pending.values())
                when = due_day.isoformat() if due_day else "an unknown date"
                plan.refusals.append(
                    f"{customer} was purged; the retained rows ({', '.join(sorted(pending))}) are kept until "
                    f"{until} and the retention purge is not due before {when}"
                )
    if settings.closure and facts.closed_at is None and plan.kind == "full":
        plan.closure_pending = [f"{ref} = {value!r}" for ref, value in settings.closure.items()]
    plan.exports = [e for e in _ledger_rows(ledger, L.exports, customer) if e.get("path") and e["status"] != "removed"]
    row_may_be_gone = full_done or unfinished is not None
    with _open_source(settings, ledger, customer, row_may_be_gone=row_may_be_gone) as src:
        plan.name = src.customer_name() if not src.customer_row_gone else _stored_name(purges, customer)
        unclassified = src.datamap.unclassified()
        if unclassified:
            plan.refusals.append(
                f"unclassified tables: {', '.join(unclassified)}; classify each in [tables] "
                "(owned_via, shared = true, or a [[relations]] entry) before purging"
            )
            return plan
        scope = _Scope(settings, src, tl.termination_date, now, expire_all=expire_all)
        extra = _earlier_keys(ledger, customer, RETAINED, None) if plan.kind == "retention" else {}
        if unfinished is not None:
            for name, keys in _candidate_keys(ledger, int(unfinished["id"])).items():
                extra.setdefault(name, set()).update(keys)
        if count:
            _fill_plan(plan, settings, src, scope, extra, ledger)
        else:
            plan.refusals += _back_edges(settings, src, scope)[1]
    return plan


def _count_without_notice(plan: PurgePlan, settings: Settings, ledger: Ledger, customer: str, now: datetime) -> None:
    """Count the plan of a customer without a notice (it stays refused): what a purge would
    delete and keep if the contract ended today, for ``purge CUSTOMER --dry-run``."""
    today = contract.today(settings.contract.timezone, now)
    plan.notes.append(
        f"no notice, so no termination date: counted as if the contract ended today ({today.isoformat()})"
    )
    with _open_source(settings, ledger, customer, row_may_be_gone=False) as src:
        plan.name = src.customer_name()
        unclassified = src.datamap.unclassified()
        if unclassified:
            plan.refusals.append(f"unclassified tables: {', '.join(unclassified)}; classify each in [tables]")
            return
        if settings.closure:
            plan.closure_pending = [f"{ref} = {value!r}" for ref, value in settings.closure.items()]
        _fill_plan(plan, settings, src, _Scope(settings, src, today, now, expire_all=False), {}, ledger)


def _stored_name(purges: list[dict[str, Any]], customer: str) -> str:
    for p in reversed(purges):
        name = (_json(p.get("plan"), {}) or {}).get("name")
        if name:
            return str(name)
    return customer


def _candidate_keys(ledger: Ledger, purge_id: int) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    try:
        with ledger.engine.connect() as conn:
            rows = conn.execute(
                sa.select(L.purge_keys.c.table_name, L.purge_keys.c.key).where(L.purge_keys.c.purge_id == purge_id)
            )
            for name, key in rows:
                if ":" not in name:
                    out.setdefault(name, set()).add(key)
    except sa.exc.SQLAlchemyError as exc:
        raise _db_error("cannot read the ledger", exc) from None
    return out


def _back_edges(settings: Settings, src: Source, scope: _Scope) -> tuple[list[Edge], list[str]]:
    """Declared references between the customer's tables that point "forwards" in the
    deletion order (they close a cycle), and refusals.  A nullable one is broken by
    setting it NULL in the rows to delete first; a NOT NULL one cannot be, and the purge
    refuses before it starts (``inspect`` and ``status --check`` say so from the notice)."""
    edges, refusals = [], []
    for e in src.datamap.back_edges():
        if not (e.declared and e.child in scope.owned and e.parent in scope.owned):
            continue
        if cycle_can_break(src, e):
            edges.append(e)
        else:
            refusals.append(unbreakable_cycle_note(src, e))
    return edges, refusals


def _count(conn: Connection, table: sa.Table, *where: Any) -> int:
    return int(conn.execute(sa.select(sa.func.count()).select_from(table).where(*where)).scalar() or 0)


def _flag_counts(
    conn: Connection, table: sa.Table, where: Sequence[Any], *flags: ColumnElement[bool] | None
) -> dict[tuple[bool, ...], int]:
    """The rows matching ``where``, counted by which ``flags`` hold (None: never; NULL: not).

    One statement, grouped by the database, instead of a count per combination: each
    flag's condition (say a reference from outside the customer's data, which reads a
    whole child table) is evaluated once."""
    present = [i for i, f in enumerate(flags) if f is not None]
    cases = [sa.case((f, 1), else_=0).label(f"f{i}") for i, f in enumerate(flags) if f is not None]
    inner = sa.select(sa.literal(1).label("one"), *cases).select_from(table).where(*where).subquery("le_flags")
    cols = [inner.c[f"f{i}"] for i in present]
    out: dict[tuple[bool, ...], int] = {}
    for row in conn.execute(sa.select(*cols, sa.func.count()).select_from(inner).group_by(*cols)):
        held = dict(zip(present, row[:-1], strict=True))
        key = tuple(bool(held.get(i, 0)) for i in range(len(flags)))
        out[key] = out.get(key, 0) + int(row[-1])
    return out


def _decode_keys(keys: Iterable[str]) -> list[tuple[Any, ...]]:
    return sorted((_key_from_json(k) for k in keys), key=lambda k: json.dumps([_enc(v) for v in k]))


def _fill_plan(
    plan: PurgePlan, settings: Settings, src: Source, scope: _Scope, extra: dict[str, set[str]], ledger: Ledger
) -> None:
    unlink, refusals = _back_edges(settings, src, scope)
    plan.refusals += refusals
    plan.unlink = [f"{e.child}.{','.join(e.child_cols)}" for e in unlink]
    try:
        with src.snapshot() as conn:
            for contested in src.contested_report(conn):
                plan.contested[contested.table] = contested.rows
                plan.notes.append(contested.note())
            for t in scope.children_first:
                info = src.datamap.info[t]
                table = src.table(t)
                tp = TablePlan(table=t, how=info.how or "", delete=0)
                keep = scope.ret(t)
                if t in scope.via:
                    pk = _key_cols(table)
                    other = scope.other_ref(t)
                    pred = src.predicate(t)
                    # kept_shared: pred and other; retained: pred, not other, keep
                    flags = _flag_counts(conn, table, [pred], other, keep)
                    tp.kept_shared = sum(n for (o, _k), n in flags.items() if o)
                    tp.retained = sum(n for (o, k), n in flags.items() if not o and k)
                    total = sum(flags.values())
                    keys = _decode_keys(extra.get(t, set()))
                    for chunk in _chunks(keys, _CHUNK):
                        flags = _flag_counts(conn, table, [_key_in(pk, chunk), _not_true(pred)], other, keep)
                        total += sum(flags.values())
                        tp.kept_shared += sum(n for (o, _k), n in flags.items() if o)
                        tp.retained += sum(n for (o, k), n in flags.items() if not o and k)
                    tp.delete = total - tp.kept_shared - tp.retained
                    tp.strategy = "only those nothing outside the customer's data still references"
                else:
                    tp.delete = _count(conn, table, scope.doomed(t))
                    tp.retained = _count(conn, table, keep) if keep is not None else 0
                    shared = scope.shared_only(t)
                    tp.kept_shared = _count(conn, table, shared) if shared is not None else 0
                    if tp.kept_shared:
                        values, _dirty = scope.personal(t)
                        plan.notes.append(
                            f"{t}: {tp.kept_shared} rows stay because {', '.join(scope.held_by(t))} "
                            "(outside the customer's data) still reference them"
                            + (f"; {', '.join(values)} blanked" if values else "")
                        )
                    if scope.self_edges.get(t):
                        edge = scope.self_edges[t][0]
                        tp.strategy = f"deepest rows first, by {t}.{','.join(edge.child_cols)}"
                if tp.retained:
                    tp.until, tp.legal_basis, tp.reason = scope.retention_info(t)
                    if tp.reason is not None:
                        values, _dirty = scope.personal(t)
                        tp.minimise = tuple(values)
                        if not values:
                            plan.notes.append(
                                f"{t}: {tp.retained} retained rows keep all their columns "
                                f"(no personal_columns configured in [tables.{t}])"
                            )
                plan.tables.append(tp)
            media = settings.media
            if media is not None and media.table in scope.owned:
                _plan_media(plan, settings, src, scope, ledger, conn)
    except sa.exc.SQLAlchemyError as exc:
        raise _db_error("cannot plan the purge", exc) from None
    plan.notes += scope.notes


# --------------------------------------------------------------------------- the lock


@contextmanager
def _purge_lock(settings: Settings, ledger: Ledger) -> Iterator[None]:
    """The ledger's purge lock, kept fresh by a heartbeat thread while it is held."""
    stale = timedelta(minutes=settings.purge.lock_stale_minutes)
    interval = max(1.0, min(30.0, stale.total_seconds() / 4))
    with ledger.lock("purge", stale_after=stale):
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(interval):
                try:
                    ledger.heartbeat("purge")
                except Exception:  # noqa: BLE001 - a missed beat is not fatal
                    event("purge_heartbeat_failed", level=logging.WARNING)

        thread = threading.Thread(target=beat, name="learnexit-purge-heartbeat", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=10)


# --------------------------------------------------------------------------- execution


class _Run:
    """One execution of a purge (a new one or a resumed one)."""

    def __init__(
        self,
        settings: Settings,
        ledger: Ledger,
        plan: PurgePlan,
        now: datetime,
        lang: str,
        progress: Progress | None,
    ) -> None:
        self.settings = settings
        self.ledger = ledger
        self.plan = plan
        self.customer = plan.customer
        self.now = now
        self.lang = lang
        self.progress = progress
        self.batch = settings.purge.batch_size
        self.purge_id: int = 0
        self.before: dict[str, int] = {}
        self.candidates: dict[str, set[str]] = {}
        self.media_seen: set[str] = set()
        self.expire_all = False
        self.errors: dict[str, str] = {}
        self.notes: list[str] = []
        self._t0 = time.monotonic()
        self._order: list[str] = []
        # A batch the source has committed whose progress the ledger does not hold yet:
        # (pending entry, step, rows).  It is written with the next batch's pending entry
        # (one ledger commit a batch instead of two) or by _flush_done at the end of the
        # table.  Until then its pending entry stays, so a run killed meanwhile counts the
        # batch when it resumes (_reconcile), exactly as one killed just after the delete.
        self._done: tuple[int, str, int] | None = None

    def _clock(self) -> datetime:
        """Naive UTC "now" for the ledger: the run's ``now`` plus the time spent since."""
        return naive_utc(self.now) + timedelta(seconds=int(time.monotonic() - self._t0))

    # -- ledger writes -------------------------------------------------------------

    def _start(self) -> None:
        plan = self.plan
        if plan.resume_of is not None:
            self.purge_id = plan.resume_of
            with self.ledger.transaction() as conn:
                row = conn.execute(sa.select(L.purges).where(L.purges.c.id == self.purge_id)).one()._mapping
                stored = _json(row["plan"], {}) or {}
                conn.execute(
                    L.purges.update()
                    .where(L.purges.c.id == self.purge_id)
                    .values(status="running", error=None, finished_at=None)
                )
                self.ledger.append_audit(
                    conn, "purge", "purge.resumed", self.customer,
                    {"purge_id": self.purge_id, "kind": row["kind"], "was": row["status"]},
                )  # fmt: skip
            self.before = {k: int(v) for k, v in (stored.get("before") or {}).items()}
            self.stored_plan = stored
            self.expire_all = bool(stored.get("expire_all"))
            event("purge_resumed", customer=self.customer, purge_id=self.purge_id)
            return
        # reapply: deleted data that came back (a restored backup), added to the case's first
        # purge; once a retention purge is done nothing of the case is retained any more
        addendum = self._addendum() if plan.kind == "reapply" else {}
        self.expire_all = plan.kind == "retention" and plan.forced_reason is not None
        self.expire_all = self.expire_all or bool(addendum.get("retention_done"))
        self.before = {t.table: t.delete + t.retained + t.kept_shared for t in plan.tables}
        stored = {
            "name": plan.name,
            "tenancy": plan.tenancy,
            "termination_date": plan.termination_date,
            "before": self.before,
            "deleted": plan.deleted,
            "retained": plan.retention,
            "kept_shared": plan.kept_shared,
            "media": {"delete": plan.media_files, "kept_shared": plan.media_kept_shared},
            "exports": [_export_summary(e) for e in plan.exports],
            "closure": plan.closure_pending,
            "expire_all": self.expire_all,
        }
        self.stored_plan = json.loads(_dumps(stored))
        addendum_to = addendum.get("purge_id")
        with self.ledger.transaction() as conn:
            self.purge_id = int(
                conn.execute(
                    L.purges.insert().values(
                        customer=self.customer,
                        identity_id=self.ledger.case_id(conn, self.customer),
                        kind=plan.kind,
                        started_at=naive_utc(self.now),
                        status="running",
                        plan=_dumps(stored),
                        forced_reason=plan.forced_reason,
                        recorded_by=self.ledger.actor,
                    )
                ).inserted_primary_key[0]  # type: ignore[index]
            )
            details = {
                "purge_id": self.purge_id,
                "kind": plan.kind,
                "termination_date": plan.termination_date,
                "rows": sum(self.before.values()),
                "tables": len(plan.tables),
                "forced": plan.forced_reason is not None,
                "plan_sha256": text_sha256(_dumps(stored)),
            }
            if addendum_to is not None:
                details["addendum_to"] = addendum_to
            started = _START_EVENTS.get(plan.kind, "purge.started")
            self.ledger.append_audit(conn, "purge", started, self.customer, details)
            if plan.forced_reason is not None:
                self.ledger.append_audit(
                    conn, "purge", "purge.forced", self.customer,
                    {"purge_id": self.purge_id, "purge_due_at": plan.purge_due_at},
                )  # fmt: skip
        event("purge_started", customer=self.customer, purge_id=self.purge_id, kind=plan.kind)

    def _bump(self, conn: Connection, step: str, rows: int, batches: int = 1, done: bool | None = None) -> None:
        values: dict[str, Any] = {"updated_at": utcnow()}
        p = L.purge_progress
        current = conn.execute(
            sa.select(p.c.rows, p.c.batches, p.c.done).where(p.c.purge_id == self.purge_id, p.c.step == step)
        ).first()
        if current is None:
            conn.execute(
                p.insert().values(
                    purge_id=self.purge_id, step=step, rows=rows, batches=batches, done=bool(done), **values
                )
            )
            return
        values.update(rows=current.rows + rows, batches=current.batches + batches)
        if done is not None:
            values["done"] = done
        conn.execute(p.update().where(p.c.purge_id == self.purge_id, p.c.step == step).values(**values))

    def _mark(self, step: str, done: bool = True) -> None:
        """Mark ``step`` done, with the lazily kept batch (``_done``) in the same commit."""
        with self.ledger.transaction() as conn:
            self._write_done(conn)
            self._bump(conn, step, 0, 0, done)
        self._done = None

    def _record_pending(
        self,
        step: str,
        keys: list[tuple[Any, ...]],
        candidates: dict[str, set[str]],
        media: list[tuple[str, dict[str, Any]]],
    ) -> int | None:
        """Before the source deletes: the batch's keys, the people and files it names.

        The same transaction records the batch before it as done (see ``_done``)."""
        with self.ledger.transaction() as conn:
            self._write_done(conn)
            pending_id = None
            if keys:
                pending_id = int(
                    conn.execute(
                        L.purge_keys.insert().values(
                            purge_id=self.purge_id,
                            table_name=PENDING + step,
                            key=json.dumps(_enc_keys(keys), separators=(",", ":")),
                        )
                    ).inserted_primary_key[0]  # type: ignore[index]
                )
            rows = []
            for table, new in candidates.items():
                for key in sorted(new - self.candidates.setdefault(table, set())):
                    rows.append({"purge_id": self.purge_id, "table_name": table, "key": key})
            fresh: set[str] = set()
            for path, values in media:
                if path not in self.media_seen and path not in fresh:
                    fresh.add(path)
                    rows.append(
                        {
                            "purge_id": self.purge_id,
                            "table_name": MEDIA + "file",
                            "key": json.dumps([path, {k: _enc(v) for k, v in values.items()}], ensure_ascii=False),
                        }
                    )
            if rows:
                conn.execute(L.purge_keys.insert(), rows)
        self._done = None
        for table, new in candidates.items():
            self.candidates.setdefault(table, set()).update(new)
        self.media_seen.update(path for path, _ in media)
        return pending_id

    def _record_done(self, pending_id: int | None, step: str, rows: int) -> None:
        """After the source committed a batch: its progress, now or with the next batch.

        A batch with a pending entry is recorded lazily (``_done``); one without (a table
        without a primary key) at once, as nothing could reconcile it."""
        if pending_id is not None:
            self._flush_done()
            self._done = (pending_id, step, rows)
        else:
            with self.ledger.transaction() as conn:
                self._write_done(conn)
                self._bump(conn, step, rows, 1)
            self._done = None
        event("purge_batch", level=logging.DEBUG, customer=self.customer, table=step, rows=rows)

    def _write_done(self, conn: Connection) -> None:
        """Record the lazily kept batch (``_done``) in the ledger transaction ``conn``."""
        if self._done is not None:
            pending_id, step, rows = self._done
            conn.execute(L.purge_keys.delete().where(L.purge_keys.c.id == pending_id))
            self._bump(conn, step, rows, 1)

    def _drop_pending(self, pending_id: int | None) -> None:
        """A batch the source refused (a reference blocked it; its transaction rolled back,
        so nothing of it was deleted): its pending entry goes, or a resumed run would
        count its rows as deleted, and a later pass that deletes them would count them
        again."""
        if pending_id is not None:
            with self.ledger.transaction() as conn:
                conn.execute(L.purge_keys.delete().where(L.purge_keys.c.id == pending_id))

    def _flush_done(self) -> None:
        """The lazily kept batch, recorded now (at the end of a table)."""
        if self._done is not None:
            with self.ledger.transaction() as conn:
                self._write_done(conn)
            self._done = None

    def _load_state(self) -> None:
        """Candidates and media files this purge recorded before (a resumed run)."""
        with self.ledger.engine.connect() as conn:
            rows = conn.execute(
                sa.select(L.purge_keys.c.table_name, L.purge_keys.c.key).where(L.purge_keys.c.purge_id == self.purge_id)
            ).all()
        for name, key in rows:
            if name.startswith(MEDIA):
                self.media_seen.add(json.loads(key)[0])
            elif ":" not in name:
                self.candidates.setdefault(name, set()).add(key)

    def _reconcile(self, src: Source) -> None:
        """Pending batches of a killed run: count what the source did delete."""
        with self.ledger.engine.connect() as conn:
            pending = conn.execute(
                sa.select(L.purge_keys.c.id, L.purge_keys.c.table_name, L.purge_keys.c.key).where(
                    L.purge_keys.c.purge_id == self.purge_id, L.purge_keys.c.table_name.like(PENDING + "%")
                )
            ).all()
        for pid, name, text in pending:
            step = name[len(PENDING) :]
            keys = [tuple(_dec(v) for v in k) for k in json.loads(text)]
            table = src.table(step)
            pk = _key_cols(table)
            with src.engine.connect() as sconn:
                left = sum(_count(sconn, table, _key_in(pk, chunk)) for chunk in _chunks(keys, _CHUNK))
            gone = len(keys) - left
            with self.ledger.transaction() as conn:
                conn.execute(L.purge_keys.delete().where(L.purge_keys.c.id == pid))
                self._bump(conn, step, gone, 1 if gone else 0)
            event("purge_reconciled", customer=self.customer, table=step, rows=gone)

    # -- deleting ------------------------------------------------------------------

    def _report(self, table: str, rows: int) -> None:
        if self.progress is not None and rows:
            self.progress(table, rows, self.before.get(table))

    def _via_targets(self, src: Source, scope: _Scope, t: str) -> list[tuple[str, str, str]]:
        """(owned_via table, column of ``t``, target column) for references out of ``t``."""
        out = []
        for v in scope.via:
            for s_name, s_col, target in src.datamap.info[v].via_sources:
                if s_name == t:
                    out.append((v, s_col, target))
        return out

    def _delete_table(self, src: Source, scope: _Scope, t: str) -> int:
        table = src.table(t)
        pk = _key_cols(table)
        if not pk:
            return self._delete_without_key(src, scope, t)
        via = self._via_targets(src, scope, t)
        media = self.settings.media
        mcols = _media_columns(media) if media is not None and media.table == t else []
        extra_cols = [table.c[c] for _, c, _ in via] + [table.c[c] for c in mcols]
        self_edges = scope.self_edges.get(t, [])
        total = 0
        # Batches walk the table in key order (each select starts after the last key of
        # the one before, instead of scanning from the start again); at the end one more
        # select from the start finds rows written behind the walk.  A self-referencing
        # table is read from the start every time (deleting a row frees its parent).
        after: tuple[Any, ...] | None = None
        while True:
            where = [scope.doomed(t)]
            if self_edges:  # deepest first: rows no row of the table references any more
                where.append(sa.not_(sa.or_(*[scope._ref_exists(t, e, None) for e in self_edges])))
            elif after is not None:
                where.append(_key_after(pk, after))
            stalled = False
            pending_id: int | None = None
            n = 0
            try:
                with src.engine.begin() as conn:
                    rows = conn.execute(sa.select(*pk, *extra_cols).where(*where).order_by(*pk).limit(self.batch)).all()
                    if not rows:
                        stalled = bool(self_edges) and _count(conn, table, scope.doomed(t)) > 0
                    else:
                        keys = [tuple(r[: len(pk)]) for r in rows]
                        candidates: dict[str, set[str]] = {}
                        for i, (v, _col, _target) in enumerate(via, start=len(pk)):
                            found = _named_keys([r[i] for r in rows])
                            if found:
                                candidates.setdefault(v, set()).update(found)
                        files: list[tuple[str, dict[str, Any]]] = []
                        for r in rows:
                            tail = r[len(pk) :]
                            if mcols and media is not None:
                                values = dict(zip(mcols, tail[len(via) :], strict=True))
                                path = _media_path(media, values)
                                if path is not None:
                                    files.append((path, values))
                        # The ledger learns what goes before the source forgets it.
                        pending_id = self._record_pending(t, keys, candidates, files)
                        _kill_point("pending")
                        n += _delete_keys(conn, table, pk, keys)
            except sa.exc.IntegrityError as exc:
                self._drop_pending(pending_id)
                raise _Blocked(t, describe_db_error(exc)) from None
            except sa.exc.SQLAlchemyError as exc:
                raise _db_error(f"deleting from {t} failed", exc) from None
            if not rows and after is not None:
                after = None  # the walk is done: once more from the start
                continue
            if rows and not self_edges:
                after = tuple(rows[-1][: len(pk)])
            if not rows:
                if stalled:
                    broken = sum(self._break_cycle(src, scope, t, e) for e in self_edges)
                    total += broken
                    if broken:
                        continue
                break
            _kill_point("delete")
            self._record_done(pending_id, t, n)
            _kill_point("batch")
            total += n
            self._report(t, n)
        return total

    def _break_cycle(self, src: Source, scope: _Scope, t: str, edge: Edge) -> int:
        """Rows of ``t`` that reference each other in a cycle: null the link, delete them."""
        table = src.table(t)
        pk = _key_cols(table)
        if not all(table.c[c].nullable for c in edge.child_cols):
            raise OperationalError(
                f"cannot delete from {t}: its rows reference each other in a cycle through "
                f"{t}.{','.join(edge.child_cols)}, which is NOT NULL"
            )
        event("purge_cycle", customer=self.customer, table=t)
        try:
            with src.engine.begin() as conn:
                keys = [tuple(r) for r in conn.execute(sa.select(*pk).where(scope.doomed(t)).order_by(*pk))]
                pending_id = self._record_pending(t, keys, {}, [])
                for chunk in _chunks(keys, _CHUNK):
                    conn.execute(table.update().where(_key_in(pk, chunk)).values({c: None for c in edge.child_cols}))
                n = 0
                for chunk in _chunks(keys, _CHUNK):
                    n += conn.execute(table.delete().where(_key_in(pk, chunk))).rowcount or 0
        except sa.exc.IntegrityError as exc:
            raise _Blocked(t, describe_db_error(exc)) from None
        except sa.exc.SQLAlchemyError as exc:
            raise _db_error(f"deleting from {t} failed", exc) from None
        self._record_done(pending_id, t, n)
        self._report(t, n)
        return n

    def _delete_without_key(self, src: Source, scope: _Scope, t: str) -> int:
        """A table without a primary key: delete rows by their values, batch by batch.

        No keys to record as pending, so a kill between the source's commit and the
        ledger's can under-count one batch; the rows themselves still all go.  (DML never
        carries the ownership condition: MariaDB cannot run a DELETE with a WITH clause.)
        A value match that the column collation would widen to rows outside the
        customer's data is refused instead of deleted.
        """
        table = src.table(t)
        cols = list(table.columns)
        names = [c.name for c in cols]
        via = self._via_targets(src, scope, t)
        media = self.settings.media
        mcols = _media_columns(media) if media is not None and media.table == t else []
        total = 0
        while True:
            try:
                with src.engine.begin() as conn:
                    rows = conn.execute(sa.select(*cols).where(scope.doomed(t)).limit(min(self.batch, 200))).all()
                    if not rows:
                        break
                    candidates: dict[str, set[str]] = {}
                    files: list[tuple[str, dict[str, Any]]] = []
                    for r in rows:
                        values = dict(zip(names, r, strict=True))
                        for v, col, _target in via:
                            if values[col] is not None:
                                candidates.setdefault(v, set()).add(_key_json((values[col],)))
                        if mcols and media is not None:
                            path = _media_path(media, {c: values[c] for c in mcols})
                            if path is not None:
                                files.append((path, {c: values[c] for c in mcols}))
                    if candidates or files:
                        self._record_pending(t, [], candidates, files)
                    n = 0
                    for row in {tuple(r) for r in rows}:
                        match = [c.is_(None) if v is None else c == v for c, v in zip(cols, row, strict=True)]
                        if _count(conn, table, *match) != _count(conn, table, *match, scope.doomed(t)):
                            raise OperationalError(
                                f"cannot delete from {t} safely: it has no primary key and a row of the "
                                "customer equals (by the column collation) a row outside the customer's data"
                            )
                        n += conn.execute(table.delete().where(*match)).rowcount or 0
            except sa.exc.IntegrityError as exc:
                raise _Blocked(t, describe_db_error(exc)) from None
            except sa.exc.SQLAlchemyError as exc:
                raise _db_error(f"deleting from {t} failed", exc) from None
            _kill_point("delete")
            self._record_done(None, t, n)
            _kill_point("batch")
            total += n
            self._report(t, n)
        return total

    def _delete_candidates(self, src: Source, scope: _Scope, t: str) -> int:
        """owned_via rows: delete those nothing references any more, keep the others."""
        table = src.table(t)
        pk = _key_cols(table)
        keys = _decode_keys(self.candidates.get(t, set()))
        total = 0
        any_ref = scope.any_ref(t)
        progressed = True
        while progressed:
            progressed = False
            for chunk in _chunks(keys, self.batch):
                pending_id: int | None = None
                try:
                    with src.engine.begin() as conn:
                        found = []
                        for sub in _chunks(chunk, _CHUNK):
                            stmt = (
                                sa.select(*pk)
                                .where(_key_in(pk, sub), _not_true(any_ref))
                                .order_by(*pk)
                                .with_for_update()
                            )
                            found += [tuple(r) for r in conn.execute(stmt)]
                        if not found:
                            continue
                        pending_id = self._record_pending(t, found, {}, [])
                        _kill_point("pending")
                        n = 0
                        for sub in _chunks(found, _CHUNK):
                            n += conn.execute(table.delete().where(_key_in(pk, sub))).rowcount or 0
                except sa.exc.IntegrityError as exc:
                    self._drop_pending(pending_id)
                    raise _Blocked(t, describe_db_error(exc)) from None
                except sa.exc.SQLAlchemyError as exc:
                    raise _db_error(f"deleting from {t} failed", exc) from None
                _kill_point("delete")
                self._record_done(pending_id, t, n)
                _kill_point("batch")
                total += n
                progressed = progressed or n > 0
                self._report(t, n)
            # Deleting rows of ``t`` frees other rows of ``t`` only through a reference of
            # ``t`` to itself; without one, another round would find nothing new.
            progressed = progressed and bool(scope.self_edges.get(t))
        return total

    def _minimise(self, src: Source, scope: _Scope, t: str) -> int:
        """Blank the personal columns of retained rows kept only because retained rows reference them."""
        keep = scope.ret(t) if t in scope.via else scope.minimise_cond(t)
        if keep is None or t in scope.retain_until:
            return 0
        values, dirty = scope.personal(t)
        if not values or dirty is None:
            return 0
        table = src.table(t)
        pk = _key_cols(table)
        if not pk:
            raise OperationalError(f"cannot minimise retained rows of {t}: it has no primary key")
        total = 0
        if t in scope.via:
            # "not yet blank" before the reference test: once all are blank (the next pass),
            # the database never has to collect the references from outside
            conds = [keep, dirty, _not_true(scope.other_ref(t))]
            groups: list[list[ColumnElement[bool]]] = [
                [_key_in(pk, chunk)] for chunk in _chunks(_decode_keys(self.candidates.get(t, set())), _CHUNK)
            ]
        else:
            conds = [keep, dirty]
            groups = [[]]
        for group in groups:
            total += self._update_in_batches(
                src, table, [*group, *conds], values, "minimise:" + t, f"minimising retained rows of {t} failed"
            )
        return total

    def _update_in_batches(
        self, src: Source, table: sa.Table, where: list[Any], values: dict[str, Any], step: str, failure: str
    ) -> int:
        """Set ``values`` on the rows matching ``where`` (which they no longer match once
        set), a batch of keys per source transaction, each batch's count recorded under
        ``step``; the rows changed."""
        pk = _key_cols(table)
        total = 0
        while True:
            try:
                with src.engine.begin() as conn:
                    stmt = sa.select(*pk).where(*where).order_by(*pk).limit(self.batch)
                    keys = [tuple(r) for r in conn.execute(stmt)]
                    if not keys:
                        break
                    n = 0
                    for chunk in _chunks(keys, _CHUNK):
                        n += conn.execute(table.update().where(_key_in(pk, chunk)).values(values)).rowcount or 0
            except sa.exc.SQLAlchemyError as exc:
                raise _db_error(failure, exc) from None
            with self.ledger.transaction() as lconn:
                self._bump(lconn, step, n)
            total += n
            if n == 0 or len(keys) < self.batch:
                break  # all there were (rows written meanwhile: the next pass, then verification)
        return total

    def _unlink(self, src: Source, scope: _Scope, edges: list[Edge]) -> None:
        """Null the customer's declared back-references that close a cycle between tables."""
        for e in edges:
            table = src.table(e.child)
            linked = sa.or_(*[table.c[c].isnot(None) for c in e.child_cols])
            self._update_in_batches(
                src,
                table,
                [scope.going(e.child), linked],
                {c: None for c in e.child_cols},
                f"unlink:{e.child}.{','.join(e.child_cols)}",
                f"unlinking {e.label} failed",
            )

    def _capture(self, src: Source, scope: _Scope) -> None:
        """owned_via candidates, before any row that names them is deleted."""
        for t in sorted(scope.via):
            table = src.table(t)
            pk = _key_cols(table)
            if not pk:
                raise ConfigError(f"{self.settings.label}: [tables.{t}] owned_via needs a primary key on {t}")
            try:
                with src.engine.connect() as conn:
                    found = {_key_json(tuple(r)) for r in conn.execute(sa.select(*pk).where(src.predicate(t)))}
            except sa.exc.SQLAlchemyError as exc:
                raise _db_error(f"cannot read {t}", exc) from None
            if self.plan.kind == "retention":
                found |= _earlier_keys(self.ledger, self.customer, RETAINED, self.purge_id).get(t, set())
            self._record_pending(t, [], {t: found}, [])
            self._mark("capture:" + t)

    # -- media and exports ---------------------------------------------------------

    def _media_rows(self, states: Sequence[str]) -> list[tuple[int, str, str, dict[str, Any]]]:
        names = [MEDIA + s for s in states]
        with self.ledger.engine.connect() as conn:
            rows = conn.execute(
                sa.select(L.purge_keys.c.id, L.purge_keys.c.table_name, L.purge_keys.c.key)
                .where(L.purge_keys.c.purge_id == self.purge_id, L.purge_keys.c.table_name.in_(names))
                .order_by(L.purge_keys.c.id)
            ).all()
        out = []
        for rid, name, text in rows:
            path, values = json.loads(text)
            out.append((rid, name[len(MEDIA) :], path, {k: _dec(v) for k, v in (values or {}).items()}))
        return out

    def _set_media(self, conn: Connection, ids: Sequence[int], state: str) -> None:
        if ids:
            conn.execute(L.purge_keys.update().where(L.purge_keys.c.id.in_(list(ids))).values(table_name=MEDIA + state))

    def _media(self, src: Source, scope: _Scope) -> None:
        media = self.settings.media
        if media is None or media.table not in scope.owned:
            return
        store = MediaStore(media)
        # A killed run may have left files marked "deleting": finish them.
        left = self._media_rows(["deleting"])
        if left:
            for _rid, _state, path, _values in left:
                try:
                    store.delete(path)
                except MediaProblem:
                    pass  # it changed since it was classified: it stays (verification says so)
            with self.ledger.transaction() as conn:
                self._set_media(conn, [r[0] for r in left], "deleted")
                self._bump(conn, "media:files", len(left), 1)
        refs = _MediaRefs(self.settings, src, scope, self.ledger, store)
        try:
            todo = self._media_rows(["file"])
            for batch in _chunks(todo, self.batch):
                marks: dict[str, list[int]] = {}
                found: dict[int, FileId] = {}
                for rid, _s, path, _v in batch:
                    try:
                        fid = store.identify(path)
                    except MediaProblem:
                        marks.setdefault("unsafe", []).append(rid)
                        continue
                    if not fid.exists:
                        marks.setdefault("missing", []).append(rid)
                    elif not fid.regular:
                        marks.setdefault("unsafe", []).append(rid)
                    else:
                        found[rid] = fid
                classes = refs.classify(list({f.real: f for f in found.values()}.values()))
                doomed: list[tuple[int, str]] = []
                paths = {rid: path for rid, _s, path, _v in batch}
                for rid, fid in found.items():
                    cls = classes.get(fid.real, "free")
                    if cls == "free":
                        doomed.append((rid, paths[rid]))
                    else:
                        marks.setdefault(cls, []).append(rid)
                with self.ledger.transaction() as conn:
                    for cls, ids in marks.items():
                        self._set_media(conn, ids, cls)
                    self._set_media(conn, [rid for rid, _ in doomed], "deleting")
                _kill_point("pending")
                refused = []
                for rid, path in doomed:
                    try:
                        store.delete(path)
                    except MediaProblem:
                        refused.append(rid)  # became a folder (or a link out) since: left alone
                _kill_point("delete")
                with self.ledger.transaction() as conn:
                    self._set_media(conn, [rid for rid, _ in doomed if rid not in refused], "deleted")
                    self._set_media(conn, refused, "unsafe")
                    self._bump(conn, "media:files", len(doomed) - len(refused), 1)
                _kill_point("batch")
                self._report("media files", len(doomed) - len(refused))
        finally:
            refs.close()
            self.notes += refs.notes
        self._mark("media:files")

    def _exports(self) -> list[int]:
        """Overwrite and remove the export packages learnexit wrote for the customer."""
        removed = []
        for row in _ledger_rows(self.ledger, L.exports, self.customer):
            if not row.get("path") or row["status"] == "removed":
                continue
            paths = package_paths(str(row["path"]))
            odd = [p for p in paths if os.path.lexists(p) and not looks_like_package(p)]
            if odd:
                self.errors["exports"] = (
                    f"export #{row['id']}: {odd[0]} does not look like an export package; not removed"
                )
                continue
            try:
                for p in paths:
                    if os.path.lexists(p):
                        destroy_path(p)
            except OSError as exc:
                self.errors["exports"] = f"export #{row['id']}: cannot remove {exc.filename}: {exc.strerror}"
                continue
            with self.ledger.transaction() as conn:
                conn.execute(L.exports.update().where(L.exports.c.id == row["id"]).values(status="removed"))
                self._bump(conn, "exports", 1, 1)
                self.ledger.append_audit(
                    conn, "purge", "export_removed", self.customer, {"export_id": row["id"], "purge_id": self.purge_id}
                )
            removed.append(row["id"])
            event("purge_export_removed", customer=self.customer, export_id=row["id"])
        return removed

    # -- the run -------------------------------------------------------------------

    def go(self) -> PurgeResult:
        self._start()
        try:
            return self._go()
        except BaseException as exc:
            self._fail(exc)
            raise

    def _fail(self, exc: BaseException) -> None:
        if isinstance(exc, LearnexitError):
            text = exc.message
        elif isinstance(exc, KeyboardInterrupt):
            text = "interrupted"
        else:
            text = first_line(exc)
        text = scrub(text)[:2000]
        try:
            with self.ledger.transaction() as conn:
                conn.execute(
                    L.purges.update()
                    .where(L.purges.c.id == self.purge_id)
                    .values(status="failed", error=text, finished_at=self._clock())
                )
                self.ledger.append_audit(
                    conn, "purge", "purge.failed", self.customer, {"purge_id": self.purge_id, "error": text[:300]}
                )
        except LearnexitError:
            event("purge_failure_not_recorded", level=logging.ERROR, customer=self.customer, purge_id=self.purge_id)
        # WARNING: the error itself reaches the user once, as the command's error line
        # (or, with --due, as the run's purge_due_failed event)
        event("purge_failed", level=logging.WARNING, customer=self.customer, purge_id=self.purge_id, error=text)

    def _go(self) -> PurgeResult:
        plan = self.plan
        settings = self.settings
        # The certificate at the end needs WeasyPrint: import it meanwhile, while the
        # database does the deleting (SQLite and the drivers run without the GIL).
        threading.Thread(target=_preload_pdf, name="learnexit-preload", daemon=True).start()
        if plan.closure_pending:
            counts = run_closure(settings, self.ledger, self.customer, now=self.now)
            with self.ledger.transaction() as conn:
                self._bump(conn, "closure", sum(counts.values()), 1, True)
        self._load_state()
        termination = plan.termination_date
        with _open_source(settings, self.ledger, self.customer, row_may_be_gone=True) as src:
            if src.datamap.unclassified():
                raise Refused(f"unclassified tables appeared: {', '.join(src.datamap.unclassified())}")
            scope = _Scope(settings, src, termination, self.now, expire_all=self.expire_all)
            self._reconcile(src)
            self._capture(src, scope)
            unlink, refusals = _back_edges(settings, src, scope)
            if refusals:
                raise Refused(refusals[0])
            blocked: dict[str, str] = {}
            for passno in range(1, MAX_PASSES + 1):
                # Pass 1 deletes; later passes sweep rows written meanwhile and retry
                # tables a late reference blocked.
                self._unlink(src, scope, unlink)
                deleted = 0
                blocked = {}
                for t in scope.children_first:
                    # (a run that fails leaves its last batch's progress to _reconcile)
                    try:
                        if t in scope.via:
                            deleted += self._delete_candidates(src, scope, t)
                        else:
                            deleted += self._delete_table(src, scope, t)
                    except _Blocked as exc:
                        self._flush_done()
                        blocked[t] = exc.detail
                        event("purge_blocked", level=logging.WARNING, customer=self.customer, table=t, passno=passno)
                        continue
                    self._minimise(src, scope, t)
                    if passno == 1:
                        self._mark(t)  # with the table's last batch: one commit
                        event("purge_table", customer=self.customer, table=t, rows=self._progress_rows(t))
                    else:
                        self._flush_done()
                if passno > 1 and not blocked and deleted == 0:
                    break
            if blocked:
                t, detail = next(iter(blocked.items()))
                raise OperationalError(
                    f"cannot delete from {t}: rows are still referenced by data outside the customer's ({detail})"
                )
            self._media(src, scope)
        removed = self._exports()
        return self._finish(removed)

    def _progress_rows(self, step: str) -> int:
        with self.ledger.engine.connect() as conn:
            return int(
                conn.execute(
                    sa.select(L.purge_progress.c.rows).where(
                        L.purge_progress.c.purge_id == self.purge_id, L.purge_progress.c.step == step
                    )
                ).scalar()
                or 0
            )

    def _finish(self, removed: list[int]) -> PurgeResult:
        verification, problems, retention, kept, media = self._verify()
        if self.errors:
            problems += list(self.errors.values())
        with self.ledger.engine.connect() as conn:
            progress = {
                r.step: int(r.rows)
                for r in conn.execute(
                    sa.select(L.purge_progress.c.step, L.purge_progress.c.rows).where(
                        L.purge_progress.c.purge_id == self.purge_id
                    )
                )
            }
        tables = self._order or list(verification["tables"])
        deleted = {t: progress.get(t, 0) for t in tables}
        result = PurgeResult(
            customer=self.customer,
            status="done" if not problems else "failed",
            kind=self.plan.kind,
            purge_id=self.purge_id,
            name=str(self.stored_plan.get("name") or self.plan.name),
            deleted=deleted,
            retention=retention,
            kept_shared=kept,
            media=media,
            exports=[
                dict(e, status="removed" if e.get("id") in removed else e.get("status"))
                for e in self.stored_plan.get("exports", [])
            ],
            verified=not problems,
            verification=verification,
            problems=problems,
            forced_reason=self.plan.forced_reason,
            resumed=self.plan.resume_of is not None,
            notes=self.notes,
        )
        summary = {
            "purge_id": self.purge_id,
            "verified": result.verified,
            "deleted": sum(deleted.values()),
            "retained": sum(result.retained.values()),
            "kept_shared": sum(kept.values()),
            "media_deleted": media.get("deleted", 0),
            "exports_removed": removed,
        }
        if problems:
            error = "verification failed: " + "; ".join(problems[:5])
            result.error = error
            result.exit_code = 1
            with self.ledger.transaction() as conn:
                conn.execute(
                    L.purges.update()
                    .where(L.purges.c.id == self.purge_id)
                    .values(
                        status="failed",
                        finished_at=self._clock(),
                        deleted=_dumps(deleted),
                        retained=_dumps(retention),
                        kept_shared=_dumps(kept),
                        verified=False,
                        verification=_dumps(verification),
                        error=scrub(error)[:2000],
                    )
                )
                self.ledger.append_audit(conn, "purge", "purge.failed", self.customer, summary)
            event("purge_verification_failed", level=logging.ERROR, customer=self.customer, problems=len(problems))
            return result
        with self.ledger.transaction() as conn:
            head = self.ledger.append_audit(conn, "purge", "purge.verified", self.customer, summary)
        result.audit_head = head
        finished = self._clock()
        from .certificate import write_certificate

        facts = self._certificate_facts(finished)
        addendum = facts.get("addendum_to")
        path, digest = write_certificate(self.settings, result, facts, self.lang)
        result.certificate = str(path)
        with self.ledger.transaction() as conn:
            # No file names stay in the ledger once the files are gone: keep their hashes.
            media_rows = conn.execute(
                sa.select(L.purge_keys.c.id, L.purge_keys.c.key).where(
                    L.purge_keys.c.purge_id == self.purge_id, L.purge_keys.c.table_name.like(MEDIA + "%")
                )
            ).all()
            for rid, text in media_rows:
                path_text = json.loads(text)[0]
                if not str(path_text).startswith("sha256:"):
                    hashed = "sha256:" + hashlib.sha256(str(path_text).encode("utf-8")).hexdigest()
                    conn.execute(
                        L.purge_keys.update().where(L.purge_keys.c.id == rid).values(key=json.dumps([hashed, {}]))
                    )
            retained_rows = []
            for t in result.retention:
                if t in self._via_tables:
                    for key in self._retained_keys.get(t, []):
                        retained_rows.append({"purge_id": self.purge_id, "table_name": RETAINED + t, "key": key})
            if retained_rows:
                conn.execute(L.purge_keys.insert(), retained_rows)
            conn.execute(
                L.purges.update()
                .where(L.purges.c.id == self.purge_id)
                .values(
                    status="done",
                    finished_at=finished,
                    deleted=_dumps(deleted),
                    retained=_dumps(retention),
                    kept_shared=_dumps(kept),
                    verified=True,
                    verification=_dumps(verification),
                    certificate=str(path),
                    error=None,
                )
            )
            done = {"purge_id": self.purge_id, "certificate_sha256": digest, "audit_head": head,
                    "retained_sha256": text_sha256(_dumps(retention)), "finished_at": finished}  # fmt: skip
            if addendum is not None:
                done["addendum_to"] = addendum.get("purge_id")
            finished_event = _DONE_EVENTS.get(self.plan.kind, "purge.done")
            self.ledger.append_audit(conn, "purge", finished_event, self.customer, done)
            if self.plan.kind == "full":
                # The customer's row is gone: a row that later gets the same key is a new
                # customer, with a case of its own (the retention purge still runs for this one).
                self.ledger.finish_case(conn, self.ledger.case_id(conn, self.customer))
        event("purge_done", customer=self.customer, purge_id=self.purge_id, rows=sum(deleted.values()))
        return result

    def _certificate_facts(self, finished: datetime) -> dict[str, Any]:
        return {
            "vendor": self.settings.vendor_name,
            "termination_date": self.plan.termination_date,
            "started_at": self._started_at(),
            "finished_at": aware(finished),
            "backup_note": self.settings.purge.backup_note,
            "timezone": self.settings.contract.timezone,
            "actor": self.ledger.actor,
            "delivered": self._delivered(),
            "addendum_to": self._addendum() if self.plan.kind == "reapply" else None,
            "contested": dict(self.plan.contested),
        }

    def _delivered(self) -> set[int]:
        """The exports ``confirm`` recorded as delivered (the certificate lists only those)."""
        from .handover import delivered_export_ids

        with self.ledger.engine.connect() as conn:
            return delivered_export_ids(conn, self.customer)

    def _addendum(self) -> dict[str, Any]:
        """The certificate a reapply purge's addendum extends (its case's first)."""
        from .reapply import addendum_facts

        return addendum_facts(self.ledger, self.customer)

    def _started_at(self) -> datetime | None:
        with self.ledger.engine.connect() as conn:
            value = conn.execute(sa.select(L.purges.c.started_at).where(L.purges.c.id == self.purge_id)).scalar()
        return aware(value)

    def _verify(
        self,
    ) -> tuple[dict[str, Any], list[str], dict[str, dict[str, Any]], dict[str, int], dict[str, int]]:
        """Re-discover and re-count: zero owned rows outside retention, zero media files."""
        problems: list[str] = []
        tables: dict[str, dict[str, int]] = {}
        retention: dict[str, dict[str, Any]] = {}
        kept: dict[str, int] = {}
        self._via_tables: set[str] = set()
        self._retained_keys: dict[str, list[str]] = {}
        settings = self.settings
        with _open_source(settings, self.ledger, self.customer, row_may_be_gone=True) as src:
            scope = _Scope(settings, src, self.plan.termination_date, self.now, expire_all=self.expire_all)
            self._via_tables = set(scope.via)
            self._order = list(scope.children_first)
            new = src.datamap.unclassified()
            if new:
                problems.append(f"unclassified tables appeared during the purge: {', '.join(new)}")
            try:
                with src.snapshot() as conn:
                    for t in scope.children_first:
                        table = src.table(t)
                        keep = scope.ret(t)
                        entry = {"before": self.before.get(t, 0), "after": 0, "retained": 0, "kept_shared": 0}
                        if t in scope.via:
                            pk = _key_cols(table)
                            other = scope.other_ref(t)
                            # after: pred, not other, not keep; kept_shared: pred and other;
                            # retained: pred, not other, keep
                            flags = _flag_counts(conn, table, [src.predicate(t)], other, keep)
                            entry["after"] = sum(n for (o, k), n in flags.items() if not o and not k)
                            retained_keys: list[str] = []
                            flag_cols = [sa.case((c, 1), else_=0) for c in (other, keep) if c is not None]
                            for chunk in _chunks(_decode_keys(self.candidates.get(t, set())), _CHUNK):
                                # candidates outside the customer's data now: kept for others
                                # (other), retained (keep), or left over — one statement
                                inside = [_key_in(pk, chunk), _not_true(src.predicate(t))]
                                stmt = sa.select(*pk, *flag_cols).where(*inside).order_by(*pk)
                                for r in conn.execute(stmt):
                                    o, k = r[len(pk)], (r[len(pk) + 1] if keep is not None else 0)
                                    if o:
                                        entry["kept_shared"] += 1
                                    elif k:
                                        retained_keys.append(_key_json(tuple(r[: len(pk)])))
                                    else:
                                        entry["after"] += 1
                            entry["kept_shared"] += sum(n for (o, _k), n in flags.items() if o)
                            entry["retained"] = len(retained_keys)
                            entry["retained"] += sum(n for (o, k), n in flags.items() if not o and k)
                            self._retained_keys[t] = retained_keys
                            if entry["retained"]:
                                values, dirty = scope.personal(t)
                                if dirty is not None:
                                    unblanked = 0
                                    for chunk in _chunks(_key_from_list(retained_keys), _CHUNK):
                                        unblanked += _count(conn, table, _key_in(pk, chunk), dirty)
                                    if unblanked:
                                        problems.append(f"{t}: {unblanked} retained rows still hold personal data")
                        else:
                            entry["after"] = _count(conn, table, scope.doomed(t))
                            entry["retained"] = _count(conn, table, keep) if keep is not None else 0
                            shared = scope.shared_only(t)
                            entry["kept_shared"] = _count(conn, table, shared) if shared is not None else 0
                            kept_cond = scope.minimise_cond(t)
                            if kept_cond is not None and (entry["retained"] or entry["kept_shared"]):
                                _values, dirty = scope.personal(t)
                                if dirty is not None:
                                    unblanked = _count(conn, table, kept_cond, dirty)
                                    if unblanked:
                                        problems.append(f"{t}: {unblanked} kept rows still hold personal data")
                        if entry["after"]:
                            problems.append(f"{t}: {entry['after']} rows of the customer are still there")
                        if entry["retained"]:
                            until, basis, reason = scope.retention_info(t)
                            retention[t] = {
                                "rows": entry["retained"],
                                "until": until.isoformat() if until else None,
                                "legal_basis": basis,
                                "reason": reason,
                                "minimised": list(scope.personal(t)[0]) if reason else [],
                            }
                        if entry["kept_shared"]:
                            kept[t] = entry["kept_shared"]
                        tables[t] = entry
            except sa.exc.SQLAlchemyError as exc:
                raise _db_error("verification could not read the source", exc) from None
        media: dict[str, int] = {}
        if settings.media is not None:
            rows = self._media_rows(MEDIA_STATES)
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
            media = {
                "deleted": media.get("deleted", 0),
                "kept_shared": media.get("kept_shared", 0),
                "retained": media.get("retained", 0),
                "missing": media.get("missing", 0),
                "unsafe": media.get("unsafe", 0),
                "left": still,
            }
        for row in _ledger_rows(self.ledger, L.exports, self.customer):
            if row.get("path") and any(os.path.lexists(p) for p in package_paths(str(row["path"]))):
                problems.append(f"export #{row['id']} is still at {Path(str(row['path'])).name}")
        verification = {"tables": tables, "media": media, "problems": problems, "checked_at": self.now}
        return json.loads(_dumps(verification)), problems, retention, kept, media


def _key_from_list(keys: list[str]) -> list[tuple[Any, ...]]:
    return [_key_from_json(k) for k in keys]


class _Blocked(Exception):
    """A delete failed on a foreign key: someone still references the rows (retry later)."""

    def __init__(self, table: str, detail: str) -> None:
        super().__init__(f"{table}: {detail}")
        self.table = table
        self.detail = detail


# --------------------------------------------------------------------------- entry points


def _lang(settings: Settings, lang: str | None) -> str:
    value = lang or settings.export.lang
    if value not in LANGS:
        raise BadInput(f"--lang must be one of {', '.join(LANGS)}, not {value!r}")
    return value


def _execute(
    settings: Settings,
    ledger: Ledger,
    customer: str,
    now: datetime,
    force_reason: str | None,
    lang: str,
    progress: Progress | None,
) -> PurgeResult:
    settings = settings.for_customer(customer)  # ({customer} in [media] root)
    plan = plan_purge(settings, ledger, customer, now, force_reason)
    if plan.refusals:
        raise Refused("; ".join(plan.refusals))
    if plan.kind == "none":
        last = plan.last_purge or {}
        return PurgeResult(
            customer=customer,
            status="nothing",
            kind=None,
            purge_id=last.get("id"),
            name=plan.name,
            certificate=last.get("certificate"),
            verified=True,
            notes=plan.notes,
        )
    return _Run(settings, ledger, plan, now, lang, progress).go()


def execute_purge(
    settings: Settings,
    ledger: Ledger,
    customer: str,
    now: datetime | None = None,
    *,
    force_reason: str | None = None,
    lang: str | None = None,
    progress: Progress | None = None,
) -> PurgeResult:
    """Purge ``customer`` now (or resume its unfinished purge), under the ledger's purge lock.

    Raises Busy (4) when another purge runs, Refused (3) when the plan refuses,
    OperationalError (1) when execution fails (the purge row is ``failed``; run again to
    resume).  A failed verification returns a result with ``status == "failed"`` and
    ``exit_code == 1``.
    """
    now = _aware_now(settings, now)
    language = _lang(settings, lang)
    check_customer_key(customer)
    with _purge_lock(settings, ledger):
        return _execute(settings, ledger, customer, now, force_reason, language, progress)


def due_work(
    settings: Settings, ledger: Ledger, now: datetime | None = None
) -> tuple[list[tuple[str, str, int | None]], list[dict[str, Any]], list[dict[str, Any]]]:
    """(customers to purge now with the reason and, for an earlier case of a key that now
    names a new customer, that case's id; customers skipped and why; customers whose
    ledger records disagree with the audit, with the error: failed, nothing decided for
    them) — reads only."""
    now = _aware_now(settings, now)
    work: list[tuple[str, str, int | None]] = []
    skipped: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    disagree = all_problems(ledger)  # one read of the ledger for every customer
    for customer in sorted(set(known_customers(ledger)) | disagree.keys()):
        try:
            for case_id in [*ledger.earlier_cases(customer), None]:
                if case_id is None:
                    found = _due_reason(settings, ledger, customer, now, disagree.get(customer, []))
                else:
                    with ledger.use_case(customer, case_id):
                        found = _due_reason(settings, ledger, customer, now, disagree.get(customer, []))
                if found is None:
                    continue
                why, skip = found
                if skip is not None:
                    skipped.append({"customer": customer, "reason": skip, "would": why})
                else:
                    work.append((customer, why, case_id))
        except VerificationFailed as exc:
            failed.append({"customer": customer, "error": exc.message})
    return work, skipped, failed


def _due_reason(
    settings: Settings, ledger: Ledger, customer: str, now: datetime, problems: list[str]
) -> tuple[str, str | None] | None:
    """Why the customer's current case is due for a purge now (and why it is skipped).
    VerificationFailed when its records disagree with the audit (``problems``): whatever
    they say is not acted on, due or not."""
    if problems:
        raise refusal(problems)
    facts = customer_facts(ledger, customer)
    purges = _ledger_rows(ledger, L.purges, customer)
    last = purges[-1] if purges else None
    why: str | None = None
    if last is not None and last["status"] in ("running", "failed"):
        why = f"resume purge #{last['id']} ({last['status']})"
    elif facts.timeline is None or (facts.withdrawn and not purges):
        return None
    elif not any(p["status"] == "done" and p["kind"] == "full" for p in purges):
        due = contract.effective_purge_due_at(facts)
        if due is not None and now >= due and not facts.withdrawn:
            why = f"purge due since {due:%Y-%m-%d %H:%MZ}"
    else:
        done = [p for p in purges if p["status"] == "done"]
        pending = _pending_retention(done[-1])
        due_day = _retention_due_day(pending)
        if due_day is not None and contract.today(settings.contract.timezone, now) >= due_day:
            why = f"retention purge due since {due_day.isoformat()}"
    if why is None:
        return None
    if facts.hold_active:
        return why, "legal hold"
    if _exports_running(settings, ledger, customer):
        return why, "export running"
    return why, None


@contextmanager
def _case(ledger: Ledger, customer: str, case_id: int | None) -> Iterator[None]:
    """Work on an earlier case of ``customer`` (None: the current one)."""
    if case_id is None:
        yield
    else:
        with ledger.use_case(customer, case_id):
            yield


def plan_due(
    settings: Settings, ledger: Ledger, now: datetime | None = None
) -> tuple[list[str], list[PurgePlan], list[dict[str, Any]]]:
    """What ``purge --due`` would do now: (closures, purge plans, skipped) — reads only.
    The plans include deleting again what came back after a finished purge (``reapply``)."""
    now = _aware_now(settings, now)
    closures = due_closures(settings, ledger, now)
    work, skipped, failed = due_work(settings, ledger, now)
    plans = []
    for item in failed:
        plan = PurgePlan(customer=item["customer"], name=item["customer"], kind="full",
                         tenancy=settings.customer.tenancy, now=now)  # fmt: skip
        plan.refusals.append(item["error"])
        plans.append(plan)
    for customer, _why, case_id in work:
        try:
            with _case(ledger, customer, case_id):
                plans.append(plan_purge(settings, ledger, customer, now))
        except LearnexitError as exc:
            plan = PurgePlan(customer=customer, name=customer, kind="full", tenancy=settings.customer.tenancy, now=now)
            plan.refusals.append(exc.message)
            plans.append(plan)
    from .reapply import due_plans

    again, more = due_plans(settings, ledger, now, work)  # data that came back after a purge
    return closures, plans + again, skipped + more


def purge_due(
    settings: Settings,
    ledger: Ledger,
    now: datetime | None = None,
    *,
    lang: str | None = None,
    confirmed: Sequence[str] | None = None,
    progress: Progress | None = None,
) -> DueReport:
    """Cron mode: exports interrupted on this host reaped (their clear-text builds
    destroyed, ``export.reap_interrupted_exports``), due closures, due purges, due
    retention purges, and the data of finished purges that came back (a restored backup)
    deleted again (``reapply``) — one lock, every customer.

    One customer's failure does not stop the others; ``DueReport.exit_code`` is 1 when
    any failed (3 when the only problems were refusals).  Safe to run every few minutes:
    with nothing due it changes nothing.  ``confirmed`` limits the purges to those
    customers (the ones an operator typed).  Busy (4) when another purge holds the lock.
    """
    now = _aware_now(settings, now)
    language = _lang(settings, lang)
    report = DueReport(now=now)
    with _purge_lock(settings, ledger):
        from .export import reap_interrupted_exports

        report.interrupted_exports = reap_interrupted_exports(ledger)
        for customer in due_closures(settings, ledger, now):
            try:
                rows = run_closure(settings, ledger, customer, now=now)
                report.closures.append({"customer": customer, "rows": rows})
                event("closure_done", customer=customer, rows=sum(rows.values()))
            except LearnexitError as exc:
                report.closures.append({"customer": customer, "error": exc.message})
                event("closure_failed", level=logging.ERROR, customer=customer, error=exc.message)
        work, report.skipped, failed = due_work(settings, ledger, now)
        for item in failed:  # a failure of this run (exit 1); the other customers go on
            event("purge_due_failed", level=logging.ERROR, customer=item["customer"], error=item["error"])
            report.results.append(
                PurgeResult(customer=item["customer"], status="failed", error=item["error"], exit_code=1)
            )
        for customer, why, case_id in work:
            if confirmed is not None and customer not in confirmed:
                report.skipped.append({"customer": customer, "reason": "not confirmed", "would": why})
                continue
            event("purge_due", customer=customer, why=why)
            try:
                with _case(ledger, customer, case_id):
                    result = _execute(settings, ledger, customer, now, None, language, progress)
            except LearnexitError as exc:
                status = "refused" if isinstance(exc, Refused) else "failed"
                result = PurgeResult(customer=customer, status=status, error=exc.message, exit_code=exc.exit_code)
                if status == "failed":
                    event("purge_due_failed", level=logging.ERROR, customer=customer, error=exc.message)
            except Exception as exc:  # noqa: BLE001 - one customer's bug must not stop the others
                text = scrub(f"internal error: {first_line(exc)}")
                result = PurgeResult(customer=customer, status="failed", error=text, exit_code=1)
                event("purge_internal_error", level=logging.ERROR, customer=customer, error=text)
            report.results.append(result)
        from .reapply import reapply_due

        # Finished cases whose data came back (a restored backup): deleted again.
        reapply_due(settings, ledger, now, language, report, work, confirmed=confirmed, progress=progress)
    return report

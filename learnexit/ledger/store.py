"""The ledger store: learnexit's own database of notices, exports, confirmations, holds,
closures, purges, the purge lock and a hash-chained audit log.

It keeps counts, dates, hashes and names of the people who acted — never the
customer's personal data.  The schema (:mod:`.schema`) is created (and migrated) on
first use.  The audit log is append-only; each entry stores the hash of the previous
one, so an edited or deleted entry breaks the chain (``verify_audit``).
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql.elements import ColumnElement

from ..config import mask_url
from ..errors import Busy, OperationalError, Refused, VerificationFailed
from ..source import describe_db_error, make_engine
from .schema import audit, identities, locks, meta_table, migrate, notices

GENESIS = "0" * 64
REHEARSAL_ENV = "LEARNEXIT_NOW"  # (offboarding.clock.NOW_ENV: the clock of tests and rehearsals)
REHEARSED_KEY = "rehearsed_clock"  # meta row: records were made under $LEARNEXIT_NOW


def utcnow() -> datetime:
    """Now, as a naive UTC datetime (what every engine stores the same way)."""
    return datetime.now(UTC).replace(tzinfo=None, microsecond=0)


def aware(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def naive_utc(value: datetime) -> datetime:
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


def current_actor() -> str:
    """Who is acting: $LEARNEXIT_ACTOR, else user@host."""
    actor = os.environ.get("LEARNEXIT_ACTOR")
    if actor:
        return actor[:200]
    try:
        user = getpass.getuser()
    except Exception:
        user = "unknown"
    return f"{user}@{socket.gethostname()}"[:200]


def holder_is_dead(holder: str) -> bool:
    """True when the lock was taken on this host by a process that no longer exists
    (killed by the OOM killer, a reboot, SIGKILL): its lock need not wait to go stale."""
    match = re.search(r" host (\S+) pid (\d+)$", holder)
    if not match or match.group(1) != socket.gethostname():
        return False
    try:
        os.kill(int(match.group(2)), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, owned by someone else
        return False
    return False


def _canonical(value: Any) -> str:
    def default(v: Any) -> Any:
        if isinstance(v, (datetime, date)):
            return v.isoformat()
        raise TypeError(type(v).__name__)

    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=default)


def entry_hash(entry: dict[str, Any]) -> str:
    """The hash of one audit entry: every field but the hash, canonical JSON."""
    payload = {
        "id": entry["id"],
        "at": naive_utc(entry["at"]).isoformat(),
        "actor": entry["actor"],
        "command": entry["command"],
        "customer": entry["customer"],
        "event": entry["event"],
        "details": entry["details"],
        "prev_hash": entry["prev_hash"],
    }
    return hashlib.sha256(_canonical(payload).encode("utf-8")).hexdigest()


@dataclass
class AuditCheck:
    valid: bool
    entries: int
    head: str
    problems: list[str]


class Ledger:
    """The state database.  One instance per command run."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.actor = current_actor()
        self._chosen_cases: dict[str, int] = {}
        self.engine: Engine = make_engine(url, what="state", sqlite_begin="BEGIN IMMEDIATE")
        if self.engine.dialect.name == "sqlite":
            self._ensure_sqlite_folder()
        try:
            migrate(self.engine, utcnow())
        except sa.exc.SQLAlchemyError as exc:
            raise OperationalError(f"cannot open the ledger {mask_url(url)}: {describe_db_error(exc)}") from None

    def _ensure_sqlite_folder(self) -> None:
        database = self.engine.url.database or ""
        if database and database != ":memory:":
            folder = os.path.dirname(os.path.abspath(database))
            if not os.path.isdir(folder):
                raise OperationalError(f"ledger folder {folder} does not exist")

    # -- offboarding cases (identities) ----------------------------------------------

    def case(self, conn: Connection, customer: str) -> dict[str, Any] | None:
        """The customer key's current case: the one chosen with ``use_case``, else the latest."""
        stmt = sa.select(identities).where(identities.c.customer == customer)
        chosen = self._chosen_cases.get(customer)
        if chosen is not None:
            stmt = stmt.where(identities.c.id == chosen)
        row = conn.execute(stmt.order_by(identities.c.id.desc()).limit(1)).first()
        return dict(row._mapping) if row is not None else None

    def earlier_cases(self, customer: str) -> list[int]:
        """Ids of the key's cases before its current one (finished by a purge)."""
        with self.engine.connect() as conn:
            ids = [int(r[0]) for r in conn.execute(
                sa.select(identities.c.id).where(identities.c.customer == customer).order_by(identities.c.id)
            )]  # fmt: skip
        return ids[:-1]

    def case_of(self, customer: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            return self.case(conn, customer)

    def in_case(self, conn: Connection, table: sa.Table, customer: str) -> ColumnElement[bool]:
        """Where-clause: ``table``'s records of the customer key's current case."""
        if "identity_id" not in table.c:  # a table of facts about records (deliveries): by key
            return table.c.customer == customer
        case = self.case(conn, customer)
        if case is None:
            return sa.false()
        return sa.and_(table.c.customer == customer, table.c.identity_id == case["id"])

    @contextmanager
    def use_case(self, customer: str, identity_id: int) -> Iterator[None]:
        """Read and write ``customer``'s records of an earlier case (a retention purge due
        after the key was given to a new customer)."""
        self._chosen_cases[customer] = identity_id
        try:
            yield
        finally:
            self._chosen_cases.pop(customer, None)

    def open_case(self, conn: Connection, customer: str, row_pk: str | None) -> int:
        """The case a new record of ``customer`` belongs to, opened or pinned as needed.

        A finished case (its full purge done) is never reopened for a different row: a
        row that now has the same key is a new customer with a case of its own."""
        case = self.case(conn, customer)
        if case is not None and (case["finished_at"] is None or case["row_pk"] in (None, row_pk)):
            if case["row_pk"] is None and row_pk is not None:
                conn.execute(identities.update().where(identities.c.id == case["id"]).values(row_pk=row_pk))
            elif row_pk is not None and case["row_pk"] != row_pk:
                raise Refused(
                    f"the source row of {customer!r} is not the one its offboarding case was opened for; "
                    "nothing was recorded"
                )
            return int(case["id"])
        key = conn.execute(
            identities.insert().values(customer=customer, row_pk=row_pk, opened_at=utcnow(), opened_by=self.actor)
        ).inserted_primary_key
        assert key is not None
        return int(key[0])

    def case_id(self, conn: Connection, customer: str) -> int:
        """The current case's id, for a record that needs an open case (confirm, purge)."""
        case = self.case(conn, customer)
        return int(case["id"]) if case is not None else self.open_case(conn, customer, None)

    def finish_case(self, conn: Connection, identity_id: int) -> None:
        conn.execute(
            identities.update()
            .where(identities.c.id == identity_id, identities.c.finished_at.is_(None))
            .values(finished_at=utcnow())
        )

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        try:
            with self.engine.begin() as conn:
                if self.engine.dialect.name == "sqlite":
                    # Take the write lock at once, so concurrent writers queue up
                    # instead of failing half-way (upgrade deadlock).
                    pass
                yield conn
        except sa.exc.SQLAlchemyError as exc:
            raise OperationalError(f"ledger write failed: {describe_db_error(exc)}") from None

    # -- audit ------------------------------------------------------------------

    def append_audit(
        self,
        conn: Connection,
        command: str,
        event: str,
        customer: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> str:
        """Append an entry to the chain inside the caller's transaction; returns its hash.

        Under a rehearsed clock (``$LEARNEXIT_NOW``) the entry says so (``"clock":
        "rehearsed"``) and the ledger is marked (``rehearsed_clock``): its dates may lie
        in the real future, and ``status`` and ``audit`` say why."""
        rehearsed = bool(os.environ.get(REHEARSAL_ENV))
        if rehearsed:
            details = {**(details or {}), "clock": "rehearsed"}
        # Serialise appenders so two entries never claim the same predecessor: the
        # audit_count row is locked until this transaction commits (SQLite: the
        # ledger's transactions are BEGIN IMMEDIATE, so they are serial anyway).
        conn.execute(sa.select(meta_table.c.value).where(meta_table.c.key == "audit_count").with_for_update()).all()
        last = conn.execute(sa.select(audit.c.id, audit.c.hash).order_by(audit.c.id.desc()).limit(1)).first()
        entry = {
            "id": (last.id + 1) if last else 1,
            "at": utcnow(),
            "actor": self.actor,
            "command": command,
            "customer": customer,
            "event": event,
            "details": _canonical(details or {}),
            "prev_hash": last.hash if last else GENESIS,
        }
        entry["hash"] = entry_hash(entry)
        conn.execute(audit.insert().values(**entry))
        # The count lives beside the chain, so deleting entries at the end shows too.
        updated = conn.execute(
            meta_table.update().where(meta_table.c.key == "audit_count").values(value=str(entry["id"]))
        )
        if updated.rowcount == 0:
            conn.execute(meta_table.insert().values(key="audit_count", value=str(entry["id"])))
        if rehearsed:
            self._set_meta(conn, REHEARSED_KEY, f"{entry['at']:%Y-%m-%dT%H:%M:%SZ}")
        return str(entry["hash"])

    @staticmethod
    def _set_meta(conn: Connection, key: str, value: str) -> None:
        updated = conn.execute(meta_table.update().where(meta_table.c.key == key).values(value=value))
        if updated.rowcount == 0:
            conn.execute(meta_table.insert().values(key=key, value=value))

    def rehearsed_clock(self) -> str | None:
        """When (real UTC) the last record under a rehearsed clock was made; None: never."""
        try:
            with self.engine.connect() as conn:
                value = conn.execute(sa.select(meta_table.c.value).where(meta_table.c.key == REHEARSED_KEY)).scalar()
        except sa.exc.SQLAlchemyError as exc:
            raise OperationalError(f"cannot read the ledger: {describe_db_error(exc)}") from None
        return None if value is None else str(value)

    def record(
        self, command: str, event: str, customer: str | None = None, details: dict[str, Any] | None = None
    ) -> str:
        """Append one audit entry in its own transaction."""
        with self.transaction() as conn:
            return self.append_audit(conn, command, event, customer, details)

    def audit_entries(self, customer: str | None = None) -> list[dict[str, Any]]:
        stmt = sa.select(audit).order_by(audit.c.id)
        if customer is not None:
            stmt = stmt.where(audit.c.customer == customer)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(stmt)]

    def audit_head(self) -> str:
        with self.engine.connect() as conn:
            head = conn.execute(sa.select(audit.c.hash).order_by(audit.c.id.desc()).limit(1)).scalar()
        return str(head) if head else GENESIS

    def verify_audit(self) -> AuditCheck:
        """Recompute the chain; report edited, reordered or deleted entries."""
        problems: list[str] = []
        prev = GENESIS
        expected_id = 1
        count = 0
        with self.engine.connect() as conn:
            for row in conn.execute(sa.select(audit).order_by(audit.c.id)):
                entry = dict(row._mapping)
                count += 1
                if entry["id"] != expected_id:
                    problems.append(f"entry {expected_id} is missing (next is {entry['id']})")
                if entry["prev_hash"] != prev:
                    problems.append(f"entry {entry['id']}: does not follow the previous entry (chain broken)")
                if entry_hash(entry) != entry["hash"]:
                    problems.append(f"entry {entry['id']}: content does not match its hash (edited)")
                prev = entry["hash"]
                expected_id = entry["id"] + 1
            recorded = conn.execute(sa.select(meta_table.c.value).where(meta_table.c.key == "audit_count")).scalar()
        if recorded is not None and int(recorded) > count:
            problems.append(f"{int(recorded) - count} entries at the end are missing")
        return AuditCheck(not problems, count, prev, problems)

    def assert_audit_valid(self) -> None:
        check = self.verify_audit()
        if not check.valid:
            raise VerificationFailed("audit chain broken: " + check.problems[0])

    # -- the purge lock -------------------------------------------------------------

    @contextmanager
    def lock(self, name: str = "purge", stale_after: timedelta = timedelta(hours=1)) -> Iterator[None]:
        """Hold a named lock in the ledger; Busy (exit 4) when someone else holds it."""
        holder = f"{self.actor} host {socket.gethostname()} pid {os.getpid()}"
        now = utcnow()
        try:
            with self.engine.begin() as conn:
                current = conn.execute(sa.select(locks).where(locks.c.name == name)).first()
                if current is not None:
                    if now - current.heartbeat_at < stale_after and not holder_is_dead(current.holder):
                        raise Busy(
                            f"another purge is running ({current.holder}, since {current.acquired_at:%Y-%m-%dT%H:%M:%SZ})"
                        )
                    conn.execute(
                        locks.delete().where(locks.c.name == name).where(locks.c.heartbeat_at == current.heartbeat_at)
                    )
                conn.execute(locks.insert().values(name=name, holder=holder, acquired_at=now, heartbeat_at=now))
        except sa.exc.IntegrityError:
            raise Busy("another purge is running (it took the lock a moment ago)") from None
        except sa.exc.OperationalError as exc:
            if "locked" in str(exc).lower():
                raise Busy("another purge is running (the ledger is locked)") from None
            raise
        try:
            yield
        finally:
            with self.engine.begin() as conn:
                conn.execute(locks.delete().where(locks.c.name == name).where(locks.c.holder == holder))

    def heartbeat(self, name: str = "purge") -> None:
        with self.engine.begin() as conn:
            conn.execute(locks.update().where(locks.c.name == name).values(heartbeat_at=utcnow()))

    # -- simple reads -----------------------------------------------------------------

    def rows(self, table: sa.Table, customer: str | None = None) -> list[dict[str, Any]]:
        """A ledger table's rows; with ``customer``, those of the key's current case."""
        stmt = sa.select(table).order_by(table.c.id)
        with self.engine.connect() as conn:
            if customer is not None:
                stmt = stmt.where(self.in_case(conn, table, customer))
            return [dict(r._mapping) for r in conn.execute(stmt)]

    def customers(self) -> list[str]:
        """Every customer the ledger knows of (a notice was recorded)."""
        with self.engine.connect() as conn:
            return sorted({r[0] for r in conn.execute(sa.select(notices.c.customer).distinct())})

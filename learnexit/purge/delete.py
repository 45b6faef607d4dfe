"""Deleting the customer's rows: live predicates, bounded batches, one transaction per batch.

A batch selects at most ``[purge] batch_size`` keys with the *current* ownership
predicate (never a stale list), records them as pending in the ledger
(:class:`~learnexit.purge.journal.Journal`), deletes them by key (MySQL forbids a DELETE
whose subquery reads the same table), and commits.  Rows written for the customer while
the purge runs are found by the next select.  Children before parents; a
self-reference deepest rows first, a cycle in the data by clearing the nullable link
inside one transaction.  People (``owned_via``) go only when nothing references them any
more.  :class:`Blanker` blanks the personal columns of kept rows and clears the
references that close a cycle between tables.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from ..config import Settings
from ..errors import ConfigError, OperationalError
from ..logs import event
from ..media_paths import media_columns
from ..source import Edge, Source, describe_db_error
from ..source.keys import chunks, key_after, key_cols, key_in, plain_rows, tables_with_rows
from ..source.sqlite_fk import ParentDeletes
from .conditions import count_rows, db_error, not_true
from .faults import Faults
from .history import earlier_keys
from .journal import RETAINED, Journal
from .keys import CHUNK, decode_keys, delete_keys, key_json, keys_per_statement, named_keys
from .media import media_path
from .scope import Scope

__all__ = ["PEEL_SECONDS", "Blanker", "Blocked", "Deleter"]

# A self-referencing table's batch goes level by level in one transaction (``Deleter._peel``)
# for at most about this long: a deep chain whose reference has no index is a scan of the
# table per level, and the batch's transaction holds SQLite's write lock meanwhile.
PEEL_SECONDS = 1.0


class Blocked(Exception):
    """A delete failed on a foreign key: someone still references the rows (retry later)."""

    def __init__(self, table: str, detail: str) -> None:
        super().__init__(f"{table}: {detail}")
        self.table = table
        self.detail = detail


class _LeftNaming(Exception):
    """A delete without enforced foreign keys left a row naming a deleted one."""


class Deleter:
    """Deletes one customer's rows table by table, recording every batch in the journal."""

    def __init__(
        self,
        settings: Settings,
        journal: Journal,
        src: Source,
        scope: Scope,
        faults: Faults,
        report: Callable[[str, int], None],
    ) -> None:
        self.settings = settings
        self.journal = journal
        self.customer = journal.customer
        self.src = src
        self.scope = scope
        self.faults = faults
        self.report = report
        self.batch = settings.purge.batch_size
        self.parents = ParentDeletes(src.engine) if src.engine.dialect.name == "sqlite" else None
        self.weighed: dict[str, bool] = {}  # ``checked_once`` of a table's batches, this pass

    def capture(self, retention: bool) -> None:
        """owned_via candidates, before any row that names them is deleted (``retention``:
        with the people earlier purges retained)."""
        for t in sorted(self.scope.via):
            table = self.src.table(t)
            pk = key_cols(table)
            if not pk:
                raise ConfigError(f"{self.settings.label}: [tables.{t}] owned_via needs a primary key on {t}")
            try:
                with self.src.engine.connect() as conn:
                    found = {key_json(tuple(r)) for r in conn.execute(sa.select(*pk).where(self.src.predicate(t)))}
            except sa.exc.SQLAlchemyError as exc:
                raise db_error(f"cannot read {t}", exc) from None
            if retention:
                found |= earlier_keys(self.journal.ledger, self.customer, RETAINED, self.journal.purge_id).get(t, set())
            self.journal.record_pending(t, [], {t: found}, [])
            self.journal.mark("capture:" + t)

    def settle(self) -> None:
        """The rounds the scope's cycles of tables need on the rows there are now (a new
        pass: its tables are weighed again, ``checked_once``)."""
        self.weighed.clear()
        try:
            with self.src.engine.connect() as conn:
                self.scope.settle(conn)
        except sa.exc.SQLAlchemyError as exc:
            raise db_error("cannot read the source", exc) from None

    def holding_rows(self, names: list[str]) -> set[str]:
        """The tables of ``names`` that hold any row now: the others have nothing to
        delete, and a schema of mostly empty tables costs what its rows cost."""
        try:
            with self.src.engine.connect() as conn:
                return tables_with_rows(conn, [self.src.table(t) for t in names])
        except sa.exc.SQLAlchemyError as exc:
            raise db_error("cannot read the source", exc) from None

    def via_targets(self, t: str) -> list[tuple[str, str, str]]:
        """(owned_via table, column of ``t``, target column) for references out of ``t``."""
        out = []
        for v in self.scope.via:
            for s_name, s_col, target in self.src.datamap.info[v].via_sources:
                if s_name == t:
                    out.append((v, s_col, target))
        return out

    def delete_table(self, t: str) -> int:
        """Delete the customer's doomed rows of ``t`` (not owned_via), a batch per transaction."""
        table = self.src.table(t)
        pk = key_cols(table)
        if not pk:
            return self._without_key(t)
        via = self.via_targets(t)
        media = self.settings.media
        mcols = media_columns(media) if media is not None and media.table == t else []
        extra_cols = [table.c[c] for _, c, _ in via] + [table.c[c] for c in mcols]
        self_edges = self.scope.self_edges.get(t, [])
        unchecked = not self_edges and checked_once(self, t, None)
        total = 0
        # Batches walk the table in key order (each select starts after the last key of
        # the one before, instead of scanning from the start again); at the end one more
        # select from the start finds rows written behind the walk.  A self-referencing
        # table is read from the start every time (deleting a row frees its parent).
        after: tuple[Any, ...] | None = None
        while True:
            where = [self.scope.doomed(t)]
            if self_edges:  # deepest first: rows no row of the table references any more
                where.append(sa.not_(sa.or_(*[self.scope.ref_exists(t, e, None) for e in self_edges])))
            elif after is not None:
                where.append(key_after(pk, after))
            stalled = False
            pending_id: int | None = None
            n = 0
            try:
                with batch_transaction(self, unchecked) as conn:
                    select = sa.select(*pk, *extra_cols).where(*where).order_by(*pk)
                    rows = plain_rows(conn, select.limit(self.batch))
                    last, peeled = rows, 0
                    if self_edges and rows:  # the levels below too, in this transaction
                        rows, last, peeled = self._peel(conn, table, select, rows)
                    if not rows:
                        stalled = bool(self_edges) and count_rows(conn, table, self.scope.doomed(t)) > 0
                    else:
                        # (rows of the key alone are the keys: plain tuples already)
                        keys = [tuple(r[: len(pk)]) for r in rows] if extra_cols else rows
                        candidates = via_candidates(via, rows, len(pk))
                        files = media_files(media, mcols, rows, len(pk) + len(via))
                        # The ledger learns what goes before the source forgets it.
                        pending_id = self.journal.record_pending(t, keys, candidates, files)
                        self.faults.reached("pending")
                        gone = keys if last is rows else [tuple(r[: len(pk)]) for r in last]
                        n += peeled + delete_keys(conn, table, pk, gone)
                        refuse_left_naming(self, conn, table, unchecked)
            except _LeftNaming:
                self.journal.drop_pending(pending_id)
                event("purge_enforced_again", customer=self.customer, table=t)
                unchecked = self.weighed[t] = False  # the same batch again, enforced
                continue
            except sa.exc.IntegrityError as exc:
                self.journal.drop_pending(pending_id)
                raise Blocked(t, describe_db_error(exc)) from None
            except sa.exc.SQLAlchemyError as exc:
                raise db_error(f"deleting from {t} failed", exc) from None
            if not rows and after is not None:
                after = None  # the walk is done: once more from the start
                continue
            if rows and not self_edges:
                after = tuple(rows[-1][: len(pk)])
            if not rows:
                if stalled:
                    broken = sum(self._break_cycle(t, e) for e in self_edges)
                    total += broken
                    if broken:
                        continue
                break
            self.faults.reached("delete")
            self.journal.record_done(pending_id, t, n)
            self.faults.reached("batch")
            total += n
            self.report(t, n)
        return total

    def _peel(
        self, conn: sa.Connection, table: sa.Table, select: sa.Select[Any], rows: Sequence[Any]
    ) -> tuple[list[Any], list[Any], int]:
        """A self-referencing table's rows that no row references (``rows``), then the rows
        deleting them frees, level after level, in one transaction and one batch: a chain
        of 24 forum posts was 24 transactions and 24 ledger commits.  Each level but the
        last is deleted here (uncommitted: the ledger records the whole batch as pending
        before the source commits).  A batch stops peeling after ``PEEL_SECONDS`` (the
        next batch goes on), so its transaction stays short.  Returns every row selected,
        the last level (to delete), and the rows deleted here."""
        pk = key_cols(table)
        gathered, last, deleted = list(rows), list(rows), 0
        until = time.monotonic() + PEEL_SECONDS
        while len(gathered) < self.batch and time.monotonic() < until:
            deleted += delete_keys(conn, table, pk, [tuple(r[: len(pk)]) for r in last])
            last = plain_rows(conn, select.limit(self.batch - len(gathered)))
            if not last:
                break
            gathered += last
        return gathered, last, deleted

    def _break_cycle(self, t: str, edge: Edge) -> int:
        """Rows of ``t`` that reference each other in a cycle: null the link, delete them."""
        table = self.src.table(t)
        pk = key_cols(table)
        if not all(table.c[c].nullable for c in edge.child_cols):
            raise OperationalError(
                f"cannot delete from {t}: its rows reference each other in a cycle through "
                f"{t}.{','.join(edge.child_cols)}, which is NOT NULL"
            )
        event("purge_cycle", customer=self.customer, table=t)
        try:
            with self.src.engine.begin() as conn:
                keys = [tuple(r) for r in conn.execute(sa.select(*pk).where(self.scope.doomed(t)).order_by(*pk))]
                pending_id = self.journal.record_pending(t, keys, {}, [])
                for chunk in chunks(keys, CHUNK):
                    conn.execute(table.update().where(key_in(pk, chunk)).values({c: None for c in edge.child_cols}))
                n = 0
                for chunk in chunks(keys, CHUNK):
                    n += conn.execute(table.delete().where(key_in(pk, chunk))).rowcount or 0
        except sa.exc.IntegrityError as exc:
            raise Blocked(t, describe_db_error(exc)) from None
        except sa.exc.SQLAlchemyError as exc:
            raise db_error(f"deleting from {t} failed", exc) from None
        self.journal.record_done(pending_id, t, n)
        self.report(t, n)
        return n

    def _without_key(self, t: str) -> int:
        """A table without a primary key: delete rows by their values, batch by batch.

        No keys to record as pending, so a kill between the source's commit and the
        ledger's can under-count one batch; the rows themselves still all go.  (DML never
        carries the ownership condition: MariaDB cannot run a DELETE with a WITH clause.)
        A value match that the column collation would widen to rows outside the
        customer's data is refused instead of deleted.
        """
        table = self.src.table(t)
        cols = list(table.columns)
        names = [c.name for c in cols]
        via = self.via_targets(t)
        media = self.settings.media
        mcols = media_columns(media) if media is not None and media.table == t else []
        total = 0
        while True:
            try:
                with self.src.engine.begin() as conn:
                    rows = conn.execute(sa.select(*cols).where(self.scope.doomed(t)).limit(min(self.batch, 200))).all()
                    if not rows:
                        break
                    candidates: dict[str, set[str]] = {}
                    files: list[tuple[str, dict[str, Any]]] = []
                    for r in rows:
                        values = dict(zip(names, r, strict=True))
                        for v, col, _target in via:
                            if values[col] is not None:
                                candidates.setdefault(v, set()).add(key_json((values[col],)))
                        if mcols and media is not None:
                            path = media_path(media, {c: values[c] for c in mcols})
                            if path is not None:
                                files.append((path, {c: values[c] for c in mcols}))
                    if candidates or files:
                        self.journal.record_pending(t, [], candidates, files)
                    n = 0
                    for row in {tuple(r) for r in rows}:
                        match = [c.is_(None) if v is None else c == v for c, v in zip(cols, row, strict=True)]
                        if count_rows(conn, table, *match) != count_rows(conn, table, *match, self.scope.doomed(t)):
                            raise OperationalError(
                                f"cannot delete from {t} safely: it has no primary key and a row of the "
                                "customer equals (by the column collation) a row outside the customer's data"
                            )
                        n += conn.execute(table.delete().where(*match)).rowcount or 0
            except sa.exc.IntegrityError as exc:
                raise Blocked(t, describe_db_error(exc)) from None
            except sa.exc.SQLAlchemyError as exc:
                raise db_error(f"deleting from {t} failed", exc) from None
            self.faults.reached("delete")
            self.journal.record_done(None, t, n)
            self.faults.reached("batch")
            total += n
            self.report(t, n)
        return total

    def delete_candidates(self, t: str) -> int:
        """owned_via rows: delete those nothing references any more, keep the others."""
        keys = decode_keys(self.journal.candidates.get(t, set()))
        total = 0
        any_ref = self.scope.any_ref(t)
        progressed = True
        while progressed:
            progressed = False
            for chunk in chunks(keys, self.batch):
                pending_id, n = candidates_batch(self, t, chunk, any_ref, checked_once(self, t, len(chunk)))
                if pending_id is None:
                    continue
                self.faults.reached("delete")
                self.journal.record_done(pending_id, t, n)
                self.faults.reached("batch")
                total += n
                progressed = progressed or n > 0
                self.report(t, n)
            # Deleting rows of ``t`` frees other rows of ``t`` only through a reference of
            # ``t`` to itself; without one, another round would find nothing new.
            progressed = progressed and bool(self.scope.self_edges.get(t))
        return total


def checked_once(deleter: Deleter, t: str, rows: int | None) -> bool:
    """Whether to delete ``rows`` rows of ``t`` (None: a batch of the customer's rows in
    it, counted once a pass — ``groupable`` and ``delete_table`` both ask) with SQLite's
    foreign keys checked once per referencing table, not per row (``ParentDeletes``):
    only where some referencing table would be scanned per row."""
    if deleter.parents is None:
        return False
    if rows is None:
        if t not in deleter.weighed:
            deleter.weighed[t] = _weigh(deleter, t, None)
        return deleter.weighed[t]
    return _weigh(deleter, t, rows)


def _weigh(deleter: Deleter, t: str, rows: int | None) -> bool:
    assert deleter.parents is not None
    name = deleter.src.table(t).name
    try:
        with deleter.src.engine.connect() as conn:
            if not deleter.parents.scanned_per_row(conn, name):
                return False
            if rows is None:  # (the customer's rows: an upper bound, cheaper to count than the doomed ones)
                rows = min(deleter.batch, count_rows(conn, deleter.src.table(t), deleter.src.predicate(t)))
            return deleter.parents.worth_it(conn, name, rows)
    except sa.exc.SQLAlchemyError as exc:
        raise db_error("cannot read the source", exc) from None


def batch_transaction(deleter: Deleter, unchecked: bool) -> AbstractContextManager[sa.Connection]:
    """The transaction a batch deletes in: with SQLite's foreign keys off, checked once
    before the commit (``unchecked``, see ``refuse_left_naming``), or enforced row by row."""
    if unchecked and deleter.parents is not None:
        return deleter.parents.unenforced()
    return deleter.src.engine.begin()


def refuse_left_naming(deleter: Deleter, conn: sa.Connection, table: sa.Table, unchecked: bool) -> None:
    """In an ``unchecked`` batch's transaction: a row left naming a deleted one raises
    ``_LeftNaming``, which rolls the batch back (the caller deletes it again, enforced)."""
    if unchecked and deleter.parents is not None and deleter.parents.left_naming(conn, table.name):
        raise _LeftNaming


def candidates_batch(
    deleter: Deleter, t: str, chunk: Sequence[tuple[Any, ...]], any_ref: ColumnElement[bool], unchecked: bool
) -> tuple[int | None, int]:
    """Delete the rows of ``chunk`` (owned_via keys of ``t``) nothing references any
    more, in one transaction: (their pending batch, rows deleted); (None, 0) when none
    is free.  ``unchecked``: with foreign keys checked once before the commit, and
    again with them enforced when that check finds a row left naming a deleted one."""
    table = deleter.src.table(t)
    pk = key_cols(table)
    pending_id: int | None = None
    try:
        with batch_transaction(deleter, unchecked) as conn:
            found = []
            # (as many keys a statement as it takes: each statement collects the
            # references of every referencing table once, a scan of each)
            wide = keys_per_statement(conn) if len(pk) == 1 else CHUNK
            for sub in chunks(chunk, wide):
                stmt = sa.select(*pk).where(key_in(pk, sub), not_true(any_ref)).order_by(*pk).with_for_update()
                found += [tuple(r) for r in conn.execute(stmt)]
            if not found:
                return None, 0
            pending_id = deleter.journal.record_pending(t, found, {}, [])
            deleter.faults.reached("pending")
            n = delete_keys(conn, table, pk, found)
            refuse_left_naming(deleter, conn, table, unchecked)
    except _LeftNaming:
        deleter.journal.drop_pending(pending_id)
        event("purge_enforced_again", customer=deleter.customer, table=t)
        return candidates_batch(deleter, t, chunk, any_ref, False)
    except sa.exc.IntegrityError as exc:
        deleter.journal.drop_pending(pending_id)
        raise Blocked(t, describe_db_error(exc)) from None
    except sa.exc.SQLAlchemyError as exc:
        raise db_error(f"deleting from {t} failed", exc) from None
    return pending_id, n


def media_files(media: Any, mcols: list[str], rows: Sequence[Any], start: int) -> list[tuple[str, dict[str, Any]]]:
    """The media files ``rows`` name: (path, values of the media columns, selected from
    column ``start`` on)."""
    files: list[tuple[str, dict[str, Any]]] = []
    if mcols and media is not None:
        for r in rows:
            values = dict(zip(mcols, r[start:], strict=True))
            path = media_path(media, values)
            if path is not None:
                files.append((path, values))
    return files


def via_candidates(via: list[tuple[str, str, str]], rows: Sequence[Any], start: int) -> dict[str, set[str]]:
    """The people (owned_via keys) ``rows`` name: the ``via`` columns (``Deleter.via_targets``)
    selected after the row's key, from column ``start`` on."""
    candidates: dict[str, set[str]] = {}
    for i, (v, _col, _target) in enumerate(via, start=start):
        found = named_keys([r[i] for r in rows])
        if found:
            candidates.setdefault(v, set()).update(found)
    return candidates


def groupable(deleter: Deleter, t: str) -> bool:
    """``t`` may share a transaction with other small tables (``delete_group``): a
    primary key, no reference to itself, not the media table, and no need of the
    foreign-key check once per referencing table (``checked_once``: a group's
    transaction enforces them row by row)."""
    table = deleter.src.table(t)
    media = deleter.settings.media
    return (
        bool(key_cols(table))
        and t not in deleter.scope.via
        and not deleter.scope.self_edges.get(t)
        and not (media is not None and media.table == t)
        and not checked_once(deleter, t, None)
    )


def delete_group(deleter: Deleter, names: list[str]) -> dict[str, int] | None:
    """The doomed rows of several small tables (``groupable``, children first) in one
    source transaction and one ledger commit: on a schema of hundreds of tables with a
    few rows each, two commits a table were most of the purge.  Each table keeps its
    own pending entry, so a run killed meanwhile reconciles them as single batches.
    None (nothing deleted) when together they hold more than one batch, or when a
    reference blocks a delete: the caller then deletes table by table."""
    pending: dict[str, int] = {}
    counts: dict[str, int] = {}
    try:
        with deleter.src.engine.begin() as conn:
            found: dict[str, list[tuple[Any, ...]]] = {}
            candidates: dict[str, set[str]] = {}
            total = 0
            for t in names:
                table = deleter.src.table(t)
                pk = key_cols(table)
                via = deleter.via_targets(t)
                cols = [*pk, *[table.c[c] for _, c, _ in via]]
                stmt = sa.select(*cols).where(deleter.scope.doomed(t)).order_by(*pk).limit(deleter.batch + 1)
                rows = plain_rows(conn, stmt)
                total += len(rows)
                if total > deleter.batch:
                    return None
                found[t] = [tuple(r[: len(pk)]) for r in rows]
                for v, keys in via_candidates(via, rows, len(pk)).items():
                    candidates.setdefault(v, set()).update(keys)
            pending = deleter.journal.record_pending_tables(found, candidates)
            deleter.faults.reached("pending")
            for t in names:
                table = deleter.src.table(t)
                counts[t] = delete_keys(conn, table, key_cols(table), found[t]) if found[t] else 0
    except sa.exc.IntegrityError:
        for pending_id in pending.values():
            deleter.journal.drop_pending(pending_id)
        return None
    except sa.exc.SQLAlchemyError as exc:
        raise db_error("deleting from " + ", ".join(names) + " failed", exc) from None
    deleter.faults.reached("delete")
    deleter.journal.record_done_tables(pending, counts)
    deleter.faults.reached("batch")
    for t in names:
        if counts[t]:
            deleter.report(t, counts[t])
    return counts


class Blanker:
    """Sets columns of rows that stay: personal columns of kept rows blanked, references
    that close a cycle between tables cleared; a batch of keys per source transaction."""

    def __init__(self, settings: Settings, journal: Journal, src: Source, scope: Scope) -> None:
        self.journal = journal
        self.src = src
        self.scope = scope
        self.batch = settings.purge.batch_size

    def unlink(self, edges: list[Edge]) -> None:
        """Null the customer's declared back-references that close a cycle between tables."""
        for e in edges:
            table = self.src.table(e.child)
            linked = sa.or_(*[table.c[c].isnot(None) for c in e.child_cols])
            self._update_in_batches(
                table,
                [self.scope.going(e.child), linked],
                {c: None for c in e.child_cols},
                f"unlink:{e.child}.{','.join(e.child_cols)}",
                f"unlinking {e.label} failed",
            )

    def minimise(self, t: str) -> int:
        """Blank the personal columns of retained rows kept only because retained rows reference them."""
        keep = self.scope.ret(t) if t in self.scope.via else self.scope.minimise_cond(t)
        if keep is None or t in self.scope.retain_until:
            return 0
        values, dirty = self.scope.personal(t)
        if not values or dirty is None:
            return 0
        table = self.src.table(t)
        pk = key_cols(table)
        if not pk:
            raise OperationalError(f"cannot minimise retained rows of {t}: it has no primary key")
        total = 0
        if t in self.scope.via:
            # "not yet blank" before the reference test: once all are blank (the next pass),
            # the database never has to collect the references from outside
            conds = [keep, dirty, not_true(self.scope.other_ref(t))]
            groups: list[list[ColumnElement[bool]]] = [
                [key_in(pk, chunk)] for chunk in chunks(decode_keys(self.journal.candidates.get(t, set())), CHUNK)
            ]
        else:
            conds = [keep, dirty]
            groups = [[]]
        for group in groups:
            total += self._update_in_batches(
                table, [*group, *conds], values, "minimise:" + t, f"minimising retained rows of {t} failed"
            )
        return total

    def _update_in_batches(
        self, table: sa.Table, where: list[Any], values: dict[str, Any], step: str, failure: str
    ) -> int:
        """Set ``values`` on the rows matching ``where`` (which they no longer match once
        set), a batch of keys per source transaction, each batch's count recorded under
        ``step``; the rows changed."""
        pk = key_cols(table)
        total = 0
        while True:
            try:
                with self.src.engine.begin() as conn:
                    stmt = sa.select(*pk).where(*where).order_by(*pk).limit(self.batch)
                    keys = [tuple(r) for r in conn.execute(stmt)]
                    if not keys:
                        break
                    n = 0
                    for chunk in chunks(keys, CHUNK):
                        n += conn.execute(table.update().where(key_in(pk, chunk)).values(values)).rowcount or 0
            except sa.exc.SQLAlchemyError as exc:
                raise db_error(failure, exc) from None
            with self.journal.ledger.transaction() as lconn:
                self.journal.bump(lconn, step, n)
            total += n
            if n == 0 or len(keys) < self.batch:
                break  # all there were (rows written meanwhile: the next pass, then verification)
        return total

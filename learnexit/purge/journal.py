"""The ledger's bookkeeping of one running purge: pending batches, progress, media files.

**The ledger always knows more than the source.**  Before a batch is deleted its keys
are written to the ledger as *pending* (``purge_keys``), with the ``owned_via`` keys its
rows reference and the media files they name; after the source commits, progress is
recorded and the pending entry dropped — lazily, in the ledger transaction of the next
batch's pending entry (or the table's end), so a batch costs one ledger commit.  A purge
killed anywhere resumes, reconciles pending batches against the source
(:meth:`Journal.reconcile`), and ends in the same state with exact counts.

``purge_keys.table_name`` tells the entries apart: ``pending:<table>`` (a batch),
``retained:<table>`` (people kept by retention, for the later retention purge),
``media:<state>`` (a media file) and the bare table name (``owned_via`` candidates).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy.engine import Connection

from ..ledger.purge_records import (
    add_progress,
    add_purge_key,
    add_purge_keys,
    delete_purge_key,
    mark_steps_done,
    progress_of,
    purge_keys_like,
    purge_keys_named,
    purge_keys_of,
    rename_purge_keys,
    step_progress,
    step_rows,
    update_progress,
)
from ..ledger.store import Ledger, utcnow
from ..logs import event
from ..source import Source
from ..source.keys import chunks, key_cols, key_in
from .conditions import count_rows
from .keys import CHUNK, dec_value, enc_value, keys_text

__all__ = ["MEDIA", "MEDIA_STATES", "PENDING", "RETAINED", "Journal", "MediaEntry"]

# purge_keys.table_name prefixes (the bare table name holds owned_via candidates)
PENDING = "pending:"
RETAINED = "retained:"
MEDIA = "media:"
MEDIA_STATES = ("file", "deleting", "deleted", "missing", "kept_shared", "retained", "unsafe")

MediaEntry = tuple[int, str, str, dict[str, Any]]
"""A media file the purge recorded: (entry id, state, path, the row's path values)."""


class Journal:
    """The ledger records of one purge while it runs (``purge_keys``, ``purge_progress``)."""

    def __init__(self, ledger: Ledger, customer: str, purge_id: int) -> None:
        self.ledger = ledger
        self.customer = customer
        self.purge_id = purge_id
        self.candidates: dict[str, set[str]] = {}
        self.media_seen: set[str] = set()
        # Batches the source has committed whose progress the ledger does not hold yet:
        # (pending entry, step, rows).  They are written with the next batch's pending entry
        # (one ledger commit a batch instead of two) or by flush_done at the end of the
        # table.  Until then its pending entry stays, so a run killed meanwhile counts the
        # batch when it resumes (reconcile), exactly as one killed just after the delete.
        self._done: list[tuple[int, str, int]] = []
        # Tables found with nothing to delete: marked done with the ledger's next commit
        # rather than one commit each (a schema of hundreds of empty tables).  A run killed
        # before that commit looks at them again, and again finds nothing to delete.
        self._marks: list[str] = []

    def bump(self, conn: Connection, step: str, rows: int, batches: int = 1, done: bool | None = None) -> None:
        """Add ``rows`` and ``batches`` to the progress of ``step`` (in transaction ``conn``)."""
        now = utcnow()
        current = step_progress(conn, self.purge_id, step)
        if current is None:
            add_progress(
                conn, purge_id=self.purge_id, step=step, rows=rows, batches=batches, done=bool(done), updated_at=now
            )
            return
        had_rows, had_batches, _ = current
        update_progress(
            conn, self.purge_id, step, updated_at=now, rows=had_rows + rows, batches=had_batches + batches, done=done
        )

    def mark(self, step: str, done: bool = True) -> None:
        """Mark ``step`` done, with the lazily kept batch in the same commit."""
        with self.ledger.transaction() as conn:
            self._write_done(conn)
            self.bump(conn, step, 0, 0, done)

    def mark_later(self, step: str) -> None:
        """Mark ``step`` done with the ledger's next commit: a table with nothing deleted
        in this pass (``flush_done`` writes what is left)."""
        self._marks.append(step)

    def record_pending(
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
                pending_id = self._add_pending(conn, step, keys)
            self._add_candidates(conn, candidates)
            rows = []
            fresh: set[str] = set()
            for path, values in media:
                if path not in self.media_seen and path not in fresh:
                    fresh.add(path)
                    rows.append(
                        {
                            "purge_id": self.purge_id,
                            "table_name": MEDIA + "file",
                            "key": json.dumps([path, {k: enc_value(v) for k, v in values.items()}], ensure_ascii=False),
                        }
                    )
            if rows:
                add_purge_keys(conn, rows)
        self._remember_candidates(candidates)
        self.media_seen.update(path for path, _ in media)
        return pending_id

    def _add_candidates(self, conn: Connection, candidates: dict[str, set[str]]) -> None:
        """The people (owned_via keys) a batch names that this purge has not recorded yet."""
        rows = []
        for table, new in candidates.items():
            for key in sorted(new - self.candidates.setdefault(table, set())):
                rows.append({"purge_id": self.purge_id, "table_name": table, "key": key})
        if rows:
            add_purge_keys(conn, rows)

    def _remember_candidates(self, candidates: dict[str, set[str]]) -> None:
        """After the ledger committed them (``_add_candidates``)."""
        for table, new in candidates.items():
            self.candidates.setdefault(table, set()).update(new)

    def _add_pending(self, conn: Connection, step: str, keys: list[tuple[Any, ...]]) -> int:
        return add_purge_key(
            conn,
            purge_id=self.purge_id,
            table_name=PENDING + step,
            key=keys_text(keys),
        )

    def record_pending_tables(
        self, found: dict[str, list[tuple[Any, ...]]], candidates: dict[str, set[str]]
    ) -> dict[str, int]:
        """Before the source deletes several small tables' rows in one transaction: each
        table's keys as its own pending entry (reconciled table by table, as a single
        batch is) and the people they name, all in one ledger commit with the batches
        before them."""
        with self.ledger.transaction() as conn:
            self._write_done(conn)
            pending = {step: self._add_pending(conn, step, keys) for step, keys in found.items() if keys}
            self._add_candidates(conn, candidates)
        self._remember_candidates(candidates)
        return pending

    def record_done_tables(self, pending: dict[str, int], rows: dict[str, int]) -> None:
        """After the source committed them: each table's batch done, with the next commit."""
        self.flush_done()
        self._done += [(pending_id, step, rows[step]) for step, pending_id in pending.items()]
        for step, pending_id in pending.items():
            event("purge_batch", level=logging.DEBUG, customer=self.customer, table=step, rows=rows[step])

    def record_done(self, pending_id: int | None, step: str, rows: int) -> None:
        """After the source committed a batch: its progress, now or with the next batch.

        A batch with a pending entry is recorded lazily (``_done``); one without (a table
        without a primary key) at once, as nothing could reconcile it."""
        if pending_id is not None:
            self.flush_done()
            self._done.append((pending_id, step, rows))
        else:
            with self.ledger.transaction() as conn:
                self._write_done(conn)
                self.bump(conn, step, rows, 1)
        event("purge_batch", level=logging.DEBUG, customer=self.customer, table=step, rows=rows)

    def _write_done(self, conn: Connection) -> None:
        """Record the lazily kept batch (``_done``) and the tables marked for later in the
        ledger transaction ``conn``."""
        marks, self._marks = self._marks, []
        if marks:
            mark_steps_done(conn, self.purge_id, marks, utcnow())
        done, self._done = self._done, []
        for pending_id, step, rows in done:
            delete_purge_key(conn, pending_id)
            self.bump(conn, step, rows, 1)

    def drop_pending(self, pending_id: int | None) -> None:
        """A batch the source refused (a reference blocked it; its transaction rolled back,
        so nothing of it was deleted): its pending entry goes, or a resumed run would
        count its rows as deleted, and a later pass that deletes them would count them
        again."""
        if pending_id is not None:
            with self.ledger.transaction() as conn:
                delete_purge_key(conn, pending_id)

    def flush_done(self) -> None:
        """The lazily kept batch and the tables marked for later, recorded now."""
        if self._done or self._marks:
            with self.ledger.transaction() as conn:
                self._write_done(conn)

    def load_state(self) -> None:
        """Candidates and media files this purge recorded before (a resumed run)."""
        with self.ledger.engine.connect() as conn:
            rows = purge_keys_of(conn, self.purge_id)
        for name, key in rows:
            if name.startswith(MEDIA):
                self.media_seen.add(json.loads(key)[0])
            elif ":" not in name:
                self.candidates.setdefault(name, set()).add(key)

    def reconcile(self, src: Source) -> None:
        """Pending batches of a killed run: count what the source did delete."""
        with self.ledger.engine.connect() as conn:
            pending = purge_keys_like(conn, self.purge_id, PENDING)
        for pid, name, text in pending:
            step = name[len(PENDING) :]
            keys = [tuple(dec_value(v) for v in k) for k in json.loads(text)]
            table = src.table(step)
            pk = key_cols(table)
            with src.engine.connect() as sconn:
                left = sum(count_rows(sconn, table, key_in(pk, chunk)) for chunk in chunks(keys, CHUNK))
            gone = len(keys) - left
            with self.ledger.transaction() as conn:
                delete_purge_key(conn, pid)
                self.bump(conn, step, gone, 1 if gone else 0)
            event("purge_reconciled", customer=self.customer, table=step, rows=gone)

    def media_rows(self, states: Sequence[str]) -> list[MediaEntry]:
        """The media files recorded in these states, in the order they were recorded."""
        names = [MEDIA + s for s in states]
        with self.ledger.engine.connect() as conn:
            rows = purge_keys_named(conn, self.purge_id, names)
        out = []
        for rid, name, text in rows:
            path, values = json.loads(text)
            out.append((rid, name[len(MEDIA) :], path, {k: dec_value(v) for k, v in (values or {}).items()}))
        return out

    def set_media(self, conn: Connection, ids: Sequence[int], state: str) -> None:
        """Move media entries to ``state`` (in transaction ``conn``)."""
        if ids:
            rename_purge_keys(conn, ids, MEDIA + state)

    def progress_rows(self, step: str) -> int:
        """The rows recorded for ``step`` so far."""
        with self.ledger.engine.connect() as conn:
            return step_rows(conn, self.purge_id, step)

    def progress(self) -> dict[str, int]:
        """The rows recorded for every step."""
        with self.ledger.engine.connect() as conn:
            return progress_of(conn, self.purge_id)

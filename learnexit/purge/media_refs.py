"""Which rows name a media file, and the purge's steps on media files.

Media files go after their rows, and never a file another row still names, under any
spelling (:class:`MediaRefs`, through :class:`~learnexit.purge.media.Matcher`): in the
customer's database, and with database tenancy in every other customer's database too.
:func:`plan_media` counts them for the plan; :func:`delete_media` deletes them, each
file recorded in the journal before (``deleting``) and after (``deleted``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..config import Settings, mask_url, scrub
from ..ledger.records import known_customers
from ..ledger.store import Ledger
from ..media_paths import FileId, MediaProblem, media_columns
from ..source import Source, make_engine
from ..source.keys import chunks, key_cols
from .conditions import db_error, not_true
from .faults import Faults
from .journal import Journal, MediaEntry
from .keys import CHUNK
from .media import Matcher, MediaStore, media_path
from .results import PurgePlan
from .scope import Scope

__all__ = ["MediaRefs", "delete_media", "plan_media"]

_SCAN_ROWS = 2000  # media rows streamed per fetch while checking which files stay
_KEY_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")


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


class MediaRefs:
    """Answers "does any row that stays name this file, under any spelling?" in this
    and the sibling databases (learnexit.purge.media.Matcher), streaming the rows."""

    def __init__(self, settings: Settings, src: Source, scope: Scope, ledger: Ledger, store: MediaStore) -> None:
        self.settings = settings
        self.media = settings.media
        self.src = src
        self.scope = scope
        self.store = store
        self.columns = media_columns(self.media) if self.media else []
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
            path = media_path(self.media, dict(zip(self.columns, row, strict=True)))
            if path is None:
                continue
            for real in matcher.hits(path):
                if cls == "retained" or out[real] == "free":
                    out[real] = cls

    def siblings(self) -> list[tuple[sa.Engine, sa.Table | None]]:
        """The other customers' databases (database tenancy): (engine, media table or None)."""
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
                        raise db_error(f"cannot check media references in {mask_url(url)}", exc) from None
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
        mine = pred if conn is None else sa.and_(pred, not_true(self.scope.doomed(name)))
        try:
            if conn is None:
                with self.src.engine.connect() as own:
                    self._scan(own, table, not_true(pred), matcher, out, "kept_shared")
                    self._scan(own, table, mine, matcher, out, "retained")
            else:
                self._scan(conn, table, not_true(pred), matcher, out, "kept_shared")
                self._scan(conn, table, mine, matcher, out, "retained")
        except sa.exc.SQLAlchemyError as exc:
            raise db_error("cannot check media references", exc) from None
        for engine, sib in self.siblings():
            if sib is None or any(c not in sib.c for c in self.columns):
                continue
            try:
                with engine.connect() as sconn:
                    self._scan(sconn, sib, None, matcher, out, "kept_shared")
            except sa.exc.SQLAlchemyError as exc:
                raise db_error("cannot check media references in another customer's database", exc) from None
        return out

    def close(self) -> None:
        """Dispose of the sibling databases' engines."""
        for engine, _ in self._siblings or []:
            engine.dispose()


def _listed(keys: list[str], limit: int = 10) -> str:
    """Row keys for a message: the first ``limit``, then how many more."""
    shown = ", ".join(keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def plan_media(
    plan: PurgePlan, settings: Settings, src: Source, scope: Scope, ledger: Ledger, conn: Connection
) -> None:
    """The plan's media files: the customer's doomed rows, each file under the path
    rules (a row naming a folder or another non-regular file refuses the purge),
    classified against the rows that stay, a chunk of files at a time."""
    media = settings.media
    assert media is not None
    table = src.table(media.table)
    pk = key_cols(table)
    cols = media_columns(media)
    store = MediaStore(media)
    files: dict[str, FileId] = {}
    unsafe: list[str] = []
    not_files: list[str] = []
    stmt = sa.select(*pk, *[table.c[c] for c in cols]).where(scope.doomed(media.table))
    for number, row in enumerate(conn.execute(stmt), start=1):
        path = media_path(media, dict(zip(cols, row[len(pk) :], strict=True)))
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
    refs = MediaRefs(settings, src, scope, ledger, store)
    try:
        for chunk in chunks(list(files.values()), max(settings.purge.batch_size, CHUNK)):
            classes = refs.classify(list(chunk), conn)
            plan.media_files += sum(1 for c in classes.values() if c == "free")
            plan.media_kept_shared += sum(1 for c in classes.values() if c == "kept_shared")
            plan.media_retained += sum(1 for c in classes.values() if c == "retained")
    finally:
        refs.close()
    plan.notes += refs.notes


def _finish_deleting(store: MediaStore, journal: Journal) -> None:
    """A killed run may have left files marked "deleting": finish them."""
    left = journal.media_rows(["deleting"])
    if left:
        for _rid, _state, path, _values in left:
            try:
                store.delete(path)
            except MediaProblem:
                pass  # it changed since it was classified: it stays (verification says so)
        with journal.ledger.transaction() as conn:
            journal.set_media(conn, [r[0] for r in left], "deleted")
            journal.bump(conn, "media:files", len(left), 1)


def _sort_batch(
    store: MediaStore, refs: MediaRefs, batch: list[MediaEntry]
) -> tuple[dict[str, list[int]], list[tuple[int, str]]]:
    """(entries to mark by state, (entry, path) of the files to delete)."""
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
    return marks, doomed


def delete_media(
    settings: Settings,
    journal: Journal,
    src: Source,
    scope: Scope,
    faults: Faults,
    report: Callable[[str, int], None],
) -> list[str]:
    """Delete the media files the purge recorded that no row that stays names; notes."""
    media = settings.media
    if media is None or media.table not in scope.owned:
        return []
    store = MediaStore(media)
    _finish_deleting(store, journal)
    refs = MediaRefs(settings, src, scope, journal.ledger, store)
    try:
        todo = journal.media_rows(["file"])
        for batch in chunks(todo, settings.purge.batch_size):
            marks, doomed = _sort_batch(store, refs, list(batch))
            with journal.ledger.transaction() as conn:
                for cls, ids in marks.items():
                    journal.set_media(conn, ids, cls)
                journal.set_media(conn, [rid for rid, _ in doomed], "deleting")
            faults.reached("pending")
            refused = []
            for rid, path in doomed:
                try:
                    store.delete(path)
                except MediaProblem:
                    refused.append(rid)  # became a folder (or a link out) since: left alone
            faults.reached("delete")
            with journal.ledger.transaction() as conn:
                journal.set_media(conn, [rid for rid, _ in doomed if rid not in refused], "deleted")
                journal.set_media(conn, refused, "unsafe")
                journal.bump(conn, "media:files", len(doomed) - len(refused), 1)
            faults.reached("batch")
            report("media files", len(doomed) - len(refused))
    finally:
        refs.close()
    journal.mark("media:files")
    return refs.notes

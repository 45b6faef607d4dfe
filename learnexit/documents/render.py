"""Render document values to PDF (WeasyPrint) and Word (python-docx) files, fast.

WeasyPrint spends much of a small document's time parsing CSS and setting up fonts, so
each process parses the style sheets once (per language) and keeps one
``FontConfiguration``; a certificate then takes some 20 ms.  Thousands of certificates
go to a pool of worker processes (one per core, ``LEARNEXIT_RENDER_WORKERS`` to change),
started from a fork server that has WeasyPrint imported already.  Few documents are
rendered in the calling process: starting workers costs more than it saves.

Installing Debian's ``libharfbuzz-subset0`` lets WeasyPrint subset fonts natively,
which makes every PDF faster and smaller; ``fonts-symbola`` draws the emoji that people
put in their names (without it they become empty boxes).

Files are written with mode 0600 (folders are made by the caller, 0700).
"""

from __future__ import annotations

import atexit
import gc
import logging
import multiprocessing
import os
from collections import deque
from collections.abc import Iterable
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import IO, Any

from ..errors import OperationalError
from ..logs import event
from .layout import document_html, page_css, stylesheet_text
from .model import Certificate, Document

FORMATS = ("pdf", "docx")
WORKERS_ENV = "LEARNEXIT_RENDER_WORKERS"


class PdfRenderer:
    """WeasyPrint with parsed style sheets and one font configuration, kept for reuse."""

    def __init__(self) -> None:
        from weasyprint.text.fonts import FontConfiguration
        from weasyprint.urls import URLFetcher

        self.font_config = FontConfiguration()
        # Documents never need anything from outside: refuse file:, http: and the rest.
        self.url_fetcher = URLFetcher(allowed_protocols=("data",))
        self._sheets: dict[tuple[str, str], list[Any]] = {}

    def stylesheets(self, kind: str, lang: str) -> list[Any]:
        key = (kind, lang)
        if key not in self._sheets:
            from weasyprint import CSS

            texts = [stylesheet_text(f"{kind}.css")]
            if kind == "report":  # certificates carry no page numbers
                texts.append(page_css(lang))
            self._sheets[key] = [
                CSS(string=text, font_config=self.font_config, url_fetcher=self.url_fetcher) for text in texts
            ]
        return self._sheets[key]

    def write(self, doc: Document, target: IO[bytes] | None = None) -> bytes | None:
        from weasyprint import HTML

        kind = "certificate" if isinstance(doc, Certificate) else "report"
        page = HTML(string=document_html(doc), url_fetcher=self.url_fetcher)
        return page.write_pdf(target, stylesheets=self.stylesheets(kind, doc.lang), font_config=self.font_config)


_renderer: PdfRenderer | None = None


def pdf_renderer() -> PdfRenderer:
    """This process's renderer (made on first use)."""
    global _renderer
    if _renderer is None:
        _renderer = PdfRenderer()
        atexit.register(_release_renderer)
    return _renderer


def _release_renderer() -> None:
    """Free the renderer's Pango and fontconfig objects while their libraries still work:
    left to the interpreter's final garbage collection, unreferencing them crashes the
    process (SIGSEGV) after all the work is done."""
    global _renderer
    _renderer = None
    gc.collect()


def open_private(target: Path) -> IO[bytes]:
    """Create (or truncate) ``target`` with mode 0600 regardless of the umask."""
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    return os.fdopen(fd, "wb")


def render_file(doc: Document, fmt: str, target: Path) -> None:
    """Write ``doc`` as ``fmt`` ("pdf" or "docx") to ``target`` (mode 0600)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown document format {fmt!r}")
    try:
        with open_private(target) as out:
            if fmt == "pdf":
                pdf_renderer().write(doc, out)
            else:
                from .word import document_docx  # (python-docx: imported when needed)

                document_docx(doc, out)
    except BaseException:
        target.unlink(missing_ok=True)
        raise


def _render_chunk(items: list[tuple[Document, str, str]]) -> int:
    for doc, fmt, target in items:
        render_file(doc, fmt, Path(target))
    return len(items)


def _warm_up() -> None:
    pdf_renderer()


def default_workers() -> int:
    """One worker per usable core (``LEARNEXIT_RENDER_WORKERS`` overrides)."""
    configured = os.environ.get(WORKERS_ENV, "").strip()
    if configured:
        try:
            return max(1, int(configured))
        except ValueError:
            raise OperationalError(f"{WORKERS_ENV} must be a whole number, not {configured!r}") from None
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, cores)


def _forget_parents_fork_server() -> None:
    """In a process forked from one that has a fork server (an export's worker processes):
    that server is the parent's, and ``multiprocessing`` would wait for it as if it were
    ours (ChildProcessError).  Forget it; this process starts its own when it needs one."""
    try:
        from multiprocessing import forkserver

        server = forkserver._forkserver  # noqa: SLF001 - the module's singleton, as of Python 3.11-3.13
    except (ImportError, AttributeError):
        return
    if getattr(server, "_forkserver_pid", None) is None:
        return
    alive = getattr(server, "_forkserver_alive_fd", None)
    for name in ("_forkserver_pid", "_forkserver_address", "_forkserver_alive_fd", "_inherited_fds"):
        if hasattr(server, name):
            setattr(server, name, None)
    if alive is not None:
        try:
            os.close(alive)  # our copy only: the parent keeps its server alive
        except OSError:
            pass


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_parents_fork_server)


def _context() -> Any:
    methods = multiprocessing.get_all_start_methods()
    if "forkserver" in methods:
        ctx = multiprocessing.get_context("forkserver")
        # The fork server imports WeasyPrint once; every worker forks from it warm.
        ctx.set_forkserver_preload(["weasyprint", "docx", "learnexit.documents.render"])
        return ctx
    return multiprocessing.get_context("spawn")


class RenderQueue:
    """Collects documents to render and renders them, in parallel once there are many.

    ``add(doc, fmt, target)`` never blocks for long: at most a few chunks are in flight,
    so memory stays bounded however many certificates there are.  ``finish()`` waits for
    everything and returns the number of files written; errors surface as
    ``OperationalError`` naming the file.  ``progress(done)`` is called with the number
    of files written so far.

    Workers start from a fork server, so a script that calls this (directly or through
    an export) needs the usual ``if __name__ == "__main__":`` guard; the ``learnexit``
    command and ``python -m learnexit`` have it.
    """

    def __init__(
        self, workers: int | None = None, *, chunk: int = 12, parallel_from: int = 40, progress: Any = None
    ) -> None:
        self.workers = default_workers() if workers is None else max(1, workers)
        self.chunk = chunk
        self.parallel_from = parallel_from
        self.progress = progress
        self.pending: list[tuple[Document, str, str]] = []
        self.in_flight: deque[tuple[Future[int], list[tuple[Document, str, str]]]] = deque()
        self.pool: ProcessPoolExecutor | None = None
        self.done = 0

    def __enter__(self) -> RenderQueue:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is not None:
            self.abort()

    def add(self, doc: Document, fmt: str, target: Path) -> None:
        self.pending.append((doc, fmt, str(target)))
        if self.pool is None and self.workers > 1 and len(self.pending) >= self.parallel_from:
            try:
                self.pool = ProcessPoolExecutor(self.workers, mp_context=_context(), initializer=_warm_up)
            except (OSError, NotImplementedError) as exc:  # no processes here (a sandbox): do it ourselves
                event("render_pool_unavailable", level=logging.WARNING, error=type(exc).__name__)
                self.workers = 1
        if self.pool is not None:
            while len(self.pending) >= self.chunk:
                self._submit(self.pending[: self.chunk])
                del self.pending[: self.chunk]

    def extend(self, items: Iterable[tuple[Document, str, Path]]) -> None:
        for doc, fmt, target in items:
            self.add(doc, fmt, target)

    def _submit(self, items: list[tuple[Document, str, str]]) -> None:
        assert self.pool is not None
        while len(self.in_flight) >= 3 * self.workers:
            self._collect_oldest()
        self.in_flight.append((self.pool.submit(_render_chunk, items), items))

    def _collect_oldest(self) -> None:
        future, items = self.in_flight.popleft()
        try:
            n = future.result()
        except Exception as exc:
            raise self._failure(items, exc) from exc
        self._count(n)

    def _count(self, n: int) -> None:
        self.done += n
        if self.progress is not None:
            self.progress(self.done)

    @staticmethod
    def _failure(items: list[tuple[Document, str, str]], exc: BaseException) -> OperationalError:
        names = ", ".join(Path(t).name for _, _, t in items[:3])
        return OperationalError(f"rendering documents failed ({names}…): {type(exc).__name__}: {exc}")

    def finish(self) -> int:
        try:
            if self.pool is not None:
                if self.pending:
                    self._submit(self.pending)
                    self.pending = []
                while self.in_flight:
                    self._collect_oldest()
            for item in self.pending:
                try:
                    render_file(item[0], item[1], Path(item[2]))
                except Exception as exc:
                    raise self._failure([item], exc) from exc
                self._count(1)
            self.pending = []
        finally:
            self._shutdown()
        return self.done

    def abort(self) -> None:
        for future, _ in self.in_flight:
            future.cancel()
        self.in_flight.clear()
        self.pending = []
        self._shutdown()

    def _shutdown(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None

"""Render document values to PDF (WeasyPrint) and Word (python-docx) files, fast.

WeasyPrint spends much of a small document's time parsing CSS and setting up fonts, so
each process parses the style sheets once (per language) and keeps one
``FontConfiguration``.  Certificates, of which there are thousands, are laid out once
per language and then only their varying lines are shaped and placed
(``CertificateLayout``), and font subsets that recur are reused (``font_cache``):
some 7-10 ms of CPU a certificate instead of 32, for the same bytes as a full layout.
Thousands of certificates go to a pool of worker processes (one per core,
``LEARNEXIT_RENDER_WORKERS`` to change), started from a fork server that has WeasyPrint
imported already.  Few documents are rendered in the calling process: starting workers
costs more than it saves.

Installing Debian's ``libharfbuzz-subset0`` lets WeasyPrint subset fonts natively,
which makes every PDF faster and smaller.  Emoji and other scripts in names are drawn
with the Noto fonts registered by ``fonts.register_fonts``.

Files are written with mode 0600 (folders are made by the caller, 0700).
"""

from __future__ import annotations

import atexit
import gc
import io
import logging
import multiprocessing
import os
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from ..errors import OperationalError
from ..logs import event
from ..machine import usable_cores
from ..valuefree import first_line
from .font_cache import cache_font_cleaning, cache_font_subsets
from .fonts import register_fonts
from .layout import certificate_html, certificate_lines, certificate_title, document_html, page_css, stylesheet_text
from .model import Certificate, Document

FORMATS = ("pdf", "docx")
MAX_CERTIFICATE_LAYOUTS = 32  # per process (each keeps a laid-out page)
WORKERS_ENV = "LEARNEXIT_RENDER_WORKERS"
WORKER_PATIENCE = 300.0  # seconds a PdfWorker may take to get ready, and then for a document


class PdfRenderer:
    """WeasyPrint with parsed style sheets and one font configuration, kept for reuse.

    Certificates are laid out once per language (``CertificateLayout``) and then only
    their varying lines are set anew, unless ``fast_certificates`` is false.
    """

    def __init__(self, *, fast_certificates: bool = True) -> None:
        from weasyprint.text.fonts import FontConfiguration
        from weasyprint.urls import URLFetcher

        self.font_config = FontConfiguration()
        register_fonts(self.font_config)  # emoji and other scripts, on any machine
        # Documents never need anything from outside: refuse file:, http: and the rest.
        self.url_fetcher = URLFetcher(allowed_protocols=("data",))
        self._sheets: dict[tuple[str, str], list[Any]] = {}
        self.fast_certificates = fast_certificates
        self._layouts: dict[tuple[str, bool, tuple[tuple[str, float, float], ...]], CertificateLayout | None] = {}
        self._lock = threading.Lock()
        cache_font_subsets()
        cache_font_cleaning()

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

    def certificate_layout(
        self, lang: str, with_score: bool, lines: tuple[tuple[str, float, float, str], ...] = ()
    ) -> CertificateLayout | None:
        """The laid-out certificate for ``lang`` (None when it cannot be reused).

        ``lines`` are (field, height, baseline, value) of lines that are not as high as
        the placeholders' (another font): the layout is made with those values and
        reused for every certificate whose lines have the same heights.
        """
        key = (lang, with_score, tuple(line[:3] for line in lines))
        if key not in self._layouts:
            if len(self._layouts) >= MAX_CERTIFICATE_LAYOUTS:
                return None
            try:
                self._layouts[key] = CertificateLayout(self, lang, with_score, {f: v for f, _, _, v in lines})
            except Exception as exc:  # e.g. another WeasyPrint: render such certificates in full
                if not lines:  # (with lines: two of them the same text, say)
                    event("certificate_layout_unavailable", level=logging.WARNING, error=first_line(exc))
                self._layouts[key] = None
        return self._layouts[key]

    def fast_certificate(self, doc: Certificate) -> Any:
        """``doc`` as a WeasyPrint document from a reused layout (None: render it in full;
        so is a certificate with its own ``completed`` line, which the layout does not set)."""
        if doc.completed is not None:
            return None
        layout = self.certificate_layout(doc.lang, bool(doc.score))
        if layout is None:
            return None
        placed = layout.place(doc)
        if isinstance(placed, tuple):
            # Lines in other fonts (an emoji) have other heights, which move the lines
            # below them: another layout, for lines of those heights.
            layout = self.certificate_layout(doc.lang, bool(doc.score), placed)
            placed = layout.place(doc) if layout is not None else None
        return placed if not isinstance(placed, tuple) else None

    def write(self, doc: Document, target: IO[bytes] | None = None) -> bytes | None:
        from weasyprint import HTML

        if isinstance(doc, Certificate) and self.fast_certificates:
            with self._lock:  # a layout is set for one certificate at a time
                try:
                    document = self.fast_certificate(doc)
                except Exception as exc:  # a bug here must not cost the certificate
                    event("certificate_layout_failed", level=logging.WARNING, error=first_line(exc))
                    document = None
                if document is not None:
                    return document.write_pdf(target)
        kind = "certificate" if isinstance(doc, Certificate) else "report"
        page = HTML(string=document_html(doc), url_fetcher=self.url_fetcher)
        return page.write_pdf(target, stylesheets=self.stylesheets(kind, doc.lang), font_config=self.font_config)


def _plain_line(text: str) -> bool:
    """Text that HTML and CSS show as it is, on one line: no white space to collapse,
    no control or format characters (soft hyphens, joiners, line separators)."""
    return bool(text) and text.isprintable() and text.strip(" ") == text and "  " not in text


class CertificateLayout:
    """A certificate laid out once, for one language, with placeholders in its varying lines.

    Style cascade, box building and layout are most of a certificate's cost and are the
    same for every certificate but for a few centred lines of text.  ``place(doc)``
    shapes just those lines (with WeasyPrint's own line-splitting, so fonts, fallback
    fonts and widths are what a full layout gives), centres them where the full layout
    would, and returns a WeasyPrint document to write: the same PDF, byte for byte, as
    the full layout.  A line whose height or baseline differs (a font with other
    metrics, such as an emoji's) moves the lines below it, so such lines are reported
    back and ``PdfRenderer`` lays out another layout for them.  It returns None — render
    in full — when a line would wrap or is text that HTML would change (collapsed white
    space, control or format characters).  The laid-out boxes are updated in place: the
    renderer places and writes one certificate at a time.
    """

    PLACEHOLDERS = {
        "organisation": "Placeholder organisation",
        "person": "Placeholder person",
        "course": "Placeholder course",
        "issued": "Placeholder issued",
        "number": "Placeholder number",
        "reproduced": "Placeholder reproduced",
        "score": "Placeholder score",
    }

    def __init__(self, renderer: PdfRenderer, lang: str, with_score: bool, lines: dict[str, str] | None = None) -> None:
        from weasyprint import DEFAULT_OPTIONS, HTML
        from weasyprint.css.counters import CounterStyle
        from weasyprint.document import Document as WeasyDocument
        from weasyprint.document import Page
        from weasyprint.formatting_structure import boxes
        from weasyprint.formatting_structure.build import build_formatting_structure
        from weasyprint.layout import layout_document
        from weasyprint.layout.inline import split_text_box
        from weasyprint.pdf.metadata import DocumentMetadata

        self._split_text_box = split_text_box
        self._document_class = WeasyDocument
        self._metadata_class = DocumentMetadata
        self.renderer = renderer
        self.lang = lang
        p = {**self.PLACEHOLDERS, **(lines or {})}
        sample = Certificate.sample(lang, with_score, p)
        shown = certificate_lines(sample)
        html = HTML(string=certificate_html(sample), url_fetcher=renderer.url_fetcher)
        options = {**DEFAULT_OPTIONS, "stylesheets": renderer.stylesheets("certificate", lang)}
        counter_style = CounterStyle()
        context = WeasyDocument._build_layout_context(  # noqa: SLF001 - as Document._render does
            html, renderer.font_config, counter_style, {}, options
        )
        root = build_formatting_structure(
            html.etree_element,
            context.style_for,
            context.get_image_from_uri,
            html.base_url,
            context.target_collector,
            counter_style,
            context.footnotes,
        )
        page_boxes = list(layout_document(html, root, context))
        if len(page_boxes) != 1:
            raise ValueError(f"the certificate took {len(page_boxes)} pages")
        self.context = context
        self.page = Page(page_boxes[0])

        # The lines to set: a line box holding one text box with a placeholder, centred
        # in its block.  (field -> line box, its text box, the block's width, line's x)
        field_of = {text: field for field, text in shown.items()}
        self.slots: dict[str, tuple[Any, Any, float, float]] = {}

        def walk(box: Any, parent: Any) -> None:
            if isinstance(box, boxes.LineBox) and len(box.children) == 1:
                text_box = box.children[0]
                if isinstance(text_box, boxes.TextBox) and text_box.text in field_of:
                    field = field_of[text_box.text]
                    if field in self.slots:
                        raise ValueError(f"{field} is shown twice")
                    width = parent.width
                    centred = parent.content_box_x() + (width - text_box.width) / 2
                    if abs(text_box.position_x - centred) > 1e-6 or abs(box.width - text_box.width) > 1e-6:
                        raise ValueError(f"{field} is not a centred line")
                    self.slots[field] = (box, text_box, width, box.position_x)
                    return
            for child in getattr(box, "children", ()):
                walk(child, box)

        walk(page_boxes[0], None)
        if set(self.slots) != set(shown):
            raise ValueError(f"lines not found: {sorted(set(shown) - set(self.slots))}")

    def place(self, doc: Certificate) -> Any:
        """A WeasyPrint document of ``doc``; or, when only the heights of some lines differ
        from this layout's, those lines as ((field, height, baseline, value), ...); or None."""
        lines = certificate_lines(doc)
        if doc.lang != self.lang or set(lines) != set(self.slots):
            return None
        placed = []
        other_heights = []
        for field, (line, text_box, width, line_x) in self.slots.items():
            text = lines[field]
            if not _plain_line(text):
                return None
            box, resume_at, _ = self._split_text_box(self.context, text_box.copy_with_text(text), width, 0)
            if box is None or resume_at is not None or box.width >= width:
                return None
            if box.height != text_box.height or box.baseline != text_box.baseline:
                other_heights.append((field, box.height, box.baseline, getattr(doc, field)))
                continue
            shift = (text_box.width - box.width) / 2
            box.position_x = text_box.position_x + shift
            box.position_y = text_box.position_y
            placed.append((line, box, line_x + shift))
        if other_heights:
            return tuple(other_heights)
        for line, box, x in placed:
            line.children = [box]
            line.width = box.width
            line.position_x = x
        metadata = self._metadata_class(
            title=certificate_title(doc),
            authors=[doc.organisation],
            description=doc.course,
            generator="learnexit",
            lang=doc.lang,
        )
        renderer = self.renderer
        return self._document_class([self.page], metadata, renderer.url_fetcher, renderer.font_config, {}, None)


_renderer: PdfRenderer | None = None


def pdf_renderer() -> PdfRenderer:
    """This process's renderer (made on first use)."""
    global _renderer
    if _renderer is None:
        _renderer = PdfRenderer()
        atexit.register(_release_renderer)
    return _renderer


@contextmanager
def frozen_heap() -> Iterator[None]:
    """While the block runs, the objects that existed before it are left out of the cycle
    collector's scans (``gc.freeze``): a layout makes hundreds of thousands of objects,
    and in a process that holds a big heap already (a purge's reflected schema of 480
    tables) each full collection walked all of it again — a quarter of the deletion
    certificate's layout.  Put back afterwards (``gc.unfreeze``)."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def warm_reports(lang: str) -> None:
    """Lay out a one-line report in ``lang`` once, so that the first real one finds this
    process's renderer, its style sheets and WeasyPrint's first-use work done: what a
    purge does on a thread while the database deletes, before its certificate."""
    from .model import Paragraph, Report

    tiny = Report(
        lang=lang, title="-", subtitle="-", organisation="-", vendor="-", generated="-", blocks=(Paragraph("-"),)
    )
    pdf_renderer().write(tiny, io.BytesIO())


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
    return usable_cores()


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


def warm_pool() -> None:
    """Start the fork server that render workers come from, without waiting for it: it
    imports WeasyPrint (a second or two), which then overlaps with whatever the caller
    does next, and a ``RenderQueue`` made later finds it ready.  Nothing happens with one
    worker or without the fork server."""
    if default_workers() <= 1:
        return
    ctx = _context()
    if ctx.get_start_method() != "forkserver":
        return
    try:
        from multiprocessing import forkserver

        forkserver.ensure_running()
    except (OSError, ValueError) as exc:  # the pool will say so (or render here) when it is needed
        event("render_pool_unavailable", level=logging.WARNING, error=type(exc).__name__)


def _context() -> Any:
    methods = multiprocessing.get_all_start_methods()
    if "forkserver" in methods:
        ctx = multiprocessing.get_context("forkserver")
        # The fork server imports WeasyPrint once; every worker forks from it warm.
        ctx.set_forkserver_preload(["__main__", "weasyprint", "docx", "learnexit.cli", "learnexit.documents.render"])
        return ctx
    return multiprocessing.get_context("spawn")


def pdf_bytes(doc: Document) -> bytes:
    """``doc`` as PDF bytes, laid out in this process (see ``frozen_heap``)."""
    out = io.BytesIO()
    with frozen_heap():
        pdf_renderer().write(doc, out)
    return out.getvalue()


def _pdf_worker(conn: Any, lang: str) -> None:
    """``PdfWorker``'s process: get ready, then render what comes until None comes."""
    try:
        warm_reports(lang)
        conn.send(True)
        while (doc := conn.recv()) is not None:
            conn.send(pdf_bytes(doc))
    except Exception:  # noqa: BLE001 - the caller renders it itself, and meets the error there
        try:
            conn.send(None)
        except OSError:
            pass


def _warm_here(lang: str) -> None:
    try:
        warm_reports(lang)
    except Exception:  # noqa: BLE001 - rendering the document reports any real problem
        pass


class PdfWorker:
    """Makes WeasyPrint ready (imported, the renderer made, a first page in ``lang`` laid
    out: a second of CPU) while the caller goes on, then renders its documents to PDF.

    With two usable cores or more that happens in a process of its own, forked from the
    render fork server: a purge's certificate waited for that second on a thread that
    shared the interpreter with the purge itself.  With one core (or where no process
    can start) a thread of this process does it.  Whatever goes wrong in the process
    (it died, WeasyPrint failed), ``render`` lays the document out here instead, which
    gives the same bytes, or raises the same error.  ``close`` ends the process."""

    def __init__(self, lang: str) -> None:
        self.conn: Any = None
        self.process: Any = None
        self.ready = False
        self.thread: threading.Thread | None = None
        self.starting: threading.Thread | None = None
        self.pid = os.getpid()
        self.gave_up = False  # (its process failed: ``pdf_worker`` makes a new one)
        if default_workers() > 1:
            try:
                ctx = _context()
                self.conn, child = ctx.Pipe()
                self.process = ctx.Process(target=_pdf_worker, args=(child, lang), name="learnexit-pdf", daemon=True)
            except (OSError, ValueError, NotImplementedError) as exc:
                event("render_pool_unavailable", level=logging.WARNING, error=type(exc).__name__)
                self._drop()
            else:
                # (a cold fork server answers only once it has imported WeasyPrint: the
                # start waits on a thread of its own, not the caller's)
                self.starting = threading.Thread(target=self._start, args=(child,), name="learnexit-pdf-start")
                self.starting.start()
                return
        self.thread = threading.Thread(target=_warm_here, args=(lang,), name="learnexit-preload", daemon=True)
        self.thread.start()

    def _start(self, child: Any) -> None:
        try:
            self.process.start()
        except (OSError, ValueError, NotImplementedError) as exc:
            event("render_pool_unavailable", level=logging.WARNING, error=type(exc).__name__)
            self.process = None
        finally:
            child.close()

    def join_start(self) -> bool:
        """Wait until the process has started (or failed to); whether it runs."""
        if self.starting is not None:
            self.starting.join()
            self.starting = None
            if self.process is None:
                self._drop()
        return self.process is not None

    def render(self, doc: Document) -> bytes:
        """``doc`` as PDF bytes."""
        if self.join_start():
            try:
                if not self.ready and self.conn.poll(WORKER_PATIENCE):
                    self.ready = self.conn.recv() is True
                if self.ready:
                    self.conn.send(doc)
                    if self.conn.poll(WORKER_PATIENCE):
                        data = self.conn.recv()
                        if isinstance(data, bytes):
                            return data
            except (OSError, EOFError):
                pass
            self.close()
            self.gave_up = True
        self._join_thread()
        return pdf_bytes(doc)

    def close(self) -> None:
        """End the process (at once, ready or not) or wait for the thread."""
        if self.join_start():
            self.process.terminate()
            self.process.join()
        self._drop()
        self._join_thread()

    def _join_thread(self) -> None:
        if self.thread is not None:
            self.thread.join()
            self.thread = None

    def _drop(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.conn = None
        self.process = None

    def usable(self) -> bool:
        """Made by this process, and its process (if it had one) not given up on."""
        return self.pid == os.getpid() and not self.gave_up


_worker: PdfWorker | None = None


def pdf_worker(lang: str) -> PdfWorker:
    """This process's ``PdfWorker``: made on first use (ready for ``lang``), and again
    when the one before gave up its process or was made before a fork.  One purge after
    another (``purge --due``) renders with the same one."""
    global _worker
    if _worker is None or not _worker.usable():
        _worker = PdfWorker(lang)
    return _worker


class RenderQueue:
    """Collects documents to render and renders them, in parallel once there are many.

    ``add(doc, fmt, target)`` never blocks for long: at most a few chunks are in flight,
    so memory stays bounded however many certificates there are.  ``finish()`` waits for
    everything and returns the number of files written; errors surface as
    ``OperationalError`` naming the file.  ``progress(done, total)`` is called with the
    number of files written so far and the number expected: ``expected`` (an estimate
    made before the documents are known) or the files added so far, if more; from
    ``finish()`` on, exactly the files added.

    Workers start from a fork server, so a script that calls this (directly or through
    an export) needs the usual ``if __name__ == "__main__":`` guard; the ``learnexit``
    command and ``python -m learnexit`` have it.
    """

    def __init__(
        self,
        workers: int | None = None,
        *,
        chunk: int = 12,
        parallel_from: int = 40,
        progress: Any = None,
        expected: int = 0,
        pool: ProcessPoolExecutor | None = None,
    ) -> None:
        self.workers = default_workers() if workers is None else max(1, workers)
        self.chunk = chunk
        self.parallel_from = parallel_from
        self.progress = progress
        self.pending: list[tuple[Document, str, str]] = []
        self.in_flight: deque[tuple[Future[int], list[tuple[Document, str, str]]]] = deque()
        self.pool: ProcessPoolExecutor | None = pool  # (given: another queue's warm workers, see ``finish``)
        self.done = 0
        self.added = 0
        self.expected = expected
        self.finishing = False  # every file is added: the total is exact

    def __enter__(self) -> RenderQueue:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is not None:
            self.abort()

    def add(self, doc: Document, fmt: str, target: Path) -> None:
        self.pending.append((doc, fmt, str(target)))
        self.added += 1
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
            self.progress(self.done, self.added if self.finishing else max(self.expected, self.added))

    @staticmethod
    def _failure(items: list[tuple[Document, str, str]], exc: BaseException) -> OperationalError:
        # (document names come from the source's values: counted, never named)
        return OperationalError(f"rendering {len(items)} documents failed: {first_line(exc)}")

    def finish(self, keep_pool: bool = False) -> int:
        """Wait for every document; the number of files written.  ``keep_pool``: the
        pool's workers stay up, warm (their renderer, style sheets and laid-out
        certificates), for ``detach`` to hand to a later queue (``RenderQueue(pool=…)``)."""
        self.finishing = True
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
        except BaseException:
            self._shutdown()
            raise
        if not keep_pool:
            self._shutdown()
        return self.done

    def detach(self) -> ProcessPoolExecutor | None:
        """The pool (after ``finish(keep_pool=True)``), now the caller's to pass on or shut
        down; None when the documents were rendered in this process."""
        pool, self.pool = self.pool, None
        return pool

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

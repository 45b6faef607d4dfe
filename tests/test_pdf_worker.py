"""The PDF worker a purge starts for its certificate (``documents.render.PdfWorker``).

It renders in a process of its own, forked from the render fork server, or on a thread
of this process with one core; whatever goes wrong over there, the document is laid out
here instead.  Each way must give the bytes the plain in-process renderer gives.
"""

from __future__ import annotations

import time

import pypdf
import pytest

from learnexit.documents import render
from learnexit.documents.model import Bullets, Paragraph, Report
from learnexit.documents.render import WORKERS_ENV, PdfWorker, pdf_bytes, pdf_worker


def _report(lang: str = "en", name: str = "Acme Ltd") -> Report:
    return Report(
        lang=lang,
        title="Deletion certificate",
        subtitle=name,
        organisation=name,
        vendor="Vendor GmbH",
        generated="Generated 6 December 2026",
        blocks=(
            Paragraph("Every copy of the customer's data was deleted."),
            Bullets(("activity_log: 600000 rows", "users: 58 rows", "Zoë 😀 ✓")),
        ),
    )


def _text(data: bytes, tmp_path) -> str:
    target = tmp_path / "doc.pdf"
    target.write_bytes(data)
    return "\n".join(page.extract_text() for page in pypdf.PdfReader(target).pages)


@pytest.fixture(scope="module")
def plain() -> bytes:
    return pdf_bytes(_report())


def test_the_worker_process_renders_the_same_bytes(plain, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv(WORKERS_ENV, "2")
    worker = PdfWorker("en")
    try:
        assert worker.process is not None and worker.thread is None
        data = worker.render(_report())
        assert worker.process is not None  # (it rendered: no fallback closed it)
    finally:
        worker.close()
    assert data == plain
    assert "activity_log: 600000 rows" in _text(data, tmp_path)


def test_one_worker_process_renders_several_documents(monkeypatch) -> None:
    monkeypatch.setenv(WORKERS_ENV, "2")
    worker = PdfWorker("sv")
    try:
        first = worker.render(_report("sv", "Första AB"))
        second = worker.render(_report("sv", "Andra AB"))
        assert worker.process is not None
    finally:
        worker.close()
    assert first == pdf_bytes(_report("sv", "Första AB"))
    assert second == pdf_bytes(_report("sv", "Andra AB"))


def test_an_error_over_there_is_met_here(monkeypatch) -> None:
    """The worker's warm-up fails (a language the documents do not speak): the document
    is laid out here, and the error is the one the plain renderer raises."""
    monkeypatch.setenv(WORKERS_ENV, "2")
    worker = PdfWorker("xx")
    try:
        with pytest.raises(ValueError, match="unsupported language 'xx'"):
            worker.render(_report("xx"))
        assert worker.process is None and worker.conn is None
    finally:
        worker.close()


def test_one_core_warms_on_a_thread_and_renders_here(plain, monkeypatch) -> None:
    monkeypatch.setenv(WORKERS_ENV, "1")
    worker = PdfWorker("en")
    assert worker.process is None and worker.thread is not None
    assert worker.render(_report()) == plain
    assert worker.thread is None  # (joined before the layout here)
    worker.close()


def test_a_worker_that_died_is_replaced_by_rendering_here(plain, monkeypatch) -> None:
    monkeypatch.setenv(WORKERS_ENV, "2")
    worker = PdfWorker("en")
    assert worker.join_start()
    worker.process.kill()
    worker.process.join()
    assert worker.render(_report()) == plain
    assert worker.process is None and worker.conn is None
    worker.close()  # (twice is harmless)


def test_a_worker_that_died_after_getting_ready_is_replaced_too(plain, monkeypatch) -> None:
    monkeypatch.setenv(WORKERS_ENV, "2")
    worker = PdfWorker("en")
    assert worker.join_start()
    assert worker.conn.poll(120) and worker.conn.recv() is True
    worker.ready = True
    worker.process.kill()
    worker.process.join()
    assert worker.render(_report()) == plain
    worker.close()


def test_closing_an_unused_worker_ends_its_process_at_once(monkeypatch) -> None:
    monkeypatch.setenv(WORKERS_ENV, "2")
    worker = PdfWorker("en")
    assert worker.join_start()
    process = worker.process
    started = time.monotonic()
    worker.close()
    assert not process.is_alive()
    assert worker.process is None and worker.conn is None
    # (terminated, not waited for: far less than the second a warm-up takes on a cold
    # fork server; generous for a loaded machine)
    assert time.monotonic() - started < 30


def test_one_process_renders_for_one_purge_after_another(plain, monkeypatch) -> None:
    """``pdf_worker``: the same worker for the next purge, a new one once it gave up its
    process (here: killed), and none inherited across a fork."""
    monkeypatch.setenv(WORKERS_ENV, "2")
    monkeypatch.setattr(render, "_worker", None)
    first = pdf_worker("en")
    try:
        assert pdf_worker("sv") is first
        assert first.render(_report()) == plain
        assert pdf_worker("en") is first
        assert first.join_start()
        first.process.kill()
        first.process.join()
        assert first.render(_report()) == plain  # (laid out here)
        second = pdf_worker("en")
        assert second is not first and second.process is not None
        assert second.render(_report()) == plain
        monkeypatch.setattr(second, "pid", second.pid + 1)  # (as a forked child sees it)
        third = pdf_worker("en")
        assert third is not second
        third.close()
        second.close()
    finally:
        first.close()

"""Plain helpers shared by the test modules (fixtures live in conftest.py).

``tests/`` is on ``sys.path`` while pytest runs, so a test module says
``from helpers import pdf_text``.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pypdf
import sqlalchemy as sa
from typer.testing import CliRunner

from learnexit.cli import app
from learnexit.demo import build_shared_schema, populate_shared

runner = CliRunner()


def copy_example(template: Path, dest: Path) -> Path:
    """A private copy of the example LMS folder ``template`` at ``dest`` (symlinks kept)."""
    shutil.copytree(template, dest, symlinks=True)
    return dest


def invoke(*args: str) -> Any:
    """Run the CLI in-process with ``args``; exceptions propagate to the test."""
    return runner.invoke(app, list(args), catch_exceptions=False)


def pdf_text(path: str | Path) -> str:
    """The text of every page of a PDF, as pypdf extracts it."""
    return "\n".join(page.extract_text() or "" for page in pypdf.PdfReader(path).pages)


def example_site(kind: str, root: Path, template: Path, url: str | None) -> tuple[str, str]:
    """The example LMS in ``root`` (SQLite: the template's database and media copied;
    another engine: built and filled at ``url``, the media written beside), and the
    template's config text with the source URL put in; returns (url, config text)."""
    root.mkdir(parents=True)
    if kind == "sqlite":
        shutil.copy(template / "lms.db", root / "lms.db")
        shutil.copytree(template / "media", root / "media")
        url = f"sqlite:///{root / 'lms.db'}"
    else:
        assert url is not None
        engine = sa.create_engine(url)
        build_shared_schema(engine)
        populate_shared(engine, media_root=root / "media")
        engine.dispose()
    text = (template / "learnexit.toml").read_text(encoding="utf-8")
    return url, text.replace('url = "sqlite:///lms.db"', f'url = "{url}"', 1)

"""Plain helpers shared by the test modules (fixtures live in conftest.py).

``tests/`` is on ``sys.path`` while pytest runs, so a test module says
``from helpers import pdf_text``.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pypdf
from typer.testing import CliRunner

from learnexit.cli import app

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

"""Command-line interface: ``learnexit COMMAND``.  Each module registers its commands."""

from . import setup_cmds, stubs  # noqa: F401  (registers commands)
from .app import app


def main() -> None:
    app()

"""Command-line interface: ``learnexit COMMAND``.  Each module registers its commands."""

from . import calendar_cmds, export_cmds, purge_cmds, setup_cmds  # noqa: F401  (registers commands)
from .app import app


def main() -> None:
    app()

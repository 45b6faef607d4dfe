"""The points where tests reach into a running export (fault injection).

``run_export`` takes an ``ExportHooks``; the default does nothing.  Only the command line
makes another, from the test-only environment (``cli.export_cmds``): the library itself
never reads it."""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(frozen=True)
class ExportHooks:
    """``pause_after_table``: seconds to sleep after each table of a read pass, so a test
    can interrupt an export mid-way deterministically.  Never set in production."""

    pause_after_table: float = 0.0

    def after_table(self, table: str) -> None:
        """Called after each table of a read pass (in whichever process reads it)."""
        if self.pause_after_table:
            time.sleep(self.pause_after_table)


NO_HOOKS = ExportHooks()

__all__ = ["NO_HOOKS", "ExportHooks"]

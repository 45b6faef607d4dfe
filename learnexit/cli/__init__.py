"""Command-line interface: ``learnexit COMMAND``.  Each module registers its commands."""

import atexit
import os
import sys

from . import case_cmds, export_cmds, purge_cmds, setup_cmds  # noqa: F401  (registers commands)
from .app import app


def main() -> None:
    """Run the command, then leave without tearing the interpreter down.

    Once the command is done, its output flushed and the ``atexit`` handlers run (logging,
    multiprocessing's children, thread pools), all that is left of a normal exit is the
    interpreter freeing its modules and objects: ~0.15 s after a big export, for nothing.
    ``os._exit`` skips that.  Where that is not sure to be safe (output that cannot be
    flushed, no ``atexit._run_exitfuncs``, a profiler or tracer that reports once the
    program ends), the normal exit happens.  Threads are not waited for here: every thread
    a command starts must be joined by the command itself (background work, hash pools)."""
    try:
        app()
        code: object = 0
    except SystemExit as exc:
        code = exc.code
    run_exit_handlers = getattr(atexit, "_run_exitfuncs", None)
    watched = sys.getprofile() is not None or sys.gettrace() is not None  # a profiler reports after us
    if not isinstance(code, int | None) or run_exit_handlers is None or watched:
        raise SystemExit(code)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):  # a closed pipe, a closed stream: Python's own exit reports it
        raise SystemExit(code) from None
    run_exit_handlers()
    os._exit(code or 0)

"""Test-only fault injection for the purge engine, as one object passed to a run.

The engine calls ``faults.reached(point)`` at its batch boundaries: ``pending`` (the
batch's keys are in the ledger, the source has not deleted them), ``delete`` (the source
has committed the delete, the ledger not yet its progress) and ``batch`` (both have).
:data:`NO_FAULTS` does nothing.  :func:`faults_from_environ` is the one place the test
hook ``LEARNEXIT_TEST_KILL_AFTER_BATCHES=N`` (with ``LEARNEXIT_TEST_KILL_AT`` = batch,
the default, delete or pending) is read: the process then SIGKILLs itself at that point
of its N-th batch, counted over the whole process (every purge a ``--due`` run makes).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

__all__ = ["KILL_AT_ENV", "KILL_ENV", "NO_FAULTS", "Faults", "KillAfterBatches", "NoFaults", "faults_from_environ"]

KILL_ENV = "LEARNEXIT_TEST_KILL_AFTER_BATCHES"
KILL_AT_ENV = "LEARNEXIT_TEST_KILL_AT"  # batch (default) | delete | pending


class Faults(Protocol):
    """What the engine tells at each batch boundary (``pending``, ``delete``, ``batch``)."""

    def reached(self, point: str) -> None:
        """The run has reached ``point`` of a batch."""


class NoFaults:
    """No fault: the default of every run."""

    def reached(self, point: str) -> None:
        """Nothing happens."""


NO_FAULTS = NoFaults()


@dataclass
class KillAfterBatches:
    """SIGKILL this process at ``at`` of its ``after``-th batch (tests of resuming)."""

    after: int
    at: str = "batch"
    batches: int = 0  # batches finished so far (in this process)

    def reached(self, point: str) -> None:
        """Count finished batches; kill the process at the chosen point of the chosen one."""
        if point == "batch":
            self.batches += 1
            count = self.batches
        else:
            count = self.batches + 1
        if point == self.at and count == self.after:
            os.kill(os.getpid(), signal.SIGKILL)


def faults_from_environ(environ: Mapping[str, str]) -> Faults:
    """The faults the test hook in ``environ`` asks for (:data:`NO_FAULTS` without it)."""
    wanted = environ.get(KILL_ENV)
    if not wanted:
        return NO_FAULTS
    return KillAfterBatches(int(wanted), environ.get(KILL_AT_ENV, "batch"))

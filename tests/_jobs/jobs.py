"""Job functions for the executor tests.

They live in a module of their own so that worker processes, Dask workers
and Slurm jobs can import them as ``tests._jobs.jobs``: process pools inherit the
test process' ``sys.path``; Dask workers and Slurm jobs need the repo root on
``PYTHONPATH`` (the engine scripts set it). The repo root must come before
site-packages there, because the ``wkw`` wheel installs a top-level
``tests`` package too.
"""

from __future__ import annotations

import _thread
import os
import time
from pathlib import Path


class PlannedFailure(ValueError):
    """The exception the failing jobs raise."""


class UnpicklableError(Exception):
    """An exception that pickles but cannot be unpickled (``__init__`` needs two args)."""

    def __init__(self, what: str, code: int) -> None:
        super().__init__(f"{what} (code {code})")
        self.code = code


def square(x: int) -> int:
    return x * x


def pid_and_item(x: object) -> tuple[int, object]:
    """The process that ran the job, and its item."""
    return os.getpid(), x


def where_and_item(x: object) -> tuple[int, str | None, object]:
    """Process id, Slurm job (``JOBID`` or ``ARRAYJOBID_INDEX``) and item."""
    array_job = os.environ.get("SLURM_ARRAY_JOB_ID")
    index = os.environ.get("SLURM_ARRAY_TASK_ID")
    job = f"{array_job}_{index}" if array_job and index else os.environ.get("SLURM_JOB_ID")
    return os.getpid(), job, x


def _deep_failure(x: int) -> None:
    raise PlannedFailure(f"job for {x} failed on purpose")


def fail_at(bad: int, x: int) -> int:
    """Return ``x``, or raise :class:`PlannedFailure` (two frames deep) for ``x == bad``."""
    if x == bad:
        _deep_failure(x)
    return x


def fail_unpicklable_at(bad: int, x: int) -> int:
    if x == bad:
        raise UnpicklableError(f"job for {x} failed", 7)
    return x


def record(log: str, seconds: float, bad: int, x: int) -> int:
    """Append ``x`` to the file ``log``, sleep, and fail for ``x == bad``.

    Counting the lines afterwards tells how many jobs ran.
    """
    with open(log, "a", encoding="utf-8") as f:
        f.write(f"{x}\n")
    if x == bad:
        raise PlannedFailure(f"job for {x} failed on purpose")
    time.sleep(seconds)
    return x


def record_and_interrupt(log: str, seconds: float, at: int, x: int) -> int:
    """Like :func:`record`, and the job for ``x == at`` interrupts the main thread (Ctrl-C)."""
    if x == at:
        _thread.interrupt_main()
    return record(log, seconds, -1, x)


def count_lines(log: str) -> int:
    path = Path(log)
    return len(path.read_text(encoding="utf-8").splitlines()) if path.exists() else 0


def exit_process(x: int) -> int:
    """Kill the process that runs the job (without cleanup), as an OOM killer would."""
    os._exit(3)


def sleep_and_return(seconds: float, x: int) -> int:
    time.sleep(seconds)
    return x

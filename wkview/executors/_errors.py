"""The errors of executor creation and of :func:`~wkview.executors.run_jobs`."""

from __future__ import annotations

from ..errors import WkviewError

__all__ = ["ExecutorOptionsError", "JobError", "JobTimeoutError"]


class JobError(WkviewError, RuntimeError):
    """A job run by :func:`run_jobs` (or the task that ran it) failed.

    The message names the item (through ``describe``) and contains the
    traceback text of the failure where the job ran. The original exception
    is the ``__cause__`` when it could be brought back to the caller (always
    in-process; across processes when it pickles).

    Attributes
    ----------
    index : int or None
        Position of the failed item in ``items``; None when a whole task
        failed (a killed worker, a Slurm job that ran out of memory).
    description : str
        ``describe(item)``, or a summary of the task's items.
    traceback_text : str
        The formatted traceback from where the job ran (may be empty).
    original : BaseException or None
        The original exception, when it was available.
    """

    def __init__(
        self,
        message: str,
        *,
        index: int | None = None,
        description: str = "",
        traceback_text: str = "",
        original: BaseException | None = None,
    ) -> None:
        super().__init__(message)
        self.index = index
        self.description = description
        self.traceback_text = traceback_text
        self.original = original


class JobTimeoutError(JobError, TimeoutError):
    """:func:`run_jobs` did not finish within its ``timeout``."""


class ExecutorOptionsError(WkviewError, ValueError):
    """Options that name no executor: an unknown distribution strategy, a bad job count,
    unreadable job resources, Dask without a scheduler address (a mistake of the caller)."""

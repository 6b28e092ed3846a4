"""Helpers of ``webknossos.utils`` (release 0.8.13) that programs written for it call.

:func:`get_executor_for_args` turns command-line arguments into an executor;
:func:`named_partial` is a :func:`functools.partial` that keeps the name and
docstring of the function (job names, pickling for process executors).
"""

from __future__ import annotations

import argparse
import functools
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Optional

from .errors import WkviewError
from .executors import EXECUTOR_NAMES, available_cores, get_executor

__all__ = ["get_executor_for_args", "named_partial"]


class MissingJobResourcesError(WkviewError, ValueError, argparse.ArgumentTypeError):
    """``distribution_strategy="slurm"`` without ``job_resources`` (0.8.13 raised ArgumentTypeError)."""


def get_executor_for_args(args: Optional[argparse.Namespace]) -> Any:
    """An executor as webknossos 0.8.13's command-line tools chose it.

    Parameters
    ----------
    args : argparse.Namespace or None
        None gives a multiprocessing pool with one worker per available core.
        Otherwise ``args.distribution_strategy`` decides:
        ``"multiprocessing"`` (``args.jobs`` workers, default: the cores),
        ``"slurm"`` (``args.job_resources``, a JSON object as a string such
        as ``'{"mem": "2G"}'``, is required), or any other name
        :func:`wkview.get_executor` knows (``"sequential"``, ``"dask"``, ...).

    Returns
    -------
    Executor
        Use it as a context manager (it is shut down on exit).

    Raises
    ------
    ValueError
        For an unknown ``distribution_strategy``, or ``"slurm"`` without
        ``job_resources`` (that error is also an ``argparse.ArgumentTypeError``,
        as in 0.8.13) or with one that is not a JSON object.
    """
    if args is None:
        return get_executor("multiprocessing", max_workers=available_cores())
    strategy = getattr(args, "distribution_strategy", None)
    if strategy == "multiprocessing":
        jobs = getattr(args, "jobs", None)
        return get_executor("multiprocessing", max_workers=int(jobs) if jobs is not None else available_cores())
    if strategy == "slurm":
        raw = getattr(args, "job_resources", None)
        if raw is None:
            raise MissingJobResourcesError(
                "job_resources (--job_resources, a JSON object such as '{\"mem\": \"2G\"}') is required "
                "with distribution_strategy 'slurm'"
            )
        resources = json.loads(raw) if isinstance(raw, str) else raw
        if not isinstance(resources, dict):
            raise ValueError(f"job_resources must be a JSON object, got {raw!r}")
        return get_executor("slurm", job_resources=resources)
    if strategy in EXECUTOR_NAMES:
        return get_executor(strategy)
    raise ValueError(
        f"unknown distribution_strategy {strategy!r}; expected 'multiprocessing', 'slurm' or one of "
        f"{', '.join(EXECUTOR_NAMES)}"
    )


def named_partial(func: Callable[..., Any], *args: Any, **kwargs: Any) -> functools.partial:
    """:func:`functools.partial` that keeps ``__name__``, ``__doc__`` (and ``__module__``) of ``func``.

    It pickles like any partial of a module-level function, so it works as a
    job on process and cluster executors.
    """
    partial = functools.partial(func, *args, **kwargs)
    functools.update_wrapper(partial, func)
    return partial


@contextmanager
def executor_for(args: Optional[argparse.Namespace], executor: Any) -> Iterator[Any]:
    """The executor a dataset method runs its jobs on.

    An explicit ``executor`` wins (and is not shut down); an argparse
    Namespace given as ``executor`` counts as ``args`` (0.8.13 passed ``args``
    in that position); ``args`` makes one with :func:`get_executor_for_args`
    and shuts it down afterwards; neither runs the jobs in this process (None).
    """
    if isinstance(executor, argparse.Namespace):
        if args is not None:
            raise TypeError("give args or executor, not both")
        args, executor = executor, None
    if executor is not None:
        if args is not None:
            raise TypeError("give args or executor, not both")
        yield executor
    elif args is not None:
        with get_executor_for_args(args) as made:
            yield made
    else:
        yield None

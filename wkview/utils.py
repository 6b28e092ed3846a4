"""Helpers of ``webknossos.utils`` (release 0.8.13) that programs written for it call.

:func:`get_executor_for_args` turns command-line arguments into an executor;
:func:`named_partial` is a :func:`functools.partial` that keeps the name and
docstring of the function (job names, pickling for process executors).
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Optional

from .errors import WkviewError
from .executors import executor_for_strategy

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
        :func:`wkview.get_executor` knows (``"sequential"``, ``"dask"`` with
        ``args.dask_address``, ...). The executor comes from
        :func:`wkview.executors.executor_for_strategy`, as the ``wkview``
        command's does.

    Returns
    -------
    Executor
        Use it as a context manager (it is shut down on exit).

    Raises
    ------
    ValueError
        For an unknown ``distribution_strategy``, or ``"slurm"`` without
        ``job_resources`` (that error is also an ``argparse.ArgumentTypeError``,
        as in 0.8.13) or with one that is not a JSON object
        (:class:`wkview.executors.ExecutorOptionsError`).
    """
    if args is None:
        return executor_for_strategy("multiprocessing")
    strategy = getattr(args, "distribution_strategy", None)
    if strategy == "slurm" and getattr(args, "job_resources", None) is None:
        raise MissingJobResourcesError(
            "job_resources (--job_resources, a JSON object such as '{\"mem\": \"2G\"}') is required "
            "with distribution_strategy 'slurm'"
        )
    jobs = getattr(args, "jobs", None) if strategy == "multiprocessing" else None
    return executor_for_strategy(
        strategy,
        jobs=int(jobs) if jobs is not None else None,
        job_resources=getattr(args, "job_resources", None),
        dask_address=getattr(args, "dask_address", None),
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

"""Run one job per item on any executor: wkview's engine-independent execution layer.

:func:`run_jobs` calls ``fn(item)`` for every item and returns the results in
order. It runs in the calling process (``executor=None``), on any
:mod:`concurrent.futures` executor and on every ``cluster_tools`` executor
(sequential, multiprocessing, Dask, Slurm, PBS, Kubernetes).
:func:`get_executor` creates those executors with defaults that suit chunk
jobs; :func:`executor_for_strategy` is the one factory that turns a distribution
strategy and its options (``--jobs``, ``--job-resources``, ``--dask-address``) into
one, for the ``wkview`` command and :mod:`wkview.utils` alike.

Starting a task costs far more than a chunk job on the cluster engines (about
1 s per Slurm job and 0.1-0.3 s per Dask task on a small machine), so
:func:`run_jobs` hands each task a *batch* of items, which one call of a
top-level runner works through in order. A failing job stops its batch; the
caller gets a :class:`JobError` naming the item, with the job's traceback,
and the tasks that have not run yet are cancelled.

Keep what a task has to unpickle small:

* Put state that every job needs (a view, a dtype, a path) into ``fn`` with
  :func:`functools.partial`. ``fn`` is pickled once per task (once per call
  on Slurm and PBS), not once per item.
* Give per-item arguments as plain ints and tuples. When ``items`` is a
  :class:`~collections.abc.Sequence` (a list, a tuple, a ``range`` or a lazy
  sequence with slicing), a task receives the slice ``items[start:stop]``, so
  a ``range`` or a lazy chunk sequence travels as a few ints whatever its
  length.

Job functions must be importable where the tasks run: defined at module level
in an installed module (or one on ``PYTHONPATH`` of the workers), not in
``__main__`` and not as a lambda.

The package's modules: ``_create`` (:func:`get_executor`), ``_batching``
(executor kinds, :func:`default_batch_size`), ``_worker`` (what runs in the
worker processes), ``_run`` (:func:`run_jobs`) and ``_errors``.
"""

from __future__ import annotations

from ._batching import default_batch_size, runs_here
from ._create import EXECUTOR_NAMES, LazyPool, available_cores, executor_for_strategy, get_executor, parse_job_resources
from ._errors import ExecutorOptionsError, JobError, JobTimeoutError
from ._run import run_jobs

__all__ = [
    "ExecutorOptionsError",
    "JobError",
    "JobTimeoutError",
    "EXECUTOR_NAMES",
    "LazyPool",
    "available_cores",
    "default_batch_size",
    "executor_for_strategy",
    "get_executor",
    "parse_job_resources",
    "run_jobs",
    "runs_here",
]

"""Executor kinds, batch sizes and the batches of items that tasks receive."""

from __future__ import annotations

import itertools
import math
import subprocess
from collections.abc import Iterator, Sequence
from concurrent.futures import Executor as FuturesExecutor
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

import cluster_tools
from cluster_tools import ClusterExecutor, SequentialExecutor, SlurmExecutor

from ._create import available_cores

__all__ = ["default_batch_size"]

# Tasks per worker for the default batch size. A process-pool task costs
# ~0.1 ms, so several per worker even out uneven chunks; a Dask task starts a
# process (~0.1 s) and a Slurm job costs ~1-2 s, so those get one or two big
# batches per worker.
_TASKS_PER_WORKER = {"threads": 4, "processes": 4, "dask": 2, "cluster": 1}
# Sequential executors run the tasks inside submit(): batches only save
# cluster_tools' per-task overhead (~2 ms with pickling), so at most this many
# tasks, which keeps the progress bar moving.
_SEQUENTIAL_TASKS = 256
# Upper bounds on the task count: cluster_tools polls every unfinished
# cluster job with one `scontrol` call per round, and every Dask task is a
# process of its own.
_MAX_TASKS = {"dask": 512, "cluster": 256}
# Assumed workers of a cluster whose size cannot be queried (PBS, Kubernetes).
_FALLBACK_CLUSTER_WORKERS = 16


class _Kind(NamedTuple):
    name: str  # "sequential", "threads", "processes", "dask", "cluster", "batching"
    pickles: bool  # whether task results cross a process boundary
    uses_map: bool  # submit all batches with one map_to_futures call


def _is_dask(executor: Any) -> bool:
    module = type(executor).__module__
    return module.startswith("cluster_tools.executors.dask") or (
        hasattr(executor, "client") and hasattr(executor, "job_resources") and "dask" in module
    )


def _kind(executor: Any) -> _Kind:
    if isinstance(executor, SequentialExecutor):
        # SequentialPickleExecutor (a subclass) pickles every job
        return _Kind("sequential", type(executor) is not SequentialExecutor, False)
    if isinstance(executor, ClusterExecutor):
        return _Kind("cluster", True, True)
    if _is_dask(executor):
        return _Kind("dask", True, False)
    if isinstance(executor, ThreadPoolExecutor):
        return _Kind("threads", False, False)
    if isinstance(executor, FuturesExecutor):
        return _Kind("processes", True, False)
    if isinstance(executor, cluster_tools.BatchingExecutor):
        return _Kind("batching", True, True)
    if hasattr(executor, "map_to_futures"):
        return _Kind("cluster", True, True)
    if hasattr(executor, "submit"):
        return _Kind("processes", True, False)
    raise TypeError(
        f"executor must be None, a concurrent.futures.Executor or a cluster_tools executor, "
        f"got {type(executor).__name__}"
    )


def runs_here(executor: Any) -> bool:
    """True when ``executor`` runs its jobs on this machine (None, sequential, threads, a local
    process pool); False for Dask and cluster executors, whose jobs run elsewhere."""
    return executor is None or _kind(executor).name in ("sequential", "threads", "processes")


def _slurm_workers(executor: Any) -> int:
    """Job slots of the Slurm cluster: CPUs of the usable nodes / CPUs per job."""
    try:
        out = subprocess.run(
            ["sinfo", "-h", "-N", "-o", "%N %c %t"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return _FALLBACK_CLUSTER_WORKERS
    cpus: dict[str, int] = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1].isdigit() and not parts[2].startswith(("down", "drain", "fail")):
            cpus[parts[0]] = int(parts[1])  # a node in several partitions counts once
    per_job = 1
    resources = getattr(executor, "job_resources", None) or {}
    for key in ("cpus-per-task", "cpus_per_task", "c"):
        if str(resources.get(key, "")).isdigit():
            per_job = max(1, int(resources[key]))
    total = sum(cpus.values()) // per_job
    return total if total > 0 else _FALLBACK_CLUSTER_WORKERS


def _worker_count(executor: Any, kind: _Kind) -> int:
    if kind.name == "dask":
        try:
            return max(1, sum(executor.client.nthreads().values()))
        except Exception:
            return 1
    if kind.name == "cluster":
        if isinstance(executor, SlurmExecutor):
            return _slurm_workers(executor)
        return _FALLBACK_CLUSTER_WORKERS
    workers = getattr(executor, "_max_workers", None)
    return workers if isinstance(workers, int) and workers > 0 else available_cores()


def default_batch_size(n_items: int, executor: Any) -> int:
    """Items per task that :func:`run_jobs` uses when ``batch_size`` is None.

    Thread and process pools get about 4 tasks per worker
    (``ceil(n / (4 * workers))``), Dask about 2 per worker thread (at most
    512 tasks), Slurm one per job slot (CPUs of the usable nodes divided by
    ``cpus-per-task``; at most 256 jobs), PBS and Kubernetes as if they had
    16 slots. Sequential executors run at most 256 tasks (one item per task
    up to 256 items), and cluster_tools' ``BatchingExecutor``, which batches
    by itself, one item per task.

    Parameters
    ----------
    n_items : int
        Number of items.
    executor : Executor or None
        The executor that will run them.

    Returns
    -------
    int
        The batch size, at least 1.
    """
    if n_items < 0:
        raise ValueError(f"n_items must not be negative, got {n_items}")
    if executor is None:
        return 1
    kind = _kind(executor)
    if kind.name == "batching" or n_items == 0:
        return 1
    if kind.name == "sequential":
        return max(1, math.ceil(n_items / _SEQUENTIAL_TASKS))
    tasks = _worker_count(executor, kind) * _TASKS_PER_WORKER[kind.name]
    tasks = min(tasks, _MAX_TASKS.get(kind.name, tasks))
    return max(1, math.ceil(n_items / tasks))

class _Batch(NamedTuple):
    start: int  # index of the first item in `items`
    items: Any  # a slice of a Sequence, or a list


def _batches(items: Any, n: int, size: int) -> Iterator[_Batch]:
    if isinstance(items, Sequence):
        # slices of a range (or another lazy sequence) stay lazy and tiny to pickle
        for start in range(0, n, size):
            yield _Batch(start, items[start : start + size])
        return
    iterator = iter(items)
    start = 0
    while True:
        chunk = list(itertools.islice(iterator, size))
        if not chunk:
            return
        yield _Batch(start, chunk)
        start += len(chunk)

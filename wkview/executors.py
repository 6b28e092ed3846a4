"""Run one job per item on any executor: wkview's engine-independent execution layer.

:func:`run_jobs` calls ``fn(item)`` for every item and returns the results in
order. It runs in the calling process (``executor=None``), on any
:mod:`concurrent.futures` executor and on every ``cluster_tools`` executor
(sequential, multiprocessing, Dask, Slurm, PBS, Kubernetes).
:func:`get_executor` creates those executors with defaults that suit chunk
jobs.

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
"""

from __future__ import annotations

import functools
import getpass
import itertools
import logging
import math
import multiprocessing
import os
import pickle
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor as FuturesExecutor
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any, NamedTuple, TypeVar

import cluster_tools
from cluster_tools import ClusterExecutor, SequentialExecutor, SlurmExecutor

from .errors import WkviewError

__all__ = [
    "JobError",
    "JobTimeoutError",
    "EXECUTOR_NAMES",
    "available_cores",
    "default_batch_size",
    "get_executor",
    "run_jobs",
]

_T = TypeVar("_T")
_R = TypeVar("_R")

log = logging.getLogger(__name__)

#: Names :func:`get_executor` accepts.
EXECUTOR_NAMES = (
    "sequential",
    "multiprocessing",
    "threads",
    "processes",
    "dask",
    "slurm",
    "pbs",
    "kubernetes",
    "sequential_with_pickling",
    "multiprocessing_with_pickling",
)

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
# progress=None shows a bar only for at least this many items (and a tty).
_PROGRESS_MIN_ITEMS = 64
# How often the wait loop wakes up to notice Ctrl-C and the timeout.
_WAIT_TICK_S = 0.2
_DESCRIBE_MAX_CHARS = 300


# ---------------------------------------------------------------------------
# errors


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


# ---------------------------------------------------------------------------
# what runs in the worker


class _Failure(NamedTuple):
    """A job's exception, in a form that survives pickling."""

    position: int  # index of the item within its batch
    type_name: str
    message: str
    traceback_text: str
    exception: BaseException | None  # None when it would not survive pickling


class _BatchOutcome(NamedTuple):
    """What a task returns: the results of its items up to the first failure."""

    results: list[Any]
    failure: _Failure | None


def _safe_str(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:  # a broken __str__ must not hide the failure
        return f"<{type(exc).__name__} whose str() failed>"


def _portable(exc: BaseException) -> BaseException | None:
    """``exc`` if a pickle round trip reproduces it, else None.

    Exceptions whose ``__init__`` does not take ``self.args`` pickle fine but
    fail to unpickle, so the whole round trip is tried here in the worker:
    an exception that cannot travel must not turn the task's result into an
    unpicklable one.
    """
    try:
        return pickle.loads(pickle.dumps(exc))  # type: ignore[no-any-return]
    except Exception:
        return None


def _failure_of(exc: Exception, position: int, kept: BaseException | None) -> _Failure:
    """Describe a job's exception; the traceback starts in the job function, not in our loop."""
    tb = exc.__traceback__.tb_next if exc.__traceback__ is not None else None
    text = "".join(traceback.format_exception(type(exc), exc, tb))
    return _Failure(position, type(exc).__qualname__, _safe_str(exc), text, kept)


def _run_batch(fn: Callable[[Any], Any], portable: bool, items: Iterable[Any]) -> _BatchOutcome:
    """Call ``fn`` on every item of one batch, stopping at the first failure.

    This is the function every task runs. It never raises an ``Exception``:
    a failure comes back as data, so the caller gets the same report from
    every engine, including the traceback text that Dask and process pools
    would otherwise drop.

    Parameters
    ----------
    fn : callable
        The job function.
    portable : bool
        Whether the outcome crosses a process boundary; if so, an exception
        that cannot be pickled is sent as text only.
    items : iterable
        The batch.

    Returns
    -------
    _BatchOutcome
        The results in order and the failure, if any.
    """
    results: list[Any] = []
    for position, item in enumerate(items):
        try:
            results.append(fn(item))
        except Exception as exc:
            return _BatchOutcome(results, _failure_of(exc, position, _portable(exc) if portable else exc))
    return _BatchOutcome(results, None)


def _child_main(conn: Any, runner: Callable[[Any], Any], items: Any, env: dict[str, str], cwd: str) -> None:
    """Body of the process that runs one Dask task (see :func:`_run_in_child`)."""
    os.environ.update(env)
    try:
        os.chdir(cwd)
    except OSError:
        pass
    try:
        payload: tuple[str, Any] = ("ok", runner(items))
    except BaseException as exc:
        payload = ("error", exc)
    try:
        conn.send(payload)
    except Exception as exc:  # an unpicklable result
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        conn.send(("error", RuntimeError(f"the task's result could not be sent back:\n{text}")))
    finally:
        conn.close()


_child_context_lock = threading.Lock()
_child_context: Any = None


def _task_process_context() -> Any:
    """The multiprocessing context for Dask task processes, made once per worker.

    ``forkserver`` with wkview preloaded forks a task process in ~15 ms; a
    ``spawn``-ed one (what cluster_tools uses) starts an interpreter and
    imports numpy and wkview again, ~0.3 s. Where there is no forkserver
    (Windows), ``spawn``.
    """
    global _child_context
    with _child_context_lock:
        if _child_context is None:
            if "forkserver" in multiprocessing.get_all_start_methods():
                context = multiprocessing.get_context("forkserver")
                context.set_forkserver_preload([__name__])
            else:
                context = multiprocessing.get_context("spawn")
            _child_context = context
        return _child_context


def _run_in_child(runner: Callable[[Any], Any], items: Any, env: dict[str, str], cwd: str) -> Any:
    """Run ``runner(items)`` in a process of its own; what a Dask task runs.

    Like cluster_tools' Dask executor, every task gets its own process (so a
    job that holds the GIL cannot starve the worker's event loop, and a crash
    cannot take the worker down) with the submitting process' environment
    and working directory. Unlike it, the result is read *before* the child
    is joined: cluster_tools joins first, which deadlocks as soon as a result
    is larger than the pipe buffer (64 KiB), since the child cannot exit
    before its result has been read. And the process is forked from a
    forkserver that has wkview imported (see :func:`_task_process_context`).
    """
    context = _task_process_context()
    reader, writer = context.Pipe(duplex=False)
    process = context.Process(target=_child_main, args=(writer, runner, items, env, cwd))
    process.start()
    writer.close()
    try:
        status, value = reader.recv()
    except EOFError:
        process.join()
        raise ChildProcessError(
            f"the task's process (pid {process.pid}) exited with code {process.exitcode} before sending its result"
        ) from None
    finally:
        reader.close()
    process.join()
    if status == "error":
        raise value
    return value


# ---------------------------------------------------------------------------
# executors


def available_cores() -> int:
    """Number of CPU cores this process may run on (its affinity mask)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _default_cfut_dir() -> str:
    """Folder for the pickled jobs and logs of the cluster executors.

    ``CFUT_DIR`` wins; otherwise a per-user folder in the temp dir, which is
    shared with the jobs only on a one-node cluster: on a real cluster set
    ``CFUT_DIR`` (or pass ``cfut_dir=``) to a folder on a shared filesystem.
    """
    env = os.environ.get("CFUT_DIR")
    if env:
        return env
    return os.path.join(tempfile.gettempdir(), f"wkview-cfut-{getpass.getuser()}")


def _keep_sigint_handler(make: Callable[[], _T]) -> _T:
    """Run ``make`` and undo the SIGINT handler it installs.

    cluster_tools' Dask and cluster executors replace the SIGINT handler with
    one that cancels their jobs but swallows ``KeyboardInterrupt`` when the
    default handler was active, so Ctrl-C no longer stops the program.
    :func:`run_jobs` cancels its own tasks on ``KeyboardInterrupt``, so the
    previous handler is put back.
    """
    in_main = threading.current_thread() is threading.main_thread()
    before = signal.getsignal(signal.SIGINT) if in_main else None
    executor = make()
    if in_main and signal.getsignal(signal.SIGINT) is not before:
        signal.signal(signal.SIGINT, before)
    return executor


def get_executor(name: str = "multiprocessing", **kwargs: Any) -> Any:
    """Create an executor for :func:`run_jobs` (and for webknossos' API).

    Parameters
    ----------
    name : str
        One of :data:`EXECUTOR_NAMES`:

        ``"sequential"``
            cluster_tools' in-process executor (jobs run inside ``submit``).
        ``"multiprocessing"``
            cluster_tools' process pool (``spawn``); ``max_workers`` defaults
            to :func:`available_cores`.
        ``"threads"``, ``"processes"``
            plain :class:`~concurrent.futures.ThreadPoolExecutor` /
            :class:`~concurrent.futures.ProcessPoolExecutor` with
            ``max_workers`` = :func:`available_cores`; the process pool uses
            ``spawn`` unless ``mp_context`` or ``start_method`` is given
            (``fork`` in a process with threads can deadlock).
        ``"dask"``
            cluster_tools' Dask executor. The scheduler address comes from
            ``address=`` or ``job_resources["address"]`` or the environment
            variable ``DASK_ADDRESS`` (or pass a ``client=``); without any of
            them a :class:`ValueError` is raised rather than silently starting
            a local cluster. Workers must run with
            ``DASK_DISTRIBUTED__WORKER__DAEMON=False``.
        ``"slurm"``, ``"pbs"``, ``"kubernetes"``
            cluster_tools' cluster executors. ``cfut_dir`` defaults to
            ``CFUT_DIR`` or a per-user temp folder (which must be visible to
            the jobs); for Slurm, ``job_resources`` gets ``mem="500M"``
            unless it names ``mem``, and ``USER`` is set if missing (the
            Slurm commands cluster_tools runs need it). ``poll_interval``
            (seconds) sets how often cluster_tools looks for finished jobs
            (its default is 2 s).
        ``"sequential_with_pickling"``, ``"multiprocessing_with_pickling"``
            cluster_tools' variants that pickle every job (to test that jobs
            pickle).
    **kwargs
        Passed on to the executor's constructor.

    Returns
    -------
    Executor
        Use it as a context manager, or call ``shutdown()`` when done.

    Raises
    ------
    ValueError
        For an unknown name or a Dask executor without an address.

    Notes
    -----
    The Dask and cluster executors would replace the process' SIGINT handler
    with one that swallows Ctrl-C; the previous handler is restored (pass
    ``keep_sigint=False`` to keep cluster_tools' handler).
    """
    if name not in EXECUTOR_NAMES:
        raise ValueError(f"unknown executor {name!r}; expected one of {', '.join(EXECUTOR_NAMES)}")
    keep_sigint = kwargs.pop("keep_sigint", True)

    if name == "threads":
        kwargs.setdefault("max_workers", available_cores())
        return ThreadPoolExecutor(**kwargs)
    if name == "processes":
        start_method = kwargs.pop("start_method", None)
        if "mp_context" not in kwargs:
            kwargs["mp_context"] = multiprocessing.get_context(start_method or "spawn")
        elif start_method is not None:
            raise ValueError("give either start_method or mp_context, not both")
        kwargs.setdefault("max_workers", available_cores())
        return ProcessPoolExecutor(**kwargs)
    if name in ("multiprocessing", "multiprocessing_with_pickling"):
        kwargs.setdefault("max_workers", available_cores())
        return cluster_tools.get_executor(name, **kwargs)  # type: ignore[call-overload]
    if name == "dask":
        return _get_dask_executor(kwargs, keep_sigint)
    if name in ("slurm", "pbs", "kubernetes"):
        return _get_cluster_executor(name, kwargs, keep_sigint)
    return cluster_tools.get_executor(name, **kwargs)  # type: ignore[call-overload]


def _get_dask_executor(kwargs: dict[str, Any], keep_sigint: bool) -> Any:
    address = kwargs.pop("address", None)
    job_resources = dict(kwargs.pop("job_resources", None) or {})
    if address is not None:
        job_resources["address"] = address
    if "client" not in kwargs and "address" not in job_resources and not os.environ.get("DASK_ADDRESS"):
        raise ValueError(
            "the dask executor needs a scheduler: pass address='tcp://host:port' "
            "(or client=, or set DASK_ADDRESS)"
        )

    def make() -> Any:
        # cluster_tools deprecates its Dask executor; it is still the one
        # webknossos uses, so the warning is not the caller's business.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return cluster_tools.get_executor("dask", job_resources=job_resources, **kwargs)

    return _keep_sigint_handler(make) if keep_sigint else make()


def _get_cluster_executor(name: str, kwargs: dict[str, Any], keep_sigint: bool) -> Any:
    poll_interval = kwargs.pop("poll_interval", None)
    if poll_interval is not None and not poll_interval > 0:
        raise ValueError(f"poll_interval must be positive, got {poll_interval!r}")
    kwargs.setdefault("cfut_dir", _default_cfut_dir())
    os.makedirs(kwargs["cfut_dir"], exist_ok=True)
    if name == "slurm":
        resources = dict(kwargs.get("job_resources") or {})
        resources.setdefault("mem", "500M")
        kwargs["job_resources"] = resources
        # cluster_tools runs `squeue -u $USER`; a shell without USER would
        # list every user's jobs as ours
        if not os.environ.get("USER"):
            os.environ["USER"] = getpass.getuser()

    def make() -> Any:
        return cluster_tools.get_executor(name, **kwargs)  # type: ignore[call-overload]

    executor = _keep_sigint_handler(make) if keep_sigint else make()
    if poll_interval is not None:
        executor.wait_thread.interval = poll_interval
    return executor


# ---------------------------------------------------------------------------
# executor kinds and batch sizes


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


# ---------------------------------------------------------------------------
# run_jobs


def _describe_safely(describe: Callable[[Any], str] | None, item: Any) -> str:
    try:
        text = describe(item) if describe is not None else repr(item)
    except Exception as exc:  # the report must not fail because of the describer
        text = f"{item!r} (describe failed: {type(exc).__name__}: {exc})"
    if len(text) > _DESCRIBE_MAX_CHARS:
        text = text[: _DESCRIBE_MAX_CHARS - 3] + "..."
    return text


def _function_name(fn: Callable[..., Any]) -> str:
    while isinstance(fn, functools.partial):
        fn = fn.func
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or type(fn).__name__


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


class _Run:
    """State of one :func:`run_jobs` call on an executor."""

    def __init__(
        self,
        executor: Any,
        kind: _Kind,
        n: int,
        describe: Callable[[Any], str] | None,
        bar: Any,
        deadline: float | None,
    ) -> None:
        self.executor = executor
        self.kind = kind
        self.n = n
        self.describe = describe
        self.bar = bar
        self.deadline = deadline
        self.futures: list[Any] = []
        self.batches: list[_Batch | None] = []
        self.results: list[list[Any] | None] = []
        self.done: queue.SimpleQueue[int] = queue.SimpleQueue()
        self.finished = 0
        self.all_submitted = kind.name != "cluster"

    def add(self, batch: _Batch, future: Any) -> None:
        index = len(self.futures)
        self.futures.append(future)
        self.batches.append(batch)
        self.results.append(None)
        # the callback may run at once (a finished future) or in another thread
        future.add_done_callback(lambda _f, i=index: self.done.put(i))

    def drain(self, block: bool) -> None:
        """Handle finished tasks; with ``block``, until every task finished."""
        while self.finished < len(self.futures):
            try:
                if block:
                    index = self.done.get(timeout=self._tick())
                else:
                    index = self.done.get_nowait()
            except queue.Empty:
                if not block:
                    return
                self._check_deadline()
                self._check_submission()
                continue
            self._collect(index)

    def _tick(self) -> float:
        if self.deadline is None:
            return _WAIT_TICK_S
        return max(0.0, min(_WAIT_TICK_S, self.deadline - time.monotonic()))

    def _check_deadline(self) -> None:
        if self.deadline is not None and time.monotonic() >= self.deadline:
            left = sum(1 for r in self.results if r is None)
            raise JobTimeoutError(f"run_jobs timed out with {left} of {len(self.futures)} tasks unfinished")

    def _check_submission(self) -> None:
        """Fail instead of waiting forever for cluster jobs that were never submitted.

        cluster_tools submits in a thread; when ``sbatch`` fails (say, for a
        memory request no node can meet), that thread dies and the futures
        of the jobs stay pending for good. Once no submit thread is alive,
        every submitted job's future carries its ``cluster_jobid``.
        """
        if self.all_submitted:
            return
        threads = getattr(self.executor, "submit_threads", None)
        if threads is None or any(t.is_alive() for t in threads):
            return
        lost = [
            i for i, f in enumerate(self.futures) if not f.done() and getattr(f, "cluster_jobid", None) is None
        ]
        if lost:
            batch = self.batches[lost[0]]
            span = self._span(batch) if batch is not None else "some items"
            raise JobError(
                f"{len(lost)} of {len(self.futures)} cluster jobs (the first for {span}) were never "
                f"submitted: the submission command failed (its error is in the log above; check the "
                f"job_resources {getattr(self.executor, 'job_resources', None)})"
            )
        self.all_submitted = True

    def _collect(self, index: int) -> None:
        if self.results[index] is not None:
            return
        future = self.futures[index]
        batch = self.batches[index]
        if batch is None:  # pragma: no cover - every batch is collected once
            return
        error = self._task_exception(future)
        if error is not None:
            raise self._task_error(batch, error)
        outcome = future.result()
        if not isinstance(outcome, _BatchOutcome):  # e.g. a foreign executor that mangles results
            raise JobError(f"task for {self._span(batch)} returned {type(outcome).__name__}, not a batch outcome")
        if outcome.failure is not None:
            raise self._item_error(batch, outcome.failure)
        self.results[index] = outcome.results
        self.batches[index] = None  # the items are no longer needed
        self.finished += 1
        if self.bar is not None:
            self.bar.update(len(outcome.results))

    @staticmethod
    def _task_exception(future: Any) -> BaseException | None:
        cancelled = getattr(future, "cancelled", None)
        if callable(cancelled) and cancelled():
            return _Cancelled("the task was cancelled before it finished")
        try:
            return future.exception()  # type: ignore[no-any-return]
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # a CancelledError of some flavour, raised by exception()
            return exc

    def _span(self, batch: _Batch) -> str:
        count = len(batch.items)
        first = _describe_safely(self.describe, batch.items[0]) if count else ""
        if count == 1:
            return f"item {batch.start} ({first})"
        last = _describe_safely(self.describe, batch.items[count - 1])
        return f"items {batch.start}..{batch.start + count - 1} ({first} ... {last})"

    def _task_error(self, batch: _Batch, error: BaseException) -> JobError:
        text = _exception_text(error)
        message = f"the task for {self._span(batch)} of {self.n} failed: {type(error).__name__}: {error}"
        if text and text.strip() not in message:
            message += f"\n\n{text.rstrip()}"
        job_error = JobError(message, description=self._span(batch), traceback_text=text, original=error)
        job_error.__cause__ = error
        return job_error

    def _item_error(self, batch: _Batch, failure: _Failure) -> JobError:
        index = batch.start + failure.position
        return _make_item_error(
            index, self.n, _describe_safely(self.describe, batch.items[failure.position]), failure
        )

    def cancel_pending(self) -> None:
        """Cancel the tasks that have not finished; best effort, never raises."""
        pending = [f for f in self.futures if not f.done()]
        if not pending:
            return
        try:
            if self.kind.name == "cluster":
                _cancel_cluster_jobs(self.executor, pending)
            elif self.kind.name == "dask":
                self.executor.client.cancel(pending)
            else:
                for future in pending:
                    future.cancel()
        except Exception as exc:
            log.warning("could not cancel %d pending tasks: %s", len(pending), exc)


class _Cancelled(Exception):
    """Stands in for a task that was cancelled by someone else."""


def _exception_text(error: BaseException) -> str:
    # cluster_tools' RemoteException carries the remote traceback as text
    remote = getattr(error, "error", None)
    if isinstance(remote, str) and remote.strip():
        return remote
    if isinstance(error, _Cancelled):
        return ""
    return "".join(traceback.format_exception(type(error), error, error.__traceback__))


def _make_item_error(index: int, n: int, description: str, failure: _Failure) -> JobError:
    message = (
        f"job {index} of {n} ({description}) failed: {failure.type_name}: {failure.message}\n\n"
        f"{failure.traceback_text.rstrip()}"
    )
    error = JobError(
        message,
        index=index,
        description=description,
        traceback_text=failure.traceback_text,
        original=failure.exception,
    )
    error.__cause__ = failure.exception
    return error


def _cancel_cluster_jobs(executor: Any, pending: list[Any]) -> None:
    """Cancel the Slurm jobs behind unfinished futures.

    A call's tasks form one array job (or a few, when Slurm's MaxArraySize
    splits them), which is cancelled as a whole: cancelling single pending
    elements makes them vanish from ``scontrol``, and cluster_tools would
    then wait for them forever. Elements that already finished keep their
    state. The futures themselves are left alone: cluster_tools completes
    them when it sees the jobs cancelled, while a future cancelled behind its
    back makes it fail in its cleanup.
    """
    if not isinstance(executor, SlurmExecutor) or shutil.which("scancel") is None:
        return
    ids = sorted({str(job) for job in (getattr(f, "cluster_jobid", None) for f in pending) if job is not None})
    if ids:
        subprocess.run(["scancel", *ids], capture_output=True, timeout=30, check=False)


def _run_inline(
    fn: Callable[[Any], Any],
    items: Iterable[Any],
    n: int,
    describe: Callable[[Any], str] | None,
    bar: Any,
    deadline: float | None,
) -> list[Any]:
    results = []
    for index, item in enumerate(items):
        try:
            results.append(fn(item))
        except Exception as exc:
            failure = _failure_of(exc, 0, exc)
            raise _make_item_error(index, n, _describe_safely(describe, item), failure) from exc
        if bar is not None:
            bar.update(1)
        if deadline is not None and time.monotonic() >= deadline and index + 1 < n:
            raise JobTimeoutError(f"run_jobs timed out after {index + 1} of {n} jobs")
    return results


def _make_bar(progress: bool | None, n: int, desc: str) -> Any:
    if progress is None:
        progress = n >= _PROGRESS_MIN_ITEMS and sys.stderr is not None and sys.stderr.isatty()
    if not progress:
        return None
    from tqdm import tqdm

    return tqdm(total=n, desc=desc or None, unit="job", dynamic_ncols=True, leave=False)


def run_jobs(
    fn: Callable[[_T], _R],
    args: Sequence[_T] | Iterable[_T],
    executor: Any = None,
    *,
    batch_size: int | None = None,
    progress: bool | None = None,
    describe: Callable[[_T], str] | None = None,
    desc: str = "",
    timeout: float | None = None,
) -> list[_R]:
    """Call ``fn(arg)`` for every item of ``args``; return the results in order.

    Parameters
    ----------
    fn : callable
        The job: takes one item, returns a picklable result. On an executor
        that runs jobs in other processes it must be importable there (a
        module-level function, or a :func:`functools.partial` of one; common
        state goes into the partial, which is pickled once per task).
    args : sequence or iterable
        The items. A :class:`~collections.abc.Sequence` is sliced into
        batches (a ``range`` stays a ``range``); another iterable is read in
        batches, and in full first if it has no ``len()``.
    executor : Executor or None
        None runs the jobs here, one after the other, without pickling.
        Otherwise any :class:`concurrent.futures.Executor` (``submit``) or
        cluster_tools executor (``map_to_futures``), e.g. from
        :func:`get_executor`. The executor is not shut down.
    batch_size : int, optional
        Items per task; by default :func:`default_batch_size` (a few tasks
        per worker; fewer, bigger ones on Dask and Slurm). Ignored with
        ``executor=None``.
    progress : bool, optional
        Show a tqdm bar over finished items; None (the default) shows one
        only when stderr is a terminal and there are at least 64 items.
    describe : callable, optional
        Turns an item into the text an error message names it by (e.g. the
        chunk's bounding box); called in this process, only on failure.
        Defaults to ``repr``.
    desc : str
        Label of the progress bar.
    timeout : float, optional
        Seconds for the whole call; then :class:`JobTimeoutError` is raised
        and the unfinished tasks are cancelled. With ``executor=None`` it is
        checked between jobs only.

    Returns
    -------
    list
        ``[fn(arg) for arg in args]``.

    Raises
    ------
    JobError
        When a job raises (the first failure seen; the message names the item
        and holds the job's traceback) or a task fails as a whole (a killed
        worker process or cluster job). Tasks that have not finished are
        cancelled: not-yet-started futures are cancelled, Dask tasks
        cancelled on the scheduler, Slurm jobs ``scancel``-ed. Jobs already
        running in other processes may still finish in the background.
    JobTimeoutError
        When ``timeout`` passes first.
    ValueError
        For a ``batch_size`` or ``timeout`` that is not positive.
    KeyboardInterrupt
        Re-raised after cancelling the unfinished tasks.
    """
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int)):
        raise TypeError(f"batch_size must be an int or None, got {batch_size!r}")
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if timeout is not None and not timeout > 0:
        raise ValueError(f"timeout must be positive, got {timeout!r}")
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {fn!r}")
    kind = _kind(executor) if executor is not None else None

    if isinstance(args, Sequence) or hasattr(args, "__len__"):
        items: Any = args
        n = len(args)  # type: ignore[arg-type]
    else:
        items = list(args)
        n = len(items)
    deadline = None if timeout is None else time.monotonic() + timeout
    bar = _make_bar(progress, n, desc or _function_name(fn))
    try:
        if kind is None:
            return _run_inline(fn, items, n, describe, bar, deadline)
        if n == 0:
            return []
        size = batch_size if batch_size is not None else default_batch_size(n, executor)
        return _run_on(executor, kind, fn, items, n, size, describe, bar, deadline)
    finally:
        if bar is not None:
            bar.close()


def _run_on(
    executor: Any,
    kind: _Kind,
    fn: Callable[[Any], Any],
    items: Any,
    n: int,
    size: int,
    describe: Callable[[Any], str] | None,
    bar: Any,
    deadline: float | None,
) -> list[Any]:
    runner = functools.partial(_run_batch, fn, kind.pickles)
    # cluster_tools names Slurm jobs after the function
    runner.__name__ = f"wkview_{_function_name(fn)}"  # type: ignore[attr-defined]
    run = _Run(executor, kind, n, describe, bar, deadline)
    try:
        if kind.uses_map:
            batches = list(_batches(items, n, size))
            futures = executor.map_to_futures(runner, [b.items for b in batches])
            for batch, future in zip(batches, futures):
                run.add(batch, future)
        else:
            submit = _dask_submit(executor) if kind.name == "dask" else executor.submit
            for batch in _batches(items, n, size):
                run.add(batch, submit(runner, batch.items))
                # a sequential executor has already run it: stop at a failure
                run.drain(block=False)
                run._check_deadline()
        run.drain(block=True)
    except BaseException:
        run.cancel_pending()
        raise
    out: list[Any] = []
    for part in run.results:
        out.extend(part or ())
    return out


def _dask_submit(executor: Any) -> Callable[[Callable[[Any], Any], Any], Any]:
    """``submit`` for cluster_tools' Dask executor, through its client.

    Tasks run :func:`_run_in_child` with the executor's ``job_resources``;
    see there for why not the executor's own ``submit``.
    """
    client = getattr(executor, "client", None)
    if client is None:
        return executor.submit  # type: ignore[no-any-return]
    resources = getattr(executor, "job_resources", None) or None
    if resources:
        # a task whose resources no worker has would wait forever
        try:
            workers = client.scheduler_info(n_workers=-1)["workers"]
        except TypeError:  # distributed before 2025 lists every worker anyway
            workers = client.scheduler_info()["workers"]
        if not any(
            all((w.get("resources") or {}).get(key, 0) >= value for key, value in resources.items())
            for w in workers.values()
        ):
            offered = sorted({str(w.get("resources") or {}) for w in workers.values()})
            raise ValueError(f"no Dask worker offers the resources {resources}; workers offer {offered}")
    env = dict(os.environ)
    cwd = os.getcwd()

    def submit(runner: Callable[[Any], Any], items: Any) -> Any:
        return client.submit(_run_in_child, runner, items, env, cwd, pure=False, resources=resources)

    return submit

"""Running jobs: :func:`run_jobs`, the wait for its tasks, their errors and cancellation."""

from __future__ import annotations

import functools
import logging
import os
import queue
import shutil
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from cluster_tools import SlurmExecutor

from ._batching import _Batch, _batches, _Kind, _kind, default_batch_size
from ._errors import JobError, JobTimeoutError
from ._worker import _BatchOutcome, _Failure, _failure_of, _run_batch, _run_in_child

__all__ = ["run_jobs"]

_T = TypeVar("_T")
_R = TypeVar("_R")

# the name the package always logged under
log = logging.getLogger("wkview.executors")

# progress=None shows a bar only for at least this many items (and a tty).
_PROGRESS_MIN_ITEMS = 64
# How often the wait loop wakes up to notice Ctrl-C and the timeout.
_WAIT_TICK_S = 0.2
_DESCRIBE_MAX_CHARS = 300


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
            self.bar.done(batch.start, len(outcome.results))

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
            bar.done(index, 1)
        if deadline is not None and time.monotonic() >= deadline and index + 1 < n:
            raise JobTimeoutError(f"run_jobs timed out after {index + 1} of {n} jobs")
    return results


class _Progress:
    """A tqdm bar that counts finished items, or their weights (voxels, bytes) when given."""

    def __init__(self, bar: Any, weights: list[float] | None) -> None:
        self.bar = bar
        self.weights = weights

    def done(self, start: int, count: int) -> None:
        self.bar.update(count if self.weights is None else sum(self.weights[start : start + count]))

    def close(self) -> None:
        self.bar.close()


def _make_bar(
    progress: bool | None, n: int, desc: str, unit: str = "job", weights: list[float] | None = None
) -> _Progress | None:
    if progress is None:
        progress = n >= _PROGRESS_MIN_ITEMS and sys.stderr is not None and sys.stderr.isatty()
    if not progress:
        return None
    from tqdm import tqdm

    total = n if weights is None else sum(weights)
    bar = tqdm(total=total, desc=desc or None, unit=unit, unit_scale=weights is not None, dynamic_ncols=True, leave=False)
    return _Progress(bar, weights)


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
    unit: str = "job",
    weight: Callable[[_T], float] | None = None,
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
    unit, weight : str, callable, optional
        What the bar counts: by default finished items ("job"); with
        ``weight``, the sum of ``weight(item)`` over finished items, in
        ``unit`` (e.g. "voxel"), with rate and time left.
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
    weights = None if weight is None or progress is False else [float(weight(item)) for item in items]
    bar = _make_bar(progress, n, desc or _function_name(fn), unit, weights)
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

"""run_jobs and get_executor on every executor kind that needs no service.

Kinds: in-process (executor=None), cluster_tools' sequential executors,
cluster_tools' multiprocessing executor, and plain concurrent.futures process
and thread pools, all with 2 workers. Dask and Slurm run the same workloads in
tests/engines/.
"""

from __future__ import annotations

import concurrent.futures
import functools
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from cluster_tools import MultiprocessingExecutor, SequentialExecutor

from wkview.errors import WkviewError
from wkview.executors import (
    JobError,
    JobTimeoutError,
    available_cores,
    default_batch_size,
    get_executor,
    run_jobs,
)

# tests._jobs.jobs, not a module of this file: worker processes must import the jobs
from ._jobs import jobs

WORKERS = 2
GUARD_S = 60.0  # no call may take longer: a hang fails the test instead of the suite

KINDS = ["inline", "sequential", "sequential_with_pickling", "multiprocessing", "processes", "threads"]
POOL_KINDS = ["multiprocessing", "processes", "threads"]


def _make(kind: str) -> Any:
    if kind == "inline":
        return None
    if kind == "processes":
        # a pool made directly, not through get_executor: any concurrent.futures executor works
        import multiprocessing

        return concurrent.futures.ProcessPoolExecutor(WORKERS, mp_context=multiprocessing.get_context("spawn"))
    if kind in ("multiprocessing", "threads"):
        return get_executor(kind, max_workers=WORKERS)
    return get_executor(kind)


@pytest.fixture(scope="module")
def pools() -> Iterator[dict[str, Any]]:
    """One executor per kind, shared by the module (process pools are slow to spawn)."""
    made: dict[str, Any] = {}
    yield made
    for executor in made.values():
        if executor is not None:
            executor.shutdown(wait=True)


@pytest.fixture(params=KINDS)
def executor(request: pytest.FixtureRequest, pools: dict[str, Any]) -> Any:
    kind = request.param
    if kind not in pools:
        pools[kind] = _make(kind)
    return pools[kind]


@pytest.fixture(params=[k for k in KINDS if k != "inline"])
def task_executor(request: pytest.FixtureRequest, pools: dict[str, Any]) -> Any:
    """The kinds that run tasks (all but executor=None)."""
    kind = request.param
    if kind not in pools:
        pools[kind] = _make(kind)
    return pools[kind]


def within(seconds: float, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call ``fn`` in a thread; fail the test if it does not return in time."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn(*args, **kwargs)
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        pytest.fail(f"{getattr(fn, '__name__', fn)} did not return within {seconds} s")
    if "error" in box:
        raise box["error"]
    return box.get("value")


@contextmanager
def counting_tasks(executor: Any) -> Iterator[list[Any]]:
    """Record what the executor is asked to run: one entry (the batch) per task."""
    tasks: list[Any] = []
    if hasattr(executor, "map_to_futures") and not isinstance(executor, concurrent.futures.Executor):
        pytest.fail("counting_tasks handles submit-based executors only")
    original = executor.submit

    def submit(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        tasks.append(args[0])
        return original(fn, *args, **kwargs)

    executor.submit = submit
    try:
        yield tasks
    finally:
        del executor.submit


# ---------------------------------------------------------------------------
# results


@pytest.mark.parametrize("n", [0, 1, 5, 103])
def test_results_in_order(executor: Any, n: int) -> None:
    assert within(GUARD_S, run_jobs, jobs.square, range(n), executor) == [x * x for x in range(n)]


@pytest.mark.parametrize("batch_size", [None, 1, 4, 1000])
def test_results_in_order_for_every_input_type(executor: Any, batch_size: int | None) -> None:
    items = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5]
    expected = [x * x for x in items]
    assert run_jobs(jobs.square, items, executor, batch_size=batch_size) == expected
    assert run_jobs(jobs.square, tuple(items), executor, batch_size=batch_size) == expected
    # an iterator without len(): read in batches
    assert run_jobs(jobs.square, iter(items), executor, batch_size=batch_size) == expected
    assert run_jobs(jobs.square, (x for x in items), executor, batch_size=batch_size) == expected


def test_partial_jobs_and_tuple_items(executor: Any) -> None:
    job = functools.partial(jobs.sleep_and_return, 0.0)
    assert run_jobs(job, range(7), executor) == list(range(7))
    boxes = [((x, 0, 0), (32, 32, 32)) for x in range(0, 320, 32)]
    assert [r[1] for r in run_jobs(jobs.pid_and_item, boxes, executor)] == boxes


def test_many_items(task_executor: Any) -> None:
    n = 20_000
    assert within(GUARD_S, run_jobs, jobs.square, range(n), task_executor) == [x * x for x in range(n)]


# ---------------------------------------------------------------------------
# batching


@pytest.mark.parametrize(("n", "batch_size", "tasks"), [(20, 6, 4), (20, 1, 20), (20, 20, 1), (20, 50, 1), (7, 2, 4)])
def test_batch_size_sets_the_task_count(task_executor: Any, n: int, batch_size: int, tasks: int) -> None:
    with counting_tasks(task_executor) as seen:
        results = run_jobs(jobs.pid_and_item, list(range(n)), task_executor, batch_size=batch_size)
    assert [item for _, item in results] == list(range(n))
    assert len(seen) == tasks
    assert [len(batch) for batch in seen] == [min(batch_size, n - s) for s in range(0, n, batch_size)]


def test_items_of_a_batch_run_in_one_process(pools: dict[str, Any]) -> None:
    # one worker process per batch: the pids of a batch's items are all equal
    executor = pools.setdefault("multiprocessing", _make("multiprocessing"))
    results = run_jobs(jobs.pid_and_item, range(40), executor, batch_size=10)
    for start in range(0, 40, 10):
        assert len({pid for pid, _ in results[start : start + 10]}) == 1
    assert {pid for pid, _ in results} != {os.getpid()}


@pytest.mark.parametrize("kind", POOL_KINDS)
def test_default_batching_gives_a_few_tasks_per_worker(pools: dict[str, Any], kind: str) -> None:
    executor = pools.setdefault(kind, _make(kind))
    assert default_batch_size(100, executor) == 13  # ceil(100 / (2 workers * 4))
    assert default_batch_size(3, executor) == 1
    with counting_tasks(executor) as seen:
        assert run_jobs(jobs.square, range(100), executor) == [x * x for x in range(100)]
    assert len(seen) == 8


@pytest.mark.parametrize("kind", ["sequential", "sequential_with_pickling"])
def test_sequential_executors_run_small_batches(pools: dict[str, Any], kind: str) -> None:
    executor = pools.setdefault(kind, _make(kind))
    assert default_batch_size(100, executor) == 1
    assert default_batch_size(1000, executor) == 4  # at most 256 tasks
    assert default_batch_size(100, None) == 1
    with counting_tasks(executor) as seen:
        run_jobs(jobs.square, range(10), executor)
    assert len(seen) == 10
    with counting_tasks(executor) as seen:
        run_jobs(jobs.square, range(1000), executor)
    assert len(seen) == 250


def test_a_range_travels_as_ranges(pools: dict[str, Any]) -> None:
    executor = pools.setdefault("processes", _make("processes"))
    with counting_tasks(executor) as seen:
        run_jobs(jobs.square, range(10**6), executor, batch_size=250_000)
    assert seen == [range(s, s + 250_000) for s in range(0, 10**6, 250_000)]


# ---------------------------------------------------------------------------
# failures


def test_failure_names_the_item_and_carries_the_traceback(executor: Any) -> None:
    job = functools.partial(jobs.fail_at, 13)
    with pytest.raises(JobError) as info:
        within(GUARD_S, run_jobs, job, range(40), executor, describe=lambda x: f"box #{x}", batch_size=4)
    err = info.value
    assert isinstance(err, WkviewError) and isinstance(err, RuntimeError)
    assert err.index == 13
    assert err.description == "box #13"
    message = str(err)
    assert "job 13 of 40 (box #13) failed" in message
    assert "PlannedFailure: job for 13 failed on purpose" in message
    # the traceback from where the job ran, down to the frame that raised
    assert "Traceback (most recent call last)" in message
    assert "in _deep_failure" in message and "jobs.py" in message
    assert "in _run_batch" not in message
    assert err.traceback_text.rstrip() in message
    # the original exception comes back (pickled, where the job ran elsewhere)
    assert isinstance(err.__cause__, jobs.PlannedFailure)
    assert err.original is err.__cause__
    assert str(err.__cause__) == "job for 13 failed on purpose"


def test_default_description_is_the_repr(executor: Any) -> None:
    boxes = [((x, 0, 0), (8, 8, 8)) for x in range(5)]

    def failing(box: Any) -> Any:
        raise RuntimeError("no")

    job = failing if executor is None or isinstance(executor, concurrent.futures.ThreadPoolExecutor) else None
    if job is None:
        # a process-based executor needs an importable job
        job = functools.partial(jobs.fail_at, boxes[2])
    with pytest.raises(JobError, match=r"\(\(\(\d+, 0, 0\), \(8, 8, 8\)\)\) failed"):
        within(GUARD_S, run_jobs, job, boxes, executor)


def test_an_exception_that_cannot_travel_still_reports(executor: Any) -> None:
    job = functools.partial(jobs.fail_unpicklable_at, 3)
    with pytest.raises(JobError) as info:
        within(GUARD_S, run_jobs, job, range(8), executor)
    message = str(info.value)
    assert "UnpicklableError: job for 3 failed (code 7)" in message
    assert "in fail_unpicklable_at" in message
    in_process = executor is None or type(executor) in (SequentialExecutor, concurrent.futures.ThreadPoolExecutor)
    cause = info.value.__cause__
    if in_process:
        assert isinstance(cause, jobs.UnpicklableError)
    else:
        # normally it cannot travel (None); once `distributed` is imported (the engine
        # tests do), tblib's exception pickling makes it travel intact
        assert cause is None or (isinstance(cause, jobs.UnpicklableError) and cause.code == 7)


def test_a_failing_describe_does_not_hide_the_failure(executor: Any) -> None:
    def bad_describe(x: int) -> str:
        raise KeyError(x)

    with pytest.raises(JobError, match=r"job 2 of 5 \(2 \(describe failed: KeyError: 2\)\)"):
        within(GUARD_S, run_jobs, functools.partial(jobs.fail_at, 2), range(5), executor, describe=bad_describe)


@pytest.mark.parametrize("kind", KINDS)
def test_failure_cancels_the_pending_jobs(kind: str, tmp_path: Path) -> None:
    log = str(tmp_path / "ran.txt")
    n = 40
    job = functools.partial(jobs.record, log, 0.15, 0)  # the first job fails at once
    executor = _make(kind)
    try:
        with pytest.raises(JobError, match="job 0 of 40"):
            within(GUARD_S, run_jobs, job, range(n), executor, batch_size=1)
    finally:
        if executor is not None:
            # waits for every job not cancelled: had run_jobs left the pending ones, all 40 run
            executor.shutdown(wait=True)
    ran = jobs.count_lines(log)
    if kind in ("inline", "sequential", "sequential_with_pickling"):
        assert ran == 1
    else:
        # only what was already running or queued in the workers: a handful
        assert 1 <= ran <= 3 * WORKERS + 2, ran


def test_a_killed_worker_process_raises_instead_of_hanging() -> None:
    executor = _make("processes")
    try:
        with pytest.raises(JobError, match=r"the task for items 0\.\.2 \(0 \.\.\. 2\) of 6 failed") as info:
            within(GUARD_S, run_jobs, jobs.exit_process, range(6), executor, batch_size=3)
        assert isinstance(info.value.__cause__, concurrent.futures.process.BrokenProcessPool)
        assert info.value.index is None
    finally:
        executor.shutdown(wait=True)


@pytest.mark.parametrize("kind", ["threads", "processes", "sequential", "inline"])
def test_timeout(pools: dict[str, Any], kind: str) -> None:
    executor = pools.setdefault(kind, _make(kind))
    job = functools.partial(jobs.sleep_and_return, 0.3)
    start = time.monotonic()
    with pytest.raises(JobTimeoutError) as info:
        within(GUARD_S, run_jobs, job, range(10), executor, batch_size=1, timeout=0.5)
    assert isinstance(info.value, TimeoutError) and isinstance(info.value, JobError)
    assert time.monotonic() - start < 2.5
    assert run_jobs(jobs.square, range(4), executor, timeout=30) == [0, 1, 4, 9]


def test_keyboard_interrupt_cancels_and_reraises(tmp_path: Path) -> None:
    # The third job presses Ctrl-C itself, so the test does not depend on how fast a loaded
    # machine gets through the jobs (a timer thread once fired after all of them had run).
    log = str(tmp_path / "ran.txt")
    job = functools.partial(jobs.record_and_interrupt, log, 0.1, 2)
    with concurrent.futures.ThreadPoolExecutor(1) as executor:
        with pytest.raises(KeyboardInterrupt):
            run_jobs(job, range(30), executor, batch_size=1)
    ran = jobs.count_lines(log)  # the pool has shut down: what was not cancelled has run
    assert 3 <= ran <= 8, ran


# ---------------------------------------------------------------------------
# arguments, executors, progress


@pytest.mark.parametrize("bad", [0, -3])
def test_batch_size_must_be_positive(executor: Any, bad: int) -> None:
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        run_jobs(jobs.square, range(3), executor, batch_size=bad)


def test_bad_arguments() -> None:
    with pytest.raises(TypeError, match="batch_size"):
        run_jobs(jobs.square, range(3), None, batch_size=2.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="batch_size"):
        run_jobs(jobs.square, range(3), None, batch_size=True)
    with pytest.raises(ValueError, match="timeout"):
        run_jobs(jobs.square, range(3), None, timeout=0)
    with pytest.raises(TypeError, match="callable"):
        run_jobs(42, range(3))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="executor must be"):
        run_jobs(jobs.square, range(3), object())
    with pytest.raises(ValueError, match="n_items"):
        default_batch_size(-1, None)


def test_get_executor_names_and_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="unknown executor 'spark'"):
        get_executor("spark")
    monkeypatch.delenv("DASK_ADDRESS", raising=False)
    with pytest.raises(ValueError, match="needs a scheduler"):
        get_executor("dask")
    with get_executor("threads") as threads:
        assert isinstance(threads, concurrent.futures.ThreadPoolExecutor)
        assert threads._max_workers == available_cores()
    with get_executor("processes", max_workers=1) as processes:
        assert isinstance(processes, concurrent.futures.ProcessPoolExecutor)
        assert processes._mp_context.get_start_method() == "spawn"
    with pytest.raises(ValueError, match="start_method or mp_context"):
        get_executor("processes", start_method="spawn", mp_context=processes._mp_context)
    with get_executor("sequential") as sequential:
        assert isinstance(sequential, SequentialExecutor)
    with get_executor() as default:
        assert isinstance(default, MultiprocessingExecutor)
        assert default._max_workers == available_cores()


def test_progress_bar(capsys: pytest.CaptureFixture[str], pools: dict[str, Any]) -> None:
    executor = pools.setdefault("threads", _make("threads"))
    run_jobs(jobs.square, range(200), executor, progress=True, desc="squaring")
    assert "squaring" in capsys.readouterr().err
    run_jobs(jobs.square, range(200), None, progress=True, desc="inline squares")
    assert "inline squares" in capsys.readouterr().err
    # off by default when stderr is not a terminal (as under pytest)
    run_jobs(jobs.square, range(200), executor, desc="quiet")
    assert "quiet" not in capsys.readouterr().err

"""run_jobs on real engines: a local Dask cluster and a one-node Slurm cluster.

Every test runs on both (the ``engine`` fixture); they skip when the service
is not reachable. ``scripts/run_engine_tests.sh`` starts the services.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from cluster_tools import ClusterExecutor

from tests._jobs import jobs  # importable through conftest.py (and PYTHONPATH for the workers)
from wkview.executors import JobError, default_batch_size, get_executor, run_jobs

# a generous ceiling for every call: Slurm jobs take 1-2 s each to start here
GUARD_S = 180.0


@contextmanager
def counting_tasks(executor: Any) -> Iterator[list[Any]]:
    """Record the batches the executor is asked to run, one entry per task."""
    seen: list[Any] = []
    if isinstance(executor, ClusterExecutor):
        original = executor.map_to_futures

        def map_to_futures(fn: Callable[..., Any], args: Any, *rest: Any, **kwargs: Any) -> Any:
            args = list(args)
            seen.extend(args)
            return original(fn, args, *rest, **kwargs)

        executor.map_to_futures = map_to_futures
        try:
            yield seen
        finally:
            del executor.map_to_futures
    else:
        # Dask tasks go through the executor's client
        client = executor.client
        original = client.submit

        def submit(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
            seen.append(args[1])
            return original(fn, *args, **kwargs)

        client.submit = submit
        try:
            yield seen
        finally:
            del client.submit


def test_results_in_order(engine: Any) -> None:
    assert run_jobs(jobs.square, range(500), engine, timeout=GUARD_S) == [x * x for x in range(500)]
    boxes = [((x, 0, 0), (32, 32, 32)) for x in range(0, 32 * 9, 32)]
    results = run_jobs(jobs.where_and_item, boxes, engine, batch_size=2, timeout=GUARD_S)
    assert [item for *_, item in results] == boxes


def test_big_results_come_back(engine: Any) -> None:
    # ~2 MB of results per task: more than a pipe buffer holds
    n = 400_000
    assert run_jobs(jobs.square, range(n), engine, batch_size=n // 2, timeout=GUARD_S) == [x * x for x in range(n)]


def test_a_failing_job_raises_job_error(engine: Any) -> None:
    job = functools.partial(jobs.fail_at, 7)
    start = time.perf_counter()
    with pytest.raises(JobError) as info:
        run_jobs(job, range(20), engine, batch_size=5, describe=lambda x: f"chunk {x}", timeout=GUARD_S)
    err = info.value
    assert err.index == 7
    message = str(err)
    assert "job 7 of 20 (chunk 7) failed: PlannedFailure: job for 7 failed on purpose" in message
    assert "Traceback (most recent call last)" in message and "in _deep_failure" in message
    assert isinstance(err.__cause__, jobs.PlannedFailure)
    assert time.perf_counter() - start < GUARD_S


def test_an_exception_that_cannot_travel_still_reports(engine: Any) -> None:
    with pytest.raises(JobError) as info:
        run_jobs(functools.partial(jobs.fail_unpicklable_at, 1), range(3), engine, batch_size=3, timeout=GUARD_S)
    assert "UnpicklableError: job for 1 failed (code 7)" in str(info.value)
    assert info.value.__cause__ is None


def test_a_failure_cancels_the_pending_jobs(engine: Any, tmp_path: Path) -> None:
    log = str(tmp_path / "ran.txt")
    n = 12
    job = functools.partial(jobs.record, log, 2.0, 0)  # the first job fails at once, the others take 2 s
    with pytest.raises(JobError, match="job 0 of 12"):
        run_jobs(job, range(n), engine, batch_size=1, timeout=GUARD_S)
    # the jobs that were already running finish; the rest never start
    time.sleep(4.0)
    ran = jobs.count_lines(log)
    assert 1 <= ran <= 6, ran


def test_batching_reduces_the_task_count(engine: Any) -> None:
    n = 12
    with counting_tasks(engine) as seen:
        results = run_jobs(jobs.where_and_item, list(range(n)), engine, batch_size=4, timeout=GUARD_S)
    assert [item for *_, item in results] == list(range(n))
    assert [list(batch) for batch in seen] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
    # and where the jobs ran: one process (and Slurm job) per batch of 4
    places = [(pid, job) for pid, job, _ in results]
    assert len(set(places)) == 3
    assert all(len(set(places[s : s + 4])) == 1 for s in range(0, n, 4))
    if isinstance(engine, ClusterExecutor):
        assert all(job is not None for _, job in places)

    # the default batch size: a few big tasks for the cluster engines
    size = default_batch_size(100, engine)
    assert size > 1
    with counting_tasks(engine) as seen:
        assert run_jobs(jobs.square, range(100), engine, timeout=GUARD_S) == [x * x for x in range(100)]
    assert len(seen) == math.ceil(100 / size) < 100


def _name(engine: Any) -> str:
    return "slurm" if isinstance(engine, ClusterExecutor) else "dask"


def test_latency(engine: Any, engine_timings: dict[str, str]) -> None:
    """Measure (and bound loosely) the cost of a task; printed in the summary."""
    name = _name(engine)
    start = time.perf_counter()
    assert run_jobs(jobs.square, [3], engine, timeout=GUARD_S) == [9]
    one = time.perf_counter() - start

    n = 8
    start = time.perf_counter()
    assert run_jobs(jobs.square, range(n), engine, batch_size=1, timeout=GUARD_S) == [x * x for x in range(n)]
    many = time.perf_counter() - start

    start = time.perf_counter()
    assert len(run_jobs(jobs.square, range(100_000), engine, timeout=GUARD_S)) == 100_000
    batched = time.perf_counter() - start

    engine_timings[f"{name}: one task, submit to result"] = f"{one:.2f} s"
    engine_timings[f"{name}: {n} one-item tasks"] = f"{many:.2f} s ({many / n:.2f} s per task, 2 workers)"
    engine_timings[f"{name}: 100000 items, default batches"] = f"{batched:.2f} s"
    assert one < 60 and many < 120


@pytest.mark.slurm
# cluster_tools' submit thread dies with the sbatch error, which pytest reports as a warning
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_failed_submission_raises_instead_of_hanging(slurm_executor: Any, tmp_path: Path) -> None:
    # no node has 100 TiB: sbatch refuses the job, and cluster_tools' futures would never finish
    executor = get_executor("slurm", cfut_dir=str(tmp_path), poll_interval=0.2, job_resources={"mem": "100T"})
    try:
        start = time.perf_counter()
        with pytest.raises(JobError, match="never submitted"):
            run_jobs(jobs.square, range(4), executor, batch_size=2, timeout=GUARD_S)
        assert time.perf_counter() - start < 30
    finally:
        executor.shutdown(wait=False)

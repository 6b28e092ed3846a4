"""The ``wkview`` command's local pool starts no process before its first job
(:class:`wkview.executors.LazyPool`)."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile
from cluster_tools import MultiprocessingExecutor

import wkview
from wkview import cli
from wkview.executors import LazyPool, executor_for_strategy, run_jobs
from wkview.sample import write_image_stack

from ._jobs import jobs


def test_nothing_starts_before_the_first_job() -> None:
    before = set(multiprocessing.active_children())
    with executor_for_strategy("multiprocessing", jobs=2, lazy=True) as pool:
        assert isinstance(pool, LazyPool) and not pool.started
        assert pool._max_workers == 2  # what default_batch_size reads
        assert set(multiprocessing.active_children()) == before
    assert not pool.started


def test_the_first_job_starts_a_cluster_tools_pool() -> None:
    with executor_for_strategy("multiprocessing", jobs=2, lazy=True) as pool:
        assert run_jobs(jobs.square, range(10), pool) == [x * x for x in range(10)]
        assert pool.started and isinstance(pool.pool, MultiprocessingExecutor)
        # the jobs ran in other processes
        pids = {pid for pid, _ in run_jobs(jobs.pid_and_item, range(4), pool)}
        assert os.getpid() not in pids
        # cluster_tools' own API reaches the started pool
        futures = pool.map_to_futures(jobs.square, [3, 4])
        assert [f.result() for f in futures] == [9, 16]
        assert list(pool.map(jobs.square, [5])) == [25]
    with pytest.raises(RuntimeError, match="after shutdown"):
        pool.submit(jobs.square, 2)


def test_names_the_pool_lacks_start_nothing() -> None:
    pool = executor_for_strategy("multiprocessing", jobs=1, lazy=True)
    with pytest.raises(AttributeError):
        pool._no_such_name
    # what the executor kinds ask of an executor they do not know starts nothing
    assert not hasattr(pool, "client") and not hasattr(pool, "job_resources")
    assert not pool.started
    pool.shutdown()


def _stack(folder: Path, shape: tuple[int, int, int]) -> np.ndarray:
    # the sample stack writer; the expected voxels are read back from its files
    files = write_image_stack(folder, shape, seed=3)
    return np.stack([tifffile.imread(file).T for file in files], axis=2)


def _started_pools(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    # records each pool the command's LazyPool starts (the real pool still runs)
    started: list[Any] = []
    real = LazyPool.pool.fget
    assert real is not None

    def recording(self: LazyPool) -> Any:
        was = self.started
        pool = real(self)
        if not was:
            started.append(pool)
        return pool

    monkeypatch.setattr(LazyPool, "pool", property(recording))
    return started


def test_a_one_batch_conversion_starts_no_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    vol = _stack(tmp_path / "stack", (40, 30, 12))
    started = _started_pools(monkeypatch)
    out = tmp_path / "out"
    code = cli.main(["convert", str(tmp_path / "stack"), str(out), "--voxel-size", "1,1,1",
                     "--jobs", "2", "--no-downsample", "--quiet"])
    assert code == 0
    assert started == []  # one batch: written in this process
    got = wkview.Dataset(out).get_layer("color").get_mag(1).read()
    np.testing.assert_array_equal(got[0], vol)


def test_several_batches_start_the_pool_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    vol = _stack(tmp_path / "stack", (40, 30, 40))
    started = _started_pools(monkeypatch)
    out = tmp_path / "out"
    # files of 16^3 voxels: the batches are the three z-layers of files
    code = cli.main(["convert", str(tmp_path / "stack"), str(out), "--voxel-size", "1,1,1", "--block-len", "8",
                     "--file-len", "2", "--jobs", "2", "--no-downsample", "--quiet"])
    assert code == 0
    assert len(started) == 1 and isinstance(started[0], MultiprocessingExecutor)
    np.testing.assert_array_equal(wkview.Dataset(out).get_layer("color").get_mag(1).read()[0], vol)


def test_input_refused_before_any_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    started = _started_pools(monkeypatch)
    code = cli.main(["convert", str(tmp_path / "missing"), str(tmp_path / "out"), "--voxel-size", "1,1,1",
                     "--jobs", "2", "--quiet"])
    assert code == 2
    assert started == []

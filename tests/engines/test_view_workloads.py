"""The chunked View workloads on every executor kind, checked against NumPy.

Sequential and multiprocessing always run; Dask and Slurm run where the services are up
(``WKVIEW_ENGINES=1 ./run.sh test`` starts them, as CI does).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest

import wkview
from tests._jobs import chunk_jobs
from tests.conftest import random_data
from wkview import Dataset


@pytest.fixture(
    params=[
        "sequential",
        "multiprocessing",
        pytest.param("dask", marks=pytest.mark.dask),
        pytest.param("slurm", marks=pytest.mark.slurm),
    ]
)
def executor(request: pytest.FixtureRequest) -> Any:
    # multiprocessing: tests/conftest.py's pool of the session, as Dask and Slurm are one per session
    if request.param in ("multiprocessing", "dask", "slurm"):
        yield request.getfixturevalue(f"{request.param}_executor")
        return
    with wkview.get_executor(request.param) as ex:
        yield ex


def _layer(tmp_path, compress=True):
    layer = Dataset.create(tmp_path / "ds", scale=(11.24, 11.24, 25)).add_layer("color", "color")
    layer.add_mag(1, block_len=8, file_len=8, compress=compress)  # files of 64^3: 8 chunks of 32^3 each
    return layer


def test_increment_compressed_mag_loses_no_update(tmp_path, executor):
    layer = _layer(tmp_path)
    mag = layer.get_mag(1)
    data = (random_data(np.random.default_rng(0), (128, 128, 64), np.uint8) % 200).astype(np.uint8)
    mag.write(data, offset=(0, 0, 0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # 32^3 writes into 64^3 compressed files
        mag.get_view().for_each_chunk(chunk_jobs.increment_chunk, (32, 32, 32), executor=executor)
    assert np.array_equal(mag.get_view().read()[0], data + 1)


def test_map_chunk_statistics(tmp_path, executor):
    layer = _layer(tmp_path, compress=False)
    mag = layer.get_mag(1)
    data = random_data(np.random.default_rng(1), (96, 64, 64), np.uint8)
    mag.write(data, offset=(0, 0, 0))
    stats = mag.get_view().map_chunk(chunk_jobs.chunk_stats, (32, 32, 32), executor=executor)
    assert len(stats) == 3 * 2 * 2
    assert sum(s[0] for s in stats) == data.size
    assert sum(s[1] for s in stats) == int(data.sum(dtype=np.uint64))
    assert max(s[2] for s in stats) == int(data.max())
    # chunk order: x outermost, z innermost
    assert stats[1][1] == int(data[:32, :32, 32:64].sum(dtype=np.uint64))


def test_downsample_2x(tmp_path, executor):
    layer = _layer(tmp_path)
    data = random_data(np.random.default_rng(2), (128, 128, 64), np.uint8)
    layer.get_mag(1).write(data, offset=(0, 0, 0))
    layer.downsample_mag(1, 2, interpolation_mode="mean", executor=executor)
    expected = np.rint(data.reshape(64, 2, 64, 2, 32, 2).mean(axis=(1, 3, 5))).astype(np.uint8)
    assert np.array_equal(layer.get_mag(2).read((0, 0, 0), (64, 64, 32))[0], expected)


def test_failing_job_raises_with_the_chunk_box(tmp_path, executor):
    layer = _layer(tmp_path, compress=False)
    mag = layer.get_mag(1)
    mag.write(np.ones((128, 32, 32), np.uint8), offset=(0, 0, 0))
    with pytest.raises(wkview.JobError) as info:
        mag.get_view().for_each_chunk(chunk_jobs.raise_in_second_file, (32, 32, 32), executor=executor)
    text = str(info.value)
    assert "job failed on purpose at (64, 0, 0)" in text or "job failed on purpose at (96, 0, 0)" in text
    assert "raise_in_second_file" in text  # the original traceback

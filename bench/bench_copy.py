"""copy_dataset: byte-for-byte file copies vs re-encoding into another layout.

A LZ4HC layer of EM-like sample data (256^3 in normal runs, 512^3 with
WKVIEW_BENCH_FULL=1, 128^3 when run as a test: still several files in the re-encoded
copies), block_len 32, file_len 4. Run with
``./run.sh bench -k copy`` for the figures.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

import wkview

from ._workloads import load_data

FULL = os.environ.get("WKVIEW_BENCH_FULL") == "1"
N = 512 if FULL else 256
N_AS_TEST = 128


@pytest.fixture(scope="module")
def source(as_test: bool):
    folder = Path(tempfile.mkdtemp(prefix="wkview-bench-copy-"))
    data = load_data(N_AS_TEST if as_test else N)
    ds = wkview.Dataset.create(folder / "src", scale=(1, 1, 1))
    ds.add_layer("color", "color").add_mag(1, block_len=32, file_len=4, compress=True).write(data)
    yield ds, data, folder
    shutil.rmtree(folder, ignore_errors=True)


_counter = itertools.count()


def _copy(ds, folder: Path, **kwargs):
    return ds.copy_dataset(folder / f"copy{next(_counter)}", **kwargs)


def _check(copy, data) -> None:
    np.testing.assert_array_equal(copy.get_layer("color").get_mag(1).read()[0], data)


@pytest.mark.benchmark(group="copy_dataset")
def test_copy_same_layout_byte_copy(benchmark, source):
    ds, data, folder = source
    copy = benchmark.pedantic(_copy, args=(ds, folder), rounds=3 if FULL else 1)
    _check(copy, data)


@pytest.mark.benchmark(group="copy_dataset")
def test_copy_reencode_other_file_len(benchmark, source):
    ds, data, folder = source
    copy = benchmark.pedantic(_copy, args=(ds, folder), kwargs={"file_len": 2}, rounds=3 if FULL else 1)
    _check(copy, data)


@pytest.mark.benchmark(group="copy_dataset")
def test_copy_reencode_two_processes(benchmark, source):
    ds, data, folder = source
    with wkview.get_executor("multiprocessing", max_workers=2) as executor:
        executor.submit(int, 0).result()  # workers started before timing
        copy = benchmark.pedantic(
            _copy, args=(ds, folder), kwargs={"file_len": 2, "executor": executor}, rounds=3 if FULL else 1
        )
    _check(copy, data)

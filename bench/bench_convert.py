"""pytest-benchmark: ``wkview.convert.convert`` of a TIFF stack (and its parts).

Small by default (a 256x256x64 stack); ``WKVIEW_BENCH_FULL=1`` uses the issue's size
(256 slices of 1024x1024). The side-by-side run against ``webknossos convert`` is
``bench/compare_convert.py``. In the normal test suite these run once, briefly, with their
correctness checks (``--benchmark-disable``).
"""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import tifffile

from wkview import Dataset
from wkview.convert import convert
from wkview.sample import write_image_stack
from wkview.sources import open_source

FULL = os.environ.get("WKVIEW_BENCH_FULL") == "1"
SHAPE = (1024, 1024, 256) if FULL else (256, 256, 64)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    folder = tmp_path_factory.mktemp("stack")
    write_image_stack(folder, SHAPE, seed=0)
    return folder


def test_read_stack(benchmark, stack):
    source = open_source(stack)
    data = benchmark(source.read, (0, 0, 0), SHAPE)
    assert np.array_equal(data[0, :, :, 5], tifffile.imread(stack / "5.tif").T)


@pytest.mark.parametrize("pyramid", [False, True], ids=["mag1", "pyramid"])
def test_convert_stack(benchmark, stack, tmp_path, pyramid):
    target = tmp_path / "ds"

    def run():
        shutil.rmtree(target, ignore_errors=True)
        return convert(stack, target, (11.24, 11.24, 25), downsample=pyramid, max_mag=4 if pyramid else None, progress=False)

    ds = benchmark.pedantic(run, rounds=1 if not FULL else 3, iterations=1)
    layer = ds.get_layer("color")
    assert layer.bounding_box.size == SHAPE
    z = SHAPE[2] // 2
    assert np.array_equal(
        layer.get_mag(1).read((0, 0, z), (SHAPE[0], SHAPE[1], 1))[0, :, :, 0], tifffile.imread(stack / f"{z}.tif").T
    )
    assert (len(layer.mags) > 1) == pyramid
    Dataset(target)  # opens

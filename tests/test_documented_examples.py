"""The examples of the seed's docstrings (webknossos 0.8.13 View), run on wkview.

Corrections where the seed's own example is wrong (defect 8): `offset(10, 20, 30)` is a typo
for `offset=(10, 20, 30)`; `chunk_size=(100, 100, 100)` was rejected by the seed and works here;
the get_view example marks a valid read_only call as "invalid" although it works (and it does).
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

import wkview
from wkview import Dataset

from ._jobs import chunk_jobs


@pytest.fixture
def mag1(tmp_path):
    layer = Dataset.create(tmp_path / "ds", scale=(11.24, 11.24, 25)).add_layer("color", "color")
    mag = layer.add_mag(1, block_len=8, file_len=4)
    mag.write(np.full((110, 220, 330), 7, np.uint8), offset=(0, 0, 0))
    return mag


def test_read_example(mag1):
    view = mag1.get_view(offset=(10, 20, 30), size=(100, 200, 300))
    assert np.array_equal(view.read(offset=(0, 0, 0), size=(100, 200, 300)), view.read())
    # works because the specified data is completely in the bounding box of the view
    some_data = view.read(offset=(50, 60, 70), size=(10, 120, 230))
    assert some_data.shape == (1, 10, 120, 230)
    # fails because the specified data is not completely in the bounding box of the view
    with pytest.raises(AssertionError):
        view.read(offset=(50, 60, 70), size=(999, 120, 230))


def test_get_view_example(mag1):
    view = mag1.get_view(offset=(10, 20, 30), size=(100, 200, 300))
    # works because the specified sub-view is completely in the bounding box of the view
    sub_view = view.get_view(offset=(50, 60, 70), size=(10, 120, 230))
    assert sub_view.size == (10, 120, 230)
    # fails because the specified sub-view is not completely in the bounding box of the view
    with pytest.raises(AssertionError):
        view.get_view(offset=(50, 60, 70), size=(999, 120, 230))
    # works because `read_only=True`
    invalid_sub_view = view.get_view(offset=(50, 60, 70), size=(999, 120, 230), read_only=True)
    assert invalid_sub_view.read_only


def test_for_each_chunk_example(mag1):
    view = mag1.get_view()
    func = functools.partial(chunk_jobs.advanced_chunk_job, some_parameter=42)
    with wkview.get_executor("sequential") as executor:
        view.for_each_chunk(func, chunk_size=(100, 100, 100), executor=executor)
    assert np.all(view.read() == 7 + 42)


@pytest.mark.slow  # a long subprocess round trip; CI runs it
def test_for_zipped_chunks_downsampling_example(tmp_path):
    """The docstring's use case (16384 -> 8192 with 2048/1024 chunks), scaled down by 128."""
    layer = Dataset.create(tmp_path / "ds", scale=(1, 1, 1)).add_layer("color", "color")
    mag1 = layer.add_mag(1, block_len=8, file_len=1)
    mag2 = layer.add_mag(2, block_len=8, file_len=1)
    data = (np.arange(128**3, dtype=np.uint32).reshape(128, 128, 128) % 241).astype(np.uint8)
    mag1.write(data, offset=(0, 0, 0))
    layer.bounding_box = layer.bounding_box  # already covers both mags
    source_view = mag1.get_view()
    target_view = mag2.get_view()
    assert source_view.size == (128, 128, 128) and target_view.size == (64, 64, 64)
    source_view.for_zipped_chunks(
        chunk_jobs.downsample_pair, target_view, source_chunk_size=(16, 16, 16), target_chunk_size=(8, 8, 8),
        executor=None,
    )
    expected = data.reshape(64, 2, 64, 2, 64, 2).max(axis=(1, 3, 5))
    assert np.array_equal(mag2.get_view().read()[0], expected)


def test_get_dtype_example(mag1):
    assert mag1.get_view().get_dtype() is np.uint8

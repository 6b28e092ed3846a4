"""Buffered slice writer and reader against NumPy, for every axis and channel count."""

from __future__ import annotations

import numpy as np
import pytest

import wkview
from wkview import Dataset

from .conftest import LZ4HC, RAW, random_data


@pytest.mark.parametrize("dimension", ["x", "y", "z", 2])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("block_type", [RAW, LZ4HC], ids=["raw", "lz4hc"])
def test_writer_round_trip(view_factory, dimension, channels, block_type):
    view = view_factory(size=(40, 36, 44), channels=channels, block_type=block_type)
    axis = {"x": 0, "y": 1, "z": 2, 2: 2}[dimension]
    data = random_data(np.random.default_rng(0), (channels, 32, 32, 32), np.uint8)
    with view.get_buffered_slice_writer(offset=(0, 0, 0), dimension=dimension) as writer:
        for k in range(32):
            piece = np.take(data, k, axis=1 + axis)
            writer.send(piece[0] if channels == 1 and k % 2 else piece)
    assert writer.slices_written == 32
    assert np.array_equal(view.read((0, 0, 0), (32, 32, 32)), data)
    slices = list(view.get_buffered_slice_reader(offset=(0, 0, 0), size=(32, 32, 32), dimension=dimension))
    assert len(slices) == 32
    assert np.array_equal(np.stack(slices, axis=1 + axis), data)


def test_writer_unaligned_start_writes_whole_files_after_the_first(tmp_path, monkeypatch):
    layer = Dataset.create(tmp_path / "ds", scale=(1, 1, 1)).add_layer("color", "color")
    mag = layer.add_mag(1, block_len=8, file_len=2, compress=True)  # 16^3 files
    writes = []
    real_write = mag._store.write
    monkeypatch.setattr(mag._store, "write", lambda off, d, level=None: (writes.append((tuple(off), d.shape[1:])), real_write(off, d, level)))
    data = random_data(np.random.default_rng(1), (32, 32, 40), np.uint8)
    with mag.get_buffered_slice_writer(offset=(0, 0, 5)) as writer:
        for k in range(40):
            writer.send(data[:, :, k])
    # buffers end on file borders: z 5..16, 16..32, 32..45
    assert writes == [((0, 0, 5), (32, 32, 11)), ((0, 0, 16), (32, 32, 16)), ((0, 0, 32), (32, 32, 13))]
    assert layer.bounding_box == wkview.BoundingBox((0, 0, 5), (32, 32, 40))
    assert np.array_equal(mag.get_view().read()[0], data)
    reader_slices = list(mag.get_buffered_slice_reader())
    assert np.array_equal(np.stack(reader_slices, axis=3)[0], data)


def test_writer_errors(view_factory):
    view = view_factory(size=(16, 16, 16))
    writer = view.get_buffered_slice_writer()
    writer.send(np.zeros((16, 16), np.uint8))
    with pytest.raises(wkview.ShapeError):
        writer.send(np.zeros((8, 16), np.uint8))
    with pytest.raises(wkview.DTypeMismatchError):
        writer.send(np.zeros((16, 16), np.uint16))
    with pytest.raises(wkview.ShapeError):
        writer.send(np.zeros((2, 16, 16), np.uint8))
    writer.close()
    with pytest.raises(wkview.ViewStateError):
        writer.send(np.zeros((16, 16), np.uint8))
    with pytest.raises(ValueError, match="dimension"):
        view.get_buffered_slice_writer(dimension="w")
    with pytest.raises(ValueError, match="buffer_size"):
        view.get_buffered_slice_writer(buffer_size=0)
    with pytest.raises(wkview.ReadOnlyError):
        view_factory(read_only=True).get_buffered_slice_writer()


def test_writer_bounds_are_checked_on_flush(view_factory):
    view = view_factory(size=(16, 16, 4))
    with pytest.raises(wkview.BoundsError):
        with view.get_buffered_slice_writer(buffer_size=8) as writer:
            for _ in range(6):
                writer.send(np.ones((16, 16), np.uint8))


def test_buffer_size_chooses_write_sizes(view_factory):
    view = view_factory(size=(8, 8, 30))
    data = random_data(np.random.default_rng(2), (8, 8, 30), np.uint8)
    with view.get_buffered_slice_writer(buffer_size=7) as writer:
        for k in range(30):
            writer.send(data[:, :, k])
    assert np.array_equal(view.read()[0], data)
    assert len(list(view.get_buffered_slice_reader(buffer_size=4))) == 30

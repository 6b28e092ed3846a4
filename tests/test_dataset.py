"""Dataset, Layer and MagView (API of webknossos 0.8.13) on real WKW folders."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

import wkview
from wkview import BoundingBox, Dataset, Mag

from .conftest import random_data

SCALE = (11.24, 11.24, 25.0)


def test_create_open_and_layers(tmp_path):
    ds = Dataset.create(tmp_path / "ds", scale=SCALE)
    assert ds.name == "ds"
    assert ds.scale == SCALE
    color = ds.add_layer("color", "color", dtype_per_channel="uint16", num_channels=3)
    seg = ds.add_layer("seg", "segmentation", dtype_per_layer="uint32", largest_segment_id=7)
    assert set(ds.layers) == {"color", "seg"}
    assert color.dtype_per_channel == np.dtype("uint16") and color.num_channels == 3
    assert color.dtype_per_layer == "uint48"
    assert seg.largest_segment_id == 7
    reopened = Dataset(tmp_path / "ds")
    assert set(reopened.layers) == {"color", "seg"}
    assert reopened.get_layer("seg").largest_segment_id == 7
    assert reopened.get_layer("color").num_channels == 3
    assert Dataset.get_or_create(tmp_path / "ds", scale=SCALE).get_layer("color").name == "color"


def test_add_layer_errors(tmp_path):
    ds = Dataset.create(tmp_path / "ds", scale=SCALE)
    ds.add_layer("color", "color")
    with pytest.raises(wkview.DatasetError, match="already"):
        ds.add_layer("color", "color")
    with pytest.raises(wkview.DatasetError, match="largest_segment_id"):
        ds.add_layer("seg", "segmentation")
    with pytest.raises(wkview.DatasetError, match="category"):
        ds.add_layer("x", "colour")
    with pytest.raises(wkview.DatasetError, match="not both"):
        ds.add_layer("y", "color", dtype_per_layer="uint8", dtype_per_channel="uint8")
    for bad in ("..", "a/b", "/abs", ""):
        with pytest.raises(ValueError):
            ds.add_layer(bad, "color")
    assert not (tmp_path / "a").exists()
    with pytest.raises(wkview.DatasetError):
        ds.get_layer("missing")
    with pytest.raises(TypeError, match="bogus"):
        ds.add_layer("z", "color", bogus=1)


def test_get_or_add_and_delete(tmp_path):
    ds = Dataset.create(tmp_path / "ds", scale=SCALE)
    layer = ds.get_or_add_layer("color", "color", dtype_per_channel="uint8")
    assert ds.get_or_add_layer("color", "color", dtype_per_channel="uint8") is layer
    with pytest.raises(wkview.DatasetError):
        ds.get_or_add_layer("color", "color", dtype_per_channel="uint16")
    mag = layer.get_or_add_mag(1, block_len=8, file_len=2)
    assert layer.get_or_add_mag("1", block_len=8, file_len=2) is mag
    with pytest.raises(wkview.DatasetError):
        layer.get_or_add_mag(1, block_len=16, file_len=2)
    layer.add_mag("2-2-1", block_len=8, file_len=2)
    assert (tmp_path / "ds" / "color" / "2-2-1" / "header.wkw").is_file()
    assert set(layer.mags) == {Mag(1), Mag("2-2-1")}
    layer.delete_mag("2-2-1")
    assert not (tmp_path / "ds" / "color" / "2-2-1").exists()
    assert set(Dataset(tmp_path / "ds").get_layer("color").mags) == {Mag(1)}
    ds.delete_layer("color")
    assert not (tmp_path / "ds" / "color").exists()
    assert Dataset(tmp_path / "ds").layers == {}


def test_add_mag_errors(tmp_path):
    layer = Dataset.create(tmp_path / "ds", scale=SCALE).add_layer("color", "color")
    layer.add_mag(1)
    with pytest.raises(wkview.DatasetError, match="already"):
        layer.add_mag(1)
    with pytest.raises(wkview.DatasetError, match="block_len"):
        layer.add_mag(2, block_len=24)
    with pytest.raises(ValueError):
        layer.add_mag(3)
    with pytest.raises(wkview.DatasetError):
        layer.get_mag(4)


def test_mag_view_write_grows_bounding_box_and_saves(tmp_path):
    ds = Dataset.create(tmp_path / "ds", scale=SCALE)
    layer = ds.add_layer("color", "color")
    mag1 = layer.add_mag(1, block_len=8, file_len=2)
    data = random_data(np.random.default_rng(0), (20, 30, 10), np.uint8)
    mag1.write(data, offset=(10, 20, 30))
    assert layer.bounding_box == BoundingBox((10, 20, 30), (20, 30, 10))
    mag1.write(data[:5, :5, :5], offset=(0, 0, 0))
    assert layer.bounding_box == BoundingBox((0, 0, 0), (30, 50, 40))
    reopened = Dataset(tmp_path / "ds").get_layer("color")
    assert reopened.bounding_box == BoundingBox((0, 0, 0), (30, 50, 40))
    assert np.array_equal(reopened.get_mag(1).read((10, 20, 30), (20, 30, 10))[0], data)


def test_mag2_write_grows_mag1_bounding_box(tmp_path):
    layer = Dataset.create(tmp_path / "ds", scale=SCALE).add_layer("color", "color")
    mag2 = layer.add_mag(2, block_len=8, file_len=2)
    mag2.write(np.ones((4, 4, 4), np.uint8), offset=(2, 2, 2))
    assert layer.bounding_box == BoundingBox((4, 4, 4), (8, 8, 8))
    assert mag2.get_view().global_offset == (2, 2, 2)
    assert mag2.get_view().size == (4, 4, 4)


def test_mag_view_read_semantics(tmp_path):
    """Defect 7, kept compatible: MagView offsets are absolute and read() starts at (0, 0, 0)."""
    layer = Dataset.create(tmp_path / "ds", scale=SCALE).add_layer("color", "color")
    mag1 = layer.add_mag(1, block_len=8, file_len=2)
    data = random_data(np.random.default_rng(1), (10, 10, 10), np.uint8)
    mag1.write(data, offset=(5, 6, 7))
    assert mag1.size == (15, 16, 17)  # bottom-right corner, as in webknossos 0.8.13
    assert mag1.global_offset == (0, 0, 0)
    full = mag1.read()
    assert full.shape == (1, 15, 16, 17) and np.array_equal(full[0, 5:, 6:, 7:], data)
    # the bounding box alone: through get_view() (documented) or read_bbox
    assert np.array_equal(mag1.get_view().read()[0], data)
    assert np.array_equal(mag1.read_bbox(layer.bounding_box)[0], data)


def test_get_view_on_empty_mag(tmp_path):
    """Defect 9: get_view() on a mag with no data yet raised."""
    layer = Dataset.create(tmp_path / "ds", scale=SCALE).add_layer("color", "color")
    mag1 = layer.add_mag(1)
    view = mag1.get_view()
    assert tuple(view.size) == (0, 0, 0)
    assert mag1.get_view(offset=(0, 0, 0), size=(10, 10, 10), read_only=True).read().sum() == 0


def test_mag_view_get_view_bounds(tmp_path):
    layer = Dataset.create(tmp_path / "ds", scale=SCALE).add_layer("color", "color")
    mag1 = layer.add_mag(1, block_len=8, file_len=2)
    mag1.write(np.ones((32, 32, 32), np.uint8), offset=(0, 0, 0))
    sub = mag1.get_view(offset=(4, 4, 4), size=(8, 8, 8))
    assert sub.global_offset == (4, 4, 4)
    with pytest.raises(wkview.BoundsError):
        mag1.get_view(offset=(30, 0, 0), size=(8, 8, 8))
    assert mag1.get_view(offset=(30, 0, 0), size=(8, 8, 8), read_only=True).read().sum() == 2 * 8 * 8


def test_compressed_write_at_bbox_border_does_not_warn(tmp_path):
    layer = Dataset.create(tmp_path / "ds", scale=SCALE).add_layer("color", "color")
    mag1 = layer.add_mag(1, block_len=8, file_len=2, compress=True)
    layer.bounding_box = BoundingBox((0, 0, 0), (20, 20, 20))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mag1.get_view().write(np.ones((20, 20, 20), np.uint8))  # ends at the bbox border
    with pytest.warns(RuntimeWarning):
        mag1.get_view().write(np.ones((3, 3, 3), np.uint8), offset=(2, 2, 2))


def test_bounding_boxes_on_disk(tmp_path):
    layer = Dataset.create(tmp_path / "ds", scale=SCALE).add_layer("color", "color")
    mag1 = layer.add_mag(1, block_len=8, file_len=2)
    mag1.write(np.ones((4, 4, 4), np.uint8), offset=(20, 0, 40))
    boxes = list(mag1.get_bounding_boxes_on_disk())
    assert boxes == [BoundingBox((16, 0, 32), (16, 16, 16))]


@pytest.mark.parametrize("in_place", [True, False])
def test_compress(tmp_path, in_place):
    layer = Dataset.create(tmp_path / "ds", scale=SCALE).add_layer("color", "color")
    mag1 = layer.add_mag(1, block_len=8, file_len=2)
    data = random_data(np.random.default_rng(2), (40, 20, 20), np.uint8)
    mag1.write(data, offset=(0, 0, 0))
    if in_place:
        mag1.compress()
        assert mag1._store.is_compressed
        assert np.array_equal(Dataset(tmp_path / "ds").get_layer("color").get_mag(1).read()[0], data)
    else:
        target = tmp_path / "compressed"
        mag1.compress(target_path=target)
        from wkview._storage import MagStore

        store = MagStore(target)
        assert store.is_compressed
        assert np.array_equal(store.read((0, 0, 0), (40, 20, 20))[0], data)


def test_not_a_dataset(tmp_path):
    with pytest.raises(wkview.NotADatasetError) as info:
        Dataset(tmp_path)
    assert isinstance(info.value, FileNotFoundError)
    assert str(tmp_path) in str(info.value)


def test_create_refuses_existing_dataset(tmp_path):
    Dataset.create(tmp_path / "ds", scale=SCALE)
    with pytest.raises(wkview.DatasetError, match="already"):
        Dataset.create(tmp_path / "ds", scale=SCALE)


def test_non_wkw_layer_listed_but_refused_when_used(tmp_path):
    ds = Dataset.create(tmp_path / "ds", scale=SCALE)
    ds.add_layer("color", "color").add_mag(1)
    path = tmp_path / "ds" / "datasource-properties.json"
    content = json.loads(path.read_text())
    zarr_layer = dict(content["dataLayers"][0], name="zarrlayer", dataFormat="zarr3")
    zarr_layer.pop("wkwResolutions", None)
    zarr_layer["mags"] = [{"mag": [1, 1, 1], "path": "./zarrlayer/1"}]
    content["dataLayers"].append(zarr_layer)
    path.write_text(json.dumps(content))
    ds = Dataset(tmp_path / "ds")
    assert set(ds.layers) == {"color", "zarrlayer"}
    with pytest.raises(wkview.UnsupportedLayerError, match="zarr3"):
        ds.get_layer("zarrlayer").get_mag(1)
    ds.get_layer("color").get_mag(1).write(np.ones((2, 2, 2), np.uint8))
    # saving keeps the foreign layer untouched
    again = json.loads(path.read_text())
    assert [layer["name"] for layer in again["dataLayers"]] == ["color", "zarrlayer"]
    assert again["dataLayers"][1]["dataFormat"] == "zarr3"


def test_segmentation_layer_round_trip(tmp_path):
    ds = Dataset.create(tmp_path / "ds", scale=SCALE)
    seg = ds.add_layer("seg", "segmentation", dtype_per_channel="uint64", largest_segment_id=2**40)
    mag = seg.add_mag(1, block_len=8, file_len=2, compress=True)
    ids = np.arange(16**3, dtype=np.uint64).reshape(16, 16, 16) * 2**33
    mag.write(ids)
    seg.largest_segment_id = int(ids.max())
    reopened = Dataset(tmp_path / "ds").get_segmentation_layer()
    assert reopened.largest_segment_id == int(ids.max())
    assert np.array_equal(reopened.get_mag(1).read()[0], ids)


def test_symlinked_mag_outside_the_dataset_is_written_through_the_link(tmp_path):
    other = Dataset.create(tmp_path / "other", scale=SCALE)
    other_mag = other.add_layer("color", "color").add_mag(1, block_len=8, file_len=2)
    other_mag.write(np.full((8, 8, 8), 3, np.uint8), offset=(0, 0, 0))
    ds = Dataset.create(tmp_path / "ds", scale=SCALE)
    layer = ds.add_layer("color", "color")
    layer.add_mag(1, block_len=8, file_len=2)
    layer.bounding_box = BoundingBox((0, 0, 0), (8, 8, 8))
    import shutil

    shutil.rmtree(tmp_path / "ds" / "color" / "1")
    (tmp_path / "ds" / "color" / "1").symlink_to(tmp_path / "other" / "color" / "1")
    mag = Dataset(tmp_path / "ds").get_layer("color").get_mag(1)
    assert np.all(mag.get_view().read() == 3)  # reading through the link works
    # writing too, as in webknossos 0.8.13: into the linked data (that is what a symlink is)
    mag.write(np.full((8, 8, 8), 5, np.uint8), offset=(8, 0, 0))
    mag.get_view(offset=(0, 0, 0), size=(8, 8, 8), read_only=False).write(np.full((8, 8, 8), 4, np.uint8))
    assert Dataset(tmp_path / "ds").get_layer("color").bounding_box == BoundingBox((0, 0, 0), (16, 8, 8))
    assert np.all(other_mag.read((0, 0, 0), (8, 8, 8)) == 4) and np.all(other_mag.read((8, 0, 0), (8, 8, 8)) == 5)
    assert Dataset(tmp_path / "other").get_layer("color").bounding_box == BoundingBox((0, 0, 0), (8, 8, 8))

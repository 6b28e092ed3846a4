"""The public API of webknossos 0.8.13 around the View, name by name (facts: spec/api-0.8.13.md).

Every test checks what 0.8.13 did, including the exception types old code catches.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
import wkw

import wkview
from wkview import (
    BoundingBox,
    BoundingBoxNamedTuple,
    Dataset,
    DatasetViewConfiguration,
    LayerCategories,
    LayerViewConfiguration,
    Mag,
)
from wkview.copying import write_in_slabs
from wkview.downsampling import pool, upsample_array
from wkview.pyramid import upsampling_chain
from wkview.utils import get_executor_for_args, named_partial

PROPS = "datasource-properties.json"


def _json(path: Path) -> dict:
    return json.loads((path / PROPS).read_text())


def _layer_json(path: Path, name: str) -> dict:
    return next(layer for layer in _json(path)["dataLayers"] if layer["name"] == name)


def _files(mag_path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(mag_path)): p.read_bytes() for p in sorted(mag_path.rglob("*.wkw"))}


@pytest.fixture
def ds(tmp_path):
    return Dataset.create(tmp_path / "ds", scale=(11.0, 11.0, 25.0))


def _filled(ds, name="color", category="color", compress=True, block_len=8, file_len=2, shape=(40, 36, 20), **kw):
    layer = ds.add_layer(name, category, **kw)
    data = (np.arange(np.prod(shape)).reshape(shape) % 250 + 1).astype(layer.dtype_per_channel)
    data = np.stack([data + c for c in range(layer.num_channels)])
    layer.add_mag(1, block_len=block_len, file_len=file_len, compress=compress).write(data, offset=(4, 0, 2))
    return layer, data


# -- Dataset.add_layer: errors and element classes ------------------------------------------------


def test_removed_dtype_keyword_raises_value_error(ds):
    with pytest.raises(ValueError, match="dtype_per_layer"):
        ds.add_layer("color", "color", dtype="uint8")
    with pytest.raises(ValueError, match="dtype_per_layer"):
        ds.get_or_add_layer("color", "color", dtype="uint8")
    ds.add_layer("color", "color")
    with pytest.raises(ValueError):
        ds.get_or_add_layer("color", "color", dtype="uint8")  # also for an existing layer


@pytest.mark.parametrize(("dtype_per_layer", "channels"), [("uint30", 3), ("int", 3), ("uint7", 1), ("uint128", 1)])
def test_dtype_that_does_not_split_into_channels_raises_type_error(ds, dtype_per_layer, channels):
    with pytest.raises(TypeError):
        ds.add_layer("color", "color", dtype_per_layer=dtype_per_layer, num_channels=channels)
    with pytest.raises(AssertionError):  # and still the wkview error it was
        ds.add_layer("color", "color", dtype_per_layer=dtype_per_layer, num_channels=channels)
    assert "color" not in ds.layers


def test_int_with_four_channels_works(ds):
    layer = ds.add_layer("color", "color", dtype_per_layer="int", num_channels=4)
    assert layer.dtype_per_channel == np.dtype("int16") and layer.num_channels == 4


@pytest.mark.parametrize(
    ("kwargs", "element_class", "per_channel"),
    [
        ({"dtype_per_layer": "uint24", "num_channels": 3}, "uint24", "uint8"),
        ({"dtype_per_channel": "uint8", "num_channels": 3}, "uint24", "uint8"),
        ({"dtype_per_layer": "float"}, "float", "float32"),  # webKNOSSOS' float, not NumPy's
        ({"dtype_per_channel": "float32"}, "float", "float32"),
        ({"dtype_per_layer": "double"}, "double", "float64"),
        ({"dtype_per_channel": np.float64}, "double", "float64"),
        ({"dtype_per_layer": "uint48", "num_channels": 3}, "uint48", "uint16"),
        # "float" and Python's float are webKNOSSOS' float (float32) in every dtype argument;
        # "double", NumPy's float64 and its names are float64
        ({"dtype_per_channel": "float"}, "float", "float32"),
        ({"dtype_per_channel": float}, "float", "float32"),
        ({"dtype_per_layer": float}, "float", "float32"),
        ({"dtype_per_channel": "double"}, "double", "float64"),
        ({"dtype_per_channel": "float64"}, "double", "float64"),
        ({"dtype_per_channel": np.dtype("float64")}, "double", "float64"),
        ({"dtype_per_layer": np.float64}, "double", "float64"),
        ({"dtype_per_layer": "float64"}, "double", "float64"),
        ({"dtype_per_channel": np.float32}, "float", "float32"),
        ({"dtype_per_channel": "float", "num_channels": 2}, "double", "float32"),  # 2 x float32 = 64 bits
        ({"dtype_per_channel": float, "num_channels": 3}, "float96", "float32"),
    ],
)
def test_element_classes_use_webknossos_names_both_ways(tmp_path, ds, kwargs, element_class, per_channel):
    layer = ds.add_layer("color", "color", **kwargs)
    assert layer.dtype_per_channel == np.dtype(per_channel)
    assert _layer_json(ds.path, "color")["elementClass"] == element_class
    assert Dataset(ds.path).get_layer("color").dtype_per_channel == np.dtype(per_channel)  # read back


@pytest.mark.parametrize("argument", ["float", float])
def test_get_or_add_layer_reads_float_as_float32(ds, argument):
    layer = ds.add_layer("color", "color", dtype_per_channel="float32")
    assert ds.get_or_add_layer("color", "color", dtype_per_channel=argument) is layer
    assert ds.get_or_add_layer("color", "color", dtype_per_layer=argument) is layer
    with pytest.raises(AssertionError, match="float64"):
        ds.get_or_add_layer("color", "color", dtype_per_channel="double")


def test_get_or_create_with_another_scale_raises(tmp_path):
    first = Dataset.get_or_create(tmp_path / "ds", scale=(1, 1, 2))
    assert Dataset.get_or_create(tmp_path / "ds", scale=(1.0, 1.0, 2.0)).path == first.path
    with pytest.raises(AssertionError, match="scale"):
        Dataset.get_or_create(tmp_path / "ds", scale=(1, 1, 1))


def test_get_color_and_segmentation_layer_raise_index_error(ds):
    with pytest.raises(IndexError):
        ds.get_color_layer()
    with pytest.raises(IndexError):
        ds.get_segmentation_layer()
    ds.add_layer("a", "color")
    assert ds.get_color_layer().name == "a"
    ds.add_layer("b", "color")
    with pytest.raises(IndexError, match="found 2"):
        ds.get_color_layer()
    seg = ds.add_layer("s", LayerCategories.SEGMENTATION_TYPE, largest_segment_id=3)
    assert ds.get_segmentation_layer() is seg


def test_layer_categories():
    assert (LayerCategories.COLOR_TYPE, LayerCategories.SEGMENTATION_TYPE) == ("color", "segmentation")


# -- names and view configurations ----------------------------------------------------------------


def test_dataset_name_is_settable_and_stored(ds):
    ds.name = "renamed"
    assert ds.name == "renamed" and _json(ds.path)["id"]["name"] == "renamed"
    assert ds.path.name == "ds" and Dataset(ds.path).name == "renamed"


def test_layer_rename_moves_folder_and_entry(ds):
    layer, data = _filled(ds, compress=False)
    mag = layer.get_mag(1)
    sub_view = mag.get_view(offset=(4, 0, 2), size=(10, 10, 10))
    layer.name = "em"
    assert not (ds.path / "color").exists() and (ds.path / "em" / "1" / "header.wkw").is_file()
    assert list(ds.layers) == ["em"] and ds.get_layer("em") is layer
    assert [entry["name"] for entry in _json(ds.path)["dataLayers"]] == ["em"]
    np.testing.assert_array_equal(mag.read(offset=(4, 0, 2), size=(40, 36, 20)), data)  # old objects follow
    np.testing.assert_array_equal(sub_view.read(), data[:, :10, :10, :10])
    mag.write(np.zeros((1, 2, 2, 2), np.uint8), offset=(4, 0, 2))
    reopened = Dataset(ds.path).get_layer("em").get_mag(1)
    assert reopened.read(offset=(4, 0, 2), size=(2, 2, 2)).sum() == 0
    ds.add_layer("other", "color")
    with pytest.raises(AssertionError):
        layer.name = "other"
    with pytest.raises(ValueError):
        layer.name = "../escape"


def test_dataset_view_configuration_camel_case(ds):
    assert ds.default_view_configuration is None
    ds._properties.extra["defaultViewConfiguration"] = {"layers": {"x": {}}}  # a 4.x key wkview does not model
    config = DatasetViewConfiguration(four_bit=True, zoom=1.5, position=(1, 2, 3), segmentation_pattern_opacity=40)
    ds.default_view_configuration = config
    stored = _json(ds.path)["defaultViewConfiguration"]
    assert stored == {"fourBit": True, "zoom": 1.5, "position": [1, 2, 3], "segmentationPatternOpacity": 40, "layers": {"x": {}}}
    assert Dataset(ds.path).default_view_configuration == config
    ds.default_view_configuration = None
    assert "defaultViewConfiguration" not in _json(ds.path)


def test_layer_view_configuration_camel_case(ds):
    layer = ds.add_layer("color", "color")
    config = LayerViewConfiguration(color=(255, 0, 0), alpha=50, intensity_range=(0, 200), is_in_edit_mode=False)
    layer.default_view_configuration = config
    assert _layer_json(ds.path, "color")["defaultViewConfiguration"] == {
        "color": [255, 0, 0], "alpha": 50, "intensityRange": [0, 200], "isInEditMode": False,
    }  # fmt: skip
    assert Dataset(ds.path).get_layer("color").default_view_configuration == config
    with pytest.raises(TypeError):
        LayerViewConfiguration(color=(1, 2))
    with pytest.raises(TypeError):
        layer.default_view_configuration = DatasetViewConfiguration()


# -- add_layer_like, symlinks and copies -----------------------------------------------------------


def test_add_layer_like(ds):
    seg, _ = _filled(ds, "seg", "segmentation", dtype_per_channel="uint32", largest_segment_id=99)
    seg.default_view_configuration = LayerViewConfiguration(alpha=20)
    like = ds.add_layer_like(seg, "seg2")
    assert isinstance(like, wkview.SegmentationLayer)
    assert (like.category, like.dtype_per_channel, like.num_channels, like.largest_segment_id) == (
        "segmentation", np.dtype("uint32"), 1, 99,
    )  # fmt: skip
    assert like.mags == {} and like.bounding_box.is_empty()
    assert like.default_view_configuration == LayerViewConfiguration(alpha=20)
    with pytest.raises(AssertionError):
        ds.add_layer_like(seg, "seg2")


@pytest.mark.parametrize("relative", [False, True])
@pytest.mark.parametrize("as_path", [False, True])
def test_add_symlink_layer(tmp_path, ds, relative, as_path):
    other = Dataset.create(tmp_path / "other", scale=(11, 11, 25))
    layer, data = _filled(other, "em", num_channels=2)
    linked = ds.add_symlink_layer(layer.path if as_path else layer, make_relative=relative)
    link = ds.path / "em"
    assert link.is_symlink() and os.path.isabs(os.readlink(link)) != relative
    assert linked.bounding_box == layer.bounding_box and list(linked.mags) == [Mag(1)]
    entry = _layer_json(ds.path, "em")
    assert entry["boundingBox"] == _layer_json(other.path, "em")["boundingBox"]
    np.testing.assert_array_equal(Dataset(ds.path).get_layer("em").get_mag(1).read(offset=(4, 0, 2), size=(40, 36, 20)), data)
    # writes go through the link into the linked data; the box grows in this dataset only
    other_entry = _layer_json(other.path, "em")
    piece = np.full((2, 16, 16, 16), 200, np.uint8)
    linked.get_mag(1).write(piece, offset=(48, 0, 0))
    assert linked.bounding_box == BoundingBox((4, 0, 0), (60, 36, 22))
    assert _layer_json(ds.path, "em")["boundingBox"] != other_entry["boundingBox"]
    assert _layer_json(other.path, "em") == other_entry
    np.testing.assert_array_equal(Dataset(other.path).get_layer("em").get_mag(1).read(offset=(48, 0, 0), size=(16, 16, 16)), piece)
    assert not any(p.suffix == ".wkw" for p in ds.path.rglob("*") if not os.path.islink(p) and _is_inside_real(p, ds.path))
    with pytest.raises(PermissionError):  # new mags are not added into the linked folder
        linked.add_mag(2)
    with pytest.raises(AssertionError, match="already a layer"):
        ds.add_symlink_layer(layer)
    ds.delete_layer("em")
    assert not os.path.lexists(link) and (other.path / "em" / "1" / "header.wkw").is_file()


def _is_inside_real(path: Path, folder: Path) -> bool:
    """Whether ``path`` lies in ``folder`` once every symlink is resolved."""
    return Path(os.path.realpath(path)).is_relative_to(os.path.realpath(folder))


@pytest.mark.parametrize("how", ["layer", "mag"])
def test_writes_through_symlinks_lock_and_fsync_the_linked_files(tmp_path, ds, monkeypatch, how):
    from wkview import _durable

    other = Dataset.create(tmp_path / "other", scale=(11, 11, 25))
    layer, data = _filled(other, "em", block_len=8, file_len=2)
    if how == "layer":
        mag = ds.add_symlink_layer(layer).get_mag(1)
    else:
        mag = ds.add_layer("em", "color").add_symlink_mag(layer.get_mag(1))
    synced: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    wkview.set_fsync(True)
    wkview.set_locking(True)
    try:
        with pytest.warns(RuntimeWarning, match="not aligned"):  # wkview's advice, as for any unaligned write
            mag.write(np.full((5, 6, 7), 9, np.uint8), offset=(3, 4, 5))
    finally:
        wkview.set_fsync(None)
        wkview.set_locking(None)
    data[:, 0:4, 4:10, 3:10] = 9  # the part inside the data (offset (4, 0, 2))
    np.testing.assert_array_equal(layer.get_mag(1).read(offset=(4, 0, 2), size=(40, 36, 20)), data[:, :, :, :])
    # the data file and its folder are fsynced where they are; in this dataset only its
    # properties file (the grown bounding box) and its folder
    here = [p for p in synced if _is_inside_real(Path(p), ds.path)]
    there = [p for p in synced if p not in here]
    assert all(os.path.basename(p) == ds.path.name or "datasource-properties" in p for p in here), here
    assert all(_is_inside_real(Path(p), other.path / "em" / "1") for p in there), there
    assert any(".x0.wkw." in p for p in there) and str(Path(os.path.realpath(layer.get_mag(1).path)) / "z0" / "y0") in there
    # the lock of a file written through the link is the lock of the linked file
    link_file = str(mag.path / "z0" / "y0" / "x0.wkw")
    real_file = str(layer.get_mag(1).path / "z0" / "y0" / "x0.wkw")
    assert os.path.exists(_durable.lock_path(real_file))
    with _durable.locked([real_file]):
        with _durable.try_lock(link_file) as free:
            assert not free


def test_every_duplicate_name_is_an_index_error(tmp_path, ds):
    other = Dataset.create(tmp_path / "other", scale=(11, 11, 25))
    foreign, _ = _filled(other, "color")
    layer = ds.add_layer("color", "color")
    layer.add_mag(1)
    for add in (
        lambda: ds.add_copy_layer(foreign),
        lambda: ds.add_copy_layer(foreign.path),
        lambda: ds.add_symlink_layer(foreign),
        lambda: ds.add_layer("color", "color"),
        lambda: ds.add_layer_like(foreign, "color"),
    ):
        with pytest.raises(IndexError, match="There is already a layer with this name") as info:
            add()
        assert isinstance(info.value, wkview.NameTakenError) and isinstance(info.value, AssertionError)
    for add in (lambda: layer.add_mag(1), lambda: layer.add_copy_mag(foreign.get_mag(1)), lambda: layer.add_symlink_mag(foreign.get_mag(1))):
        with pytest.raises(IndexError, match="There is already a mag with this name"):
            add()
    assert list(ds.layers) == ["color"] and list(layer.mags) == [Mag(1)]


def test_add_copy_layer_copies_bytes_and_other_files(tmp_path, ds):
    other = Dataset.create(tmp_path / "other", scale=(11, 11, 25))
    layer, data = _filled(
        other, "seg", "segmentation", dtype_per_channel="uint16", largest_segment_id=5, compress=False
    )
    (layer.path / "mappings").mkdir()
    (layer.path / "mappings" / "m.json").write_text("{}")
    copied = ds.add_copy_layer(other.path / "seg")
    assert not copied.path.is_symlink() and (copied.path / "mappings" / "m.json").read_text() == "{}"
    assert _files(copied.get_mag(1).path) == _files(layer.get_mag(1).path)
    assert copied.largest_segment_id == 5 and copied.bounding_box == layer.bounding_box
    copied.get_mag(1).write(np.zeros((1, 4, 4, 4), np.uint16), offset=(4, 0, 2))  # a real copy: writable
    np.testing.assert_array_equal(layer.get_mag(1).read(offset=(4, 0, 2), size=(40, 36, 20)), data)


def test_add_symlink_and_copy_mag(tmp_path, ds):
    other = Dataset.create(tmp_path / "other", scale=(11, 11, 25))
    src, data = _filled(other, "color")
    src.downsample_mag(1, 2)
    layer = ds.add_layer("color", "color")
    layer.add_mag(4).write(np.ones((1, 2, 2, 2), np.uint8), offset=(0, 0, 0))
    linked = layer.add_symlink_mag(other.path / "color" / "1", make_relative=True)
    assert (ds.path / "color" / "1").is_symlink() and not os.path.isabs(os.readlink(ds.path / "color" / "1"))
    assert layer.bounding_box == BoundingBox((0, 0, 0), (44, 36, 22))  # grown to cover the other layer
    np.testing.assert_array_equal(linked.read(offset=(4, 0, 2), size=(40, 36, 20)), data)
    copied = layer.add_copy_mag(src.get_mag(2))
    assert not copied.path.is_symlink() and _files(copied.path) == _files(src.get_mag(2).path)
    reopened = Dataset(ds.path).get_layer("color")
    assert sorted(reopened.mags) == [Mag(1), Mag(2), Mag(4)]
    with pytest.raises(AssertionError):
        layer.add_copy_mag(src.get_mag(2))
    wrong = other.add_layer("u16", "color", dtype_per_channel="uint16")
    wrong.add_mag(8)
    with pytest.raises(TypeError):
        layer.add_symlink_mag(wrong.get_mag(8).path)


# -- copy_dataset -----------------------------------------------------------------------------------


def _two_layer_dataset(ds):
    color, cdata = _filled(ds, "color", num_channels=3, compress=True)
    seg, sdata = _filled(ds, "seg", "segmentation", dtype_per_channel="uint32", largest_segment_id=250, compress=False)
    color.downsample_mag(1, 2)
    return {"color": cdata, "seg": sdata}


def test_copy_dataset_same_layout_copies_files_byte_for_byte(tmp_path, ds):
    _two_layer_dataset(ds)
    ds.default_view_configuration = DatasetViewConfiguration(zoom=2.0)
    copy = ds.copy_dataset(tmp_path / "copy")
    assert copy.scale == ds.scale and list(copy.layers) == ["color", "seg"]
    assert copy.default_view_configuration == DatasetViewConfiguration(zoom=2.0)
    for name, layer in ds.layers.items():
        new = copy.get_layer(name)
        assert new.bounding_box == layer.bounding_box and sorted(new.mags) == sorted(layer.mags)
        for mag, view in layer.mags.items():
            assert _files(new.get_mag(mag).path) == _files(view.path), (name, mag)
            assert (new.get_mag(mag).path / "header.wkw").read_bytes() == (view.path / "header.wkw").read_bytes()


def test_copy_dataset_reencodes_other_layout(tmp_path, ds):
    arrays = _two_layer_dataset(ds)
    copy = ds.copy_dataset(tmp_path / "copy", scale=(5, 5, 5), block_len=16, file_len=1, compress=True)
    assert copy.scale == (5.0, 5.0, 5.0)
    for name, data in arrays.items():
        mag1 = copy.get_layer(name).get_mag(1)
        header = mag1.header
        assert (header.block_len, header.file_len, header.block_type) == (16, 1, wkw.Header.BLOCK_TYPE_LZ4HC)
        np.testing.assert_array_equal(mag1.read(offset=(4, 0, 2), size=(40, 36, 20)), data)
    old2, new2 = ds.get_layer("color").get_mag(2), copy.get_layer("color").get_mag(2)
    np.testing.assert_array_equal(new2.read(), old2.read())
    raw = ds.copy_dataset(tmp_path / "raw", compress=False)
    assert raw.get_layer("color").get_mag(1).header.block_type == wkw.Header.BLOCK_TYPE_RAW
    np.testing.assert_array_equal(raw.get_layer("color").get_mag(1).read(offset=(4, 0, 2), size=(40, 36, 20)), arrays["color"])


def test_copy_dataset_reports_progress(tmp_path, ds, capsys):
    _two_layer_dataset(ds)
    ds.copy_dataset(tmp_path / "copy", file_len=1, progress=True)
    err = capsys.readouterr().err
    assert "re-encode color/1" in err and "re-encode seg/1" in err


def test_copy_dataset_on_processes_from_args(tmp_path, ds):
    arrays = _two_layer_dataset(ds)
    args = argparse.Namespace(distribution_strategy="multiprocessing", jobs=2)
    copy = ds.copy_dataset(tmp_path / "copy", file_len=1, block_len=16, args=args)
    for name, data in arrays.items():
        np.testing.assert_array_equal(copy.get_layer(name).get_mag(1).read(offset=(4, 0, 2), size=(40, 36, 20)), data)


def test_copy_of_a_corrupt_file_names_it(tmp_path, ds):
    layer, _ = _filled(ds, "color")
    victim = sorted(layer.get_mag(1).path.rglob("*.wkw"))[-1]
    victim.write_bytes(victim.read_bytes()[:20])
    with pytest.raises(wkview.JobError, match=victim.name):
        ds.copy_dataset(tmp_path / "copy")


def test_write_in_slabs_cuts_on_the_block_grid(ds):
    layer = ds.add_layer("color", "color", dtype_per_channel="uint16", num_channels=2)
    mag = layer.add_mag(1, block_len=8, file_len=2, compress=True)
    mag.write(np.zeros((2, 16, 16, 64), np.uint16), offset=(0, 0, 0))
    view = mag.get_view(offset=(0, 0, 3), size=(16, 16, 61))
    expected = np.random.default_rng(1).integers(0, 60000, (2, 16, 16, 61), dtype=np.uint16)
    boxes = []

    def produce(offset, size):
        boxes.append((offset, size))
        return expected[:, offset[0] : offset[0] + size[0], offset[1] : offset[1] + size[1], offset[2] : offset[2] + size[2]]

    write_in_slabs(view, (0, 0, 0), (16, 16, 61), produce, slab_bytes=2 * 16 * 16 * 2 * 20)  # 20 planes
    starts = [3 + off[2] for off, _ in boxes]
    assert starts == [3, 16, 32, 48] and sum(size[2] for _, size in boxes) == 61  # borders on multiples of 8
    np.testing.assert_array_equal(view.read(), expected)
    with pytest.raises(ValueError):
        write_in_slabs(view, (0, 0, 0), (16, 16, 8), lambda o, s: np.zeros((1, *s), np.uint16))


# -- downsample_mag_list and upsample ---------------------------------------------------------------


def test_downsample_mag_list_steps_through_the_list(ds):
    layer, data = _filled(ds, "color", shape=(64, 64, 32))
    layer.bounding_box = BoundingBox((0, 0, 0), (68, 64, 34))
    full = np.zeros((1, 68, 64, 34), np.uint8)
    full[:, 4:, :, 2:] = data
    views = layer.downsample_mag_list(1, ["2-2-1", "4-4-2"], interpolation_mode="max")
    assert [v.mag for v in views] == [Mag("2-2-1"), Mag("4-4-2")]
    step1 = pool(full, (2, 2, 1), "max")
    np.testing.assert_array_equal(layer.get_mag("2-2-1").read(), step1)
    np.testing.assert_array_equal(layer.get_mag("4-4-2").read(), pool(step1, (2, 2, 2), "max"))
    with pytest.raises(AssertionError):
        layer.downsample_mag_list(8, [16])


def test_upsampling_chain_reverses_downsampling():
    assert upsampling_chain(Mag("8-8-4"), Mag(1), (11, 11, 25)) == [Mag("4-4-2"), Mag("2-2-1"), Mag(1)]
    assert upsampling_chain(Mag(4), Mag(1), None) == [Mag(2), Mag(1)]
    assert upsampling_chain(Mag("8-8-2"), Mag(1), (1, 1, 4)) == [Mag("4-4-1"), Mag("2-2-1"), Mag(1)]
    assert upsampling_chain(Mag(4), Mag(2), None) == [Mag(2)]
    with pytest.raises(ValueError):
        upsampling_chain(Mag(2), Mag(4), None)


def test_upsample_repeats_voxels(ds):
    layer = ds.add_layer("seg", "segmentation", dtype_per_channel="uint16", largest_segment_id=1000)
    coarse = (np.arange(10 * 9 * 5) % 1000).astype(np.uint16).reshape(1, 10, 9, 5)
    layer.add_mag("4-4-2", block_len=8, file_len=1).write(coarse, offset=(1, 0, 1))
    views = layer.upsample("4-4-2", Mag(1), compress=True)
    assert [v.mag for v in views] == [Mag("2-2-1"), Mag(1)]
    full = np.zeros((1, 11, 9, 6), np.uint16)
    full[:, 1:, :, 1:] = coarse
    for view, factors in ((views[0], (2, 2, 2)), (views[1], (4, 4, 2))):
        assert view.header.block_type == wkw.Header.BLOCK_TYPE_LZ4HC
        np.testing.assert_array_equal(view.read(), upsample_array(full, factors))
    assert np.array_equal(upsample_array(np.array([[[[1, 2]]]]), (1, 1, 2)), [[[[1, 1, 2, 2]]]])


def test_downsample_and_upsample_take_args_namespace(ds):
    layer, data = _filled(ds, "color", shape=(16, 16, 16))
    args = argparse.Namespace(distribution_strategy="sequential")
    layer.downsample_mag(1, 2, "nearest", True, None, args)  # 0.8.13 passed args in this place
    layer.delete_mag(1)
    layer.upsample(2, 1, True, "auto", None, args)
    restored = layer.get_mag(1).read(offset=(4, 0, 2), size=(16, 16, 16))
    np.testing.assert_array_equal(restored[:, ::2, ::2, ::2], data[:, ::2, ::2, ::2])
    with pytest.raises(TypeError):
        layer.downsample_mag(1, 4, args=args, executor=wkview.get_executor("sequential"))


# -- BoundingBox and Mag ------------------------------------------------------------------------------


def test_bounding_box_conversions():
    box = BoundingBox((1, -2, 3), (4, 5, 6))
    assert box.as_config() == {"topleft": [1, -2, 3], "size": [4, 5, 6]}
    assert BoundingBox.from_config(box.as_config()) == box
    assert box.as_named_tuple() == BoundingBoxNamedTuple(topleft=(1, -2, 3), size=(4, 5, 6))
    assert BoundingBox.from_named_tuple(box.as_named_tuple()) == box
    assert box.as_csv() == "1,-2,3,4,5,6" and BoundingBox.from_csv("1,-2,3,4,5,6") == box
    assert box.as_checkpoint_name() == "1_-2_3_4_5_6"
    assert BoundingBox.from_checkpoint_name("model_1_-2_3_4_5_6.pth") == box
    assert BoundingBox.from_checkpoint_name("run-7_10_20_30_64_64_64") == BoundingBox((7, 10, 20), (30, 64, 64))
    with pytest.raises(ValueError):
        BoundingBox.from_checkpoint_name("no box here_1_2")
    for form in (box, box.as_config(), json.dumps(box.as_config()), box.as_wkw(), box.as_csv(),
                 box.as_named_tuple(), box.as_tuple2(), box.as_tuple6(), "ckpt_" + box.as_checkpoint_name()):  # fmt: skip
        assert BoundingBox.from_auto(form) == box, form
    with pytest.raises(TypeError):
        BoundingBox.from_auto(3.5)


def test_bounding_box_from_points_slice_array_copy():
    box = BoundingBox.from_points([(3, 4, 5), (1, 9, 5), (2, 2, 7)])
    assert box == BoundingBox((1, 2, 5), (3, 8, 3))
    assert BoundingBox.from_points(np.array([[0, 0, 0]])) == BoundingBox((0, 0, 0), (1, 1, 1))
    array = np.arange(10 * 12 * 8 * 2).reshape(10, 12, 8, 2)
    np.testing.assert_array_equal(box.slice_array(array), array[1:4, 2:10, 5:8])
    assert box.copy() == box and hash(box.copy()) == hash(box)


def test_bounding_box_mutation_names_the_replacement():
    box = BoundingBox((0, 0, 0), (4, 4, 4))
    for attribute, replacement in (("size", "with_size"), ("topleft", "with_topleft"), ("bottomright", "with_bottomright")):
        with pytest.raises(AttributeError, match=replacement):
            setattr(box, attribute, (1, 1, 1))
    assert box.with_size((1, 2, 3)) == BoundingBox((0, 0, 0), (1, 2, 3))
    assert box.with_topleft((1, 1, 1)) == BoundingBox((1, 1, 1), (4, 4, 4))
    assert box.with_bottomright((2, 3, 4)) == BoundingBox((0, 0, 0), (2, 3, 4))


def test_mag_scaled_divided():
    assert Mag(2).scaled_by(2) == Mag(4) and Mag("2-2-1").scaled_by(4) == Mag("8-8-4")
    assert Mag(4).divided_by(2) == Mag(2) and Mag("4-4-2").divided_by(2) == Mag("2-2-1")
    assert Mag("2-4-1").divided([10, 10, 10]) == [5, 2, 10]
    mag = Mag(2)
    with pytest.raises(AttributeError, match="scaled_by"):
        mag.scale_by(2)
    with pytest.raises(AttributeError, match="divided_by"):
        mag.divide_by(2)
    assert mag == Mag(2)


# -- wkview.utils -------------------------------------------------------------------------------------


def test_get_executor_for_args():
    with get_executor_for_args(None) as executor:
        assert executor._max_workers == wkview.executors.available_cores()
    with get_executor_for_args(argparse.Namespace(distribution_strategy="multiprocessing", jobs=2)) as executor:
        assert executor._max_workers == 2
        assert list(executor.map(abs, [-1, 2])) == [1, 2]
    with pytest.raises(argparse.ArgumentTypeError):  # as in 0.8.13; also a ValueError
        get_executor_for_args(argparse.Namespace(distribution_strategy="slurm", job_resources=None))
    with pytest.raises(ValueError, match="job_resources"):
        get_executor_for_args(argparse.Namespace(distribution_strategy="slurm", job_resources=None))
    with pytest.raises(ValueError, match="unknown distribution_strategy"):
        get_executor_for_args(argparse.Namespace(distribution_strategy="carrier pigeon"))


def test_named_partial_keeps_name_and_pickles():
    part = named_partial(np.add, 1)
    assert isinstance(part, functools.partial)
    assert part.__name__ == "add" and part.__doc__ == np.add.__doc__
    clone = pickle.loads(pickle.dumps(part))
    assert clone(2) == 3 and clone.__name__ == "add"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert wkview.run_jobs(named_partial(pow, 2), [3, 4]) == [8, 16]

"""Golden WKW datasets: fixed files on disk, read every run, to catch format regressions.

``tests/data/golden_wk433`` was written by webknossos 4.3.3 and
``tests/data/golden_wkview`` by wkview, both by ``tests/data/make_golden.py``
from the same seeded voxels. These tests need no webknossos: they check that
wkview still reads both datasets (voxels, bounding boxes, dtypes, channels,
mags, block types, properties fields), that saving keeps every field of the
file, and that wkview still writes the very same files today.

The datasets are copied to ``tmp_path`` first: tests never write into the repo.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import wkw

import wkview
from wkview import BoundingBox, Dataset, Mag

from .data.make_golden import (
    BLOCK_LEN,
    FILE_LEN,
    LAYERS,
    SCALE,
    WK433_NAME,
    WKVIEW_NAME,
    expected_layer_bbox,
    golden_writes,
    largest_segment_id,
    write_with_wkview,
)

DATA = Path(__file__).resolve().parent / "data"
GOLDEN = (WK433_NAME, WKVIEW_NAME)
EXPECTED_MAGS = {"color": {Mag(1), Mag(2)}, "rgb": {Mag(1), Mag(2)}, "segmentation": {Mag(1), Mag("2-2-1")}}
PROPS = "datasource-properties.json"


def _files(root: Path) -> dict[str, bytes]:
    """Every file of a dataset but wkview's (empty, hidden) lock files."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.endswith(".lock")
    }


def _copy(name: str, tmp_path: Path) -> Path:
    src = DATA / name
    assert (src / PROPS).is_file(), f"golden dataset {src} is missing; see tests/data/make_golden.py"
    return Path(shutil.copytree(src, tmp_path / name))


@pytest.fixture(params=GOLDEN)
def golden(request, tmp_path) -> Path:
    return _copy(request.param, tmp_path)


def _layer_canvas(layer: str, mag: Mag) -> tuple[tuple[int, ...], np.ndarray]:
    """Expected voxels of the layer's bounding box (aligned outwards to ``mag``), in ``mag``."""
    spec = {ls.name: ls for ls in LAYERS}[layer]
    topleft, size = expected_layer_bbox(layer)
    m = tuple(mag.to_list())
    lo = tuple(topleft[i] // m[i] for i in range(3))
    hi = tuple(-(-(topleft[i] + size[i]) // m[i]) for i in range(3))
    canvas = np.zeros((spec.num_channels, *(h - l for h, l in zip(hi, lo))), dtype=spec.dtype)
    for w in golden_writes():
        if w.layer == layer and Mag(w.mag) == mag:
            sl = tuple(slice(w.offset[i] - lo[i], w.offset[i] - lo[i] + w.data.shape[1 + i]) for i in range(3))
            canvas[(slice(None), *sl)] = w.data
    return lo, canvas


def _check_voxels(path: Path) -> None:
    ds = Dataset(path)
    for w in golden_writes():
        mag = ds.get_layer(w.layer).get_mag(w.mag)
        size = w.data.shape[1:]
        actual = mag.read(w.offset, size)  # MagView offsets are absolute in the mag
        assert actual.dtype == w.data.dtype
        np.testing.assert_array_equal(actual, w.data, err_msg=f"{path.name}: {w.layer}/{w.mag}")
        # the whole bounding box, with the zeros around the written box
        lo, canvas = _layer_canvas(w.layer, Mag(w.mag))
        view = mag.get_view()
        assert tuple(view.global_offset) == lo
        np.testing.assert_array_equal(view.read(), canvas, err_msg=f"{path.name}: {w.layer}/{w.mag} view")
        # nothing beyond the written box, also past the files' borders
        far = mag.read((0, 0, 0), (40, 40, 40))
        assert int(np.count_nonzero(far)) == int(np.count_nonzero(w.data))


def test_golden_voxels(golden):
    _check_voxels(golden)


def test_golden_layers_and_mags(golden):
    ds = Dataset(golden)
    assert ds.name == golden.name
    assert ds.scale == SCALE
    assert set(ds.layers) == {ls.name for ls in LAYERS}
    for ls in LAYERS:
        layer = ds.get_layer(ls.name)
        assert layer.category == ls.category
        assert layer.data_format == "wkw"
        assert layer.num_channels == ls.num_channels
        assert layer.dtype_per_channel == np.dtype(ls.dtype)
        assert layer.dtype_per_layer == ("uint24" if ls.num_channels == 3 else ls.dtype)
        assert layer.bounding_box == BoundingBox(*expected_layer_bbox(ls.name))
        assert set(layer.mags) == EXPECTED_MAGS[ls.name]
        if ls.category == "segmentation":
            assert isinstance(layer, wkview.SegmentationLayer)
            assert layer.largest_segment_id == largest_segment_id()
        for w in golden_writes():
            if w.layer != ls.name:
                continue
            header = layer.get_mag(w.mag).header
            assert header.block_len == BLOCK_LEN and header.file_len == FILE_LEN
            assert header.num_channels == ls.num_channels
            assert np.dtype(header.voxel_type) == np.dtype(ls.dtype)
            assert header.block_type == (wkw.Header.BLOCK_TYPE_LZ4HC if w.compress else wkw.Header.BLOCK_TYPE_RAW)
    assert ds.get_segmentation_layer().name == "segmentation"


def test_golden_wk433_properties_fields():
    """The file as webknossos 4.3.3 wrote it (so a re-generation with another release shows up)."""
    doc = json.loads((DATA / WK433_NAME / PROPS).read_text())
    assert doc["id"] == {"name": WK433_NAME, "team": ""}
    assert doc["scale"] == {"factor": list(SCALE), "unit": "nanometer"}
    assert doc["version"] == 1
    layers = {layer["name"]: layer for layer in doc["dataLayers"]}
    assert layers["rgb"]["elementClass"] == "uint24" and layers["rgb"]["numChannels"] == 3
    assert layers["color"]["elementClass"] == "uint8"
    assert layers["segmentation"]["elementClass"] == "uint32"
    assert layers["segmentation"]["largestSegmentId"] == largest_segment_id()
    for name, layer in layers.items():
        assert layer["dataFormat"] == "wkw" and "wkwResolutions" not in layer
        topleft, size = expected_layer_bbox(name)
        assert layer["boundingBox"] == {"topLeft": list(topleft), "width": size[0], "height": size[1], "depth": size[2]}
        for entry in layer["mags"]:
            mag = Mag(entry["mag"])
            assert entry["path"] == f"./{name}/{mag.to_layer_name()}"
            assert entry["cubeLength"] == BLOCK_LEN * FILE_LEN
            assert entry["axisOrder"] == {"c": 0, "x": 1, "y": 2, "z": 3}


def test_golden_wkview_properties_fields():
    """wkview writes new datasets in the form webknossos 0.8.13 wrote (which 4.3.3 also opens)."""
    doc = json.loads((DATA / WKVIEW_NAME / PROPS).read_text())
    assert set(doc) == {"id", "scale", "dataLayers"}
    assert doc["id"] == {"name": WKVIEW_NAME, "team": ""}
    assert doc["scale"] == list(SCALE)
    for layer in doc["dataLayers"]:
        assert layer["dataFormat"] == "wkw" and "mags" not in layer
        assert "numChannels" in layer
        assert [entry["resolution"] for entry in layer["wkwResolutions"]] == [
            Mag(m).to_list() for m in sorted(EXPECTED_MAGS[layer["name"]])
        ]
        for entry in layer["wkwResolutions"]:
            assert set(entry) == {"resolution", "cubeLength"}  # folders found by name, no path
            assert entry["cubeLength"] == BLOCK_LEN * FILE_LEN


@pytest.mark.parametrize("name", GOLDEN)
def test_saving_keeps_every_field(name, tmp_path):
    """Writing into a golden copy changes only what the write changed: one bounding box."""
    path = _copy(name, tmp_path)
    before = json.loads((path / PROPS).read_text())
    ds = Dataset(path)
    seg = ds.get_segmentation_layer()
    seg.largest_segment_id = seg.largest_segment_id  # a save that changes nothing
    assert json.loads((path / PROPS).read_text()) == before
    assert list(json.loads((path / PROPS).read_text())) == list(before)  # key order too

    color = ds.get_layer("color")
    extra = np.full((4, 4, 4), 7, np.uint8)
    color.get_mag(1).write(extra, offset=(30, 0, 0))  # raw mag: grows the box
    after = json.loads((path / PROPS).read_text())
    assert expected_layer_bbox("color") == ((3, 5, 2), (20, 18, 12))
    grown = BoundingBox((3, 0, 0), (31, 23, 14))  # ... and (30, 0, 0) + (4, 4, 4)
    for layer_before, layer_after in zip(before["dataLayers"], after["dataLayers"]):
        if layer_before["name"] == "color":
            assert layer_after["boundingBox"] == {"topLeft": [3, 0, 0], "width": 31, "height": 23, "depth": 14}
            layer_after = dict(layer_after, boundingBox=layer_before["boundingBox"])
        assert layer_after == layer_before
    assert {k: v for k, v in after.items() if k != "dataLayers"} == {k: v for k, v in before.items() if k != "dataLayers"}

    reopened = Dataset(path)
    assert reopened.get_layer("color").bounding_box == grown
    np.testing.assert_array_equal(reopened.get_layer("color").get_mag(1).read((30, 0, 0), (4, 4, 4))[0], extra)
    _check_written_boxes(path)


def _check_written_boxes(path: Path) -> None:
    ds = Dataset(path)
    for w in golden_writes():
        actual = ds.get_layer(w.layer).get_mag(w.mag).read(w.offset, w.data.shape[1:])
        np.testing.assert_array_equal(actual, w.data)


def test_wkview_still_writes_the_golden_files(tmp_path, quiet_unaligned):
    """A fresh wkview write of the golden data gives the stored files: same layout, same bytes.

    The data files of webknossos 4.3.3 and of wkview were byte-identical when
    generated (both go through libwkw); raw files and headers must stay so.
    Compressed files are compared by their 16-byte file header and decoded
    voxels only, so an LZ4 update in libwkw alone does not fail this test.
    """
    fresh = tmp_path / WKVIEW_NAME
    write_with_wkview(fresh)
    new = _files(fresh)
    stored = _files(DATA / WKVIEW_NAME)
    stored_wk = _files(DATA / WK433_NAME)
    assert sorted(new) == sorted(stored)
    assert sorted(k for k in new if k != PROPS) == sorted(k for k in stored_wk if k != PROPS)
    assert json.loads(new[PROPS]) == json.loads(stored[PROPS])
    compressed = {f"{w.layer}/{Mag(w.mag).to_layer_name()}" for w in golden_writes() if w.compress}
    for rel, content in new.items():
        if rel == PROPS:
            continue
        if rel.endswith("header.wkw") or rel.rsplit("/z", 1)[0] not in compressed:
            assert content == stored[rel] == stored_wk[rel], rel
        else:
            assert content[:16] == stored[rel][:16] == stored_wk[rel][:16], rel
    _check_voxels(fresh)

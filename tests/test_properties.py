"""Tests of wkview.properties: both schemas, round trips, validation, atomic saves, dtypes, interop."""

from __future__ import annotations

import copy
import json
import os
import re
import stat
import subprocess
import sys
import threading
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import wkw

from wkview.errors import DatasetError, NotADatasetError, PropertiesError
from wkview.geometry import BoundingBox, Mag
from wkview.properties import (
    PROPERTIES_FILE_NAME,
    DatasetProperties,
    LayerProperties,
    MagProperties,
    dtype_per_channel_from_element_class,
    dtype_per_channel_to_dtype_per_layer,
    dtype_per_layer_to_dtype_per_channel,
    element_class_from_dtype,
    load_properties,
    save_properties,
    validate_name,
)

# The two examples of spec/properties-json.md, verbatim.
SPEC_08 = """{"id": {"name": "seedds", "team": ""},
 "scale": [11.24, 11.24, 25.0],
 "dataLayers": [{
   "name": "color", "category": "color",
   "boundingBox": {"topLeft": [10, 20, 30], "width": 100, "height": 90, "depth": 80},
   "elementClass": "uint8",
   "wkwResolutions": [{"resolution": [1, 1, 1], "cubeLength": 64}],
   "dataFormat": "wkw", "numChannels": 1}]}"""

SPEC_4X = """{"id": {"name": "wk4ds", "team": ""},
 "scale": {"factor": [11.24, 11.24, 25.0], "unit": "nanometer"},
 "dataLayers": [{
   "name": "color", "category": "color",
   "boundingBox": {"topLeft": [0, 0, 0], "width": 10, "height": 10, "depth": 10},
   "dataFormat": "wkw",
   "mags": [{"mag": [1, 1, 1], "path": "./color/1", "cubeLength": 64,
             "axisOrder": {"c": 0, "x": 1, "y": 2, "z": 3}}],
   "numChannels": 3, "elementClass": "uint24"}],
 "version": 1}"""

ALL_DTYPES = ["uint8", "uint16", "uint32", "uint64", "int8", "int16", "int32", "int64", "float32", "float64"]


def write_doc(folder: Path, doc: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    file = folder / PROPERTIES_FILE_NAME
    file.write_text(doc if isinstance(doc, str) else json.dumps(doc, indent=4))
    return file


def read_doc(folder: Path) -> Any:
    return json.loads((folder / PROPERTIES_FILE_NAME).read_text())


def doc_08() -> dict:
    return json.loads(SPEC_08)


def doc_4x() -> dict:
    return json.loads(SPEC_4X)


def assert_same_json(actual: Any, expected: Any) -> None:
    """Equal, and every object keeps its key order."""
    assert actual == expected
    if isinstance(expected, dict):
        assert list(actual) == list(expected)
        for key in expected:
            assert_same_json(actual[key], expected[key])
    elif isinstance(expected, list):
        for a, e in zip(actual, expected):
            assert_same_json(a, e)


def make_header(mag_dir: Path, dtype: str = "uint8", channels: int = 1) -> None:
    """A real mag folder with header.wkw (file_len 4, block_len 8: cubeLength 32)."""
    mag_dir.mkdir(parents=True, exist_ok=True)
    wkw.Dataset.create(
        str(mag_dir),
        wkw.Header(np.dtype(dtype).type, num_channels=channels, file_len=4, block_len=8,
                   block_type=wkw.Header.BLOCK_TYPE_RAW),
    ).close()


@pytest.fixture(scope="module")
def wk() -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pytest.importorskip("webknossos")


# -- loading both schemas -----------------------------------------------------------


def test_load_08_example(tmp_path: Path) -> None:
    write_doc(tmp_path, SPEC_08)
    props = load_properties(tmp_path)
    assert (props.name, props.team) == ("seedds", "")
    assert props.scale == (11.24, 11.24, 25.0)
    assert props.scale_unit is None
    assert props.extra == {}
    (layer,) = props.layers
    assert (layer.name, layer.category, layer.element_class, layer.num_channels) == ("color", "color", "uint8", 1)
    assert layer.bounding_box == BoundingBox((10, 20, 30), (100, 90, 80))
    assert layer.data_format == "wkw"
    assert layer.dtype_per_channel == np.dtype("uint8")
    assert layer.dtype_per_layer == "uint8"
    assert layer.largest_segment_id is None
    assert layer.extra == {}
    (mag,) = layer.mags
    assert (mag.mag, mag.cube_length, mag.path, mag.extra) == (Mag(1), 64, "color/1", {})


def test_load_4x_example(tmp_path: Path) -> None:
    write_doc(tmp_path, SPEC_4X)
    props = load_properties(str(tmp_path))
    assert (props.name, props.scale, props.scale_unit) == ("wk4ds", (11.24, 11.24, 25.0), "nanometer")
    assert props.extra == {"version": 1}
    (layer,) = props.layers
    assert layer.element_class == "uint24" and layer.num_channels == 3
    assert layer.dtype_per_channel == np.dtype("uint8")
    assert layer.dtype_per_layer == "uint24"
    assert layer.bounding_box == BoundingBox((0, 0, 0), (10, 10, 10))
    (mag,) = layer.mags
    assert (mag.mag, mag.cube_length, mag.path) == (Mag(1), 64, "color/1")
    assert mag.extra == {"axisOrder": {"c": 0, "x": 1, "y": 2, "z": 3}}


@pytest.mark.parametrize(
    ("resolution", "folders", "expected"),
    [
        (1, [], "color/1"),
        ([2, 2, 2], [], "color/2"),
        ([2, 2, 2], ["color/2-2-2"], "color/2-2-2"),
        ([2, 2, 2], ["color/2", "color/2-2-2"], "color/2"),
        (2, ["color/2"], "color/2"),
        ([2, 2, 1], [], "color/2-2-1"),
        ([2, 2, 1], ["color/2-2-1"], "color/2-2-1"),
    ],
)
def test_08_mag_folder_short_then_long(tmp_path: Path, resolution: Any, folders: list[str], expected: str) -> None:
    for folder in folders:
        (tmp_path / folder).mkdir(parents=True)
    doc = doc_08()
    doc["dataLayers"][0]["wkwResolutions"] = [{"resolution": resolution, "cubeLength": 64}]
    write_doc(tmp_path, doc)
    (mag,) = load_properties(tmp_path).layers[0].mags
    assert mag.mag == Mag(resolution)
    assert mag.path == expected


@pytest.mark.parametrize(
    ("entry", "folders", "expected"),
    [
        ({"mag": [1, 1, 1], "path": "./color/1"}, [], "color/1"),
        ({"mag": [1, 1, 1], "path": "color/1"}, [], "color/1"),
        ({"mag": [1, 1, 1], "path": "color//./1/"}, [], "color/1"),
        ({"mag": [1, 1, 1], "path": "./other/place"}, [], "other/place"),
        ({"mag": [2, 2, 2]}, [], "color/2"),
        ({"mag": [2, 2, 2]}, ["color/2-2-2"], "color/2-2-2"),
        ({"mag": [4, 4, 1]}, [], "color/4-4-1"),
    ],
)
def test_4x_mag_path_forms(tmp_path: Path, entry: dict, folders: list[str], expected: str) -> None:
    for folder in folders:
        (tmp_path / folder).mkdir(parents=True)
    doc = doc_4x()
    doc["dataLayers"][0]["mags"] = [entry]
    write_doc(tmp_path, doc)
    (mag,) = load_properties(tmp_path).layers[0].mags
    assert mag.path == expected
    assert mag.cube_length is None


def test_segmentation_layers_and_bigint(tmp_path: Path) -> None:
    doc = doc_4x()
    seg = {
        "name": "seg", "category": "segmentation",
        "boundingBox": {"topLeft": [0, 0, 0], "width": 1, "height": 1, "depth": 1},
        "dataFormat": "wkw", "mags": [{"mag": [1, 1, 1], "path": "./seg/1"}],
        "largestSegmentId": {"customJsonEncoding": "bigint", "value": "18446744073709551615"},
        "mappings": ["agglo"], "numChannels": 1, "elementClass": "uint64",
    }  # fmt: skip
    plain = dict(seg, name="seg2", mags=[{"mag": [1, 1, 1], "path": "./seg2/1"}], largestSegmentId=7)
    unknown = dict(seg, name="seg3", mags=[{"mag": [1, 1, 1], "path": "./seg3/1"}])
    del unknown["largestSegmentId"]
    doc["dataLayers"] += [seg, plain, unknown]
    write_doc(tmp_path, doc)
    props = load_properties(tmp_path)
    assert [layer.largest_segment_id for layer in props.layers] == [None, 2**64 - 1, 7, None]
    assert props.layers[1].extra == {"mappings": ["agglo"]}
    assert props.layers[1].dtype_per_channel == np.dtype("uint64")
    save_properties(tmp_path, props)
    assert_same_json(read_doc(tmp_path), doc)


@pytest.mark.parametrize(
    "value", ["12", 1.5, True, {"customJsonEncoding": "bigint", "value": 12}, {"customJsonEncoding": "bigint"}]
)
def test_invalid_largest_segment_id(tmp_path: Path, value: Any) -> None:
    doc = doc_08()
    doc["dataLayers"][0].update(category="segmentation", largestSegmentId=value)
    write_doc(tmp_path, doc)
    with pytest.raises(PropertiesError, match=r"dataLayers\[0\]\.largestSegmentId"):
        load_properties(tmp_path)
    doc["dataLayers"][0]["category"] = "color"  # not modelled for color layers: kept as it is
    write_doc(tmp_path, doc)
    assert load_properties(tmp_path).layers[0].extra == {"largestSegmentId": value}


def test_num_channels_missing_is_read_from_header(tmp_path: Path) -> None:
    make_header(tmp_path / "color" / "1", "uint8", 3)
    doc = doc_08()
    layer = doc["dataLayers"][0]
    del layer["numChannels"]
    layer["elementClass"] = "uint24"
    write_doc(tmp_path, doc)
    loaded = load_properties(tmp_path).layers[0]
    assert loaded.num_channels == 3 and loaded.dtype_per_channel == np.dtype("uint8")
    # without a header webknossos 4.3.3 assumes one channel
    del layer["elementClass"]
    layer["elementClass"] = "uint16"
    write_doc(tmp_path / "other", doc)
    assert load_properties(tmp_path / "other").layers[0].num_channels == 1


def test_data_format_missing_means_wkw_for_wkw_resolutions(tmp_path: Path) -> None:
    doc = doc_08()
    del doc["dataLayers"][0]["dataFormat"]
    write_doc(tmp_path, doc)
    assert load_properties(tmp_path).layers[0].data_format == "wkw"
    save_properties(tmp_path, load_properties(tmp_path))
    assert read_doc(tmp_path)["dataLayers"][0]["dataFormat"] == "wkw"


def test_other_data_formats_are_listed_and_kept_verbatim(tmp_path: Path) -> None:
    doc = doc_4x()
    zarr = {
        "name": "remote", "category": "color",
        "boundingBox": {"topLeft": [0, 0, 0], "width": 64, "height": 64, "depth": 64},
        "dataFormat": "zarr3",
        "mags": [
            {"mag": [1, 1, 1], "path": "s3://bucket/ds/remote/1", "axisOrder": {"c": 0, "x": 1, "y": 2, "z": 3}},
            {"mag": [2, 2, 2], "path": "/elsewhere/remote/2"},
            {"mag": [4, 4, 4], "path": "./remote/4"},
            {"mag": "weird"},
        ],
        "numChannels": 1, "elementClass": "uint16",
    }  # fmt: skip
    n5 = {
        "name": "n5layer", "category": "segmentation",
        "boundingBox": {"topLeft": [0, 0, 0], "width": 1, "height": 1, "depth": 1},
        "dataFormat": "n5", "mags": "not even a list", "elementClass": "uint32",
    }  # fmt: skip
    doc["dataLayers"] += [zarr, n5]
    write_doc(tmp_path, doc)
    props = load_properties(tmp_path)
    assert [layer.name for layer in props.layers] == ["color", "remote", "n5layer"]
    remote = props.layers[1]
    assert remote.data_format == "zarr3"
    assert remote.dtype_per_channel == np.dtype("uint16")
    assert [m.path for m in remote.mags] == ["remote/4"]  # only the usable entries
    assert remote.extra["mags"] == zarr["mags"]
    assert props.layers[2].mags == [] and props.layers[2].data_format == "n5"
    save_properties(tmp_path, props)
    assert_same_json(read_doc(tmp_path), doc)


def test_allow_external_paths(tmp_path: Path) -> None:
    doc = doc_4x()
    doc["dataLayers"][0]["mags"][0]["path"] = "/data/elsewhere/color/1"
    write_doc(tmp_path, doc)
    with pytest.raises(PropertiesError, match=r"dataLayers\[0\]\.mags\[0\]\.path"):
        load_properties(tmp_path)
    props = load_properties(tmp_path, allow_external_paths=True)
    assert props.layers[0].mags[0].path == "/data/elsewhere/color/1"
    with pytest.raises(PropertiesError, match="allow_external_paths"):
        save_properties(tmp_path, props)
    save_properties(tmp_path, props, allow_external_paths=True)
    assert_same_json(read_doc(tmp_path), doc)


# -- round trips ----------------------------------------------------------------------


def test_round_trip_08_is_identical(tmp_path: Path) -> None:
    write_doc(tmp_path, SPEC_08)
    save_properties(tmp_path, load_properties(tmp_path))
    assert_same_json(read_doc(tmp_path), doc_08())


def test_round_trip_4x_is_identical(tmp_path: Path) -> None:
    write_doc(tmp_path, SPEC_4X)
    save_properties(tmp_path, load_properties(tmp_path))
    assert_same_json(read_doc(tmp_path), doc_4x())


def with_unknown_fields(doc: dict, mag_key: str) -> dict:
    doc = copy.deepcopy(doc)
    doc["defaultViewConfiguration"] = {"fourBit": False, "zoom": 1.5}
    doc["somethingNew"] = [1, {"a": None}]
    doc["id"]["extraIdField"] = "x"
    layer = doc["dataLayers"][0]
    layer["defaultViewConfiguration"] = {"color": [255, 0, 0], "alpha": 50}
    layer["coordinateTransformations"] = [{"type": "affine", "matrix": [[1, 0, 0, 0]] * 4}]
    layer["boundingBox"]["unknownBoxField"] = True
    layer[mag_key][0]["unknownMagField"] = {"deep": [1, 2]}
    # move a known key behind unknown ones: the order must survive
    layer["name"] = layer.pop("name")
    return doc


@pytest.mark.parametrize(("source", "mag_key"), [(SPEC_08, "wkwResolutions"), (SPEC_4X, "mags")])
def test_round_trip_keeps_unknown_fields_and_order(tmp_path: Path, source: str, mag_key: str) -> None:
    doc = with_unknown_fields(json.loads(source), mag_key)
    write_doc(tmp_path, doc)
    props = load_properties(tmp_path)
    assert props.extra["somethingNew"] == [1, {"a": None}]
    assert props.layers[0].extra["coordinateTransformations"][0]["type"] == "affine"
    assert props.layers[0].mags[0].extra["unknownMagField"] == {"deep": [1, 2]}
    save_properties(tmp_path, props)
    assert_same_json(read_doc(tmp_path), doc)
    # twice is stable too
    save_properties(tmp_path, load_properties(tmp_path))
    assert_same_json(read_doc(tmp_path), doc)


def test_round_trip_with_changes(tmp_path: Path) -> None:
    doc = with_unknown_fields(doc_4x(), "mags")
    write_doc(tmp_path, doc)
    props = load_properties(tmp_path)
    layer = props.layers[0]
    layer.bounding_box = BoundingBox((1, 2, 3), (40, 50, 60))
    layer.mags.append(MagProperties(Mag(2), 64, "color/2", {"axisOrder": {"c": 0, "x": 1, "y": 2, "z": 3}}))
    props.extra["somethingNew"] = "changed"
    save_properties(tmp_path, props)
    out = read_doc(tmp_path)
    assert out["dataLayers"][0]["boundingBox"] == {
        "topLeft": [1, 2, 3], "width": 40, "height": 50, "depth": 60, "unknownBoxField": True,
    }  # fmt: skip
    assert out["dataLayers"][0]["mags"][1] == {
        "mag": [2, 2, 2], "path": "./color/2", "cubeLength": 64, "axisOrder": {"c": 0, "x": 1, "y": 2, "z": 3},
    }  # fmt: skip
    assert out["somethingNew"] == "changed"
    assert list(out) == list(doc)


def test_wkw_resolutions_win_over_mags_and_both_are_kept(tmp_path: Path) -> None:
    doc = doc_08()
    doc["dataLayers"][0]["mags"] = [{"mag": [8, 8, 8], "path": "./nowhere"}]
    write_doc(tmp_path, doc)
    props = load_properties(tmp_path)
    assert [m.mag for m in props.layers[0].mags] == [Mag(1)]
    save_properties(tmp_path, props)
    assert_same_json(read_doc(tmp_path), doc)


def new_dataset(scale_unit: str | None = None) -> DatasetProperties:
    color = LayerProperties(
        name="color", category="color", element_class="uint24", num_channels=3,
        bounding_box=BoundingBox((10, 20, 30), (40, 50, 60)), data_format="wkw",
        mags=[MagProperties(Mag(1), 32, "color/1"), MagProperties(Mag("2-2-1"), 32, "color/2-2-1")],
        largest_segment_id=None, extra={},
    )  # fmt: skip
    seg = LayerProperties(
        "segmentation", "segmentation", "uint32", 1, BoundingBox((0, 0, 0), (64, 64, 32)), "wkw",
        [MagProperties(Mag(1), 32, "segmentation/1"), MagProperties(Mag(2), 32, "segmentation/2-2-2")],
        largest_segment_id=2**60, extra={"mappings": []},
    )  # fmt: skip
    floats = LayerProperties(
        "floats", "color", "float", 1, BoundingBox((0, 0, 0), (8, 8, 8)), "wkw",
        [MagProperties(Mag(1), 32, "floats/1")],
    )
    return DatasetProperties("newds", "", (11.24, 11.24, 25.0), scale_unit, [color, seg, floats], {})


def test_new_dataset_is_written_in_the_08_form(tmp_path: Path) -> None:
    props = new_dataset()
    save_properties(tmp_path, props)
    out = read_doc(tmp_path)
    assert out["id"] == {"name": "newds", "team": ""}
    assert out["scale"] == [11.24, 11.24, 25.0]
    assert_same_json(
        out["dataLayers"][0],
        {
            "name": "color", "category": "color",
            "boundingBox": {"topLeft": [10, 20, 30], "width": 40, "height": 50, "depth": 60},
            "elementClass": "uint24",
            "wkwResolutions": [{"resolution": [1, 1, 1], "cubeLength": 32},
                               {"resolution": [2, 2, 1], "cubeLength": 32}],
            "dataFormat": "wkw", "numChannels": 3,
        },
    )  # fmt: skip
    # 2-2-2 in its long folder: readers only find it without a path when "2" does not exist
    assert out["dataLayers"][1]["wkwResolutions"][1] == {"resolution": [2, 2, 2], "cubeLength": 32}
    assert out["dataLayers"][1]["largestSegmentId"] == 2**60  # plain int: 0.8 cannot read the envelope
    assert out["dataLayers"][2]["elementClass"] == "float"
    loaded = load_properties(tmp_path)
    expected = copy.deepcopy(props)
    expected.layers[1].mags[1].path = "segmentation/2"  # no folder on disk yet: the short name
    assert loaded == expected
    (tmp_path / "segmentation" / "2-2-2").mkdir(parents=True)
    assert load_properties(tmp_path).layers[1].mags[1].path == "segmentation/2-2-2"


def test_mag_path_that_cannot_be_found_is_written(tmp_path: Path) -> None:
    props = new_dataset()
    props.layers[0].mags[0].path = "color/custom-folder"
    (tmp_path / "segmentation" / "2").mkdir(parents=True)  # short folder hides the long one
    save_properties(tmp_path, props)
    out = read_doc(tmp_path)
    assert out["dataLayers"][0]["wkwResolutions"][0]["path"] == "./color/custom-folder"
    assert out["dataLayers"][1]["wkwResolutions"][1]["path"] == "./segmentation/2-2-2"
    loaded = load_properties(tmp_path)
    assert loaded.layers[0].mags[0].path == "color/custom-folder"
    assert loaded.layers[1].mags[1].path == "segmentation/2-2-2"


def test_new_dataset_with_unit_is_written_in_the_4x_form(tmp_path: Path) -> None:
    props = new_dataset("nanometer")
    save_properties(tmp_path, props)
    out = read_doc(tmp_path)
    assert out["scale"] == {"factor": [11.24, 11.24, 25.0], "unit": "nanometer"}
    color = out["dataLayers"][0]
    assert "wkwResolutions" not in color
    assert color["mags"][0] == {"mag": [1, 1, 1], "path": "./color/1", "cubeLength": 32}
    assert out["dataLayers"][1]["largestSegmentId"] == {"customJsonEncoding": "bigint", "value": str(2**60)}
    assert load_properties(tmp_path) == props


def test_new_layer_in_a_loaded_dataset_follows_its_form(tmp_path: Path) -> None:
    for name, source, key in (("a", SPEC_08, "wkwResolutions"), ("b", SPEC_4X, "mags")):
        write_doc(tmp_path / name, source)
        props = load_properties(tmp_path / name)
        props.layers.append(copy.deepcopy(new_dataset().layers[2]))
        save_properties(tmp_path / name, props)
        out = read_doc(tmp_path / name)
        assert key in out["dataLayers"][1]
        assert load_properties(tmp_path / name) == props


# -- validation -----------------------------------------------------------------------


def test_missing_file_or_folder(tmp_path: Path) -> None:
    with pytest.raises(NotADatasetError, match=str(tmp_path)):
        load_properties(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_properties(tmp_path / "nothing")
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADatasetError, match="not a folder"):
        load_properties(tmp_path / "file")
    (tmp_path / "d" / PROPERTIES_FILE_NAME).mkdir(parents=True)
    with pytest.raises(PropertiesError, match="folder"):
        load_properties(tmp_path / "d")


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ('{"id": {"name": "x"},\n "scale": [1, 1, 1],\n "dataLayers": [,]}', r"line 3, column 17"),
        ("", r"line 1, column 1"),
        ('{"id": ', r"not valid JSON"),
        ("[1, 2]", r"\(top level\): must be a JSON object"),
    ],
)
def test_malformed_json(tmp_path: Path, text: str, pattern: str) -> None:
    file = write_doc(tmp_path, text)
    with pytest.raises(PropertiesError, match=pattern) as info:
        load_properties(tmp_path)
    assert str(file) in str(info.value)


def test_not_utf8(tmp_path: Path) -> None:
    tmp_path.joinpath(PROPERTIES_FILE_NAME).write_bytes(b'{"id": "\xff\xfe\xfa"}')
    with pytest.raises(PropertiesError, match="UTF-8"):
        load_properties(tmp_path)


def _del(path: str):  # noqa: ANN202 - small test helper
    def edit(doc: dict) -> None:
        *parents, last = path.split(".")
        obj: Any = doc
        for part in parents:
            obj = obj[int(part)] if part.isdigit() else obj[part]
        del obj[last]

    return edit


def _set(path: str, value: Any):  # noqa: ANN202 - small test helper
    def edit(doc: dict) -> None:
        *parents, last = path.split(".")
        obj: Any = doc
        for part in parents:
            obj = obj[int(part)] if part.isdigit() else obj[part]
        obj[int(last) if last.isdigit() else last] = value

    return edit


INVALID_CASES = [
    # (edit of the 0.8 example, field path that must be named)
    (_del("id"), "id"),
    (_del("id.name"), "id.name"),
    (_set("id.name", 5), "id.name"),
    (_del("scale"), "scale"),
    (_set("scale", [1, 2]), "scale"),
    (_set("scale", [1, 0, 2]), "scale"),
    (_set("scale", {"unit": "nanometer"}), "scale.factor"),
    (_set("scale", "big"), "scale"),
    (_del("dataLayers"), "dataLayers"),
    (_set("dataLayers", {}), "dataLayers"),
    (_set("dataLayers.0", "color"), "dataLayers[0]"),
    (_del("dataLayers.0.name"), "dataLayers[0].name"),
    (_del("dataLayers.0.category"), "dataLayers[0].category"),
    (_set("dataLayers.0.category", "mask"), "dataLayers[0].category"),
    (_del("dataLayers.0.boundingBox"), "dataLayers[0].boundingBox"),
    (_del("dataLayers.0.boundingBox.depth"), "dataLayers[0].boundingBox.depth"),
    (_set("dataLayers.0.boundingBox.width", -1), "dataLayers[0].boundingBox.width"),
    (_set("dataLayers.0.boundingBox.height", 1.5), "dataLayers[0].boundingBox.height"),
    (_set("dataLayers.0.boundingBox.height", 10.0), "dataLayers[0].boundingBox.height"),
    (_set("dataLayers.0.boundingBox.height", "10"), "dataLayers[0].boundingBox.height"),
    (_set("dataLayers.0.boundingBox.depth", True), "dataLayers[0].boundingBox.depth"),
    (_set("dataLayers.0.boundingBox.topLeft", [1, 2]), "dataLayers[0].boundingBox.topLeft"),
    (_set("dataLayers.0.boundingBox.topLeft", [1, 2, 0.5]), "dataLayers[0].boundingBox.topLeft"),
    (_set("dataLayers.0.boundingBox", [0, 0, 0, 1, 1, 1]), "dataLayers[0].boundingBox"),
    (_del("dataLayers.0.elementClass"), "dataLayers[0].elementClass"),
    (_set("dataLayers.0.elementClass", "uint12"), "dataLayers[0].elementClass"),
    (_set("dataLayers.0.elementClass", "rgb"), "dataLayers[0].elementClass"),
    (_set("dataLayers.0.elementClass", "uint24"), "dataLayers[0].elementClass"),  # 1 channel
    (_set("dataLayers.0.elementClass", "float16"), "dataLayers[0].elementClass"),
    (_set("dataLayers.0.numChannels", 0), "dataLayers[0].numChannels"),
    (_set("dataLayers.0.numChannels", "3"), "dataLayers[0].numChannels"),
    (_del("dataLayers.0.wkwResolutions"), "dataLayers[0].wkwResolutions"),
    (_set("dataLayers.0.wkwResolutions", {"resolution": 1}), "dataLayers[0].wkwResolutions"),
    (_set("dataLayers.0.wkwResolutions.0", [1, 1, 1]), "dataLayers[0].wkwResolutions[0]"),
    (_del("dataLayers.0.wkwResolutions.0.resolution"), "dataLayers[0].wkwResolutions[0].resolution"),
    (_set("dataLayers.0.wkwResolutions.0.resolution", 3), "dataLayers[0].wkwResolutions[0].resolution"),
    (_set("dataLayers.0.wkwResolutions.0.resolution", [1, 1]), "dataLayers[0].wkwResolutions[0].resolution"),
    (_set("dataLayers.0.wkwResolutions.0.resolution", "1"), "dataLayers[0].wkwResolutions[0].resolution"),
    (_set("dataLayers.0.wkwResolutions.0.cubeLength", -64), "dataLayers[0].wkwResolutions[0].cubeLength"),
    (_set("dataLayers.0.wkwResolutions.1", {"resolution": 1}), "dataLayers[0].wkwResolutions[1]"),  # twice
    (_set("dataLayers.0.wkwResolutions.1", {"resolution": 2, "path": "color/1"}), "dataLayers[0].wkwResolutions[1].path"),
    (_set("dataLayers.0.dataFormat", ""), "dataLayers[0].dataFormat"),
    (_set("dataLayers.0.dataFormat", None), "dataLayers[0].dataFormat"),
    (_set("dataLayers.1", json.loads(SPEC_08)["dataLayers"][0]), "dataLayers[1].name"),  # duplicate name
]


@pytest.mark.parametrize(("edit", "field"), INVALID_CASES)
def test_invalid_fields_are_named(tmp_path: Path, edit: Any, field: str) -> None:
    doc = doc_08()
    doc["dataLayers"].append(copy.deepcopy(doc["dataLayers"][0]))
    doc["dataLayers"][1]["name"] = "second"
    doc["dataLayers"][0]["wkwResolutions"].append({"resolution": 2, "cubeLength": 64})
    edit(doc)
    file = write_doc(tmp_path, doc)
    with pytest.raises(PropertiesError) as info:
        load_properties(tmp_path)
    message = str(info.value)
    assert str(file) in message
    assert f"{field}:" in message or f"{field}." in message, message
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("entry", "field"),
    [
        ({"path": "./color/1"}, "dataLayers[0].mags[0].mag"),
        ({"mag": [1, 1, 1], "path": 5}, "dataLayers[0].mags[0].path"),
        ({"mag": [1, 1, 1], "path": ""}, "dataLayers[0].mags[0].path"),
        ({"mag": [1, 1, 1], "path": "."}, "dataLayers[0].mags[0].path"),
    ],
)
def test_invalid_4x_mag_entries(tmp_path: Path, entry: dict, field: str) -> None:
    doc = doc_4x()
    doc["dataLayers"][0]["mags"] = [entry]
    write_doc(tmp_path, doc)
    with pytest.raises(PropertiesError, match=re.escape(f"{PROPERTIES_FILE_NAME}: {field}:")):
        load_properties(tmp_path)


@pytest.mark.parametrize("name", ["..", ".", "", "a/b", "/abs", "a\\b", "C:\\x", "C:x", "a\x00b", "../color"])
def test_unsafe_layer_names(tmp_path: Path, name: str) -> None:
    doc = doc_08()
    doc["dataLayers"][0]["name"] = name
    write_doc(tmp_path, doc)
    with pytest.raises(PropertiesError, match=r"dataLayers\[0\]\.name"):
        load_properties(tmp_path)


@pytest.mark.parametrize(
    "path",
    [
        "../other/color/1",
        "..",
        "color/../../x",
        "./color/../../../etc",
        "/abs/color/1",
        "//server/share",
        "C:/data/color/1",
        "s3://bucket/color/1",
        "https://host/ds/color/1",
        "color\\1",
        "color/\x001",
    ],
)
@pytest.mark.parametrize("schema", ["0.8", "4.x"])
def test_mag_paths_leaving_the_folder(tmp_path: Path, path: str, schema: str) -> None:
    doc = doc_08() if schema == "0.8" else doc_4x()
    key = "wkwResolutions" if schema == "0.8" else "mags"
    doc["dataLayers"][0][key][0]["path"] = path
    write_doc(tmp_path, doc)
    with pytest.raises(PropertiesError, match=rf"dataLayers\[0\]\.{key}\[0\]\.path"):
        load_properties(tmp_path)


def test_inside_paths_with_dots_are_fine(tmp_path: Path) -> None:
    doc = doc_4x()
    doc["dataLayers"][0]["mags"][0]["path"] = "./other/../color/./1"
    write_doc(tmp_path, doc)
    assert load_properties(tmp_path).layers[0].mags[0].path == "color/1"


def test_validate_name() -> None:
    assert validate_name("color_1.v2", "layer name") == "color_1.v2"
    for bad in ["", ".", "..", "a/b", "a\\b", "/x", "x\x00", "D:stuff"]:
        with pytest.raises(PropertiesError, match="layer name") as info:
            validate_name(bad, "layer name")
        assert isinstance(info.value, ValueError)
    with pytest.raises(PropertiesError, match="must be a string"):
        validate_name(3, "mag folder")  # type: ignore[arg-type]


# -- save validation and atomicity ----------------------------------------------------


@pytest.mark.parametrize(
    ("change", "pattern"),
    [
        (lambda p: setattr(p.layers[0], "name", ".."), r"dataLayers\[0\]\.name"),
        (lambda p: setattr(p.layers[0], "name", "a/b"), r"dataLayers\[0\]\.name"),
        (lambda p: setattr(p.layers[1], "name", "color"), r"dataLayers\[1\]\.name"),
        (lambda p: setattr(p.layers[0], "category", "mask"), r"dataLayers\[0\]\.category"),
        (lambda p: setattr(p.layers[0], "element_class", "uint128"), r"dataLayers\[0\]\.elementClass"),
        (lambda p: setattr(p.layers[0], "num_channels", 2), r"dataLayers\[0\]\.elementClass"),
        (lambda p: setattr(p.layers[0].mags[0], "path", "../escape"), r"dataLayers\[0\]\.wkwResolutions\[0\]\.path"),
        (lambda p: setattr(p.layers[0].mags[0], "path", "/abs"), r"dataLayers\[0\]\.wkwResolutions\[0\]\.path"),
        (lambda p: setattr(p.layers[0].mags[1], "mag", Mag(1)), r"dataLayers\[0\]\.wkwResolutions\[1\]"),
        (lambda p: setattr(p.layers[0].mags[1], "path", "color/1"), r"dataLayers\[0\]\.wkwResolutions\[1\]\.path"),
        (lambda p: setattr(p, "scale", (1.0, float("nan"), 1.0)), r"scale"),
        (lambda p: setattr(p.layers[0], "bounding_box", (0, 0, 0)), r"dataLayers\[0\]\.boundingBox"),
        (lambda p: p.extra.update(bad=object()), r"JSON-serialisable"),
        (lambda p: p.layers[0].extra.update(bad=float("inf")), r"JSON-serialisable"),
    ],
)
def test_invalid_props_are_not_saved(tmp_path: Path, change: Any, pattern: str) -> None:
    props = new_dataset()
    save_properties(tmp_path, props)
    before = (tmp_path / PROPERTIES_FILE_NAME).read_bytes()
    change(props)
    with pytest.raises(PropertiesError, match=pattern):
        save_properties(tmp_path, props)
    assert (tmp_path / PROPERTIES_FILE_NAME).read_bytes() == before
    # the lock file (.datasource-properties.json.lock) stays; no temporary file does
    assert sorted(n for n in os.listdir(tmp_path) if not n.endswith(".lock")) == [PROPERTIES_FILE_NAME]


def test_save_needs_an_existing_folder(tmp_path: Path) -> None:
    with pytest.raises(NotADatasetError):
        save_properties(tmp_path / "missing", new_dataset())
    assert not (tmp_path / "missing").exists()


def test_failed_write_leaves_old_file_and_no_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_doc(tmp_path, SPEC_08)
    before = (tmp_path / PROPERTIES_FILE_NAME).read_bytes()
    props = load_properties(tmp_path)
    props.extra["new"] = "x" * 10000

    def broken_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="No space left"):
        save_properties(tmp_path, props)
    monkeypatch.undo()
    assert (tmp_path / PROPERTIES_FILE_NAME).read_bytes() == before
    assert [n for n in os.listdir(tmp_path) if not n.endswith(".lock")] == [PROPERTIES_FILE_NAME]


def test_saved_file_mode_is_a_normal_one(tmp_path: Path) -> None:
    save_properties(tmp_path, new_dataset())
    mode = stat.S_IMODE(os.stat(tmp_path / PROPERTIES_FILE_NAME).st_mode)
    assert mode & 0o644 == 0o644 or os.name == "nt"  # not mkstemp's 0600
    os.chmod(tmp_path / PROPERTIES_FILE_NAME, 0o640)
    save_properties(tmp_path, new_dataset())
    assert stat.S_IMODE(os.stat(tmp_path / PROPERTIES_FILE_NAME).st_mode) == 0o640 or os.name == "nt"


@pytest.mark.skipif(os.name == "nt", reason="symlinks need privileges on Windows")
def test_symlinked_properties_file_is_replaced_not_written_through(tmp_path: Path) -> None:
    outside = tmp_path / "outside.json"
    outside.write_text(SPEC_08)
    ds = tmp_path / "ds"
    ds.mkdir()
    (ds / PROPERTIES_FILE_NAME).symlink_to(outside)
    props = load_properties(ds)
    props.name = "renamed"
    save_properties(ds, props)
    assert outside.read_text() == SPEC_08
    assert not (ds / PROPERTIES_FILE_NAME).is_symlink()
    assert load_properties(ds).name == "renamed"


WRITER = """
import sys
from wkview.properties import load_properties, save_properties
path, tag, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
props = load_properties(path)
for i in range(n):
    props.extra["writer"] = f"{tag}-{i}"
    props.layers[0].extra["padding"] = tag * (20000 + 37 * i)
    save_properties(path, props)
"""


def _assert_consistent(props: DatasetProperties) -> None:
    writer = props.extra.get("writer")
    if writer is not None:
        tag = writer.split("-")[0]
        assert set(props.layers[0].extra["padding"]) == {tag}


def test_concurrent_processes_never_corrupt_the_file(tmp_path: Path) -> None:
    write_doc(tmp_path, SPEC_4X)
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), tag, "25"])
        for tag in "ab"
    ]
    loads = 0
    try:
        while any(p.poll() is None for p in procs):
            _assert_consistent(load_properties(tmp_path))
            loads += 1
    finally:
        codes = [p.wait(timeout=60) for p in procs]
    assert codes == [0, 0]
    assert loads > 0
    final = load_properties(tmp_path)
    assert final.extra["writer"] in {"a-24", "b-24"}
    assert [n for n in os.listdir(tmp_path) if not n.endswith(".lock")] == [PROPERTIES_FILE_NAME]


def test_concurrent_threads_never_corrupt_the_file(tmp_path: Path) -> None:
    write_doc(tmp_path, SPEC_08)
    errors: list[BaseException] = []
    done = threading.Event()

    def writer(tag: str) -> None:
        try:
            props = load_properties(tmp_path)
            for i in range(30):
                props.extra["writer"] = f"{tag}-{i}"
                props.layers[0].extra["padding"] = tag * (5000 + i)
                save_properties(tmp_path, props)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def reader() -> None:
        try:
            while not done.is_set():
                _assert_consistent(load_properties(tmp_path))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    writers = [threading.Thread(target=writer, args=(tag,)) for tag in "xyzw"]
    readers = [threading.Thread(target=reader) for _ in range(2)]
    for t in readers + writers:
        t.start()
    for t in writers:
        t.join()
    done.set()
    for t in readers:
        t.join()
    assert errors == []
    assert [n for n in os.listdir(tmp_path) if not n.endswith(".lock")] == [PROPERTIES_FILE_NAME]


# -- dtypes -----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ALL_DTYPES)
@pytest.mark.parametrize("channels", [1, 3])
def test_dtype_conversions_match_webknossos(wk: Any, dtype: str, channels: int) -> None:
    from webknossos.dataset_properties.dtype_conversion import (
        dtype_per_channel_to_element_class,
        element_class_to_dtype_per_channel,
    )

    element_class = element_class_from_dtype(dtype, channels)
    assert element_class == dtype_per_channel_to_element_class(dtype, channels)
    assert dtype_per_channel_from_element_class(element_class, channels) == np.dtype(dtype)
    assert element_class_to_dtype_per_channel(element_class, channels) == np.dtype(dtype)
    per_layer = dtype_per_channel_to_dtype_per_layer(np.dtype(dtype), channels)
    assert dtype_per_layer_to_dtype_per_channel(per_layer, channels) == np.dtype(dtype)
    assert dtype_per_layer_to_dtype_per_channel(element_class, channels) == np.dtype(dtype)
    bits = np.dtype(dtype).itemsize * 8 * channels
    assert per_layer == f"{np.dtype(dtype).name.rstrip('0123456789')}{bits}"


@pytest.mark.parametrize(
    ("dtype", "channels", "element_class", "per_layer"),
    [
        ("uint8", 1, "uint8", "uint8"),
        ("uint8", 3, "uint24", "uint24"),
        ("uint16", 3, "uint48", "uint48"),
        ("int16", 1, "int16", "int16"),
        ("float32", 1, "float", "float32"),
        ("float32", 2, "double", "float64"),
        ("float32", 3, "float96", "float96"),
        ("float64", 1, "double", "float64"),
        ("float64", 3, "float192", "float192"),
        ("uint64", 3, "uint192", "uint192"),
    ],
)
def test_dtype_table(dtype: str, channels: int, element_class: str, per_layer: str) -> None:
    assert element_class_from_dtype(np.dtype(dtype), channels) == element_class
    assert element_class_from_dtype(np.dtype(dtype).type, channels) == element_class
    assert dtype_per_channel_to_dtype_per_layer(dtype, channels) == per_layer
    assert dtype_per_channel_from_element_class(element_class, channels) == np.dtype(dtype)
    assert dtype_per_layer_to_dtype_per_channel(per_layer, channels) == np.dtype(dtype)
    assert dtype_per_layer_to_dtype_per_channel(np.dtype(per_layer) if channels == 1 else per_layer, channels) == np.dtype(dtype)


def test_dtype_aliases() -> None:
    assert dtype_per_layer_to_dtype_per_channel("float", 1) == np.dtype("float32")
    assert dtype_per_layer_to_dtype_per_channel("double", 1) == np.dtype("float64")
    assert dtype_per_layer_to_dtype_per_channel("u2", 1) == np.dtype("uint16")
    assert dtype_per_layer_to_dtype_per_channel(np.uint32, 1) == np.dtype("uint32")


@pytest.mark.parametrize(
    "call",
    [
        lambda: dtype_per_channel_from_element_class("uint24", 1),
        lambda: dtype_per_channel_from_element_class("float", 3),
        lambda: dtype_per_channel_from_element_class("uint32", 3),
        lambda: dtype_per_channel_from_element_class("uint128", 1),
        lambda: dtype_per_channel_from_element_class("float16", 1),
        lambda: dtype_per_channel_from_element_class("rgb", 1),
        lambda: dtype_per_channel_from_element_class(8, 1),
        lambda: dtype_per_channel_from_element_class("uint8", 0),
        lambda: dtype_per_channel_from_element_class("uint8", True),
        lambda: element_class_from_dtype("float16", 1),
        lambda: element_class_from_dtype("complex64", 1),
        lambda: element_class_from_dtype("bool", 1),
        lambda: element_class_from_dtype(">u2", 1),
        lambda: element_class_from_dtype("nonsense", 1),
        lambda: element_class_from_dtype("uint8", -1),
        lambda: dtype_per_channel_to_dtype_per_layer("float16", 2),
        lambda: dtype_per_layer_to_dtype_per_channel("uint8", 3),
        lambda: dtype_per_layer_to_dtype_per_channel("nonsense", 1),
        lambda: dtype_per_layer_to_dtype_per_channel(np.float16, 1),
    ],
)
def test_dtype_errors(call: Any) -> None:
    with pytest.raises(DatasetError):
        call()


# -- interop with webknossos 4.3.3 -------------------------------------------------


def _make_mag_folders(folder: Path, props: DatasetProperties) -> None:
    for layer in props.layers:
        for mag in layer.mags:
            make_header(folder / mag.path, layer.dtype_per_channel.name, layer.num_channels)


def _check_wk_dataset(wk: Any, folder: Path, props: DatasetProperties) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = wk.Dataset.open(folder)
        assert ds.name == props.name
        assert tuple(ds.voxel_size) == props.scale
        assert list(ds.layers) == [layer.name for layer in props.layers]
        for layer in props.layers:
            wk_layer = ds.get_layer(layer.name)
            assert wk_layer.category == layer.category
            assert wk_layer.dtype_per_channel == layer.dtype_per_channel
            assert wk_layer.num_channels == layer.num_channels
            assert wk_layer.bounding_box.topleft.to_tuple() == layer.bounding_box.topleft.to_tuple()
            assert wk_layer.bounding_box.size.to_tuple() == layer.bounding_box.size.to_tuple()
            assert sorted(m.to_tuple() for m in wk_layer.mags) == sorted(m.mag.to_tuple() for m in layer.mags)
            for mag in layer.mags:
                assert Path(wk_layer.get_mag(mag.mag.to_tuple()).path) == (folder / mag.path).resolve()
            if layer.category == "segmentation":
                assert wk_layer.largest_segment_id == layer.largest_segment_id


@pytest.mark.interop
@pytest.mark.parametrize("scale_unit", [None, "nanometer"])
def test_written_new_dataset_opens_in_webknossos(wk: Any, tmp_path: Path, scale_unit: str | None) -> None:
    props = new_dataset(scale_unit)
    _make_mag_folders(tmp_path, props)
    data = np.arange(3 * 4 * 5 * 6, dtype=np.uint8).reshape(3, 4, 5, 6)
    with wkw.Dataset.open(str(tmp_path / "color" / "1")) as store:
        store.write((10, 20, 30), data)
    save_properties(tmp_path, props)
    _check_wk_dataset(wk, tmp_path, props)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mag1 = wk.Dataset.open(tmp_path).get_layer("color").get_mag(1)
        np.testing.assert_array_equal(mag1.read(absolute_offset=(10, 20, 30), size=(4, 5, 6)), data)


@pytest.mark.interop
def test_webknossos_dataset_loads_and_round_trips(wk: Any, tmp_path: Path) -> None:
    folder = tmp_path / "wkds"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = wk.Dataset(folder, voxel_size=(11.24, 11.24, 25))
        color = ds.add_layer("color", "color", dtype_per_channel="uint8", num_channels=3, data_format="wkw")
        color.add_mag(1).write(
            np.ones((3, 10, 12, 14), np.uint8), absolute_offset=(5, 6, 7), allow_resize=True
        )
        color.add_mag(2)
        seg = ds.add_layer(
            "seg", "segmentation", dtype_per_channel="uint32", largest_segment_id=2**60, data_format="wkw"
        )
        seg.add_mag("2-2-1")
        ds.add_layer("f", "color", dtype_per_channel="float32", num_channels=3, data_format="wkw").add_mag(1)
    original = (folder / PROPERTIES_FILE_NAME).read_text()

    props = load_properties(folder)
    assert (props.name, props.team, props.scale, props.scale_unit) == ("wkds", "", (11.24, 11.24, 25.0), "nanometer")
    assert props.extra == {"version": 1}
    color_p, seg_p, f_p = props.layers
    assert (color_p.name, color_p.category, color_p.element_class, color_p.num_channels) == ("color", "color", "uint24", 3)
    assert color_p.dtype_per_channel == np.dtype("uint8")
    assert color_p.bounding_box == BoundingBox((5, 6, 7), (10, 12, 14))
    assert [(m.mag, m.path) for m in color_p.mags] == [(Mag(1), "color/1"), (Mag(2), "color/2")]
    assert all(m.cube_length == 1024 and "axisOrder" in m.extra for m in color_p.mags)
    assert (seg_p.category, seg_p.largest_segment_id, seg_p.dtype_per_channel) == ("segmentation", 2**60, np.dtype("uint32"))
    assert [(m.mag, m.path) for m in seg_p.mags] == [(Mag("2-2-1"), "seg/2-2-1")]
    assert (f_p.element_class, f_p.num_channels, f_p.dtype_per_channel) == ("float96", 3, np.dtype("float32"))

    save_properties(folder, props)
    assert (folder / PROPERTIES_FILE_NAME).read_text() == original  # byte for byte
    _check_wk_dataset(wk, folder, props)


@pytest.mark.interop
def test_08_file_with_unknown_fields_opens_in_webknossos(wk: Any, tmp_path: Path) -> None:
    doc = with_unknown_fields(doc_08(), "wkwResolutions")
    write_doc(tmp_path, doc)
    props = load_properties(tmp_path)
    props.layers[0].mags.append(MagProperties(Mag(2), 32, "color/2-2-2"))  # long folder only
    _make_mag_folders(tmp_path, props)
    save_properties(tmp_path, props)
    _check_wk_dataset(wk, tmp_path, props)

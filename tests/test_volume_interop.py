"""Chunked volumes, differentially: wkview's convert beside ``webknossos convert --data-format
wkw`` 4.3.3 on the same Zarr v2/v3, OME-Zarr, N5, precomputed and MRC inputs (made with
tensorstore and mrcfile, tests/volume_inputs.py); webknossos reads both results.

All inputs of a group are written once per module; webknossos converts the whole group in one
subprocess (its command line, ``--distribution-strategy sequential``) so the suite pays its
import once per group, and wkview converts in this process (``executor=None``). Each case then
only compares. The default run has one case per format; the rest are ``slow``.

webknossos 4.3.3 reads a single-channel volume into one layer named after the input, and splits
channels into one layer each (``NAME__channel0``, ... or ``NAME__LABEL`` from OME ``omero``
labels). wkview is given the same base name, and the datasets must match layer for layer:
names and their order, element class, bounding box and voxels (and wkview's voxels are the
input's).

Inputs webknossos refuses are pinned in :func:`test_webknossos_refuses`; wkview's behaviour on
them is pinned in tests/test_volume_sources.py (HDF5 datasets, precomputed volumes that do not
start at 0).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

from tests import volume_inputs as vi
from tests.test_interop import quiet, wk  # webknossos 4.3.3, or this module skips as that one does
from tests.webknossos_cli import webknossos_convert
from wkview.convert import convert

pytestmark = pytest.mark.interop

SHAPE = (37, 29, 19)  # (x, y, z), no multiple of any chunk size

def volume(channels: int, dtype: Any, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    if dt.kind == "f":
        return rng.normal(size=(channels, *SHAPE)).astype(dt)
    return rng.integers(0, np.iinfo(dt).max, size=(channels, *SHAPE), dtype=dt, endpoint=True)


Writer = Callable[[Path, np.ndarray], str]


@dataclass(frozen=True)
class Case:
    """An input: how it is written, its element type and channel count, and whether it runs
    only in the ``slow`` group."""

    write: Writer
    dtype: Any
    channels: int = 1
    slow: bool = False


CASES: dict[str, Case] = {
    "zarr3": Case(lambda p, d: vi.write_zarr(p / "vol.zarr", d, 3), np.uint8),
    "zarr2": Case(lambda p, d: vi.write_zarr(p / "vol.zarr", d, 2), np.uint16, slow=True),
    "ome-zarr3": Case(lambda p, d: vi.write_ome_zarr(p / "vol.ome.zarr", d, 3), np.uint8, slow=True),
    "ome-zarr2": Case(lambda p, d: vi.write_ome_zarr(p / "vol.ome.zarr", d, 2), np.float32),
    "n5": Case(lambda p, d: vi.write_n5(p / "vol.n5", d), np.uint16),
    "n5-pyramid": Case(lambda p, d: vi.write_n5(p / "vol.n5", d, pyramid=True), np.uint8, slow=True),
    "precomputed": Case(lambda p, d: vi.write_precomputed(p / "vol", d), np.uint8),
    "mrc": Case(lambda p, d: vi.write_mrc(p / "vol.mrc", d), np.int16),
    "zarr2-channels": Case(lambda p, d: vi.write_zarr(p / "vol.zarr", d, 2), np.uint16, 3),
    "ome-zarr3-named": Case(
        lambda p, d: vi.write_ome_zarr(p / "vol.ome.zarr", d, 3, ["dapi", "gfp"]), np.uint8, 2
    ),
    "n5-channels": Case(lambda p, d: vi.write_n5(p / "vol.n5", d), np.uint8, 2, slow=True),
    "precomputed-channels": Case(lambda p, d: vi.write_precomputed(p / "vol", d), np.uint16, 3, slow=True),
}
# where webknossos guesses the category from the path (test_webknossos_guesses_segmentation)
GUESSED: dict[str, Case] = {
    "under-labels": Case(lambda p, d: vi.write_zarr(p / "labels" / "vol.zarr", d, 3), np.uint8),
}
# what webknossos refuses; wkview converts them (the whole HDF5 file, its one dataset)
REFUSED: dict[str, Case] = {
    "hdf5": Case(lambda p, d: vi.write_hdf5(p / "vol.h5", d).split(":")[0], np.uint8),
    "precomputed-shifted": Case(lambda p, d: vi.write_precomputed(p / "vol", d, voxel_offset=(3, 4, 5)), np.uint8),
}


ALL = {**CASES, **GUESSED, **REFUSED}


def _group(name: str) -> list[str]:
    """The cases converted together with ``name``: the default ones, or the slow ones."""
    return [n for n, c in ALL.items() if c.slow == ALL[name].slow]


@dataclass
class Converted:
    """One input converted by both tools (``by_webknossos`` is None where it refused)."""

    source: str
    data: np.ndarray
    by_webknossos: Path | None
    by_wkview: Path


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> Callable[[str], Converted]:
    """``converted(name)``: the input written and converted by webknossos (its whole group in one
    subprocess, on first use) and by wkview, under the layer name webknossos chose."""
    root = tmp_path_factory.mktemp("volumes")
    done: dict[str, Converted] = {}

    def get(name: str) -> Converted:
        if name not in done:
            group = _group(name)
            data = {n: volume(ALL[n].channels, ALL[n].dtype) for n in group}
            for n in group:
                (root / "in" / n).mkdir(parents=True)
            inputs = {n: ALL[n].write(root / "in" / n, data[n]) for n in group}
            refused = webknossos_convert([(inputs[n], root / "wk" / n) for n in group])
            for n in group:
                theirs = root / "wk" / n
                names = [] if theirs in refused else layer_names(theirs)
                base = names[0].split("__")[0] if names else "color"
                ours = root / "wkview" / n
                convert(inputs[n], ours, (1, 1, 1), downsample=False, layer_name=base)
                done[n] = Converted(inputs[n], data[n], None if theirs in refused else theirs, ours)
        return done[name]

    return get


def layer_names(path: Path) -> list[str]:
    """The layers of a dataset, in the order of its datasource-properties.json."""
    doc = json.loads((path / "datasource-properties.json").read_text())
    return [layer["name"] for layer in doc["dataLayers"]]


def read_layers(path: Path) -> dict[str, dict]:
    """What webknossos reads: per layer (in file order) its category, channels, dtype, element
    class, bounding box and ``(channels, x, y, z)`` voxels."""
    doc = json.loads((path / "datasource-properties.json").read_text())
    out = {}
    with quiet():
        ds = wk.Dataset.open(path)
        for entry in doc["dataLayers"]:
            layer = ds.layers[entry["name"]]
            box = layer.bounding_box
            data = layer.get_finest_mag().read(absolute_bounding_box=box)
            out[entry["name"]] = {
                "category": layer.category,
                "channels": layer.num_channels,
                "dtype": np.dtype(layer.dtype_per_channel),
                "element_class": entry["elementClass"],
                "box": (tuple(box.topleft), tuple(box.size)),
                "data": data.reshape((layer.num_channels, *box.size)),
            }
    return out


def largest_segment_ids(path: Path) -> list[int | None]:
    doc = json.loads((path / "datasource-properties.json").read_text())
    return [layer.get("largestSegmentId") for layer in doc["dataLayers"]]


def check_same(case: Converted, ours_path: Path | None = None) -> None:
    """Layer for layer the same as webknossos' (``ours_path``: another wkview result)."""
    assert case.by_webknossos is not None, "webknossos refused the input"
    theirs, ours = read_layers(case.by_webknossos), read_layers(ours_path or case.by_wkview)
    assert list(ours) == list(theirs)
    for name, layer in ours.items():
        for key in ("category", "channels", "dtype", "element_class", "box"):
            assert layer[key] == theirs[name][key], (name, key)
        np.testing.assert_array_equal(layer["data"], theirs[name]["data"], err_msg=name)
    np.testing.assert_array_equal(np.concatenate([layer["data"] for layer in ours.values()]), case.data)


@pytest.mark.parametrize("name", [n for n, c in CASES.items() if not c.slow])
def test_same_as_webknossos(converted, name):
    check_same(converted(name))


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n, c in CASES.items() if c.slow])
def test_same_as_webknossos_slow(converted, name):
    check_same(converted(name))


@pytest.mark.parametrize(
    "name, layers",
    [
        ("zarr2-channels", ["vol.zarr__channel0", "vol.zarr__channel1", "vol.zarr__channel2"]),
        ("ome-zarr3-named", ["vol.ome.zarr__dapi", "vol.ome.zarr__gfp"]),
    ],
)
def test_channel_layers_named_as_webknossos_does(converted, name, layers):
    """Several channels: one layer per channel, named ``NAME__channel<i>`` or after the OME
    ``omero`` labels, by both tools (``NAME``: the input's folder name)."""
    case = converted(name)
    assert layer_names(case.by_wkview) == layer_names(case.by_webknossos) == layers


def test_webknossos_guesses_segmentation(converted, tmp_path):
    """webknossos 4.3.3 makes a segmentation layer of an input whose path contains ``labels``
    (or ``segmentation``) anywhere; wkview makes the category it is given (default color), and
    with ``category="segmentation"`` the same dataset as webknossos."""
    case = converted("under-labels")
    theirs, ours = read_layers(case.by_webknossos), read_layers(case.by_wkview)
    assert [layer["category"] for layer in theirs.values()] == ["segmentation"]
    assert [layer["category"] for layer in ours.values()] == ["color"]
    (layer_name,) = theirs
    convert(case.source, tmp_path / "seg", (1, 1, 1), downsample=False, layer_name=layer_name, category="segmentation")
    check_same(case, tmp_path / "seg")
    assert largest_segment_ids(tmp_path / "seg") == largest_segment_ids(case.by_webknossos) == [int(case.data.max())]


@pytest.mark.parametrize("name", list(REFUSED))
def test_webknossos_refuses(converted, name):
    """The inputs whose wkview conversion only tests/test_volume_sources.py can pin: webknossos
    4.3.3 refuses them, wkview converts them."""
    case = converted(name)
    assert case.by_webknossos is None
    ours = read_layers(case.by_wkview)
    assert list(ours) == ["color"]
    np.testing.assert_array_equal(ours["color"]["data"], case.data)

"""Differential suite: every TIFF layout of tests/tiff_layouts.py converted by
``webknossos convert --data-format wkw`` 4.3.3 and by wkview, both results read back
by webknossos: the same layers, channels, element classes, bounding boxes and voxels
(and wkview's voxels are the NumPy oracle's).

webknossos runs as its own command line (``webknossos convert ... --no-downsample
--distribution-strategy sequential``), all cases of a group in one subprocess so the
suite pays webknossos' import once per group. The default run converts a few
layouts; the rest are ``slow``.

Where the two tools differ on purpose, the test pins both behaviours:

* OME-TIFF channel names: wkview names the layers after them (``color__DAPI``),
  webknossos 4.3.3 numbers them (``color__channel0``), with the same voxels;
* RGBA: wkview keeps the colour (RGB, uint24), webknossos reads the 4 samples as z;
* samples that are not RGB (YXS, photometric minisblack): wkview makes channels,
  webknossos reads them as z;
* several timepoints: webknossos refuses the file; wkview converts the one named
  with ``timepoint`` (pinned in tests/test_sources.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from wkview.convert import convert

from .test_interop import quiet, wk  # webknossos 4.3.3 (the module skips without it)
from .tiff_layouts import LAYOUTS, Layout, make
from .webknossos_cli import webknossos_convert

pytestmark = pytest.mark.interop

FAST = ("rgb_file", "yxq_file", "imagej_hyperstack", "ome_czyx_named", "lzw_folder", "mixed_sizes")
SLOW = tuple(n for n in LAYOUTS if n not in FAST and n != "imagej_timeseries")

class Converted:
    """One layout converted by both tools."""

    def __init__(self, layout: Layout, by_webknossos: Path, by_wkview: Path, refused: bool) -> None:
        self.layout, self.by_webknossos, self.by_wkview, self.refused = layout, by_webknossos, by_wkview, refused


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> Callable[[str], Converted]:
    """``converted(name)``: the layout made, converted by webknossos (its whole group in one
    subprocess, on first use) and by wkview."""
    root = tmp_path_factory.mktemp("layouts")
    done: dict[str, Converted] = {}

    def get(name: str) -> Converted:
        if name not in done:
            group = FAST if name in FAST else SLOW
            layouts = {n: make(n, root / "in") for n in group}
            refused = webknossos_convert([(layouts[n].source, root / "wk" / n) for n in group], "--layer-name", "color")
            for n in group:
                ours = root / "wkview" / n
                convert(layouts[n].source, ours, (1, 1, 1), downsample=False, name=n)
                done[n] = Converted(layouts[n], root / "wk" / n, ours, root / "wk" / n in refused)
        return done[name]

    return get


def read_layers(path: Path) -> dict[str, dict]:
    """What webknossos reads: per layer its channels, dtype, element class, box and voxels."""
    doc = json.loads((path / "datasource-properties.json").read_text())
    classes = {layer["name"]: layer["elementClass"] for layer in doc["dataLayers"]}
    with quiet():
        ds = wk.Dataset.open(path)
        out = {}
        for name, layer in ds.layers.items():
            box = layer.bounding_box
            data = layer.get_finest_mag().read()
            out[name] = {
                "channels": layer.num_channels,
                "dtype": np.dtype(layer.dtype_per_channel),
                "element_class": classes[name],
                "box": (tuple(box.topleft), tuple(box.size)),
                "data": data.reshape((layer.num_channels, *box.size)),
            }
    return out


def all_channels(layers: dict[str, dict]) -> np.ndarray:
    """The layers' channels stacked in layer order, ``(channels, x, y, z)``."""
    return np.concatenate([layers[name]["data"] for name in layers])


def check_same(case: Converted, renamed: dict[str, str] | None = None) -> None:
    assert not case.refused
    theirs, ours = read_layers(case.by_webknossos), read_layers(case.by_wkview)
    renamed = renamed or {}
    assert [renamed.get(name, name) for name in ours] == list(theirs)
    for name, layer in ours.items():
        other = theirs[renamed.get(name, name)]
        for key in ("channels", "dtype", "element_class", "box"):
            assert layer[key] == other[key], (name, key)
        np.testing.assert_array_equal(layer["data"], other["data"])
    np.testing.assert_array_equal(all_channels(ours), case.layout.expected)


@pytest.mark.parametrize("name", [n for n in FAST if n != "ome_czyx_named"])
def test_same_as_webknossos(converted, name):
    check_same(converted(name))


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in SLOW if n not in ("rgba_file", "samples_file")])
def test_same_as_webknossos_slow(converted, name):
    check_same(converted(name))


def test_ome_channel_names(converted):
    """wkview names the layers after the OME channels; webknossos 4.3.3 numbers them."""
    case = converted("ome_czyx_named")
    check_same(case, {f"color__{n}": f"color__channel{i}" for i, n in enumerate(["DAPI", "GFP", "RFP"])})


def test_channels_as_one_layer(converted, tmp_path):
    """One layer of 2 uint8 channels holds what webknossos writes as two layers."""
    case = converted("imagej_hyperstack")
    convert(case.layout.source, tmp_path / "one", (1, 1, 1), downsample=False, channels_as_one_layer=True)
    ours, theirs = read_layers(tmp_path / "one"), read_layers(case.by_webknossos)
    assert list(ours) == ["color"] and ours["color"]["channels"] == 2
    assert ours["color"]["box"] == theirs["color__channel0"]["box"]
    np.testing.assert_array_equal(ours["color"]["data"], all_channels(theirs))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["rgba_file", "samples_file"])
def test_samples_where_webknossos_makes_z(converted, name):
    """RGBA and non-RGB samples: webknossos 4.3.3 reads the samples as z-slices of one
    channel; wkview reads them as channels (RGBA: the colour, alpha dropped)."""
    case = converted(name)
    theirs, ours = read_layers(case.by_webknossos), read_layers(case.by_wkview)
    samples = 4 if name == "rgba_file" else 2
    assert list(theirs) == ["color"] and theirs["color"]["box"][1][2] == samples
    np.testing.assert_array_equal(all_channels(ours), case.layout.expected)
    if name == "rgba_file":
        assert list(ours) == ["color"] and ours["color"]["element_class"] == "uint24"
    else:
        assert list(ours) == ["color__channel0", "color__channel1"]

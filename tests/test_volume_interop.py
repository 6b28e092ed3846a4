"""Chunked volumes, differentially: ``wkview convert`` beside ``webknossos convert --data-format
wkw`` 4.3.3 on the same Zarr v2/v3, OME-Zarr, N5, precomputed and MRC inputs (made in the test
with tensorstore and mrcfile, tests/volume_inputs.py); webknossos reads both results.

webknossos 4.3.3 reads a single-channel volume into one layer named after the input, and splits
channels into one layer each (``NAME__channel0``, ... or ``NAME__LABEL`` from OME ``omero``
labels). For single-channel inputs wkview is given the same layer name and the datasets must
match layer for layer. For multi-channel inputs the channels are compared in order (element
class, bounding box, voxels), whatever layers hold them.

Inputs webknossos refuses are listed in :func:`test_webknossos_refuses`; wkview's behaviour on
them is pinned in tests/test_volume_sources.py (HDF5 datasets, precomputed volumes that do not
start at 0).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

from tests import volume_inputs as vi
from tests.test_interop import quiet, wk  # webknossos 4.3.3, or this module skips as that one does

pytestmark = pytest.mark.interop

BIN = Path(sys.executable).parent
SHAPE = (37, 29, 19)  # (x, y, z), no multiple of any chunk size


def volume(channels: int, dtype: Any, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    if dt.kind == "f":
        return rng.normal(size=(channels, *SHAPE)).astype(dt)
    return rng.integers(0, np.iinfo(dt).max, size=(channels, *SHAPE), dtype=dt, endpoint=True)


def _run(tool: str, source: str, target: Path, *extra: str) -> subprocess.CompletedProcess:
    common = [source, str(target), "--voxel-size", "1,1,1", "--no-downsample", "--jobs", "1", *extra]
    if tool == "webknossos":
        cmd = [str(BIN / "webknossos"), "convert", *common, "--data-format", "wkw"]
    else:
        cmd = [str(BIN / "wkview"), "convert", *common, "--quiet"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


def _converted(tool: str, source: str, target: Path, *extra: str) -> Any:
    proc = _run(tool, source, target, *extra)
    assert proc.returncode == 0, f"{tool} convert failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    with quiet():
        return wk.Dataset.open(target)


def _layers(ds: Any) -> dict[str, tuple]:
    return {
        name: (layer.category, layer.dtype, layer.num_channels, layer.bounding_box)
        for name, layer in ds.layers.items()
    }


def _channels(ds: Any) -> list[tuple[Any, Any, np.ndarray]]:
    """(dtype, bounding box, (x, y, z) voxels) of every channel, layer by layer in name order."""
    out = []
    with quiet():
        for name in sorted(ds.layers):
            layer = ds.layers[name]
            data = layer.get_finest_mag().read(absolute_bounding_box=layer.bounding_box)
            data = data.reshape((layer.num_channels, *layer.bounding_box.size))
            out += [(layer.dtype, layer.bounding_box, data[c]) for c in range(layer.num_channels)]
    return out


Writer = Callable[[Path, np.ndarray], str]
SINGLE: dict[str, tuple[Writer, Any]] = {
    "zarr3": (lambda p, d: vi.write_zarr(p / "vol.zarr", d, 3), np.uint8),
    "zarr2": (lambda p, d: vi.write_zarr(p / "vol.zarr", d, 2), np.uint16),
    "ome-zarr3": (lambda p, d: vi.write_ome_zarr(p / "vol.ome.zarr", d, 3), np.uint8),
    "ome-zarr2": (lambda p, d: vi.write_ome_zarr(p / "vol.ome.zarr", d, 2), np.float32),
    "n5": (lambda p, d: vi.write_n5(p / "vol.n5", d), np.uint16),
    "n5-pyramid": (lambda p, d: vi.write_n5(p / "vol.n5", d, pyramid=True), np.uint8),
    "precomputed": (lambda p, d: vi.write_precomputed(p / "vol", d), np.uint8),
    "mrc": (lambda p, d: vi.write_mrc(p / "vol.mrc", d), np.int16),
}


@pytest.mark.parametrize("kind", list(SINGLE))
def test_single_channel_volumes_convert_as_webknossos_does(tmp_path, kind):
    writer, dtype = SINGLE[kind]
    data = volume(1, dtype)
    source = writer(tmp_path, data)
    theirs = _converted("webknossos", source, tmp_path / "wk")
    (name,) = theirs.layers  # one layer, named after the input
    ours = _converted("wkview", source, tmp_path / "wkview", "--layer-name", name)
    assert _layers(ours) == _layers(theirs)
    (mine,), (reference,) = _channels(ours), _channels(theirs)
    assert mine[:2] == reference[:2]
    np.testing.assert_array_equal(mine[2], reference[2])
    np.testing.assert_array_equal(mine[2], data[0])


MULTI: dict[str, tuple[Writer, Any, int]] = {
    "zarr2": (lambda p, d: vi.write_zarr(p / "vol.zarr", d, 2), np.uint16, 3),
    "ome-zarr3-labels": (lambda p, d: vi.write_ome_zarr(p / "vol.ome.zarr", d, 3, ["dapi", "gfp"]), np.uint8, 2),
    "n5": (lambda p, d: vi.write_n5(p / "vol.n5", d), np.uint8, 2),
    "precomputed": (lambda p, d: vi.write_precomputed(p / "vol", d), np.uint16, 3),
}


@pytest.mark.parametrize("kind", list(MULTI))
def test_channels_convert_as_webknossos_does(tmp_path, kind):
    writer, dtype, channels = MULTI[kind]
    data = volume(channels, dtype)
    source = writer(tmp_path, data)
    theirs = _channels(_converted("webknossos", source, tmp_path / "wk"))
    ours = _channels(_converted("wkview", source, tmp_path / "wkview"))
    assert len(theirs) == len(ours) == channels
    for c, (mine, reference) in enumerate(zip(ours, theirs)):
        assert mine[:2] == reference[:2], f"channel {c}"
        np.testing.assert_array_equal(mine[2], reference[2], err_msg=f"channel {c}")
        np.testing.assert_array_equal(mine[2], data[c], err_msg=f"channel {c}")


def test_webknossos_refuses(tmp_path):
    """The inputs whose wkview conversion only tests/test_volume_sources.py can pin."""
    data = volume(1, np.uint8)
    h5 = vi.write_hdf5(tmp_path / "vol.h5", data).split(":")[0]
    assert _run("webknossos", h5, tmp_path / "wk-h5").returncode != 0
    shifted = vi.write_precomputed(tmp_path / "shifted", data, voxel_offset=(3, 4, 5))
    assert _run("webknossos", shifted, tmp_path / "wk-shifted").returncode != 0
    # wkview converts both
    for source, axis in ((h5, []), (shifted, [])):
        ours = _converted("wkview", source, tmp_path / f"wkview-{Path(source).name}", *axis)
        (channel,) = _channels(ours)
        np.testing.assert_array_equal(channel[2], data[0])

"""``wkview convert`` and ``wkview downsample`` on the real engines, through the console script.

Run by ``WKVIEW_ENGINES=1 ./run.sh test`` (CI), which starts a one-node Slurm and a local
Dask cluster; elsewhere these tests skip (or fail with ``WKVIEW_REQUIRE_ENGINES=1``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

from tests.engines.conftest import _dask_reachable, _slurm_reachable, _unavailable
from wkview import Dataset
from wkview.sample import em_like

WKVIEW = str(Path(sys.executable).with_name("wkview"))


def _engine_flags(engine: str) -> list[str]:
    if engine == "dask":
        address = os.environ.get("DASK_ADDRESS", "")
        why = _dask_reachable(address) if address else "DASK_ADDRESS is not set"
        if why is not None:
            _unavailable(why)
        return ["--distribution-strategy", "dask", "--dask-address", address]
    why = _slurm_reachable()
    if why is not None:
        _unavailable(why)
    return ["--distribution-strategy", "slurm", "--job-resources", "mem=300M"]


def _run(*args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([WKVIEW, *args], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"stdout: {proc.stdout}\nstderr: {proc.stderr}"
    return proc


@pytest.mark.parametrize("engine", [pytest.param("dask", marks=pytest.mark.dask), pytest.param("slurm", marks=pytest.mark.slurm)])
def test_convert_and_downsample_on_engine(tmp_path, engine):
    flags = _engine_flags(engine)
    vol = em_like((64, 48, 40), seed=3)
    (tmp_path / "stack").mkdir()
    for z in range(vol.shape[2]):
        tifffile.imwrite(tmp_path / "stack" / f"{z}.tif", np.ascontiguousarray(vol[:, :, z].T))
    # files of 16^3 voxels: 3 z-batches of mag 1 on the engine, then the pyramid
    small = ["--block-len", "8", "--file-len", "2", "--quiet"]
    _run("convert", str(tmp_path / "stack"), str(tmp_path / "ds"), "--voxel-size", "1,1,1", *small, *flags,
         "--max-mag", "2")
    layer = Dataset(tmp_path / "ds").get_layer("color")
    assert np.array_equal(layer.get_mag(1).get_view().read()[0], vol)
    assert sorted(layer.mags) == [(1, 1, 1), (2, 2, 2)]

    _run("downsample", str(tmp_path / "ds"), "--max-mag", "4", "--quiet", *flags)
    _run("convert", str(tmp_path / "stack"), str(tmp_path / "local"), "--voxel-size", "1,1,1", *small,
         "--distribution-strategy", "sequential", "--max-mag", "4")
    _run("check-equality", str(tmp_path / "ds"), str(tmp_path / "local"), "--distribution-strategy", "sequential")


@pytest.mark.parametrize("engine", [pytest.param("dask", marks=pytest.mark.dask), pytest.param("slurm", marks=pytest.mark.slurm)])
def test_lz4_convert_then_compress_to_lz4hc_on_engine(tmp_path, engine):
    """The throughput option on the engines: LZ4 batches, then the LZ4 -> LZ4HC re-encoding
    jobs (each opens the mag itself on the worker)."""
    flags = _engine_flags(engine)
    vol = em_like((48, 32, 40), seed=4)
    np.save(tmp_path / "vol.npy", vol)
    small = ["--block-len", "8", "--file-len", "2", "--quiet"]
    _run("convert", str(tmp_path / "vol.npy"), str(tmp_path / "ds"), "--voxel-size", "1,1,1", "--compression", "lz4",
         *small, *flags, "--max-mag", "2")
    files = sorted((tmp_path / "ds" / "color").rglob("x*.wkw"))
    assert files and {f.read_bytes()[5] for f in files} == {2}
    _run("compress", str(tmp_path / "ds"), *flags)
    assert {f.read_bytes()[5] for f in files} == {3}
    assert np.array_equal(Dataset(tmp_path / "ds").get_layer("color").get_mag(1).get_view().read()[0], vol)


@pytest.mark.parametrize("engine", [pytest.param("dask", marks=pytest.mark.dask), pytest.param("slurm", marks=pytest.mark.slurm)])
def test_convert_ome_tiff_channels_on_engine(tmp_path, engine):
    """A multi-channel OME-TIFF: the jobs open the TIFF themselves and write one layer per channel."""
    flags = _engine_flags(engine)
    stack = np.random.default_rng(4).integers(0, 255, (2, 40, 48, 64), dtype=np.uint8)  # c, z, y, x
    tifffile.imwrite(tmp_path / "cells.ome.tif", stack, metadata={"axes": "CZYX", "Channel": {"Name": ["DAPI", "GFP"]}})
    small = ["--block-len", "8", "--file-len", "2", "--quiet", "--max-mag", "2"]
    _run("convert", str(tmp_path / "cells.ome.tif"), str(tmp_path / "ds"), "--voxel-size", "1,1,1", *small, *flags)
    ds = Dataset(tmp_path / "ds")
    assert sorted(ds.layers) == ["color__DAPI", "color__GFP"]
    for c, name in enumerate(["color__DAPI", "color__GFP"]):
        assert np.array_equal(ds.get_layer(name).get_mag(1).read()[0], stack[c].transpose(2, 1, 0))
    _run("convert", str(tmp_path / "cells.ome.tif"), str(tmp_path / "local"), "--voxel-size", "1,1,1", *small,
         "--distribution-strategy", "sequential")
    _run("check-equality", str(tmp_path / "ds"), str(tmp_path / "local"), "--distribution-strategy", "sequential")

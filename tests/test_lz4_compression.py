"""The throughput option: LZ4 (block type 2) from convert, convert-raw and compress, read by
libwkw and webknossos 4.3.3 with the same voxels; compress re-encodes LZ4 into LZ4HC in place.
And ``info``'s compression ratio over the voxels of the bounding box."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import wkw

from wkview import Dataset
from wkview.compression import needs_compressing
from wkview.convert import convert
from wkview.errors import DatasetError
from wkview.sample import em_like
from wkview.tools import compress_dataset, dataset_info

from .conftest import LZ4, LZ4HC, RAW
from .test_cli import SEQ, SMALL, run, write_tiff_stack

SHAPE = (40, 36, 20)


def _files(path: Path, mag: str = "1") -> list[Path]:
    return sorted((path / "color" / mag).rglob("x*.wkw"))


def _block_types(path: Path, mag: str = "1") -> set[int]:
    return {f.read_bytes()[5] for f in _files(path, mag)} | {(path / "color" / mag / "header.wkw").read_bytes()[5]}


def _libwkw_read(path: Path, mag: str, shape: tuple[int, int, int]) -> np.ndarray:
    with wkw.Dataset.open(str(path / "color" / mag)) as d:
        return d.read((0, 0, 0), shape)


@pytest.fixture
def lz4_dataset(tmp_path):
    vol = em_like(SHAPE, seed=3)
    path = tmp_path / "ds"
    convert(vol_source(tmp_path, vol), path, (1, 1, 1), compression="lz4", block_len=8, file_len=2, max_mag=2)
    return path, vol


def vol_source(tmp_path: Path, vol: np.ndarray) -> Path:
    np.save(tmp_path / "vol.npy", vol)
    return tmp_path / "vol.npy"


def test_convert_lz4_is_read_by_libwkw_with_the_same_voxels(lz4_dataset):
    path, vol = lz4_dataset
    assert _block_types(path, "1") == {LZ4} and _block_types(path, "2") == {LZ4}
    assert np.array_equal(_libwkw_read(path, "1", SHAPE)[0], vol)
    ours = Dataset(path).get_layer("color").get_mag(2).read()
    assert np.array_equal(_libwkw_read(path, "2", (20, 18, 10)), ours)


@pytest.mark.interop
def test_convert_lz4_is_read_by_webknossos(lz4_dataset):
    os.environ.setdefault("WEBKNOSSOS_SKIP_VERSION_CHECK", "True")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wk = pytest.importorskip("webknossos")
        from webknossos.version import __version__

        assert __version__ == "4.3.3"
        path, vol = lz4_dataset
        layer = wk.Dataset.open(path).get_layer("color")
        got = layer.get_mag(1).read(absolute_offset=(0, 0, 0), size=SHAPE)
        coarse = layer.get_mag(2).read(absolute_offset=(0, 0, 0), size=SHAPE)
    assert np.array_equal(got[0], vol)
    assert np.array_equal(coarse, Dataset(path).get_layer("color").get_mag(2).read())


def test_compress_reencodes_lz4_to_lz4hc_in_place(lz4_dataset):
    path, vol = lz4_dataset
    before = {m: Dataset(path).get_layer("color").get_mag(m).read() for m in ("1", "2")}
    results = compress_dataset(path)
    assert sorted(r.mag for r in results) == ["1", "2"]
    assert all(r.files > 0 and r.bytes_after < r.bytes_before for r in results)
    for mag in ("1", "2"):
        assert _block_types(path, mag) == {LZ4HC}
        assert np.array_equal(Dataset(path).get_layer("color").get_mag(mag).read(), before[mag])
    assert np.array_equal(_libwkw_read(path, "1", SHAPE)[0], vol)
    assert compress_dataset(path) == []  # LZ4HC stays as it is


def test_compress_to_lz4_leaves_lz4hc_alone_and_compresses_raw(tmp_path):
    vol = em_like(SHAPE, seed=4)
    convert(vol_source(tmp_path, vol), tmp_path / "raw", (1, 1, 1), compress=False, block_len=8, file_len=2,
            downsample=False)
    (result,) = compress_dataset(tmp_path / "raw", compression="lz4")
    assert result.files == len(_files(tmp_path / "raw")) and _block_types(tmp_path / "raw") == {LZ4}
    assert np.array_equal(_libwkw_read(tmp_path / "raw", "1", SHAPE)[0], vol)
    assert compress_dataset(tmp_path / "raw", compression="lz4") == []
    assert not needs_compressing(LZ4HC, "lz4") and needs_compressing(RAW, "lz4") and needs_compressing(LZ4, "lz4hc")


def test_interrupted_lz4_to_lz4hc_mixes_files_and_a_rerun_finishes(lz4_dataset, tmp_path):
    # what a killed run leaves: some files LZ4HC already, header.wkw still LZ4
    path, vol = lz4_dataset
    mag = Dataset(path).get_layer("color").get_mag(1)
    first = _files(path)[0]
    header = wkw.Header(np.uint8, block_len=8, file_len=2, block_type=LZ4HC)
    with wkw.Dataset.create(str(tmp_path / "elsewhere"), header) as d:
        d.write((0, 0, 0), mag.read((0, 0, 0), (16, 16, 16)))
    first.write_bytes((tmp_path / "elsewhere" / "z0" / "y0" / "x0.wkw").read_bytes())
    assert first == path / "color" / "1" / "z0" / "y0" / "x0.wkw"
    assert np.array_equal(_libwkw_read(path, "1", SHAPE)[0], vol)  # libwkw reads the mixed mag
    (result, _) = compress_dataset(path)
    assert result.files == len(_files(path))
    assert _block_types(path) == {LZ4HC}
    assert np.array_equal(Dataset(path).get_layer("color").get_mag(1).read()[0], vol)


def test_lz4_takes_no_level_and_unknown_compressions_are_refused(tmp_path):
    src = vol_source(tmp_path, em_like((8, 8, 8)))
    with pytest.raises(DatasetError, match="no level"):
        convert(src, tmp_path / "a", (1, 1, 1), compression="lz4", compression_level=9)
    with pytest.raises(DatasetError, match="compression must be one of"):
        convert(src, tmp_path / "b", (1, 1, 1), compression="zstd")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_cli_convert_and_convert_raw_lz4_then_compress(tmp_path):
    vol = em_like(SHAPE, seed=5)
    write_tiff_stack(tmp_path / "s", vol)
    run("convert", str(tmp_path / "s"), str(tmp_path / "ds"), "--voxel-size", "1,1,1", "--compression", "lz4",
        *SMALL, *SEQ, "--quiet", "--max-mag", "2")
    assert _block_types(tmp_path / "ds") == {LZ4}
    np.asfortranarray(vol).T.tofile(tmp_path / "vol.raw")  # x fastest
    run("convert-raw", str(tmp_path / "vol.raw"), str(tmp_path / "raw"), "--shape", "40,36,20", "--voxel-size",
        "1,1,1", "--compression", "lz4", *SMALL, *SEQ, "--no-downsample")
    assert _block_types(tmp_path / "raw") == {LZ4}
    assert np.array_equal(_libwkw_read(tmp_path / "raw", "1", SHAPE)[0], vol)
    proc = run("compress", str(tmp_path / "ds"), *SEQ)
    assert "color/1" in proc.stdout and "color/2" in proc.stdout
    assert _block_types(tmp_path / "ds") == {LZ4HC}
    assert np.array_equal(_libwkw_read(tmp_path / "ds", "1", SHAPE)[0], vol)
    proc = run("convert", str(tmp_path / "s"), str(tmp_path / "bad"), "--voxel-size", "1,1,1", "--compression", "lz4",
               "--compression-level", "9", *SEQ, check=2)
    assert "no level" in proc.stderr and not (tmp_path / "bad").exists()


# -- info: the ratio over the box's voxels -----------------------------------------------------


def test_info_ratio_is_over_the_bounding_box_not_the_file_grid(tmp_path):
    # 20x12x6 voxels in one file of 64^3 voxels: over the file grid the ratio would count
    # 64^3 voxels (mostly zeros that compress to nothing)
    vol = em_like((20, 12, 6), seed=6)
    path = tmp_path / "ds"
    convert(vol_source(tmp_path, vol), path, (1, 1, 1), block_len=16, file_len=4, downsample=False)
    (mag,) = dataset_info(path)["layers"][0]["mags"]
    on_disk = sum(f.stat().st_size for f in _files(path))
    assert mag["files"] == 1 and mag["bytes_on_disk"] == on_disk
    assert mag["bytes_in_bounding_box"] == vol.size
    assert mag["compression_ratio"] == round(vol.size / on_disk, 3)
    assert mag["stored_blocks_ratio"] == round(64**3 / on_disk, 3)
    assert mag["stored_blocks_ratio"] > 10 * mag["compression_ratio"]
    text = run("info", str(path)).stdout
    assert f"ratio {vol.size / on_disk:.2f}x over the box's voxels" in text
    assert json.loads(run("info", str(path), "--json").stdout)["layers"][0]["mags"][0] == mag

"""wkview.tools directly (what the ``wkview`` commands call), on real WKW datasets written
in tmp_path: every public function, its edge cases and its errors; NumPy is the oracle.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile

from wkview import BoundingBox, Dataset, Mag, get_executor
from wkview.errors import DatasetError, NotADatasetError, ShapeError
from wkview.pyramid import building_path
from wkview.tools import (
    CompressResult,
    Damage,
    Difference,
    check_equality,
    compress_dataset,
    dataset_info,
    downsample_dataset,
    export_region,
    open_dataset,
    verify_dataset,
)

from .conftest import LZ4, LZ4HC, RAW

OFFSET = (3, 0, 5)  # not on the file grid: partial files at the borders
SHAPE = (40, 36, 20)


def make_dataset(
    path: Path, data: np.ndarray | None = None, *, dtype: str = "uint8", compress: bool = False, seed: int = 0
) -> tuple[Dataset, np.ndarray]:
    """A dataset with one color layer of ``data`` (c, x, y, z) at OFFSET in mag 1: 16^3-voxel files."""
    if data is None:
        rng = np.random.default_rng(seed)
        data = rng.integers(1, 255, (1, *SHAPE)).astype(dtype)
    ds = Dataset.create(path, scale=(11.24, 11.24, 25.0))
    layer = ds.add_layer("color", "color", dtype_per_channel=data.dtype, num_channels=data.shape[0])
    layer.add_mag(1, block_len=8, file_len=2, compress=compress).write(data, OFFSET)
    return ds, data


@pytest.fixture
def dataset(tmp_path) -> tuple[Path, np.ndarray]:
    _, data = make_dataset(tmp_path / "ds")
    return tmp_path / "ds", data


def _data_files(mag_folder: Path) -> list[Path]:
    return sorted(p for p in mag_folder.rglob("*.wkw") if p.name != "header.wkw" and not p.name.startswith("."))


# -- open_dataset -------------------------------------------------------------------------------


def test_open_dataset_takes_a_path_or_a_dataset(dataset):
    path, _ = dataset
    ds = Dataset(path)
    assert open_dataset(ds) is ds
    for given in (path, str(path)):
        opened = open_dataset(given)
        assert isinstance(opened, Dataset) and opened.path == path and set(opened.layers) == {"color"}


def test_open_dataset_refuses_a_folder_without_properties(tmp_path):
    with pytest.raises(NotADatasetError, match="is not a WKW dataset"):
        open_dataset(tmp_path)


# -- downsample_dataset -------------------------------------------------------------------------


def test_downsample_builds_the_default_chain_once_and_keeps_what_exists(dataset):
    path, data = dataset
    made = downsample_dataset(path, compress=False)
    # scale (11.24, 11.24, 25): the first step halves x and y only; x, y to about 100 voxels,
    # at least mag 4, as webknossos' command line
    assert made == {"color": [Mag((2, 2, 1)), Mag((4, 4, 2)), Mag(4)]}
    layer = Dataset(path).get_layer("color")
    assert sorted(layer.mags) == [Mag(1), Mag((2, 2, 1)), Mag((4, 4, 2)), Mag(4)]
    # mag 2-2-1 holds the 2x2x1 medians of mag 1 (the default mode of color layers, as
    # webknossos'), rounded half to even
    box = layer.bounding_box.align_with_mag(Mag((2, 2, 1)), ceil=True).in_mag(Mag((2, 2, 1)))
    got = layer.get_mag("2-2-1").read(tuple(box.topleft), tuple(box.size))
    assert tuple(box.topleft) == (1, 0, 5) and got.shape == (1, 21, 18, 20)
    full = np.zeros((1, 44, 36, 25), np.float64)  # what mag 1 stores from x = y = z = 0 on
    full[:, 3:43, :, 5:25] = data
    cells = full.reshape(1, 22, 2, 18, 2, 25).transpose(0, 1, 3, 5, 2, 4).reshape(1, 22, 18, 25, 4)
    medians = np.median(cells, axis=-1)[:, 1:22, :, 5:25]
    np.testing.assert_array_equal(got, np.rint(medians).astype(np.uint8))
    # a rerun finds every mag there and makes none
    assert downsample_dataset(path) == {"color": []}


def test_downsample_from_and_to_given_mags_of_one_layer(dataset):
    path, _ = dataset
    ds = Dataset(path)
    seg = ds.add_layer("seg", "segmentation", dtype_per_layer="uint32", largest_segment_id=5)
    seg.add_mag(1, block_len=8, file_len=2).write(np.full((1, 16, 16, 16), 5, np.uint32))
    made = downsample_dataset(path, layer="seg", max_mag=2, sampling_mode="isotropic", compress=False)
    assert made == {"seg": [Mag(2)]}  # the color layer is left alone
    assert sorted(Dataset(path).get_layer("color").mags) == [Mag(1)]
    assert np.all(Dataset(path).get_layer("seg").get_mag(2).read((0, 0, 0), (8, 8, 8)) == 5)
    made = downsample_dataset(path, layer="seg", from_mag=2, max_mag=4, sampling_mode="isotropic")
    assert made == {"seg": [Mag(4)]}


def test_downsample_refuses_a_from_mag_the_layer_lacks(dataset):
    path, _ = dataset
    # also when the chain from it is empty: the mag named does not exist
    for max_mag in (4, 16):
        with pytest.raises(DatasetError, match="8"):
            downsample_dataset(path, from_mag=8, max_mag=max_mag)
    assert sorted(Dataset(path).get_layer("color").mags) == [Mag(1)]


def test_downsample_refuses_an_unknown_layer(dataset):
    with pytest.raises(DatasetError):
        downsample_dataset(dataset[0], layer="nope")


# -- compress_dataset ---------------------------------------------------------------------------


def test_compress_in_place_keeps_the_voxels_and_skips_what_is_compressed(dataset):
    path, data = dataset
    files_before = _data_files(path / "color" / "1")
    size_before = sum(f.stat().st_size for f in files_before)
    results = compress_dataset(path)
    assert results == [CompressResult("color", "1", len(files_before), size_before, results[0].bytes_after)]
    assert 0 < results[0].bytes_after == sum(f.stat().st_size for f in _data_files(path / "color" / "1"))
    assert Dataset(path).get_layer("color").get_mag(1).header.block_type == LZ4HC
    np.testing.assert_array_equal(Dataset(path).get_layer("color").get_mag(1).read(OFFSET, SHAPE), data)
    assert compress_dataset(path) == []  # compressed as asked already


def test_compress_lz4_then_lz4hc_and_one_mag_only(tmp_path):
    ds, data = make_dataset(tmp_path / "ds")
    ds.get_layer("color").add_mag(2, block_len=8, file_len=2).write(data[:, ::2, ::2, ::2], (2, 0, 3))
    (first,) = compress_dataset(ds, mag=2, compression="lz4")
    assert (first.layer, first.mag) == ("color", "2")
    layer = Dataset(tmp_path / "ds").get_layer("color")
    assert layer.get_mag(2).header.block_type == LZ4 and layer.get_mag(1).header.block_type == RAW
    # lz4hc re-encodes the LZ4 mag and compresses the raw one; lz4 would leave LZ4 alone
    assert [r.mag for r in compress_dataset(tmp_path / "ds", compression="lz4")] == ["1"]
    assert [r.mag for r in compress_dataset(tmp_path / "ds", level=9)] == ["1", "2"]
    layer = Dataset(tmp_path / "ds").get_layer("color")
    np.testing.assert_array_equal(layer.get_mag(1).read(OFFSET, SHAPE), data)
    np.testing.assert_array_equal(layer.get_mag(2).read((2, 0, 3), (20, 18, 10)), data[:, ::2, ::2, ::2])


@pytest.mark.parametrize(
    "kwargs, text",
    [
        ({"compression": "zstd"}, "compression must be one of"),
        ({"compression": "lz4", "level": 3}, "has no level"),
        ({"level": 13}, "from 1 to 12"),
    ],
)
def test_compress_refuses_bad_settings_before_touching_a_file(dataset, kwargs, text):
    path, _ = dataset
    before = {f: f.read_bytes() for f in _data_files(path / "color" / "1")}
    with pytest.raises(ValueError, match=text):  # DatasetError for the names; the level check's own ValueError
        compress_dataset(path, **kwargs)
    assert {f: f.read_bytes() for f in _data_files(path / "color" / "1")} == before


# -- check_equality -----------------------------------------------------------------------------


def test_equal_datasets_have_no_difference(tmp_path):
    make_dataset(tmp_path / "a", seed=1)
    make_dataset(tmp_path / "b", seed=1, compress=True)  # the same voxels, stored otherwise
    assert check_equality(tmp_path / "a", tmp_path / "b") is None
    assert check_equality(Dataset(tmp_path / "a"), tmp_path / "b", layer="color") is None


def test_the_first_difference_in_z_y_x_order_with_both_values(tmp_path):
    _, data = make_dataset(tmp_path / "a")
    changed = data.copy()
    changed[0, 30, 2, 7] += 1  # later in x and in its files, earlier in z: this one is first
    changed[0, 1, 30, 9] += 1
    changed[0, 35, 2, 7] += 1  # the same z and y, later in x
    make_dataset(tmp_path / "b", changed)
    found = check_equality(tmp_path / "a", tmp_path / "b")
    assert isinstance(found, Difference) and found.what == "voxels"
    position = (OFFSET[0] + 30, OFFSET[1] + 2, OFFSET[2] + 7)
    assert (found.layer, found.mag, found.position) == ("color", "1", position)
    assert (found.value_a, found.value_b) == ([int(data[0, 30, 2, 7])], [int(changed[0, 30, 2, 7])])
    assert str(found) == found.detail and f"first difference at {position}" in found.detail
    # a box that leaves both differences out compares equal
    assert check_equality(tmp_path / "a", tmp_path / "b", bbox=BoundingBox((0, 10, 0), (50, 10, 30))) is None


def test_nan_equals_nan_in_float_layers_and_channels_are_listed(tmp_path):
    data = np.random.default_rng(2).random((2, *SHAPE)).astype(np.float32)
    data[:, 5, 5, 5] = np.nan
    make_dataset(tmp_path / "a", data)
    make_dataset(tmp_path / "b", data.copy())
    assert check_equality(tmp_path / "a", tmp_path / "b") is None
    other = data.copy()
    other[1, 6, 5, 5] = np.nan
    make_dataset(tmp_path / "c", other)
    found = check_equality(tmp_path / "a", tmp_path / "c")
    assert found.position == (9, 5, 10) and found.value_a[0] == found.value_b[0]
    assert np.isnan(found.value_b[1]) and not np.isnan(found.value_a[1])
    assert "(" in found.detail  # two channels: a tuple of values


def test_differences_in_layers_dtypes_boxes_and_mags(tmp_path):
    make_dataset(tmp_path / "a")
    ds_b, data = make_dataset(tmp_path / "b")
    ds_b.add_layer("more", "color")
    assert check_equality(tmp_path / "a", tmp_path / "b").what == "layers"
    assert check_equality(tmp_path / "a", tmp_path / "b", layer="color") is None

    make_dataset(tmp_path / "c", data.astype(np.uint16))
    found = check_equality(tmp_path / "a", tmp_path / "c")
    assert found.what == "layer" and "uint8 vs 1 x uint16" in found.detail

    make_dataset(tmp_path / "d", data[:, :39])
    found = check_equality(tmp_path / "a", tmp_path / "d")
    assert found.what == "bounding box" and found.layer == "color"

    ds_e, _ = make_dataset(tmp_path / "e", data)
    ds_e.get_layer("color").add_mag(2, block_len=8, file_len=2)
    found = check_equality(tmp_path / "a", tmp_path / "e")
    assert found.what == "mags" and "Mag(2)" in found.detail


def test_check_equality_of_a_missing_layer_or_dataset(dataset, tmp_path):
    path, _ = dataset
    with pytest.raises(DatasetError, match="'nope' does not exist"):
        check_equality(path, path, layer="nope")
    with pytest.raises(NotADatasetError):
        check_equality(path, tmp_path / "nothing")


# -- export_region ------------------------------------------------------------------------------


def test_export_tiff_one_image_per_z_numbered_by_absolute_z(dataset, tmp_path):
    path, data = dataset
    files = export_region(path, tmp_path / "out")
    assert [f.name for f in files] == [f"{z:04d}.tif" for z in range(OFFSET[2], OFFSET[2] + SHAPE[2])]
    assert sorted((tmp_path / "out").iterdir()) == files
    for k, file in enumerate(files):
        np.testing.assert_array_equal(tifffile.imread(file), data[0, :, :, k].T)  # rows are y


def test_export_npy_of_a_box_in_mag_2(dataset, tmp_path):
    path, data = dataset
    ds = Dataset(path)
    ds.get_layer("color").add_mag(2, block_len=8, file_len=2).write(data[:, ::2, ::2, ::2], (2, 0, 3))
    box = BoundingBox((4, 2, 6), (12, 20, 8))  # mag-1 voxels: x 2..8, y 1..11, z 3..7 in mag 2
    (file,) = export_region(ds, tmp_path / "sub" / "part.npy", mag=2, bbox=box, format="npy")
    assert file == tmp_path / "sub" / "part.npy"
    got = np.load(file)
    assert got.shape == (6, 10, 4)
    np.testing.assert_array_equal(got, data[0, ::2, ::2, ::2][0:6, 1:11, 0:4])


def test_export_npy_into_a_folder_names_the_file_after_the_layer(tmp_path):
    data = np.random.default_rng(3).integers(0, 255, (3, *SHAPE), dtype=np.uint8)
    make_dataset(tmp_path / "ds", data)
    (tmp_path / "out").mkdir()
    (file,) = export_region(tmp_path / "ds", tmp_path / "out", format="npy")
    assert file == tmp_path / "out" / "color.npy"
    np.testing.assert_array_equal(np.load(file), data)  # (channels, x, y, z)


def test_export_rgb_tiffs(tmp_path):
    data = np.random.default_rng(4).integers(0, 255, (3, 16, 12, 3), dtype=np.uint8)
    make_dataset(tmp_path / "ds", data)
    files = export_region(tmp_path / "ds", tmp_path / "out", bbox=BoundingBox(OFFSET, (16, 12, 3)))
    assert len(files) == 3
    np.testing.assert_array_equal(tifffile.imread(files[1]), data[:, :, :, 1].transpose(2, 1, 0))


def test_export_errors(dataset, tmp_path):
    path, _ = dataset
    with pytest.raises(DatasetError, match="format must be 'tiff' or 'npy', got 'png'"):
        export_region(path, tmp_path / "x", format="png")
    with pytest.raises(ShapeError, match="empty"):
        export_region(path, tmp_path / "x", bbox=BoundingBox((0, 0, 0), (0, 4, 4)))
    with pytest.raises(DatasetError):
        export_region(path, tmp_path / "x", mag=4)  # no such mag
    Dataset(path).add_layer("seg", "segmentation", dtype_per_layer="uint32", largest_segment_id=1)
    with pytest.raises(DatasetError, match="has 2 WKW layers .*color, seg.*: name one"):
        export_region(path, tmp_path / "x")
    assert not (tmp_path / "x").exists()  # nothing written by a refused export


# -- dataset_info -------------------------------------------------------------------------------


def test_info_lists_layers_mags_and_the_ratio_over_the_bounding_box(tmp_path):
    ds, _ = make_dataset(tmp_path / "ds", compress=True)
    seg = ds.add_layer("seg", "segmentation", dtype_per_layer="uint32", largest_segment_id=9)
    seg.add_mag(1, block_len=8, file_len=2)  # a mag without data files
    info = dataset_info(tmp_path / "ds")
    json.dumps(info)  # plain data
    assert (info["path"], info["name"], info["scale"]) == (str(tmp_path / "ds"), "ds", [11.24, 11.24, 25.0])
    color, segmentation = info["layers"]
    assert color["bounding_box"] == {"topleft": list(OFFSET), "size": list(SHAPE)}
    assert (color["dtype_per_channel"], color["num_channels"], color["element_class"]) == ("uint8", 1, "uint8")
    (mag,) = color["mags"]
    files = _data_files(tmp_path / "ds" / "color" / "1")
    on_disk = sum(f.stat().st_size for f in files)
    assert mag["mag"] == "1" and mag["compression"] == "lz4hc" and mag["files"] == len(files) == 18
    assert mag["bytes_on_disk"] == on_disk and mag["voxels"] == 40 * 36 * 20
    assert mag["bytes_in_bounding_box"] == 40 * 36 * 20 and mag["bytes_decoded"] == 18 * 16**3
    assert mag["compression_ratio"] == round(40 * 36 * 20 / on_disk, 3)
    assert mag["stored_blocks_ratio"] == round(18 * 16**3 / on_disk, 3)
    assert segmentation["largest_segment_id"] == 9 and segmentation["element_class"] == "uint32"
    (empty,) = segmentation["mags"]
    assert empty["files"] == 0 and empty["compression_ratio"] is None and empty["stored_blocks_ratio"] is None
    assert "largest_segment_id" not in color


# -- verify_dataset -----------------------------------------------------------------------------


def test_verify_finds_nothing_in_a_sound_dataset(tmp_path):
    make_dataset(tmp_path / "raw")
    make_dataset(tmp_path / "lz4hc", compress=True)
    assert verify_dataset(tmp_path / "raw") == [] and verify_dataset(tmp_path / "lz4hc", repair=True) == []


def test_verify_reports_damage_and_leftovers_and_repair_removes_only_leftovers(tmp_path):
    make_dataset(tmp_path / "ds", compress=True)
    mag = tmp_path / "ds" / "color" / "1"
    files = _data_files(mag)
    cut, flipped = files[0], files[5]
    cut.write_bytes(cut.read_bytes()[:-10])  # truncated
    raw = bytearray(flipped.read_bytes())
    half = len(raw) // 2
    raw[half:] = np.random.default_rng(0).integers(0, 256, len(raw) - half, dtype=np.uint8).tobytes()
    flipped.write_bytes(bytes(raw))  # noise over the second half of its LZ4HC blocks
    temp = cut.with_name(f".{cut.name}.ab12cd.tmp")  # what a killed writer leaves
    temp.write_bytes(b"half a file")
    legacy = cut.with_name(f".{cut.name}.lock")  # earlier versions' per-file lock
    legacy.touch()
    building = building_path(tmp_path / "ds" / "color" / "2")
    building.mkdir()

    found = verify_dataset(tmp_path / "ds")
    assert all(isinstance(d, Damage) and not d.repaired for d in found)
    by_path = {Path(d.path): d.reason for d in found}
    assert set(by_path) == {cut, flipped, temp, building}
    assert by_path[temp] == "left by an interrupted write"
    assert by_path[building] == "folder of an interrupted mag build"
    assert str(found[0]) == f"{found[0].path}: {found[0].reason}"
    assert temp.exists() and legacy.exists() and building.exists()  # reporting changes nothing

    repaired = verify_dataset(tmp_path / "ds", repair=True)
    removed = {Path(d.path): d.reason for d in repaired if d.repaired}
    assert removed == {
        temp: "left by an interrupted write",
        legacy: "lock file of an earlier wkview version",
        building: "folder of an interrupted mag build",
    }
    assert all(str(d).endswith(" (removed)") for d in repaired if d.repaired)
    assert {Path(d.path) for d in repaired if not d.repaired} == {cut, flipped}  # data files are never removed
    assert cut.exists() and flipped.exists() and not temp.exists() and not legacy.exists()
    assert not building.exists()
    assert {Path(d.path) for d in verify_dataset(tmp_path / "ds")} == {cut, flipped}


# -- on worker processes -------------------------------------------------------------------------


def test_check_export_and_verify_on_worker_processes(tmp_path):
    """The jobs of check_equality, export_region and verify_dataset pickled to worker processes
    (one pool for all three: starting one costs more than the jobs)."""
    ds, data = make_dataset(tmp_path / "a")
    changed = data.copy()
    changed[0, 39, 35, 19] = 0  # the last voxel: in the last file
    make_dataset(tmp_path / "b", changed)
    seg = ds.add_layer("seg", "segmentation", dtype_per_layer="uint32", largest_segment_id=1)
    seg.add_mag(1, block_len=8, file_len=2).write(np.ones((1, 16, 16, 16), np.uint32))
    (bad,) = _data_files(tmp_path / "a" / "seg" / "1")
    bad.write_bytes(bad.read_bytes()[: -(16**3)])  # a raw file missing a block's worth
    with get_executor("processes", max_workers=2) as executor:
        found = check_equality(tmp_path / "a", tmp_path / "b", layer="color", executor=executor)
        assert found.position == (42, 35, 24)
        assert check_equality(tmp_path / "a", tmp_path / "a", layer="color", executor=executor) is None
        (file,) = export_region(tmp_path / "a", tmp_path / "v.npy", layer="color", format="npy", executor=executor)
        files = export_region(tmp_path / "a", tmp_path / "tifs", layer="color", executor=executor)
        assert verify_dataset(tmp_path / "a", layer="color", executor=executor) == []
        (damaged,) = verify_dataset(tmp_path / "a", executor=executor)
    np.testing.assert_array_equal(np.load(file), data[0])
    assert len(files) == SHAPE[2]
    for k in (0, SHAPE[2] - 1):
        np.testing.assert_array_equal(tifffile.imread(files[k]), data[0, :, :, k].T)
    assert Path(damaged.path) == bad and damaged.reason

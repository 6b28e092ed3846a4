"""The chunked and single-file volume readers (wkview.volume_sources): Zarr v2/v3, OME-Zarr,
N5, Neuroglancer precomputed, HDF5 and MRC, each written in the test with the format's own
library (tests/volume_inputs.py); NumPy is the oracle.
"""

from __future__ import annotations

import json
import pickle
import warnings
from pathlib import Path
from typing import Callable

import h5py
import numpy as np
import pytest

from tests import volume_inputs as vi
from tests.test_cli import run
from wkview import Dataset
from wkview.convert import convert
from wkview.errors import SourceError
from wkview.sources import open_source
from wkview.volume_sources import Hdf5Volume, MrcVolume, TensorStoreVolume

# (c, x, y, z): odd sizes, so the boxes below cut chunks of every writer anywhere
SHAPE = (21, 19, 13)
BOXES = [((0, 0, 0), SHAPE), ((3, 5, 2), (10, 9, 7)), ((20, 18, 12), (1, 1, 1)), ((7, 0, 11), (13, 19, 2))]


def volume(channels: int, dtype: type, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    if dt.kind == "f":
        return rng.normal(size=(channels, *SHAPE)).astype(dt)
    info = np.iinfo(dt)
    return rng.integers(info.min, info.max, size=(channels, *SHAPE), dtype=dt, endpoint=True)


Writer = Callable[[Path, np.ndarray], str]

# name -> (writer, channel counts it can hold)
WRITERS: dict[str, tuple[Writer, tuple[int, ...]]] = {
    "zarr3": (lambda p, d: vi.write_zarr(p / "v.zarr", d, 3), (1, 3)),
    "zarr2": (lambda p, d: vi.write_zarr(p / "v.zarr", d, 2), (1, 3)),
    "ome-zarr3": (lambda p, d: vi.write_ome_zarr(p / "v.ome.zarr", d, 3), (1, 2)),
    "ome-zarr2": (lambda p, d: vi.write_ome_zarr(p / "v.ome.zarr", d, 2), (1, 2)),
    "n5": (lambda p, d: vi.write_n5(p / "v.n5", d), (1, 2)),
    "n5-pyramid": (lambda p, d: vi.write_n5(p / "v.n5", d, pyramid=True), (1,)),
    "precomputed": (lambda p, d: vi.write_precomputed(p / "v", d), (1, 3)),
    "hdf5": (lambda p, d: vi.write_hdf5(p / "v.h5", d), (1, 2)),
    "mrc": (lambda p, d: vi.write_mrc(p / "v.mrc", d), (1,)),
}
MRC_DTYPES = (np.int8, np.int16, np.uint16, np.float32)

CASES = [
    pytest.param(name, channels, dtype, id=f"{name}-{channels}ch-{np.dtype(dtype).name}")
    for name, (_, channel_counts) in WRITERS.items()
    for channels in channel_counts
    for dtype in ((np.int16, np.float32) if name == "mrc" else (np.uint8, np.uint16, np.int32, np.float32, np.uint64))
    if channels == 1 or dtype in (np.uint8, np.float32)
]


@pytest.mark.parametrize("name, channels, dtype", CASES)
def test_boxes_read_what_the_format_stores(tmp_path, name, channels, dtype):
    data = volume(channels, dtype)
    spec = WRITERS[name][0](tmp_path, data)
    src = open_source(spec)
    assert (src.shape, src.num_channels, src.dtype) == (SHAPE, channels, np.dtype(dtype))
    src = pickle.loads(pickle.dumps(src))  # what a job carries to its worker
    for offset, size in BOXES:
        got = src.read(offset, size)
        (x, y, z), (sx, sy, sz) = offset, size
        expected = data[:, x : x + sx, y : y + sy, z : z + sz]
        assert got.dtype == expected.dtype and got.flags.f_contiguous
        np.testing.assert_array_equal(got, expected)


def test_mrc_byte_order_and_types(tmp_path):
    for dtype in MRC_DTYPES:
        data = volume(1, dtype)
        src = open_source(vi.write_mrc(tmp_path / f"{np.dtype(dtype).name}.rec", data))
        assert isinstance(src, MrcVolume) and src.dtype == np.dtype(dtype).newbyteorder("=")
        np.testing.assert_array_equal(src.read((1, 2, 3), (5, 6, 7)), data[:, 1:6, 2:8, 3:10])


def test_sources_name_their_axes(tmp_path):
    data = volume(2, np.uint8)
    kinds = {
        vi.write_zarr(tmp_path / "a.zarr", data): ("c", "z", "y", "x"),
        vi.write_precomputed(tmp_path / "b", data): ("x", "y", "z", "c"),
        vi.write_hdf5(tmp_path / "c.h5", data, order="xyz"): ("x", "y", "z", "c"),
        vi.write_mrc(tmp_path / "d.mrc", data[:1]): ("z", "y", "x"),
    }
    for spec, axes in kinds.items():
        src = open_source(spec, axis_order="xyz" if ".h5" in spec else None)
        assert src.axes == axes  # type: ignore[attr-defined]
        assert ",".join(axes) in src.describe()


def test_zarr3_dimension_names_place_the_axes(tmp_path):
    data = volume(2, np.uint16)
    # stored as (x, c, y, z): only the names say so
    array = np.ascontiguousarray(data.transpose(1, 0, 2, 3))
    import tensorstore as ts

    spec = {"driver": "zarr3", "kvstore": {"driver": "file", "path": str(tmp_path / "n.zarr")},
            "metadata": {"dimension_names": ["x", "channel", "y", "z"]}}
    ts.open(spec, create=True, dtype=array.dtype, shape=array.shape).result().write(array).result()
    src = open_source(tmp_path / "n.zarr")
    assert src.shape == SHAPE and src.num_channels == 2
    np.testing.assert_array_equal(src.read((2, 3, 4), (5, 6, 7)), data[:, 2:7, 3:9, 4:11])


def test_ome_zarr_reads_the_finest_level_and_channel_names(tmp_path):
    data = volume(3, np.uint8)
    src = open_source(vi.write_ome_zarr(tmp_path / "a.ome.zarr", data, 3, channel_names=["dapi", "gfp", "rfp"]))
    assert isinstance(src, TensorStoreVolume) and src.kind == "OME-Zarr"
    assert src.channel_names == ["dapi", "gfp", "rfp"] and src.num_channels == 3
    np.testing.assert_array_equal(src.read((0, 0, 0), SHAPE), data)
    v2 = open_source(vi.write_ome_zarr(tmp_path / "b.ome.zarr", data, 2, channel_names=["x", "y", "z"]))
    assert v2.channel_names == ["x", "y", "z"]  # type: ignore[attr-defined]
    assert open_source(vi.write_zarr(tmp_path / "plain.zarr", data)).channel_names is None  # type: ignore[attr-defined]


@pytest.mark.interop
def test_ome_zarr_as_webknossos_writes_it(tmp_path):
    """A zarr3 layer written by webknossos 4.3.3 itself: (c, x, y, z) arrays, named in its OME
    metadata, their shape rounded up to whole chunks (webknossos convert reads them whole too)."""
    wk = pytest.importorskip("webknossos")
    data = volume(1, np.uint8)
    ds = wk.Dataset(tmp_path / "wk", voxel_size=(1, 1, 1))
    layer = ds.add_layer("color", "color", dtype="uint8", data_format="zarr3")
    with warnings.catch_warnings():  # small chunks on purpose: webknossos advises 32^3 or 64^3
        warnings.simplefilter("ignore", UserWarning)
        mag = layer.add_mag(1, chunk_shape=8, shard_shape=8)
    mag.write(data, absolute_offset=(0, 0, 0), allow_resize=True)
    src = open_source(tmp_path / "wk" / "color")
    assert src.shape == (24, 24, 16) and src.kind == "OME-Zarr"  # type: ignore[attr-defined]
    whole = src.read((0, 0, 0), src.shape)
    np.testing.assert_array_equal(whole[:, :21, :19, :13], data)
    assert not whole[:, 21:].any() and not whole[:, :, 19:].any() and not whole[:, :, :, 13:].any()
    np.testing.assert_array_equal(src.read((4, 3, 2), (9, 8, 7)), data[:, 4:13, 3:11, 2:9])


def test_precomputed_origin_is_the_volume_start(tmp_path):
    data = volume(1, np.uint8)
    src = open_source(vi.write_precomputed(tmp_path / "p", data, voxel_offset=(5, 6, 7)))
    assert src.shape == SHAPE
    np.testing.assert_array_equal(src.read((0, 1, 2), (4, 5, 6)), data[:, 0:4, 1:6, 2:8])


def test_hdf5_dataset_choice(tmp_path):
    data = volume(1, np.uint16)
    path = tmp_path / "one.hdf5"
    vi.write_hdf5(path, data, dataset="volumes/raw", extra=True)
    # the only 3D dataset needs no path; the 1D one beside it does not count
    src = open_source(path)
    assert isinstance(src, Hdf5Volume) and src.dataset == "/volumes/raw"
    np.testing.assert_array_equal(src.read((1, 1, 1), (3, 4, 5)), data[:, 1:4, 1:5, 1:6])
    assert open_source(f"{path}:volumes/raw").dataset == "/volumes/raw"  # type: ignore[attr-defined]
    vi.write_hdf5(path, data, dataset="volumes/labels", compression=None)
    with pytest.raises(SourceError, match=r"one\.hdf5: holds 2 datasets.*/volumes/labels.*/volumes/raw"):
        open_source(path)
    with pytest.raises(SourceError, match="/volumes is a group"):
        open_source(f"{path}:/volumes")
    with pytest.raises(SourceError, match="/nothing is nothing"):
        open_source(f"{path}:/nothing")
    with pytest.raises(SourceError, match=r"one\.hdf5:/meta/ids: a dataset of shape \(5,\) is not a volume"):
        open_source(f"{path}:/meta/ids")


def test_hdf5_axis_order(tmp_path):
    data = volume(1, np.uint8)
    spec = vi.write_hdf5(tmp_path / "xyz.h5", data, order="xyz")
    # read as the default zyx, the axes come out reversed: the option is what fixes it
    assert open_source(spec).shape == SHAPE[::-1]
    src = open_source(spec, axis_order="xyz")
    np.testing.assert_array_equal(src.read((2, 3, 4), (11, 5, 3)), data[:, 2:13, 3:8, 4:7])
    with pytest.raises(SourceError, match="axis order must be one of zyx, xyz, got 'yxz'"):
        open_source(spec, axis_order="yxz")
    zarr = vi.write_zarr(tmp_path / "a.zarr", data)
    with pytest.raises(SourceError, match="a.zarr: --axis-order applies to HDF5 datasets only"):
        open_source(zarr, axis_order="zyx")


@pytest.mark.parametrize(
    "make, message",
    [
        pytest.param(lambda p: (p / "z.zarr").mkdir() or (p / "z.zarr" / "zarr.json").write_text("{broken"),
                     r"z\.zarr: cannot read zarr\.json", id="zarr3-json"),
        pytest.param(lambda p: (p / "z.zarr").mkdir() or (p / "z.zarr" / ".zarray").write_text('{"zarr_format": 2}'),
                     r"z\.zarr: not a readable Zarr v2 array", id="zarr2-metadata"),
        pytest.param(lambda p: (p / "z.zarr").mkdir() or (p / "z.zarr" / ".zgroup").write_text('{"zarr_format": 2}'),
                     r"z\.zarr: a Zarr v2 group without OME-Zarr multiscales", id="zarr2-group"),
        pytest.param(lambda p: (p / "z.n5").mkdir() or (p / "z.n5" / "attributes.json").write_text('{"n5": "2"}'),
                     r"z\.n5: an N5 group that is neither a dataset nor a pyramid", id="n5-group"),
        pytest.param(lambda p: (p / "z.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(100)),
                     r"z\.h5: not a readable HDF5 file", id="hdf5-garbage"),
        pytest.param(lambda p: (p / "z.mrc").write_bytes(bytes(1024) + b"x" * 50),
                     r"z\.mrc: not a readable MRC file", id="mrc-garbage"),
        pytest.param(lambda p: vi.write_zarr(p / "z.zarr", volume(1, np.uint8).astype(np.float16)),
                     r"z\.zarr: voxel type float16 is not supported", id="float16"),
        pytest.param(lambda p: vi.write_zarr(p / "z.zarr", volume(1, np.uint8), 3, dimension_names=["z", "y", "q"]),
                     r"z\.zarr: cannot place the axes z,y,q", id="unknown-axis"),
    ],
)
def test_damaged_or_unusable_input_names_the_file(tmp_path, make, message):
    make(tmp_path)
    target = next(p for p in tmp_path.iterdir())
    with pytest.raises(SourceError, match=message):
        open_source(target)


def test_timepoints_are_refused(tmp_path):
    import tensorstore as ts

    array = np.zeros((2, 1, 4, 5, 6), dtype=np.uint8)  # t, c, z, y, x
    spec = {"driver": "zarr3", "kvstore": {"driver": "file", "path": str(tmp_path / "t.zarr")}}
    ts.open(spec, create=True, dtype=array.dtype, shape=array.shape).result().write(array).result()
    with pytest.raises(SourceError, match=r"t\.zarr: holds 2 timepoints"):
        open_source(tmp_path / "t.zarr")
    single = np.arange(120, dtype=np.uint8).reshape((1, 1, 4, 5, 6))
    spec["kvstore"]["path"] = str(tmp_path / "t1.zarr")  # type: ignore[index]
    ts.open(spec, create=True, dtype=single.dtype, shape=single.shape).result().write(single).result()
    src = open_source(tmp_path / "t1.zarr")
    np.testing.assert_array_equal(src.read((0, 0, 0), (6, 5, 4))[0], single[0, 0].T)


def test_a_damaged_chunk_fails_the_read_naming_the_store(tmp_path):
    data = volume(1, np.uint8)
    spec = vi.write_n5(tmp_path / "d.n5", data)
    chunk = next(p for p in (tmp_path / "d.n5").rglob("*") if p.is_file() and p.name != "attributes.json")
    chunk.write_bytes(b"\x00\x00\x00\x03garbage")
    src = open_source(spec)
    with pytest.raises(SourceError, match=r"d\.n5: cannot read the box at \(0, 0, 0\)"):
        src.read((0, 0, 0), SHAPE)


def test_jobs_reopen_the_source_in_worker_processes(tmp_path, multiprocessing_executor):
    """The convert jobs carry the source record; each worker opens the store itself."""
    data = volume(1, np.uint16)
    specs = {
        "zarr": vi.write_ome_zarr(tmp_path / "a.ome.zarr", data, 3),
        "hdf5": vi.write_hdf5(tmp_path / "b.h5", data),
        "mrc": vi.write_mrc(tmp_path / "c.mrc", data),
    }
    for name, spec in specs.items():
        src = open_source(spec)
        ds = convert(src, tmp_path / name, (1, 1, 1), block_len=8, file_len=1, downsample=False,
                     executor=multiprocessing_executor, batch_bytes=1)  # one job per 8^3 file
        got = ds.get_layer("color").get_mag(1).read()
        np.testing.assert_array_equal(got, data)


def test_cli_converts_hdf5_with_axis_order(tmp_path):
    data = volume(1, np.uint8)
    spec = vi.write_hdf5(tmp_path / "raw.h5", data, dataset="volumes/raw", order="xyz")
    run("convert", spec, str(tmp_path / "ds"), "--voxel-size", "4,4,40", "--axis-order", "xyz", "--no-downsample",
        "--quiet", "--distribution-strategy", "sequential")
    np.testing.assert_array_equal(Dataset(tmp_path / "ds").get_layer("color").get_mag(1).read(), data)


@pytest.mark.parametrize("broken", ["zarr", "hdf5-path", "unknown-folder"])
def test_cli_refuses_bad_input_with_one_line_and_writes_nothing(tmp_path, broken):
    if broken == "zarr":
        (tmp_path / "in.zarr").mkdir()
        (tmp_path / "in.zarr" / "zarr.json").write_text(json.dumps({"zarr_format": 3, "node_type": "array"}))
        source, named = str(tmp_path / "in.zarr"), "in.zarr: not a readable Zarr v3 array"
    elif broken == "hdf5-path":
        with h5py.File(tmp_path / "in.h5", "w") as f:
            f.create_dataset("raw", data=np.zeros((4, 4, 4), np.uint8))
        source, named = f"{tmp_path / 'in.h5'}:/missing", "in.h5: /missing is nothing, not a dataset"
    else:
        (tmp_path / "in").mkdir()
        (tmp_path / "in" / "notes.txt").write_text("no volume here")
        source, named = str(tmp_path / "in"), "in: the folder holds no images"
    proc = run("convert", source, str(tmp_path / "out"), "--voxel-size", "1,1,1", check=2)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and named in lines[0], proc.stderr
    assert not (tmp_path / "out").exists()

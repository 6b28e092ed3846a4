"""The ``wkview`` command end to end.

Stacks are made in the test with the reader libraries (tifffile, Pillow); the
converted voxels are compared with what those libraries read back. The commands run
in-process through :func:`wkview.cli.main` (what the console script calls, with its exit
status and its stdout/stderr), which saves an interpreter start per command; the console
script itself is started by :func:`run_installed` in the tests of what only a real process
shows (the entry point, ``python -m wkview``, kills and interrupts).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from wkview import Dataset
from wkview.cli import main
from wkview.convert import PROGRESS_FOLDER
from wkview.pyramid import building_path
from wkview.sample import em_like

WKVIEW = str(Path(sys.executable).with_name("wkview"))
SEQ = ["--distribution-strategy", "sequential"]
SMALL = ["--block-len", "8", "--file-len", "2"]  # files of 16^3 voxels: many files in small tests


def _checked(proc: subprocess.CompletedProcess, check: int | None) -> subprocess.CompletedProcess:
    if check is not None:
        assert proc.returncode == check, f"exit {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    return proc


def run_installed(*args: str, check: int | None = 0, **kw) -> subprocess.CompletedProcess:
    """The installed ``wkview`` console script in a new process."""
    proc = subprocess.run([WKVIEW, *args], capture_output=True, text=True, timeout=300, **kw)
    return _checked(proc, check)


def run(*args: str, check: int | None = 0) -> subprocess.CompletedProcess:
    """``wkview ARGS`` in this process: :func:`wkview.cli.main`'s exit status and output.

    What a fresh process would show is kept: warnings and log records of level WARNING go
    to stderr as Python's defaults print them there (pytest's warnings-are-errors filter
    and its log capture would otherwise take them).
    """
    out, err = io.StringIO(), io.StringIO()
    handler = logging.StreamHandler(err)  # what logging's last-resort handler prints
    handler.setLevel(logging.WARNING)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            warnings.resetwarnings()
            warnings.simplefilter("default")
            status = main(list(args))
    finally:
        root.removeHandler(handler)
    return _checked(subprocess.CompletedProcess(["wkview", *args], status, out.getvalue(), err.getvalue()), check)


def read_layer(path: Path, layer: str = "color", mag: int | str = 1) -> np.ndarray:
    ds = Dataset(path)
    return ds.get_layer(layer).get_mag(mag).get_view().read()


def volume(shape, dtype=np.uint8, seed=0) -> np.ndarray:
    """(x, y, z) test data of ``dtype`` with structure (compresses) and noise."""
    base = em_like(shape, seed=seed).astype(np.float64)
    if np.dtype(dtype).kind == "f":
        return (base / 7.0 - 3.25).astype(dtype)
    scale = 1 if np.dtype(dtype).itemsize == 1 else 211
    return (base * scale).astype(dtype)


def write_tiff_stack(folder: Path, vol: np.ndarray, names=None) -> list[Path]:
    folder.mkdir(parents=True)
    files = []
    for z in range(vol.shape[2]):
        file = folder / (names[z] if names else f"{z}.tif")
        tifffile.imwrite(file, np.ascontiguousarray(vol[:, :, z].T))
        files.append(file)
    return files


# -- image stacks -------------------------------------------------------------------------


def test_default_pyramid_is_webknossos_cli_rule(tmp_path):
    # x and y to about 100 voxels, at least mag 4: 300 x 120 -> mag 4 (anisotropic steps to it)
    write_tiff_stack(tmp_path / "s", volume((300, 120, 8)))
    run("convert", str(tmp_path / "s"), str(tmp_path / "ds"), "--voxel-size", "1,1,1", *SMALL, *SEQ)
    assert [m.to_layer_name() for m in sorted(Dataset(tmp_path / "ds").get_layer("color").mags)] == ["1", "2", "4"]


def test_tiff_stack_natural_order_and_pyramid(tmp_path):
    vol = volume((40, 36, 23))
    # unpadded numbers: natural sort must put 2.tif before 10.tif
    files = write_tiff_stack(tmp_path / "stack", vol)
    target = tmp_path / "ds"
    proc = run("convert", str(tmp_path / "stack"), str(target), "--voxel-size", "11.24,11.24,25",
               *SMALL, *SEQ, "--max-mag", "2")
    assert "40x36x23" in proc.stdout
    expected = np.stack([tifffile.imread(f).T for f in files], axis=-1)
    got = read_layer(target)
    assert got.shape == (1, 40, 36, 23)
    assert np.array_equal(got[0], expected)
    ds = Dataset(target)
    layer = ds.get_layer("color")
    assert ds.scale == (11.24, 11.24, 25.0)
    assert layer.bounding_box.size == (40, 36, 23)
    # scale (11.24, 11.24, 25): the first step halves x and y only, the next reaches mag 2
    assert [m.to_layer_name() for m in sorted(layer.mags)] == ["1", "2-2-1", "2"]
    assert layer.get_mag(1)._store.is_compressed
    assert not (target / PROGRESS_FOLDER).exists()


def test_rgb_png_stack_is_uint24(tmp_path):
    rng = np.random.default_rng(1)
    stack = tmp_path / "rgb"
    stack.mkdir()
    images = []
    for z in range(5):
        rgb = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)  # rows=y (20), cols=x (30)
        Image.fromarray(rgb).save(stack / f"slice_{z}.png")
        images.append(rgb)
    run("convert", str(stack), str(tmp_path / "ds"), "--voxel-size", "1,1,1", *SMALL, *SEQ, "--no-downsample")
    doc = json.loads((tmp_path / "ds" / "datasource-properties.json").read_text())
    assert doc["dataLayers"][0]["elementClass"] == "uint24"
    got = read_layer(tmp_path / "ds")
    assert got.shape == (3, 30, 20, 5)
    for z, rgb in enumerate(images):
        back = np.asarray(Image.open(stack / f"slice_{z}.png"))
        assert np.array_equal(got[:, :, :, z], back.transpose(2, 1, 0))


@pytest.mark.parametrize("dtype", ["uint16", "float32"])
def test_uint16_and_float32_tiffs_keep_their_dtype(tmp_path, dtype):
    vol = volume((24, 20, 9), dtype)
    files = write_tiff_stack(tmp_path / "stack", vol)
    run("convert", str(tmp_path / "stack"), str(tmp_path / "ds"), "--voxel-size", "1,1,1", *SMALL, *SEQ)
    got = read_layer(tmp_path / "ds")
    assert got.dtype == np.dtype(dtype)
    assert np.array_equal(got[0], np.stack([tifffile.imread(f).T for f in files], axis=-1))
    expected_class = {"uint16": "uint16", "float32": "float"}[dtype]
    doc = json.loads((tmp_path / "ds" / "datasource-properties.json").read_text())
    assert doc["dataLayers"][0]["elementClass"] == expected_class


def test_jpeg_glob(tmp_path):
    vol = volume((32, 16, 4))
    (tmp_path / "j").mkdir()
    for z in range(4):
        Image.fromarray(np.ascontiguousarray(vol[:, :, z].T)).save(tmp_path / "j" / f"im{z}.jpg", quality=90)
    (tmp_path / "j" / "notes.txt").write_text("not an image")
    run("convert", str(tmp_path / "j" / "*.jpg"), str(tmp_path / "ds"), "--voxel-size", "1,1,1", *SMALL, *SEQ)
    got = read_layer(tmp_path / "ds")
    for z in range(4):
        assert np.array_equal(got[0, :, :, z], np.asarray(Image.open(tmp_path / "j" / f"im{z}.jpg")).T)


def test_tile_mosaic_with_missing_tile(tmp_path):
    # tiles of 12 (x) by 10 (y) pixels, indices counted from 3 (x), 5 (y), 1 (z); tile (x=4, y=6, z=2) missing
    rng = np.random.default_rng(2)
    tiles = {}
    for z in (1, 2):
        for y in (5, 6):
            for x in (3, 4):
                if (x, y, z) == (4, 6, 2):
                    continue
                tile = rng.integers(1, 256, (10, 12), dtype=np.uint8)
                (tmp_path / "tiles" / str(z) / str(y)).mkdir(parents=True, exist_ok=True)
                tifffile.imwrite(tmp_path / "tiles" / str(z) / str(y) / f"{x}.tif", tile)
                tiles[(x, y, z)] = tile
    pattern = str(tmp_path / "tiles" / "{z}" / "{y}" / "{x}.tif")
    run("convert", pattern, str(tmp_path / "ds"), "--voxel-size", "1,1,1", *SMALL, *SEQ)
    got = read_layer(tmp_path / "ds")[0]
    assert got.shape == (24, 20, 2)
    expected = np.zeros((24, 20, 2), np.uint8)
    for (x, y, z), tile in tiles.items():
        expected[(x - 3) * 12 : (x - 2) * 12, (y - 5) * 10 : (y - 4) * 10, z - 1] = tile.T
    assert np.array_equal(got, expected)
    assert not got[12:, 10:, 1].any()  # the missing tile reads as zeros


def test_multipage_tiff(tmp_path):
    vol = volume((33, 17, 12), np.uint16)
    tifffile.imwrite(tmp_path / "vol.tif", np.ascontiguousarray(vol.transpose(2, 1, 0)))  # pages = z
    run("convert", str(tmp_path / "vol.tif"), str(tmp_path / "ds"), "--voxel-size", "1,1,1", *SMALL, *SEQ)
    back = tifffile.imread(tmp_path / "vol.tif")
    assert np.array_equal(read_layer(tmp_path / "ds")[0], back.transpose(2, 1, 0))


@pytest.mark.parametrize("order", ["F", "C"])
def test_raw_in_both_orders(tmp_path, order):
    vol = volume((21, 18, 13), np.uint16)
    raw = tmp_path / "vol.raw"
    raw.write_bytes(vol.tobytes(order=order))
    run("convert-raw", str(raw), str(tmp_path / "ds"), "--shape", "21,18,13", "--dtype", "uint16",
        "--order", order, "--voxel-size", "1,1,1", *SMALL, *SEQ)
    expected = np.fromfile(raw, dtype=np.uint16).reshape((21, 18, 13), order=order)
    assert np.array_equal(read_layer(tmp_path / "ds")[0], expected)


def test_raw_with_wrong_size_is_refused(tmp_path):
    raw = tmp_path / "vol.raw"
    raw.write_bytes(b"\0" * 100)
    proc = run("convert-raw", str(raw), str(tmp_path / "ds"), "--shape", "10,10,10", "--voxel-size", "1,1,1", check=2)
    assert "100 bytes" in proc.stderr and "1000" in proc.stderr
    assert not (tmp_path / "ds").exists()


def test_npy_volume_and_segmentation(tmp_path):
    vol = (volume((20, 19, 18)) // 40).astype(np.uint32)  # a few segment ids
    np.save(tmp_path / "seg.npy", vol)
    run("convert", str(tmp_path / "seg.npy"), str(tmp_path / "ds"), "--voxel-size", "1,1,1", "--category",
        "segmentation", "--layer-name", "segmentation", *SMALL, *SEQ, "--max-mag", "2")
    ds = Dataset(tmp_path / "ds")
    layer = ds.get_layer("segmentation")
    assert layer.category == "segmentation"
    assert layer.largest_segment_id == int(vol.max())
    assert np.array_equal(read_layer(tmp_path / "ds", "segmentation")[0], np.load(tmp_path / "seg.npy"))
    # mode pooling for segmentation keeps ids that exist
    mag2 = layer.get_mag(2).get_view().read()
    assert set(np.unique(mag2)) <= set(np.unique(vol))


def test_dtype_widening_and_refused_narrowing(tmp_path):
    vol = volume((16, 16, 4))
    write_tiff_stack(tmp_path / "s", vol)
    run("convert", str(tmp_path / "s"), str(tmp_path / "a"), "--voxel-size", "1,1,1", "--dtype", "uint16", *SMALL, *SEQ)
    got = read_layer(tmp_path / "a")
    assert got.dtype == np.uint16 and np.array_equal(got[0], vol)
    proc = run("convert", str(tmp_path / "s"), str(tmp_path / "b"), "--voxel-size", "1,1,1", "--dtype", "int8", check=2)
    assert "could change values" in proc.stderr
    assert not (tmp_path / "b").exists()


def test_multiprocessing_jobs_give_the_same_dataset(tmp_path):
    vol = volume((64, 48, 40))
    write_tiff_stack(tmp_path / "s", vol)
    run("convert", str(tmp_path / "s"), str(tmp_path / "seq"), "--voxel-size", "1,1,1", *SMALL, *SEQ, "--max-mag", "4")
    run("convert", str(tmp_path / "s"), str(tmp_path / "mp"), "--voxel-size", "1,1,1", *SMALL, "--jobs", "2",
        "--max-mag", "4")
    run("check-equality", str(tmp_path / "seq"), str(tmp_path / "mp"), *SEQ)
    assert sorted(Dataset(tmp_path / "mp").get_layer("color").mags) == sorted(
        Dataset(tmp_path / "seq").get_layer("color").mags
    )


# -- bad input: one line, exit 2, nothing created ------------------------------------------------


def _one_line_error(proc: subprocess.CompletedProcess) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    proc = run("convert", str(tmp_path / "empty"), str(tmp_path / "ds"), "--voxel-size", "1,1,1", check=2)
    assert "holds no images" in _one_line_error(proc)
    assert not (tmp_path / "ds").exists()


def test_slice_of_another_size(tmp_path):
    """Placed at x = y = 0 and padded with zeros, as webknossos 4.3.3 does, with a warning."""
    data = volume((16, 16, 5))
    files = write_tiff_stack(tmp_path / "s", data)
    tifffile.imwrite(files[3], np.full((16, 17), 7, np.uint8))  # 17 wide: x grows to 17
    proc = run("convert", str(tmp_path / "s"), str(tmp_path / "ds"), "--voxel-size", "1,1,1", "--no-downsample")
    assert "3.tif is 17x16" in proc.stderr and "padded with zeros to 17x16" in proc.stderr
    layer = Dataset(tmp_path / "ds").get_layer("color")
    assert layer.bounding_box.size == (17, 16, 5)
    got = layer.get_mag(1).read()[0]
    data[..., 3] = 7
    np.testing.assert_array_equal(got[:16], data)
    assert (got[16, :, 3] == 7).all() and not got[16, :, [0, 1, 2, 4]].any()


def test_slice_of_another_dtype(tmp_path):
    files = write_tiff_stack(tmp_path / "s", volume((16, 16, 5)))
    tifffile.imwrite(files[2], np.zeros((16, 16), np.uint16))
    proc = run("convert", str(tmp_path / "s"), str(tmp_path / "ds"), "--voxel-size", "1,1,1", check=2)
    assert "2.tif" in _one_line_error(proc)
    assert not (tmp_path / "ds").exists()


def test_corrupt_image(tmp_path):
    files = write_tiff_stack(tmp_path / "s", volume((16, 16, 5)))
    files[4].write_bytes(b"II*\0garbage, not a tiff at all")
    proc = run("convert", str(tmp_path / "s"), str(tmp_path / "ds"), "--voxel-size", "1,1,1", check=2)
    assert "4.tif" in _one_line_error(proc)
    assert not (tmp_path / "ds").exists()


def test_existing_target(tmp_path):
    write_tiff_stack(tmp_path / "s", volume((16, 16, 3)))
    target = tmp_path / "ds"
    target.mkdir()
    (target / "precious.txt").write_text("keep me")
    proc = run("convert", str(tmp_path / "s"), str(target), "--voxel-size", "1,1,1", check=2)
    assert "already holds" in _one_line_error(proc)
    assert (target / "precious.txt").read_text() == "keep me"
    assert not (target / "datasource-properties.json").exists()
    run("convert", str(tmp_path / "s"), str(target), "--voxel-size", "1,1,1", "--overwrite", *SEQ, *SMALL)
    assert not (target / "precious.txt").exists()


def test_missing_voxel_size(tmp_path):
    write_tiff_stack(tmp_path / "s", volume((16, 16, 3)))
    proc = run("convert", str(tmp_path / "s"), str(tmp_path / "ds"), check=2)
    assert "--voxel-size" in _one_line_error(proc)
    assert not (tmp_path / "ds").exists()


@pytest.mark.parametrize(
    "flags, text",
    [
        (["--voxel-size", "1,1"], "--voxel-size"),
        (["--voxel-size", "1,1,-1"], "positive"),
        (["--voxel-size", "1,1,1", "--block-len", "6"], "power of two"),
        (["--voxel-size", "1,1,1", "--category", "weird"], "--category"),
        (["--voxel-size", "1,1,1", "--distribution-strategy", "dask"], "dask-address"),
    ],
)
def test_bad_flags(tmp_path, flags, text, monkeypatch):
    write_tiff_stack(tmp_path / "s", volume((16, 16, 3)))
    monkeypatch.delenv("DASK_ADDRESS", raising=False)
    proc = run("convert", str(tmp_path / "s"), str(tmp_path / "ds"), *flags, check=2)
    assert text in _one_line_error(proc)
    assert not (tmp_path / "ds").exists()


def test_not_a_dataset(tmp_path):
    for command in (["info"], ["verify"], ["downsample"], ["compress"], ["export", "--format", "npy"]):
        args = [*command[:1], str(tmp_path)]
        if command[0] == "export":
            args.append(str(tmp_path / "out.npy"))
        proc = run(*args, *command[1:], check=2)
        assert "not a WKW dataset" in _one_line_error(proc)


# -- interruption ---------------------------------------------------------------------------------


def _kill_when(proc: subprocess.Popen, done_dir: Path, batches: int) -> None:
    import time

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if done_dir.is_dir() and sum(1 for p in done_dir.iterdir() if p.name.startswith("batch-")) >= batches:
            proc.kill()
            proc.wait()
            return
        if proc.poll() is not None:
            pytest.fail("the conversion finished before it could be killed")
        time.sleep(0.005)
    proc.kill()
    pytest.fail("no progress within 120 s")


@pytest.mark.slow  # a long subprocess round trip; CI runs it
def test_killed_conversion_resumes_to_the_same_dataset(tmp_path):
    vol = volume((48, 32, 160))
    write_tiff_stack(tmp_path / "s", vol)
    args = ["convert", str(tmp_path / "s"), None, "--voxel-size", "1,1,1", "--block-len", "4", "--file-len", "2",
            *SEQ, "--max-mag", "4", "--quiet"]
    args[2] = str(tmp_path / "whole")
    run(*args)

    target = tmp_path / "killed"
    args[2] = str(target)
    proc = subprocess.Popen([WKVIEW, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _kill_when(proc, target / PROGRESS_FOLDER / "done", 3)
    # nothing claims the unfinished layer
    assert not (target / "datasource-properties.json").exists()
    done = [p for p in (target / PROGRESS_FOLDER / "done").iterdir() if p.name.startswith("batch-")]
    assert 3 <= len(done) < 20  # 160 / 8 = 20 batches: killed on the way

    run(*args)
    run("check-equality", str(tmp_path / "whole"), str(target), *SEQ)
    a = json.loads((tmp_path / "whole" / "datasource-properties.json").read_text())
    b = json.loads((target / "datasource-properties.json").read_text())
    a["id"]["name"] = b["id"]["name"] = "same"
    assert a == b
    assert not (target / PROGRESS_FOLDER).exists()
    assert not list(target.rglob("*.tmp"))


def test_unfinished_conversion_with_other_settings_starts_clean(tmp_path):
    write_tiff_stack(tmp_path / "s", volume((16, 16, 8)))
    target = tmp_path / "ds"
    (target / PROGRESS_FOLDER / "done").mkdir(parents=True)
    (target / PROGRESS_FOLDER / "params.json").write_text('{"something": "else"}')
    (target / "color" / "1").mkdir(parents=True)
    (target / "color" / "1" / "stale.wkw").write_bytes(b"old")
    run("convert", str(tmp_path / "s"), str(target), "--voxel-size", "1,1,1", *SEQ, *SMALL)
    assert not (target / "color" / "1" / "stale.wkw").exists()
    assert read_layer(target).shape == (1, 16, 16, 8)


# -- the other commands ---------------------------------------------------------------------------


@pytest.fixture
def dataset(tmp_path) -> tuple[Path, np.ndarray]:
    vol = volume((40, 40, 24))
    write_tiff_stack(tmp_path / "s", vol)
    run("convert", str(tmp_path / "s"), str(tmp_path / "ds"), "--voxel-size", "1,1,1", *SMALL, *SEQ,
        "--no-downsample", "--no-compress")
    return tmp_path / "ds", vol


def test_downsample_command_equals_convert_pyramid(tmp_path, dataset):
    path, _ = dataset
    run("downsample", str(path), "--max-mag", "4", *SEQ)
    run("convert", str(tmp_path / "s"), str(tmp_path / "direct"), "--voxel-size", "1,1,1", *SMALL, *SEQ,
        "--max-mag", "4", "--no-compress")
    run("check-equality", str(path), str(tmp_path / "direct"), *SEQ)
    proc = run("downsample", str(path), "--max-mag", "4", *SEQ)
    assert "none (all present)" in proc.stdout


def test_compress_in_place(tmp_path, dataset):
    path, vol = dataset
    shutil.copytree(path, tmp_path / "copy")
    proc = run("compress", str(path), *SEQ)
    assert "color/1" in proc.stdout
    assert Dataset(path).get_layer("color").get_mag(1)._store.is_compressed
    run("check-equality", str(path), str(tmp_path / "copy"), *SEQ)
    run("verify", str(path), *SEQ)
    assert "nothing to compress" in run("compress", str(path), *SEQ).stdout


@pytest.mark.slow  # a long subprocess round trip; CI runs it
def test_compress_killed_and_rerun_finishes(tmp_path):
    vol = volume((64, 64, 64))
    write_tiff_stack(tmp_path / "s", vol)
    path = tmp_path / "ds"
    run("convert", str(tmp_path / "s"), str(path), "--voxel-size", "1,1,1", "--block-len", "4", "--file-len", "2",
        *SEQ, "--no-downsample", "--no-compress", "--quiet")
    files = sorted((path / "color" / "1").rglob("x*.wkw"))
    proc = subprocess.Popen([WKVIEW, "compress", str(path), *SEQ], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import time

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        compressed = sum(1 for f in files if f.exists() and f.read_bytes()[5] != 1)
        if compressed >= 20 or proc.poll() is not None:
            break
        time.sleep(0.005)
    proc.kill()
    proc.wait()
    # every file is whole (raw or compressed) and the mag reads the same voxels meanwhile
    assert np.array_equal(read_layer(path)[0], vol)
    run("compress", str(path), *SEQ)
    assert Dataset(path).get_layer("color").get_mag(1)._store.is_compressed
    assert all(f.read_bytes()[5] == 3 for f in files)
    assert np.array_equal(read_layer(path)[0], vol)
    assert not list(path.rglob("*.tmp"))


def test_check_equality_reports_first_difference(tmp_path, dataset):
    path, vol = dataset
    shutil.copytree(path, tmp_path / "copy")
    mag = Dataset(tmp_path / "copy").get_layer("color").get_mag(1)
    mag.write(np.full((1, 1, 1), 7, np.uint8) if vol[30, 5, 20] != 7 else np.full((1, 1, 1), 8, np.uint8),
              offset=(30, 5, 20))
    proc = run("check-equality", str(path), str(tmp_path / "copy"), "--jobs", "2", check=1)
    assert "(30, 5, 20)" in proc.stdout and str(vol[30, 5, 20]) in proc.stdout
    # outside the changed voxel the datasets are equal
    run("check-equality", str(path), str(tmp_path / "copy"), "--bbox", "0,0,0,30,40,24", *SEQ)


def test_export_tiff_and_npy_round_trip(tmp_path, dataset):
    path, vol = dataset
    run("export", str(path), str(tmp_path / "tiffs"), "--bbox", "5,6,7,20,10,4", *SEQ)
    files = sorted((tmp_path / "tiffs").iterdir())
    assert [f.name for f in files] == ["0007.tif", "0008.tif", "0009.tif", "0010.tif"]
    for k, f in enumerate(files):
        assert np.array_equal(tifffile.imread(f).T, vol[5:25, 6:16, 7 + k])
    run("export", str(path), str(tmp_path / "all.npy"), "--format", "npy")  # on the default worker processes
    assert np.array_equal(np.load(tmp_path / "all.npy"), vol)
    # the .npy converts back into the same voxels
    run("convert", str(tmp_path / "all.npy"), str(tmp_path / "again"), "--voxel-size", "1,1,1", *SEQ, *SMALL,
        "--no-downsample")
    run("check-equality", str(path), str(tmp_path / "again"), "--layer", "color", *SEQ)


def test_info_json(dataset):
    path, _ = dataset
    info = json.loads(run("info", str(path), "--json").stdout)
    (layer,) = info["layers"]
    assert layer["bounding_box"] == {"topleft": [0, 0, 0], "size": [40, 40, 24]}
    (mag,) = layer["mags"]
    assert mag["compression"] == "raw" and mag["files"] == 3 * 3 * 2
    assert mag["bytes_on_disk"] == sum(f.stat().st_size for f in (path / "color" / "1").rglob("x*.wkw"))
    text = run("info", str(path)).stdout
    assert "layer 'color'" in text and "raw" in text


def test_verify_finds_damage_and_repairs_temp_files(tmp_path):
    write_tiff_stack(tmp_path / "s", volume((32, 32, 16)))
    path = tmp_path / "ds"
    run("convert", str(tmp_path / "s"), str(path), "--voxel-size", "1,1,1", *SMALL, *SEQ, "--no-downsample")
    assert "sound" in run("verify", str(path), *SEQ).stdout
    files = sorted((path / "color" / "1").rglob("x*.wkw"))
    data = bytearray(files[1].read_bytes())
    files[1].write_bytes(bytes(data[: len(data) - 20]))  # cut off the end
    stray = files[2].parent / ".x1.wkw.12345.tmp"
    stray.write_bytes(b"half a file")
    proc = run("verify", str(path), *SEQ, check=1)
    assert str(files[1]) in proc.stdout and str(stray) in proc.stdout
    proc = run("verify", str(path), "--repair", *SEQ, check=1)  # the damaged file stays reported
    assert not stray.exists()
    assert str(files[1]) in proc.stdout


def test_help_for_every_command():
    for command in ("convert", "convert-raw", "downsample", "compress", "check-equality", "export", "info",
                    "verify", "sample-stack"):
        proc = run(command, "--help")
        assert "Usage" in proc.stdout


def test_python_dash_m_runs_the_same_command(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "wkview", "info", str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 2 and "not a WKW dataset" in proc.stderr


# -- webknossos opens what wkview convert made ------------------------------------------------------


@pytest.mark.interop
def test_webknossos_reads_a_converted_dataset(tmp_path):
    wk = pytest.importorskip("webknossos")
    vol = volume((70, 50, 40))
    write_tiff_stack(tmp_path / "s", vol)
    run("convert", str(tmp_path / "s"), str(tmp_path / "ds"), "--voxel-size", "11.24,11.24,25", *SEQ,
        "--max-mag", "4")
    ds = wk.Dataset.open(tmp_path / "ds")  # Dataset(path) creates, and refuses an existing one
    layer = ds.get_layer("color")
    assert tuple(layer.bounding_box.size) == (70, 50, 40)
    got = layer.get_mag(1).read(absolute_offset=(0, 0, 0), size=(70, 50, 40))
    assert np.array_equal(got[0], vol)
    ours = read_layer(tmp_path / "ds", mag="4-4-2")
    mag = layer.get_mag("4-4-2")
    theirs = mag.read(absolute_offset=(0, 0, 0), size=(68, 48, 40))
    assert np.array_equal(theirs, ours[:, :17, :12, :20])


@pytest.mark.slow  # a long subprocess round trip; CI runs it
def test_killed_downsample_leaves_no_half_mag_and_rerun_finishes(tmp_path):
    vol = volume((64, 64, 48))
    write_tiff_stack(tmp_path / "s", vol)
    path = tmp_path / "ds"
    flags = ["--voxel-size", "1,1,1", "--block-len", "4", "--file-len", "2", *SEQ, "--quiet"]
    run("convert", str(tmp_path / "s"), str(path), *flags, "--no-downsample")
    run("convert", str(tmp_path / "s"), str(tmp_path / "whole"), *flags, "--max-mag", "2")
    proc = subprocess.Popen([WKVIEW, "downsample", str(path), "--max-mag", "2", *SEQ],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import time

    # the mag is built in a hidden folder and renamed into place when full: kill it there
    building = building_path(path / "color" / "2")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if building.is_dir() and sum(1 for _ in building.rglob("x*.wkw")) >= 8:
            break
        time.sleep(0.002)
    assert proc.poll() is None, "downsample finished before it could be killed"
    proc.kill()
    proc.wait()
    # the half-built mag is neither named in the properties file nor visible as a folder
    assert sorted(Dataset(path).get_layer("color").mags) == [(1, 1, 1)]
    assert not (path / "color" / "2").exists()
    run("downsample", str(path), "--max-mag", "2", *SEQ)
    run("check-equality", str(path), str(tmp_path / "whole"), *SEQ)


def test_disk_full_is_one_line_and_no_dataset(tmp_path, small_disk):
    """A conversion that fills the disk: exit 1, one line, and no properties file claims the data."""
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 1024), dtype=np.uint8)  # 4 MiB, incompressible
    np.save(tmp_path / "noise.npy", noise)
    proc = run("convert", str(tmp_path / "noise.npy"), str(small_disk / "ds"), "--voxel-size", "1,1,1", *SEQ,
               "--no-downsample", check=1)
    assert "No space left on device" in _one_line_error(proc)
    assert not (small_disk / "ds" / "datasource-properties.json").exists()
    assert not list((small_disk / "ds").rglob("*.tmp"))


def test_timepoint_and_channels_as_one_layer(tmp_path):
    """A TIFF of several timepoints is one line naming --timepoint; with it, one timepoint
    converts, its channels in one layer with --channels-as-one-layer."""
    stack = np.random.default_rng(5).integers(0, 255, (3, 4, 2, 16, 24), dtype=np.uint8)  # t, z, c, y, x
    tifffile.imwrite(tmp_path / "t.tif", stack, imagej=True, metadata={"axes": "TZCYX"})
    proc = run("convert", str(tmp_path / "t.tif"), str(tmp_path / "ds"), "--voxel-size", "1,1,1", check=2)
    assert "holds 3 timepoints: convert one with --timepoint N (0 to 2)" in _one_line_error(proc)
    assert not (tmp_path / "ds").exists()
    run("convert", str(tmp_path / "t.tif"), str(tmp_path / "ds"), "--voxel-size", "1,1,1", "--no-downsample",
        "--timepoint", "2", "--channels-as-one-layer", *SEQ)
    layer = Dataset(tmp_path / "ds").get_layer("color")
    assert layer.num_channels == 2
    np.testing.assert_array_equal(layer.get_mag(1).read(), stack[2].transpose(1, 3, 2, 0))

"""The one durable write path (wkview._durable): bounded lock files, the mode of every
file wkview writes, header.wkw as libwkw writes it, leftovers of killed mag builds,
and datasets of the earlier one-lock-file-per-data-file layout."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
import wkw

import wkview
from wkview import Dataset, _durable, pyramid
from wkview._storage import MagStore
from wkview.dataset import mag_header
from wkview.tools import verify_dataset


def _mag_files(mag: Path) -> tuple[list[Path], list[Path]]:
    """(data files, every other file) under a mag folder."""
    files = [p for p in mag.rglob("*") if p.is_file()]
    data = [p for p in files if p.suffix == ".wkw" and p.name != "header.wkw" and not p.name.startswith(".")]
    return data, [p for p in files if p not in data and p.name != "header.wkw"]


@pytest.mark.parametrize("compress", [False, True])
def test_lock_files_per_mag_are_bounded(tmp_path: Path, compress: bool) -> None:
    """Writing 1536 data files leaves one lock file per stripe they (and the header) fall in:
    LOCK_STRIPES lock files, all in the lock folder."""
    mag = Dataset.create(tmp_path / "ds", scale=(1, 1, 1)).add_layer("color", "color").add_mag(
        1, block_len=2, file_len=1, compress=compress
    )
    data = (np.arange(64 * 48 * 4) % 251).astype(np.uint8).reshape(64, 48, 4)
    wkview.set_fsync(False)  # the lock files are the same; the test takes a tenth of the time
    try:
        mag.write(data, offset=(0, 0, 0))  # one file per 2^3 voxels: 32 x 24 x 2 = 1536 files
    finally:
        wkview.set_fsync(None)
    data_files, others = _mag_files(mag.path)
    assert len(data_files) == 32 * 24 * 2
    lock_folder = mag.path / _durable.LOCK_FOLDER
    assert others and all(p.parent == lock_folder and p.name.endswith(".lock") for p in others)
    stripes = {_durable.lock_path(str(p)) for p in [*data_files, mag.path / "header.wkw"]}
    assert sorted(str(p) for p in others) == sorted(stripes)
    assert len(others) == _durable.LOCK_STRIPES  # 1536 files reach every stripe
    assert np.array_equal(mag.read(size=(64, 48, 4))[0], data)


def test_lock_path_is_a_stripe_of_the_mag() -> None:
    a = _durable.lock_path("/data/ds/color/1/z3/y2/x1.wkw")
    assert a.startswith("/data/ds/color/1/.wkview-locks/") and a.endswith(".lock")
    # the stripe depends on the name inside the mag only: every spelling of the mag agrees
    assert os.path.basename(_durable.lock_path("color/1/z3/y2/x1.wkw")) == os.path.basename(a)
    assert _durable.lock_path("z3/y2/x1.wkw") == os.path.join(".", ".wkview-locks", os.path.basename(a))
    stripes = {_durable.lock_path(f"m/z0/y{y}/x{x}.wkw") for x in range(64) for y in range(64)}
    assert len(stripes) == _durable.LOCK_STRIPES
    # a mag's header.wkw shares a stripe too: a mag's lock files stay 256
    header_lock = _durable.lock_path("/d/color/1/header.wkw")
    assert os.path.dirname(header_lock) == "/d/color/1/.wkview-locks"
    assert os.path.basename(header_lock) in {f"{i:02x}.lock" for i in range(_durable.LOCK_STRIPES)}
    assert _durable.lock_path("header.wkw") == os.path.join(".", ".wkview-locks", os.path.basename(header_lock))
    # files that are no data files keep a lock file beside them
    assert _durable.lock_path("/d/datasource-properties.json") == "/d/.datasource-properties.json.lock"
    assert _durable.lock_path("/d/color/1") == "/d/color/.1.lock"
    assert _durable.lock_path("/d/z0/y0/x0.wkw.tmp") == "/d/z0/y0/.x0.wkw.tmp.lock"


def _same_stripe(mag: Path) -> tuple[str, str]:
    seen: dict[str, str] = {}
    for x in range(1000):
        path = str(mag / "z0" / "y0" / f"x{x}.wkw")
        other = seen.setdefault(_durable.lock_path(path), path)
        if other != path:
            return other, path
    raise AssertionError("no two names share a stripe")  # pragma: no cover - 1000 > 256


def test_a_stripe_shared_by_several_files_is_taken_once(tmp_path: Path) -> None:
    """Two files of one stripe in one call: one flock (a second one would wait forever)."""
    first, second = _same_stripe(tmp_path)
    locks = _durable.Locks([second, first])
    assert locks.order == sorted([first, second])
    for path in locks.order:
        locks.acquire(path)
    with _durable.try_lock(first) as free:
        assert not free  # held ...
    locks.release(first)
    with _durable.try_lock(second) as free:
        assert not free  # ... until the last file under it is released
    locks.release(second)
    with _durable.try_lock(second) as free:
        assert free
    locks.close()


def _old_layout(path: Path) -> list[Path]:
    """A dataset as earlier versions left it: a hidden lock file beside every data file."""
    ds = Dataset.create(path, scale=(1, 1, 1))
    for name, compress in (("raw", False), ("lz4", True)):
        ds.add_layer(name, "color").add_mag(1, block_len=8, file_len=2, compress=compress).write(
            np.full((32, 16, 16), 7, np.uint8), offset=(0, 0, 0)
        )
    for folder in path.rglob(_durable.LOCK_FOLDER):
        for lock in folder.iterdir():
            lock.unlink()
        folder.rmdir()
    old = []
    for data in sorted(path.rglob("x*.wkw")):
        old.append(data.with_name(f".{data.name}.lock"))
        old[-1].touch()
    return old


def test_old_lock_files_are_ignored_and_repair_removes_them(tmp_path: Path, quiet_unaligned: None) -> None:
    path = tmp_path / "ds"
    old = _old_layout(path)
    assert len(old) == 4
    assert verify_dataset(path) == []  # not damage: verify without --repair is clean
    ds = Dataset(path)
    for name in ("raw", "lz4"):
        mag = ds.get_layer(name).get_mag(1)
        mag.write(np.full((4, 4, 4), 9, np.uint8), offset=(14, 2, 2))  # edits x0 and x1
        got = mag.read(size=(32, 16, 16))[0]
        assert np.all(got[14:18, 2:6, 2:6] == 9) and got.sum() == 7 * (32 * 16 * 16 - 64) + 9 * 64
    assert all(p.exists() for p in old)  # the writes used the mag's lock folder, not these
    # a lock file a process of the old version still holds stays
    held = os.open(old[0], os.O_RDWR)
    try:
        fcntl.flock(held, fcntl.LOCK_EX)
        repaired = verify_dataset(path, repair=True)
    finally:
        os.close(held)
    assert sorted(Path(d.path) for d in repaired) == old[1:]
    assert all(d.repaired and "earlier wkview version" in d.reason for d in repaired)
    assert verify_dataset(path, repair=True)[0].path == str(old[0])
    assert not any(p.exists() for p in old)
    assert verify_dataset(path, repair=True) == []
    assert all((path / name / "1" / _durable.LOCK_FOLDER).is_dir() for name in ("raw", "lz4"))


_EVERY_WRITER = """
import os, sys
import numpy as np
from pathlib import Path
import wkview
from wkview.convert import _mark_done, convert_raw
from wkview.executors import get_executor

root = Path(sys.argv[1])
ds = wkview.Dataset.create(root / "ds", scale=(1, 1, 1))
data = (np.arange(32 * 32 * 16) % 251).astype(np.uint8).reshape(32, 32, 16)
for name, compress in (("raw", False), ("lz4", True)):
    mag = ds.add_layer(name, "color").add_mag(1, block_len=8, file_len=2, compress=compress)
    mag.write(data, offset=(0, 0, 0))  # new files
    mag.write(data[:3, :3, :3] + 1, offset=(1, 1, 1))  # edits of existing files
# files of the layer folder that are no mag, written by another tool, private to its user
(root / "ds" / "lz4" / "foreign-dir").mkdir()
for foreign in (root / "ds" / "lz4" / "foreign-notes.txt", root / "ds" / "lz4" / "foreign-dir" / "foreign-more.txt"):
    foreign.write_text("notes")
    foreign.chmod(0o600)
other = wkview.Dataset.create(root / "other", scale=(1, 1, 1))
other.add_copy_layer(ds.get_layer("lz4"))  # byte copies, of the mag and of the other files
ds.copy_dataset(root / "copy")  # byte copies of both layers
ds.copy_dataset(root / "reencoded", block_len=16, file_len=1)  # re-encoded copies
ds.get_layer("raw").get_mag(1).compress(target_path=root / "compressed")
data.tofile(root / "volume.raw")
convert_raw(root / "volume.raw", root / "converted", data.shape, "uint8", (1, 1, 1),
            block_len=8, file_len=2, executor=get_executor("sequential"))
_mark_done(root / "progress" / "batch-0", {"largest": None})  # convert removes its records at the end
# files outside datasets: a preview image, exported slices and volumes, sample images
from wkview.preview import write_preview
from wkview.sample import write_image_stack
from wkview.tools import export_region
write_preview(root / "ds", root / "outputs" / "preview.png", layer="lz4")
export_region(root / "ds", root / "outputs" / "tiff", layer="lz4")
export_region(root / "ds", root / "outputs" / "volume.npy", layer="raw", format="npy")
for suffix in (".tif", ".png"):
    write_image_stack(root / "outputs" / ("sample" + suffix), (16, 8, 2), suffix=suffix)
"""


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_every_file_written_gets_the_umask_mode(tmp_path: Path, umask: int) -> None:
    """Data files of raw and compressed mags, headers, properties, lock files, byte copies
    (of data files and of a layer's other files, whatever their source's mode), re-encoded
    copies, compress(target_path=), converted datasets and convert's progress records: all
    get ``0o666 & ~umask``, as open() gives."""
    script = tmp_path / "write.py"
    script.write_text(textwrap.dedent(_EVERY_WRITER))
    out = tmp_path / "out"
    out.mkdir()

    def run_under_umask() -> None:
        os.umask(umask)

    subprocess.run([sys.executable, str(script), str(out)], check=True, preexec_fn=run_under_umask, timeout=600)
    files = [
        p for p in out.rglob("*")
        if p.is_file() and p.name != "volume.raw" and not (p.is_relative_to(out / "ds") and "foreign" in str(p))
    ]  # fmt: skip
    kinds = {p.name if p.suffix != ".wkw" or p.name == "header.wkw" else "data" for p in files}
    assert {"data", "header.wkw", "datasource-properties.json"} <= kinds
    for folder in ("ds", "other", "copy", "reencoded", "converted"):
        assert any(p.is_relative_to(out / folder) and p.suffix == ".wkw" for p in files), folder
    assert (out / "compressed" / "z0" / "y0" / "x0.wkw").is_file()
    assert (out / "compressed" / "header.wkw").is_file()
    assert (out / "other" / "lz4" / "foreign-dir" / "foreign-more.txt").read_text() == "notes"
    assert (out / "other" / "lz4" / "foreign-notes.txt") in files
    assert (out / "progress" / "batch-0") in files
    outputs = {str(p.relative_to(out / "outputs")) for p in files if p.is_relative_to(out / "outputs")}
    assert {"preview.png", "tiff/0000.tif", "tiff/0015.tif", "volume.npy", "sample.tif/1.tif", "sample.png/0.png"} <= outputs
    modes = {str(p.relative_to(out)): oct(p.stat().st_mode & 0o777) for p in files}
    assert modes == {name: oct(0o666 & ~umask) for name in modes}


def test_umask_is_read_once_without_changing_it() -> None:
    code = "import os, wkview._durable as d; print(oct(d.new_file_mode())); print(oct(os.umask(0)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, preexec_fn=lambda: os.umask(0o027)
    ).stdout.split()
    assert out == [oct(0o640), oct(0o027)]


def test_webknossos_reads_a_mag_with_the_lock_folder(tmp_path: Path) -> None:
    """webknossos 4.3.3 opens, lists, reads and writes a dataset wkview wrote: the hidden
    lock folder in each mag is no mag, no data file and no damage."""
    os.environ.setdefault("WEBKNOSSOS_SKIP_VERSION_CHECK", "True")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wk = pytest.importorskip("webknossos")
        from webknossos.version import __version__ as wk_version
    if wk_version != "4.3.3":
        pytest.skip(f"pins webknossos 4.3.3, found {wk_version}")
    path = tmp_path / "ds"
    ds = Dataset.create(path, scale=(1, 1, 1))
    data = (np.arange(32 * 32 * 16) % 251).astype(np.uint8).reshape(32, 32, 16)
    for name, compress in (("raw", False), ("lz4", True)):
        ds.add_layer(name, "color").add_mag(1, block_len=8, file_len=2, compress=compress).write(data, offset=(0, 0, 0))
        assert (path / name / "1" / _durable.LOCK_FOLDER).is_dir()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        other = wk.Dataset.open(path)
        for name in ("raw", "lz4"):
            layer = other.get_layer(name)
            assert [str(m) for m in layer.mags] == [str(wk.Mag(1))]
            mag = layer.get_mag(1)
            assert np.array_equal(mag.read(absolute_offset=(0, 0, 0), size=(32, 32, 16))[0], data)
            mag.write(np.full((16, 16, 16), 5, np.uint8), absolute_offset=(16, 16, 0))
    for name in ("raw", "lz4"):
        got = Dataset(path).get_layer(name).get_mag(1).read(size=(32, 32, 16))[0]
        assert np.all(got[16:, 16:, :] == 5) and np.array_equal(got[:16], data[:16])
    assert verify_dataset(path) == []


@pytest.mark.parametrize("dtype, channels", [("uint8", 1), ("uint16", 3), ("float32", 1), ("int64", 2)])
@pytest.mark.parametrize("block_type", [1, 2, 3])
def test_header_wkw_is_the_bytes_libwkw_writes(tmp_path: Path, dtype: str, channels: int, block_type: int) -> None:
    header = wkw.Header(voxel_type=np.dtype(dtype), num_channels=channels, block_len=16, file_len=4, block_type=block_type)
    wkw.Dataset.create(str(tmp_path / "libwkw"), header).close()
    store = MagStore.create(tmp_path / "wkview", header)
    assert (tmp_path / "wkview" / "header.wkw").read_bytes() == (tmp_path / "libwkw" / "header.wkw").read_bytes()
    got = store.header
    assert (got.voxel_type, got.num_channels, got.block_len, got.file_len, got.block_type) == (
        np.dtype(dtype), channels, 16, 4, block_type
    )
    leftovers = [p.name for p in (tmp_path / "wkview").iterdir() if p.name != "header.wkw"]
    assert leftovers == [_durable.LOCK_FOLDER]  # its lock is one of the mag's stripes, no temp stays


_KILLED_BUILD = """
import os, signal, sys
import numpy as np
import wkview
from wkview.dataset import mag_header

layer = wkview.Dataset(sys.argv[1]).get_layer("color")

def fill(view):
    view.write(np.full((1, 16, 16, 8), 3, np.uint8))
    os.kill(os.getpid(), signal.SIGKILL)  # killed half-way through the build

layer.build_mag(2, mag_header("uint8", 1, 8, 2, compress=True), fill)
"""


def test_verify_repair_removes_the_folder_of_a_killed_mag_build(tmp_path: Path) -> None:
    path = tmp_path / "ds"
    layer = Dataset.create(path, scale=(1, 1, 1)).add_layer("color", "color")
    data = (np.arange(32 * 32 * 16) % 251).astype(np.uint8).reshape(32, 32, 16)
    layer.add_mag(1, block_len=8, file_len=2, compress=True).write(data, offset=(0, 0, 0))
    proc = subprocess.run([sys.executable, "-c", _KILLED_BUILD, str(path)], timeout=300)
    assert proc.returncode == -signal.SIGKILL
    leftover = pyramid.building_path(layer.path / "2")
    assert (leftover / "z0" / "y0" / "x0.wkw").is_file()  # the killed build's data
    found = verify_dataset(path)
    assert [(d.path, d.reason, d.repaired) for d in found] == [(str(leftover), "folder of an interrupted mag build", False)]
    repaired = verify_dataset(path, repair=True)
    assert [(d.path, d.repaired) for d in repaired] == [(str(leftover), True)]
    assert not leftover.exists()
    assert verify_dataset(path) == []
    reopened = Dataset(path).get_layer("color")
    assert sorted(reopened.mags) == [wkview.Mag(1)]
    assert np.array_equal(reopened.get_mag(1).read(size=(32, 32, 16))[0], data)


def test_verify_repair_leaves_a_live_build_alone(tmp_path: Path) -> None:
    path = tmp_path / "ds"
    layer = Dataset.create(path, scale=(1, 1, 1)).add_layer("color", "color")
    layer.add_mag(1, block_len=8, file_len=2, compress=True).write(np.ones((16, 16, 16), np.uint8), offset=(0, 0, 0))
    seen = []

    def fill(view: wkview.View) -> None:
        view.write(np.full((1, 8, 8, 8), 3, np.uint8))
        seen.append(verify_dataset(path, repair=True))  # runs while this build holds the mag's lock
        assert pyramid.building_path(layer.path / "2").is_dir()

    layer.build_mag(2, mag_header("uint8", 1, 8, 2, compress=True), fill)
    assert seen == [[]]
    assert np.all(Dataset(path).get_layer("color").get_mag(2).read() == 3)


def test_compress_into_a_target_goes_through_the_codec(tmp_path: Path) -> None:
    """compress(target_path=) encodes each file with wkview's codec through the durable path
    (all-zero files too), and a damaged source file raises an error naming it."""
    mag = Dataset.create(tmp_path / "ds", scale=(1, 1, 1)).add_layer("color", "color").add_mag(
        1, block_len=8, file_len=2, compress=False
    )
    data = np.zeros((32, 16, 16), np.uint8)
    data[16:] = (np.arange(16 * 16 * 16) % 251).reshape(16, 16, 16)
    mag.write(data)
    assert mag.compress(target_path=tmp_path / "packed", level=2) is None
    packed = MagStore(tmp_path / "packed")
    assert packed.is_compressed and np.array_equal(packed.read((0, 0, 0), (32, 16, 16))[0], data)
    assert sorted(p.name for p in (tmp_path / "packed" / "z0" / "y0").iterdir()) == ["x0.wkw", "x1.wkw"]
    victim = mag.path / "z0" / "y0" / "x1.wkw"
    victim.write_bytes(victim.read_bytes()[:100])
    with pytest.raises(wkview.JobError, match="x1.wkw.*CorruptFileError|CorruptFileError.*x1.wkw"):
        mag.compress(target_path=tmp_path / "again")
    assert not [p for p in (tmp_path / "again").rglob("*.tmp")]


def test_an_encoding_that_fails_leaves_the_old_file(tmp_path: Path) -> None:
    """Images and other outputs are encoded in memory and then replace their file in one
    rename: an encoder that fails half-way leaves the old file and no temporary file."""
    path = tmp_path / "image.png"
    path.write_bytes(b"old")

    def half_then_fail(file) -> None:
        file.write(b"half of a new image")
        raise RuntimeError("encoder failed")

    with pytest.raises(RuntimeError, match="encoder failed"):
        _durable.write_encoded(path, half_then_fail, lock=False)
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["image.png"]
    _durable.write_encoded(path, lambda file: file.write(b"new"), lock=False)
    assert path.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["image.png"]

"""Reliability: racing writer processes lose nothing, properties changes merge, stale
leftovers are cleaned, read-only files and full disks fail cleanly."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import wkview
from wkview import BoundingBox, Dataset
from wkview import _durable
from wkview.repair import remove_stale_temp_files

from ._jobs import reliability_jobs as jobs

REGION = 64  # the racing writers' region: 8 files of 32^3 per mag, 16^3 cells of 4^3


def _race(tmp_path: Path, writes_per_process: int, processes: int = 4) -> None:
    path = tmp_path / "ds"
    ds = Dataset.create(path, scale=(1, 1, 1))
    ds.add_layer("compressed", "color", dtype_per_channel="uint16").add_mag(1, block_len=8, file_len=4, compress=True)
    ds.add_layer("raw", "color", dtype_per_channel="uint16").add_mag(1, block_len=8, file_len=4)
    grid = REGION // jobs.CELL
    rng = np.random.default_rng(11)
    cells = [tuple(int(v) for v in np.unravel_index(i, (grid,) * 3)) for i in rng.permutation(grid**3)]
    plans = [cells[p * writes_per_process : (p + 1) * writes_per_process] for p in range(processes)]
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    workers = [
        ctx.Process(target=jobs.race_writer, args=(str(path), ["compressed", "raw"], p, plans[p], start))
        for p in range(processes)
    ]
    for w in workers:
        w.start()
    start.set()
    for w in workers:
        w.join(300)
    assert [w.exitcode for w in workers] == [0] * processes

    expected = np.zeros((REGION,) * 3, np.uint16)
    union = BoundingBox((0, 0, 0), (0, 0, 0))
    for p, plan in enumerate(plans):
        for k, cell in enumerate(plan):
            (x, y, z), (sx, sy, sz) = jobs.cell_box(cell)
            expected[x : x + sx, y : y + sy, z : z + sz] = jobs.cell_value(p, k)
            union = union.extended_by(BoundingBox((x, y, z), (sx, sy, sz)))
    fresh = Dataset(path)
    for name in ("compressed", "raw"):
        layer = fresh.get_layer(name)
        stored = layer.get_mag(1).read_bbox(BoundingBox((0, 0, 0), (REGION,) * 3))[0]
        lost = int(np.count_nonzero(stored != expected))
        assert lost == 0, f"{name}: {lost} voxels lost or wrong"
        assert layer.bounding_box == union  # every growth merged, none lost
    leftovers = [p for p in path.rglob("*") if p.name.endswith((".tmp", ".undo", ".old"))]
    assert leftovers == []


def test_racing_writers_lose_nothing(tmp_path: Path) -> None:
    """4 processes, each its own Dataset, 25 unaligned writes each into shared files."""
    _race(tmp_path, 25)


@pytest.mark.slow
def test_racing_writers_lose_nothing_full(tmp_path: Path) -> None:
    """The issue's size: 4 processes x 200 unaligned writes into a compressed and a raw mag."""
    _race(tmp_path, 200)


def test_multi_file_writes_neither_deadlock_nor_lose(tmp_path: Path) -> None:
    """4 processes write boxes spanning up to 4 files each (their locks taken in one order)
    into the same files; each process owns every 4th z-plane, so all are kept."""
    path = tmp_path / "ds"
    ds = Dataset.create(path, scale=(1, 1, 1))
    ds.add_layer("compressed", "color", dtype_per_channel="uint16").add_mag(1, block_len=8, file_len=4, compress=True)
    ds.add_layer("raw", "color", dtype_per_channel="uint16").add_mag(1, block_len=8, file_len=4)
    rng = np.random.default_rng(5)
    plans = []
    for p in range(4):
        boxes = []
        for k in range(30):
            x, y = (int(v) for v in rng.integers(0, REGION - 40, 2))
            z = int(rng.integers(0, REGION // 4)) * 4 + p
            boxes.append(((x, y, z), (40, 40, 1), 1 + p * 100 + k))
        plans.append(boxes)
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    workers = [ctx.Process(target=jobs.plane_writer, args=(str(path), ["compressed", "raw"], plans[p], start)) for p in range(4)]
    for w in workers:
        w.start()
    start.set()
    for w in workers:
        w.join(120)
    hung = [w for w in workers if w.is_alive()]
    for w in hung:
        w.kill()
    assert not hung, "writers deadlocked"
    assert [w.exitcode for w in workers] == [0] * 4
    expected = np.zeros((REGION,) * 3, np.uint16)
    for boxes in plans:
        for (x, y, z), (sx, sy, sz), value in boxes:
            expected[x : x + sx, y : y + sy, z : z + sz] = value
    fresh = Dataset(path)
    for name in ("compressed", "raw"):
        stored = fresh.get_layer(name).get_mag(1).read_bbox(BoundingBox((0, 0, 0), (REGION,) * 3))[0]
        assert np.array_equal(stored, expected), name


# -- properties merge -------------------------------------------------------------------


def test_two_datasets_merge_their_changes(tmp_path: Path) -> None:
    """Two Dataset objects (as two processes would) change the same file: both changes survive."""
    path = tmp_path / "ds"
    Dataset.create(path, scale=(1, 1, 1)).add_layer("color", "color").add_mag(1, block_len=8, file_len=2)
    a, b = Dataset(path), Dataset(path)
    a.get_layer("color").get_mag(1).write(np.ones((4, 4, 4), np.uint8), offset=(0, 0, 0))
    b.get_layer("color").get_mag(1).write(np.ones((4, 4, 4), np.uint8), offset=(20, 20, 20))
    b.add_layer("seg", "segmentation", largest_segment_id=5)
    a.get_layer("color").add_mag(2, block_len=8, file_len=2)
    fresh = Dataset(path)
    assert fresh.get_layer("color").bounding_box == BoundingBox((0, 0, 0), (24, 24, 24))
    assert sorted(fresh.layers) == ["color", "seg"]
    assert sorted(m.to_layer_name() for m in fresh.get_layer("color").mags) == ["1", "2"]
    # a learned b's layer while saving
    assert "seg" in a.layers
    # a deletion is a change too: b deletes the layer a knows, a's next save keeps it deleted
    b.delete_layer("seg")
    a.get_layer("color").bounding_box = BoundingBox((0, 0, 0), (30, 30, 30))
    fresh = Dataset(path)
    assert sorted(fresh.layers) == ["color"]
    assert fresh.get_layer("color").bounding_box == BoundingBox((0, 0, 0), (30, 30, 30))  # an explicit set


def test_explicit_shrink_wins_over_merge(tmp_path: Path) -> None:
    path = tmp_path / "ds"
    Dataset.create(path, scale=(1, 1, 1)).add_layer("color", "color").add_mag(1, block_len=8, file_len=2)
    ds = Dataset(path)
    ds.get_layer("color").bounding_box = BoundingBox((0, 0, 0), (50, 50, 50))
    ds.get_layer("color").bounding_box = BoundingBox((0, 0, 0), (10, 10, 10))
    assert Dataset(path).get_layer("color").bounding_box == BoundingBox((0, 0, 0), (10, 10, 10))


def test_locking_off_writes_without_rereading(tmp_path: Path) -> None:
    """A sole writer (locks off): the last save wins, no lock files are made by data writes."""
    path = tmp_path / "ds"
    mag = Dataset.create(path, scale=(1, 1, 1)).add_layer("color", "color").add_mag(1, block_len=8, file_len=2, compress=True)
    made = set((path / "color" / "1").rglob("*.lock"))  # header.wkw's stripe, taken by add_mag
    wkview.set_locking(False)
    try:
        assert not wkview.locking_enabled()
        mag.write(np.ones((16, 16, 16), np.uint8), offset=(0, 0, 0))
        assert set((path / "color" / "1").rglob("*.lock")) == made
    finally:
        wkview.set_locking(None)
    assert wkview.locking_enabled()
    assert np.array_equal(Dataset(path).get_layer("color").get_mag(1).read(size=(16, 16, 16))[0], np.ones((16,) * 3))


def test_settings_from_environment() -> None:
    code = "import wkview; print(wkview.locking_enabled(), wkview.fsync_enabled())"
    env = dict(os.environ, WKVIEW_LOCKING="0", WKVIEW_FSYNC="0")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
    env["WKVIEW_FSYNC"] = "maybe"
    bad = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert bad.returncode != 0 and "WKVIEW_FSYNC must be 1 or 0" in bad.stderr
    with pytest.raises(TypeError):
        wkview.set_fsync("no")  # type: ignore[arg-type]


# -- stale temporary files --------------------------------------------------------------


def _compressed_dataset(path: Path) -> wkview.MagView:
    mag = Dataset.create(path, scale=(1, 1, 1)).add_layer("color", "color").add_mag(1, block_len=8, file_len=2, compress=True)
    mag.write(np.full((32, 16, 16), 7, np.uint8), offset=(0, 0, 0))
    return mag


def test_next_write_removes_stale_temp_files(tmp_path: Path, quiet_unaligned: None) -> None:
    mag = _compressed_dataset(tmp_path / "ds")
    folder = tmp_path / "ds" / "color" / "1" / "z0" / "y0"
    stale = folder / ".x0.wkw.deadbeef.tmp"
    stale.write_bytes(b"half a file of a killed writer")
    other = folder / ".x1.wkw.cafe.tmp"
    other.write_bytes(b"x")
    assert sorted(p.name for p in folder.glob("x*.wkw")) == ["x0.wkw", "x1.wkw"]  # never data
    assert np.all(mag.read(size=(32, 16, 16)) == 7)
    mag.write(np.full((2, 2, 2), 9, np.uint8), offset=(1, 1, 1))  # touches x0.wkw only
    assert not stale.exists() and other.exists()
    assert remove_stale_temp_files(tmp_path / "ds") == [other]
    assert not other.exists()


def test_repair_leaves_a_live_writers_temp_file(tmp_path: Path) -> None:
    _compressed_dataset(tmp_path / "ds")
    target = str(tmp_path / "ds" / "color" / "1" / "z0" / "y0" / "x0.wkw")
    live = Path(target).with_name(".x0.wkw.1234.tmp")
    live.write_bytes(b"being written")
    with _durable.locked([target]):  # as a live writer holds it
        code = (
            "import sys, wkview.repair as r; "
            "print(len(r.remove_stale_temp_files(sys.argv[1])))"
        )
        out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "ds")], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "0" and live.exists()
    assert remove_stale_temp_files(tmp_path / "ds") == [live]


def test_repair_rolls_back_an_unfinished_raw_write(tmp_path: Path) -> None:
    path = tmp_path / "ds"
    mag = Dataset.create(path, scale=(1, 1, 1)).add_layer("color", "color").add_mag(1, block_len=8, file_len=2)
    mag.write(np.full((16, 16, 16), 3, np.uint8), offset=(0, 0, 0))
    target = str(path / "color" / "1" / "z0" / "y0" / "x0.wkw")
    # what a writer killed after saving its undo journal and half its blocks leaves behind
    with _durable.locked([target]):
        journal = _durable.begin_raw_undo(target, [(0, 16), (16, 512)])
        with open(target, "r+b") as f:
            f.seek(16)
            f.write(b"\x55" * 300)
    assert Path(journal).exists()
    # and what writers killed at other moments leave: a journal never finished, an old
    # file moved aside whose replacement was complete, a header work folder long gone stale
    part = Path(target).with_name(".x1.wkw.undo.part")
    part.write_bytes(b"WKV")
    aside = Path(target).with_name(".x2.wkw.old")
    aside.write_bytes(b"old")
    header_work = path / "color" / "1" / ".header-abc.tmp"
    header_work.mkdir()
    os.utime(header_work, (0, 0))
    assert remove_stale_temp_files(path) == sorted([Path(journal), part, aside, header_work])
    assert np.all(Dataset(path).get_layer("color").get_mag(1).read(size=(16, 16, 16)) == 3)
    assert remove_stale_temp_files(path) == []


# -- read-only files and full disks -----------------------------------------------------


def _without_override(code: str, *args: str) -> subprocess.CompletedProcess:
    """Run ``code`` where file permissions apply: as root (CI), without the capabilities
    that let root ignore them (setpriv from util-linux)."""
    command = [sys.executable, "-c", code, *args]
    if os.getuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv: file permissions cannot be enforced")
        command = ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner,-linux_immutable", *command]
    return subprocess.run(command, capture_output=True, text=True)


def test_read_only_dataset_reads_and_refuses_writes(tmp_path: Path) -> None:
    base = tmp_path / "ro"
    base.mkdir()
    try:
        path = base / "ds"
        mag = _compressed_dataset(path)
        raw = Dataset(path).add_layer("raw", "color").add_mag(1, block_len=8, file_len=2)
        raw.write(np.full((16, 16, 16), 5, np.uint8), offset=(0, 0, 0))
        del mag, raw
        for p in [base, *base.rglob("*")]:
            p.chmod(0o555 if p.is_dir() else 0o444)
        before = {str(p): p.read_bytes() for p in base.rglob("*") if p.is_file()}
        code = """
import sys, warnings, numpy as np, wkview
warnings.simplefilter("ignore")
ds = wkview.Dataset(sys.argv[1])
for name in ("color", "raw"):
    mag = ds.get_layer(name).get_mag(1)
    assert mag.read(size=(16, 16, 16)).min() > 0
    try:
        mag.write(np.full((4, 4, 4), 9, np.uint8), offset=(1, 1, 1))
    except PermissionError as exc:
        print(name, "refused:", exc)
try:
    ds.get_layer("color").bounding_box = wkview.BoundingBox((0, 0, 0), (99, 99, 99))
except PermissionError as exc:
    print("properties refused:", exc)
"""
        out = _without_override(code, str(path))
        assert out.returncode == 0, out.stderr
        assert "color refused:" in out.stdout and "raw refused:" in out.stdout and "properties refused:" in out.stdout
        assert "cannot write" in out.stdout
        after = {str(p): p.read_bytes() for p in base.rglob("*") if p.is_file()}
        assert after == before  # nothing changed, nothing left
    finally:
        for p in [base, *base.rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)


def _fill(folder: Path, leave: int, name: str = "filler") -> None:
    st = os.statvfs(folder)
    free = st.f_bavail * st.f_frsize
    with open(folder / name, "wb") as f:
        f.write(b"\1" * max(0, free - leave))


def test_disk_full_keeps_old_files(small_disk: Path, quiet_unaligned: None) -> None:
    path = small_disk / "ds"
    ds = Dataset.create(path, scale=(1, 1, 1))
    comp = ds.add_layer("color", "color").add_mag(1, block_len=8, file_len=4, compress=True)  # 32^3 files
    raw = ds.add_layer("raw", "color").add_mag(1, block_len=8, file_len=2)
    old = np.zeros((32, 32, 32), np.uint8)
    comp.write(old, offset=(0, 0, 0))
    raw.write(np.full((16, 16, 16), 4, np.uint8), offset=(0, 0, 0))
    _fill(small_disk, 16 << 10)
    noise = np.random.default_rng(0).integers(1, 255, (32, 32, 32), dtype=np.uint8)  # does not compress
    with pytest.raises(OSError, match="No space left on device.*old files are unchanged"):
        comp.write(noise, offset=(0, 0, 0))
    assert np.array_equal(comp.read(size=(32, 32, 32))[0], old)
    _fill(small_disk, 1 << 10, "filler2")
    with pytest.raises(OSError):
        raw.write(noise[:16, :16, :16], offset=(16, 0, 0))  # a new raw file that does not fit
    assert np.all(raw.read(size=(16, 16, 16)) == 4)
    assert not (path / "raw" / "1" / "z0" / "y0" / "x1.wkw").exists()
    leftovers = [p for p in path.rglob("*") if p.name.endswith((".tmp", ".undo", ".old", ".part"))]
    assert leftovers == []
    (small_disk / "filler").unlink()
    (small_disk / "filler2").unlink()
    comp.write(noise, offset=(0, 0, 0))  # with space again, the same write works
    assert np.array_equal(comp.read(size=(32, 32, 32))[0], noise)


def test_disk_full_properties(small_disk: Path) -> None:
    path = small_disk / "ds"
    ds = Dataset.create(path, scale=(1, 1, 1))
    ds.add_layer("color", "color")
    before = (path / "datasource-properties.json").read_bytes()
    _fill(small_disk, 0)
    with pytest.raises(OSError, match="No space left on device.*old file is unchanged"):
        ds.get_layer("color").bounding_box = BoundingBox((0, 0, 0), (5, 5, 5))
    assert (path / "datasource-properties.json").read_bytes() == before
    Dataset(path)  # still opens
    assert [p for p in path.rglob("*.tmp")] == []

"""kill -9 at random moments: compressed writes, raw writes, properties saves, downsampling,
compress. After each kill every data file reads as its old or its new content, the dataset
opens, no temporary file is taken for data, and rerunning the operation finishes it.

Writer processes are forked from a forkserver that has wkview imported, so one trial
costs a few milliseconds of process start; the writer loops the operation until it is
killed, so the kill lands anywhere inside it.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import random
import shutil
import signal
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

from wkview import BoundingBox, Dataset
from wkview.repair import remove_stale_temp_files

from ._jobs import reliability_jobs as jobs

#: trials per operation (>= 200 in all)
TRIALS = {"compressed": 60, "raw": 60, "properties": 40, "downsample": 25, "compress": 25}

EDGE = 16  # files of 16^3 voxels (blocks of 8^3, 2 per file edge)
SHAPE = (32, 32, 16)  # 4 files
BOX_AT, BOX = (3, 5, 2), (26, 22, 12)  # covers every file partly


@pytest.fixture(scope="module")
def ctx() -> Any:
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["wkview", "tests._jobs.reliability_jobs"])
    return context


def _kill_trial(ctx: Any, target: Callable, args: tuple, delay: float) -> None:
    """Start ``target(*args, ready)``, wait until it is ready, then kill -9 it after ``delay``."""
    ready = ctx.Event()
    proc = ctx.Process(target=target, args=(*args, ready))
    proc.start()
    if not ready.wait(30):
        proc.kill()
        raise AssertionError("the writer did not start")
    time.sleep(delay)
    with contextlib.suppress(ProcessLookupError):  # a one-shot operation may have ended
        os.kill(proc.pid, signal.SIGKILL)
    proc.join(30)
    assert proc.exitcode in (-signal.SIGKILL, 0)


def _files(mag_path: Path) -> list[Path]:
    return sorted(mag_path.glob("z*/y*/x*.wkw"))


def _no_temp_as_data(path: Path) -> None:
    """Leftovers of the killed writer are hidden files: never listed as data files."""
    for p in path.rglob("*"):
        if p.name.endswith((".tmp", ".undo", ".part", ".old")):
            assert p.name.startswith("."), p


def _versions(seed: int) -> tuple[np.ndarray, list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    base = rng.integers(1, 200, SHAPE, dtype=np.uint8)
    box_a = base[tuple(slice(o, o + s) for o, s in zip(BOX_AT, BOX))].copy()
    box_b = rng.integers(1, 200, BOX, dtype=np.uint8)
    return base, [box_b[None], box_a[None]]


def _file_states(full: np.ndarray) -> dict[tuple[int, int, int], np.ndarray]:
    return {
        (x, y, z): full[x * EDGE : (x + 1) * EDGE, y * EDGE : (y + 1) * EDGE, z * EDGE : (z + 1) * EDGE]
        for x in range(SHAPE[0] // EDGE)
        for y in range(SHAPE[1] // EDGE)
        for z in range(SHAPE[2] // EDGE)
    }


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["compressed", "raw"])
def test_kill_during_writes(ctx: Any, tmp_path: Path, kind: str, quiet_unaligned: None) -> None:
    base, versions = _versions(1)
    template = tmp_path / "template"
    mag = Dataset.create(template, scale=(1, 1, 1)).add_layer("color", "color").add_mag(
        1, block_len=8, file_len=2, compress=kind == "compressed"
    )
    mag.write(base, offset=(0, 0, 0))
    old = _file_states(base)
    new_full = base.copy()
    new_full[tuple(slice(o, o + s) for o, s in zip(BOX_AT, BOX))] = versions[0][0]
    new = _file_states(new_full)
    rng = random.Random(7)
    outcomes = {"old": 0, "new": 0}
    for trial in range(TRIALS[kind]):
        path = Path(shutil.copytree(template, tmp_path / f"t{trial}"))
        _kill_trial(ctx, jobs.loop_writes, (str(path), "color", BOX_AT, versions), rng.uniform(0, 0.03))
        _no_temp_as_data(path)
        mag = Dataset(path).get_layer("color").get_mag(1)
        assert len(_files(path / "color" / "1")) == len(old)
        stored = mag.read(size=SHAPE)[0]
        for index, state in _file_states(stored).items():
            if np.array_equal(state, old[index]):
                outcomes["old"] += 1
            elif np.array_equal(state, new[index]):
                outcomes["new"] += 1
            else:
                raise AssertionError(f"trial {trial}: file {index} is neither its old nor its new content")
        mag.write(versions[0], offset=BOX_AT)  # rerun: finishes, and cleans up
        assert np.array_equal(mag.read(size=SHAPE)[0], new_full)
        remove_stale_temp_files(path)
        assert [p for p in path.rglob("*") if p.name.endswith((".tmp", ".undo", ".part", ".old"))] == []
        shutil.rmtree(path)
    assert outcomes["old"] and outcomes["new"]  # the kills landed on both sides


@pytest.mark.slow
def test_kill_during_properties_saves(ctx: Any, tmp_path: Path) -> None:
    template = tmp_path / "template"
    ds = Dataset.create(template, scale=(1, 1, 1))
    ds.add_layer("color", "color").add_mag(1, block_len=8, file_len=2)
    boxes = [BoundingBox((0, 0, 0), (10, 20, 30)), BoundingBox((5, 5, 5), (100, 1, 7))]
    rng = random.Random(8)
    seen = set()
    for trial in range(TRIALS["properties"]):
        path = Path(shutil.copytree(template, tmp_path / f"t{trial}"))
        _kill_trial(ctx, jobs.loop_property_saves, (str(path), boxes), rng.uniform(0, 0.02))
        _no_temp_as_data(path)
        layer = Dataset(path).get_layer("color")  # opens: the file is whole
        assert layer.bounding_box in (*boxes, BoundingBox((0, 0, 0), (0, 0, 0)))
        seen.add(layer.bounding_box)
        layer.bounding_box = boxes[0]  # rerun
        assert Dataset(path).get_layer("color").bounding_box == boxes[0]
        assert list(path.glob(".datasource-properties.json.*.tmp")) == []
        shutil.rmtree(path)
    assert len(seen) >= 2


def _expected_mag2(data: np.ndarray) -> np.ndarray:
    x, y, z = (s // 2 for s in data.shape)
    return data.reshape(x, 2, y, 2, z, 2).max(axis=(1, 3, 5))


@pytest.mark.slow
def test_kill_during_downsampling(ctx: Any, tmp_path: Path) -> None:
    data = np.random.default_rng(3).integers(1, 250, (64, 64, 32), dtype=np.uint8)
    template = tmp_path / "template"
    mag1 = Dataset.create(template, scale=(1, 1, 1)).add_layer("color", "color").add_mag(
        1, block_len=8, file_len=2, compress=True
    )
    mag1.write(data, offset=(0, 0, 0))
    expected = _expected_mag2(data)
    rng = random.Random(9)
    for trial in range(TRIALS["downsample"]):
        path = Path(shutil.copytree(template, tmp_path / f"t{trial}"))
        _kill_trial(ctx, jobs.loop_downsample, (str(path),), rng.uniform(0, 0.15))
        _no_temp_as_data(path)
        layer = Dataset(path).get_layer("color")
        if any(m.to_layer_name() == "2" for m in layer.mags):
            mag2 = layer.get_mag(2)
            for box in mag2.get_bounding_boxes_on_disk():  # every file there is complete and right
                got = mag2.read(offset=box.topleft, size=box.size)[0]
                (x, y, z), (sx, sy, sz) = box.topleft, box.size
                assert np.array_equal(got, expected[x : x + sx, y : y + sy, z : z + sz])
        layer.downsample_mag(1, 2, interpolation_mode="max", compress=True)  # rerun
        assert np.array_equal(Dataset(path).get_layer("color").get_mag(2).read(size=expected.shape)[0], expected)
        shutil.rmtree(path)


@pytest.mark.slow
def test_kill_during_compress(ctx: Any, tmp_path: Path) -> None:
    data = np.random.default_rng(4).integers(0, 4, (64, 64, 32), dtype=np.uint8)
    template = tmp_path / "template"
    Dataset.create(template, scale=(1, 1, 1)).add_layer("color", "color").add_mag(
        1, block_len=8, file_len=2
    ).write(data, offset=(0, 0, 0))
    probe = Path(shutil.copytree(template, tmp_path / "probe"))
    started = time.perf_counter()
    Dataset(probe).get_layer("color").get_mag(1).compress()
    duration = time.perf_counter() - started
    rng = random.Random(10)
    compressed = 0
    for trial in range(TRIALS["compress"]):
        path = Path(shutil.copytree(template, tmp_path / f"t{trial}"))
        _kill_trial(ctx, jobs.run_compress, (str(path),), rng.uniform(0, 1.3 * duration))
        _no_temp_as_data(path)
        mag = Dataset(path).get_layer("color").get_mag(1)  # opens (a half swap is finished)
        compressed += mag._store.is_compressed
        assert np.array_equal(mag.read(size=data.shape)[0], data)
        mag.compress()  # rerun
        fresh = Dataset(path).get_layer("color").get_mag(1)
        assert fresh._store.is_compressed
        assert np.array_equal(fresh.read(size=data.shape)[0], data)
        assert [p.name for p in (path / "color").iterdir() if p.is_dir()] == ["1"]
        shutil.rmtree(path)
    print(f"compress: {compressed} of {TRIALS['compress']} kills came after the swap")

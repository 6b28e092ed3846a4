"""Cost of cross-process locks and fsync, as pytest-benchmark tests (group ``reliability``).

The 8^3 small edit and the aligned write of ``bench/compare.py``, with locks and fsync
on (the default) and off. The normal test run runs each once on a 64^3 cube and checks
the result; ``./run.sh bench -k reliability`` gives numbers (``WKVIEW_BENCH_FULL=1``:
512^3). ``bench/reliability_cost.py`` runs the same side by side, interleaved, with
32^3 reads too: the figures in the README come from it.
"""

from __future__ import annotations

import itertools
import os
import shutil
import sys
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
import _workloads as W  # noqa: E402

import wkview  # noqa: E402

FULL = os.environ.get("WKVIEW_BENCH_FULL") == "1"
N = 512 if FULL else 64
GEO = W.Geometry(N)
_counter = itertools.count()


@pytest.fixture(scope="module")
def data() -> np.ndarray:
    return W.load_data(N)


@pytest.fixture(params=["on", "off"])
def safety(request: pytest.FixtureRequest) -> Iterator[str]:
    enabled = request.param == "on"
    wkview.set_locking(enabled)
    wkview.set_fsync(enabled)
    yield request.param
    wkview.set_locking(None)
    wkview.set_fsync(None)


def test_small_edit(benchmark, tmp_path: Path, data: np.ndarray, safety: str) -> None:  # type: ignore[no-untyped-def]
    benchmark.group = "reliability small_edit"
    lib = W.make_lib("wkview")
    lib.create_filled(tmp_path / "filled", GEO, data)
    mag = lib.open(tmp_path / "filled")
    edit = GEO.edit_data(data)
    benchmark(lib.write_unaligned, mag, edit, GEO.unaligned_offset)
    assert np.array_equal(lib.read_box(mag, (0, 0, 0), GEO.shape), GEO.edit_expected(data))


def test_aligned_write(benchmark, tmp_path: Path, data: np.ndarray, safety: str) -> None:  # type: ignore[no-untyped-def]
    benchmark.group = "reliability aligned_write"
    lib = W.make_lib("wkview")
    made: list[tuple[Path, object]] = []

    def setup():  # type: ignore[no-untyped-def]
        if made:
            old_path, old_target = made.pop()
            lib.close(old_target)
            shutil.rmtree(old_path, ignore_errors=True)
        path = tmp_path / f"aligned-{next(_counter)}"
        target = lib.create_empty(path, GEO)
        made.append((path, target))
        return (target,), {}

    benchmark.pedantic(lambda target: lib.write_aligned(target, data), setup=setup, rounds=3 if FULL else 5)
    path, target = made[-1]
    assert np.array_equal(lib.read_box(target, (0, 0, 0), GEO.shape), data)


def test_lock_cost(benchmark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """What the lock of one data file costs a write: its stripe, the lock file opened and
    flocked, the scan for a dead writer's temporary files, the release."""
    from wkview import _durable

    benchmark.group = "reliability lock"
    mag = tmp_path / "color" / "1"
    folder = mag / "z0" / "y0"
    folder.mkdir(parents=True)
    for x in range(8):  # a y-folder of 8 files, as the 512^3 cube of compare.py has
        (folder / f"x{x}.wkw").write_bytes(b"")
    path = str(folder / "x3.wkw")

    def lock_once() -> None:
        with _durable.locked([path]):
            _durable.remove_stale_temps_locked(path)

    benchmark(lock_once)
    assert sorted(os.listdir(mag)) == [_durable.LOCK_FOLDER, "z0"]
    assert sorted(os.listdir(folder)) == [f"x{x}.wkw" for x in range(8)]  # no lock file beside them

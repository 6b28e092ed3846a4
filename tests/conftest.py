"""Shared fixtures: small real WKW mags (through libwkw) and a NumPy oracle."""

from __future__ import annotations

import os
import subprocess
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import pytest
import wkw
from hypothesis import settings

from wkview._storage import MagStore
from wkview.view import View

RAW, LZ4, LZ4HC = wkw.Header.BLOCK_TYPE_RAW, wkw.Header.BLOCK_TYPE_LZ4, wkw.Header.BLOCK_TYPE_LZ4HC
BLOCK_TYPES = {"raw": RAW, "lz4": LZ4, "lz4hc": LZ4HC}

ALL_DTYPES = [
    np.uint8, np.uint16, np.uint32, np.uint64,
    np.int8, np.int16, np.int32, np.int64,
    np.float32, np.float64,
]


#: ``WKVIEW_TEST_FULL=1`` (set by .ci/run): every property test runs its full example count;
#: ``./run.sh test`` runs a quarter of it, so the default run stays quick while CI keeps the volume
FULL_EXAMPLES = os.environ.get("WKVIEW_TEST_FULL") == "1"
QUICK_SHARE = 4
# for property tests without their own count (hypothesis' default is 100 examples)
settings.register_profile("wkview-quick", max_examples=100 // QUICK_SHARE)
if not FULL_EXAMPLES:
    settings.load_profile("wkview-quick")


def examples(full: int) -> int:
    """The example count of a property test: ``full`` in CI, a quarter of it (at least 10) in
    the default run."""
    return full if FULL_EXAMPLES else max(full // QUICK_SHARE, 10)


def random_data(rng: np.random.Generator, shape: tuple[int, ...], dtype: type) -> np.ndarray:
    """Random voxels covering the dtype's range (no zeros, so a lost write shows)."""
    dt = np.dtype(dtype)
    if dt.kind == "f":
        return (rng.random(shape) * 1000 + 1).astype(dt)
    info = np.iinfo(dt)
    lo = max(info.min, -(2**31))
    hi = min(info.max, 2**31 - 1)
    data = rng.integers(lo, hi, size=shape, dtype=np.int64, endpoint=True).astype(dt)
    data[data == 0] = 1
    return data


def make_mag(
    path: Path,
    dtype: type = np.uint8,
    channels: int = 1,
    block_type: int = RAW,
    block_len: int = 8,
    file_len: int = 2,
    codec: str | None = None,
) -> MagStore:
    """A real mag folder: small files (16 voxels per edge by default) so tests cross file borders cheaply."""
    header = wkw.Header(dtype, num_channels=channels, block_len=block_len, file_len=file_len, block_type=block_type)
    store = MagStore.create(path, header)
    if codec is not None:
        store.codec = codec
    return store


@pytest.fixture(scope="session")
def multiprocessing_executor() -> Iterator[Any]:
    """One pool of two worker processes (wkview's "multiprocessing" executor) for the tests
    that run their jobs on worker processes without testing the pool itself: starting a
    pool's workers costs more CPU than those tests' jobs. Tests of a pool's own behaviour
    (failures, cancelling, killed workers, settings reaching new workers) make their own."""
    from wkview import get_executor

    with get_executor("multiprocessing", max_workers=2) as executor:
        yield executor


@pytest.fixture
def view_factory(tmp_path: Path) -> Callable[..., View]:
    counter = iter(range(10**6))

    def factory(
        size: tuple[int, int, int] = (48, 40, 36),
        offset: tuple[int, int, int] = (0, 0, 0),
        dtype: type = np.uint8,
        channels: int = 1,
        block_type: int = RAW,
        block_len: int = 8,
        file_len: int = 2,
        read_only: bool = False,
        codec: str | None = None,
    ) -> View:
        store = make_mag(tmp_path / f"mag{next(counter)}", dtype, channels, block_type, block_len, file_len, codec)
        return View(store.path, store.header, size=size, global_offset=offset, read_only=read_only, _store=store)

    return factory


@pytest.fixture
def quiet_unaligned():
    """Silence the expected RuntimeWarning of unaligned compressed writes."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=RuntimeWarning, message=r"write\(\)")
        yield


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 3 MiB tmpfs (CI runs as root); skipped where mounting is not allowed."""
    mount = tmp_path / "small"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {result.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)  # lazy: cached descriptors may linger

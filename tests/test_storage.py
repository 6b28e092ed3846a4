"""The storage fast paths (parallel slab reads, per-file parallel writes) against the simple path.

The simple path is one libwkw call on the whole box (reads) and a NumPy oracle (writes).
"""

from __future__ import annotations

import gc
import warnings
from pathlib import Path

import numpy as np
import pytest
import wkw
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import wkview
from wkview import _storage
from wkview._storage import _slabs, get_io_threads, set_io_threads

from .conftest import LZ4HC, RAW, examples, make_mag, random_data

EDGE = 40  # the volume edge used by the property tests (files are 16^3)


@pytest.fixture
def io_threads():
    before = get_io_threads()
    yield set_io_threads
    set_io_threads(before)


boxes = st.tuples(
    st.tuples(*[st.integers(0, EDGE - 1)] * 3),
    st.tuples(*[st.integers(1, 24)] * 3),
).map(lambda b: (b[0], tuple(min(s, EDGE - o) for o, s in zip(*b))))


@settings(max_examples=examples(40), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    writes=st.lists(boxes, min_size=1, max_size=5),
    reads=st.lists(boxes, min_size=1, max_size=4),
    threads=st.sampled_from([1, 2, 3]),
    block_type=st.sampled_from([RAW, LZ4HC]),
    channels=st.sampled_from([1, 2]),
    codec=st.sampled_from(["wkview", "libwkw"]),
    read_codec=st.sampled_from(["wkview", "libwkw"]),
    seed=st.integers(0, 2**16),
)
def test_fast_paths_equal_simple_paths(
    tmp_path_factory, io_threads, writes, reads, threads, block_type, channels, codec, read_codec, seed
):
    io_threads(threads)
    store = make_mag(tmp_path_factory.mktemp("mag"), np.uint16, channels, block_type, codec=codec)
    oracle = np.zeros((channels, EDGE, EDGE, EDGE), np.uint16)
    rng = np.random.default_rng(seed)
    for offset, size in writes:
        data = random_data(rng, (channels, *size), np.uint16)
        if rng.integers(2):
            data = np.asfortranarray(data)
        store.write(offset, data)
        oracle[(slice(None), *(slice(o, o + s) for o, s in zip(offset, size)))] = data
    store.codec = read_codec  # files written by either codec, read by either
    simple = wkw.Dataset.open(str(store.path))
    try:
        for offset, size in reads + [((0, 0, 0), (EDGE, EDGE, EDGE))]:
            fast = store.read(offset, size)
            expected = oracle[(slice(None), *(slice(o, o + s) for o, s in zip(offset, size)))]
            assert fast.flags.f_contiguous
            assert np.array_equal(fast, expected)
            assert np.array_equal(fast, simple.read(offset, size))
    finally:
        simple.close()


@settings(max_examples=examples(300), deadline=None)
@given(
    start=st.integers(-1000, 1000),
    length=st.integers(1, 500),
    grid=st.integers(1, 64),
    pieces=st.integers(1, 8),
)
def test_slabs_tile_the_range_with_cuts_on_the_grid(start, length, grid, pieces):
    slabs = _slabs(start, length, grid, pieces)
    assert 1 <= len(slabs) <= pieces
    assert slabs[0][0] == start
    assert sum(n for _, n in slabs) == length
    for (a, n), (b, _) in zip(slabs, slabs[1:]):
        assert a + n == b and b % grid == 0 and n > 0


def test_read_of_missing_files_returns_zeros_without_libwkw(tmp_path, monkeypatch):
    store = make_mag(tmp_path / "m", block_type=LZ4HC)
    monkeypatch.setattr(store, "_get_handle", lambda: pytest.fail("no file exists: nothing to read"))
    assert store.read((0, 0, 0), (40, 40, 40)).sum() == 0


def test_io_thread_setting(io_threads, monkeypatch):
    io_threads(3)
    assert get_io_threads() == 3
    with pytest.raises(ValueError):
        set_io_threads(0)
    io_threads(None)
    monkeypatch.setenv("WKVIEW_IO_THREADS", "5")
    assert get_io_threads() == 5
    monkeypatch.setenv("WKVIEW_IO_THREADS", "many")
    io_threads(None)
    with pytest.raises(ValueError, match="WKVIEW_IO_THREADS"):
        get_io_threads()
    monkeypatch.delenv("WKVIEW_IO_THREADS")
    io_threads(None)


def test_error_in_one_file_task_is_raised_after_all_finish(tmp_path, io_threads):
    io_threads(2)
    store = make_mag(tmp_path / "m", block_type=LZ4HC)
    store.write((0, 0, 0), np.ones((1, 32, 32, 32), np.uint8))
    (tmp_path / "m" / "z1" / "y1" / "x1.wkw").write_bytes(b"")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(wkview.CorruptFileError, match="x1.wkw"):
            store.write((1, 1, 1), np.full((1, 30, 30, 30), 2, np.uint8))


aligned_boxes = st.tuples(
    st.tuples(*[st.integers(0, 2)] * 3), st.tuples(*[st.integers(1, 3)] * 3)
).map(lambda b: (tuple(16 * o for o in b[0]), tuple(16 * min(s, 3 - o) if o < 3 else 16 for o, s in zip(*b))))


@settings(max_examples=examples(30), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    writes=st.lists(aligned_boxes, min_size=1, max_size=4),
    threads=st.sampled_from([1, 2, 3]),
    block_type=st.sampled_from([RAW, LZ4HC]),
    order=st.sampled_from(["C", "F"]),
    codec=st.sampled_from(["wkview", "libwkw"]),
    seed=st.integers(0, 2**16),
)
def test_file_aligned_slab_writes_equal_numpy(tmp_path_factory, io_threads, writes, threads, block_type, order, codec, seed):
    """Aligned writes (the no-copy z-slab path when Fortran-ordered) against NumPy and one libwkw read."""
    io_threads(threads)
    monkey = pytest.MonkeyPatch()
    monkey.setattr(_storage, "PARALLEL_MIN_BYTES", 0)  # use the pool even for these small boxes
    try:
        store = make_mag(tmp_path_factory.mktemp("mag"), np.uint8, 1, block_type, codec=codec)
        n = 64
        oracle = np.zeros((1, n, n, n), np.uint8)
        rng = np.random.default_rng(seed)
        for offset, size in writes:
            data = np.asarray(random_data(rng, (1, *size), np.uint8), order=order)
            store.write(offset, data)
            oracle[(slice(None), *(slice(o, o + s) for o, s in zip(offset, size)))] = data
        simple = wkw.Dataset.open(str(store.path))
        try:
            assert np.array_equal(simple.read((0, 0, 0), (n, n, n)), oracle)
        finally:
            simple.close()
        assert np.array_equal(store.read((0, 0, 0), (n, n, n)), oracle)
    finally:
        monkey.undo()


def test_a_collected_store_closes_its_libwkw_handle_later_not_during_collection(tmp_path: Path) -> None:
    # A garbage collection can run MagStore.__del__ while the same thread is inside cffi,
    # holding its lock; libwkw's close needs that lock, so closing there deadlocked
    # (seen in test_reliability under load). __del__ only hands the handle on.
    store = make_mag(tmp_path / "a")
    handle = store._get_handle()
    closed: list[bool] = []
    real_close = handle.close
    handle.close = lambda: (closed.append(True), real_close())
    del store
    gc.collect()
    assert closed == [] and any(h is handle for h in _storage._ORPHANED_HANDLES)
    other = make_mag(tmp_path / "b")
    other._get_handle()  # the next store that opens a handle closes the orphaned ones
    assert closed == [True] and not any(h is handle for h in _storage._ORPHANED_HANDLES)
    other.close()

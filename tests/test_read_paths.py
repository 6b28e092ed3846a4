"""Every read path of the codec against NumPy and libwkw.

The kernel ``wkview._codec.read_boxes`` takes one of several paths per block: serial or
on the codec's pool of threads, decoded straight into the output or through a scratch block, whole
or only up to the box's last voxel, from all of a block's compressed bytes or from the
share a partial decode likely needs (read in full when that falls short). Reads inside
one opened file take ``_codec.SmallReads``, the lean path in C. Each combination must
give exactly what libwkw reads from the same files (and the NumPy array that was
written), on random boxes, dtypes, channel counts, memory layouts, and mags with
missing files.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
import wkw
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import random_data
from wkview import CorruptFileError, _codec, codec
from wkview.errors import ShapeError
from wkview._storage import MagStore, set_io_threads

B = 8  # block edge
FILE_LEN = 2
EDGE = B * FILE_LEN  # 16 voxels per file edge
SHAPE = (2 * EDGE, 2 * EDGE, EDGE)  # 2 x 2 x 1 files
MISSING = (1, 1, 0)  # this file is never written: it reads as zeros
DTYPES = [np.uint8, np.int16, np.uint32, np.float32, np.float64, np.int64]
CHANNELS = [1, 3]
FLAGS = [d | p | x for d in (0, _codec.DIRECT) for p in (0, _codec.PARTIAL) for x in (0, _codec.PREFIX)]
ALL_FLAGS = _codec.DIRECT | _codec.PARTIAL | _codec.PREFIX


def _write_mag(path: Path, dtype: type, channels: int, seed: int) -> np.ndarray:
    """A compressed mag written by libwkw (whole files), one file missing; returns its voxels."""
    header = wkw.Header(dtype, num_channels=channels, block_len=B, file_len=FILE_LEN, block_type=wkw.Header.BLOCK_TYPE_LZ4HC)
    data = random_data(np.random.default_rng(seed), (channels, *SHAPE), dtype)
    # a few all-zero blocks: LZ4 encodes them as tiny blocks, another decode case
    data[:, :B, :B, :B] = 0
    # blocks of noise and zeros (z is a block's slowest axis): the compressed bytes of a
    # decoded prefix are far from its share of the block, so the prefix read falls short
    # and the block is read again in full
    data[:, B : 2 * B, :B, : B // 2] = 0
    data[:, :B, B : 2 * B, B // 2 : B] = 0
    with wkw.Dataset.create(str(path), header) as ds:
        for fx in range(2):
            for fy in range(2):
                box = (slice(None), slice(fx * EDGE, (fx + 1) * EDGE), slice(fy * EDGE, (fy + 1) * EDGE), slice(0, EDGE))
                if (fx, fy, 0) == MISSING:
                    data[box] = 0
                    continue
                ds.write((fx * EDGE, fy * EDGE, 0), np.asfortranarray(data[box]))
    return data


@pytest.fixture(scope="module")
def mags(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[type, int], tuple[Path, np.ndarray]]:
    root = tmp_path_factory.mktemp("read_paths")
    found = {}
    for i, dtype in enumerate(DTYPES):
        for channels in CHANNELS:
            path = root / f"{np.dtype(dtype).name}_{channels}"
            found[(dtype, channels)] = (path, _write_mag(path, dtype, channels, seed=i * 10 + channels))
    return found


def _files(path: Path, layout: codec.Layout) -> dict[tuple[int, int, int], codec.CompressedFile | None]:
    opened: dict[tuple[int, int, int], codec.CompressedFile | None] = {}
    for fx in range(2):
        for fy in range(2):
            name = path / "z0" / f"y{fy}" / f"x{fx}.wkw"
            opened[(fx, fy, 0)] = codec.CompressedFile.open(name, layout) if name.exists() else None
    return opened


def _kernel_read(path: Path, layout: codec.Layout, offset, size, out: np.ndarray, threads: int, flags: int) -> None:
    """Read the box into ``out`` with one kernel call over all files it touches."""
    files = _files(path, layout)
    jobs = []
    job_files = []
    try:
        for fx in range(offset[0] // EDGE, (offset[0] + size[0] - 1) // EDGE + 1):
            for fy in range(offset[1] // EDGE, (offset[1] + size[1] - 1) // EDGE + 1):
                lo = (max(offset[0], fx * EDGE), max(offset[1], fy * EDGE), offset[2])
                hi = (min(offset[0] + size[0], (fx + 1) * EDGE), min(offset[1] + size[1], (fy + 1) * EDGE), offset[2] + size[2])
                piece = out[:, lo[0] - offset[0] : hi[0] - offset[0], lo[1] - offset[1] : hi[1] - offset[1], :]
                f = files[(fx, fy, 0)]
                if f is None:
                    piece[...] = 0
                    continue
                local = (lo[0] - fx * EDGE, lo[1] - fy * EDGE, lo[2])
                jobs.append((f.fd, f.ends, f.header.data_offset, local, piece))
                job_files.append(f)
        # parallel_min_bytes=0: these small boxes take the threaded path too
        failed = _codec.read_boxes(jobs, B, layout.voxel_size, threads, flags, 0)
        if failed is not None:  # the codec's own translation of a kernel failure
            box, index, code, err = failed
            raise codec._read_error(job_files[box], index, code, err)
    finally:
        for f in files.values():
            if f is not None:
                f.close()


def _out(layout: codec.Layout, size, order: str) -> np.ndarray:
    """An output array of the given memory layout, filled with garbage (no zero fill may be needed)."""
    shape = (layout.channels, *size)
    if order == "F":
        out = np.empty(shape, layout.dtype, order="F")
    elif order == "C":
        out = np.empty(shape, layout.dtype, order="C")
    else:  # a strided view into a bigger array
        out = np.empty((layout.channels, size[0] + 3, size[1] * 2, size[2] + 1), layout.dtype, order="F")[:, 1 : size[0] + 1, ::2, 1:]
    out[...] = 7  # not zero: the kernel must write every voxel
    return out


boxes = st.tuples(
    st.integers(0, SHAPE[0] - 1), st.integers(0, SHAPE[1] - 1), st.integers(0, SHAPE[2] - 1),
).flatmap(
    lambda o: st.tuples(
        st.just(o),
        st.tuples(st.integers(1, SHAPE[0] - o[0]), st.integers(1, SHAPE[1] - o[1]), st.integers(1, SHAPE[2] - o[2])),
    )
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    box=boxes,
    dtype=st.sampled_from(DTYPES),
    channels=st.sampled_from(CHANNELS),
    threads=st.sampled_from([1, 2, 3]),
    flags=st.sampled_from(FLAGS),
    order=st.sampled_from(["F", "C", "strided"]),
)
def test_every_path_matches_numpy_and_libwkw(mags, box, dtype, channels, threads, flags, order) -> None:
    (offset, size) = box
    path, data = mags[(dtype, channels)]
    layout = codec.as_layout(wkw.Dataset.open(str(path)).header)
    out = _out(layout, size, order)
    _kernel_read(path, layout, offset, size, out, threads, flags)
    sel = tuple(slice(o, o + s) for o, s in zip(offset, size))
    np.testing.assert_array_equal(out, data[(slice(None), *sel)])
    with wkw.Dataset.open(str(path)) as ds:
        np.testing.assert_array_equal(out, ds.read(offset, size))


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("flags", FLAGS)
def test_whole_blocks_decode_in_place(mags, threads, flags) -> None:
    """Boxes whose blocks have the decoded layout in a Fortran output (the direct path)."""
    for channels in CHANNELS:
        path, data = mags[(np.int16, channels)]
        layout = codec.as_layout(wkw.Dataset.open(str(path)).header)
        for offset, size in [((0, 0, 0), (B, B, EDGE)), ((B, 0, B), (B, B, B)), ((0, B, 0), (B, B, 2 * B - 3))]:
            out = _out(layout, size, "F")
            _kernel_read(path, layout, offset, size, out, threads, flags)
            sel = tuple(slice(o, o + s) for o, s in zip(offset, size))
            np.testing.assert_array_equal(out, data[(slice(None), *sel)])


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("flags", [_codec.PARTIAL | _codec.PREFIX, ALL_FLAGS])
def test_partial_decodes_of_uneven_blocks(mags, threads, flags) -> None:
    """Prefixes of the blocks of noise and zeros: most need the compressed bytes read again
    in full; every voxel and every short run of them must still match."""
    for dtype, channels in [(np.uint8, 1), (np.int16, 3), (np.float64, 3)]:
        path, data = mags[(dtype, channels)]
        layout = codec.as_layout(wkw.Dataset.open(str(path)).header)
        for corner in [(B, 0, 0), (0, B, 0)]:
            for z in range(B):
                for offset, size in [((corner[0] + 3, corner[1] + 5, z), (1, 1, 1)), ((corner[0], corner[1], z), (B, 2, 1))]:
                    out = _out(layout, size, "F")
                    _kernel_read(path, layout, offset, size, out, threads, flags)
                    sel = tuple(slice(o, o + s) for o, s in zip(offset, size))
                    np.testing.assert_array_equal(out, data[(slice(None), *sel)])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(box=boxes, dtype=st.sampled_from(DTYPES), channels=st.sampled_from(CHANNELS), threads=st.sampled_from([1, 2]))
def test_store_reads_match_libwkw(mags, box, dtype, channels, threads) -> None:
    """MagStore's general paths (one file, several files, missing files zero-filled) and,
    from the second read of a box in one existing file on, its lean path."""
    (offset, size) = box
    path, data = mags[(dtype, channels)]
    sel = tuple(slice(o, o + s) for o, s in zip(offset, size))
    expected = data[(slice(None), *sel)]
    one_file = all(o // EDGE == (o + n - 1) // EDGE for o, n in zip(offset, size))
    present = one_file and (offset[0] // EDGE, offset[1] // EDGE, 0) != MISSING
    store = MagStore(path)
    set_io_threads(threads)
    try:
        assert store._small.read(offset, size, threads) is None  # nothing opened yet
        first = store.read(offset, size)
        lean = store._small.read(offset, size, threads)
        again = store.read(offset, size)
    finally:
        set_io_threads(None)
        store.close()
    assert (lean is not None) == present
    for got in (first, again) + ((lean,) if present else ()):
        assert got.flags.f_contiguous and got.dtype == data.dtype
        np.testing.assert_array_equal(got, expected)


def test_lean_path_takes_only_what_it_can_read(mags) -> None:
    """SmallReads.read returns None for every box its caller must read (and check)."""
    path, data = mags[(np.uint8, 1)]
    store = MagStore(path)
    try:
        store.read((0, 0, 0), (1, 1, 1))
        small = store._small
        assert np.array_equal(small.read((1, 2, 3), (2, 2, 2), 1), data[:, 1:3, 2:4, 3:5])
        for offset, size in [
            ((1, 2, 3), (EDGE, 1, 1)),  # spans two files
            ((EDGE, 0, 0), (1, 1, 1)),  # a file not opened yet
            ([1, 2, 3], (1, 1, 1)),  # not tuples
            ((1, 2, 3), (1, 1, np.int64(1))),  # not plain ints
            ((1, 2), (1, 1, 1)),
            ((1, 2, 3), (0, 1, 1)),  # empty
            ((-1, 2, 3), (1, 1, 1)),
            ((1, 2, 2**32 - 1), (1, 1, 1)),  # beyond WKW's coordinates
            ((2**70, 2, 3), (1, 1, 1)),  # beyond any C integer
            ((1, 2, 3), (1, 2**70, 1)),
        ]:
            assert small.read(offset, size, 1) is None, (offset, size)
        with pytest.raises(ShapeError):  # the general path's check, as before
            store.read((2**70, 2, 3), (1, 1, 1))
    finally:
        store.close()


@pytest.mark.parametrize("how", ["libwkw rewrite", "replaced", "removed"])
def test_lean_path_sees_files_changed_by_others(mags, tmp_path: Path, how: str) -> None:
    """A file written by another writer after the lean path opened it is read anew."""
    src, data = mags[(np.int16, 3)]
    path = tmp_path / "mag"
    shutil.copytree(src, path)
    store = MagStore(path)
    try:
        np.testing.assert_array_equal(store.read((1, 2, 3), (3, 3, 3)), data[:, 1:4, 2:5, 3:6])
        np.testing.assert_array_equal(store.read((1, 2, 3), (3, 3, 3)), data[:, 1:4, 2:5, 3:6])  # lean
        new = data.copy()
        name = path / "z0" / "y0" / "x0.wkw"
        if how == "removed":
            name.unlink()
            new[:, :EDGE, :EDGE] = 0
        else:
            new[:, :EDGE, :EDGE] += 1
            target = path if how == "libwkw rewrite" else tmp_path / "other"
            if how == "replaced":
                shutil.copytree(src, target)
            with wkw.Dataset.open(str(target)) as ds:
                ds.write((0, 0, 0), np.asfortranarray(new[:, :EDGE, :EDGE]))
            if how == "replaced":
                os.replace(target / "z0" / "y0" / "x0.wkw", name)
        np.testing.assert_array_equal(store.read((1, 2, 3), (3, 3, 3)), new[:, 1:4, 2:5, 3:6])
        np.testing.assert_array_equal(store.read((1, 2, 3), (3, 3, 3)), new[:, 1:4, 2:5, 3:6])
    finally:
        store.close()


def test_lean_path_sees_own_writes(mags, tmp_path: Path) -> None:
    """A write through the store (wkview's codec) replaces the file the lean path holds."""
    src, data = mags[(np.float32, 1)]
    path = tmp_path / "mag"
    shutil.copytree(src, path)
    store = MagStore(path)
    try:
        store.read((1, 2, 3), (2, 2, 2))
        store.read((1, 2, 3), (2, 2, 2))
        patch = np.full((1, 2, 2, 2), 5.5, np.float32)
        store.write((1, 2, 3), patch)
        np.testing.assert_array_equal(store.read((1, 2, 3), (2, 2, 2)), patch)
        np.testing.assert_array_equal(store.read((0, 2, 3), (3, 2, 2))[:, 1:], patch)
    finally:
        store.close()


def _damage_block(path: Path, layout: codec.Layout, index: int) -> None:
    """Overwrite the compressed bytes of one block with garbage (the jump table stays valid)."""
    with codec.CompressedFile.open(path, layout) as f:
        start, end = f.block_range(index)
    with open(path, "r+b") as f:
        f.seek(start)
        f.write(b"\xff" * (end - start))


@pytest.mark.parametrize("threads", [1, 2, 4])
def test_a_damaged_block_raises_from_any_thread(mags, tmp_path: Path, threads: int) -> None:
    src, _ = mags[(np.float64, 3)]
    path = tmp_path / "mag"
    shutil.copytree(src, path)
    layout = codec.as_layout(wkw.Dataset.open(str(path)).header)
    store = MagStore(path)
    store.read((EDGE, 0, 0), (1, 1, 1))  # x1.wkw is now open on the lean path
    _damage_block(path / "z0" / "y0" / "x1.wkw", layout, 5)
    for flags in FLAGS:
        out = _out(layout, SHAPE, "F")
        with pytest.raises(CorruptFileError, match=r"x1\.wkw: block 5 "):
            _kernel_read(path, layout, (0, 0, 0), SHAPE, out, threads, flags)
    set_io_threads(threads)
    try:
        with pytest.raises(CorruptFileError, match=r"x1\.wkw: block 5 "):
            store.read((0, 0, 0), SHAPE)
        # block 5 (Morton (1, 0, 1)) of x1.wkw alone, through the lean path's entry point
        with pytest.raises(CorruptFileError, match=r"x1\.wkw: block 5 "):
            store.read((EDGE + B, 0, B), (B, B, B))
        assert store._small.read((EDGE + B, 0, B), (B, B, B), threads) is None
    finally:
        set_io_threads(None)
        store.close()


def _read_in_child(path: str, expected_sum: float, store: MagStore | None = None) -> None:
    set_io_threads(2)
    store = MagStore(path) if store is None else store
    before, _ = _codec.pool_stats()
    got = store.read((0, 0, 0), SHAPE)
    reads, helpers = _codec.pool_stats()
    one = store.read((1, 2, 3), (4, 5, 6))  # inside one file: the lean path
    if not (float(got.sum()) == expected_sum and np.array_equal(one, got[:, 1:5, 2:7, 3:9])):
        os._exit(3)
    os._exit(0 if reads == before + 1 and helpers >= 1 else 4)  # read on the child's own helpers


def test_parallel_read_in_a_forked_child(mags) -> None:
    """A forked child reads after its parent decoded on the pool's helper threads, which
    the child does not have: it starts its own, and its reads are right."""
    path, data = mags[(np.float64, 3)]
    layout = codec.as_layout(wkw.Dataset.open(str(path)).header)
    out = _out(layout, SHAPE, "F")
    _kernel_read(path, layout, (0, 0, 0), SHAPE, out, 2, _codec.DIRECT | _codec.PARTIAL)
    np.testing.assert_array_equal(out, data)
    store = MagStore(path)
    store.read((1, 2, 3), (4, 5, 6))  # the parent's store holds the file on its lean path
    try:
        for inherited in (None, store):
            child = multiprocessing.get_context("fork").Process(
                target=_read_in_child, args=(str(path), float(data.sum()), inherited)
            )
            child.start()
            child.join(120)  # a hang guard, not a timing: a healthy child ends in well under a second
            if child.is_alive():
                child.kill()
                child.join()
                pytest.fail("the forked child hung in its read")
            assert child.exitcode == 0
    finally:
        store.close()


def test_raw_mag_reads_with_and_without_missing_files(tmp_path: Path) -> None:
    """Raw mags (libwkw) skip the zero fill only when every touched file exists."""
    header = wkw.Header(np.uint16, num_channels=2, block_len=B, file_len=FILE_LEN, block_type=wkw.Header.BLOCK_TYPE_RAW)
    data = random_data(np.random.default_rng(5), (2, 2 * EDGE, EDGE, EDGE), np.uint16)
    with wkw.Dataset.create(str(tmp_path / "raw"), header) as ds:
        ds.write((0, 0, 0), np.asfortranarray(data[:, :EDGE]))  # the file at x = 1 is missing
    data[:, EDGE:] = 0
    store = MagStore(tmp_path / "raw")
    try:
        for offset, size in [((1, 2, 3), (5, 6, 7)), ((0, 0, 0), (EDGE, EDGE, EDGE)), ((3, 1, 0), (2 * EDGE - 4, 9, EDGE))]:
            sel = tuple(slice(o, o + s) for o, s in zip(offset, size))
            np.testing.assert_array_equal(store.read(offset, size), data[(slice(None), *sel)])
    finally:
        store.close()


def test_view_box_takes_plain_ints_only() -> None:
    """The lean argument path of View.read: anything unusual goes to the checked path."""
    from wkview import _core

    assert _core.view_box((1, 2, 3), [4, 5, 6], (10, 0, 0), (5, 7, 9), True) == ((11, 2, 3), (4, 5, 6))
    assert _core.view_box((1, 2, 3), (4, 5, 7), (0, 0, 0), (5, 7, 9), True) is None  # out of bounds
    assert _core.view_box((1, 2, 3), (4, 5, 7), (0, 0, 0), (5, 7, 9), False) == ((1, 2, 3), (4, 5, 7))
    assert _core.view_box((1, 2, 3), (0, 5, 6), (0, 0, 0), (5, 7, 9), True) is None  # empty size
    assert _core.view_box((-1, 2, 3), (1, 1, 1), (0, 0, 0), (5, 7, 9), True) is None
    assert _core.view_box(np.array([1, 2, 3]), (1, 1, 1), (0, 0, 0), (5, 7, 9), True) is None
    assert _core.view_box((1, 2, True), (1, 1, 1), (0, 0, 0), (5, 7, 9), True) is None
    assert _core.file_box((33, 5, 0), (2, 2, 2), 32) == ((1, 0, 0), (1, 5, 0))
    assert _core.file_box((31, 5, 0), (2, 2, 2), 32) is None
    assert _core.file_box((-1, 0, 0), (1, 1, 1), 32) == ((-1, 0, 0), (31, 0, 0))


def test_reads_take_the_pool_only_with_threads(mags) -> None:
    path, data = mags[(np.int16, 1)]
    layout = codec.as_layout(wkw.Dataset.open(str(path)).header)
    reads, _ = _codec.pool_stats()
    for threads, more in ((1, 0), (2, 1), (4, 1)):
        out = _out(layout, SHAPE, "F")
        _kernel_read(path, layout, (0, 0, 0), SHAPE, out, threads, ALL_FLAGS)
        np.testing.assert_array_equal(out, data)
        assert _codec.pool_stats()[0] == reads + more
        reads += more
    assert _codec.pool_stats()[1] >= 3  # helpers for up to 4 threads (3 besides the caller)


def test_concurrent_readers_share_the_pool(mags) -> None:
    """Reads from several threads at once: one holds the pool, the others decode on their
    own threads; every read is right and none waits forever."""
    path, data = mags[(np.float32, 3)]
    layout = codec.as_layout(wkw.Dataset.open(str(path)).header)
    boxes = [((o, o % 7, o % 5), (SHAPE[0] - o, SHAPE[1] - o % 7, SHAPE[2] - o % 5)) for o in range(12)]
    failures: list[BaseException] = []

    def reader(seed: int) -> None:
        try:
            for i in range(30):
                offset, size = boxes[(seed + i) % len(boxes)]
                out = _out(layout, size, "F")
                _kernel_read(path, layout, offset, size, out, 2 + seed % 3, ALL_FLAGS)
                sel = tuple(slice(o, o + n) for o, n in zip(offset, size))
                np.testing.assert_array_equal(out, data[(slice(None), *sel)])
        except BaseException as exc:  # reported below
            failures.append(exc)

    threads = [threading.Thread(target=reader, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)  # a hang guard, not a timing
    assert not any(t.is_alive() for t in threads), "a reader hung"
    assert not failures, failures[0]

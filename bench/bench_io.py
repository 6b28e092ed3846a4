"""IO workloads of ``bench/compare.py`` as pytest-benchmark tests: wkview vs raw libwkw.

Six groups (``io small_reads``, ``io full_read``, ``io aligned_write``,
``io unaligned_write``, ``io small_edit``, ``io buffered_slices``), each with a wkview and a raw
libwkw benchmark on the same data and layout (LZ4HC, block_len 32, 2x2x2 files;
see ``bench/_workloads.py``).

* The normal test run (``--benchmark-disable`` in pyproject's addopts) runs each
  benchmark once, on a 64^3 cube, as a test: every benchmark checks its result
  against the NumPy data, so they cannot rot.
* ``./run.sh bench`` (``pytest bench/ --benchmark-enable --benchmark-only``) gives
  real numbers; ``WKVIEW_BENCH_FULL=1`` switches to the issue's 512^3 cube
  (files of 256^3 voxels; the data is cached under ``${TMPDIR:-/tmp}/wkview-bench-cache``).

webknossos is compared in ``bench/compare.py`` only (one process per measurement,
peak memory, disk size).
"""

from __future__ import annotations

import itertools
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:  # pytest's default import mode puts bench/ there already
    sys.path.insert(0, _HERE)
import _workloads as W  # noqa: E402

FULL = os.environ.get("WKVIEW_BENCH_FULL") == "1"
N = 512 if FULL else 64
GEO = W.Geometry(N)
LIBS = ["wkview", "libwkw"]
WRITE_ROUNDS = 3 if FULL else 5

_counter = itertools.count()


@pytest.fixture(scope="module")
def data() -> np.ndarray:
    return W.load_data(N)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bench_io")


@pytest.fixture(scope="module")
def filled(workdir: Path, data: np.ndarray) -> Path:
    """A dataset holding the whole cube (files written by raw libwkw), read by both libraries."""
    path = workdir / "filled"
    W.make_lib("wkview").create_filled(path, GEO, data)
    return path


@pytest.fixture(params=LIBS)
def lib(request: pytest.FixtureRequest) -> W._Lib:
    return W.make_lib(request.param)


def _check(actual: np.ndarray, expected: np.ndarray) -> None:
    actual = W.as3d(actual)
    assert actual.shape == expected.shape
    assert np.array_equal(actual, expected)


def _rounds(benchmark, n: int) -> int:  # type: ignore[no-untyped-def]
    return 1 if benchmark.disabled else n


# -- reads ------------------------------------------------------------------------------


@pytest.mark.benchmark(group=f"io small_reads ({W.N_SMALL_READS} x 32^3 in {N}^3)")
def test_small_reads(benchmark, lib, filled, data, as_test):  # type: ignore[no-untyped-def]
    W.warm_page_cache(lib.mag_dir(filled))
    target = lib.open(filled)
    try:
        read = lib.small_reader(target)
        offsets, size = GEO.small_offsets[: W.N_SMALL_READS_AS_TEST if as_test else None], GEO.small_size
        last = benchmark(W.small_reads, read, offsets, size)
        x, y, z = offsets[-1]
        _check(last, data[x : x + 32, y : y + 32, z : z + 32])
        for x, y, z in offsets[::10]:
            _check(read((x, y, z), size), data[x : x + 32, y : y + 32, z : z + 32])
    finally:
        lib.close(target)


@pytest.mark.benchmark(group=f"io full_read ({N}^3)")
def test_full_read(benchmark, lib, filled, data):  # type: ignore[no-untyped-def]
    W.warm_page_cache(lib.mag_dir(filled))
    target = lib.open(filled)
    try:
        result = benchmark(W.full_read, lib.full_reader(target), GEO.shape)
        _check(result, data)
    finally:
        lib.close(target)


# -- writes: a fresh target per round, made outside the timed part ----------------------


def _run_write(benchmark, lib, workload, workdir, filled, data):  # type: ignore[no-untyped-def]
    """Benchmark one write workload; return (last target's path, target) for the check."""
    if workload == "aligned_write":
        payload = data

        def op(target) -> None:  # type: ignore[no-untyped-def]
            lib.write_aligned(target, payload)

    elif workload in ("unaligned_write", "small_edit"):
        payload = GEO.unaligned_data(data) if workload == "unaligned_write" else GEO.edit_data(data)

        def op(target) -> None:  # type: ignore[no-untyped-def]
            lib.write_unaligned(target, payload, GEO.unaligned_offset)

    else:
        payload = GEO.slab(data)

        def op(target) -> None:  # type: ignore[no-untyped-def]
            lib.write_slices(target, payload)

    made: list[tuple[Path, object]] = []

    def setup():  # type: ignore[no-untyped-def]
        if made:  # free the previous round's folder (teardown is not called when disabled)
            old_path, old_target = made.pop()
            lib.close(old_target)
            shutil.rmtree(old_path, ignore_errors=True)
        path = workdir / f"{lib.name}-{workload}-{next(_counter)}"
        if workload in ("unaligned_write", "small_edit"):
            W.copy_dataset(filled, path)
            target = lib.open(path)
        else:
            target = lib.create_empty(path, GEO)
            if workload == "buffered_slices":
                if not lib.has_slice_writer(target):
                    pytest.skip(f"{lib.name} has no get_buffered_slice_writer yet")
                lib.prepare_slices(target, GEO)
        made.append((path, target))
        return (target,), {}

    benchmark.pedantic(op, setup=setup, rounds=_rounds(benchmark, WRITE_ROUNDS), iterations=1)
    return made[-1]


def _finish(lib, made, box_size, expected) -> None:  # type: ignore[no-untyped-def]
    path, target = made
    try:
        _check(lib.read_box(target, (0, 0, 0), box_size), expected)
    finally:
        lib.close(target)
        shutil.rmtree(path, ignore_errors=True)


@pytest.mark.benchmark(group=f"io aligned_write ({N}^3 into an empty mag)")
def test_aligned_write(benchmark, lib, workdir, filled, data):  # type: ignore[no-untyped-def]
    made = _run_write(benchmark, lib, "aligned_write", workdir, filled, data)
    _finish(lib, made, GEO.shape, data)


@pytest.mark.benchmark(group=f"io unaligned_write ({GEO.unaligned_size[0]}^3 at {GEO.unaligned_offset} into {N}^3)")
def test_unaligned_write(benchmark, lib, workdir, filled, data):  # type: ignore[no-untyped-def]
    made = _run_write(benchmark, lib, "unaligned_write", workdir, filled, data)
    _finish(lib, made, GEO.shape, GEO.unaligned_expected(data))


@pytest.mark.benchmark(group=f"io small_edit ({W.EDIT_EDGE}^3 at {GEO.unaligned_offset} into {N}^3)")
def test_small_edit(benchmark, lib, workdir, filled, data):  # type: ignore[no-untyped-def]
    made = _run_write(benchmark, lib, "small_edit", workdir, filled, data)
    _finish(lib, made, GEO.shape, GEO.edit_expected(data))


@pytest.mark.benchmark(group=f"io buffered_slices ({GEO.n_slices} z-slices of {N}x{N}; libwkw: one write)")
def test_buffered_slices(benchmark, lib, workdir, filled, data):  # type: ignore[no-untyped-def]
    made = _run_write(benchmark, lib, "buffered_slices", workdir, filled, data)
    slab = GEO.slab(data)
    _finish(lib, made, slab.shape, slab)


def test_libwkw_merge_write_matches_numpy(tmp_path: Path) -> None:
    """The raw-libwkw baseline of the unaligned write is itself correct (always on 64^3)."""
    geo = W.Geometry(64)
    data = W.load_data(64)
    lib = W.make_lib("libwkw")
    lib.create_filled(tmp_path / "ds", geo, data)
    handle = lib.open(tmp_path / "ds")
    try:
        edge = geo.file_edge
        offset = (edge // 2, 0, 3)  # every touched file is covered partially (at least in z)
        block = np.asfortranarray(data[: edge + edge // 2, : 2 * edge, :edge][::-1])
        W.libwkw_merge_write(handle, offset, block, edge)
        expected = data.copy(order="F")
        expected[offset[0] : offset[0] + block.shape[0], : 2 * edge, 3 : 3 + edge] = block
        _check(handle.read((0, 0, 0), geo.shape), expected)
        full = np.asfortranarray(data[:edge, :edge, :edge][:, ::-1])
        W.libwkw_merge_write(handle, (edge, edge, edge), full, edge)  # exactly one file: written unread
        expected[edge:, edge:, edge:] = full
        _check(handle.read((0, 0, 0), geo.shape), expected)
    finally:
        handle.close()

"""Chunk enumeration: a 2048^3 box in 32^3 chunks (262,144 chunks), three ways.

* ``_core.chunk_grid`` offsets (the compiled kernel),
* ``BoundingBox.chunk`` (one BoundingBox per chunk, as webknossos yields them),
* ``itertools.product`` over the same offsets (the baseline: no clipping at all).

``./run.sh bench`` (``pytest bench/ --benchmark-enable --benchmark-only``) gives
real numbers. The normal test run has ``--benchmark-disable`` in its addopts, so
each benchmark runs once there, as a test, and cannot rot.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable

import pytest

from wkview import BoundingBox
from wkview import _core

EDGE = 2048
CHUNK = 32
SIZE = (EDGE, EDGE, EDGE)
CHUNK_SIZE = (CHUNK, CHUNK, CHUNK)
N_CHUNKS = (EDGE // CHUNK) ** 3
GROUP = "chunk 2048^3 box by 32^3"


def consume(items: Iterable[object]) -> int:
    """Exhaust ``items`` with as little per-item work as possible; return the count."""
    n = 0
    for n, _ in enumerate(items, 1):
        pass
    return n


def core_offsets() -> int:
    return consume(_core.chunk_grid((0, 0, 0), SIZE, CHUNK_SIZE))


def bounding_box_chunks() -> int:
    return consume(BoundingBox((0, 0, 0), SIZE).chunk(CHUNK_SIZE))


def itertools_offsets() -> int:
    axis = range(0, EDGE, CHUNK)
    return consume(itertools.product(axis, axis, axis))


@pytest.mark.benchmark(group=GROUP)
def test_core_chunk_grid(benchmark):
    assert benchmark(core_offsets) == N_CHUNKS


@pytest.mark.benchmark(group=GROUP)
def test_bounding_box_chunk(benchmark):
    assert benchmark(bounding_box_chunks) == N_CHUNKS


@pytest.mark.benchmark(group=GROUP)
def test_itertools_product_baseline(benchmark):
    assert benchmark(itertools_offsets) == N_CHUNKS


def best_of(func: Callable[[], int], repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        assert func() == N_CHUNKS
        best = min(best, time.perf_counter() - start)
    return best


def test_chunking_ratio(as_test):
    """Print how the enumerations compare; asserts correctness only, never timings (one
    round each when run as a test, where the figures are not read)."""
    assert list(itertools.islice(_core.chunk_grid((0, 0, 0), SIZE, CHUNK_SIZE), 3)) == list(
        itertools.islice(itertools.product(*[range(0, EDGE, CHUNK)] * 3), 3)
    )
    rounds, box_rounds = (1, 1) if as_test else (5, 3)  # BoundingBox.chunk is ~20x slower: fewer rounds
    baseline = best_of(itertools_offsets, rounds)
    core = best_of(core_offsets, rounds)
    boxes = best_of(bounding_box_chunks, box_rounds)
    print(
        f"\n{N_CHUNKS} chunks: itertools {baseline * 1e3:.1f} ms, "
        f"core {core * 1e3:.1f} ms (x{core / baseline:.2f}) (best of {rounds}), "
        f"BoundingBox.chunk {boxes * 1e3:.1f} ms (x{boxes / baseline:.2f}) (best of {box_rounds})"
    )

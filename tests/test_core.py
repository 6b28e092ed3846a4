"""Property tests: every kernel of ``wkview._core`` against the plain reference in ``reference.py``."""

from __future__ import annotations

import itertools
import operator

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from wkview import _core

from . import reference as ref
from .conftest import examples

SETTINGS = settings(max_examples=examples(200), deadline=None)

# Coordinates cluster around interesting origins: 0, the int32 limits and 2**40.
ORIGINS = [0, -(2**31), 2**31, -(2**40), 2**40, 2**40 + 12345]
coord = st.builds(operator.add, st.sampled_from(ORIGINS), st.integers(-70, 70))
offsets = st.tuples(coord, coord, coord)
extent = st.integers(0, 20)  # includes empty boxes (size 0 on an axis)
sizes = st.tuples(extent, extent, extent)
step = st.one_of(st.integers(1, 12), st.sampled_from([16, 32, 64]))
steps = st.tuples(step, step, step)


@st.composite
def aligned_grids(draw: st.DrawFn) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """A chunk size and an alignment that divides it."""
    alignment = draw(st.tuples(*[st.integers(1, 8)] * 3))
    factors = draw(st.tuples(*[st.integers(1, 4)] * 3))
    return tuple(a * f for a, f in zip(alignment, factors)), alignment


@st.composite
def grid_boxes(draw: st.DrawFn) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """A grid and a box whose corners are often (not always) on that grid."""
    grid = draw(steps)
    offset, size = [], []
    for g in grid:
        base = draw(st.sampled_from(ORIGINS)) // g * g
        o = base + draw(st.integers(-4, 4)) * g + draw(st.sampled_from([0, 0, 0, 1, g - 1]))
        s = draw(st.integers(0, 3)) * g + draw(st.sampled_from([0, 0, 0, 1]))
        offset.append(o)
        size.append(s)
    return tuple(offset), tuple(size), grid


def assert_tiles(offset: tuple[int, ...], size: tuple[int, ...], boxes: list) -> None:
    """The boxes lie inside the box, cover it exactly once and are not empty."""
    total = size[0] * size[1] * size[2]
    assert sum(s[0] * s[1] * s[2] for _, s in boxes) == total
    cover = np.zeros(size, dtype=np.int32)
    for o, s in boxes:
        assert all(v > 0 for v in s)
        rel = [o[a] - offset[a] for a in range(3)]
        assert all(rel[a] >= 0 and rel[a] + s[a] <= size[a] for a in range(3))
        cover[rel[0] : rel[0] + s[0], rel[1] : rel[1] + s[1], rel[2] : rel[2] + s[2]] += 1
    assert (cover == 1).all()
    if len(boxes) <= 40:
        for (o1, s1), (o2, s2) in itertools.combinations(boxes, 2):
            overlap = all(max(o1[a], o2[a]) < min(o1[a] + s1[a], o2[a] + s2[a]) for a in range(3))
            assert not overlap


# -- alignment -------------------------------------------------------------------


@SETTINGS
@given(offsets, sizes, steps, st.booleans())
def test_align_box_matches_reference(offset, size, grid, outward):
    assert _core.align_box(offset, size, grid, outward) == ref.align_box(offset, size, grid, outward)


@SETTINGS
@given(grid_boxes(), st.booleans())
def test_align_box_on_grid_boxes(box, outward):
    offset, size, grid = box
    new_offset, new_size = _core.align_box(offset, size, grid, outward)
    assert (new_offset, new_size) == ref.align_box(offset, size, grid, outward)
    assert _core.is_aligned(new_offset, new_size, grid)
    for a in range(3):
        lo, hi = offset[a], offset[a] + size[a]
        new_lo, new_hi = new_offset[a], new_offset[a] + new_size[a]
        if outward:
            assert new_lo <= lo and hi <= new_hi
        elif new_size[a] > 0:
            assert lo <= new_lo and new_hi <= hi
    if _core.is_aligned(offset, size, grid):
        assert (new_offset, new_size) == (offset, size)


def test_align_box_examples():
    assert _core.align_box((-5, 0, 3), (10, 1, 1), (4, 4, 4), True) == ((-8, 0, 0), (16, 4, 4))
    assert _core.align_box((-5, 0, 3), (10, 1, 1), (4, 4, 4), False) == ((-4, 0, 4), (8, 0, 0))
    assert _core.align_box((2**40 + 1, 0, 0), (2, 2, 2), (2, 2, 2), False) == ((2**40 + 2, 0, 0), (0, 2, 2))


@SETTINGS
@given(grid_boxes())
def test_is_aligned_matches_reference(box):
    offset, size, grid = box
    assert _core.is_aligned(offset, size, grid) is ref.is_aligned(offset, size, grid)


# -- projection onto files and blocks --------------------------------------------


@SETTINGS
@given(offsets, sizes, steps)
def test_project_box_matches_reference(offset, size, cell):
    projection = _core.project_box(offset, size, cell)
    parts = list(projection)
    expected = ref.project_box(offset, size, cell)
    assert [tuple(p) for p in parts] == [tuple(p) for p in expected]
    assert len(projection) == len(parts)
    if parts:
        assert projection.first_index == parts[0].index
        assert projection.shape == tuple(parts[-1].index[a] - parts[0].index[a] + 1 for a in range(3))
    assert_tiles(offset, size, [(tuple(p.array_offset[a] + offset[a] for a in range(3)), p.size) for p in parts])


@SETTINGS
@given(grid_boxes())
def test_project_box_full_flags(box):
    offset, size, cell = box
    for part in _core.project_box(offset, size, cell):
        assert part.full == (part.size == cell)
        assert part.full == (part.local_offset == (0, 0, 0) and part.size == cell)
        assert part._fields == ("index", "local_offset", "size", "array_offset", "full")


def test_project_box_order_is_x_fastest():
    indices = [p.index for p in _core.project_box((0, 0, 0), (4, 4, 4), (2, 2, 2))]
    assert indices == [(x, y, z) for z in range(2) for y in range(2) for x in range(2)]


# -- Morton order ----------------------------------------------------------------

block = st.integers(0, 2**21 - 1)


@SETTINGS
@given(block, block, block)
def test_morton_index_matches_reference(x, y, z):
    index = _core.morton_index(x, y, z)
    assert index == ref.morton_index(x, y, z)
    assert _core.morton_decode(index) == (x, y, z)


@SETTINGS
@given(st.integers(0, 2**63 - 1))
def test_morton_decode_matches_reference(index):
    assert _core.morton_decode(index) == ref.morton_decode(index)


def test_morton_examples():
    assert _core.morton_index(0, 0, 0) == 0
    assert _core.morton_index(1, 0, 0) == 1
    assert _core.morton_index(0, 1, 0) == 2
    assert _core.morton_index(0, 0, 1) == 4
    assert _core.morton_index(3, 3, 3) == 63
    assert [_core.morton_decode(i) for i in range(8)] == [
        (x, y, z) for z in range(2) for y in range(2) for x in range(2)
    ]
    top = 2**21 - 1
    assert _core.morton_index(top, top, top) == 2**63 - 1
    assert _core.morton_decode(2**63 - 1) == (top, top, top)


# -- chunk enumeration -----------------------------------------------------------


def check_chunk_grid(offset, size, chunk_size, alignment):
    grid = _core.chunk_grid(offset, size, chunk_size, alignment)
    expected = ref.chunk_grid(offset, size, chunk_size, alignment)
    boxes = list(grid.boxes())
    assert boxes == expected
    assert list(grid) == [o for o, _ in expected]
    assert len(grid) == len(expected)
    array = grid.offsets_array()
    assert array.dtype == np.int64 and array.shape == (len(expected), 3)
    assert array.tolist() == [list(o) for o, _ in expected]
    assert grid.shape[0] * grid.shape[1] * grid.shape[2] == len(expected)
    assert_tiles(offset, size, boxes)
    if alignment is not None:
        # every border between two chunks lies on the alignment
        for o, s in boxes:
            for a in range(3):
                if o[a] != offset[a]:
                    assert o[a] % alignment[a] == 0
                if o[a] + s[a] != offset[a] + size[a]:
                    assert (o[a] + s[a]) % alignment[a] == 0
    return grid


@SETTINGS
@given(offsets, sizes, steps)
def test_chunk_grid_matches_reference(offset, size, chunk_size):
    check_chunk_grid(offset, size, chunk_size, None)


@SETTINGS
@given(offsets, sizes, aligned_grids())
def test_chunk_grid_aligned_matches_reference(offset, size, chunking):
    chunk_size, alignment = chunking
    check_chunk_grid(offset, size, chunk_size, alignment)


@SETTINGS
@given(offsets, sizes, aligned_grids())
def test_chunk_grid_is_lazy_and_counts(offset, size, chunking):
    chunk_size, alignment = chunking
    grid = _core.chunk_grid(offset, size, chunk_size, alignment)
    n = len(grid)
    for it in (iter(grid), grid.boxes()):
        assert iter(it) is it
        assert operator.length_hint(it) == n
        consumed = sum(1 for _ in itertools.islice(it, n // 2))
        assert operator.length_hint(it) == n - consumed
        assert sum(1 for _ in it) == n - consumed
        assert operator.length_hint(it) == 0
        assert next(it, None) is None
    # iterating twice gives the same chunks
    assert list(grid) == list(grid)


def test_chunk_grid_order_is_x_outermost():
    corners = list(_core.chunk_grid((0, 0, 0), (4, 4, 4), (2, 2, 2)))
    assert corners == [(x, y, z) for x in (0, 2) for y in (0, 2) for z in (0, 2)]


def test_chunk_grid_alignment_examples():
    # grid starts at 8 (10 rounded down to 4), the first chunk is clipped
    assert list(_core.chunk_grid((10, 0, 0), (20, 1, 1), (8, 1, 1), (4, 1, 1)).boxes()) == [
        ((10, 0, 0), (6, 1, 1)), ((16, 0, 0), (8, 1, 1)), ((24, 0, 0), (6, 1, 1)),
    ]
    # without an alignment the grid starts at the box
    assert list(_core.chunk_grid((10, 0, 0), (20, 1, 1), (8, 1, 1)).boxes()) == [
        ((10, 0, 0), (8, 1, 1)), ((18, 0, 0), (8, 1, 1)), ((26, 0, 0), (4, 1, 1)),
    ]
    assert list(_core.chunk_grid((-3, 0, 0), (6, 1, 1), (4, 1, 1), (4, 1, 1)).boxes()) == [
        ((-3, 0, 0), (3, 1, 1)), ((0, 0, 0), (3, 1, 1)),
    ]


@pytest.mark.parametrize("size", [(0, 5, 5), (5, 0, 5), (5, 5, 0), (0, 0, 0)])
def test_chunk_grid_empty_box(size):
    grid = _core.chunk_grid((-7, 2**40, 3), size, (2, 2, 2), (2, 2, 2))
    assert len(grid) == 0
    assert list(grid) == [] and list(grid.boxes()) == []
    assert grid.offsets_array().shape == (0, 3)


def test_chunk_grid_len_is_constant_time():
    # 2**32 chunks along x: any per-chunk or per-axis list would exhaust memory
    grid = _core.chunk_grid((-(2**40), 0, 0), (2**41, 2**30, 1), (2**9, 2**8, 1))
    assert grid.shape == (2**32, 2**22, 1)
    assert len(grid) == 2**54
    assert next(iter(grid)) == (-(2**40), 0, 0)
    boxes = grid.boxes()
    assert next(boxes) == ((-(2**40), 0, 0), (2**9, 2**8, 1))
    assert next(boxes) == ((-(2**40), 2**8, 0), (2**9, 2**8, 1))


def test_chunk_grid_len_beyond_ssize_t_raises_overflow():
    grid = _core.chunk_grid((0, 0, 0), (2**40, 2**40, 2**40), (2**18, 2**18, 2**18))
    assert grid.shape == (2**22, 2**22, 2**22)
    with pytest.raises(OverflowError):
        len(grid)
    projection = _core.project_box((0, 0, 0), (2**40, 2**40, 2**40), (2**18, 2**18, 2**18))
    assert projection.shape == (2**22, 2**22, 2**22)
    with pytest.raises(OverflowError):
        len(projection)


LIMIT = 2**60  # the core accepts coordinates, sizes and grids within +-2**60
huge = st.integers(-LIMIT, LIMIT)
huge_size = st.one_of(st.integers(0, 40), st.integers(0, LIMIT))
huge_step = st.one_of(st.integers(1, 64), st.integers(1, LIMIT))


@SETTINGS
@given(st.tuples(huge, huge, huge), st.tuples(huge_size, huge_size, huge_size), st.tuples(huge_step, huge_step, huge_step))
def test_extreme_coordinates_do_not_overflow(offset, size, step):
    for outward in (True, False):
        assert _core.align_box(offset, size, step, outward) == ref.align_box(offset, size, step, outward)
    assert _core.is_aligned(offset, size, step) is ref.is_aligned(offset, size, step)
    aligned = _core.align_box(offset, size, step, True)
    if all(abs(v) <= LIMIT for v in (*aligned[0], *aligned[1])):  # the aligned box may leave the range
        assert _core.is_aligned(*aligned, step)
    # counts per axis without enumerating: Python's range computes its length in O(1)
    for alignment in (None, step):
        grid = _core.chunk_grid(offset, size, step, alignment)
        starts = [o if alignment is None else o // a * a for o, a in zip(offset, step)]
        ranges = [range(starts[a], offset[a] + size[a], step[a]) for a in range(3)]
        expected_shape = tuple(0 if size[a] == 0 else len(ranges[a]) for a in range(3))
        assert grid.shape == expected_shape
        if 0 not in expected_shape:
            first = tuple(max(r[0], o) for r, o in zip(ranges, offset))
            assert next(iter(grid)) == first
            end = [offset[a] + size[a] for a in range(3)]
            assert next(grid.boxes()) == (first, tuple(min(r[0] + st_, e) - f for r, st_, e, f in zip(ranges, step, end, first)))
    projection = _core.project_box(offset, size, step)
    assert projection.shape == tuple(
        0 if size[a] == 0 else (offset[a] + size[a] - 1) // step[a] - offset[a] // step[a] + 1 for a in range(3)
    )


@pytest.mark.parametrize("bad", [(LIMIT + 1, 0, 0), (0, -LIMIT - 1, 0), (0, 0, 2**63), (-(2**64), 0, 0)], ids=repr)
def test_coordinates_beyond_limit_raise(bad):
    good = (1, 1, 1)
    for call in [
        lambda: _core.align_box(bad, good, good),
        lambda: _core.is_aligned(good, good, bad),
        lambda: _core.project_box(good, bad, good),
        lambda: _core.chunk_grid(good, good, bad),
    ]:
        check_raises(call, bad, ValueError)


# -- read-modify-write -----------------------------------------------------------

DTYPES = [np.uint8, np.uint16, np.int32, np.uint64, np.float32, np.float64]


@st.composite
def merges(draw: st.DrawFn):
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    channels = draw(st.integers(1, 3))
    shape = draw(st.tuples(*[st.integers(1, 6)] * 3))
    local = tuple(draw(st.integers(0, n - 1)) for n in shape)
    data_shape = tuple(draw(st.integers(0, n - o)) for n, o in zip(shape, local))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    data = (rng.random((channels, *data_shape)) * 200 + 1).astype(dtype)
    data = np.asfortranarray(data) if draw(st.booleans()) else np.ascontiguousarray(data)
    existing = None
    if draw(st.booleans()):
        existing = (rng.random((channels, *shape)) * 200 + 1).astype(dtype)
        existing = np.asfortranarray(existing) if draw(st.booleans()) else np.ascontiguousarray(existing)
    return existing, data, local, shape, dtype


@SETTINGS
@given(merges())
def test_merge_into_matches_reference(case):
    existing, data, local, shape, dtype = case
    expected = ref.merge_into(existing, data, local, shape, dtype)
    actual = _core.merge_into(None if existing is None else existing.copy(order="A"), data, local, shape, dtype)
    assert actual.dtype == dtype
    assert actual.shape == (data.shape[0], *shape)
    np.testing.assert_array_equal(actual, expected)
    if existing is None:
        assert actual.flags.f_contiguous


def test_merge_into_missing_region_is_zero():
    data = np.full((1, 2, 2, 2), 7, dtype=np.uint16)
    out = _core.merge_into(None, data, (1, 0, 2), (4, 4, 4), np.uint16)
    assert out.sum() == 7 * 8
    assert (out[:, 1:3, 0:2, 2:4] == 7).all()


# -- bad input -------------------------------------------------------------------

BAD_VECTORS = [
    ((1, 2), ValueError),
    ((1, 2, 3, 4), ValueError),
    ((), ValueError),
    ((1.0, 2, 3), TypeError),
    ((1, 2, 3.5), TypeError),
    ("abc", TypeError),
    ((1, "2", 3), TypeError),
    ((True, 1, 1), TypeError),
    ((1, 1, np.bool_(False)), TypeError),
    (7, TypeError),
    (None, TypeError),
    ((2**80, 0, 0), ValueError),
]


def check_raises(call, bad, expected):
    with pytest.raises(expected) as info:
        call()
    assert repr(bad) in str(info.value)


def vector_calls(bad):
    good = (4, 4, 4)
    yield lambda: _core.align_box(bad, good, good)
    yield lambda: _core.align_box(good, bad, good)
    yield lambda: _core.align_box(good, good, bad)
    yield lambda: _core.is_aligned(bad, good, good)
    yield lambda: _core.is_aligned(good, good, bad)
    yield lambda: _core.project_box(bad, good, good)
    yield lambda: _core.project_box(good, bad, good)
    yield lambda: _core.project_box(good, good, bad)
    yield lambda: _core.chunk_grid(bad, good, good)
    yield lambda: _core.chunk_grid(good, bad, good)
    yield lambda: _core.chunk_grid(good, good, bad)
    if bad is not None:  # None is the valid "no alignment"
        yield lambda: _core.chunk_grid(good, good, good, bad)
    yield lambda: _core.merge_into(None, np.zeros((1, 1, 1, 1)), bad, good, np.uint8)
    yield lambda: _core.merge_into(None, np.zeros((1, 1, 1, 1)), good, bad, np.uint8)


@pytest.mark.parametrize("bad, expected", BAD_VECTORS, ids=repr)
def test_bad_vectors_raise_naming_the_value(bad, expected):
    for call in vector_calls(bad):
        check_raises(call, bad, expected)


@pytest.mark.parametrize("bad", [(0, 4, 4), (4, -1, 4), (-4, -4, -4)])
def test_non_positive_grids_raise(bad):
    good = (4, 4, 4)
    for call in [
        lambda: _core.align_box(good, good, bad),
        lambda: _core.is_aligned(good, good, bad),
        lambda: _core.project_box(good, good, bad),
        lambda: _core.chunk_grid(good, good, bad),
        lambda: _core.chunk_grid(good, good, good, bad),
    ]:
        check_raises(call, bad, ValueError)


def test_negative_sizes_raise():
    bad = (1, -1, 1)
    for call in [
        lambda: _core.align_box((0, 0, 0), bad, (2, 2, 2)),
        lambda: _core.project_box((0, 0, 0), bad, (2, 2, 2)),
        lambda: _core.chunk_grid((0, 0, 0), bad, (2, 2, 2)),
    ]:
        check_raises(call, bad, ValueError)


def test_chunk_size_must_be_multiple_of_alignment():
    with pytest.raises(ValueError, match=r"\(6, 8, 8\).*\(4, 4, 4\)"):
        _core.chunk_grid((0, 0, 0), (8, 8, 8), (6, 8, 8), (4, 4, 4))


@pytest.mark.parametrize(
    "xyz, expected",
    [((-1, 0, 0), ValueError), ((0, 2**21, 0), ValueError), ((1.0, 0, 0), TypeError), ((0, True, 0), TypeError)],
)
def test_morton_index_bad_input(xyz, expected):
    check_raises(lambda: _core.morton_index(*xyz), xyz, expected)


@pytest.mark.parametrize(
    "index, expected", [(-1, ValueError), (2**63, ValueError), (1.0, TypeError), (True, TypeError), ("1", TypeError)]
)
def test_morton_decode_bad_input(index, expected):
    check_raises(lambda: _core.morton_decode(index), index, expected)


def test_merge_into_bad_input():
    data = np.zeros((1, 2, 2, 2), dtype=np.uint8)
    with pytest.raises(ValueError, match=r"\(2, 2, 2\)"):
        _core.merge_into(None, data[0], (0, 0, 0), (4, 4, 4), np.uint8)
    with pytest.raises(ValueError, match=r"\(3, 0, 0\).*\(4, 4, 4\)"):
        _core.merge_into(None, data, (3, 0, 0), (4, 4, 4), np.uint8)
    with pytest.raises(ValueError, match=r"\(1, 3, 4, 4\)"):
        _core.merge_into(np.zeros((1, 3, 4, 4), dtype=np.uint8), data, (0, 0, 0), (4, 4, 4), np.uint8)
    check_raises(lambda: _core.merge_into(None, data, (0, -1, 0), (4, 4, 4), np.uint8), (0, -1, 0), ValueError)


def test_accepts_numpy_and_other_int_types():
    offset = np.array([-3, 5, 2**40], dtype=np.int64)
    size = [np.int32(4), np.uint8(3), 2]
    assert _core.align_box(offset, size, (2, 2, 2)) == ref.align_box((-3, 5, 2**40), (4, 3, 2), (2, 2, 2))
    assert list(_core.chunk_grid(offset, size, (2, 2, 2)).boxes()) == ref.chunk_grid(
        (-3, 5, 2**40), (4, 3, 2), (2, 2, 2)
    )


@SETTINGS
@given(offsets, sizes, steps)
def test_chunk_grid_reference_agrees_with_plain_loops(offset, size, chunk_size):
    """Guard the reference itself with the most literal form of the webknossos loop."""
    assume(size[0] * size[1] * size[2] <= 4000)
    end = [offset[a] + size[a] for a in range(3)]
    literal = []
    for x in range(offset[0], end[0], chunk_size[0]):
        for y in range(offset[1], end[1], chunk_size[1]):
            for z in range(offset[2], end[2], chunk_size[2]):
                corner = (x, y, z)
                literal.append(
                    (corner, tuple(min(chunk_size[a], end[a] - corner[a]) for a in range(3)))
                )
    assert ref.chunk_grid(offset, size, chunk_size) == literal


@pytest.mark.parametrize("write_unit", [None, 16, 64])
def test_group_chunks_cover_the_plan_once(write_unit):
    """The groups' lazy chunks are exactly the plan's chunks, each once, with the plan's
    numbers and boxes; they survive pickling (process executors send them)."""
    import pickle

    from wkview.chunking import plan_chunks

    plan = plan_chunks((5, 0, 30), (70, 33, 20), (16, 16, 8), write_unit)
    seen = []
    for runs in plan.groups():
        chunks = plan.group_chunks(runs)
        listed = list(chunks)
        assert len(chunks) == len(listed) > 0
        assert list(pickle.loads(pickle.dumps(chunks))) == listed
        assert list(chunks) == listed  # iterating again starts over
        for number, offset, size in listed:
            assert plan.chunk(number) == (offset, size)
            seen.append(number)
    assert sorted(seen) == list(range(len(plan)))

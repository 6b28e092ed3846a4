"""wkview.chunking directly: chunk sizes, chunk plans, their groups and the pairing of
source and target chunks, against plain-Python references (no dataset, no subprocess)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from wkview.chunking import ChunkPlan, check_chunk_size, pair_chunk_axes, plan_chunks
from wkview.errors import ChunkingError
from wkview.geometry import Vec3Int


def reference_axis(offset: int, size: int, chunk: int) -> list[tuple[int, int]]:
    """(start, length) of the chunks of one axis: borders on absolute multiples of ``chunk``."""
    borders = [offset] + [b for b in range(offset + 1, offset + size) if b % chunk == 0] + [offset + size]
    return [(a, b - a) for a, b in zip(borders, borders[1:])] if size else []


# -- check_chunk_size ---------------------------------------------------------------------------


@pytest.mark.parametrize("given", [(3, 5, 7), [32, 32, 32], np.array([1, 2, 4]), Vec3Int(8, 8, 8), (2**40, 1, 1)])
def test_check_chunk_size_takes_any_three_positive_ints(given):
    got = check_chunk_size(given)
    assert got == tuple(int(v) for v in given) and all(type(v) is int for v in got)


@pytest.mark.parametrize(
    "given, text",
    [
        (None, "is required"),
        ("abc", "sequence of 3 ints"),
        (8, "sequence of 3 ints"),
        ((8, 8), "3 coordinates"),
        ((8, 8, 8, 8), "3 coordinates"),
        ((8, 0, 8), "must be positive"),
        ((8, 8, -8), "must be positive"),
        ((8, 1.5, 8), "must contain ints"),
        (np.ones((3, 1), int), "flat"),
    ],
)
def test_check_chunk_size_refuses_bad_sizes_naming_them(given, text):
    with pytest.raises(ChunkingError, match=text) as info:
        check_chunk_size(given, "target_chunk_size")
    assert str(info.value).startswith("target_chunk_size ")
    assert isinstance(info.value, ValueError)  # what callers catch


# -- plan_chunks --------------------------------------------------------------------------------

BOXES = [
    ((0, 0, 0), (64, 64, 64), (32, 32, 32)),  # aligned
    ((5, 0, 30), (70, 33, 20), (16, 16, 8)),  # unaligned on both ends
    ((-5, -17, 3), (10, 20, 1), (4, 8, 2)),  # negative offsets
    ((7, 7, 7), (3, 3, 3), (32, 32, 32)),  # inside one chunk
    ((0, 0, 0), (0, 5, 5), (2, 2, 2)),  # empty in x
    ((1, 2, 3), (12, 10, 9), (3, 5, 7)),  # sizes that are not powers of two
]


@pytest.mark.parametrize("offset, size, chunk", BOXES)
def test_plan_matches_the_reference_in_x_outer_z_inner_order(offset, size, chunk):
    plan = plan_chunks(offset, size, chunk, None)
    axes = [reference_axis(offset[a], size[a], chunk[a]) for a in range(3)]
    expected = [
        ((x[0], y[0], z[0]), (x[1], y[1], z[1])) for x, y, z in itertools.product(*axes)
    ]  # itertools.product: the first axis outermost
    assert plan.shape == tuple(len(a) for a in axes)
    assert len(plan) == len(expected)
    assert [plan.chunk(n) for n in range(len(plan))] == expected
    for ix, iy, iz in itertools.product(*(range(n) for n in plan.shape)):
        assert plan.chunk(plan.number(ix, iy, iz)) == (
            (axes[0][ix][0], axes[1][iy][0], axes[2][iz][0]),
            (axes[0][ix][1], axes[1][iy][1], axes[2][iz][1]),
        )
    assert plan.offset == tuple(offset) and plan.size == tuple(size) and plan.chunk_size == tuple(chunk)


def test_plan_takes_sequences_and_numpy_ints():
    a = plan_chunks([5, 0, 30], np.array([70, 33, 20]), Vec3Int(16, 16, 8), np.int64(32))
    b = plan_chunks((5, 0, 30), (70, 33, 20), (16, 16, 8), 32)
    assert a == b and type(a.write_unit) is int and all(type(v) is int for v in a.offset + a.size)


def _unit_cells(offset, size, unit):
    """The write units (cells of the ``unit`` grid) a box touches."""
    return set(
        itertools.product(
            *(range(offset[a] // unit, (offset[a] + size[a] - 1) // unit + 1) for a in range(3))
        )
    )


@pytest.mark.parametrize("offset, size, chunk", [b for b in BOXES if 0 not in b[1]])
@pytest.mark.parametrize("write_unit", [None, 1, 4, 16, 64])
def test_groups_keep_chunks_of_one_write_unit_together_and_no_more(offset, size, chunk, write_unit):
    plan = plan_chunks(offset, size, chunk, write_unit)
    groups = list(plan.groups())
    assert plan.group_count() == len(groups)
    numbers = [[n for n, _, _ in plan.group_chunks(runs)] for runs in groups]
    # every chunk in exactly one group, with its own box
    assert sorted(itertools.chain(*numbers)) == list(range(len(plan)))
    for runs in groups:
        for n, box_offset, box_size in plan.group_chunks(runs):
            assert plan.chunk(n) == (box_offset, box_size)
    if write_unit is None:
        assert all(len(g) == 1 for g in numbers)  # read-only work: every chunk alone
        return
    cells = [set().union(*(_unit_cells(*plan.chunk(n), write_unit) for n in g)) for g in numbers]
    # two groups never share a write unit (no lost update between concurrent tasks) ...
    for a, b in itertools.combinations(cells, 2):
        assert not a & b
    # ... and a group is no bigger than that needs: splitting it along any axis at a
    # chunk border would put one write unit into both halves
    for runs in groups:
        for axis in range(3):
            run = runs[axis]
            for cut in range(run.start + 1, run.stop):
                start = plan.axis_starts[axis][cut]
                assert start % write_unit != 0


def test_an_empty_box_has_no_chunks_and_no_groups():
    plan = plan_chunks((3, 3, 3), (0, 0, 0), (4, 4, 4), 8)
    assert len(plan) == 0 and plan.shape == (0, 0, 0)
    assert plan.group_count() == 0 and list(plan.groups()) == []
    with pytest.raises(ChunkingError, match="not in this plan of 0 chunks"):
        plan.chunk(0)


@pytest.mark.parametrize(
    "offset, size, chunk, unit, text",
    [
        ((0, 0), (4, 4, 4), (2, 2, 2), None, "offset must have 3 coordinates"),
        ((0, 0, 0), (4, 4, 4, 4), (2, 2, 2), None, "size must have 3 coordinates"),
        ((0, 0.5, 0), (4, 4, 4), (2, 2, 2), None, "offset"),
        ("000", (4, 4, 4), (2, 2, 2), None, "offset must be a sequence"),
        ((0, 0, 0), (4, -4, 4), (2, 2, 2), None, r"size \(4, -4, 4\) must not be negative"),
        ((0, 0, 0), (4, 4, 4), (2, 0, 2), None, "chunk_size .* must be positive"),
        ((0, 0, 0), (4, 4, 4), (2, 2, 2), 0, "write_unit must be None or a positive int, got 0"),
        ((0, 0, 0), (4, 4, 4), (2, 2, 2), -8, "write_unit must be None or a positive int, got -8"),
        ((0, 0, 0), (4, 4, 4), (2, 2, 2), 8.0, "write_unit must be None or a positive int, got 8.0"),
    ],
)
def test_plan_refuses_bad_boxes(offset, size, chunk, unit, text):
    with pytest.raises(ChunkingError, match=text):
        plan_chunks(offset, size, chunk, unit)


def test_chunk_numbers_and_grid_positions_outside_the_plan_are_refused():
    plan = plan_chunks((0, 0, 0), (8, 8, 8), (4, 4, 4), None)  # 2 x 2 x 2 chunks
    assert plan.chunk(7) == ((4, 4, 4), (4, 4, 4)) and plan.number(1, 1, 1) == 7
    # a negative number must not count from the end like a list index
    for number in (-1, 8, 100):
        with pytest.raises(ChunkingError, match=f"chunk number {number} is not in this plan of 8 chunks"):
            plan.chunk(number)
    for position in ((2, 0, 0), (0, -1, 0), (0, 0, 2)):
        with pytest.raises(ChunkingError, match="outside this plan's grid"):
            plan.number(*position)


# -- pair_chunk_axes ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "source_offset, source_size, source_chunk, target_offset, target_size, target_chunk",
    [
        ((0, 0, 0), (64, 64, 64), (32, 32, 32), (0, 0, 0), (64, 64, 64), (32, 32, 32)),  # same grid
        ((0, 0, 0), (64, 64, 64), (32, 32, 32), (0, 0, 0), (32, 32, 32), (16, 16, 16)),  # downsampling 2
        ((10, 0, 6), (40, 24, 12), (20, 8, 6), (32, 64, 0), (20, 24, 4), (10, 8, 2)),  # anisotropic
        ((0, 0, 0), (16, 16, 16), (8, 8, 8), (64, 0, 0), (32, 32, 32), (16, 16, 16)),  # upsampling
    ],
)
def test_pairing_maps_each_target_chunk_to_its_scaled_source_chunk(
    source_offset, source_size, source_chunk, target_offset, target_size, target_chunk
):
    plan = plan_chunks(target_offset, target_size, target_chunk, None)
    sx, sy, sz, lx, ly, lz = pair_chunk_axes(source_offset, source_size, plan, source_chunk, target_chunk)
    for a, (starts, lengths) in enumerate(((sx, lx), (sy, ly), (sz, lz))):
        s, c = source_chunk[a], target_chunk[a]
        expected_starts = [source_offset[a] + (t - target_offset[a]) * s // c for t in plan.axis_starts[a]]
        assert starts == expected_starts
        assert lengths == [n * s // c for n in plan.axis_sizes[a]]
        # the source chunks tile the source view
        assert starts[0] == source_offset[a] and starts[-1] + lengths[-1] == source_offset[a] + source_size[a]


def test_pairing_refuses_fractional_positions():
    # target chunks of 3 start at 0, 3, 6, 9 - relative 1 would map to source 2/3 (chunks 2 -> 3)
    plan = plan_chunks((1, 0, 0), (8, 3, 3), (3, 3, 3), None)
    with pytest.raises(ChunkingError, match="fractional source position .* align the target view"):
        pair_chunk_axes((0, 0, 0), (6, 2, 2), plan, (2, 2, 2), (3, 3, 3))


def test_pairing_refuses_chunks_that_do_not_cover_the_source():
    plan = plan_chunks((0, 0, 0), (16, 16, 16), (8, 8, 8), None)
    with pytest.raises(ChunkingError, match="end at 32 on axis x, the source view at 40"):
        pair_chunk_axes((0, 0, 0), (40, 32, 32), plan, (16, 16, 16), (8, 8, 8))


def test_pairing_refuses_a_plan_with_a_gap():
    # a hand-made plan whose second x chunk does not start where the first ends
    plan = ChunkPlan(
        offset=(0, 0, 0), size=(16, 8, 8), chunk_size=(8, 8, 8),
        axis_starts=([0, 10], [0], [0]), axis_sizes=([8, 6], [8], [8]), write_unit=None,
    )
    with pytest.raises(ChunkingError, match="gap or overlap at 8 on axis x"):
        pair_chunk_axes((0, 0, 0), (16, 8, 8), plan, (8, 8, 8), (8, 8, 8))


@pytest.mark.parametrize("sizes", [((0, 8, 8), (8, 8, 8)), ((8, 8, 8), (8, 8, -8)), ((8, 8), (8, 8, 8))])
def test_pairing_refuses_bad_chunk_sizes_instead_of_dividing_by_zero(sizes):
    plan = plan_chunks((0, 0, 0), (16, 16, 16), (8, 8, 8), None)
    with pytest.raises(ChunkingError):
        pair_chunk_axes((0, 0, 0), (16, 16, 16), plan, *sizes)

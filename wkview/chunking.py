"""Planning of chunked jobs: which chunks exist, which must run together, and
how source and target chunks pair up.

Everything here is geometry on ints; the chunk grids come from the compiled
core. A *write unit* is the smallest region a write rewrites as a whole: a
file in compressed mags, a block in raw ones. Two writable chunks that share a
write unit must never run concurrently (a read-modify-write of one of them
would undo the other's update), so such chunks are put into one *group*; a
group always runs sequentially inside a single task.
"""

from __future__ import annotations

import functools
import itertools
import operator
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from . import _core
from .errors import ChunkingError
from .geometry import _int3

__all__ = ["ChunkPlan", "check_chunk_size", "plan_chunks", "pair_chunk_axes"]

Int3 = tuple[int, int, int]


def check_chunk_size(chunk_size: object, name: str = "chunk_size") -> Int3:
    """Validate a chunk size: three positive ints (any value, not only powers of two)."""
    if chunk_size is None:
        raise ChunkingError(f"{name} is required")
    try:
        size = _int3(chunk_size, name)
    except (TypeError, ValueError) as exc:
        raise ChunkingError(str(exc)) from None
    if any(s <= 0 for s in size):
        raise ChunkingError(f"{name} {tuple(chunk_size)!r} must be positive in every axis")  # type: ignore[arg-type]
    return size


def _axis_chunks(offset: int, size: int, chunk: int) -> tuple[list[int], list[int]]:
    """Starts and sizes of the chunks along one axis (borders on multiples of ``chunk``)."""
    starts = []
    sizes = []
    for (start, _, _), (length, _, _) in _core.chunk_grid((offset, 0, 0), (size, 1, 1), (chunk, 1, 1), (chunk, 1, 1)).boxes():
        starts.append(start)
        sizes.append(length)
    return starts, sizes


def _axis_segments(starts: list[int], unit: int | None) -> list[range]:
    """Runs of consecutive chunks along one axis whose shared borders are not on the unit grid."""
    if unit is None or not starts:
        return [range(k, k + 1) for k in range(len(starts))]
    segments = []
    first = 0
    for k in range(1, len(starts)):
        if starts[k] % unit != 0:
            continue  # the border between chunk k-1 and k cuts through a write unit
        segments.append(range(first, k))
        first = k
    segments.append(range(first, len(starts)))
    return segments


@dataclass(frozen=True)
class ChunkPlan:
    """The chunks of a box in the seed's order (x outermost, z innermost).

    ``groups()`` yields lists of chunk numbers that must run in one task; with
    ``write_unit=None`` every chunk is its own group.
    """

    offset: Int3
    size: Int3
    chunk_size: Int3
    axis_starts: tuple[list[int], list[int], list[int]]
    axis_sizes: tuple[list[int], list[int], list[int]]
    write_unit: int | None

    @functools.cached_property
    def shape(self) -> Int3:
        return (len(self.axis_starts[0]), len(self.axis_starts[1]), len(self.axis_starts[2]))

    def __len__(self) -> int:
        nx, ny, nz = self.shape
        return nx * ny * nz

    def chunk(self, number: int) -> tuple[Int3, Int3]:
        """Absolute ``(offset, size)`` of chunk ``number``.

        Raises
        ------
        ChunkingError
            When ``number`` is not one of the plan's chunk numbers (a negative one would
            otherwise count from the end, as list indices do, and name another chunk).
        """
        if not 0 <= number < len(self):
            raise ChunkingError(f"chunk number {number} is not in this plan of {len(self)} chunks")
        nx, ny, nz = self.shape
        ix, rest = divmod(number, ny * nz)
        iy, iz = divmod(rest, nz)
        return (
            (self.axis_starts[0][ix], self.axis_starts[1][iy], self.axis_starts[2][iz]),
            (self.axis_sizes[0][ix], self.axis_sizes[1][iy], self.axis_sizes[2][iz]),
        )

    def number(self, ix: int, iy: int, iz: int) -> int:
        """The number of the chunk at grid position ``(ix, iy, iz)`` (see :meth:`chunk`)."""
        if not all(0 <= i < n for i, n in zip((ix, iy, iz), self.shape)):
            raise ChunkingError(f"grid position {(ix, iy, iz)} is outside this plan's grid {self.shape}")
        _, ny, nz = self.shape
        return (ix * ny + iy) * nz + iz

    def groups(self) -> Iterator[tuple[range, range, range]]:
        """The groups, each to be run sequentially in one task: per axis, the run of
        chunk indices it spans (its chunks are the product of the three runs)."""
        seg = [_axis_segments(self.axis_starts[a], self.write_unit) for a in range(3)]
        return itertools.product(*seg)

    def group_chunks(self, runs: tuple[range, range, range]) -> _core.GroupChunks:
        """The ``(number, offset, size)`` of the chunks of a group, lazily (see
        :class:`wkview._core.GroupChunks`); only the group's part of the grid is kept."""
        (rx, ry, rz) = runs
        return _core.GroupChunks(
            self.axis_starts[0][rx.start : rx.stop], self.axis_sizes[0][rx.start : rx.stop],
            self.axis_starts[1][ry.start : ry.stop], self.axis_sizes[1][ry.start : ry.stop],
            self.axis_starts[2][rz.start : rz.stop], self.axis_sizes[2][rz.start : rz.stop],
            (rx.start, ry.start, rz.start), self.shape,
        )

    def group_count(self) -> int:
        seg = [_axis_segments(self.axis_starts[a], self.write_unit) for a in range(3)]
        return len(seg[0]) * len(seg[1]) * len(seg[2])


def plan_chunks(offset: Sequence[int], size: Sequence[int], chunk_size: Sequence[int], write_unit: int | None) -> ChunkPlan:
    """Chunks of the box with borders on absolute multiples of ``chunk_size``.

    ``write_unit`` is the edge of the region a write rewrites whole, or None
    for read-only work.

    Raises
    ------
    ChunkingError
        When ``offset``, ``size`` or ``chunk_size`` is not three ints, ``size`` is
        negative, ``chunk_size`` is not positive, or ``write_unit`` is neither None nor
        a positive int.
    """
    cs = check_chunk_size(chunk_size)
    try:
        box_offset, box_size = _int3(offset, "offset"), _int3(size, "size")
    except (TypeError, ValueError) as exc:
        raise ChunkingError(str(exc)) from None
    if any(s < 0 for s in box_size):
        raise ChunkingError(f"size {box_size} must not be negative")
    if write_unit is not None:
        try:
            write_unit = operator.index(write_unit)
        except TypeError:
            raise ChunkingError(f"write_unit must be None or a positive int, got {write_unit!r}") from None
        if write_unit <= 0:  # a zero unit would divide by zero when grouping; a negative one means nothing
            raise ChunkingError(f"write_unit must be None or a positive int, got {write_unit!r}")
    axes = [_axis_chunks(box_offset[a], box_size[a], cs[a]) for a in range(3)]
    return ChunkPlan(
        offset=tuple(box_offset),  # type: ignore[arg-type]
        size=tuple(box_size),  # type: ignore[arg-type]
        chunk_size=cs,
        axis_starts=(axes[0][0], axes[1][0], axes[2][0]),
        axis_sizes=(axes[0][1], axes[1][1], axes[2][1]),
        write_unit=write_unit,
    )


def pair_chunk_axes(
    source_offset: Sequence[int],
    source_size: Sequence[int],
    target_plan: ChunkPlan,
    source_chunk_size: Int3,
    target_chunk_size: Int3,
) -> tuple[list[int], list[int], list[int], list[int], list[int], list[int]]:
    """Map every target chunk to its source chunk and prove the pairing.

    A target chunk at ``t`` (relative to the target view) of size ``n`` pairs
    with the source chunk at ``t * s / c`` of size ``n * s / c`` (``s`` and
    ``c`` the source and target chunk sizes). Because the grids are products
    of per-axis chunkings, checking each axis proves the whole pairing: the
    mapped source chunks must have integer coordinates and tile the source
    view exactly (no gap, no overlap, nothing outside), which makes the
    pairing one-to-one and covering both views.

    Returns per axis the source starts and sizes (x, y, z starts, then x, y, z sizes).

    Raises
    ------
    ChunkingError
        When a chunk size is not three positive ints, or the pairing fails (a fractional
        source position, a gap, an overlap, or chunks not ending where the source does).
    """
    source_chunk_size = check_chunk_size(source_chunk_size, "source_chunk_size")
    target_chunk_size = check_chunk_size(target_chunk_size, "target_chunk_size")
    starts: list[list[int]] = []
    sizes: list[list[int]] = []
    for a in range(3):
        s, c = source_chunk_size[a], target_chunk_size[a]
        t_origin = target_plan.offset[a]
        axis_starts = []
        axis_sizes = []
        expected = source_offset[a]
        for t_start, t_len in zip(target_plan.axis_starts[a], target_plan.axis_sizes[a]):
            rel = t_start - t_origin
            if (rel * s) % c or (t_len * s) % c:
                raise ChunkingError(
                    f"target chunk at {t_start} (size {t_len}) on axis {'xyz'[a]} maps to a "
                    f"fractional source position with chunk sizes {source_chunk_size} -> "
                    f"{target_chunk_size}; align the target view to its chunk size"
                )
            src_start = source_offset[a] + rel * s // c
            src_len = t_len * s // c
            if src_start != expected:
                raise ChunkingError(
                    f"source chunks leave a gap or overlap at {expected} on axis {'xyz'[a]}"
                )
            axis_starts.append(src_start)
            axis_sizes.append(src_len)
            expected = src_start + src_len
        if expected != source_offset[a] + source_size[a]:
            raise ChunkingError(
                f"the source chunks end at {expected} on axis {'xyz'[a]}, the source view at "
                f"{source_offset[a] + source_size[a]}: chunks would not cover the source view"
            )
        starts.append(axis_starts)
        sizes.append(axis_sizes)
    return starts[0], starts[1], starts[2], sizes[0], sizes[1], sizes[2]

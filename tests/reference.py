"""Plain Python/NumPy reference implementations of the kernels in ``wkview._core``.

They are written for clarity, not speed: Python's ``//`` and ``%`` (which floor,
also for negative coordinates), explicit loops and :mod:`itertools`. The property
tests in ``test_core.py`` compare the compiled kernels with these functions.
Inputs are assumed valid; input validation is tested separately.
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

import numpy as np

Vec3 = tuple[int, int, int]
Box = tuple[Vec3, Vec3]


class CellPart(NamedTuple):
    """One grid cell touched by a box (mirrors ``wkview._core.CellPart``)."""

    index: Vec3
    local_offset: Vec3
    size: Vec3
    array_offset: Vec3
    full: bool


def _floor_to(value: int, step: int) -> int:
    return (value // step) * step


def _ceil_to(value: int, step: int) -> int:
    return -((-value) // step) * step


def align_box(offset: Vec3, size: Vec3, grid: Vec3, outward: bool = True) -> Box:
    """Align a box to ``grid``: grow to the smallest aligned box containing it
    (``outward``) or shrink to the largest aligned box inside it (size 0 where
    no whole cell fits)."""
    new_offset = []
    new_size = []
    for o, s, g in zip(offset, size, grid):
        if outward:
            lo, hi = _floor_to(o, g), _ceil_to(o + s, g)
        else:
            lo, hi = _ceil_to(o, g), _floor_to(o + s, g)
            hi = max(hi, lo)
        new_offset.append(lo)
        new_size.append(hi - lo)
    return tuple(new_offset), tuple(new_size)  # type: ignore[return-value]


def is_aligned(offset: Vec3, size: Vec3, grid: Vec3) -> bool:
    """True when both corners of the box are multiples of ``grid``."""
    return all(o % g == 0 and (o + s) % g == 0 for o, s, g in zip(offset, size, grid))


def _cells_on_axis(lo: int, length: int, cell: int) -> list[int]:
    """Indices of the cells that the interval ``[lo, lo + length)`` overlaps."""
    if length == 0:
        return []
    return [k for k in range(lo // cell - 1, (lo + length) // cell + 2)
            if k * cell < lo + length and (k + 1) * cell > lo]


def project_box(offset: Vec3, size: Vec3, cell: Vec3) -> list[CellPart]:
    """Every grid cell the box touches, x fastest, then y, then z."""
    per_axis = [_cells_on_axis(offset[a], size[a], cell[a]) for a in range(3)]
    parts = []
    for kz, ky, kx in itertools.product(per_axis[2], per_axis[1], per_axis[0]):
        index = (kx, ky, kz)
        local, part_size, array_offset = [], [], []
        full = True
        for a in range(3):
            cell_lo = index[a] * cell[a]
            cell_hi = cell_lo + cell[a]
            lo = max(cell_lo, offset[a])
            hi = min(cell_hi, offset[a] + size[a])
            full = full and (lo, hi) == (cell_lo, cell_hi)
            local.append(lo - cell_lo)
            part_size.append(hi - lo)
            array_offset.append(lo - offset[a])
        parts.append(CellPart(index, tuple(local), tuple(part_size), tuple(array_offset), full))  # type: ignore[arg-type]
    return parts


def morton_index(x: int, y: int, z: int) -> int:
    """Interleave the bits of x, y and z (x in the lowest bit) into one index."""
    index = 0
    for bit in range(21):
        for axis, value in enumerate((x, y, z)):
            if value >> bit & 1:
                index |= 1 << (3 * bit + axis)
    return index


def morton_decode(index: int) -> Vec3:
    """Inverse of :func:`morton_index`."""
    coord = [0, 0, 0]
    for position in range(63):
        if index >> position & 1:
            coord[position % 3] |= 1 << (position // 3)
    return tuple(coord)  # type: ignore[return-value]


def chunk_grid(offset: Vec3, size: Vec3, chunk_size: Vec3, alignment: Vec3 | None = None) -> list[Box]:
    """``(offset, size)`` of every chunk, like webknossos' ``BoundingBox.chunk``.

    The grid starts at ``offset`` rounded down to ``alignment`` (at ``offset``
    without one) and steps by ``chunk_size``; each chunk is clipped to the box.
    Order: x outermost, z innermost. An empty box has no chunks (with an
    alignment, webknossos' loop would reach one empty chunk before the box).
    """
    if 0 in size:
        return []
    end = [offset[a] + size[a] for a in range(3)]
    starts = [offset[a] if alignment is None else _floor_to(offset[a], alignment[a]) for a in range(3)]
    ranges = [range(starts[a], end[a], chunk_size[a]) for a in range(3)]
    boxes = []
    for corner in itertools.product(*ranges):
        lo = tuple(max(corner[a], offset[a]) for a in range(3))
        hi = tuple(min(corner[a] + chunk_size[a], end[a]) for a in range(3))
        boxes.append((lo, tuple(hi[a] - lo[a] for a in range(3))))
    return boxes  # type: ignore[return-value]


def merge_into(
    existing: np.ndarray | None,
    data: np.ndarray,
    local_offset: Vec3,
    shape: Vec3,
    dtype: np.dtype | type,
) -> np.ndarray:
    """``existing`` (zeros when None) with ``data`` written at ``local_offset``; never in place."""
    channels = data.shape[0]
    if existing is None:
        region = np.zeros((channels, *shape), dtype=dtype)
    else:
        region = np.array(existing, copy=True)
    for c, x, y, z in itertools.product(*(range(n) for n in data.shape)):
        region[c, local_offset[0] + x, local_offset[1] + y, local_offset[2] + z] = data[c, x, y, z]
    return region

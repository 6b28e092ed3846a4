"""Worker functions of the reliability tests, run in other processes (importable by spawn
and forkserver children)."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from wkview import BoundingBox, Dataset

#: edge of the disjoint cells the racing writers write into, and the box inside each cell
CELL = 4
BOX = (3, 2, 3)
BOX_AT = (1, 1, 0)  # inside the cell: never aligned with blocks of 8


def cell_box(cell: tuple[int, int, int]) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    offset = tuple(c * CELL + a for c, a in zip(cell, BOX_AT))
    return offset, BOX  # type: ignore[return-value]


def cell_value(proc: int, k: int) -> int:
    return 1 + proc * 1000 + k


def race_writer(path: str, layers: list[str], proc: int, cells: list[tuple[int, int, int]], start: Any) -> None:
    """Write one small unaligned box per cell into every layer's mag 1, each box its own call."""
    warnings.simplefilter("ignore", RuntimeWarning)  # unaligned compressed writes warn
    ds = Dataset(path)
    mags = [ds.get_layer(name).get_mag(1) for name in layers]
    start.wait()
    for k, cell in enumerate(cells):
        offset, size = cell_box(cell)
        for mag in mags:
            mag.write(np.full(size, cell_value(proc, k), dtype=np.uint16), offset=offset)


# -- kill -9 loops: each runs until it is killed ------------------------------------------


def loop_writes(path: str, layer: str, offset: tuple[int, int, int], versions: list[np.ndarray], ready: Any) -> None:
    """Write the versions of one box in turn, forever (each write touches several files)."""
    warnings.simplefilter("ignore", RuntimeWarning)
    mag = Dataset(path).get_layer(layer).get_mag(1)
    ready.set()
    while True:
        for data in versions:
            mag.write(data, offset=offset)


def loop_property_saves(path: str, boxes: list[BoundingBox], ready: Any) -> None:
    """Set the layer's bounding box to each of ``boxes`` in turn (each a properties save)."""
    layer = Dataset(path).get_layer("color")
    ready.set()
    while True:
        for box in boxes:
            layer.bounding_box = box


def loop_downsample(path: str, ready: Any) -> None:
    """Build mag 2 from mag 1, again and again."""
    layer = Dataset(path).get_layer("color")
    ready.set()
    while True:
        layer.downsample_mag(1, 2, interpolation_mode="max", compress=True)


def run_compress(path: str, ready: Any) -> None:
    """Compress the raw mag 1 in place, once."""
    mag = Dataset(path).get_layer("color").get_mag(1)
    ready.set()
    mag.compress()


def plane_writer(path: str, layers: list[str], boxes: list[tuple[tuple[int, int, int], tuple[int, int, int], int]], start: Any) -> None:
    """Write boxes that span several files each (the locks of one call are taken together)."""
    warnings.simplefilter("ignore", RuntimeWarning)
    ds = Dataset(path)
    mags = [ds.get_layer(name).get_mag(1) for name in layers]
    start.wait()
    for offset, size, value in boxes:
        for mag in mags:
            mag.write(np.full(size, value, dtype=np.uint16), offset=offset)

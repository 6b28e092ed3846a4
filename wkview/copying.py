"""Copying and linking mags and layers: the lower floor under :class:`wkview.Dataset`
and :class:`wkview.Layer` (``add_copy_layer``, ``add_symlink_layer``,
``add_copy_mag``, ``add_symlink_mag``, ``copy_dataset``).

A mag whose target has the same block_len, file_len and block type as its
source is copied file by file, byte for byte (nothing is decoded:
:func:`copy_files`); otherwise every target file is written once from voxels read
out of the source (re-encoded: :func:`reencode`), one job per target file, on any
executor. Links are plain symlinks (absolute, or relative with
``make_relative=True``); wkview only reads data behind a link that leaves the
dataset folder. The functions here take views, folders and properties entries;
they know nothing of ``Dataset`` or ``Layer``.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Sequence
from itertools import product
from pathlib import Path
from typing import Any, Optional

import numpy as np
import wkw

from . import _durable, properties as props
from ._storage import _FileCheck, get_io_threads
from .errors import DatasetError, DTypeMismatchError, ShapeError
from .executors import get_executor, run_jobs
from .geometry import BoundingBox
from .view import View

__all__ = [
    "is_inside", "CopyFilesJob", "write_in_slabs", "ReencodeJob", "same_layout", "copy_files", "reencode",
    "boxes_with_data", "rebased_mags", "foreign_entry", "link", "copy_other_files", "check_compatible",
]  # fmt: skip


# voxels per slab when a job fills one target file: bounds a job's memory for big files
_SLAB_BYTES = 128 * 2**20


def is_inside(path: Path, root: Path) -> bool:
    """True when ``path`` resolves (symlinks followed) to ``root`` or a path below it."""
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


# -- jobs (module level: they pickle for process and cluster executors) ---------------------


class CopyFilesJob:
    """Copy one data file of a mag byte for byte (validated first, renamed into place)."""

    def __init__(self, source: str, target: str, header: wkw.Header) -> None:
        self.source = source
        self.target = target
        self.header = header

    def __getstate__(self) -> dict[str, Any]:
        h = self.header
        state = dict(self.__dict__)
        state["header"] = dict(
            voxel_type=h.voxel_type, num_channels=h.num_channels, version=h.version,
            block_len=h.block_len, file_len=h.file_len, block_type=h.block_type,
        )  # fmt: skip
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.header = wkw.Header(**state["header"])

    def __call__(self, index: tuple[int, int, int]) -> int:
        x, y, z = index
        rel = os.path.join(f"z{z}", f"y{y}", f"x{x}.wkw")
        source = os.path.join(self.source, rel)
        _FileCheck().check(source, self.header)  # CorruptFileError names a damaged file
        return _durable.copy_file(source, os.path.join(self.target, rel))


def write_in_slabs(
    target: View,
    offset: tuple[int, int, int],
    size: tuple[int, int, int],
    produce: Callable[[tuple[int, int, int], tuple[int, int, int]], np.ndarray],
    slab_bytes: int = _SLAB_BYTES,
) -> None:
    """Fill the box ``(offset, size)`` of ``target`` (relative offsets, inside the view) with ``produce(offset, size)``.

    A box larger than ``slab_bytes`` (128 MiB) is written in z-slabs whose
    borders lie on the target's block grid, so no block is encoded twice and a
    job's memory stays bounded; a smaller box goes in one write.
    """
    channels = target.header.num_channels
    itemsize = np.dtype(target.get_dtype()).itemsize
    plane = size[0] * size[1] * channels * itemsize
    block = target.header.block_len
    depth = max(block, (slab_bytes // max(plane, 1)) // block * block)
    absolute_z = target.global_offset[2] + offset[2]
    z, end = offset[2], offset[2] + size[2]
    while z < end:
        # the next border on the block grid at least `depth` further, in absolute coordinates
        stop = min(end, ((absolute_z + (z - offset[2]) + depth) // block) * block - absolute_z + offset[2])
        if stop <= z:
            stop = min(end, z + depth)
        box_off, box_size = (offset[0], offset[1], z), (size[0], size[1], stop - z)
        data = produce(box_off, box_size)
        if data.shape != (channels, *box_size) or data.dtype != target.get_dtype():
            raise ShapeError(f"expected {channels} x {box_size} voxels of {np.dtype(target.get_dtype())}, got {data.shape} {data.dtype}")
        # a slab inside a file is planned, not the unaligned write View warns about
        target.write_planned(data, box_off)
        z = stop


class ReencodeJob:
    """Write one target box from the same box of the source (the voxels are re-encoded)."""

    def __init__(self, source: View, target: View) -> None:
        self.source = source
        self.target = target

    def __call__(self, box: tuple[tuple[int, int, int], tuple[int, int, int]]) -> None:
        offset, size = box
        write_in_slabs(self.target, offset, size, self.source.read)


# -- mag copies -------------------------------------------------------------------------------


def same_layout(header: wkw.Header, source_compressed: bool, block_len: int, file_len: int, compressed: bool) -> bool:
    """Whether a mag of ``header`` copies byte for byte into files of this layout."""
    return header.block_len == block_len and header.file_len == file_len and source_compressed == compressed


def copy_files(
    source: View,
    target: View,
    files: Sequence[tuple[int, int, int]],
    executor: Any = None,
    *,
    progress: Optional[bool] = None,
    desc: str = "copy",
) -> None:
    """Copy the data files ``files`` (grid indices) of ``source``'s mag folder into ``target``'s,
    byte for byte; both mags have the same header. One job per file on ``executor``."""
    job = CopyFilesJob(str(source.path), str(target.path), source.header)
    run_jobs(job, list(files), executor, progress=progress, desc=desc, describe=_describe_file)


def reencode(
    source: View,
    target: View,
    box: BoundingBox,
    source_files: set[tuple[int, int, int]],
    executor: Any = None,
    *,
    progress: Optional[bool] = None,
    desc: str = "re-encode",
) -> None:
    """Write ``box`` (absolute, in voxels of the mag) of ``target`` from the same box of ``source``.

    One job per target file that overlaps one of ``source_files`` (the grid
    indices of the source's data files): files without source data stay absent.
    Without an executor, several files run at once on the IO threads.
    """
    if box.is_empty():
        return
    boxes = boxes_with_data(box, source.file_edge, source_files, target.file_edge)
    job = ReencodeJob(
        source.get_view(offset=box.topleft, size=box.size, read_only=True),
        target.get_view(offset=box.topleft, size=box.size),
    )
    if executor is None and len(boxes) > 1 and get_io_threads() > 1:
        # small files stay on one thread inside the codec: run several files at once instead
        # (the codec reads and encodes without the GIL)
        with get_executor("threads", max_workers=get_io_threads()) as threads:
            run_jobs(job, boxes, threads, progress=progress, desc=desc, describe=_describe_box)
    else:
        run_jobs(job, boxes, executor, progress=progress, desc=desc, describe=_describe_box)


def boxes_with_data(
    box: BoundingBox, source_edge: int, source_files: set[tuple[int, int, int]], target_edge: int
) -> list[tuple[tuple[int, int, int], tuple[int, int, int]]]:
    """Target-file-aligned parts of ``box`` (offsets relative to it) that overlap a source file."""
    out = []
    for chunk in box.chunk((target_edge,) * 3, (target_edge,) * 3):
        lo = chunk.topleft // source_edge
        hi = (chunk.bottomright - 1) // source_edge
        ranges = (range(lo[i], hi[i] + 1) for i in range(3))
        if any(index in source_files for index in product(*ranges)):
            out.append(((chunk.topleft - box.topleft).to_tuple(), chunk.size.to_tuple()))
    return out


def _describe_file(index: tuple[int, int, int]) -> str:
    return f"file z{index[2]}/y{index[1]}/x{index[0]}.wkw"


def _describe_box(box: tuple[tuple[int, int, int], tuple[int, int, int]]) -> str:
    return f"box at {box[0]} of size {box[1]} (relative to the layer's box)"


def check_compatible(header: wkw.Header, what: str, dtype_per_channel: np.dtype, num_channels: int, layer_name: str) -> None:
    """Raise :class:`DTypeMismatchError` unless a mag of ``header`` (described by ``what``) fits a
    layer of ``num_channels`` x ``dtype_per_channel``."""
    if np.dtype(header.voxel_type) != dtype_per_channel or header.num_channels != num_channels:
        raise DTypeMismatchError(
            f"{what} stores {header.num_channels} x {np.dtype(header.voxel_type)}; layer {layer_name!r} "
            f"stores {num_channels} x {dtype_per_channel}"
        )


# -- layers -----------------------------------------------------------------------------------


def rebased_mags(entry: props.LayerProperties, new_name: str) -> list[props.MagProperties]:
    """The layer's mag entries, with paths under ``new_name`` (they must lie in the layer folder)."""
    out = []
    for mag in entry.mags:
        if not (mag.path == entry.name or mag.path.startswith(entry.name + "/")):
            raise DatasetError(
                f"mag {mag.mag} of layer {entry.name!r} lies in {mag.path!r}, outside the layer's folder; "
                "it cannot be linked or copied with the layer"
            )
        path = new_name + mag.path[len(entry.name) :]
        out.append(props.MagProperties(mag.mag, mag.cube_length, path, copy.deepcopy(mag.extra)))
    return out


def foreign_entry(entry: props.LayerProperties, mags: list[props.MagProperties]) -> props.LayerProperties:
    """A copy of another dataset's layer entry (every field it has), with ``mags``."""
    return props.LayerProperties(
        name=entry.name,
        category=entry.category,
        element_class=entry.element_class,
        num_channels=entry.num_channels,
        bounding_box=entry.bounding_box,
        data_format="wkw",
        mags=mags,
        largest_segment_id=entry.largest_segment_id,
        extra=copy.deepcopy(entry.extra),
    )


def link(target: Path, at: Path, make_relative: bool) -> None:
    """Create the symlink ``at`` to the folder ``target`` (refused when ``at`` exists)."""
    if os.path.lexists(at):
        raise DatasetError(f"cannot create the link {at}: the path exists")
    pointee = os.path.relpath(os.path.abspath(target), os.path.abspath(at.parent)) if make_relative else os.path.abspath(target)
    os.symlink(pointee, at, target_is_directory=True)


def copy_other_files(source: Path, target: Path, skip: set[str]) -> None:
    """Copy the entries of the folder ``source`` not named in ``skip`` into ``target`` (files and
    whole folders; links are followed). Every file is a byte copy through the durable path
    (:func:`wkview._durable.copy_file`): it gets a new file's mode, not the source's. The
    source's lock files and temporary files are wkview's own, not the layer's: not copied."""
    for entry in source.iterdir():
        if entry.name in skip or (
            entry.name.startswith(".") and entry.name.endswith((_durable.LOCK_SUFFIX, _durable.TEMP_SUFFIX))
        ):
            continue
        if entry.is_dir():
            _durable.makedirs_durable(str(target / entry.name))
            copy_other_files(entry, target / entry.name, set())
        else:
            # the layer folder is new and named nowhere yet: no lock (and no lock file per copy)
            _durable.copy_file(entry, target / entry.name, lock=False)

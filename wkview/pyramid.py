"""Building coarser mags: which mags a pyramid has, and the chunked job run that
fills one mag from another.

This module is orchestration only: the pooling kernels and the per-chunk job
live in :mod:`wkview.downsampling`, the views and their IO in :mod:`wkview.view`.
It works on plain :class:`~wkview.View` objects, so a mag can be computed into a
folder that no ``datasource-properties.json`` names yet and be made visible only
when it is complete (see :meth:`wkview.Layer.downsample_mag` and
:mod:`wkview.convert`).
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any, Optional, Sequence

import wkw

from ._storage import MagStore
from .downsampling import DownsampleJob
from .executors import runs_here
from .geometry import BoundingBox, Mag
from .view import View

__all__ = ["downsampling_chain", "default_coarsest_mag", "downsample_into", "fresh_mag_folder", "bare_view"]

SAMPLING_MODES = ("auto", "anisotropic", "isotropic")


def downsampling_chain(
    start: Mag,
    max_mag: Optional[Mag],
    sampling_mode: str,
    scale: Sequence[float],
    size: Sequence[int],
) -> list[Mag]:
    """The mags after ``start`` that a pyramid up to ``max_mag`` holds, in order.

    ``sampling_mode``: "isotropic" doubles every axis per step; "anisotropic" and
    "auto" double the axes whose physical voxel size (``scale`` times mag) is within
    1.5x of the smallest, so that voxels become isotropic first (scale (11, 11, 25)
    gives 2-2-1, 4-4-2, ...). Without ``max_mag`` the chain ends at the first mag in
    which a box of ``size`` mag-1 voxels fits into 256 voxels per axis.
    """
    if sampling_mode not in SAMPLING_MODES:
        raise ValueError(f"sampling_mode must be one of {', '.join(map(repr, SAMPLING_MODES))}, got {sampling_mode!r}")
    limit = None if max_mag is None else max_mag.to_tuple()
    chain: list[Mag] = []
    current = start.to_tuple()
    for _ in range(64):
        if limit is not None:
            if all(c >= m for c, m in zip(current, limit)):
                break
        elif all(-(-size[i] // current[i]) <= 256 for i in range(3)):
            break
        if sampling_mode == "isotropic":
            step = (2, 2, 2)
        else:
            physical = [scale[i] * current[i] for i in range(3)]
            smallest = min(physical)
            step = tuple(2 if physical[i] <= smallest * 1.5 else 1 for i in range(3))  # type: ignore[assignment]
        nxt = tuple(current[i] * step[i] for i in range(3))
        if limit is not None:
            nxt = tuple(min(nxt[i], max(limit[i], current[i])) for i in range(3))
        if nxt == current:
            break
        current = nxt  # type: ignore[assignment]
        chain.append(Mag(current))
    return chain


def default_coarsest_mag(size: Sequence[int]) -> Mag:
    """The coarsest mag ``wkview convert`` and ``wkview downsample`` build by default: the
    power of two that brings the larger of x and y to about 100 voxels, at least 4 (the rule
    of webknossos' own command line, so both make the same pyramid)."""
    largest = max(int(size[0]), int(size[1]), 1)
    return Mag(max(1 << max(0, math.ceil(math.log2(largest / 100))), 4))


def fresh_mag_folder(path: Path, header: wkw.Header) -> MagStore:
    """An empty mag folder at ``path`` with ``header``; whatever was there is removed.

    Only for folders no properties file names (the leftovers of an interrupted
    run): they are never mixed with new data.
    """
    remove_path(path)
    return MagStore.create(path, header)


def remove_path(path: Path) -> None:
    """Remove a file, a link (not its target) or a whole folder; nothing when absent."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)


def bare_view(
    path: Path, header: wkw.Header, box: BoundingBox, read_only: bool = False, store: Optional[MagStore] = None
) -> View:
    """A view of the mag folder ``path`` from (0, 0, 0) to the end of ``box`` (absolute
    offsets); ``box`` is the data's box in this mag (writes ending at its border are
    not "unaligned")."""
    return View(
        path, header, size=tuple(box.bottomright), global_offset=(0, 0, 0), read_only=read_only,
        mag_view_bbox_at_creation=box, _store=store,
    )


def downsample_into(
    source: View,
    target: View,
    bbox: BoundingBox,
    source_mag: Mag,
    target_mag: Mag,
    mode: str,
    buffer_edge_len: Optional[int],
    executor: Any = None,
    *,
    progress: Optional[bool] = None,
) -> None:
    """Fill ``target`` (a view of mag ``target_mag`` at offset 0) from ``source`` (mag ``source_mag``).

    ``bbox`` is the layer's bounding box in mag-1 voxels. One chunk job per target
    file: each job reads its source region in slabs of ``buffer_edge_len`` target
    voxels per edge, pools them with ``mode`` and writes its whole target file once,
    so no two jobs share a file and no file is read back.
    """
    factors = tuple(t // s for t, s in zip(target_mag, source_mag))
    box = bbox.align_with_mag(target_mag, ceil=True)
    if box.is_empty():
        return
    src_box, tgt_box = box.in_mag(source_mag), box.in_mag(target_mag)
    edge = target._store.file_edge
    if buffer_edge_len is None:  # slabs of 128^3 target voxels keep a job's memory small
        buffer_edge_len = min(edge, 128)
    if isinstance(buffer_edge_len, bool) or not isinstance(buffer_edge_len, int) or buffer_edge_len <= 0:
        raise ValueError(f"buffer_edge_len must be a positive int, got {buffer_edge_len!r}")
    files = 1
    for a in range(3):
        files *= -(-tgt_box.bottomright[a] // edge) - tgt_box.topleft[a] // edge
    if files <= 1 and runs_here(executor):
        executor = None  # one job on a local pool: here, without a process start or pickling
    source_part = source.get_view(offset=src_box.topleft, size=src_box.size, read_only=True)
    target_part = target.get_view(offset=tgt_box.topleft, size=tgt_box.size)
    source_part.for_zipped_chunks(
        DownsampleJob(factors, mode, buffer_edge_len),  # type: ignore[arg-type]
        target_part,
        (edge * factors[0], edge * factors[1], edge * factors[2]),
        (edge, edge, edge),
        executor,
        progress=progress,
        desc=f"mag {target_mag.to_layer_name()}",
    )

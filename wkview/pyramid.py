"""Mag pyramids: which mags a pyramid has, the mag builder's folder step, and the
chunk jobs that fill one mag from another (downsampling and upsampling).

The kernels (pooling, voxel repetition) live in :mod:`wkview.downsampling`; this
module chains them into jobs and runs them. It works on plain
:class:`~wkview.View` objects and mag folders, never on a ``Dataset``: a mag is
computed into a hidden folder that no ``datasource-properties.json`` names and is
renamed into place only when it is complete (:func:`build_mag_folder`); the
caller then names it (:meth:`wkview.Layer.build_mag` registers it in the
properties file, :mod:`wkview.convert` writes the properties file last).

A chain (:func:`downsample_chain`, :func:`upsample_chain`) steps from mag to mag;
each step hands a fill function to the caller's ``build(mag, fill)``, which makes
the mag (a new one through the builder, or an existing one refilled) and returns a
view of it that is the next step's source.
"""

from __future__ import annotations

import functools
import math
import os
import shutil
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Optional, TypeVar

import numpy as np
import wkw

from . import _durable
from ._storage import MagStore, _check_level
from .copying import write_in_slabs
from .downsampling import pool, upsample_array
from .errors import DatasetError
from .executors import runs_here
from .repair import BUILDING_SUFFIX
from .geometry import BoundingBox, Mag
from .view import View

__all__ = [
    "SAMPLING_MODES", "downsampling_chain", "upsampling_chain", "default_coarsest_mag",
    "build_mag_folder", "building_path", "fresh_mag_folder", "remove_path", "bare_view",
    "downsample_into", "upsample_into", "downsample_chain", "upsample_chain",
    "DownsampleJob", "UpsampleJob", "Fill", "Build",
]  # fmt: skip

SAMPLING_MODES = ("auto", "anisotropic", "isotropic")

#: fills a new mag: called with a writable view of it from (0, 0, 0) to the end of its box
Fill = Callable[[View], None]
#: the views a chain's ``build`` returns (plain views, or mag views of a layer)
V = TypeVar("V", bound=View)
#: makes mag ``mag`` with ``fill`` and returns a view of it (offset 0) to read from
Build = Callable[[Mag, Fill], V]



# -- which mags -------------------------------------------------------------------------------


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


def _finer_step(current: tuple[int, int, int], floor: tuple[int, int, int], scale: Optional[Sequence[float]]) -> tuple[int, int, int]:
    """The next finer mag: halve the coarsest axes (all of them when ``scale`` is None)."""
    axes = [i for i in range(3) if current[i] > floor[i]]
    if scale is None:
        halve = axes
    else:
        physical = {i: scale[i] * current[i] for i in axes}
        largest = max(physical.values())
        # the reverse of downsampling, which doubles the axes within 1.5x of the finest
        halve = [i for i in axes if physical[i] * 1.5 >= largest]
    return tuple(current[i] // 2 if i in halve else current[i] for i in range(3))  # type: ignore[return-value]


def upsampling_chain(from_mag: Mag, min_mag: Mag, scale: Optional[Sequence[float]]) -> list[Mag]:
    """The mags between ``from_mag`` (excluded) and ``min_mag`` (included), coarse to fine.

    ``scale=None`` halves every axis per step (isotropic); otherwise the
    axes whose physical voxel size is within 1.5x of the largest.
    """
    if any(m > f for m, f in zip(min_mag, from_mag)) or min_mag == from_mag:
        raise DatasetError(f"cannot upsample from mag {from_mag} to {min_mag}: min_mag must be finer")
    chain = []
    current = from_mag.to_tuple()
    floor = min_mag.to_tuple()
    while current != floor:
        current = _finer_step(current, floor, scale)
        chain.append(Mag(current))
    return chain


def default_coarsest_mag(size: Sequence[int]) -> Mag:
    """The coarsest mag ``wkview convert`` and ``wkview downsample`` build by default: the
    power of two that brings the larger of x and y to about 100 voxels, at least 4 (the rule
    of webknossos' own command line, so both make the same pyramid)."""
    largest = max(int(size[0]), int(size[1]), 1)
    return Mag(max(1 << max(0, math.ceil(math.log2(largest / 100))), 4))


# -- mag folders ------------------------------------------------------------------------------


def building_path(path: Path) -> Path:
    """The hidden folder in which the mag folder ``path`` is built."""
    return path.with_name(f".{path.name}{BUILDING_SUFFIX}")


def build_mag_folder(
    path: Path, header: wkw.Header, box: BoundingBox, fill: Fill, *, compression_level: Optional[int] = None
) -> None:
    """Build the mag folder ``path``: create it hidden, ``fill`` it, then rename it into place.

    ``fill`` gets a writable view of the new mag from (0, 0, 0) to the end of
    ``box`` (the data's box in this mag). Until ``fill`` returns, the folder is
    ``.<mag>-building`` beside ``path``: readers never see a half-filled mag, and
    when ``fill`` raises the hidden folder is removed. A leftover of a killed build
    (the hidden folder) or an unnamed folder at ``path`` is removed first: only
    call this for a mag that no properties file names. The build holds the mag's
    lock (``.<mag>.lock`` beside it): a hidden folder whose lock is free is a killed
    build's, which ``wkview verify --repair`` removes.
    """
    level = None if compression_level is None else _check_level(compression_level)
    work = building_path(path)
    with _durable.locked([str(path)]):
        remove_path(work)
        store = MagStore.create(work, header)
        if level is not None:
            store.compression_level = level
        try:
            fill(bare_view(work, header, box, store=store))
            store.close()
            remove_path(path)
            os.rename(work, path)
        except BaseException:
            store.close()
            remove_path(work)
            raise
        _durable.fsync_folder(path.parent)


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


# -- filling one mag from another ---------------------------------------------------------------


def check_downsampling_step(source_mag: Mag, target_mag: Mag) -> None:
    """Raise unless ``target_mag`` is a coarser multiple of ``source_mag``."""
    if any(t % s for t, s in zip(target_mag, source_mag)) or target_mag == source_mag:
        raise DatasetError(f"cannot downsample from mag {source_mag} to {target_mag}: not a coarser multiple")


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
    edge = target.file_edge
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


def upsample_into(
    source: View,
    target: View,
    bbox: BoundingBox,
    source_mag: Mag,
    target_mag: Mag,
    executor: Any = None,
    *,
    progress: Optional[bool] = None,
) -> None:
    """Fill ``target`` (a view of the finer mag ``target_mag`` at offset 0) by repeating the
    voxels of ``source`` (mag ``source_mag``); one chunk job per target file."""
    factors = tuple(s // t for s, t in zip(source_mag, target_mag))
    src_box = bbox.align_with_mag(source_mag, ceil=True).in_mag(source_mag)
    tgt_box = bbox.align_with_mag(target_mag, ceil=True).in_mag(target_mag)
    if tgt_box.is_empty():
        return
    source_part = source.get_view(offset=src_box.topleft, size=src_box.size, read_only=True)
    destination = target.get_view(offset=tgt_box.topleft, size=tgt_box.size)
    edge = target.file_edge
    destination.for_each_chunk(UpsampleJob(source_part, factors), (edge, edge, edge), executor, progress=progress)  # type: ignore[arg-type]


def downsample_chain(
    source: View,
    source_mag: Mag,
    target_mags: Sequence[Mag],
    bbox: BoundingBox,
    mode: str,
    build: Build[V],
    *,
    buffer_edge_len: Optional[int] = None,
    executor: Any = None,
    progress: Optional[bool] = None,
) -> list[V]:
    """Downsample step by step: ``source`` (mag ``source_mag``) to ``target_mags[0]``, that to
    ``target_mags[1]``, ...; each mag is made by ``build(mag, fill)``. Returns what ``build`` returned."""
    views: list[V] = []
    for mag in target_mags:
        check_downsampling_step(source_mag, mag)
        fill = functools.partial(
            _downsample_fill, source, bbox, source_mag, mag, mode, buffer_edge_len, executor, progress
        )
        built = build(mag, fill)
        views.append(built)
        source, source_mag = built, mag
    return views


def _downsample_fill(
    source: View, bbox: BoundingBox, source_mag: Mag, target_mag: Mag, mode: str,
    buffer_edge_len: Optional[int], executor: Any, progress: Optional[bool], target: View,
) -> None:  # fmt: skip
    downsample_into(source, target, bbox, source_mag, target_mag, mode, buffer_edge_len, executor, progress=progress)


def upsample_chain(
    source: View,
    source_mag: Mag,
    target_mags: Sequence[Mag],
    bbox: BoundingBox,
    build: Build[V],
    *,
    executor: Any = None,
    progress: Optional[bool] = None,
) -> list[V]:
    """Upsample step by step from ``source`` (mag ``source_mag``) through ``target_mags``
    (coarse to fine, e.g. from :func:`upsampling_chain`); each mag is made by ``build(mag, fill)``."""
    views: list[V] = []
    for mag in target_mags:
        fill = functools.partial(_upsample_fill, source, bbox, source_mag, mag, executor, progress)
        built = build(mag, fill)
        views.append(built)
        source, source_mag = built, mag
    return views


def _upsample_fill(
    source: View, bbox: BoundingBox, source_mag: Mag, target_mag: Mag, executor: Any, progress: Optional[bool],
    target: View,
) -> None:  # fmt: skip
    upsample_into(source, target, bbox, source_mag, target_mag, executor, progress=progress)


# -- the chunk jobs (module level: they pickle for process and cluster executors) ------------


class DownsampleJob:
    """The chunk job of :func:`downsample_into` (picklable).

    Reads the source chunk in slabs of at most ``buffer_edge_len`` target
    voxels per edge, pools each slab and writes the whole target chunk once.
    """

    def __init__(self, factors: tuple[int, int, int], mode: str, buffer_edge_len: int) -> None:
        self.factors = factors
        self.mode = mode
        self.buffer_edge_len = buffer_edge_len

    def __call__(self, args: tuple[Any, Any, int]) -> None:
        source, target, _ = args
        f = self.factors
        size = tuple(target.size)
        out = np.zeros((target.header.num_channels, *size), dtype=target.get_dtype(), order="F")
        step = self.buffer_edge_len
        slabs = [
            (x, y, z)
            for x in range(0, size[0], step)
            for y in range(0, size[1], step)
            for z in range(0, size[2], step)
        ]

        def one(corner: tuple[int, int, int]) -> None:
            x, y, z = corner
            t = (min(step, size[0] - x), min(step, size[1] - y), min(step, size[2] - z))
            src = source.read((x * f[0], y * f[1], z * f[2]), (t[0] * f[0], t[1] * f[1], t[2] * f[2]))
            out[:, x : x + t[0], y : y + t[1], z : z + t[2]] = pool(src, f, self.mode)

        threads = min(len(slabs), _job_threads())
        if threads <= 1:
            for corner in slabs:
                one(corner)
        else:
            # slabs on threads: decoding and the pooling ufuncs release the GIL, so one job
            # (one target file) keeps every core of its worker busy
            with ThreadPoolExecutor(max_workers=threads) as threads_pool:
                for done in [threads_pool.submit(one, corner) for corner in slabs]:
                    done.result()
        target.write(out)


def _job_threads() -> int:
    """Threads one downsampling job uses: the cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


class UpsampleJob:
    """The chunk job of :func:`upsample_into` (picklable): one target file per chunk, written in slabs."""

    def __init__(self, source: View, factors: tuple[int, int, int]) -> None:
        self.source = source
        self.factors = factors

    def _produce(self, target: View, offset: tuple[int, int, int], size: tuple[int, int, int]) -> np.ndarray:
        f = self.factors
        start = [target.global_offset[i] + offset[i] for i in range(3)]
        lo = [start[i] // f[i] for i in range(3)]
        hi = [-(-(start[i] + size[i]) // f[i]) for i in range(3)]
        rel = tuple(lo[i] - self.source.global_offset[i] for i in range(3))
        data = upsample_array(self.source.read(rel, tuple(hi[i] - lo[i] for i in range(3))), f)
        cut = [start[i] - lo[i] * f[i] for i in range(3)]
        return data[:, cut[0] : cut[0] + size[0], cut[1] : cut[1] + size[1], cut[2] : cut[2] + size[2]]

    def __call__(self, args: tuple[View, int]) -> None:
        target, _ = args
        write_in_slabs(target, (0, 0, 0), tuple(target.size), lambda o, s: self._produce(target, o, s))  # type: ignore[arg-type]

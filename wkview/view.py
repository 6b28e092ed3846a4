"""The :class:`View`: a bounded region of one mag, with read, write, sub-views
and chunked parallel processing.

API of ``webknossos.dataset.view.View`` (release 0.8.13), with its defects
fixed (see the README, "Differences from webknossos 0.8.13").
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Optional, Union

import numpy as np
import wkw

from . import _core
from ._storage import MagStore, _check_level
from .executors import run_jobs
from .slices import BufferedSliceReader, BufferedSliceWriter
from .chunking import ChunkPlan, check_chunk_size, pair_chunk_axes, plan_chunks
from .errors import BoundsError, ChunkingError, DTypeMismatchError, ReadOnlyError, ShapeError, ViewStateError
from .geometry import BoundingBox, Vec3Int, _int3

__all__ = ["View", "Vec3"]

Vec3 = Union[tuple[int, int, int], list[int], np.ndarray, Vec3Int]


def _three_ints(value: Any, name: str) -> tuple[int, int, int]:
    """3 ints, with the View's error types (DTypeMismatchError, ShapeError)."""
    try:
        return _int3(value, name)
    except TypeError as exc:
        raise DTypeMismatchError(str(exc)) from None
    except ValueError as exc:
        raise ShapeError(str(exc)) from None


def _offset3(value: Any, name: str = "offset") -> Vec3Int:
    """Validate an offset: 3 non-negative ints."""
    v = _three_ints(value, name)
    if v[0] < 0 or v[1] < 0 or v[2] < 0:
        raise ShapeError(
            f"The {name} ({tuple(v)}) contains a negative value. All dimensions must be larger or equal to 0."
        )
    return Vec3Int._trusted(*v)


def _size3(value: Any, name: str = "size") -> Vec3Int:
    """Validate a size: 3 strictly positive ints."""
    v = _three_ints(value, name)
    if v[0] <= 0 or v[1] <= 0 or v[2] <= 0:
        raise ShapeError(
            f"The {name} ({tuple(v)}) contains a negative value (or zeros). All dimensions must be strictly larger than 0."
        )
    return Vec3Int._trusted(*v)


class View:
    """A box of one mag of a layer, to read, write and process in chunks.

    Get views from :meth:`wkview.MagView.get_view` (or :meth:`get_view` of
    another view) rather than building them by hand. Offsets passed to
    :meth:`read`, :meth:`write` and :meth:`get_view` are relative to
    :attr:`global_offset`. Views are cheap to create and to pickle: they hold
    no open file handle of their own; the handle of the mag is shared,
    opened on first use and reopened in another process.

    Parameters
    ----------
    path_to_mag_view : path
        The mag folder (with ``header.wkw``).
    header : wkw.Header
        Header of the mag.
    size : 3 ints
        Size of the view in voxels of this mag.
    global_offset : 3 ints
        Position of the view in the mag.
    is_bounded : bool
        Whether reads and writes must stay inside the view.
    read_only : bool
        Refuse writes.
    mag_view_bbox_at_creation : BoundingBox, optional
        The layer's bounding box in this mag when the view was made; writes
        touching its border are not reported as unaligned.
    """

    def __init__(
        self,
        path_to_mag_view: Union[str, os.PathLike],
        header: wkw.Header,
        size: Vec3,
        global_offset: Vec3 = (0, 0, 0),
        is_bounded: bool = True,
        read_only: bool = False,
        mag_view_bbox_at_creation: Optional[BoundingBox] = None,
        *,
        _store: Optional[MagStore] = None,
    ) -> None:
        self._path = Path(path_to_mag_view)
        self._store = _store if _store is not None else MagStore(self._path, header)
        self._header = header
        try:
            self._size = Vec3Int(size)
        except (TypeError, ValueError) as exc:
            raise ShapeError(f"invalid view size {size!r}: {exc}") from None
        self._global_offset = _offset3(global_offset, "global_offset")
        if any(s < 0 for s in self._size):
            raise ShapeError(f"view size must not be negative, got {tuple(self._size)}")
        self._is_bounded = bool(is_bounded)
        self._read_only = bool(read_only)
        self._is_opened = False
        self._mag_view_bbox_at_creation = mag_view_bbox_at_creation

    # -- properties -----------------------------------------------------------------

    @property
    def header(self) -> wkw.Header:
        """The ``wkw.Header`` of the mag (block/file length, block type, dtype, channels)."""
        return self._header

    @property
    def size(self) -> Vec3Int:
        """Size of the view in voxels."""
        return self._size

    def _border_box(self) -> Optional[BoundingBox]:
        """The layer's bounding box in this mag, as far as the view knows it (or None):
        compressed writes touching its border are not reported as unaligned."""
        return self._mag_view_bbox_at_creation

    @property
    def global_offset(self) -> Vec3Int:
        """Position of the view in the mag (absolute voxel coordinates)."""
        return self._global_offset

    @property
    def bounding_box(self) -> BoundingBox:
        """``BoundingBox(global_offset, size)``."""
        return BoundingBox._trusted(self.global_offset, self.size)

    @property
    def read_only(self) -> bool:
        return self._read_only

    @property
    def path(self) -> Path:
        return self._path

    @property
    def file_edge(self) -> int:
        """Voxels per edge of one data file of the mag (``block_len * file_len``)."""
        return self._store.file_edge

    @property
    def is_compressed(self) -> bool:
        """Whether the mag's files are LZ4/LZ4HC-compressed."""
        return self._store.is_compressed

    def get_dtype(self) -> type:
        """The dtype of one channel, e.g. ``numpy.uint8``."""
        return self._header.voxel_type

    # -- open / close -------------------------------------------------------------

    def open(self) -> "View":
        """Open the handle to the data now (it is opened on first use anyway).

        Raises :class:`ViewStateError` if the view is already open.
        """
        if self._is_opened:
            raise ViewStateError("Cannot open view: the view is already opened")
        self._store._get_handle()
        self._is_opened = True
        return self

    def close(self) -> None:
        """Release the handle opened by :meth:`open`.

        Raises :class:`ViewStateError` if the view is not open.
        """
        if not self._is_opened:
            raise ViewStateError("Cannot close View: the view is not opened")
        self._store.close()
        self._is_opened = False

    def __enter__(self) -> "View":
        if not self._is_opened:
            self.open()
        return self

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        if self._is_opened:
            self.close()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_is_opened"] = False
        return state

    # -- checks -------------------------------------------------------------------

    def _check_bounds(self, offset: Vec3Int, size: Vec3Int, strict: Optional[bool] = None) -> None:
        if strict is None:
            strict = self._is_bounded
        if not strict:
            return
        s = self.size
        if any(offset[i] + size[i] > s[i] for i in range(3)):
            raise BoundsError(
                f"Accessing data out of bounds: offset {tuple(offset)} with size {tuple(size)} "
                f"exceeds the size of the current view ({tuple(s)})"
            )

    def _prepare_data(self, data: Any) -> np.ndarray:
        """Validate ``data`` and return it as ``(channels, x, y, z)`` without copying."""
        if not isinstance(data, np.ndarray):
            raise DTypeMismatchError(f"data must be a numpy.ndarray, got {type(data).__name__}")
        channels = self._header.num_channels
        if data.ndim == 3:
            if channels != 1:
                raise ShapeError(
                    f"3D data of shape {data.shape} given for a layer with {channels} channels; "
                    f"pass (channels, x, y, z)"
                )
            data = data[np.newaxis]
        elif data.ndim == 4:
            if data.shape[0] != channels:
                raise ShapeError(
                    f"data has {data.shape[0]} channels (shape {data.shape}), the layer has {channels}"
                )
        else:
            raise ShapeError(
                f"data must be 3D (x, y, z) or 4D (channels, x, y, z), got shape {data.shape}"
            )
        expected = np.dtype(self._header.voxel_type)
        if data.dtype != expected:
            raise DTypeMismatchError(
                f"data has dtype {data.dtype}, the layer stores {expected}; convert it explicitly "
                "(wkview never casts silently)"
            )
        return data

    def _is_unaligned_write(
        self, absolute_offset: Vec3Int, size: Vec3Int, bbox: Optional[BoundingBox] = None
    ) -> bool:
        """True for a compressed write that is neither file-aligned nor at the mag bbox border."""
        if not self._store.is_compressed:
            return False
        edge = self._store.file_edge
        if bbox is None:
            bbox = self._border_box()
        end = absolute_offset + size
        for i in range(3):
            start_ok = absolute_offset[i] % edge == 0 or (bbox is not None and absolute_offset[i] == bbox.topleft[i])
            end_ok = end[i] % edge == 0 or (bbox is not None and end[i] == bbox.bottomright[i])
            if not (start_ok and end_ok):
                return True
        return False

    # -- read / write ------------------------------------------------------------------

    def write(self, data: np.ndarray, offset: Vec3 = (0, 0, 0), *, compression_level: Optional[int] = None) -> None:
        """Write ``data`` at ``offset`` (relative to :attr:`global_offset`).

        ``data`` is ``(x, y, z)`` for one channel or ``(channels, x, y, z)``,
        in the layer's dtype, C or Fortran order or any strided view. Writes
        into compressed mags that do not cover whole files are merged with
        the stored data block by block: only blocks covered partially are
        decoded, and every other block keeps its compressed bytes. Such
        writes raise a ``RuntimeWarning`` unless they touch the layer's
        bounding box border. ``compression_level`` (LZ4HC, 1-12) overrides
        the mag's level for this write.
        """
        if self._read_only:
            raise ReadOnlyError("Cannot write data to an read_only View")
        data4, off, size, level = self._write_arguments(data, offset, compression_level)
        self._check_bounds(off, size)
        self._write_absolute(self._global_offset + off, data4, level=level)

    def _write_arguments(
        self, data: Any, offset: Any, compression_level: Optional[int]
    ) -> tuple[np.ndarray, Vec3Int, Vec3Int, Optional[int]]:
        """Validate what a write got: ``(channels, x, y, z)`` data, offset, size, level."""
        level = None if compression_level is None else _check_level(compression_level)
        data4 = self._prepare_data(data)
        return data4, _offset3(offset), _size3(data4.shape[1:], "data shape"), level

    @property
    def compression_level(self) -> int:
        """LZ4HC level of compressed writes through this view's mag (1-12; default 4).

        Set it on a mag view (or pass ``compression_level`` to :meth:`write`);
        it is not stored in the dataset. Level 9 writes exactly libwkw's bytes.
        """
        return self._store.compression_level

    @compression_level.setter
    def compression_level(self, level: int) -> None:
        self._store.compression_level = _check_level(level)

    def _write_absolute(
        self,
        absolute: Vec3Int,
        data4: np.ndarray,
        border: Optional[BoundingBox] = None,
        level: Optional[int] = None,
    ) -> None:
        size = Vec3Int._trusted(*data4.shape[1:])
        if self._is_unaligned_write(absolute, size, border):
            warnings.warn(
                f"write() of {tuple(size)} voxels at {tuple(absolute)} into a compressed mag is not "
                f"aligned with its files ({self._store.file_edge} voxels per edge): the partially "
                "covered files are read and re-encoded",
                RuntimeWarning,
                stacklevel=3,
            )
        self._store.write(tuple(absolute), data4, level)

    def write_planned(self, data: np.ndarray, offset: Vec3 = (0, 0, 0)) -> None:
        """:meth:`write` without the warning about unaligned compressed writes.

        For jobs that planned their writes (one target file per job, written in
        z-slabs on the block grid), where merging the slabs of one file is intended.
        """
        if self._read_only:
            raise ReadOnlyError("Cannot write data to an read_only View")
        data4, off, size, level = self._write_arguments(data, offset, None)
        self._check_bounds(off, size)
        self._store.write(tuple(self._global_offset + off), data4, level)

    def read(self, offset: Vec3 = (0, 0, 0), size: Optional[Vec3] = None) -> np.ndarray:
        """Read the box at ``offset`` (relative to :attr:`global_offset`) of ``size``.

        Without ``size``, reads from ``offset`` to the end of the view (so
        ``read()`` reads the whole view). Voxels where nothing is stored read
        as 0. Returns a ``(channels, x, y, z)`` array, also for one channel.
        """
        if size is not None:  # the lean path of small reads: plain ints, checked in _core
            box = _core.view_box(offset, size, self._global_offset, self._size, self._is_bounded)
            if box is not None:
                return self._store.read(*box)
        off = _offset3(offset)
        if size is None:
            remaining = self.size - off
            if any(r <= 0 for r in remaining):
                raise BoundsError(
                    f"offset {tuple(off)} lies outside the view of size {tuple(self.size)}; "
                    "nothing to read"
                )
            sz = Vec3Int._trusted(*remaining)
        else:
            sz = _size3(size)
        self._check_bounds(off, sz)
        return self._store.read(tuple(self._global_offset + off), tuple(sz))

    def read_bbox(self, bounding_box: Optional[BoundingBox] = None) -> np.ndarray:
        """Read ``bounding_box`` (relative to :attr:`global_offset`); the whole view if None."""
        if bounding_box is None:
            return self.read()
        return self.read(bounding_box.topleft, bounding_box.size)

    # -- sub-views ----------------------------------------------------------------------

    def get_view(
        self,
        offset: Optional[Vec3] = None,
        size: Optional[Vec3] = None,
        read_only: Optional[bool] = None,
    ) -> "View":
        """A view of the box at ``offset`` (relative to :attr:`global_offset`) of ``size``.

        ``offset`` defaults to (0, 0, 0) and ``size`` to the rest of this
        view. A writable sub-view must lie inside this view; a read-only one
        may reach beyond it. A read-only view only gives read-only sub-views.
        """
        if read_only is None:
            read_only = self._read_only
        if self._read_only and not read_only:
            raise ReadOnlyError(
                "Failed to get subview. The calling view is read_only. Therefore, the subview also has to be read_only."
            )
        off = _offset3((0, 0, 0) if offset is None else offset)
        if size is None:
            sz = _size3(self.size - off, "size (the rest of the view)")
        else:
            sz = _size3(size)
        self._check_bounds(off, sz, strict=not read_only)
        return View(
            self._path,
            self._header,
            size=sz,
            global_offset=self._global_offset + off,
            is_bounded=True,
            read_only=read_only,
            mag_view_bbox_at_creation=self._border_box(),
            _store=self._store,
        )

    def _chunk_views(self, read_only: bool) -> Callable[[tuple[int, int, int], tuple[int, int, int]], "View"]:
        """A maker of sub-views at absolute, already validated boxes (for chunking): each
        is this view's state with its own box, built without checks (a chunk job over
        millions of chunks builds one per chunk)."""
        proto = {
            **self.__dict__,
            "_is_bounded": True,
            "_read_only": read_only,
            "_is_opened": False,
            "_mag_view_bbox_at_creation": self._border_box(),
        }
        new_view = object.__new__
        new_vec = tuple.__new__

        def make(offset: tuple[int, int, int], size: tuple[int, int, int]) -> "View":
            view = new_view(View)
            state = proto.copy()
            state["_size"] = new_vec(Vec3Int, size)
            state["_global_offset"] = new_vec(Vec3Int, offset)
            view.__dict__ = state
            return view

        return make

    # -- slices -----------------------------------------------------------------------------

    def get_buffered_slice_writer(
        self,
        offset: Vec3 = (0, 0, 0),
        buffer_size: Optional[int] = None,
        dimension: Union[str, int] = "z",
    ) -> "BufferedSliceWriter":
        """A writer that takes 2D slices along ``dimension`` starting at ``offset``.

        Slices are buffered until they fill ``buffer_size`` positions along the
        axis (default: the file edge, ending on file borders), then written in
        one go, so compressed files are written whole. Use it as a context
        manager::

            with view.get_buffered_slice_writer(offset=(0, 0, 0)) as writer:
                for image in images:        # each (x, y), or (channels, x, y)
                    writer.send(image)
        """
        if self._read_only:
            raise ReadOnlyError("Cannot write data to an read_only View")
        return BufferedSliceWriter(
            self.write,
            offset=_offset3(offset),
            global_offset=self.global_offset,
            channels=self.header.num_channels,
            dtype=self.get_dtype(),
            buffer_size=buffer_size,
            file_edge=self._store.file_edge,
            dimension=dimension,
        )

    def get_buffered_slice_reader(
        self,
        offset: Optional[Vec3] = None,
        size: Optional[Vec3] = None,
        buffer_size: Optional[int] = None,
        dimension: Union[str, int] = "z",
    ) -> "BufferedSliceReader":
        """Iterate the ``(channels, a, b)`` slices of the box along ``dimension``.

        ``offset`` defaults to (0, 0, 0) and ``size`` to the rest of the view;
        ``buffer_size`` slices are read at a time (default: the file edge).
        """
        off = _offset3((0, 0, 0) if offset is None else offset)
        sz = _size3(self.size - off if size is None else size)
        self._check_bounds(off, sz)
        return BufferedSliceReader(
            self.read,
            offset=off,
            size=sz,
            global_offset=self.global_offset,
            buffer_size=buffer_size,
            file_edge=self._store.file_edge,
            dimension=dimension,
        )

    # -- chunked processing ---------------------------------------------------------------

    def _plan(self, chunk_size: Vec3, writable: bool) -> ChunkPlan:
        unit = self._store.write_unit if writable else None
        return plan_chunks(self._global_offset, self.size, chunk_size, unit)

    def for_each_chunk(
        self,
        work_on_chunk: Callable[[tuple["View", int]], None],
        chunk_size: Vec3,
        executor: Any = None,
        *,
        batch_size: Optional[int] = None,
        progress: Optional[bool] = None,
    ) -> None:
        """Run ``work_on_chunk((chunk_view, i))`` for every chunk of the view.

        Chunk borders lie on multiples of ``chunk_size`` (absolute
        coordinates); the chunks at the view's border are clipped. Any
        positive chunk size works. Chunks of a writable view that share a file
        of a compressed mag (a block of a raw one) always run one after the
        other in the same task, so no update is ever lost.

        ``executor``: a cluster_tools executor, a ``concurrent.futures``
        executor, or None to run in this process. An exception in a job is
        raised here with the chunk's box and the original traceback.
        """
        self._run_chunks(work_on_chunk, chunk_size, executor, batch_size, progress, pass_index=True)

    def map_chunk(
        self,
        func: Callable[["View"], Any],
        chunk_size: Vec3,
        executor: Any = None,
        *,
        batch_size: Optional[int] = None,
        progress: Optional[bool] = None,
    ) -> list[Any]:
        """Apply ``func(chunk_view)`` to every chunk and return the results in chunk order.

        Chunking, grouping and executors as in :meth:`for_each_chunk`.
        """
        return self._run_chunks(func, chunk_size, executor, batch_size, progress, pass_index=False)

    def _run_chunks(
        self,
        func: Callable[..., Any],
        chunk_size: Vec3,
        executor: Any,
        batch_size: Optional[int],
        progress: Optional[bool],
        pass_index: bool,
    ) -> list[Any]:
        """Run ``func`` on every chunk (``func((view, i))`` with ``pass_index``, else
        ``func(view)``); results in chunk order."""
        view = self.get_view()
        plan = view._plan(chunk_size, writable=not view.read_only)
        jobs = [_ChunkGroup(view, plan.group_chunks(runs)) for runs in plan.groups()]
        results = run_jobs(
            functools.partial(_run_group, func, pass_index),
            jobs,
            executor,
            batch_size=batch_size,
            progress=progress,
            describe=_ChunkGroup.describe,
            desc="chunks",
        )
        ordered: list[Any] = [None] * len(plan)
        if pass_index:  # for_each_chunk: the jobs return nothing to order
            return ordered
        for job, values in zip(jobs, results):
            for (number, _, _), value in zip(job.chunks, values):
                ordered[number] = value
        return ordered

    def for_zipped_chunks(
        self,
        work_on_chunk: Callable[[tuple["View", "View", int]], None],
        target_view: "View",
        source_chunk_size: Vec3,
        target_chunk_size: Vec3,
        executor: Any = None,
        *,
        batch_size: Optional[int] = None,
        progress: Optional[bool] = None,
        desc: str = "chunk pairs",
    ) -> None:
        """Run ``work_on_chunk((source_chunk, target_chunk, i))`` over matching chunk pairs.

        The target view is chunked like :meth:`for_each_chunk` chunks it;
        each target chunk pairs with the source chunk at the same relative
        position scaled by ``source_chunk_size / target_chunk_size``. The
        ratio of the view sizes must equal the ratio of the chunk sizes. The
        pairing is computed from the geometry and checked to be one-to-one
        and to cover both views before any job runs; nothing is dropped.
        Target chunks sharing a file run in one task. ``desc`` labels the progress bar.
        """
        scs = check_chunk_size(source_chunk_size, "source_chunk_size")
        tcs = check_chunk_size(target_chunk_size, "target_chunk_size")
        source = self.get_view()
        target = target_view.get_view()
        for name, v in (("source", source), ("target", target)):
            if any(s == 0 for s in v.size):
                raise ChunkingError(f"Calling 'for_zipped_chunks' failed because the size of the {name} view contains a 0.")
        if any(source.size[i] * tcs[i] != target.size[i] * scs[i] for i in range(3)):
            raise ChunkingError(
                f"Calling 'for_zipped_chunks' failed because the ratio of the view sizes (source size = "
                f"{tuple(source.size)}, target size = {tuple(target.size)}) must be equal to the ratio of "
                f"the chunk sizes (source_chunk_size = {scs}, target_chunk_size = {tcs})"
            )
        target_plan = target._plan(tcs, writable=not target.read_only)
        sx, sy, sz, lx, ly, lz = pair_chunk_axes(source.global_offset, source.size, target_plan, scs, tcs)
        source_plan = ChunkPlan(
            offset=tuple(source.global_offset),  # type: ignore[arg-type]
            size=tuple(source.size),  # type: ignore[arg-type]
            chunk_size=scs,
            axis_starts=(sx, sy, sz),
            axis_sizes=(lx, ly, lz),
            write_unit=None,
        )
        jobs = [
            _ZippedGroup(source, source_plan.group_chunks(runs), target, target_plan.group_chunks(runs))
            for runs in target_plan.groups()
        ]
        run_jobs(
            functools.partial(_run_zipped_group, work_on_chunk),
            jobs,
            executor,
            batch_size=batch_size,
            progress=progress,
            describe=_ZippedGroup.describe,
            desc=desc,
        )

    # -- dunder -------------------------------------------------------------------------

    def __repr__(self) -> str:
        return f"View({str(self._path)}, global_offset={tuple(self._global_offset)}, size={tuple(self.size)})"


class _ChunkGroup:
    """Chunks of one view that run in one task: small to pickle (the view and the
    group's part of the chunk grid); the chunk views are built in the worker."""

    def __init__(self, view: View, chunks: Any) -> None:
        self.view = view
        self.chunks = chunks  # _core.GroupChunks: (number, offset, size) per chunk

    def describe(self) -> str:
        number, offset, size = next(iter(self.chunks))
        more = f" and {len(self.chunks) - 1} more chunks" if len(self.chunks) > 1 else ""
        return f"chunk {number} at {offset} of size {size}{more} of {self.view!r}"


def _run_group(func: Callable[..., Any], pass_index: bool, group: _ChunkGroup) -> list[Any]:
    results: list[Any] = []
    append = results.append
    make = group.view._chunk_views(group.view.read_only)
    for number, offset, size in group.chunks:
        try:
            append(func((make(offset, size), number)) if pass_index else func(make(offset, size)))
        except BaseException as exc:
            exc.add_note(f"wkview: raised by the job for chunk {number} at {offset} of size {size}")
            raise
    return results


class _ZippedGroup:
    """Chunk pairs that run in one task (the target chunks of one group)."""

    def __init__(self, source: View, source_chunks: Any, target: View, target_chunks: Any) -> None:
        self.source = source
        self.target = target
        self.source_chunks = source_chunks
        self.target_chunks = target_chunks

    def describe(self) -> str:
        number, src_offset, src_size = next(iter(self.source_chunks))
        _, tgt_offset, tgt_size = next(iter(self.target_chunks))
        count = len(self.target_chunks)
        more = f" and {count - 1} more pairs" if count > 1 else ""
        return (
            f"chunk pair {number}: source {(src_offset, src_size)}, target "
            f"{(tgt_offset, tgt_size)}{more}"
        )


def _run_zipped_group(func: Callable[..., Any], group: _ZippedGroup) -> list[None]:
    make_source = group.source._chunk_views(True)
    make_target = group.target._chunk_views(group.target.read_only)
    for (number, src_offset, src_size), (_, tgt_offset, tgt_size) in zip(group.source_chunks, group.target_chunks):
        try:
            func((make_source(src_offset, src_size), make_target(tgt_offset, tgt_size), number))
        except BaseException as exc:
            exc.add_note(
                f"wkview: raised by the job for chunk pair {number}: source {(src_offset, src_size)}, "
                f"target {(tgt_offset, tgt_size)}"
            )
            raise
    return [None] * len(group.target_chunks)

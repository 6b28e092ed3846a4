"""MagView: one mag of a layer, a :class:`~wkview.View` in absolute coordinates.

Also :func:`mag_header`, the ``header.wkw`` of a new mag (used by
:class:`~wkview.Layer` and :mod:`wkview.convert`). This module does not import
the layer module (which imports it): what a mag view uses of its layer is
:class:`MagOwner`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional, Protocol, Union

import numpy as np
import wkw

from .. import properties as props, repair
from .._storage import MagStore
from ..compression import DEFAULT_COMPRESSION, CompressStats, compress_in_place, compress_into
from ..errors import DatasetError, ReadOnlyError
from ..geometry import BoundingBox, Mag, Vec3Int
from ..view import Vec3, View, _offset3

__all__ = ["MagView", "MagOwner", "mag_header"]

PathLike = Union[str, os.PathLike]


class _HasPath(Protocol):
    @property
    def path(self) -> Path: ...


class MagOwner(Protocol):
    """What a :class:`MagView` uses of its layer (a :class:`wkview.Layer` is one)."""

    @property
    def name(self) -> str: ...

    @property
    def dataset(self) -> _HasPath: ...

    @property
    def bounding_box(self) -> BoundingBox: ...

    @bounding_box.setter
    def bounding_box(self, bbox: BoundingBox) -> None: ...


def mag_header(dtype_per_channel: Any, num_channels: int, block_len: Any, file_len: Any, compress: bool) -> wkw.Header:
    """The ``header.wkw`` of a new mag (lengths checked): LZ4HC blocks when ``compress``."""
    return wkw.Header(
        voxel_type=np.dtype(dtype_per_channel).type,
        num_channels=num_channels,
        block_len=_power_of_two(block_len, "block_len"),
        file_len=_power_of_two(file_len, "file_len"),
        block_type=wkw.Header.BLOCK_TYPE_LZ4HC if compress else wkw.Header.BLOCK_TYPE_RAW,
    )


def _power_of_two(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0 or int(value) & (int(value) - 1):
        raise DatasetError(f"{name} must be a positive power of two, got {value!r}")
    return int(value)


class MagView(View):
    """One mag of a layer: a :class:`View` in absolute coordinates of this mag.

    Unlike a plain view it is unbounded: :meth:`write` takes absolute offsets,
    may write anywhere, and grows the layer's bounding box (and saves the
    properties). Its ``global_offset`` is (0, 0, 0) and its ``size`` the
    bottom-right corner of the layer's bounding box in this mag, as in
    webknossos 0.8.13, so ``read(offset, size)`` takes absolute offsets too.
    """

    def __init__(self, layer: "MagOwner", mag_properties: props.MagProperties) -> None:
        self._layer = layer
        self._mag_props = mag_properties
        path = layer.dataset.path / mag_properties.path
        if not (path / "header.wkw").exists() and repair.has_swap_leftovers(path):
            repair.recover_mag_folder(path)  # a compress() killed half-way
        store = MagStore(path)
        # a mag folder that resolves outside the dataset (a symlinked layer or mag) is
        # written through the link, into the linked data, as in webknossos 0.8.13
        super().__init__(
            path,
            store.header,
            size=(0, 0, 0),
            global_offset=(0, 0, 0),
            is_bounded=False,
            read_only=False,
            mag_view_bbox_at_creation=None,
            _store=store,
        )

    @property
    def layer(self) -> "MagOwner":
        """The :class:`~wkview.Layer` this mag belongs to."""
        return self._layer

    @property
    def mag(self) -> Mag:
        return self._mag_props.mag

    @property
    def name(self) -> str:
        return self.mag.to_layer_name()

    def _layer_bbox_in_mag(self) -> BoundingBox:
        return self._layer.bounding_box.align_with_mag(self.mag, ceil=True).in_mag(self.mag)

    @property
    def size(self) -> Vec3Int:  # type: ignore[override]
        """Bottom-right corner of the layer's bounding box in this mag (as in webknossos 0.8.13)."""
        return self._layer_bbox_in_mag().bottomright

    def _border_box(self) -> Optional[BoundingBox]:
        """Always the current bounding box (a plain view keeps its creation snapshot)."""
        return self._layer_bbox_in_mag()

    def write(self, data: np.ndarray, offset: Vec3 = (0, 0, 0), *, compression_level: Optional[int] = None) -> None:
        """Write ``data`` at the absolute ``offset`` of this mag; grows the layer's bounding box."""
        data4, off, size, level = self._write_arguments(data, offset, compression_level)
        mag = self.mag.to_vec3_int()
        written = BoundingBox._trusted(off * mag, size * mag)
        current = self._layer.bounding_box
        grown = current.extended_by(written)
        # write the data before recording it: a failed write must not grow the box
        self._write_absolute(
            off, data4, border=grown.align_with_mag(self.mag, ceil=True).in_mag(self.mag), level=level
        )
        if grown != current:
            self._layer.bounding_box = grown

    def get_view(
        self,
        offset: Optional[Vec3] = None,
        size: Optional[Vec3] = None,
        read_only: Optional[bool] = None,
    ) -> View:
        """A view with absolute ``offset`` and ``size`` in this mag; defaults to the layer's bounding box.

        Works on a mag with no data yet (then, without arguments, the view
        is empty). A writable view must lie inside the layer's bounding box.
        """
        bbox = self._layer_bbox_in_mag()
        view_offset = bbox.topleft if offset is None else _offset3(offset)
        if size is None:
            size = Vec3Int._trusted(*(max(0, v) for v in bbox.bottomright - view_offset))
            if any(s == 0 for s in size):  # a mag without data yet: an empty view
                if read_only is None:
                    read_only = self._read_only
                if self._read_only and not read_only:
                    raise ReadOnlyError(f"mag {self.mag} of layer {self._layer.name!r} is read-only")
                return View(
                    self._path, self._header, size=size, global_offset=view_offset,
                    is_bounded=True, read_only=read_only, mag_view_bbox_at_creation=bbox,
                    _store=self._store,
                )
        view = super().get_view(view_offset, size, read_only)
        return view

    def get_buffered_slice_reader(
        self,
        offset: Optional[Vec3] = None,
        size: Optional[Vec3] = None,
        buffer_size: Optional[int] = None,
        dimension: Union[str, int] = "z",
    ) -> Any:
        """Slices of the box at the absolute ``offset``; defaults to the layer's bounding box."""
        bbox = self._layer_bbox_in_mag()
        if offset is None:
            offset = bbox.topleft
        if size is None:
            size = bbox.bottomright - _offset3(offset)
        return super().get_buffered_slice_reader(offset, size, buffer_size, dimension)

    def get_bounding_boxes_on_disk(self) -> Iterator[BoundingBox]:
        """One box per data file on disk, in voxels of this mag."""
        edge = self._store.file_edge
        for index in self._store.list_files():
            yield BoundingBox._trusted((index[0] * edge, index[1] * edge, index[2] * edge), (edge, edge, edge))

    def compress(
        self,
        target_path: Optional[PathLike] = None,
        *,
        level: Optional[int] = None,
        executor: Any = None,
        progress: Optional[bool] = None,
        compression: str = DEFAULT_COMPRESSION,
    ) -> Optional[CompressStats]:
        """Convert this raw mag to LZ4HC, in place or into ``target_path``.

        In place (see :mod:`wkview.compression`), each file is encoded at ``level``
        (default 4) on a job of ``executor`` and renamed over the old one, and
        ``header.wkw`` switches last: every file stays whole, and after a kill a
        second call finishes the job. No other process may write to the mag meanwhile.
        In place, ``compression="lz4"`` writes fast LZ4 blocks instead (no level), and
        an LZ4 mag is re-encoded to LZ4HC. Into ``target_path`` (a new mag folder),
        the files are encoded to LZ4HC the same way, each through wkview's durable
        path. Returns what was done in place (None into ``target_path``).
        """
        src = self._path
        if target_path is not None:
            if compression != DEFAULT_COMPRESSION:
                raise DatasetError(f"compress() into target_path writes LZ4HC only, not {compression!r}")
            if not self._store.is_compressed:
                compress_into(
                    self._store, target_path, level, executor, progress=progress,
                    desc=f"compress {self._layer.name}/{self.name}",
                )  # fmt: skip
            return None
        if repair.has_swap_leftovers(src):
            repair.recover_mag_folder(src)  # folders of a killed compress() of older wkview versions
        stats = compress_in_place(
            self._store, level, executor, progress=progress, desc=f"compress {self._layer.name}/{self.name}",
            compression=compression,
        )
        self._store = MagStore(src)
        self._header = self._store.header
        return stats

    def _release(self) -> None:
        """The mag was deleted: close its files."""
        self._store.close()

    def _follow_rename(self) -> None:
        """The layer folder was renamed (and this mag's path in its properties entry): the
        store follows, and with it every sub-view (they share it)."""
        self._path = self._layer.dataset.path / self._mag_props.path
        self._store.moved_to(self._path)

    def __repr__(self) -> str:
        return f"MagView(layer={self._layer.name!r}, mag={self.mag})"

"""Buffered slice writer and reader: move a volume through a view one 2D slice at a time.

This is how image stacks are ingested: slices arrive one by one along an axis
(z for a stack of images), are collected until they fill whole files along that
axis, and are then written in one go, so compressed files are written whole,
without any read-modify-write.

The writer and reader know nothing of ``View``: the view hands them its
``write`` or ``read`` method, its global offset and its file edge (the default
buffer size), so this module depends on nothing but numpy and the errors.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from types import TracebackType
from typing import Any, Optional, Union

import numpy as np

from .errors import DTypeMismatchError, ShapeError, ViewStateError

__all__ = ["BufferedSliceWriter", "BufferedSliceReader", "axis_index"]

_AXES = {"x": 0, "y": 1, "z": 2, 0: 0, 1: 1, 2: 2}

#: ``write(data, offset)``: writes a ``(channels, x, y, z)`` array at a view-relative offset.
WriteFn = Callable[[np.ndarray, tuple[int, int, int]], None]
#: ``read(offset, size)``: the ``(channels, x, y, z)`` array of a view-relative box.
ReadFn = Callable[[tuple[int, int, int], tuple[int, int, int]], np.ndarray]


def axis_index(dimension: Union[str, int]) -> int:
    """0, 1 or 2 for ``"x"``/``"y"``/``"z"`` (or the ints themselves)."""
    key = dimension.lower() if isinstance(dimension, str) else dimension
    if isinstance(key, bool) or key not in _AXES:
        raise ValueError(f"dimension must be 'x', 'y', 'z' (or 0, 1, 2), got {dimension!r}")
    return _AXES[key]


def _buffer_size(buffer_size: Optional[int], file_edge: int) -> int:
    if buffer_size is None:
        return file_edge
    if isinstance(buffer_size, bool) or not isinstance(buffer_size, (int, np.integer)) or buffer_size <= 0:
        raise ValueError(f"buffer_size must be a positive int, got {buffer_size!r}")
    return int(buffer_size)


class BufferedSliceWriter:
    """Collects slices sent with :meth:`send` and writes them in whole buffers.

    Use as a context manager (the rest of the buffer is written on exit) or
    call :meth:`close`. Buffers end on absolute multiples of ``buffer_size``
    along the axis (by default the file edge), so all but the first and last
    write cover whole files along it.

    Parameters
    ----------
    write : callable
        ``write(data, offset)`` of the target view; called once per buffer
        with ``(channels, x, y, z)`` data and a view-relative offset.
    offset : 3 ints
        View-relative position of the first slice.
    global_offset : 3 ints
        Absolute position of the view in the mag: buffers end on absolute
        multiples of ``buffer_size``.
    channels : int
        Channels per voxel.
    dtype : numpy.dtype
        The dtype every slice must have.
    buffer_size : int or None
        Slices per buffer; None for ``file_edge``.
    file_edge : int
        Voxels per file edge of the mag, the default buffer size.
    dimension : str or int
        The axis the slices follow: ``"x"``, ``"y"``, ``"z"`` or 0, 1, 2.
    """

    def __init__(
        self,
        write: WriteFn,
        *,
        offset: Sequence[int],
        global_offset: Sequence[int],
        channels: int,
        dtype: Any,
        buffer_size: Optional[int],
        file_edge: int,
        dimension: Union[str, int],
    ) -> None:
        self._write = write
        self._offset = tuple(int(v) for v in offset)
        self._global_offset = tuple(int(v) for v in global_offset)
        self._axis = axis_index(dimension)
        self._buffer_size = _buffer_size(buffer_size, file_edge)
        self._channels = int(channels)
        self._dtype = np.dtype(dtype)
        self._buffer: Optional[np.ndarray] = None
        self._slice_shape: Optional[tuple[int, int]] = None
        self._start = self._offset[self._axis]  # axis position of the buffer's first slice
        self._filled = 0
        self._capacity = self._capacity_at(self._start)
        self._closed = False
        self.slices_written = 0

    def _capacity_at(self, position: int) -> int:
        absolute = position + self._global_offset[self._axis]
        return self._buffer_size - absolute % self._buffer_size

    def send(self, data: np.ndarray) -> None:
        """Add the next slice: ``(a, b)`` for one channel or ``(channels, a, b)``.

        ``(a, b)`` are the two other axes in x, y, z order (x, y for
        ``dimension="z"``). Every slice must have the same shape and the
        layer's dtype.
        """
        if self._closed:
            raise ViewStateError("send() on a closed BufferedSliceWriter")
        if not isinstance(data, np.ndarray):
            raise DTypeMismatchError(f"a slice must be a numpy.ndarray, got {type(data).__name__}")
        if data.ndim == 2:
            if self._channels != 1:
                raise ShapeError(f"2D slice of shape {data.shape} for a layer with {self._channels} channels")
            data = data[np.newaxis]
        elif data.ndim != 3 or data.shape[0] != self._channels:
            raise ShapeError(
                f"a slice must be 2D or (channels={self._channels}, a, b), got shape {data.shape}"
            )
        if data.dtype != self._dtype:
            raise DTypeMismatchError(f"slice has dtype {data.dtype}, the layer stores {self._dtype}")
        shape = (int(data.shape[1]), int(data.shape[2]))
        if self._slice_shape is None:
            self._slice_shape = shape
        elif shape != self._slice_shape:
            raise ShapeError(f"slice of shape {shape} after slices of shape {self._slice_shape}")
        if self._buffer is None:
            full = [self._channels, *shape]
            full.insert(1 + self._axis, self._buffer_size)
            self._buffer = np.empty(full, dtype=self._dtype, order="F")
        index = [slice(None)] * 4
        index[1 + self._axis] = self._filled  # type: ignore[call-overload]
        self._buffer[tuple(index)] = data
        self._filled += 1
        if self._filled == self._capacity:
            self._flush()

    def _flush(self) -> None:
        if self._filled == 0 or self._buffer is None:
            return
        index = [slice(None)] * 4
        index[1 + self._axis] = slice(0, self._filled)
        block = self._buffer[tuple(index)]
        offset = list(self._offset)
        offset[self._axis] = self._start
        self._write(block, tuple(offset))
        self.slices_written += self._filled
        self._start += self._filled
        self._filled = 0
        self._capacity = self._capacity_at(self._start)

    def close(self) -> None:
        """Write what is buffered and refuse further slices."""
        if not self._closed:
            try:
                self._flush()
            finally:
                self._closed = True
                self._buffer = None

    def __enter__(self) -> "BufferedSliceWriter":
        return self

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()


class BufferedSliceReader:
    """Yields the slices of a box along an axis, reading ``buffer_size`` slices at a time.

    Every slice is ``(channels, a, b)`` (a, b the two other axes in x, y, z
    order), like webknossos' reader.

    Parameters
    ----------
    read : callable
        ``read(offset, size)`` of the source view, returning
        ``(channels, x, y, z)`` data of a view-relative box.
    offset, size : 3 ints
        The view-relative box, already checked against the view's bounds.
    global_offset : 3 ints
        Absolute position of the view in the mag: reads end on absolute
        multiples of ``buffer_size``.
    buffer_size : int or None
        Slices per read; None for ``file_edge``.
    file_edge : int
        Voxels per file edge of the mag, the default buffer size.
    dimension : str or int
        The axis the slices follow: ``"x"``, ``"y"``, ``"z"`` or 0, 1, 2.
    """

    def __init__(
        self,
        read: ReadFn,
        *,
        offset: Sequence[int],
        size: Sequence[int],
        global_offset: Sequence[int],
        buffer_size: Optional[int],
        file_edge: int,
        dimension: Union[str, int],
    ) -> None:
        self._read = read
        self._offset = tuple(int(v) for v in offset)
        self._size = tuple(int(v) for v in size)
        self._global_offset = tuple(int(v) for v in global_offset)
        self._axis = axis_index(dimension)
        self._buffer_size = _buffer_size(buffer_size, file_edge)

    def __iter__(self) -> Iterator[np.ndarray]:
        axis = self._axis
        start = self._offset[axis]
        end = start + self._size[axis]
        position = start
        while position < end:
            absolute = position + self._global_offset[axis]
            step = min(self._buffer_size - absolute % self._buffer_size, end - position)
            offset = list(self._offset)
            size = list(self._size)
            offset[axis] = position
            size[axis] = step
            block = self._read(tuple(offset), tuple(size))
            yield from np.moveaxis(block, 1 + axis, 0)
            position += step

    def __enter__(self) -> "BufferedSliceReader":
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

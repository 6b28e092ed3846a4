"""File IO of one mag folder: compressed files through wkview's codec, raw files
(and, on request, compressed ones) through libwkw (the ``wkw`` package).

This module and :mod:`wkview.codec` are the only ones that touch WKW data files.
It knows nothing about views or datasets: it reads and writes boxes of voxels in
absolute mag coordinates. Geometry (which files a box touches) comes from the
compiled core; this module only fetches and stores.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
import weakref
from collections import OrderedDict, deque
from concurrent.futures import wait
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import wkw

from . import _codec, _core, _durable, codec, wkw_format
from ._pool import get_pool, reset_pool
from ._settings import get_io_threads, set_io_threads_value
from .errors import DatasetError, ShapeError

__all__ = ["MagStore", "LIBWKW_MAX_COORD", "get_io_threads", "set_io_threads"]

#: libwkw addresses voxels with uint32 coordinates.
LIBWKW_MAX_COORD = 2**32 - 1


try:  # the C ABI behind the wkw package: lets reads land directly in the caller's array
    from wkw.wkw import ffi as _ffi, libwkw as _libwkw
except ImportError:  # pragma: no cover - a wkw release without these names: use its Python API
    _ffi = _libwkw = None

#: LZ4HC level wkview writes by default: the fastest level whose files stay within 10% of
#: libwkw's (level 9) on EM-like data (measured: level 4 gives 1.09x the size at ~4x the
#: speed per core; level 3 already 1.14x). Level 9 gives libwkw's exact bytes.
DEFAULT_COMPRESSION_LEVEL = 4

#: which code reads and writes compressed files: "wkview" (its own codec: block-granular
#: edits, parallel encoding and decoding, cached jump tables) or "libwkw" (the reference
#: implementation); WKVIEW_CODEC overrides. Raw (uncompressed) mags always use libwkw.
CODECS = ("wkview", "libwkw")


def _default_codec() -> str:
    name = os.environ.get("WKVIEW_CODEC", "wkview")
    if name not in CODECS:
        raise ValueError(f"WKVIEW_CODEC must be one of {CODECS}, got {name!r}")
    return name


def _check_level(level: Any) -> int:
    if isinstance(level, bool) or not isinstance(level, (int, np.integer)) or not 1 <= int(level) <= 12:
        raise ValueError(f"compression_level must be an int from 1 to 12 (LZ4HC), got {level!r}")
    return int(level)  # magic, version, lens, block type, voxel type, voxel size, data offset


# -- threads -------------------------------------------------------------------------
# libwkw's calls go through cffi, which releases the GIL: reading or writing different
# files on several threads (wkview._pool's, shared with the codec) uses several cores.


def set_io_threads(threads: int | None) -> None:
    """Set the IO threads (None: the cores available, or ``WKVIEW_IO_THREADS``)."""
    set_io_threads_value(threads)
    reset_pool()


#: files one libwkw call (a z-slab) may span: it holds all their locks at once
MAX_FILES_LOCKED = 256

#: data files a store keeps open (with their parsed jump tables) for codec reads
OPEN_FILES_CACHED = 64

# every store's lean reader (see _codec.SmallReads), emptied in a forked child: its
# entries are the parent's open files, which the child's caches do not know
_SMALL_READS: "weakref.WeakSet[Any]" = weakref.WeakSet()


def _forget_small_reads() -> None:
    for small in list(_SMALL_READS):
        small.clear()


os.register_at_fork(after_in_child=_forget_small_reads)


#: Boxes smaller than this many bytes are read or written with one call on the calling
#: thread: handing them to the pool costs more than it saves.
PARALLEL_MIN_BYTES = 1 << 20


def _run_all(fn: Any, items: list[Any], nbytes: int = PARALLEL_MIN_BYTES) -> None:
    """Run ``fn(item)`` for every item, on the IO pool when that helps; raise the first error.

    Waits for every started task before raising, so no write is still running when the
    caller sees the exception.
    """
    if len(items) < 2 or nbytes < PARALLEL_MIN_BYTES or get_io_threads() == 1:
        for item in items:
            fn(item)
        return
    futures = [get_pool().submit(fn, item) for item in items]
    wait(futures)
    for future in futures:
        exc = future.exception()
        if exc is not None:
            raise exc


def _read_into(handle: Any, offset: tuple[int, int, int], out: np.ndarray) -> None:
    """Read the box at ``offset`` of ``out``'s shape straight into ``out``.

    ``out`` must be a Fortran-contiguous ``(channels, x, y, z)`` array of the
    mag's dtype (the layout libwkw writes). The C call releases the GIL.
    """
    if _libwkw is None:
        out[...] = handle.read(offset, out.shape[1:])
        return
    x, y, z = offset
    _, sx, sy, sz = out.shape
    box = _ffi.new("uint32_t[6]", (x, y, z, x + sx, y + sy, z + sz))
    status = _libwkw.dataset_read(handle.handle, box, _ffi.cast("void *", out.__array_interface__["data"][0]))
    if status > 0:
        message = _ffi.string(_libwkw.get_last_error_msg()).decode(errors="replace")
        raise OSError(f"libwkw could not read {tuple(out.shape[1:])} voxels at {offset}: {message}")


def _write_from(handle: Any, offset: tuple[int, int, int], data: np.ndarray) -> None:
    """Write a C- or Fortran-contiguous ``(channels, x, y, z)`` array without copying it."""
    if _libwkw is None or not (data.flags.f_contiguous or data.flags.c_contiguous):
        handle.write(offset, data)
        return
    x, y, z = offset
    _, sx, sy, sz = data.shape
    box = _ffi.new("uint32_t[6]", (x, y, z, x + sx, y + sy, z + sz))
    c_order = bool(data.flags.c_contiguous and not data.flags.f_contiguous)
    status = _libwkw.dataset_write(
        handle.handle, box, _ffi.cast("void *", data.__array_interface__["data"][0]), c_order
    )
    if status > 0:
        message = _ffi.string(_libwkw.get_last_error_msg()).decode(errors="replace")
        raise OSError(f"libwkw could not write {tuple(data.shape[1:])} voxels at {offset}: {message}")


def _slabs(start: int, length: int, grid: int, pieces: int) -> list[tuple[int, int]]:
    """Split ``[start, start + length)`` into at most ``pieces`` runs with inner cuts on ``grid``."""
    first = start // grid
    last = (start + length - 1) // grid
    cells = last - first + 1
    pieces = max(1, min(pieces, cells))
    cuts = [start]
    for k in range(1, pieces):
        cuts.append((first + (cells * k) // pieces) * grid)
    cuts.append(start + length)
    return [(cuts[i], cuts[i + 1] - cuts[i]) for i in range(pieces) if cuts[i + 1] > cuts[i]]


def header_file_edge(header: wkw.Header) -> int:
    return header.file_len * header.block_len


class _FileCheck:
    """Validates data files once per (inode, size, mtime) and remembers the result.

    libwkw reads an empty, truncated-to-nothing or garbage file as zeros
    without an error; a file damaged by a crash would look like valid empty
    data. Every read and partial write checks the files it touches first
    (:func:`wkview.wkw_format.validate_data_file`).
    """

    def __init__(self) -> None:
        self._ok: dict[str, tuple[int, int, int]] = {}
        self._lock = threading.Lock()

    def check(self, path: str, header: wkw.Header) -> bool:
        """Return False when the file does not exist; raise if it is not a valid WKW file."""
        try:
            st = os.stat(path)
        except FileNotFoundError:
            if _roll_back_dead_writer(path):  # a dead writer had moved the old file aside
                return self.check(path, header)
            return False
        key = (st.st_ino, st.st_size, st.st_mtime_ns)
        if self._ok.get(path) == key:
            return True
        if _roll_back_dead_writer(path):
            return self.check(path, header)
        wkw_format.validate_data_file(path, wkw_format.layout_of(header), st.st_size)
        with self._lock:
            self._ok[path] = key
        return True

    def forget(self, path: str) -> None:
        with self._lock:
            self._ok.pop(path, None)


def _roll_back_dead_writer(path: str) -> bool:
    """Roll back the unfinished in-place write of a killed writer (best effort: a reader
    without write permission reads the file as it is)."""
    try:
        return _durable.roll_back_if_stale(path)
    except OSError:
        return False


#: libwkw handles of stores that were garbage-collected, closed by the next store that opens
#: one. A collection can run ``__del__`` while the same thread is inside cffi (holding its
#: type lock), and libwkw's close goes through cffi: closing there deadlocked.
_ORPHANED_HANDLES: deque = deque()


def _close_orphaned_handles() -> None:
    while True:
        try:
            handle = _ORPHANED_HANDLES.popleft()  # atomic: no lock a collection could meet
        except IndexError:
            return
        handle.close()


class MagStore:
    """Reads and writes boxes of one mag folder (``header.wkw`` + ``z*/y*/x*.wkw``).

    One libwkw handle per store, opened on first use, reopened after a fork
    or unpickling, released by :meth:`close` and on garbage collection.
    Coordinates are absolute voxel coordinates of the mag; arrays are
    ``(channels, x, y, z)``.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        header: wkw.Header | None = None,
        *,
        codec: str | None = None,
        compression_level: int | None = None,
    ) -> None:
        self.path = Path(path)
        self._handle: Any = None
        self._pid = -1
        self._lock = threading.Lock()
        self._checks = _FileCheck()
        if header is None:
            header = self._read_header()
        self.header = header
        self.codec = _default_codec() if codec is None else codec
        if self.codec not in CODECS:
            raise ValueError(f"codec must be one of {CODECS}, got {self.codec!r}")
        self.compression_level = (
            DEFAULT_COMPRESSION_LEVEL if compression_level is None else _check_level(compression_level)
        )
        self._small = self._new_small_reads()

    @classmethod
    def create(cls, path: str | os.PathLike, header: wkw.Header) -> "MagStore":
        """Create the mag folder and its ``header.wkw`` (replaced whole, through
        :func:`wkview._durable.write_file`: a writer killed here leaves no partial file)."""
        path = Path(path)
        _durable.write_file(path / "header.wkw", wkw_format.mag_header_bytes(header))
        return cls(path, header)

    def _read_header(self) -> wkw.Header:
        header_path = self.path / "header.wkw"
        if not header_path.is_file():
            raise DatasetError(f"{self.path} is not a WKW mag folder: {header_path} is missing")
        handle = self._get_handle()
        return handle.header

    # -- handle lifecycle ---------------------------------------------------------

    def _get_handle(self) -> Any:
        handle = self._handle
        if handle is not None and self._pid == os.getpid():
            return handle
        with self._lock:
            if self._handle is None or self._pid != os.getpid():
                _close_orphaned_handles()
                # after a fork the inherited handle belongs to the parent: never close it here
                self._handle = wkw.Dataset.open(str(self.path))
                self._pid = os.getpid()
            return self._handle

    @property
    def is_open(self) -> bool:
        return self._handle is not None and self._pid == os.getpid()

    def close(self) -> None:
        """Release the libwkw handle and the files kept open (reopened on next use)."""
        with self._lock:
            handle, self._handle = self._handle, None
            if handle is not None and self._pid == os.getpid():
                handle.close()
            cache = self.__dict__.get("_open_files_cache")
            if cache and self.__dict__.get("_open_files_pid") == os.getpid():
                cache.clear()  # each file closes once no read uses it any more
            if self._small is not None:
                self._small.clear()

    def moved_to(self, path: str | os.PathLike) -> None:
        """The mag folder was renamed to ``path``: close and forget what was checked."""
        self.close()
        self.path = Path(path)
        self._checks = _FileCheck()

    def __del__(self) -> None:
        # No libwkw call and no lock here (see _ORPHANED_HANDLES); the open-files cache
        # closes its files as it is collected with this object.
        handle = self.__dict__.get("_handle")
        if handle is not None and self.__dict__.get("_pid") == os.getpid():
            _ORPHANED_HANDLES.append(handle)

    def __getstate__(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "header": _header_state(self.header),
            "codec": self.codec,
            "compression_level": self.compression_level,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.path = Path(state["path"])
        self.header = wkw.Header(**state["header"])
        self.codec = state.get("codec", "wkview")
        self.compression_level = state.get("compression_level", DEFAULT_COMPRESSION_LEVEL)
        self._handle = None
        self._pid = -1
        self._lock = threading.Lock()
        self._checks = _FileCheck()
        self._small = self._new_small_reads()

    def _new_small_reads(self) -> Any:
        """The lean path of reads inside one compressed file (None where the codec does not read)."""
        if not (self.is_compressed and self.codec == "wkview"):
            return None
        header = self.header
        small = _codec.SmallReads(header.block_len, header.file_len, self.num_channels, self.dtype)
        _SMALL_READS.add(small)
        return small

    # -- geometry of the files ----------------------------------------------------

    @functools.cached_property
    def _layout(self) -> wkw_format.Layout:
        """The header as the codec takes it (checked once)."""
        return wkw_format.as_layout(self.header)

    @property
    def file_edge(self) -> int:
        return header_file_edge(self.header)

    @property
    def is_compressed(self) -> bool:
        return self.header.block_type in (wkw.Header.BLOCK_TYPE_LZ4, wkw.Header.BLOCK_TYPE_LZ4HC)

    @property
    def write_unit(self) -> int:
        """Edge of the smallest region a write rewrites as a whole (file or block)."""
        return self.file_edge if self.is_compressed else self.header.block_len

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.header.voxel_type)

    @property
    def num_channels(self) -> int:
        return int(self.header.num_channels)

    def file_path(self, index: tuple[int, int, int]) -> str:
        x, y, z = index
        return f"{self.path}{os.sep}z{z}{os.sep}y{y}{os.sep}x{x}.wkw"

    def list_files(self) -> list[tuple[int, int, int]]:
        """Grid indices of the data files present, sorted."""
        found = []
        for zdir in self.path.glob("z*"):
            for ydir in zdir.glob("y*"):
                for f in ydir.glob("x*.wkw"):
                    try:
                        found.append((int(f.stem[1:]), int(ydir.name[1:]), int(zdir.name[1:])))
                    except ValueError:
                        continue
        return sorted(found, key=lambda i: (i[2], i[1], i[0]))

    def _check_box(self, offset: tuple[int, int, int], size: tuple[int, int, int]) -> None:
        for i in range(3):
            if offset[i] < 0 or offset[i] + size[i] > LIBWKW_MAX_COORD:
                raise ShapeError(
                    f"box at {tuple(offset)} of size {tuple(size)} lies outside the voxel "
                    f"range WKW files address (0 to 2**32 - 1)"
                )

    def _check_files(self, offset: tuple[int, int, int], size: tuple[int, int, int]) -> None:
        for part in _core.project_box(offset, size, (self.file_edge,) * 3):
            self._checks.check(self.file_path(part.index), self.header)

    # -- reading and writing ------------------------------------------------------

    def read(self, offset: tuple[int, int, int], size: tuple[int, int, int]) -> np.ndarray:
        """Voxels of the box as a Fortran-ordered ``(channels, x, y, z)`` array; zeros where no data is stored.

        A box spanning several files is read file by file on the IO threads;
        files that do not exist are not read at all.
        """
        small = self._small
        if small is not None:  # a box in one file opened before: all of it in C
            out = small.read(offset, size, get_io_threads())
            if out is not None:
                return out
        self._check_box(offset, size)
        if self.is_compressed and self.codec == "wkview":
            return self._codec_read(offset, size)
        edge = self.file_edge
        parts = _core.project_box(offset, size, (edge, edge, edge))
        present = [part for part in parts if self._checks.check(self.file_path(part.index), self.header)]
        # libwkw writes every voxel of the files that exist: zero-fill only when one is missing
        empty = np.empty if len(present) == len(parts) else np.zeros
        out = empty((self.num_channels, *size), dtype=self.dtype, order="F")
        if not present:
            return out
        handle = self._get_handle()
        # z-slabs of a Fortran-ordered array are contiguous: each thread decodes its own
        # block-aligned slab straight into the output (no block is decoded twice)
        nbytes = out.nbytes
        if nbytes < PARALLEL_MIN_BYTES:
            _read_into(handle, offset, out)
            return out
        slabs = _slabs(offset[2], size[2], self.header.block_len, 4 * get_io_threads())

        def read_slab(slab: tuple[int, int]) -> None:
            z, depth = slab
            lo = z - offset[2]
            _read_into(handle, (offset[0], offset[1], z), out[:, :, :, lo : lo + depth])

        _run_all(read_slab, slabs, nbytes)
        return out

    def write(self, offset: tuple[int, int, int], data: np.ndarray, level: int | None = None) -> None:
        """Store ``data`` (``(channels, x, y, z)``, the mag's dtype) at ``offset``.

        Compressed mags go through wkview's codec (see :meth:`_codec_write`) at
        LZ4HC ``level`` (default: :attr:`compression_level`). Otherwise libwkw
        writes, split by file on the IO threads: raw files take any box; with
        ``codec="libwkw"`` every touched compressed file is written exactly
        once, a partly covered one after merging ``data`` into its stored
        voxels (a missing file merges into zeros, unread).
        """
        size = tuple(int(s) for s in data.shape[1:])
        self._check_box(offset, size)  # type: ignore[arg-type]
        if self.is_compressed and self.codec == "wkview":
            self._codec_write(offset, data, self.compression_level if level is None else _check_level(level))
            return
        handle = self._get_handle()
        edge = self.file_edge
        compressed = self.is_compressed
        z_layers = (offset[2] + size[2] - 1) // edge - offset[2] // edge + 1
        enough_slabs = z_layers >= get_io_threads() or data.nbytes < PARALLEL_MIN_BYTES
        files = 1
        for i in range(3):
            files *= (offset[i] + size[i] - 1) // edge - offset[i] // edge + 1
        if (
            enough_slabs
            and files <= MAX_FILES_LOCKED * get_io_threads()  # a slab holds the locks of all its files
            and data.flags.f_contiguous
            and (not compressed or _core.is_aligned(offset, size, (edge,) * 3))
        ):
            # z-slabs cut on file borders are contiguous in Fortran order and never share a
            # file (for compressed mags they hold whole files), so each thread hands its slab
            # to libwkw as it is, without a copy
            if not compressed:
                self._check_files(offset, size)  # type: ignore[arg-type]
            slabs = _slabs(offset[2], size[2], edge, get_io_threads())

            def write_slab(slab: tuple[int, int]) -> None:
                z, depth = slab
                lo = z - offset[2]
                at = (offset[0], offset[1], z)
                parts = list(_core.project_box(at, (size[0], size[1], depth), (edge, edge, edge)))
                with self._guard(parts):
                    _write_from(handle, at, data[:, :, :, lo : lo + depth])

            _run_all(write_slab, slabs, data.nbytes)
            return
        parts = list(_core.project_box(offset, size, (edge, edge, edge)))

        def write_part(part: Any) -> None:
            ax, ay, az = part.array_offset
            sx, sy, sz = part.size
            piece = data[:, ax : ax + sx, ay : ay + sy, az : az + sz]
            file_offset = (part.index[0] * edge, part.index[1] * edge, part.index[2] * edge)
            with self._guard([part]):
                if part.full:
                    handle.write(file_offset, piece)
                    return
                exists = self._checks.check(self.file_path(part.index), self.header)
                if not compressed:
                    lo = tuple(file_offset[i] + part.local_offset[i] for i in range(3))
                    handle.write(lo, piece)
                    return
                existing = handle.read(file_offset, (edge, edge, edge)) if exists else None
                merged = _core.merge_into(existing, piece, part.local_offset, (edge, edge, edge), self.dtype)
                handle.write(file_offset, merged)

        _run_all(write_part, parts, data.nbytes)

    # -- safe in-place writes through libwkw ------------------------------------------------

    @contextlib.contextmanager
    def _guard(self, parts: list[Any]) -> Iterator[None]:
        """Lock the files of ``parts`` (one libwkw call's) for the write in the block.

        Under the locks: a dead writer's unfinished write is rolled back, and what this
        write will overwrite is saved in an undo journal (see :mod:`wkview._durable`).
        After the write the files are fsynced, then the journals removed; a failed write
        (a full disk, ...) is rolled back, so the old files stay as they were.
        """
        paths = [self.file_path(part.index) for part in parts]
        with _durable.locked(paths):
            journals = []
            try:
                for part, path in zip(parts, paths):
                    _durable.roll_back_raw(path)
                    self._checks.forget(path)
                    exists = self._checks.check(path, self.header)
                    journals.append(_durable.begin_raw_undo(path, self._undo_ranges(path, part) if exists else None))
                    self._checks.forget(path)
                yield
                for path in paths:
                    _durable.fsync_path(path)
            except BaseException:
                for path in paths[: len(journals)]:
                    with contextlib.suppress(OSError):
                        _durable.roll_back_raw(path)
                    self._checks.forget(path)
                raise
            for journal in journals:
                _durable.end_raw_undo(journal)
            # after the journals are gone: new files' names and the journals' removal are
            # durable together (a journal that came back after a power loss would undo the write)
            for folder in {os.path.dirname(path) for path in paths}:
                _durable.fsync_folder(folder)
            for path in paths:
                self._checks.forget(path)

    def _undo_ranges(self, path: str, part: Any) -> Any:
        """Byte ranges of ``path`` a write of ``part`` may change (``"aside"``: all of it)."""
        if part.full:
            return "aside"
        if self.is_compressed:  # libwkw rewrites the whole (compressed) file
            return [(0, os.stat(path).st_size)]
        with open(path, "rb") as f:
            found = wkw_format.parse_header(f.read(wkw_format.HEADER_SIZE), path)
        block_bytes = found.block_len**3 * found.voxel_size
        indices = sorted(int(i) for i in _codec.block_pieces(*part.local_offset, *part.size, found.block_len)[:, 0])
        ranges: list[tuple[int, int]] = [(0, wkw_format.HEADER_SIZE)]
        for index in indices:
            start = found.data_offset + index * block_bytes
            last = ranges[-1]
            if last[0] + last[1] == start:
                ranges[-1] = (last[0], last[1] + block_bytes)
            else:
                ranges.append((start, block_bytes))
        return ranges

    # -- wkview's own codec for compressed files ------------------------------------------

    def _opened(self, path: str, index: tuple[int, int, int] | None = None) -> Any:
        """The file opened by the codec, with its parsed jump table; cached per
        (inode, size, mtime), so a file replaced or changed is parsed again.
        None when the file does not exist. ``index``: the file's grid index, to hand
        the file to the lean path of small reads too.

        Files leaving the cache are not closed here: a read on another thread may
        still use them; each closes when its last user lets go of it.
        """
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return None
        key = (st.st_ino, st.st_size, st.st_mtime_ns)
        cache = self._open_files
        with self._lock:
            hit = cache.get(path)
            if hit is not None and hit[0] == key:
                cache.move_to_end(path)  # least recently used files leave first
                if index is not None and self._small is not None:
                    self._small.add(index, hit[1], key)
                return hit[1]
        opened = codec.CompressedFile.open(path, self._layout)
        with self._lock:
            cache[path] = (key, opened)
            cache.move_to_end(path)
            while len(cache) > OPEN_FILES_CACHED:
                _, (_, old) = cache.popitem(last=False)
                if self._small is not None:
                    self._small.discard_file(old)
            if index is not None and self._small is not None:
                self._small.add(index, opened, key)
        return opened

    @property
    def _open_files(self) -> OrderedDict[str, Any]:
        cache = self.__dict__.get("_open_files_cache")
        if cache is None or self.__dict__.get("_open_files_pid") != os.getpid():
            cache = self.__dict__["_open_files_cache"] = OrderedDict()
            self.__dict__["_open_files_pid"] = os.getpid()
        return cache

    def _codec_read(self, offset: tuple[int, int, int], size: tuple[int, int, int]) -> np.ndarray:
        """Decode only the blocks the box touches, the blocks of all files together on the
        IO threads. Decoding writes every voxel of a file that exists: only the parts
        of missing files are zero-filled."""
        edge = self.file_edge
        layout = self._layout
        one_file = _core.file_box(offset, size, edge)
        if one_file is not None:  # most small reads: no projection, no sub-arrays
            index, local = one_file
            opened = self._opened(self.file_path(index), index)
            if opened is None:
                return np.zeros((layout.channels, *size), dtype=layout.dtype, order="F")
            out = np.empty((layout.channels, *size), dtype=layout.dtype, order="F")
            codec.decode_into(layout, (opened,), [(opened.fd, opened.ends, opened.header.data_offset, local, out)], get_io_threads())
            return out
        out = np.empty((layout.channels, *size), dtype=layout.dtype, order="F")
        files = []
        jobs = []
        for part in _core.project_box(offset, size, (edge, edge, edge)):
            ax, ay, az = part.array_offset
            sx, sy, sz = part.size
            piece = out[:, ax : ax + sx, ay : ay + sy, az : az + sz]
            opened = self._opened(self.file_path(part.index))
            if opened is None:
                piece[...] = 0
                continue
            files.append(opened)
            jobs.append((opened.fd, opened.ends, opened.header.data_offset, part.local_offset, piece))
        codec.decode_into(layout, files, jobs, get_io_threads())
        return out

    def _codec_write(self, offset: tuple[int, int, int], data: np.ndarray, level: int) -> None:
        """Every touched file once: whole files encoded from ``data``, partly covered files
        edited block by block (untouched blocks keep their compressed bytes); the blocks of
        all files are encoded together on the codec threads."""
        edge = self.file_edge
        boxes = []
        indices = []
        for part in _core.project_box(offset, data.shape[1:], (edge, edge, edge)):
            ax, ay, az = part.array_offset
            sx, sy, sz = part.size
            piece = data[:, ax : ax + sx, ay : ay + sy, az : az + sz]
            boxes.append((self.file_path(part.index), part.local_offset, piece))
            indices.append(part.index)
        try:
            codec.write_boxes(self._layout, boxes, level)
        finally:
            cache = self._open_files
            with self._lock:
                if self._small is not None:
                    for index in indices:
                        self._small.discard(index)
                for path, _, _ in boxes:
                    self._checks.forget(path)
                    # the cached file is the replaced one: an open descriptor would keep
                    # its disk space until the next read of this path
                    cache.pop(path, None)

    def __repr__(self) -> str:
        return f"MagStore({str(self.path)!r})"


def _header_state(header: wkw.Header) -> dict[str, Any]:
    return {
        "voxel_type": header.voxel_type,
        "num_channels": header.num_channels,
        "version": header.version,
        "block_len": header.block_len,
        "file_len": header.file_len,
        "block_type": header.block_type,
    }

"""wkview's own codec for compressed WKW files (block types 2 LZ4 and 3 LZ4HC).

Reads and writes single data files, byte-compatible with libwkw: a 16-byte header,
a jump table of ``file_len**3`` uint64 block end offsets, then the blocks in Morton
order, each an independent raw LZ4 block (no size prefix) of one ``block_len**3``
Fortran-ordered voxel cube with the channels interleaved. The format itself (headers,
layouts, jump tables, checks) is :mod:`wkview.wkw_format`; this module is the block
pipeline. New files are written through :mod:`wkview._durable`.

Unlike libwkw, writes need not cover whole files: :func:`write_box` re-encodes only
the blocks a box touches and copies the compressed bytes of every other block as
they are. Reads decode only the blocks a box touches, in one call of the kernel
``wkview._codec.read_boxes`` on native threads. Writes encode whole runs of blocks
with the GIL released, as tasks of bounded size on :mod:`wkview._pool`'s threads;
this module validates, plans the tasks and does the file IO.

Arrays are ``(channels, x, y, z)``, any memory layout; coordinates are local to the
file (``0 <= c < file_len * block_len``).
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from . import _codec, _durable
from ._pool import get_pool
from ._settings import fsync_enabled, get_io_threads
from .errors import CorruptFileError
from .wkw_format import (  # the file format; re-exported, see __all__
    BLOCK_TYPE_LZ4,
    BLOCK_TYPE_LZ4HC,
    BLOCK_TYPE_RAW,
    HEADER_SIZE,
    FileHeader,
    Layout,
    as_layout,
    check_matches,
    parse_header,
    read_jump_table,
)

__all__ = [
    "FileHeader",
    "Layout",
    "as_layout",
    "CompressedFile",
    "parse_header",
    "read_jump_table",
    "decode_block",
    "encode_block",
    "read_box",
    "read_boxes",
    "write_box",
    "write_boxes",
    "write_full_file",
    "WriteStats",
    "BLOCK_TYPE_RAW",
    "BLOCK_TYPE_LZ4",
    "BLOCK_TYPE_LZ4HC",
    "LIBWKW_LZ4HC_LEVEL",
]

#: The LZ4HC level libwkw writes with: encoding at this level gives byte-identical blocks.
LIBWKW_LZ4HC_LEVEL = 9

#: bytes of zero blocks written at once into a file that had none
COPY_CHUNK = _durable.COPY_CHUNK


# -- blocks ----------------------------------------------------------------------------


def _check_level(block_type: int, level: Any) -> int:
    if block_type == BLOCK_TYPE_LZ4HC:
        if isinstance(level, bool) or not isinstance(level, (int, np.integer)) or not 1 <= level <= 12:
            raise ValueError(f"LZ4HC level must be an int in 1..12, got {level!r}")
        return int(level)
    if block_type == BLOCK_TYPE_LZ4:
        return 1  # the fast compressor has no level
    raise ValueError(f"block type must be 2 (LZ4) or 3 (LZ4HC), got {block_type!r}")


def decode_block(compressed: bytes | memoryview, block_bytes: int, path: str, index: int) -> bytes:
    """Decode one LZ4 block, which must give exactly ``block_bytes`` bytes."""
    if len(compressed) == 0:
        raise CorruptFileError(f"{path}: block {index} is empty")
    raw = _codec.lz4_decode(compressed, block_bytes)
    if raw is None:
        raise CorruptFileError(
            f"{path}: block {index} ({len(compressed)} compressed bytes) does not decode "
            f"to {block_bytes} bytes"
        )
    return raw


def encode_block(raw: bytes | bytearray | memoryview, block_type: int, level: int = LIBWKW_LZ4HC_LEVEL) -> bytes:
    """Encode one decoded block as a raw LZ4 block (no size prefix).

    Block type 3 (LZ4HC) uses ``level`` (1..12; 9 gives libwkw's exact bytes); block
    type 2 (LZ4) uses the fast compressor and ignores ``level``.
    """
    level = _check_level(block_type, level)
    return _codec.lz4_encode(raw, block_type, level)


# -- threads -------------------------------------------------------------------------
# Writes encode on wkview._pool's threads (tasks that never wait on each other); reads
# decode on the native threads of wkview._codec.read_boxes.


def _default_threads() -> int:
    return get_io_threads()


def _check_threads(threads: int | None) -> int:
    if threads is None:
        return _default_threads()
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive int or None, got {threads!r}")
    return threads


#: decoded bytes of blocks one task encodes or decodes: small enough that the cores
#: finish together, large enough that handing tasks over costs little
TASK_BYTES = 2 << 20
MIN_TASK_BYTES = 256 << 10

#: writes touching fewer decoded bytes than this stay on the calling thread
SMALL_WORK_BYTES = 1 << 20


def _in_order(tasks: Iterable[Callable[[], Any]], threads: int) -> Iterator[Any]:
    """Run ``tasks`` on the codec pool, at most ``2 * threads`` at a time, and yield
    their results in submission order. Memory stays bounded by the window; the
    caller consumes (writes) results while later tasks run.

    Whatever happens, every submitted task has ended before this generator does
    (tasks read from file descriptors the caller closes afterwards).
    """
    if threads == 1:
        for task in tasks:
            yield task()
        return
    pool = get_pool(threads)
    window: deque[Future[Any]] = deque()
    try:
        for task in tasks:
            window.append(pool.submit(task))
            if len(window) > 2 * threads:
                yield window.popleft().result()
        while window:
            yield window.popleft().result()
    finally:
        for future in window:
            future.cancel()
        for future in window:
            if not future.cancelled():
                try:
                    future.result()
                except BaseException:  # noqa: BLE001 - the first error is already raised
                    pass


def _blocks_per_task(total_blocks: int, block_bytes: int, threads: int) -> int:
    """At most :data:`TASK_BYTES` per task, and at least 8 tasks per thread when that
    leaves tasks of :data:`MIN_TASK_BYTES` or more: the threads finish close together."""
    target = total_blocks * block_bytes // (8 * threads)
    return max(1, min(TASK_BYTES, max(MIN_TASK_BYTES, target)) // block_bytes)


def _split(pieces: np.ndarray, per_task: int) -> list[np.ndarray]:
    """Consecutive runs of ``per_task`` pieces."""
    return [pieces[k : k + per_task] for k in range(0, len(pieces), per_task)]


# -- geometry of one file ----------------------------------------------------------------

# Columns of a piece table (``wkview._codec.block_pieces``): the part of one block
# inside a box, one row per block, in Morton order.
P_INDEX, P_LO, P_AT, P_SIZE, P_FULL = 0, slice(1, 4), slice(4, 7), slice(7, 10), 10


def _pieces(layout: Layout, offset: Sequence[int], size: Sequence[int]) -> np.ndarray:
    """``int64[k, 11]``: the blocks a file-local box touches and the part inside it."""
    return _codec.block_pieces(*offset, *size, layout.block_len)


def _check_box(layout: Layout, offset: Sequence[int], size: Sequence[int]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    offset = tuple(int(v) for v in offset)
    size = tuple(int(v) for v in size)
    if len(offset) != 3 or len(size) != 3:
        raise ValueError(f"offset and size must have 3 entries, got {offset}, {size}")
    edge = layout.edge
    if any(o < 0 or s < 0 or o + s > edge for o, s in zip(offset, size)):
        raise ValueError(f"box at {offset} of size {size} exceeds the file of edge {edge}")
    return offset, size


def _check_array(layout: Layout, array: np.ndarray, name: str) -> None:
    if not isinstance(array, np.ndarray) or array.ndim != 4:
        raise ValueError(f"{name} must be a (channels, x, y, z) numpy array")
    if array.dtype.newbyteorder("<") != layout.dtype or not array.dtype.isnative:
        raise ValueError(f"{name} has dtype {array.dtype}, the file stores {layout.dtype}")
    if array.shape[0] != layout.channels:
        raise ValueError(f"{name} has {array.shape[0]} channels, the file stores {layout.channels}")


# -- reading ---------------------------------------------------------------------------


class CompressedFile:
    """One existing compressed WKW file: its header and jump table, read once.

    Holds the file open (``os.open``) until :meth:`close`; use as a context manager.
    Reads go through ``os.pread`` and are safe from several threads.
    """

    def __init__(self, path: str, fd: int, header: FileHeader, ends: np.ndarray, size: int) -> None:
        self.path = path
        self.header = header
        self.ends = ends
        self.starts = np.empty_like(ends)
        if len(ends):
            self.starts[0] = header.data_offset
            self.starts[1:] = ends[:-1]
        self.size = size
        self._fd = fd

    @classmethod
    def open(cls, path: str | os.PathLike, expected: Any) -> "CompressedFile":
        """Open ``path`` and check it against ``expected`` (a :class:`FileHeader` or ``wkw.Header``)."""
        path = os.fspath(path)
        layout = as_layout(expected)
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        try:
            size = os.fstat(fd).st_size
            header = parse_header(os.pread(fd, HEADER_SIZE, 0), path)
            check_matches(header, layout, path)
            ends = read_jump_table(fd, header, path, size)
        except BaseException:
            os.close(fd)
            raise
        return cls(path, fd, header, ends, size)

    @property
    def fd(self) -> int:
        if self._fd < 0:
            raise ValueError(f"{self.path} is closed")
        return self._fd

    def close(self) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)

    def __enter__(self) -> "CompressedFile":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown
            pass

    def block_range(self, index: int) -> tuple[int, int]:
        """Byte range ``[start, end)`` of block ``index``."""
        return int(self.starts[index]), int(self.ends[index])

    def read_runs(self, indices: np.ndarray) -> tuple[bytearray, np.ndarray, np.ndarray]:
        """The compressed bytes of blocks ``indices`` (ascending, distinct), read with
        one ``pread`` per run of blocks that lie back to back in the file.

        Returns ``(buffer, starts, lengths)``: block ``indices[r]`` is
        ``buffer[starts[r] : starts[r] + lengths[r]]``.
        """
        indices = np.ascontiguousarray(indices, dtype=np.int64)
        code, row, errno, buffer, starts, lengths = _codec.read_blocks(
            self.fd, self.ends, self.header.data_offset, indices
        )
        if code:
            raise _read_error(self, int(indices[row]), code, errno)
        return buffer, starts, lengths

    def read_blocks(self, block_indices: Iterable[int]) -> dict[int, bytes]:
        """Compressed bytes of the given blocks, keyed by block index."""
        indices = np.array(sorted({int(i) for i in block_indices}), dtype=np.int64)
        n = self.header.num_blocks
        if len(indices) and (indices[0] < 0 or indices[-1] >= n):
            raise ValueError(f"block indices must lie in 0..{n - 1}, got {indices[0]}..{indices[-1]}")
        buffer, starts, lengths = self.read_runs(indices)
        return {
            int(i): bytes(buffer[s : s + n]) for i, s, n in zip(indices, starts.tolist(), lengths.tolist())
        }

    def __repr__(self) -> str:
        return f"CompressedFile({self.path!r}, {self.header.num_blocks} blocks, {self.size} bytes)"


def _read_error(f: CompressedFile, index: int, code: int, errno: int) -> Exception:
    """The error of a failed kernel read of block ``index`` of ``f``."""
    start, end = f.block_range(index)
    if code == _codec.ERR_DECODE:
        return CorruptFileError(
            f"{f.path}: block {index} ({end - start} compressed bytes at byte {start}) does "
            f"not decode to {f.header.block_len**3 * f.header.voxel_size} bytes"
        )
    if code == _codec.ERR_SHORT:
        return CorruptFileError(f"{f.path} is truncated: block {index} (bytes {start} to {end}) is cut off")
    return OSError(errno, f"reading block {index} of {f.path}: {os.strerror(errno)}")


def read_boxes(
    header: Any,
    boxes: Iterable[tuple["CompressedFile", Sequence[int], np.ndarray]],
    threads: int | None = None,
) -> None:
    """Fill each ``out`` of ``(file, file_local_offset, out)`` with the box of that size
    at ``file_local_offset`` of the opened file.

    One kernel call reads and decodes every block of every box, spread over up to
    ``threads`` native threads (default: :func:`~wkview.get_io_threads`): a block only
    up to the box's last voxel in it, a whole block straight into ``out`` where its
    layout allows. Every voxel of each ``out`` is written (no zero fill needed).
    Raises :class:`CorruptFileError` for a damaged block, whichever thread decodes it.
    """
    layout = as_layout(header)
    threads = _check_threads(threads)
    jobs = []
    files = []
    for f, offset, out in boxes:
        _check_array(layout, out, "out")
        if not out.flags.writeable:
            raise ValueError("out is read-only")
        offset, _ = _check_box(layout, offset, out.shape[1:])
        jobs.append((f.fd, f.ends, f.header.data_offset, offset, out))
        files.append(f)
    decode_into(layout, files, jobs, threads)


def decode_into(layout: Layout, files: Sequence["CompressedFile"], jobs: list[tuple[Any, ...]], threads: int) -> None:
    """Run the kernel on checked ``jobs`` (``(fd, ends, data_offset, local offset, out)``,
    one per entry of ``files``) and raise the error of the first damaged block.

    The lean path of small reads: callers that built ``out`` themselves and took the
    box from the file grid skip :func:`read_boxes`' checks.
    """
    failed = _codec.read_boxes(jobs, layout.block_len, layout.voxel_size, threads)
    if failed is not None:
        box, index, code, err = failed
        raise _read_error(files[box], index, code, err)


def read_box(
    path: str | os.PathLike,
    header: Any,
    file_offset_in_file: Sequence[int],
    size: Sequence[int],
    out: np.ndarray,
    threads: int | None = None,
    opened: "CompressedFile | None" = None,
) -> None:
    """Fill ``out`` (``(channels, *size)``) with the box at ``file_offset_in_file`` of one file.

    Decodes only the blocks the box touches (a block only up to the box's last
    voxel in it); zeros when the file does not exist. Raises
    :class:`CorruptFileError` for a damaged file. ``opened``: the file, already
    opened (its parsed jump table is reused; it is not closed here).
    """
    layout = as_layout(header)
    _check_array(layout, out, "out")
    _, size = _check_box(layout, file_offset_in_file, size)
    if tuple(out.shape[1:]) != size:
        raise ValueError(f"out has shape {out.shape[1:]}, the box has size {size}")
    if opened is not None:
        read_boxes(layout, [(opened, file_offset_in_file, out)], threads)
        return
    try:
        f = CompressedFile.open(path, layout)
    except FileNotFoundError:
        if not out.flags.writeable:
            raise ValueError("out is read-only") from None
        out[...] = 0
        return
    with f:
        read_boxes(layout, [(f, file_offset_in_file, out)], threads)


# -- writing ---------------------------------------------------------------------------


@dataclass(frozen=True)
class WriteStats:
    """What :func:`write_boxes` did to one file."""

    path: str
    encoded: int  #: blocks encoded (every block the box touches)
    merged: tuple[int, ...]  #: indices of stored blocks decoded to merge a partial box into
    copied: int  #: blocks whose compressed bytes were copied unchanged
    size: int  #: bytes of the new file


_zero_blocks: dict[tuple[int, int, int], bytes] = {}


def _zero_block(layout: Layout, level: int) -> bytes:
    key = (layout.block_bytes, layout.block_type, level)
    blob = _zero_blocks.get(key)
    if blob is None:
        blob = _zero_blocks[key] = encode_block(bytes(layout.block_bytes), layout.block_type, level)
    return blob


class _NewFile:
    """A data file being written: a :class:`~wkview._durable.Replacement` of ``path``,
    filled block by block in Morton order, renamed over ``path`` by :meth:`commit`."""

    def __init__(self, path: str, layout: Layout, old: CompressedFile | None, level: int) -> None:
        self.path = path
        self.layout = layout
        self.old = old
        self.level = level
        self.lengths = np.zeros(layout.num_blocks, dtype=np.uint64)
        self.pos = layout.data_offset
        self.next_block = 0  # first block not yet in the new file
        self.encoded = 0
        self.merged: list[int] = []
        self.copied = 0
        self.file = _durable.Replacement(path)
        self.fd = self.file.fd

    def fill_untouched(self, stop: int) -> None:
        """Blocks ``next_block .. stop - 1``, which the box does not touch: their old
        compressed bytes, or zero blocks when there is no old file."""
        first = self.next_block
        if stop <= first:
            return
        if self.old is not None:
            start, end = int(self.old.starts[first]), int(self.old.ends[stop - 1])
            _durable.copy_range(self.old.fd, self.fd, start, self.pos, end - start)
            self.lengths[first:stop] = self.old.ends[first:stop] - self.old.starts[first:stop]
            self.pos += end - start
            self.copied += stop - first
        else:
            blob = _zero_block(self.layout, self.level)
            count = stop - first
            self.lengths[first:stop] = len(blob)
            per_write = max(1, COPY_CHUNK // len(blob))
            while count:
                k = min(count, per_write)
                _durable.pwrite_all(self.fd, blob * k, self.pos)
                self.pos += k * len(blob)
                count -= k
        self.next_block = stop

    def append(self, indices: np.ndarray, encoded: bytearray, lengths: np.ndarray) -> None:
        """Blocks ``indices`` (ascending), encoded back to back in ``encoded``."""
        view = memoryview(encoded)
        offsets = np.zeros(len(indices) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        run_firsts = np.flatnonzero(np.diff(indices) != 1) + 1
        bounds = [0, *run_firsts.tolist(), len(indices)]
        for first, stop in zip(bounds[:-1], bounds[1:]):
            self.fill_untouched(int(indices[first]))
            chunk = view[int(offsets[first]) : int(offsets[stop])]
            _durable.pwrite_all(self.fd, chunk, self.pos)
            self.pos += len(chunk)
            self.next_block = int(indices[stop - 1]) + 1
        self.lengths[indices] = lengths
        self.encoded += len(indices)

    def complete(self) -> None:
        """Write the untouched blocks after the last touched one, the header and the jump table."""
        self.fill_untouched(self.layout.num_blocks)
        ends = _codec.block_ends(self.lengths, self.layout.data_offset)
        _durable.pwrite_all(self.fd, self.layout.file_header().pack() + ends.astype("<u8").tobytes(), 0)

    def commit(self) -> WriteStats:
        """fsync the complete new file (unless fsync is off) and rename it over the old one
        (the caller fsyncs the folder, once for all files of a call)."""
        self.file.commit(sync_folder=False)
        return WriteStats(self.path, self.encoded, tuple(self.merged), self.copied, self.pos)

    def abort(self) -> None:
        self.file.abort()


def _encode_task(
    new: _NewFile, pieces: np.ndarray, src: np.ndarray
) -> Callable[[], tuple[_NewFile, np.ndarray, bytearray, np.ndarray]]:
    layout = new.layout
    old = new.old

    def run() -> tuple[_NewFile, np.ndarray, bytearray, np.ndarray]:
        k = len(pieces)
        merging = np.flatnonzero(pieces[:, P_FULL] == 0)
        old_starts = np.zeros(k, dtype=np.int64)
        old_lengths = np.zeros(k, dtype=np.int64)  # 0: merge into zeros
        stored: bytes | bytearray = b""
        if old is not None and len(merging):
            stored, starts, lengths = old.read_runs(pieces[merging, P_INDEX])
            old_starts[merging] = starts
            old_lengths[merging] = lengths
        out = bytearray(k * _codec.compress_bound(layout.block_bytes))
        out_lengths = np.zeros(k, dtype=np.int64)
        bad, error = _codec.encode_pieces(
            src, pieces, layout.block_len, stored, old_starts, old_lengths,
            layout.block_type, new.level, out, out_lengths,
        )
        if bad >= 0:
            index = int(pieces[bad, P_INDEX])
            if error == _codec.ERR_DECODE:
                raise CorruptFileError(
                    f"{new.path}: block {index} ({int(old_lengths[bad])} compressed bytes) does "
                    f"not decode to {layout.block_bytes} bytes"
                )
            raise RuntimeError(f"LZ4 could not encode block {index} of {new.path}")
        return new, pieces[:, P_INDEX], out, out_lengths

    return run


def write_boxes(
    header: Any,
    boxes: Iterable[tuple[str | os.PathLike, Sequence[int], np.ndarray]],
    level: int = LIBWKW_LZ4HC_LEVEL,
    threads: int | None = None,
) -> list[WriteStats]:
    """Store each ``data`` of ``(path, file_local_offset, data)`` in its file.

    Block-granular read-modify-write, per file: blocks a box covers completely are
    encoded from ``data``; blocks it covers partly are decoded (zeros when the file
    does not exist), merged and re-encoded; every other block's compressed bytes are
    copied as they are. Each new file is written beside the old one and renamed into
    place (atomic per file). Blocks of all files are encoded on the codec threads
    while the calling thread writes the finished ones out in order; memory stays
    bounded by a few tasks' blocks per thread. Returns what was done to each file, in
    the order of ``boxes`` (boxes that touch no block are left out).
    """
    layout = as_layout(header)
    level = _check_level(layout.block_type, level)
    threads = _check_threads(threads)
    jobs = []
    seen: set[str] = set()
    for path, offset, data in boxes:
        path = os.fspath(path)
        if path in seen:
            raise ValueError(f"{path} appears twice in one write")
        seen.add(path)
        _check_array(layout, data, "data")
        offset, size = _check_box(layout, offset, data.shape[1:])
        pieces = _pieces(layout, offset, size)
        if len(pieces):
            jobs.append((path, pieces, data))
    total_blocks = sum(len(p) for _, p, _ in jobs)
    if total_blocks * layout.block_bytes < SMALL_WORK_BYTES:
        threads = 1
    per_task = _blocks_per_task(total_blocks, layout.block_bytes, threads)
    opened: list[_NewFile] = []
    remaining: dict[_NewFile, int] = {}  # tasks of each file not yet written out
    # each file is locked from before its old version is read until its new one is renamed
    # into place; files are taken in the locks' global order, so two writers never deadlock
    given = {path: i for i, (path, _, _) in enumerate(jobs)}
    locks = _durable.Locks(given)
    rank = {path: i for i, path in enumerate(locks.order)}
    jobs.sort(key=lambda job: rank[job[0]])

    def tasks() -> Iterator[Callable[[], Any]]:
        for path, pieces, data in jobs:
            locks.acquire(path)  # _NewFile then removes a dead writer's temporary files of path
            old = None
            if len(pieces) < layout.num_blocks or not pieces[:, P_FULL].all():
                try:
                    old = CompressedFile.open(path, layout)
                except FileNotFoundError:
                    pass
            try:
                new = _NewFile(path, layout, old, level)
            except BaseException:
                if old is not None:
                    old.close()
                raise
            opened.append(new)
            if old is not None:
                new.merged = pieces[pieces[:, P_FULL] == 0, P_INDEX].tolist()
            parts = _split(pieces, per_task)
            remaining[new] = len(parts)
            for part in parts:
                yield _encode_task(new, part, data)

    def commit(new: _NewFile) -> WriteStats:
        stats = new.commit()
        locks.release(new.path)
        return stats

    # with fsync on, a finished file is fsynced and renamed on a thread of its own while
    # the next files are encoded and written (the disk flush overlaps the encoding)
    committer = ThreadPoolExecutor(1, thread_name_prefix="wkview-commit") if fsync_enabled() and len(jobs) > 1 else None
    pending: list[Future[WriteStats]] = []
    stats: list[WriteStats] = []
    try:
        # closing(): every task has ended before a failure closes the files they read
        with contextlib.closing(_in_order(tasks(), threads)) as results:
            for new, indices, encoded, lengths in results:
                new.append(indices, encoded, lengths)
                remaining[new] -= 1
                if remaining[new] == 0:
                    new.complete()
                    if new.old is not None:
                        new.old.close()
                    if committer is not None:
                        pending.append(committer.submit(commit, new))
                    else:
                        stats.append(commit(new))
        for future in pending:
            stats.append(future.result())
        for folder in sorted({os.path.dirname(s.path) or "." for s in stats}):
            _durable.fsync_folder(folder)
    except BaseException as exc:
        for future in pending:  # no commit may still use a file that is aborted below
            with contextlib.suppress(BaseException):
                future.result()
        for new in opened:
            new.abort()
            if new.old is not None:
                new.old.close()
        locks.close()
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise _durable.disk_full_error(exc, locks.order) from exc
        raise
    finally:
        if committer is not None:
            committer.shutdown(wait=True)
    locks.close()
    stats.sort(key=lambda s: given[s.path])  # in the order of the boxes, not of the locks
    return stats


def write_box(
    path: str | os.PathLike,
    header: Any,
    local_offset: Sequence[int],
    data: np.ndarray,
    level: int = LIBWKW_LZ4HC_LEVEL,
    threads: int | None = None,
) -> WriteStats | None:
    """Store ``data`` (``(channels, x, y, z)``) at ``local_offset`` of one file; see
    :func:`write_boxes`. Returns what was done (None for an empty box)."""
    stats = write_boxes(header, [(path, local_offset, data)], level, threads)
    return stats[0] if stats else None


def write_full_file(
    path: str | os.PathLike,
    header: Any,
    data: np.ndarray,
    level: int = LIBWKW_LZ4HC_LEVEL,
    threads: int | None = None,
) -> WriteStats | None:
    """Write a whole file (``data`` of shape ``(channels, E, E, E)``), replacing any old one."""
    layout = as_layout(header)
    _check_array(layout, data, "data")
    if tuple(data.shape[1:]) != (layout.edge,) * 3:
        raise ValueError(f"data has shape {data.shape[1:]}, a file holds {(layout.edge,) * 3}")
    return write_box(path, layout, (0, 0, 0), data, level, threads)

"""wkview's own codec for compressed WKW files (block types 2 LZ4 and 3 LZ4HC).

Reads and writes single data files, byte-compatible with libwkw: a 16-byte header,
a jump table of ``file_len**3`` uint64 block end offsets, then the blocks in Morton
order, each an independent raw LZ4 block (no size prefix) of one ``block_len**3``
Fortran-ordered voxel cube with the channels interleaved.

Unlike libwkw, writes need not cover whole files: :func:`write_box` re-encodes only
the blocks a box touches and copies the compressed bytes of every other block as
they are. Reads decode only the blocks a box touches. Both decode / encode blocks
on a thread pool (``lz4`` releases the GIL while it (de)compresses, the byte movers
in ``wkview._codec`` release it while copying), in batches of bounded size.

Arrays are ``(channels, x, y, z)``, any memory layout; coordinates are local to the
file (``0 <= c < file_len * block_len``).
"""

from __future__ import annotations

import contextlib
import os
import struct
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import lz4.block
import numpy as np

from . import _codec
from .errors import CorruptFileError

__all__ = [
    "FileHeader",
    "CompressedFile",
    "parse_header",
    "read_jump_table",
    "decode_block",
    "encode_block",
    "read_box",
    "write_box",
    "write_full_file",
    "BLOCK_TYPE_RAW",
    "BLOCK_TYPE_LZ4",
    "BLOCK_TYPE_LZ4HC",
    "LIBWKW_LZ4HC_LEVEL",
]

BLOCK_TYPE_RAW = 1
BLOCK_TYPE_LZ4 = 2
BLOCK_TYPE_LZ4HC = 3
COMPRESSED_BLOCK_TYPES = (BLOCK_TYPE_LZ4, BLOCK_TYPE_LZ4HC)

#: The LZ4HC level libwkw writes with: encoding at this level gives byte-identical blocks.
LIBWKW_LZ4HC_LEVEL = 9

#: voxel type codes of the header (libwkw's order, 1-based).
VOXEL_TYPES = tuple(
    np.dtype(t)
    for t in ("u1", "<u2", "<u4", "<u8", "<f4", "<f8", "i1", "<i2", "<i4", "<i8")
)

HEADER_SIZE = 16
_HEADER = struct.Struct("<3sBBBBBQ")  # magic, version, lens, block type, voxel type, voxel size, data offset

#: raw bytes of blocks processed per batch: bounds the memory of reads and writes
BATCH_BYTES = 32 << 20

#: chunk of a plain copy of unchanged blocks when copy_file_range is not available
COPY_CHUNK = 8 << 20


def _read_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


#: new files get the mode open() would give them (mkstemp makes them 0600)
_FILE_MODE = 0o666 & ~_read_umask()


def _lz4_bound(n: int) -> int:
    return n + n // 255 + 16  # LZ4_COMPRESSBOUND


# -- headers -------------------------------------------------------------------------


@dataclass(frozen=True)
class FileHeader:
    """The parsed 16-byte header of a WKW file."""

    block_len: int
    file_len: int
    block_type: int
    voxel_type: int  # code 1..10, see VOXEL_TYPES
    voxel_size: int  # bytes per voxel (all channels)
    data_offset: int

    @property
    def dtype(self) -> np.dtype:
        return VOXEL_TYPES[self.voxel_type - 1]

    @property
    def num_channels(self) -> int:
        return self.voxel_size // self.dtype.itemsize

    @property
    def num_blocks(self) -> int:
        return self.file_len**3

    def pack(self) -> bytes:
        lens = (self.block_len.bit_length() - 1) | ((self.file_len.bit_length() - 1) << 4)
        return _HEADER.pack(
            b"WKW", 1, lens, self.block_type, self.voxel_type, self.voxel_size, self.data_offset
        )


def parse_header(raw: bytes, path: str) -> FileHeader:
    """Parse and check a 16-byte WKW header; :class:`CorruptFileError` names ``path``."""
    if len(raw) < HEADER_SIZE:
        raise CorruptFileError(
            f"{path} is not a valid WKW file: {len(raw)} bytes, shorter than the "
            f"{HEADER_SIZE}-byte header (empty or truncated file)"
        )
    magic, version, lens, block_type, voxel_type, voxel_size, data_offset = _HEADER.unpack(
        bytes(raw[:HEADER_SIZE])
    )
    if magic != b"WKW" or version != 1:
        raise CorruptFileError(f"{path} is not a WKW file (magic {magic!r}, version {version})")
    log_block, log_file = lens & 0x0F, lens >> 4
    if log_block > 10 or log_file > 10:
        raise CorruptFileError(
            f"{path} has an invalid header: block_len 2**{log_block}, file_len 2**{log_file}"
        )
    if block_type not in (BLOCK_TYPE_RAW, BLOCK_TYPE_LZ4, BLOCK_TYPE_LZ4HC):
        raise CorruptFileError(f"{path} has an unknown block type {block_type}")
    if not 1 <= voxel_type <= len(VOXEL_TYPES):
        raise CorruptFileError(f"{path} has an unknown voxel type {voxel_type}")
    itemsize = VOXEL_TYPES[voxel_type - 1].itemsize
    if voxel_size == 0 or voxel_size % itemsize:
        raise CorruptFileError(
            f"{path} has an invalid header: voxel size {voxel_size} for voxel type "
            f"{VOXEL_TYPES[voxel_type - 1]}"
        )
    return FileHeader(1 << log_block, 1 << log_file, block_type, voxel_type, voxel_size, data_offset)


@dataclass(frozen=True)
class _Layout:
    """What a codec call needs to know of a mag's header."""

    block_len: int
    file_len: int
    block_type: int
    dtype: np.dtype
    channels: int

    @property
    def itemsize(self) -> int:
        return self.dtype.itemsize

    @property
    def voxel_size(self) -> int:
        return self.channels * self.dtype.itemsize

    @property
    def block_bytes(self) -> int:
        return self.block_len**3 * self.voxel_size

    @property
    def num_blocks(self) -> int:
        return self.file_len**3

    @property
    def edge(self) -> int:
        return self.block_len * self.file_len

    @property
    def data_offset(self) -> int:
        return HEADER_SIZE + 8 * self.num_blocks

    def file_header(self) -> FileHeader:
        return FileHeader(
            self.block_len,
            self.file_len,
            self.block_type,
            VOXEL_TYPES.index(self.dtype) + 1,
            self.voxel_size,
            self.data_offset,
        )


def _layout(header: Any) -> _Layout:
    """Normalise a :class:`FileHeader`, a ``wkw.Header`` or a :class:`_Layout`."""
    if isinstance(header, _Layout):
        return header
    if isinstance(header, FileHeader):
        layout = _Layout(header.block_len, header.file_len, header.block_type, header.dtype, header.num_channels)
    else:
        dtype = np.dtype(header.voxel_type).newbyteorder("<")
        layout = _Layout(
            int(header.block_len), int(header.file_len), int(header.block_type), dtype, int(header.num_channels)
        )
    if layout.dtype not in VOXEL_TYPES:
        raise ValueError(f"WKW stores no voxel type {layout.dtype}")
    for name in ("block_len", "file_len"):
        value = getattr(layout, name)
        if value < 1 or value & (value - 1) or value > 1024:
            raise ValueError(f"{name} must be a power of two <= 1024, got {value}")
    if layout.channels < 1 or layout.voxel_size > 255:
        raise ValueError(f"invalid channel count {layout.channels} for {layout.dtype}")
    if layout.block_type not in COMPRESSED_BLOCK_TYPES:
        raise ValueError(
            f"the codec handles block types 2 (LZ4) and 3 (LZ4HC), not {layout.block_type}"
        )
    return layout


def _check_matches(found: FileHeader, layout: _Layout, path: str) -> None:
    if (
        found.block_len != layout.block_len
        or found.file_len != layout.file_len
        or found.dtype != layout.dtype
        or found.voxel_size != layout.voxel_size
    ):
        raise CorruptFileError(
            f"{path} does not match the mag's header.wkw: block_len {found.block_len}, "
            f"file_len {found.file_len}, voxel type {found.dtype}, voxel size "
            f"{found.voxel_size} (expected {layout.block_len}, {layout.file_len}, "
            f"{layout.dtype}, {layout.voxel_size})"
        )
    if found.block_type not in COMPRESSED_BLOCK_TYPES:
        raise CorruptFileError(
            f"{path} has block type {found.block_type}, the mag stores compressed (LZ4) files"
        )


def _pread_exact(fd: int, n: int, offset: int, path: str) -> bytes:
    data = os.pread(fd, n, offset)
    while len(data) < n:  # pread may return short on some file systems
        more = os.pread(fd, n - len(data), offset + len(data))
        if not more:
            raise CorruptFileError(
                f"{path} is truncated: could not read {n} bytes at byte {offset}"
            )
        data += more
    return data


def read_jump_table(f: Any, header: FileHeader, path: str, file_size: int) -> np.ndarray:
    """Read and validate the jump table: ``uint64[N]``, the end offset of every block.

    ``f`` is a binary file object or an int file descriptor. The first block must start
    after the table, every block must be 1 to LZ4_COMPRESSBOUND(block bytes) long, and
    the last one must end at ``file_size``; :class:`CorruptFileError` otherwise.
    """
    n = header.num_blocks
    table_end = HEADER_SIZE + 8 * n
    if file_size < table_end:
        raise CorruptFileError(
            f"{path} is truncated: {file_size} bytes, shorter than its jump table ({table_end} bytes)"
        )
    if header.data_offset < table_end:
        raise CorruptFileError(
            f"{path} is damaged: data offset {header.data_offset} lies inside the jump table "
            f"(which ends at byte {table_end})"
        )
    if isinstance(f, int):
        raw = _pread_exact(f, 8 * n, HEADER_SIZE, path)
    else:
        f.seek(HEADER_SIZE)
        raw = f.read(8 * n)
        if len(raw) != 8 * n:
            raise CorruptFileError(f"{path} is truncated inside its jump table")
    ends = np.frombuffer(raw, dtype="<u8").astype(np.uint64)
    block_bytes = header.block_len**3 * header.voxel_size
    bad = _codec.check_ends(ends, header.data_offset, file_size, _lz4_bound(block_bytes))
    if bad >= 0:
        start = header.data_offset if bad == 0 else int(ends[bad - 1])
        raise CorruptFileError(
            f"{path} has a damaged jump table: block {bad} spans bytes {start} to "
            f"{int(ends[bad])} (file of {file_size} bytes, blocks of at most "
            f"{_lz4_bound(block_bytes)} compressed bytes)"
        )
    if n and int(ends[-1]) != file_size:
        raise CorruptFileError(
            f"{path} is truncated or damaged: the jump table ends the last block at "
            f"byte {int(ends[-1])}, the file has {file_size} bytes"
        )
    return ends


# -- blocks ----------------------------------------------------------------------------


def decode_block(compressed: bytes | memoryview, block_bytes: int, path: str, index: int) -> bytes:
    """Decode one LZ4 block, which must give exactly ``block_bytes`` bytes."""
    if len(compressed) == 0:
        raise CorruptFileError(f"{path}: block {index} is empty")
    try:
        raw = lz4.block.decompress(compressed, uncompressed_size=block_bytes)
    except lz4.block.LZ4BlockError as exc:
        raise CorruptFileError(
            f"{path}: block {index} ({len(compressed)} compressed bytes) does not decode "
            f"to {block_bytes} bytes: {exc}"
        ) from None
    if len(raw) != block_bytes:
        raise CorruptFileError(
            f"{path}: block {index} decodes to {len(raw)} bytes, expected {block_bytes}"
        )
    return raw


def encode_block(raw: bytes | bytearray | memoryview, block_type: int, level: int = LIBWKW_LZ4HC_LEVEL) -> bytes:
    """Encode one decoded block as a raw LZ4 block (no size prefix).

    Block type 3 (LZ4HC) uses ``level`` (1..12; 9 gives libwkw's exact bytes); block
    type 2 (LZ4) uses the fast compressor and ignores ``level``.
    """
    if block_type == BLOCK_TYPE_LZ4HC:
        if isinstance(level, bool) or not isinstance(level, (int, np.integer)) or not 1 <= level <= 12:
            raise ValueError(f"LZ4HC level must be an int in 1..12, got {level!r}")
        return lz4.block.compress(raw, mode="high_compression", compression=int(level), store_size=False)
    if block_type == BLOCK_TYPE_LZ4:
        return lz4.block.compress(raw, mode="default", store_size=False)
    raise ValueError(f"block type must be 2 (LZ4) or 3 (LZ4HC), got {block_type!r}")


# -- the thread pool -------------------------------------------------------------------
# Its own pool, not the one of wkview._storage: the storage pool runs one task per file,
# and a file task waiting on blocks queued behind other file tasks would deadlock.
# Block tasks never wait on anything.

_pool_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_pool_pid = -1


def _default_threads() -> int:
    from ._storage import get_io_threads  # late: _storage may import this module

    return get_io_threads()


def _get_pool(threads: int) -> ThreadPoolExecutor:
    global _pool, _pool_size, _pool_pid
    with _pool_lock:
        if _pool is None or _pool_pid != os.getpid() or _pool_size < threads:
            # a smaller old pool is dropped, not shut down: a call may still be submitting
            # to it; its idle threads end when it is garbage collected
            _pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="wkview-codec")
            _pool_size, _pool_pid = threads, os.getpid()
        return _pool


def _check_threads(threads: int | None) -> int:
    if threads is None:
        return _default_threads()
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive int or None, got {threads!r}")
    return threads


def _map_chunks(fn: Callable[[Sequence[Any]], list[Any]], items: Sequence[Any], threads: int) -> list[Any]:
    """``fn`` over ``threads`` contiguous chunks of ``items``; results concatenated in order."""
    if threads == 1 or len(items) < 2:
        return fn(items)
    pieces = min(threads, len(items))
    bounds = [len(items) * k // pieces for k in range(pieces + 1)]
    chunks = [items[bounds[k] : bounds[k + 1]] for k in range(pieces)]
    pool = _get_pool(threads)
    futures = [pool.submit(fn, chunk) for chunk in chunks]
    out: list[Any] = []
    error: BaseException | None = None
    for future in futures:  # wait for every task before raising
        try:
            result = future.result()
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            error = error or exc
            continue
        out.extend(result)
    if error is not None:
        raise error
    return out


# -- geometry of one file ----------------------------------------------------------------

_morton_cache: dict[int, np.ndarray] = {}


def _block_coords(file_len: int) -> np.ndarray:
    """``int64[N, 3]`` block coordinates in Morton order (cached per file_len)."""
    coords = _morton_cache.get(file_len)
    if coords is None:
        coords = _codec.morton_coords(file_len**3)
        coords.setflags(write=False)
        _morton_cache[file_len] = coords
    return coords


@dataclass(frozen=True)
class _Piece:
    """The part of block ``index`` inside a box: block-local ``lo``, array-local ``at``, ``size``."""

    index: int
    lo: tuple[int, int, int]
    at: tuple[int, int, int]
    size: tuple[int, int, int]
    full: bool


def _pieces(layout: _Layout, offset: Sequence[int], size: Sequence[int]) -> list[_Piece]:
    """Blocks a box (file-local) touches, in Morton order, with the part inside the box.

    Only the touched block range is visited (per axis, then combined), so a small box
    costs a few blocks' work, not a scan of every block of the file.
    """
    B = layout.block_len
    if any(s <= 0 for s in size):
        return []
    axes = []
    for a in range(3):
        o, n = offset[a], size[a]
        runs = []
        for b in range(o // B, (o + n - 1) // B + 1):
            start = max(b * B, o)
            stop = min(b * B + B, o + n)
            runs.append((b, start - b * B, start - o, stop - start))
        axes.append(runs)
    encode = _codec.morton_encode
    pieces = []
    for bx, lx, ax, sx in axes[0]:
        for by, ly, ay, sy in axes[1]:
            for bz, lz, az, sz in axes[2]:
                pieces.append(
                    _Piece(encode(bx, by, bz), (lx, ly, lz), (ax, ay, az), (sx, sy, sz), sx == sy == sz == B)
                )
    pieces.sort(key=lambda p: p.index)
    return pieces


def _byte_view(array: np.ndarray) -> np.ndarray:
    """``(channels, x, y, z, itemsize)`` uint8 view of a ``(channels, x, y, z)`` array."""
    return np.lib.stride_tricks.as_strided(
        array[..., None].view(np.uint8),
        shape=(*array.shape, array.dtype.itemsize),
        strides=(*array.strides, 1),
        writeable=array.flags.writeable,
    )


def _check_box(layout: _Layout, offset: Sequence[int], size: Sequence[int]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    offset = tuple(int(v) for v in offset)
    size = tuple(int(v) for v in size)
    if len(offset) != 3 or len(size) != 3:
        raise ValueError(f"offset and size must have 3 entries, got {offset}, {size}")
    edge = layout.edge
    if any(o < 0 or s < 0 or o + s > edge for o, s in zip(offset, size)):
        raise ValueError(f"box at {offset} of size {size} exceeds the file of edge {edge}")
    return offset, size


def _check_array(layout: _Layout, array: np.ndarray, name: str) -> None:
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
        self.size = size
        self._fd = fd

    @classmethod
    def open(cls, path: str | os.PathLike, expected: Any) -> "CompressedFile":
        """Open ``path`` and check it against ``expected`` (a :class:`FileHeader` or ``wkw.Header``)."""
        path = os.fspath(path)
        layout = _layout(expected)
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        try:
            size = os.fstat(fd).st_size
            header = parse_header(os.pread(fd, HEADER_SIZE, 0), path)
            _check_matches(header, layout, path)
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
        start = self.header.data_offset if index == 0 else int(self.ends[index - 1])
        return start, int(self.ends[index])

    def read_blocks(self, block_indices: Sequence[int]) -> dict[int, bytes]:
        """Compressed bytes of the given blocks, one ``pread`` per run of consecutive indices."""
        indices = sorted({int(i) for i in block_indices})
        n = self.header.num_blocks
        if indices and (indices[0] < 0 or indices[-1] >= n):
            raise ValueError(f"block indices must lie in 0..{n - 1}, got {indices[0]}..{indices[-1]}")
        out: dict[int, bytes] = {}
        i = 0
        while i < len(indices):
            j = i
            while j + 1 < len(indices) and indices[j + 1] == indices[j] + 1:
                j += 1
            run_start = self.block_range(indices[i])[0]
            run_end = int(self.ends[indices[j]])
            data = memoryview(_pread_exact(self.fd, run_end - run_start, run_start, self.path))
            for index in indices[i : j + 1]:
                start, end = self.block_range(index)
                out[index] = bytes(data[start - run_start : end - run_start])
            i = j + 1
        return out

    def __repr__(self) -> str:
        return f"CompressedFile({self.path!r}, {self.header.num_blocks} blocks, {self.size} bytes)"


#: boxes touching fewer decoded bytes than this are decoded on the calling thread
SMALL_READ_BYTES = 1 << 20


def _batches(pieces: list[_Piece], per_batch: int) -> Iterator[list[_Piece]]:
    for k in range(0, len(pieces), per_batch):
        yield pieces[k : k + per_batch]


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

    Decodes only the blocks the box touches; zeros when the file does not exist.
    Raises :class:`CorruptFileError` for a damaged file. ``opened``: the file,
    already opened (its parsed jump table is reused; it is not closed here).
    """
    layout = _layout(header)
    offset, size = _check_box(layout, file_offset_in_file, size)
    _check_array(layout, out, "out")
    if tuple(out.shape[1:]) != size:
        raise ValueError(f"out has shape {out.shape[1:]}, the box has size {size}")
    if not out.flags.writeable:
        raise ValueError("out is read-only")
    threads = _check_threads(threads)
    path = os.fspath(path)
    if opened is not None:
        f = opened
    else:
        try:
            f = CompressedFile.open(path, layout)
        except FileNotFoundError:
            out[...] = 0
            return
    with contextlib.nullcontext() if opened is not None else f:
        pieces = _pieces(layout, offset, size)
        if len(pieces) * layout.block_bytes < SMALL_READ_BYTES:
            threads = 1  # a few blocks: handing them to the pool costs more than decoding
        if not pieces:
            return
        dst = _byte_view(out)
        B = layout.block_len
        block_bytes = layout.block_bytes

        def decode(batch: Sequence[tuple[_Piece, bytes]]) -> list[None]:
            for piece, compressed in batch:
                raw = decode_block(compressed, block_bytes, path, piece.index)
                _codec.scatter(raw, B, *piece.lo, dst, *piece.at, *piece.size)
            return []

        for batch in _batches(pieces, max(threads, BATCH_BYTES // block_bytes)):
            blocks = f.read_blocks([p.index for p in batch])
            _map_chunks(decode, [(p, blocks[p.index]) for p in batch], threads)


# -- writing ---------------------------------------------------------------------------


def _copy_range(src_fd: int, dst_fd: int, src_pos: int, dst_pos: int, count: int) -> None:
    """Copy ``count`` bytes between files without holding them in memory."""
    copy_file_range = getattr(os, "copy_file_range", None)
    while count > 0 and copy_file_range is not None:
        try:
            done = copy_file_range(src_fd, dst_fd, count, src_pos, dst_pos)
        except OSError:
            break  # cross-device, unsupported fs, ...: plain copy below
        if done == 0:
            break
        src_pos, dst_pos, count = src_pos + done, dst_pos + done, count - done
    while count > 0:
        chunk = os.pread(src_fd, min(count, COPY_CHUNK), src_pos)
        if not chunk:
            raise CorruptFileError(f"unexpected end of file while copying blocks at byte {src_pos}")
        _pwrite_all(dst_fd, chunk, dst_pos)
        src_pos, dst_pos, count = src_pos + len(chunk), dst_pos + len(chunk), count - len(chunk)


def _pwrite_all(fd: int, data: bytes | memoryview, pos: int) -> None:
    view = memoryview(data)
    while len(view):
        done = os.pwrite(fd, view, pos)
        view, pos = view[done:], pos + done


def write_box(
    path: str | os.PathLike,
    header: Any,
    local_offset: Sequence[int],
    data: np.ndarray,
    level: int = LIBWKW_LZ4HC_LEVEL,
    threads: int | None = None,
) -> None:
    """Store ``data`` (``(channels, x, y, z)``) at ``local_offset`` of one file.

    Block-granular read-modify-write: blocks the box covers completely are encoded
    from ``data``; blocks it covers partly are decoded (zeros when the file does not
    exist), merged and re-encoded; every other block's compressed bytes are copied as
    they are. The new file is written beside the old one and renamed into place.
    """
    layout = _layout(header)
    _check_array(layout, data, "data")
    offset, size = _check_box(layout, local_offset, data.shape[1:])
    threads = _check_threads(threads)
    if layout.block_type == BLOCK_TYPE_LZ4HC:
        encode_block(b"\0", BLOCK_TYPE_LZ4HC, level)  # validates level before any IO
    path = os.fspath(path)
    pieces = _pieces(layout, offset, size)
    if not pieces:
        return
    partial = any(not p.full for p in pieces)
    covers_file = len(pieces) == layout.num_blocks
    old: CompressedFile | None = None
    if not covers_file or partial:
        try:
            old = CompressedFile.open(path, layout)
        except FileNotFoundError:
            old = None
    try:
        _write_file(path, layout, pieces, data, old, level, threads)
    finally:
        if old is not None:
            old.close()


def write_full_file(
    path: str | os.PathLike,
    header: Any,
    data: np.ndarray,
    level: int = LIBWKW_LZ4HC_LEVEL,
    threads: int | None = None,
) -> None:
    """Write a whole file (``data`` of shape ``(channels, E, E, E)``), replacing any old one."""
    layout = _layout(header)
    _check_array(layout, data, "data")
    if tuple(data.shape[1:]) != (layout.edge,) * 3:
        raise ValueError(f"data has shape {data.shape[1:]}, a file holds {(layout.edge,) * 3}")
    write_box(path, layout, (0, 0, 0), data, level, threads)


def _write_file(
    path: str,
    layout: _Layout,
    pieces: list[_Piece],
    data: np.ndarray,
    old: CompressedFile | None,
    level: int,
    threads: int,
) -> None:
    B = layout.block_len
    block_bytes = layout.block_bytes
    block_type = layout.block_type
    src = _byte_view(data)

    def encode(batch: Sequence[tuple[_Piece, bytes | None]]) -> list[bytes]:
        out = []
        buffer = bytearray(block_bytes)
        for piece, stored in batch:
            if piece.full:
                block = buffer
            elif stored is None:
                block = bytearray(block_bytes)
            else:
                block = bytearray(decode_block(stored, block_bytes, path, piece.index))
            _codec.gather(src, *piece.at, block, B, *piece.lo, *piece.size)
            out.append(encode_block(block, block_type, level))
        return out

    n = layout.num_blocks
    lengths = np.zeros(n, dtype=np.uint64)
    zero_block: bytes | None = None
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        os.fchmod(fd, (os.stat(old.fd).st_mode & 0o7777) if old is not None else _FILE_MODE)
        pos = layout.data_offset
        next_block = 0  # first block not yet in the new file

        def fill_untouched(stop: int) -> None:
            # blocks next_block .. stop-1 are not touched by the box: copy or zeros
            nonlocal pos, next_block, zero_block
            if stop <= next_block:
                return
            if old is not None:
                start = old.block_range(next_block)[0]
                end = int(old.ends[stop - 1])
                _copy_range(old.fd, fd, start, pos, end - start)
                starts = np.empty(stop - next_block, dtype=np.uint64)
                starts[0] = start
                starts[1:] = old.ends[next_block : stop - 1]
                lengths[next_block:stop] = old.ends[next_block:stop] - starts
                pos += end - start
            else:
                if zero_block is None:
                    zero_block = encode_block(bytes(block_bytes), block_type, level)
                count = stop - next_block
                lengths[next_block:stop] = len(zero_block)
                per_write = max(1, COPY_CHUNK // len(zero_block))
                while count:
                    k = min(count, per_write)
                    _pwrite_all(fd, zero_block * k, pos)
                    pos += k * len(zero_block)
                    count -= k
            next_block = stop

        for batch in _batches(pieces, max(threads, BATCH_BYTES // block_bytes)):
            need = [p.index for p in batch if not p.full]
            stored = old.read_blocks(need) if old is not None and need else {}
            encoded = _map_chunks(encode, [(p, stored.get(p.index)) for p in batch], threads)
            run: list[bytes] = []
            for piece, blob in zip(batch, encoded):
                if piece.index != next_block:
                    if run:
                        joined = b"".join(run)
                        _pwrite_all(fd, joined, pos)
                        pos += len(joined)
                        run = []
                    fill_untouched(piece.index)
                run.append(blob)
                lengths[piece.index] = len(blob)
                next_block = piece.index + 1
            if run:
                joined = b"".join(run)
                _pwrite_all(fd, joined, pos)
                pos += len(joined)
        fill_untouched(n)
        ends = _codec.block_ends(lengths, layout.data_offset)
        _pwrite_all(fd, layout.file_header().pack() + ends.astype("<u8").tobytes(), 0)
        os.close(fd)
        fd = -1
        os.replace(tmp, path)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise

"""The WKW file format: the 16-byte header, the layout of a mag's files, the jump table
of compressed files, and the check that a data file is a complete file of its mag.

A WKW data file is a header (magic ``WKW``, version 1, log2 of ``block_len`` and
``file_len``, block type, voxel type, voxel size, data offset), then, for compressed
files (block types 2 LZ4 and 3 LZ4HC), a jump table of ``file_len**3`` uint64 block end
offsets, then the blocks in Morton order. A raw file (block type 1) stores every block
uncompressed, so its size follows from its header. A mag's ``header.wkw`` is such a
header alone. This module only parses and checks; :mod:`wkview.codec` encodes and
decodes blocks, :mod:`wkview._storage` reads and writes boxes.
"""

from __future__ import annotations

import dataclasses
import os
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _codec
from .errors import CorruptFileError

__all__ = [
    "FileHeader",
    "Layout",
    "layout_of",
    "as_layout",
    "mag_header_bytes",
    "parse_header",
    "check_matches",
    "read_jump_table",
    "validate_data_file",
    "lz4_bound",
    "BLOCK_TYPE_RAW",
    "BLOCK_TYPE_LZ4",
    "BLOCK_TYPE_LZ4HC",
    "COMPRESSED_BLOCK_TYPES",
    "VOXEL_TYPES",
    "HEADER_SIZE",
]

BLOCK_TYPE_RAW = 1
BLOCK_TYPE_LZ4 = 2
BLOCK_TYPE_LZ4HC = 3
COMPRESSED_BLOCK_TYPES = (BLOCK_TYPE_LZ4, BLOCK_TYPE_LZ4HC)

#: voxel type codes of the header (libwkw's order, 1-based).
VOXEL_TYPES = tuple(
    np.dtype(t)
    for t in ("u1", "<u2", "<u4", "<u8", "<f4", "<f8", "i1", "<i2", "<i4", "<i8")
)

HEADER_SIZE = 16
_HEADER = struct.Struct("<3sBBBBBQ")  # magic, version, lens, block type, voxel type, voxel size, data offset


def lz4_bound(n: int) -> int:
    """The most bytes LZ4 encodes ``n`` bytes into (``LZ4_COMPRESSBOUND``)."""
    return n + n // 255 + 16


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
class Layout:
    """What a codec call needs to know of a mag's header (see :func:`as_layout`)."""

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


def layout_of(header: Any) -> Layout:
    """The checked :class:`Layout` of a :class:`FileHeader` or a ``wkw.Header`` of any
    block type (a :class:`Layout` is returned as it is)."""
    if isinstance(header, Layout):
        return header
    if isinstance(header, FileHeader):
        layout = Layout(header.block_len, header.file_len, header.block_type, header.dtype, header.num_channels)
    else:
        dtype = np.dtype(header.voxel_type).newbyteorder("<")
        layout = Layout(
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
    return layout


def mag_header_bytes(header: Any) -> bytes:
    """The content of a mag's ``header.wkw`` for ``header`` (a ``wkw.Header``, a
    :class:`FileHeader` or a :class:`Layout`): the 16-byte header with data offset 0,
    byte for byte what libwkw writes."""
    return dataclasses.replace(layout_of(header).file_header(), data_offset=0).pack()


def as_layout(header: Any) -> Layout:
    """The checked :class:`Layout` of a compressed mag, as the codec takes it (a
    :class:`Layout` is returned as it is: callers that run many small reads keep one)."""
    if isinstance(header, Layout):
        return header
    layout = layout_of(header)
    if layout.block_type not in COMPRESSED_BLOCK_TYPES:
        raise ValueError(
            f"the codec handles block types 2 (LZ4) and 3 (LZ4HC), not {layout.block_type}"
        )
    return layout


def check_matches(found: FileHeader, layout: Layout, path: str) -> None:
    """Raise :class:`CorruptFileError` unless the header ``found`` in the data file ``path``
    fits its mag's ``layout``: the same block and file size and voxels, and compressed
    when the mag is (a raw mag's files are read by libwkw, which takes either)."""
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
    if layout.block_type in COMPRESSED_BLOCK_TYPES and found.block_type not in COMPRESSED_BLOCK_TYPES:
        raise CorruptFileError(
            f"{path} has block type {found.block_type}, the mag stores compressed (LZ4) files"
        )


def pread_exact(fd: int, n: int, offset: int, path: str) -> bytes:
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
        raw = pread_exact(f, 8 * n, HEADER_SIZE, path)
    else:
        f.seek(HEADER_SIZE)
        raw = f.read(8 * n)
        if len(raw) != 8 * n:
            raise CorruptFileError(f"{path} is truncated inside its jump table")
    ends = np.frombuffer(raw, dtype="<u8").astype(np.uint64)
    block_bytes = header.block_len**3 * header.voxel_size
    bad = _codec.check_ends(ends, header.data_offset, file_size, lz4_bound(block_bytes))
    if bad >= 0:
        start = header.data_offset if bad == 0 else int(ends[bad - 1])
        raise CorruptFileError(
            f"{path} has a damaged jump table: block {bad} spans bytes {start} to "
            f"{int(ends[bad])} (file of {file_size} bytes, blocks of at most "
            f"{lz4_bound(block_bytes)} compressed bytes)"
        )
    if n and int(ends[-1]) != file_size:
        raise CorruptFileError(
            f"{path} is truncated or damaged: the jump table ends the last block at "
            f"byte {int(ends[-1])}, the file has {file_size} bytes"
        )
    return ends


def validate_data_file(path: str, layout: Layout, file_size: int) -> FileHeader:
    """Raise :class:`CorruptFileError` unless ``path`` (of ``file_size`` bytes) is a
    complete WKW file of the mag of ``layout``; return its header.

    libwkw reads an empty, truncated or garbage file as zeros without an error, so a
    file damaged by a crash would look like valid empty data: every read and partial
    write through libwkw checks its files here first. The check is cheap: the header
    (:func:`parse_header`, :func:`check_matches`), then the size a raw file's header
    implies, or the last jump table entry of a compressed file, which must end the file
    (:func:`read_jump_table` checks every entry when the codec opens a file).
    """
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        found = parse_header(os.pread(fd, HEADER_SIZE, 0), path)
        check_matches(found, layout, path)
        if found.block_type == BLOCK_TYPE_RAW:
            expected = found.data_offset + found.num_blocks * found.block_len**3 * found.voxel_size
            if file_size != expected:
                raise CorruptFileError(
                    f"{path} is truncated or damaged: {file_size} bytes, a raw file of this mag has {expected}"
                )
            return found
        table_end = HEADER_SIZE + 8 * found.num_blocks
        if file_size < table_end:
            raise CorruptFileError(
                f"{path} is truncated: {file_size} bytes, shorter than its jump table ({table_end} bytes)"
            )
        (last_block_end,) = struct.unpack("<Q", pread_exact(fd, 8, table_end - 8, path))
    finally:
        os.close(fd)
    if last_block_end != file_size:
        raise CorruptFileError(
            f"{path} is truncated or damaged: the jump table ends the last block at "
            f"byte {last_block_end}, the file has {file_size} bytes"
        )
    return found

"""The compressions of WKW mags and compressing a mag in place, file by file: the job behind
:meth:`wkview.MagView.compress` and ``wkview compress``.

WKW stores blocks raw (block type 1), LZ4 (2: fast to write, ~270 MB/s per core on
EM-like data, ratio ~1.45) or LZ4HC (3: ~47 MB/s at level 4, ratio ~1.73); libwkw,
webKNOSSOS and wkview decode 2 and 3 alike. :data:`COMPRESSIONS` names them as the
``compression`` arguments and ``--compression`` flags do.

In place, each data file is encoded by wkview's codec on a job and renamed over the
old file (under the file's lock, fsynced), so every file is always whole: either the
old one or the new one, and libwkw and wkview read a mag that holds both.
``header.wkw`` switches (written beside it and renamed) only after the last file. Into a
new mag folder (:func:`compress_into`), the files are written the same way. A
run that was killed, started again, skips the files already encoded and finishes the
job. Raw mags become LZ4 or LZ4HC; LZ4 mags become LZ4HC ("convert fast now, shrink
overnight"); LZ4HC mags are left as they are.
"""

from __future__ import annotations

import functools
import os
from typing import Any, NamedTuple, Optional

import wkw

from . import repair, wkw_format
from ._storage import MagStore, _check_level
from .errors import DatasetError
from .executors import run_jobs

__all__ = [
    "COMPRESSIONS",
    "DEFAULT_COMPRESSION",
    "CompressStats",
    "block_type_name",
    "check_level_for",
    "compression_block_type",
    "compress_in_place",
    "compress_into",
    "compressed_header",
    "DEFAULT_LEVEL",
    "lz4hc_header",
    "needs_compressing",
]

#: LZ4HC level of ``compress`` (wkview's default write level).
DEFAULT_LEVEL = 4

#: The ``compression`` names and the WKW block types they write.
COMPRESSIONS = {"lz4": wkw.Header.BLOCK_TYPE_LZ4, "lz4hc": wkw.Header.BLOCK_TYPE_LZ4HC}

#: What wkview compresses with unless told otherwise.
DEFAULT_COMPRESSION = "lz4hc"

_BLOCK_TYPE_NAMES = {wkw.Header.BLOCK_TYPE_RAW: "raw", **{t: name for name, t in COMPRESSIONS.items()}}


def block_type_name(block_type: int) -> str:
    """``"raw"``, ``"lz4"`` or ``"lz4hc"`` for a WKW block type (its number for others)."""
    return _BLOCK_TYPE_NAMES.get(int(block_type), str(block_type))


def compression_block_type(compression: str) -> int:
    """The block type of a ``compression`` name ("lz4" or "lz4hc").

    Raises
    ------
    DatasetError
        For another name (the message lists the valid ones).
    """
    if compression not in COMPRESSIONS:
        raise DatasetError(f"compression must be one of {', '.join(map(repr, COMPRESSIONS))}, got {compression!r}")
    return COMPRESSIONS[compression]


def check_level_for(compression: str, level: Optional[int]) -> Optional[int]:
    """``level`` checked for ``compression`` (which is checked too): 1-12 for LZ4HC; LZ4 has no
    level (None only)."""
    block_type = compression_block_type(compression)
    if level is None:
        return None
    if block_type == wkw.Header.BLOCK_TYPE_LZ4:
        raise DatasetError(f"compression 'lz4' has no level (got compression_level={level!r}); levels are for 'lz4hc'")
    return _check_level(level)


def needs_compressing(block_type: int, compression: str) -> bool:
    """Whether a mag (or file) of ``block_type`` is re-encoded when compressing with ``compression``:
    raw always, LZ4 into LZ4HC, never into a weaker or the same compression."""
    target = compression_block_type(compression)
    return block_type == wkw.Header.BLOCK_TYPE_RAW or (block_type == wkw.Header.BLOCK_TYPE_LZ4 and target > block_type)


class CompressStats(NamedTuple):
    """What :func:`compress_in_place` did: files compressed now, bytes before and after."""

    files: int
    bytes_before: int
    bytes_after: int


def compressed_header(header: wkw.Header, compression: str) -> wkw.Header:
    """``header`` with the blocks of ``compression`` ("lz4" or "lz4hc")."""
    return wkw.Header(
        voxel_type=header.voxel_type,
        num_channels=header.num_channels,
        block_len=header.block_len,
        file_len=header.file_len,
        block_type=compression_block_type(compression),
    )


def lz4hc_header(header: wkw.Header) -> wkw.Header:
    """``header`` with LZ4HC blocks."""
    return compressed_header(header, "lz4hc")


def _block_type(path: str) -> int:
    with open(path, "rb") as f:
        return wkw_format.parse_header(f.read(wkw_format.HEADER_SIZE), path).block_type


def _compress_file(raw: MagStore, packed: MagStore, level: int, index: tuple[int, int, int]) -> tuple[int, int]:
    """Replace one file by its encoding in ``packed``'s block type; returns its (bytes before, bytes after)."""
    path = raw.file_path(index)
    before = os.path.getsize(path)
    if _block_type(path) == packed.header.block_type:  # done by an earlier, interrupted run
        return before, before
    edge = raw.file_edge
    offset = (index[0] * edge, index[1] * edge, index[2] * edge)
    packed.write(offset, raw.read(offset, (edge, edge, edge)), level)
    return before, os.path.getsize(packed.file_path(index))


def _encode_files(
    store: MagStore, packed: MagStore, level: int, executor: Any, progress: Optional[bool], desc: str
) -> CompressStats:
    """Encode every data file of ``store`` into ``packed`` (one job per file)."""
    files = store.list_files()
    sizes = run_jobs(
        functools.partial(_compress_file, store, packed, level),
        files,
        executor,
        progress=progress,
        desc=desc,
        unit="file",
        describe=store.file_path,
    )
    return CompressStats(len(files), sum(s[0] for s in sizes), sum(s[1] for s in sizes))


def compress_in_place(
    store: MagStore,
    level: Optional[int] = None,
    executor: Any = None,
    *,
    progress: Optional[bool] = None,
    desc: str = "compress",
    compression: str = DEFAULT_COMPRESSION,
) -> CompressStats:
    """Compress the mag of ``store`` in place with ``compression`` (see the module docstring).

    One job per data file on ``executor`` (None: here); a job holds one file's voxels.
    No other process may write to the mag meanwhile. Returns what was done; a mag
    that needs no compressing (:func:`needs_compressing`) is left as it is.
    ``level`` is LZ4HC's (1-12, default :data:`DEFAULT_LEVEL`); LZ4 takes none.
    """
    checked = check_level_for(compression, level)
    lvl = DEFAULT_LEVEL if checked is None else checked
    if not needs_compressing(store.header.block_type, compression):
        return CompressStats(0, 0, 0)
    repair.remove_stale_temp_files(store.path)  # leftovers of an interrupted run
    packed = MagStore(store.path, compressed_header(store.header, compression), codec="wkview")
    stats = _encode_files(store, packed, lvl, executor, progress, desc)
    store.close()
    MagStore.create(store.path, packed.header)  # header.wkw last, replaced atomically
    return stats


def compress_into(
    store: MagStore,
    target: str | os.PathLike,
    level: Optional[int] = None,
    executor: Any = None,
    *,
    progress: Optional[bool] = None,
    desc: str = "compress",
) -> CompressStats:
    """Write the LZ4HC encoding of the raw mag of ``store`` into the new mag folder ``target``.

    One job per data file, as :func:`compress_in_place`; every file (and ``header.wkw``)
    is written through wkview's durable path: locked, fsynced, renamed into place, with
    the umask's mode. A damaged source file fails its job with a
    :class:`~wkview.CorruptFileError` naming it (raised as a :class:`~wkview.JobError`). ``level``: LZ4HC's (1-12, default :data:`DEFAULT_LEVEL`).
    """
    checked = check_level_for(DEFAULT_COMPRESSION, level)
    lvl = DEFAULT_LEVEL if checked is None else checked
    header = compressed_header(store.header, DEFAULT_COMPRESSION)
    MagStore.create(target, header)
    packed = MagStore(target, header, codec="wkview")
    return _encode_files(store, packed, lvl, executor, progress, desc)

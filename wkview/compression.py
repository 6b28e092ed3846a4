"""Compressing a raw mag in place, file by file: the job behind :meth:`wkview.MagView.compress`
and ``wkview compress``.

Each data file is encoded with LZ4HC by wkview's codec on a job and renamed over the
raw file (under the file's lock, fsynced), so every file is always whole: either the
old raw one or the new compressed one, and libwkw and wkview read a mag that holds
both. ``header.wkw`` switches to LZ4HC (written beside it and renamed) only after the
last file. A run that was killed, started again, skips the files already compressed
and finishes the job.
"""

from __future__ import annotations

import functools
import os
from typing import Any, NamedTuple, Optional

import wkw

from . import repair, wkw_format
from ._storage import MagStore, _check_level
from .executors import run_jobs

__all__ = ["CompressStats", "compress_in_place", "DEFAULT_LEVEL"]

#: LZ4HC level of ``compress`` (wkview's default write level).
DEFAULT_LEVEL = 4


class CompressStats(NamedTuple):
    """What :func:`compress_in_place` did: files compressed now, bytes before and after."""

    files: int
    bytes_before: int
    bytes_after: int


def lz4hc_header(header: wkw.Header) -> wkw.Header:
    """``header`` with LZ4HC blocks."""
    return wkw.Header(
        voxel_type=header.voxel_type,
        num_channels=header.num_channels,
        block_len=header.block_len,
        file_len=header.file_len,
        block_type=wkw.Header.BLOCK_TYPE_LZ4HC,
    )


def _block_type(path: str) -> int:
    with open(path, "rb") as f:
        return wkw_format.parse_header(f.read(wkw_format.HEADER_SIZE), path).block_type


def _compress_file(raw: MagStore, packed: MagStore, level: int, index: tuple[int, int, int]) -> tuple[int, int]:
    """Replace one raw file by its LZ4HC encoding; returns its (bytes before, bytes after)."""
    path = raw.file_path(index)
    before = os.path.getsize(path)
    if _block_type(path) != wkw.Header.BLOCK_TYPE_RAW:  # done by an earlier, interrupted run
        return before, before
    edge = raw.file_edge
    offset = (index[0] * edge, index[1] * edge, index[2] * edge)
    packed.write(offset, raw.read(offset, (edge, edge, edge)), level)
    return before, os.path.getsize(path)


def compress_in_place(
    store: MagStore,
    level: Optional[int] = None,
    executor: Any = None,
    *,
    progress: Optional[bool] = None,
    desc: str = "compress",
) -> CompressStats:
    """Compress the raw mag of ``store`` in place (see the module docstring).

    One job per data file on ``executor`` (None: here); a job holds one file's voxels.
    No other process may write to the mag meanwhile. Returns what was done; a mag
    that is compressed already is left as it is.
    """
    lvl = DEFAULT_LEVEL if level is None else _check_level(level)
    if store.is_compressed:
        return CompressStats(0, 0, 0)
    repair.remove_stale_temp_files(store.path)  # leftovers of an interrupted run
    packed = MagStore(store.path, lz4hc_header(store.header), codec="wkview")
    files = store.list_files()
    sizes = run_jobs(
        functools.partial(_compress_file, store, packed, lvl),
        files,
        executor,
        progress=progress,
        desc=desc,
        unit="file",
        describe=store.file_path,
    )
    store.close()
    MagStore.create(store.path, packed.header)  # header.wkw last, replaced atomically
    return CompressStats(len(files), sum(s[0] for s in sizes), sum(s[1] for s in sizes))

"""Job functions for chunked-processing tests (importable by worker processes)."""

from __future__ import annotations

import numpy as np


def increment_chunk(args):
    """Read-modify-write: add 1 to every voxel of the chunk."""
    view, _ = args
    data = view.read()
    view.write(data + np.ones_like(data))


def chunk_volume(view):
    return int(np.prod(view.size))


def downsample_pair(args):
    """2x max-pool the source chunk into the target chunk."""
    source, target, _ = args
    data = source.read()[0]
    sx, sy, sz = data.shape
    pooled = data.reshape(sx // 2, 2, sy // 2, 2, sz // 2, 2).max(axis=(1, 3, 5))
    target.write(pooled)


def fail_pair(args):
    raise AssertionError("must not run")


def fail_on_chunk(view):
    if view.global_offset == (16, 0, 0):
        raise ValueError("boom in the job")
    return 1


def advanced_chunk_job(args, some_parameter):
    """The seed's for_each_chunk example job, with a visible effect."""
    view_of_single_chunk, _ = args
    data = view_of_single_chunk.read()
    view_of_single_chunk.write(data + np.uint8(some_parameter))


def chunk_stats(view):
    """(voxel count, sum, max) of a chunk."""
    data = view.read()
    return int(data.size), int(data.sum(dtype=np.uint64)), int(data.max())


def raise_in_second_file(args):
    view, _ = args
    if view.global_offset[0] >= 64:
        raise ValueError(f"job failed on purpose at {tuple(view.global_offset)}")

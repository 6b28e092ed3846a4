"""Downsampling kernels and the chunk job that writes a coarser mag.

The pooling functions reduce every ``fx * fy * fz`` block of voxels to one
voxel. They are pure NumPy on in-memory arrays; the job around them reads a
source chunk, pools it and writes the target chunk, file by file.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["INTERPOLATION_MODES", "pool", "default_mode"]


def _blocks(data: np.ndarray, factors: tuple[int, int, int]) -> np.ndarray:
    """View ``(C, X, Y, Z)`` as ``(C, X/fx, Y/fy, Z/fz, fx*fy*fz)`` (one copy)."""
    c, x, y, z = data.shape
    fx, fy, fz = factors
    v = data.reshape(c, x // fx, fx, y // fy, fy, z // fz, fz)
    v = v.transpose(0, 1, 3, 5, 2, 4, 6)
    return v.reshape(c, x // fx, y // fy, z // fz, fx * fy * fz)


def _round_to(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if dtype.kind == "f":
        return values.astype(dtype)
    info = np.iinfo(dtype)
    return np.clip(np.rint(values), info.min, info.max).astype(dtype)


def _mean(blocks: np.ndarray, dtype: np.dtype) -> np.ndarray:
    return _round_to(blocks.mean(axis=-1, dtype=np.float64), dtype)


def _median(blocks: np.ndarray, dtype: np.dtype) -> np.ndarray:
    return _round_to(np.median(blocks, axis=-1), dtype)


def _mode(blocks: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Most frequent value per block; ties go to the smallest value."""
    s = np.sort(blocks, axis=-1)
    n = s.shape[-1]
    # run length ending at each position: count equal neighbours from the left
    same = np.concatenate([np.zeros(s.shape[:-1] + (1,), bool), s[..., 1:] == s[..., :-1]], axis=-1)
    run = np.zeros(s.shape, dtype=np.int32)
    run[..., 0] = 1
    for k in range(1, n):
        run[..., k] = np.where(same[..., k], run[..., k - 1] + 1, 1)
    # the first position reaching the maximal run holds the smallest most frequent value
    best = np.argmax(run, axis=-1)
    return np.take_along_axis(s, best[..., None], axis=-1)[..., 0].astype(dtype)


def _nearest(blocks: np.ndarray, dtype: np.dtype) -> np.ndarray:
    return blocks[..., 0].astype(dtype)


def _max(blocks: np.ndarray, dtype: np.dtype) -> np.ndarray:
    return blocks.max(axis=-1).astype(dtype)


def _min(blocks: np.ndarray, dtype: np.dtype) -> np.ndarray:
    return blocks.min(axis=-1).astype(dtype)


INTERPOLATION_MODES: dict[str, Callable[[np.ndarray, np.dtype], np.ndarray]] = {
    "mean": _mean,
    "median": _median,
    "mode": _mode,
    "nearest": _nearest,
    "max": _max,
    "min": _min,
}


def default_mode(category: str) -> str:
    """``"median"`` for color layers, ``"mode"`` for segmentation (as in webknossos)."""
    return "mode" if category == "segmentation" else "median"


def resolve_mode(interpolation_mode: str, category: str) -> str:
    mode = default_mode(category) if interpolation_mode in ("default", None) else str(interpolation_mode).lower()
    if mode not in INTERPOLATION_MODES:
        raise ValueError(
            f"interpolation_mode {interpolation_mode!r} is not supported; choose one of "
            f"{sorted(INTERPOLATION_MODES)} or 'default'"
        )
    return mode


def pool(data: np.ndarray, factors: tuple[int, int, int], mode: str) -> np.ndarray:
    """Reduce every ``factors`` block of ``data`` (``(C, X, Y, Z)``) with ``mode``.

    The spatial shape must be divisible by ``factors``.
    """
    if data.ndim != 4:
        raise ValueError(f"pool needs (channels, x, y, z) data, got shape {data.shape}")
    if any(data.shape[i + 1] % factors[i] for i in range(3)):
        raise ValueError(f"shape {data.shape[1:]} is not divisible by the factors {factors}")
    if mode not in INTERPOLATION_MODES:
        raise ValueError(f"unknown interpolation mode {mode!r}")
    if factors == (1, 1, 1):
        return data.copy()
    if mode in _REDUCTIONS:
        return _REDUCTIONS[mode](data, factors)
    return INTERPOLATION_MODES[mode](_blocks(data, factors), data.dtype)


def _split(data: np.ndarray, factors: tuple[int, int, int]) -> np.ndarray:
    """``(C, X, Y, Z)`` as ``(C, X/fx, fx, Y/fy, fy, Z/fz, fz)`` without copying."""
    c, x, y, z = data.shape
    fx, fy, fz = factors
    return data.reshape(c, x // fx, fx, y // fy, fy, z // fz, fz)


def _terms(data: np.ndarray, factors: tuple[int, int, int]) -> list[np.ndarray]:
    """The ``fx * fy * fz`` strided views whose element-wise combination pools ``data``
    (no copies: each view holds one voxel of every block)."""
    fx, fy, fz = factors
    return [data[:, i::fx, j::fy, k::fz] for k in range(fz) for j in range(fy) for i in range(fx)]


def _fast_mean(data: np.ndarray, factors: tuple[int, int, int]) -> np.ndarray:
    # integer sums are exact; only the (n times smaller) result goes through float
    n = factors[0] * factors[1] * factors[2]
    if data.dtype.kind in "ui" and data.dtype.itemsize <= 2 and n <= 256:
        # element-wise adds of strided views: no block copy, and the ufuncs release the GIL
        terms = _terms(data, factors)
        total = terms[0].astype(np.int32 if data.dtype.kind == "i" else np.uint32)
        for term in terms[1:]:
            np.add(total, term, out=total)
        return _round_to(total / n, data.dtype)
    return _mean(_blocks(data, factors), data.dtype)


def _sort4(v: list[np.ndarray]) -> list[np.ndarray]:
    """Sort four arrays element-wise with the optimal 5-comparator network."""
    a, b, c, d = v
    a, b = np.minimum(a, b), np.maximum(a, b)
    c, d = np.minimum(c, d), np.maximum(c, d)
    a, c = np.minimum(a, c), np.maximum(a, c)
    b, d = np.minimum(b, d), np.maximum(b, d)
    b, c = np.minimum(b, c), np.maximum(b, c)
    return [a, b, c, d]


def _halfway(x: np.ndarray, y: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``rint((x + y) / 2)`` (half to even, as np.rint) in exact integer arithmetic."""
    total = x.astype(np.int64) + y
    half = total >> 1  # floor
    return (half + (total & half & 1)).astype(dtype)


def _fast_median(data: np.ndarray, factors: tuple[int, int, int]) -> np.ndarray:
    """Median of 2, 4 or 8 integers per block with min/max networks; else the block path.

    For n = 8 the two middle values come from two sorted quadruples a, b: the 4th
    smallest is min(b3, max(a0, b2), max(a1, b1), max(a2, b0), a3) and the 5th
    min(max(a0, b3), max(a1, b2), max(a2, b1), max(a3, b0)) (merge of sorted runs).
    """
    n = factors[0] * factors[1] * factors[2]
    dtype = data.dtype
    if dtype.kind not in "ui" or dtype.itemsize > 4 or n not in (2, 4, 8):
        return _median(_blocks(data, factors), dtype)
    t = _terms(data, factors)
    if n == 2:
        return _halfway(t[0], t[1], dtype)
    if n == 4:
        a, b, c, d = t
        low = np.maximum(np.minimum(a, b), np.minimum(c, d))
        high = np.minimum(np.maximum(a, b), np.maximum(c, d))
        return _halfway(low, high, dtype)
    a = _sort4(t[:4])
    b = _sort4(t[4:])
    mn, mx = np.minimum, np.maximum
    fourth = mn(mn(mn(b[3], mx(a[0], b[2])), mn(mx(a[1], b[1]), mx(a[2], b[0]))), a[3])
    fifth = mn(mn(mx(a[0], b[3]), mx(a[1], b[2])), mn(mx(a[2], b[1]), mx(a[3], b[0])))
    return _halfway(fourth, fifth, dtype)


def _fast_max(data: np.ndarray, factors: tuple[int, int, int]) -> np.ndarray:
    return _split(data, factors).max(axis=(2, 4, 6))


def _fast_min(data: np.ndarray, factors: tuple[int, int, int]) -> np.ndarray:
    return _split(data, factors).min(axis=(2, 4, 6))


def _fast_nearest(data: np.ndarray, factors: tuple[int, int, int]) -> np.ndarray:
    fx, fy, fz = factors
    return np.array(data[:, ::fx, ::fy, ::fz], order="F")


_REDUCTIONS = {
    "mean": _fast_mean,
    "median": _fast_median,
    "max": _fast_max,
    "min": _fast_min,
    "nearest": _fast_nearest,
}


class DownsampleJob:
    """The chunk job of :meth:`wkview.Layer.downsample_mag` (picklable).

    Reads the source chunk in slabs of at most ``buffer_edge_len`` target
    voxels per edge, pools each slab and writes the whole target chunk once.
    """

    def __init__(self, factors: tuple[int, int, int], mode: str, buffer_edge_len: int) -> None:
        self.factors = factors
        self.mode = mode
        self.buffer_edge_len = buffer_edge_len

    def __call__(self, args: tuple[Any, Any, int]) -> None:
        source, target, _ = args
        f = self.factors
        size = tuple(target.size)
        out = np.zeros((target.header.num_channels, *size), dtype=target.get_dtype(), order="F")
        step = self.buffer_edge_len
        slabs = [
            (x, y, z)
            for x in range(0, size[0], step)
            for y in range(0, size[1], step)
            for z in range(0, size[2], step)
        ]

        def one(corner: tuple[int, int, int]) -> None:
            x, y, z = corner
            t = (min(step, size[0] - x), min(step, size[1] - y), min(step, size[2] - z))
            src = source.read((x * f[0], y * f[1], z * f[2]), (t[0] * f[0], t[1] * f[1], t[2] * f[2]))
            out[:, x : x + t[0], y : y + t[1], z : z + t[2]] = pool(src, f, self.mode)

        threads = min(len(slabs), _job_threads())
        if threads <= 1:
            for corner in slabs:
                one(corner)
        else:
            # slabs on threads: decoding and the pooling ufuncs release the GIL, so one job
            # (one target file) keeps every core of its worker busy
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=threads) as threads_pool:
                for done in [threads_pool.submit(one, corner) for corner in slabs]:
                    done.result()
        target.write(out)


def _job_threads() -> int:
    """Threads one downsampling job uses: the cores this process may run on."""
    import os

    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1

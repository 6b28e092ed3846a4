"""The resampling kernels of :mod:`wkview.pyramid`: pooling and voxel repetition.

The pooling functions reduce every ``fx * fy * fz`` block of voxels to one
voxel; :func:`upsample_array` repeats every voxel. They are pure NumPy on
in-memory arrays; the chunk jobs around them (reading sources, writing whole
target files) live in :mod:`wkview.pyramid`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["INTERPOLATION_MODES", "pool", "default_mode", "resolve_mode", "upsample_array"]


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


def upsample_array(data: np.ndarray, factors: tuple[int, int, int]) -> np.ndarray:
    """Repeat every voxel of ``(C, X, Y, Z)`` data ``factors`` times along x, y and z."""
    if data.ndim != 4:
        raise ValueError(f"upsample_array needs (channels, x, y, z) data, got shape {data.shape}")
    out = data
    for axis, factor in enumerate(factors, start=1):
        if factor != 1:
            out = np.repeat(out, factor, axis=axis)
    return out

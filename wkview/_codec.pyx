# cython: language_level=3, embedsignature=True
"""Compiled kernels of wkview's WKW block codec.

Byte movers between ``(channels, x, y, z)`` arrays and decoded WKW blocks, Morton
order of the blocks of a file, and jump-table arithmetic. Nothing here touches the
disk or compresses: ``wkview.codec`` validates the arguments, runs LZ4 and does IO.

Arrays are passed as 5-d ``uint8`` views ``(channels, x, y, z, itemsize)`` with any
strides (``wkview.codec`` builds them), so one kernel serves every dtype and layout.
A decoded block is Fortran order: voxel ``x + y*B + z*B*B``, each voxel holding all
channels interleaved (``channels * itemsize`` bytes).
"""

cimport cython
from libc.stdint cimport uint8_t, uint64_t, int64_t
from libc.string cimport memcpy

from ._morton cimport compact_bits, morton3, spread_bits

import numpy as np


# ---------------------------------------------------------------------------
# Morton order (x bit lowest), pure arithmetic


def morton_encode(uint64_t x, uint64_t y, uint64_t z):
    """Morton index of block ``(x, y, z)`` inside a file (each coordinate < 2**21)."""
    if x >= (1 << 21) or y >= (1 << 21) or z >= (1 << 21):
        raise ValueError(f"block coordinates ({x}, {y}, {z}) exceed 2**21")
    return morton3(x, y, z)


def morton_decode(uint64_t index):
    """Block coordinates ``(x, y, z)`` of Morton index ``index``."""
    return (compact_bits(index), compact_bits(index >> 1), compact_bits(index >> 2))


@cython.boundscheck(False)
@cython.wraparound(False)
def morton_coords(Py_ssize_t n):
    """``int64[n, 3]``: the block coordinates of Morton indices ``0 .. n-1``."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    out = np.empty((n, 3), dtype=np.int64)
    cdef int64_t[:, ::1] c = out
    cdef Py_ssize_t i
    with nogil:
        for i in range(n):
            c[i, 0] = <int64_t>compact_bits(<uint64_t>i)
            c[i, 1] = <int64_t>compact_bits(<uint64_t>i >> 1)
            c[i, 2] = <int64_t>compact_bits(<uint64_t>i >> 2)
    return out


# ---------------------------------------------------------------------------
# jump table

@cython.boundscheck(False)
@cython.wraparound(False)
def block_ends(const uint64_t[::1] lengths, uint64_t data_offset):
    """Jump table from block lengths: ``ends[n] = data_offset + sum(lengths[:n+1])``."""
    cdef Py_ssize_t n = lengths.shape[0]
    out = np.empty(n, dtype="<u8")
    cdef uint64_t[::1] e = out
    cdef uint64_t pos = data_offset
    cdef Py_ssize_t i
    with nogil:
        for i in range(n):
            pos += lengths[i]
            e[i] = pos
    return out


@cython.boundscheck(False)
@cython.wraparound(False)
def check_ends(const uint64_t[::1] ends, uint64_t data_offset, uint64_t file_size, uint64_t max_block):
    """Index of the first block whose end is not after its start, whose length exceeds
    ``max_block``, or which ends beyond ``file_size``; ``-1`` when the table is valid
    (the caller checks that the last end equals the file size)."""
    cdef Py_ssize_t n = ends.shape[0]
    cdef Py_ssize_t i
    cdef Py_ssize_t bad = -1
    cdef uint64_t start = data_offset
    with nogil:
        for i in range(n):
            if ends[i] <= start or ends[i] - start > max_block or ends[i] > file_size:
                bad = i
                break
            start = ends[i]
    return bad


# ---------------------------------------------------------------------------
# byte movers

cdef void _copy_box(
    uint8_t* dst, const Py_ssize_t* ds,
    const uint8_t* src, const Py_ssize_t* ss,
    Py_ssize_t channels, Py_ssize_t itemsize,
    Py_ssize_t nx, Py_ssize_t ny, Py_ssize_t nz,
) noexcept nogil:
    # ds / ss: byte strides of (channel, x, y, z); the item bytes are contiguous
    cdef Py_ssize_t vs = channels * itemsize
    cdef Py_ssize_t x, y, z, c
    cdef uint8_t* d
    cdef const uint8_t* s
    cdef bint voxel_contig = ds[0] == itemsize and ss[0] == itemsize
    cdef bint row_contig = voxel_contig and ds[1] == vs and ss[1] == vs
    for z in range(nz):
        for y in range(ny):
            d = dst + z * ds[3] + y * ds[2]
            s = src + z * ss[3] + y * ss[2]
            if row_contig:
                memcpy(d, s, nx * vs)
            elif voxel_contig:
                for x in range(nx):
                    memcpy(d + x * ds[1], s + x * ss[1], vs)
            else:
                for x in range(nx):
                    for c in range(channels):
                        memcpy(d + x * ds[1] + c * ds[0], s + x * ss[1] + c * ss[0], itemsize)


cdef inline void _strides(const Py_ssize_t* shape, const Py_ssize_t* strides, Py_ssize_t* out) noexcept nogil:
    # Buffer exports may give any stride to an axis of length 1 (NumPy does): use the
    # packed one there, so the contiguous fast paths of _copy_box still apply.
    out[0] = strides[0] if shape[0] > 1 else shape[4]
    out[1] = strides[1] if shape[1] > 1 else shape[0] * shape[4]
    out[2] = strides[2]
    out[3] = strides[3]


cdef int _check(
    object array, Py_ssize_t channels, Py_ssize_t itemsize, Py_ssize_t block_bytes,
    Py_ssize_t B, Py_ssize_t ax, Py_ssize_t ay, Py_ssize_t az,
    Py_ssize_t bx, Py_ssize_t by, Py_ssize_t bz,
    Py_ssize_t nx, Py_ssize_t ny, Py_ssize_t nz,
) except -1:
    shape = array.shape
    if channels * itemsize * B * B * B != block_bytes:
        raise ValueError(
            f"block buffer of {block_bytes} bytes does not hold {B}^3 voxels of "
            f"{channels} x {itemsize} bytes"
        )
    if min(ax, ay, az, bx, by, bz, nx, ny, nz) < 0:
        raise ValueError("negative offset or extent")
    if ax + nx > shape[1] or ay + ny > shape[2] or az + nz > shape[3]:
        raise ValueError(
            f"box at ({ax}, {ay}, {az}) of size ({nx}, {ny}, {nz}) exceeds the array "
            f"{tuple(shape[1:4])}"
        )
    if bx + nx > B or by + ny > B or bz + nz > B:
        raise ValueError(
            f"box at ({bx}, {by}, {bz}) of size ({nx}, {ny}, {nz}) exceeds the block edge {B}"
        )
    return 0


cdef inline void _block_strides(
    Py_ssize_t itemsize, Py_ssize_t voxel_size, Py_ssize_t B, Py_ssize_t* bs
) noexcept nogil:
    # byte strides of a decoded block, as (item, x, y, z): Fortran order, channels interleaved
    bs[0] = itemsize
    bs[1] = voxel_size
    bs[2] = voxel_size * B
    bs[3] = voxel_size * B * B


def gather(
    const uint8_t[:, :, :, :, :] src, Py_ssize_t ax, Py_ssize_t ay, Py_ssize_t az,
    uint8_t[::1] block, Py_ssize_t B, Py_ssize_t bx, Py_ssize_t by, Py_ssize_t bz,
    Py_ssize_t nx, Py_ssize_t ny, Py_ssize_t nz,
):
    """Copy ``src[:, ax:ax+nx, ay:ay+ny, az:az+nz]`` into the decoded block at ``(bx, by, bz)``.

    ``src`` is a ``(channels, x, y, z, itemsize)`` uint8 view; ``block`` holds ``B**3``
    voxels. Releases the GIL while copying.
    """
    cdef Py_ssize_t channels = src.shape[0]
    cdef Py_ssize_t itemsize = src.shape[4]
    if itemsize > 1 and src.strides[4] != 1:
        raise ValueError("the item bytes of src must be contiguous")
    _check(src, channels, itemsize, block.shape[0], B, ax, ay, az, bx, by, bz, nx, ny, nz)
    if nx == 0 or ny == 0 or nz == 0 or channels == 0:
        return
    cdef Py_ssize_t bs[4]
    _block_strides(itemsize, channels * itemsize, B, bs)
    cdef Py_ssize_t st[4]
    _strides(src.shape, src.strides, st)
    cdef const uint8_t* s = &src[0, ax, ay, az, 0]
    cdef uint8_t* d = &block[0] + bx * bs[1] + by * bs[2] + bz * bs[3]
    with nogil:
        _copy_box(d, bs, s, st, channels, itemsize, nx, ny, nz)


def scatter(
    const uint8_t[::1] block, Py_ssize_t B, Py_ssize_t bx, Py_ssize_t by, Py_ssize_t bz,
    uint8_t[:, :, :, :, :] dst, Py_ssize_t ax, Py_ssize_t ay, Py_ssize_t az,
    Py_ssize_t nx, Py_ssize_t ny, Py_ssize_t nz,
):
    """Copy the box at ``(bx, by, bz)`` of a decoded block into ``dst[:, ax:ax+nx, ...]``.

    The reverse of :func:`gather`; releases the GIL while copying.
    """
    cdef Py_ssize_t channels = dst.shape[0]
    cdef Py_ssize_t itemsize = dst.shape[4]
    if itemsize > 1 and dst.strides[4] != 1:
        raise ValueError("the item bytes of dst must be contiguous")
    _check(dst, channels, itemsize, block.shape[0], B, ax, ay, az, bx, by, bz, nx, ny, nz)
    if nx == 0 or ny == 0 or nz == 0 or channels == 0:
        return
    cdef Py_ssize_t bs[4]
    _block_strides(itemsize, channels * itemsize, B, bs)
    cdef const uint8_t* s = &block[0] + bx * bs[1] + by * bs[2] + bz * bs[3]
    cdef Py_ssize_t st[4]
    _strides(dst.shape, dst.strides, st)
    cdef uint8_t* d = &dst[0, ax, ay, az, 0]
    with nogil:
        _copy_box(d, st, s, bs, channels, itemsize, nx, ny, nz)

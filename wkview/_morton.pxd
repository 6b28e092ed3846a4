# cython: language_level=3
# Morton (Z-order) bit kernels shared by _core and _codec: pure arithmetic, x bit lowest.

from libc.stdint cimport uint64_t


cdef inline uint64_t spread_bits(uint64_t v) noexcept nogil:
    # bit i of v moves to bit 3*i (21 usable input bits)
    v &= 0x1FFFFFULL
    v = (v | (v << 32)) & 0x1F00000000FFFFULL
    v = (v | (v << 16)) & 0x1F0000FF0000FFULL
    v = (v | (v << 8)) & 0x100F00F00F00F00FULL
    v = (v | (v << 4)) & 0x10C30C30C30C30C3ULL
    v = (v | (v << 2)) & 0x1249249249249249ULL
    return v


cdef inline uint64_t compact_bits(uint64_t v) noexcept nogil:
    # inverse of spread_bits: bits 0, 3, 6, ... of v back to 0, 1, 2, ...
    v &= 0x1249249249249249ULL
    v = (v ^ (v >> 2)) & 0x10C30C30C30C30C3ULL
    v = (v ^ (v >> 4)) & 0x100F00F00F00F00FULL
    v = (v ^ (v >> 8)) & 0x1F0000FF0000FFULL
    v = (v ^ (v >> 16)) & 0x1F00000000FFFFULL
    v = (v ^ (v >> 32)) & 0x1FFFFFULL
    return v


cdef inline uint64_t morton3(uint64_t x, uint64_t y, uint64_t z) noexcept nogil:
    return spread_bits(x) | (spread_bits(y) << 1) | (spread_bits(z) << 2)

# cython: language_level=3, embedsignature=True
"""Compiled kernels of wkview's WKW block codec.

Morton order of the blocks of a file, jump-table arithmetic, LZ4 / LZ4HC through the
system's liblz4, and the piece kernels that decode or encode whole runs of blocks
with the GIL released: reading their compressed bytes (``pread``), decoding, and
moving the voxels between decoded blocks and the caller's array. ``wkview.codec``
plans the work, runs it on threads and writes files.

Arrays are ``(channels, x, y, z)`` of any dtype and memory layout (taken through the
buffer protocol). A decoded block is Fortran order: voxel ``x + y*B + z*B*B``, each
voxel holding all channels interleaved (``channels * itemsize`` bytes).
"""

cimport cython
from cpython.buffer cimport PyBUF_RECORDS, PyBUF_RECORDS_RO, PyBuffer_Release, PyObject_GetBuffer
from libc.errno cimport EINTR, errno
from libc.stdint cimport int64_t, uint8_t, uint64_t
from cpython.pyport cimport PY_SSIZE_T_MAX
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset
from posix.unistd cimport pread

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

cdef struct Grid:
    # a (channels, x, y, z) array as the kernels see it: byte strides per axis (the
    # bytes of one item are contiguous), whatever its dtype and memory layout
    uint8_t* data
    Py_ssize_t shape[4]
    Py_ssize_t strides[4]
    Py_ssize_t itemsize


cdef int _open_grid(object array, Py_buffer* view, bint writable, Grid* g) except -1:
    """Export ``array``'s buffer into ``view`` (the caller releases it) and describe it in ``g``."""
    PyObject_GetBuffer(array, view, PyBUF_RECORDS if writable else PyBUF_RECORDS_RO)
    if view.ndim != 4:
        PyBuffer_Release(view)
        raise ValueError(f"expected a (channels, x, y, z) array, got {view.ndim} dimensions")
    cdef int a
    g.data = <uint8_t*>view.buf
    g.itemsize = view.itemsize
    for a in range(4):
        g.shape[a] = view.shape[a]
        g.strides[a] = view.strides[a]
    # Buffer exports may give any stride to an axis of length 1 (NumPy does): use the
    # packed one there, so the contiguous fast paths of _copy_box still apply.
    if g.shape[0] == 1:
        g.strides[0] = g.itemsize
    if g.shape[1] == 1:
        g.strides[1] = g.shape[0] * g.itemsize
    return 0


cdef inline void _copy_row(uint8_t* d, const uint8_t* s, Py_ssize_t n) noexcept nogil:
    # rows of whole blocks have a few fixed lengths: constant sizes are copied inline
    # (a call to memcpy per 32-byte row costs as much as the copy)
    if n == 32:
        memcpy(d, s, 32)
    elif n == 64:
        memcpy(d, s, 64)
    elif n == 16:
        memcpy(d, s, 16)
    elif n == 128:
        memcpy(d, s, 128)
    else:
        memcpy(d, s, n)


cdef void _copy_box(
    uint8_t* dst, const Py_ssize_t* ds,
    const uint8_t* src, const Py_ssize_t* ss,
    Py_ssize_t channels, Py_ssize_t itemsize,
    Py_ssize_t nx, Py_ssize_t ny, Py_ssize_t nz,
    const Py_ssize_t* caller,
) noexcept nogil:
    # ds / ss: byte strides of (channel, x, y, z); the item bytes are contiguous.
    # caller: the strides of the caller's array (one of the two sides; the other is a
    # decoded block, small enough for the cache): its shortest spatial stride becomes
    # the inner loop, so a C-ordered array is walked along z, not across it.
    cdef Py_ssize_t vs = channels * itemsize
    cdef Py_ssize_t i, j, k, c
    cdef Py_ssize_t n[4]
    n[1], n[2], n[3] = nx, ny, nz
    cdef int inner = 1, mid = 2, outer = 3
    cdef Py_ssize_t key[4]
    for i in range(1, 4):  # axes of length 1 go outside
        key[i] = _abs(caller[i]) if n[i] > 1 else PY_SSIZE_T_MAX
    # sort the axes 1..3 by key, the shortest stride innermost
    if key[mid] < key[inner]:
        inner, mid = mid, inner
    if key[outer] < key[mid]:
        mid, outer = outer, mid
        if key[mid] < key[inner]:
            inner, mid = mid, inner
    cdef Py_ssize_t di = ds[inner], si = ss[inner]
    cdef uint8_t* d
    cdef const uint8_t* s
    cdef bint voxel_contig = ds[0] == itemsize and ss[0] == itemsize
    cdef bint row_contig = voxel_contig and di == vs and si == vs
    for k in range(n[outer]):
        for j in range(n[mid]):
            d = dst + k * ds[outer] + j * ds[mid]
            s = src + k * ss[outer] + j * ss[mid]
            if row_contig:
                _copy_row(d, s, n[inner] * vs)
            elif voxel_contig:
                # one voxel per step; constant sizes let the compiler inline the moves
                if vs == 1:
                    for i in range(n[inner]):
                        d[i * di] = s[i * si]
                elif vs == 2:
                    for i in range(n[inner]):
                        memcpy(d + i * di, s + i * si, 2)
                elif vs == 4:
                    for i in range(n[inner]):
                        memcpy(d + i * di, s + i * si, 4)
                elif vs == 8:
                    for i in range(n[inner]):
                        memcpy(d + i * di, s + i * si, 8)
                else:
                    for i in range(n[inner]):
                        memcpy(d + i * di, s + i * si, vs)
            else:
                for i in range(n[inner]):
                    for c in range(channels):
                        memcpy(d + i * di + c * ds[0], s + i * si + c * ss[0], itemsize)


cdef inline Py_ssize_t _abs(Py_ssize_t v) noexcept nogil:
    return -v if v < 0 else v


cdef inline void _block_strides(
    Py_ssize_t itemsize, Py_ssize_t voxel_size, Py_ssize_t B, Py_ssize_t* bs
) noexcept nogil:
    # byte strides of a decoded block, as (item, x, y, z): Fortran order, channels interleaved
    bs[0] = itemsize
    bs[1] = voxel_size
    bs[2] = voxel_size * B
    bs[3] = voxel_size * B * B


# ---------------------------------------------------------------------------
# LZ4, from the system's liblz4 (linked at build time, see setup.py). The prototypes
# below are the documented liblz4 API (stable since 1.9); its header need not be
# installed.

cdef extern from *:
    """
    int LZ4_versionNumber(void);
    int LZ4_compressBound(int inputSize);
    int LZ4_sizeofState(void);
    int LZ4_compress_fast_extState(void* state, const char* src, char* dst,
                                   int srcSize, int dstCapacity, int acceleration);
    int LZ4_sizeofStateHC(void);
    int LZ4_compress_HC_extStateHC(void* state, const char* src, char* dst,
                                   int srcSize, int maxDstSize, int compressionLevel);
    int LZ4_decompress_safe(const char* src, char* dst, int compressedSize, int dstCapacity);
    int LZ4_decompress_safe_partial(const char* src, char* dst, int srcSize,
                                    int targetOutputSize, int dstCapacity);
    """
    int LZ4_versionNumber() nogil
    int LZ4_compressBound(int inputSize) nogil
    int LZ4_sizeofState() nogil
    int LZ4_compress_fast_extState(void* state, const char* src, char* dst,
                                   int srcSize, int dstCapacity, int acceleration) nogil
    int LZ4_sizeofStateHC() nogil
    int LZ4_compress_HC_extStateHC(void* state, const char* src, char* dst,
                                   int srcSize, int maxDstSize, int compressionLevel) nogil
    int LZ4_decompress_safe(const char* src, char* dst, int compressedSize, int dstCapacity) nogil
    int LZ4_decompress_safe_partial(const char* src, char* dst, int srcSize,
                                    int targetOutputSize, int dstCapacity) nogil

cdef enum:
    # block types of the WKW header this module encodes
    LZ4_FAST = 2
    LZ4_HC = 3
    # largest LZ4 input (LZ4_MAX_INPUT_SIZE)
    MAX_BLOCK_BYTES = 0x7E000000
    # error codes of the piece kernels (the row of the failing piece goes with them)
    C_ERR_DECODE = 1    # a stored block does not decode to exactly block_bytes
    C_ERR_ENCODE = 2    # LZ4 failed to encode (output buffer too small)
    C_ERR_MEMORY = 3    # malloc failed
    C_ERR_SHORT = 4     # the file ends before a block does
    C_ERR_OS = 5        # pread failed (errno)
    # columns of a piece table (see below)
    P_INDEX = 0
    P_LO = 1
    P_AT = 4
    P_SIZE = 7
    P_FULL = 10
    P_COLS = 11

ERR_DECODE = C_ERR_DECODE
ERR_ENCODE = C_ERR_ENCODE
ERR_SHORT = C_ERR_SHORT
ERR_OS = C_ERR_OS


def lz4_version_number():
    """liblz4's version as ``major * 10000 + minor * 100 + release``."""
    return LZ4_versionNumber()


def compress_bound(Py_ssize_t n):
    """Largest LZ4 block ``n`` input bytes can encode to (``LZ4_compressBound``)."""
    if n < 0 or n > MAX_BLOCK_BYTES:
        raise ValueError(f"LZ4 blocks hold 0 to {MAX_BLOCK_BYTES} bytes, not {n}")
    return LZ4_compressBound(<int>n)


cdef int _encode(
    void* state, int block_type, int level, const uint8_t* src, int n, uint8_t* dst, int capacity
) noexcept nogil:
    if block_type == LZ4_HC:
        return LZ4_compress_HC_extStateHC(state, <const char*>src, <char*>dst, n, capacity, level)
    return LZ4_compress_fast_extState(state, <const char*>src, <char*>dst, n, capacity, 1)


cdef void* _new_state(int block_type) noexcept nogil:
    return malloc(LZ4_sizeofStateHC() if block_type == LZ4_HC else LZ4_sizeofState())


def _check_codec_args(int block_type, int level):
    if block_type != LZ4_FAST and block_type != LZ4_HC:
        raise ValueError(f"block type must be 2 (LZ4) or 3 (LZ4HC), got {block_type}")
    if block_type == LZ4_HC and not 1 <= level <= 12:
        raise ValueError(f"LZ4HC level must be in 1..12, got {level}")


@cython.boundscheck(False)
@cython.wraparound(False)
def lz4_encode(const uint8_t[::1] raw, int block_type, int level):
    """One raw LZ4 block (no size prefix) of ``raw``: LZ4HC at ``level`` for block
    type 3, the fast LZ4 compressor for block type 2 (``level`` ignored)."""
    _check_codec_args(block_type, level)
    cdef Py_ssize_t n = raw.shape[0]
    cdef int capacity = compress_bound(n)
    out = bytearray(capacity)
    cdef uint8_t[::1] o = out
    cdef uint8_t empty = 0
    cdef const uint8_t* src = &raw[0] if n else &empty
    cdef int written
    cdef void* state
    with nogil:
        state = _new_state(block_type)
        if state != NULL:
            written = _encode(state, block_type, level, src, <int>n, &o[0], capacity)
            free(state)
    if state == NULL:
        raise MemoryError()
    if written <= 0:
        raise RuntimeError(f"LZ4 could not encode {n} bytes")
    return bytes(o[:written])


@cython.boundscheck(False)
@cython.wraparound(False)
def lz4_decode(const uint8_t[::1] compressed, Py_ssize_t size):
    """Decode one raw LZ4 block that must give exactly ``size`` bytes; ``None`` when it
    does not (damaged data, wrong size)."""
    if size < 0 or size > MAX_BLOCK_BYTES:
        raise ValueError(f"LZ4 blocks hold 0 to {MAX_BLOCK_BYTES} bytes, not {size}")
    if compressed.shape[0] == 0 or compressed.shape[0] > MAX_BLOCK_BYTES:
        return None
    out = bytearray(size)
    cdef uint8_t[::1] o = out
    cdef uint8_t spare = 0
    cdef int got
    with nogil:
        got = LZ4_decompress_safe(
            <const char*>&compressed[0], <char*>(&o[0] if size else &spare),
            <int>compressed.shape[0], <int>size,
        )
    if got != size:
        return None
    return bytes(out)


# -- the piece kernels -----------------------------------------------------------
# A "piece" is the part of one block inside a box: one row of an int64[k, 11] table
#   (index, lx, ly, lz, ax, ay, az, sx, sy, sz, full)
# block index (Morton), block-local offset, array-local offset, size, whole-block flag.


cdef int _piece_counts(const Py_ssize_t* o, const Py_ssize_t* n, Py_ssize_t B, Py_ssize_t* first, Py_ssize_t* count) noexcept nogil:
    # first block and block count per axis of the box (o, n); -1 when it exceeds 2**21 blocks
    cdef int a
    for a in range(3):
        first[a] = o[a] // B
        count[a] = (o[a] + n[a] - 1) // B - first[a] + 1
        if first[a] + count[a] > (1 << 21):
            return -1
    return 0


@cython.boundscheck(False)
@cython.wraparound(False)
cdef void _fill_pieces(
    const Py_ssize_t* o, const Py_ssize_t* n, Py_ssize_t B,
    const Py_ssize_t* first, const Py_ssize_t* count, int64_t* t,
) noexcept nogil:
    # one row of P_COLS per block of the box (o, n) (all sizes > 0), x fastest
    cdef Py_ssize_t i, j, k, b, start, stop, a
    cdef Py_ssize_t blk[3]
    cdef Py_ssize_t idx[3]
    cdef bint full
    cdef int64_t* row = t
    for k in range(count[2]):
        for j in range(count[1]):
            for i in range(count[0]):
                idx[0], idx[1], idx[2] = i, j, k
                full = True
                for a in range(3):
                    b = first[a] + idx[a]
                    blk[a] = b
                    start = o[a] if o[a] > b * B else b * B
                    stop = o[a] + n[a] if o[a] + n[a] < b * B + B else b * B + B
                    row[P_LO + a] = start - b * B
                    row[P_AT + a] = start - o[a]
                    row[P_SIZE + a] = stop - start
                    full = full and stop - start == B
                row[P_INDEX] = <int64_t>morton3(blk[0], blk[1], blk[2])
                row[P_FULL] = full
                row += P_COLS


@cython.boundscheck(False)
@cython.wraparound(False)
def block_pieces(
    Py_ssize_t ox, Py_ssize_t oy, Py_ssize_t oz,
    Py_ssize_t nx, Py_ssize_t ny, Py_ssize_t nz, Py_ssize_t B,
):
    """The pieces (see above) of the file-local box at ``(ox, oy, oz)`` of size
    ``(nx, ny, nz)`` for blocks of edge ``B``, sorted by Morton index."""
    if B < 1 or B & (B - 1):
        raise ValueError(f"block edge must be a power of two, got {B}")
    if min(ox, oy, oz, nx, ny, nz) < 0:
        raise ValueError("negative offset or size")
    if nx == 0 or ny == 0 or nz == 0:
        return np.empty((0, P_COLS), dtype=np.int64)
    cdef Py_ssize_t o[3]
    cdef Py_ssize_t n[3]
    cdef Py_ssize_t first[3]
    cdef Py_ssize_t count[3]
    o[0], o[1], o[2] = ox, oy, oz
    n[0], n[1], n[2] = nx, ny, nz
    if _piece_counts(o, n, B, first, count) < 0:
        raise ValueError("box exceeds 2**21 blocks per axis")
    table = np.empty((count[0] * count[1] * count[2], P_COLS), dtype=np.int64)
    cdef int64_t[:, ::1] t = table
    with nogil:
        _fill_pieces(o, n, B, first, count, &t[0, 0])
    if t.shape[0] > 1:
        table = table[np.argsort(table[:, P_INDEX], kind="stable")]
    return table


cdef inline Py_ssize_t _prefix_bytes(const int64_t* p, Py_ssize_t B, Py_ssize_t voxel_size) noexcept nogil:
    # bytes of a decoded block up to and including the last voxel of the piece in row p
    return (
        (p[P_LO] + p[P_SIZE] - 1)
        + (p[P_LO + 1] + p[P_SIZE + 1] - 1) * B
        + (p[P_LO + 2] + p[P_SIZE + 2] - 1) * B * B
        + 1
    ) * voxel_size


@cython.boundscheck(False)
@cython.wraparound(False)
cdef Py_ssize_t _check_pieces(const int64_t[:, ::1] p, const Grid* g, Py_ssize_t B) except -1:
    """Check the piece table against the array and the block edge; return the block bytes."""
    if B < 1 or B & (B - 1) or B > 1024:
        raise ValueError(f"block edge must be a power of two <= 1024, got {B}")
    if p.shape[1] != P_COLS:
        raise ValueError(f"piece table must have {P_COLS} columns, got {p.shape[1]}")
    cdef Py_ssize_t block_bytes = B * B * B * g.shape[0] * g.itemsize
    if g.shape[0] < 1 or block_bytes > MAX_BLOCK_BYTES:
        raise ValueError(f"blocks of {B}^3 voxels of {g.shape[0]} x {g.itemsize} bytes do not fit LZ4")
    cdef Py_ssize_t r, a
    for r in range(p.shape[0]):
        for a in range(3):
            if (
                p[r, P_LO + a] < 0 or p[r, P_AT + a] < 0 or p[r, P_SIZE + a] < 1
                or p[r, P_LO + a] + p[r, P_SIZE + a] > B
                or p[r, P_AT + a] + p[r, P_SIZE + a] > g.shape[1 + a]
            ):
                raise ValueError(f"piece {r} exceeds its block or the array")
    return block_bytes


@cython.boundscheck(False)
@cython.wraparound(False)
cdef Py_ssize_t _decode_rows(
    const uint8_t* comp, const int64_t* starts, const int64_t* lengths,
    const int64_t[:, ::1] pieces, const Grid* g, Py_ssize_t B, uint8_t* scratch,
) noexcept nogil:
    # decode block r from comp[starts[r] : starts[r] + lengths[r]] (only up to the piece's
    # last voxel) and copy the piece into the array; -1, or the first row that fails
    cdef Py_ssize_t vs = g.shape[0] * g.itemsize
    cdef Py_ssize_t block_bytes = B * B * B * vs
    cdef Py_ssize_t bs[4]
    _block_strides(g.itemsize, vs, B, bs)
    cdef Py_ssize_t r, need
    cdef int got
    for r in range(pieces.shape[0]):
        if lengths[r] <= 0 or lengths[r] > MAX_BLOCK_BYTES:
            return r
        need = _prefix_bytes(&pieces[r, 0], B, vs)
        if need == block_bytes:
            got = LZ4_decompress_safe(
                <const char*>(comp + starts[r]), <char*>scratch, <int>lengths[r], <int>block_bytes
            )
            if got != block_bytes:
                return r
        else:
            got = LZ4_decompress_safe_partial(
                <const char*>(comp + starts[r]), <char*>scratch, <int>lengths[r], <int>need, <int>block_bytes
            )
            if got < need:
                return r
        _copy_box(
            g.data + pieces[r, P_AT] * g.strides[1] + pieces[r, P_AT + 1] * g.strides[2]
            + pieces[r, P_AT + 2] * g.strides[3],
            g.strides,
            scratch + pieces[r, P_LO] * bs[1] + pieces[r, P_LO + 1] * bs[2] + pieces[r, P_LO + 2] * bs[3],
            bs, g.shape[0], g.itemsize,
            pieces[r, P_SIZE], pieces[r, P_SIZE + 1], pieces[r, P_SIZE + 2], g.strides,
        )
    return -1


@cython.boundscheck(False)
@cython.wraparound(False)
def decode_pieces(
    const uint8_t[::1] compressed, const int64_t[::1] starts, const int64_t[::1] lengths,
    const int64_t[:, ::1] pieces, object out, Py_ssize_t B,
):
    """Decode the blocks of ``pieces`` and copy each piece into ``out``.

    Block ``r`` is ``compressed[starts[r] : starts[r] + lengths[r]]``; ``out`` is a
    writable ``(channels, x, y, z)`` array of any dtype and layout. A piece that ends
    early in its block is decoded only up to its last voxel. Releases the GIL.
    Returns ``-1``, or the row of the first block that does not decode.
    """
    cdef Py_buffer view
    cdef Grid g
    _open_grid(out, &view, True, &g)
    cdef Py_ssize_t k = pieces.shape[0], r, block_bytes, bad = -1
    cdef uint8_t* scratch = NULL
    try:
        block_bytes = _check_pieces(pieces, &g, B)
        if starts.shape[0] < k or lengths.shape[0] < k:
            raise ValueError("starts and lengths need one entry per piece")
        for r in range(k):
            if starts[r] < 0 or lengths[r] < 0 or starts[r] + lengths[r] > compressed.shape[0]:
                raise ValueError(f"block {r} lies outside the compressed buffer")
        if k == 0:
            return -1
        with nogil:
            scratch = <uint8_t*>malloc(block_bytes)
            if scratch != NULL:
                bad = _decode_rows(&compressed[0], &starts[0], &lengths[0], pieces, &g, B, scratch)
                free(scratch)
        if scratch == NULL:
            raise MemoryError()
        return bad
    finally:
        PyBuffer_Release(&view)


@cython.boundscheck(False)
@cython.wraparound(False)
cdef int64_t _block_extents(
    const uint64_t[::1] ends, uint64_t data_offset, const int64_t* indices, Py_ssize_t step,
    Py_ssize_t k, int64_t* begins, int64_t* lengths, int64_t* starts,
) noexcept nogil:
    # file offset and length of block indices[r * step], and where it goes in a buffer
    # holding the k blocks back to back; returns the buffer's size
    cdef Py_ssize_t r
    cdef int64_t index, total = 0
    for r in range(k):
        index = indices[r * step]
        begins[r] = <int64_t>(data_offset if index == 0 else ends[index - 1])
        lengths[r] = <int64_t>ends[index] - begins[r]
        starts[r] = total
        total += lengths[r]
    return total


cdef int _pread_runs(
    int fd, const int64_t* begins, const int64_t* lengths, const int64_t* starts,
    Py_ssize_t k, uint8_t* buffer, Py_ssize_t* bad, int* err,
) noexcept nogil:
    # fill the buffer (see _block_extents) with one pread per run of blocks that lie
    # back to back in the file; 0, or C_ERR_SHORT / C_ERR_OS with the row in *bad
    cdef Py_ssize_t r = 0, q
    cdef int64_t size, pos, got
    while r < k:
        q = r + 1
        while q < k and begins[q] == begins[q - 1] + lengths[q - 1]:
            q += 1
        size = starts[q - 1] + lengths[q - 1] - starts[r]
        pos = 0
        while pos < size:
            got = pread(fd, buffer + starts[r] + pos, size - pos, begins[r] + pos)
            if got < 0:
                if errno == EINTR:
                    continue
                bad[0], err[0] = r, errno
                return C_ERR_OS
            if got == 0:
                bad[0] = r
                return C_ERR_SHORT
            pos += got
        r = q
    return 0


cdef int _check_indices(const int64_t* indices, Py_ssize_t step, Py_ssize_t k, Py_ssize_t n_blocks) except -1:
    cdef Py_ssize_t r
    for r in range(k):
        if indices[r * step] < 0 or indices[r * step] >= n_blocks:
            raise ValueError(f"entry {r} names block {indices[r * step]} of a file of {n_blocks}")
    return 0


@cython.boundscheck(False)
@cython.wraparound(False)
def read_blocks(int fd, const uint64_t[::1] ends, uint64_t data_offset, const int64_t[::1] indices):
    """Read the compressed bytes of blocks ``indices`` from the open file ``fd``.

    ``ends`` is the file's (validated) jump table; blocks lying back to back in the
    file are read with one ``pread``, without the GIL. Returns ``(code, row, errno,
    buffer, starts, lengths)``: block ``indices[r]`` is
    ``buffer[starts[r] : starts[r] + lengths[r]]``; ``code`` is 0, or ``ERR_SHORT``
    (the file ends early) / ``ERR_OS`` (``pread`` failed with ``errno``) at ``row``.
    """
    cdef Py_ssize_t k = indices.shape[0], bad = -1
    _check_indices(&indices[0] if k else NULL, 1, k, ends.shape[0])
    begins_arr = np.empty(k, dtype=np.int64)
    starts_arr = np.empty(k, dtype=np.int64)
    lengths_arr = np.empty(k, dtype=np.int64)
    cdef int64_t[::1] begins = begins_arr, starts = starts_arr, lengths = lengths_arr
    cdef int code = 0, err = 0
    if k == 0:
        return (0, -1, 0, bytearray(), starts_arr, lengths_arr)
    cdef int64_t total
    with nogil:
        total = _block_extents(ends, data_offset, &indices[0], 1, k, &begins[0], &lengths[0], &starts[0])
    buffer = bytearray(total)
    cdef uint8_t[::1] b = buffer
    with nogil:
        code = _pread_runs(fd, &begins[0], &lengths[0], &starts[0], k, &b[0] if total else NULL, &bad, &err)
    return (code, bad, err, buffer, starts_arr, lengths_arr)


# -- reading boxes ------------------------------------------------------------------
# The blocks of the boxes of several files are one list of rows; each row is read
# (pread) and decoded independently, so the rows of one read are spread over the
# threads of the native pool below with a microsecond's dispatch, no Python tasks.

cdef struct Job:
    # one file's box: the file, its validated jump table, and the caller's array
    int fd
    const uint64_t* ends
    uint64_t data_offset
    bint direct  # whole blocks of this array can be decoded in place (see _direct_layout)
    Grid g

cdef enum:
    # flags of read_boxes (the paths it may take; all on by default)
    F_DIRECT = 1   # decode whole blocks straight into the output where its layout allows
    F_PARTIAL = 2  # decode a block only up to the last voxel the box needs from it
    F_PREFIX = 4   # for such a partial decode, read about the compressed bytes it needs
    # decoded bytes below which a read stays on the calling thread: waking a second
    # thread costs more than decoding a few blocks (a 32^3 read of uint8 decodes 256 KiB)
    PARALLEL_MIN_WORK = 96 << 10

DIRECT = F_DIRECT
PARTIAL = F_PARTIAL
PREFIX = F_PREFIX

cdef bint _direct_layout(const Grid* g, Py_ssize_t B) noexcept nogil:
    # a whole block in the array has the byte layout of a decoded one: Fortran order,
    # channels interleaved (axes of length 1 may have any stride; a whole block has B
    # voxels per axis, so that only matters when B == 1)
    cdef Py_ssize_t vs = g.shape[0] * g.itemsize
    if g.shape[0] > 1 and g.strides[0] != g.itemsize:
        return False
    return B == 1 or (g.strides[1] == vs and g.strides[2] == vs * B and g.strides[3] == vs * B * B)


@cython.boundscheck(False)
@cython.wraparound(False)
cdef int _read_row(
    const Job* j, const int64_t* p, Py_ssize_t B, Py_ssize_t block_bytes, Py_ssize_t capacity,
    uint8_t* comp, uint8_t* scratch, int flags, int* err,
) noexcept nogil:
    # read one block (pread) and move its piece p into the job's array; 0 or an error code
    cdef Py_ssize_t vs = j.g.shape[0] * j.g.itemsize
    cdef int64_t index = p[P_INDEX]
    cdef int64_t begin = <int64_t>(j.data_offset if index == 0 else j.ends[index - 1])
    cdef int64_t length = <int64_t>j.ends[index] - begin
    cdef int64_t have = length
    cdef Py_ssize_t need
    cdef Py_ssize_t bs[4]
    cdef int decoded, code
    if length <= 0 or length > capacity:
        return C_ERR_DECODE
    cdef uint8_t* dst = (
        j.g.data + p[P_AT] * j.g.strides[1] + p[P_AT + 1] * j.g.strides[2] + p[P_AT + 2] * j.g.strides[3]
    )
    if p[P_FULL] and j.direct and flags & F_DIRECT:
        code = _pread_all(j.fd, comp, length, begin, err)
        if code:
            return code
        decoded = LZ4_decompress_safe(<const char*>comp, <char*>dst, <int>length, <int>block_bytes)
        return 0 if decoded == block_bytes else C_ERR_DECODE
    need = _prefix_bytes(p, B, vs) if flags & F_PARTIAL else block_bytes
    if need == block_bytes:
        code = _pread_all(j.fd, comp, length, begin, err)
        if code:
            return code
        decoded = LZ4_decompress_safe(<const char*>comp, <char*>scratch, <int>length, <int>block_bytes)
        if decoded != block_bytes:
            return C_ERR_DECODE
    else:
        if flags & F_PREFIX:
            # copying the compressed bytes out of the page cache is most of a small read:
            # read about the share of them the partial decode needs, the rest only when
            # that falls short (a truncated input decodes to a correct, shorter prefix)
            have = length * need // block_bytes
            have += have // 4 + 256
            if have > length:
                have = length
        code = _pread_all(j.fd, comp, have, begin, err)
        if code:
            return code
        decoded = LZ4_decompress_safe_partial(
            <const char*>comp, <char*>scratch, <int>have, <int>need, <int>block_bytes
        )
        if decoded < need and have < length:
            code = _pread_all(j.fd, comp + have, length - have, begin + have, err)
            if code:
                return code
            decoded = LZ4_decompress_safe_partial(
                <const char*>comp, <char*>scratch, <int>length, <int>need, <int>block_bytes
            )
        if decoded < need:
            return C_ERR_DECODE
    _block_strides(j.g.itemsize, vs, B, bs)
    _copy_box(
        dst, j.g.strides,
        scratch + p[P_LO] * bs[1] + p[P_LO + 1] * bs[2] + p[P_LO + 2] * bs[3],
        bs, j.g.shape[0], j.g.itemsize, p[P_SIZE], p[P_SIZE + 1], p[P_SIZE + 2], j.g.strides,
    )
    return 0


cdef int _pread_all(int fd, uint8_t* buf, int64_t n, int64_t offset, int* err) noexcept nogil:
    # n bytes at offset of fd into buf: 0, C_ERR_OS (errno in err) or C_ERR_SHORT
    cdef int64_t pos = 0, got
    while pos < n:
        got = pread(fd, buf + pos, n - pos, offset + pos)
        if got < 0:
            if errno == EINTR:
                continue
            err[0] = errno
            return C_ERR_OS
        if got == 0:
            return C_ERR_SHORT
        pos += got
    return 0


cdef Py_ssize_t _split_units(
    const Py_ssize_t* count, Py_ssize_t n, Py_ssize_t want, Py_ssize_t* unit_start,
) noexcept nogil:
    # Cut the rows (job by job; z, y, x with x fastest) into units a thread decodes one
    # after the other: the blocks of one x-run of a job together, because an x-row of the
    # output crosses from one block into the next inside a cache line (two threads writing
    # either side of it would pass the line back and forth on every row). Runs are cut
    # further only when there are fewer than `want` of them (the threads). Returns the
    # unit count; unit u is rows unit_start[u] to unit_start[u + 1] - 1.
    cdef Py_ssize_t i, runs = 0, parts, per, r = 0, u = 0, k, x, start
    for i in range(n):
        runs += count[3 * i + 1] * count[3 * i + 2]
    parts = (want + runs - 1) // runs if runs < want else 1
    for i in range(n):
        x = count[3 * i]
        per = (x + parts - 1) // parts if parts < x else 1
        for k in range(count[3 * i + 1] * count[3 * i + 2]):
            start = 0
            while start < x:
                unit_start[u] = r + start
                u += 1
                start += per
            r += x
    unit_start[u] = r
    return u


# -- the native pool of reads ---------------------------------------------------------
# A read's blocks are spread over the calling thread and up to threads-1 helper threads
# kept by this module. What matters for reads of a few blocks (a 32^3 read decodes for
# ~150 us): a helper that is awake takes work within a microsecond (it polls for the
# next read for 20 us after each one, then sleeps); the caller never waits for a helper
# that has not taken a unit yet (a helper whose core is busy elsewhere just misses the
# read), only for units a running helper is decoding; a second thread reading at the
# same time decodes on its own thread; a forked child starts its own helpers.

cdef extern from *:
    """
    #include <pthread.h>
    #include <sched.h>
    #include <signal.h>
    #include <stdint.h>
    #include <time.h>

    typedef void (*wkv_unit_fn)(void* ctx, long unit, int worker);

    #define WKV_MAX_WORKERS 64
    /* how long a helper polls for the next read before it sleeps: a read loop's Python part
       between two reads takes ~10-30 us (20, 50 and 100 us gave the same 32^3 reads) */
    #define WKV_HELPER_POLL_NS 20000LL
    #define WKV_CALLER_SPINS 4000
    /* the job word: generation (26 bits) | units (19 bits) | next unclaimed unit (19 bits) */
    #define WKV_UNIT_BITS 19
    #define WKV_MAX_UNITS ((1L << WKV_UNIT_BITS) - 1)
    #define WKV_GEN(w) ((unsigned)((w) >> (2 * WKV_UNIT_BITS)))
    #define WKV_UNITS(w) ((long)(((w) >> WKV_UNIT_BITS) & WKV_MAX_UNITS))
    #define WKV_NEXT(w) ((long)((w) & WKV_MAX_UNITS))
    #define WKV_WORD(g, u, n) ((((unsigned long long)((g) & 0x3FFFFFFu)) << (2 * WKV_UNIT_BITS)) \
                               | ((unsigned long long)(u) << WKV_UNIT_BITS) | (unsigned long long)(n))

    static pthread_mutex_t wkv_mu = PTHREAD_MUTEX_INITIALIZER;
    static pthread_cond_t wkv_cv = PTHREAD_COND_INITIALIZER;
    static int wkv_helpers = 0;         /* helper threads of this process (written under wkv_mu) */
    static int wkv_atfork_done = 0;
    static int wkv_busy = 0;            /* a caller holds the job slot */
    static unsigned long long wkv_word = 0;
    static int wkv_joiners = 0;         /* helpers 1..wkv_joiners may take units of the job */
    static wkv_unit_fn wkv_fn = 0;
    static void* wkv_ctx = 0;
    static long wkv_done = 0;           /* units of the job finished */
    static int wkv_sleeping = 0;        /* helpers waiting on wkv_cv */
    static long long wkv_pool_reads = 0; /* jobs run on the pool (tests, profiling) */

    static inline void wkv_relax(void) {
    #if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
    #elif defined(__aarch64__)
        __asm__ __volatile__("yield");
    #endif
    }

    static long long wkv_now_ns(void) {
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
    }

    /* take and run units of job `gen` until none is left (or a newer job is out) */
    static void wkv_take_units(unsigned gen, int worker) {
        for (;;) {
            unsigned long long w = __atomic_load_n(&wkv_word, __ATOMIC_ACQUIRE);
            if (WKV_GEN(w) != gen || WKV_NEXT(w) >= WKV_UNITS(w)) return;
            if (!__atomic_compare_exchange_n(&wkv_word, &w, w + 1, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
                continue;
            /* the unit is ours and job `gen` cannot end before it is done: its fields hold */
            wkv_unit_fn fn = __atomic_load_n(&wkv_fn, __ATOMIC_RELAXED);
            void* ctx = __atomic_load_n(&wkv_ctx, __ATOMIC_RELAXED);
            fn(ctx, WKV_NEXT(w), worker);
            __atomic_add_fetch(&wkv_done, 1, __ATOMIC_RELEASE);
        }
    }

    static void* wkv_helper_main(void* arg) {
        int id = (int)(intptr_t)arg;
        unsigned seen = WKV_GEN(__atomic_load_n(&wkv_word, __ATOMIC_ACQUIRE));
        for (;;) {
            unsigned long long w = __atomic_load_n(&wkv_word, __ATOMIC_ACQUIRE);
            long long until = 0;
            int spins = 0;
            while (WKV_GEN(w) == seen) {
                if (until == 0) until = wkv_now_ns() + WKV_HELPER_POLL_NS;
                if (++spins % 64 != 0 || wkv_now_ns() < until) {
                    wkv_relax();
                } else {
                    /* Dekker with the caller: count ourselves asleep, then look again (both
                       seq_cst), so a caller that saw no sleeper published before our look */
                    pthread_mutex_lock(&wkv_mu);
                    __atomic_add_fetch(&wkv_sleeping, 1, __ATOMIC_SEQ_CST);
                    while (WKV_GEN(__atomic_load_n(&wkv_word, __ATOMIC_SEQ_CST)) == seen)
                        pthread_cond_wait(&wkv_cv, &wkv_mu);
                    __atomic_sub_fetch(&wkv_sleeping, 1, __ATOMIC_SEQ_CST);
                    pthread_mutex_unlock(&wkv_mu);
                    until = 0;
                }
                w = __atomic_load_n(&wkv_word, __ATOMIC_ACQUIRE);
            }
            seen = WKV_GEN(w);
            if (id <= __atomic_load_n(&wkv_joiners, __ATOMIC_RELAXED))
                wkv_take_units(seen, id);
        }
        return NULL;
    }

    /* a forked child has none of its parent's helpers (and maybe a job slot taken by a
       thread that does not exist in it): it starts afresh */
    static void wkv_after_fork_child(void) {
        pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
        pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
        wkv_mu = mu;
        wkv_cv = cv;
        wkv_helpers = 0;
        wkv_sleeping = 0;
        wkv_busy = 0;
    }

    /* up to `want` helpers running; returns how many there are (at most want) */
    static int wkv_ensure_helpers(int want) {
        int have = __atomic_load_n(&wkv_helpers, __ATOMIC_ACQUIRE);
        if (have >= want) return want;
        pthread_mutex_lock(&wkv_mu);
        if (!wkv_atfork_done && pthread_atfork(NULL, NULL, wkv_after_fork_child) == 0) wkv_atfork_done = 1;
        if (wkv_atfork_done) {
            pthread_attr_t attr;
            sigset_t all, old;
            pthread_attr_init(&attr);
            pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
            sigfillset(&all);
            pthread_sigmask(SIG_SETMASK, &all, &old);  /* helpers take no signals */
            while (wkv_helpers < want) {
                pthread_t t;
                if (pthread_create(&t, &attr, wkv_helper_main, (void*)(intptr_t)(wkv_helpers + 1)) != 0) break;
                __atomic_store_n(&wkv_helpers, wkv_helpers + 1, __ATOMIC_RELEASE);
            }
            pthread_sigmask(SIG_SETMASK, &old, NULL);
            pthread_attr_destroy(&attr);
        }
        have = wkv_helpers;
        pthread_mutex_unlock(&wkv_mu);
        return have < want ? have : want;
    }

    /* fn(ctx, u, worker) for every u < units, on this thread (worker 0) and up to threads-1
       helpers; 0, or -1 when another caller holds the pool or no helper can start (the
       caller then runs the units itself) */
    static int wkv_pool_run(long units, int threads, wkv_unit_fn fn, void* ctx) {
        if (units < 1 || units > WKV_MAX_UNITS || threads < 2) return -1;
        if (__atomic_exchange_n(&wkv_busy, 1, __ATOMIC_ACQUIRE)) return -1;
        int joiners = wkv_ensure_helpers(threads - 1 < WKV_MAX_WORKERS - 1 ? threads - 1 : WKV_MAX_WORKERS - 1);
        if (joiners < 1) {
            __atomic_store_n(&wkv_busy, 0, __ATOMIC_RELEASE);
            return -1;
        }
        __atomic_store_n(&wkv_fn, fn, __ATOMIC_RELAXED);
        __atomic_store_n(&wkv_ctx, ctx, __ATOMIC_RELAXED);
        __atomic_store_n(&wkv_joiners, joiners, __ATOMIC_RELAXED);
        __atomic_store_n(&wkv_done, 0, __ATOMIC_RELAXED);
        unsigned gen = WKV_GEN(__atomic_load_n(&wkv_word, __ATOMIC_RELAXED)) + 1;
        __atomic_store_n(&wkv_word, WKV_WORD(gen, units, 0), __ATOMIC_SEQ_CST);
        __atomic_add_fetch(&wkv_pool_reads, 1, __ATOMIC_RELAXED);
        if (__atomic_load_n(&wkv_sleeping, __ATOMIC_SEQ_CST) > 0) {
            pthread_mutex_lock(&wkv_mu);
            pthread_cond_broadcast(&wkv_cv);
            pthread_mutex_unlock(&wkv_mu);
        }
        wkv_take_units(gen & 0x3FFFFFFu, 0);
        /* what is left runs on helpers that took it: they are decoding, not asleep */
        int spins = 0;
        while (__atomic_load_n(&wkv_done, __ATOMIC_ACQUIRE) < units) {
            if (++spins < WKV_CALLER_SPINS) wkv_relax(); else sched_yield();
        }
        __atomic_store_n(&wkv_busy, 0, __ATOMIC_RELEASE);
        return 0;
    }

    static long long wkv_pool_count(void) { return __atomic_load_n(&wkv_pool_reads, __ATOMIC_RELAXED); }
    static int wkv_pool_helpers(void) { return __atomic_load_n(&wkv_helpers, __ATOMIC_ACQUIRE); }
    """
    ctypedef void (*wkv_unit_fn)(void* ctx, long unit, int worker) noexcept nogil
    const long WKV_MAX_UNITS
    const int WKV_MAX_WORKERS
    int wkv_pool_run(long units, int threads, wkv_unit_fn fn, void* ctx) noexcept nogil
    long long wkv_pool_count() noexcept nogil
    int wkv_pool_helpers() noexcept nogil


def pool_stats():
    """``(reads, helpers)``: reads of this process that ran on the pool, and its helper threads."""
    return (wkv_pool_count(), wkv_pool_helpers())


cdef struct ReadCtx:
    # one read on the pool: its rows (see _run_jobs), cut into units of whole x-runs
    const Job* jobs
    const Py_ssize_t* job_of
    const int64_t* table
    const Py_ssize_t* unit_start
    Py_ssize_t units        # x-run units (_split_units)
    Py_ssize_t per          # x-run units per pool unit (more than the pool's word holds)
    Py_ssize_t B, block_bytes, capacity
    int flags
    int* status
    int* errs
    uint8_t** comp          # per worker (NULL until its first unit allocates it)
    uint8_t** scratch


@cython.boundscheck(False)
@cython.wraparound(False)
cdef void _read_unit(void* p, long k, int worker) noexcept nogil:
    cdef ReadCtx* c = <ReadCtx*>p
    cdef Py_ssize_t u, r, last = (k + 1) * c.per
    if last > c.units:
        last = c.units
    if c.comp[worker] == NULL:
        c.comp[worker] = <uint8_t*>malloc(c.capacity)
        c.scratch[worker] = <uint8_t*>malloc(c.block_bytes)
    for u in range(k * c.per, last):
        for r in range(c.unit_start[u], c.unit_start[u + 1]):
            if c.comp[worker] == NULL or c.scratch[worker] == NULL:
                c.status[r] = C_ERR_MEMORY
            else:
                c.status[r] = _read_row(
                    &c.jobs[c.job_of[r]], &c.table[r * P_COLS], c.B, c.block_bytes, c.capacity,
                    c.comp[worker], c.scratch[worker], c.flags, &c.errs[r],
                )


@cython.boundscheck(False)
@cython.wraparound(False)
cdef void _read_rows(
    const Job* jobs, const Py_ssize_t* job_of, const int64_t* table, Py_ssize_t rows,
    const Py_ssize_t* count, Py_ssize_t n,
    Py_ssize_t B, Py_ssize_t block_bytes, int threads, int flags, Py_ssize_t min_work,
    int* status, int* errs, Py_ssize_t* unit_start,
) noexcept nogil:
    # every row through _read_unit: on the pool (this thread and up to threads-1 helpers),
    # or on this thread alone for a small read or while another read holds the pool
    cdef Py_ssize_t r, w, k, units = 1, pool_units, work = 0
    cdef uint8_t* comp[WKV_MAX_WORKERS]
    cdef uint8_t* scratch[WKV_MAX_WORKERS]
    cdef ReadCtx c
    for r in range(rows):
        work += _prefix_bytes(&table[r * P_COLS], B, block_bytes // (B * B * B)) if flags & F_PARTIAL else block_bytes
    if threads > 1 and rows > 1 and work >= min_work:
        units = _split_units(count, n, threads, unit_start)
    if units <= 1:  # one unit of every row
        units, unit_start[0], unit_start[1] = 1, 0, rows
    c.jobs, c.job_of, c.table, c.unit_start = jobs, job_of, table, unit_start
    c.units = units
    c.per = (units + WKV_MAX_UNITS - 1) // WKV_MAX_UNITS
    pool_units = (units + c.per - 1) // c.per
    if threads > pool_units:
        threads = <int>pool_units
    if threads > WKV_MAX_WORKERS:
        threads = WKV_MAX_WORKERS
    c.B, c.block_bytes, c.capacity, c.flags = B, block_bytes, LZ4_compressBound(<int>block_bytes), flags
    c.status, c.errs = status, errs
    for w in range(threads):
        comp[w] = scratch[w] = NULL
    c.comp, c.scratch = comp, scratch
    if threads < 2 or wkv_pool_run(pool_units, threads, _read_unit, &c) != 0:
        for k in range(pool_units):
            _read_unit(&c, k, 0)
    for w in range(threads):
        free(comp[w])
        free(scratch[w])


@cython.boundscheck(False)
@cython.wraparound(False)
cdef object _run_jobs(
    Job* jobs, const Py_ssize_t* origin, Py_ssize_t n, Py_ssize_t B, Py_ssize_t block_bytes,
    int threads, int flags, Py_ssize_t parallel_min_bytes,
):
    # read the boxes of checked jobs (box i at file-local origin[3i:3i+3]); None or the
    # first failure as read_boxes returns it
    cdef Py_ssize_t first_s[3]
    cdef Py_ssize_t count_s[3]
    cdef Py_ssize_t* first = first_s
    cdef Py_ssize_t* count = count_s
    cdef Py_ssize_t* job_of = NULL
    cdef int64_t* table = NULL
    cdef int* status = NULL
    cdef int* errs = NULL
    cdef Py_ssize_t* unit_start = NULL
    cdef Py_ssize_t i, a, rows = 0, r, k
    cdef Grid* g
    try:
        if n > 1:
            first = <Py_ssize_t*>malloc(3 * n * sizeof(Py_ssize_t))
            count = <Py_ssize_t*>malloc(3 * n * sizeof(Py_ssize_t))
            if first == NULL or count == NULL:
                raise MemoryError()
        for i in range(n):
            g = &jobs[i].g
            if g.shape[1] == 0 or g.shape[2] == 0 or g.shape[3] == 0:
                count[3 * i] = count[3 * i + 1] = count[3 * i + 2] = 0
            else:
                _piece_counts(&origin[3 * i], &g.shape[1], B, &first[3 * i], &count[3 * i])
            rows += count[3 * i] * count[3 * i + 1] * count[3 * i + 2]
        if rows == 0:
            return None
        job_of = <Py_ssize_t*>malloc(rows * sizeof(Py_ssize_t))
        table = <int64_t*>malloc(rows * P_COLS * sizeof(int64_t))
        status = <int*>malloc(rows * sizeof(int))
        errs = <int*>malloc(rows * sizeof(int))
        unit_start = <Py_ssize_t*>malloc((rows + 1) * sizeof(Py_ssize_t))
        if job_of == NULL or table == NULL or status == NULL or errs == NULL or unit_start == NULL:
            raise MemoryError()
        with nogil:
            r = 0
            for i in range(n):
                k = count[3 * i] * count[3 * i + 1] * count[3 * i + 2]
                if k:
                    _fill_pieces(&origin[3 * i], &jobs[i].g.shape[1], B, &first[3 * i], &count[3 * i], &table[r * P_COLS])
                for a in range(k):
                    job_of[r + a] = i
                r += k
            _read_rows(
                jobs, job_of, table, rows, count, n, B, block_bytes, threads, flags, parallel_min_bytes,
                status, errs, unit_start,
            )
        for r in range(rows):
            if status[r] == C_ERR_MEMORY:
                raise MemoryError()
            if status[r]:
                return (job_of[r], table[r * P_COLS + P_INDEX], status[r], errs[r] if status[r] == C_ERR_OS else 0)
        return None
    finally:
        if first != first_s:
            free(first)
        if count != count_s:
            free(count)
        free(job_of)
        free(table)
        free(status)
        free(errs)
        free(unit_start)


cdef int _check_read_args(Py_ssize_t B, Py_ssize_t voxel_size, int threads) except -1:
    if B < 1 or B & (B - 1) or B > 1024:
        raise ValueError(f"block edge must be a power of two <= 1024, got {B}")
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    if voxel_size < 1 or B * B * B * voxel_size > MAX_BLOCK_BYTES:
        raise ValueError(f"blocks of {B}^3 voxels of {voxel_size} bytes do not fit LZ4")
    return 0


@cython.boundscheck(False)
@cython.wraparound(False)
def read_boxes(
    list boxes, Py_ssize_t B, Py_ssize_t voxel_size, int threads, int flags=F_DIRECT | F_PARTIAL | F_PREFIX,
    Py_ssize_t parallel_min_bytes=PARALLEL_MIN_WORK,
):
    """Fill each ``out`` of ``boxes`` with its box of an open compressed WKW file.

    ``boxes``: ``(fd, ends, data_offset, (x, y, z), out)`` tuples: the file's
    descriptor, its validated jump table (``uint64``), the box's file-local offset,
    and a writable ``(channels, x, y, z)`` array of any layout whose voxels are
    ``voxel_size`` bytes. Every block of every box is read (``pread``) and decoded
    on its own, without the GIL, on up to ``threads`` threads of the pool: only up to the
    box's last voxel in it (``PARTIAL``) from about the share of its compressed bytes
    that needs (``PREFIX``; all of them when that falls short), straight into ``out``
    where a whole block has the decoded layout there (``DIRECT``); ``flags`` turns
    these off (tests).
    Reads decoding fewer than ``parallel_min_bytes`` stay on the calling thread.
    Every voxel of each ``out`` is written.

    Returns None, or ``(box, block index, code, errno)`` of the first block (in the
    order of ``boxes``, then z, y, x) that fails: ``ERR_DECODE``,
    ``ERR_SHORT`` or ``ERR_OS``.
    """
    _check_read_args(B, voxel_size, threads)
    cdef Py_ssize_t n = len(boxes), block_bytes = B * B * B * voxel_size
    cdef Job* jobs = <Job*>malloc((n if n else 1) * sizeof(Job))
    cdef Py_buffer* views = <Py_buffer*>malloc((n if n else 1) * sizeof(Py_buffer))
    cdef Py_ssize_t* origin = <Py_ssize_t*>malloc((3 * n if n else 1) * sizeof(Py_ssize_t))
    cdef Py_ssize_t opened = 0, i, a, edge, file_len
    cdef const uint64_t[::1] ends
    cdef Grid* g
    try:
        if jobs == NULL or views == NULL or origin == NULL:
            raise MemoryError()
        for i in range(n):
            fd, ends, data_offset, offset, out = boxes[i]
            _open_grid(out, &views[i], True, &jobs[i].g)
            opened += 1
            g = &jobs[i].g
            if g.shape[0] * g.itemsize != voxel_size:
                raise ValueError(f"box {i}: voxels of {g.shape[0]} x {g.itemsize} bytes, the file has {voxel_size}")
            file_len = 1
            while file_len * file_len * file_len < ends.shape[0]:
                file_len *= 2
            if file_len * file_len * file_len != ends.shape[0] or ends.shape[0] == 0:
                raise ValueError(f"box {i}: a jump table of {ends.shape[0]} entries is not a WKW file's")
            edge = file_len * B
            for a in range(3):
                origin[3 * i + a] = offset[a]
                if origin[3 * i + a] < 0 or origin[3 * i + a] + g.shape[1 + a] > edge:
                    raise ValueError(f"box {i} at {tuple(offset)} of size {out.shape[1:]} exceeds the file of edge {edge}")
            jobs[i].fd = fd
            jobs[i].ends = &ends[0]
            jobs[i].data_offset = data_offset
            jobs[i].direct = _direct_layout(g, B)
        return _run_jobs(jobs, origin, n, B, block_bytes, threads, flags, parallel_min_bytes)
    finally:
        for i in range(opened):
            PyBuffer_Release(&views[i])
        free(jobs)
        free(views)
        free(origin)


# -- the lean path of small reads ------------------------------------------------------
# A read inside one data file already opened costs a few microseconds of Python around
# the kernel; SmallReads does that part in C: box arithmetic, the opened file's lookup by
# its grid index, the check that it is unchanged (fstat of the open descriptor), the
# output array, and the kernel. Anything else (a missing, unopened or changed file, a box
# spanning files, a damaged block) is left to the caller's general path, which also
# raises the errors.

cdef extern from *:
    """
    #include <sys/stat.h>
    /* 1 when fd is still the file the key was taken from: same inode, size and mtime,
       and still linked once (replacing the path by a rename unlinks the old file) */
    static int wkv_same_file(int fd, unsigned long long ino, long long size, long long mtime_ns) {
        struct stat st;
        if (fstat(fd, &st) != 0) return 0;
        return st.st_nlink == 1 && (unsigned long long)st.st_ino == ino && (long long)st.st_size == size
            && (long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec == mtime_ns;
    }
    """
    int wkv_same_file(int fd, unsigned long long ino, long long size, long long mtime_ns) noexcept nogil


cdef class _Opened:
    # one entry of SmallReads: the open file (kept alive while it is used) and its key
    cdef object owner
    cdef object ends_array
    cdef const uint64_t* ends
    cdef int fd
    cdef uint64_t data_offset
    cdef unsigned long long ino
    cdef long long size, mtime_ns


cdef class SmallReads:
    """The lean path of reads lying in one compressed data file of a mag.

    ``block_len``, ``file_len``, ``channels`` and ``dtype`` describe the mag. Files are
    added with :meth:`add` by the caller's general path once opened; :meth:`read`
    returns None whenever that path is needed.
    """

    cdef Py_ssize_t B, edge, channels, voxel_size, file_shift
    cdef object dtype
    cdef dict files
    cdef object __weakref__

    def __init__(self, Py_ssize_t block_len, Py_ssize_t file_len, Py_ssize_t channels, dtype):
        self.dtype = np.dtype(dtype)
        _check_read_args(block_len, channels * self.dtype.itemsize, 1)
        if file_len < 1 or file_len & (file_len - 1) or block_len * file_len > (1 << 30):
            raise ValueError(f"file length must be a power of two, got {file_len}")
        self.B = block_len
        self.edge = block_len * file_len
        self.file_shift = 0
        while (1 << self.file_shift) < self.edge:
            self.file_shift += 1
        self.channels = channels
        self.voxel_size = channels * self.dtype.itemsize
        self.files = {}

    def add(self, index, opened, key):
        """Remember ``opened`` (a ``CompressedFile``) as the file at grid ``index``
        (3 ints), taken when the file had ``key`` ``(inode, size, mtime_ns)``."""
        cdef _Opened e = _Opened()
        cdef const uint64_t[::1] ends = opened.ends
        if ends.shape[0] != (self.edge // self.B) ** 3:
            raise ValueError(f"{opened.path}: {ends.shape[0]} blocks, the mag's files have {(self.edge // self.B) ** 3}")
        e.owner = opened
        e.ends_array = opened.ends
        e.ends = &ends[0]
        e.fd = opened.fd
        e.data_offset = opened.header.data_offset
        e.ino, e.size, e.mtime_ns = key
        self.files[self._key(index[0], index[1], index[2])] = e

    def discard(self, index):
        """Forget the file at grid ``index`` (it is being replaced)."""
        self.files.pop(self._key(index[0], index[1], index[2]), None)

    def discard_file(self, opened):
        """Forget ``opened`` wherever it is (it left the caller's cache of open files)."""
        for k in [k for k, e in self.files.items() if (<_Opened>e).owner is opened]:
            del self.files[k]

    def clear(self):
        """Forget every file."""
        self.files.clear()

    cdef inline object _key(self, int64_t x, int64_t y, int64_t z):
        return (x << 42) | (y << 21) | z

    @cython.boundscheck(False)
    @cython.wraparound(False)
    def read(self, offset, size, int threads):
        """The box (absolute ``offset`` and ``size``, tuples of 3 ints) as a new Fortran-ordered
        ``(channels, x, y, z)`` array, or None when the caller's general path must read it."""
        cdef Py_ssize_t o[3]
        cdef Py_ssize_t n[3]
        cdef Py_ssize_t f[3]
        cdef Py_ssize_t a
        cdef object v, w
        if type(offset) is not tuple or type(size) is not tuple or len(offset) != 3 or len(size) != 3 or threads < 1:
            return None
        for a in range(3):
            v = offset[a]
            w = size[a]
            # ints the general path would refuse, or that C cannot hold, go to that path
            if type(v) is not int or type(w) is not int or not (0 <= v < (1 << 40)) or not (0 < w < (1 << 40)):
                return None
            o[a] = v
            n[a] = w
            if o[a] + n[a] > 0xFFFFFFFF:
                return None
            f[a] = o[a] >> self.file_shift
            if (o[a] + n[a] - 1) >> self.file_shift != f[a]:
                return None
            o[a] -= f[a] << self.file_shift
        cdef _Opened e = self.files.get(self._key(f[0], f[1], f[2]))
        if e is None:
            return None
        cdef bint same
        with nogil:
            same = wkv_same_file(e.fd, e.ino, e.size, e.mtime_ns)
        if not same:
            self.files.pop(self._key(f[0], f[1], f[2]), None)
            return None
        out = np.empty((self.channels, n[0], n[1], n[2]), dtype=self.dtype, order="F")
        cdef Py_buffer view
        cdef Job job
        _open_grid(out, &view, True, &job.g)
        try:
            job.fd = e.fd
            job.ends = e.ends
            job.data_offset = e.data_offset
            job.direct = _direct_layout(&job.g, self.B)
            failed = _run_jobs(
                &job, o, 1, self.B, self.B * self.B * self.B * self.voxel_size, threads,
                F_DIRECT | F_PARTIAL | F_PREFIX, PARALLEL_MIN_WORK,
            )
        finally:
            PyBuffer_Release(&view)
        return out if failed is None else None


@cython.boundscheck(False)
@cython.wraparound(False)
def encode_pieces(
    object data, const int64_t[:, ::1] pieces, Py_ssize_t B,
    const uint8_t[::1] old, const int64_t[::1] old_starts, const int64_t[::1] old_lengths,
    int block_type, int level, uint8_t[::1] out, int64_t[::1] out_lengths,
):
    """Encode one block per piece into ``out``, one after the other.

    A whole-block piece is encoded from ``data`` (a ``(channels, x, y, z)`` array of
    any dtype and layout); a partial one is merged into the block stored at
    ``old[old_starts[r] : old_starts[r] + old_lengths[r]]`` (zeros when its length is
    0) and re-encoded. ``out`` needs ``compress_bound(block bytes)`` bytes per piece;
    ``out_lengths[r]`` receives the encoded length of piece ``r``. Releases the GIL.
    Returns ``(-1, 0)`` or ``(row, error code)`` of the first failure.
    """
    _check_codec_args(block_type, level)
    cdef Py_buffer view
    cdef Grid g
    _open_grid(data, &view, False, &g)
    cdef Py_ssize_t k = pieces.shape[0], r, block_bytes, pos = 0, bad = -1
    cdef Py_ssize_t vs = g.shape[0] * g.itemsize
    cdef Py_ssize_t bs[4]
    cdef int bound, err = 0, got
    cdef uint8_t* scratch = NULL
    cdef void* state = NULL
    cdef const uint8_t* stored
    cdef uint8_t* dst
    try:
        block_bytes = _check_pieces(pieces, &g, B)
        bound = compress_bound(block_bytes)
        if out.shape[0] < k * bound or out_lengths.shape[0] < k:
            raise ValueError(f"out needs {k * bound} bytes and out_lengths {k} entries")
        if old_starts.shape[0] < k or old_lengths.shape[0] < k:
            raise ValueError("old_starts and old_lengths need one entry per piece")
        for r in range(k):
            if pieces[r, P_FULL] == 0 and (
                old_starts[r] < 0 or old_lengths[r] < 0 or old_starts[r] + old_lengths[r] > old.shape[0]
            ):
                raise ValueError(f"stored block {r} lies outside the buffer of old blocks")
        if k == 0:
            return (-1, 0)
        _block_strides(g.itemsize, vs, B, bs)
        stored = &old[0] if old.shape[0] else NULL
        dst = &out[0]
        with nogil:
            scratch = <uint8_t*>malloc(block_bytes)
            state = _new_state(block_type)
            if scratch == NULL or state == NULL:
                err = C_ERR_MEMORY
            else:
                for r in range(k):
                    if not pieces[r, P_FULL]:
                        if old_lengths[r] == 0:
                            memset(scratch, 0, block_bytes)
                        else:
                            got = LZ4_decompress_safe(
                                <const char*>(stored + old_starts[r]), <char*>scratch,
                                <int>old_lengths[r], <int>block_bytes,
                            )
                            if got != block_bytes:
                                bad, err = r, C_ERR_DECODE
                                break
                    _copy_box(
                        scratch + pieces[r, P_LO] * bs[1] + pieces[r, P_LO + 1] * bs[2] + pieces[r, P_LO + 2] * bs[3],
                        bs,
                        g.data + pieces[r, P_AT] * g.strides[1] + pieces[r, P_AT + 1] * g.strides[2]
                        + pieces[r, P_AT + 2] * g.strides[3],
                        g.strides, g.shape[0], g.itemsize,
                        pieces[r, P_SIZE], pieces[r, P_SIZE + 1], pieces[r, P_SIZE + 2], g.strides,
                    )
                    got = _encode(state, block_type, level, scratch, <int>block_bytes, dst + pos, bound)
                    if got <= 0:
                        bad, err = r, C_ERR_ENCODE
                        break
                    out_lengths[r] = got
                    pos += got
            free(scratch)
            free(state)
        if err == C_ERR_MEMORY:
            raise MemoryError()
        return (bad, err)
    finally:
        PyBuffer_Release(&view)

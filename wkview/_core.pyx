# cython: language_level=3, embedsignature=True
"""Compiled kernels of wkview: grid geometry, chunk enumeration and the merge
of new data into stored data.

Everything here takes and returns plain ints, tuples and NumPy arrays. It
never touches the disk and never imports the high-level classes
(``wkview.geometry``, ``wkview.view``, ...): those call into this module.

Coordinates are signed 64-bit integers; every input value (coordinate, size,
grid) must lie within +-2**60, which keeps all intermediates inside int64 (a
ValueError names the value otherwise). Divisions use floor semantics, like
Python's ``//``, so boxes with negative coordinates align the same way as in a
plain Python reference.
"""

from collections import namedtuple

cimport cython

from cpython.long cimport PyLong_FromLongLong
from cpython.ref cimport Py_INCREF
from cpython.tuple cimport PyTuple_New, PyTuple_SET_ITEM

from ._morton cimport compact_bits, morton3, spread_bits

ctypedef long long i64
ctypedef unsigned long long u64

CellPart = namedtuple(
    "CellPart", ["index", "local_offset", "size", "array_offset", "full"]
)
CellPart.__doc__ = """One grid cell (a file or a block) touched by a box.

index
    Grid index of the cell (coordinate // cell edge) per axis.
local_offset
    Where the covered part starts, in the cell's own coordinates.
size
    Size of the covered part.
array_offset
    Where the covered part starts in the caller's array (relative to the box).
full
    True when the box covers the cell completely.
"""


# ---------------------------------------------------------------------------
# scalar arithmetic (pure, cannot fail)

@cython.cdivision(True)
cdef inline i64 _floordiv(i64 a, i64 b) noexcept nogil:
    # C division truncates towards zero; Python floors. Callers guarantee b > 0.
    cdef i64 q = a / b
    if (a % b != 0) and (a < 0):
        q -= 1
    return q


cdef inline i64 _floor_to(i64 a, i64 grid) noexcept nogil:
    return _floordiv(a, grid) * grid


cdef inline i64 _ceil_to(i64 a, i64 grid) noexcept nogil:
    return -_floordiv(-a, grid) * grid


# ---------------------------------------------------------------------------
# argument conversion (Python level, raises on bad input)

# Bound on every coordinate, size and grid value: with all inputs within
# +-2**60, every intermediate (box ends, aligned corners, grid starts, chunk
# ends) stays far inside int64, so the C arithmetic below cannot overflow.
_COORD_LIMIT = 1 << 60


cdef int _vec3(object value, i64 out[3], str name) except -1:
    cdef Py_ssize_t n
    try:
        n = len(value)
    except TypeError:
        raise TypeError(f"{name} must be a sequence of 3 ints, got {value!r}") from None
    if n != 3:
        raise ValueError(f"{name} must have 3 coordinates, got {value!r}")
    for i in range(3):
        v = value[i]
        if isinstance(v, bool) or not hasattr(v, "__index__"):
            raise TypeError(f"{name} must contain ints, got {value!r}")
        v = v.__index__()
        if not -_COORD_LIMIT <= v <= _COORD_LIMIT:
            raise ValueError(f"{name} must lie within +-2**60, got {value!r}")
        out[i] = v
    return 0


cdef int _positive3(i64 v[3], str name, object original) except -1:
    for i in range(3):
        if v[i] <= 0:
            raise ValueError(f"{name} must be positive in every axis, got {original!r}")
    return 0


cdef int _nonnegative3(i64 v[3], str name, object original) except -1:
    for i in range(3):
        if v[i] < 0:
            raise ValueError(f"{name} must not be negative, got {original!r}")
    return 0


cdef inline tuple _tuple3(i64 v[3]):
    return (v[0], v[1], v[2])


# ---------------------------------------------------------------------------
# public kernels

def morton_index(x, y, z):
    """Morton (Z-order) index of block ``(x, y, z)`` inside a file, x bit lowest."""
    cdef i64 c[3]
    _vec3((x, y, z), c, "block coordinate")
    _nonnegative3(c, "block coordinate", (x, y, z))
    for i in range(3):
        if c[i] >= (1 << 21):
            raise ValueError(f"block coordinate {(x, y, z)!r} is too large for a Morton index")
    return morton3(<u64>c[0], <u64>c[1], <u64>c[2])


def morton_decode(index):
    """Block coordinate ``(x, y, z)`` of a Morton index (inverse of :func:`morton_index`)."""
    if isinstance(index, bool) or not hasattr(index, "__index__"):
        raise TypeError(f"Morton index must be an int, got {index!r}")
    value = index.__index__()
    if value < 0:
        raise ValueError(f"Morton index must not be negative, got {index!r}")
    if value >= (1 << 63):
        raise ValueError(f"Morton index must be below 2**63, got {index!r}")
    cdef u64 u = <u64>(<i64>value)
    return (compact_bits(u), compact_bits(u >> 1), compact_bits(u >> 2))


def align_box(offset, size, grid, bint outward=True):
    """Align the box ``(offset, size)`` to a grid of cell size ``grid``.

    Outward: the smallest aligned box that contains the box. Inward: the
    largest aligned box inside it (its size is 0 on an axis where no whole
    cell fits). Returns ``(offset, size)`` as tuples.
    """
    cdef i64 o[3]
    cdef i64 s[3]
    cdef i64 g[3]
    cdef i64 lo[3]
    cdef i64 hi[3]
    _vec3(offset, o, "offset")
    _vec3(size, s, "size")
    _vec3(grid, g, "grid")
    _nonnegative3(s, "size", size)
    _positive3(g, "grid", grid)
    for i in range(3):
        if outward:
            lo[i] = _floor_to(o[i], g[i])
            hi[i] = _ceil_to(o[i] + s[i], g[i])
        else:
            lo[i] = _ceil_to(o[i], g[i])
            hi[i] = _floor_to(o[i] + s[i], g[i])
            if hi[i] < lo[i]:
                hi[i] = lo[i]
        s[i] = hi[i] - lo[i]
    return _tuple3(lo), _tuple3(s)


def is_aligned(offset, size, grid):
    """True when both corners of the box lie on the grid."""
    cdef i64 o[3]
    cdef i64 s[3]
    cdef i64 g[3]
    _vec3(offset, o, "offset")
    _vec3(size, s, "size")
    _vec3(grid, g, "grid")
    _positive3(g, "grid", grid)
    for i in range(3):
        if _floor_to(o[i], g[i]) != o[i] or _floor_to(o[i] + s[i], g[i]) != o[i] + s[i]:
            return False
    return True


cdef class GridProjection:
    """The cells of a regular grid that a box touches, in x-fastest order.

    ``len()`` is O(1). Iterating yields :class:`CellPart` tuples. The first
    and last cell on each axis may be covered partially; the others fully.
    """

    cdef i64 offset[3]
    cdef i64 size[3]
    cdef i64 cell[3]
    cdef i64 first[3]   # grid index of the first touched cell per axis
    cdef i64 count[3]   # number of touched cells per axis

    def __cinit__(self, offset, size, cell):
        _vec3(offset, self.offset, "offset")
        _vec3(size, self.size, "size")
        _vec3(cell, self.cell, "cell size")
        _nonnegative3(self.size, "size", size)
        _positive3(self.cell, "cell size", cell)
        for i in range(3):
            if self.size[i] == 0:
                self.first[i] = _floordiv(self.offset[i], self.cell[i])
                self.count[i] = 0
            else:
                self.first[i] = _floordiv(self.offset[i], self.cell[i])
                self.count[i] = (
                    _floordiv(self.offset[i] + self.size[i] - 1, self.cell[i])
                    - self.first[i] + 1
                )

    def __len__(self):
        # Python ints: the C product could wrap; len() raises OverflowError instead
        return (<object>self.count[0]) * self.count[1] * self.count[2]

    @property
    def shape(self):
        """Number of touched cells per axis."""
        return _tuple3(self.count)

    @property
    def first_index(self):
        """Grid index of the first touched cell per axis."""
        return _tuple3(self.first)

    cdef object _part(self, i64 k[3]):
        cdef i64 idx[3]
        cdef i64 lo[3]
        cdef i64 hi[3]
        cdef i64 local[3]
        cdef i64 sz[3]
        cdef i64 arr[3]
        cdef bint full = True
        for i in range(3):
            idx[i] = self.first[i] + k[i]
            lo[i] = idx[i] * self.cell[i]
            hi[i] = lo[i] + self.cell[i]
            if lo[i] < self.offset[i]:
                lo[i] = self.offset[i]
                full = False
            if hi[i] > self.offset[i] + self.size[i]:
                hi[i] = self.offset[i] + self.size[i]
                full = False
            local[i] = lo[i] - idx[i] * self.cell[i]
            sz[i] = hi[i] - lo[i]
            arr[i] = lo[i] - self.offset[i]
        return CellPart(_tuple3(idx), _tuple3(local), _tuple3(sz), _tuple3(arr), full)

    def __iter__(self):
        cdef i64 k[3]
        for kz in range(self.count[2]):
            for ky in range(self.count[1]):
                for kx in range(self.count[0]):
                    k[0] = kx
                    k[1] = ky
                    k[2] = kz
                    yield self._part(k)

    def __repr__(self):
        return (
            f"GridProjection(offset={_tuple3(self.offset)}, size={_tuple3(self.size)}, "
            f"cell={_tuple3(self.cell)}, cells={len(self)})"
        )


def project_box(offset, size, cell):
    """Project the box ``(offset, size)`` onto a grid of cell size ``cell``.

    Use the file edge (``file_len * block_len``) for files and ``block_len``
    for blocks. Returns a lazy :class:`GridProjection`.
    """
    return GridProjection(offset, size, cell)


# Chunk z starts are pooled as Python ints (no int allocation per chunk) up to
# this many chunks per axis; beyond it they are computed per chunk.
cdef i64 _POOL_LIMIT = 1 << 16


cdef class ChunkGrid:
    """Chunks of a box, with borders between chunks on a given alignment.

    The grid starts at ``offset`` rounded down to ``alignment`` and steps by
    ``chunk_size``; every chunk is clipped to the box. Order: x outermost,
    z innermost (the order of webknossos' ``BoundingBox.chunk``).

    Creating the grid and ``len()`` are O(1). Iterating yields the top-left
    corners of the clipped chunks as tuples; :meth:`boxes` yields
    ``(offset, size)`` pairs and :meth:`offsets_array` returns all corners as
    one ``(n, 3)`` int64 array.
    """

    cdef i64 lo[3]      # box start
    cdef i64 hi[3]      # box end (exclusive)
    cdef i64 start[3]   # grid start (aligned, <= lo)
    cdef i64 step[3]
    cdef i64 count[3]

    def __cinit__(self, offset, size, chunk_size, alignment=None):
        cdef i64 o[3]
        cdef i64 s[3]
        cdef i64 a[3]
        _vec3(offset, o, "offset")
        _vec3(size, s, "size")
        _vec3(chunk_size, self.step, "chunk_size")
        _nonnegative3(s, "size", size)
        _positive3(self.step, "chunk_size", chunk_size)
        if alignment is None:
            a[0] = a[1] = a[2] = 1
        else:
            _vec3(alignment, a, "chunk_border_alignments")
            _positive3(a, "chunk_border_alignments", alignment)
            for i in range(3):
                if self.step[i] % a[i] != 0:
                    raise ValueError(
                        f"chunk_size {tuple(chunk_size)!r} must be a multiple of "
                        f"chunk_border_alignments {tuple(alignment)!r}"
                    )
        for i in range(3):
            self.lo[i] = o[i]
            self.hi[i] = o[i] + s[i]
            self.start[i] = _floor_to(o[i], a[i]) if alignment is not None else o[i]
            if s[i] == 0:
                self.count[i] = 0
            else:
                self.count[i] = _floordiv(self.hi[i] - 1 - self.start[i], self.step[i]) + 1

    cdef inline i64 _chunk_lo(self, int axis, i64 k) noexcept nogil:
        cdef i64 c = self.start[axis] + k * self.step[axis]
        return c if c > self.lo[axis] else self.lo[axis]

    cdef inline i64 _chunk_hi(self, int axis, i64 k) noexcept nogil:
        cdef i64 c = self.start[axis] + k * self.step[axis] + self.step[axis]
        return c if c < self.hi[axis] else self.hi[axis]

    def __len__(self):
        # Python ints: the C product could wrap; len() raises OverflowError instead
        return (<object>self.count[0]) * self.count[1] * self.count[2]

    @property
    def shape(self):
        """Number of chunks per axis."""
        return _tuple3(self.count)

    def __iter__(self):
        return _ChunkIter(self, False)

    def boxes(self):
        """Iterate ``(offset, size)`` tuples of the clipped chunks."""
        return _ChunkIter(self, True)

    def offsets_array(self):
        """All chunk corners as an ``(n, 3)`` int64 NumPy array (one allocation)."""
        import numpy as np
        out = np.empty((len(self), 3), dtype=np.int64)
        if out.shape[0] == 0:
            return out
        axes = [
            np.maximum(self.start[i] + np.arange(self.count[i], dtype=np.int64) * self.step[i], self.lo[i])
            for i in range(3)
        ]
        out[:] = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
        return out

    def __repr__(self):
        return (
            f"ChunkGrid(offset={_tuple3(self.lo)}, end={_tuple3(self.hi)}, "
            f"chunk_size={_tuple3(self.step)}, chunks={len(self)})"
        )


cdef class _ChunkIter:
    # The x and y values change rarely and are kept as Python ints between
    # changes; z changes every chunk, so its values come from a pool when the
    # axis is short enough.
    cdef ChunkGrid grid
    cdef i64 ix, iy, iz
    cdef bint with_size, done
    cdef object x, y, sx, sy
    cdef list pz, psz   # pooled z starts and sizes, or None

    def __cinit__(self, ChunkGrid grid, bint with_size):
        self.grid = grid
        self.with_size = with_size
        self.ix = self.iy = self.iz = 0
        self.done = grid.count[0] == 0 or grid.count[1] == 0 or grid.count[2] == 0
        self.pz = self.psz = None
        if self.done:
            return
        if grid.count[2] <= _POOL_LIMIT:
            self.pz = [grid._chunk_lo(2, k) for k in range(grid.count[2])]
            self.psz = [grid._chunk_hi(2, k) - grid._chunk_lo(2, k) for k in range(grid.count[2])]
        self._load_x()
        self._load_y()

    cdef int _load_x(self) except -1:
        self.x = self.grid._chunk_lo(0, self.ix)
        self.sx = self.grid._chunk_hi(0, self.ix) - self.grid._chunk_lo(0, self.ix)
        return 0

    cdef int _load_y(self) except -1:
        self.y = self.grid._chunk_lo(1, self.iy)
        self.sy = self.grid._chunk_hi(1, self.iy) - self.grid._chunk_lo(1, self.iy)
        return 0

    def __iter__(self):
        return self

    def __length_hint__(self):
        if self.done:
            return 0
        cdef object ny = self.grid.count[1]
        cdef object nz = self.grid.count[2]
        return (self.grid.count[0] - self.ix) * ny * nz - self.iy * nz - self.iz

    def __next__(self):
        if self.done:
            raise StopIteration
        cdef object z
        cdef object sz
        if self.pz is not None:
            z = self.pz[self.iz]
            sz = self.psz[self.iz] if self.with_size else None
        else:
            z = PyLong_FromLongLong(self.grid._chunk_lo(2, self.iz))
            sz = self.grid._chunk_hi(2, self.iz) - self.grid._chunk_lo(2, self.iz)
        # build the tuple from kept ints: no int allocation per chunk
        cdef tuple off = PyTuple_New(3)
        Py_INCREF(self.x)
        PyTuple_SET_ITEM(off, 0, self.x)
        Py_INCREF(self.y)
        PyTuple_SET_ITEM(off, 1, self.y)
        Py_INCREF(z)
        PyTuple_SET_ITEM(off, 2, z)
        cdef object result = off
        if self.with_size:
            result = (off, (self.sx, self.sy, sz))
        self.iz += 1
        if self.iz == self.grid.count[2]:
            self.iz = 0
            self.iy += 1
            if self.iy == self.grid.count[1]:
                self.iy = 0
                self.ix += 1
                if self.ix == self.grid.count[0]:
                    self.done = True
                    return result
                self._load_x()
            self._load_y()
        return result


def chunk_grid(offset, size, chunk_size, alignment=None):
    """Lazy chunks of the box ``(offset, size)``; see :class:`ChunkGrid`."""
    return ChunkGrid(offset, size, chunk_size, alignment)


# ---------------------------------------------------------------------------
# the per-call arithmetic of small reads

cdef inline bint _small_ints(object seq, i64* out, i64 lo) noexcept:
    # 3 exact Python ints >= lo from a tuple or list (anything else: False, no exception)
    cdef Py_ssize_t i
    cdef object v
    if not (isinstance(seq, tuple) or type(seq) is list) or len(seq) != 3:
        return False
    for i in range(3):
        v = seq[i]
        if type(v) is not int:
            return False
        try:
            out[i] = v
        except OverflowError:
            return False
        if out[i] < lo or out[i] > (1LL << 60):
            return False
    return True


def view_box(offset, size, origin, extent, bint bounded):
    """``(absolute offset, size)`` of a read of ``size`` at ``offset`` of a view at
    ``origin`` of size ``extent``, as tuples; None unless both are 3 plain ints
    (offset >= 0, size > 0) and the box lies inside a bounded view: the caller's
    own checks then run and name what is wrong."""
    cdef i64 o[3]
    cdef i64 n[3]
    cdef i64 g[3]
    cdef i64 e[3]
    if not (_small_ints(offset, o, 0) and _small_ints(size, n, 1) and _small_ints(origin, g, 0)):
        return None
    if bounded:
        if not _small_ints(extent, e, 0):
            return None
        for i in range(3):
            if o[i] + n[i] > e[i]:
                return None
    return (g[0] + o[0], g[1] + o[1], g[2] + o[2]), (n[0], n[1], n[2])


def file_box(offset, size, i64 edge):
    """``(file index, file-local offset)`` of a box lying in one file of edge ``edge``,
    None when it spans several (offset and size: 3 ints each, sizes > 0)."""
    cdef i64 o[3]
    cdef i64 n[3]
    cdef i64 f[3]
    if not (_small_ints(offset, o, -(1LL << 60)) and _small_ints(size, n, 1)):
        _vec3(offset, o, "offset")
        _vec3(size, n, "size")
        _positive3(n, "size", size)
    if edge <= 0:
        raise ValueError(f"edge must be positive, got {edge}")
    for i in range(3):
        f[i] = _floordiv(o[i], edge)
        if _floordiv(o[i] + n[i] - 1, edge) != f[i]:
            return None
    return (f[0], f[1], f[2]), (o[0] - f[0] * edge, o[1] - f[1] * edge, o[2] - f[2] * edge)


cdef inline tuple _triple(object a, object b, object c):
    cdef tuple t = PyTuple_New(3)
    Py_INCREF(a)
    PyTuple_SET_ITEM(t, 0, a)
    Py_INCREF(b)
    PyTuple_SET_ITEM(t, 1, b)
    Py_INCREF(c)
    PyTuple_SET_ITEM(t, 2, c)
    return t


cdef class GroupChunks:
    """The chunks of one group of a chunk plan, enumerated lazily.

    A group is a product of runs of consecutive chunks per axis; the runs' chunk
    starts and sizes are given as lists (``xs, xl, ys, yl, zs, zl``), ``first`` is
    the plan's index of each run's first chunk and ``shape`` the plan's chunk count
    per axis (for the chunk numbers). Iterating yields ``(number, offset, size)``
    with offset and size as 3-tuples, x outermost, z innermost; a size equal to
    the previous one is the same tuple object. ``len()`` is O(1).
    """

    cdef list xs, xl, ys, yl, zs, zl
    cdef Py_ssize_t nx, ny, nz, ix, iy, iz
    cdef i64 plan_ny, plan_nz, fx, fy, fz
    cdef object last_size

    def __cinit__(self, list xs, list xl, list ys, list yl, list zs, list zl, first, shape):
        if len(xs) != len(xl) or len(ys) != len(yl) or len(zs) != len(zl):
            raise ValueError("each axis needs as many chunk sizes as chunk starts")
        self.xs, self.xl, self.ys, self.yl, self.zs, self.zl = xs, xl, ys, yl, zs, zl
        self.nx, self.ny, self.nz = len(xs), len(ys), len(zs)
        self.fx, self.fy, self.fz = first
        _, self.plan_ny, self.plan_nz = shape
        self.ix = self.iy = self.iz = 0
        self.last_size = None

    def __len__(self):
        return self.nx * self.ny * self.nz

    def __reduce__(self):
        return (
            GroupChunks,
            (self.xs, self.xl, self.ys, self.yl, self.zs, self.zl,
             (self.fx, self.fy, self.fz), (0, self.plan_ny, self.plan_nz)),
        )

    def __iter__(self):
        # a fresh iterator each time (describe() may peek while another loop runs)
        return GroupChunks(
            self.xs, self.xl, self.ys, self.yl, self.zs, self.zl,
            (self.fx, self.fy, self.fz), (0, self.plan_ny, self.plan_nz),
        )

    @cython.boundscheck(False)
    @cython.wraparound(False)
    def __next__(self):
        if self.ix >= self.nx or self.ny == 0 or self.nz == 0:
            raise StopIteration
        cdef Py_ssize_t ix = self.ix, iy = self.iy, iz = self.iz
        cdef object sx = self.xl[ix], sy = self.yl[iy], sz = self.zl[iz]
        cdef tuple last = <tuple>self.last_size if self.last_size is not None else None
        if last is None or last[0] is not sx or last[1] is not sy or last[2] is not sz:
            self.last_size = _triple(sx, sy, sz)
        number = ((self.fx + ix) * self.plan_ny + self.fy + iy) * self.plan_nz + self.fz + iz
        result = (number, _triple(self.xs[ix], self.ys[iy], self.zs[iz]), self.last_size)
        self.iz += 1
        if self.iz == self.nz:
            self.iz = 0
            self.iy += 1
            if self.iy == self.ny:
                self.iy = 0
                self.ix += 1
        return result


# ---------------------------------------------------------------------------
# read-modify-write

def merge_into(existing, data, local_offset, shape, dtype):
    """Merge ``data`` into a stored region and return what to store.

    Parameters
    ----------
    existing : ndarray or None
        The stored region, shape ``(channels, *shape)``, or None when nothing
        is stored there yet (a missing file or block reads as zeros).
    data : ndarray
        New voxels, shape ``(channels, sx, sy, sz)``.
    local_offset : tuple of 3 ints
        Where ``data`` starts inside the region.
    shape : tuple of 3 ints
        The region's spatial shape.
    dtype
        Voxel dtype of the region.

    Returns
    -------
    ndarray
        An array of shape ``(channels, *shape)``: ``existing`` with ``data``
        written at ``local_offset`` (modified in place and returned, in its own
        memory order), or, without ``existing``, a new Fortran-ordered array
        of zeros with ``data`` written into it.
    """
    import numpy as np
    cdef i64 o[3]
    cdef i64 s[3]
    _vec3(local_offset, o, "local_offset")
    _vec3(shape, s, "shape")
    _nonnegative3(o, "local_offset", local_offset)
    if data.ndim != 4:
        raise ValueError(f"data must be 4D (channels, x, y, z), got shape {data.shape}")
    for i in range(3):
        if o[i] + data.shape[i + 1] > s[i]:
            raise ValueError(
                f"data of shape {data.shape[1:]} at {tuple(local_offset)} "
                f"does not fit into a region of shape {tuple(shape)}"
            )
    full_shape = (data.shape[0], s[0], s[1], s[2])
    if existing is None:
        out = np.zeros(full_shape, dtype=dtype, order="F")
    else:
        if tuple(existing.shape) != full_shape:
            raise ValueError(
                f"stored region has shape {existing.shape}, expected {full_shape}"
            )
        out = existing
    out[:, o[0]:o[0] + data.shape[1], o[1]:o[1] + data.shape[2], o[2]:o[2] + data.shape[3]] = data
    return out

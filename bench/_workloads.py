"""Shared pieces of the IO benchmarks (``bench/compare.py`` and ``bench/bench_io.py``).

* the data: ``wkview.sample.em_like((n, n, n), seed=0)`` (uint8, LZ4HC ratio about 1.8),
  cached as ``.npy`` under :func:`cache_dir` (generating 512^3 takes ~15 s);
* the geometry of the five workloads for an edge ``n`` (:class:`Geometry`);
* one adapter per library (:data:`LIBS`): ``wkview``, raw ``libwkw`` (the ``wkw``
  package), and webknossos 4.3.3 on WKW (``wk-wkw``) and on its default Zarr3
  (``wk-zarr3``); webknossos is imported only by its adapters;
* the workload functions themselves (the code that is timed).

Layout of every mag: LZ4HC (WKW block type 3), block_len 32, files of ``n/2`` voxels
per edge (``file_len = n / 64``), so every size has 2x2x2 files; at n=512 this is
the issue's ``file_len`` 8 (files of 256^3 voxels). webknossos on WKW uses the same
(chunk_shape 32, shard_shape n/2); on Zarr3 its defaults (compress=True).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Callable

import numpy as np

__all__ = [
    "LIBS",
    "WK_LIBS",
    "WORKLOADS",
    "WRITE_WORKLOADS",
    "Geometry",
    "cache_dir",
    "load_data",
    "make_lib",
    "wk_installed",
    "import_wk",
    "Unavailable",
    "data_bytes",
    "warm_page_cache",
    "small_reads",
    "full_read",
    "libwkw_merge_write",
]

LIBS = ("wkview", "libwkw", "wk-wkw", "wk-zarr3")
WK_LIBS = ("wk-wkw", "wk-zarr3")
BASELINE = "libwkw"
WORKLOADS = ("small_reads", "voxel_reads", "full_read", "aligned_write", "unaligned_write", "small_edit", "buffered_slices")
WRITE_WORKLOADS = ("aligned_write", "unaligned_write", "small_edit", "buffered_slices")
#: write workloads that start from a copy of a filled mag
EDIT_WORKLOADS = ("unaligned_write", "small_edit")
EDIT_EDGE = 8
READ_WORKLOADS = ("small_reads", "voxel_reads", "full_read")
#: read workloads timed per call (many small reads at the small-read offsets)
PER_CALL_WORKLOADS = ("small_reads", "voxel_reads")

LAYER = "color"
SEED = 0
BLOCK_LEN = 32
SMALL_EDGE = 32
N_SMALL_READS = 2000
N_SMALL_READS_AS_TEST = 200  # the first ones, when a benchmark runs once as a test


# -- data ------------------------------------------------------------------------------


def cache_dir() -> Path:
    """``$WKVIEW_BENCH_CACHE``, else ``${TMPDIR:-/tmp}/wkview-bench-cache`` (never the repo)."""
    env = os.environ.get("WKVIEW_BENCH_CACHE")
    if env:
        return Path(env)
    return Path(tempfile.gettempdir()) / "wkview-bench-cache"


def load_data(n: int, *, cache: bool | None = None) -> np.ndarray:
    """The ``n^3`` EM-like volume (Fortran order, uint8), from the cache or generated.

    ``cache`` defaults to True from 256^3 up (smaller volumes take well under a second).
    """
    if cache is None:
        cache = n >= 256
    path = cache_dir() / f"em_like_{n}x{n}x{n}_seed{SEED}.npy"
    if cache and path.is_file():
        try:
            data = np.load(path)
            if data.shape == (n, n, n) and data.dtype == np.uint8:
                return np.asfortranarray(data)
        except (OSError, ValueError):
            pass  # damaged cache file: regenerate
    from wkview.sample import em_like

    data = em_like((n, n, n), seed=SEED)
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                np.save(f, data)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
    return data


# -- geometry --------------------------------------------------------------------------


@dataclass(frozen=True)
class Geometry:
    """Where each workload reads and writes, for a cube of edge ``n``.

    At n=512: 2,000 reads of 32^3 at random offsets (seed 0); the whole cube;
    an unaligned write of 300^3 at (17, 45, 100); 256 z-slices of 512x512.
    Smaller cubes scale the unaligned box and the number of slices with n.
    """

    n: int
    file_len: int = 0  # 0: n // 64 (files of n/2 voxels per edge)
    zarr3_shard: int = 0  # 0: webknossos' default shard shape (1024^3 with its default chunk 32^3)

    def __post_init__(self) -> None:
        n = self.n
        if n < 64 or n & (n - 1):
            raise ValueError(f"the size must be a power of two >= 64, got {n}")
        if self.file_len == 0:
            object.__setattr__(self, "file_len", n // 64 if n <= 2048 else 32)
        fl = self.file_len
        if fl < 1 or fl & (fl - 1):
            raise ValueError(f"file_len must be a power of two, got {fl}")

    @property
    def block_len(self) -> int:
        return BLOCK_LEN

    @property
    def file_edge(self) -> int:
        return self.block_len * self.file_len

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.n, self.n, self.n)

    @cached_property
    def small_offsets(self) -> list[tuple[int, int, int]]:
        rng = np.random.default_rng(SEED)
        offsets = rng.integers(0, self.n - SMALL_EDGE + 1, size=(N_SMALL_READS, 3))
        return [(int(x), int(y), int(z)) for x, y, z in offsets]

    @property
    def small_size(self) -> tuple[int, int, int]:
        return (SMALL_EDGE, SMALL_EDGE, SMALL_EDGE)

    @property
    def unaligned_offset(self) -> tuple[int, int, int]:
        return tuple(max(1, round(v * self.n / 512)) for v in (17, 45, 100))  # type: ignore[return-value]

    @property
    def unaligned_size(self) -> tuple[int, int, int]:
        s = round(300 * self.n / 512)
        return (s, s, s)

    @property
    def n_slices(self) -> int:
        return self.n // 2

    # -- the arrays each workload writes (views or copies of ``data``) --

    def unaligned_data(self, data: np.ndarray) -> np.ndarray:
        """Voxels for the unaligned write: a mirrored corner of ``data`` (differs from what is stored)."""
        s = self.unaligned_size
        return np.asfortranarray(data[: s[0], : s[1], : s[2]][::-1, ::-1, ::-1])

    def unaligned_expected(self, data: np.ndarray) -> np.ndarray:
        expected = data.copy(order="F")
        o, s = self.unaligned_offset, self.unaligned_size
        expected[o[0] : o[0] + s[0], o[1] : o[1] + s[1], o[2] : o[2] + s[2]] = self.unaligned_data(data)
        return expected

    def edit_data(self, data: np.ndarray) -> np.ndarray:
        """Voxels of the small edit: an 8^3 mirrored corner, written at ``unaligned_offset``."""
        e = EDIT_EDGE
        return np.asfortranarray(data[:e, :e, :e][::-1, ::-1, ::-1])

    def edit_expected(self, data: np.ndarray) -> np.ndarray:
        expected = data.copy(order="F")
        o, e = self.unaligned_offset, EDIT_EDGE
        expected[o[0] : o[0] + e, o[1] : o[1] + e, o[2] : o[2] + e] = self.edit_data(data)
        return expected

    def slab(self, data: np.ndarray) -> np.ndarray:
        """The ``n x n x n/2`` block the slice workload writes (contiguous: a Fortran z-range)."""
        return data[:, :, : self.n_slices]


# -- helpers ---------------------------------------------------------------------------


def as3d(array: np.ndarray) -> np.ndarray:
    """``(1, x, y, z)`` -> ``(x, y, z)``."""
    if array.ndim == 4:
        if array.shape[0] != 1:
            raise AssertionError(f"expected one channel, got shape {array.shape}")
        return array[0]
    return array


def data_files(mag_dir: Path) -> list[Path]:
    """The files holding voxels (not ``header.wkw`` / ``zarr.json`` metadata)."""
    out = []
    for root, _dirs, files in os.walk(mag_dir):
        for name in files:
            if name in ("header.wkw", "zarr.json", ".zarray", ".zattrs", ".zgroup"):
                continue
            out.append(Path(root) / name)
    return out


def data_bytes(mag_dir: Path) -> int:
    return sum(p.stat().st_size for p in data_files(mag_dir))


def warm_page_cache(mag_dir: Path) -> int:
    """Read every file of the mag once so that timed reads hit the page cache."""
    total = 0
    for p in data_files(mag_dir):
        with open(p, "rb") as f:
            while chunk := f.read(1 << 24):
                total += len(chunk)
    return total


class Unavailable(Exception):
    """A library of the comparison cannot be imported here."""


def wk_installed() -> bool:
    """Whether a ``webknossos`` package is installed (cheap: no import)."""
    import importlib.util

    return importlib.util.find_spec("webknossos") is not None


def import_wk() -> Any:
    """Import webknossos (it warns at import: silenced); :class:`Unavailable` if that fails."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import webknossos
    except Exception as exc:  # ImportError, or a broken install
        raise Unavailable(f"webknossos is not importable ({type(exc).__name__}: {exc})") from exc
    return webknossos


# -- workload functions (the timed code) ----------------------------------------------


def small_reads(read: Callable[..., Any], offsets: list[tuple[int, int, int]], size: tuple[int, int, int]) -> Any:
    """``read(offset, size)`` for every offset; returns the last result."""
    result = None
    for off in offsets:
        result = read(off, size)
    return result


def full_read(read: Callable[..., Any], size: tuple[int, int, int]) -> Any:
    return read((0, 0, 0), size)


def libwkw_merge_write(handle: Any, offset: tuple[int, int, int], data: np.ndarray, file_edge: int) -> None:
    """The least work WKW allows for an unaligned write into a compressed mag with raw libwkw.

    Compressed WKW files are written whole. For every touched file: a file the box
    covers completely is written straight from ``data``; a partially covered one is
    read, the new voxels are merged in with NumPy, and the file is written back.
    """
    e = file_edge
    start = offset
    end = tuple(o + s for o, s in zip(offset, data.shape))
    first = [s // e for s in start]
    last = [(t - 1) // e for t in end]
    for fz in range(first[2], last[2] + 1):
        for fy in range(first[1], last[1] + 1):
            for fx in range(first[0], last[0] + 1):
                f0 = (fx * e, fy * e, fz * e)
                lo = [max(start[i], f0[i]) for i in range(3)]
                hi = [min(end[i], f0[i] + e) for i in range(3)]
                piece = data[
                    lo[0] - start[0] : hi[0] - start[0],
                    lo[1] - start[1] : hi[1] - start[1],
                    lo[2] - start[2] : hi[2] - start[2],
                ]
                if all(lo[i] == f0[i] and hi[i] == f0[i] + e for i in range(3)):
                    handle.write(f0, piece)
                    continue
                stored = handle.read(f0, (e, e, e))[0]
                stored[
                    lo[0] - f0[0] : hi[0] - f0[0],
                    lo[1] - f0[1] : hi[1] - f0[1],
                    lo[2] - f0[2] : hi[2] - f0[2],
                ] = piece
                handle.write(f0, stored)


# -- library adapters ------------------------------------------------------------------
#
# Each adapter works on a dataset folder ``path`` (mag data in ``path/color/1``) and
# exposes: create_empty (a new, empty mag), create_filled (the template, holding the
# whole cube), open, and the workload operations on what those return.


class _Lib:
    name = ""
    fmt = "wkw"

    def mag_dir(self, path: Path) -> Path:
        return Path(path) / LAYER / "1"

    def close(self, target: Any) -> None:
        pass

    # reads: return callables taking (offset, size)
    def small_reader(self, target: Any) -> Callable[..., Any]:
        raise NotImplementedError

    def full_reader(self, target: Any) -> Callable[..., Any]:
        return self.small_reader(target)

    def read_box(self, target: Any, offset: tuple[int, int, int], size: tuple[int, int, int]) -> np.ndarray:
        return as3d(self.small_reader(target)(offset, size))

    def prepare_slices(self, target: Any, geo: Geometry) -> None:
        """Set-up outside the timed part before :meth:`write_slices` (e.g. the bounding box)."""


class WkviewLib(_Lib):
    name = "wkview"

    def create_empty(self, path: Path, geo: Geometry, small_shards: bool = False) -> Any:
        import wkview

        ds = wkview.Dataset.create(path, scale=(1, 1, 1))
        layer = ds.add_layer(LAYER, "color", dtype_per_channel="uint8")
        return layer.add_mag(1, block_len=geo.block_len, file_len=geo.file_len, compress=True)

    def create_filled(self, path: Path, geo: Geometry, data: np.ndarray, small_shards: bool = False) -> None:
        """The shared WKW template (also read by raw libwkw): files written by raw libwkw."""
        import wkw
        import wkview

        mag = self.create_empty(path, geo, small_shards)
        handle = wkw.Dataset.open(str(self.mag_dir(path)))
        try:
            handle.write((0, 0, 0), data)
        finally:
            handle.close()
        mag.layer.bounding_box = wkview.BoundingBox((0, 0, 0), geo.shape)

    def open(self, path: Path) -> Any:
        import wkview

        return wkview.Dataset(path).get_layer(LAYER).get_mag(1)

    def close(self, target: Any) -> None:
        target._store.close()

    def small_reader(self, target: Any) -> Callable[..., Any]:
        return target.get_view().read  # a View from MagView.get_view(), relative = absolute offsets

    def read_box(self, target: Any, offset: tuple[int, int, int], size: tuple[int, int, int]) -> np.ndarray:
        return as3d(target.read(offset, size))

    def write_aligned(self, target: Any, data: np.ndarray) -> None:
        target.write(data, offset=(0, 0, 0))

    def write_unaligned(self, target: Any, data: np.ndarray, offset: tuple[int, int, int]) -> None:
        view = target.get_view()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # "not aligned with its files": intended here
            view.write(data, offset=offset)

    def has_slice_writer(self, target: Any) -> bool:
        return hasattr(target, "get_buffered_slice_writer")

    def write_slices(self, target: Any, slab: np.ndarray) -> None:
        with target.get_buffered_slice_writer(offset=(0, 0, 0), buffer_size=None, dimension="z") as writer:
            for z in range(slab.shape[2]):
                writer.send(slab[:, :, z])


class LibwkwLib(_Lib):
    name = "libwkw"

    def create_empty(self, path: Path, geo: Geometry, small_shards: bool = False) -> Any:
        import wkw

        header = wkw.Header(
            np.uint8,
            num_channels=1,
            block_len=geo.block_len,
            file_len=geo.file_len,
            block_type=wkw.Header.BLOCK_TYPE_LZ4HC,
        )
        mag_dir = self.mag_dir(path)
        mag_dir.parent.mkdir(parents=True, exist_ok=True)
        return wkw.Dataset.create(str(mag_dir), header)

    def create_filled(self, path: Path, geo: Geometry, data: np.ndarray, small_shards: bool = False) -> None:
        handle = self.create_empty(path, geo, small_shards)
        try:
            handle.write((0, 0, 0), data)
        finally:
            handle.close()

    def open(self, path: Path) -> Any:
        import wkw

        return wkw.Dataset.open(str(self.mag_dir(path)))

    def close(self, target: Any) -> None:
        target.close()

    def small_reader(self, target: Any) -> Callable[..., Any]:
        return target.read

    def write_aligned(self, target: Any, data: np.ndarray) -> None:
        target.write((0, 0, 0), data)

    def write_unaligned(self, target: Any, data: np.ndarray, offset: tuple[int, int, int]) -> None:
        libwkw_merge_write(target, offset, data, target.header.block_len * target.header.file_len)

    def has_slice_writer(self, target: Any) -> bool:
        return True

    def write_slices(self, target: Any, slab: np.ndarray) -> None:
        target.write((0, 0, 0), slab)  # the baseline: one aligned write of the whole block


class _WkLib(_Lib):
    """webknossos 4.3.3 (``Dataset`` / ``Layer`` / ``MagView``)."""

    data_format = ""

    def _wk(self) -> Any:
        return import_wk()

    def _add_mag(self, layer: Any, geo: Geometry, small_shards: bool) -> Any:
        raise NotImplementedError

    def create_empty(self, path: Path, geo: Geometry, small_shards: bool = False) -> Any:
        wk = self._wk()
        ds = wk.Dataset(path, voxel_size=(1, 1, 1))
        layer = ds.add_layer(LAYER, "color", dtype=np.uint8, data_format=self.data_format)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return self._add_mag(layer, geo, small_shards)

    def create_filled(self, path: Path, geo: Geometry, data: np.ndarray, small_shards: bool = False) -> None:
        mag = self.create_empty(path, geo, small_shards)
        self.write_aligned(mag, data)

    def open(self, path: Path) -> Any:
        wk = self._wk()
        return wk.Dataset.open(path).get_layer(LAYER).get_mag(1)

    def small_reader(self, target: Any) -> Callable[..., Any]:
        read = target.read
        return lambda offset, size: read(absolute_offset=offset, size=size)

    def write_aligned(self, target: Any, data: np.ndarray) -> None:
        target.write(data, absolute_offset=(0, 0, 0), allow_resize=True)

    def write_unaligned(self, target: Any, data: np.ndarray, offset: tuple[int, int, int]) -> None:
        target.write(data, absolute_offset=offset, allow_unaligned=True)

    def has_slice_writer(self, target: Any) -> bool:
        return True

    def prepare_slices(self, target: Any, geo: Geometry) -> None:
        # webknossos' slice writer does not grow the bounding box: set it beforehand
        wk = self._wk()
        target.layer.bounding_box = wk.BoundingBox((0, 0, 0), (geo.n, geo.n, geo.n_slices))

    def write_slices(self, target: Any, slab: np.ndarray) -> None:
        with target.get_buffered_slice_writer(absolute_offset=(0, 0, 0)) as writer:
            for z in range(slab.shape[2]):
                writer.send(slab[:, :, z])


class WkWkwLib(_WkLib):
    name = "wk-wkw"
    data_format = "wkw"

    def _add_mag(self, layer: Any, geo: Geometry, small_shards: bool) -> Any:
        return layer.add_mag(1, chunk_shape=geo.block_len, shard_shape=geo.file_edge, compress=True)


class WkZarr3Lib(_WkLib):
    name = "wk-zarr3"
    fmt = "zarr3"
    data_format = "zarr3"

    def _add_mag(self, layer: Any, geo: Geometry, small_shards: bool) -> Any:
        if small_shards:  # only for the untimed warm-up: a default 1024^3 shard makes any write take seconds
            return layer.add_mag(1, chunk_shape=32, shard_shape=32, compress=True)
        if geo.zarr3_shard:
            return layer.add_mag(1, shard_shape=geo.zarr3_shard, compress=True)
        return layer.add_mag(1, compress=True)  # webknossos' default chunk and shard shapes


class WkBackendLib(WkWkwLib):
    """webknossos 4.3.3 on WKW with wkview as its storage backend (``wkview.webknossos_backend``):
    the same webknossos calls as ``wk-wkw``; the backend is enabled on first use (for
    ``bench/compare_backend.py``, where every cell is its own process)."""

    name = "wk-wkw+wkview"

    def _wk(self) -> Any:
        wk = import_wk()
        from wkview import webknossos_backend

        if not webknossos_backend.is_enabled():
            level = os.environ.get("WKVIEW_BENCH_BACKEND_LEVEL")  # set by compare_backend.py --level
            webknossos_backend.enable(compression_level=int(level) if level else None)
        return wk


#: webknossos on WKW without and with wkview as its backend (``bench/compare_backend.py``)
BACKEND_LIBS = ("wk-wkw", WkBackendLib.name)

_LIB_CLASSES = {cls.name: cls for cls in (WkviewLib, LibwkwLib, WkWkwLib, WkZarr3Lib, WkBackendLib)}


def make_lib(name: str) -> _Lib:
    try:
        return _LIB_CLASSES[name]()
    except KeyError:
        raise ValueError(f"unknown library {name!r}; choose from {', '.join(_LIB_CLASSES)}") from None


def template_owner(lib: str) -> str:
    """Which library's filled template ``lib`` reads: wkview and libwkw share one WKW folder."""
    return "wkview" if lib in ("wkview", "libwkw") else lib


def copy_dataset(src: Path, dst: Path) -> None:
    shutil.copytree(src, dst)

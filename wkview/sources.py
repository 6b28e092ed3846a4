"""Readers of the volumes ``wkview convert`` ingests: image stacks, tile mosaics,
multi-page TIFFs, ``.npy`` files and raw binary volumes.

Every reader is a small picklable object (paths and metadata, no open files or
pixel data), so conversion jobs can carry it to worker processes and cluster
nodes. Each one knows its ``shape`` (x, y, z), its ``dtype`` (per channel) and
``num_channels``, and reads any box with :meth:`VolumeSource.read` as a
``(channels, x, y, z)`` array, the layout :meth:`wkview.View.write` takes.

Images follow the usual convention: rows are y, columns are x (an image of
``H x W`` pixels is ``W`` voxels along x). ``.npy`` files already hold wkview's
axis order: ``(x, y, z)`` or ``(channels, x, y, z)`` for a volume, ``(x, y)`` or
``(channels, x, y)`` for one slice: what ``View.read()`` returns and
``wkview export --format npy`` writes.

All checks that can fail on user input (missing files, images of another size
or type, unreadable files) happen in :func:`open_source`, before anything is
written, and raise :class:`~wkview.errors.SourceError` naming the file.
"""

from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np

from .errors import SourceError

__all__ = [
    "VolumeSource",
    "ImageStack",
    "TileMosaic",
    "TiffVolume",
    "NpyVolume",
    "RawVolume",
    "open_source",
    "natural_sort_key",
    "IMAGE_SUFFIXES",
]

PathLike = Union[str, os.PathLike]
Box = tuple[tuple[int, int, int], tuple[int, int, int]]

#: File name endings read as 2D images (case-insensitive).
TIFF_SUFFIXES = (".tif", ".tiff")
PIL_SUFFIXES = (".png", ".jpg", ".jpeg")
IMAGE_SUFFIXES = TIFF_SUFFIXES + PIL_SUFFIXES + (".npy",)

_PLACEHOLDER = re.compile(r"\{([xyz])\}")


def natural_sort_key(name: str) -> list[Any]:
    """Sort key that orders embedded numbers by value: ``2.tif`` before ``10.tif``."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


# -- 2D images ----------------------------------------------------------------------


@dataclass(frozen=True)
class _ImageInfo:
    """What one 2D image holds: ``(x, y)`` size, dtype per channel, channels."""

    size: tuple[int, int]
    dtype: np.dtype
    channels: int


_PIL_MODES = {
    "L": (np.dtype(np.uint8), 1),
    "I;16": (np.dtype(np.uint16), 1),
    "I;16L": (np.dtype(np.uint16), 1),
    "I;16B": (np.dtype(np.uint16), 1),
    "I": (np.dtype(np.int32), 1),
    "F": (np.dtype(np.float32), 1),
    "RGB": (np.dtype(np.uint8), 3),
}


def _suffix(path: Path) -> str:
    return path.suffix.lower()


def _image_info(path: Path) -> _ImageInfo:
    """Size and pixel type of a 2D image, from its header only (no pixel data)."""
    suffix = _suffix(path)
    try:
        if suffix in TIFF_SUFFIXES:
            import tifffile

            with tifffile.TiffFile(path) as tif:
                series = tif.series[0]
                shape, dtype = tuple(series.shape), np.dtype(series.dtype)
            return _info_from_array_shape(path, shape, dtype, image=True)
        if suffix == ".npy":
            array = np.load(path, mmap_mode="r", allow_pickle=False)
            return _info_from_array_shape(path, tuple(array.shape), array.dtype, image=False)
        if suffix in PIL_SUFFIXES:
            from PIL import Image

            with Image.open(path) as img:
                mode, size = img.mode, img.size
            if mode not in _PIL_MODES:
                raise SourceError(
                    f"{path}: images of mode {mode!r} are not supported (use grayscale 8/16-bit, "
                    "32-bit float or RGB)"
                )
            dtype, channels = _PIL_MODES[mode]
            return _ImageInfo((int(size[0]), int(size[1])), dtype, channels)
    except SourceError:
        raise
    except Exception as exc:  # any reader failure on a damaged file
        raise SourceError(f"{path}: not a readable image ({type(exc).__name__}: {exc})") from None
    raise SourceError(f"{path}: unsupported file type {suffix!r} (expected one of {', '.join(IMAGE_SUFFIXES)})")


def _info_from_array_shape(path: Path, shape: tuple[int, ...], dtype: np.dtype, image: bool) -> _ImageInfo:
    """Image arrays are (rows=y, cols=x[, channels]); npy slices are ([channels,] x, y)."""
    _check_dtype(path, dtype)
    if len(shape) == 2:
        return _ImageInfo((shape[1], shape[0]) if image else (shape[0], shape[1]), dtype, 1)
    if len(shape) == 3 and image and shape[2] in (3,):
        return _ImageInfo((shape[1], shape[0]), dtype, shape[2])
    if len(shape) == 3 and not image:
        return _ImageInfo((shape[1], shape[2]), dtype, shape[0])
    raise SourceError(f"{path}: expected one 2D slice, found an array of shape {shape}")


def _check_dtype(path: Any, dtype: np.dtype) -> None:
    if dtype.kind not in "uif" or dtype.itemsize > 8 or dtype == np.float16:
        raise SourceError(f"{path}: voxel type {dtype} is not supported (unsigned/signed int up to 64 bit, float32, float64)")


def _read_image(path: Path, info: _ImageInfo) -> np.ndarray:
    """The image as ``(channels, x, y)``, checked against ``info``."""
    suffix = _suffix(path)
    try:
        if suffix in TIFF_SUFFIXES:
            import tifffile

            array = tifffile.imread(path, series=0)
            array = array.T if array.ndim == 2 else array.transpose(2, 1, 0)
        elif suffix == ".npy":
            array = np.load(path, allow_pickle=False)
            array = array[None] if array.ndim == 2 else array
        else:
            from PIL import Image

            with Image.open(path) as img:
                array = np.asarray(img)
            array = array.T if array.ndim == 2 else array.transpose(2, 1, 0)
    except Exception as exc:
        raise SourceError(f"{path}: cannot read the image ({type(exc).__name__}: {exc})") from None
    if array.ndim == 2:
        array = array[None]
    if array.shape != (info.channels, *info.size) or array.dtype != info.dtype:
        raise SourceError(
            f"{path}: holds {array.shape[1:]} pixels of {array.dtype} x {array.shape[0]}, "
            f"expected {info.size} of {info.dtype} x {info.channels}"
        )
    return array


def _for_each_slice(load: Any, n: int) -> None:
    """``load(k)`` for k in 0..n-1 on a few threads: the readers spend their time in file
    reads and decoders that release the GIL, so slices load side by side."""
    if n < 4:
        for k in range(n):
            load(k)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(READ_THREADS, n)) as pool:
        for future in [pool.submit(load, k) for k in range(n)]:
            future.result()


#: Threads that read the slices of one batch.
READ_THREADS = 4


# -- the reader interface -------------------------------------------------------------------


class VolumeSource:
    """A volume to convert: ``shape`` (x, y, z), ``dtype`` per channel, ``num_channels``."""

    shape: tuple[int, int, int]
    dtype: np.dtype
    num_channels: int

    def read(self, offset: Sequence[int], size: Sequence[int]) -> np.ndarray:
        """The box ``offset .. offset + size`` as a ``(channels, x, y, z)`` array."""
        raise NotImplementedError

    def describe(self) -> str:
        """One line naming the source (for messages)."""
        raise NotImplementedError

    def fingerprint(self) -> list[Any]:
        """JSON-serialisable identity of the input (paths, sizes, times): a changed input
        makes an unfinished conversion start again instead of resuming."""
        raise NotImplementedError

    @property
    def nbytes_per_voxel(self) -> int:
        return int(self.dtype.itemsize) * self.num_channels


def _stat_list(paths: Sequence[Path]) -> list[Any]:
    out = []
    for p in paths:
        st = p.stat()
        out.append([str(p), st.st_size, st.st_mtime_ns])
    return out


def _empty(channels: int, size: Sequence[int], dtype: np.dtype) -> np.ndarray:
    return np.zeros((channels, *size), dtype=dtype, order="F")


@dataclass(frozen=True)
class ImageStack(VolumeSource):
    """2D images, one per z, in the given order (TIFF, PNG, JPEG or 2D ``.npy``)."""

    files: tuple[Path, ...]
    info: _ImageInfo

    @classmethod
    def from_files(cls, files: Sequence[PathLike]) -> "ImageStack":
        paths = tuple(Path(f) for f in files)
        if not paths:
            raise SourceError("no images to convert")
        first = _image_info(paths[0])
        for p in paths[1:]:
            info = _image_info(p)
            if info != first:
                raise SourceError(
                    f"{p}: {info.size[0]}x{info.size[1]} pixels of {info.dtype} x {info.channels}, "
                    f"but the first slice {paths[0].name} has {first.size[0]}x{first.size[1]} of "
                    f"{first.dtype} x {first.channels}"
                )
        return cls(paths, first)

    @property
    def shape(self) -> tuple[int, int, int]:  # type: ignore[override]
        return (self.info.size[0], self.info.size[1], len(self.files))

    @property
    def dtype(self) -> np.dtype:  # type: ignore[override]
        return self.info.dtype

    @property
    def num_channels(self) -> int:  # type: ignore[override]
        return self.info.channels

    def read(self, offset: Sequence[int], size: Sequence[int]) -> np.ndarray:
        out = _empty(self.num_channels, size, self.dtype)
        x0, y0, z0 = offset

        def load(k: int) -> None:
            image = _read_image(self.files[z0 + k], self.info)
            out[:, :, :, k] = image[:, x0 : x0 + size[0], y0 : y0 + size[1]]

        _for_each_slice(load, size[2])
        return out

    def describe(self) -> str:
        return f"{len(self.files)} images ({self.files[0].name} .. {self.files[-1].name}) in {self.files[0].parent}"

    def fingerprint(self) -> list[Any]:
        return ["stack", _stat_list(self.files)]


@dataclass(frozen=True)
class TileMosaic(VolumeSource):
    """2D tiles of one size named by a pattern with ``{x}``, ``{y}``, ``{z}`` indices.

    Tiles are placed by their indices, counted from the smallest index present on
    each axis; a missing tile reads as zeros.
    """

    pattern: str
    tiles: tuple[tuple[tuple[int, int, int], Path], ...]  # ((ix, iy, iz), path), indices from 0
    counts: tuple[int, int, int]
    info: _ImageInfo

    @classmethod
    def from_pattern(cls, pattern: str) -> "TileMosaic":
        names = _PLACEHOLDER.findall(pattern)
        if len(set(names)) != len(names):
            raise SourceError(f"pattern {pattern!r} names an axis twice")
        regex_parts, last = [], 0
        for m in _PLACEHOLDER.finditer(pattern):
            regex_parts.append(re.escape(pattern[last : m.start()]))
            regex_parts.append(f"(?P<{m.group(1)}>\\d+)")
            last = m.end()
        regex_parts.append(re.escape(pattern[last:]))
        regex = re.compile("".join(regex_parts) + r"\Z")
        found: dict[tuple[int, int, int], Path] = {}
        for name in glob.glob(_PLACEHOLDER.sub("*", glob.escape(pattern).replace("[{]", "{").replace("[}]", "}"))):
            m = regex.match(name)
            if m is None:
                continue
            index = tuple(int(m.group(a)) if a in names else 0 for a in "xyz")
            if index in found:
                raise SourceError(f"tiles {found[index]} and {name} have the same indices {index}")
            found[index] = Path(name)  # type: ignore[index]
        if not found:
            raise SourceError(f"no files match the pattern {pattern!r}")
        low = [min(i[a] for i in found) for a in range(3)]
        high = [max(i[a] for i in found) for a in range(3)]
        counts = tuple(high[a] - low[a] + 1 for a in range(3))
        ordered = sorted(found.items(), key=lambda kv: (kv[0][2], kv[0][1], kv[0][0]))
        first = _image_info(ordered[0][1])
        for _, p in ordered[1:]:
            info = _image_info(p)
            if info != first:
                raise SourceError(
                    f"{p}: a tile of {info.size[0]}x{info.size[1]} {info.dtype} x {info.channels}, but "
                    f"{ordered[0][1]} has {first.size[0]}x{first.size[1]} {first.dtype} x {first.channels}"
                )
        tiles = tuple(((i[0] - low[0], i[1] - low[1], i[2] - low[2]), p) for i, p in ordered)
        return cls(pattern, tiles, counts, first)  # type: ignore[arg-type]

    @property
    def shape(self) -> tuple[int, int, int]:  # type: ignore[override]
        return (self.counts[0] * self.info.size[0], self.counts[1] * self.info.size[1], self.counts[2])

    @property
    def dtype(self) -> np.dtype:  # type: ignore[override]
        return self.info.dtype

    @property
    def num_channels(self) -> int:  # type: ignore[override]
        return self.info.channels

    def read(self, offset: Sequence[int], size: Sequence[int]) -> np.ndarray:
        out = _empty(self.num_channels, size, self.dtype)
        tw, th = self.info.size
        x0, y0, z0 = offset
        x1, y1, z1 = x0 + size[0], y0 + size[1], z0 + size[2]
        wanted = []
        for (ix, iy, iz), path in self.tiles:
            tx0, ty0 = ix * tw, iy * th
            # overlap of this tile with the box, in voxels
            ax0, ax1 = max(x0, tx0), min(x1, tx0 + tw)
            ay0, ay1 = max(y0, ty0), min(y1, ty0 + th)
            if z0 <= iz < z1 and ax0 < ax1 and ay0 < ay1:
                wanted.append((path, tx0, ty0, ax0, ax1, ay0, ay1, iz))

        def load(k: int) -> None:
            path, tx0, ty0, ax0, ax1, ay0, ay1, iz = wanted[k]
            image = _read_image(path, self.info)
            out[:, ax0 - x0 : ax1 - x0, ay0 - y0 : ay1 - y0, iz - z0] = image[
                :, ax0 - tx0 : ax1 - tx0, ay0 - ty0 : ay1 - ty0
            ]

        _for_each_slice(load, len(wanted))
        return out

    def describe(self) -> str:
        return f"a mosaic of {len(self.tiles)} tiles of {self.info.size[0]}x{self.info.size[1]} ({self.pattern})"

    def fingerprint(self) -> list[Any]:
        return ["mosaic", self.pattern, [list(i) for i, _ in self.tiles], _stat_list([p for _, p in self.tiles])]


@dataclass(frozen=True)
class TiffVolume(VolumeSource):
    """One multi-page TIFF (a page per z) or a 3D TIFF series."""

    path: Path
    series_shape: tuple[int, ...]  # (z, y, x) or (z, y, x, 3)
    series_dtype: np.dtype
    paged: bool  # one page per z: reads load only the pages they need

    @classmethod
    def from_file(cls, path: PathLike) -> "TiffVolume":
        import tifffile

        path = Path(path)
        try:
            with tifffile.TiffFile(path) as tif:
                series = tif.series[0]
                shape, dtype = tuple(int(s) for s in series.shape), np.dtype(series.dtype)
                paged = len(series.pages) == (shape[0] if len(shape) >= 3 else 1)
        except Exception as exc:
            raise SourceError(f"{path}: not a readable TIFF ({type(exc).__name__}: {exc})") from None
        _check_dtype(path, dtype)
        if len(shape) == 2:
            shape = (1, *shape)
        rgb = len(shape) == 4 and shape[3] == 3
        if len(shape) != 3 and not rgb:
            raise SourceError(f"{path}: a TIFF series of shape {shape} is not a z-stack (expected z, y, x[, 3])")
        return cls(path, shape, dtype, paged)

    @property
    def shape(self) -> tuple[int, int, int]:  # type: ignore[override]
        return (self.series_shape[2], self.series_shape[1], self.series_shape[0])

    @property
    def dtype(self) -> np.dtype:  # type: ignore[override]
        return self.series_dtype

    @property
    def num_channels(self) -> int:  # type: ignore[override]
        return 3 if len(self.series_shape) == 4 else 1

    def read(self, offset: Sequence[int], size: Sequence[int]) -> np.ndarray:
        import tifffile

        x0, y0, z0 = offset
        try:
            if self.paged:
                pages = tifffile.imread(self.path, series=0, key=range(z0, z0 + size[2]))
                if size[2] == 1:
                    pages = pages[None]
            else:  # the whole series is one block of pixel data: read it, keep the box
                pages = tifffile.imread(self.path, series=0)[z0 : z0 + size[2]]
        except Exception as exc:
            raise SourceError(f"{self.path}: cannot read pages {z0}..{z0 + size[2] - 1} ({exc})") from None
        pages = pages.reshape((size[2], self.series_shape[1], self.series_shape[2], self.num_channels))
        box = pages[:, y0 : y0 + size[1], x0 : x0 + size[0], :]
        out = _empty(self.num_channels, size, self.dtype)
        out[...] = box.transpose(3, 2, 1, 0)
        return out

    def describe(self) -> str:
        return f"the TIFF {self.path} ({self.shape[2]} slices of {self.shape[0]}x{self.shape[1]})"

    def fingerprint(self) -> list[Any]:
        return ["tiff", _stat_list([self.path])]


@dataclass(frozen=True)
class NpyVolume(VolumeSource):
    """One ``.npy`` file holding ``(x, y, z)`` or ``(channels, x, y, z)``, memory-mapped."""

    path: Path
    array_shape: tuple[int, ...]
    array_dtype: np.dtype

    @classmethod
    def from_file(cls, path: PathLike) -> "NpyVolume":
        path = Path(path)
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except Exception as exc:
            raise SourceError(f"{path}: not a readable .npy file ({type(exc).__name__}: {exc})") from None
        if array.ndim not in (3, 4):
            raise SourceError(
                f"{path}: a .npy volume must be (x, y, z) or (channels, x, y, z), found shape {array.shape}"
            )
        _check_dtype(path, array.dtype)
        return cls(path, tuple(int(s) for s in array.shape), np.dtype(array.dtype))

    @property
    def shape(self) -> tuple[int, int, int]:  # type: ignore[override]
        return tuple(self.array_shape[-3:])  # type: ignore[return-value]

    @property
    def dtype(self) -> np.dtype:  # type: ignore[override]
        return self.array_dtype

    @property
    def num_channels(self) -> int:  # type: ignore[override]
        return self.array_shape[0] if len(self.array_shape) == 4 else 1

    def read(self, offset: Sequence[int], size: Sequence[int]) -> np.ndarray:
        array = np.load(self.path, mmap_mode="r", allow_pickle=False)
        if array.ndim == 3:
            array = array[None]
        (x0, y0, z0), (sx, sy, sz) = offset, size
        out = _empty(self.num_channels, size, self.dtype)
        out[...] = array[:, x0 : x0 + sx, y0 : y0 + sy, z0 : z0 + sz]
        return out

    def describe(self) -> str:
        return f"the array {self.path} of shape {self.array_shape}"

    def fingerprint(self) -> list[Any]:
        return ["npy", _stat_list([self.path])]


@dataclass(frozen=True)
class RawVolume(VolumeSource):
    """A raw binary volume of ``shape`` (x, y, z) voxels, memory-mapped, never loaded whole.

    ``order="F"``: x varies fastest in the file; ``"C"``: z varies fastest.
    """

    path: Path
    raw_shape: tuple[int, int, int]
    raw_dtype: np.dtype
    order: str = "F"

    @classmethod
    def from_file(cls, path: PathLike, shape: Sequence[int], dtype: Any, order: str = "F") -> "RawVolume":
        path = Path(path)
        if not path.is_file():
            raise SourceError(f"{path}: no such file")
        if order not in ("F", "C"):
            raise SourceError(f"order must be 'F' or 'C', got {order!r}")
        try:
            dt = np.dtype(dtype)
        except TypeError:
            raise SourceError(f"not a voxel type: {dtype!r}") from None
        _check_dtype(path, dt)
        shape3 = tuple(int(s) for s in shape)
        if len(shape3) != 3 or min(shape3) <= 0:
            raise SourceError(f"shape must be three positive sizes x,y,z, got {tuple(shape)}")
        expected = shape3[0] * shape3[1] * shape3[2] * dt.itemsize
        actual = path.stat().st_size
        if actual != expected:
            raise SourceError(
                f"{path}: holds {actual} bytes, but {shape3[0]}x{shape3[1]}x{shape3[2]} voxels of {dt} "
                f"need {expected}"
            )
        return cls(path, shape3, dt, order)  # type: ignore[arg-type]

    @property
    def shape(self) -> tuple[int, int, int]:  # type: ignore[override]
        return self.raw_shape

    @property
    def dtype(self) -> np.dtype:  # type: ignore[override]
        return self.raw_dtype

    @property
    def num_channels(self) -> int:  # type: ignore[override]
        return 1

    def read(self, offset: Sequence[int], size: Sequence[int]) -> np.ndarray:
        array = np.memmap(self.path, dtype=self.raw_dtype, mode="r", shape=self.raw_shape, order=self.order)
        (x0, y0, z0), (sx, sy, sz) = offset, size
        out = _empty(1, size, self.dtype)
        out[0] = array[x0 : x0 + sx, y0 : y0 + sy, z0 : z0 + sz]
        return out

    def describe(self) -> str:
        x, y, z = self.raw_shape
        return f"the raw volume {self.path} ({x}x{y}x{z} {self.raw_dtype}, order {self.order})"

    def fingerprint(self) -> list[Any]:
        return ["raw", list(self.raw_shape), str(self.raw_dtype), self.order, _stat_list([self.path])]


# -- finding the reader ---------------------------------------------------------------------


def _images_in(folder: Path) -> list[Path]:
    files = [p for p in folder.iterdir() if p.is_file() and _suffix(p) in IMAGE_SUFFIXES and not p.name.startswith(".")]
    return sorted(files, key=lambda p: natural_sort_key(p.name))


#: Readers :func:`open_source` tries first: ``opener(source, axis_order)`` returns a source or
#: None. :mod:`wkview.volume_sources` (imported with the package) adds its chunked-volume
#: detector here; it builds on this module, so this module cannot import it.
VOLUME_OPENERS: list[Callable[[PathLike, Optional[str]], Optional[VolumeSource]]] = []


def open_source(source: PathLike, axis_order: Optional[str] = None) -> VolumeSource:
    """The reader for ``source``, checked before anything is written.

    ``source`` may be

    * a folder of 2D images (TIFF, PNG, JPEG, 2D ``.npy``), one per z, in natural order of
      their names (``2.tif`` before ``10.tif``); a folder holding just one file reads
      that file;
    * a glob (``"stack/*.png"``), also in natural order;
    * a pattern with ``{x}``, ``{y}`` and/or ``{z}`` placeholders for a tile mosaic
      (``"tiles/{z}/{y}/{x}.jpg"``);
    * one multi-page or 3D TIFF file (one page per z);
    * one ``.npy`` file holding ``(x, y, z)`` or ``(channels, x, y, z)``;
    * a chunked or single-file volume (:mod:`wkview.volume_sources`): a Zarr v2/v3 array,
      an OME-Zarr multiscale, an N5 dataset, a Neuroglancer precomputed volume, an HDF5
      dataset (``file.h5:/path/to/dataset``; ``axis_order`` ``"zyx"`` (default) or
      ``"xyz"`` says how its axes are stored) or an MRC/REC file.

    Raw binary volumes need their shape and type: use :meth:`RawVolume.from_file`.

    Raises
    ------
    SourceError
        When nothing is found, a file is unreadable, or images differ in size or type
        (naming the file).
    """
    for opener in VOLUME_OPENERS:
        volume = opener(source, axis_order)
        if volume is not None:
            return volume
    text = os.fspath(source)
    if _PLACEHOLDER.search(text):
        return TileMosaic.from_pattern(text)
    path = Path(text)
    if path.is_dir():
        files = _images_in(path)
        if not files:
            raise SourceError(f"{path}: the folder holds no images ({', '.join(IMAGE_SUFFIXES)})")
        if len(files) == 1:
            return _open_file(files[0], single=True)
        return ImageStack.from_files(files)
    if path.is_file():
        return _open_file(path, single=True)
    if glob.has_magic(text):
        files = [Path(p) for p in glob.glob(text) if Path(p).is_file()]
        if not files:
            raise SourceError(f"no files match {text!r}")
        files.sort(key=lambda p: natural_sort_key(p.name))
        if len(files) == 1:
            return _open_file(files[0], single=True)
        return ImageStack.from_files(files)
    raise SourceError(f"{text}: no such file or folder")


def _open_file(path: Path, single: bool) -> VolumeSource:
    suffix = _suffix(path)
    if suffix in TIFF_SUFFIXES:
        return TiffVolume.from_file(path)
    if suffix == ".npy":
        array = np.load(path, mmap_mode="r", allow_pickle=False) if path.stat().st_size else None
        if array is not None and array.ndim in (3, 4):
            return NpyVolume.from_file(path)
        return ImageStack.from_files([path])
    if suffix in PIL_SUFFIXES:
        return ImageStack.from_files([path])
    raise SourceError(f"{path}: unsupported file type {suffix!r} (expected one of {', '.join(IMAGE_SUFFIXES)})")


def source_from_args(source: PathLike, raw: Optional[dict] = None) -> VolumeSource:
    """:func:`open_source`, or a :class:`RawVolume` when ``raw`` gives shape, dtype, order."""
    if raw is not None:
        return RawVolume.from_file(source, raw["shape"], raw["dtype"], raw.get("order", "F"))
    return open_source(source)

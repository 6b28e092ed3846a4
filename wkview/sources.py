"""Readers of the volumes ``wkview convert`` ingests: image stacks, tile mosaics,
TIFFs of any layout, ``.npy`` files and raw binary volumes. Decoding one image
file (and what a TIFF holds) is :mod:`wkview.images`' job; this module places
images in a volume.

Every reader is a small picklable object (paths and metadata, no open files or
pixel data), so conversion jobs can carry it to worker processes and cluster
nodes. Each one is a :class:`VolumeSource`: it knows its ``shape`` (x, y, z), its
``dtype`` (per channel), ``num_channels`` and maybe ``channel_names``, and reads any box with :meth:`VolumeSource.read` as a
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

import abc
import glob
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np

from .errors import SourceError
from .images import (
    IMAGE_SUFFIXES,
    PIL_SUFFIXES,
    TIFF_SUFFIXES,
    ImageInfo,
    TiffLayout,
    check_dtype,
    image_info,
    read_image,
    suffix,
    tiff_layout,
)

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

log = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]
Box = tuple[tuple[int, int, int], tuple[int, int, int]]


_PLACEHOLDER = re.compile(r"\{([xyz])\}")


def natural_sort_key(name: str) -> list[Any]:
    """Sort key that orders embedded numbers by value: ``2.tif`` before ``10.tif``."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


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


class VolumeSource(abc.ABC):
    """A volume to convert: ``shape`` (x, y, z), ``dtype`` per channel, ``num_channels``.

    Subclasses are small picklable objects (paths and metadata): conversion jobs carry
    them to other processes, where :meth:`read` opens the files.
    """

    @property
    @abc.abstractmethod
    def shape(self) -> tuple[int, int, int]:
        """Size in voxels (x, y, z)."""

    @property
    @abc.abstractmethod
    def dtype(self) -> np.dtype:
        """Voxel type per channel."""

    @property
    @abc.abstractmethod
    def num_channels(self) -> int:
        """Channels per voxel."""

    @property
    def channel_names(self) -> Optional[list[str]]:
        """A name per channel from the file's metadata (OME channel names), or None."""
        return None

    @property
    def channels_in_one_layer(self) -> bool:
        """Whether the channels belong together in one layer (an RGB picture's colours,
        or a ``.npy`` in wkview's own ``(channels, x, y, z)`` layout). Otherwise
        :func:`wkview.convert.convert` writes one layer per channel by default."""
        return False

    @abc.abstractmethod
    def read(self, offset: Sequence[int], size: Sequence[int]) -> np.ndarray:
        """The box ``offset .. offset + size`` as a ``(channels, x, y, z)`` array."""

    @abc.abstractmethod
    def describe(self) -> str:
        """One line naming the source (for messages)."""

    @abc.abstractmethod
    def fingerprint(self) -> list[Any]:
        """JSON-serialisable identity of the input (paths, sizes, times): a changed input
        makes an unfinished conversion start again instead of resuming."""

    @property
    def nbytes_per_voxel(self) -> int:
        """Bytes of one voxel with all its channels."""
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
    """2D images, one per z, in the given order (TIFF, PNG, JPEG or 2D ``.npy``).

    Images of different sizes are placed at x = y = 0 of their slice and padded with
    zeros to the largest width and height, as webknossos 4.3.3 does (with a warning);
    a different pixel type or channel count is an error.
    """

    files: tuple[Path, ...]
    info: ImageInfo  # the first image's; ``size`` of the largest one
    sizes: tuple[tuple[int, int], ...] = ()  # (x, y) per file when they differ

    @classmethod
    def from_files(cls, files: Sequence[PathLike]) -> "ImageStack":
        paths = tuple(Path(f) for f in files)
        if not paths:
            raise SourceError("no images to convert")
        first = image_info(paths[0])
        sizes = [first.size]
        for p in paths[1:]:
            info = image_info(p)
            if not info.same_kind(first):
                raise SourceError(
                    f"{p}: pixels of {info.dtype} x {info.channels}, but the first slice {paths[0].name} "
                    f"has {first.dtype} x {first.channels}"
                )
            sizes.append(info.size)
        if len(set(sizes)) == 1:
            return cls(paths, first)
        largest = (max(x for x, _ in sizes), max(y for _, y in sizes))
        odd = next(p for p, size in zip(paths, sizes) if size != sizes[0])
        log.warning(
            "%s: images of different sizes (%s is %dx%d, %s is %dx%d): each is placed at x=0, y=0 and padded "
            "with zeros to %dx%d", paths[0].parent, paths[0].name, *sizes[0], odd.name,
            *sizes[paths.index(odd)], *largest,
        )
        return cls(paths, ImageInfo(largest, first.dtype, first.channels, first.rgb), tuple(sizes))

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.info.size[0], self.info.size[1], len(self.files))

    @property
    def dtype(self) -> np.dtype:
        return self.info.dtype

    @property
    def num_channels(self) -> int:
        return self.info.channels

    @property
    def channels_in_one_layer(self) -> bool:
        return self.info.rgb

    def read(self, offset: Sequence[int], size: Sequence[int]) -> np.ndarray:
        out = _empty(self.num_channels, size, self.dtype)
        x0, y0, z0 = offset

        def load(k: int) -> None:
            z = z0 + k
            info = self.info if not self.sizes else ImageInfo(self.sizes[z], self.dtype, self.num_channels, self.info.rgb)
            image = read_image(self.files[z], info)[:, x0 : x0 + size[0], y0 : y0 + size[1]]
            out[:, : image.shape[1], : image.shape[2], k] = image

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
    info: ImageInfo

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
            ix, iy, iz = (int(m.group(a)) if a in names else 0 for a in "xyz")
            index = (ix, iy, iz)
            if index in found:
                raise SourceError(f"tiles {found[index]} and {name} have the same indices {index}")
            found[index] = Path(name)
        if not found:
            raise SourceError(f"no files match the pattern {pattern!r}")
        low = [min(i[a] for i in found) for a in range(3)]
        high = [max(i[a] for i in found) for a in range(3)]
        counts = (high[0] - low[0] + 1, high[1] - low[1] + 1, high[2] - low[2] + 1)
        ordered = sorted(found.items(), key=lambda kv: (kv[0][2], kv[0][1], kv[0][0]))
        first = image_info(ordered[0][1])
        for _, p in ordered[1:]:
            info = image_info(p)
            if info != first:
                raise SourceError(
                    f"{p}: a tile of {info.size[0]}x{info.size[1]} {info.dtype} x {info.channels}, but "
                    f"{ordered[0][1]} has {first.size[0]}x{first.size[1]} {first.dtype} x {first.channels}"
                )
        tiles = tuple(((i[0] - low[0], i[1] - low[1], i[2] - low[2]), p) for i, p in ordered)
        return cls(pattern, tiles, counts, first)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.counts[0] * self.info.size[0], self.counts[1] * self.info.size[1], self.counts[2])

    @property
    def dtype(self) -> np.dtype:
        return self.info.dtype

    @property
    def num_channels(self) -> int:
        return self.info.channels

    @property
    def channels_in_one_layer(self) -> bool:
        return self.info.rgb

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
            image = read_image(path, self.info)
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
    """One TIFF file of any layout :func:`wkview.images.tiff_layout` places: a 2D image,
    a multi-page z-stack, an ImageJ hyperstack or an OME-TIFF (one timepoint of it)."""

    path: Path
    layout: TiffLayout

    @classmethod
    def from_file(cls, path: PathLike, timepoint: Optional[int] = None) -> "TiffVolume":
        path = Path(path)
        return cls(path, tiff_layout(path, timepoint))

    @property
    def shape(self) -> tuple[int, int, int]:
        return (*self.layout.size, self.layout.depth)

    @property
    def dtype(self) -> np.dtype:
        return self.layout.dtype

    @property
    def num_channels(self) -> int:
        return self.layout.channels

    @property
    def channel_names(self) -> Optional[list[str]]:
        names = self.layout.channel_names
        return None if names is None else list(names)

    @property
    def channels_in_one_layer(self) -> bool:
        return self.layout.rgb

    def read(self, offset: Sequence[int], size: Sequence[int]) -> np.ndarray:
        import tifffile

        (x0, y0, z0), (sx, sy, sz) = offset, size
        try:
            with tifffile.TiffFile(self.path) as tif:
                return self.layout.read(tif, z0, sz, x0, sx, y0, sy)
        except Exception as exc:
            raise SourceError(f"{self.path}: cannot read slices {z0}..{z0 + sz - 1} ({type(exc).__name__}: {exc})") from None

    def describe(self) -> str:
        x, y, z = self.shape
        return f"the TIFF {self.path} ({z} slices of {x}x{y}, axes {self.layout.axes})"

    def fingerprint(self) -> list[Any]:
        return ["tiff", self.layout.timepoint, _stat_list([self.path])]


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
        check_dtype(path, array.dtype)
        return cls(path, tuple(int(s) for s in array.shape), np.dtype(array.dtype))

    @property
    def shape(self) -> tuple[int, int, int]:
        x, y, z = self.array_shape[-3:]
        return (x, y, z)

    @property
    def dtype(self) -> np.dtype:
        return self.array_dtype

    @property
    def num_channels(self) -> int:
        return self.array_shape[0] if len(self.array_shape) == 4 else 1

    @property
    def channels_in_one_layer(self) -> bool:
        return True  # wkview's own layout of a multi-channel layer

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
        check_dtype(path, dt)
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
        return cls(path, (shape3[0], shape3[1], shape3[2]), dt, order)

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.raw_shape

    @property
    def dtype(self) -> np.dtype:
        return self.raw_dtype

    @property
    def num_channels(self) -> int:
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
    files = [p for p in folder.iterdir() if p.is_file() and suffix(p) in IMAGE_SUFFIXES and not p.name.startswith(".")]
    return sorted(files, key=lambda p: natural_sort_key(p.name))


#: Readers :func:`open_source` tries first: ``opener(source, axis_order)`` returns a source or
#: None. :mod:`wkview.volume_sources` (imported with the package) adds its chunked-volume
#: detector here; it builds on this module, so this module cannot import it.
VOLUME_OPENERS: list[Callable[[PathLike, Optional[str]], Optional[VolumeSource]]] = []


def open_source(
    source: PathLike, *, timepoint: Optional[int] = None, axis_order: Optional[str] = None
) -> VolumeSource:
    """The reader for ``source``, checked before anything is written.

    ``source`` may be

    * a folder of 2D images (TIFF, PNG, JPEG, 2D ``.npy``), one per z, in natural order of
      their names (``2.tif`` before ``10.tif``); a folder holding just one file reads
      that file;
    * a glob (``"stack/*.png"``), also in natural order;
    * a pattern with ``{x}``, ``{y}`` and/or ``{z}`` placeholders for a tile mosaic
      (``"tiles/{z}/{y}/{x}.jpg"``);
    * one TIFF file of any layout: a 2D image (RGB, RGBA, samples), a z-stack, an ImageJ
      hyperstack or an OME-TIFF (see :mod:`wkview.images`); ``timepoint`` picks one of
      several timepoints;
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
            return _open_file(files[0], timepoint)
        return ImageStack.from_files(files)
    if path.is_file():
        return _open_file(path, timepoint)
    if glob.has_magic(text):
        files = [Path(p) for p in glob.glob(text) if Path(p).is_file()]
        if not files:
            raise SourceError(f"no files match {text!r}")
        files.sort(key=lambda p: natural_sort_key(p.name))
        if len(files) == 1:
            return _open_file(files[0], timepoint)
        return ImageStack.from_files(files)
    raise SourceError(f"{text}: no such file or folder")


def _open_file(path: Path, timepoint: Optional[int] = None) -> VolumeSource:
    kind = suffix(path)
    if kind in TIFF_SUFFIXES:
        return TiffVolume.from_file(path, timepoint)
    if kind == ".npy":
        array = np.load(path, mmap_mode="r", allow_pickle=False) if path.stat().st_size else None
        if array is not None and array.ndim in (3, 4):
            return NpyVolume.from_file(path)
        return ImageStack.from_files([path])
    if kind in PIL_SUFFIXES:
        return ImageStack.from_files([path])
    raise SourceError(f"{path}: unsupported file type {kind!r} (expected one of {', '.join(IMAGE_SUFFIXES)})")


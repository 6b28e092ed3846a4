"""Decoding of image files: 2D images (TIFF, PNG, JPEG, 2D ``.npy``) and the layout of
any TIFF, from tifffile's series axes and its OME / ImageJ metadata.

The volume readers of :mod:`wkview.sources` place these images in a volume; this
module only answers "what does this file hold" and "give me these pixels".

What a TIFF holds is decided from the axes tifffile names for its first series,
never from the number of dimensions alone:

* ``Y`` and ``X`` are the image plane (rows are y, columns are x);
* ``Z``, ``I`` (a plain image sequence) or one unnamed ``Q`` axis longer than 1 is z;
* ``C`` (channels) and ``S`` (samples per pixel) are channels; RGB samples of
  uint8 (photometric RGB) are the colour of one image and stay in one layer;
  RGBA keeps R, G and B (the alpha samples are dropped);
* ``T`` is time: a series with more than one timepoint needs ``timepoint``;
* any other axis must have length 1 (``YXQ`` with Q = 1 is one slice).

OME-TIFF channel names (``Channel/@Name``) are reported as the channel names.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from .errors import SourceError

__all__ = [
    "ImageInfo",
    "TiffLayout",
    "TIFF_SUFFIXES",
    "PIL_SUFFIXES",
    "IMAGE_SUFFIXES",
    "check_dtype",
    "image_info",
    "read_image",
    "tiff_layout",
]

#: File name endings read as 2D images (case-insensitive).
TIFF_SUFFIXES = (".tif", ".tiff")
PIL_SUFFIXES = (".png", ".jpg", ".jpeg")
IMAGE_SUFFIXES = TIFF_SUFFIXES + PIL_SUFFIXES + (".npy",)

_PIL_MODES = {
    "L": (np.dtype(np.uint8), 1),
    "I;16": (np.dtype(np.uint16), 1),
    "I;16L": (np.dtype(np.uint16), 1),
    "I;16B": (np.dtype(np.uint16), 1),
    "I": (np.dtype(np.int32), 1),
    "F": (np.dtype(np.float32), 1),
    "RGB": (np.dtype(np.uint8), 3),
}

#: Axes of a z-stack, in order of preference (tifffile: Z depth, I image sequence,
#: Q an axis it could not name).
_DEPTH_AXES = "ZIQ"


def check_dtype(path: Any, dtype: np.dtype) -> None:
    """Refuse voxel types a WKW layer cannot hold."""
    if dtype.kind not in "uif" or dtype.itemsize > 8 or dtype == np.float16:
        raise SourceError(f"{path}: voxel type {dtype} is not supported (unsigned/signed int up to 64 bit, float32, float64)")


def suffix(path: Path) -> str:
    """The file ending, lower case (``.tif``)."""
    return path.suffix.lower()


# -- TIFF ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TiffLayout:
    """What the first series of a TIFF holds, and where its pixels are.

    Axis positions index ``axes``/``shape`` (tifffile's series axes, e.g. ``"TZCYXS"``).
    The first ``lead`` axes pick a page (tifffile's pages in order); the others are the
    axes of one page. ``lead`` is None when the pages do not split the series this
    way (one block of pixel data, as in truncated ImageJ stacks): reads then decode
    the whole series.
    """

    axes: str
    shape: tuple[int, ...]
    dtype: np.dtype
    lead: Optional[int]
    y_axis: int
    x_axis: int
    z_axis: Optional[int]
    channel_axes: tuple[int, ...]  # C and/or S, channel k is their ravelled index
    channels: int  # channels read: fewer than the axes hold for RGBA (alpha dropped)
    rgb: bool  # photometric RGB samples of uint8: one picture's colours
    t_axis: Optional[int]
    timepoint: int
    channel_names: Optional[tuple[str, ...]]

    @property
    def size(self) -> tuple[int, int]:
        """``(x, y)`` of one slice."""
        return (self.shape[self.x_axis], self.shape[self.y_axis])

    @property
    def depth(self) -> int:
        """Number of z-slices."""
        return 1 if self.z_axis is None else self.shape[self.z_axis]

    def read(self, tif: Any, z0: int, depth: int, x0: int, width: int, y0: int, height: int) -> np.ndarray:
        """The box as a ``(channels, x, y, z)`` array, from the open ``tifffile.TiffFile``."""
        out = np.zeros((self.channels, width, height, depth), dtype=self.dtype, order="F")
        pages: dict[int, np.ndarray] = {}
        # a z that picks a page: keep only the pages of the current slice in memory
        z_picks_page = self.z_axis is not None and self.lead is not None and self.z_axis < self.lead
        for k in range(depth):
            if z_picks_page:
                pages.clear()
            for c in range(self.channels):
                out[c, :, :, k] = self.plane(tif, z0 + k, c, pages)[y0 : y0 + height, x0 : x0 + width].T
        return out

    def plane(self, tif: Any, z: int, channel: int, pages: dict[int, np.ndarray]) -> np.ndarray:
        """Slice ``z`` of ``channel`` as a ``(y, x)`` array (a view of the decoded page, which
        ``pages`` keeps by number for the next call; -1 holds a series read whole)."""
        position = [0] * len(self.shape)
        if self.z_axis is not None:
            position[self.z_axis] = z
        if self.t_axis is not None:
            position[self.t_axis] = self.timepoint
        if self.channel_axes:
            indices = np.unravel_index(channel, [self.shape[a] for a in self.channel_axes])
            for axis, index in zip(self.channel_axes, indices):
                position[axis] = int(index)
        series = tif.series[0]
        if self.lead is None:
            if -1 not in pages:
                pages[-1] = series.asarray().reshape(self.shape)
            data, first = pages[-1], 0
        else:
            first = self.lead
            number = int(np.ravel_multi_index(position[:first], self.shape[:first])) if first else 0
            if number not in pages:
                pages[number] = series.pages[number].asarray().reshape(self.shape[first:])
            data = pages[number]
        index = tuple(slice(None) if a in (self.y_axis, self.x_axis) else position[a] for a in range(first, len(self.shape)))
        return data[index]


def tiff_layout(path: Path, timepoint: Optional[int] = None) -> TiffLayout:
    """The layout of the TIFF at ``path`` (headers only, no pixel data).

    Raises
    ------
    SourceError
        The file is unreadable, or its axes hold something that is not a z-stack of
        channels (naming the axes), or it holds several timepoints and ``timepoint``
        is None or out of range.
    """
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            return _layout_of(tif, path, timepoint)
    except SourceError:
        raise
    except Exception as exc:  # any reader failure on a damaged file
        raise SourceError(f"{path}: not a readable TIFF ({type(exc).__name__}: {exc})") from None


def _layout_of(tif: Any, path: Path, timepoint: Optional[int]) -> TiffLayout:
    import tifffile

    series = tif.series[0]
    axes = str(series.axes).upper()
    shape = tuple(int(s) for s in series.shape)
    dtype = np.dtype(series.dtype)
    check_dtype(path, dtype)
    described = f"{path}: a TIFF of axes {axes} and shape {shape}"
    if axes.count("Y") != 1 or axes.count("X") != 1:
        raise SourceError(f"{described} holds no single image plane (Y and X)")
    role: dict[str, list[int]] = {}
    for i, a in enumerate(axes):
        role.setdefault(a, []).append(i)
    depth_axes = [i for a in _DEPTH_AXES for i in role.get(a, []) if shape[i] > 1]
    if len(depth_axes) > 1:
        raise SourceError(f"{described} has more than one z axis ({', '.join(axes[i] for i in depth_axes)})")
    channel_axes = tuple(i for i, a in enumerate(axes) if a in "CS" and shape[i] > 1)
    t_axes = [i for i in role.get("T", []) if shape[i] > 1]
    known = set(depth_axes) | set(channel_axes) | set(t_axes) | {axes.index("Y"), axes.index("X")}
    other = [i for i in range(len(axes)) if i not in known and shape[i] > 1]
    if other or len(t_axes) > 1:
        extra = other or t_axes
        raise SourceError(
            f"{described} has axes wkview cannot place: {', '.join(f'{axes[i]} of length {shape[i]}' for i in extra)}"
        )
    t_axis = t_axes[0] if t_axes else None
    points = shape[t_axis] if t_axis is not None else 1
    if timepoint is None and points > 1:
        raise SourceError(f"{described} holds {points} timepoints: convert one with --timepoint N (0 to {points - 1})")
    picked = 0 if timepoint is None else int(timepoint)
    if not 0 <= picked < points:
        raise SourceError(f"{described} holds {points} timepoint(s): --timepoint {picked} is not one of 0 to {points - 1}")

    photometric_rgb = series.keyframe.photometric == tifffile.PHOTOMETRIC.RGB
    samples = [i for i in channel_axes if axes[i] == "S"]
    has_c = any(axes[i] == "C" for i in channel_axes)
    channels = int(math.prod([shape[i] for i in channel_axes])) if channel_axes else 1
    rgb = False
    if photometric_rgb and samples and not has_c and shape[samples[0]] in (3, 4):
        channels = 3  # RGBA: the colour, not its alpha
        rgb = dtype == np.uint8
    names = _ome_channel_names(tif) if has_c and not samples else None
    if names is not None and len(names) != channels:
        names = None

    pages = len(series.pages)
    page_pixels = int(math.prod(series.keyframe.shape))
    lead = next(
        (k for k in range(len(shape) + 1) if int(math.prod(shape[:k])) == pages and int(math.prod(shape[k:])) == page_pixels),
        None,
    )
    return TiffLayout(
        axes=axes,
        shape=shape,
        dtype=dtype,
        lead=lead,
        y_axis=axes.index("Y"),
        x_axis=axes.index("X"),
        z_axis=depth_axes[0] if depth_axes else None,
        channel_axes=channel_axes,
        channels=channels,
        rgb=rgb,
        t_axis=t_axis,
        timepoint=picked,
        channel_names=names,
    )


def _ome_channel_names(tif: Any) -> Optional[tuple[str, ...]]:
    """``Name`` of each channel of the first OME image, or None when any is missing."""
    if not tif.is_ome:
        return None
    try:
        root = ElementTree.fromstring(tif.ome_metadata)
    except ElementTree.ParseError:
        return None
    image = next((e for e in root if e.tag.endswith("}Image") or e.tag == "Image"), None)
    pixels = None if image is None else next((e for e in image if e.tag.endswith("Pixels")), None)
    if pixels is None:
        return None
    names = [e.get("Name") for e in pixels if e.tag.endswith("}Channel") or e.tag == "Channel"]
    if not names or any(not n for n in names):
        return None
    return tuple(str(n) for n in names)


# -- 2D images ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageInfo:
    """What one 2D image holds: ``(x, y)`` size, dtype per channel, channels, and
    whether its channels are the colour of one picture (RGB) that stays one layer."""

    size: tuple[int, int]
    dtype: np.dtype
    channels: int
    rgb: bool = False

    def same_kind(self, other: "ImageInfo") -> bool:
        """The same pixel type and channels (sizes may differ)."""
        return (self.dtype, self.channels, self.rgb) == (other.dtype, other.channels, other.rgb)


def image_info(path: Path) -> ImageInfo:
    """Size and pixel type of a 2D image, from its header only (no pixel data).

    A TIFF in a folder of slices counts its samples as channels that are not one
    picture's colour (as webknossos 4.3.3 reads a folder of TIFFs: one layer per
    channel by default).
    """
    kind = suffix(path)
    try:
        if kind in TIFF_SUFFIXES:
            layout = tiff_layout(path)
            if layout.depth != 1:
                raise SourceError(
                    f"{path}: holds {layout.depth} slices (axes {layout.axes}); a folder or glob takes 2D images, "
                    "convert a 3D TIFF by itself"
                )
            return ImageInfo(layout.size, layout.dtype, layout.channels, False)
        if kind == ".npy":
            array = np.load(path, mmap_mode="r", allow_pickle=False)
            shape, dtype = tuple(array.shape), np.dtype(array.dtype)
            check_dtype(path, dtype)
            if len(shape) == 2:  # npy slices are ([channels,] x, y)
                return ImageInfo((shape[0], shape[1]), dtype, 1, True)
            if len(shape) == 3:
                return ImageInfo((shape[1], shape[2]), dtype, shape[0], True)
            raise SourceError(f"{path}: expected one 2D slice, found an array of shape {shape}")
        if kind in PIL_SUFFIXES:
            from PIL import Image

            with Image.open(path) as img:
                mode, size = img.mode, img.size
            if mode not in _PIL_MODES:
                raise SourceError(
                    f"{path}: images of mode {mode!r} are not supported (use grayscale 8/16-bit, "
                    "32-bit float or RGB)"
                )
            dtype, channels = _PIL_MODES[mode]
            return ImageInfo((int(size[0]), int(size[1])), dtype, channels, True)
    except SourceError:
        raise
    except Exception as exc:  # any reader failure on a damaged file
        raise SourceError(f"{path}: not a readable image ({type(exc).__name__}: {exc})") from None
    raise SourceError(f"{path}: unsupported file type {kind!r} (expected one of {', '.join(IMAGE_SUFFIXES)})")


def read_image(path: Path, info: ImageInfo) -> np.ndarray:
    """The image as ``(channels, x, y)``, checked against ``info``."""
    kind = suffix(path)
    try:
        if kind in TIFF_SUFFIXES:
            import tifffile

            with tifffile.TiffFile(path) as tif:
                layout = _layout_of(tif, path, None)
                pages: dict[int, np.ndarray] = {}
                planes = [layout.plane(tif, 0, c, pages).T for c in range(layout.channels)]
            array = planes[0][None] if len(planes) == 1 else np.stack(planes)
        elif kind == ".npy":
            array = np.load(path, allow_pickle=False)
            array = array[None] if array.ndim == 2 else array
        else:
            from PIL import Image

            with Image.open(path) as img:
                array = np.asarray(img)
            array = array.T[None] if array.ndim == 2 else array.transpose(2, 1, 0)
    except SourceError:
        raise
    except Exception as exc:
        raise SourceError(f"{path}: cannot read the image ({type(exc).__name__}: {exc})") from None
    if array.shape != (info.channels, *info.size) or array.dtype != info.dtype:
        raise SourceError(
            f"{path}: holds {array.shape[1:]} pixels of {array.dtype} x {array.shape[0]}, "
            f"expected {info.size} of {info.dtype} x {info.channels}"
        )
    return array


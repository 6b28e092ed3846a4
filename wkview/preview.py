"""A look at a layer: its three central orthogonal planes in one PNG (``wkview preview``,
``wkview convert --preview``).

The image shows, in voxels of one mag (one pixel per voxel, no resampling)::

    +--------+----+
    |   xy   | zy |     xy: the plane at the central z; x to the right, y down
    |        |    |     zy: the plane at the central x; z to the right, y down
    +--------+----+     xz: the plane at the central y; x to the right, z down
    |   xz   |
    +--------+

so each side panel shares an axis with the xy plane, as webKNOSSOS arranges its
viewports. Panels are :data:`GAP` pixels apart on a black background.

Color layers are contrast-stretched: the 1st percentile of the three planes' voxels
becomes 0 and the 99th 255 (per channel; 3 channels give RGB, other channel counts show
the first). Segmentation layers show each id in a colour of its own that depends only on
the id (:func:`segment_colors`), 0 black. The mag is the coarsest whose image still has
``size`` (1024) pixels along its longer side (the finest when none has).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from . import _durable
from .dataset import Dataset, Layer
from .errors import DatasetError, TargetExistsError
from .geometry import Mag

__all__ = ["GAP", "DEFAULT_SIZE", "choose_mag", "preview_image", "segment_colors", "write_preview"]

PathLike = Union[str, os.PathLike]

#: Pixels between the panels.
GAP = 4

#: Pixels along the longer side of the image that the chosen mag should still give.
DEFAULT_SIZE = 1024

#: Percentiles that become black and white in color layers.
STRETCH_PERCENTILES = (1.0, 99.0)


def _image_extent(size: tuple[int, int, int]) -> tuple[int, int]:
    """(width, height) in pixels of the image of a box of ``size`` voxels."""
    x, y, z = size
    return x + GAP + z, y + GAP + z


def _box_in(layer: Layer, mag: Mag) -> Any:
    return layer.bounding_box.align_with_mag(mag, ceil=True).in_mag(mag)


def choose_mag(layer: Layer, size: int = DEFAULT_SIZE) -> Mag:
    """The coarsest mag of ``layer`` whose image still has ``size`` pixels along its longer
    side; the finest mag when none has."""
    if not layer.mags:
        raise DatasetError(f"layer {layer.name!r} has no mags to preview")
    mags = sorted(layer.mags, key=lambda m: m.to_tuple())
    chosen = mags[0]
    for mag in mags[1:]:
        if max(_image_extent(tuple(_box_in(layer, mag).size))) >= size:
            chosen = mag
    return chosen


def segment_colors(ids: np.ndarray) -> np.ndarray:
    """RGB colours (uint8, shape ``ids.shape + (3,)``) of segment ids: one per id, the same
    in every run and on every machine (a hash of the id), 0 black, never black otherwise."""
    h = ids.astype(np.uint64, copy=True)
    # splitmix64's finaliser: neighbouring ids get unrelated colours
    with np.errstate(over="ignore"):
        h += np.uint64(0x9E3779B97F4A7C15)
        h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        h ^= h >> np.uint64(31)
    rgb = np.stack([(h >> np.uint64(shift)) & np.uint64(0xFF) for shift in (0, 8, 16)], axis=-1).astype(np.uint8)
    rgb |= np.uint8(0x30)  # no colour close to the black of id 0 and the background
    rgb[ids == 0] = 0
    return rgb


def _stretch(planes: list[np.ndarray]) -> list[np.ndarray]:
    """``planes`` (each (x, y) of one channel) mapped to uint8 by the shared percentiles."""
    values = np.concatenate([p.ravel() for p in planes]).astype(np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return [np.zeros(p.shape, np.uint8) for p in planes]
    low, high = np.percentile(values, STRETCH_PERCENTILES)
    out = []
    for p in planes:
        p = p.astype(np.float64)
        if high > low:
            scaled = (p - low) * (255.0 / (high - low))
        else:  # a constant image: its value white when positive
            scaled = np.where(p > low, 255.0, 0.0) if low <= 0 else np.full(p.shape, 255.0)
        out.append(np.clip(np.nan_to_num(scaled, nan=0.0), 0, 255).round().astype(np.uint8))
    return out


def _planes(layer: Layer, mag: Mag) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The central xy, zy and xz planes of ``layer`` in ``mag`` as (channels, width, height) arrays."""
    sx, sy, sz = (int(s) for s in _box_in(layer, mag).size)
    if min(sx, sy, sz) <= 0:
        raise DatasetError(f"layer {layer.name!r} holds no voxels in mag {mag.to_layer_name()}")
    cx, cy, cz = sx // 2, sy // 2, sz // 2
    region = layer.get_mag(mag).get_view(read_only=True)  # the layer's box in this mag
    xy = region.read((0, 0, cz), (sx, sy, 1))[:, :, :, 0]  # (c, x, y)
    zy = region.read((cx, 0, 0), (1, sy, sz))[:, 0, :, :].transpose(0, 2, 1)  # (c, z, y)
    xz = region.read((0, cy, 0), (sx, 1, sz))[:, :, 0, :]  # (c, x, z)
    return xy, zy, xz


def preview_image(layer: Layer, mag: Any = None, *, size: int = DEFAULT_SIZE) -> np.ndarray:
    """The preview of ``layer`` as an RGB image: a ``(height, width, 3)`` uint8 array.

    ``mag`` (default: :func:`choose_mag` with ``size``) picks the mag; see the module
    docstring for the layout and the colours.
    """
    chosen = choose_mag(layer, size) if mag is None else layer.get_mag(mag).mag
    xy, zy, xz = _planes(layer, chosen)
    if layer.category == "segmentation":
        panels = [segment_colors(p[0]) for p in (xy, zy, xz)]  # (w, h, 3)
    else:
        channels = range(3) if xy.shape[0] == 3 else range(1)
        stretched = [_stretch([xy[c], zy[c], xz[c]]) for c in channels]
        panels = [np.stack([s[k] for s in stretched] * (3 // len(stretched)), axis=-1) for k in range(3)]
    sx, sy = xy.shape[1:]
    sz = zy.shape[1]
    width, height = _image_extent((sx, sy, sz))
    image = np.zeros((height, width, 3), np.uint8)
    image[:sy, :sx] = panels[0].transpose(1, 0, 2)
    image[:sy, sx + GAP :] = panels[1].transpose(1, 0, 2)
    image[sy + GAP :, :sx] = panels[2].transpose(1, 0, 2)
    return image


def write_preview(
    dataset: Union[PathLike, Dataset],
    out: PathLike,
    *,
    layer: Optional[str] = None,
    mag: Any = None,
    size: int = DEFAULT_SIZE,
    overwrite: bool = False,
) -> Path:
    """Write the preview PNG of a layer of ``dataset`` (see the module docstring) to ``out``.

    Parameters
    ----------
    dataset : path or Dataset
        The dataset.
    out : path
        The PNG to write.
    layer : str, optional
        The layer; needed when the dataset has more than one.
    mag : mag-like, optional
        The mag to show (default: the coarsest that still gives ``size`` pixels).
    size : int
        Pixels along the image's longer side that the chosen mag should give.
    overwrite : bool
        Replace an existing ``out``.

    Returns
    -------
    Path
        ``out``.

    Raises
    ------
    TargetExistsError
        ``out`` exists and ``overwrite`` is False.
    DatasetError
        No such layer or mag, several layers and no ``layer``, or an empty layer.
    """
    from PIL import Image

    out = Path(out)
    if not overwrite and (out.exists() or out.is_symlink()):
        raise TargetExistsError(f"{out} exists (use --overwrite, or overwrite=True, to replace it)")
    ds = dataset if isinstance(dataset, Dataset) else Dataset(dataset)
    if layer is None:
        if len(ds.layers) != 1:
            raise DatasetError(f"{ds.path} has {len(ds.layers)} layers ({', '.join(ds.layers)}): name one")
        (lay,) = ds.layers.values()
    else:
        lay = ds.get_layer(layer)
    image = preview_image(lay, mag, size=size)
    out.parent.mkdir(parents=True, exist_ok=True)
    # through the one durable path: a reader never sees half a PNG, the mode is the umask's
    _durable.write_encoded(out, lambda file: Image.fromarray(image, "RGB").save(file, format="PNG"), lock=False)
    return out

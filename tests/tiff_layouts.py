"""TIFF layouts as microscopes and image software write them, made with tifffile, with
the volume each should become: the NumPy oracle in wkview's ``(channels, x, y, z)``
order. Shared by tests/test_sources.py and the differential suite
tests/test_convert_layouts.py."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np
import tifffile

H, W = 40, 56  # rows (y) and columns (x) of every image: x and y differ so a swap shows


class Layout(NamedTuple):
    source: Path  # what to convert: a file or a folder
    expected: np.ndarray  # (channels, x, y, z) as read


def _cxyz(zcyx: np.ndarray) -> np.ndarray:
    """(z, c, y, x) -> (c, x, y, z)."""
    return np.ascontiguousarray(zcyx.transpose(1, 3, 2, 0))


def _rand(rng: np.random.Generator, shape: tuple, dtype: str = "uint8") -> np.ndarray:
    info = np.iinfo(dtype)
    return rng.integers(max(info.min, -100), min(info.max, 60000), shape, dtype=dtype, endpoint=True)


def rgb_file(folder: Path, rng: np.random.Generator) -> Layout:
    """One RGB TIFF: axes YXS, three uint8 samples (photometric RGB)."""
    image = _rand(rng, (H, W, 3))
    tifffile.imwrite(folder / "rgb.tif", image, photometric="rgb")
    return Layout(folder / "rgb.tif", _cxyz(image.transpose(2, 0, 1)[None]))


def rgb_folder(folder: Path, rng: np.random.Generator) -> Layout:
    """A folder of three RGB TIFFs."""
    images = _rand(rng, (3, H, W, 3))
    for z, image in enumerate(images):
        tifffile.imwrite(folder / f"slice_{z}.tif", image, photometric="rgb")
    return Layout(folder, _cxyz(images.transpose(0, 3, 1, 2)))


def rgba_file(folder: Path, rng: np.random.Generator) -> Layout:
    """One RGBA TIFF (YXS, 4 samples): read as RGB, the alpha dropped."""
    image = _rand(rng, (H, W, 4))
    tifffile.imwrite(folder / "rgba.tif", image, photometric="rgb", extrasamples=["unassalpha"])
    return Layout(folder / "rgba.tif", _cxyz(image[..., :3].transpose(2, 0, 1)[None]))


def samples_file(folder: Path, rng: np.random.Generator) -> Layout:
    """Two uint16 samples per pixel that are not RGB (YXS, photometric minisblack): two channels."""
    image = _rand(rng, (H, W, 2), "uint16")
    tifffile.imwrite(folder / "samples.tif", image, photometric="minisblack", planarconfig="contig")
    return Layout(folder / "samples.tif", _cxyz(image.transpose(2, 0, 1)[None]))


def yxq_file(folder: Path, rng: np.random.Generator) -> Layout:
    """A 2D image with a trailing axis of length 1 (tifffile axes YXQ): one slice."""
    image = _rand(rng, (H, W, 1))
    tifffile.imwrite(folder / "yxq.tif", image, photometric="minisblack")
    return Layout(folder / "yxq.tif", _cxyz(image[None, None, :, :, 0]))


def zyx_file(folder: Path, rng: np.random.Generator) -> Layout:
    """A multi-page z-stack of int16 (axes ZYX via tifffile's shaped metadata)."""
    stack = _rand(rng, (5, H, W), "int16")
    tifffile.imwrite(folder / "stack.tif", stack, metadata={"axes": "ZYX"})
    return Layout(folder / "stack.tif", _cxyz(stack[:, None]))


def zyxs_rgb_file(folder: Path, rng: np.random.Generator) -> Layout:
    """A z-stack of RGB pages (axes QYXS)."""
    stack = _rand(rng, (4, H, W, 3))
    tifffile.imwrite(folder / "rgbstack.tif", stack, photometric="rgb")
    return Layout(folder / "rgbstack.tif", _cxyz(stack.transpose(0, 3, 1, 2)))


def imagej_hyperstack(folder: Path, rng: np.random.Generator) -> Layout:
    """An ImageJ hyperstack TZCYX with one timepoint, 5 z, 2 channels of uint8."""
    stack = _rand(rng, (1, 5, 2, H, W))
    tifffile.imwrite(folder / "hyper.tif", stack, imagej=True, metadata={"axes": "TZCYX"})
    return Layout(folder / "hyper.tif", _cxyz(stack[0]))


def imagej_timeseries(folder: Path, rng: np.random.Generator) -> Layout:
    """An ImageJ hyperstack TZCYX with 3 timepoints; ``expected`` is timepoint 1."""
    stack = _rand(rng, (3, 4, 2, H, W))
    tifffile.imwrite(folder / "time.tif", stack, imagej=True, metadata={"axes": "TZCYX"})
    return Layout(folder / "time.tif", _cxyz(stack[1]))


def ome_czyx_named(folder: Path, rng: np.random.Generator) -> Layout:
    """An OME-TIFF CZYX of 3 int8 channels named DAPI, GFP and RFP."""
    stack = _rand(rng, (3, 5, H, W), "int8")
    meta = {"axes": "CZYX", "Channel": {"Name": ["DAPI", "GFP", "RFP"]}}
    tifffile.imwrite(folder / "cells.ome.tif", stack, metadata=meta)
    return Layout(folder / "cells.ome.tif", _cxyz(stack.transpose(1, 0, 2, 3)))


def ome_zcyx(folder: Path, rng: np.random.Generator) -> Layout:
    """An OME-TIFF ZCYX of 2 uint16 channels without names."""
    stack = _rand(rng, (4, 2, H, W), "uint16")
    tifffile.imwrite(folder / "zc.ome.tif", stack, metadata={"axes": "ZCYX"})
    return Layout(folder / "zc.ome.tif", _cxyz(stack))


def ome_tczyx(folder: Path, rng: np.random.Generator) -> Layout:
    """An OME-TIFF TCZYX with one timepoint, 2 uint8 channels."""
    stack = _rand(rng, (1, 2, 3, H, W))
    tifffile.imwrite(folder / "tc.ome.tif", stack, metadata={"axes": "TCZYX"})
    return Layout(folder / "tc.ome.tif", _cxyz(stack[0].transpose(1, 0, 2, 3)))


def _compressed(codec: str) -> Callable[[Path, np.random.Generator], Layout]:
    def make(folder: Path, rng: np.random.Generator) -> Layout:
        # smooth images: JPEG is lossy, but both tools decode the same bytes with imagecodecs
        base = np.add.outer(np.arange(H), np.arange(W)).astype(np.uint8)
        stack = np.stack([base + 10 * z for z in range(3)]).astype(np.uint8)
        for z, image in enumerate(stack):
            tifffile.imwrite(folder / f"{codec}_{z}.tif", image, compression=codec)
        if codec == "jpeg":
            stack = np.stack([tifffile.imread(folder / f"{codec}_{z}.tif") for z in range(3)])
        return Layout(folder, _cxyz(stack[:, None]))

    make.__doc__ = f"A folder of {codec}-compressed uint8 slices."
    return make


def bigtiff_stack(folder: Path, rng: np.random.Generator) -> Layout:
    """A BigTIFF z-stack of uint16."""
    stack = _rand(rng, (6, H, W), "uint16")
    tifffile.imwrite(folder / "big.tif", stack, bigtiff=True, metadata={"axes": "ZYX"})
    return Layout(folder / "big.tif", _cxyz(stack[:, None]))


def mixed_sizes(folder: Path, rng: np.random.Generator) -> Layout:
    """Slices of different sizes: each at x = y = 0, padded with zeros to the largest."""
    sizes = [(H, W), (H - 12, W + 8), (H + 6, W - 20)]
    expected = np.zeros((1, W + 8, H + 6, 3), np.uint8)
    for z, (h, w) in enumerate(sizes):
        image = _rand(rng, (h, w))
        tifffile.imwrite(folder / f"s{z}.tif", image)
        expected[0, :w, :h, z] = image.T
    return Layout(folder, expected)


#: name -> maker(folder, rng); each maker writes into an empty folder.
LAYOUTS: dict[str, Callable[[Path, np.random.Generator], Layout]] = {
    "rgb_file": rgb_file,
    "rgb_folder": rgb_folder,
    "rgba_file": rgba_file,
    "samples_file": samples_file,
    "yxq_file": yxq_file,
    "zyx_file": zyx_file,
    "zyxs_rgb_file": zyxs_rgb_file,
    "imagej_hyperstack": imagej_hyperstack,
    "imagej_timeseries": imagej_timeseries,
    "ome_czyx_named": ome_czyx_named,
    "ome_zcyx": ome_zcyx,
    "ome_tczyx": ome_tczyx,
    **{f"{codec}_folder": _compressed(codec) for codec in ("lzw", "deflate", "zstd", "jpeg", "packbits")},
    "bigtiff_stack": bigtiff_stack,
    "mixed_sizes": mixed_sizes,
}


def make(name: str, root: Path, seed: int = 0) -> Layout:
    """Write layout ``name`` into a new folder ``root/name``."""
    folder = root / name
    folder.mkdir(parents=True)
    return LAYOUTS[name](folder, np.random.default_rng(seed))

"""Built-in sample data that compresses like electron-microscopy volumes.

Random noise does not compress and hides the real costs of LZ4; constant data
compresses to nothing. EM volumes sit in between: smooth intensity regions
(cytoplasm), thin dark membranes between cells, and sparse noise. This
generator makes such a volume deterministically from a seed, slab by slab so
memory stays bounded.
"""

from __future__ import annotations

import numpy as np

from . import _durable

__all__ = ["em_like", "write_image_stack"]

NOISE = 1  # grey levels of dense noise: gives an LZ4HC ratio of about 1.8, like EM data


def em_like(shape: tuple[int, int, int], seed: int = 0, offset: tuple[int, int, int] = (0, 0, 0)) -> np.ndarray:
    """An EM-like uint8 volume of ``shape`` (x, y, z), Fortran order.

    The content is a function of absolute coordinates, so two calls with
    adjacent ``offset`` boxes give seamless data.

    Parameters
    ----------
    shape : 3 ints
        Size of the volume.
    seed : int
        Chooses the random cell layout, intensities and noise.
    offset : 3 ints
        Absolute position of the volume's first voxel.
    """
    sx, sy, sz = (int(v) for v in shape)
    if min(sx, sy, sz) <= 0:
        raise ValueError(f"shape must be positive, got {shape!r}")
    rng = np.random.default_rng(seed)
    # a few wavy membrane families: surfaces where a smooth phase field crosses multiples of pi
    families = []
    for _ in range(3):
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction)
        families.append((direction * rng.uniform(0.03, 0.06), rng.uniform(0, 2 * np.pi, 3), rng.uniform(4, 9)))
    levels = rng.integers(90, 200, size=64).astype(np.float32)
    out = np.empty((sx, sy, sz), dtype=np.uint8, order="F")
    x = (np.arange(sx, dtype=np.float32) + offset[0])[:, None]
    y = (np.arange(sy, dtype=np.float32) + offset[1])[None, :]
    noise_rng = np.random.default_rng(seed + 1 + offset[2])
    for z0 in range(0, sz, 16):
        z1 = min(sz, z0 + 16)
        for zi in range(z0, z1):
            z = np.float32(zi + offset[2])
            membrane = np.zeros((sx, sy), dtype=bool)
            cell = np.zeros((sx, sy), dtype=np.int64)
            for k, (freq, phase, wobble) in enumerate(families):
                field = (
                    x * freq[0] + y * freq[1] + z * freq[2]
                    + 0.6 * np.sin(y * 0.021 + phase[0]) + 0.6 * np.sin(x * 0.017 + phase[1] + z * 0.013)
                )
                membrane |= np.abs(np.sin(field)) < 0.045
                cell = cell * 4 + (np.floor(field / np.pi).astype(np.int64) % 4)
            value = levels[cell % 64] + (x * 0.05 + y * 0.03).astype(np.float32) % 8
            value = np.where(membrane, 25.0, value)
            # dense shot noise of a few grey levels, plus sparse strong outliers
            value = value + noise_rng.integers(-NOISE, NOISE + 1, (sx, sy))
            sparse = noise_rng.random((sx, sy)) < 0.04
            value = np.where(sparse, value + noise_rng.integers(-40, 40, (sx, sy)), value)
            out[:, :, zi] = np.clip(value, 0, 255).astype(np.uint8)
    return out


def write_image_stack(folder, shape: tuple[int, int, int], seed: int = 0, suffix: str = ".tif") -> list:
    """Write :func:`em_like` data of ``shape`` (x, y, z) as one 2D image per z into ``folder``
    (``0.tif``, ``1.tif``, ...; rows are y); returns the files.

    ``suffix``: ``".tif"`` (tifffile) or ``".png"`` (Pillow). Slabs of 16 slices are
    generated at a time, so memory stays small for big stacks.
    """
    from pathlib import Path

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if suffix not in (".tif", ".png"):
        raise ValueError(f"suffix must be '.tif' or '.png', got {suffix!r}")
    sx, sy, sz = (int(v) for v in shape)
    files = []
    for z0 in range(0, sz, 16):
        n = min(16, sz - z0)
        slab = em_like((sx, sy, n), seed=seed, offset=(0, 0, z0))
        for k in range(n):
            image = np.ascontiguousarray(slab[:, :, k].T)
            path = folder / f"{z0 + k}{suffix}"
            if suffix == ".tif":
                import tifffile

                _durable.write_encoded(path, lambda f: tifffile.imwrite(f, image), lock=False)
            else:
                from PIL import Image

                _durable.write_encoded(path, lambda f: Image.fromarray(image).save(f, format="PNG"), lock=False)
            files.append(path)
    return files

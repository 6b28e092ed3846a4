"""Regenerate the golden WKW datasets of ``tests/test_golden.py``.

Two tiny datasets with the same layers, mags and voxels:

* ``tests/data/golden_wk433/``  written by webknossos 4.3.3 (``data_format="wkw"``)
* ``tests/data/golden_wkview/`` written by wkview

Layers: ``color`` (uint8, 1 channel), ``rgb`` (uint8, 3 channels) and
``segmentation`` (uint32, with ``largest_segment_id``); each has a raw and an
LZ4HC mag (one of them the anisotropic ``2-2-1``), files of 16**3 voxels
(block_len 8, file_len 2), data at offsets that are not file aligned. The
voxels come from :func:`golden_writes`, a pure function of :data:`SEED`, so the
tests regenerate the expected arrays instead of storing them.

Run it only when the format is meant to change (then review the diff of
``tests/data``), from the repository root, with webknossos 4.3.3 installed::

    .venv/bin/python tests/data/make_golden.py          # refuses to overwrite
    .venv/bin/python tests/data/make_golden.py --force  # replaces both datasets

Importing this module needs neither webknossos nor a writable ``tests/data``:
the tests import :func:`golden_writes`, :func:`expected_layer_bbox` and
:func:`write_with_wkview` from it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path
from typing import NamedTuple, Optional

import numpy as np

SEED = 20240433
SCALE = (11.24, 11.24, 25.0)
BLOCK_LEN = 8
FILE_LEN = 2
DATA_DIR = Path(__file__).resolve().parent
WK433_NAME = "golden_wk433"
WKVIEW_NAME = "golden_wkview"


class LayerSpec(NamedTuple):
    name: str
    category: str
    dtype: str  # per channel
    num_channels: int


class GoldenWrite(NamedTuple):
    """One write: ``data`` (channels, x, y, z) at ``offset`` in voxels of ``mag``."""

    layer: str
    mag: str  # "1", "2" or "2-2-1"
    compress: bool
    offset: tuple[int, int, int]
    data: np.ndarray

    @property
    def mag_vec(self) -> tuple[int, int, int]:
        return mag_vec(self.mag)


LAYERS = (
    LayerSpec("color", "color", "uint8", 1),
    LayerSpec("rgb", "color", "uint8", 3),
    LayerSpec("segmentation", "segmentation", "uint32", 1),
)

# (layer, mag, compress, offset in the mag, size in the mag). The first write
# of a layer is mag 1 and sets the layer's bounding box; the coarser mags write
# inside that box, so webknossos and wkview agree on it.
_PLAN = (
    ("color", "1", False, (3, 5, 2), (20, 18, 12)),
    ("color", "2", True, (2, 3, 1), (9, 8, 6)),
    ("rgb", "1", True, (5, 2, 3), (14, 13, 9)),
    ("rgb", "2", False, (3, 1, 2), (6, 6, 3)),
    ("segmentation", "1", False, (6, 1, 4), (16, 14, 10)),
    ("segmentation", "2-2-1", True, (3, 1, 4), (8, 6, 10)),
)


def mag_vec(mag: str) -> tuple[int, int, int]:
    parts = [int(p) for p in mag.split("-")]
    return (parts[0],) * 3 if len(parts) == 1 else (parts[0], parts[1], parts[2])  # type: ignore[return-value]


def golden_writes(seed: int = SEED) -> list[GoldenWrite]:
    """The golden voxels: the same arrays for every call with the same seed."""
    spec = {layer.name: layer for layer in LAYERS}
    writes = []
    for i, (layer, mag, compress, offset, size) in enumerate(_PLAN):
        rng = np.random.default_rng([seed, i])
        ls = spec[layer]
        shape = (ls.num_channels, *size)
        if ls.category == "segmentation":
            # few, blocky ids, like a real segmentation (and small compressed files)
            data = rng.integers(1, 60, size=shape, dtype=np.int64).astype(ls.dtype)
            data[:, : size[0] // 2] += 1000
        else:
            data = rng.integers(1, 256, size=shape, dtype=np.int64).astype(ls.dtype)
        writes.append(GoldenWrite(layer, mag, compress, offset, data))
    return writes


def largest_segment_id(seed: int = SEED) -> int:
    return max(int(w.data.max()) for w in golden_writes(seed) if w.layer == "segmentation")


def expected_layer_bbox(layer: str, seed: int = SEED) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """(topleft, size) in mag-1 voxels: the union of the layer's writes."""
    lo: Optional[list[int]] = None
    hi: Optional[list[int]] = None
    for w in golden_writes(seed):
        if w.layer != layer:
            continue
        m = w.mag_vec
        start = [w.offset[i] * m[i] for i in range(3)]
        end = [(w.offset[i] + w.data.shape[1 + i]) * m[i] for i in range(3)]
        lo = start if lo is None else [min(a, b) for a, b in zip(lo, start)]
        hi = end if hi is None else [max(a, b) for a, b in zip(hi, end)]
    assert lo is not None and hi is not None
    return tuple(lo), tuple(h - l for h, l in zip(hi, lo))  # type: ignore[return-value]


def write_with_wkview(path: Path, seed: int = SEED) -> None:
    """Write the golden dataset with wkview (``path`` must not hold a dataset).

    Unaligned writes into LZ4HC mags raise wkview's expected RuntimeWarning;
    the caller decides whether to silence it.
    """
    import wkview

    ds = wkview.Dataset.create(path, scale=SCALE, name=WKVIEW_NAME)
    for ls in LAYERS:
        kwargs = {"largest_segment_id": largest_segment_id(seed)} if ls.category == "segmentation" else {}
        ds.add_layer(ls.name, ls.category, dtype_per_channel=ls.dtype, num_channels=ls.num_channels, **kwargs)
    for w in golden_writes(seed):
        layer = ds.get_layer(w.layer)
        mag = layer.get_or_add_mag(w.mag, block_len=BLOCK_LEN, file_len=FILE_LEN, compress=w.compress)
        mag.write(w.data, offset=w.offset)


def write_with_webknossos(path: Path, seed: int = SEED) -> None:
    """Write the golden dataset with webknossos 4.3.3 (``path`` must not exist)."""
    # importing webknossos otherwise asks PyPI for its latest version in a background thread
    os.environ.setdefault("WEBKNOSSOS_SKIP_VERSION_CHECK", "True")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # image-reader and chunk-shape notices of webknossos
        import webknossos as wk
        from webknossos.version import __version__ as wk_version

        if wk_version != "4.3.3":
            raise SystemExit(f"the golden dataset is written by webknossos 4.3.3, found {wk_version}")
        ds = wk.Dataset(path, voxel_size=SCALE, name=WK433_NAME)
        for ls in LAYERS:
            kwargs = {"largest_segment_id": largest_segment_id(seed)} if ls.category == "segmentation" else {}
            ds.add_layer(ls.name, ls.category, dtype=ls.dtype, num_channels=ls.num_channels, data_format="wkw", **kwargs)
        for w in golden_writes(seed):
            layer = ds.get_layer(w.layer)
            if w.mag in {m.to_layer_name() for m in layer.mags}:
                mag = layer.get_mag(w.mag)
            else:
                mag = layer.add_mag(
                    w.mag, chunk_shape=BLOCK_LEN, shard_shape=BLOCK_LEN * FILE_LEN, compress=w.compress
                )
            mag1_offset = tuple(o * m for o, m in zip(w.offset, w.mag_vec))
            mag.write(w.data, absolute_offset=mag1_offset, allow_resize=True, allow_unaligned=True)


def _replace(target: Path, write, force: bool) -> None:
    if target.exists() and not force:
        raise SystemExit(f"{target} exists; pass --force to regenerate it")
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        fresh = Path(tmp) / target.name
        write(fresh)
        if target.exists():
            shutil.rmtree(target)
        shutil.move(str(fresh), str(target))
    total = sum(f.stat().st_size for f in target.rglob("*") if f.is_file())
    print(f"wrote {target} ({total} bytes)")


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--force", action="store_true", help="replace existing golden datasets")
    parser.add_argument("--only", choices=("wk433", "wkview"), help="regenerate just one of them")
    args = parser.parse_args(argv)
    if args.only in (None, "wk433"):
        _replace(DATA_DIR / WK433_NAME, write_with_webknossos, args.force)
    if args.only in (None, "wkview"):
        def quiet_wkview(path: Path) -> None:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", category=RuntimeWarning, message=r"write\(\)")
                write_with_wkview(path)

        _replace(DATA_DIR / WKVIEW_NAME, quiet_wkview, args.force)


if __name__ == "__main__":
    sys.path.insert(0, str(DATA_DIR.parents[1]))  # the checkout's wkview, also without an install
    main()

"""Whole-dataset operations behind the ``wkview`` commands: pyramid, compression,
comparison, export, inventory and verification.

Each function takes a dataset path (or :class:`~wkview.Dataset`), an optional
executor (:func:`wkview.get_executor`; None runs the jobs here) and ``progress``
(None: a bar when stderr is a terminal), and returns plain data, so scripts get
the same power as the command line.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional, Union

import numpy as np

from . import _durable, codec, pyramid, wkw_format
from . import compression as _compression
from . import repair as _repair
from ._storage import MagStore
from .dataset import Dataset, Layer, MagView
from .errors import CorruptFileError, DatasetError, ShapeError
from .executors import run_jobs
from .geometry import BoundingBox, Mag

__all__ = [
    "open_dataset",
    "downsample_dataset",
    "compress_dataset",
    "check_equality",
    "Difference",
    "export_region",
    "dataset_info",
    "verify_dataset",
    "Damage",
]

PathLike = Union[str, os.PathLike]

def open_dataset(dataset: Union[PathLike, Dataset]) -> Dataset:
    """``dataset`` as a :class:`Dataset` (opened from its folder when a path)."""
    return dataset if isinstance(dataset, Dataset) else Dataset(dataset)


def _wkw_layers(ds: Dataset, layer: Optional[str]) -> list[Layer]:
    if layer is not None:
        return [ds.get_layer(layer)]
    return [lay for lay in ds.layers.values() if lay.data_format == "wkw"]


# -- downsample ------------------------------------------------------------------------------


def downsample_dataset(
    dataset: Union[PathLike, Dataset],
    *,
    layer: Optional[str] = None,
    from_mag: Any = None,
    max_mag: Any = None,
    interpolation_mode: str = "default",
    sampling_mode: str = "auto",
    compress: bool = True,
    executor: Any = None,
    progress: Optional[bool] = None,
) -> dict[str, list[Mag]]:
    """Build the pyramid of every WKW layer (or of ``layer``) from ``from_mag`` (default:
    the finest) up to ``max_mag`` (default: :func:`wkview.pyramid.default_coarsest_mag`, as
    webknossos' command line); returns the new mags per layer.

    Mags that exist already are kept; each new mag is named in the properties file
    only when it is complete (:meth:`wkview.Layer.downsample_mag`), so an interrupted
    run leaves no half-built mag visible and a rerun continues where it stopped.
    """
    ds = open_dataset(dataset)
    done: dict[str, list[Mag]] = {}
    for lay in _wkw_layers(ds, layer):
        start = Mag(from_mag) if from_mag is not None else lay.get_finest_mag().mag
        lay.get_mag(start)  # refuses a mag the layer lacks, also when the chain from it is empty
        coarsest = pyramid.default_coarsest_mag(lay.bounding_box.size) if max_mag is None else Mag(max_mag)
        chain = pyramid.downsampling_chain(start, coarsest, sampling_mode, ds.scale, lay.bounding_box.size)
        previous = start
        made = []
        for mag in chain:
            if mag not in lay.mags:
                lay.downsample_mag(previous, mag, interpolation_mode, compress, None, executor, progress=progress)
                made.append(mag)
            previous = mag
        done[lay.name] = made
    return done


# -- compress --------------------------------------------------------------------------------


@dataclass
class CompressResult:
    """What :func:`compress_dataset` did to one mag."""

    layer: str
    mag: str
    files: int  # files compressed now
    bytes_before: int
    bytes_after: int


def compress_dataset(
    dataset: Union[PathLike, Dataset],
    *,
    layer: Optional[str] = None,
    mag: Any = None,
    level: Optional[int] = None,
    compression: str = _compression.DEFAULT_COMPRESSION,
    executor: Any = None,
    progress: Optional[bool] = None,
) -> list[CompressResult]:
    """Compress the mags of a dataset in place with ``compression`` ("lz4hc", the default, at
    ``level``, default 4; or "lz4", which has no level).

    Raw mags are compressed, and with "lz4hc" LZ4 mags are re-encoded (convert fast with
    LZ4 now, shrink later); mags that are compressed as asked or better are left as they
    are. Each mag through :meth:`wkview.MagView.compress`: every file replaced atomically
    by its new version on a job, ``header.wkw`` last; an interrupted run, started again,
    finishes the job. No other process may write to the mags meanwhile.
    """
    _compression.check_level_for(compression, level)  # before any mag is touched
    ds = open_dataset(dataset)
    results = []
    for lay in _wkw_layers(ds, layer):
        views = [lay.get_mag(mag)] if mag is not None else list(lay.mags.values())
        for view in views:
            if not _compression.needs_compressing(view.header.block_type, compression):
                continue
            stats = view.compress(level=level, compression=compression, executor=executor, progress=progress)
            results.append(CompressResult(lay.name, view.name, *(stats or (0, 0, 0))))
    return results


# -- check-equality --------------------------------------------------------------------------


@dataclass(frozen=True)
class Difference:
    """The first place where two datasets differ."""

    what: str  # "layers", "layer", "bounding box", "mags" or "voxels"
    detail: str
    layer: Optional[str] = None
    mag: Optional[str] = None
    position: Optional[tuple[int, int, int]] = None  # in voxels of ``mag``
    value_a: Any = None
    value_b: Any = None

    def __str__(self) -> str:
        return self.detail


def _first_difference(a: MagView, b: MagView, box: tuple[tuple[int, int, int], tuple[int, int, int]]) -> Optional[tuple]:
    offset, size = box
    da, db = a.read(offset, size), b.read(offset, size)
    if np.array_equal(da, db, equal_nan=da.dtype.kind == "f"):
        return None
    differs = da != db
    if da.dtype.kind == "f":
        differs &= ~(np.isnan(da) & np.isnan(db))
    diff = np.argwhere(differs.any(axis=0))
    # first in z, then y, then x order
    order = np.lexsort((diff[:, 0], diff[:, 1], diff[:, 2]))
    x, y, z = (int(v) for v in diff[order[0]])
    pos = (offset[0] + x, offset[1] + y, offset[2] + z)
    return pos, da[:, x, y, z].tolist(), db[:, x, y, z].tolist()


def check_equality(
    a: Union[PathLike, Dataset],
    b: Union[PathLike, Dataset],
    *,
    layer: Optional[str] = None,
    bbox: Optional[BoundingBox] = None,
    executor: Any = None,
    progress: Optional[bool] = None,
) -> Optional[Difference]:
    """None when both datasets hold the same voxels, else the first :class:`Difference`.

    Compares the WKW layers (or ``layer``): their names, dtypes, channels, bounding
    boxes (unless ``bbox``, in mag-1 voxels, is given) and mags, then the voxels of
    every mag in file-sized chunks, on ``executor``. Of several differing voxels of a
    mag, the first in z, then y, then x order is reported.
    """
    da, db = open_dataset(a), open_dataset(b)
    names_a = {lay.name for lay in _wkw_layers(da, layer)}
    names_b = {lay.name for lay in _wkw_layers(db, layer)}
    if names_a != names_b:
        return Difference("layers", f"the layers differ: {sorted(names_a)} vs {sorted(names_b)}")
    for name in sorted(names_a):
        la, lb = da.get_layer(name), db.get_layer(name)
        if (la.dtype_per_channel, la.num_channels) != (lb.dtype_per_channel, lb.num_channels):
            return Difference(
                "layer", f"layer {name!r}: {la.num_channels} x {la.dtype_per_channel} vs "
                f"{lb.num_channels} x {lb.dtype_per_channel}", layer=name,
            )
        box = bbox
        if box is None:
            if la.bounding_box != lb.bounding_box:
                return Difference(
                    "bounding box", f"layer {name!r}: bounding box {la.bounding_box} vs {lb.bounding_box}", layer=name
                )
            box = la.bounding_box
        mags_a, mags_b = set(la.mags), set(lb.mags)
        if mags_a != mags_b:
            return Difference("mags", f"layer {name!r}: mags {sorted(mags_a)} vs {sorted(mags_b)}", layer=name)
        for mag in sorted(mags_a):
            va, vb = la.get_mag(mag), lb.get_mag(mag)
            region = box.align_with_mag(mag, ceil=True).in_mag(mag)
            if region.is_empty():
                continue
            edge = va.file_edge
            chunks = [(tuple(c.topleft), tuple(c.size)) for c in region.chunk((edge, edge, edge), (edge, edge, edge))]
            found = run_jobs(
                functools.partial(_first_difference, va, vb),
                chunks,
                executor,
                progress=progress,
                desc=f"compare {name}/{mag.to_layer_name()}",
                unit="voxel",
                weight=lambda chunk: chunk[1][0] * chunk[1][1] * chunk[1][2],
            )
            hits = [hit for hit in found if hit is not None]
            if hits:
                # each chunk reports its first difference in z, y, x order: the mag's first is
                # the smallest of those positions read as (z, y, x)
                pos, value_a, value_b = min(hits, key=lambda hit: hit[0][::-1])
                return Difference(
                    "voxels",
                    f"layer {name!r}, mag {mag.to_layer_name()}: first difference at {pos}: "
                    f"{_values(value_a)} vs {_values(value_b)}",
                    layer=name, mag=mag.to_layer_name(), position=pos, value_a=value_a, value_b=value_b,
                )
    return None


def _values(values: list) -> str:
    return str(values[0]) if len(values) == 1 else str(tuple(values))


# -- export ----------------------------------------------------------------------------------


def _export_slab(
    view: MagView,
    region: BoundingBox,
    format: str,
    target: str,
    digits: int,
    slab: tuple[int, int],
) -> int:
    """Write z-slices ``slab[0] .. slab[0] + slab[1] - 1`` of ``region`` (relative z); returns the count."""
    z, n = slab
    size = region.size
    data = view.read((region.topleft[0], region.topleft[1], region.topleft[2] + z), (size[0], size[1], n))
    channels = data.shape[0]
    if format == "npy":
        array = np.load(target, mmap_mode="r+")
        array[..., z : z + n] = data[0] if channels == 1 else data
        array.flush()
        return n
    import tifffile

    for k in range(n):
        image = data[:, :, :, k].transpose(2, 1, 0)  # (y, x, channels)
        image = image[:, :, 0] if channels == 1 else image
        file = Path(target) / f"{region.topleft[2] + z + k:0{digits}d}.tif"
        photometric = "rgb" if channels == 3 else "minisblack"
        # a new file of this export (no other writer: no lock file beside each slice)
        _durable.write_encoded(
            file, lambda f: tifffile.imwrite(f, np.ascontiguousarray(image), photometric=photometric), lock=False
        )
    return n


def export_region(
    dataset: Union[PathLike, Dataset],
    out: PathLike,
    *,
    layer: Optional[str] = None,
    mag: Any = 1,
    bbox: Optional[BoundingBox] = None,
    format: str = "tiff",
    executor: Any = None,
    progress: Optional[bool] = None,
) -> list[Path]:
    """Write a region of one layer as a TIFF stack or one ``.npy`` file; returns the files.

    ``bbox`` is in mag-1 voxels (default: the layer's bounding box). ``"tiff"``
    writes ``out/<z>.tif`` (one per z of the mag, numbered by absolute z; rows are y;
    RGB layers as RGB images); ``"npy"`` writes ``out`` (or ``out/<layer>.npy`` when
    ``out`` is a folder) holding ``(x, y, z)`` or ``(channels, x, y, z)``. Slabs of
    z-slices are jobs on ``executor`` (the ``.npy`` is filled through memory maps).
    """
    if format not in ("tiff", "npy"):
        raise DatasetError(f"format must be 'tiff' or 'npy', got {format!r}")
    ds = open_dataset(dataset)
    lay = ds.get_layer(layer) if layer is not None else _single_wkw_layer(ds)
    view = lay.get_mag(mag)
    m = view.mag
    region = (bbox if bbox is not None else lay.bounding_box).align_with_mag(m, ceil=True).in_mag(m)
    if region.is_empty():
        raise ShapeError(f"the region to export is empty ({region})")
    out = Path(out)
    size = tuple(region.size)
    channels = lay.num_channels
    step = max(1, view.header.block_len)
    slabs = [(z, min(step, size[2] - z)) for z in range(0, size[2], step)]
    digits = max(4, len(str(region.bottomright[2])))
    if format == "npy":
        target = out / f"{lay.name}.npy" if out.is_dir() else out
        target.parent.mkdir(parents=True, exist_ok=True)
        shape = size if channels == 1 else (channels, *size)
        np.lib.format.open_memmap(target, mode="w+", dtype=lay.dtype_per_channel, shape=shape, fortran_order=True).flush()
        files = [target]
    else:
        out.mkdir(parents=True, exist_ok=True)
        target = out
        files = [out / f"{region.topleft[2] + z:0{digits}d}.tif" for z in range(size[2])]
    run_jobs(
        functools.partial(_export_slab, view, region, format, str(target), digits),
        slabs,
        executor,
        progress=progress,
        desc=f"export {lay.name}/{m.to_layer_name()}",
        unit="slice",
        weight=lambda slab: slab[1],
    )
    return files


def _single_wkw_layer(ds: Dataset) -> Layer:
    layers = _wkw_layers(ds, None)
    if len(layers) != 1:
        raise DatasetError(f"{ds.path} has {len(layers)} WKW layers ({', '.join(l.name for l in layers)}): name one")
    return layers[0]


# -- info ------------------------------------------------------------------------------------


def _disk_usage(folder: Path) -> tuple[int, int]:
    """(data files, bytes of data files) under a mag folder."""
    files = total = 0
    for root, _, names in os.walk(folder):
        for name in names:
            if name.endswith(".wkw") and name != "header.wkw" and not name.startswith("."):
                files += 1
                total += os.path.getsize(os.path.join(root, name))
    return files, total


def dataset_info(dataset: Union[PathLike, Dataset]) -> dict[str, Any]:
    """Layers, mags, bounding boxes, dtypes, compression, bytes on disk and compression
    ratios of a dataset, as plain JSON-serialisable data.

    Per mag, ``compression_ratio`` is the bytes of the voxels in the layer's bounding box
    (``bytes_in_bounding_box``) over the bytes of the data files on disk;
    ``stored_blocks_ratio`` is the decoded bytes of every block the files hold
    (``bytes_decoded``: whole files, padding beyond the box included) over the same.
    """
    ds = open_dataset(dataset)
    layers = []
    for lay in ds.layers.values():
        entry: dict[str, Any] = {
            "name": lay.name,
            "category": lay.category,
            "data_format": lay.data_format,
            "dtype_per_channel": str(lay.dtype_per_channel),
            "num_channels": lay.num_channels,
            "element_class": lay._properties.element_class,
            "bounding_box": {"topleft": list(lay.bounding_box.topleft), "size": list(lay.bounding_box.size)},
            "mags": [],
        }
        if lay.category == "segmentation":
            entry["largest_segment_id"] = getattr(lay, "largest_segment_id", None)
        if lay.data_format == "wkw":
            voxel_bytes = lay.dtype_per_channel.itemsize * lay.num_channels
            for mag, view in sorted(lay.mags.items()):
                header = view.header
                files, on_disk = _disk_usage(view.path)
                box = lay.bounding_box.align_with_mag(mag, ceil=True).in_mag(mag)
                # the ratio people mean is over the layer's voxels: over the whole file grid a
                # small box in big files (a 6144x2048x40 mosaic in 1024^3-voxel files) would
                # count gigabytes of padding as compressed data
                in_box = box.volume() * voxel_bytes
                stored = files * (header.block_len * header.file_len) ** 3 * voxel_bytes
                entry["mags"].append(
                    {
                        "mag": mag.to_layer_name(),
                        "path": str(view.path),
                        "block_len": header.block_len,
                        "file_len": header.file_len,
                        "compression": _compression.block_type_name(header.block_type),
                        "voxels": box.volume(),
                        "files": files,
                        "bytes_on_disk": on_disk,
                        "bytes_in_bounding_box": in_box,
                        "bytes_decoded": stored,
                        "compression_ratio": round(in_box / on_disk, 3) if on_disk else None,
                        "stored_blocks_ratio": round(stored / on_disk, 3) if on_disk else None,
                    }
                )
        layers.append(entry)
    return {"path": str(ds.path), "name": ds.name, "scale": list(ds.scale), "layers": layers}


# -- verify ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Damage:
    """A damaged or stray file found by :func:`verify_dataset`."""

    path: str
    reason: str
    repaired: bool = False

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}" + (" (removed)" if self.repaired else "")


def _verify_file(store: MagStore, index: tuple[int, int, int]) -> Optional[str]:
    """None when the file's header, jump table and every block are sound, else why not."""
    path = store.file_path(index)
    try:
        layout = wkw_format.layout_of(store.header)
        found = wkw_format.validate_data_file(path, layout, os.path.getsize(path))
        if found.block_type == wkw_format.BLOCK_TYPE_RAW:
            return None  # every block is there: the size matches the header
        blen = found.block_len
        edge = blen * found.file_len
        with codec.CompressedFile.open(path, found) as opened:
            out = np.empty((found.num_channels, edge, edge, blen), dtype=found.dtype, order="F")
            for z in range(0, edge, blen):  # one layer of blocks at a time: every block decoded once
                codec.read_box(path, found, (0, 0, z), (edge, edge, blen), out, threads=1, opened=opened)
    except (CorruptFileError, OSError, ValueError) as exc:
        return str(exc).replace(f"{path}: ", "").replace(f"{path} ", "")
    return None


#: Name endings of what killed writers leave: temporary files and raw undo journals.
_LEFTOVER_SUFFIXES = (
    _durable.TEMP_SUFFIX, _durable.UNDO_SUFFIX, _durable.UNDO_SUFFIX + ".part", ".old"
)  # fmt: skip


def _leftover_reason(path: Path) -> str:
    if _durable.is_legacy_lock(path.name):
        return "lock file of an earlier wkview version"
    if path.name.endswith(_repair.BUILDING_SUFFIX):
        return "folder of an interrupted mag build"
    return "left by an interrupted write"


def _leftovers(folder: Path) -> Iterator[Path]:
    """Hidden files that killed writers left behind (lock files are not leftovers)."""
    for root, dirs, names in os.walk(folder):
        for name in names + [d for d in dirs if d.endswith(".tmp")]:
            if name.startswith(".") and name.endswith(_LEFTOVER_SUFFIXES):
                yield Path(root) / name


def verify_dataset(
    dataset: Union[PathLike, Dataset],
    *,
    layer: Optional[str] = None,
    repair: bool = False,
    executor: Any = None,
    progress: Optional[bool] = None,
) -> list[Damage]:
    """Check every data file of the WKW layers: header, jump table, and every block
    decoded once. Returns what is damaged (an empty list: all sound).

    Leftovers of killed writers (temporary files, undo journals of raw writes, the
    hidden ``.<mag>-building`` folder of a killed mag build) are
    listed too; ``repair=True`` first cleans them up with
    :func:`wkview.repair.remove_stale_temp_files` (rolling back unfinished raw writes,
    removing the per-file lock files of earlier wkview versions) and lists what it
    removed as repaired. Damaged data files are never removed; the lock files in use
    (``.wkview-locks``) are no damage and are not listed.
    """
    ds = open_dataset(dataset)
    damage: list[Damage] = []
    layers = _wkw_layers(ds, layer)
    if repair:
        for lay in layers:
            for removed in _repair.remove_stale_temp_files(lay.path):
                damage.append(Damage(str(removed), _leftover_reason(removed), repaired=True))
    for lay in layers:
        damage += [Damage(str(p), _leftover_reason(p)) for p in _repair.stale_building_folders(lay.path)]
        for mag, view in sorted(lay.mags.items()):
            store = MagStore(view.path, view.header)  # its own: jobs pickle it
            files = store.list_files()
            reasons = run_jobs(
                functools.partial(_verify_file, store),
                files,
                executor,
                progress=progress,
                desc=f"verify {lay.name}/{mag.to_layer_name()}",
                unit="file",
            )
            damage += [Damage(store.file_path(i), r) for i, r in zip(files, reasons) if r is not None]
            damage += [Damage(str(p), "left by an interrupted write") for p in _leftovers(view.path)]
    return damage

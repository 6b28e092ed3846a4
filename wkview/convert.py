"""Batch conversion of image stacks, mosaics, TIFFs, ``.npy`` and raw volumes into WKW
datasets: the library behind ``wkview convert`` and ``wkview convert-raw``.

How a conversion runs:

1. The source is opened and checked (:mod:`wkview.sources`): every slice's header
   is read, so a missing, damaged or differently sized image is reported before
   anything is written.
2. The volume is cut into batches that cover whole files of the target's file grid
   (``file_len * block_len`` voxels per edge): a z-range of whole file layers,
   split in x and y when one layer of files would exceed ``batch_bytes``. Each batch
   is a job that reads its slices *on the worker* and writes its files once, so
   no job reads back or shares a file, and memory stays bounded by a few batches.
3. The pyramid of coarser mags is computed into folders of its own (one job per
   target file).
4. Only then is ``datasource-properties.json`` written: until that moment no
   reader (webknossos included) sees a dataset. Progress of an unfinished run is
   kept in the hidden folder ``<target>/.wkview-convert``; running the same
   conversion again resumes it (finished batches and mags are skipped, a batch
   that was cut off is written again whole), while a conversion with other input
   or settings starts clean. The folder is removed at the end.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np
import wkw

from . import _durable
from . import properties as props
from . import compression as _compression
from . import pyramid, repair
from ._storage import MagStore
from .dataset import Dataset, mag_header
from .downsampling import resolve_mode
from .errors import DatasetError, TargetExistsError
from .executors import run_jobs, runs_here
from .geometry import BoundingBox, Mag
from .sources import RawVolume, VolumeSource, open_source

__all__ = ["convert", "convert_raw", "plan_batches", "DEFAULT_BATCH_BYTES", "PROGRESS_FOLDER"]

log = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]

#: Upper bound of the voxel bytes one conversion job holds (it may hold more when a
#: single file of the target is bigger than this).
DEFAULT_BATCH_BYTES = 1 << 30

#: Hidden folder in the target that records an unfinished conversion.
PROGRESS_FOLDER = ".wkview-convert"

_CATEGORIES = ("color", "segmentation")


def _voxel_size(value: Any) -> tuple[float, float, float]:
    try:
        vs = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise DatasetError(f"voxel_size must be three positive numbers, got {value!r}") from None
    if len(vs) != 3 or not all(v > 0 and np.isfinite(v) for v in vs):
        raise DatasetError(f"voxel_size must be three positive numbers, got {value!r}")
    return vs  # type: ignore[return-value]


def _target_dtype(source: VolumeSource, dtype: Any) -> np.dtype:
    """The layer's dtype per channel: the source's, or ``dtype`` when it holds every value."""
    if dtype is None:
        return np.dtype(source.dtype)
    try:
        target = np.dtype(dtype)
    except TypeError:
        raise DatasetError(f"not a voxel type: {dtype!r}") from None
    if not np.can_cast(source.dtype, target, "safe"):
        raise DatasetError(
            f"converting {source.dtype} voxels to {target} could change values; give a dtype that "
            f"holds every {source.dtype} value (or none to keep {source.dtype})"
        )
    return target


def plan_batches(
    shape: Sequence[int], file_edge: int, bytes_per_voxel: int, batch_bytes: int = DEFAULT_BATCH_BYTES
) -> list[tuple[tuple[int, int, int], tuple[int, int, int]]]:
    """Boxes ``(offset, size)`` of whole target files that together cover ``shape``.

    Each box is a z-range of one file layer; when a whole layer of files would hold
    more than ``batch_bytes``, it is split into columns of whole files in x and y.
    Boxes are clipped at the end of the volume.
    """
    x, y, z = (int(s) for s in shape)
    if min(x, y, z) <= 0:
        return []
    files = [-(-x // file_edge), -(-y // file_edge)]
    per_file = file_edge**3 * bytes_per_voxel
    budget = max(1, batch_bytes // per_file)  # files per batch
    tx, ty = files
    while tx * ty > budget and (tx > 1 or ty > 1):
        if tx >= ty:
            tx = -(-tx // 2)
        else:
            ty = -(-ty // 2)
    boxes = []
    step_x, step_y = tx * file_edge, ty * file_edge
    for z0 in range(0, z, file_edge):
        for y0 in range(0, y, step_y):
            for x0 in range(0, x, step_x):
                size = (min(step_x, x - x0), min(step_y, y - y0), min(file_edge, z - z0))
                boxes.append(((x0, y0, z0), size))
    return boxes


# -- the jobs (run in worker processes) ----------------------------------------------------


def _write_batch(
    source: VolumeSource,
    store: MagStore,
    dtype: np.dtype,
    level: Optional[int],
    done_dir: str,
    item: tuple[int, tuple[tuple[int, int, int], tuple[int, int, int]]],
) -> Optional[int]:
    """Read one batch from the source, write its files, record it as done.

    Returns the largest value of the batch for integer data (segment ids), else None.
    """
    number, (offset, size) = item
    data = source.read(offset, size)
    if data.dtype != dtype:
        data = data.astype(dtype, order="F")
    store.write(offset, data, level)
    largest = int(data.max()) if data.dtype.kind in "ui" and data.size else None
    _mark_done(Path(done_dir) / f"batch-{number}", {"largest": largest})
    return largest


def _mark_done(path: Path, content: dict) -> None:
    _durable.write_file(path, json.dumps(content).encode())


def _read_done(path: Path) -> Optional[dict]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


# -- the target folder -----------------------------------------------------------------------


def _prepare_target(target: Path, fingerprint: dict, overwrite: bool) -> Path:
    """Make ``target`` ready; return its progress folder (kept when resuming)."""
    progress = target / PROGRESS_FOLDER
    params = progress / "params.json"
    if target.exists() or target.is_symlink():
        if overwrite:
            pyramid.remove_path(target)
        elif params.is_file() and _read_done(params) == fingerprint:
            log.info("resuming the unfinished conversion in %s", target)
            return progress
        elif params.is_file() or progress.is_dir():
            log.warning("%s holds an unfinished conversion with other input or settings: starting again", target)
            pyramid.remove_path(target)
        elif not target.is_dir():
            raise TargetExistsError(f"{target} exists and is not a folder (use --overwrite, or overwrite=True, to replace it)")
        elif any(target.iterdir()):
            what = "a dataset" if (target / props.PROPERTIES_FILE_NAME).exists() else "files"
            raise TargetExistsError(f"{target} already holds {what} (use --overwrite, or overwrite=True, to replace it)")
    (progress / "done").mkdir(parents=True, exist_ok=True)
    _mark_done(params, fingerprint)
    return progress


def _fresh_or_resumed_mag(path: Path, header: wkw.Header, resumed: bool) -> MagStore:
    if resumed and (path / "header.wkw").is_file():
        # leftovers of writes the interruption cut off: the batch is written again whole
        repair.remove_stale_temp_files(path)
        store = MagStore(path)
        h = store.header
        if (h.block_len, h.file_len, h.block_type, h.num_channels, np.dtype(h.voxel_type)) == (
            header.block_len, header.file_len, header.block_type, header.num_channels, np.dtype(header.voxel_type)
        ):
            return store
    return pyramid.fresh_mag_folder(path, header)


# -- the public functions -------------------------------------------------------------------


def convert(
    source: Union[PathLike, VolumeSource],
    target: PathLike,
    voxel_size: Sequence[float],
    *,
    layer_name: str = "color",
    category: str = "color",
    dtype: Any = None,
    compress: bool = True,
    block_len: int = 32,
    file_len: int = 32,
    compression_level: Optional[int] = None,
    compression: str = _compression.DEFAULT_COMPRESSION,
    downsample: bool = True,
    max_mag: Any = None,
    interpolation_mode: str = "default",
    sampling_mode: str = "auto",
    name: Optional[str] = None,
    executor: Any = None,
    overwrite: bool = False,
    batch_bytes: int = DEFAULT_BATCH_BYTES,
    progress: Optional[bool] = None,
) -> Dataset:
    """Convert a volume into a new WKW dataset at ``target`` (one layer, mag 1 and a pyramid).

    Parameters
    ----------
    source : path, glob, pattern or VolumeSource
        What :func:`wkview.sources.open_source` reads: a folder of 2D images, a glob,
        a ``{x}``/``{y}``/``{z}`` tile pattern, a multi-page TIFF or a ``.npy`` file;
        or a reader such as :class:`~wkview.sources.RawVolume`.
    target : path
        The dataset folder to create. An existing folder with data is refused unless
        ``overwrite``; one holding an unfinished conversion of the same input and
        settings is resumed.
    voxel_size : three floats
        Physical size of a voxel (nm), stored as the dataset's ``scale``.
    layer_name, category : str
        The layer; ``category`` is "color" or "segmentation" (whose
        ``largest_segment_id`` is the largest value found).
    dtype : dtype-like, optional
        The layer's dtype per channel; it must hold every value of the source's
        type (no value is changed). Default: the source's. RGB images become
        3 channels of uint8 (element class ``uint24``).
    compress : bool
        Compressed files (default) or raw ones.
    block_len, file_len : int
        Powers of two; files hold ``(block_len * file_len)**3`` voxels.
    compression_level : int, optional
        LZ4HC level (1-12; default 4; 9 gives libwkw's bytes).
    compression : str
        "lz4hc" (default: smaller files) or "lz4" (several times faster to write,
        larger files, no level; :func:`wkview.tools.compress_dataset` re-encodes it to
        LZ4HC later). Both are read by webKNOSSOS and libwkw.
    downsample : bool
        Also build the pyramid (default), up to ``max_mag``; by default up to the mag
        that brings x and y to about 100 voxels, at least mag 4, as webknossos' command
        line does (:func:`wkview.pyramid.default_coarsest_mag`). ``interpolation_mode``
        and ``sampling_mode`` as in :meth:`wkview.Layer.downsample`.
    name : str, optional
        Dataset name (default: the target folder's name).
    executor : optional
        Where the jobs run (see :func:`wkview.get_executor`); None runs them here.
    overwrite : bool
        Remove whatever is at ``target`` first.
    batch_bytes : int
        Upper bound of the voxel bytes one job holds (whole files are the minimum).
    progress : bool, optional
        Show progress bars (None: when stderr is a terminal).

    Returns
    -------
    Dataset
        The new dataset.

    Raises
    ------
    SourceError
        Unreadable or inconsistent input (naming the file); nothing is written.
    TargetExistsError
        ``target`` holds data and ``overwrite`` is False.
    ValueError
        Invalid settings; nothing is written.
    """
    src = source if isinstance(source, VolumeSource) else open_source(source)
    target = Path(target)
    scale = _voxel_size(voxel_size)
    if category not in _CATEGORIES:
        raise DatasetError(f"category must be 'color' or 'segmentation', got {category!r}")
    props.validate_name(layer_name, "layer name")
    level = _compression.check_level_for(compression, compression_level)
    layer_dtype = _target_dtype(src, dtype)
    header = mag_header(layer_dtype, src.num_channels, block_len, file_len, compress)  # checks the lengths
    if compress:
        header = _compression.compressed_header(header, compression)
    block_len, file_len = header.block_len, header.file_len
    element_class = props.element_class_from_dtype(layer_dtype, src.num_channels)
    if category == "segmentation" and (src.num_channels != 1 or layer_dtype.kind not in "ui"):
        raise DatasetError("a segmentation layer needs one channel of integers")
    mode = resolve_mode(interpolation_mode, category)
    coarsest = pyramid.default_coarsest_mag(src.shape) if max_mag is None else Mag(max_mag)
    chain = pyramid.downsampling_chain(Mag(1), coarsest, sampling_mode, scale, src.shape) if downsample else []
    if batch_bytes < 1:
        raise DatasetError(f"batch_bytes must be positive, got {batch_bytes}")
    ds_name = props.validate_name(name if name is not None else target.resolve().name, "dataset name")

    fingerprint = {
        "source": src.fingerprint(),
        "layer": [layer_name, category, str(layer_dtype), src.num_channels],
        "files": [block_len, file_len, bool(compress), level] + ([compression] if compress else []),
        "pyramid": [m.to_layer_name() for m in chain] + [mode],
        "scale": list(scale),
        "name": ds_name,
    }
    progress_dir = _prepare_target(target, fingerprint, overwrite)
    done_dir = progress_dir / "done"
    resumed = any(done_dir.iterdir())

    layer_dir = target / layer_name
    store = _fresh_or_resumed_mag(layer_dir / Mag(1).to_layer_name(), header, resumed)
    if level is not None:
        store.compression_level = level

    # mag 1: the batches not done yet
    batches = plan_batches(src.shape, block_len * file_len, layer_dtype.itemsize * src.num_channels, batch_bytes)
    largest: list[Optional[int]] = []
    todo = []
    for number, box in enumerate(batches):
        record = _read_done(done_dir / f"batch-{number}")
        if record is None:
            todo.append((number, box))
        else:
            largest.append(record.get("largest"))
    job = functools.partial(_write_batch, src, store, layer_dtype, level, str(done_dir))
    largest += run_jobs(
        job,
        todo,
        # one batch on a local pool: run it here (no process start, no pickling); the
        # codec's threads still use every core
        None if len(todo) <= 1 and runs_here(executor) else executor,
        progress=progress,
        desc=f"{layer_name}: mag 1",
        unit="voxel",
        weight=lambda item: item[1][1][0] * item[1][1][1] * item[1][1][2],
        describe=lambda item: f"batch {item[0]} at {item[1][0]} of size {item[1][1]} from {src.describe()}",
    )

    # the pyramid, each mag in a folder that the properties file names only at the end
    bbox = BoundingBox((0, 0, 0), src.shape)
    mags = [Mag(1)]
    for mag in chain:
        previous = mags[-1]
        marker = done_dir / f"mag-{mag.to_layer_name()}"
        if _read_done(marker) is None:
            path = layer_dir / mag.to_layer_name()
            target_store = pyramid.fresh_mag_folder(path, header)
            if level is not None:
                target_store.compression_level = level
            src_view = pyramid.bare_view(
                layer_dir / previous.to_layer_name(), header, bbox.align_with_mag(previous, ceil=True).in_mag(previous),
                read_only=True,
            )
            tgt_box = bbox.align_with_mag(mag, ceil=True).in_mag(mag)
            tgt_view = pyramid.bare_view(path, header, tgt_box, store=target_store)
            pyramid.downsample_into(src_view, tgt_view, bbox, previous, mag, mode, None, executor, progress=progress)
            _mark_done(marker, {})
        mags.append(mag)

    # last: the properties file that makes the dataset visible
    layer_props = props.LayerProperties(
        name=layer_name,
        category=category,
        element_class=element_class,
        num_channels=src.num_channels,
        bounding_box=bbox,
        data_format="wkw",
        mags=[
            props.MagProperties(mag=m, cube_length=block_len * file_len, path=f"{layer_name}/{m.to_layer_name()}")
            for m in mags
        ],
        largest_segment_id=(max((v for v in largest if v is not None), default=0) if category == "segmentation" else None),
    )
    dataset_props = props.DatasetProperties(
        name=ds_name, team="", scale=scale, scale_unit=None, layers=[layer_props], extra={}
    )
    props.save_properties(target, dataset_props)
    shutil.rmtree(progress_dir, ignore_errors=True)
    return Dataset(target)


def convert_raw(
    source: PathLike,
    target: PathLike,
    shape: Sequence[int],
    dtype: Any,
    voxel_size: Sequence[float],
    *,
    order: str = "F",
    **kwargs: Any,
) -> Dataset:
    """Convert a raw binary volume of ``shape`` (x, y, z) voxels of ``dtype``.

    The file is memory-mapped, never loaded whole; ``order="F"`` means x varies
    fastest in the file, ``"C"`` that z does. Other arguments as in :func:`convert`
    (``dtype`` there is ``layer_dtype`` here).
    """
    layer_dtype = kwargs.pop("layer_dtype", None)
    return convert(RawVolume.from_file(source, shape, dtype, order), target, voxel_size, dtype=layer_dtype, **kwargs)

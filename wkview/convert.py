"""Batch conversion of image stacks, mosaics, TIFFs, ``.npy`` and raw volumes into WKW
datasets: the library behind ``wkview convert`` and ``wkview convert-raw``.

How a conversion runs:

1. :func:`plan_conversion` opens and checks the source (:mod:`wkview.sources`:
   every slice's header is read, so a missing or damaged image is reported before
   anything is written) and the settings, and decides everything written: the
   layers (one per channel by default, see :func:`plan_layers`), the batches
   (:func:`plan_batches`), the pyramid's mags and the fingerprint that a resumed
   run must match. It writes nothing; :func:`convert` carries the plan out.
2. The volume is cut into batches that cover whole files of the target's file grid
   (``file_len * block_len`` voxels per edge): a z-range of whole file layers,
   split in x and y when one layer of files would exceed ``batch_bytes``. Each batch
   is a job that reads its slices *on the worker* once and writes the files of
   every layer once, so
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
import re
import shutil
from dataclasses import dataclass
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
from .view import View
from .sources import RawVolume, VolumeSource, open_source

__all__ = [
    "convert",
    "convert_raw",
    "plan_conversion",
    "plan_layers",
    "plan_batches",
    "ConversionPlan",
    "LayerPlan",
    "DEFAULT_BATCH_BYTES",
    "PROGRESS_FOLDER",
]

log = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]
Box = tuple[tuple[int, int, int], tuple[int, int, int]]

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
) -> list[Box]:
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


# -- the plan: everything decided before anything is written ---------------------------------

#: Layer colours webknossos gives the first three layers split from one source's channels.
_CHANNEL_COLORS = ((255, 0, 0), (0, 255, 0), (0, 0, 255))

_UNSAFE_NAME_CHARACTERS = re.compile(r"[^A-Za-z0-9_$@.\-]")  # the characters webknossos allows


@dataclass(frozen=True)
class LayerPlan:
    """One layer a conversion writes: its name and which source channels it holds."""

    name: str
    channels: tuple[int, ...]
    element_class: str
    color: Optional[tuple[int, int, int]] = None

    @property
    def num_channels(self) -> int:
        return len(self.channels)


@dataclass(frozen=True)
class ConversionPlan:
    """What a conversion writes, decided and checked before it writes anything.

    Made by :func:`plan_conversion`; :func:`convert` carries it out.
    """

    source: VolumeSource
    target: Path
    dataset_name: str
    scale: tuple[float, float, float]
    category: str
    dtype: np.dtype  # per channel, of every layer
    layers: tuple[LayerPlan, ...]
    block_len: int
    file_len: int
    compress: bool
    level: Optional[int]
    compression: str  # "lz4hc" or "lz4" when compress
    batches: tuple[Box, ...]
    chain: tuple[Mag, ...]  # mags after mag 1, finest first
    mode: str  # downsampling mode

    @property
    def bbox(self) -> BoundingBox:
        return BoundingBox((0, 0, 0), self.source.shape)

    def header(self, layer: LayerPlan) -> wkw.Header:
        """The ``header.wkw`` of every mag of ``layer``."""
        header = mag_header(self.dtype, layer.num_channels, self.block_len, self.file_len, self.compress)
        return _compression.compressed_header(header, self.compression) if self.compress else header

    @property
    def fingerprint(self) -> dict[str, Any]:
        """What a resumed conversion must share with the unfinished one (JSON)."""
        return {
            "source": self.source.fingerprint(),
            "layers": [[layer.name, list(layer.channels)] for layer in self.layers],
            "category": self.category,
            "dtype": str(self.dtype),
            "files": [self.block_len, self.file_len, bool(self.compress), self.level]
            + ([self.compression] if self.compress else []),
            "pyramid": [m.to_layer_name() for m in self.chain] + [self.mode],
            "scale": list(self.scale),
            "name": self.dataset_name,
        }


def plan_layers(
    layer_name: str,
    num_channels: int,
    channel_names: Optional[Sequence[str]],
    dtype: np.dtype,
    one_layer: bool,
) -> tuple[LayerPlan, ...]:
    """The layers of a source with ``num_channels`` channels, as webknossos 4.3.3 names them.

    One layer ``layer_name`` holds every channel when ``one_layer`` (or there is one
    channel); otherwise each channel gets a layer ``<layer_name>__channel<i>``, or
    ``<layer_name>__<name>`` when the source names its channels (unique, non-empty
    names after dropping characters a layer name cannot hold).
    """
    if one_layer or num_channels == 1:
        return (LayerPlan(layer_name, tuple(range(num_channels)), props.element_class_from_dtype(dtype, num_channels)),)
    labels = [f"channel{i}" for i in range(num_channels)]
    if channel_names is not None and len(channel_names) == num_channels:
        cleaned = [_UNSAFE_NAME_CHARACTERS.sub("", str(n)).lstrip(".") for n in channel_names]
        if all(cleaned) and len(set(cleaned)) == num_channels:
            labels = cleaned
    element_class = props.element_class_from_dtype(dtype, 1)
    return tuple(
        LayerPlan(
            props.validate_name(f"{layer_name}__{label}", "layer name"),
            (i,),
            element_class,
            _CHANNEL_COLORS[i] if i < len(_CHANNEL_COLORS) else None,
        )
        for i, label in enumerate(labels)
    )


def plan_conversion(
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
    batch_bytes: int = DEFAULT_BATCH_BYTES,
    channels_as_one_layer: bool = False,
    timepoint: Optional[int] = None,
    axis_order: Optional[str] = None,
) -> ConversionPlan:
    """Check the settings and decide what :func:`convert` writes; writes nothing.

    Arguments as in :func:`convert`. Opening ``source`` reads file headers only.

    Raises
    ------
    SourceError
        Unreadable or inconsistent input.
    DatasetError
        Invalid settings (also a ValueError).
    """
    src = (
        source if isinstance(source, VolumeSource)
        else open_source(source, timepoint=timepoint, axis_order=axis_order)
    )
    target = Path(target)
    scale = _voxel_size(voxel_size)
    if category not in _CATEGORIES:
        raise DatasetError(f"category must be 'color' or 'segmentation', got {category!r}")
    props.validate_name(layer_name, "layer name")
    level = _compression.check_level_for(compression, compression_level)
    layer_dtype = _target_dtype(src, dtype)
    header = mag_header(layer_dtype, src.num_channels, block_len, file_len, compress)  # checks the lengths
    layers = plan_layers(
        layer_name, src.num_channels, src.channel_names, layer_dtype, channels_as_one_layer or src.channels_in_one_layer
    )
    if category == "segmentation" and (layers[0].num_channels != 1 or layer_dtype.kind not in "ui"):
        raise DatasetError("a segmentation layer needs one channel of integers")
    mode = resolve_mode(interpolation_mode, category)
    coarsest = pyramid.default_coarsest_mag(src.shape) if max_mag is None else Mag(max_mag)
    chain = pyramid.downsampling_chain(Mag(1), coarsest, sampling_mode, scale, src.shape) if downsample else []
    if batch_bytes < 1:
        raise DatasetError(f"batch_bytes must be positive, got {batch_bytes}")
    ds_name = props.validate_name(name if name is not None else target.resolve().name, "dataset name")
    edge = header.block_len * header.file_len
    return ConversionPlan(
        source=src,
        target=target,
        dataset_name=ds_name,
        scale=scale,
        category=category,
        dtype=layer_dtype,
        layers=layers,
        block_len=header.block_len,
        file_len=header.file_len,
        compress=bool(compress),
        level=level,
        compression=compression,
        batches=tuple(plan_batches(src.shape, edge, layer_dtype.itemsize * src.num_channels, batch_bytes)),
        chain=tuple(chain),
        mode=mode,
    )


# -- the jobs (run in worker processes) ----------------------------------------------------


def _write_batch(
    source: VolumeSource,
    stores: tuple[tuple[MagStore, tuple[int, ...]], ...],
    dtype: np.dtype,
    level: Optional[int],
    done_dir: str,
    item: tuple[int, Box],
) -> list[Optional[int]]:
    """Read one batch from the source once, write its files of every layer (each
    layer's channels), record it as done.

    Returns the largest value of the batch per layer for integer data (segment ids),
    else None per layer.
    """
    number, (offset, size) = item
    data = source.read(offset, size)
    if data.dtype != dtype:
        data = data.astype(dtype, order="F")
    largest: list[Optional[int]] = []
    for store, channels in stores:
        part = data if len(channels) == data.shape[0] else np.asfortranarray(data[list(channels)])
        store.write(offset, part, level)
        largest.append(int(part.max()) if part.dtype.kind in "ui" and part.size else None)
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


# -- the steps of a conversion ---------------------------------------------------------------


def _write_mag1(
    plan: ConversionPlan, done_dir: Path, executor: Any, progress: Optional[bool]
) -> list[list[Optional[int]]]:
    """Write the batches of mag 1 not done yet (of every layer); the largest value of
    each batch per layer."""
    resumed = any(done_dir.iterdir())
    stores = []
    for layer in plan.layers:
        store = _fresh_or_resumed_mag(plan.target / layer.name / Mag(1).to_layer_name(), plan.header(layer), resumed)
        if plan.level is not None:
            store.compression_level = plan.level
        stores.append((store, layer.channels))
    largest: list[list[Optional[int]]] = []
    todo = []
    for number, box in enumerate(plan.batches):
        record = _read_done(done_dir / f"batch-{number}")
        if record is None:
            todo.append((number, box))
        else:
            largest.append(record.get("largest"))
    src = plan.source
    job = functools.partial(_write_batch, src, tuple(stores), plan.dtype, plan.level, str(done_dir))
    names = ", ".join(layer.name for layer in plan.layers)
    largest += run_jobs(
        job,
        todo,
        # one batch on a local pool: run it here (no process start, no pickling); the
        # codec's threads still use every core
        None if len(todo) <= 1 and runs_here(executor) else executor,
        progress=progress,
        desc=f"{names}: mag 1",
        unit="voxel",
        weight=lambda item: item[1][1][0] * item[1][1][1] * item[1][1][2],
        describe=lambda item: f"batch {item[0]} at {item[1][0]} of size {item[1][1]} from {src.describe()}",
    )
    return largest


def _build_pyramid(plan: ConversionPlan, done_dir: Path, executor: Any, progress: Optional[bool]) -> None:
    """Each mag of ``plan.chain`` of every layer, through the one chain
    (:func:`wkview.pyramid.downsample_chain`) and the one mag builder
    (:func:`wkview.pyramid.build_mag_folder`: a hidden folder, renamed into place when
    full); the properties file names the mags only at the end (:func:`_publish`)."""
    bbox = plan.bbox
    for layer in plan.layers:
        header = plan.header(layer)
        layer_dir = plan.target / layer.name

        def build(mag: Mag, fill: pyramid.Fill, layer_dir: Path = layer_dir, header: wkw.Header = header,
                  layer: LayerPlan = layer) -> View:
            path = layer_dir / mag.to_layer_name()
            box = bbox.align_with_mag(mag, ceil=True).in_mag(mag)
            marker = done_dir / f"mag-{layer.name}-{mag.to_layer_name()}"
            if _read_done(marker) is None:  # a resumed conversion keeps the mags it finished
                pyramid.build_mag_folder(path, header, box, fill, compression_level=plan.level)
                _mark_done(marker, {})
            return pyramid.bare_view(path, header, box, read_only=True)

        mag1 = pyramid.bare_view(layer_dir / Mag(1).to_layer_name(), header, bbox, read_only=True)
        pyramid.downsample_chain(
            mag1, Mag(1), plan.chain, bbox, plan.mode, build, executor=executor, progress=progress
        )


def _publish(plan: ConversionPlan, largest: Sequence[Sequence[Optional[int]]]) -> None:
    """Write the properties file that makes the dataset visible (the last step);
    ``largest`` holds each batch's largest value per layer."""
    largest_ids = [max((batch[i] for batch in largest if batch[i] is not None), default=0) for i in range(len(plan.layers))]
    layers = [
        props.LayerProperties(
            name=layer.name,
            category=plan.category,
            element_class=layer.element_class,
            num_channels=layer.num_channels,
            bounding_box=plan.bbox,
            data_format="wkw",
            mags=[
                props.MagProperties(
                    mag=m, cube_length=plan.block_len * plan.file_len, path=f"{layer.name}/{m.to_layer_name()}"
                )
                for m in (Mag(1), *plan.chain)
            ],
            largest_segment_id=largest_ids[i] if plan.category == "segmentation" else None,
            extra={} if layer.color is None else {"defaultViewConfiguration": {"color": list(layer.color)}},
        )
        for i, layer in enumerate(plan.layers)
    ]
    dataset_props = props.DatasetProperties(
        name=plan.dataset_name, team="", scale=plan.scale, scale_unit=None, layers=layers, extra={}
    )
    props.save_properties(plan.target, dataset_props)


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
    channels_as_one_layer: bool = False,
    timepoint: Optional[int] = None,
    axis_order: Optional[str] = None,
) -> Dataset:
    """Convert a volume into a new WKW dataset at ``target`` (mag 1 and a pyramid per layer).

    A source with several channels becomes one layer per channel, named
    ``<layer_name>__channel<i>`` (or ``<layer_name>__<channel name>`` when the file
    names its channels), as webknossos 4.3.3 does; RGB pictures and ``.npy``
    volumes of ``(channels, x, y, z)`` stay one layer, and ``channels_as_one_layer``
    keeps any channels in one layer.

    Parameters
    ----------
    source : path, glob, pattern or VolumeSource
        What :func:`wkview.sources.open_source` reads: a folder of 2D images, a glob,
        a ``{x}``/``{y}``/``{z}`` tile pattern, a TIFF of any layout, a ``.npy`` file, a
        Zarr/OME-Zarr/N5/precomputed folder, an HDF5 dataset or an MRC file; or a reader
        such as :class:`~wkview.sources.RawVolume`.
    target : path
        The dataset folder to create. An existing folder with data is refused unless
        ``overwrite``; one holding an unfinished conversion of the same input and
        settings is resumed.
    voxel_size : three floats
        Physical size of a voxel (nm), stored as the dataset's ``scale``.
    layer_name, category : str
        The layer (the prefix of the layers split from channels); ``category`` is
        "color" or "segmentation" (whose ``largest_segment_id`` is the largest value
        found).
    dtype : dtype-like, optional
        The layers' dtype per channel; it must hold every value of the source's
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
    channels_as_one_layer : bool
        Keep all channels in one multi-channel layer ``layer_name``.
    timepoint : int, optional
        Which timepoint of a TIFF with a ``T`` axis to convert (required when it
        holds more than one; ignored for a VolumeSource).
    axis_order : {"zyx", "xyz"}, optional
        How an HDF5 dataset's axes are stored (default ``"zyx"``); other formats name
        or define their axes (see :mod:`wkview.volume_sources`).

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
    plan = plan_conversion(
        source, target, voxel_size, layer_name=layer_name, category=category, dtype=dtype, compress=compress,
        block_len=block_len, file_len=file_len, compression_level=compression_level, compression=compression,
        downsample=downsample,
        max_mag=max_mag, interpolation_mode=interpolation_mode, sampling_mode=sampling_mode, name=name,
        batch_bytes=batch_bytes, channels_as_one_layer=channels_as_one_layer, timepoint=timepoint,
        axis_order=axis_order,
    )
    progress_dir = _prepare_target(plan.target, plan.fingerprint, overwrite)
    done_dir = progress_dir / "done"
    largest = _write_mag1(plan, done_dir, executor, progress)
    _build_pyramid(plan, done_dir, executor, progress)
    _publish(plan, largest)
    shutil.rmtree(progress_dir, ignore_errors=True)
    return Dataset(plan.target)


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

"""The ``wkview`` command: batch conversion into WKW and whole-dataset tools.

A thin layer over :mod:`wkview.convert`, :mod:`wkview.tools` and :mod:`wkview.preview`:
each command parses its flags, builds an executor from ``--distribution-strategy`` /
``--jobs`` / ``--job-resources`` / ``--dask-address`` (the names webknossos' own CLI
uses) through :func:`wkview.executors.executor_for_strategy`, calls one library
function and prints its result.

Flags that several commands share are declared once: the engine flags (and
``--quiet``) by :func:`engine_options`, which hands a command one :class:`EngineOptions`;
the conversion flags of ``convert`` and ``convert-raw`` by :func:`conversion_options`,
which hands it one frozen :class:`ConvertOptions` (whose fields are the keyword
arguments of :func:`wkview.convert.convert`).

Exit status: 0 done; 2 the user's mistake (bad flags, unreadable or missing input, an
existing target, a folder that is not a dataset: one line on stderr); 1 anything else:
damaged data, a full disk, a failed job, or an internal error of wkview (one line and a
hint to rerun with ``WKVIEW_TRACEBACK=1``, which prints the traceback).
``check-equality`` and ``verify`` exit with 1 when they find a difference or damage.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import json
import logging
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional

import click
import typer

from . import convert as _convert
from . import tools
from .errors import CorruptFileError, DatasetError, SourceError, TargetExistsError, WkviewError
from .executors import ExecutorOptionsError, JobError, executor_for_strategy
from .geometry import BoundingBox, Mag

__all__ = ["app", "main", "ConvertOptions", "EngineOptions", "TRACEBACK_ENV"]

#: Set to 1 to get the traceback of an error (internal errors print a hint naming it).
TRACEBACK_ENV = "WKVIEW_TRACEBACK"

app = typer.Typer(
    name="wkview",
    help="Fast batch conversion into WKW datasets (webKNOSSOS), and tools for them. "
    f"Exit status 2: a mistake in the command line or its input; 1: anything else "
    f"({TRACEBACK_ENV}=1 prints the traceback).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


# -- flag types ---------------------------------------------------------------------------


class Strategy(str, Enum):
    sequential = "sequential"
    multiprocessing = "multiprocessing"
    slurm = "slurm"
    dask = "dask"


class Category(str, Enum):
    color = "color"
    segmentation = "segmentation"


class Interpolation(str, Enum):
    default = "default"
    median = "median"
    mode = "mode"
    nearest = "nearest"
    mean = "mean"
    max = "max"
    min = "min"


class Sampling(str, Enum):
    anisotropic = "anisotropic"
    isotropic = "isotropic"
    auto = "auto"


class ExportFormat(str, Enum):
    tiff = "tiff"
    npy = "npy"


class Order(str, Enum):
    F = "F"
    C = "C"


def _numbers(text: str, n: int, kind: type, flag: str) -> tuple:
    parts = [p for p in text.replace("x", ",").split(",") if p.strip()] if text else []
    try:
        values = tuple(kind(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != n:
        raise typer.BadParameter(f"expected {n} comma-separated {kind.__name__}s, got {text!r}", param_hint=flag)
    return values


def _voxel_size(text: str) -> tuple[float, float, float]:
    values = _numbers(text, 3, float, "--voxel-size")
    if not all(v > 0 for v in values):
        raise typer.BadParameter(f"voxel sizes must be positive, got {text!r}", param_hint="--voxel-size")
    return values  # type: ignore[return-value]


def _mag(text: Optional[str], flag: str) -> Optional[Mag]:
    if text is None:
        return None
    try:
        return Mag(text.replace(",", "-"))
    except (ValueError, TypeError) as exc:
        raise typer.BadParameter(f"not a mag: {text!r} ({exc})", param_hint=flag) from None


def _bbox(text: Optional[str]) -> Optional[BoundingBox]:
    if text is None:
        return None
    values = _numbers(text, 6, int, "--bbox")
    try:
        return BoundingBox(values[:3], values[3:])
    except (ValueError, TypeError) as exc:
        raise typer.BadParameter(f"not a bounding box: {text!r} ({exc})", param_hint="--bbox") from None


class Compression(str, Enum):
    lz4 = "lz4"
    lz4hc = "lz4hc"


def _value(member: Enum) -> Any:
    return member.value


# -- declaring shared options once ------------------------------------------------------------


def _with_options(
    func: Callable[..., Any], name: str, params: list[inspect.Parameter], build: Callable[[dict[str, Any]], Any]
) -> Callable[..., Any]:
    """``func`` with its parameter ``name`` replaced by the command-line ``params``; the
    wrapper hands ``func`` one ``build(values of params)`` as ``name``.

    Typer reads a command's flags from its signature, so the signature is rewritten
    (with evaluated annotations: Typer needs the ``Annotated`` options themselves).
    """
    signature = inspect.signature(func, eval_str=True)
    if name not in signature.parameters:
        raise TypeError(f"{func.__name__} has no parameter {name!r} to fill")
    taken = set(signature.parameters) & {p.name for p in params}
    if taken:
        raise TypeError(f"{func.__name__} already has parameters {sorted(taken)}")
    kept = [p for p in signature.parameters.values() if p.name != name]
    # options with defaults may follow required ones: Typer maps them by name
    new = signature.replace(parameters=kept + [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in params])
    own = {p.name for p in params}

    @functools.wraps(func)
    def wrapper(**kwargs: Any) -> Any:
        values = {key: kwargs.pop(key) for key in list(kwargs) if key in own}
        return func(**kwargs, **{name: build(values)})

    wrapper.__signature__ = new  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in new.parameters.values()}
    return wrapper


# -- engine options: where the jobs run -----------------------------------------------------


@dataclass(frozen=True)
class EngineOptions:
    """Where a command's jobs run, and how much it says (the flags of :func:`engine_options`)."""

    distribution_strategy: str = "multiprocessing"
    jobs: Optional[int] = None
    job_resources: Optional[str] = None
    dask_address: Optional[str] = None
    quiet: bool = False

    @contextlib.contextmanager
    def executor(self) -> Iterator[Any]:
        """The executor of these options (:func:`wkview.executors.executor_for_strategy`), shut down after.

        A local pool starts its processes only when a job is submitted: a command whose
        work runs in this process, or that refuses its input first, starts none."""
        with executor_for_strategy(
            self.distribution_strategy, jobs=self.jobs, job_resources=self.job_resources,
            dask_address=self.dask_address, lazy=True,
        ) as executor:
            yield executor

    @property
    def progress(self) -> bool:
        """Progress bars: unless quiet, when stderr is a terminal."""
        return not self.quiet and sys.stderr is not None and sys.stderr.isatty()

    def say(self, text: str) -> None:
        """Print ``text`` unless quiet."""
        if not self.quiet:
            typer.echo(text)


JobsOption = Annotated[
    Optional[int],
    typer.Option("--jobs", "-j", min=1, help="Worker processes (multiprocessing). Default: the CPUs available."),
]
StrategyOption = Annotated[
    Strategy, typer.Option("--distribution-strategy", help="Where the jobs run.", case_sensitive=False)
]
ResourcesOption = Annotated[
    Optional[str],
    typer.Option(
        "--job-resources",
        help='Resources of cluster jobs: KEY=VALUE,... or JSON, e.g. mem=2G,time=1:00:00 or \'{"mem": "2G"}\'.',
    ),
]
DaskOption = Annotated[
    Optional[str], typer.Option("--dask-address", help="Dask scheduler (tcp://host:port); default: $DASK_ADDRESS.")
]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars and no summary.")]


def _option(name: str, annotation: Any, default: Any) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)


_ENGINE_PARAMS = [
    _option("jobs", JobsOption, None),
    _option("distribution_strategy", StrategyOption, Strategy.multiprocessing),
    _option("job_resources", ResourcesOption, None),
    _option("dask_address", DaskOption, None),
    _option("quiet", QuietOption, False),
]


def _engine(values: dict[str, Any]) -> EngineOptions:
    return EngineOptions(
        distribution_strategy=values["distribution_strategy"].value,
        jobs=values["jobs"],
        job_resources=values["job_resources"],
        dask_address=values["dask_address"],
        quiet=values["quiet"],
    )


def engine_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Give a command the flags ``--jobs``, ``--distribution-strategy``, ``--job-resources``,
    ``--dask-address`` and ``--quiet``, handed to it as one ``engine: EngineOptions``."""
    return _with_options(func, "engine", _ENGINE_PARAMS, _engine)


# -- conversion options -------------------------------------------------------------------------


def _flag(option: Any, cli_default: Any = dataclasses.MISSING, parse: Optional[Callable[[Any], Any]] = None) -> dict:
    """Field metadata of a :class:`ConvertOptions` field: its Typer ``option`` (an
    ``Annotated`` type), the flag's default when it differs from the field's (an enum
    member), and ``parse``, which turns the flag's value into the field's."""
    return {"cli": option, "cli_default": cli_default, "parse": parse}


LayerNameOption = Annotated[str, typer.Option("--layer-name", "-l", help="Name of the new layer.")]
CategoryOption = Annotated[Category, typer.Option("--category", help="Layer category.", case_sensitive=False)]
DtypeOption = Annotated[
    Optional[str],
    typer.Option("--dtype", help="Voxel type of the layer (per channel); it must hold every source value."),
]
CompressOption = Annotated[bool, typer.Option("--compress/--no-compress", help="Compressed files (see --compression).")]
CompressionOption = Annotated[
    Compression,
    typer.Option(
        "--compression",
        case_sensitive=False,
        help="lz4hc: smaller files; lz4: several times faster to write, larger files (`wkview compress` "
        "shrinks them to lz4hc later). webKNOSSOS and libwkw read both.",
    ),
]
LevelOption = Annotated[
    Optional[int], typer.Option("--compression-level", min=1, max=12, help="LZ4HC level (default 4; 9 = libwkw).")
]
BlockLenOption = Annotated[int, typer.Option("--block-len", help="Voxels per block edge (power of two).")]
FileLenOption = Annotated[int, typer.Option("--file-len", help="Blocks per file edge (power of two).")]
DownsampleOption = Annotated[bool, typer.Option("--downsample/--no-downsample", help="Build the mag pyramid.")]
MaxMagOption = Annotated[
    Optional[str],
    typer.Option(
        "--max-mag", help="Coarsest mag of the pyramid (e.g. 8 or 8-8-4). Default: x and y about 100 voxels, at least 4."
    ),
]
InterpolationOption = Annotated[
    Interpolation,
    typer.Option(
        "--interpolation-mode", help="How voxels are pooled (default: median, mode for segmentation).", case_sensitive=False
    ),
]
SamplingOption = Annotated[
    Sampling, typer.Option("--sampling-mode", help="Which axes each pyramid step halves.", case_sensitive=False)
]
VoxelSizeOption = Annotated[str, typer.Option("--voxel-size", help="Physical voxel size in nm: X,Y,Z (e.g. 11.24,11.24,25).")]
OverwriteOption = Annotated[bool, typer.Option("--overwrite", "--overwrite-existing", help="Replace what is at TARGET.")]
NameOption = Annotated[Optional[str], typer.Option("--name", help="Dataset name (default: TARGET's folder name).")]
ChannelsAsOneLayerOption = Annotated[
    bool,
    typer.Option(
        "--channels-as-one-layer",
        help="Keep the channels of a multi-channel image in one layer (default: one layer per channel, "
        "named LAYER__channelN or LAYER__NAME with OME channel names, as webknossos does).",
    ),
]


@dataclass(frozen=True)
class ConvertOptions:
    """The settings of ``wkview convert`` and ``convert-raw``: the keyword arguments of
    :func:`wkview.convert.convert`, as one frozen value.

    To add a conversion flag, add a field: its ``metadata=_flag(...)`` declares the Typer
    option (and how the flag's value becomes the field's); both commands get the flag
    (unless one excludes it in :func:`conversion_options`) and the value reaches
    :func:`wkview.convert.convert` under the field's name.
    """

    voxel_size: tuple[float, float, float] = field(metadata=_flag(VoxelSizeOption, parse=lambda t: _voxel_size(t)))
    layer_name: str = field(default="color", metadata=_flag(LayerNameOption))
    category: str = field(default="color", metadata=_flag(CategoryOption, Category.color, _value))
    dtype: Optional[str] = field(default=None, metadata=_flag(DtypeOption))
    compress: bool = field(default=True, metadata=_flag(CompressOption))
    compression: str = field(default="lz4hc", metadata=_flag(CompressionOption, Compression.lz4hc, _value))
    compression_level: Optional[int] = field(default=None, metadata=_flag(LevelOption))
    block_len: int = field(default=32, metadata=_flag(BlockLenOption))
    file_len: int = field(default=32, metadata=_flag(FileLenOption))
    downsample: bool = field(default=True, metadata=_flag(DownsampleOption))
    max_mag: Optional[Mag] = field(default=None, metadata=_flag(MaxMagOption, parse=lambda t: _mag(t, "--max-mag")))
    interpolation_mode: str = field(default="default", metadata=_flag(InterpolationOption, Interpolation.default, _value))
    sampling_mode: str = field(default="auto", metadata=_flag(SamplingOption, Sampling.auto, _value))
    name: Optional[str] = field(default=None, metadata=_flag(NameOption))
    overwrite: bool = field(default=False, metadata=_flag(OverwriteOption))
    channels_as_one_layer: bool = field(default=False, metadata=_flag(ChannelsAsOneLayerOption))

    def as_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of :func:`wkview.convert.convert`."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


def conversion_options(*, exclude: tuple[str, ...] = ()) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give a command a flag per :class:`ConvertOptions` field (but those in ``exclude``,
    which keep the field's default), handed to it as one ``options: ConvertOptions``."""
    fields = [f for f in dataclasses.fields(ConvertOptions) if f.name not in exclude]
    params = []
    for f in fields:
        meta = f.metadata
        default = meta["cli_default"] if meta["cli_default"] is not dataclasses.MISSING else f.default
        if default is dataclasses.MISSING:
            default = inspect.Parameter.empty
        params.append(_option(f.name, meta["cli"], default))

    def build(values: dict[str, Any]) -> ConvertOptions:
        parsed = {}
        for f in fields:
            parse = f.metadata["parse"]
            parsed[f.name] = parse(values[f.name]) if parse is not None else values[f.name]
        return ConvertOptions(**parsed)

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        return _with_options(func, "options", params, build)

    return decorate


# -- commands -------------------------------------------------------------------------------


def _layer_summary(ds: Any, name: str) -> str:
    layer = ds.get_layer(name)
    size = "x".join(str(s) for s in layer.bounding_box.size)
    mags = ", ".join(m.to_layer_name() for m in sorted(layer.mags))
    return f"layer {name!r}: {size} voxels of {layer.num_channels} x {layer.dtype_per_channel}, mags {mags}"


PreviewFlag = Annotated[
    bool, typer.Option("--preview", help="Also write TARGET-preview.png beside the dataset (see `wkview preview`).")
]


def preview_path(target: Path) -> Path:
    """Where ``convert --preview`` writes the preview of the dataset at ``target``: beside it."""
    return target.with_name(target.name + "-preview.png")


def _run_convert(source: Any, target: Path, options: ConvertOptions, engine: EngineOptions, preview: bool) -> None:
    from .preview import write_preview

    if preview and not options.overwrite and preview_path(target).exists():  # before hours of work
        raise TargetExistsError(f"{preview_path(target)} exists (use --overwrite to replace it)")
    started = time.perf_counter()
    with engine.executor() as executor:
        ds = _convert.convert(source, target, executor=executor, progress=engine.progress, **options.as_kwargs())
    layers = "; ".join(_layer_summary(ds, name) for name in ds.layers)
    engine.say(f"{target}: {layers} ({time.perf_counter() - started:.1f} s)")
    if preview:  # of the first layer when the channels became layers of their own
        written = write_preview(ds, preview_path(target), layer=next(iter(ds.layers)), overwrite=True)
        engine.say(f"preview: {written}")


@app.command("convert")
@engine_options
@conversion_options()
def convert_cmd(
    source: Annotated[
        str,
        typer.Argument(
            help="A folder of 2D images (TIFF, PNG, JPEG, .npy; natural order), a glob, a tile pattern "
            "with {x}, {y}, {z} (e.g. 'tiles/{z}/{y}/{x}.jpg'), a TIFF (z-stack, RGB, ImageJ hyperstack, "
            "OME-TIFF; compressed or BigTIFF), a .npy volume, a Zarr, OME-Zarr, N5 or Neuroglancer "
            "precomputed folder, an HDF5 dataset (file.h5:/path/to/dataset) or an MRC/REC file."
        ),
    ],
    target: Annotated[Path, typer.Argument(help="The dataset folder to create.")],
    preview: PreviewFlag = False,
    timepoint: Annotated[
        Optional[int],
        typer.Option("--timepoint", min=0, help="Which timepoint (T) of a TIFF holding several to convert."),
    ] = None,
    axis_order: Annotated[
        Optional[str],
        typer.Option("--axis-order", help="How an HDF5 dataset's axes are stored: zyx (default) or xyz."),
    ] = None,
    *,
    options: ConvertOptions,
    engine: EngineOptions,
) -> None:
    """Convert an image stack, tile mosaic, TIFF, .npy, Zarr, N5, precomputed, HDF5 or MRC volume into a new
    WKW dataset."""
    from .sources import open_source

    # checked before the executor starts
    src = open_source(source, timepoint=timepoint, axis_order=axis_order)
    _run_convert(src, target, options, engine, preview)


@app.command("convert-raw")
@engine_options
@conversion_options(exclude=("dtype", "channels_as_one_layer"))
def convert_raw_cmd(
    source: Annotated[Path, typer.Argument(help="A raw binary volume (no header).")],
    target: Annotated[Path, typer.Argument(help="The dataset folder to create.")],
    shape: Annotated[str, typer.Option("--shape", help="Size of the volume in voxels: X,Y,Z.")],
    source_dtype: Annotated[str, typer.Option("--dtype", help="Voxel type in the file (uint8, uint16, float32, ...).")] = "uint8",
    order: Annotated[Order, typer.Option("--order", help="F: x varies fastest in the file; C: z does.")] = Order.F,
    preview: PreviewFlag = False,
    *,
    options: ConvertOptions,
    engine: EngineOptions,
) -> None:
    """Convert a raw binary volume (memory-mapped, never loaded whole) into a new WKW dataset."""
    from .sources import RawVolume

    src = RawVolume.from_file(source, _numbers(shape, 3, int, "--shape"), source_dtype, order.value)
    _run_convert(src, target, options, engine, preview)


DatasetArg = Annotated[Path, typer.Argument(help="A WKW dataset folder.")]
LayerOption = Annotated[Optional[str], typer.Option("--layer", "-l", help="Only this layer (default: every WKW layer).")]


@app.command("downsample")
@engine_options
def downsample_cmd(
    dataset: DatasetArg,
    layer: LayerOption = None,
    from_mag: Annotated[Optional[str], typer.Option("--from-mag", help="Start from this mag (default: the finest).")] = None,
    max_mag: MaxMagOption = None,
    interpolation_mode: InterpolationOption = Interpolation.default,
    sampling_mode: SamplingOption = Sampling.auto,
    compress: CompressOption = True,
    *,
    engine: EngineOptions,
) -> None:
    """Build the mag pyramid of a dataset's layers (existing mags are kept)."""
    started = time.perf_counter()
    ds = tools.open_dataset(dataset)  # a mistyped path fails before worker processes start
    with engine.executor() as executor:
        made = tools.downsample_dataset(
            ds,
            layer=layer,
            from_mag=_mag(from_mag, "--from-mag"),
            max_mag=_mag(max_mag, "--max-mag"),
            interpolation_mode=interpolation_mode.value,
            sampling_mode=sampling_mode.value,
            compress=compress,
            executor=executor,
            progress=engine.progress,
        )
    for name, mags in made.items():
        new = ", ".join(m.to_layer_name() for m in mags) or "none (all present)"
        engine.say(f"{dataset}: layer {name!r}: new mags {new}")
    engine.say(f"({time.perf_counter() - started:.1f} s)")


@app.command("compress")
@engine_options
def compress_cmd(
    dataset: DatasetArg,
    layer: LayerOption = None,
    mag: Annotated[Optional[str], typer.Option("--mag", help="Only this mag.")] = None,
    compression: Annotated[
        Compression,
        typer.Option(
            "--compression", case_sensitive=False,
            help="lz4hc: raw and lz4 mags become lz4hc; lz4: raw mags become lz4 (fast).",
        ),
    ] = Compression.lz4hc,
    level: Annotated[
        Optional[int], typer.Option("--compression-level", "--level", min=1, max=12, help="LZ4HC level (default 4).")
    ] = None,
    *,
    engine: EngineOptions,
) -> None:
    """Compress the raw (and with lz4hc the LZ4) mags of a dataset in place (every file
    replaced atomically; rerun to finish)."""
    ds = tools.open_dataset(dataset)
    with engine.executor() as executor:
        results = tools.compress_dataset(
            ds, layer=layer, mag=_mag(mag, "--mag"), level=level, compression=compression.value,
            executor=executor, progress=engine.progress,
        )
    if not results:
        engine.say(f"{dataset}: nothing to compress")
    for r in results:
        ratio = f"{r.bytes_before / r.bytes_after:.2f}x smaller" if r.bytes_after else "empty"
        engine.say(f"{dataset}: {r.layer}/{r.mag}: {r.files} files, {r.bytes_before} -> {r.bytes_after} bytes ({ratio})")


@app.command("check-equality")
@engine_options
def check_equality_cmd(
    a: Annotated[Path, typer.Argument(help="First dataset.")],
    b: Annotated[Path, typer.Argument(help="Second dataset.")],
    layer: LayerOption = None,
    bbox: Annotated[Optional[str], typer.Option("--bbox", help="Only this box, in mag-1 voxels: X,Y,Z,SX,SY,SZ.")] = None,
    *,
    engine: EngineOptions,
) -> None:
    """Exit 0 when two datasets hold the same voxels, 1 with the first difference otherwise."""
    first, second = tools.open_dataset(a), tools.open_dataset(b)
    with engine.executor() as executor:
        diff = tools.check_equality(first, second, layer=layer, bbox=_bbox(bbox), executor=executor, progress=engine.progress)
    if diff is None:
        engine.say(f"{a} and {b} are equal")
        return
    typer.echo(f"{a} and {b} differ: {diff}")
    raise typer.Exit(1)


@app.command("export")
@engine_options
def export_cmd(
    dataset: DatasetArg,
    out: Annotated[Path, typer.Argument(help="Folder for the TIFF stack, or the .npy file.")],
    layer: Annotated[Optional[str], typer.Option("--layer", "-l", help="The layer (needed when there are several).")] = None,
    mag: Annotated[str, typer.Option("--mag", help="The mag to export.")] = "1",
    bbox: Annotated[Optional[str], typer.Option("--bbox", help="Box in mag-1 voxels: X,Y,Z,SX,SY,SZ (default: the layer's).")] = None,
    format: Annotated[ExportFormat, typer.Option("--format", help="tiff: one file per z; npy: one array.")] = ExportFormat.tiff,
    *,
    engine: EngineOptions,
) -> None:
    """Export a region of a layer as a TIFF stack (one file per z) or one .npy array."""
    box = _bbox(bbox)
    if box is not None and box.is_empty():
        raise typer.BadParameter(f"the box is empty: {bbox!r}", param_hint="--bbox")
    ds = tools.open_dataset(dataset)
    with engine.executor() as executor:
        files = tools.export_region(
            ds, out, layer=layer, mag=_mag(mag, "--mag"), bbox=box, format=format.value,
            executor=executor, progress=engine.progress,
        )
    engine.say(f"wrote {len(files)} file(s) to {out}")


@app.command("preview")
def preview_cmd(
    dataset: DatasetArg,
    out: Annotated[Path, typer.Argument(help="The PNG to write.")],
    layer: Annotated[Optional[str], typer.Option("--layer", "-l", help="The layer (needed when there are several).")] = None,
    mag: Annotated[
        Optional[str], typer.Option("--mag", help="The mag to show (default: the coarsest that gives about 1024 px).")
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing OUT.")] = False,
    quiet: QuietOption = False,
) -> None:
    """Write one PNG with the central xy, xz and yz planes of a layer (color contrast-stretched
    from the 1st to the 99th percentile, segments in colours of their ids)."""
    from .preview import write_preview

    written = write_preview(dataset, out, layer=layer, mag=_mag(mag, "--mag"), overwrite=overwrite)
    if not quiet:
        typer.echo(f"wrote {written}")


@app.command("info")
def info_cmd(
    dataset: DatasetArg,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Layers, mags, bounding boxes, dtypes, compression, bytes on disk and compression ratios."""
    info = tools.dataset_info(dataset)
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    typer.echo(f"{info['path']}: dataset {info['name']!r}, voxel size {tuple(info['scale'])}")
    for lay in info["layers"]:
        box = lay["bounding_box"]
        typer.echo(
            f"  layer {lay['name']!r} ({lay['category']}, {lay['data_format']}): {lay['num_channels']} x "
            f"{lay['dtype_per_channel']} ({lay['element_class']}), box {tuple(box['topleft'])} size {tuple(box['size'])}"
        )
        for m in lay["mags"]:
            ratio = f"{m['compression_ratio']:.2f}x" if m["compression_ratio"] else "-"
            stored = f"{m['stored_blocks_ratio']:.2f}x" if m["stored_blocks_ratio"] else "-"
            typer.echo(
                f"    mag {m['mag']:>8}: {m['compression']:<5} block_len {m['block_len']}, file_len {m['file_len']}, "
                f"{m['files']} files, {_human(m['bytes_on_disk'])} on disk, ratio {ratio} over the box's voxels "
                f"({stored} over the stored blocks)"
            )


def _human(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


@app.command("verify")
@engine_options
def verify_cmd(
    dataset: DatasetArg,
    layer: LayerOption = None,
    repair: Annotated[bool, typer.Option("--repair", help="Remove temporary files of interrupted writes.")] = False,
    *,
    engine: EngineOptions,
) -> None:
    """Check every data file (header, jump table, every block decoded once); exit 1 when any is damaged."""
    ds = tools.open_dataset(dataset)
    with engine.executor() as executor:
        damage = tools.verify_dataset(ds, layer=layer, repair=repair, executor=executor, progress=engine.progress)
    for d in damage:
        typer.echo(str(d))
    remaining = [d for d in damage if not d.repaired]
    if remaining:
        typer.echo(f"{dataset}: {len(remaining)} damaged or stray file(s)", err=True)
        raise typer.Exit(1)
    engine.say(f"{dataset}: every data file is sound")


@app.command("sample-stack")
def sample_stack_cmd(
    out: Annotated[Path, typer.Argument(help="Folder to write the images into.")],
    shape: Annotated[str, typer.Option("--shape", help="Size in voxels: X,Y,Z (Z images of X x Y).")] = "512,512,64",
    image_format: Annotated[str, typer.Option("--format", help="tif or png.")] = "tif",
    seed: Annotated[int, typer.Option("--seed", help="Chooses the random cell layout.")] = 0,
    quiet: QuietOption = False,
) -> None:
    """Write built-in EM-like sample data as a stack of 2D images (to try the other commands on)."""
    from .sample import write_image_stack

    if image_format not in ("tif", "png"):
        raise typer.BadParameter(f"expected tif or png, got {image_format!r}", param_hint="--format")
    size = _numbers(shape, 3, int, "--shape")
    if min(size) <= 0:
        raise typer.BadParameter(f"sizes must be positive, got {shape!r}", param_hint="--shape")
    files = write_image_stack(out, size, seed=seed, suffix="." + image_format)
    if not quiet:
        typer.echo(f"wrote {len(files)} images of {size[0]}x{size[1]} to {out}")


# -- entry point -------------------------------------------------------------------------------

#: Exceptions that mean "the input or the flags are wrong", not "wkview failed": exit 2.
#: Library checks of what the user gave raise these (DatasetError covers a folder that is
#: not a dataset, a missing layer or mag, settings a dataset cannot be made with); a plain
#: ValueError or TypeError from inside wkview is a bug and exits 1.
USER_ERRORS = (
    ExecutorOptionsError,
    SourceError,
    TargetExistsError,
    DatasetError,
    FileNotFoundError,
    NotADirectoryError,
)


def _fail(where: str, message: str, status: int, exc: BaseException) -> int:
    if os.environ.get(TRACEBACK_ENV, "") not in ("", "0"):
        traceback.print_exception(exc)
    typer.echo(f"{where}: {message}", err=True)
    return status


def main(argv: Optional[list[str]] = None) -> int:
    """Run the ``wkview`` command with ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
    # tifffile logs a warning of its own for every damaged file; the error line says it
    logging.getLogger("tifffile").setLevel(logging.ERROR)
    command = typer.main.get_command(app)
    args = sys.argv[1:] if argv is None else list(argv)
    where = f"wkview {args[0]}" if args and not args[0].startswith("-") else "wkview"
    try:
        result = command.main(args=args, prog_name="wkview", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except (click.exceptions.Abort, KeyboardInterrupt):
        typer.echo(f"{where}: interrupted", err=True)
        return 130
    except click.exceptions.ClickException as exc:  # usage errors: bad or missing flags
        return _fail(where, f"error: {exc.format_message()}", exc.exit_code if exc.exit_code != 1 else 2, exc)
    except JobError as exc:
        original = exc.original
        if isinstance(original, USER_ERRORS):  # e.g. an input file found damaged by the job that read it
            return _fail(where, f"error: {original}", 2, exc)
        if isinstance(original, (OSError, WkviewError)):
            # a known failure inside a job (disk full, damaged data): its line is enough
            return _fail(where, f"error: {original}", 1, exc)
        return _fail(where, f"a job failed: {exc}", 1, exc)  # with the job's traceback
    except CorruptFileError as exc:
        return _fail(where, f"damaged data: {exc}", 1, exc)
    except USER_ERRORS as exc:
        return _fail(where, f"error: {exc}", 2, exc)
    except OSError as exc:  # disk full, no permission, ...: nothing was replaced (see Reliability)
        return _fail(where, f"error: {exc}", 1, exc)
    except Exception as exc:  # a bug in wkview, not the user's mistake
        return _fail(
            where,
            f"internal error: {type(exc).__name__}: {exc}\n"
            f"this is a bug in wkview; rerun with {TRACEBACK_ENV}=1 for the traceback and report it",
            1,
            exc,
        )
    return result if isinstance(result, int) else 0


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    run()

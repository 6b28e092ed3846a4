"""The ``wkview`` command: batch conversion into WKW and whole-dataset tools.

A thin layer over :mod:`wkview.convert` and :mod:`wkview.tools`: each command parses
its flags, builds an executor from ``--distribution-strategy`` / ``--jobs`` /
``--job-resources`` / ``--dask-address`` (the names webknossos' own CLI uses), calls
one library function and prints its result. User mistakes (missing input, an
existing target, bad flags, a folder that is not a dataset) end with one line on
stderr and exit status 2; ``check-equality`` and ``verify`` exit with 1 when they
find a difference or damage.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Iterator, Optional

import click
import typer


from . import convert as _convert
from . import tools
from .errors import CorruptFileError, SourceError, TargetExistsError, WkviewError
from .executors import JobError, available_cores, get_executor
from .geometry import BoundingBox, Mag

__all__ = ["app", "main"]

app = typer.Typer(
    name="wkview",
    help="Fast batch conversion into WKW datasets (webKNOSSOS), and tools for them.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


class UserError(Exception):
    """A mistake in the command line: one line on stderr, exit status 2."""


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


def _job_resources(text: Optional[str]) -> dict[str, Any]:
    """``--job-resources``: JSON (as webknossos takes it) or ``KEY=VALUE,KEY=VALUE``."""
    if not text:
        return {}
    text = text.strip()
    if text.startswith("{"):
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise typer.BadParameter(f"not valid JSON: {exc}", param_hint="--job-resources") from None
        if not isinstance(value, dict):
            raise typer.BadParameter("must be a JSON object", param_hint="--job-resources")
        return value
    out = {}
    for pair in text.split(","):
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"expected KEY=VALUE pairs, got {pair!r}", param_hint="--job-resources")
        out[key.strip()] = value.strip()
    return out


# -- shared options -----------------------------------------------------------------------

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
    Optional[str],
    typer.Option("--dask-address", help="Dask scheduler (tcp://host:port); default: $DASK_ADDRESS."),
]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars and no summary.")]


@contextlib.contextmanager
def _executor(strategy: Strategy, jobs: Optional[int], resources: Optional[str], dask_address: Optional[str]) -> Iterator[Any]:
    job_resources = _job_resources(resources)
    if strategy == Strategy.sequential:
        yield None
        return
    if strategy == Strategy.multiprocessing:
        executor = get_executor("multiprocessing", max_workers=jobs or available_cores())
    elif strategy == Strategy.slurm:
        executor = get_executor("slurm", job_resources=job_resources)
    else:
        address = dask_address or job_resources.pop("address", None) or os.environ.get("DASK_ADDRESS")
        if not address:
            raise UserError("--distribution-strategy dask needs --dask-address (or DASK_ADDRESS)")
        executor = get_executor("dask", address=address, job_resources=job_resources)
    with executor:
        yield executor


def _progress(quiet: bool) -> bool:
    return not quiet and sys.stderr is not None and sys.stderr.isatty()


def _say(quiet: bool, text: str) -> None:
    if not quiet:
        typer.echo(text)


def _layer_summary(ds: Any, name: str) -> str:
    layer = ds.get_layer(name)
    size = "x".join(str(s) for s in layer.bounding_box.size)
    mags = ", ".join(m.to_layer_name() for m in sorted(layer.mags))
    return f"layer {name!r}: {size} voxels of {layer.num_channels} x {layer.dtype_per_channel}, mags {mags}"


# -- commands -------------------------------------------------------------------------------

LayerNameOption = Annotated[str, typer.Option("--layer-name", "-l", help="Name of the new layer.")]
CategoryOption = Annotated[Category, typer.Option("--category", help="Layer category.", case_sensitive=False)]
DtypeOption = Annotated[
    Optional[str],
    typer.Option("--dtype", help="Voxel type of the layer (per channel); it must hold every source value."),
]
CompressOption = Annotated[bool, typer.Option("--compress/--no-compress", help="LZ4HC-compressed files.")]
LevelOption = Annotated[
    Optional[int], typer.Option("--compression-level", min=1, max=12, help="LZ4HC level (default 4; 9 = libwkw).")
]
BlockLenOption = Annotated[int, typer.Option("--block-len", help="Voxels per block edge (power of two).")]
FileLenOption = Annotated[int, typer.Option("--file-len", help="Blocks per file edge (power of two).")]
DownsampleOption = Annotated[bool, typer.Option("--downsample/--no-downsample", help="Build the mag pyramid.")]
MaxMagOption = Annotated[
    Optional[str], typer.Option("--max-mag", help="Coarsest mag of the pyramid (e.g. 8 or 8-8-4). Default: x and y about 100 voxels, at least 4.")
]
InterpolationOption = Annotated[
    Interpolation,
    typer.Option("--interpolation-mode", help="How voxels are pooled (default: median, mode for segmentation).", case_sensitive=False),
]
SamplingOption = Annotated[
    Sampling, typer.Option("--sampling-mode", help="Which axes each pyramid step halves.", case_sensitive=False)
]
VoxelSizeOption = Annotated[
    str, typer.Option("--voxel-size", help="Physical voxel size in nm: X,Y,Z (e.g. 11.24,11.24,25).")
]
OverwriteOption = Annotated[
    bool, typer.Option("--overwrite", "--overwrite-existing", help="Replace what is at TARGET.")
]
NameOption = Annotated[Optional[str], typer.Option("--name", help="Dataset name (default: TARGET's folder name).")]


def _run_convert(source: Any, target: Path, opts: dict[str, Any], quiet: bool, executor_args: tuple) -> None:
    started = time.perf_counter()
    with _executor(*executor_args) as executor:
        ds = _convert.convert(source, target, executor=executor, progress=_progress(quiet), **opts)
    _say(quiet, f"{target}: {_layer_summary(ds, opts['layer_name'])} ({time.perf_counter() - started:.1f} s)")


def _convert_options(
    voxel_size: str, layer_name: str, category: Category, dtype: Optional[str], compress: bool,
    compression_level: Optional[int], block_len: int, file_len: int, downsample: bool, max_mag: Optional[str],
    interpolation_mode: Interpolation, sampling_mode: Sampling, name: Optional[str], overwrite: bool,
) -> dict[str, Any]:
    return dict(
        voxel_size=_voxel_size(voxel_size),
        layer_name=layer_name,
        category=category.value,
        dtype=dtype,
        compress=compress,
        compression_level=compression_level,
        block_len=block_len,
        file_len=file_len,
        downsample=downsample,
        max_mag=_mag(max_mag, "--max-mag"),
        interpolation_mode=interpolation_mode.value,
        sampling_mode=sampling_mode.value,
        name=name,
        overwrite=overwrite,
    )


@app.command("convert")
def convert_cmd(
    source: Annotated[
        str,
        typer.Argument(
            help="A folder of 2D images (TIFF, PNG, JPEG, .npy; natural order), a glob, a tile pattern "
            "with {x}, {y}, {z} (e.g. 'tiles/{z}/{y}/{x}.jpg'), a multi-page TIFF, a .npy volume, a Zarr, "
            "OME-Zarr, N5 or Neuroglancer precomputed folder, an HDF5 dataset (file.h5:/path/to/dataset) "
            "or an MRC/REC file."
        ),
    ],
    target: Annotated[Path, typer.Argument(help="The dataset folder to create.")],
    voxel_size: VoxelSizeOption,
    layer_name: LayerNameOption = "color",
    category: CategoryOption = Category.color,
    dtype: DtypeOption = None,
    compress: CompressOption = True,
    compression_level: LevelOption = None,
    block_len: BlockLenOption = 32,
    file_len: FileLenOption = 32,
    downsample: DownsampleOption = True,
    max_mag: MaxMagOption = None,
    interpolation_mode: InterpolationOption = Interpolation.default,
    sampling_mode: SamplingOption = Sampling.auto,
    name: NameOption = None,
    overwrite: OverwriteOption = False,
    jobs: JobsOption = None,
    distribution_strategy: StrategyOption = Strategy.multiprocessing,
    job_resources: ResourcesOption = None,
    dask_address: DaskOption = None,
    quiet: QuietOption = False,
    axis_order: Annotated[
        Optional[str],
        typer.Option("--axis-order", help="How an HDF5 dataset's axes are stored: zyx (default) or xyz."),
    ] = None,
) -> None:
    """Convert an image stack, tile mosaic, TIFF, .npy, Zarr, N5, precomputed, HDF5 or MRC volume into a new
    WKW dataset."""
    opts = _convert_options(
        voxel_size, layer_name, category, dtype, compress, compression_level, block_len, file_len, downsample,
        max_mag, interpolation_mode, sampling_mode, name, overwrite,
    )
    from .sources import open_source

    src = open_source(source, axis_order)  # checked before the executor starts
    _run_convert(src, target, opts, quiet, (distribution_strategy, jobs, job_resources, dask_address))


@app.command("convert-raw")
def convert_raw_cmd(
    source: Annotated[Path, typer.Argument(help="A raw binary volume (no header).")],
    target: Annotated[Path, typer.Argument(help="The dataset folder to create.")],
    shape: Annotated[str, typer.Option("--shape", help="Size of the volume in voxels: X,Y,Z.")],
    voxel_size: VoxelSizeOption,
    source_dtype: Annotated[str, typer.Option("--dtype", help="Voxel type in the file (uint8, uint16, float32, ...).")] = "uint8",
    order: Annotated[Order, typer.Option("--order", help="F: x varies fastest in the file; C: z does.")] = Order.F,
    layer_name: LayerNameOption = "color",
    category: CategoryOption = Category.color,
    compress: CompressOption = True,
    compression_level: LevelOption = None,
    block_len: BlockLenOption = 32,
    file_len: FileLenOption = 32,
    downsample: DownsampleOption = True,
    max_mag: MaxMagOption = None,
    interpolation_mode: InterpolationOption = Interpolation.default,
    sampling_mode: SamplingOption = Sampling.auto,
    name: NameOption = None,
    overwrite: OverwriteOption = False,
    jobs: JobsOption = None,
    distribution_strategy: StrategyOption = Strategy.multiprocessing,
    job_resources: ResourcesOption = None,
    dask_address: DaskOption = None,
    quiet: QuietOption = False,
) -> None:
    """Convert a raw binary volume (memory-mapped, never loaded whole) into a new WKW dataset."""
    from .sources import RawVolume

    opts = _convert_options(
        voxel_size, layer_name, category, None, compress, compression_level, block_len, file_len, downsample,
        max_mag, interpolation_mode, sampling_mode, name, overwrite,
    )
    src = RawVolume.from_file(source, _numbers(shape, 3, int, "--shape"), source_dtype, order.value)
    _run_convert(src, target, opts, quiet, (distribution_strategy, jobs, job_resources, dask_address))


DatasetArg = Annotated[Path, typer.Argument(help="A WKW dataset folder.")]
LayerOption = Annotated[Optional[str], typer.Option("--layer", "-l", help="Only this layer (default: every WKW layer).")]


@app.command("downsample")
def downsample_cmd(
    dataset: DatasetArg,
    layer: LayerOption = None,
    from_mag: Annotated[Optional[str], typer.Option("--from-mag", help="Start from this mag (default: the finest).")] = None,
    max_mag: MaxMagOption = None,
    interpolation_mode: InterpolationOption = Interpolation.default,
    sampling_mode: SamplingOption = Sampling.auto,
    compress: CompressOption = True,
    jobs: JobsOption = None,
    distribution_strategy: StrategyOption = Strategy.multiprocessing,
    job_resources: ResourcesOption = None,
    dask_address: DaskOption = None,
    quiet: QuietOption = False,
) -> None:
    """Build the mag pyramid of a dataset's layers (existing mags are kept)."""
    started = time.perf_counter()
    with _executor(distribution_strategy, jobs, job_resources, dask_address) as executor:
        made = tools.downsample_dataset(
            dataset,
            layer=layer,
            from_mag=_mag(from_mag, "--from-mag"),
            max_mag=_mag(max_mag, "--max-mag"),
            interpolation_mode=interpolation_mode.value,
            sampling_mode=sampling_mode.value,
            compress=compress,
            executor=executor,
            progress=_progress(quiet),
        )
    for name, mags in made.items():
        new = ", ".join(m.to_layer_name() for m in mags) or "none (all present)"
        _say(quiet, f"{dataset}: layer {name!r}: new mags {new}")
    _say(quiet, f"({time.perf_counter() - started:.1f} s)")


@app.command("compress")
def compress_cmd(
    dataset: DatasetArg,
    layer: LayerOption = None,
    mag: Annotated[Optional[str], typer.Option("--mag", help="Only this mag.")] = None,
    level: Annotated[Optional[int], typer.Option("--level", min=1, max=12, help="LZ4HC level (default 4).")] = None,
    jobs: JobsOption = None,
    distribution_strategy: StrategyOption = Strategy.multiprocessing,
    job_resources: ResourcesOption = None,
    dask_address: DaskOption = None,
    quiet: QuietOption = False,
) -> None:
    """Compress the raw mags of a dataset in place (every file replaced atomically; rerun to finish)."""
    with _executor(distribution_strategy, jobs, job_resources, dask_address) as executor:
        results = tools.compress_dataset(
            dataset, layer=layer, mag=_mag(mag, "--mag"), level=level, executor=executor, progress=_progress(quiet)
        )
    if not results:
        _say(quiet, f"{dataset}: nothing to compress")
    for r in results:
        ratio = f"{r.bytes_before / r.bytes_after:.2f}x smaller" if r.bytes_after else "empty"
        _say(quiet, f"{dataset}: {r.layer}/{r.mag}: {r.files} files, {r.bytes_before} -> {r.bytes_after} bytes ({ratio})")


@app.command("check-equality")
def check_equality_cmd(
    a: Annotated[Path, typer.Argument(help="First dataset.")],
    b: Annotated[Path, typer.Argument(help="Second dataset.")],
    layer: LayerOption = None,
    bbox: Annotated[Optional[str], typer.Option("--bbox", help="Only this box, in mag-1 voxels: X,Y,Z,SX,SY,SZ.")] = None,
    jobs: JobsOption = None,
    distribution_strategy: StrategyOption = Strategy.multiprocessing,
    job_resources: ResourcesOption = None,
    dask_address: DaskOption = None,
    quiet: QuietOption = False,
) -> None:
    """Exit 0 when two datasets hold the same voxels, 1 with the first difference otherwise."""
    with _executor(distribution_strategy, jobs, job_resources, dask_address) as executor:
        diff = tools.check_equality(a, b, layer=layer, bbox=_bbox(bbox), executor=executor, progress=_progress(quiet))
    if diff is None:
        _say(quiet, f"{a} and {b} are equal")
        return
    typer.echo(f"{a} and {b} differ: {diff}")
    raise typer.Exit(1)


@app.command("export")
def export_cmd(
    dataset: DatasetArg,
    out: Annotated[Path, typer.Argument(help="Folder for the TIFF stack, or the .npy file.")],
    layer: Annotated[Optional[str], typer.Option("--layer", "-l", help="The layer (needed when there are several).")] = None,
    mag: Annotated[str, typer.Option("--mag", help="The mag to export.")] = "1",
    bbox: Annotated[Optional[str], typer.Option("--bbox", help="Box in mag-1 voxels: X,Y,Z,SX,SY,SZ (default: the layer's).")] = None,
    format: Annotated[ExportFormat, typer.Option("--format", help="tiff: one file per z; npy: one array.")] = ExportFormat.tiff,
    jobs: JobsOption = None,
    distribution_strategy: StrategyOption = Strategy.multiprocessing,
    job_resources: ResourcesOption = None,
    dask_address: DaskOption = None,
    quiet: QuietOption = False,
) -> None:
    """Export a region of a layer as a TIFF stack (one file per z) or one .npy array."""
    with _executor(distribution_strategy, jobs, job_resources, dask_address) as executor:
        files = tools.export_region(
            dataset, out, layer=layer, mag=_mag(mag, "--mag"), bbox=_bbox(bbox), format=format.value,
            executor=executor, progress=_progress(quiet),
        )
    _say(quiet, f"wrote {len(files)} file(s) to {out}")


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
            typer.echo(
                f"    mag {m['mag']:>8}: {m['compression']:<5} block_len {m['block_len']}, file_len {m['file_len']}, "
                f"{m['files']} files, {_human(m['bytes_on_disk'])} on disk, ratio {ratio}"
            )


def _human(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


@app.command("verify")
def verify_cmd(
    dataset: DatasetArg,
    layer: LayerOption = None,
    repair: Annotated[bool, typer.Option("--repair", help="Remove temporary files of interrupted writes.")] = False,
    jobs: JobsOption = None,
    distribution_strategy: StrategyOption = Strategy.multiprocessing,
    job_resources: ResourcesOption = None,
    dask_address: DaskOption = None,
    quiet: QuietOption = False,
) -> None:
    """Check every data file (header, jump table, every block decoded once); exit 1 when any is damaged."""
    with _executor(distribution_strategy, jobs, job_resources, dask_address) as executor:
        damage = tools.verify_dataset(dataset, layer=layer, repair=repair, executor=executor, progress=_progress(quiet))
    for d in damage:
        typer.echo(str(d))
    remaining = [d for d in damage if not d.repaired]
    if remaining:
        typer.echo(f"{dataset}: {len(remaining)} damaged or stray file(s)", err=True)
        raise typer.Exit(1)
    _say(quiet, f"{dataset}: every data file is sound")


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
    _say(quiet, f"wrote {len(files)} images of {size[0]}x{size[1]} to {out}")


# -- entry point -------------------------------------------------------------------------------

#: Exceptions that mean "the input or the flags are wrong", not "wkview failed".
_USER_ERRORS = (UserError, SourceError, TargetExistsError, FileNotFoundError, NotADirectoryError, ValueError, TypeError)


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
    except click.exceptions.Abort:
        typer.echo(f"{where}: interrupted", err=True)
        return 130
    except click.exceptions.ClickException as exc:  # usage errors: bad or missing flags
        typer.echo(f"{where}: error: {exc.format_message()}", err=True)
        return exc.exit_code if exc.exit_code != 1 else 2
    except KeyboardInterrupt:
        typer.echo(f"{where}: interrupted", err=True)
        return 130
    except JobError as exc:
        original = exc.original
        if isinstance(original, (OSError, WkviewError)):
            # a known failure inside a job (disk full, a damaged input file): its line is enough
            typer.echo(f"{where}: error: {original}", err=True)
            return 2 if isinstance(original, SourceError) else 1
        typer.echo(f"{where}: a job failed: {exc}", err=True)  # unexpected: with the job's traceback
        return 1
    except CorruptFileError as exc:
        typer.echo(f"{where}: damaged data: {exc}", err=True)
        return 1
    except _USER_ERRORS as exc:
        typer.echo(f"{where}: error: {exc}", err=True)
        return 2
    except WkviewError as exc:  # e.g. NotADatasetError, PropertiesError (DatasetError is a ValueError)
        typer.echo(f"{where}: error: {exc}", err=True)
        return 2
    except OSError as exc:  # disk full, no permission, ...: nothing was replaced (see Reliability)
        typer.echo(f"{where}: error: {exc}", err=True)
        return 1
    return result if isinstance(result, int) else 0


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    run()

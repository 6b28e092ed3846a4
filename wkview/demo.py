"""The main job on built-in sample data: ``python -m wkview.demo`` (or ``./run.sh demo``).

First the batch conversion users start with: writes EM-like sample data as a TIFF stack,
converts it with ``wkview convert`` (the console script, two worker processes, LZ4HC, with the
mag pyramid) and checks the dataset against the TIFFs. Then the library: creates a dataset with an LZ4HC-compressed color layer, writes EM-like
sample data through a MagView, reads it back through Views, makes an
unaligned edit, builds mag 2 with a chunked job on worker processes, and
collects per-chunk statistics. Every step is checked against NumPy and timed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from . import Dataset, get_executor
from .sample import em_like, write_image_stack


def downsample_job(args: tuple[Any, Any, int]) -> None:
    """Mean-pool a source chunk 2x2x2 into its target chunk."""
    source, target, _ = args
    data = source.read()[0].astype(np.uint16)
    sx, sy, sz = data.shape
    pooled = data.reshape(sx // 2, 2, sy // 2, 2, sz // 2, 2).mean(axis=(1, 3, 5))
    target.write(np.round(pooled).astype(np.uint8))


def chunk_stats(view: Any) -> tuple[int, int, int]:
    """(voxel count, sum, max) of one chunk."""
    data = view.read()
    return int(data.size), int(data.sum(dtype=np.uint64)), int(data.max())


class _Steps:
    def __init__(self) -> None:
        self.rows: list[tuple[str, float, str]] = []

    def run(self, name: str, func: Callable[[], str]) -> None:
        start = time.perf_counter()
        detail = func()
        seconds = time.perf_counter() - start
        self.rows.append((name, seconds, detail))
        print(f"  {name:<44} {seconds * 1000:9.1f} ms   {detail}", flush=True)


def run_demo(path: Path, edge: int, workers: int, keep: bool = True) -> None:
    steps = _Steps()
    ctx: dict[str, Any] = {}
    print(f"wkview demo: {edge}^3 voxels of EM-like data in {path}")
    stack, converted = path.with_name(path.name + "_tiffs"), path.with_name(path.name + "_converted")

    def write_stack() -> str:
        files = write_image_stack(stack, (edge, edge, edge), seed=7)
        return f"{len(files)} TIFF slices of {edge}x{edge} in {stack}"

    def convert_stack() -> str:
        cmd = [
            str(Path(sys.executable).with_name("wkview")), "convert", str(stack), str(converted),
            "--voxel-size", "11.24,11.24,25", "--jobs", str(workers), "--max-mag", "4-4-2", "--quiet",
        ]
        if not Path(cmd[0]).exists():  # not installed as a console script: the same CLI as a module
            cmd[:1] = [sys.executable, "-m", "wkview"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"wkview convert failed: {proc.stderr.strip()}")
        layer = Dataset(converted).get_layer("color")
        return f"mags {', '.join(m.to_layer_name() for m in sorted(layer.mags))}"

    def check_converted() -> str:
        import tifffile

        mag1 = Dataset(converted).get_layer("color").get_mag(1)
        for z in (0, edge // 2, edge - 1):
            if not np.array_equal(mag1.read((0, 0, z), (edge, edge, 1))[0, :, :, 0], tifffile.imread(stack / f"{z}.tif").T):
                raise RuntimeError(f"slice {z} of the converted dataset differs from its TIFF")
        return "slices equal the TIFFs (read with tifffile)"

    def create() -> str:
        ds = Dataset.create(path, scale=(11.24, 11.24, 25.0))
        layer = ds.add_layer("color", "color", dtype_per_channel="uint8")
        ctx["layer"] = layer
        ctx["mag1"] = layer.add_mag(1, block_len=32, file_len=4, compress=True)
        return "layer 'color', mag 1: LZ4HC, files of 128^3 voxels"

    def generate() -> str:
        ctx["data"] = em_like((edge, edge, edge), seed=42)
        return f"{ctx['data'].nbytes / 2**20:.1f} MiB"

    def write() -> str:
        ctx["mag1"].write(ctx["data"], offset=(0, 0, 0))
        files = sum(1 for _ in ctx["mag1"].get_bounding_boxes_on_disk())
        return f"{files} files, layer bounding box {ctx['layer'].bounding_box}"

    def read() -> str:
        back = ctx["mag1"].get_view().read()
        if not np.array_equal(back[0], ctx["data"]):
            raise RuntimeError("data read back differs from what was written")
        return "identical to what was written"

    def edit() -> str:
        patch = np.full((40, 40, 40), 255, np.uint8)
        view = ctx["mag1"].get_view()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # unaligned on purpose
            view.write(patch, offset=(17, 45, 60))
        ctx["data"][17:57, 45:85, 60:100] = 255
        if not np.array_equal(view.read()[0], ctx["data"]):
            raise RuntimeError("unaligned edit was not merged correctly")
        return "40^3 at (17, 45, 60), merged with the stored data"

    def downsample() -> str:
        mag2 = ctx["layer"].add_mag(2, block_len=32, file_len=2, compress=True)
        with get_executor("multiprocessing", max_workers=workers) as executor:
            ctx["mag1"].get_view().for_zipped_chunks(
                downsample_job, mag2.get_view(), (128, 128, 128), (64, 64, 64), executor=executor
            )
        d = ctx["data"].astype(np.uint16)
        expected = np.round(d.reshape(edge // 2, 2, edge // 2, 2, edge // 2, 2).mean(axis=(1, 3, 5))).astype(np.uint8)
        if not np.array_equal(mag2.get_view().read()[0], expected):
            raise RuntimeError("mag 2 differs from the NumPy reference")
        return f"mag 2 via for_zipped_chunks on {workers} processes, equals NumPy"

    def stats() -> str:
        with get_executor("multiprocessing", max_workers=workers) as executor:
            results = ctx["mag1"].get_view().map_chunk(chunk_stats, (64, 64, 64), executor=executor)
        count = sum(r[0] for r in results)
        mean = sum(r[1] for r in results) / count
        if count != ctx["data"].size or abs(mean - ctx["data"].mean()) > 1e-6:
            raise RuntimeError("chunk statistics differ from NumPy")
        return f"{len(results)} chunks, mean intensity {mean:.2f} (NumPy agrees)"

    steps.run("write a TIFF stack of sample data", write_stack)
    steps.run("wkview convert (with the pyramid)", convert_stack)
    steps.run("check the converted dataset", check_converted)
    steps.run("create dataset, layer and mag", create)
    steps.run("generate sample data", generate)
    steps.run("write through MagView (aligned, LZ4HC)", write)
    steps.run("read back through a View", read)
    steps.run("unaligned edit into compressed files", edit)
    steps.run("downsample to mag 2 (chunked, parallel)", downsample)
    steps.run("per-chunk statistics with map_chunk", stats)
    total = sum(r[1] for r in steps.rows)
    where = (
        f"the datasets (they open in webknossos) are at {path} and {converted}"
        if keep
        else "pass --path DIR to keep the datasets"
    )
    print(f"done: {len(steps.rows)} steps in {total:.2f} s; {where}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="wkview-demo", description=__doc__.splitlines()[0])
    parser.add_argument("--path", type=Path, help="dataset folder to create (default: a temporary folder)")
    parser.add_argument("--size", type=int, default=256, help="edge of the sample volume, a multiple of 128")
    parser.add_argument("--workers", type=int, default=2, help="worker processes for the chunked steps")
    args = parser.parse_args(argv)
    if args.size <= 0 or args.size % 128:
        parser.error("--size must be a positive multiple of 128")
    if args.path is not None:
        if args.path.exists() and any(args.path.iterdir()):
            parser.error(f"{args.path} exists and is not empty")
        run_demo(args.path, args.size, args.workers)
        return 0
    with tempfile.TemporaryDirectory(prefix="wkview-demo-") as tmp:
        run_demo(Path(tmp) / "demo_dataset", args.size, args.workers, keep=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())

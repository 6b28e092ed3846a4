"""Side-by-side conversion benchmark: ``wkview convert`` vs ``webknossos convert`` (4.3.3).

How to rerun
------------
    .venv/bin/python bench/compare_convert.py                 # 256 slices of 1024x1024 (a few minutes)
    .venv/bin/python bench/compare_convert.py --slices 32 --edge 256 --repeat 1   # quick check
    ./run.sh compare-convert [ARGS]                           # the same through run.sh
    .venv/bin/python bench/compare_convert.py --inputs volumes --repeat 3   # OME-Zarr and HDF5 only

What is measured
----------------
Input: a z-stack of ``--slices`` EM-like uint8 TIFF slices of ``--edge`` x ``--edge`` pixels
(``wkview.sample.write_image_stack``; 256 MiB at the defaults), cached in
``${TMPDIR:-/tmp}/wkview-bench-cache`` (``$WKVIEW_BENCH_CACHE`` overrides).

Each cell runs the real console script in a subprocess, with ``--jobs 2`` (multiprocessing),
LZ4HC (LZ4 for ``wkview-lz4``), into a fresh target, once without the pyramid (``--no-downsample``) and once with it:

* ``wkview``: ``wkview convert STACK OUT --voxel-size 11.24,11.24,25 --jobs 2 [--no-downsample]``
  (defaults: block_len 32, file_len 32, LZ4HC level 4);
* ``wkview-lz4``: the same with ``--compression lz4`` (fast LZ4 blocks, larger files);
* ``webknossos``: ``webknossos convert STACK OUT --voxel-size 11.24,11.24,25 --data-format wkw
  --jobs 2 [--no-downsample]`` (its defaults: chunk 32, shard 1024, LZ4HC via libwkw).

Time is wall time of the whole command (best of ``--repeat``). Peak memory is the largest sum
of the RSS of the command and all its descendants, sampled every 20 ms from /proc. "on disk"
is the size of all files in the target. Ratios are wkview / webknossos in the same run.
The wkview output is checked against the TIFFs (mag 1 read back and compared).

Chunked volumes (``--inputs volumes``)
--------------------------------------
Input: an EM-like uint8 volume of ``--volume-edge``\ :sup:`3` voxels (512 by default,
``wkview.sample.em_like``), cached twice:

* as OME-Zarr written by webknossos 4.3.3 itself (``Dataset.add_layer(...,
  data_format="zarr3")``, ``add_mag(1, chunk_shape=64, shard_shape=64)``: 64^3 chunks, one
  per file, zstd as webknossos compresses them);
* as one gzip-compressed HDF5 dataset ``/volumes/raw`` in ``zyx`` order (64^3 chunks, h5py's
  gzip level 4), which webknossos cannot convert.

Cells, all with ``--no-downsample --jobs 2``: ``webknossos convert OME_ZARR_LAYER OUT
--data-format wkw``; ``wkview convert`` of the OME-Zarr layer and of ``file.h5:/volumes/raw``.
Both wkview outputs are checked against the volume.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

BIN = Path(sys.executable).parent


def cache_dir() -> Path:
    root = Path(os.environ.get("WKVIEW_BENCH_CACHE", Path(tempfile.gettempdir()) / "wkview-bench-cache"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def make_stack(slices: int, edge: int) -> Path:
    """The cached TIFF stack (written once)."""
    from wkview.sample import write_image_stack

    folder = cache_dir() / f"tiff-stack-{edge}x{edge}x{slices}"
    done = folder / ".complete"
    if not done.exists():
        shutil.rmtree(folder, ignore_errors=True)
        write_image_stack(folder, (edge, edge, slices), seed=0)
        done.write_text("ok")
    return folder


def make_volumes(edge: int) -> tuple[Path, str, np.ndarray]:
    """The cached OME-Zarr layer and HDF5 dataset spec of one EM-like volume, and the volume."""
    from wkview.sample import em_like

    folder = cache_dir() / f"volume-{edge}"
    done = folder / ".complete"
    data = em_like((edge, edge, edge), seed=0)
    if not done.exists():
        import warnings

        import h5py

        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        with warnings.catch_warnings():  # webknossos warns about the readers it lacks
            warnings.simplefilter("ignore")
            import webknossos as wk

            ds = wk.Dataset(folder / "ome", voxel_size=(11.24, 11.24, 25))
            layer = ds.add_layer("color", "color", dtype="uint8", data_format="zarr3")
            mag = layer.add_mag(1, chunk_shape=64, shard_shape=64, compress=True)
            mag.write(data[None], absolute_offset=(0, 0, 0), allow_resize=True)
        with h5py.File(folder / "volume.h5", "w") as f:
            f.create_dataset("volumes/raw", data=np.ascontiguousarray(data.T), chunks=(64, 64, 64), compression="gzip")
        done.write_text("ok")
    return folder / "ome" / "color", f"{folder / 'volume.h5'}:/volumes/raw", data


def compare_volumes(edge: int, repeat: int, tools: list[str]) -> list[dict]:
    """Time and peak memory of converting the OME-Zarr (both tools) and the HDF5 (wkview)."""
    ome, hdf5, data = make_volumes(edge)
    print(f"converting a {edge}^3 uint8 EM-like volume ({edge**3 / 2**20:.0f} MiB) from OME-Zarr (zarr3, 64^3 "
          f"chunks, zstd) and gzip HDF5, --jobs 2, --no-downsample; load average {os.getloadavg()[0]:.2f}; "
          f"best of {repeat}", flush=True)
    common = ["--voxel-size", "11.24,11.24,25", "--jobs", "2", "--no-downsample"]
    cells = [("webknossos", "OME-Zarr", [str(BIN / "webknossos"), "convert", str(ome)], ["--data-format", "wkw"]),
             ("wkview", "OME-Zarr", [str(BIN / "wkview"), "convert", str(ome)], ["--quiet"]),
             ("wkview", "HDF5", [str(BIN / "wkview"), "convert", hdf5], ["--quiet"])]
    rows = []
    work = Path(tempfile.mkdtemp(prefix="wkview-convert-bench-"))
    try:
        for tool, kind, head, tail in cells:
            if tool not in tools:
                continue
            out = work / f"{tool}-{kind}"

            def check_volume() -> None:
                from wkview import Dataset

                if not np.array_equal(Dataset(out).get_layer("color").get_mag(1).read()[0], data):
                    raise RuntimeError(f"{out} differs from the volume")

            rows.append(measure_cell([*head, str(out), *common, *tail], out, repeat,
                                     check_volume if tool == "wkview" else None, f"{tool:<11} {kind:<9}",
                                     {"tool": tool, "input": kind}))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ref = next((r for r in rows if r["tool"] == "webknossos"), None)
    own = next((r for r in rows if r["tool"] == "wkview" and r["input"] == "OME-Zarr"), None)
    print()
    print(f"{'':22} {'time':>9} {'x webknossos':>13} {'x OME-Zarr':>11} {'peak RSS':>10}")
    for r in rows:
        vs_wk = f"{r['seconds'] / ref['seconds']:.3f}" if ref else "-"
        vs_own = f"{r['seconds'] / own['seconds']:.2f}" if own and r["tool"] == "wkview" else "-"
        print(f"{r['tool'] + ' ' + r['input']:<22} {r['seconds']:8.2f}s {vs_wk:>13} {vs_own:>11} "
              f"{r['peak_rss'] / 2**20:9.0f}M")
    return rows


def _tree_rss(pid: int) -> int:
    """Sum of the RSS (bytes) of ``pid`` and all its descendants."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            ppid, pages = int(fields[1]), int(fields[21])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
        rss[int(entry)] = pages * os.sysconf("SC_PAGE_SIZE")
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        total += rss.get(p, 0)
        todo.extend(children.get(p, []))
    return total


def run_measured(cmd: list[str]) -> tuple[float, int]:
    """Wall time and peak process-tree RSS of ``cmd`` (which must succeed)."""
    peak = 0
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, _tree_rss(proc.pid))
            stop.wait(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, _ = proc.communicate()
    elapsed = time.perf_counter() - start
    stop.set()
    sampler.join()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{out[-3000:]}")
    return elapsed, peak


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def measure_cell(cmd: list[str], out: Path, repeat: int, check_output: Any, label: str, row: dict) -> dict:
    """``row`` with the seconds, peak RSS and bytes on disk of the fastest of ``repeat`` runs of
    ``cmd`` into a fresh ``out`` (removed afterwards); ``check_output()`` (if given) checks every
    run's result. Prints the cell under ``label``."""
    best = None
    for _ in range(repeat):
        shutil.rmtree(out, ignore_errors=True)
        seconds, peak = run_measured(cmd)
        if best is None or seconds < best[0]:
            best = (seconds, peak, du(out))
        if check_output is not None:
            check_output()
    shutil.rmtree(out, ignore_errors=True)
    if best is None:
        raise ValueError("repeat must be at least 1")
    print(f"  {label}  {best[0]:7.2f} s  peak {best[1] / 2**20:7.1f} MiB  on disk {best[2] / 2**20:7.1f} MiB",
          flush=True)
    return {**row, "seconds": best[0], "peak_rss": best[1], "on_disk": best[2]}


def command(tool: str, stack: Path, out: Path, pyramid: bool) -> list[str]:
    common = [str(stack), str(out), "--voxel-size", "11.24,11.24,25", "--jobs", "2"]
    if not pyramid:
        common.append("--no-downsample")
    if tool == "wkview":
        return [str(BIN / "wkview"), "convert", *common, "--quiet"]
    if tool == "wkview-lz4":
        return [str(BIN / "wkview"), "convert", *common, "--quiet", "--compression", "lz4"]
    return [str(BIN / "webknossos"), "convert", *common, "--data-format", "wkw"]


def check(stack: Path, out: Path, slices: int) -> None:
    import tifffile

    from wkview import Dataset

    mag = Dataset(out).get_layer(stack.name if (out / stack.name).exists() else "color").get_mag(1)
    for z in (0, slices // 2, slices - 1):
        expected = tifffile.imread(stack / f"{z}.tif").T
        got = mag.read((0, 0, z), (expected.shape[0], expected.shape[1], 1))[0, :, :, 0]
        if not np.array_equal(got, expected):
            raise RuntimeError(f"slice {z} of {out} differs from the TIFF")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=256)
    parser.add_argument("--edge", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--tools", default="wkview,wkview-lz4,webknossos")
    parser.add_argument("--json", type=Path, help="write all numbers to this file")
    parser.add_argument("--inputs", default="tiff,volumes", help="tiff (the TIFF stack), volumes (OME-Zarr, HDF5)")
    parser.add_argument("--volume-edge", type=int, default=512)
    args = parser.parse_args(argv)
    tools = args.tools.split(",")
    inputs = args.inputs.split(",")
    volume_rows = compare_volumes(args.volume_edge, args.repeat, tools) if "volumes" in inputs else []
    if "tiff" not in inputs:
        if args.json:
            args.json.write_text(json.dumps(volume_rows, indent=2))
        return 0
    stack = make_stack(args.slices, args.edge)
    mib = args.slices * args.edge * args.edge / 2**20
    print(f"converting {args.slices} TIFF slices of {args.edge}x{args.edge} uint8 ({mib:.0f} MiB), --jobs 2, "
          f"LZ4HC (wkview-lz4: LZ4); load average {os.getloadavg()[0]:.2f}; best of {args.repeat}", flush=True)
    rows = []
    work = Path(tempfile.mkdtemp(prefix="wkview-convert-bench-"))
    try:
        for pyramid in (False, True):
            for tool in tools:
                out = work / f"{tool}-{int(pyramid)}"
                rows.append(measure_cell(command(tool, stack, out, pyramid), out, args.repeat,
                                         (lambda: check(stack, out, args.slices)) if tool.startswith("wkview") else None,
                                         f"{tool:<11} {'with' if pyramid else 'without':<8} pyramid",
                                         {"tool": tool, "pyramid": pyramid}))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print()
    print(f"{'':22} {'time':>9} {'x webknossos':>13} {'peak RSS':>10} {'on disk':>10}")
    for pyramid in (False, True):
        ref = next((r for r in rows if r["tool"] == "webknossos" and r["pyramid"] == pyramid), None)
        for r in (r for r in rows if r["pyramid"] == pyramid):
            ratio = f"{r['seconds'] / ref['seconds']:.3f}" if ref else "-"
            label = f"{r['tool']} {'+pyramid' if pyramid else ''}"
            print(f"{label:<22} {r['seconds']:8.2f}s {ratio:>13} {r['peak_rss'] / 2**20:9.0f}M {r['on_disk'] / 2**20:9.1f}M")
    if args.json:
        args.json.write_text(json.dumps(rows + volume_rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

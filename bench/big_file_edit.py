"""One voxel written into a full 1024^3-voxel LZ4HC file (webknossos' default file size).

    python bench/big_file_edit.py [--edge 1024] [--skip-libwkw]

Builds a mag with block_len 32, file_len 32 (one file of 1024^3 voxels) filled with EM-like
data (the cached 512^3 sample mirrored into the 8 octants), then times, each in a fresh
subprocess with its peak-RSS growth:

* raw libwkw: the least work the format allows with it: read the whole file, set the voxel,
  write the whole file (it encodes every block again, single-threaded, at its LZ4HC level);
* wkview: ``view.write`` of the 1-voxel array (block-granular: one block re-encoded, the
  other blocks' compressed bytes copied).

Target (issue "own codec"): wkview at most 1% of libwkw's time, at most 64 MiB extra memory.
The libwkw run takes about a minute on this machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
VOXEL = (517, 260, 771)  # in a 1024^3 file; scaled for other --edge values


def voxel(edge: int) -> tuple[int, int, int]:
    return tuple(v * edge // 1024 for v in VOXEL)  # type: ignore[return-value]


def _peak_reset() -> int:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    return _rss("VmRSS")


def _rss(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def child(kind: str, mag: str, edge: int) -> None:
    import wkw

    value = np.full((1, 1, 1, 1), 7, np.uint8)
    if kind == "libwkw":
        handle = wkw.Dataset.open(mag)
        base = _peak_reset()
        start = time.perf_counter()
        data = handle.read((0, 0, 0), (edge, edge, edge))
        data[(0, *voxel(edge))] = 7
        handle.write((0, 0, 0), data)
        seconds = time.perf_counter() - start
        del data
    else:
        from wkview._storage import MagStore
        from wkview.view import View

        store = MagStore(mag)
        view = View(mag, store.header, size=(edge, edge, edge), _store=store)
        view.read((0, 0, 0), (1, 1, 1))  # first use: imports, handle
        base = _peak_reset()
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            view.write(value, voxel(edge))
        seconds = time.perf_counter() - start
    peak = _rss("VmHWM") - base
    print(json.dumps({"kind": kind, "seconds": seconds, "extra_bytes": max(0, peak)}))


def build(mag: Path, edge: int) -> None:
    import wkw

    sys.path.insert(0, str(HERE))
    from _workloads import load_data as sample

    half = sample(edge // 2)
    full = np.empty((edge, edge, edge), np.uint8, order="F")
    for ix, sx in enumerate((slice(None), slice(None, None, -1))):
        for iy, sy in enumerate((slice(None), slice(None, None, -1))):
            for iz, sz in enumerate((slice(None), slice(None, None, -1))):
                h = edge // 2
                full[ix * h:(ix + 1) * h, iy * h:(iy + 1) * h, iz * h:(iz + 1) * h] = half[sx, sy, sz]
    from wkview._storage import MagStore

    store = MagStore.create(mag, wkw.Header(np.uint8, block_len=32, file_len=edge // 32, block_type=3))
    store.write((0, 0, 0), full[np.newaxis])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edge", type=int, default=1024)
    parser.add_argument("--skip-libwkw", action="store_true")
    parser.add_argument("--_child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._child:
        child(args._child[0], args._child[1], int(args._child[2]))
        return 0
    root = Path(tempfile.mkdtemp(prefix="wkview-bigedit-"))
    try:
        template = root / "template"
        start = time.perf_counter()
        build(template, args.edge)
        size = sum(f.stat().st_size for f in template.rglob("x*.wkw"))
        print(f"built one {args.edge}^3 LZ4HC file ({size / 2**20:.0f} MiB) in {time.perf_counter() - start:.1f} s")
        results = {}
        for kind in ("wkview",) + (() if args.skip_libwkw else ("libwkw",)):
            mag = root / kind
            shutil.copytree(template, mag)
            os.sync()
            out = subprocess.run(
                [sys.executable, __file__, "--_child", kind, str(mag), str(args.edge)],
                capture_output=True, text=True, check=True,
            ).stdout
            results[kind] = json.loads(out.strip().splitlines()[-1])
            r = results[kind]
            print(f"{kind:7s} {r['seconds']:8.3f} s   extra memory {r['extra_bytes'] / 2**20:8.1f} MiB")
            shutil.rmtree(mag)
        if "libwkw" in results:
            ratio = results["wkview"]["seconds"] / results["libwkw"]["seconds"]
            print(f"wkview / libwkw time: {ratio:.4f} ({ratio * 100:.2f} %)")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

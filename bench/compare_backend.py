"""webknossos 4.3.3 on WKW, without and with wkview as its backend: side by side, one run.

    python bench/compare_backend.py                      # 512^3, best of 3, ~3 min
    python bench/compare_backend.py --size 128 --repeat 1   # quick check
    python bench/compare_backend.py --level 3                # the backend at another LZ4HC level

Both columns are the same webknossos program (``Dataset`` / ``Layer`` / ``MagView`` calls
of ``bench/_workloads.py``'s ``wk-wkw`` adapter): ``wk-wkw`` is webknossos alone,
``wk-wkw+wkview`` calls ``wkview.webknossos_backend.enable()`` first (default LZ4HC level
4). The workloads, data, layout (LZ4HC, block_len 32, files of n/2 voxels per edge) and
the measuring (a fresh process per cell, untimed set-up, best repetition, peak RSS, every
result checked against NumPy) are those of ``bench/compare.py``. Both columns read, and
edit copies of, the same filled mag written by webknossos alone (libwkw's level 9), so
reads compare on identical files; each aligned write starts from an empty mag.

The ratio column is the backend's time over webknossos' own time in the same run; the
targets are issue 13's.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import _workloads as W  # noqa: E402
import compare as C  # noqa: E402

BASE, BACKEND = W.BACKEND_LIBS
#: the issue's targets: backend time / webknossos' own time
TARGETS = {
    "aligned_write": 0.15,
    "unaligned_write": 0.1,
    "small_edit": 0.02,
    "small_reads": 0.5,
    "full_read": 0.8,
}


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="webknossos 4.3.3 on WKW without vs with wkview as its backend")
    p.add_argument("--size", type=int, default=512, help="edge of the cube (power of two >= 64; default 512)")
    p.add_argument("--repeat", type=int, default=3, help="timed repetitions per cell (best is reported; default 3)")
    p.add_argument("--only", default=",".join(W.WORKLOADS), help="workloads, comma-separated: " + ",".join(W.WORKLOADS))
    p.add_argument("--json", dest="json_out", help="write all numbers to this file")
    p.add_argument("--level", type=int, default=None, help="LZ4HC level of the backend (default: wkview's, 4)")
    args = p.parse_args(argv)
    unknown = [w for w in args.only.split(",") if w and w not in W.WORKLOADS]
    if unknown:
        p.error(f"--only: unknown {unknown}; choose from {','.join(W.WORKLOADS)}")
    if args.repeat < 1:
        p.error("--repeat must be >= 1")
    if args.level is not None and not 1 <= args.level <= 12:
        p.error("--level must be 1..12")
    try:
        W.Geometry(args.size)
    except ValueError as exc:
        p.error(str(exc))
    return args


def format_table(results: dict[tuple[str, str], dict], workloads: list[str], n: int) -> str:
    head = (
        f"{'workload':<16} {'library':<14} {'time (best)':>16} {'x wk-wkw':>9} {'target':>7} "
        f"{'on disk (ratio)':>22} {'peak mem':>12}  note"
    )
    lines = [head, "-" * len(head)]
    for w in workloads:
        base = C._cell_time(results.get((w, BASE), {}))
        for lib in W.BACKEND_LIBS:
            r = results.get((w, lib))
            if r is None:
                continue
            t = C._cell_time(r)
            if t is None:
                lines.append(f"{w:<16} {lib:<14} {r.get('status', '?'):>16} {'-':>9} {'-':>7} {'-':>22} {'-':>12}  {r.get('note', '')}")
                continue
            ratio = t / base if base else None
            target = TARGETS.get(w) if lib == BACKEND else None
            verdict = ""
            if target is not None and ratio is not None:
                verdict = "met" if ratio <= target else "MISSED"
            disk = r.get("disk_bytes")
            disk_s = f"{disk / 2**20:.1f} MiB ({n**3 / disk:.2f}x)" if disk else "-"
            mem = C._fmt_mib(r.get("peak_bytes"), r.get("mem_method") != "clear_refs")
            notes = [verdict] if verdict else []
            if len(r["times"]) > 1:
                notes.append(f"worst {max(r['times']) / min(r['times']):.2f}x of best")
            lines.append(
                f"{w:<16} {lib:<14} {C._fmt_time(t, w == 'small_reads'):>16} "
                f"{(f'{ratio:.3f}' if ratio is not None else '-'):>9} "
                f"{(f'<={target:g}' if target is not None else ''):>7} {disk_s:>22} {mem:>12}  {'; '.join(notes)}"
            )
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == [C.CHILD_FLAG]:
        return C.child_main(argv[1])
    args = parse_args(argv)
    if not W.wk_installed():
        print("webknossos is not installed: nothing to compare", file=sys.stderr)
        return 1
    started = time.perf_counter()
    if args.level is not None:
        os.environ["WKVIEW_BENCH_BACKEND_LEVEL"] = str(args.level)  # read by the children's adapter
    geo = W.Geometry(args.size)
    workloads = [w for w in W.WORKLOADS if w in args.only.split(",")]
    W.load_data(args.size)  # generate and cache once, before the children need it
    workdir = Path(tempfile.mkdtemp(prefix="wkview-bench-backend-"))
    base_spec = {"n": geo.n, "file_len": geo.file_len, "zarr3_shard": 0, "repeat": args.repeat, "workdir": str(workdir)}
    template = str(workdir / "template-wk-wkw")
    load_start = os.getloadavg()
    results: dict[tuple[str, str], dict] = {}
    script = Path(__file__).resolve()
    try:
        needs_template = any(w in W.READ_WORKLOADS or w in W.EDIT_WORKLOADS for w in workloads)
        if needs_template:
            # the filled mag both columns read and edit: written by webknossos alone
            prep = C._run_child(dict(base_spec, lib=BASE, workload="prepare", keep_output=template), workdir, script)
            if prep["status"] != "ok":
                print(f"preparing the filled mag failed: {prep.get('note')}\n{prep.get('traceback', '')}", file=sys.stderr)
                return 1
        cells = [(w, lib) for w in C.EXEC_ORDER if w in workloads for lib in W.BACKEND_LIBS]
        for i, (workload, lib) in enumerate(cells, 1):
            spec = dict(base_spec, lib=lib, workload=workload, template=template)
            t = time.perf_counter()
            r = C._run_child(spec, workdir, script)
            results[(workload, lib)] = r
            ct = C._cell_time(r)
            msg = r["status"] + ": " + r.get("note", "") if ct is None else (
                f"{ct * 1e6:.1f} us/call" if workload == "small_reads" else f"{ct:.3f} s"
            )
            print(f"[{i}/{len(cells)}] {workload:<16} {lib:<14} {msg}  ({time.perf_counter() - t:.1f} s wall)", file=sys.stderr)
            if r["status"] == "error" and r.get("traceback"):
                print(r["traceback"], file=sys.stderr)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    load_end = os.getloadavg()
    versions = C._versions()
    print(
        f"webknossos on WKW without / with wkview as its backend: {args.size}^3 uint8 em_like(seed=0), "
        f"LZ4HC block_len {geo.block_len} file_len {geo.file_len}; best of {args.repeat}; "
        f"backend level {args.level or 'default (4)'}"
    )
    print("versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    print(
        f"machine: {os.cpu_count()} cores, load average {load_start[0]:.2f} at start, {load_end[0]:.2f} at end; "
        f"total {time.perf_counter() - started:.0f} s"
    )
    print("x wk-wkw: time / webknossos' own time in this run; target: issue 13's")
    print()
    print(format_table(results, workloads, args.size), end="")
    if args.json_out:
        out: dict[str, Any] = {
            "size": args.size,
            "repeat": args.repeat,
            "level": args.level,
            "versions": versions,
            "targets": TARGETS,
            "results": [
                dict(r, time_s=C._cell_time(r), ratio_to_wk_wkw=(
                    C._cell_time(r) / C._cell_time(results[(w, BASE)])
                    if C._cell_time(r) and C._cell_time(results.get((w, BASE), {})) else None
                ))
                for (w, _lib), r in results.items()
            ],
        }
        with open(args.json_out, "w") as f:
            json.dump(out, f, indent=1)
    return 1 if any(r.get("status") == "error" for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())

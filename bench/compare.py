"""Side-by-side IO comparison: wkview vs raw libwkw vs webknossos 4.3.3 (WKW and Zarr3).

How to rerun
------------
    .venv/bin/python bench/compare.py                      # the full 512^3 comparison (a few minutes)
    .venv/bin/python bench/compare.py --size 128 --repeat 1   # quick check (well under a minute)
    ./run.sh compare [ARGS]                                # the same through run.sh
    .venv/bin/python bench/compare.py --only small_reads,full_read --libs wkview,libwkw --json out.json
    .venv/bin/python bench/compare.py --only small_reads,voxel_reads,full_read --libs wkview,libwkw --threads 1,2
                                                           # issue 18's P1, 1-voxel read and P2, 1 and 2 threads

Options: ``--size N`` (edge of the cube, power of two >= 64, default 512), ``--repeat N``
(timed repetitions per cell, default 3), ``--only`` (workloads, comma-separated),
``--libs`` (default ``wkview,libwkw,wk-wkw,wk-zarr3``), ``--json FILE`` (all numbers),
``--keep`` (keep the work folder), ``--file-len`` (override the WKW file length),
``--threads N`` (``WKVIEW_IO_THREADS`` of the measured processes: ``--threads 1`` shows the
serial gains apart from the parallel ones; libwkw reads on one thread either way; a list such
as ``--threads 1,2`` measures wkview once per count, as rows ``wkview-t1``, ``wkview-t2``),
``--zarr3-shard`` (see below).

What is measured
----------------
Data: ``wkview.sample.em_like((n, n, n), seed=0)`` (uint8, LZ4HC ratio ~1.8), cached as .npy
in ``${TMPDIR:-/tmp}/wkview-bench-cache`` (``$WKVIEW_BENCH_CACHE`` overrides). Mags: LZ4HC,
block_len 32, files of n/2 voxels per edge (file_len 8 at n=512). webknossos: WKW with
chunk_shape 32 and shard_shape n/2, and its default Zarr3 (default chunk/shard shapes,
compress=True). webknossos' default Zarr3 shard is 1024^3, so below 512^3 every wk-zarr3 write
is a ~1 GiB read-modify-write taking seconds whatever the size: quick runs (``--size`` < 512)
give wk-zarr3 shards of n/2 instead unless ``--zarr3-shard default`` (the header says so).

Workloads (see ``bench/_workloads.py``):

* ``small_reads``      2,000 reads of 32^3 at random offsets (seed 0); time is the mean per call
* ``voxel_reads``      2,000 reads of one voxel at the same offsets; time is the mean per call
* ``full_read``        one read of the whole cube
* ``aligned_write``    the whole cube into an empty mag (a fresh mag per repetition)
* ``unaligned_write``  300^3 at (17, 45, 100) into a filled mag (a fresh copy per repetition);
                       raw libwkw reads only the partially covered files, merges in NumPy
                       and writes each touched file once
* ``small_edit``       8^3 at (17, 45, 100) into a filled mag (a fresh copy per repetition), the
                       same way; the time is per edit
* ``buffered_slices``  256 z-slices of 512x512 through the buffered slice writer; raw libwkw
                       does ONE aligned write of the same 512x512x256 block

Every (library, workload) cell runs in a fresh subprocess (this script with a hidden flag).
Inside it, set-up (data, datasets, page cache warming, a warm-up pass for reads, a small
warm-up write for writes) is untimed; each repetition is timed with ``time.perf_counter``
with the garbage collector off; the best repetition is reported, and in the note column
the least CPU time of the process (``time.process_time``, all its threads) per repetition or
call, which other processes on the machine disturb less than wall time. Peak memory: the RSS
high-water mark is reset after set-up (``5`` written to ``/proc/self/clear_refs``) and
``VmHWM - VmRSS-before`` is reported (max over repetitions); where clear_refs is not
permitted, the ``ru_maxrss`` delta (marked ``~``). Every result is checked against NumPy
(reads: the warm-up pass; writes: read back after the last repetition). The filled mag of
each library is its own (checked) aligned_write output. Ratios are to raw libwkw in the same
run; below 1 means faster than raw libwkw.

Noise: on a 2-core machine other processes move the numbers (the header prints the load
average; the note column the worst/best spread). Rerun disturbed cells alone, e.g.
``--only small_reads --libs wkview,libwkw --repeat 10``.
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402

import _workloads as W  # noqa: E402

CHILD_FLAG = "--_child"
EXEC_ORDER = ("aligned_write", "small_reads", "voxel_reads", "full_read", "unaligned_write", "small_edit", "buffered_slices")
WARM_SMALL_READS = 200  # untimed, checked reads before the timed small_reads
CHILD_TIMEOUT = 3600


class Skip(Exception):
    """The cell cannot be measured (e.g. the API is not there yet)."""


# -- peak memory ------------------------------------------------------------------------


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


class PeakMemory:
    """Peak RSS growth of the timed part, from the reset high-water mark (or ru_maxrss)."""

    def __init__(self) -> None:
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            _status_kib("VmHWM")
            self.method = "clear_refs"
        except (OSError, KeyError):
            self.method = "ru_maxrss"
        self._rss0 = 0

    def _rss_kib(self) -> int:
        try:
            return _status_kib("VmRSS")
        except (OSError, KeyError):
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    def start(self) -> None:
        self._rss0 = self._rss_kib()
        if self.method == "clear_refs":
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")

    def stop(self) -> int:
        """Bytes the RSS peaked above its value at :meth:`start`."""
        if self.method == "clear_refs":
            peak = _status_kib("VmHWM")
        else:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
        return max(0, peak - self._rss0) * 1024


def _malloc_trim() -> None:
    """Return free heap pages to the OS, so memory reused by the timed part counts in its peak."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _timed(fn: Callable[[], Any], mem: PeakMemory) -> tuple[float, float, int]:
    """Wall time, CPU time of the process (all threads) and peak memory growth of ``fn()``."""
    gc.collect()
    _malloc_trim()
    mem.start()
    gc.disable()
    try:
        c0 = time.process_time()
        t0 = time.perf_counter()
        out = fn()
        elapsed = time.perf_counter() - t0
        cpu = time.process_time() - c0
    finally:
        gc.enable()
    peak = mem.stop()
    del out
    return elapsed, cpu, peak


# -- one cell (runs in the child process) -----------------------------------------------


def _check(actual: np.ndarray, expected: np.ndarray, what: str) -> None:
    actual = W.as3d(actual)
    if actual.shape != expected.shape or not np.array_equal(actual, expected):
        bad = "shape " + str(actual.shape) if actual.shape != expected.shape else f"{int((actual != expected).sum())} voxels differ"
        raise AssertionError(f"wrong result of {what}: {bad}")


def _measure_read(spec: dict, lib: Any, geo: W.Geometry, data: np.ndarray, mem: PeakMemory) -> dict:
    template = Path(spec["template"])
    W.warm_page_cache(lib.mag_dir(template))
    target = lib.open(template)
    if spec["workload"] in W.PER_CALL_WORKLOADS:
        read = lib.small_reader(target)
        offsets, size = geo.small_offsets, geo.small_size if spec["workload"] == "small_reads" else (1, 1, 1)
        for x, y, z in offsets[:WARM_SMALL_READS]:
            _check(read((x, y, z), size), data[x : x + size[0], y : y + size[1], z : z + size[2]], f"read at {(x, y, z)}")

        def fn() -> Any:
            return W.small_reads(read, offsets, size)

        calls = len(offsets)
    else:
        read = lib.full_reader(target)

        def fn() -> Any:
            return W.full_read(read, geo.shape)

        _check(fn(), data, "full read")
        calls = 1
    times, cpus, peaks = [], [], []
    for _ in range(spec["repeat"]):
        t, c, p = _timed(fn, mem)
        times.append(t)
        cpus.append(c)
        peaks.append(p)
    lib.close(target)
    return {"times": times, "cpu_times": cpus, "calls": calls, "peak_bytes": max(peaks)}


def _write_op(lib: Any, workload: str, geo: W.Geometry, data: np.ndarray) -> tuple[Callable[[Any], None], np.ndarray]:
    """The timed write operation on a target, and the array it writes (prepared untimed)."""
    if workload == "aligned_write":
        return (lambda t: lib.write_aligned(t, data)), data
    if workload == "unaligned_write":
        sub = geo.unaligned_data(data)
        return (lambda t: lib.write_unaligned(t, sub, geo.unaligned_offset)), sub
    if workload == "small_edit":
        edit = geo.edit_data(data)
        return (lambda t: lib.write_unaligned(t, edit, geo.unaligned_offset)), edit
    slab = geo.slab(data)
    return (lambda t: lib.write_slices(t, slab)), slab


def _new_target(lib: Any, workload: str, geo: W.Geometry, path: Path, template: str | None, **kw: Any) -> Any:
    if workload in W.EDIT_WORKLOADS:
        assert template is not None
        W.copy_dataset(Path(template), path)
        return lib.open(path)
    target = lib.create_empty(path, geo, **kw)
    if workload == "buffered_slices":
        if not lib.has_slice_writer(target):
            lib.close(target)
            raise Skip(f"{lib.name} has no get_buffered_slice_writer yet")
        lib.prepare_slices(target, geo)
    return target


def _warm_write(spec: dict, lib: Any, data: np.ndarray, root: Path) -> None:
    """Run the write once on a 64^3 cube with small files/shards: imports, first-use set-up."""
    workload = spec["workload"]
    g = W.Geometry(64, file_len=1)
    small = np.asfortranarray(data[:64, :64, :64])
    template = None
    if workload in W.EDIT_WORKLOADS:
        template = str(root / "warm-template")
        lib.create_filled(Path(template), g, small, small_shards=True)
    op, _ = _write_op(lib, workload, g, small)
    target = _new_target(lib, workload, g, root / "warm-target", template, small_shards=True)
    op(target)
    lib.close(target)


def _measure_write(spec: dict, lib: Any, geo: W.Geometry, data: np.ndarray, mem: PeakMemory) -> dict:
    workload = spec["workload"]
    work = Path(spec["workdir"]) / f"cell-{lib.name}-{workload}"
    work.mkdir(parents=True)
    try:
        _warm_write(spec, lib, data, work)
        op, written = _write_op(lib, workload, geo, data)
        times, cpus, peaks = [], [], []
        disk = None
        for rep in range(spec["repeat"]):
            path = work / f"rep{rep}"
            target = _new_target(lib, workload, geo, path, spec.get("template"))
            os.sync()  # no writeback of set-up files during the timed part
            t, c, p = _timed(functools.partial(op, target), mem)
            times.append(t)
            cpus.append(c)
            peaks.append(p)
            last = rep == spec["repeat"] - 1
            if last:
                disk = W.data_bytes(lib.mag_dir(path))
                if workload == "aligned_write":
                    _check(lib.read_box(target, (0, 0, 0), geo.shape), data, "aligned write (read back)")
                elif workload == "unaligned_write":
                    _check(lib.read_box(target, (0, 0, 0), geo.shape), geo.unaligned_expected(data), "unaligned write (read back)")
                elif workload == "small_edit":
                    _check(lib.read_box(target, (0, 0, 0), geo.shape), geo.edit_expected(data), "small edit (read back)")
                else:
                    _check(lib.read_box(target, (0, 0, 0), written.shape), written, "slice writes (read back)")
            lib.close(target)
            del target
            if last and spec.get("keep_output"):
                os.replace(path, spec["keep_output"])
            else:
                shutil.rmtree(path, ignore_errors=True)
        return {"times": times, "cpu_times": cpus, "calls": 1, "peak_bytes": max(peaks), "disk_bytes": disk}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def child_main(spec_file: str) -> int:
    with open(spec_file) as f:
        spec = json.load(f)
    result: dict[str, Any] = {"lib": spec.get("label", spec["lib"]), "workload": spec["workload"], "status": "ok"}
    try:
        geo = W.Geometry(spec["n"], spec["file_len"], spec.get("zarr3_shard", 0))
        lib = W.make_lib(spec["lib"])
        data = W.load_data(geo.n)
        if spec["workload"] == "prepare":
            lib.create_filled(Path(spec["keep_output"]), geo, data)
        else:
            mem = PeakMemory()
            result["mem_method"] = mem.method
            result["load_before"] = os.getloadavg()[0]
            if spec["workload"] in W.READ_WORKLOADS:
                result.update(_measure_read(spec, lib, geo, data, mem))
            else:
                result.update(_measure_write(spec, lib, geo, data, mem))
            result["load_after"] = os.getloadavg()[0]
    except Skip as exc:
        result.update(status="skip", note=str(exc))
    except W.Unavailable as exc:
        result.update(status="skip", note=str(exc), unavailable=True)
    except BaseException as exc:  # report, never hide: the parent prints it
        result.update(status="error", note=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc())
    with open(spec["result"], "w") as f:
        json.dump(result, f)
    return 0


# -- the parent: runs the cells, prints the table ---------------------------------------


def _run_child(spec: dict, workdir: Path, script: Path | None = None) -> dict:
    """Run one cell in a fresh process (``script --_child spec``; default: this script)."""
    label = spec.get("label", spec["lib"])
    tag = f"{label}-{spec['workload']}"
    spec = dict(spec, result=str(workdir / f"result-{tag}.json"))
    spec_file = workdir / f"spec-{tag}.json"
    spec_file.write_text(json.dumps(spec))
    env = None
    if spec.get("threads"):
        env = dict(os.environ, WKVIEW_IO_THREADS=str(spec["threads"]))
    try:
        proc = subprocess.run(
            [sys.executable, str(script or Path(__file__).resolve()), CHILD_FLAG, str(spec_file)],
            capture_output=True,
            text=True,
            timeout=CHILD_TIMEOUT,
            env=env,
        )
    except subprocess.TimeoutExpired:
        return {"lib": label, "workload": spec["workload"], "status": "error", "note": f"timed out after {CHILD_TIMEOUT} s"}
    try:
        with open(spec["result"]) as f:
            return json.load(f)
    except (OSError, ValueError):
        tail = (proc.stderr or proc.stdout or "").strip().splitlines()[-3:]
        return {
            "lib": label,
            "workload": spec["workload"],
            "status": "error",
            "note": f"child exited with {proc.returncode}: " + " | ".join(tail),
        }


def _fmt_time(seconds: float, per_call: bool) -> str:
    if per_call:
        return f"{seconds * 1e6:8.1f} us/call"
    if seconds < 1:
        return f"{seconds * 1e3:8.1f} ms     "
    return f"{seconds:8.3f} s      "


def _fmt_mib(n: float | None, approx: bool = False) -> str:
    if n is None:
        return "-"
    return ("~" if approx else "") + f"{n / 2**20:.1f} MiB"


def _cell_time(r: dict) -> float | None:
    if r.get("status") != "ok" or not r.get("times"):
        return None
    return min(r["times"]) / r["calls"]


def format_table(results: dict[tuple[str, str], dict], workloads: list[str], libs: list[str], n: int) -> str:
    raw = n**3
    head = f"{'workload':<16} {'library':<9} {'time (best)':>16} {'x libwkw':>9} {'on disk (ratio)':>22} {'peak mem':>12}  note"
    lines = [head, "-" * len(head)]
    for w in workloads:
        base = _cell_time(results.get((w, W.BASELINE), {}))
        for lib in libs:
            r = results.get((w, lib))
            if r is None:
                continue
            t = _cell_time(r)
            note = r.get("note", "") if r.get("status") != "ok" else ""
            if t is None:
                lines.append(f"{w:<16} {lib:<9} {r.get('status', '?'):>16} {'-':>9} {'-':>22} {'-':>12}  {note}")
                continue
            ratio = f"{t / base:.2f}" if base else "-"
            disk = r.get("disk_bytes")
            disk_s = f"{disk / 2**20:.1f} MiB ({raw / disk:.2f}x)" if disk else "-"
            mem = _fmt_mib(r.get("peak_bytes"), r.get("mem_method") != "clear_refs")
            spread = ""
            if r.get("cpu_times"):
                spread = f"cpu {_fmt_time(min(r['cpu_times']) / r['calls'], w in W.PER_CALL_WORKLOADS).strip()}; "
            if len(r["times"]) > 1:
                spread += f"worst {max(r['times']) / min(r['times']):.2f}x of best"
            lines.append(
                f"{w:<16} {lib:<9} {_fmt_time(t, w in W.PER_CALL_WORKLOADS):>16} {ratio:>9} {disk_s:>22} {mem:>12}  {spread}"
            )
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "numpy": np.__version__}
    try:
        from importlib.metadata import version

        for pkg in ("wkview", "wkw", "webknossos", "tensorstore"):
            try:
                out[pkg] = version(pkg)
            except Exception:
                pass
    except ImportError:
        pass
    return out


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="wkview vs raw libwkw vs webknossos 4.3.3: IO side by side")
    p.add_argument("--size", type=int, default=512, help="edge of the cube (power of two >= 64; default 512)")
    p.add_argument("--repeat", type=int, default=3, help="timed repetitions per cell (best is reported; default 3)")
    p.add_argument("--only", default=",".join(W.WORKLOADS), help="workloads, comma-separated: " + ",".join(W.WORKLOADS))
    p.add_argument("--libs", default=",".join(W.LIBS), help="libraries, comma-separated: " + ",".join(W.LIBS))
    p.add_argument("--json", dest="json_out", help="write all numbers to this file")
    p.add_argument("--file-len", type=int, default=0, help="WKW file_len (default: size/64, i.e. 8 at 512)")
    p.add_argument("--keep", action="store_true", help="keep the work folder (datasets) at the end")
    p.add_argument(
        "--threads",
        default="",
        help="WKVIEW_IO_THREADS of the measured processes (default: unset); a list (1,2) measures wkview once per count",
    )
    p.add_argument(
        "--zarr3-shard",
        default="auto",
        help="wk-zarr3 shard edge: 'default' (webknossos' 1024^3), a power of two, or 'auto' "
        "(default from --size 512 up, size/2 below, to keep quick checks quick)",
    )
    args = p.parse_args(argv)
    for name, values, allowed in (("--only", args.only, W.WORKLOADS), ("--libs", args.libs, W.LIBS)):
        unknown = [v for v in values.split(",") if v and v not in allowed]
        if unknown:
            p.error(f"{name}: unknown {unknown}; choose from {','.join(allowed)}")
    if args.repeat < 1:
        p.error("--repeat must be >= 1")
    try:
        args.thread_counts = [int(v) for v in args.threads.split(",") if v.strip()]
        if any(t < 1 for t in args.thread_counts):
            raise ValueError
    except ValueError:
        p.error("--threads: positive ints, comma-separated")
    try:
        W.Geometry(args.size, args.file_len)
    except ValueError as exc:
        p.error(str(exc))
    if args.zarr3_shard not in ("auto", "default"):
        try:
            v = int(args.zarr3_shard)
            assert v >= 32 and v & (v - 1) == 0
        except (ValueError, AssertionError):
            p.error("--zarr3-shard: 'auto', 'default' or a power of two >= 32")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == [CHILD_FLAG]:
        return child_main(argv[1])
    args = parse_args(argv)
    if len(args.thread_counts) == 1:  # the cells run in child processes, which inherit it
        os.environ["WKVIEW_IO_THREADS"] = str(args.thread_counts[0])
    started = time.perf_counter()
    workloads = [w for w in W.WORKLOADS if w in args.only.split(",")]
    libs = [lib for lib in W.LIBS if lib in args.libs.split(",")]
    zarr3_shard = args.zarr3_shard
    if zarr3_shard == "auto":
        zarr3_shard = "default" if args.size >= 512 else str(args.size // 2)
    geo = W.Geometry(args.size, args.file_len, 0 if zarr3_shard == "default" else int(zarr3_shard))
    notes: list[str] = []
    if geo.zarr3_shard and "wk-zarr3" in libs:
        notes.append(
            f"wk-zarr3 uses shard_shape {geo.zarr3_shard}^3 here, not webknossos' default 1024^3 "
            "(--zarr3-shard auto: a default shard makes every wk-zarr3 write a ~1 GiB read-modify-write, "
            "seconds at any size; pass --zarr3-shard default to measure that)"
        )
    if any(lib in W.WK_LIBS for lib in libs) and not W.wk_installed():
        notes.append("webknossos is not installed: its columns are skipped")
        libs = [lib for lib in libs if lib not in W.WK_LIBS]
    if W.BASELINE not in libs:
        notes.append("raw libwkw not selected: no ratios")

    t0 = time.perf_counter()
    cached = (W.cache_dir() / f"em_like_{args.size}x{args.size}x{args.size}_seed{W.SEED}.npy").is_file()
    W.load_data(args.size)  # generate and cache once, before the children need it
    if not cached and args.size >= 256:
        print(f"generated the {args.size}^3 sample data in {time.perf_counter() - t0:.1f} s (cached in {W.cache_dir()})", file=sys.stderr)

    workdir = Path(tempfile.mkdtemp(prefix="wkview-bench-"))
    load_start = os.getloadavg()
    results: dict[tuple[str, str], dict] = {}
    templates: dict[str, str] = {}
    base_spec = {"n": geo.n, "file_len": geo.file_len, "zarr3_shard": geo.zarr3_shard, "repeat": args.repeat, "workdir": str(workdir)}
    order = [w for w in EXEC_ORDER if w in workloads]
    # one row per library; wkview once per thread count when --threads lists several
    per_count = len(args.thread_counts) > 1
    rows = [
        (lib, t, f"{lib}-t{t}") if per_count and lib == "wkview" else (lib, 0, lib)
        for lib in libs
        for t in (args.thread_counts if per_count and lib == "wkview" else [0])
    ]
    labels = [label for _, _, label in rows]
    cells = [(w, lib, t, label) for w in order for lib, t, label in rows]
    done = 0
    try:
        while cells:
            workload, lib, threads, label = cells.pop(0)
            spec = dict(base_spec, lib=lib, workload=workload, label=label, threads=threads)
            t = time.perf_counter()
            r = None
            if workload == "aligned_write" and lib not in templates:
                # its output (checked) is the filled mag the reads and the unaligned write use
                spec["keep_output"] = str(workdir / f"template-{lib}")
            elif workload in (*W.READ_WORKLOADS, "unaligned_write", "small_edit"):
                if lib not in templates:
                    prep = _run_child(dict(base_spec, lib=lib, workload="prepare", keep_output=str(workdir / f"template-{lib}")), workdir)
                    if prep["status"] == "ok":
                        templates[lib] = str(workdir / f"template-{lib}")
                    else:
                        r = dict(prep, workload=workload, note="preparing the filled mag failed: " + prep.get("note", ""))
                spec["template"] = templates.get(lib)
            if r is None:
                r = _run_child(spec, workdir)
            if r.get("unavailable"):  # e.g. webknossos installed but not importable: drop its columns
                notes.append(r["note"] + ": its columns are skipped")
                dropped = W.WK_LIBS if lib in W.WK_LIBS else (lib,)
                libs = [x for x in libs if x not in dropped]
                labels = [x for x in labels if x not in dropped]
                cells = [c for c in cells if c[1] not in dropped]
                results = {k: v for k, v in results.items() if k[1] not in dropped}
                continue
            done += 1
            if workload == "aligned_write" and r["status"] == "ok" and lib not in templates:
                templates[lib] = spec["keep_output"]
            results[(workload, label)] = r
            ct = _cell_time(r)
            if ct is None:
                msg = r["status"] + ": " + r.get("note", "")
            else:
                msg = f"{ct * 1e6:.1f} us/call" if workload in W.PER_CALL_WORKLOADS else f"{ct:.3f} s"
            print(f"[{done}/{done + len(cells)}] {workload:<16} {label:<9} {msg}  ({time.perf_counter() - t:.1f} s wall)", file=sys.stderr)
            if r["status"] == "error" and r.get("traceback"):
                print(r["traceback"], file=sys.stderr)
    finally:
        if args.keep:
            print(f"work folder kept: {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    load_end = os.getloadavg()
    elapsed = time.perf_counter() - started

    versions = _versions()
    if not any(lib in W.WK_LIBS for lib in libs):
        versions = {k: v for k, v in versions.items() if k not in ("webknossos", "tensorstore")}
        notes = [n for n in notes if not n.startswith("wk-zarr3 uses")]
    print(
        f"wkview IO comparison: {args.size}^3 uint8 em_like(seed=0), LZ4HC block_len {geo.block_len} "
        f"file_len {geo.file_len} ({geo.file_edge}^3-voxel files); best of {args.repeat}"
    )
    print("versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    print(
        f"machine: {os.cpu_count()} cores, load average {load_start[0]:.2f} at start, "
        f"{load_end[0]:.2f} at end; total {elapsed:.0f} s; "
        f"WKVIEW_IO_THREADS={os.environ.get('WKVIEW_IO_THREADS', 'unset')}"
        + (f" (wkview-tN rows: N)" if len(args.thread_counts) > 1 else "")
    )
    print(
        "time: best repetition (small_reads, voxel_reads: its mean per call); x libwkw: time / raw libwkw time; "
        "on disk: bytes of data files (raw/compressed ratio); peak mem: RSS growth during the workload"
    )
    for note in notes:
        print("note: " + note)
    print()
    print(format_table(results, workloads, labels, args.size), end="")

    if args.json_out:
        out = {
            "size": args.size,
            "file_len": geo.file_len,
            "repeat": args.repeat,
            "versions": versions,
            "load_average": {"start": load_start, "end": load_end},
            "elapsed_s": elapsed,
            "notes": notes,
            "results": [
                dict(r, time_s=_cell_time(r), ratio_to_libwkw=(
                    _cell_time(r) / _cell_time(results[(w, W.BASELINE)])
                    if _cell_time(r) and _cell_time(results.get((w, W.BASELINE), {})) else None
                ))
                for (w, _lib), r in sorted(results.items(), key=lambda kv: (W.WORKLOADS.index(kv[0][0]), labels.index(kv[0][1])))
            ],
        }
        with open(args.json_out, "w") as f:
            json.dump(out, f, indent=1)
    return 1 if any(r.get("status") == "error" for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())

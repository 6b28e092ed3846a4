"""webknossos 4.3.3 on WKW, without and with wkview as its backend: side by side, one run.

    python bench/compare_backend.py                      # 512^3, best of 3, ~3 min
    python bench/compare_backend.py --size 128 --repeat 1   # quick check
    python bench/compare_backend.py --level 3                # the backend at another LZ4HC level
    python bench/compare_backend.py --only forms             # only the per-form table

Besides issue 13's workloads, the ``forms`` table times each spelling of a read and a
write (issue 17; ``bench/_backend_forms.py``): 32^3 reads at random offsets and 8^3
edits at random unaligned offsets of a compressed mag of ``--forms-size`` voxels per edge
(32^3 blocks, one file), per call, with the goal of every form at <= 0.3x of webknossos
alone.

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

import _backend_forms as F  # noqa: E402
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
#: issue 17's goal for every read and write form
FORM_TARGET = 0.3
FORMS = "forms"


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="webknossos 4.3.3 on WKW without vs with wkview as its backend")
    p.add_argument("--size", type=int, default=512, help="edge of the cube (power of two >= 64; default 512)")
    p.add_argument("--repeat", type=int, default=3, help="timed repetitions per cell (best is reported; default 3)")
    choices = (*W.WORKLOADS, FORMS)
    p.add_argument("--only", default=",".join(choices), help="workloads, comma-separated: " + ",".join(choices))
    p.add_argument("--forms-size", type=int, default=256, help="edge of the forms' mag (multiple of 32 >= 64; default 256)")
    p.add_argument("--forms-calls", type=int, default=200, help="reads per form and repetition (default 200)")
    p.add_argument("--forms-edits", type=int, default=3, help="edits per form (best is reported; default 3; 0: no edits)")
    p.add_argument("--json", dest="json_out", help="write all numbers to this file")
    p.add_argument("--level", type=int, default=None, help="LZ4HC level of the backend (default: wkview's, 4)")
    args = p.parse_args(argv)
    unknown = [w for w in args.only.split(",") if w and w not in choices]
    if unknown:
        p.error(f"--only: unknown {unknown}; choose from {','.join(choices)}")
    if args.forms_size < 64 or args.forms_size % F.BLOCK:
        p.error("--forms-size must be a multiple of 32, at least 64")
    if args.forms_calls < 1 or args.forms_edits < 0:
        p.error("--forms-calls must be >= 1 and --forms-edits >= 0 (0: reads only)")
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


def format_forms_table(results: dict[str, dict], n: int) -> str:
    """One line per form: webknossos alone, with the backend, the ratio and the verdict."""
    head = f"{'form':<50} {'wk-wkw':>14} {'wk-wkw+wkview':>14} {'x wk-wkw':>9} {'target':>7}  note"
    lines = [head, "-" * len(head)]
    base, backed = results.get(BASE, {}), results.get(BACKEND, {})
    for kind, title in (("read", f"32^3 reads at random offsets of a compressed {n}^3 mag, per call (both columns in one process, in turn)"),
                        ("edit", f"8^3 edits at random unaligned offsets of the same mag, per edit (best)")):
        lines.append(title + ":")
        for name in F.FORM_NAMES:
            a, b = base.get("forms", {}).get(name), backed.get("forms", {}).get(name)
            if (a or b or {}).get("kind") != kind:
                continue
            # reads: both columns from the backend's process, timed in turn (see F.measure)
            ta = (b or {}).get("wk_time_s") if kind == "read" else (a or {}).get("time_s")
            tb = (b or {}).get("time_s")
            ratio = tb / ta if ta and tb else None
            verdict = "" if ratio is None else ("met" if ratio <= FORM_TARGET else "MISSED")
            lines.append(
                f"  {name:<48} {C._fmt_time(ta, kind == 'read') if ta else '-':>14} "
                f"{C._fmt_time(tb, kind == 'read') if tb else '-':>14} "
                f"{(f'{ratio:.3f}' if ratio is not None else '-'):>9} {f'<={FORM_TARGET:g}':>7}  {verdict}"
            )
    for lib, r in ((BASE, base), (BACKEND, backed)):
        if r.get("status") != "ok":
            lines.append(f"{lib}: {r.get('status', 'not run')}: {r.get('note', '')}")
    return "\n".join(lines) + "\n"


def forms_child(spec: dict) -> dict:
    """The child of one library's forms run (or of preparing their mag)."""
    result: dict[str, Any] = {"lib": spec["lib"], "workload": spec["workload"], "status": "ok"}
    try:
        if spec["lib"] == "prepare":
            F.prepare(Path(spec["path"]), spec["n"])
        else:
            result["load_before"] = os.getloadavg()[0]
            result["forms"] = F.measure(
                spec["lib"], Path(spec["path"]), spec["n"], spec["calls"], spec["edits"], spec["repeat"], reads=spec["lib"] == BACKEND
            )
            result["load_after"] = os.getloadavg()[0]
    except BaseException as exc:  # report, never hide: the parent prints it
        import traceback

        result.update(status="error", note=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc())
    return result


def run_forms(args: argparse.Namespace, workdir: Path, script: Path) -> dict[str, dict]:
    """Prepare the forms' mag once (webknossos alone), then one child per library on its own copy."""
    template = workdir / "forms-template"
    base_spec = {"workload": FORMS, "n": args.forms_size, "calls": args.forms_calls, "edits": args.forms_edits, "repeat": args.repeat}
    prep = C._run_child(dict(base_spec, lib="prepare", path=str(template)), workdir, script)
    if prep["status"] != "ok":
        return {BASE: prep, BACKEND: prep}
    results = {}
    for lib in W.BACKEND_LIBS:
        copy = workdir / f"forms-{lib}"
        W.copy_dataset(template, copy)
        t = time.perf_counter()
        results[lib] = C._run_child(dict(base_spec, lib=lib, path=str(copy)), workdir, script)
        print(f"[forms] {lib:<14} {results[lib]['status']}  ({time.perf_counter() - t:.1f} s wall)", file=sys.stderr)
        if results[lib].get("traceback"):
            print(results[lib]["traceback"], file=sys.stderr)
    return results


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == [C.CHILD_FLAG]:
        spec = json.loads(Path(argv[1]).read_text())
        if spec.get("workload") == FORMS:
            with open(spec["result"], "w") as f:
                json.dump(forms_child(spec), f)
            return 0
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
        forms = run_forms(args, workdir, script) if FORMS in args.only.split(",") else {}
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
    what = (
        f"{args.size}^3 uint8 em_like(seed=0), LZ4HC block_len {geo.block_len} file_len {geo.file_len}"
        if workloads else f"forms only ({args.forms_size}^3 uint8 em_like(seed=0), LZ4HC block_len {F.BLOCK}, one file)"
    )
    print(
        f"webknossos on WKW without / with wkview as its backend: {what}; best of {args.repeat}; "
        f"backend level {args.level or 'default (4)'}"
    )
    print("versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    print(
        f"machine: {os.cpu_count()} cores, load average {load_start[0]:.2f} at start, {load_end[0]:.2f} at end; "
        f"total {time.perf_counter() - started:.0f} s"
    )
    print("x wk-wkw: time / webknossos' own time in this run; target: issue 13's")
    print()
    if workloads:
        print(format_table(results, workloads, args.size), end="")
    if forms:
        print()
        print(format_forms_table(forms, args.forms_size), end="")
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
            "forms": forms,
        }
        with open(args.json_out, "w") as f:
            json.dump(out, f, indent=1)
    failed = any(r.get("status") == "error" for r in [*results.values(), *forms.values()])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""What locks and fsync cost: the same workloads with them on and off, side by side.

    python bench/reliability_cost.py                 # 512^3, as in compare.py
    python bench/reliability_cost.py --size 256 --rounds 3

Workloads (the geometry of ``bench/compare.py``, LZ4HC, block_len 32, 2x2x2 files):

* ``small_edit``     one 8^3 write at (17, 45, 100) into the filled cube (a read-modify-write
                     of one file): per edit, ``--edits`` edits per round;
* ``aligned_write``  the whole cube into a fresh mag (8 new files): per write;
* ``small_reads``    32^3 reads at random offsets: per read (reads take no lock);
* ``raw_small_edit`` the 8^3 edit into a raw (uncompressed) copy of the cube, per edit;
* ``raw_file_write`` one whole raw file (n/2 voxels per edge) overwritten.

Settings: ``on`` (the default: locks and fsync), ``no-fsync``, ``no-locks``, ``off``
(both off: the code before this issue did neither, except fsync of the properties file).
The settings are interleaved round by round, each going first in turn, so that the load of
the shared machine and the after-effects of the previous write hit them alike; each cell is the best time, and the median in brackets. The data lives in ``$TMPDIR`` (a real
disk here: fsync waits for it).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _workloads as W  # noqa: E402

import wkview  # noqa: E402

SETTINGS = {"on": (True, True), "no-fsync": (True, False), "no-locks": (False, True), "off": (False, False)}


def _apply(name: str) -> None:
    locks, fsync = SETTINGS[name]
    wkview.set_locking(locks)
    wkview.set_fsync(fsync)


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=512, help="edge of the cube (default 512)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds; each runs every setting once (default 5)")
    parser.add_argument("--edits", type=int, default=20, help="small edits per setting and round (default 20)")
    parser.add_argument("--reads", type=int, default=300, help="small reads per setting and round (default 300)")
    args = parser.parse_args(argv)

    geo = W.Geometry(args.size)
    data = W.load_data(args.size)
    lib = W.make_lib("wkview")
    root = Path(tempfile.mkdtemp(prefix="wkview-reliability-cost-"))
    times: dict[tuple[str, str], list[float]] = {}
    try:
        filled = root / "filled"
        lib.create_filled(filled, geo, data)
        mag = lib.open(filled)
        edit = geo.edit_data(data)
        reader = lib.small_reader(mag)
        offsets = geo.small_offsets
        # the same cube in a raw (uncompressed) mag: libwkw writes in place, under an undo journal
        raw = wkview.Dataset.create(root / "raw", scale=(1, 1, 1)).add_layer("color", "color").add_mag(
            1, block_len=geo.block_len, file_len=geo.file_len
        )
        raw.write(data, offset=(0, 0, 0))
        edge = geo.file_edge
        one_file = np.asfortranarray(data[:edge, :edge, :edge])
        names = list(SETTINGS)
        for r in range(args.rounds):
            for name in names[r % len(names) :] + names[: r % len(names)]:  # each goes first in turn
                _apply(name)
                # small edits (the same edit again and again: each one rewrites one file)
                per_edit = [_timed(lambda: lib.write_unaligned(mag, edit, geo.unaligned_offset)) for _ in range(args.edits)]
                times.setdefault(("small_edit", name), []).extend(per_edit)
                # small reads
                chunk = offsets[(r * args.reads) % len(offsets) :][: args.reads]
                elapsed = _timed(lambda: [reader(offset=o, size=geo.small_size) for o in chunk])
                times.setdefault(("small_reads", name), []).append(elapsed / len(chunk))
                # raw mag: the same small edits, and one whole file overwritten
                per_edit = [_timed(lambda: raw.write(edit, offset=geo.unaligned_offset)) for _ in range(args.edits)]
                times.setdefault(("raw_small_edit", name), []).extend(per_edit)
                times.setdefault(("raw_file_write", name), []).append(_timed(lambda: raw.write(one_file, offset=(0, 0, 0))))
                # aligned write into a fresh mag
                target = lib.create_empty(root / f"aligned-{r}-{name}", geo)
                times.setdefault(("aligned_write", name), []).append(_timed(lambda: lib.write_aligned(target, data)))
                lib.close(target)
                shutil.rmtree(root / f"aligned-{r}-{name}")
        expected = geo.edit_expected(data)
        got = lib.read_box(mag, (0, 0, 0), geo.shape)
        if not np.array_equal(got, expected):
            raise SystemExit("the edited cube does not read back as expected")
    finally:
        wkview.set_locking(None)
        wkview.set_fsync(None)
        shutil.rmtree(root, ignore_errors=True)

    print(f"{args.size}^3 uint8 EM-like, LZ4HC, {args.rounds} rounds, data in {tempfile.gettempdir()}")
    print("best (median over the rounds in brackets); small_edit and small_reads per call")
    header = f"{'workload':<14}" + "".join(f"{name:>22}" for name in SETTINGS) + f"{'on/off best':>13}{'median':>8}"
    print(header)
    print("-" * len(header))
    for workload in ("small_edit", "aligned_write", "small_reads", "raw_small_edit", "raw_file_write"):
        best = {name: min(times[(workload, name)]) for name in SETTINGS}
        median = {name: statistics.median(times[(workload, name)]) for name in SETTINGS}
        unit, scale = ("us", 1e6) if workload in ("small_reads", "raw_small_edit") else ("ms", 1e3)
        row = f"{workload:<14}" + "".join(
            f"{best[n] * scale:>9.2f} {unit} ({median[n] * scale:>7.2f})" for n in SETTINGS
        )
        print(row + f"{best['on'] / best['off']:>13.3f}{median['on'] / median['off']:>8.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

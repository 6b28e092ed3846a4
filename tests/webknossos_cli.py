"""``webknossos convert --data-format wkw`` 4.3.3 on many inputs in one subprocess, for the
differential suites (tests/test_convert_layouts.py, tests/test_volume_interop.py): the suite
pays webknossos' import once per group instead of once per input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Sequence

# runs in the subprocess: a refused input prints one line and the next one runs
_SCRIPT = """
import os, sys, warnings
os.environ.setdefault("WEBKNOSSOS_SKIP_VERSION_CHECK", "True")
warnings.simplefilter("ignore")
from webknossos.cli.main import app
extra, pairs = sys.argv[1].split(), sys.argv[2:]
for source, target in zip(pairs[::2], pairs[1::2]):
    try:
        # files of 64^3 voxels: libwkw writes the default 1024^3-voxel file whole (0.5-0.9 s for
        # each small input); the suites compare what webknossos reads, not the files' layout
        app(["convert", source, target, "--voxel-size", "1,1,1", "--data-format", "wkw", "--no-downsample",
             "--distribution-strategy", "sequential", "--shard-shape", "64", *extra], standalone_mode=False)
    except Exception as exc:
        print("REFUSED", target, type(exc).__name__, exc, flush=True)
"""


def webknossos_convert(pairs: Sequence[tuple[str, Path]], *extra: str) -> set[Path]:
    """Convert each ``(source, target)`` with webknossos' command line (voxel size 1, mag 1
    only, files of 64^3 voxels, sequentially, plus the ``extra`` arguments, which hold no
    spaces); returns the
    targets of the inputs webknossos refused."""
    args = [arg for source, target in pairs for arg in (str(source), str(target))]
    proc = subprocess.run(
        [sys.executable, "-c", _SCRIPT, " ".join(extra), *args], capture_output=True, text=True, timeout=600
    )
    if proc.returncode != 0:
        raise RuntimeError(f"webknossos' subprocess failed:\n{proc.stderr[-3000:]}")
    return {Path(line.split()[1]) for line in proc.stdout.splitlines() if line.startswith("REFUSED")}

"""Chunk jobs (importable by worker processes) and file checks for the tests of
``wkview.webknossos_backend`` (tests/test_webknossos_backend.py, tests/engines).

The jobs take webknossos views (not wkview's) and report what the worker process saw.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import wkw

from wkview import codec


def add_one(args: tuple[Any, int]) -> None:
    """``for_each_chunk`` job: read-modify-write +1 on every voxel of the chunk."""
    view, _ = args
    data = view.read()
    view.write(data + np.ones_like(data))


def backend_state(view: Any) -> tuple[int, bool, bool]:
    """``map_chunk`` job: (pid, is the backend enabled here, does this view use a wkview store)."""
    from wkview import webknossos_backend

    return os.getpid(), webknossos_backend.is_enabled(), webknossos_backend.store_of(view) is not None


def open_and_report(path: str) -> tuple[bool, bool]:
    """A job that opens a dataset by path itself (no view travels with it)."""
    import warnings

    from wkview import webknossos_backend

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import webknossos as wk

        mag = wk.Dataset.open(path).get_layer("data").get_mag(1)
    return webknossos_backend.is_enabled(), webknossos_backend.store_of(mag) is not None


def data_files(mag_dir: Path) -> list[Path]:
    return sorted(p for p in mag_dir.rglob("*.wkw") if p.name != "header.wkw")


def assert_level_encoded(mag_dir: Path, level: int, tmp_path: Path) -> None:
    """Every data file of ``mag_dir`` is exactly wkview's LZ4HC ``level`` encoding of its voxels."""
    handle = wkw.Dataset.open(str(mag_dir))
    header = handle.header
    edge = header.block_len * header.file_len
    files = data_files(mag_dir)
    assert files
    try:
        for f in files:
            x, y, z = (int(part[1:]) for part in (f.stem, f.parent.name, f.parent.parent.name))
            voxels = handle.read((x * edge, y * edge, z * edge), (edge, edge, edge))
            again = tmp_path / "encoded.wkw"
            codec.write_full_file(again, header, voxels, level)
            assert f.read_bytes() == again.read_bytes(), f"{f} is not a level-{level} encoding"
    finally:
        handle.close()

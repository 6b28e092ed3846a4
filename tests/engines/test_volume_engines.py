"""Every chunked-volume reader (wkview.volume_sources) converted on Slurm and on Dask.

The convert jobs carry only the source record (paths, axes, shape); each job opens the
Zarr/N5/precomputed store, HDF5 file or MRC file itself on its node and reads its own box.
Run by ``WKVIEW_ENGINES=1 ./run.sh test``; elsewhere these tests skip (see conftest.py). The
same job path runs on the local multiprocessing executor in
tests/test_volume_sources.py::test_jobs_reopen_the_source_in_worker_processes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

from tests import volume_inputs as vi
from wkview.convert import convert
from wkview.sample import em_like
from wkview.sources import open_source

# name -> writer of a (c, x, y, z) volume; one channel each, so the result is one "color" layer
# (how channels become layers is convert's business, tested without engines)
WRITERS: dict[str, Callable[[Path, np.ndarray], str]] = {
    "zarr3": lambda p, d: vi.write_zarr(p / "v.zarr", d, 3),
    "zarr2": lambda p, d: vi.write_zarr(p / "v.zarr", d, 2),
    "ome-zarr": lambda p, d: vi.write_ome_zarr(p / "v.ome.zarr", d, 3),
    "n5": lambda p, d: vi.write_n5(p / "v.n5", d),
    "precomputed": lambda p, d: vi.write_precomputed(p / "v", d),
    "hdf5": lambda p, d: vi.write_hdf5(p / "v.h5", d),
    "mrc": lambda p, d: vi.write_mrc(p / "v.mrc", d),
}


@pytest.mark.parametrize("kind", list(WRITERS))
def test_convert_volume_on_engine(engine: Any, tmp_path: Path, kind: str) -> None:
    data = em_like((40, 36, 34), seed=3)[None]
    source = open_source(WRITERS[kind](tmp_path, data))
    # files of 16^3 voxels, one job each: 3 x 3 x 3 jobs, every one opening the source itself
    ds = convert(source, tmp_path / "ds", (1, 1, 1), block_len=8, file_len=2, downsample=False,
                 executor=engine, batch_bytes=1)
    np.testing.assert_array_equal(ds.get_layer("color").get_mag(1).read(), data)

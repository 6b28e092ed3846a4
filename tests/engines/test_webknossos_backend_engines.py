"""webknossos' chunk jobs on Dask and Slurm use the wkview backend when the caller enabled it.

The views webknossos sends to the workers carry the backend (``wkview.webknossos_backend``):
every job reports it enabled and its view on a wkview store, and the files the jobs wrote
are wkview's level-4 encodings (webknossos alone writes libwkw's level 9).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import cluster_tools
import numpy as np
import pytest

from tests._jobs import wk_backend_jobs as jobs
from wkview.sample import em_like

pytestmark = [pytest.mark.interop, pytest.mark.filterwarnings("ignore::UserWarning")]

os.environ.setdefault("WEBKNOSSOS_SKIP_VERSION_CHECK", "True")
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    wk = pytest.importorskip("webknossos")

from wkview import webknossos_backend  # noqa: E402


def _dataset(path: Path) -> tuple[Any, Any]:
    ds = wk.Dataset(path, voxel_size=(1, 1, 1))
    layer = ds.add_layer("data", "color", dtype="uint8", data_format="wkw")
    mag = layer.add_mag(1, chunk_shape=8, shard_shape=16, compress=True)
    mag.write(em_like((32, 32, 32), seed=21), absolute_offset=(0, 0, 0), allow_resize=True)
    return layer, mag


def test_webknossos_chunk_jobs_run_through_the_backend(engine: Any, tmp_path: Path) -> None:
    layer, mag = _dataset(tmp_path / "ds")
    with webknossos_backend.enabled():
        states = mag.map_chunk(jobs.backend_state, chunk_shape=(16, 16, 16), executor=engine)
        mag.for_each_chunk(jobs.add_one, chunk_shape=(16, 16, 16), executor=engine)
        layer.downsample(coarsest_mag=wk.Mag(2), chunk_shape=8, shard_shape=16, executor=engine)
    assert len(states) == 8
    assert {state[1:] for state in states} == {(True, True)}
    assert all(state[0] != os.getpid() for state in states)
    # the same program by webknossos alone, in this process
    plain_layer, plain_mag = _dataset(tmp_path / "plain")
    with cluster_tools.get_executor("sequential") as sequential:
        plain_mag.for_each_chunk(jobs.add_one, chunk_shape=(16, 16, 16), executor=sequential)
        plain_layer.downsample(coarsest_mag=wk.Mag(2), chunk_shape=8, shard_shape=16, executor=sequential)
    assert np.array_equal(mag.read()[0], em_like((32, 32, 32), seed=21) + 1)
    for m in (1, 2):
        assert np.array_equal(layer.get_mag(m).read(), plain_layer.get_mag(m).read())
    for mag_dir in ("1", "2"):
        jobs.assert_level_encoded(tmp_path / "ds" / "data" / mag_dir, 4, tmp_path)

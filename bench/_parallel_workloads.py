"""Workloads of the chunked-processing benchmarks (shared by bench_parallel.py and compare.py).

- dispatch: ``for_each_chunk`` with a no-op job over the 32^3 chunks of an n^3 view,
  sequential executor (n = 1024: 32,768 chunks). Reported per chunk.
- downsample: 2x mean-pool of an n^3 uint8 LZ4HC mag (block_len 32, file_len 8) into mag 2
  (files of 128^3) via ``for_zipped_chunks`` on 2 processes, against the same read, pool and
  write done with NumPy and one libwkw handle in one process.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import wkw

import wkview
from wkview import BoundingBox, Dataset
from wkview.downsampling import pool

from ._workloads import load_data


def noop(args):
    """The no-op chunk job."""


def sample(n: int) -> np.ndarray:
    """EM-like n^3 uint8: the same cached volume the IO comparison uses."""
    return load_data(n)


def dispatch_setup(n: int) -> wkview.View:
    root = Path(tempfile.mkdtemp(prefix="wkview-dispatch-"))
    layer = Dataset.create(root / "ds", scale=(1, 1, 1)).add_layer("color", "color")
    mag = layer.add_mag(1, block_len=32, file_len=32, compress=True)
    layer.bounding_box = BoundingBox((0, 0, 0), (n, n, n))
    return mag.get_view()


def dispatch(view: wkview.View, executor=None) -> int:
    if executor is None:
        executor = wkview.get_executor("sequential")
    view.for_each_chunk(noop, (32, 32, 32), executor=executor)
    return view.bounding_box.chunk_count((32, 32, 32))


class DownsampleCase:
    """A filled mag 1 plus fresh targets for each repetition."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.root = Path(tempfile.mkdtemp(prefix="wkview-downsample-"))
        self.data = sample(n)
        ds = Dataset.create(self.root / "ds", scale=(1, 1, 1))
        self.layer = ds.add_layer("color", "color")
        self.mag1 = self.layer.add_mag(1, block_len=32, file_len=8, compress=True)
        self.mag1.write(self.data, offset=(0, 0, 0))
        self.expected = pool(self.data[np.newaxis], (2, 2, 2), "mean")[0]

    def fresh_target(self):
        if wkview.Mag(2) in self.layer.mags:
            self.layer.delete_mag(2)
        return self.layer.add_mag(2, block_len=32, file_len=4, compress=True)

    def wkview_run(self, executor) -> None:
        from wkview.pyramid import DownsampleJob

        target = self.fresh_target()
        self.mag1.get_view().for_zipped_chunks(
            DownsampleJob((2, 2, 2), "mean", 128), target.get_view(), (256, 256, 256), (128, 128, 128), executor=executor
        )

    def numpy_run(self) -> None:
        """The same work in one process: one read, NumPy mean-pool, one write."""
        target = self.root / "numpy_mag2"
        shutil.rmtree(target, ignore_errors=True)
        out = wkw.Dataset.create(str(target), wkw.Header(np.uint8, block_len=32, file_len=4, block_type=3))
        src = wkw.Dataset.open(str(self.mag1.path))
        n = self.n
        data = src.read((0, 0, 0), (n, n, n))
        total = data.reshape(1, n // 2, 2, n // 2, 2, n // 2, 2).sum(axis=(2, 4, 6), dtype=np.uint64)
        pooled = np.rint(total / 8).astype(np.uint8)
        out.write((0, 0, 0), pooled)
        src.close()
        out.close()

    def check(self) -> None:
        h = self.n // 2
        got = self.layer.get_mag(2).read((0, 0, 0), (h, h, h))[0]
        if not np.array_equal(got, self.expected):
            raise RuntimeError("downsampled data differs from the NumPy reference")
        ref = wkw.Dataset.open(str(self.root / "numpy_mag2"))
        try:
            if not np.array_equal(ref.read((0, 0, 0), (h, h, h))[0], self.expected):
                raise RuntimeError("NumPy reference run is wrong")
        finally:
            ref.close()

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def best_of(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)

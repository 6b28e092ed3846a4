"""wkview's codec on its own: LZ4HC levels, and how encoding and decoding scale with threads.

* ``codec levels``: one thread encodes the same blocks at LZ4HC levels 1-4 and 9 (libwkw's)
  and with plain LZ4; ``extra_info`` records MB/s and the compression ratio, which is what
  the default level (``wkview._storage.DEFAULT_COMPRESSION_LEVEL``) was chosen from.
* ``codec threads``: one whole file written / read through ``wkview.codec`` on 1 and on 2
  threads: one big file uses every core.

Every benchmark checks its result (a round trip through liblz4 or libwkw), so the normal
test run (one round each, 64^3) keeps them honest; ``WKVIEW_BENCH_FULL=1`` uses a 256^3
file of the 512^3 sample.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import wkw

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
import _workloads as W  # noqa: E402

from wkview import _codec, codec  # noqa: E402

FULL = os.environ.get("WKVIEW_BENCH_FULL") == "1"
EDGE = 256 if FULL else 64
BLOCK = 32
LZ4, LZ4HC = 2, 3


@pytest.fixture(scope="module")
def cube() -> np.ndarray:
    """``(1, EDGE, EDGE, EDGE)`` of the EM-like sample, Fortran order."""
    data = W.load_data(2 * EDGE if FULL else EDGE)
    return np.asfortranarray(data[:EDGE, :EDGE, :EDGE])[np.newaxis]


def _encode_all(cube: np.ndarray, block_type: int, level: int) -> tuple[bytearray, np.ndarray]:
    pieces = _codec.block_pieces(0, 0, 0, EDGE, EDGE, EDGE, BLOCK)
    out = bytearray(len(pieces) * _codec.compress_bound(BLOCK**3))
    lengths = np.zeros(len(pieces), dtype=np.int64)
    none = np.zeros(len(pieces), dtype=np.int64)
    bad, _ = _codec.encode_pieces(cube, pieces, BLOCK, b"", none, none, block_type, level, out, lengths)
    assert bad == -1
    return out, lengths


@pytest.mark.benchmark(group="codec levels (one thread)")
@pytest.mark.parametrize("kind", ["lz4", "hc1", "hc2", "hc3", "hc4", "hc9"])
def test_encode_level(benchmark, cube, kind):  # type: ignore[no-untyped-def]
    block_type, level = (LZ4, 1) if kind == "lz4" else (LZ4HC, int(kind[2:]))
    out, lengths = benchmark(_encode_all, cube, block_type, level)
    stored = int(lengths.sum())
    benchmark.extra_info["ratio"] = round(cube.nbytes / stored, 3)
    if not benchmark.disabled and benchmark.stats:
        benchmark.extra_info["MB/s"] = round(cube.nbytes / benchmark.stats.stats.min / 1e6, 1)
    # the blocks (back to back in out) decode to the cube again
    pieces = _codec.block_pieces(0, 0, 0, EDGE, EDGE, EDGE, BLOCK)
    starts = np.zeros(len(lengths), dtype=np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    back = np.zeros_like(cube, order="F")
    assert _codec.decode_pieces(out, starts, lengths, pieces, back, BLOCK) == -1
    assert np.array_equal(back, cube)


@pytest.fixture(scope="module")
def mag(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, wkw.Header]:
    root = tmp_path_factory.mktemp("bench_codec")
    header = wkw.Header(np.uint8, block_len=BLOCK, file_len=EDGE // BLOCK, block_type=LZ4HC)
    wkw.Dataset.create(str(root), header).close()
    return root, header


@pytest.mark.benchmark(group="codec threads: write one whole file (LZ4HC level 4)")
@pytest.mark.parametrize("threads", [1, 2])
def test_write_file_threads(benchmark, cube, mag, threads):  # type: ignore[no-untyped-def]
    root, header = mag
    path = str(root / "z0" / "y0" / f"x{threads}.wkw")
    benchmark(codec.write_full_file, path, header, cube, 4, threads)
    with wkw.Dataset.open(str(root)) as ds:
        assert np.array_equal(ds.read((threads * EDGE, 0, 0), (EDGE, EDGE, EDGE)), cube)


@pytest.mark.benchmark(group="codec threads: read one whole file")
@pytest.mark.parametrize("threads", [1, 2])
def test_read_file_threads(benchmark, cube, mag, threads):  # type: ignore[no-untyped-def]
    root, header = mag
    path = str(root / "z0" / "y0" / "x0.wkw")
    with wkw.Dataset.open(str(root)) as ds:
        ds.write((0, 0, 0), cube)  # libwkw's own file
    out = np.zeros_like(cube, order="F")
    with codec.CompressedFile.open(path, header) as f:
        benchmark(codec.read_boxes, header, [(f, (0, 0, 0), out)], threads)
    assert np.array_equal(out, cube)

"""wkview's codec inside the View layer: levels, both codecs, libwkw as the reference reader."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import wkw

from wkview import Dataset
from wkview.sample import em_like


def _files_size(path):
    return sum(f.stat().st_size for f in path.rglob("x*.wkw"))


def test_levels_trade_size_for_speed_and_level_9_matches_libwkw_bytes(tmp_path):
    data = em_like((64, 64, 64), seed=3)
    ds = Dataset.create(tmp_path / "ds", scale=(1, 1, 1))
    sizes = {}
    for level in (1, 4, 9):
        layer = ds.add_layer(f"level{level}", "color")
        mag = layer.add_mag(1, block_len=16, file_len=4, compress=True, compression_level=level)
        mag.write(data, offset=(0, 0, 0))
        sizes[level] = _files_size(mag.path)
        # libwkw (the reference) reads what wkview wrote
        assert np.array_equal(wkw.Dataset.open(str(mag.path)).read((0, 0, 0), (64, 64, 64))[0], data)
    assert sizes[1] >= sizes[4] >= sizes[9]
    libwkw_dir = tmp_path / "libwkw"
    handle = wkw.Dataset.create(str(libwkw_dir), wkw.Header(np.uint8, block_len=16, file_len=4, block_type=3))
    handle.write((0, 0, 0), np.asfortranarray(data))
    assert (libwkw_dir / "z0/y0/x0.wkw").read_bytes() == (ds.get_layer("level9").get_mag(1).path / "z0/y0/x0.wkw").read_bytes()


def test_per_write_level_and_validation(tmp_path):
    layer = Dataset.create(tmp_path / "ds", scale=(1, 1, 1)).add_layer("color", "color")
    mag = layer.add_mag(1, block_len=16, file_len=2, compress=True)
    assert mag.compression_level == 4
    mag.write(em_like((32, 32, 32)), compression_level=9)
    with pytest.raises(ValueError, match="compression_level"):
        mag.write(np.zeros((2, 2, 2), np.uint8), compression_level=13)
    with pytest.raises(ValueError, match="compression_level"):
        mag.compression_level = 0
    assert np.array_equal(mag.read((0, 0, 0), (32, 32, 32))[0], em_like((32, 32, 32)))


def test_codec_reads_see_replaced_files(tmp_path):
    """The cached jump tables are keyed by (inode, size, mtime): a rewritten file is parsed again."""
    layer = Dataset.create(tmp_path / "ds", scale=(1, 1, 1)).add_layer("color", "color")
    mag = layer.add_mag(1, block_len=8, file_len=2, compress=True)
    data = em_like((16, 16, 16), seed=1)
    mag.write(data, offset=(0, 0, 0))
    assert np.array_equal(mag.read((0, 0, 0), (16, 16, 16))[0], data)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mag.write(np.full((3, 3, 3), 9, np.uint8), offset=(2, 2, 2))
    expected = data.copy()
    expected[2:5, 2:5, 2:5] = 9
    assert np.array_equal(mag.read((0, 0, 0), (16, 16, 16))[0], expected)
    # another writer (libwkw) replaces the file: still seen
    wkw.Dataset.open(str(mag.path)).write((0, 0, 0), np.zeros((1, 16, 16, 16), np.uint8))
    assert mag.read((0, 0, 0), (16, 16, 16)).sum() == 0
    assert len(mag._store._open_files) == 1
    mag._store.close()
    assert len(mag._store._open_files) == 0


def test_reads_on_many_threads_while_open_files_leave_the_cache(tmp_path, monkeypatch):
    """Files evicted from the open-file cache are not closed under a read on another thread."""
    from concurrent.futures import ThreadPoolExecutor

    from wkview import _storage

    monkeypatch.setattr(_storage, "OPEN_FILES_CACHED", 1)  # every read of another file evicts
    layer = Dataset.create(tmp_path / "ds", scale=(1, 1, 1)).add_layer("color", "color")
    mag = layer.add_mag(1, block_len=8, file_len=2, compress=True)  # 16^3-voxel files
    data = em_like((64, 32, 32), seed=3)
    mag.write(data, offset=(0, 0, 0))  # 16 files
    rng = np.random.default_rng(0)
    boxes = [tuple(int(v) for v in rng.integers(0, (60, 28, 28))) for _ in range(400)]

    def read(offset):
        got = mag.read(offset, (4, 4, 4))[0]
        return np.array_equal(got, data[offset[0] : offset[0] + 4, offset[1] : offset[1] + 4, offset[2] : offset[2] + 4])

    with ThreadPoolExecutor(4) as pool:
        assert all(pool.map(read, boxes))
    assert len(mag._store._open_files) == 1


def test_rewritten_files_do_not_stay_open(tmp_path):
    """A write replaces files by renaming: no cached descriptor may keep the old ones
    (and their disk space) alive."""
    layer = Dataset.create(tmp_path / "ds", scale=(1, 1, 1)).add_layer("color", "color")
    mag = layer.add_mag(1, block_len=8, file_len=2, compress=True)
    data = em_like((32, 32, 16), seed=4)
    mag.write(data, offset=(0, 0, 0))
    assert np.array_equal(mag.read((0, 0, 0), (32, 32, 16))[0], data)  # caches the four files

    def deleted_but_open():
        fds = Path("/proc/self/fd")
        if not fds.exists():
            pytest.skip("needs Linux /proc")
        links = []
        for fd in fds.iterdir():
            try:
                links.append(os.readlink(fd))
            except OSError:
                continue
        return [link for link in links if str(tmp_path) in link and link.endswith("(deleted)")]

    mag.write(data[::-1].copy(), offset=(0, 0, 0))
    assert deleted_but_open() == []
    assert np.array_equal(mag.read((0, 0, 0), (32, 32, 16))[0], data[::-1])

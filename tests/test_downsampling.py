"""Downsampling against a plain NumPy reference, on every executor kind offered."""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest

import wkview
from wkview import Dataset, Mag
from wkview.downsampling import pool

from .conftest import examples, random_data


def reference_pool(data: np.ndarray, factors, mode: str) -> np.ndarray:
    """One output voxel at a time, the obvious way."""
    c, x, y, z = data.shape
    fx, fy, fz = factors
    out = np.zeros((c, x // fx, y // fy, z // fz), dtype=data.dtype)
    for ch in range(c):
        for i in range(x // fx):
            for j in range(y // fy):
                for k in range(z // fz):
                    block = data[ch, i * fx:(i + 1) * fx, j * fy:(j + 1) * fy, k * fz:(k + 1) * fz].ravel()
                    if mode == "mode":
                        values, counts = np.unique(block, return_counts=True)
                        v = values[np.argmax(counts)]  # np.unique sorts: ties go to the smallest
                    elif mode == "mean":
                        v = np.mean(block.astype(np.float64))
                    elif mode == "median":
                        v = np.median(block)
                    elif mode == "max":
                        v = block.max()
                    elif mode == "min":
                        v = block.min()
                    else:
                        v = block[0]
                    if data.dtype.kind != "f" and mode in ("mean", "median"):
                        v = np.rint(v)
                    out[ch, i, j, k] = v
    return out


@pytest.mark.parametrize("mode", ["mean", "median", "mode", "max", "min", "nearest"])
@pytest.mark.parametrize("factors", [(2, 2, 2), (2, 2, 1), (4, 2, 1)])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint32, np.float32])
def test_pool_matches_reference(mode, factors, dtype):
    rng = np.random.default_rng(0)
    data = random_data(rng, (2, 8, 8, 4), dtype)
    if mode == "mode":
        data = (data % 3).astype(dtype)  # many ties and repeats
    assert np.array_equal(pool(data, factors, mode), reference_pool(data, factors, mode))


def _layer(tmp_path, category="color", dtype="uint8", compress=True):
    ds = Dataset.create(tmp_path / "ds", scale=(11.24, 11.24, 25.0))
    kwargs = {"largest_segment_id": 10} if category == "segmentation" else {}
    layer = ds.add_layer("layer", category, dtype_per_channel=dtype, **kwargs)
    layer.add_mag(1, block_len=8, file_len=2, compress=compress)
    return layer


EXECUTORS = {
    "inline": lambda: None,
    "sequential": lambda: wkview.get_executor("sequential"),
    "multiprocessing": None,  # the session's pool (tests/conftest.py), not made or shut down here
    "process_pool": lambda: ProcessPoolExecutor(max_workers=2),
}


@pytest.mark.parametrize("executor_name", list(EXECUTORS))
def test_downsample_mag_color_mean_on_every_executor(tmp_path, executor_name, request):
    layer = _layer(tmp_path)
    data = random_data(np.random.default_rng(1), (64, 48, 40), np.uint8)
    layer.get_mag(1).write(data, offset=(0, 0, 0))
    make = EXECUTORS[executor_name]
    executor = request.getfixturevalue("multiprocessing_executor") if make is None else make()
    try:
        layer.downsample_mag(1, 2, interpolation_mode="mean", executor=executor)
    finally:
        if make is not None and executor is not None:
            executor.shutdown()
    expected = reference_pool(data[np.newaxis], (2, 2, 2), "mean")
    assert np.array_equal(layer.get_mag(2).read((0, 0, 0), (32, 24, 20)), expected)
    assert layer.get_mag(2)._store.is_compressed


def test_downsample_segmentation_mode_anisotropic(tmp_path):
    layer = _layer(tmp_path, category="segmentation", dtype="uint32", compress=False)
    data = (random_data(np.random.default_rng(2), (32, 32, 16), np.uint32) % 4).astype(np.uint32)
    layer.get_mag(1).write(data, offset=(0, 0, 0))
    layer.downsample_mag(1, "2-2-1", compress=False)  # default mode for segmentation: mode
    expected = reference_pool(data[np.newaxis], (2, 2, 1), "mode")
    assert np.array_equal(layer.get_mag("2-2-1").read((0, 0, 0), (16, 16, 16)), expected)


def test_downsample_unaligned_bounding_box(tmp_path):
    layer = _layer(tmp_path)
    data = random_data(np.random.default_rng(3), (30, 22, 18), np.uint8)
    layer.get_mag(1).write(data, offset=(5, 3, 7))
    layer.downsample_mag(1, 2, interpolation_mode="max")
    padded = np.zeros((1, 36, 26, 26), np.uint8)
    padded[0, 5:35, 3:25, 7:25] = data
    expected = reference_pool(padded[:, 4:36, 2:26, 6:26], (2, 2, 2), "max")
    assert np.array_equal(layer.get_mag(2).read((2, 1, 3), (16, 12, 10)), expected)


def test_downsample_pyramid(tmp_path):
    layer = _layer(tmp_path)
    data = random_data(np.random.default_rng(4), (64, 64, 32), np.uint8)
    layer.get_mag(1).write(data, offset=(0, 0, 0))
    views = layer.downsample(max_mag=Mag("8-8-4"), interpolation_mode="nearest")
    assert [v.mag for v in views] == [Mag("2-2-1"), Mag("4-4-2"), Mag("8-8-4")]
    assert np.array_equal(layer.get_mag("8-8-4").read((0, 0, 0), (8, 8, 8))[0], data[::8, ::8, ::4])
    iso = _layer(tmp_path / "iso")
    iso.get_mag(1).write(data, offset=(0, 0, 0))
    assert [v.mag for v in iso.downsample(max_mag=4, sampling_mode="isotropic")] == [Mag(2), Mag(4)]


def test_downsample_errors(tmp_path):
    layer = _layer(tmp_path)
    layer.get_mag(1).write(np.ones((16, 16, 16), np.uint8))
    with pytest.raises(ValueError, match="bicubic"):
        layer.downsample_mag(1, 2, interpolation_mode="bicubic")
    with pytest.raises(wkview.DatasetError):
        layer.downsample_mag(1, 1)
    with pytest.raises(ValueError, match="sampling_mode"):
        layer.downsample(sampling_mode="sideways")


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from wkview.downsampling import INTERPOLATION_MODES, _blocks  # noqa: E402


@settings(max_examples=examples(150), deadline=None)
@given(
    mode=st.sampled_from(["mean", "median", "max", "min", "nearest"]),
    factors=st.tuples(*[st.sampled_from([1, 2, 4])] * 3),
    counts=st.tuples(*[st.integers(1, 4)] * 3),
    channels=st.integers(1, 2),
    dtype=st.sampled_from([np.uint8, np.uint16, np.int8, np.int16, np.uint32, np.int32, np.float32]),
    seed=st.integers(0, 2**16),
)
def test_fast_reductions_equal_the_block_path(mode, factors, counts, channels, dtype, seed):
    """The reshape-based fast paths give exactly what the general block path gives."""
    shape = (channels, *(f * c for f, c in zip(factors, counts)))
    data = random_data(np.random.default_rng(seed), shape, dtype)
    if factors == (1, 1, 1):
        return
    simple = INTERPOLATION_MODES[mode](_blocks(data, factors), data.dtype)
    assert np.array_equal(pool(data, factors, mode), simple)


@settings(max_examples=examples(300), deadline=None)
@given(
    factors=st.sampled_from([(2, 1, 1), (1, 2, 1), (2, 2, 1), (1, 2, 2), (2, 2, 2), (2, 1, 2)]),
    dtype=st.sampled_from([np.uint8, np.int8, np.uint16, np.int16, np.uint32, np.int32]),
    values=st.integers(1, 6),
    seed=st.integers(0, 2**16),
)
def test_median_networks_equal_np_median(factors, dtype, values, seed):
    """The min/max networks of the 2-, 4- and 8-voxel medians equal np.median (rounded half
    to even), also with many ties (few distinct values) and at the ends of the type's range."""
    rng = np.random.default_rng(seed)
    data = random_data(rng, (1, 4 * factors[0], 4 * factors[1], 4 * factors[2]), dtype)
    if values < 6:  # few distinct values: ties everywhere, including the dtype's extremes
        info = np.iinfo(dtype)
        choices = np.array([info.min, info.max, 0, 1, info.max - 1][:values], dtype=dtype)
        data = choices[rng.integers(0, len(choices), data.shape)]
    assert np.array_equal(pool(data, factors, "median"), INTERPOLATION_MODES["median"](_blocks(data, factors), data.dtype))

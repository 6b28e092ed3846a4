"""View: every documented behaviour, checked against NumPy as the oracle."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
import wkw

import wkview
from wkview import BoundingBox
from wkview.view import View

from .conftest import ALL_DTYPES, BLOCK_TYPES, LZ4HC, RAW, random_data


def _orders(data: np.ndarray) -> dict[str, np.ndarray]:
    """The same voxels as C order, Fortran order and a non-contiguous strided view."""
    padded = np.zeros(data.shape[:-1] + (data.shape[-1] * 2,), dtype=data.dtype)
    padded[..., ::2] = data
    return {"C": np.ascontiguousarray(data), "F": np.asfortranarray(data), "strided": padded[..., ::2]}


# -- round trips --------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("block_type", list(BLOCK_TYPES.values()), ids=list(BLOCK_TYPES))
def test_round_trip_every_dtype_and_block_type(view_factory, dtype, block_type, quiet_unaligned):
    rng = np.random.default_rng(1)
    view = view_factory(size=(40, 36, 34), dtype=dtype, block_type=block_type)
    oracle = np.zeros((1, 40, 36, 34), dtype=dtype)
    # offset 0, unaligned inside a file, across file borders (files are 16 voxels per edge)
    for offset, shape in [((0, 0, 0), (16, 16, 16)), ((3, 5, 7), (5, 4, 3)), ((10, 14, 9), (20, 19, 25))]:
        data = random_data(rng, shape, dtype)
        for name, variant in _orders(data).items():
            view.write(variant, offset)
            sel = tuple(slice(o, o + s) for o, s in zip(offset, shape))
            oracle[(0, *sel)] = data
            assert np.array_equal(view.read(), oracle), name
    out = view.read((3, 5, 7), (5, 4, 3))
    assert out.shape == (1, 5, 4, 3)
    assert out.dtype == np.dtype(dtype)


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.float32, np.uint64], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("block_type", [RAW, LZ4HC], ids=["raw", "lz4hc"])
def test_round_trip_three_channels(view_factory, dtype, block_type, quiet_unaligned):
    rng = np.random.default_rng(2)
    view = view_factory(size=(34, 34, 34), dtype=dtype, channels=3, block_type=block_type)
    oracle = np.zeros((3, 34, 34, 34), dtype=dtype)
    for offset, shape in [((0, 0, 0), (16, 16, 16)), ((1, 2, 3), (30, 17, 9)), ((15, 15, 15), (2, 2, 2))]:
        data = random_data(rng, (3, *shape), dtype)
        for name, variant in _orders(data).items():
            view.write(variant, offset)
            oracle[(slice(None), *(slice(o, o + s) for o, s in zip(offset, shape)))] = data
            assert np.array_equal(view.read(), oracle), name


def test_write_4d_single_channel_and_3d(view_factory):
    view = view_factory(size=(16, 16, 16))
    data = np.arange(16**3, dtype=np.uint8).reshape(16, 16, 16)
    view.write(data[np.newaxis])
    assert np.array_equal(view.read()[0], data)
    view.write(data[::-1].copy())
    assert np.array_equal(view.read()[0], data[::-1])


def test_relative_offsets_with_global_offset(view_factory):
    view = view_factory(size=(20, 20, 20), offset=(5, 6, 7))
    data = np.full((3, 4, 5), 9, dtype=np.uint8)
    view.write(data, offset=(1, 2, 3))
    # the absolute position is global_offset + offset: check through a view at the origin
    whole = View(view.path, view.header, size=(40, 40, 40))
    assert np.all(whole.read((6, 8, 10), (3, 4, 5)) == 9)
    assert whole.read((5, 6, 7), (1, 1, 1))[0, 0, 0, 0] == 0


def test_read_pads_with_zeros_outside_stored_data(view_factory):
    view = view_factory(size=(40, 40, 40))
    view.write(np.ones((4, 4, 4), np.uint8), (2, 2, 2))
    data = view.read()
    assert data.sum() == 64
    assert data.shape == (1, 40, 40, 40)


# -- compressed unaligned writes ------------------------------------------------------------


def test_unaligned_compressed_write_merges_with_disk_and_warns(view_factory):
    rng = np.random.default_rng(3)
    view = view_factory(size=(32, 32, 32), block_type=LZ4HC)
    base = random_data(rng, (32, 32, 32), np.uint8)
    view.write(base)  # file-aligned: no warning (warnings are errors in this suite)
    patch = random_data(rng, (5, 6, 7), np.uint8)
    with pytest.warns(RuntimeWarning, match="not aligned"):
        view.write(patch, (3, 9, 20))
    expected = base.copy()
    expected[3:8, 9:15, 20:27] = patch
    assert np.array_equal(view.read()[0], expected)


def test_view_without_mag_bbox_accepts_unaligned_compressed_write(view_factory):
    """Defect 9: mag_view_bbox_at_creation=None tripped an internal assert."""
    view = view_factory(size=(20, 20, 20), block_type=LZ4HC)
    assert view._mag_view_bbox_at_creation is None
    with pytest.warns(RuntimeWarning):
        view.write(np.full((3, 3, 3), 7, np.uint8), (1, 1, 1))
    assert view.read((1, 1, 1), (3, 3, 3)).min() == 7


# -- read defaults and bounds ---------------------------------------------------------------


def test_read_default_size_is_rest_of_view(view_factory):
    """Defect 6: read(offset) without size ran past the bounds."""
    view = view_factory(size=(30, 20, 10))
    view.write(np.arange(30 * 20 * 10, dtype=np.uint8).reshape(30, 20, 10) % 250 + 1)
    part = view.read(offset=(10, 0, 0))
    assert part.shape == (1, 20, 20, 10)
    assert np.array_equal(part, view.read()[:, 10:])
    with pytest.raises(wkview.BoundsError):
        view.read(offset=(30, 0, 0))


def test_read_out_of_bounds_raises(view_factory):
    view = view_factory(size=(10, 10, 10))
    with pytest.raises(wkview.BoundsError) as info:
        view.read((5, 5, 5), (6, 1, 1))
    assert isinstance(info.value, AssertionError) and isinstance(info.value, ValueError)
    assert "(6, 1, 1)" in str(info.value)


def test_read_bbox(view_factory):
    view = view_factory(size=(20, 20, 20))
    data = np.arange(8000, dtype=np.uint16).reshape(20, 20, 20).astype(np.uint8)
    view.write(data)
    box = BoundingBox((2, 3, 4), (5, 6, 7))
    assert np.array_equal(view.read_bbox(box)[0], data[box.as_slices()])
    assert np.array_equal(view.read_bbox(), view.read())


# -- sub-views -----------------------------------------------------------------------------------


def test_get_view_bounds_and_read_only(view_factory):
    view = view_factory(size=(100, 200, 300), offset=(10, 20, 30))
    sub = view.get_view(offset=(50, 60, 70), size=(10, 120, 230))
    assert sub.global_offset == (60, 80, 100)
    assert sub.size == (10, 120, 230)
    with pytest.raises(wkview.BoundsError):
        view.get_view(offset=(50, 60, 70), size=(999, 120, 230))
    big = view.get_view(offset=(50, 60, 70), size=(999, 120, 230), read_only=True)
    assert big.read_only
    assert big.read((989, 0, 0), (10, 1, 1)).shape == (1, 10, 1, 1)  # may read past the parent
    with pytest.raises(wkview.ReadOnlyError) as info:
        big.write(np.zeros((1, 1, 1), np.uint8))
    assert isinstance(info.value, PermissionError) and isinstance(info.value, AssertionError)


def test_read_only_view_gives_only_read_only_sub_views(view_factory):
    view = view_factory(size=(10, 10, 10), read_only=True)
    assert view.get_view().read_only
    with pytest.raises(wkview.ReadOnlyError):
        view.get_view(read_only=False)


def test_sub_view_default_size_is_rest(view_factory):
    view = view_factory(size=(10, 10, 10))
    assert view.get_view(offset=(2, 3, 4)).size == (8, 7, 6)


# -- small API -------------------------------------------------------------------------------------


def test_properties_dtype_and_repr(view_factory):
    view = view_factory(size=(10, 11, 12), offset=(1, 2, 3), dtype=np.uint16, channels=3)
    assert view.size == (10, 11, 12)
    assert view.global_offset == (1, 2, 3)
    assert view.read_only is False
    assert view.get_dtype() is np.uint16
    assert isinstance(view.header, wkw.Header) and view.header.num_channels == 3
    assert "global_offset=(1, 2, 3)" in repr(view) and "size=(10, 11, 12)" in repr(view)
    assert view.bounding_box == BoundingBox((1, 2, 3), (10, 11, 12))


def test_open_close_and_their_errors(view_factory):
    view = view_factory()
    with pytest.raises(wkview.ViewStateError):
        view.close()
    assert view.open() is view
    with pytest.raises(wkview.ViewStateError):
        view.open()
    view.close()
    with view.open():
        view.read((0, 0, 0), (1, 1, 1))
    assert not view._is_opened


def test_with_view_works(view_factory):
    """Defect 4: `with view:` raised because __enter__ did not open."""
    view = view_factory()
    with view as v:
        assert v is view
        v.write(np.ones((2, 2, 2), np.uint8))
        assert view._store.is_open
    assert not view._store.is_open
    with view:
        with view:  # nested use does not fail on exit
            pass


def test_handle_is_opened_once_without_explicit_open(view_factory, monkeypatch):
    """Defect 5: every read/write without open() opened and closed the dataset again."""
    opened = []
    real_open = wkw.Dataset.open

    def counting_open(root, *args, **kwargs):
        opened.append(root)
        return real_open(root, *args, **kwargs)

    view = view_factory()
    monkeypatch.setattr(wkw.Dataset, "open", staticmethod(counting_open))
    for i in range(20):
        view.write(np.full((4, 4, 4), i + 1, np.uint8), (i, 0, 0))
        view.read((0, 0, 0), (8, 8, 8))
        view.get_view((1, 1, 1), (4, 4, 4)).read()
    assert len(opened) <= 1


def test_views_pickle_small_without_handles(view_factory):
    view = view_factory(size=(20, 20, 20))
    view.write(np.full((20, 20, 20), 3, np.uint8))
    with view:
        blob = pickle.dumps(view.get_view((1, 1, 1), (5, 5, 5)))
    assert len(blob) < 1500
    clone = pickle.loads(blob)
    assert not clone._is_opened
    assert np.all(clone.read() == 3)


# -- errors -------------------------------------------------------------------------------------


def test_write_errors_name_the_values(view_factory):
    view = view_factory(size=(10, 10, 10), dtype=np.uint8, channels=1)
    with pytest.raises(wkview.DTypeMismatchError, match="uint16") as info:
        view.write(np.zeros((2, 2, 2), np.uint16))
    assert isinstance(info.value, TypeError) and isinstance(info.value, AssertionError)
    with pytest.raises(wkview.ShapeError, match="3 channels"):
        view.write(np.zeros((3, 2, 2, 2), np.uint8))
    with pytest.raises(wkview.ShapeError, match=r"\(2, 2\)"):
        view.write(np.zeros((2, 2), np.uint8))
    with pytest.raises(wkview.ShapeError, match=r"\(1, 1, 2, 2, 2\)"):
        view.write(np.zeros((1, 1, 2, 2, 2), np.uint8))
    with pytest.raises(wkview.ShapeError, match="-1"):
        view.write(np.zeros((2, 2, 2), np.uint8), (-1, 0, 0))
    with pytest.raises(TypeError, match="1.5"):
        view.write(np.zeros((2, 2, 2), np.uint8), (1.5, 0, 0))
    with pytest.raises(wkview.ShapeError, match="0"):
        view.write(np.zeros((0, 2, 2), np.uint8))
    with pytest.raises(wkview.BoundsError, match=r"\(9, 0, 0\)"):
        view.write(np.zeros((2, 2, 2), np.uint8), (9, 0, 0))
    with pytest.raises(TypeError, match="list"):
        view.write([[[1]]])
    with pytest.raises(wkview.ShapeError, match="0"):
        view.read((0, 0, 0), (0, 1, 1))


def test_three_channel_view_rejects_3d_data(view_factory):
    view = view_factory(channels=3)
    with pytest.raises(wkview.ShapeError, match="3 channels"):
        view.write(np.zeros((2, 2, 2), np.uint8))


def test_no_silent_cast(view_factory):
    view = view_factory(dtype=np.float32)
    with pytest.raises(wkview.DTypeMismatchError):
        view.write(np.zeros((2, 2, 2), np.float64))
    assert view.read((0, 0, 0), (2, 2, 2)).sum() == 0


def test_errors_catchable_as_assertion_error_like_the_seed(view_factory):
    view = view_factory(size=(4, 4, 4), read_only=True)
    for call in (
        lambda: view.write(np.zeros((1, 1, 1), np.uint8)),
        lambda: view.read((0, 0, 0), (5, 5, 5)),
        lambda: view.read((-1, 0, 0), (1, 1, 1)),
    ):
        with pytest.raises(AssertionError):
            call()


def test_warning_free_aligned_compressed_write(view_factory):
    view = view_factory(size=(32, 32, 32), block_type=LZ4HC)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        view.write(np.ones((16, 32, 16), np.uint8), (16, 0, 0))
    assert view.read().sum() == 16 * 32 * 16

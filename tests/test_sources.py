"""The volume readers of wkview.sources and the image decoding of wkview.images, read
directly (no conversion, no subprocess), against NumPy oracles."""

from __future__ import annotations

import logging
import pickle

import numpy as np
import pytest
import tifffile
from PIL import Image

from wkview.errors import SourceError
from wkview.images import tiff_layout
from wkview.sources import (
    ImageStack,
    NpyVolume,
    RawVolume,
    TiffVolume,
    TileMosaic,
    VolumeSource,
    open_source,
)

from .tiff_layouts import LAYOUTS, H, W, make

#: Layouts whose channels are one picture's colours (one layer when converted).
ONE_PICTURE = {"rgb_file", "rgba_file", "zyxs_rgb_file"}


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_tiff_layout_reads_as_the_oracle(tmp_path, name):
    layout = make(name, tmp_path)
    src = open_source(layout.source, timepoint=1 if name == "imagej_timeseries" else None)
    expected = layout.expected
    assert src.shape == expected.shape[1:]
    assert src.num_channels == expected.shape[0]
    assert src.dtype == expected.dtype
    assert src.channels_in_one_layer == (name in ONE_PICTURE)
    np.testing.assert_array_equal(src.read((0, 0, 0), src.shape), expected)
    # a box inside, on the pickled reader (as a worker process gets it)
    again = pickle.loads(pickle.dumps(src))
    offset, size = (3, 5, expected.shape[3] - 1), (20, 17, 1)
    box = again.read(offset, size)
    assert box.flags.f_contiguous
    np.testing.assert_array_equal(box, expected[:, 3:23, 5:22, offset[2] :])


def test_ome_channel_names(tmp_path):
    src = open_source(make("ome_czyx_named", tmp_path).source)
    assert src.channel_names == ["DAPI", "GFP", "RFP"]
    assert open_source(make("ome_zcyx", tmp_path).source).channel_names is None
    assert open_source(make("rgb_file", tmp_path).source).channel_names is None


def test_single_file_in_a_folder_reads_that_file(tmp_path):
    layout = make("rgb_file", tmp_path)
    src = open_source(layout.source.parent)
    assert isinstance(src, TiffVolume) and src.channels_in_one_layer


def test_rgb_tiff_folder_channels_are_separate(tmp_path):
    """Like webknossos 4.3.3: a folder of TIFFs holds acquisitions per channel, not RGB."""
    src = open_source(make("rgb_folder", tmp_path).source)
    assert isinstance(src, ImageStack) and src.num_channels == 3 and not src.channels_in_one_layer


def test_several_timepoints_need_timepoint(tmp_path):
    layout = make("imagej_timeseries", tmp_path)
    with pytest.raises(SourceError, match=r"3 timepoints: convert one with --timepoint N \(0 to 2\)"):
        open_source(layout.source)
    with pytest.raises(SourceError, match="--timepoint 3 is not one of 0 to 2"):
        open_source(layout.source, timepoint=3)
    stack = tifffile.imread(layout.source)  # (t, z, c, y, x)
    first = open_source(layout.source, timepoint=0)
    np.testing.assert_array_equal(first.read((0, 0, 0), first.shape), stack[0].transpose(1, 3, 2, 0))
    assert first.fingerprint() != open_source(layout.source, timepoint=1).fingerprint()


def test_hyperstack_of_rgb_channels(tmp_path):
    """ZCYXS (ImageJ, RGB per channel; webknossos 4.3.3 refuses it): channels C x S."""
    stack = np.arange(3 * 2 * 8 * 10 * 3, dtype=np.uint8).reshape(3, 2, 8, 10, 3)
    tifffile.imwrite(tmp_path / "h.tif", stack, imagej=True, photometric="rgb", metadata={"axes": "ZCYXS"})
    src = open_source(tmp_path / "h.tif")
    assert (src.shape, src.num_channels, src.channels_in_one_layer) == ((10, 8, 3), 6, False)
    expected = stack.reshape(3, 2, 8, 10, 3).transpose(1, 4, 3, 2, 0).reshape(6, 10, 8, 3)
    np.testing.assert_array_equal(src.read((0, 0, 0), src.shape), expected)


def test_axes_that_cannot_be_placed(tmp_path):
    tifffile.imwrite(tmp_path / "r.tif", np.zeros((2, 3, 8, 10), np.uint8), photometric="minisblack", metadata={"axes": "RZYX"})
    with pytest.raises(SourceError, match="axes wkview cannot place: R of length 2"):
        tiff_layout(tmp_path / "r.tif")


def test_damaged_tiff_names_the_file(tmp_path):
    (tmp_path / "bad.tif").write_bytes(b"II*\x00garbage")
    with pytest.raises(SourceError, match="bad.tif: not a readable TIFF"):
        open_source(tmp_path / "bad.tif")


def test_mixed_sizes_warn_and_pad(tmp_path, caplog):
    layout = make("mixed_sizes", tmp_path)
    with caplog.at_level(logging.WARNING, logger="wkview.sources"):
        src = open_source(layout.source)
    assert "images of different sizes" in caplog.text and "padded with zeros to 64x46" in caplog.text
    np.testing.assert_array_equal(src.read((0, 0, 0), src.shape), layout.expected)
    np.testing.assert_array_equal(src.read((50, 30, 1), (14, 16, 2)), layout.expected[:, 50:, 30:, 1:])


def test_mixed_dtypes_stay_an_error(tmp_path):
    """webknossos 4.3.3 writes the uint16 slice into a uint8 layer; wkview refuses."""
    tifffile.imwrite(tmp_path / "0.tif", np.ones((8, 10), np.uint8))
    tifffile.imwrite(tmp_path / "1.tif", np.ones((8, 10), np.uint16))
    with pytest.raises(SourceError, match="1.tif: pixels of uint16 x 1, but the first slice 0.tif has uint8 x 1"):
        open_source(tmp_path)


def test_3d_tiff_in_a_folder_is_refused(tmp_path):
    tifffile.imwrite(tmp_path / "a.tif", np.ones((2, 8, 10), np.uint8), metadata={"axes": "ZYX"})
    tifffile.imwrite(tmp_path / "b.tif", np.ones((8, 10), np.uint8))
    with pytest.raises(SourceError, match="a.tif: holds 2 slices"):
        open_source(tmp_path)


def test_png_stack_and_mosaic(tmp_path):
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (2, 2, H, W, 3), dtype=np.uint8)  # (tile y, tile x, rows, cols, rgb)
    for ty in range(2):
        for tx in range(2):
            Image.fromarray(rgb[ty, tx]).save(tmp_path / f"t_{ty}_{tx}.png")
    mosaic = open_source(str(tmp_path / "t_{y}_{x}.png"))
    assert isinstance(mosaic, TileMosaic) and mosaic.channels_in_one_layer
    assert mosaic.shape == (2 * W, 2 * H, 1)
    whole = mosaic.read((0, 0, 0), mosaic.shape)
    np.testing.assert_array_equal(whole[:, W:, :H, 0], rgb[0, 1].transpose(2, 1, 0))
    stack = open_source(str(tmp_path / "t_0_*.png"))
    assert isinstance(stack, ImageStack) and stack.shape == (W, H, 2) and stack.channels_in_one_layer
    np.testing.assert_array_equal(stack.read((0, 0, 1), (W, H, 1))[..., 0], rgb[0, 1].transpose(2, 1, 0))


def test_npy_and_raw(tmp_path):
    volume = np.arange(2 * 6 * 5 * 4, dtype=np.uint16).reshape(2, 6, 5, 4)
    np.save(tmp_path / "v.npy", volume)
    npy = open_source(tmp_path / "v.npy")
    assert isinstance(npy, NpyVolume) and npy.shape == (6, 5, 4) and npy.channels_in_one_layer
    np.testing.assert_array_equal(npy.read((1, 2, 3), (4, 3, 1)), volume[:, 1:5, 2:5, 3:4])
    volume[0].ravel(order="F").tofile(tmp_path / "v.raw")
    raw = RawVolume.from_file(tmp_path / "v.raw", (6, 5, 4), "uint16")
    np.testing.assert_array_equal(raw.read((0, 0, 0), raw.shape)[0], volume[0])
    with pytest.raises(SourceError, match="holds 240 bytes"):
        RawVolume.from_file(tmp_path / "v.raw", (6, 5, 5), "uint16")


def test_volume_source_is_abstract():
    with pytest.raises(TypeError):
        VolumeSource()  # type: ignore[abstract]

    class OnlyShape(VolumeSource):
        @property
        def shape(self):
            return (1, 1, 1)

    with pytest.raises(TypeError, match="dtype"):
        OnlyShape()  # type: ignore[abstract]

    class Complete(OnlyShape):
        dtype = property(lambda self: np.dtype("uint8"))
        num_channels = property(lambda self: 2)

        def read(self, offset, size):
            return np.zeros((2, *size), np.uint8, order="F")

        def describe(self):
            return "zeros"

        def fingerprint(self):
            return ["zeros"]

    src = Complete()
    assert src.channel_names is None and not src.channels_in_one_layer and src.nbytes_per_voxel == 2

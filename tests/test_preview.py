"""``wkview preview`` / :func:`wkview.preview.write_preview`: the three central planes where
they belong, contrast stretch, segment colours, the mag choice, ``convert --preview``."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from wkview import Dataset
from wkview.convert import convert
from wkview.errors import TargetExistsError
from wkview.preview import GAP, choose_mag, preview_image, segment_colors, write_preview

from .test_cli import SEQ, SMALL, run, write_tiff_stack

X, Y, Z = 30, 22, 14


def positional_volume() -> np.ndarray:
    """Voxels that tell where they are: 2 x + 3 y + 5 z (a plane in the wrong place shows)."""
    x, y, z = np.meshgrid(np.arange(X), np.arange(Y), np.arange(Z), indexing="ij")
    return (2 * x + 3 * y + 5 * z).astype(np.uint8)


def stretched(values: np.ndarray, all_values: np.ndarray) -> np.ndarray:
    """The NumPy oracle of the contrast stretch: 1st percentile -> 0, 99th -> 255."""
    low, high = np.percentile(all_values.astype(np.float64), (1, 99))
    return np.clip((values.astype(np.float64) - low) * (255.0 / (high - low)), 0, 255).round().astype(np.uint8)


def png(path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


@pytest.fixture
def color_dataset(tmp_path):
    vol = positional_volume()
    np.save(tmp_path / "vol.npy", vol)
    convert(tmp_path / "vol.npy", tmp_path / "ds", (1, 1, 1), block_len=8, file_len=2, max_mag=2)
    return tmp_path / "ds", vol


def test_planes_are_where_they_belong(color_dataset, tmp_path):
    path, vol = color_dataset
    out = write_preview(path, tmp_path / "p.png", mag=1)
    image = png(out)
    assert image.shape == (Y + GAP + Z, X + GAP + Z, 3)
    assert (image[..., 0] == image[..., 1]).all() and (image[..., 1] == image[..., 2]).all()  # gray
    gray = image[..., 0]
    xy = vol[:, :, Z // 2]  # (x, y)
    zy = vol[X // 2, :, :]  # (y, z)
    xz = vol[:, Y // 2, :]  # (x, z)
    shared = np.concatenate([xy.ravel(), zy.ravel(), xz.ravel()])
    assert np.array_equal(gray[:Y, :X], stretched(xy.T, shared))  # rows y, columns x
    assert np.array_equal(gray[:Y, X + GAP :], stretched(zy, shared))  # rows y, columns z
    assert np.array_equal(gray[Y + GAP :, :X], stretched(xz.T, shared))  # rows z, columns x
    assert not gray[Y : Y + GAP].any() and not gray[:, X : X + GAP].any()  # the gaps
    assert not gray[Y + GAP :, X + GAP :].any()  # the empty corner
    # the stretch: the darkest and brightest 1 % are clipped to black and white
    assert gray[:Y, :X].min() == 0 and gray[:Y, :X].max() == 255


def test_coarsest_mag_that_still_gives_the_size(color_dataset):
    path, _ = color_dataset
    layer = Dataset(path).get_layer("color")
    # mag 1: 44 x 36 pixels, mag 2: 15+4+7 = 26 x 11+4+7 = 22 pixels
    assert choose_mag(layer, size=40).to_layer_name() == "1"
    assert choose_mag(layer, size=26).to_layer_name() == "2"
    assert choose_mag(layer, size=1024).to_layer_name() == "1"  # none has: the finest
    assert preview_image(layer, size=26).shape == (22, 26, 3)
    assert preview_image(layer, "2").shape == (22, 26, 3)


def test_segmentation_in_id_colours(tmp_path):
    seg = np.zeros((X, Y, Z), np.uint32)
    seg[: X // 2] = 7
    seg[X // 2 :, : Y // 2] = 123456
    seg[:, :, : Z // 4] = 0
    np.save(tmp_path / "seg.npy", seg)
    convert(tmp_path / "seg.npy", tmp_path / "ds", (1, 1, 1), layer_name="seg", category="segmentation",
            downsample=False, block_len=8, file_len=2)
    image = png(write_preview(tmp_path / "ds", tmp_path / "s.png"))
    colors = segment_colors(np.array([0, 7, 123456, 8], np.uint64))
    assert (colors[0] == 0).all() and colors[1:].any(axis=1).all()
    assert len({tuple(c) for c in colors}) == 4  # neighbouring ids differ too
    xy = image[:Y, :X]
    assert (xy[:, : X // 2] == colors[1]).all()
    assert (xy[: Y // 2, X // 2 :] == colors[2]).all() and (xy[Y // 2 :, X // 2 :] == 0).all()
    xz = image[Y + GAP :, :X]  # rows z: the first z // 4 are id 0
    assert (xz[: Z // 4] == 0).all() and (xz[Z // 4 :, : X // 2] == colors[1]).all()
    # deterministic: the same colours in every run (pinned values, not just equal twice)
    assert segment_colors(np.array([7], np.uint64)).tolist() == colors[1:2].tolist()


def test_existing_output_needs_overwrite(color_dataset, tmp_path):
    path, _ = color_dataset
    out = tmp_path / "p.png"
    out.write_bytes(b"keep")
    with pytest.raises(TargetExistsError, match="use --overwrite"):
        write_preview(path, out)
    assert out.read_bytes() == b"keep"
    proc = run("preview", str(path), str(out), check=2)
    assert "use --overwrite" in proc.stderr and out.read_bytes() == b"keep"
    run("preview", str(path), str(out), "--overwrite", "--mag", "2")
    assert png(out).shape == (22, 26, 3)


def test_convert_preview_beside_the_dataset(tmp_path):
    vol = positional_volume()
    write_tiff_stack(tmp_path / "s", vol)
    run("convert", str(tmp_path / "s"), str(tmp_path / "ds"), "--voxel-size", "1,1,1", "--preview", *SMALL, *SEQ,
        "--max-mag", "2")
    written = tmp_path / "ds-preview.png"
    ours = preview_image(Dataset(tmp_path / "ds").get_layer("color"))
    assert np.array_equal(png(written), ours)
    # an existing preview is refused before any work, named with the flag that replaces it
    (tmp_path / "ds2-preview.png").write_bytes(b"x")
    proc = run("convert", str(tmp_path / "s"), str(tmp_path / "ds2"), "--voxel-size", "1,1,1", "--preview", *SEQ,
               check=2)
    assert "use --overwrite" in proc.stderr and not (tmp_path / "ds2").exists()

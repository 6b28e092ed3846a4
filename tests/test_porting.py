"""A program written against webknossos 0.8.13 runs on wkview with only its imports changed,
and webknossos 4.3.3 opens every dataset it produced (voxels, layers, mags, properties).
"""

from __future__ import annotations

import difflib
import os
import warnings

import numpy as np
import pytest

import wkview

pytestmark = pytest.mark.interop

os.environ.setdefault("WEBKNOSSOS_SKIP_VERSION_CHECK", "True")
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    wk = pytest.importorskip("webknossos")
    from webknossos.version import __version__ as WK_VERSION

# The program as it was written for webknossos 0.8.13 (every call below existed there).
PROGRAM_0813 = '''
import argparse

import numpy as np
from webknossos.dataset import Dataset, LayerCategories
from webknossos.dataset.properties import DatasetViewConfiguration, LayerViewConfiguration
from webknossos.geometry import BoundingBox, Mag
from webknossos.utils import get_executor_for_args


def make_raw_dataset(path):
    """A dataset of another team; its layer gets linked below."""
    other = Dataset.create(path, scale=(11.24, 11.24, 25))
    raw = other.add_layer("raw", LayerCategories.COLOR_TYPE, dtype_per_layer="uint8")
    raw.add_mag("1", block_len=32, file_len=1, compress=True).write(np.full((64, 64, 32), 17, np.uint8))
    return other


def main(root):
    args = argparse.Namespace(distribution_strategy="multiprocessing", jobs=2)
    other = make_raw_dataset(root / "other")

    ds = Dataset.get_or_create(root / "ds", scale=(11.24, 11.24, 25))
    ds.default_view_configuration = DatasetViewConfiguration(zoom=1.5, position=(64, 48, 32))
    color = ds.add_layer("color", LayerCategories.COLOR_TYPE, dtype_per_layer="uint24", num_channels=3)
    color.default_view_configuration = LayerViewConfiguration(color=(255, 0, 0), intensity_range=(0, 200))
    seg = ds.add_layer("segmentation", LayerCategories.SEGMENTATION_TYPE, dtype_per_layer="uint32",
                       largest_segment_id=0)
    color_mag = color.add_mag(Mag(1), block_len=32, file_len=2, compress=True)
    seg_mag = seg.add_mag("1", block_len=32, file_len=2)

    rng = np.random.default_rng(0)
    image = rng.integers(1, 255, (3, 128, 96, 64), dtype=np.uint8)
    labels = (np.arange(128 * 96 * 64, dtype=np.uint32).reshape(1, 128, 96, 64) // 4096) + 1
    color_mag.write(image, offset=(0, 0, 0))
    seg_mag.write(labels)
    seg.largest_segment_id = int(labels.max())

    roi = BoundingBox.from_csv("16,16,8,32,32,16")
    cutout = color_mag.read(roi.topleft, roi.size)
    assert (cutout == np.moveaxis(roi.slice_array(np.moveaxis(image, 0, -1)), -1, 0)).all()

    ds.add_symlink_layer(other.get_layer("raw").path, make_relative=True)
    try:
        ds.get_color_layer()
    except IndexError:
        pass  # two color layers now: "color" and the linked "raw"
    else:
        raise RuntimeError("expected an IndexError")

    color.downsample_mag_list(Mag(1), [Mag(2), Mag(4)], compress=True, args=args)
    seg.downsample_mag_list(Mag(1), [Mag(2)], args=args)

    copy = ds.copy_dataset(root / "copy", block_len=16, file_len=4, compress=True, args=args)
    up = copy.add_layer_like(copy.get_layer("color"), "color_up")
    up.add_copy_mag(ds.get_layer("color").get_mag(4).path)
    up.upsample(from_mag=Mag(4), min_mag=Mag(1), compress=True, sampling_mode="isotropic", args=args)

    with get_executor_for_args(args) as executor:
        sums = list(executor.map(int, [copy.get_layer("raw").get_mag(1).read().sum()]))
    return {"image": image, "labels": labels, "raw_sum": sums[0], "datasets": [other, ds, copy]}
'''

IMPORTS = {
    "from webknossos.dataset import": "from wkview import",
    "from webknossos.dataset.properties import": "from wkview import",
    "from webknossos.geometry import": "from wkview import",
    "from webknossos.utils import": "from wkview.utils import",
}


def port(source: str) -> str:
    for old, new in IMPORTS.items():
        source = source.replace(old, new)
    return source


def test_only_the_imports_change():
    ported = port(PROGRAM_0813)
    changed = [
        line for line in difflib.unified_diff(PROGRAM_0813.splitlines(), ported.splitlines(), lineterm="", n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]
    assert changed and all(line[1:].startswith("from ") for line in changed), changed
    assert "webknossos" not in ported


@pytest.fixture(scope="module")
def program_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("porting")
    namespace: dict = {"__name__": "ported_program"}
    exec(compile(port(PROGRAM_0813), "ported_program.py", "exec"), namespace)
    return namespace["main"](root)


def test_ported_program_results(program_run):
    other, ds, copy = program_run["datasets"]
    image, labels = program_run["image"], program_run["labels"]
    assert program_run["raw_sum"] == 17 * 64 * 64 * 32
    assert ds.get_layer("raw").path.is_symlink()
    for dataset in (ds, copy):
        np.testing.assert_array_equal(dataset.get_layer("color").get_mag(1).read(), image)
        np.testing.assert_array_equal(dataset.get_layer("segmentation").get_mag(1).read(), labels)
        assert sorted(dataset.get_layer("color").mags) == [wkview.Mag(1), wkview.Mag(2), wkview.Mag(4)]
    header = copy.get_layer("color").get_mag(2).header
    assert (header.block_len, header.file_len) == (16, 4)
    coarse = copy.get_layer("color").get_mag(4).read()
    up = copy.get_layer("color_up")
    assert sorted(up.mags) == [wkview.Mag(1), wkview.Mag(2), wkview.Mag(4)]
    np.testing.assert_array_equal(up.get_mag(1).read(), coarse.repeat(4, 1).repeat(4, 2).repeat(4, 3))


def _wk_read(wk_layer, mag, box: wkview.BoundingBox) -> np.ndarray:
    aligned = box.align_with_mag(mag, ceil=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(
            wk_layer.get_mag(mag.to_layer_name()).read(
                absolute_bounding_box=wk.BoundingBox(aligned.topleft.to_tuple(), aligned.size.to_tuple())
            )
        )


@pytest.mark.skipif(WK_VERSION != "4.3.3", reason="pins webknossos 4.3.3")
def test_webknossos_opens_every_dataset_the_program_made(program_run):
    for dataset in program_run["datasets"]:
        reopened = wkview.Dataset(dataset.path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            wds = wk.Dataset.open(dataset.path)
        assert set(wds.layers) == set(reopened.layers), dataset.path
        assert tuple(wds.voxel_size) == reopened.scale
        for name, layer in reopened.layers.items():
            wl = wds.get_layer(name)
            assert (wl.category, wl.dtype, wl.num_channels) == (layer.category, layer.dtype_per_channel, layer.num_channels)
            assert tuple(wl.bounding_box.topleft) == layer.bounding_box.topleft
            assert tuple(wl.bounding_box.size) == layer.bounding_box.size
            if layer.category == "segmentation":
                assert wl.largest_segment_id == layer.largest_segment_id
            assert {m.to_layer_name() for m in wl.mags} == {m.to_layer_name() for m in layer.mags}
            for mag, view in layer.mags.items():
                expected = view.get_view().read()
                actual = _wk_read(wl, mag, layer.bounding_box)
                np.testing.assert_array_equal(actual.reshape(expected.shape), expected, err_msg=f"{dataset.path}/{name}/{mag}")
    ds = program_run["datasets"][1]
    wds = wk.Dataset.open(ds.path)
    assert wds.default_view_configuration.zoom == 1.5
    assert tuple(wds.default_view_configuration.position) == (64, 48, 32)
    assert tuple(wds.get_layer("color").default_view_configuration.color) == (255, 0, 0)
    assert tuple(wds.get_layer("color").default_view_configuration.intensity_range) == (0, 200)


@pytest.mark.skipif(WK_VERSION != "4.3.3", reason="pins webknossos 4.3.3")
def test_datasets_of_webknossos_are_linked_and_copied(tmp_path):
    """A dataset webknossos 4.3.3 wrote (4.x properties, mag paths): wkview links a layer of it
    into a new dataset and copies it twice (byte for byte, re-encoded); webknossos opens all."""
    data = (np.arange(2 * 48 * 40 * 24) % 200).astype(np.uint16).reshape(2, 48, 40, 24)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wds = wk.Dataset(tmp_path / "wk", voxel_size=(4, 4, 8))
        layer = wds.add_layer("em", "color", dtype="uint16", num_channels=2, data_format="wkw")
        layer.add_mag(1, chunk_shape=8, shard_shape=16, compress=True).write(
            data, absolute_offset=(8, 0, 8), allow_resize=True, allow_unaligned=True
        )
    source = wkview.Dataset(tmp_path / "wk")
    linked = wkview.Dataset.create(tmp_path / "linked", scale=(4, 4, 8))
    linked.add_symlink_layer(source.get_layer("em"))
    same = source.copy_dataset(tmp_path / "same")
    other = source.copy_dataset(tmp_path / "other", block_len=32, file_len=1, compress=False)
    assert {p.name for p in (same.path / "em" / "1").rglob("*.wkw")} == {p.name for p in (source.path / "em" / "1").rglob("*.wkw")}
    for path in (linked.path, same.path, other.path):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            wl = wk.Dataset.open(path).get_layer("em")
            box = wl.bounding_box
            assert (tuple(box.topleft), tuple(box.size)) == ((8, 0, 8), (48, 40, 24))
            actual = np.asarray(wl.get_mag(1).read(absolute_bounding_box=box))
        np.testing.assert_array_equal(actual, data, err_msg=str(path))
        np.testing.assert_array_equal(wkview.Dataset(path).get_layer("em").get_mag(1).get_view().read(), data)

"""The conversion plan, tested directly: plan_batches, plan_layers and plan_conversion
decide everything a conversion writes and write nothing; convert carries it out."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import tifffile

from wkview import Dataset, Mag, pyramid
from wkview.convert import LayerPlan, convert, plan_batches, plan_conversion, plan_layers
from wkview.errors import SourceError
from wkview.sources import NpyVolume, open_source

from .tiff_layouts import make


@pytest.mark.parametrize(
    "shape,edge,bpv,budget",
    [((100, 70, 45), 32, 1, 1 << 30), ((100, 70, 45), 32, 1, 32**3 * 2), ((1, 1, 1), 32, 8, 1), ((64, 64, 64), 16, 3, 16**3 * 5)],
)
def test_plan_batches_cover_the_volume_once_in_whole_files(shape, edge, bpv, budget):
    boxes = plan_batches(shape, edge, bpv, budget)
    covered = np.zeros(shape, np.uint8)
    for offset, size in boxes:
        assert all(o % edge == 0 for o in offset)  # whole files: no two batches share one
        assert all(o + s == n or s % edge == 0 for o, s, n in zip(offset, size, shape))
        assert size[2] <= edge  # one layer of files
        files = np.prod([-(-s // edge) for s in size])
        assert files * edge**3 * bpv <= max(budget, edge**3 * bpv)
        covered[tuple(slice(o, o + s) for o, s in zip(offset, size))] += 1
    assert (covered == 1).all()


def test_plan_batches_of_an_empty_volume():
    assert plan_batches((0, 10, 10), 32, 1) == []


def test_plan_layers_names_as_webknossos():
    u8 = np.dtype("uint8")
    assert plan_layers("color", 3, None, u8, one_layer=True) == (LayerPlan("color", (0, 1, 2), "uint24"),)
    assert plan_layers("color", 1, ["DAPI"], u8, one_layer=False) == (LayerPlan("color", (0,), "uint8"),)
    split = plan_layers("em", 4, None, np.dtype("uint16"), one_layer=False)
    assert [layer.name for layer in split] == ["em__channel0", "em__channel1", "em__channel2", "em__channel3"]
    assert [layer.channels for layer in split] == [(0,), (1,), (2,), (3,)]
    assert {layer.element_class for layer in split} == {"uint16"}
    assert [layer.color for layer in split] == [(255, 0, 0), (0, 255, 0), (0, 0, 255), None]
    named = plan_layers("c", 2, ["DAPI 405", "../GFP@2"], u8, one_layer=False)
    assert [layer.name for layer in named] == ["c__DAPI405", "c__GFP@2"]
    # names that would collide or vanish: numbered instead
    assert [layer.name for layer in plan_layers("c", 2, ["A", "A"], u8, False)] == ["c__channel0", "c__channel1"]
    assert [layer.name for layer in plan_layers("c", 2, ["A", "/"], u8, False)] == ["c__channel0", "c__channel1"]


def test_plan_of_a_multichannel_ome_tiff(tmp_path):
    layout = make("ome_czyx_named", tmp_path)
    plan = plan_conversion(layout.source, tmp_path / "ds", (11, 11, 25), layer_name="cells", batch_bytes=1)
    assert [layer.name for layer in plan.layers] == ["cells__DAPI", "cells__GFP", "cells__RFP"]
    assert plan.dtype == np.dtype("int8") and plan.dataset_name == "ds"
    assert plan.bbox.size == (56, 40, 5)
    assert plan.batches == tuple(plan_batches((56, 40, 5), 1024, 3, 1))
    # the one chain of wkview.pyramid, anisotropic for (11, 11, 25)
    assert plan.chain == tuple(pyramid.downsampling_chain(Mag(1), Mag(4), "auto", (11, 11, 25), (56, 40, 5)))
    assert plan.chain[0] == Mag((2, 2, 1))
    assert plan.header(plan.layers[0]).num_channels == 1
    one = plan_conversion(layout.source, tmp_path / "ds", (11, 11, 25), channels_as_one_layer=True, downsample=False)
    assert [(layer.name, layer.channels) for layer in one.layers] == [("color", (0, 1, 2))]
    assert one.chain == () and one.header(one.layers[0]).num_channels == 3
    assert one.fingerprint != plan.fingerprint
    assert not (tmp_path / "ds").exists()  # a plan writes nothing


def test_fingerprint_follows_every_setting(tmp_path):
    src = open_source(make("zyx_file", tmp_path).source)
    base = dict(layer_name="color", compress=True, compression_level=None, file_len=32, name=None, dtype=None)
    variants = [
        {}, {"layer_name": "em"}, {"compress": False}, {"compression_level": 9}, {"file_len": 16},
        {"name": "other"}, {"dtype": "int32"},
    ]
    prints = [plan_conversion(src, tmp_path / "ds", (1, 1, 1), **{**base, **v}).fingerprint for v in variants]
    assert all(a != b for a, b in itertools.combinations(prints, 2))
    assert plan_conversion(src, tmp_path / "ds", (1, 1, 1), **base).fingerprint == prints[0]


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"voxel_size": (1, 0, 1)}, "voxel_size must be three positive numbers"),
        ({"category": "mask"}, "category must be"),
        ({"layer_name": "a/b"}, "layer name"),
        ({"dtype": "uint8"}, "could change values"),
        ({"block_len": 3}, "block_len"),
        ({"batch_bytes": 0}, "batch_bytes must be positive"),
        ({"sampling_mode": "sideways"}, "sampling_mode must be one of"),
        ({"category": "segmentation", "channels_as_one_layer": True}, "needs one channel of integers"),
    ],
)
def test_plan_refuses_bad_settings(tmp_path, kwargs, message):
    source = make("ome_zcyx", tmp_path).source  # 2 channels of uint16
    args = {"voxel_size": (1, 1, 1), **kwargs}
    with pytest.raises(ValueError, match=message):
        plan_conversion(source, tmp_path / "ds", **args)
    assert not (tmp_path / "ds").exists()


def test_plan_needs_a_timepoint(tmp_path):
    source = make("imagej_timeseries", tmp_path).source
    with pytest.raises(SourceError, match="--timepoint"):
        plan_conversion(source, tmp_path / "ds", (1, 1, 1))
    assert plan_conversion(source, tmp_path / "ds", (1, 1, 1), timepoint=2).source.fingerprint()[1] == 2


def test_split_channels_convert_with_pyramid_and_segmentation(tmp_path):
    """Two integer channels become two segmentation layers, each with its pyramid and largest id."""
    stack = np.zeros((2, 40, 30, 20), np.uint16)  # (c, x, y, z)
    stack[0, 4:8, 2:6, 2:5] = 7  # whole 2x2 blocks: any pooling mode gives the strided values
    stack[1, 20:30, 10:20, 10:20] = 300
    np.save(tmp_path / "labels.npy", stack)
    # a .npy keeps its channels together unless the source says otherwise: split via the TIFF of the same data
    tifffile.imwrite(tmp_path / "labels.ome.tif", stack.transpose(0, 3, 2, 1), metadata={"axes": "CZYX"})
    ds = convert(tmp_path / "labels.ome.tif", tmp_path / "ds", (1, 1, 2), category="segmentation", layer_name="seg")
    assert sorted(ds.layers) == ["seg__channel0", "seg__channel1"]
    for c, name in enumerate(["seg__channel0", "seg__channel1"]):
        layer = ds.get_layer(name)
        assert layer.largest_segment_id == [7, 300][c]
        assert sorted(layer.mags) == [Mag(1), Mag((2, 2, 1)), Mag((4, 4, 2)), Mag(4)]
        np.testing.assert_array_equal(layer.get_mag(1).read()[0], stack[c])
        np.testing.assert_array_equal(layer.get_mag((2, 2, 1)).read()[0], stack[c, ::2, ::2, :])
    npy = convert(NpyVolume.from_file(tmp_path / "labels.npy"), tmp_path / "npy", (1, 1, 1), downsample=False)
    assert list(npy.layers) == ["color"] and npy.get_layer("color").num_channels == 2


def test_resumed_multilayer_conversion_matches(tmp_path, monkeypatch):
    """A conversion cut off before its properties file resumes, skipping the batches and
    mags of every layer it finished, to the same dataset."""
    import wkview.convert as conversion

    source = make("ome_zcyx", tmp_path).source
    whole = convert(source, tmp_path / "whole", (1, 1, 1), name="ds")

    def cut_off(*args):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(conversion, "_publish", cut_off)
        with pytest.raises(KeyboardInterrupt):
            convert(source, tmp_path / "ds", (1, 1, 1), name="ds")
    done_dir = tmp_path / "ds" / conversion.PROGRESS_FOLDER / "done"
    done = sorted(p.name for p in done_dir.iterdir() if not p.name.startswith("."))  # not the records' locks
    assert done == ["batch-0"] + [f"mag-color__channel{c}-{m}" for c in (0, 1) for m in (2, 4)]
    again = convert(source, tmp_path / "ds", (1, 1, 1), name="ds")
    assert sorted(again.layers) == sorted(whole.layers) == ["color__channel0", "color__channel1"]
    for n in whole.layers:
        for mag in (1, 2):
            np.testing.assert_array_equal(again.get_layer(n).get_mag(mag).read(), whole.get_layer(n).get_mag(mag).read())
    assert Dataset(tmp_path / "ds").get_layer("color__channel1").bounding_box.size == (56, 40, 4)


def test_multilayer_batches_on_worker_processes(tmp_path, multiprocessing_executor):
    """Batches and pyramid jobs of a split OME-TIFF on two worker processes give the
    dataset a sequential run gives."""
    source = make("ome_czyx_named", tmp_path).source
    small = dict(block_len=8, file_len=2, max_mag=2)  # files of 16^3: several batches and pyramid jobs
    here = convert(source, tmp_path / "here", (1, 1, 1), **small)
    there = convert(source, tmp_path / "there", (1, 1, 1), executor=multiprocessing_executor, batch_bytes=1, **small)
    assert list(there.layers) == list(here.layers) == ["color__DAPI", "color__GFP", "color__RFP"]
    for name in here.layers:
        for mag in (1, 2):
            np.testing.assert_array_equal(there.get_layer(name).get_mag(mag).read(), here.get_layer(name).get_mag(mag).read())

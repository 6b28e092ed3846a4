"""Direct tests of the mag builder (Layer.build_mag, pyramid.build_mag_folder), of the lower
floor in wkview/copying.py and of the pyramid chains on plain folders (no subprocess)."""

from __future__ import annotations

import itertools
import json
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import wkw

import wkview
from wkview import BoundingBox, Dataset, Mag
from wkview import copying, pyramid
from wkview.dataset import mag_header
from wkview.errors import DatasetError, DTypeMismatchError, ShapeError


@pytest.fixture
def ds(tmp_path):
    return Dataset.create(tmp_path / "ds", scale=(11.0, 11.0, 25.0))


def _data(shape, dtype="uint8", channels=1):
    values = np.arange(int(np.prod(shape)), dtype=np.int64).reshape(shape)
    return np.stack([((values * 7 + c) % 251 + 1).astype(dtype) for c in range(channels)])


def _filled(ds, name="color", compress=True, block_len=8, file_len=2, shape=(40, 36, 20), offset=(4, 0, 2)):
    layer = ds.add_layer(name, "color")
    data = _data(shape)
    layer.add_mag(1, block_len=block_len, file_len=file_len, compress=compress).write(data, offset=offset)
    return layer, data


def _named_mags(dataset_path: Path, layer: str) -> list[str]:
    """The mags the properties file on disk names (what another process sees)."""
    stored = json.loads((dataset_path / "datasource-properties.json").read_text())
    entry = next(lp for lp in stored["dataLayers"] if lp["name"] == layer)
    return sorted(Mag(m.get("resolution", m.get("mag"))).to_layer_name() for m in entry.get("wkwResolutions", entry.get("mags", [])))


def _entries(folder: Path) -> list[str]:
    """Every entry of ``folder`` but lock files (a build leaves the mag's lock file, never deleted)."""
    return sorted(p.name for p in folder.iterdir() if not p.name.endswith(".lock"))


def _visible(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


# -- the mag builder ------------------------------------------------------------------------------


def test_build_mag_names_the_mag_only_after_fill(ds):
    layer, data = _filled(ds)
    header = mag_header("uint8", 1, 8, 2, compress=True)
    seen = {}

    def fill(view):
        # while filling: the mag folder is hidden, and no properties file names it
        seen["visible"] = _visible(layer.path)
        seen["named"] = _named_mags(ds.path, "color")
        seen["reopened"] = sorted(Dataset(ds.path).get_layer("color").mags)
        view.write_planned(data[:, :20, :18, :10], (2, 0, 1))

    view = layer.build_mag(2, header, fill, compression_level=9)
    assert seen == {"visible": ["1"], "named": ["1"], "reopened": [Mag(1)]}
    assert _visible(layer.path) == ["1", "2"]
    assert _named_mags(ds.path, "color") == ["1", "2"]
    assert view.compression_level == 9
    assert np.array_equal(Dataset(ds.path).get_layer("color").get_mag(2).read((2, 0, 1), (20, 18, 10)), data[:, :20, :18, :10])


def test_build_mag_whose_fill_raises_leaves_no_mag(ds):
    layer, _ = _filled(ds)
    header = mag_header("uint8", 1, 8, 2, compress=True)

    def fill(view):
        view.write_planned(_data((8, 8, 8)), (0, 0, 0))
        raise RuntimeError("killed half-way")

    with pytest.raises(RuntimeError, match="killed half-way"):
        layer.build_mag(2, header, fill)
    assert _entries(layer.path) == ["1"]  # neither visible nor hidden
    assert _named_mags(ds.path, "color") == ["1"]
    assert sorted(layer.mags) == [Mag(1)]
    # the layer still builds the mag afterwards
    layer.build_mag(2, header, lambda view: None)
    assert sorted(Dataset(ds.path).get_layer("color").mags) == [Mag(1), Mag(2)]


def test_build_mag_removes_the_leftover_of_a_killed_build(ds):
    layer, _ = _filled(ds)
    header = mag_header("uint8", 1, 8, 2, compress=False)
    leftover = pyramid.building_path(layer.path / "2")
    pyramid.fresh_mag_folder(leftover, header)
    (leftover / "z0").mkdir()
    (leftover / "z0" / "stale").write_bytes(b"x")
    view = layer.build_mag(2, header, lambda v: None)
    assert not leftover.exists()
    assert view.get_bounding_boxes_on_disk() is not None and list(view.get_bounding_boxes_on_disk()) == []


def test_build_mag_refuses_bad_arguments(ds):
    layer, _ = _filled(ds)
    with pytest.raises(DatasetError, match="already a mag"):
        layer.build_mag(1, mag_header("uint8", 1, 8, 2, True), lambda v: None)
    with pytest.raises(DTypeMismatchError, match="uint16"):
        layer.build_mag(2, mag_header("uint16", 1, 8, 2, True), lambda v: None)
    with pytest.raises(DTypeMismatchError, match="3 x"):
        layer.build_mag(2, mag_header("uint8", 3, 8, 2, True), lambda v: None)
    with pytest.raises(ValueError, match="compression_level"):
        layer.build_mag(2, mag_header("uint8", 1, 8, 2, True), lambda v: None, compression_level=13)
    assert _entries(layer.path) == ["1"]


def test_failed_copy_mag_leaves_no_mag(tmp_path, ds):
    source_layer, _ = _filled(ds)
    victim = sorted(source_layer.get_mag(1).path.rglob("x*.wkw"))[-1]
    victim.write_bytes(victim.read_bytes()[:20])
    other = Dataset.create(tmp_path / "other", scale=(11.0, 11.0, 25.0))
    target = other.add_layer("color", "color")
    with pytest.raises(wkview.JobError, match=victim.name):
        target.add_copy_mag(source_layer.get_mag(1))
    assert _entries(target.path) == []
    assert _named_mags(other.path, "color") == []


def test_failed_upsample_leaves_no_new_mag(ds):
    layer, data = _filled(ds, block_len=8, file_len=1)
    layer.downsample_mag(1, 2, compress=False)
    layer.delete_mag(1)
    victim = sorted(layer.get_mag(2).path.rglob("x*.wkw"))[0]
    victim.write_bytes(victim.read_bytes()[:20])
    with pytest.raises(wkview.JobError, match=victim.name):
        layer.upsample(2, 1)  # its first step, 2-2-1, fails
    assert _entries(layer.path) == ["2"]
    assert _named_mags(ds.path, "color") == ["2"]


# -- the chains on plain folders (what convert's pyramid calls) --------------------------------------


def test_downsample_chain_on_plain_folders_equals_layer_downsample(tmp_path, ds):
    layer, _ = _filled(ds, shape=(64, 48, 40), offset=(0, 0, 0))
    bbox = layer.bounding_box
    header = layer.get_mag(1).header
    chain = [Mag(2), Mag(4)]
    built = []

    def build(mag, fill):
        path = tmp_path / "plain" / mag.to_layer_name()
        box = bbox.align_with_mag(mag, ceil=True).in_mag(mag)
        pyramid.build_mag_folder(path, header, box, fill, compression_level=4)
        built.append(path)
        return pyramid.bare_view(path, header, box, read_only=True)

    source = pyramid.bare_view(layer.get_mag(1).path, header, bbox, read_only=True)
    views = pyramid.downsample_chain(source, Mag(1), chain, bbox, "median", build)
    assert [v.path for v in views] == built
    layer.downsample_mag_list(1, chain, "median")
    for mag, view in zip(chain, views):
        box = bbox.align_with_mag(mag, ceil=True).in_mag(mag)
        assert np.array_equal(view.read(box.topleft, box.size), layer.get_mag(mag).read(box.topleft, box.size))


def test_chains_refuse_bad_steps(ds):
    layer, _ = _filled(ds)
    view = layer.get_mag(1)
    with pytest.raises(DatasetError, match="not a coarser multiple"):
        pyramid.downsample_chain(view, Mag(4), [Mag(2)], layer.bounding_box, "median", lambda m, f: view)
    with pytest.raises(DatasetError, match="min_mag must be finer"):
        pyramid.upsampling_chain(Mag(2), Mag(4), None)


# -- copying.py ----------------------------------------------------------------------------------


def _bare(path: Path, header: wkw.Header, box: BoundingBox, data=None):
    store = pyramid.fresh_mag_folder(path, header)
    view = pyramid.bare_view(path, header, box, store=store)
    if data is not None:
        view.write_planned(data, box.topleft)
    return view


def test_copy_files_copies_bytes_between_plain_folders(tmp_path):
    header = mag_header("uint16", 2, 8, 2, compress=True)
    box = BoundingBox((0, 0, 0), (40, 20, 16))
    data = _data((40, 20, 16), "uint16", channels=2)
    source = _bare(tmp_path / "a", header, box, data)
    target = _bare(tmp_path / "b", header, box)
    files = [(0, 0, 0), (2, 1, 0)]
    copying.copy_files(source, target, files)
    for x, y, z in files:
        rel = Path(f"z{z}/y{y}/x{x}.wkw")
        assert (tmp_path / "b" / rel).read_bytes() == (tmp_path / "a" / rel).read_bytes()
    assert sorted(p.relative_to(tmp_path / "b").as_posix() for p in (tmp_path / "b").rglob("x*.wkw")) == [
        "z0/y0/x0.wkw", "z0/y1/x2.wkw",
    ]  # fmt: skip
    # a damaged source file is refused (named), and nothing is left under its name
    (tmp_path / "a" / "z0/y0/x1.wkw").write_bytes(b"WKW")
    with pytest.raises(wkview.JobError, match="x1.wkw"):
        copying.copy_files(source, target, [(1, 0, 0)])
    assert not (tmp_path / "b" / "z0/y0/x1.wkw").exists()


def test_reencode_writes_only_files_with_source_data(tmp_path):
    box = BoundingBox((0, 0, 0), (64, 32, 32))
    source = _bare(tmp_path / "a", mag_header("uint8", 1, 8, 2, compress=True), box)
    part = _data((16, 16, 16))
    source.write_planned(part, (48, 16, 16))  # one source file of 16^3 voxels
    target = _bare(tmp_path / "b", mag_header("uint8", 1, 8, 4, compress=False), box)
    copying.reencode(source, target, box, {(3, 1, 1)})
    assert np.array_equal(target.read((0, 0, 0), (64, 32, 32)), source.read((0, 0, 0), (64, 32, 32)))
    assert sorted(p.relative_to(tmp_path / "b").as_posix() for p in (tmp_path / "b").rglob("x*.wkw")) == ["z0/y0/x1.wkw"]


def test_boxes_with_data_matches_brute_force():
    box = BoundingBox((3, 0, 5), (70, 33, 20))
    source_files = {(0, 0, 0), (3, 1, 1), (4, 2, 1)}
    got = copying.boxes_with_data(box, 16, source_files, 32)
    expected = []
    for chunk in box.chunk((32, 32, 32), (32, 32, 32)):
        voxels = itertools.product(*(range(chunk.topleft[i], chunk.bottomright[i]) for i in range(3)))
        if any(tuple(v // 16 for v in voxel) in source_files for voxel in voxels):
            expected.append(((chunk.topleft - box.topleft).to_tuple(), chunk.size.to_tuple()))
    assert got == expected and got


def test_same_layout_and_check_compatible():
    header = mag_header("uint8", 1, 8, 2, compress=True)
    assert copying.same_layout(header, True, 8, 2, True)
    assert not copying.same_layout(header, True, 8, 4, True)
    assert not copying.same_layout(header, True, 8, 2, False)
    copying.check_compatible(header, "mag 1", np.dtype("uint8"), 1, "color")
    with pytest.raises(DTypeMismatchError, match="mag 1 stores 1 x uint8; layer 'color' stores 1 x float32"):
        copying.check_compatible(header, "mag 1", np.dtype("float32"), 1, "color")


def test_rebased_mags_and_foreign_entry(ds):
    layer, _ = _filled(ds)
    entry = layer._properties
    entry.extra["custom"] = {"kept": [1]}
    mags = copying.rebased_mags(entry, "other")
    assert [(m.mag, m.path) for m in mags] == [(Mag(1), "other/1")]
    copied = copying.foreign_entry(entry, mags)
    assert (copied.name, copied.bounding_box, copied.mags) == ("color", entry.bounding_box, mags)
    copied.extra["custom"]["kept"].append(2)
    assert entry.extra["custom"] == {"kept": [1]}  # a deep copy
    entry.mags[0].path = "elsewhere/1"
    with pytest.raises(DatasetError, match="outside the layer's folder"):
        copying.rebased_mags(entry, "other")


@pytest.mark.parametrize("relative", [False, True])
def test_link(tmp_path, relative):
    (tmp_path / "data").mkdir()
    (tmp_path / "ds").mkdir()
    copying.link(tmp_path / "data", tmp_path / "ds" / "color", relative)
    pointee = os.readlink(tmp_path / "ds" / "color")
    assert pointee == ("../data" if relative else str(tmp_path / "data"))
    with pytest.raises(DatasetError, match="the path exists"):
        copying.link(tmp_path / "data", tmp_path / "ds" / "color", relative)


def test_copy_other_files_skips_named_entries(tmp_path):
    source = tmp_path / "a"
    (source / "1").mkdir(parents=True)
    (source / "1" / "header.wkw").write_bytes(b"h")
    (source / "mappings").mkdir()
    (source / "mappings" / "m.json").write_text("{}")
    (source / "notes.txt").write_text("n")
    (tmp_path / "b").mkdir()
    copying.copy_other_files(source, tmp_path / "b", {"1"})
    assert sorted(p.relative_to(tmp_path / "b").as_posix() for p in (tmp_path / "b").rglob("*")) == [
        "mappings", "mappings/m.json", "notes.txt",
    ]  # fmt: skip


def test_write_in_slabs_checks_what_produce_returns(tmp_path):
    box = BoundingBox((0, 0, 0), (16, 16, 16))
    target = _bare(tmp_path / "a", mag_header("uint8", 1, 8, 2, compress=True), box)
    with pytest.raises(ShapeError, match="expected 1 x"):
        copying.write_in_slabs(target, (0, 0, 0), (16, 16, 16), lambda o, s: np.zeros((1, 2, 2, 2), np.uint8))


def test_write_planned_does_not_warn_but_checks_bounds(tmp_path):
    box = BoundingBox((0, 0, 0), (32, 32, 32))
    target = _bare(tmp_path / "a", mag_header("uint8", 1, 8, 2, compress=True), box)
    slab = _data((32, 32, 8))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        target.write_planned(slab, (0, 0, 8))
    assert np.array_equal(target.read((0, 0, 8), (32, 32, 8)), slab)
    with pytest.raises(wkview.BoundsError):
        target.get_view((0, 0, 0), (16, 16, 16)).write_planned(slab, (0, 0, 0))

"""The main job (./run.sh demo) runs and checks itself; here on a small volume."""

from __future__ import annotations

import json

from wkview import Dataset, Mag
from wkview.demo import main


def test_demo_runs_and_leaves_a_valid_dataset(tmp_path, capsys):
    assert main(["--path", str(tmp_path / "demo"), "--size", "128", "--workers", "2"]) == 0
    out = capsys.readouterr().out
    assert "done: 10 steps" in out and "equals NumPy" in out
    ds = Dataset(tmp_path / "demo")
    assert set(ds.get_layer("color").mags) == {Mag(1), Mag(2)}
    converted = Dataset(tmp_path / "demo_converted").get_layer("color")
    assert converted.bounding_box.size == (128, 128, 128)
    assert len(converted.mags) == 3
    props = json.loads((tmp_path / "demo" / "datasource-properties.json").read_text())
    assert props["dataLayers"][0]["boundingBox"]["width"] == 128

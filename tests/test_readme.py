"""The Python examples in README.md really run."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_examples():
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs(index, capsys):
    exec(compile(BLOCKS[index], f"README.md example {index}", "exec"), {"__name__": "readme_example"})


def _command_line_examples() -> str:
    section = README.read_text().split("## Command line", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1, "the Command line section has one block of examples"
    return blocks[0]


@pytest.mark.slow  # a long subprocess round trip; CI runs it
def test_readme_command_line_examples_run(tmp_path):
    """Every line of the README's command-line examples, in an empty folder, through the
    installed console script; each must exit 0."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    lines = [line for line in _command_line_examples().splitlines() if line.strip()]
    assert len(lines) >= 8
    for line in lines:
        assert line.startswith("wkview "), line
        proc = subprocess.run(["bash", "-c", line], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, f"{line}\n{proc.stdout}\n{proc.stderr}"
    assert (tmp_path / "em_dataset" / "datasource-properties.json").is_file()
    assert len(list((tmp_path / "slices").glob("*.tif"))) == 8
    import json

    info = json.loads((tmp_path / "raw_copy.json").read_text())
    assert [m["compression"] for m in info["layers"][0]["mags"]] == ["lz4hc"] * len(info["layers"][0]["mags"])

"""webknossos 4.3.3 on WKW without and with wkview as its backend, as pytest-benchmark tests.

The workloads of ``bench/compare_backend.py`` (the same as ``bench/compare.py``'s), driven
through webknossos' own API by ``bench/_workloads.py``'s ``wk-wkw`` adapter, in six
groups (``backend small_reads``, ..., ``backend buffered_slices``), each with
``wk-wkw`` (webknossos alone) and ``wk-wkw+wkview`` (``wkview.webknossos_backend``
enabled around the benchmark).

* The normal test run (``--benchmark-disable``) runs each once on a 64^3 cube, checked
  against NumPy, so they cannot rot.
* ``./run.sh bench -k backend`` gives numbers; ``WKVIEW_BENCH_FULL=1`` the issue's 512^3.
  The issue's figures come from ``bench/compare_backend.py`` (a process per measurement,
  peak memory, disk size).
"""

from __future__ import annotations

import itertools
import os
import shutil
import sys
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
import _workloads as W  # noqa: E402

pytestmark = [
    pytest.mark.interop,
    pytest.mark.filterwarnings("ignore::UserWarning"),  # webknossos' advice on shapes and alignment
]

if not W.wk_installed():
    pytest.skip("webknossos is not installed", allow_module_level=True)
os.environ.setdefault("WEBKNOSSOS_SKIP_VERSION_CHECK", "True")
W.import_wk()
from wkview import webknossos_backend  # noqa: E402

FULL = os.environ.get("WKVIEW_BENCH_FULL") == "1"
N = 512 if FULL else 64
GEO = W.Geometry(N)
WRITE_ROUNDS = 3 if FULL else 5
_counter = itertools.count()


@pytest.fixture(scope="module")
def data() -> np.ndarray:
    return W.load_data(N)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bench_backend")


@pytest.fixture(scope="module")
def filled(workdir: Path, data: np.ndarray) -> Path:
    """The mag both columns read and edit copies of: written by webknossos alone."""
    webknossos_backend.disable()
    path = workdir / "filled"
    W.make_lib("wk-wkw").create_filled(path, GEO, data)
    return path


@pytest.fixture(params=W.BACKEND_LIBS)
def lib(request: pytest.FixtureRequest) -> Iterator[W._Lib]:
    webknossos_backend.disable()
    adapter = W.make_lib("wk-wkw")  # the same webknossos calls in both columns
    if request.param != "wk-wkw":
        webknossos_backend.enable()
    try:
        yield adapter
    finally:
        webknossos_backend.disable()


def _check(actual: np.ndarray, expected: np.ndarray) -> None:
    actual = W.as3d(actual)
    assert actual.shape == expected.shape
    assert np.array_equal(actual, expected)


def _rounds(benchmark: Any, n: int) -> int:
    return 1 if benchmark.disabled else n


@pytest.mark.benchmark(group=f"backend small_reads ({W.N_SMALL_READS} x 32^3 in {N}^3)")
def test_small_reads(benchmark: Any, lib: W._Lib, filled: Path, data: np.ndarray, as_test: bool) -> None:
    W.warm_page_cache(lib.mag_dir(filled))
    read = lib.small_reader(lib.open(filled))
    offsets, size = GEO.small_offsets[: W.N_SMALL_READS_AS_TEST if as_test else None], GEO.small_size
    last = benchmark(W.small_reads, read, offsets, size)
    x, y, z = offsets[-1]
    _check(last, data[x : x + 32, y : y + 32, z : z + 32])
    for x, y, z in offsets[::10]:
        _check(read((x, y, z), size), data[x : x + 32, y : y + 32, z : z + 32])


@pytest.mark.benchmark(group=f"backend full_read ({N}^3)")
def test_full_read(benchmark: Any, lib: W._Lib, filled: Path, data: np.ndarray) -> None:
    W.warm_page_cache(lib.mag_dir(filled))
    _check(benchmark(W.full_read, lib.full_reader(lib.open(filled)), GEO.shape), data)


def _run_write(benchmark: Any, lib: W._Lib, workload: str, workdir: Path, filled: Path, data: np.ndarray) -> Any:
    if workload == "aligned_write":
        def op(target: Any) -> None:
            lib.write_aligned(target, data)
    elif workload in W.EDIT_WORKLOADS:
        payload = GEO.unaligned_data(data) if workload == "unaligned_write" else GEO.edit_data(data)

        def op(target: Any) -> None:
            lib.write_unaligned(target, payload, GEO.unaligned_offset)
    else:
        slab = GEO.slab(data)

        def op(target: Any) -> None:
            lib.write_slices(target, slab)

    made: list[tuple[Path, Any]] = []

    def setup() -> Any:
        if made:
            shutil.rmtree(made.pop()[0], ignore_errors=True)
        path = workdir / f"{workload}-{next(_counter)}"
        if workload in W.EDIT_WORKLOADS:
            W.copy_dataset(filled, path)
            target = lib.open(path)
        else:
            target = lib.create_empty(path, GEO)
            if workload == "buffered_slices":
                lib.prepare_slices(target, GEO)
        made.append((path, target))
        return (target,), {}

    benchmark.pedantic(op, setup=setup, rounds=_rounds(benchmark, WRITE_ROUNDS), iterations=1)
    path, target = made[-1]
    return path, target


@pytest.mark.parametrize("workload", ["aligned_write", "unaligned_write", "small_edit", "buffered_slices"])
def test_writes(benchmark: Any, lib: W._Lib, workload: str, workdir: Path, filled: Path, data: np.ndarray) -> None:
    benchmark.group = f"backend {workload} ({N}^3)"
    path, target = _run_write(benchmark, lib, workload, workdir, filled, data)
    try:
        if workload == "aligned_write":
            _check(lib.read_box(target, (0, 0, 0), GEO.shape), data)
        elif workload == "unaligned_write":
            _check(lib.read_box(target, (0, 0, 0), GEO.shape), GEO.unaligned_expected(data))
        elif workload == "small_edit":
            _check(lib.read_box(target, (0, 0, 0), GEO.shape), GEO.edit_expected(data))
        else:
            slab = GEO.slab(data)
            _check(lib.read_box(target, (0, 0, 0), slab.shape), slab)
        uses_backend = webknossos_backend.store_of(target) is not None
        assert uses_backend == webknossos_backend.is_enabled()
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.mark.slow  # a long subprocess round trip; CI runs it
def test_compare_backend_script_runs_tiny(tmp_path: Path) -> None:
    """``bench/compare_backend.py`` end to end on 64^3 (two cells: one read, one write)."""
    import subprocess

    out = tmp_path / "result.json"
    done = subprocess.run(
        [sys.executable, str(Path(_HERE) / "compare_backend.py"), "--size", "64", "--repeat", "1",
         "--only", "full_read,small_edit", "--json", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "small_edit       wk-wkw+wkview" in done.stdout
    import json

    results = json.loads(out.read_text())["results"]
    assert {(r["workload"], r["lib"]) for r in results} == {
        (w, lib) for w in ("full_read", "small_edit") for lib in W.BACKEND_LIBS
    }
    assert all(r["status"] == "ok" and r["time_s"] > 0 for r in results)


@pytest.mark.slow  # a long subprocess round trip; CI runs it
def test_compare_backend_forms_run_tiny(tmp_path: Path) -> None:
    """``bench/compare_backend.py --only forms`` end to end on 64^3: every form timed and checked."""
    import json
    import subprocess

    import _backend_forms as F

    out = tmp_path / "forms.json"
    done = subprocess.run(
        [sys.executable, str(Path(_HERE) / "compare_backend.py"), "--only", "forms", "--forms-size", "64",
         "--forms-calls", "2", "--forms-edits", "1", "--repeat", "1", "--json", str(out)],
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    forms = json.loads(out.read_text())["forms"]
    backed = forms[W.BACKEND_LIBS[1]]["forms"]
    assert set(backed) == set(F.FORM_NAMES)
    assert all(r["checked"] and r["time_s"] > 0 for r in backed.values())
    assert all(r["wk_time_s"] > 0 for r in backed.values() if r["kind"] == "read")
    assert set(forms[W.BACKEND_LIBS[0]]["forms"]) == {name for name, _ in F.EDIT_FORMS}
    for name in F.FORM_NAMES:
        assert name in done.stdout

"""Fuzzing with hypothesis: damaged or hostile properties files, headers, jump tables and
block payloads give only wkview's documented errors, never allocate more than a small
bound (whatever sizes the file claims), and write nothing."""

from __future__ import annotations

import json
import shutil
import struct
import tempfile
import tracemalloc
import warnings
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wkview import CorruptFileError, Dataset, WkviewError
from wkview._storage import MagStore

#: examples per fuzz test (the README's "fuzz cases" are their sum)
EXAMPLES = {"properties": 400, "header": 250, "jump_table": 250, "payload": 150}
MEMORY_BOUND = 8 << 20  # bytes; a hostile header claims up to 8 GiB of jump table

FUZZ = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def template() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="wkview-fuzz-"))
    ds = Dataset.create(root / "ds", scale=(11.2, 11.2, 25))
    color = ds.add_layer("color", "color")
    color.add_mag(1, block_len=8, file_len=2, compress=True).write(
        np.arange(16**3, dtype=np.uint32).reshape(16, 16, 16).astype(np.uint8) | 1, offset=(0, 0, 0)
    )
    seg = ds.add_layer("seg", "segmentation", dtype_per_channel="uint32", largest_segment_id=7)
    seg.add_mag(1, block_len=8, file_len=2).write(np.full((16, 16, 16), 7, np.uint32), offset=(0, 0, 0))
    yield root / "ds"
    shutil.rmtree(root)


# -- properties files --------------------------------------------------------------------

_HOSTILE = st.sampled_from(
    ["../escape", "/etc", "color/../../x", "http://evil/x", "C:\\x", "..", "", "a/b", "\x00", "uint128", "zarr3"]
)
_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.sampled_from([-1, 0, 1, 2**31, 2**32, 2**53 + 1, 2**64, -(2**63)])
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6)
    | _HOSTILE,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)


def _paths(doc: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(doc, dict):
        for key, value in doc.items():
            out.extend(_paths(value, (*prefix, key)))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            out.extend(_paths(value, (*prefix, i)))
    return out


def _mutate(doc: Any, path: tuple, op: str, value: Any) -> Any:
    if not path:
        return value
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    if op == "delete":
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return doc


@pytest.mark.slow
@settings(FUZZ, max_examples=EXAMPLES["properties"])
@given(data=st.data())
def test_fuzzed_properties_files(template: Path, data: st.DataObject) -> None:
    doc = json.loads((template / "datasource-properties.json").read_text())
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        paths = _paths(doc)
        path = paths[data.draw(st.integers(0, len(paths) - 1), label="where")]
        op = data.draw(st.sampled_from(["replace", "delete"]) if path else st.just("replace"), label="op")
        doc = _mutate(doc, path, op, data.draw(_JSON, label="value"))
    text = json.dumps(doc) if data.draw(st.booleans(), label="valid json") else json.dumps(doc)[: data.draw(st.integers(0, 200))]
    with tempfile.TemporaryDirectory() as tmp:
        ds_path = Path(shutil.copytree(template, Path(tmp) / "ds"))
        (ds_path / "datasource-properties.json").write_text(text)
        before = _snapshot(ds_path)
        tracemalloc.start()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                ds = Dataset(ds_path)
                for layer in ds.layers.values():
                    _ = layer.bounding_box
                    for mag in layer.mags.values():
                        mag.read(offset=(0, 0, 0), size=(2, 2, 2))
        except WkviewError:
            pass  # documented: PropertiesError naming the field, DatasetError, CorruptFileError, ...
        finally:
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
        assert peak < MEMORY_BOUND
        assert _snapshot(ds_path) == before  # nothing written


# -- data files ---------------------------------------------------------------------------


def _fuzz_file(template: Path, layer: str, mutate: Any) -> None:
    """Mutate the first data file of ``layer``'s mag 1; read and write must fail cleanly."""
    with tempfile.TemporaryDirectory() as tmp:
        ds_path = Path(shutil.copytree(template, Path(tmp) / "ds"))
        mag_path = ds_path / layer / "1"
        target = mag_path / "z0" / "y0" / "x0.wkw"
        raw = bytearray(target.read_bytes())
        target.write_bytes(bytes(mutate(raw)))
        size = target.stat().st_size
        before = _snapshot(ds_path)
        store = MagStore(mag_path)
        tracemalloc.start()
        try:
            try:
                store.read((0, 0, 0), (16, 16, 16))
            except CorruptFileError:
                pass
            wrote = False
            try:
                store.write((3, 3, 3), np.ones((1, 2, 2, 2), dtype=store.dtype))  # a read-modify-write
                wrote = True
            except CorruptFileError:
                pass
        finally:
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            store.close()
        assert peak < MEMORY_BOUND + 2 * size
        leftovers = [p for p in ds_path.rglob("*") if p.name.endswith((".tmp", ".undo", ".part", ".old"))]
        assert leftovers == []
        if not wrote:
            after = _snapshot(ds_path)
            assert {k: v for k, v in after.items() if not k.endswith(".lock")} == {
                k: v for k, v in before.items() if not k.endswith(".lock")
            }


@pytest.mark.slow
@settings(FUZZ, max_examples=EXAMPLES["header"])
@given(
    layer=st.sampled_from(["color", "seg"]),
    field=st.sampled_from(["magic", "version", "lens", "block_type", "voxel_type", "voxel_size", "data_offset", "bytes"]),
    value=st.integers(0, 2**64 - 1),
    junk=st.binary(min_size=16, max_size=16),
)
def test_fuzzed_headers(template: Path, layer: str, field: str, value: int, junk: bytes) -> None:
    def mutate(raw: bytearray) -> bytearray:
        if field == "bytes":
            raw[:16] = junk
        elif field == "magic":
            raw[0:3] = junk[:3]
        elif field == "data_offset":
            raw[8:16] = struct.pack("<Q", value)
        else:
            raw[{"version": 3, "lens": 4, "block_type": 5, "voxel_type": 6, "voxel_size": 7}[field]] = value & 0xFF
        return raw

    _fuzz_file(template, layer, mutate)


@pytest.mark.slow
@settings(FUZZ, max_examples=EXAMPLES["jump_table"])
@given(
    entries=st.lists(st.tuples(st.integers(0, 7), st.integers(0, 2**64 - 1) | st.integers(0, 4096)), min_size=1, max_size=4),
    cut=st.none() | st.integers(0, 200),
)
def test_fuzzed_jump_tables(template: Path, entries: list[tuple[int, int]], cut: int | None) -> None:
    def mutate(raw: bytearray) -> bytearray:
        for index, value in entries:  # 8 blocks: entries 0..7 of the table after the header
            raw[16 + 8 * index : 24 + 8 * index] = struct.pack("<Q", value)
        return raw if cut is None else raw[: max(0, len(raw) - cut)]

    _fuzz_file(template, "color", mutate)


@pytest.mark.slow
@settings(FUZZ, max_examples=EXAMPLES["payload"])
@given(flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)), min_size=1, max_size=8))
def test_fuzzed_block_payloads(template: Path, flips: list[tuple[int, int]]) -> None:
    def mutate(raw: bytearray) -> bytearray:
        data_start = 16 + 8 * 8
        for pos, xor in flips:
            at = data_start + pos % (len(raw) - data_start)
            raw[at] ^= xor
        return raw

    _fuzz_file(template, "color", mutate)

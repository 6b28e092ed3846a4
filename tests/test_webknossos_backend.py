"""wkview as webknossos 4.3.3's WKW backend (``wkview.webknossos_backend``).

Every program here is a plain webknossos 4.3.3 program. It runs twice in the same folder
name: once with webknossos alone, once with the backend enabled; both runs must give the
same voxels, the same return values, the same exceptions (type and message) and the same
warnings. NumPy is the oracle of the voxels, and what the backend writes must be readable
without it: by webknossos alone, by libwkw and by wkview.

Proofs that the backend was really used (not just that nothing broke): at LZ4HC level 4
(the backend's default) the files differ from webknossos' level 9 and equal wkview's
level-4 encoding of their voxels, also for files written by worker processes; a damaged
file raises wkview's ``CorruptFileError`` only with the backend; pickled views carry it.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import wkw

import wkview
from wkview import codec
from wkview.sample import em_like

from ._jobs import wk_backend_jobs as jobs
from ._jobs.wk_backend_jobs import assert_level_encoded, data_files
from .conftest import random_data

pytestmark = [
    pytest.mark.interop,
    # webknossos' advice (small chunk shapes, unaligned views, ...): compared, not failed on,
    # inside both(); ignored in the set-up of the other tests
    pytest.mark.filterwarnings("ignore::UserWarning"),
]

# importing webknossos otherwise asks PyPI for its latest version in a background thread
os.environ.setdefault("WEBKNOSSOS_SKIP_VERSION_CHECK", "True")
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    wk = pytest.importorskip("webknossos")
    import cluster_tools
    from webknossos.dataset.layer.view._array import WKWArray
    from webknossos.dataset.layer.view import view as wk_view_module
    from webknossos.dataset.layer.view.view import View as WkView
    from webknossos.version import __version__ as WK_VERSION

from wkview import webknossos_backend as backend  # noqa: E402

if WK_VERSION != "4.3.3":
    pytest.skip(f"these tests pin webknossos 4.3.3, found {WK_VERSION}", allow_module_level=True)

REPO = Path(__file__).resolve().parents[1]
SEAMS = [(WKWArray, "read"), (WKWArray, "write"), (WKWArray, "close"), (WKWArray, "info"),
         (WkView, "read"), (WkView, "read_xyz"), (WkView, "get_view"), (WkView, "_prepare_compressed_write"),
         (WkView, "__reduce_ex__"), (wk_view_module, "warn_deprecated")]
MISSING = object()


@pytest.fixture(autouse=True)
def _disabled_around() -> Any:
    backend.disable()
    yield
    backend.disable()


def sequential() -> Any:
    return cluster_tools.get_executor("sequential")


# -- running a program both ways -----------------------------------------------------------


def outcome(fn: Callable[[], Any], where: bool = False) -> tuple[str, Any, list[str]]:
    """("ok", value, warnings) or ("error", "Type: message", warnings); ``where`` adds
    the file and line each warning is attributed to (what warning filters match)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            value: Any = ("ok", fn())
        except Exception as exc:  # the program's exceptions are part of its behaviour
            value = ("error", f"{type(exc).__name__}: {exc}")
    messages = [
        f"{w.category.__name__}: {w.message}" + (f" at {w.filename}:{w.lineno}" if where else "")
        for w in caught if not _is_noise(w)
    ]
    return value[0], value[1], messages


#: webknossos warnings given once per process (so only in whichever run comes first)
ONCE_PER_PROCESS = ("numba", "pims")


def _is_noise(w: warnings.WarningMessage) -> bool:
    text = str(w.message).lower()
    return any(word in text for word in ONCE_PER_PROCESS)


def same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (
            isinstance(a, np.ndarray) and isinstance(b, np.ndarray)
            and a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
        )
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


def _first_difference(a: Any, b: Any) -> str:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            if not same(x, y):
                return f"item {i}: " + _first_difference(x, y)
    if isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys():
        for k in a:
            if not same(a[k], b[k]):
                return f"[{k!r}]: " + _first_difference(a[k], b[k])
    return f"{a!r:.400} vs {b!r:.400}"


def both(tmp_path: Path, program: Callable[[Path], Any], **options: Any) -> tuple[Path, Path, Any]:
    """Run ``program(path)`` with webknossos alone, then with the backend (``options`` to
    :func:`enable`), at the same path; return the two dataset folders and the outcome."""
    path = tmp_path / "ds"
    plain = outcome(lambda: program(path))
    plain_dir = tmp_path / "plain"
    path.rename(plain_dir)
    with backend.enabled(**options):
        backed = outcome(lambda: program(path))
    backed_dir = tmp_path / "backed"
    path.rename(backed_dir)
    assert plain[0] == backed[0], f"webknossos alone: {plain[:2]!r:.300}; with the backend: {backed[:2]!r:.300}"
    assert same(plain[1], backed[1]), "results differ: " + _first_difference(plain[1], backed[1])
    assert plain[2] == backed[2], f"warnings differ: {plain[2]} vs {backed[2]}"
    return plain_dir, backed_dir, plain[1]


def wk_mag(path: Path, layer: str, mag: Any = 1) -> Any:
    return wk.Dataset.open(path).get_layer(layer).get_mag(mag)


def read_without_backend(path: Path, layer: str, mag: Any = 1) -> dict[str, np.ndarray]:
    """The whole bounding box of one mag as webknossos alone, libwkw and wkview read it."""
    if backend.is_enabled():
        raise RuntimeError("the backend must be off here")
    wk_view = wk_mag(path, layer, mag)
    out = {"webknossos": wk_view.read()}
    bbox = wk_view.bounding_box.in_mag(wk_view.mag)
    offset, size = tuple(bbox.topleft), tuple(bbox.size)
    handle = wkw.Dataset.open(str(wk_view.path))
    try:
        out["libwkw"] = handle.read(offset, size)
    finally:
        handle.close()
    wkv_mag = wkview.Dataset(path).get_layer(layer).get_mag(str(wk_view.mag.to_layer_name()))
    out["wkview"] = wkv_mag.read(offset, size)
    return out


# -- programs ---------------------------------------------------------------------------------

EDGE = 48
UNALIGNED = [  # (offset, size): inside one block, across blocks, across shards, 1 voxel, almost all
    ((3, 5, 7), (10, 20, 30)),
    ((17, 1, 33), (1, 1, 1)),
    ((15, 15, 15), (2, 2, 2)),
    ((8, 8, 8), (8, 8, 8)),
    ((0, 0, 0), (EDGE, EDGE, EDGE - 1)),
    ((5, 40, 2), (43, 8, 9)),
]


def writes_program(dtype: str, channels: int, compress: bool) -> Callable[[Path], Any]:
    def program(path: Path) -> Any:
        rng = np.random.default_rng(7)
        ds = wk.Dataset(path, voxel_size=(1, 1, 1))
        layer = ds.add_layer("data", "color", dtype=dtype, num_channels=channels, data_format="wkw")
        mag = layer.add_mag(1, chunk_shape=8, shard_shape=16, compress=compress)
        world = random_data(rng, (channels, EDGE, EDGE, EDGE), np.dtype(dtype).type)
        mag.write(world if channels > 1 else world[0], absolute_offset=(0, 0, 0), allow_resize=True)
        for offset, size in UNALIGNED:
            piece = random_data(rng, (channels, *size), np.dtype(dtype).type)
            mag.write(piece, absolute_offset=offset, allow_unaligned=True)
            world[(slice(None),) + tuple(slice(o, o + s) for o, s in zip(offset, size))] = piece
        # a shard-aligned write through a sub-view, C-ordered and Fortran-ordered data
        view = mag.get_view(absolute_offset=(16, 16, 16), size=(16, 16, 16))
        piece = np.asfortranarray(random_data(rng, (channels, 16, 16, 16), np.dtype(dtype).type))
        view.write(piece)
        world[:, 16:32, 16:32, 16:32] = piece
        # a write that grows the bounding box, unaligned at its far end
        piece = random_data(rng, (channels, 20, 4, 4), np.dtype(dtype).type)
        mag.write(piece, absolute_offset=(40, 0, 0), allow_resize=True, allow_unaligned=True)
        grown = np.zeros((channels, 60, EDGE, EDGE), world.dtype)
        grown[:, :EDGE] = world
        grown[:, 40:60, 0:4, 0:4] = piece
        result = {"read": mag.read(), "bbox": str(layer.bounding_box)}
        assert same(result["read"], grown), "the program's own oracle"
        return result

    return program


LAYERS = [("uint8", 1), ("uint16", 1), ("float32", 1), ("uint8", 3)]


@pytest.mark.parametrize("compress", [True, False], ids=["lz4hc", "raw"])
@pytest.mark.parametrize(("dtype", "channels"), LAYERS, ids=[f"{d}x{c}" for d, c in LAYERS])
def test_aligned_and_unaligned_writes_give_the_same_voxels(tmp_path: Path, dtype: str, channels: int, compress: bool) -> None:
    plain_dir, backed_dir, result = both(tmp_path, writes_program(dtype, channels, compress))
    for name, voxels in read_without_backend(backed_dir, "data").items():
        assert same(voxels, result["read"]), f"{name} reads the backend's files differently"


def test_level_9_writes_webknossos_bytes_and_the_default_level_wkview_bytes(tmp_path: Path) -> None:
    program = writes_program("uint8", 1, True)
    plain_dir, backed_dir, _ = both(tmp_path / "nine", program, compression_level=9)
    plain_files = data_files(plain_dir / "data" / "1")
    backed_files = data_files(backed_dir / "data" / "1")
    assert [p.relative_to(plain_dir) for p in plain_files] == [p.relative_to(backed_dir) for p in backed_files]
    for a, b in zip(plain_files, backed_files):
        assert a.read_bytes() == b.read_bytes(), f"{b.name} differs from webknossos' own file"
    # raw files: the same bytes at any level
    plain_dir, backed_dir, _ = both(tmp_path / "raw", writes_program("uint16", 1, False))
    plain_files = data_files(plain_dir / "data" / "1")
    assert [p.relative_to(plain_dir) for p in plain_files] == [
        p.relative_to(backed_dir) for p in data_files(backed_dir / "data" / "1")
    ]
    for a in plain_files:
        assert a.read_bytes() == (backed_dir / a.relative_to(plain_dir)).read_bytes()

    def smooth(path: Path) -> None:
        ds = wk.Dataset(path, voxel_size=(1, 1, 1))
        mag = ds.add_layer("data", "color", dtype="uint8", data_format="wkw").add_mag(
            1, chunk_shape=8, shard_shape=32, compress=True
        )
        mag.write(em_like((64, 64, 64), seed=3), absolute_offset=(0, 0, 0), allow_resize=True)
        mag.write(em_like((30, 20, 10), seed=4), absolute_offset=(5, 6, 7), allow_unaligned=True)

    plain_dir, backed_dir, _ = both(tmp_path / "four", smooth)
    assert_level_encoded(plain_dir / "data" / "1", 9, tmp_path)
    assert_level_encoded(backed_dir / "data" / "1", 4, tmp_path)


def block_bytes(path: Path) -> list[bytes]:
    """The compressed bytes of every block of a compressed WKW file (from its jump table)."""
    raw = path.read_bytes()
    header = codec.parse_header(raw[:16], str(path))
    ends = np.frombuffer(raw, dtype="<u8", count=header.num_blocks, offset=16)
    starts = [header.data_offset, *ends[:-1].tolist()]
    return [raw[s:e] for s, e in zip(starts, ends.tolist())]


def test_an_unaligned_edit_rewrites_only_the_blocks_it_touches(tmp_path: Path) -> None:
    """webknossos alone pads the edit to its whole shard and re-encodes all 64 blocks; with
    the backend (level 4, the file written at level 9) only the touched blocks change."""
    ds = wk.Dataset(tmp_path / "ds", voxel_size=(1, 1, 1))
    mag = ds.add_layer("data", "color", dtype="uint8", data_format="wkw").add_mag(
        1, chunk_shape=8, shard_shape=32, compress=True
    )
    volume = em_like((32, 32, 32), seed=12)
    mag.write(volume, absolute_offset=(0, 0, 0), allow_resize=True)
    (only_file,) = data_files(Path(mag.path))
    before = block_bytes(only_file)
    edit = em_like((3, 3, 12), seed=13)  # blocks (1, 1, 1) and (1, 1, 2)
    with backend.enabled():
        mag.write(edit, absolute_offset=(9, 9, 10), allow_unaligned=True)
        volume[9:12, 9:12, 10:22] = edit
        assert same(mag.read()[0], volume)
    after = block_bytes(only_file)
    changed = [i for i, (a, b) in enumerate(zip(before, after)) if a != b]
    assert len(changed) == 2, changed
    assert same(read_without_backend(tmp_path / "ds", "data")["libwkw"][0], volume)


# -- reads ------------------------------------------------------------------------------------


def filled_dataset(path: Path, compress: bool = True) -> tuple[Any, np.ndarray]:
    """A two-channel uint16 layer at (4, 8, 12) + 40x36x44 with mags 1 and 2, written by webknossos alone."""
    rng = np.random.default_rng(3)
    ds = wk.Dataset(path, voxel_size=(1, 1, 1))
    layer = ds.add_layer("data", "color", dtype="uint16", num_channels=2, data_format="wkw",
                         bounding_box=wk.BoundingBox((4, 8, 12), (40, 36, 44)))
    mag1 = layer.add_mag(1, chunk_shape=8, shard_shape=16, compress=compress)
    world = random_data(rng, (2, 44, 44, 56), np.uint16)
    world[:, :4] = 0
    world[:, :, :8] = 0
    world[:, :, :, :12] = 0
    mag1.write(world[:, 4:, 8:, 12:], absolute_offset=(4, 8, 12), allow_unaligned=True)
    mag2 = layer.add_mag(2, chunk_shape=8, shard_shape=16, compress=compress)
    mag2.write(world[:, ::2, ::2, ::2][:, 2:, 4:, 6:], absolute_offset=(4, 8, 12), allow_unaligned=True)
    return ds, world


def reads_program(compress: bool) -> Callable[[Path], list[Any]]:
    return lambda path: _reads(path, compress)


def _reads(path: Path, compress: bool) -> list[Any]:
    ds, world = filled_dataset(path, compress)
    layer = ds.get_layer("data")
    mag1, mag2 = layer.get_mag(1), layer.get_mag(2)
    rng = np.random.default_rng(11)
    results: list[Any] = []

    def record(fn: Callable[[], Any]) -> None:
        try:
            results.append(fn())
        except Exception as exc:
            results.append(f"{type(exc).__name__}: {exc}")

    for _ in range(60):  # random boxes, partly outside the data (zero padding)
        offset = tuple(int(v) for v in rng.integers(0, 50, 3))
        size = tuple(int(v) for v in rng.integers(1, 30, 3))
        record(lambda: mag1.read(absolute_offset=offset, size=size))
        record(lambda: mag1.read(relative_offset=offset, size=size))
        even_offset = tuple(2 * (v // 2) for v in offset)
        even_size = tuple(2 * max(1, v // 2) for v in size)
        record(lambda: mag2.read(absolute_offset=even_offset, size=even_size))
    oracle = mag1.read(absolute_offset=(3, 5, 7), size=(17, 1, 33))
    assert same(oracle, world[:, 3:20, 5:6, 7:40])
    view = mag1.get_view(absolute_offset=(5, 9, 13), size=(30, 20, 25))
    for fn in [
        lambda: mag1.read(),
        lambda: mag2.read(),
        lambda: view.read(),
        lambda: view.read(relative_offset=(1, 2, 3), size=(10, 10, 10)),
        lambda: view.read(absolute_offset=(1, 2, 3), size=(10, 10, 10)),
        lambda: view.read(absolute_offset=np.array([7, 8, 9]), size=[1, 1, 1]),
        lambda: view.read(absolute_offset=wk.Vec3Int(7, 8, 9), size=(np.int64(3), 4, 5)),
        lambda: view.read(absolute_offset=(7.0, 8, 9), size=(3, 4, 5)),
        lambda: view.read(absolute_bounding_box=wk.BoundingBox((6, 10, 14), (9, 8, 7))),
        lambda: view.read(relative_bounding_box=wk.BoundingBox((1, 1, 1), (9, 8, 7))),
        lambda: view.read(size=(4, 4, 4)),  # deprecated form: warns
        lambda: view.read_xyz(absolute_bounding_box=wk.BoundingBox((6, 10, 14), (9, 8, 7))),
        lambda: view.read_cxyz(absolute_bounding_box=wk.BoundingBox((6, 10, 14), (9, 8, 7))),
        lambda: mag1.read(absolute_offset=(0, 0, 0), size=(0, 4, 4)),  # empty: refused
        lambda: mag1.read(absolute_offset=(-2, 0, 0), size=(4, 4, 4)),  # negative: refused
        lambda: mag1.read(absolute_offset=(1, 2), size=(4, 4, 4)),
        lambda: mag1.read(absolute_offset=(1, 2, 3)),  # no size
        lambda: mag2.read(absolute_offset=(1, 2, 2), size=(4, 4, 4)),  # off the mag-2 grid
        lambda: mag2.read(absolute_offset=(2, 2, 2), size=(3, 4, 4)),
        lambda: mag1.get_view(absolute_offset=(10, 10, 14), size=(1, 1, 1)).read(),
    ]:
        record(fn)
    return results


@pytest.mark.parametrize("compress", [True, False], ids=["lz4hc", "raw"])
def test_reads_of_every_shape(tmp_path: Path, compress: bool) -> None:
    _, _, results = both(tmp_path, reads_program(compress))
    assert sum(isinstance(r, np.ndarray) for r in results) > 180
    assert sum(isinstance(r, str) for r in results) >= 5  # the refused ones were refused


def test_fast_reads_skip_webknossos_box_arithmetic_but_not_its_result(tmp_path: Path) -> None:
    """The int fast path of ``read(size, absolute_offset=...)`` gives what webknossos'
    own path gives through the same store, for mags 1 and 2 and sub-views."""
    ds, world = filled_dataset(tmp_path / "ds")
    layer = ds.get_layer("data")
    with backend.enabled():
        for mag, step in ((layer.get_mag(1), 1), (layer.get_mag(2), 2)):
            view = mag.get_view(absolute_offset=(8, 8, 12), size=(20, 20, 20))
            for target in (mag, view):
                target.read(absolute_offset=(0, 0, 0), size=(step,) * 3)  # opens the array
                for offset in [(0, 0, 0), (6, 10, 14), (30, 12, 2)]:
                    size = (6, 10, 4)
                    fast = target.read(absolute_offset=offset, size=size)
                    slow = target.read(absolute_bounding_box=wk.BoundingBox(offset, size))
                    assert same(fast, slow)
                    expected = world[:, ::step, ::step, ::step][
                        :, offset[0] // step : (offset[0] + size[0]) // step,
                        offset[1] // step : (offset[1] + size[1]) // step,
                        offset[2] // step : (offset[2] + size[2]) // step,
                    ]
                    assert same(fast, expected)


# -- every spelling of a read and a write --------------------------------------------------

BB = wk.BoundingBox
ND_CXYZ = wk.NDBoundingBox((0, 8, 8, 16), (1, 8, 16, 8), axes=("c", "x", "y", "z"))  # as the slice reader passes


class Targets:
    """The objects a form works on, from one opening of the copied dataset."""

    def __init__(self, path: Path, layer_name: str) -> None:
        self.ds = wk.Dataset.open(path)
        self.layer = self.ds.get_layer(layer_name)
        self.mag1 = self.layer.get_mag(1)
        self.mag2 = self.layer.get_mag(2)
        # open the arrays first (the int paths serve views whose array is open)
        self.mag1.read(absolute_offset=(0, 0, 0), size=(1, 1, 1))
        self.mag2.read(absolute_offset=(0, 0, 0), size=(2, 2, 2))
        self.view = self.mag1.get_view(absolute_offset=(16, 16, 0), size=(32, 32, 48))
        self.view2 = self.mag2.get_view(absolute_offset=(0, 32, 16), size=(64, 32, 32))
        self.ro = self.mag1.get_view(absolute_offset=(4, 6, 8), size=(20, 22, 24), read_only=True)


def _after(t: Targets, write: Callable[[], Any]) -> Any:
    write()
    return [t.mag1.read(), t.mag2.read(), str(t.layer.bounding_box)]


def _slices_read(t: Targets, **kw: Any) -> np.ndarray:
    with t.view.get_buffered_slice_reader(**kw) as reader:
        return np.stack(list(reader))


def _slices_write(t: Targets, target: Any, shape: tuple[int, int, int], **kw: Any) -> Any:
    volume = em_like(shape, seed=21)
    with target.get_buffered_slice_writer(**kw) as writer:
        for z in range(shape[2]):
            writer.send(volume[:, :, z])
    return [t.mag1.read(), str(t.layer.bounding_box)]


def _edit(shape: tuple[int, ...] = (8, 8, 8), dtype: Any = np.uint8, seed: int = 22) -> np.ndarray:
    return random_data(np.random.default_rng(seed), shape, dtype)


#: (id, form, whether the backend answers it without webknossos' box arithmetic)
READ_FORMS: list[tuple[str, Callable[[Targets], Any], bool]] = [
    # the forms, on MagView, View, mag 2 and a read-only view reaching out of its parent
    ("mag-absolute_offset", lambda t: t.mag1.read(absolute_offset=(3, 17, 40), size=(32, 32, 32)), True),
    ("mag-positional-absolute", lambda t: t.mag1.read((32, 32, 32), absolute_offset=(3, 17, 40)), True),
    ("mag-relative_offset", lambda t: t.mag1.read(relative_offset=(3, 17, 40), size=(32, 32, 32)), True),
    ("mag-positional-relative", lambda t: t.mag1.read((5, 6, 7), relative_offset=(60, 60, 60)), True),
    ("mag-absolute_bounding_box", lambda t: t.mag1.read(absolute_bounding_box=BB((3, 17, 40), (32, 32, 32))), True),
    ("mag-relative_bounding_box", lambda t: t.mag1.read(relative_bounding_box=BB((3, 17, 40), (32, 32, 32))), True),
    ("mag-whole", lambda t: t.mag1.read(), True),
    ("mag2-absolute_offset", lambda t: t.mag2.read(absolute_offset=(6, 2, 40), size=(32, 32, 32)), True),
    ("mag2-relative_offset", lambda t: t.mag2.read(relative_offset=(6, 2, 40), size=(32, 32, 32)), True),
    ("mag2-absolute_bounding_box", lambda t: t.mag2.read(absolute_bounding_box=BB((6, 2, 40), (32, 32, 8))), True),
    ("mag2-relative_bounding_box", lambda t: t.mag2.read(relative_bounding_box=BB((6, 2, 40), (32, 32, 8))), True),
    ("mag2-whole", lambda t: t.mag2.read(), True),
    ("view-absolute_offset", lambda t: t.view.read(absolute_offset=(20, 18, 3), size=(32, 32, 32)), True),
    ("view-positional-absolute", lambda t: t.view.read((32, 32, 32), absolute_offset=(20, 18, 3)), True),
    ("view-relative_offset", lambda t: t.view.read(relative_offset=(3, 2, 1), size=(32, 32, 32)), True),
    ("view-positional-relative", lambda t: t.view.read((32, 32, 32), relative_offset=(3, 2, 1)), True),
    ("view-absolute_bounding_box", lambda t: t.view.read(absolute_bounding_box=BB((20, 18, 3), (9, 30, 7))), True),
    ("view-relative_bounding_box", lambda t: t.view.read(relative_bounding_box=BB((3, 2, 1), (9, 30, 7))), True),
    ("view-nd-cxyz-box", lambda t: t.view.read(absolute_bounding_box=ND_CXYZ), True),
    ("view-whole", lambda t: t.view.read(), True),
    ("view2-relative_offset", lambda t: t.view2.read(relative_offset=(2, 4, 6), size=(16, 8, 4)), True),
    ("view2-relative_bounding_box", lambda t: t.view2.read(relative_bounding_box=BB((2, 4, 6), (16, 8, 4))), True),
    ("view2-whole", lambda t: t.view2.read(), True),
    ("readonly-view-outside-parent", lambda t: t.ro.read(relative_offset=(10, 10, 10), size=(80, 9, 9)), True),
    ("vec3int-and-numpy-ints", lambda t: t.view.read(absolute_offset=wk.Vec3Int(7, 8, 9), size=np.array([3, 4, 5])), True),
    ("outside-the-data", lambda t: t.mag1.read(absolute_offset=(60, 60, 60), size=(40, 8, 8)), True),
    ("read_xyz-absolute", lambda t: t.view.read_xyz(absolute_bounding_box=BB((20, 18, 3), (9, 30, 7))), True),
    ("read_xyz-relative", lambda t: t.mag2.read_xyz(relative_bounding_box=BB((2, 4, 6), (16, 8, 4))), True),
    ("get_view-absolute.read", lambda t: t.mag1.get_view(absolute_offset=(16, 16, 32), size=(16, 32, 16)).read(), True),
    ("get_view-relative.read", lambda t: t.view.get_view(relative_offset=(0, 16, 16), size=(16, 16, 32)).read(), True),
    ("get_view-readonly.read", lambda t: t.mag1.get_view(absolute_offset=(3, 5, 7), size=(9, 9, 9), read_only=True).read(), True),
    ("get_view-border.read", lambda t: t.view.get_view(relative_offset=(16, 0, 0), size=(16, 32, 48)).read(), True),
    ("get_view-whole.read", lambda t: t.view.get_view().read(), True),
    ("get_view-mag2.read", lambda t: t.mag2.get_view(absolute_offset=(0, 32, 0), size=(64, 32, 32)).read(relative_offset=(2, 2, 2), size=(4, 4, 4)), True),
    ("get_view-boxes", lambda t: [str(t.view.get_view(relative_offset=(0, 16, 16), size=(16, 16, 32)).bounding_box),
                                  repr(t.mag1.get_view(absolute_offset=(3, 5, 7), size=(9, 9, 9), read_only=True).normalized_bounding_box),
                                  t.view.get_view(relative_offset=(0, 16, 16), size=(16, 16, 32)).read_only], True),
    ("slice-reader-whole", lambda t: _slices_read(t, buffer_size=16), True),
    ("slice-reader-absolute-x", lambda t: _slices_read(t, absolute_bounding_box=BB((20, 18, 3), (9, 30, 7)), dimension="x", buffer_size=4), True),
    ("slice-reader-relative-y", lambda t: _slices_read(t, relative_bounding_box=BB((3, 2, 1), (9, 30, 7)), dimension="y"), True),
    ("slice-reader-mag2-x", lambda t: np.stack(list(t.mag2.get_buffered_slice_reader(dimension="x", buffer_size=5).__enter__())), True),
    ("slice-reader-attributes", lambda t: [
        (str(r.bbox_current_mag), r.dtype, r.buffer_size, r.dimension, r.use_logging, r.view is t.view)
        for r in (t.view.get_buffered_slice_reader(), t.view.get_buffered_slice_reader(8, "y", relative_bounding_box=BB((3, 2, 1), (9, 30, 7))),
                  t.view.get_buffered_slice_reader(absolute_bounding_box=BB((20, 18, 3), (9, 30, 7), name="mine")))], True),
    # what webknossos warns about or refuses: its own path, its own words
    ("size-only-deprecated", lambda t: t.view.read(size=(4, 4, 4)), False),
    ("mag-size-only-deprecated", lambda t: t.mag2.read((4, 4, 4)), False),
    ("read_xyz-without-box", lambda t: t.view.read_xyz(), False),
    ("read_xyz-two-boxes", lambda t: t.view.read_xyz(absolute_bounding_box=BB((0, 0, 0), (1, 1, 1)), relative_bounding_box=BB((0, 0, 0), (1, 1, 1))), False),
    ("empty", lambda t: t.mag1.read(absolute_offset=(0, 0, 0), size=(0, 4, 4)), False),
    ("empty-box", lambda t: t.view.read(relative_bounding_box=BB((0, 0, 0), (4, 0, 4))), False),
    ("negative", lambda t: t.mag1.read(absolute_offset=(-2, 0, 0), size=(4, 4, 4)), False),
    ("negative-relative", lambda t: t.view.read(relative_offset=(-17, 0, 0), size=(4, 4, 4)), False),
    ("negative-box", lambda t: t.mag1.read(absolute_bounding_box=BB((-2, 0, 0), (4, 4, 4))), False),
    ("off-the-mag-grid", lambda t: t.mag2.read(absolute_offset=(1, 2, 2), size=(4, 4, 4)), False),
    ("off-the-mag-grid-size", lambda t: t.mag2.read(relative_offset=(2, 2, 2), size=(3, 4, 4)), False),
    ("off-the-mag-grid-box", lambda t: t.mag2.read(absolute_bounding_box=BB((2, 2, 2), (4, 4, 5))), False),
    ("two-offsets", lambda t: t.mag1.read(absolute_offset=(0, 0, 0), relative_offset=(0, 0, 0), size=(4, 4, 4)), False),
    ("box-and-size", lambda t: t.mag1.read((4, 4, 4), absolute_bounding_box=BB((0, 0, 0), (4, 4, 4))), False),
    ("box-and-offset", lambda t: t.mag1.read(relative_offset=(0, 0, 0), absolute_bounding_box=BB((0, 0, 0), (4, 4, 4))), False),
    ("two-boxes", lambda t: t.mag1.read(relative_bounding_box=BB((0, 0, 0), (4, 4, 4)), absolute_bounding_box=BB((0, 0, 0), (4, 4, 4))), False),
    ("offset-without-size", lambda t: t.mag1.read(absolute_offset=(1, 2, 3)), False),
    ("two-numbers", lambda t: t.mag1.read(absolute_offset=(1, 2), size=(4, 4, 4)), False),
    ("float-offset", lambda t: t.view.read(absolute_offset=(7.0, 8, 9), size=(3, 4, 5)), False),
    ("get_view-unaligned-warns", lambda t: t.mag1.get_view(absolute_offset=(3, 5, 7), size=(9, 9, 9)).read(), False),
    ("get_view-outside-refused", lambda t: t.view.get_view(relative_offset=(16, 16, 16), size=(32, 32, 32)), False),
    ("get_view-writable-from-readonly", lambda t: t.ro.get_view(read_only=False), False),
    ("get_view-size-only-deprecated", lambda t: t.view.get_view((16, 16, 16)).read(), False),
    ("get_view-empty", lambda t: t.view.get_view(relative_offset=(0, 0, 0), size=(0, 16, 16)), False),
    ("get_view-negative", lambda t: t.mag1.get_view(absolute_offset=(-16, 0, 0), size=(16, 16, 16), read_only=True), False),
    ("get_view-offset-without-size", lambda t: t.mag1.get_view(absolute_offset=(0, 0, 0)), False),
    ("slice-reader-integer-dimension", lambda t: _slices_read(t, dimension=1, buffer_size=16), False),
    ("slice-reader-logging", lambda t: _slices_read(t, use_logging=True, buffer_size=16), False),
    ("slice-reader-negative", lambda t: _slices_read(t, absolute_bounding_box=BB((-2, 0, 0), (4, 4, 4))), False),
    ("slice-reader-two-boxes", lambda t: _slices_read(t, absolute_bounding_box=BB((0, 0, 0), (4, 4, 4)), relative_bounding_box=BB((0, 0, 0), (4, 4, 4))), False),
    ("slice-reader-off-the-mag-grid", lambda t: list(t.mag2.get_buffered_slice_reader(absolute_bounding_box=BB((1, 0, 0), (4, 4, 4))).__enter__()), False),
]

WRITE_FORMS: list[tuple[str, Callable[[Targets], Any], bool]] = [
    ("mag-absolute_offset", lambda t: _after(t, lambda: t.mag1.write(_edit(), absolute_offset=(9, 10, 11), allow_unaligned=True)), False),
    ("mag-relative_offset", lambda t: _after(t, lambda: t.mag1.write(_edit(), relative_offset=(9, 10, 11), allow_unaligned=True)), False),
    ("mag-absolute_bounding_box", lambda t: _after(t, lambda: t.mag1.write(_edit(), absolute_bounding_box=BB((9, 10, 11), (8, 8, 8)), allow_unaligned=True)), False),
    ("mag-relative_bounding_box", lambda t: _after(t, lambda: t.mag1.write(_edit(), relative_bounding_box=BB((9, 10, 11), (8, 8, 8)), allow_unaligned=True)), False),
    ("mag-no-offset", lambda t: _after(t, lambda: t.mag1.write(_edit((16, 16, 16)))), False),
    ("mag-aligned", lambda t: _after(t, lambda: t.mag1.write(_edit((16, 32, 16)), absolute_offset=(16, 32, 48))), False),
    ("mag-allow_resize", lambda t: _after(t, lambda: t.mag1.write(_edit(), absolute_offset=(60, 0, 0), allow_resize=True, allow_unaligned=True)), False),
    ("mag-allow_resize-aligned", lambda t: _after(t, lambda: t.mag1.write(_edit((16, 16, 16)), absolute_offset=(64, 0, 0), allow_resize=True)), False),
    ("mag2-absolute_offset", lambda t: _after(t, lambda: t.mag2.write(_edit(), absolute_offset=(10, 12, 14), allow_unaligned=True)), False),
    ("view-absolute_offset", lambda t: _after(t, lambda: t.view.write(_edit(), absolute_offset=(20, 21, 22), allow_unaligned=True)), False),
    ("view-relative_offset", lambda t: _after(t, lambda: t.view.write(_edit(), relative_offset=(4, 5, 6), allow_unaligned=True)), False),
    ("view-absolute_bounding_box", lambda t: _after(t, lambda: t.view.write(_edit(), absolute_bounding_box=BB((20, 21, 22), (8, 8, 8)), allow_unaligned=True)), False),
    ("view-relative_bounding_box", lambda t: _after(t, lambda: t.view.write(_edit(), relative_bounding_box=BB((4, 5, 6), (8, 8, 8)), allow_unaligned=True)), False),
    ("view-whole", lambda t: _after(t, lambda: t.view.write(_edit((32, 32, 48)))), False),
    ("view-channel-axis", lambda t: _after(t, lambda: t.view.write(_edit((1, 8, 8, 8)), relative_offset=(0, 0, 0), allow_unaligned=True)), False),
    ("view2-relative_offset", lambda t: _after(t, lambda: t.view2.write(_edit((4, 4, 4)), relative_offset=(2, 2, 2), allow_unaligned=True)), False),
    ("get_view.write", lambda t: _after(t, lambda: t.mag1.get_view(absolute_offset=(16, 16, 16), size=(16, 16, 16)).write(_edit((16, 16, 16)))), False),
    ("slice-writer-mag", lambda t: _slices_write(t, t.mag1, (16, 32, 20), absolute_offset=(0, 16, 16), allow_unaligned=True), False),
    ("slice-writer-view-relative", lambda t: _slices_write(t, t.view, (16, 16, 16), relative_offset=(16, 16, 16)), False),
    ("slice-writer-view-box", lambda t: _slices_write(t, t.view, (8, 8, 8), relative_bounding_box=BB((2, 3, 16), (8, 8, 8)), allow_unaligned=True), False),
    # what webknossos warns about or refuses
    ("unaligned-without-allow_unaligned", lambda t: _after(t, lambda: t.mag1.write(_edit(), absolute_offset=(9, 10, 11))), False),
    ("outside-without-allow_resize", lambda t: _after(t, lambda: t.mag1.write(_edit(), absolute_offset=(60, 0, 0), allow_unaligned=True)), False),
    ("view-outside", lambda t: _after(t, lambda: t.view.write(_edit(), relative_offset=(30, 0, 0), allow_unaligned=True)), False),
    ("other-dtype", lambda t: _after(t, lambda: t.mag1.write(_edit(dtype=np.float32), absolute_offset=(9, 10, 11), allow_unaligned=True)), False),
    ("other-dtype-aligned", lambda t: _after(t, lambda: t.mag1.write(_edit((16, 16, 16), np.uint16), absolute_offset=(0, 0, 0))), False),
    ("channels", lambda t: _after(t, lambda: t.mag1.write(_edit((2, 8, 8, 8)), absolute_offset=(0, 0, 0), allow_unaligned=True)), False),
    ("two-dimensional", lambda t: _after(t, lambda: t.view.write(_edit((8, 8)), relative_offset=(0, 0, 0))), False),
    ("shape-and-box-differ", lambda t: _after(t, lambda: t.view.write(_edit(), relative_bounding_box=BB((0, 0, 0), (8, 8, 9)), allow_unaligned=True)), False),
    ("off-the-mag-grid", lambda t: _after(t, lambda: t.mag2.write(_edit(), absolute_offset=(1, 2, 2), allow_unaligned=True)), False),
    ("read-only", lambda t: _after(t, lambda: t.ro.write(_edit(), relative_offset=(0, 0, 0))), False),
    ("two-offsets", lambda t: _after(t, lambda: t.mag1.write(_edit(), absolute_offset=(0, 0, 0), relative_offset=(0, 0, 0))), False),
]


@pytest.fixture(scope="module")
def forms_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Compressed and raw layers (64^3, mags 1 and 2, 8^3 chunks, 16^3 shards), filled by
    webknossos alone; the raw layer's bounding box is off the mag-2 grid (MagViews round it)."""
    path = tmp_path_factory.mktemp("forms") / "template"
    backend.disable()
    ds = wk.Dataset(path, voxel_size=(1, 1, 1))
    rng = np.random.default_rng(20)
    for name, compress, box in (("lz4", True, BB((0, 0, 0), (64, 64, 64))), ("raw", False, BB((0, 1, 0), (64, 63, 63)))):
        layer = ds.add_layer(name, "color", dtype="uint8", data_format="wkw", bounding_box=box)
        layer.add_mag(1, chunk_shape=8, shard_shape=16, compress=compress).write(
            random_data(rng, (64, 64, 64), np.uint8), absolute_offset=(0, 0, 0), allow_resize=True
        )
        layer.add_mag(2, chunk_shape=8, shard_shape=16, compress=compress).write(
            random_data(rng, (32, 32, 32), np.uint8), absolute_offset=(0, 0, 0), allow_resize=True
        )
        layer.bounding_box = box
    return path


def _slow_path(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("webknossos' box arithmetic ran")


def run_form(
    tmp_path: Path, template: Path, layer: str, form: Callable[[Targets], Any], fast: bool, writes: bool = True
) -> None:
    """The form on the same data with webknossos alone and with the backend: the same
    result (or error: type and message) and the same warnings (attributed to the same file
    and line). Forms marked fast must not reach webknossos' box arithmetic while the backend
    is on. A form that ``writes`` runs on two copies of ``template``; a read runs on
    ``template`` itself (the test checks that it stays unchanged)."""
    import shutil

    runs = []
    for on in (False, True):
        if writes:
            path = tmp_path / ("backed" if on else "plain")
            shutil.copytree(template, path)
        else:
            path = template
        with backend.enabled() if on else contextlib.nullcontext():
            targets = Targets(path, layer)
            with pytest.MonkeyPatch.context() as patch:
                if on and fast:
                    patch.setattr(WkView, "_get_mag1_bbox", _slow_path)
                    patch.setattr(WkView, "_resolve_read_bbox", _slow_path)
                    patch.setattr(wk.NDBoundingBox, "chunk", _slow_path)
                runs.append(outcome(lambda: form(targets), where=True))
    plain, backed = runs
    assert plain[0] == backed[0], f"webknossos alone: {plain[:2]!r:.400}; with the backend: {backed[:2]!r:.400}"
    assert same(plain[1], backed[1]), "results differ: " + _first_difference(plain[1], backed[1])
    assert plain[2] == backed[2], f"warnings differ: {plain[2]} vs {backed[2]}"


def _tree_state(folder: Path) -> dict[str, tuple[int, int]]:
    """Size and modification time of every file under ``folder`` (one stat per file: every
    read form takes this twice over the template's data and lock files)."""
    state = {}
    for parent, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(parent, name)
            info = os.stat(path)
            state[os.path.relpath(path, folder)] = (info.st_size, info.st_mtime_ns)
    return state


@pytest.mark.parametrize("layer", ["lz4", "raw"])
@pytest.mark.parametrize(("form", "fast", "writes"), [f[1:] + (False,) for f in READ_FORMS] + [f[1:] + (True,) for f in WRITE_FORMS],
                         ids=["read-" + f[0] for f in READ_FORMS] + ["write-" + f[0] for f in WRITE_FORMS])
def test_every_call_form_gives_what_webknossos_alone_gives(
    tmp_path: Path, forms_template: Path, layer: str, form: Callable[[Targets], Any], fast: bool, writes: bool
) -> None:
    before = None if writes else _tree_state(forms_template)
    run_form(tmp_path, forms_template, layer, form, fast, writes)
    if before is not None:  # reads share the template: none of them may change it
        assert _tree_state(forms_template) == before


# -- webknossos' checks and errors stay its own ----------------------------------------------


def errors_program(compress: bool) -> Callable[[Path], Any]:
    def program(path: Path) -> list[Any]:
        ds = wk.Dataset(path, voxel_size=(1, 1, 1))
        layer = ds.add_layer("data", "color", dtype="uint8", data_format="wkw",
                             bounding_box=wk.BoundingBox((0, 0, 0), (32, 32, 32)))
        mag = layer.add_mag(1, chunk_shape=8, shard_shape=16, compress=compress)
        out: list[Any] = []
        for fn in [
            lambda: mag.write(np.ones((5, 5, 5), np.uint8), absolute_offset=(1, 2, 3)),  # unaligned
            lambda: mag.write(np.ones((16, 16, 16), np.uint16), absolute_offset=(0, 0, 0)),  # dtype
            lambda: mag.write(np.ones((5, 5, 5), np.float32), absolute_offset=(1, 2, 3), allow_unaligned=True),
            lambda: mag.write(np.ones((2, 16, 16, 16), np.uint8), absolute_offset=(0, 0, 0)),  # channels
            lambda: mag.write(np.ones((16, 16, 16), np.uint8), absolute_offset=(32, 0, 0)),  # outside
            lambda: mag.write(np.ones((16, 16), np.uint8), absolute_offset=(0, 0, 0)),
            lambda: mag.write(np.ones((4, 4, 4), np.uint8), absolute_offset=(30, 30, 30), allow_unaligned=True),
            lambda: mag.get_view(read_only=True).write(np.ones((16, 16, 16), np.uint8)),
            lambda: mag.write(np.full((32, 32, 32), 3, np.uint8), absolute_offset=(0, 0, 0)),
            lambda: mag.get_view(absolute_offset=(16, 0, 0), size=(16, 16, 16)).write(np.full((16, 16, 16), 9, np.uint8)),
        ]:
            try:
                fn()
                out.append(mag.read())
            except Exception as exc:
                out.append(f"{type(exc).__name__}: {exc}")
        return out

    return program


@pytest.mark.parametrize("compress", [True, False], ids=["lz4hc", "raw"])
def test_webknossos_checks_errors_and_warnings_are_unchanged(tmp_path: Path, compress: bool) -> None:
    _, _, results = both(tmp_path, errors_program(compress))
    assert any(isinstance(r, str) and "allow_unaligned" in r for r in results) == compress


# -- buffered slices, downsampling, compression, chunk jobs ---------------------------------


def slices_program(path: Path) -> list[Any]:
    ds = wk.Dataset(path, voxel_size=(1, 1, 1))
    layer = ds.add_layer("data", "color", dtype="uint8", data_format="wkw",
                         bounding_box=wk.BoundingBox((0, 0, 0), (40, 48, 36)))
    mag = layer.add_mag(1, chunk_shape=8, shard_shape=16, compress=True)
    volume = em_like((40, 48, 36), seed=5)
    with mag.get_buffered_slice_writer(absolute_offset=(0, 0, 0)) as writer:
        for z in range(36):
            writer.send(volume[:, :, z])
    with mag.get_buffered_slice_writer(
        absolute_offset=(3, 5, 7), buffer_size=8, dimension="x", allow_unaligned=True
    ) as writer:
        for x in range(20):
            writer.send(volume[x, :30, :20][::-1].copy())
            volume[3 + x, 5:35, 7:27] = volume[x, :30, :20][::-1]
    out: list[Any] = [mag.read()]
    assert same(out[0][0], volume)
    for dimension in ("x", "y", "z"):
        with mag.get_buffered_slice_reader(
            absolute_bounding_box=wk.BoundingBox((2, 3, 4), (20, 30, 25)), dimension=dimension, buffer_size=8
        ) as reader:
            out.append(np.stack(list(reader)))
    return out


def test_buffered_slice_writer_and_reader(tmp_path: Path) -> None:
    _, backed_dir, results = both(tmp_path, slices_program)
    assert same(read_without_backend(backed_dir, "data")["libwkw"], results[0])


def downsample_program(path: Path) -> dict[str, Any]:
    ds = wk.Dataset(path, voxel_size=(1, 1, 1))
    color = ds.add_layer("color", "color", dtype="uint8", data_format="wkw")
    mag = color.add_mag(1, chunk_shape=8, shard_shape=32, compress=True)
    mag.write(em_like((64, 64, 64), seed=6), absolute_offset=(0, 0, 0), allow_resize=True)
    segmentation = ds.add_layer("seg", "segmentation", dtype="uint32", data_format="wkw", largest_segment_id=20)
    seg = segmentation.add_mag(1, chunk_shape=8, shard_shape=32, compress=False)
    labels = (np.arange(64**3, dtype=np.uint32).reshape(64, 64, 64) // 3000) % 21
    seg.write(labels, absolute_offset=(0, 0, 0), allow_resize=True)
    color.downsample(coarsest_mag=wk.Mag(4), chunk_shape=8, shard_shape=32, executor=sequential())
    segmentation.downsample(coarsest_mag=wk.Mag(2), chunk_shape=8, shard_shape=32, executor=sequential())
    return {
        "color": [color.get_mag(m).read() for m in (1, 2, 4)],
        "seg": [segmentation.get_mag(m).read() for m in (1, 2)],
    }


def test_downsample(tmp_path: Path) -> None:
    _, backed_dir, results = both(tmp_path, downsample_program)
    for m, expected in zip((2, 4), results["color"][1:]):
        for name, voxels in read_without_backend(backed_dir, "color", m).items():
            assert same(voxels, expected), f"{name}, mag {m}"
    assert_level_encoded(backed_dir / "color" / "2", 4, tmp_path)


def compress_program(path: Path) -> list[Any]:
    ds = wk.Dataset(path, voxel_size=(1, 1, 1))
    layer = ds.add_layer("data", "color", dtype="uint16", data_format="wkw")
    mag = layer.add_mag(1, chunk_shape=8, shard_shape=16, compress=False)
    mag.write(em_like((40, 40, 40), seed=8).astype(np.uint16) * 7, absolute_offset=(0, 0, 0), allow_resize=True)
    before = mag.read()
    mag.compress(executor=sequential())
    mag = ds.get_layer("data").get_mag(1)
    return [before, mag.read(), mag.info.compression_mode]


def test_compress(tmp_path: Path) -> None:
    _, backed_dir, results = both(tmp_path, compress_program)
    assert results[2] is True and same(results[0], results[1])
    assert same(read_without_backend(backed_dir, "data")["libwkw"], results[1])
    assert_level_encoded(backed_dir / "data" / "1", 4, tmp_path)


def worker_program(path: Path) -> dict[str, Any]:
    """for_each_chunk, map_chunk, downsample and compress on a two-process spawn executor."""
    ds = wk.Dataset(path, voxel_size=(1, 1, 1))
    layer = ds.add_layer("data", "color", dtype="uint8", data_format="wkw")
    mag = layer.add_mag(1, chunk_shape=8, shard_shape=16, compress=True)
    volume = em_like((32, 32, 64), seed=9)
    mag.write(volume, absolute_offset=(0, 0, 0), allow_resize=True)
    raw = ds.add_layer("raw", "color", dtype="uint8", data_format="wkw").add_mag(
        1, chunk_shape=8, shard_shape=16, compress=False
    )
    raw.write(volume, absolute_offset=(0, 0, 0), allow_resize=True)
    with cluster_tools.get_executor("multiprocessing", max_workers=2) as executor:
        mag.for_each_chunk(jobs.add_one, chunk_shape=(16, 16, 16), executor=executor)
        states = mag.map_chunk(jobs.backend_state, chunk_shape=(16, 16, 32), executor=executor)
        layer.downsample(coarsest_mag=wk.Mag(2), chunk_shape=8, shard_shape=16, executor=executor)
        raw.compress(executor=executor)
    return {
        "mag1": mag.read(),
        "mag2": layer.get_mag(2).read(),
        "compressed": ds.get_layer("raw").get_mag(1).read(),
        "states": sorted({state[1:] for state in states if state[0] != os.getpid()}),
    }


@pytest.mark.slow  # a long subprocess round trip; CI runs it
def test_chunk_jobs_on_a_process_executor_use_the_backend_in_the_workers(tmp_path: Path) -> None:
    path = tmp_path / "ds"
    plain = worker_program(path)
    path.rename(tmp_path / "plain")
    with backend.enabled():
        backed = worker_program(path)
    path.rename(tmp_path / "backed")
    assert plain["states"] == [(False, False)]  # workers without the backend
    assert backed["states"] == [(True, True)]  # every worker: enabled, the view on a wkview store
    volume = em_like((32, 32, 64), seed=9)
    assert same(plain["mag1"][0], volume + 1)
    for key in ("mag1", "mag2", "compressed"):
        assert same(plain[key], backed[key]), key
    # the files the workers wrote are wkview's level-4 encodings
    for mag_dir in ("data/1", "data/2", "raw/1"):
        assert_level_encoded(tmp_path / "backed" / mag_dir, 4, tmp_path)


@pytest.mark.slow  # a long subprocess round trip; CI runs it
def test_executor_initializer_enables_it_for_jobs_that_open_datasets_themselves(tmp_path: Path) -> None:
    ds = wk.Dataset(tmp_path / "ds", voxel_size=(1, 1, 1))
    ds.add_layer("data", "color", dtype="uint8", data_format="wkw").add_mag(1, chunk_shape=8, shard_shape=16)
    with cluster_tools.get_executor("multiprocessing", max_workers=1, initializer=backend.enable) as executor:
        assert executor.submit(jobs.open_and_report, str(tmp_path / "ds")).result() == (True, True)
    with cluster_tools.get_executor("multiprocessing", max_workers=1) as executor:
        assert executor.submit(jobs.open_and_report, str(tmp_path / "ds")).result() == (False, False)


# -- other formats and remote paths stay webknossos' own -------------------------------------


def test_zarr3_and_remote_wkw_are_untouched(tmp_path: Path) -> None:
    from upath import UPath

    volume = em_like((32, 32, 32), seed=2)
    with backend.enabled():
        ds = wk.Dataset(tmp_path / "zarr", voxel_size=(1, 1, 1))
        zmag = ds.add_layer("z", "color", dtype="uint8", data_format="zarr3").add_mag(1, chunk_shape=8, shard_shape=16)
        zmag.write(volume, absolute_offset=(0, 0, 0), allow_resize=True)
        assert backend.store_of(zmag) is None
        assert same(zmag.read()[0], volume)
        assert b"webknossos_backend" not in pickle.dumps(zmag.get_view())

        remote = wk.Dataset(UPath(f"memory:///{tmp_path.name}/remote"), voxel_size=(1, 1, 1))
        rmag = remote.add_layer("r", "color", dtype="uint8", data_format="wkw").add_mag(
            1, chunk_shape=8, shard_shape=16, compress=True
        )
        rmag.write(volume, absolute_offset=(0, 0, 0), allow_resize=True)
        rmag.write(volume[:5, :6, :7], absolute_offset=(3, 3, 3), allow_unaligned=True)
        assert backend.store_of(rmag) is None
        expected = volume.copy()
        expected[3:8, 3:9, 3:10] = volume[:5, :6, :7]
        assert same(rmag.read()[0], expected)

        local = wk.Dataset(tmp_path / "wkw", voxel_size=(1, 1, 1))
        lmag = local.add_layer("l", "color", dtype="uint8", data_format="wkw").add_mag(1, chunk_shape=8, shard_shape=16)
        lmag.write(volume, absolute_offset=(0, 0, 0), allow_resize=True)
        assert isinstance(backend.store_of(lmag), wkview._storage.MagStore)


# -- enable / disable ---------------------------------------------------------------------------


def own_attributes() -> list[Any]:
    return [owner.__dict__.get(name, MISSING) for owner, name in SEAMS]


def truncated_dataset(path: Path) -> Any:
    ds = wk.Dataset(path, voxel_size=(1, 1, 1))
    mag = ds.add_layer("data", "color", dtype="uint8", data_format="wkw").add_mag(
        1, chunk_shape=8, shard_shape=16, compress=True
    )
    mag.write(em_like((32, 32, 32), seed=1), absolute_offset=(0, 0, 0), allow_resize=True)
    victim = data_files(Path(mag.path))[0]
    victim.write_bytes(victim.read_bytes()[:100])
    return mag


def test_disable_restores_webknossos_classes_and_behaviour(tmp_path: Path) -> None:
    before = own_attributes()
    mag = truncated_dataset(tmp_path / "ds")
    view = mag.get_view()
    alone = outcome(lambda: mag.read(absolute_offset=(0, 0, 0), size=(8, 8, 8)))

    backend.enable()
    assert backend.is_enabled()
    after_enable = own_attributes()
    assert all(a is not b for a, b in zip(before, after_enable))
    assert WKWArray.read.__module__ == "wkview.webknossos_backend"
    backed = outcome(lambda: mag.read(absolute_offset=(0, 0, 0), size=(8, 8, 8)))
    assert backed[0] == "error" and backed[1].startswith("CorruptFileError")  # wkview's file check
    assert b"webknossos_backend" in pickle.dumps(view)

    backend.disable()
    assert not backend.is_enabled()
    assert all(a is b for a, b in zip(before, own_attributes()))  # the very same objects
    assert "__reduce_ex__" not in WkView.__dict__
    assert backend.store_of(mag) is None
    assert b"webknossos_backend" not in pickle.dumps(view)
    # the same, already opened array behaves as webknossos alone again
    assert same(outcome(lambda: mag.read(absolute_offset=(0, 0, 0), size=(8, 8, 8)))[:2], alone[:2])
    backend.disable()  # a second disable does nothing
    assert all(a is b for a, b in zip(before, own_attributes()))


def test_enabled_context_manager_restores_the_previous_state() -> None:
    before = own_attributes()
    with backend.enabled(compression_level=9):
        assert backend.options() == {"compression_level": 9, "allow_untested_version": False}
        with backend.enabled():
            assert backend.options() == {"compression_level": None, "allow_untested_version": False}
        assert backend.options() == {"compression_level": 9, "allow_untested_version": False}
        with pytest.raises(KeyError):
            with backend.enabled(compression_level=2):
                raise KeyError("inside")
        assert backend.options()["compression_level"] == 9
    assert not backend.is_enabled()
    assert all(a is b for a, b in zip(before, own_attributes()))
    with pytest.raises(ValueError, match="compression_level"):
        backend.enable(compression_level=13)
    assert not backend.is_enabled()


@pytest.mark.parametrize("version", ["4.4.0", "4.2.1", "5.0.0", "0.8.13"])
def test_an_untested_webknossos_version_is_refused(monkeypatch: pytest.MonkeyPatch, version: str) -> None:
    import webknossos.version

    before = own_attributes()
    monkeypatch.setattr(webknossos.version, "__version__", version)
    with pytest.raises(backend.UnsupportedVersionError) as info:
        backend.enable()
    message = str(info.value)
    assert f"installed webknossos is {version}" in message
    assert "tested with webknossos 4.3.x" in message
    assert "allow_untested_version=True" in message
    assert isinstance(info.value, RuntimeError)
    assert not backend.is_enabled()
    assert all(a is b for a, b in zip(before, own_attributes()))
    backend.enable(allow_untested_version=True)  # the explicit override
    assert backend.is_enabled()


def test_a_webknossos_without_the_expected_internals_is_refused_even_with_the_override(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delattr(WkView, "_prepare_compressed_write")
    before = own_attributes()
    with pytest.raises(backend.UnsupportedVersionError, match="has no View._prepare_compressed_write"):
        backend.enable(allow_untested_version=True)
    assert not backend.is_enabled()
    assert all(a is b for a, b in zip(before, own_attributes()))


def test_another_4_3_release_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    import webknossos.version

    monkeypatch.setattr(webknossos.version, "__version__", "4.3.9")
    backend.enable()
    assert backend.is_enabled()


def _python(code: str, env_value: str | None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop(backend.ENV_VAR, None)
    if env_value is not None:
        env[backend.ENV_VAR] = env_value
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.slow  # a long subprocess round trip; CI runs it
def test_environment_variable_enables_it_at_import() -> None:
    code = (
        "import wkview, sys\n"
        "mod = sys.modules.get('wkview.webknossos_backend')\n"
        "print(mod is not None and mod.is_enabled())\n"
        "from webknossos.dataset.layer.view._array import WKWArray\n"
        "print(WKWArray.read.__module__)\n"
    )
    on = _python(code, "1")
    assert on.returncode == 0, on.stderr
    assert on.stdout.split() == ["True", "wkview.webknossos_backend"]
    off = _python(code, "0")
    assert off.returncode == 0, off.stderr
    assert off.stdout.split() == ["False", "webknossos.dataset.layer.view._array"]
    bad = _python("import wkview", "yes")
    assert bad.returncode != 0 and "WKVIEW_WEBKNOSSOS_BACKEND must be 1" in bad.stderr


def test_a_pickled_view_enables_the_backend_where_it_is_unpickled(tmp_path: Path) -> None:
    ds = wk.Dataset(tmp_path / "ds", voxel_size=(1, 1, 1))
    mag = ds.add_layer("data", "color", dtype="uint8", data_format="wkw").add_mag(1, chunk_shape=8, shard_shape=16)
    mag.write(np.full((16, 16, 16), 5, np.uint8), absolute_offset=(0, 0, 0), allow_resize=True)
    with backend.enabled(compression_level=7):
        blob = pickle.dumps(mag.get_view(absolute_offset=(0, 0, 0), size=(16, 16, 16)))
    code = (
        "import pickle, sys\n"
        "view = pickle.loads(sys.stdin.buffer.read())\n"
        "from wkview import webknossos_backend as b\n"
        "print(b.options()['compression_level'], b.store_of(view) is not None, int(view.read().sum()))\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop(backend.ENV_VAR, None)
    done = subprocess.run([sys.executable, "-c", code], input=blob, env=env, capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().split() == ["7", "True", str(5 * 16**3)]

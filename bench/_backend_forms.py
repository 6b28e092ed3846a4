"""Each spelling of a webknossos 4.3 read and write, timed per call (``bench/compare_backend.py``).

A child process per library (webknossos alone, webknossos with wkview's backend) opens its
own copy of one compressed mag written by webknossos alone (``--forms-size`` voxels per
edge, 32^3 blocks, files as large as the mag), then times every form: 32^3 reads at
random offsets and 8^3 edits at random unaligned offsets (``allow_unaligned=True``).
Every read is checked against the NumPy array the mag was written from, and after the
edits the whole mag is checked against the edited array.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np

import _workloads as W

READ_SIZE = (32, 32, 32)
EDIT_SIZE = (8, 8, 8)
BLOCK = 32

#: webknossos' ``View`` for the forms below: the whole mag, so relative offsets are absolute
FormFactory = Callable[[Any, Any, Any], Callable[[tuple[int, int, int]], Any]]


def _slice_reader(view: Any, wk: Any, offset: tuple[int, int, int]) -> np.ndarray:
    with view.get_buffered_slice_reader(absolute_bounding_box=wk.BoundingBox(offset, READ_SIZE), buffer_size=READ_SIZE[2]) as reader:
        return np.stack(list(reader), axis=-1)  # slices are (c, x, y)


#: (name, the call for an offset) for 32^3 reads; ``m`` the MagView, ``v`` a View of the whole mag
READ_FORMS: list[tuple[str, FormFactory]] = [
    ("view.read(absolute_offset=o, size=s)", lambda m, v, wk: lambda o: v.read(absolute_offset=o, size=READ_SIZE)),
    ("view.read(s, absolute_offset=o)", lambda m, v, wk: lambda o: v.read(READ_SIZE, absolute_offset=o)),
    ("view.read(relative_offset=o, size=s)", lambda m, v, wk: lambda o: v.read(relative_offset=o, size=READ_SIZE)),
    ("view.read(s, relative_offset=o)", lambda m, v, wk: lambda o: v.read(READ_SIZE, relative_offset=o)),
    ("view.read(absolute_bounding_box=bb)", lambda m, v, wk: lambda o: v.read(absolute_bounding_box=wk.BoundingBox(o, READ_SIZE))),
    ("view.read(relative_bounding_box=bb)", lambda m, v, wk: lambda o: v.read(relative_bounding_box=wk.BoundingBox(o, READ_SIZE))),
    ("mag.read(absolute_offset=o, size=s)", lambda m, v, wk: lambda o: m.read(absolute_offset=o, size=READ_SIZE)),
    ("mag.read(relative_offset=o, size=s)", lambda m, v, wk: lambda o: m.read(relative_offset=o, size=READ_SIZE)),
    ("mag.read(absolute_bounding_box=bb)", lambda m, v, wk: lambda o: m.read(absolute_bounding_box=wk.BoundingBox(o, READ_SIZE))),
    ("mag.read(relative_bounding_box=bb)", lambda m, v, wk: lambda o: m.read(relative_bounding_box=wk.BoundingBox(o, READ_SIZE))),
    ("view.read_xyz(absolute_bounding_box=bb)", lambda m, v, wk: lambda o: v.read_xyz(absolute_bounding_box=wk.BoundingBox(o, READ_SIZE))),
    ("mag.get_view(o, s, read_only).read()", lambda m, v, wk: lambda o: m.get_view(absolute_offset=o, size=READ_SIZE, read_only=True).read()),
    ("view.get_view(relative_offset=o, s, read_only).read()", lambda m, v, wk: lambda o: v.get_view(relative_offset=o, size=READ_SIZE, read_only=True).read()),
    ("buffered slice reader", lambda m, v, wk: lambda o: _slice_reader(v, wk, o)),
]


def _slice_writer(target: Any, offset: tuple[int, int, int], data: np.ndarray) -> None:
    with target.get_buffered_slice_writer(absolute_offset=offset, buffer_size=EDIT_SIZE[2], allow_unaligned=True) as writer:
        for z in range(data.shape[2]):
            writer.send(data[:, :, z])


EditCall = Callable[[tuple[int, int, int], np.ndarray], Any]

#: (name, the edit for an offset and its 8^3 data)
EDIT_FORMS: list[tuple[str, Callable[[Any, Any, Any], EditCall]]] = [
    ("mag.write(d, absolute_offset=o)", lambda m, v, wk: lambda o, d: m.write(d, absolute_offset=o, allow_unaligned=True)),
    ("mag.write(d, relative_offset=o)", lambda m, v, wk: lambda o, d: m.write(d, relative_offset=o, allow_unaligned=True)),
    ("mag.write(d, absolute_bounding_box=bb)", lambda m, v, wk: lambda o, d: m.write(d, absolute_bounding_box=wk.BoundingBox(o, EDIT_SIZE), allow_unaligned=True)),
    ("mag.write(d, relative_bounding_box=bb)", lambda m, v, wk: lambda o, d: m.write(d, relative_bounding_box=wk.BoundingBox(o, EDIT_SIZE), allow_unaligned=True)),
    ("mag.write(d, absolute_offset=o, allow_resize)", lambda m, v, wk: lambda o, d: m.write(d, absolute_offset=o, allow_resize=True, allow_unaligned=True)),
    ("view.write(d, absolute_offset=o)", lambda m, v, wk: lambda o, d: v.write(d, absolute_offset=o, allow_unaligned=True)),
    ("view.write(d, relative_offset=o)", lambda m, v, wk: lambda o, d: v.write(d, relative_offset=o, allow_unaligned=True)),
    ("view.write(d, absolute_bounding_box=bb)", lambda m, v, wk: lambda o, d: v.write(d, absolute_bounding_box=wk.BoundingBox(o, EDIT_SIZE), allow_unaligned=True)),
    ("view.write(d, relative_bounding_box=bb)", lambda m, v, wk: lambda o, d: v.write(d, relative_bounding_box=wk.BoundingBox(o, EDIT_SIZE), allow_unaligned=True)),
    ("mag.get_view(o, s).write(d)", lambda m, v, wk: lambda o, d: m.get_view(absolute_offset=o, size=EDIT_SIZE).write(d, allow_unaligned=True)),
    ("buffered slice writer", lambda m, v, wk: lambda o, d: _slice_writer(m, o, d)),
]

FORM_NAMES = [name for name, _ in READ_FORMS] + [name for name, _ in EDIT_FORMS]


def prepare(path: Path, n: int) -> None:
    """The filled mag both children copy: webknossos alone, LZ4HC, 32^3 blocks, one file per n^3."""
    wk = W.import_wk()
    ds = wk.Dataset(path, voxel_size=(1, 1, 1))
    layer = ds.add_layer(W.LAYER, "color", dtype=np.uint8, data_format="wkw")
    mag = layer.add_mag(1, chunk_shape=BLOCK, shard_shape=n, compress=True)
    mag.write(W.load_data(n), absolute_offset=(0, 0, 0), allow_resize=True)


def measure(lib_name: str, path: Path, n: int, calls: int, edits: int, repeat: int, reads: bool) -> dict[str, dict[str, Any]]:
    """Per form: the best time per call (``time_s``), all repetition times, and ``checked``.

    With ``reads`` (only for the backend's library), the reads are timed with the backend
    on and off in turn (``wk_time_s``: webknossos alone); the edits are timed for
    ``lib_name`` alone (each library edits its own copy of the mag).
    """
    from wkview import webknossos_backend as backend

    lib = W.make_lib(lib_name)
    lib._wk()  # the backend library enables the backend here
    wk = W.import_wk()
    data = W.load_data(n).copy()
    mag = wk.Dataset.open(path).get_layer(W.LAYER).get_mag(1)
    view = mag.get_view(absolute_offset=(0, 0, 0), size=(n, n, n))
    rng = np.random.default_rng(13)
    results: dict[str, dict[str, Any]] = {}
    with warnings.catch_warnings():
        # read_xyz is deprecated and the edit views are not shard-aligned: both warn
        # per call in webknossos, with and without the backend
        warnings.simplefilter("ignore")
        for name, factory in READ_FORMS if reads else []:
            call = factory(mag, view, wk)
            offsets = [tuple(int(v) for v in rng.integers(0, n - READ_SIZE[0] + 1, 3)) for _ in range(calls)]
            times: dict[bool, list[float]] = {False: [], True: []}
            for _ in range(repeat):
                # webknossos alone and with the backend, alternately in this process: the
                # same data, page cache and machine load for both columns
                for on in (False, True):
                    backend.enable() if on else backend.disable()
                    for o in offsets[:4]:  # untimed: opens the array, and checks the voxels
                        got = call(o)
                        want = data[o[0] : o[0] + READ_SIZE[0], o[1] : o[1] + READ_SIZE[1], o[2] : o[2] + READ_SIZE[2]]
                        if got.shape != (1,) + READ_SIZE or not np.array_equal(got[0], want):
                            raise AssertionError(f"{name} read other voxels at {o} (backend {'on' if on else 'off'})")
                    start = time.perf_counter()
                    for o in offsets:
                        call(o)
                    times[on].append((time.perf_counter() - start) / calls)
            backend.enable()
            results[name] = {
                "kind": "read", "calls": calls,
                "times": times[True], "time_s": min(times[True]),
                "wk_times": times[False], "wk_time_s": min(times[False]),
            }
        for name, factory in EDIT_FORMS if edits else []:
            edit = factory(mag, view, wk)
            times = []
            for _ in range(edits):
                o = tuple(int(v) for v in rng.integers(1, n - EDIT_SIZE[0], 3))
                piece = rng.integers(0, 256, EDIT_SIZE, dtype=np.uint8)
                start = time.perf_counter()
                edit(o, piece)
                times.append(time.perf_counter() - start)
                data[o[0] : o[0] + EDIT_SIZE[0], o[1] : o[1] + EDIT_SIZE[1], o[2] : o[2] + EDIT_SIZE[2]] = piece
            results[name] = {"kind": "edit", "times": times, "time_s": min(times), "calls": edits}
    if not np.array_equal(mag.read(absolute_offset=(0, 0, 0), size=(n, n, n))[0], data):
        raise AssertionError(f"{lib_name}: the mag differs from the edited array after the edits")
    for r in results.values():
        r["checked"] = True
    return results

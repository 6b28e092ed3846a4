"""wkview as the storage backend of the current ``webknossos`` package (4.3.x).

One call makes an unchanged webknossos program read and write its WKW layers through
wkview::

    import wkview.webknossos_backend
    wkview.webknossos_backend.enable()      # or: with wkview.webknossos_backend.enabled(): ...

While enabled, webknossos' WKW arrays on local paths read and write through
:class:`wkview._storage.MagStore`: compressed mags through wkview's codec (block-granular
read-modify-write, encoding on all cores), raw mags through libwkw with wkview's file
checks and parallel slabs. webknossos' ``View`` no longer pads an unaligned write into a
compressed mag to whole shards (reading and re-encoding every touched shard): the store's
block-granular read-modify-write does that part. Everything else stays webknossos' own:
its API, its checks (``allow_unaligned`` and its errors), its properties handling, remote
paths and every other data format.

This module is the only place in wkview that touches webknossos' internals. The seams
(all restored by :func:`disable`, which puts back the very objects it replaced):

* ``WKWArray.read`` / ``write`` / ``close`` / ``info`` (``webknossos/dataset/layer/view/_array.py``):
  the array of a local WKW mag gets a ``MagStore`` (kept in a side table, never stored on
  webknossos' objects); remote arrays (``TinyWkwArray``) keep webknossos' code.
* ``View._prepare_compressed_write``: for arrays with a store, the box goes to the store as
  it is, instead of being padded to whole shards (data of another dtype than the layer's
  keeps webknossos' padding, which casts it in padded shards and refuses it in whole ones).
* ``View.read``, ``View.read_xyz``, ``View.get_view``, ``View.get_buffered_slice_reader``:
  on a view whose array has a store, every spelling of the box (``absolute_offset`` or
  ``relative_offset`` with a size, positional or not; ``absolute_bounding_box`` or
  ``relative_bounding_box``; no arguments: the whole view) is computed with plain ints
  and read from the store, and ``get_view`` builds its sub-view without webknossos' box
  arithmetic. Any other call, and any box webknossos would refuse, warn about (the
  deprecated size-only form, unaligned writable sub-views) or treat specially (other box
  types, other axes, ``use_logging``), runs webknossos' own method, so its results,
  errors and warnings are unchanged. Writes keep webknossos' ``write`` (its checks,
  ``allow_resize``, ``allow_unaligned``); only their storage goes through the store.
* ``warn_deprecated`` of webknossos' ``view`` module: the same warning for the same
  caller (the deprecated ``read_xyz``), found without ``inspect.stack()``, which reads the
  source of every frame of the stack.
* ``View.__reduce_ex__``: a WKW view pickled while the backend is enabled enables it in the
  process that unpickles it (see below).

Worker processes: webknossos sends views to its executors' workers as pickles (the chunk
jobs of ``for_each_chunk``, ``for_zipped_chunks``, ``map_chunk``, ``downsample``,
``compress``/``rechunk``, ...). A WKW view pickled while the backend is enabled unpickles
through :func:`_restore_view`, which first enables the backend in that process, with the
parent's options. This works for every executor that pickles (multiprocessing with spawn,
forkserver or fork, Slurm, Dask, Kubernetes, PBS) and needs wkview importable there, as it
is whenever the workers share the parent's environment. A job that opens datasets by path
itself (no view in its arguments) gets the backend from the environment variable
``WKVIEW_WEBKNOSSOS_BACKEND=1``: ``import wkview`` then enables it (no ``.pth`` file, no
import hook: the job's module imports wkview), or from ``enable`` passed as the
executor's initializer (``initializer=wkview.webknossos_backend.enable``).
"""

from __future__ import annotations

import contextlib
import dis
import inspect
import os
import sys
import threading
import warnings
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np

from ._storage import MagStore
from .errors import WkviewError

__all__ = [
    "TESTED_VERSIONS",
    "ENV_VAR",
    "UnsupportedVersionError",
    "enable",
    "disable",
    "enabled",
    "is_enabled",
    "options",
    "store_of",
    "installed_version",
    "enable_from_environment",
]

#: webknossos releases this backend was tested with (``major.minor``); others are refused
#: unless ``enable(allow_untested_version=True)``.
TESTED_VERSIONS = ("4.3",)

#: ``import wkview`` enables the backend when this environment variable is ``1``.
ENV_VAR = "WKVIEW_WEBKNOSSOS_BACKEND"


class UnsupportedVersionError(WkviewError, RuntimeError):
    """The installed webknossos is not a release the backend was tested with, or lacks
    the internals it replaces."""


@dataclass(frozen=True)
class _Options:
    compression_level: int | None
    allow_untested_version: bool

    def as_kwargs(self) -> dict[str, Any]:
        return {"compression_level": self.compression_level, "allow_untested_version": self.allow_untested_version}


class _Backing:
    """What the backend keeps for one webknossos ``WKWArray``: its store (None for a
    remote array) and its ``ArrayInfo`` (computed once: the header does not change)."""

    __slots__ = ("store", "info")

    def __init__(self, store: MagStore | None) -> None:
        self.store = store
        self.info: Any = None


_lock = threading.RLock()
_options: _Options | None = None  # None: disabled
_originals: list[tuple[Any, str, Any]] = []  # (owner (a class or module), name, the owner's own attribute or _MISSING)
_backings: "weakref.WeakKeyDictionary[Any, _Backing]" = weakref.WeakKeyDictionary()
_MISSING = object()


# -- webknossos' internals (imported only here) ------------------------------------------


def _wk_modules() -> Any:
    """webknossos' modules holding the seams; imported late (webknossos is optional)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # webknossos warns at import (image readers)
        from webknossos import version as wk_version
        from webknossos.dataset.layer.view import _array as wk_array
        from webknossos.dataset.layer.view import view as wk_view
        from webknossos import utils as wk_utils
        from webknossos.dataset_properties import DataFormat
        from webknossos import geometry as wk_geometry
        from webknossos.geometry import CXYZ_AXES
    return wk_version, wk_array, wk_view, wk_utils, DataFormat, CXYZ_AXES, wk_geometry


def installed_version() -> str:
    """The installed webknossos' version string (``webknossos.version.__version__``)."""
    return str(_wk_modules()[0].__version__)


def _check_version(allow_untested: bool) -> None:
    version = installed_version()
    parts = version.split(".")
    major_minor = ".".join(parts[:2])
    if major_minor in TESTED_VERSIONS or allow_untested:
        return
    tested = ", ".join(v + ".x" for v in TESTED_VERSIONS)
    raise UnsupportedVersionError(
        f"wkview's webknossos backend was tested with webknossos {tested}; the installed "
        f"webknossos is {version}. It replaces internals of webknossos' WKW arrays and views, "
        f"which change between releases, so it is not enabled. Install webknossos {tested}, "
        f"or call enable(allow_untested_version=True) to try it anyway (then check the "
        f"results)."
    )


# -- the replacements ----------------------------------------------------------------------


def _backing(array: Any) -> _Backing:
    """The side-table entry of a webknossos ``WKWArray`` (created on first use)."""
    backing = _backings.get(array)
    if backing is not None:
        return backing
    with _lock:
        backing = _backings.get(array)
        if backing is None:
            backing = _Backing(_new_store(array))
            _backings[array] = backing
        return backing


def _new_store(array: Any) -> MagStore | None:
    _, _, _, wk_utils, _, _, _ = _WK
    if _options is None or not wk_utils.is_fs_path(array._path):
        return None  # remote WKW (webknossos' TinyWkwArray) stays webknossos' own
    header = array._wkw_dataset.header  # webknossos' own open (and its errors)
    return MagStore(str(array._path), header, compression_level=_options.compression_level)


def store_of(obj: Any) -> MagStore | None:
    """The wkview store behind a webknossos ``View``/``MagView`` or ``WKWArray``, or None
    when the backend is disabled or the object is not a local WKW array."""
    if _options is None:
        return None
    array = obj
    if not isinstance(obj, _WK[1].BaseArray):
        array = obj._array
    if not isinstance(array, _WK[1].WKWArray):
        return None
    return _backing(array).store


def _wkw_exception(message: str) -> Exception:
    import wkw

    return wkw.wkw.WKWException(message)


def _make_replacements(orig: dict[str, Any]) -> dict[tuple[Any, str], Any]:
    """The new attributes, closing over webknossos' originals in ``orig``."""
    _, wk_array, wk_view, _, DataFormat, CXYZ_AXES, _ = _WK
    WKWArray, View = wk_array.WKWArray, wk_view.View
    orig_read, orig_write, orig_close = orig["WKWArray.read"], orig["WKWArray.write"], orig["WKWArray.close"]
    orig_info = orig["WKWArray.info"]
    orig_prepare = orig["View._prepare_compressed_write"]
    orig_view_read = orig["View.read"]
    orig_read_xyz = orig["View.read_xyz"]
    orig_get_view = orig["View.get_view"]
    orig_slice_reader = orig["View.get_buffered_slice_reader"]
    from webknossos.dataset._utils.buffered_slice_reader import BufferedSliceReader
    from webknossos.dataset._utils.buffered_slice_writer import _parse_dimension as parse_dimension
    boxes_as_expected = {a.name for a in _WK[6].NormalizedBoundingBox.__attrs_attrs__} == _BOX_FIELDS
    xyz_warning = _deprecation_warner(orig_read_xyz, "read_xyz", "read_cxyz")

    def read(self: Any, bbox: Any) -> np.ndarray:
        store = _backing(self).store
        if store is None or bbox.axes != CXYZ_AXES:
            return orig_read(self, bbox)
        return store.read(tuple(bbox.topleft.xyz), tuple(bbox.size.xyz))

    def write(self: Any, bbox: Any, data: np.ndarray) -> None:
        store = _backing(self).store
        if store is None or bbox.axes != CXYZ_AXES:
            orig_write(self, bbox, data)
            return
        # the checks (and exceptions) of libwkw's Python wrapper, which webknossos calls
        if not isinstance(data, np.ndarray):
            raise _wkw_exception("Data must be a NumPy ndarray")
        if data.ndim not in (3, 4):
            raise _wkw_exception("Data must be three- or four-dimensional")
        data = data.reshape((-1,) + data.shape[-3:])
        if data.shape[0] != store.num_channels:
            raise _wkw_exception(f"Data volume must have {store.header.num_channels} channels")
        if data.dtype != store.dtype:
            raise _wkw_exception(f"Data elements must be of type {store.header.voxel_type}")
        store.write(tuple(bbox.topleft.xyz), data)

    def close(self: Any) -> None:
        backing = _backings.pop(self, None)
        try:
            orig_close(self)
        finally:
            if backing is not None and backing.store is not None:
                backing.store.close()

    def info(self: Any) -> Any:
        backing = _backing(self)
        if backing.info is None:
            backing.info = orig_info.fget(self)
        return backing.info

    def _prepare_compressed_write(self: Any, current_mag_bbox: Any, data: np.ndarray) -> Iterator[tuple[Any, np.ndarray]]:
        array = self._array
        store = _backing(array).store if isinstance(array, WKWArray) else None
        # (webknossos pads with an array of the layer's dtype, so data of another dtype is
        # cast in padded shards and refused in whole ones: that case keeps its code)
        if store is not None and data.dtype == store.dtype:
            # the store edits only the blocks the box touches: no padding to whole shards
            yield current_mag_bbox, data
            return
        yield from orig_prepare(self, current_mag_bbox, data)

    def view_read(
        self: Any,
        size: Any = None,
        *,
        relative_offset: Any = None,
        absolute_offset: Any = None,
        relative_bounding_box: Any = None,
        absolute_bounding_box: Any = None,
    ) -> np.ndarray:
        plan = _read_plan(self, size, relative_offset, absolute_offset, relative_bounding_box, absolute_bounding_box)
        if plan is not None:
            store, offset, extent = plan
            return store.read(offset, extent)
        return orig_view_read(
            self,
            size,
            relative_offset=relative_offset,
            absolute_offset=absolute_offset,
            relative_bounding_box=relative_bounding_box,
            absolute_bounding_box=absolute_bounding_box,
        )

    def view_read_xyz(self: Any, *, relative_bounding_box: Any = None, absolute_bounding_box: Any = None) -> np.ndarray:
        plan = None
        if xyz_warning is not None and (relative_bounding_box is None) != (absolute_bounding_box is None):
            plan = _read_plan(self, None, None, None, relative_bounding_box, absolute_bounding_box)
        if plan is None:
            return orig_read_xyz(self, relative_bounding_box=relative_bounding_box, absolute_bounding_box=absolute_bounding_box)
        xyz_warning(_caller_outside(sys._getframe(1), own_codes))
        store, offset, extent = plan
        # on (c, x, y, z) boxes webknossos' reordering into (c, x, y, z) leaves the data as read
        return store.read(offset, extent)

    def view_get_view(self: Any, size: Any = None, *, read_only: bool | None = None, **box: Any) -> Any:
        # ``box``: webknossos' offsets and bounding boxes (anything else: its TypeError)
        if box.keys() <= _BOX_KEYWORDS and box.get("relative_bounding_box") is None and box.get("absolute_bounding_box") is None:
            sub_view = _fast_get_view(self, size, box.get("relative_offset"), box.get("absolute_offset"), read_only)
            if sub_view is not None:
                return sub_view
        return orig_get_view(self, size, read_only=read_only, **box)

    def _fast_get_view(view: Any, size: Any, relative_offset: Any, absolute_offset: Any, read_only: Any) -> Any:
        """``get_view`` with offsets (or none) as webknossos does it, computed with ints;
        None whenever webknossos would warn, refuse, or build another box."""
        if not boxes_as_expected:
            return None
        if read_only is None:
            read_only = view._read_only
        elif not isinstance(read_only, bool) or (view._read_only and not read_only):
            return None
        geometry = _geometry(view)
        if geometry is None:
            return None
        own_box, own_offset, own_size, mag = geometry
        box = _offset_box(own_offset, own_size, size, relative_offset, absolute_offset)
        if box is None:
            return None
        offset, extent = box
        # webknossos refuses (or, on empty views, allows) empty boxes and negative offsets
        if min(own_size) <= 0 or min(extent) <= 0 or min(offset) < 0:
            return None
        if not read_only:
            # a writable sub-view lies inside its parent; one that is not shard-aligned
            # (except at the parent's borders) makes webknossos warn: its own path then
            shard = view._cached_array.info.shard_shape.to_tuple()
            for o, s, vo, vs, m, sh in zip(offset, extent, own_offset, own_size, mag, shard):
                if o < vo or o + s > vo + vs or o % m or (o + s) % m or vo % m or (vo + vs) % m:
                    return None
                lo, hi, view_lo, view_hi = o // m, (o + s) // m, vo // m, (vo + vs) // m
                if (lo % sh and lo != view_lo) or (hi % sh and hi != view_hi):
                    return None
        new_box = _box_like(own_box, (own_box.topleft.to_tuple()[0],) + offset, (own_box.size.to_tuple()[0],) + extent)
        return View(
            view._path,
            bounding_box=new_box,
            mag=view._mag,
            data_format=view._data_format,
            read_only=read_only,
            cached_array=view._cached_array,
            dimension_names=view._get_dimension_names(),
        )

    class SliceReader(BufferedSliceReader):  # type: ignore[misc, valid-type]
        """webknossos' buffered slice reader over a plain box of a view the backend
        serves: the slices of the same chunks, read from the store with ints."""

        def __init__(self, view: Any, buffer_size: int, dimension: str, box: Any, store: MagStore,
                     offset: tuple[int, int, int], extent: tuple[int, int, int]) -> None:
            # webknossos' attributes, except its box (``bbox_current_mag``, made on demand)
            self.view = view
            self.buffer_size = buffer_size
            self.dtype = view.get_dtype()
            self.dimension = dimension
            self.use_logging = False
            self._box = box  # the mag-1 box webknossos' own reader starts from
            self._store, self._offset, self._extent = store, offset, extent

        @property
        def bbox_current_mag(self) -> Any:
            return self._box().in_mag(self.view.mag).normalize_axes(self.view.num_channels)

        def _get_slice_generator(self) -> Iterator[np.ndarray]:
            axis = "xyz".index(self.dimension)
            start, stop = self._offset[axis], self._offset[axis] + self._extent[axis]
            for lo in range(start, stop, self.buffer_size):
                offset, extent = list(self._offset), list(self._extent)
                offset[axis], extent[axis] = lo, min(self.buffer_size, stop - lo)
                yield from np.rollaxis(self._store.read(tuple(offset), tuple(extent)), 1 + axis)

    def view_slice_reader(
        self: Any,
        buffer_size: int | None = None,
        dimension: Any = "z",
        *,
        relative_bounding_box: Any = None,
        absolute_bounding_box: Any = None,
        use_logging: bool = False,
    ) -> Any:
        # webknossos parses the dimension first; an int warns (deprecated) naming the
        # frame two above its parser: parsed here, that is still the caller's frame
        dimension = parse_dimension(dimension)
        reader = None
        if not use_logging:
            reader = _fast_slice_reader(self, buffer_size, dimension, relative_bounding_box, absolute_bounding_box)
        if reader is not None:
            return reader
        return orig_slice_reader(
            self, buffer_size, dimension, relative_bounding_box=relative_bounding_box,
            absolute_bounding_box=absolute_bounding_box, use_logging=use_logging,
        )

    def _fast_slice_reader(view: Any, buffer_size: Any, dimension: str, relative_box: Any, absolute_box: Any) -> Any:
        """The reader webknossos makes, for plain boxes the int read path serves: None
        for anything webknossos would refuse (at once or while reading) or treat otherwise."""
        if relative_box is not None and absolute_box is not None:
            return None
        plan = _read_plan(view, None, None, None, relative_box, absolute_box)
        if plan is None:
            return None
        store, offset, extent = plan
        if buffer_size is None:
            buffer_size = view._cached_array.info.shard_shape.to_tuple()["xyz".index(dimension)]
        if type(buffer_size) is not int or buffer_size <= 0:
            return None
        if relative_box is not None:
            box = lambda: relative_box.offset(view.bounding_box.topleft)  # noqa: E731
        elif absolute_box is not None:
            box = lambda: absolute_box  # noqa: E731
        else:
            box = lambda: view.bounding_box  # noqa: E731
        return SliceReader(view, buffer_size, dimension, box, store, offset, extent)

    def warn_deprecated(deprecated_item: str, alternative_item: str) -> None:
        # webknossos' own finds its caller's caller with inspect.stack(), which reads the
        # source of every frame on the stack (milliseconds) and would name the backend's
        # wrapper when one calls the deprecated method
        caller = _caller_outside(sys._getframe(2), own_codes)
        warnings.warn(_deprecation_text(deprecated_item, alternative_item, caller), DeprecationWarning, stacklevel=2)

    own_codes = frozenset({view_read_xyz.__code__})

    def reduce_ex(self: Any, protocol: int) -> Any:
        reduced = object.__reduce_ex__(self, protocol)
        options = _options
        if options is None or self.__dict__.get("_data_format") != DataFormat.WKW or not isinstance(reduced, tuple):
            return reduced
        rebuild, args, *rest = reduced
        return (_restore_view, (options.as_kwargs(), rebuild, args), *rest)

    return {
        (WKWArray, "read"): read,
        (WKWArray, "write"): write,
        (WKWArray, "close"): close,
        (WKWArray, "info"): property(info, doc=orig_info.__doc__),
        (View, "_prepare_compressed_write"): _prepare_compressed_write,
        (View, "read"): _keep_metadata(view_read, orig_view_read),
        (View, "read_xyz"): _keep_metadata(view_read_xyz, orig_read_xyz),
        (View, "get_view"): _keep_metadata(view_get_view, orig_get_view),
        (View, "__reduce_ex__"): reduce_ex,
        (View, "get_buffered_slice_reader"): _keep_metadata(view_slice_reader, orig_slice_reader),
        (wk_view, "warn_deprecated"): _keep_metadata(warn_deprecated, orig["view.warn_deprecated"]),
    }


def _keep_metadata(new: Callable[..., Any], old: Callable[..., Any]) -> Callable[..., Any]:
    """Give a replacement the name, docstring and signature text of webknossos' original."""
    for name in ("__name__", "__qualname__", "__doc__", "__module__"):
        try:
            setattr(new, name, getattr(old, name))
        except (AttributeError, TypeError):
            pass
    new.__wrapped__ = old  # type: ignore[attr-defined]
    return new


def _int3(values: Any) -> tuple[int, int, int] | None:
    """Three ints from a tuple/list/Vec3Int/array of integers, else None (webknossos
    decides what to do with anything else)."""
    if type(values) is tuple and len(values) == 3:  # the common case, without the loop
        a, b, c = values
        if type(a) is int and type(b) is int and type(c) is int:
            return values  # type: ignore[return-value]
    try:
        items = tuple(values)
    except TypeError:
        return None
    if len(items) != 3:
        return None
    out = []
    for v in items:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            return None
        out.append(int(v))
    return out[0], out[1], out[2]


def _geometry(view: Any) -> tuple[Any, tuple[int, int, int], tuple[int, int, int], tuple[int, int, int]] | None:
    """What the int fast paths need of a webknossos view: a box with its channels, axes
    and name (its normalized box; a MagView's layer box), the xyz offset and size of its
    ``bounding_box`` (mag 1) and its mag; None unless the view reads a local WKW array
    through a store and its box is plain (c, x, y, z)."""
    _, wk_array, _, _, _, CXYZ_AXES, _ = _WK
    cached = view.__dict__.get("_cached_array")
    if not isinstance(cached, wk_array.WKWArray):
        return None
    backing = _backings.get(cached)
    if backing is None or backing.store is None:
        return None
    mx, my, mz = view._mag.to_list()
    own_box = view.__dict__.get("_normalized_bounding_box")
    magview = own_box is None
    if magview:  # a MagView: the layer's box, rounded outwards to the mag (below)
        layer = view.__dict__.get("_layer")
        if layer is None:
            return None
        own_box = layer._properties.bounding_box
    if own_box.axes != CXYZ_AXES:
        return None
    c, x, y, z = own_box.topleft.to_tuple()
    nc, sx, sy, sz = own_box.size.to_tuple()
    if c < 0 or nc <= 0:
        return None
    offset, size = (x, y, z), (sx, sy, sz)
    if magview and (mx, my, mz) != (1, 1, 1):
        # webknossos' align_with_mag(ceil=True): the corners floored and ceiled to the mag;
        # the rounded box differs from the layer's only there (the same axes, name, ...)
        low = [o // m * m for o, m in zip(offset, (mx, my, mz))]
        high = [-((-(o + s)) // m) * m for o, s, m in zip(offset, size, (mx, my, mz))]
        offset = (low[0], low[1], low[2])
        size = (high[0] - low[0], high[1] - low[1], high[2] - low[2])
    return own_box, offset, size, (mx, my, mz)


#: the keyword arguments webknossos' ``View`` methods take for a box
_BOX_KEYWORDS = frozenset({"relative_offset", "absolute_offset", "relative_bounding_box", "absolute_bounding_box"})

#: the fields of webknossos 4.3's bounding boxes, all of which :func:`_box_like` sets
_BOX_FIELDS = frozenset({"topleft", "size", "axes", "index", "bottomright", "name", "is_visible", "color"})


def _box_like(template: Any, topleft: tuple[int, ...], size: tuple[int, ...]) -> Any:
    """``template.with_topleft(topleft).with_size(size)`` for a (c, x, y, z) box and a
    positive size, without webknossos' constructor (its converters and checks cost more
    than a small read): the same fields, so an equal box with the same repr."""
    VecInt = _WK[6].VecInt
    axes = template.axes
    box = object.__new__(type(template))
    for name, value in (
        ("topleft", VecInt(topleft, axes=axes)),
        ("size", VecInt(size, axes=axes)),
        ("axes", axes),
        ("index", template.index),
        ("bottomright", VecInt(tuple(a + b for a, b in zip(topleft, size)), axes=axes)),
        ("name", template.name),
        ("is_visible", template.is_visible),
        ("color", template.color),
    ):
        object.__setattr__(box, name, value)
    return box


def _offset_box(
    own_offset: tuple[int, int, int], own_size: tuple[int, int, int], size: Any, relative_offset: Any, absolute_offset: Any
) -> tuple[tuple[int, int, int], tuple[int, int, int]] | None:
    """The mag-1 box of ``size`` at exactly one of the two offsets (ints), or with neither
    offset nor size the view's own box; else None (a size without an offset is
    webknossos' deprecated size-only form: its own path)."""
    if size is None:
        return (own_offset, own_size) if relative_offset is None and absolute_offset is None else None
    if (relative_offset is None) == (absolute_offset is None):
        return None
    extent = _int3(size)
    offset = _int3(absolute_offset if relative_offset is None else relative_offset)
    if extent is None or offset is None:
        return None
    if relative_offset is not None:
        offset = (offset[0] + own_offset[0], offset[1] + own_offset[1], offset[2] + own_offset[2])
    return offset, extent


def _plain_box(box: Any) -> tuple[tuple[int, int, int], tuple[int, int, int]] | None:
    """xyz offset and size of a webknossos ``BoundingBox`` or of an (c, x, y, z)
    ``NDBoundingBox`` (what the buffered slice reader passes); None for other boxes."""
    _, _, _, _, _, CXYZ_AXES, _ = _WK
    if type(box) is _WK[6].BoundingBox:
        # ``VecInt.to_tuple``: the stored tuple itself (``Vec3Int`` overrides it with one
        # that builds a new tuple through three properties, which costs more than the read plan)
        values = _WK[6].VecInt.to_tuple
        x, y, z = values(box.topleft)
        sx, sy, sz = values(box.size)
    elif isinstance(box, _WK[6].NDBoundingBox) and box.axes == CXYZ_AXES:
        _, x, y, z = box.topleft.to_tuple()
        _, sx, sy, sz = box.size.to_tuple()
    else:
        return None
    return (x, y, z), (sx, sy, sz)


def _read_plan(
    view: Any, size: Any, relative_offset: Any, absolute_offset: Any, relative_box: Any, absolute_box: Any
) -> tuple[MagStore, tuple[int, ...], tuple[int, ...]] | None:
    """The store and the box (in the view's mag) webknossos' ``View.read`` reads for
    these arguments, computed with ints; None whenever webknossos would do anything else:
    warn (the size-only form), refuse (empty boxes, negative offsets, boxes off the mag
    grid, mixed arguments), or read another array or another kind of box."""
    geometry = _geometry(view)
    if geometry is None:
        return None
    _, own_offset, own_size, mag = geometry
    if relative_box is None and absolute_box is None:
        box = _offset_box(own_offset, own_size, size, relative_offset, absolute_offset)
        if box is None:
            return None
        offset, extent = box
    else:
        if size is not None or relative_offset is not None or absolute_offset is not None:
            return None
        if relative_box is not None and absolute_box is not None:
            return None
        box = _plain_box(absolute_box if relative_box is None else relative_box)
        if box is None:
            return None
        offset, extent = box
        if relative_box is not None:
            offset = (offset[0] + own_offset[0], offset[1] + own_offset[1], offset[2] + own_offset[2])
    mag_offset = []
    mag_size = []
    for o, s, m in zip(offset, extent, mag):
        if s <= 0 or o < 0 or o % m or (o + s) % m:
            return None
        mag_offset.append(o // m)
        mag_size.append(s // m)
    return _backings[view._cached_array].store, tuple(mag_offset), tuple(mag_size)  # type: ignore[return-value]


def _deprecation_text(item: str, alternative: str, caller: Any) -> str:
    """webknossos' deprecation message (``webknossos.utils.warn_deprecated``), naming the
    file and line of ``caller``, the frame that called the deprecated method."""
    filename, lineno = _frame_location(caller)
    return f"[DEPRECATION] `{item}` is deprecated, please use `{alternative}` instead (see {filename}:{lineno})"


_locations: dict[tuple[Any, int], tuple[str, int]] = {}


def _frame_location(frame: Any) -> tuple[str, int]:
    """File and line of a frame as ``inspect.getframeinfo`` gives them, remembered per
    code position (it looks for the source file on disk each time)."""
    key = (frame.f_code, frame.f_lasti)
    location = _locations.get(key)
    if location is None:
        info = inspect.getframeinfo(frame, 0)  # no source context: that is what is slowest
        location = (info.filename, info.lineno)
        if len(_locations) > 4096:  # call sites, not calls: a bound against generated code
            _locations.clear()
        _locations[key] = location
    return location


def _caller_outside(frame: Any, own_codes: frozenset[Any]) -> Any:
    """The first frame from ``frame`` outwards that is not one of the backend's wrappers
    (webknossos names the caller of its method; the wrapper is not that caller)."""
    while frame is not None and frame.f_code in own_codes:
        frame = frame.f_back
    return frame


def _deprecation_warner(original: Callable[..., Any], item: str, alternative: str) -> Callable[[Any], None] | None:
    """For a fast path that answers instead of webknossos' ``original``: a function giving
    the warning ``original`` gives through its ``warn_deprecated(item, alternative)``
    call, for the caller's frame, attributed to the same module and line of webknossos
    (so warning filters and the once-per-location registry treat both alike). None when
    the original has no such call (then the original always runs)."""
    code = original.__code__
    lineno = None
    for instruction in dis.get_instructions(code):
        if instruction.opname == "LOAD_GLOBAL" and instruction.argval == "warn_deprecated":
            lineno = instruction.positions.lineno if instruction.positions else None
            break
    module = sys.modules.get(original.__module__)
    if lineno is None or module is None:
        return None
    module_globals = module.__dict__

    def warn(caller: Any) -> None:
        registry = module_globals.setdefault("__warningregistry__", {})
        warnings.warn_explicit(
            _deprecation_text(item, alternative, caller), DeprecationWarning, code.co_filename, lineno,
            module.__name__, registry,
        )

    return warn


def _restore_view(options: dict[str, Any], rebuild: Callable[..., Any], args: tuple) -> Any:
    """Unpickles a webknossos view pickled while the backend was enabled: enables the
    backend here first (with the parent's options, unless it is already enabled)."""
    if _options is None:
        enable(**options)
    return rebuild(*args)


# -- enabling and disabling ------------------------------------------------------------------

_WK: Any = None


def _seams() -> dict[str, tuple[Any, str]]:
    _, wk_array, wk_view, _, _, _, _ = _WK
    return {
        "WKWArray.read": (wk_array.WKWArray, "read"),
        "WKWArray.write": (wk_array.WKWArray, "write"),
        "WKWArray.close": (wk_array.WKWArray, "close"),
        "WKWArray.info": (wk_array.WKWArray, "info"),
        "View._prepare_compressed_write": (wk_view.View, "_prepare_compressed_write"),
        "View.read": (wk_view.View, "read"),
        "View.read_xyz": (wk_view.View, "read_xyz"),
        "View.get_view": (wk_view.View, "get_view"),
        "View.get_buffered_slice_reader": (wk_view.View, "get_buffered_slice_reader"),
        "view.warn_deprecated": (wk_view, "warn_deprecated"),
    }


def enable(compression_level: int | None = None, *, allow_untested_version: bool = False) -> None:
    """Make webknossos read and write its local WKW arrays through wkview.

    Parameters
    ----------
    compression_level : int, optional
        LZ4HC level of compressed writes (1-12). Default: wkview's (4: within 10% of
        libwkw's size, about 4x faster). 9 writes exactly the bytes webknossos (libwkw)
        writes.
    allow_untested_version : bool
        Enable even when the installed webknossos is not a tested release
        (:data:`TESTED_VERSIONS`).

    Raises
    ------
    UnsupportedVersionError
        The installed webknossos is not a tested release (and ``allow_untested_version``
        is False), or lacks one of the internals the backend replaces.
    ImportError
        webknossos is not installed.

    Notes
    -----
    Calling it again while enabled changes the options (open stores are closed and
    reopened with them). Views pickled while enabled enable the backend, with these
    options, in the process that unpickles them (worker processes).
    """
    global _WK, _options
    if compression_level is not None:
        if isinstance(compression_level, bool) or not isinstance(compression_level, (int, np.integer)) or not 1 <= compression_level <= 12:
            raise ValueError(f"compression_level must be an int from 1 to 12 (LZ4HC), got {compression_level!r}")
        compression_level = int(compression_level)
    new_options = _Options(compression_level, bool(allow_untested_version))
    with _lock:
        if _WK is None:
            _WK = _wk_modules()
        _check_version(new_options.allow_untested_version)
        if _options is not None:
            if _options != new_options:
                _options = new_options
                _close_stores()
            return
        originals: dict[str, Any] = {}
        for key, (owner, name) in _seams().items():
            value = owner.__dict__.get(name, _MISSING)
            if value is _MISSING or (name == "info" and not isinstance(value, property)):
                raise UnsupportedVersionError(
                    f"webknossos {installed_version()} has no {key} as wkview's backend "
                    f"expects (tested with {', '.join(TESTED_VERSIONS)}): not enabled"
                )
            originals[key] = value
        replacements = _make_replacements(originals)
        saved = [(owner, name, owner.__dict__.get(name, _MISSING)) for owner, name in replacements]
        _options = new_options
        for (owner, name), new in replacements.items():
            setattr(owner, name, new)
        _originals[:] = saved


def disable() -> None:
    """Restore webknossos exactly: the attributes the backend replaced are webknossos'
    own objects again, and the stores it opened are closed. Nothing happens when the
    backend is not enabled."""
    global _options
    with _lock:
        if _options is None:
            return
        for owner, name, value in reversed(_originals):
            if value is _MISSING:
                delattr(owner, name)
            else:
                setattr(owner, name, value)
        _originals.clear()
        _options = None
        _close_stores()


def _close_stores() -> None:
    backings = list(_backings.values())
    _backings.clear()
    for backing in backings:
        if backing.store is not None:
            backing.store.close()


def is_enabled() -> bool:
    """Whether webknossos currently reads and writes WKW through wkview."""
    return _options is not None


def options() -> dict[str, Any] | None:
    """The options :func:`enable` was called with (None when disabled)."""
    return None if _options is None else _options.as_kwargs()


@contextlib.contextmanager
def enabled(compression_level: int | None = None, *, allow_untested_version: bool = False) -> Iterator[None]:
    """Context manager: the backend is enabled inside (see :func:`enable`), and afterwards
    back to what it was (disabled, or enabled with the earlier options)."""
    with _lock:
        before = options()
    enable(compression_level, allow_untested_version=allow_untested_version)
    try:
        yield
    finally:
        if before is None:
            disable()
        else:
            enable(**before)


def enable_from_environment() -> bool:
    """Enable the backend when ``WKVIEW_WEBKNOSSOS_BACKEND`` is ``1`` (``0`` or unset: do
    nothing); returns whether it is enabled. ``import wkview`` calls this."""
    value = os.environ.get(ENV_VAR, "").strip()
    if value in ("", "0"):
        return is_enabled()
    if value != "1":
        raise ValueError(f"{ENV_VAR} must be 1 (enable) or 0 (leave webknossos alone), got {value!r}")
    enable()
    return True

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
* ``View.read``: ``read(size, absolute_offset=...)`` on a backed view computes the box with
  plain ints; any other form of the call, and any box webknossos would refuse or treat
  specially, runs webknossos' own ``read`` (so its errors and warnings are unchanged).
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
import os
import threading
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
_originals: list[tuple[type, str, Any]] = []  # (owner, name, the owner's own attribute or _MISSING)
_backings: "weakref.WeakKeyDictionary[Any, _Backing]" = weakref.WeakKeyDictionary()
_MISSING = object()


# -- webknossos' internals (imported only here) ------------------------------------------


def _wk_modules() -> Any:
    """webknossos' modules holding the seams; imported late (webknossos is optional)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # webknossos warns at import (image readers)
        from webknossos import version as wk_version
        from webknossos.dataset.layer.view import _array as wk_array
        from webknossos.dataset.layer.view import view as wk_view
        from webknossos import utils as wk_utils
        from webknossos.dataset_properties import DataFormat
        from webknossos.geometry import CXYZ_AXES
    return wk_version, wk_array, wk_view, wk_utils, DataFormat, CXYZ_AXES


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
    _, _, _, wk_utils, _, _ = _WK
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


def _make_replacements(orig: dict[str, Any]) -> dict[tuple[type, str], Any]:
    """The new attributes, closing over webknossos' originals in ``orig``."""
    _, wk_array, wk_view, _, DataFormat, CXYZ_AXES = _WK
    WKWArray, View = wk_array.WKWArray, wk_view.View
    orig_read, orig_write, orig_close = orig["WKWArray.read"], orig["WKWArray.write"], orig["WKWArray.close"]
    orig_info = orig["WKWArray.info"]
    orig_prepare = orig["View._prepare_compressed_write"]
    orig_view_read = orig["View.read"]

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
        if (
            size is not None
            and absolute_offset is not None
            and relative_offset is None
            and relative_bounding_box is None
            and absolute_bounding_box is None
        ):
            fast = _fast_read(self, absolute_offset, size)
            if fast is not None:
                return fast
        return orig_view_read(
            self,
            size,
            relative_offset=relative_offset,
            absolute_offset=absolute_offset,
            relative_bounding_box=relative_bounding_box,
            absolute_bounding_box=absolute_bounding_box,
        )

    def _fast_read(view: Any, absolute_offset: Any, size: Any) -> np.ndarray | None:
        """``read(size, absolute_offset=...)`` exactly as webknossos does it (the box in
        the view's mag, through the array's read), computed with ints; None whenever
        webknossos would do anything else: warn, refuse, or use another array."""
        cached = view.__dict__.get("_cached_array")
        if not isinstance(cached, WKWArray):
            return None
        backing = _backings.get(cached)
        if backing is None or backing.store is None:
            return None
        offset = _int3(absolute_offset)
        extent = _int3(size)
        if offset is None or extent is None:
            return None
        own_box = view.__dict__.get("_normalized_bounding_box")
        if own_box is None:  # a MagView: its box is the layer's
            layer = view.__dict__.get("_layer")
            if layer is None:
                return None
            own_box = layer._properties.bounding_box
        if own_box.axes != CXYZ_AXES or own_box.topleft.c < 0 or own_box.size.c <= 0:
            return None
        mag = view._mag.to_list()
        box_offset = []
        box_size = []
        for o, s, m in zip(offset, extent, mag):
            # webknossos refuses empty boxes, negative offsets and boxes off the mag grid
            if s <= 0 or o < 0 or o % m or (o + s) % m:
                return None
            box_offset.append(o // m)
            box_size.append(s // m)
        return backing.store.read(tuple(box_offset), tuple(box_size))

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
        (View, "__reduce_ex__"): reduce_ex,
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


def _restore_view(options: dict[str, Any], rebuild: Callable[..., Any], args: tuple) -> Any:
    """Unpickles a webknossos view pickled while the backend was enabled: enables the
    backend here first (with the parent's options, unless it is already enabled)."""
    if _options is None:
        enable(**options)
    return rebuild(*args)


# -- enabling and disabling ------------------------------------------------------------------

_WK: Any = None


def _seams() -> dict[str, tuple[type, str]]:
    _, wk_array, wk_view, _, _, _ = _WK
    return {
        "WKWArray.read": (wk_array.WKWArray, "read"),
        "WKWArray.write": (wk_array.WKWArray, "write"),
        "WKWArray.close": (wk_array.WKWArray, "close"),
        "WKWArray.info": (wk_array.WKWArray, "info"),
        "View._prepare_compressed_write": (wk_view.View, "_prepare_compressed_write"),
        "View.read": (wk_view.View, "read"),
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

"""Read, validate and atomically write ``datasource-properties.json``.

Two schemas of the file exist (see ``spec/properties-json.md``):

* **0.8 form**, written by webknossos 0.8.x: ``"scale": [x, y, z]`` and, per
  WKW layer, ``"wkwResolutions": [{"resolution": [1, 1, 1] or 1,
  "cubeLength": 1024}]``. Mag folders are found on disk: ``<layer>/<short
  name>`` (``color/2``) if it exists, else the long form (``color/2-2-2``).
* **4.x form**, written by webknossos 4.3.3: ``"scale": {"factor": [x, y, z],
  "unit": "nanometer"}``, ``"version": 1`` and, per layer, ``"mags": [{"mag":
  [1, 1, 1], "path": "./color/1", "cubeLength": 1024, "axisOrder": {...}}]``.

:func:`load_properties` opens both and :func:`save_properties` writes them
back. Which form gets written, and why both webknossos releases read it:

* webknossos 4.3.3 reads the 0.8 form (``dataset_properties/structuring.py``):
  ``dataset_properties_pre_structure`` turns a list ``scale`` into ``{"unit":
  "nanometer", "factor": scale}`` and adds ``version = 1`` when it is missing;
  ``layer_properties_pre_structure`` turns ``wkwResolutions`` of a ``"wkw"``
  layer into ``mags`` (renaming ``resolution`` to ``mag`` and keeping every
  other key of the entry, so a ``path`` there is honoured); a mag without
  ``path`` is found with ``_find_mag_path`` (short folder name, then long;
  ``dataset/layer/layer.py``). When a layer has both keys, ``wkwResolutions``
  wins and ``mags`` is ignored. The converter is a plain ``cattr.Converter``
  (``forbid_extra_keys`` is off), so unknown keys are ignored at every level.
  It needs ``id``, ``scale``, ``dataLayers`` and, per layer, ``name``,
  ``category``, ``boundingBox``, ``dataFormat`` and ``elementClass``
  (``numChannels`` defaults to 1).
* webknossos 0.8.x reads only the 0.8 form: its ``DatasetProperties.scale`` is
  a ``Tuple[float, float, float]`` (a ``{"factor", "unit"}`` object fails),
  a ``"wkw"`` layer needs ``wkwResolutions`` with ``resolution`` keys,
  ``dataFormat`` is required, ``numChannels`` is optional (then it is read from
  ``header.wkw``), ``largestSegmentId`` is a plain int (default -1; ``null``
  and the 4.x ``{"customJsonEncoding": "bigint"}`` envelope fail) and unknown
  keys are ignored (the same cattrs converter).

Hence the rules of :func:`save_properties`:

1. A dataset keeps the form it came in. ``scale_unit is None`` (the list form
   was read, or a new dataset) writes ``scale`` as a list; otherwise the
   ``{"factor", "unit"}`` object. A layer read with ``wkwResolutions`` is
   written with ``wkwResolutions``, one read with ``mags`` with ``mags``.
2. New layers (not read from a file) follow the dataset: ``wkwResolutions``
   when ``scale_unit is None``, else ``mags`` with a ``"./layer/mag"`` path as
   webknossos 4.3.3 writes it.
3. So a **new dataset** (``scale_unit=None``) is written in the 0.8 form, which
   is what webknossos 0.8.13 itself wrote and what 4.3.3 opens (tested with
   ``webknossos.Dataset.open``). ``dataFormat`` and ``numChannels`` are always
   written; ``largestSegmentId`` is omitted when unknown and, in the 0.8 form,
   written as a plain JSON int (4.x form: the bigint envelope above 2**53-1,
   as 4.3.3 does). A ``wkwResolutions`` entry only gets a ``path`` when the
   folder could not be found by the short/long lookup (4.3.3 reads it; 0.8
   has no way to express it) or when the entry had one already.
4. Every field wkview does not model is kept in the ``extra`` dicts and written
   back; keys keep the order they had in the file (new keys go last).

Safety:

* Layer names and mag paths are validated before any disk access: no ``..``,
  no absolute paths or URLs, no separators in layer names. Paths are checked
  lexically (``color/../../x`` is refused); symlinks inside the dataset folder
  are followed like webknossos does (its ``add_symlink_layer`` creates them).
  Mag paths outside the dataset folder are only accepted with
  ``allow_external_paths=True``.
* :func:`save_properties` serialises everything in memory first, writes a
  uniquely named temp file in the dataset folder, flushes and fsyncs it and
  renames it over the old file with :func:`os.replace`. Readers therefore see
  the old or the new file, never a partial one. Writers hold the file's
  cross-process lock; :func:`update_properties` re-reads the file under it so
  that concurrent changes merge instead of the last rename winning. Nothing is written outside the dataset folder (a
  symlinked properties file is replaced, not written through).
* Layers with a ``dataFormat`` other than ``"wkw"`` (zarr, zarr3, n5,
  neuroglancerPrecomputed, ...) are loaded and listed; their mag list is not
  modelled: it stays verbatim in ``extra`` (``mags`` then only lists the
  entries that could be parsed, for information).

The data model and the helpers loading and saving share live in
``wkview._properties_model``, the parsing and validation of a loaded document in
``wkview._properties_load``; this module re-exports the public names.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import stat
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from . import _durable
from ._properties_load import _parse_dataset, _Reader
from ._properties_model import (  # private helpers shared with saving
    _BIGINT_KEY,
    _BIGINT_VALUE,
    _CATEGORIES,
    _KEY_08,
    _KEY_4X,
    _WKW,
    _is_int,
    _is_number,
    _normalize_mag_path,
)
from ._properties_model import (  # the data model; re-exported, see __all__
    COLOR_CATEGORY,
    PROPERTIES_FILE_NAME,
    SEGMENTATION_CATEGORY,
    DatasetProperties,
    LayerProperties,
    MagProperties,
    validate_name,
)
from ._settings import locking_enabled
from .errors import DatasetError, NotADatasetError, PropertiesError
from .geometry import BoundingBox, Mag
from .dtypes import (  # re-exported: the dtype functions used to live here
    dtype_per_channel_from_element_class,
    dtype_per_channel_to_dtype_per_layer,
    dtype_per_layer_to_dtype_per_channel,
    element_class_from_dtype,
)

__all__ = [
    "PROPERTIES_FILE_NAME",
    "MagProperties",
    "LayerProperties",
    "DatasetProperties",
    "load_properties",
    "save_properties",
    "update_properties",
    "dtype_per_channel_from_element_class",
    "element_class_from_dtype",
    "dtype_per_layer_to_dtype_per_channel",
    "dtype_per_channel_to_dtype_per_layer",
    "validate_name",
]


# webknossos 4.3.3 writes segment ids above this as a bigint envelope (_bigint_envelope.py).
_JS_MAX_SAFE_INTEGER = 2**53 - 1


# -- loading ------------------------------------------------------------------------


def load_properties(
    dataset_path: str | os.PathLike, *, allow_external_paths: bool = False
) -> DatasetProperties:
    """Read and validate ``<dataset_path>/datasource-properties.json`` (0.8 or 4.x form).

    Parameters
    ----------
    dataset_path : str or os.PathLike
        The dataset folder.
    allow_external_paths : bool, optional
        Accept mag paths outside the dataset folder (absolute, ``..``, URLs);
        they are kept verbatim in :attr:`MagProperties.path`. Default False.

    Returns
    -------
    DatasetProperties

    Raises
    ------
    NotADatasetError
        When the folder or its properties file does not exist.
    PropertiesError
        For malformed JSON (with line and column), a missing or invalid field
        (the message names the file and the field, e.g.
        ``dataLayers[0].boundingBox``), an unknown element class, duplicate
        layers or mags, and layer names or mag paths that leave the folder.
    """
    folder = Path(dataset_path)
    file = folder / PROPERTIES_FILE_NAME
    try:
        data = file.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        why = (
            "the folder does not exist" if not folder.exists()
            else "it is not a folder" if not folder.is_dir()
            else f"it has no {PROPERTIES_FILE_NAME}"
        )  # fmt: skip
        raise NotADatasetError(f"{folder} is not a dataset: {why}") from None
    except IsADirectoryError:
        raise PropertiesError(f"{file}: is a folder, not a file") from None
    try:
        doc = json.loads(data)
    except json.JSONDecodeError as exc:
        raise PropertiesError(
            f"{file}: not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from None
    except UnicodeDecodeError as exc:
        raise PropertiesError(f"{file}: not UTF-8 text: {exc}") from None
    except RecursionError:
        raise PropertiesError(f"{file}: JSON nested too deeply") from None
    return _parse_dataset(doc, _Reader(file, folder, allow_external_paths))


# -- saving -------------------------------------------------------------------------


class _Writer:
    def __init__(self, file: Path, folder: Path, allow_external: bool) -> None:
        self.file = file
        self.folder = folder
        self.allow_external = allow_external

    def error(self, where: str, problem: str) -> PropertiesError:
        return PropertiesError(f"cannot save {self.file}: {where}: {problem}")


def _ordered(produced: dict, extra: dict, raw: dict | None, canonical: tuple[str, ...]) -> dict:
    """Merge modelled and extra fields; keys keep their order in ``raw``, new keys go last."""
    out: dict = {}
    for key in raw or ():
        if key in produced:
            out[key] = produced[key]
        elif key in extra:
            out[key] = extra[key]
    for key in canonical:
        if key in produced and key not in out:
            out[key] = produced[key]
    for key, value in extra.items():
        if key not in out and key not in produced:
            out[key] = value
    return out


def save_properties(
    dataset_path: str | os.PathLike,
    props: DatasetProperties,
    *,
    allow_external_paths: bool = False,
) -> None:
    """Validate ``props`` and write ``<dataset_path>/datasource-properties.json`` atomically.

    The form follows the rules in the module docstring: a new dataset
    (``scale_unit=None``) is written in the form both webknossos 0.8 and 4.x
    read; a loaded one keeps its form and every field wkview does not model.

    The document is built and serialised in memory first; then a uniquely named
    temp file in the dataset folder is written, flushed, fsynced and renamed over
    the old file (:func:`os.replace`). On any error the old file is untouched and
    the temp file removed.

    Parameters
    ----------
    dataset_path : str or os.PathLike
        The dataset folder; it must exist.
    props : DatasetProperties
        What to write.
    allow_external_paths : bool, optional
        Accept mag paths outside the dataset folder. Default False.

    Raises
    ------
    NotADatasetError
        When ``dataset_path`` is not an existing folder.
    PropertiesError
        When ``props`` is invalid (names the field) or not JSON-serialisable.
    """
    folder = Path(dataset_path)
    file = folder / PROPERTIES_FILE_NAME
    if not folder.is_dir():
        raise NotADatasetError(f"cannot save {PROPERTIES_FILE_NAME}: {folder} is not an existing folder")
    data = _serialise(file, folder, props, allow_external_paths)
    with _durable.locked([str(file)]):
        _atomic_write(file, data)


def _serialise(file: Path, folder: Path, props: DatasetProperties, allow_external_paths: bool) -> bytes:
    w = _Writer(file, folder, allow_external_paths)
    doc = _dump_dataset(props, w)
    try:
        text = json.dumps(doc, indent=4, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise w.error("(document)", f"an extra field is not JSON-serialisable: {exc}") from None
    return text.encode("utf-8")


def update_properties(
    dataset_path: str | os.PathLike,
    change: Callable[[DatasetProperties | None], DatasetProperties],
    *,
    allow_external_paths: bool = False,
) -> DatasetProperties:
    """Read-modify-write ``datasource-properties.json`` under its cross-process lock.

    Under the lock (``.datasource-properties.json.lock``), the file is read as it is
    now, ``change`` gets it (None when there is none or locking is off, for a process
    that writes alone) and returns what to store, which is validated and replaced
    atomically. So changes of concurrent processes that each apply theirs to the
    fresh file all survive. Stale temporary files of a killed writer are removed.

    Parameters
    ----------
    dataset_path : str or os.PathLike
        The dataset folder; it must exist.
    change : callable
        ``change(current) -> DatasetProperties``.
    allow_external_paths : bool, optional
        As for :func:`save_properties`.

    Returns
    -------
    DatasetProperties
        What was written.

    Raises
    ------
    NotADatasetError, PropertiesError
        As :func:`load_properties` and :func:`save_properties`; nothing is written.
    """
    folder = Path(dataset_path)
    file = folder / PROPERTIES_FILE_NAME
    if not folder.is_dir():
        raise NotADatasetError(f"cannot save {PROPERTIES_FILE_NAME}: {folder} is not an existing folder")
    locking = locking_enabled()
    with _durable.locked([str(file)]):
        current = None
        if locking:
            _durable.remove_stale_temps_locked(str(file))
            if file.exists():
                current = load_properties(folder, allow_external_paths=allow_external_paths)
        result = change(current)
        _atomic_write(file, _serialise(file, folder, result, allow_external_paths))
    return result


def _dump_dataset(props: DatasetProperties, w: _Writer) -> dict:
    if not isinstance(props, DatasetProperties):
        raise TypeError(f"save_properties needs a DatasetProperties, got {type(props).__name__}")
    raw = props._raw if isinstance(props._raw, dict) else None
    if not isinstance(props.name, str):
        raise w.error("id.name", f"must be a string, got {props.name!r}")
    if not isinstance(props.team, str):
        raise w.error("id.team", f"must be a string, got {props.team!r}")
    raw_id = raw.get("id") if raw else None
    ident = dict(raw_id) if isinstance(raw_id, dict) else {}
    ident["name"] = props.name
    ident["team"] = props.team

    scale = props.scale
    if (
        not isinstance(scale, (tuple, list))
        or len(scale) != 3
        or not all(_is_number(v) or isinstance(v, (np.floating, np.integer)) for v in scale)
        or not all(math.isfinite(v) and v > 0 for v in scale)
    ):
        raise w.error("scale", f"must be 3 finite positive numbers, got {scale!r}")
    factor = [float(v) for v in scale]
    if props.scale_unit is None:
        scale_doc: Any = factor
    else:
        if not isinstance(props.scale_unit, str) or not props.scale_unit:
            raise w.error("scale.unit", f"must be a non-empty string or None, got {props.scale_unit!r}")
        raw_scale = raw.get("scale") if raw else None
        scale_doc = dict(raw_scale) if isinstance(raw_scale, dict) else {}
        scale_doc.update({"factor": factor, "unit": props.scale_unit})
    default_key = _KEY_08 if props.scale_unit is None else _KEY_4X

    if not isinstance(props.layers, list):
        raise w.error("dataLayers", f"must be a list, got {type(props.layers).__name__}")
    layers = []
    seen: dict[str, int] = {}
    for i, layer in enumerate(props.layers):
        where = f"dataLayers[{i}]"
        layer_doc = _dump_layer(layer, where, default_key, w)
        if layer.name in seen:
            raise w.error(f"{where}.name", f"layer name {layer.name!r} is used twice (also by dataLayers[{seen[layer.name]}])")
        seen[layer.name] = i
        layers.append(layer_doc)

    extra = _extra_dict(props.extra, "(top level) extra", w)
    produced = {"id": ident, "scale": scale_doc, "dataLayers": layers}
    return _ordered(produced, extra, raw, ("id", "scale", "dataLayers"))


def _extra_dict(extra: Any, where: str, w: _Writer) -> dict:
    if not isinstance(extra, dict):
        raise w.error(where, f"must be a dict, got {type(extra).__name__}")
    return extra


def _dump_layer(layer: Any, where: str, default_key: str, w: _Writer) -> dict:
    if not isinstance(layer, LayerProperties):
        raise w.error(where, f"must be a LayerProperties, got {type(layer).__name__}")
    raw = layer._raw if isinstance(layer._raw, dict) else None
    try:
        validate_name(layer.name, "layer name")
    except PropertiesError as exc:
        raise w.error(f"{where}.name", str(exc)) from None
    if layer.category not in _CATEGORIES:
        raise w.error(f"{where}.category", f"must be 'color' or 'segmentation', got {layer.category!r}")
    if not isinstance(layer.data_format, str) or not layer.data_format:
        raise w.error(f"{where}.dataFormat", f"must be a non-empty string, got {layer.data_format!r}")
    try:
        dtype_per_channel_from_element_class(layer.element_class, layer.num_channels)
    except DatasetError as exc:
        raise w.error(f"{where}.elementClass", f"{exc} (numChannels is {layer.num_channels!r})") from None
    if not isinstance(layer.bounding_box, BoundingBox):
        raise w.error(f"{where}.boundingBox", f"must be a BoundingBox, got {layer.bounding_box!r}")
    extra = _extra_dict(layer.extra, f"{where} extra", w)

    bbox = layer.bounding_box.as_wkw()
    raw_bbox = raw.get("boundingBox") if raw else None
    if isinstance(raw_bbox, dict):  # keep fields like axisOrder that 4.3.3 may put there
        bbox = _ordered(bbox, {k: v for k, v in raw_bbox.items() if k not in bbox}, raw_bbox, tuple(bbox))

    if raw is not None and _KEY_08 in raw:
        key = _KEY_08
    elif raw is not None and _KEY_4X in raw:
        key = _KEY_4X
    elif layer.data_format != _WKW:
        key = _KEY_4X  # wkwResolutions only exists for WKW layers
    else:
        key = default_key

    produced: dict = {
        "name": layer.name,
        "category": layer.category,
        "boundingBox": bbox,
        "elementClass": layer.element_class,
        "dataFormat": layer.data_format,
        "numChannels": layer.num_channels,
    }
    if raw is not None and "numChannels" not in raw and layer.num_channels == 1:
        del produced["numChannels"]  # absent means 1 to webknossos 4.3.3; keep the file as it was
    if layer.data_format == _WKW or (_KEY_08 not in extra and _KEY_4X not in extra):
        # Other formats keep their mag list verbatim in extra (not modelled).
        produced[key] = _dump_mags(layer, where, key, w)
    if layer.category == SEGMENTATION_CATEGORY and layer.largest_segment_id is not None:
        lsid = layer.largest_segment_id
        if not _is_int(lsid) and not isinstance(lsid, np.integer):
            raise w.error(f"{where}.largestSegmentId", f"must be an int or None, got {lsid!r}")
        lsid = int(lsid)
        if key == _KEY_4X and lsid > _JS_MAX_SAFE_INTEGER:
            produced["largestSegmentId"] = {_BIGINT_KEY: _BIGINT_VALUE, "value": str(lsid)}
        else:
            produced["largestSegmentId"] = lsid
    if key == _KEY_08:
        canonical = ("name", "category", "boundingBox", "elementClass", _KEY_08, "dataFormat",
                     "numChannels", "largestSegmentId")  # fmt: skip
    else:
        canonical = ("name", "category", "boundingBox", "dataFormat", _KEY_4X, "largestSegmentId",
                     "numChannels", "elementClass")  # fmt: skip
    return _ordered(produced, extra, raw, canonical)


def _dump_mags(layer: LayerProperties, where: str, key: str, w: _Writer) -> list:
    if not isinstance(layer.mags, list):
        raise w.error(f"{where}.{key}", f"must be a list, got {type(layer.mags).__name__}")
    out = []
    seen_mags: set[Mag] = set()
    seen_paths: set[str] = set()
    for i, mag in enumerate(layer.mags):
        mwhere = f"{where}.{key}[{i}]"
        if not isinstance(mag, MagProperties) or not isinstance(mag.mag, Mag):
            raise w.error(mwhere, f"must be a MagProperties with a Mag, got {mag!r}")
        try:
            path = _normalize_mag_path(mag.path, w.allow_external)
        except ValueError as exc:
            raise w.error(f"{mwhere}.path", str(exc)) from None
        if mag.mag in seen_mags:
            raise w.error(mwhere, f"mag {mag.mag} is listed twice")
        if path in seen_paths:
            raise w.error(f"{mwhere}.path", f"folder {path!r} is used by two mags")
        seen_mags.add(mag.mag)
        seen_paths.add(path)
        cl = mag.cube_length
        if cl is not None and (not (_is_int(cl) or isinstance(cl, np.integer)) or cl < 1):
            raise w.error(f"{mwhere}.cubeLength", f"must be a positive int or None, got {cl!r}")
        out.append(_dump_mag(mag, path, layer.name, key, mwhere, w))
    return out


def _dump_mag(mag: MagProperties, path: str, layer_name: str, key: str, where: str, w: _Writer) -> dict:
    raw = mag._raw if isinstance(mag._raw, dict) else None
    extra = _extra_dict(mag.extra, f"{where} extra", w)
    raw_path = raw.get("path") if raw is not None else None
    if isinstance(raw_path, str) and _safe_normalize(raw_path, w.allow_external) == path:
        path_value = raw_path  # keep the spelling of the file ("./color/1" or "color/1")
    elif _safe_normalize(path, False) == path:
        path_value = "./" + path  # as webknossos 4.3.3 writes paths inside the dataset
    else:
        path_value = path  # an external path, accepted with allow_external_paths
    short = f"{layer_name}/{mag.mag.to_layer_name()}"
    long = f"{layer_name}/{mag.mag.to_long_layer_name()}"
    # Readers without a path look for the short folder first, then the long one.
    found_without_path = path == short or (path == long and not (w.folder / short).exists())
    if key == _KEY_08:
        write_path = "path" in (raw or {}) or not found_without_path
    else:
        write_path = not (raw is not None and "path" not in raw and found_without_path)
    mag_key = "resolution" if key == _KEY_08 else "mag"
    produced: dict = {mag_key: mag.mag.to_list()}
    if mag.cube_length is not None:
        produced["cubeLength"] = int(mag.cube_length)
    if write_path:
        produced["path"] = path_value
    canonical = (mag_key, "cubeLength", "path") if key == _KEY_08 else (mag_key, "path", "cubeLength")
    return _ordered(produced, extra, raw, canonical)


def _safe_normalize(raw: str, allow_external: bool) -> str | None:
    try:
        return _normalize_mag_path(raw, allow_external)
    except ValueError:
        return None


# -- atomic write -------------------------------------------------------------------


def _umask() -> int:
    """The process umask without changing it (``os.umask`` would race with other threads)."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o022


def _new_file_mode(file: Path) -> int:
    try:
        return stat.S_IMODE(os.stat(file).st_mode)
    except OSError:
        return 0o666 & ~_umask()


def _atomic_write(file: Path, data: bytes) -> None:
    """Write ``data`` to ``file`` via a temp file in the same folder and an atomic rename.

    The temp file is fsynced before the rename and the folder after it (unless fsync is
    off, ``WKVIEW_FSYNC=0``); on any error (a full disk, no permission) the old file is
    untouched and the temp file removed.
    """
    folder = file.parent
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{file.name}.", suffix=".tmp")
    except PermissionError as exc:
        raise PermissionError(exc.errno, f"cannot write {file}: no write permission in {folder}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            _durable.fsync_fd(f.fileno())
        with contextlib.suppress(OSError):  # mkstemp creates 0600; match a normal file
            os.chmod(tmp, _new_file_mode(file))
        _replace(tmp, file)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise OSError(
                exc.errno, f"{exc.strerror} while writing {file}: the old file is unchanged"
            ) from exc
        raise
    _durable.fsync_folder(folder)


def _replace(tmp: str, file: Path) -> None:
    # On Windows, os.replace fails while another process has the target open; retry briefly.
    attempts = 20 if os.name == "nt" else 1
    for attempt in range(attempts):
        try:
            os.replace(tmp, file)
            return
        except PermissionError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.01 * (attempt + 1))


def _fsync_folder(folder: Path) -> None:
    """Make the rename durable (POSIX), unless fsync is off."""
    _durable.fsync_folder(folder)

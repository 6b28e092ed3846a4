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

Code layout: the data model and the helpers loading and saving share live in
``wkview._properties_model``, the parsing and validation of a loaded document in
``wkview._properties_load``, its validation and serialisation for saving in
``wkview._properties_dump``; the atomic write is :func:`wkview._durable.replacing`.
This module keeps the public functions and re-exports every public name, so import
them from here.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable

from . import _durable
from ._properties_dump import _serialise
from ._properties_load import _parse_dataset, _Reader
from ._properties_model import (  # the data model; re-exported, see __all__
    PROPERTIES_FILE_NAME,
    DatasetProperties,
    LayerProperties,
    MagProperties,
    validate_name,
)
from ._settings import locking_enabled
from .errors import NotADatasetError, PropertiesError
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
    _durable.write_file(file, data)


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
        if locking and file.exists():
            current = load_properties(folder, allow_external_paths=allow_external_paths)
        result = change(current)
        data = _serialise(file, folder, result, allow_external_paths)
        _durable.write_file(file, data, lock=False)  # the lock is held since the read
    return result

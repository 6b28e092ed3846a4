"""The data model of ``datasource-properties.json`` and what loading and saving share.

Private: import these names from :mod:`wkview.properties`, which re-exports them and
documents both schemas. :mod:`wkview._properties_load` and
:mod:`wkview._properties_dump` import this module; it imports neither of them.
"""

from __future__ import annotations

import os
import posixpath
import re
from dataclasses import dataclass, field
from pathlib import PureWindowsPath
from typing import Any

import numpy as np

from .dtypes import dtype_per_channel_from_element_class, dtype_per_channel_to_dtype_per_layer
from .errors import PropertiesError
from .geometry import BoundingBox, Mag

PROPERTIES_FILE_NAME = "datasource-properties.json"

COLOR_CATEGORY = "color"
SEGMENTATION_CATEGORY = "segmentation"
_CATEGORIES = (COLOR_CATEGORY, SEGMENTATION_CATEGORY)

_WKW = "wkw"
_KEY_08 = "wkwResolutions"
_KEY_4X = "mags"

# webknossos 4.3.3 writes large segment ids as a bigint envelope (_bigint_envelope.py).
_BIGINT_KEY = "customJsonEncoding"
_BIGINT_VALUE = "bigint"

_URL_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")


# -- data model ---------------------------------------------------------------------


@dataclass
class MagProperties:
    """One mag of a WKW layer as stored in ``datasource-properties.json``.

    Attributes
    ----------
    mag : Mag
        The magnification.
    cube_length : int or None
        ``block_len * file_len`` (``"cubeLength"``); None when the file lacks it.
    path : str
        Folder of the mag relative to the dataset folder, POSIX and normalised
        (``"color/1"``, ``"color/2-2-1"``). It never leaves the dataset folder
        unless the properties were loaded with ``allow_external_paths=True``.
    extra : dict
        Every other field of the entry (``axisOrder``, ...), written back on save.
    """

    mag: Mag
    cube_length: int | None
    path: str
    extra: dict = field(default_factory=dict)
    # The entry as read (None for a new mag): key order and path spelling on save.
    _raw: dict | None = field(default=None, repr=False, compare=False)


@dataclass
class LayerProperties:
    """One entry of ``dataLayers``.

    Attributes
    ----------
    name : str
        Layer name, also its folder name.
    category : str
        ``"color"`` or ``"segmentation"``.
    element_class : str
        Type of a voxel with all channels together (``"uint8"``, ``"uint24"``
        for 3 x uint8, ``"float"`` for float32, ``"double"``, ``"float96"``, ...).
    num_channels : int
        Number of channels; splits ``element_class`` into ``dtype_per_channel``.
    bounding_box : BoundingBox
        The layer's bounding box in mag-1 voxels.
    data_format : str
        ``"wkw"``, or another format (``"zarr"``, ``"zarr3"``, ``"n5"``,
        ``"neuroglancerPrecomputed"``) that wkview lists but cannot read.
    mags : list of MagProperties
        The mags. For layers that are not ``"wkw"`` the original mag list stays
        verbatim in ``extra`` and this list is informational only.
    largest_segment_id : int or None
        Segmentation layers only; None when unknown.
    extra : dict
        Every other field of the entry (``mappings``, ``defaultViewConfiguration``,
        ...), written back on save.
    """

    name: str
    category: str
    element_class: str
    num_channels: int
    bounding_box: BoundingBox
    data_format: str
    mags: list[MagProperties]
    largest_segment_id: int | None = None
    extra: dict = field(default_factory=dict)
    # The entry as read (None for a new layer): schema, key order, bbox extras on save.
    _raw: dict | None = field(default=None, repr=False, compare=False)

    @property
    def dtype_per_channel(self) -> np.dtype:
        """The NumPy dtype of one channel (``uint24`` with 3 channels: ``uint8``)."""
        return dtype_per_channel_from_element_class(self.element_class, self.num_channels)

    @property
    def dtype_per_layer(self) -> str:
        """The dtype of all channels together as a NumPy-style name (``"uint24"``, ``"float32"``)."""
        return dtype_per_channel_to_dtype_per_layer(self.dtype_per_channel, self.num_channels)


@dataclass
class DatasetProperties:
    """The whole ``datasource-properties.json``.

    Attributes
    ----------
    name : str
        ``id.name``.
    team : str
        ``id.team`` (``""`` when missing).
    scale : tuple of 3 floats
        Voxel size (``scale`` or ``scale.factor``).
    scale_unit : str or None
        ``scale.unit`` of the 4.x form; None for the 0.8 list form. None is
        also what a new dataset should use: it is written in the form both
        webknossos 0.8 and 4.x read.
    layers : list of LayerProperties
        ``dataLayers``, in file order.
    extra : dict
        Every other top-level field (``version``, ``defaultViewConfiguration``, ...).
    """

    name: str
    team: str
    scale: tuple[float, float, float]
    scale_unit: str | None
    layers: list[LayerProperties]
    extra: dict = field(default_factory=dict)
    # The document as read (None for a new dataset): key order, id and scale extras.
    _raw: dict | None = field(default=None, repr=False, compare=False)


# -- names --------------------------------------------------------------------------


def validate_name(name: str, what: str) -> str:
    """Check that ``name`` is one safe path component (a layer or folder name).

    Parameters
    ----------
    name : str
        The name to check.
    what : str
        What it names, for the message (``"layer name"``).

    Returns
    -------
    str
        ``name`` unchanged.

    Raises
    ------
    PropertiesError
        (a ValueError) for a non-string, ``""``, ``"."``, ``".."``, a name with
        ``/``, ``\\`` or NUL, or an absolute (also Windows drive) path.
    """
    if not isinstance(name, str):
        raise PropertiesError(f"{what} must be a string, got {name!r}")
    problem = None
    if name in ("", ".", ".."):
        problem = "it is empty or a relative folder reference"
    elif "\x00" in name:
        problem = "it contains a NUL character"
    elif "/" in name or "\\" in name:
        problem = "it contains a path separator"
    elif os.path.isabs(name) or PureWindowsPath(name).drive:
        problem = "it is an absolute path"
    if problem is not None:
        raise PropertiesError(
            f"{what} {name!r} is not allowed: {problem}; it must name one folder "
            "inside the dataset folder"
        )
    return name


# -- shared helpers -----------------------------------------------------------------


def _normalize_mag_path(raw: Any, allow_external: bool) -> str:
    """Normalised POSIX path relative to the dataset folder; raise ValueError if unsafe.

    With ``allow_external``, a path leaving the folder is returned unchanged.
    """
    if not isinstance(raw, str):
        raise ValueError(f"must be a string, got {raw!r}")
    if raw == "":
        raise ValueError("must not be empty")
    if "\x00" in raw:
        raise ValueError(f"{raw!r} contains a NUL character")
    external = None
    if _URL_RE.match(raw):
        external = "is a URL"
    elif "\\" in raw:
        if not allow_external:
            raise ValueError(f"{raw!r} contains a backslash; use '/' as separator")
        external = "uses backslashes"
    elif posixpath.isabs(raw) or PureWindowsPath(raw).drive:
        external = "is absolute"
    else:
        norm = posixpath.normpath(raw)
        if norm == ".":
            raise ValueError(f"{raw!r} is the dataset folder itself, not a mag folder")
        if norm == ".." or norm.startswith("../"):
            external = "leaves the dataset folder"
        else:
            return norm
    if allow_external:
        return raw
    raise ValueError(
        f"{raw!r} {external}; wkview only reads and writes mags inside the dataset folder "
        "(pass allow_external_paths=True to accept it)"
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)

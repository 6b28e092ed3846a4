"""Element classes and dtypes of WKW layers, as webKNOSSOS names them.

A layer stores ``num_channels`` channels of one NumPy dtype per voxel. The
properties file names the whole voxel with an *element class*: the per-layer
bit count (``"uint24"`` for 3 x uint8), except that webKNOSSOS spells float32
``"float"`` and float64 ``"double"``. These functions convert between the
three forms (per channel, per layer, element class) in both directions, as
webknossos 0.8.13 wrote them and 4.3.3 reads them.
"""

from __future__ import annotations

import operator
import re
from typing import Any

import numpy as np

from .errors import DatasetError, DTypeError

__all__ = [
    "dtype_argument",
    "dtype_per_channel_argument",
    "dtype_per_channel_from_element_class",
    "element_class_from_dtype",
    "dtype_per_layer_to_dtype_per_channel",
    "dtype_per_channel_to_dtype_per_layer",
]

# Dtypes WKW can store per channel (wkw.Header.VALID_VOXEL_TYPES).
_DTYPES_PER_CHANNEL = (
    "uint8", "uint16", "uint32", "uint64",
    "int8", "int16", "int32", "int64",
    "float32", "float64",
)  # fmt: skip
# webknossos names float32/float64 *per layer* "float"/"double" (dtype_conversion.py).
_ELEMENT_CLASS_ALIASES = {"float": "float32", "double": "float64"}
_ALIAS_OF_DTYPE_PER_LAYER = {"float32": "float", "float64": "double"}
_DTYPE_NAME_RE = re.compile(r"^(uint|int|float)([1-9][0-9]*)$")


def dtype_argument(value: Any) -> Any:
    """A ``dtype_per_channel`` / ``dtype_per_layer`` argument as webknossos 0.8.13 reads
    it: the string ``"float"`` and Python's ``float`` are webKNOSSOS' ``float``
    (float32, where NumPy would read float64), ``"double"`` is float64; any other value
    is returned as it is (a NumPy dtype, ``np.float64``, ``"float64"``, ``"uint24"``...).
    """
    if value is float or (isinstance(value, str) and value in _ELEMENT_CLASS_ALIASES):
        return np.dtype(_ELEMENT_CLASS_ALIASES["float" if value is float else value])
    return value


def dtype_per_channel_argument(value: Any) -> np.dtype:
    """The NumPy dtype a ``dtype_per_channel`` argument means (see :func:`dtype_argument`)."""
    return np.dtype(dtype_argument(value))


def _check_num_channels(num_channels: Any) -> int:
    if isinstance(num_channels, (bool, np.bool_)) or not hasattr(num_channels, "__index__"):
        raise DatasetError(f"num_channels must be an int, got {num_channels!r}")
    n = operator.index(num_channels)
    if n < 1:
        raise DatasetError(f"num_channels must be at least 1, got {n}")
    return n


def _split_per_layer(per_layer: str, num_channels: int, what: str) -> np.dtype:
    """``"uint24", 3 -> uint8``: divide the bit count of a per-layer name by the channels."""
    m = _DTYPE_NAME_RE.match(per_layer)
    if m is None:
        raise DTypeError(
            f"unknown {what} {per_layer!r}: expected uint8, uint16, uint32, uint64, int8, "
            "int16, int32, int64, float, double or a multi-channel form such as uint24"
        )
    kind, bits = m.group(1), int(m.group(2))
    if bits % num_channels:
        raise DTypeError(
            f"{what} {per_layer!r} ({bits} bits) cannot be split into {num_channels} channels"
        )
    per_channel = f"{kind}{bits // num_channels}"
    if per_channel not in _DTYPES_PER_CHANNEL:
        raise DTypeError(
            f"{what} {per_layer!r} with {num_channels} channel(s) means {per_channel} per "
            f"channel, which WKW cannot store (supported: {', '.join(_DTYPES_PER_CHANNEL)})"
        )
    return np.dtype(per_channel)


def _per_channel_dtype(dtype_per_channel: Any) -> np.dtype:
    try:
        dt = np.dtype(dtype_per_channel)
    except TypeError as exc:
        raise DTypeError(f"not a dtype: {dtype_per_channel!r}") from exc
    if dt.name not in _DTYPES_PER_CHANNEL or dt.byteorder == ">":
        raise DTypeError(
            f"WKW cannot store {dt.str} ({dtype_per_channel!r}) per channel; "
            f"supported: {', '.join(_DTYPES_PER_CHANNEL)} (little-endian)"
        )
    return np.dtype(dt.name)


def dtype_per_channel_from_element_class(element_class: str, num_channels: int) -> np.dtype:
    """The per-channel dtype of a layer's ``elementClass``.

    Mirrors webknossos 4.3.3 (``element_class_to_dtype_per_channel``):
    ``"float"``/``"double"`` are float32/float64 per layer, any other class is
    a NumPy name whose bit count is divided by the channels (``"uint24", 3 ->
    uint8``, ``"float96", 3 -> float32``). Unlike webknossos, a bit count that
    does not divide evenly is refused instead of truncated.

    Parameters
    ----------
    element_class : str
        ``elementClass`` of the properties file.
    num_channels : int
        ``numChannels`` (>= 1).

    Returns
    -------
    numpy.dtype
        One of uint8..uint64, int8..int64, float32, float64.

    Raises
    ------
    DatasetError
        For an unknown class or one that does not split into ``num_channels``.
    """
    n = _check_num_channels(num_channels)
    if not isinstance(element_class, str):
        raise DTypeError(f"element class must be a string, got {element_class!r}")
    per_layer = _ELEMENT_CLASS_ALIASES.get(element_class, element_class)
    return _split_per_layer(per_layer, n, "element class")


def dtype_per_channel_to_dtype_per_layer(dtype_per_channel: Any, num_channels: int) -> str:
    """The NumPy-style name of all channels together: ``uint8, 3 -> "uint24"``.

    Parameters
    ----------
    dtype_per_channel : dtype-like
        One of uint8..uint64, int8..int64, float32, float64.
    num_channels : int
        Number of channels (>= 1).

    Returns
    -------
    str
        For example ``"uint8"``, ``"uint24"``, ``"float32"``, ``"float96"``.
    """
    n = _check_num_channels(num_channels)
    dt = _per_channel_dtype(dtype_per_channel)
    m = _DTYPE_NAME_RE.match(dt.name)
    if m is None:  # pragma: no cover - every supported dtype matches
        raise DTypeError(f"unsupported dtype {dt.name}")
    return f"{m.group(1)}{int(m.group(2)) * n}"


def element_class_from_dtype(dtype_per_channel: Any, num_channels: int) -> str:
    """The ``elementClass`` webknossos writes for a layer.

    Mirrors webknossos 4.3.3 (``dtype_per_channel_to_element_class``): the
    per-layer name, with ``"float32"`` spelled ``"float"`` and ``"float64"``
    spelled ``"double"`` (so float32 with 2 channels is ``"double"`` and with 3
    channels ``"float96"``).

    Parameters
    ----------
    dtype_per_channel : dtype-like
        One of uint8..uint64, int8..int64, float32, float64.
    num_channels : int
        Number of channels (>= 1).

    Returns
    -------
    str
    """
    per_layer = dtype_per_channel_to_dtype_per_layer(dtype_per_channel, num_channels)
    return _ALIAS_OF_DTYPE_PER_LAYER.get(per_layer, per_layer)


def dtype_per_layer_to_dtype_per_channel(dtype_per_layer: str | np.dtype, num_channels: int) -> np.dtype:
    """Split a per-layer dtype into channels: ``"uint24", 3 -> uint8``.

    Parameters
    ----------
    dtype_per_layer : str or dtype-like
        A per-layer name (``"uint24"``, ``"float96"``), an element class
        (``"float"`` and Python's ``float`` mean float32, ``"double"`` float64,
        as in webknossos' properties), or a NumPy dtype.
    num_channels : int
        Number of channels (>= 1).

    Returns
    -------
    numpy.dtype
    """
    n = _check_num_channels(num_channels)
    dtype_per_layer = dtype_argument(dtype_per_layer)
    if isinstance(dtype_per_layer, str):
        name = dtype_per_layer
        if _DTYPE_NAME_RE.match(name) is None:
            try:
                name = np.dtype(name).name
            except TypeError as exc:
                raise DTypeError(f"unknown dtype_per_layer {dtype_per_layer!r}") from exc
    else:
        try:
            name = np.dtype(dtype_per_layer).name
        except TypeError as exc:
            raise DTypeError(f"not a dtype: {dtype_per_layer!r}") from exc
    return _split_per_layer(name, n, "dtype_per_layer")

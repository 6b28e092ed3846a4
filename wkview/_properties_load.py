"""Parsing and validation of a decoded ``datasource-properties.json`` (both schemas).

Private: :func:`wkview.properties.load_properties` reads the file and calls
:func:`_parse_dataset`; the rules are in the docstring of :mod:`wkview.properties`.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from ._properties_model import (
    _BIGINT_KEY,
    _BIGINT_VALUE,
    _CATEGORIES,
    _KEY_08,
    _KEY_4X,
    _WKW,
    SEGMENTATION_CATEGORY,
    DatasetProperties,
    LayerProperties,
    MagProperties,
    _is_int,
    _is_number,
    _normalize_mag_path,
    validate_name,
)
from .dtypes import dtype_per_channel_from_element_class
from .errors import DatasetError, PropertiesError
from .geometry import BoundingBox, Mag

# header.wkw: b"WKW", version, log2 lens, block type, voxel type, voxel size (bytes).
_WKW_VOXEL_TYPE_SIZES = {1: 1, 2: 2, 3: 4, 4: 8, 5: 4, 6: 8, 7: 1, 8: 2, 9: 4, 10: 8}

_MISSING = object()

# Limits of what a WKW dataset can hold: libwkw addresses voxels with uint32 coordinates,
# block_len and file_len are at most 1024, mags are powers of two.
_MAX_COORD = 2**32
_MAX_CUBE_LENGTH = 2**20
_MAX_MAG = 2**31


# -- paths --------------------------------------------------------------------------


def _find_mag_folder(folder: Path, layer_name: str, mag: Mag) -> str:
    """The mag folder as webknossos finds it: the short name if it exists, else the long one."""
    short = f"{layer_name}/{mag.to_layer_name()}"
    long = f"{layer_name}/{mag.to_long_layer_name()}"
    if (folder / short).exists():
        return short
    if (folder / long).exists():
        return long
    return short


def _num_channels_from_header(mag_dir: Path) -> int | None:
    """numChannels from a mag's ``header.wkw`` (as webknossos 0.8 does when it is missing)."""
    try:
        with open(mag_dir / "header.wkw", "rb") as f:
            head = f.read(8)
    except OSError:
        return None
    if len(head) < 8 or head[:3] != b"WKW":
        return None
    size = _WKW_VOXEL_TYPE_SIZES.get(head[6])
    if size is None or head[7] == 0 or head[7] % size:
        return None
    return head[7] // size


# -- loading ------------------------------------------------------------------------


def _type_name(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
            type(None): "null", int: "an int", float: "a float"}.get(type(value), type(value).__name__)  # fmt: skip


class _Reader:
    """Context of one load: the file (for messages), the folder and the path policy."""

    def __init__(self, file: Path, folder: Path, allow_external: bool) -> None:
        self.file = file
        self.folder = folder
        self.allow_external = allow_external

    def error(self, where: str, problem: str) -> PropertiesError:
        return PropertiesError(f"{self.file}: {where}: {problem}")

    def require(self, obj: dict, key: str, where: str) -> Any:
        if key not in obj:
            raise self.error(f"{where}.{key}" if where else key, "missing required field")
        return obj[key]

    def object(self, value: Any, where: str) -> dict:
        if not isinstance(value, dict):
            raise self.error(where, f"must be a JSON object, got {_type_name(value)}")
        return value

    def list(self, value: Any, where: str) -> list:
        if not isinstance(value, list):
            raise self.error(where, f"must be a list, got {_type_name(value)}")
        return value

    def string(self, value: Any, where: str) -> str:
        if not isinstance(value, str):
            raise self.error(where, f"must be a string, got {_type_name(value)} {value!r}")
        return value


def _parse_dataset(doc: Any, r: _Reader) -> DatasetProperties:
    if not isinstance(doc, dict):
        raise r.error("(top level)", f"must be a JSON object, got {_type_name(doc)}")
    ident = r.object(r.require(doc, "id", ""), "id")
    name = r.string(r.require(ident, "name", "id"), "id.name")
    team = ident.get("team")
    team = "" if team is None else r.string(team, "id.team")
    scale, scale_unit = _parse_scale(r.require(doc, "scale", ""), r)
    layer_docs = r.list(r.require(doc, "dataLayers", ""), "dataLayers")
    layers = []
    seen: dict[str, int] = {}
    for i, layer_doc in enumerate(layer_docs):
        layer = _parse_layer(layer_doc, f"dataLayers[{i}]", r)
        if layer.name in seen:
            raise r.error(
                f"dataLayers[{i}].name",
                f"layer name {layer.name!r} is used twice (also by dataLayers[{seen[layer.name]}])",
            )
        seen[layer.name] = i
        layers.append(layer)
    extra = {k: v for k, v in doc.items() if k not in ("id", "scale", "dataLayers")}
    return DatasetProperties(name, team, scale, scale_unit, layers, extra, _raw=doc)


def _parse_vec3_numbers(value: Any, where: str, r: _Reader) -> tuple[float, float, float]:
    if not isinstance(value, list) or len(value) != 3 or not all(_is_number(v) for v in value):
        raise r.error(where, f"must be a list of 3 numbers, got {value!r}")
    if not all(math.isfinite(v) and v > 0 for v in value):
        raise r.error(where, f"voxel size must be finite and positive, got {value!r}")
    return (float(value[0]), float(value[1]), float(value[2]))


def _parse_scale(value: Any, r: _Reader) -> tuple[tuple[float, float, float], str | None]:
    if isinstance(value, list):
        return _parse_vec3_numbers(value, "scale", r), None
    if isinstance(value, dict):
        factor = _parse_vec3_numbers(r.require(value, "factor", "scale"), "scale.factor", r)
        unit = value.get("unit", "nanometer")
        unit = r.string(unit, "scale.unit")
        if not unit:
            raise r.error("scale.unit", "must not be empty")
        return factor, unit
    raise r.error(
        "scale",
        f"must be a list of 3 numbers or an object with factor and unit, got {_type_name(value)}",
    )


def _parse_bbox(value: Any, where: str, r: _Reader) -> BoundingBox:
    box = r.object(value, where)
    top_left = r.require(box, "topLeft", where)
    if not isinstance(top_left, list) or len(top_left) != 3 or not all(_is_int(v) for v in top_left):
        raise r.error(f"{where}.topLeft", f"must be a list of 3 ints, got {top_left!r}")
    if not all(0 <= v < _MAX_COORD for v in top_left):
        raise r.error(f"{where}.topLeft", f"must lie in 0 to 2**32 - 1 (WKW's voxel range), got {top_left!r}")
    size = []
    for axis, key in enumerate(("width", "height", "depth")):
        v = r.require(box, key, where)
        if not _is_int(v):
            raise r.error(f"{where}.{key}", f"must be an int, got {v!r}")
        if v < 0:
            raise r.error(f"{where}.{key}", f"must not be negative, got {v}")
        if top_left[axis] + v > _MAX_COORD:
            raise r.error(f"{where}.{key}", f"reaches past voxel 2**32 (WKW's voxel range): {v} from {top_left[axis]}")
        size.append(v)
    return BoundingBox(top_left, size)


def _parse_segment_id(value: Any, where: str, r: _Reader) -> int | None:
    if value is None:
        return None
    if isinstance(value, dict) and value.get(_BIGINT_KEY) == _BIGINT_VALUE:
        digits = value.get("value")
        if isinstance(digits, str) and re.fullmatch(r"-?[0-9]{1,20}", digits) and -1 <= int(digits) < 2**64:
            return int(digits)
        raise r.error(where, f"bigint envelope without a decimal string value: {value!r}")
    if not _is_int(value):
        raise r.error(where, f"must be an int, got {value!r}")
    if not -1 <= value < 2**64:
        raise r.error(where, f"must lie in -1 to 2**64 - 1, got {value}")
    return value


def _parse_layer(value: Any, where: str, r: _Reader) -> LayerProperties:
    doc = r.object(value, where)
    name = r.string(r.require(doc, "name", where), f"{where}.name")
    try:
        validate_name(name, "layer name")
    except PropertiesError as exc:
        raise r.error(f"{where}.name", str(exc)) from None
    category = r.string(r.require(doc, "category", where), f"{where}.category")
    if category not in _CATEGORIES:
        raise r.error(f"{where}.category", f"must be 'color' or 'segmentation', got {category!r}")
    bbox = _parse_bbox(r.require(doc, "boundingBox", where), f"{where}.boundingBox", r)
    element_class = r.string(r.require(doc, "elementClass", where), f"{where}.elementClass")

    data_format = doc.get("dataFormat", _MISSING)
    if data_format is _MISSING:
        # Files older than dataFormat only had WKW layers.
        if _KEY_08 not in doc:
            raise r.error(f"{where}.dataFormat", "missing required field")
        data_format = _WKW
    data_format = r.string(data_format, f"{where}.dataFormat")
    if not data_format:
        raise r.error(f"{where}.dataFormat", "must not be empty")

    modeled = {"name", "category", "boundingBox", "elementClass", "dataFormat", "numChannels"}
    if data_format == _WKW:
        # Both webknossos releases prefer wkwResolutions when a layer has both.
        key = _KEY_08 if _KEY_08 in doc else _KEY_4X if _KEY_4X in doc else None
        if key is None:
            raise r.error(f"{where}.{_KEY_08}", f"missing required field (or {_KEY_4X})")
        modeled.add(key)
        mags = _parse_mags(doc[key], f"{where}.{key}", key, name, r, strict=True)
    else:
        raw_mags = doc.get(_KEY_4X, doc.get(_KEY_08, []))
        key = _KEY_4X if _KEY_4X in doc else _KEY_08
        mags = _parse_mags(raw_mags, f"{where}.{key}", key, name, r, strict=False)

    num_channels = doc.get("numChannels", _MISSING)
    if num_channels is _MISSING or num_channels is None:
        num_channels = None
        if mags:
            num_channels = _num_channels_from_header(r.folder / mags[0].path)
        if num_channels is None:
            num_channels = 1  # webknossos 4.3.3's default
    elif not _is_int(num_channels) or num_channels < 1:
        raise r.error(f"{where}.numChannels", f"must be a positive int, got {num_channels!r}")
    try:
        dtype_per_channel_from_element_class(element_class, num_channels)
    except DatasetError as exc:
        raise r.error(f"{where}.elementClass", f"{exc} (numChannels is {num_channels})") from None

    largest_segment_id = None
    if category == SEGMENTATION_CATEGORY:
        modeled.add("largestSegmentId")
        largest_segment_id = _parse_segment_id(
            doc.get("largestSegmentId"), f"{where}.largestSegmentId", r
        )
    extra = {k: v for k, v in doc.items() if k not in modeled}
    return LayerProperties(
        name, category, element_class, num_channels, bbox, data_format, mags,
        largest_segment_id, extra, _raw=doc,
    )  # fmt: skip


def _parse_mags(
    value: Any, where: str, key: str, layer_name: str, r: _Reader, strict: bool
) -> list[MagProperties]:
    """Parse a mag list; ``strict=False`` (other formats) skips entries it cannot use."""
    if not strict and not isinstance(value, list):
        return []
    entries = r.list(value, where)
    mags: list[MagProperties] = []
    by_mag: dict[Mag, int] = {}
    by_path: dict[str, int] = {}
    for i, entry in enumerate(entries):
        try:
            mag = _parse_mag(entry, f"{where}[{i}]", key, layer_name, r)
        except PropertiesError:
            if strict:
                raise
            continue
        if strict:
            if mag.mag in by_mag:
                raise r.error(f"{where}[{i}]", f"mag {mag.mag} is listed twice (also at [{by_mag[mag.mag]}])")
            if mag.path in by_path:
                raise r.error(
                    f"{where}[{i}].path",
                    f"folder {mag.path!r} is used by two mags (also at [{by_path[mag.path]}])",
                )
            by_mag[mag.mag] = i
            by_path[mag.path] = i
        mags.append(mag)
    return mags


def _parse_mag(value: Any, where: str, key: str, layer_name: str, r: _Reader) -> MagProperties:
    entry = r.object(value, where)
    mag_key = "resolution" if key == _KEY_08 else "mag"
    raw_mag = r.require(entry, mag_key, where)
    if isinstance(raw_mag, (bool, str)):
        raise r.error(f"{where}.{mag_key}", f"must be an int or a list of 3 ints, got {raw_mag!r}")
    try:
        mag = Mag(raw_mag)
    except (TypeError, ValueError) as exc:
        raise r.error(f"{where}.{mag_key}", str(exc)) from None
    if max(mag.to_list()) > _MAX_MAG:
        raise r.error(f"{where}.{mag_key}", f"components must be at most 2**31, got {raw_mag!r}")
    cube_length = entry.get("cubeLength")
    if cube_length is not None and (not _is_int(cube_length) or not 1 <= cube_length <= _MAX_CUBE_LENGTH):
        raise r.error(f"{where}.cubeLength", f"must be a positive int up to 2**20 (1024 x 1024), got {cube_length!r}")
    if "path" in entry:
        try:
            path = _normalize_mag_path(entry["path"], r.allow_external)
        except ValueError as exc:
            raise r.error(f"{where}.path", str(exc)) from None
    else:
        path = _find_mag_folder(r.folder, layer_name, mag)
    extra = {k: v for k, v in entry.items() if k not in (mag_key, "cubeLength", "path")}
    return MagProperties(mag, cube_length, path, extra, _raw=entry)

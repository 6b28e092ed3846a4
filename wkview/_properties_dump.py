"""Validation and serialisation of :class:`DatasetProperties` for saving (both schemas).

Private: :func:`wkview.properties.save_properties` and
:func:`wkview.properties.update_properties` call :func:`_serialise` and write its bytes
atomically; the rules of which form is written are in the docstring of
:mod:`wkview.properties`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

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

# webknossos 4.3.3 writes segment ids above this as a bigint envelope (_bigint_envelope.py).
_JS_MAX_SAFE_INTEGER = 2**53 - 1


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


def _serialise(file: Path, folder: Path, props: DatasetProperties, allow_external_paths: bool) -> bytes:
    w = _Writer(file, folder, allow_external_paths)
    doc = _dump_dataset(props, w)
    try:
        text = json.dumps(doc, indent=4, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise w.error("(document)", f"an extra field is not JSON-serialisable: {exc}") from None
    return text.encode("utf-8")


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

"""Default view configurations: how webKNOSSOS first shows a dataset and its layers.

They are stored under ``defaultViewConfiguration`` of the properties file (at
the top level for the dataset, in a layer's entry for the layer) with
camelCase keys (``fourBit``, ``intensityRange``, ...). Fields left at None are
not written. Keys wkview does not model (webknossos 4.x added ``layers``,
``mapping``, ...) are kept when a configuration is set.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from typing import Any, Optional, TypeVar

__all__ = ["DatasetViewConfiguration", "LayerViewConfiguration", "VIEW_CONFIGURATION_KEY"]

VIEW_CONFIGURATION_KEY = "defaultViewConfiguration"

_C = TypeVar("_C", "DatasetViewConfiguration", "LayerViewConfiguration")


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def _snake(key: str) -> str:
    return re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), key)


def _check_bool(value: Any, name: str) -> Optional[bool]:
    if value is None or isinstance(value, bool):
        return value
    raise TypeError(f"{name} must be True, False or None, got {value!r}")


def _check_number(value: Any, name: str, integer: bool = False) -> Any:
    if value is None:
        return None
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not math.isfinite(value):
        raise TypeError(f"{name} must be {'an int' if integer else 'a finite number'} or None, got {value!r}")
    return value


def _check_tuple(value: Any, name: str, length: int, integer: bool) -> Optional[tuple]:
    if value is None:
        return None
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) != length:
        raise TypeError(f"{name} must be {length} numbers or None, got {value!r}")
    return tuple(_check_number(v, name, integer) for v in value)


class _ViewConfiguration:
    """camelCase JSON in and out; shared by both configuration types."""

    def to_json(self) -> dict[str, Any]:
        """The ``defaultViewConfiguration`` object: camelCase keys, None fields left out."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if value is not None:
                out[_camel(f.name)] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_json(cls: type[_C], data: dict[str, Any]) -> _C:
        """Read a ``defaultViewConfiguration`` object; keys this type does not know are ignored."""
        if not isinstance(data, dict):
            raise TypeError(f"{VIEW_CONFIGURATION_KEY} must be a JSON object, got {data!r}")
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        return cls(**{_snake(k): v for k, v in data.items() if _snake(k) in names})

    @classmethod
    def json_keys(cls) -> set[str]:
        """The camelCase keys this type writes."""
        return {_camel(f.name) for f in dataclasses.fields(cls)}  # type: ignore[arg-type]


@dataclass(frozen=True)
class DatasetViewConfiguration(_ViewConfiguration):
    """How webKNOSSOS shows the dataset by default (every field optional).

    Parameters
    ----------
    four_bit, interpolation, render_missing_data_black : bool, optional
    loading_strategy : str, optional
        ``"BEST_QUALITY_FIRST"`` or ``"PROGRESSIVE_QUALITY"``.
    segmentation_pattern_opacity : int, optional
        0 to 100.
    zoom : float, optional
    position, rotation : 3 ints, optional
    """

    four_bit: Optional[bool] = None
    interpolation: Optional[bool] = None
    render_missing_data_black: Optional[bool] = None
    loading_strategy: Optional[str] = None
    segmentation_pattern_opacity: Optional[int] = None
    zoom: Optional[float] = None
    position: Optional[tuple[int, int, int]] = None
    rotation: Optional[tuple[int, int, int]] = None

    def __post_init__(self) -> None:
        for name in ("four_bit", "interpolation", "render_missing_data_black"):
            _check_bool(getattr(self, name), name)
        if self.loading_strategy is not None and not isinstance(self.loading_strategy, str):
            raise TypeError(f"loading_strategy must be a string or None, got {self.loading_strategy!r}")
        _check_number(self.segmentation_pattern_opacity, "segmentation_pattern_opacity", integer=True)
        _check_number(self.zoom, "zoom")
        object.__setattr__(self, "position", _check_tuple(self.position, "position", 3, True))
        object.__setattr__(self, "rotation", _check_tuple(self.rotation, "rotation", 3, True))


@dataclass(frozen=True)
class LayerViewConfiguration(_ViewConfiguration):
    """How webKNOSSOS shows a layer by default (every field optional).

    Parameters
    ----------
    color : 3 ints, optional
        RGB, 0 to 255.
    alpha : float, optional
        0 to 100.
    intensity_range : 2 numbers, optional
        (min, max) of the shown value range.
    min, max : float, optional
        Limits of the histogram.
    is_disabled, is_inverted, is_in_edit_mode : bool, optional
    """

    color: Optional[tuple[int, int, int]] = None
    alpha: Optional[float] = None
    intensity_range: Optional[tuple[float, float]] = None
    min: Optional[float] = None
    max: Optional[float] = None
    is_disabled: Optional[bool] = None
    is_inverted: Optional[bool] = None
    is_in_edit_mode: Optional[bool] = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "color", _check_tuple(self.color, "color", 3, True))
        object.__setattr__(self, "intensity_range", _check_tuple(self.intensity_range, "intensity_range", 2, False))
        for name in ("alpha", "min", "max"):
            _check_number(getattr(self, name), name)
        for name in ("is_disabled", "is_inverted", "is_in_edit_mode"):
            _check_bool(getattr(self, name), name)


def get_view_configuration(extra: dict[str, Any], cls: type[_C]) -> Optional[_C]:
    """The configuration stored in ``extra`` (a properties entry's extra fields), or None."""
    data = extra.get(VIEW_CONFIGURATION_KEY)
    return None if data is None else cls.from_json(data)


def set_view_configuration(extra: dict[str, Any], config: Optional[_ViewConfiguration], cls: type) -> None:
    """Store ``config`` in ``extra``; keys it does not model stay; None removes the entry."""
    if config is None:
        extra.pop(VIEW_CONFIGURATION_KEY, None)
        return
    if not isinstance(config, cls):
        raise TypeError(f"expected a {cls.__name__} or None, got {config!r}")
    old = extra.get(VIEW_CONFIGURATION_KEY)
    kept = {k: v for k, v in old.items() if k not in cls.json_keys()} if isinstance(old, dict) else {}
    extra[VIEW_CONFIGURATION_KEY] = {**config.to_json(), **kept}

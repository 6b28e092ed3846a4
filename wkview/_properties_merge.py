"""Three-way merge of ``datasource-properties.json``: concurrent changes of several
processes are all kept.

Pure: no disk access. :func:`snapshot` records what a process last read or wrote
(the base); when it saves, :func:`merge` combines the base, its own properties in
memory (ours) and the file as it is now on disk (theirs), under the properties
file's lock (:func:`wkview.properties.update_properties`):

* a layer or mag we added is added; one they added is kept; one we deleted is
  deleted; one they deleted stays deleted (unless we still have it and changed it);
* a bounding box that grew on both sides becomes the union of both; one we set to
  something that does not contain the base (an explicit shrink) is ours;
* any other field we changed is ours, else theirs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .geometry import BoundingBox, Mag
from .properties import DatasetProperties, LayerProperties

__all__ = ["Snapshot", "snapshot", "merge"]


@dataclass(frozen=True)
class _LayerSnapshot:
    bounding_box: BoundingBox
    mags: frozenset[Mag]
    largest_segment_id: Any
    other: str


@dataclass(frozen=True)
class Snapshot:
    """What a process last saw of the properties (see :func:`snapshot`)."""

    layers: dict[str, _LayerSnapshot]
    top: str


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=repr)


def _layer_other(layer: LayerProperties) -> str:
    return _json([layer.category, layer.element_class, layer.num_channels, layer.data_format, layer.extra])


def _top(props: DatasetProperties) -> str:
    return _json([props.name, props.team, list(props.scale), props.scale_unit, props.extra])


def snapshot(props: DatasetProperties) -> Snapshot:
    """Record the fields :func:`merge` compares."""
    return Snapshot(
        {
            layer.name: _LayerSnapshot(
                layer.bounding_box,
                frozenset(m.mag for m in layer.mags),
                layer.largest_segment_id,
                _layer_other(layer),
            )
            for layer in props.layers
        },
        _top(props),
    )


def _contains(outer: BoundingBox, inner: BoundingBox) -> bool:
    if inner.is_empty():
        return True
    return outer.extended_by(inner) == outer


def _merge_bbox(base: BoundingBox | None, ours: BoundingBox, theirs: BoundingBox) -> BoundingBox:
    if base is not None and ours == base:
        return theirs  # unchanged here
    if base is not None and not _contains(ours, base):
        return ours  # we shrank it on purpose
    return ours.extended_by(theirs)


def _merge_layer(base: _LayerSnapshot | None, ours: LayerProperties, theirs: LayerProperties) -> None:
    ours.bounding_box = _merge_bbox(base.bounding_box if base else None, ours.bounding_box, theirs.bounding_box)
    base_mags = base.mags if base else frozenset()
    our_mags = {m.mag for m in ours.mags}
    their_mags = {m.mag: m for m in theirs.mags}
    # mags they deleted (that we had seen and did not delete): drop them
    ours.mags[:] = [m for m in ours.mags if m.mag in their_mags or m.mag not in base_mags]
    # mags they added: add them
    for mag, their in their_mags.items():
        if mag not in our_mags and mag not in base_mags:
            ours.mags.append(their)
    if base is not None and ours.largest_segment_id == base.largest_segment_id:
        ours.largest_segment_id = theirs.largest_segment_id
    if base is not None and _layer_other(ours) == base.other:
        ours.category, ours.element_class = theirs.category, theirs.element_class
        ours.num_channels, ours.data_format = theirs.num_channels, theirs.data_format
        ours.extra = theirs.extra


def merge(base: Snapshot | None, ours: DatasetProperties, theirs: DatasetProperties) -> list[str]:
    """Merge ``theirs`` (the file now) into ``ours`` (changed in place, so objects holding
    its layers stay valid); ``base`` is what we saw last (None: nothing, all is ours).

    Returns the names of the layers whose mags or presence changed through the merge.
    """
    base_layers = base.layers if base is not None else {}
    their_layers = {layer.name: layer for layer in theirs.layers}
    changed: list[str] = []
    kept = []
    for layer in ours.layers:
        their = their_layers.get(layer.name)
        seen = base_layers.get(layer.name)
        if their is None:
            if seen is not None and seen.bounding_box == layer.bounding_box and seen.mags == {m.mag for m in layer.mags}:
                changed.append(layer.name)  # they deleted it, we did not touch it
                continue
            kept.append(layer)
            continue
        before = [m.mag for m in layer.mags]
        _merge_layer(seen, layer, their)
        if [m.mag for m in layer.mags] != before:
            changed.append(layer.name)
        kept.append(layer)
    names = {layer.name for layer in kept}
    for name, their in their_layers.items():
        if name not in names and name not in base_layers:
            kept.append(their)  # they added it
            changed.append(name)
    ours.layers[:] = kept
    if base is not None and _top(ours) == base.top:
        ours.name, ours.team, ours.scale, ours.scale_unit = theirs.name, theirs.team, theirs.scale, theirs.scale_unit
        ours.extra = theirs.extra
    ours._raw = theirs._raw if ours._raw is None else ours._raw
    return changed

"""Dataset, Layer and MagView: the WKW dataset on disk, as webknossos lays it out.

API of webknossos 0.8.13 (``Dataset.create``, ``add_layer``, ``add_mag``,
``MagView.get_view``, ...). The folder layout is webknossos': a
``datasource-properties.json``, then ``<layer>/<mag>/header.wkw`` and
``<layer>/<mag>/z*/y*/x*.wkw``. Datasets written here open in webknossos and
the other way round.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import wkw

from . import _durable, _properties_merge, compression, properties as props, repair
from ._storage import MagStore, _FileCheck
from .copying import DatasetCopyMixin, LayerCopyMixin, is_inside as _is_inside
from .dtypes import dtype_per_channel_argument
from .errors import DatasetError, DTypeError, LayerLookupError, NameTakenError, NotADatasetError, ReadOnlyError, UnsupportedLayerError
from .geometry import BoundingBox, Mag, MagLike, Vec3Int
from .resampling import ResamplingMixin
from .view import Vec3, View, _offset3
from .view_configuration import (
    DatasetViewConfiguration,
    LayerViewConfiguration,
    get_view_configuration,
    set_view_configuration,
)

__all__ = [
    "Dataset", "Layer", "SegmentationLayer", "MagView", "LayerCategories", "COLOR_CATEGORY", "SEGMENTATION_CATEGORY",
]  # fmt: skip

COLOR_CATEGORY = "color"
SEGMENTATION_CATEGORY = "segmentation"
_CATEGORIES = (COLOR_CATEGORY, SEGMENTATION_CATEGORY)


class LayerCategories:
    """The layer categories by their webknossos 0.8.13 names."""

    COLOR_TYPE = COLOR_CATEGORY
    SEGMENTATION_TYPE = SEGMENTATION_CATEGORY

PathLike = Union[str, os.PathLike]


def mag_header(dtype_per_channel: Any, num_channels: int, block_len: Any, file_len: Any, compress: bool) -> wkw.Header:
    """The ``header.wkw`` of a new mag (lengths checked): LZ4HC blocks when ``compress``."""
    return wkw.Header(
        voxel_type=np.dtype(dtype_per_channel).type,
        num_channels=num_channels,
        block_len=_power_of_two(block_len, "block_len"),
        file_len=_power_of_two(file_len, "file_len"),
        block_type=wkw.Header.BLOCK_TYPE_LZ4HC if compress else wkw.Header.BLOCK_TYPE_RAW,
    )


def _power_of_two(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0 or int(value) & (int(value) - 1):
        raise DatasetError(f"{name} must be a positive power of two, got {value!r}")
    return int(value)


class Dataset(DatasetCopyMixin):
    """A WKW dataset folder with its ``datasource-properties.json``.

    ``Dataset(path)`` opens an existing dataset; :meth:`create` makes a new
    one. Both schemas of the properties file are read (webknossos 0.8's
    ``wkwResolutions`` and 4.x's ``mags``); fields wkview does not use are
    kept when it saves. Copying and linking layers and whole datasets
    (``add_layer_like``, ``add_symlink_layer``, ``add_copy_layer``,
    ``copy_dataset``) come from :class:`wkview.copying.DatasetCopyMixin`.
    """

    def __init__(self, dataset_path: PathLike) -> None:
        self.path = Path(dataset_path)
        if not (self.path / props.PROPERTIES_FILE_NAME).is_file():
            raise NotADatasetError(
                f"{self.path} is not a WKW dataset: {props.PROPERTIES_FILE_NAME} is missing"
            )
        self._properties = props.load_properties(self.path)
        self._seen = _properties_merge.snapshot(self._properties)  # base of the merge on save
        self._layers: dict[str, Layer] = {}
        for layer_props in self._properties.layers:
            self._layers[layer_props.name] = _layer_class(layer_props.category)(self, layer_props)

    @classmethod
    def create(cls, dataset_path: PathLike, scale: tuple[float, float, float], name: Optional[str] = None) -> "Dataset":
        """Create a new, empty dataset folder (it must not hold a dataset yet)."""
        path = Path(dataset_path)
        if (path / props.PROPERTIES_FILE_NAME).exists():
            raise DatasetError(f"cannot create a dataset at {path}: it already holds one")
        scale_tuple = _scale(scale)
        ds_name = props.validate_name(name if name is not None else path.resolve().name, "dataset name")
        path.mkdir(parents=True, exist_ok=True)
        properties = props.DatasetProperties(
            name=ds_name, team="", scale=scale_tuple, scale_unit=None, layers=[], extra={}
        )
        props.save_properties(path, properties)
        return cls(path)

    @classmethod
    def get_or_create(cls, dataset_path: PathLike, scale: tuple[float, float, float], name: Optional[str] = None) -> "Dataset":
        """Open the dataset at ``dataset_path``, or create it if there is none."""
        if not (Path(dataset_path) / props.PROPERTIES_FILE_NAME).exists():
            return cls.create(dataset_path, scale, name)
        dataset = cls(dataset_path)
        if dataset.scale != _scale(scale):
            raise DatasetError(
                f"Cannot get_or_create the dataset {dataset_path}: it exists with the scale "
                f"{dataset.scale}, not {tuple(scale)}"
            )
        if name is not None and dataset.name != name:
            raise DatasetError(
                f"Cannot get_or_create the dataset {dataset_path}: it exists with the name "
                f"{dataset.name!r}, not {name!r}"
            )
        return dataset

    # -- properties ---------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The dataset's name (``id.name``); settable. The folder is not renamed."""
        return self._properties.name

    @name.setter
    def name(self, name: str) -> None:
        if not isinstance(name, str) or not name:
            raise DatasetError(f"a dataset name must be a non-empty string, got {name!r}")
        self._properties.name = name
        self._save_properties()

    @property
    def default_view_configuration(self) -> Optional[DatasetViewConfiguration]:
        """How webKNOSSOS shows the dataset by default (None when unset); settable."""
        return get_view_configuration(self._properties.extra, DatasetViewConfiguration)

    @default_view_configuration.setter
    def default_view_configuration(self, config: Optional[DatasetViewConfiguration]) -> None:
        set_view_configuration(self._properties.extra, config, DatasetViewConfiguration)
        self._save_properties()

    @property
    def scale(self) -> tuple[float, float, float]:
        return self._properties.scale

    @property
    def properties(self) -> props.DatasetProperties:
        return self._properties

    @property
    def layers(self) -> dict[str, "Layer"]:
        """Layers by name (a copy: changing it does not change the dataset)."""
        return dict(self._layers)

    def _save_properties(self) -> None:
        """Store this process's changes, merged with the file as other processes left it
        (under the properties file's lock; see :mod:`wkview._properties_merge`)."""
        changed: list[str] = []

        def apply(current: Optional[props.DatasetProperties]) -> props.DatasetProperties:
            if current is not None:
                changed.extend(_properties_merge.merge(self._seen, self._properties, current))
            return self._properties

        props.update_properties(self.path, apply)
        self._seen = _properties_merge.snapshot(self._properties)
        for name in changed:  # layers and mags other processes added or deleted
            layer_props = next((lp for lp in self._properties.layers if lp.name == name), None)
            if layer_props is None:
                self._layers.pop(name, None)
            elif name not in self._layers or self._layers[name]._properties is not layer_props:
                self._layers[name] = _layer_class(layer_props.category)(self, layer_props)
            else:
                self._layers[name]._mags = None  # rebuilt from the merged mag list on next use

    # -- layers -----------------------------------------------------------------------------

    def get_layer(self, layer_name: str) -> "Layer":
        if layer_name not in self._layers:
            raise DatasetError(
                f"The layer {layer_name!r} does not exist in {self.path} (layers: {sorted(self._layers)})"
            )
        return self._layers[layer_name]

    def add_layer(
        self,
        layer_name: str,
        category: str,
        dtype_per_layer: Union[str, np.dtype, type, None] = None,
        dtype_per_channel: Union[str, np.dtype, type, None] = None,
        num_channels: Optional[int] = None,
        **kwargs: Any,
    ) -> "Layer":
        """Add a layer. ``category`` is "color" or "segmentation" (which needs ``largest_segment_id``).

        Give the dtype per channel (``"uint8"``) or per layer (``"uint24"`` for
        3 channels of uint8), not both; the default is uint8 with 1 channel.
        """
        _refuse_dtype_keyword(kwargs)
        self._check_new_layer_name(layer_name)
        if category not in _CATEGORIES:
            raise DatasetError(f"category must be one of {_CATEGORIES}, got {category!r}")
        if num_channels is None:
            num_channels = 1
        if isinstance(num_channels, bool) or not isinstance(num_channels, (int, np.integer)) or num_channels <= 0:
            raise DatasetError(f"num_channels must be a positive int, got {num_channels!r}")
        num_channels = int(num_channels)
        if dtype_per_layer is not None and dtype_per_channel is not None:
            raise DatasetError("Give dtype_per_layer or dtype_per_channel, not both")
        try:
            if dtype_per_layer is not None:
                channel_dtype = props.dtype_per_layer_to_dtype_per_channel(dtype_per_layer, num_channels)
            else:
                channel_dtype = dtype_per_channel_argument(dtype_per_channel if dtype_per_channel is not None else "uint8")
            element_class = props.element_class_from_dtype(channel_dtype, num_channels)
        except (TypeError, ValueError) as exc:
            if isinstance(exc, DatasetError):
                raise
            raise DTypeError(f"invalid dtype for layer {layer_name!r}: {exc}") from None
        largest_segment_id = kwargs.pop("largest_segment_id", None)
        if category == SEGMENTATION_CATEGORY and largest_segment_id is None:
            raise DatasetError("Segmentation layers need the keyword argument largest_segment_id")
        if category == COLOR_CATEGORY and largest_segment_id is not None:
            raise DatasetError("largest_segment_id is only for segmentation layers")
        extra: dict[str, Any] = {}
        if "mappings" in kwargs:
            extra["mappings"] = kwargs.pop("mappings")
        if kwargs:
            raise TypeError(f"add_layer() got unexpected keyword arguments {sorted(kwargs)}")
        layer_props = props.LayerProperties(
            name=layer_name,
            category=category,
            element_class=element_class,
            num_channels=num_channels,
            bounding_box=BoundingBox((0, 0, 0), (0, 0, 0)),
            data_format="wkw",
            mags=[],
            largest_segment_id=None if largest_segment_id is None else int(largest_segment_id),
            extra=extra,
        )
        (self.path / layer_name).mkdir(parents=True, exist_ok=True)
        return self._register_layer(layer_props)

    def _check_new_layer_name(self, layer_name: str) -> None:
        props.validate_name(layer_name, "layer name")
        if layer_name in self._layers:
            raise NameTakenError(f"Adding layer {layer_name} failed. There is already a layer with this name")

    def _register_layer(self, layer_props: props.LayerProperties) -> "Layer":
        """Add a layer entry (its folder exists) to the properties and save them."""
        self._properties.layers.append(layer_props)
        layer = _layer_class(layer_props.category)(self, layer_props)
        self._layers[layer_props.name] = layer
        self._save_properties()
        return layer

    def get_or_add_layer(
        self,
        layer_name: str,
        category: str,
        dtype_per_layer: Union[str, np.dtype, type, None] = None,
        dtype_per_channel: Union[str, np.dtype, type, None] = None,
        num_channels: Optional[int] = None,
        **kwargs: Any,
    ) -> "Layer":
        """The layer ``layer_name``; added if missing. An existing layer must match the arguments."""
        _refuse_dtype_keyword(kwargs)
        if layer_name not in self._layers:
            return self.add_layer(layer_name, category, dtype_per_layer, dtype_per_channel, num_channels, **kwargs)
        layer = self._layers[layer_name]
        if layer.category != category:
            raise DatasetError(f"layer {layer_name!r} has category {layer.category!r}, not {category!r}")
        if num_channels is not None and layer.num_channels != num_channels:
            raise DatasetError(f"layer {layer_name!r} has {layer.num_channels} channels, not {num_channels}")
        if dtype_per_channel is not None and layer.dtype_per_channel != dtype_per_channel_argument(dtype_per_channel):
            raise DatasetError(f"layer {layer_name!r} stores {layer.dtype_per_channel}, not {dtype_per_channel_argument(dtype_per_channel)}")
        if dtype_per_layer is not None:
            wanted = props.dtype_per_layer_to_dtype_per_channel(dtype_per_layer, layer.num_channels)
            if wanted != layer.dtype_per_channel:
                raise DatasetError(f"layer {layer_name!r} stores {layer.dtype_per_layer}, not {dtype_per_layer}")
        return layer

    def delete_layer(self, layer_name: str) -> None:
        """Remove the layer from the properties and delete its folder."""
        layer = self.get_layer(layer_name)
        self._properties.layers = [lp for lp in self._properties.layers if lp.name != layer_name]
        del self._layers[layer_name]
        self._save_properties()
        folder = layer.path
        if folder.is_symlink():  # a layer added with add_symlink_layer: only the link goes
            folder.unlink()
        elif folder.is_dir() and _is_inside(folder, self.path):
            shutil.rmtree(folder)

    def get_segmentation_layer(self) -> "SegmentationLayer":
        """The only segmentation layer (:class:`LayerLookupError`, an IndexError, if there is none or more than one)."""
        return self._single_layer(SEGMENTATION_CATEGORY)  # type: ignore[return-value]

    def get_color_layer(self) -> "Layer":
        """The only color layer (:class:`LayerLookupError`, an IndexError, if there is none or more than one)."""
        return self._single_layer(COLOR_CATEGORY)

    def _single_layer(self, category: str) -> "Layer":
        found = [layer for layer in self._layers.values() if layer.category == category]
        if len(found) != 1:
            raise LayerLookupError(f"expected one {category} layer in {self.path}, found {len(found)}")
        return found[0]

    def __repr__(self) -> str:
        return f"Dataset({str(self.path)!r})"


def _scale(scale: Any) -> tuple[float, float, float]:
    try:
        values = tuple(float(v) for v in scale)
    except (TypeError, ValueError):
        raise DatasetError(f"scale must be 3 numbers, got {scale!r}") from None
    if len(values) != 3 or any(not v > 0 for v in values):
        raise DatasetError(f"scale must be 3 positive numbers, got {scale!r}")
    return values  # type: ignore[return-value]


def _refuse_dtype_keyword(kwargs: dict[str, Any]) -> None:
    if "dtype" in kwargs:
        raise DatasetError(
            "the keyword argument dtype was removed in webknossos 0.8; use dtype_per_layer "
            "(e.g. 'uint24' for 3 channels of uint8) or dtype_per_channel"
        )


class Layer(LayerCopyMixin, ResamplingMixin):
    """A layer of a dataset: one kind of data (color or segmentation) in several mags.

    Linking and copying mags of other datasets come from
    :class:`wkview.copying.LayerCopyMixin`; downsampling and upsampling from
    :class:`wkview.resampling.ResamplingMixin`.
    """

    def __init__(self, dataset: Dataset, properties: props.LayerProperties) -> None:
        self._dataset = dataset
        self._properties = properties
        self._mags: Optional[dict[Mag, MagView]] = None

    # -- properties ------------------------------------------------------------------------

    @property
    def dataset(self) -> Dataset:
        return self._dataset

    @property
    def name(self) -> str:
        """The layer's name, also its folder's name; setting it renames the folder."""
        return self._properties.name

    @name.setter
    def name(self, layer_name: str) -> None:
        if layer_name == self.name:
            return
        dataset = self._dataset
        dataset._check_new_layer_name(layer_name)
        old, new = self.path, dataset.path / layer_name
        if os.path.lexists(new):
            raise DatasetError(f"cannot rename layer {self.name!r} to {layer_name!r}: {new} exists")
        views = self._mags or {}
        for view in views.values():
            view._store.close()
        os.rename(old, new)
        old_name = self.name
        for mag_props in self._properties.mags:
            if mag_props.path == old_name or mag_props.path.startswith(old_name + "/"):
                mag_props.path = layer_name + mag_props.path[len(old_name):]
        self._properties.name = layer_name
        dataset._layers = {(layer_name if k == old_name else k): v for k, v in dataset._layers.items()}
        for view in views.values():  # sub-views share the store: they follow the rename too
            view._path = dataset.path / view._mag_props.path
            view._store.path = view._path
            view._store._checks = _FileCheck()
        dataset._save_properties()

    @property
    def path(self) -> Path:
        return self._dataset.path / self.name

    @property
    def default_view_configuration(self) -> Optional[LayerViewConfiguration]:
        """How webKNOSSOS shows the layer by default (None when unset); settable."""
        return get_view_configuration(self._properties.extra, LayerViewConfiguration)

    @default_view_configuration.setter
    def default_view_configuration(self, config: Optional[LayerViewConfiguration]) -> None:
        set_view_configuration(self._properties.extra, config, LayerViewConfiguration)
        self._dataset._save_properties()

    @property
    def category(self) -> str:
        return self._properties.category

    @property
    def data_format(self) -> str:
        return self._properties.data_format

    @property
    def num_channels(self) -> int:
        return self._properties.num_channels

    @property
    def dtype_per_channel(self) -> np.dtype:
        return self._properties.dtype_per_channel

    @property
    def dtype_per_layer(self) -> str:
        return self._properties.dtype_per_layer

    @property
    def bounding_box(self) -> BoundingBox:
        """The layer's bounding box in mag-1 voxels (as in the properties file)."""
        return self._properties.bounding_box

    @bounding_box.setter
    def bounding_box(self, bbox: BoundingBox) -> None:
        if not isinstance(bbox, BoundingBox):
            raise TypeError(f"bounding_box must be a BoundingBox, got {bbox!r}")
        self._properties.bounding_box = bbox
        self._dataset._save_properties()

    def _require_wkw(self) -> None:
        if self._properties.data_format != "wkw":
            raise UnsupportedLayerError(
                f"layer {self.name!r} of {self._dataset.path} is stored as "
                f"{self._properties.data_format!r}; wkview reads and writes only WKW layers"
            )

    @property
    def mags(self) -> dict[Mag, "MagView"]:
        """Mag views by mag (a copy)."""
        return dict(self._mag_views())

    def _mag_views(self) -> dict[Mag, "MagView"]:
        self._require_wkw()
        if self._mags is None:
            views = {}
            for mag_props in self._properties.mags:
                views[mag_props.mag] = MagView(self, mag_props)
            self._mags = views
        return self._mags

    # -- mags --------------------------------------------------------------------------------

    def get_mag(self, mag: MagLike) -> "MagView":
        mag = Mag(mag)
        views = self._mag_views()
        if mag not in views:
            raise DatasetError(f"The mag {mag} is not a mag of layer {self.name!r} (mags: {sorted(views)})")
        return views[mag]

    def add_mag(
        self,
        mag: MagLike,
        block_len: int = 32,
        file_len: int = 32,
        compress: bool = False,
        *,
        compression_level: Optional[int] = None,
    ) -> "MagView":
        """Add a mag (files of ``file_len**3`` blocks of ``block_len**3`` voxels, LZ4HC when ``compress``).

        ``compression_level`` (1-12) sets the LZ4HC level of this mag view's writes (default 4;
        9 is libwkw's); it is not stored in the dataset.
        """
        mag = Mag(mag)
        return self._add_mag(mag, self._mag_header(block_len, file_len, compress), compression_level)

    def _mag_header(self, block_len: Any, file_len: Any, compress: bool) -> wkw.Header:
        """The ``header.wkw`` of a new mag of this layer (lengths checked)."""
        return mag_header(self.dtype_per_channel, self.num_channels, block_len, file_len, compress)

    def _check_own_folder(self) -> None:
        """Raise unless the layer's folder lies in the dataset folder (not a link elsewhere)."""
        if not _is_inside(self.path, self._dataset.path):
            raise ReadOnlyError(
                f"layer {self.name!r} is a link to {self.path.resolve()} (outside the dataset folder); "
                "wkview does not add mags there"
            )

    def _check_new_mag(self, mag: Mag) -> str:
        """The folder of a new mag (relative to the dataset); raises if it cannot be added."""
        if mag in self._mag_views():
            raise NameTakenError(f"Adding mag {mag} failed. There is already a mag with this name")
        self._check_own_folder()
        rel_path = f"{self.name}/{mag.to_layer_name()}"
        if os.path.lexists(self._dataset.path / rel_path):
            raise DatasetError(f"Adding mag {mag} failed: {self._dataset.path / rel_path} exists")
        return rel_path

    def _add_mag(self, mag: Mag, header: wkw.Header, compression_level: Optional[int] = None) -> "MagView":
        rel_path = self._check_new_mag(mag)
        MagStore.create(self._dataset.path / rel_path, header)
        return self._register_mag(mag, rel_path, header.block_len * header.file_len, compression_level)

    def _register_mag(
        self, mag: Mag, rel_path: str, cube_length: Optional[int], compression_level: Optional[int] = None
    ) -> "MagView":
        """Add the properties entry of a mag whose folder exists, and save."""
        views = self._mag_views()
        # webknossos 4.x requires every mag of a layer to have the same axisOrder
        # when one has it: new mags copy it from the existing ones
        orders = [m.extra["axisOrder"] for m in self._properties.mags if "axisOrder" in m.extra]
        extra = {"axisOrder": dict(orders[0])} if orders else {}
        mag_props = props.MagProperties(mag=mag, cube_length=cube_length, path=rel_path, extra=extra)
        self._properties.mags.append(mag_props)
        view = MagView(self, mag_props)
        if compression_level is not None:
            view.compression_level = compression_level
        views[mag] = view
        self._dataset._save_properties()
        return view

    def get_or_add_mag(self, mag: MagLike, block_len: int = 32, file_len: int = 32, compress: bool = False) -> "MagView":
        """The mag view of ``mag``; added if missing. An existing one must match the arguments."""
        mag = Mag(mag)
        if mag not in self._mag_views():
            return self.add_mag(mag, block_len, file_len, compress)
        view = self._mag_views()[mag]
        header = view.header
        if header.block_len != block_len or header.file_len != file_len or view._store.is_compressed != bool(compress):
            raise DatasetError(
                f"mag {mag} of layer {self.name!r} exists with block_len={header.block_len}, "
                f"file_len={header.file_len}, compressed={view._store.is_compressed}"
            )
        return view

    def delete_mag(self, mag: MagLike) -> None:
        """Remove the mag from the properties and delete its folder."""
        view = self.get_mag(mag)
        self._properties.mags = [m for m in self._properties.mags if m.mag != view.mag]
        del self._mag_views()[view.mag]
        self._dataset._save_properties()
        view._store.close()
        if view.path.is_dir() and _is_inside(view.path, self._dataset.path):
            shutil.rmtree(view.path)

    def get_finest_mag(self) -> "MagView":
        views = self._mag_views()
        if not views:
            raise DatasetError(f"layer {self.name!r} has no mags")
        return views[min(views)]

    def __repr__(self) -> str:
        return f"Layer({self.name!r}, category={self.category!r}, dtype_per_channel={self.dtype_per_channel}, num_channels={self.num_channels})"


class SegmentationLayer(Layer):
    """A segmentation layer; it also knows its ``largest_segment_id``."""

    @property
    def largest_segment_id(self) -> Optional[int]:
        return self._properties.largest_segment_id

    @largest_segment_id.setter
    def largest_segment_id(self, value: int) -> None:
        self._properties.largest_segment_id = int(value)
        self._dataset._save_properties()


def _layer_class(category: str) -> type[Layer]:
    return SegmentationLayer if category == SEGMENTATION_CATEGORY else Layer


class MagView(View):
    """One mag of a layer: a :class:`View` in absolute coordinates of this mag.

    Unlike a plain view it is unbounded: :meth:`write` takes absolute offsets,
    may write anywhere, and grows the layer's bounding box (and saves the
    properties). Its ``global_offset`` is (0, 0, 0) and its ``size`` the
    bottom-right corner of the layer's bounding box in this mag, as in
    webknossos 0.8.13, so ``read(offset, size)`` takes absolute offsets too.
    """

    def __init__(self, layer: Layer, mag_properties: props.MagProperties) -> None:
        self._layer = layer
        self._mag_props = mag_properties
        path = layer.dataset.path / mag_properties.path
        if not (path / "header.wkw").exists() and repair.has_swap_leftovers(path):
            repair.recover_mag_folder(path)  # a compress() killed half-way
        store = MagStore(path)
        # a mag folder that resolves outside the dataset (a symlinked layer or mag) is
        # written through the link, into the linked data, as in webknossos 0.8.13
        super().__init__(
            path,
            store.header,
            size=(0, 0, 0),
            global_offset=(0, 0, 0),
            is_bounded=False,
            read_only=False,
            mag_view_bbox_at_creation=None,
            _store=store,
        )

    @property
    def layer(self) -> Layer:
        return self._layer

    @property
    def mag(self) -> Mag:
        return self._mag_props.mag

    @property
    def name(self) -> str:
        return self.mag.to_layer_name()

    def _layer_bbox_in_mag(self) -> BoundingBox:
        return self._layer.bounding_box.align_with_mag(self.mag, ceil=True).in_mag(self.mag)

    @property
    def size(self) -> Vec3Int:  # type: ignore[override]
        """Bottom-right corner of the layer's bounding box in this mag (as in webknossos 0.8.13)."""
        return self._layer_bbox_in_mag().bottomright

    def _border_box(self) -> Optional[BoundingBox]:
        """Always the current bounding box (a plain view keeps its creation snapshot)."""
        return self._layer_bbox_in_mag()

    def write(self, data: np.ndarray, offset: Vec3 = (0, 0, 0), *, compression_level: Optional[int] = None) -> None:
        """Write ``data`` at the absolute ``offset`` of this mag; grows the layer's bounding box."""
        data4, off, size, level = self._write_arguments(data, offset, compression_level)
        mag = self.mag.to_vec3_int()
        written = BoundingBox._trusted(off * mag, size * mag)
        current = self._layer.bounding_box
        grown = current.extended_by(written)
        # write the data before recording it: a failed write must not grow the box
        self._write_absolute(
            off, data4, border=grown.align_with_mag(self.mag, ceil=True).in_mag(self.mag), level=level
        )
        if grown != current:
            self._layer.bounding_box = grown

    def get_view(
        self,
        offset: Optional[Vec3] = None,
        size: Optional[Vec3] = None,
        read_only: Optional[bool] = None,
    ) -> View:
        """A view with absolute ``offset`` and ``size`` in this mag; defaults to the layer's bounding box.

        Works on a mag with no data yet (then, without arguments, the view
        is empty). A writable view must lie inside the layer's bounding box.
        """
        bbox = self._layer_bbox_in_mag()
        view_offset = bbox.topleft if offset is None else _offset3(offset)
        if size is None:
            size = Vec3Int._trusted(*(max(0, v) for v in bbox.bottomright - view_offset))
            if any(s == 0 for s in size):  # a mag without data yet: an empty view
                if read_only is None:
                    read_only = self._read_only
                if self._read_only and not read_only:
                    raise ReadOnlyError(f"mag {self.mag} of layer {self._layer.name!r} is read-only")
                return View(
                    self._path, self._header, size=size, global_offset=view_offset,
                    is_bounded=True, read_only=read_only, mag_view_bbox_at_creation=bbox,
                    _store=self._store,
                )
        view = super().get_view(view_offset, size, read_only)
        return view

    def get_buffered_slice_reader(
        self,
        offset: Optional[Vec3] = None,
        size: Optional[Vec3] = None,
        buffer_size: Optional[int] = None,
        dimension: Union[str, int] = "z",
    ) -> Any:
        """Slices of the box at the absolute ``offset``; defaults to the layer's bounding box."""
        bbox = self._layer_bbox_in_mag()
        if offset is None:
            offset = bbox.topleft
        if size is None:
            size = bbox.bottomright - _offset3(offset)
        return super().get_buffered_slice_reader(offset, size, buffer_size, dimension)

    def get_bounding_boxes_on_disk(self) -> Iterator[BoundingBox]:
        """One box per data file on disk, in voxels of this mag."""
        edge = self._store.file_edge
        for index in self._store.list_files():
            yield BoundingBox._trusted((index[0] * edge, index[1] * edge, index[2] * edge), (edge, edge, edge))

    def compress(
        self,
        target_path: Optional[PathLike] = None,
        *,
        level: Optional[int] = None,
        executor: Any = None,
        progress: Optional[bool] = None,
    ) -> Optional[compression.CompressStats]:
        """Convert this raw mag to LZ4HC, in place or into ``target_path``.

        In place (see :mod:`wkview.compression`), each file is encoded at ``level``
        (default 4) on a job of ``executor`` and renamed over the raw one, and
        ``header.wkw`` switches last: every file stays whole, and after a kill a
        second call finishes the job. No other process may write to the mag meanwhile.
        Returns what was done in place (None into ``target_path``).
        """
        src = self._path
        if target_path is not None:
            if not self._store.is_compressed:
                self._compress_files(Path(target_path))
            return None
        if repair.has_swap_leftovers(src):
            repair.recover_mag_folder(src)  # folders of a killed compress() of older wkview versions
        stats = compression.compress_in_place(
            self._store, level, executor, progress=progress, desc=f"compress {self._layer.name}/{self.name}"
        )
        self._store = MagStore(src)
        self._header = self._store.header
        return stats

    def _compress_files(self, dst: Path) -> None:
        src = self._path
        MagStore.create(dst, compression.lz4hc_header(self._header))
        for index in self._store.list_files():
            rel = Path(f"z{index[2]}") / f"y{index[1]}" / f"x{index[0]}.wkw"
            _durable.makedirs_durable(str((dst / rel).parent))
            self._store._checks.check(str(src / rel), self._header)
            wkw.File.compress(str(src / rel), str(dst / rel))
            _durable.fsync_path(str(dst / rel))
        for folder in {str((dst / Path(f"z{i[2]}") / f"y{i[1]}")) for i in self._store.list_files()}:
            _durable.fsync_folder(folder)

    def __repr__(self) -> str:
        return f"MagView(layer={self._layer.name!r}, mag={self.mag})"

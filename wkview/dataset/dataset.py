"""Dataset: a WKW dataset folder as webknossos lays it out.

API of webknossos 0.8.13 (``Dataset.create``, ``add_layer``, ``get_layer``,
``copy_dataset``, ...). The folder layout is webknossos': a
``datasource-properties.json``, then ``<layer>/<mag>/header.wkw`` and
``<layer>/<mag>/z*/y*/x*.wkw``. Datasets written here open in webknossos and
the other way round. Layers are :mod:`wkview.dataset.layer`, mags
:mod:`wkview.dataset.mag_view`.
"""

from __future__ import annotations

import copy
import os
import shutil
from argparse import Namespace
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from .. import _properties_merge, properties as props
from ..copying import copy_other_files, foreign_entry, is_inside as _is_inside, link, rebased_mags
from ..dtypes import dtype_per_channel_argument
from ..errors import DatasetError, DTypeError, LayerLookupError, NameTakenError, NotADatasetError
from ..geometry import BoundingBox
from ..utils import executor_for
from ..view_configuration import VIEW_CONFIGURATION_KEY, DatasetViewConfiguration, get_view_configuration, set_view_configuration
from .layer import CATEGORIES, COLOR_CATEGORY, SEGMENTATION_CATEGORY, Layer, SegmentationLayer

__all__ = ["Dataset"]

PathLike = Union[str, os.PathLike]



class Dataset:
    """A WKW dataset folder with its ``datasource-properties.json``.

    ``Dataset(path)`` opens an existing dataset; :meth:`create` makes a new
    one. Both schemas of the properties file are read (webknossos 0.8's
    ``wkwResolutions`` and 4.x's ``mags``); fields wkview does not use are
    kept when it saves. Layers of other datasets are linked or copied with
    ``add_symlink_layer`` and ``add_copy_layer``; ``copy_dataset`` copies it all.
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
        if category not in CATEGORIES:
            raise DatasetError(f"category must be one of {CATEGORIES}, got {category!r}")
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

    def _layer_renamed(self, old_name: str, new_name: str) -> None:
        """Keep the layer order after :attr:`Layer.name` renamed a layer."""
        self._layers = {(new_name if k == old_name else k): v for k, v in self._layers.items()}

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
            raise DatasetError(
                f"layer {layer_name!r} stores {layer.dtype_per_channel}, not {dtype_per_channel_argument(dtype_per_channel)}"
            )
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

    # -- layers of other datasets ------------------------------------------------------------

    def _foreign_layer(self, foreign_layer: Union[PathLike, Layer]) -> Layer:
        if isinstance(foreign_layer, (str, os.PathLike)):
            folder = Path(foreign_layer)
            layer = type(self)(folder.parent).get_layer(folder.name)
        else:
            layer = foreign_layer
        layer._require_wkw()
        if layer.dataset.path.resolve() == self.path.resolve():
            raise DatasetError(f"layer {layer.name!r} already belongs to {self.path}")
        return layer

    def add_layer_like(self, other_layer: Layer, layer_name: str) -> Layer:
        """A new, empty layer with ``other_layer``'s category, dtype, channels and view configuration.

        A segmentation layer also gets its ``largest_segment_id``. The new
        layer has no mags and an empty bounding box.
        """
        self._check_new_layer_name(layer_name)
        other = other_layer._properties
        extra = {}
        if VIEW_CONFIGURATION_KEY in other.extra:
            extra[VIEW_CONFIGURATION_KEY] = copy.deepcopy(other.extra[VIEW_CONFIGURATION_KEY])
        layer_props = props.LayerProperties(
            name=layer_name,
            category=other.category,
            element_class=other.element_class,
            num_channels=other.num_channels,
            bounding_box=BoundingBox((0, 0, 0), (0, 0, 0)),
            data_format="wkw",
            mags=[],
            largest_segment_id=other.largest_segment_id,
            extra=extra,
        )
        (self.path / layer_name).mkdir(parents=True, exist_ok=True)
        return self._register_layer(layer_props)

    def add_symlink_layer(self, foreign_layer: Union[PathLike, Layer], make_relative: bool = False) -> Layer:
        """Link a layer of another dataset into this one, with its properties entry.

        Parameters
        ----------
        foreign_layer : path or Layer
            The layer folder (``other_dataset/color``) or the Layer.
        make_relative : bool
            Make the symlink relative to this dataset's folder (default: absolute).

        Returns
        -------
        Layer
            Writes to its mags go through the link into the linked data (as in
            webknossos 0.8.13); its bounding box grows in this dataset only. New mags
            are not added into the linked folder.

        Raises
        ------
        DatasetError
            When a layer of that name exists, or a mag lies outside the layer folder.
        """
        foreign = self._foreign_layer(foreign_layer)
        self._check_new_layer_name(foreign.name)
        mags = rebased_mags(foreign._properties, foreign.name)  # refuse before linking
        link(foreign.path, self.path / foreign.name, make_relative)
        try:
            return self._register_layer(foreign_entry(foreign._properties, mags))
        except BaseException:
            os.unlink(self.path / foreign.name)
            raise

    def add_copy_layer(
        self,
        foreign_layer: Union[PathLike, Layer],
        *,
        executor: Any = None,
        progress: Optional[bool] = None,
    ) -> Layer:
        """Copy a layer of another dataset into this one: its data (byte for byte), other files, properties.

        Files of the layer folder that belong to no mag (``mappings/``, ...)
        are copied byte for byte, with the mode of a new file (the umask's). Each mag is named in the properties file once
        its data is copied (:meth:`Layer.build_mag`).
        """
        foreign = self._foreign_layer(foreign_layer)
        self._check_new_layer_name(foreign.name)
        mags = rebased_mags(foreign._properties, foreign.name)
        target = self.path / foreign.name
        target.mkdir()
        copy_other_files(foreign.path, target, {m.path.split("/")[1] for m in mags if "/" in m.path})
        layer = self._register_layer(foreign_entry(foreign._properties, []))
        for view in foreign.mags.values():
            layer._copy_mag(view, executor=executor, progress=progress)
        return layer

    def copy_dataset(
        self,
        new_dataset_path: PathLike,
        scale: Optional[tuple[float, float, float]] = None,
        block_len: Optional[int] = None,
        file_len: Optional[int] = None,
        compress: Optional[bool] = None,
        args: Optional[Namespace] = None,
        *,
        executor: Any = None,
        progress: Optional[bool] = None,
    ) -> "Dataset":
        """A new dataset at ``new_dataset_path`` with every layer and mag of this one.

        Parameters
        ----------
        new_dataset_path : path
            Must not hold a dataset yet.
        scale : 3 floats, optional
            Default: this dataset's scale.
        block_len, file_len : int, optional
            Layout of every copied mag; None keeps each mag's own.
        compress : bool, optional
            True: LZ4HC, False: raw; None keeps each mag's own.
        args : argparse.Namespace, optional
            Makes the executor (:func:`wkview.utils.get_executor_for_args`).
        executor : Executor, optional
            Runs the jobs instead (not shut down). Without ``args`` or
            ``executor`` the jobs run in this process (the codec still
            encodes on all IO threads).
        progress : bool, optional
            A progress bar per mag (default: when stderr is a terminal).

        Returns
        -------
        Dataset
            Mags whose layout stays the same are copied byte for byte; the
            others are re-encoded.
        """
        new = type(self).create(new_dataset_path, scale if scale is not None else self.scale)
        view_config = self._properties.extra.get(VIEW_CONFIGURATION_KEY)
        if view_config is not None:
            new._properties.extra[VIEW_CONFIGURATION_KEY] = copy.deepcopy(view_config)
        with executor_for(args, executor) as resolved:
            for layer in self._layers.values():
                layer._require_wkw()
                new_layer = new.add_layer_like(layer, layer.name)
                new_layer.bounding_box = layer.bounding_box
                for view in layer.mags.values():
                    new_layer._copy_mag(view, block_len, file_len, compress, resolved, progress)
        return new

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


def _layer_class(category: str) -> type[Layer]:
    return SegmentationLayer if category == SEGMENTATION_CATEGORY else Layer

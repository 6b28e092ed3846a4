"""Layer and SegmentationLayer: one kind of data of a dataset, in several mags.

Layers add, link, copy, build, downsample and upsample mags. Building a mag from
data goes through one method, :meth:`Layer.build_mag` (hidden folder, fill,
register last); the work under it is done by functions of lower modules that know
nothing of datasets: :mod:`wkview.copying` (byte copies, re-encoding, links) and
:mod:`wkview.pyramid` (chains and jobs; kernels in :mod:`wkview.downsampling`).
This module does not import the dataset module (which imports it): what a layer
uses of its dataset is :class:`LayerOwner`.
"""

from __future__ import annotations

import functools
import os
import shutil
from argparse import Namespace
from pathlib import Path
from typing import Any, Optional, Protocol, Union

import numpy as np
import wkw

from .. import properties as props, pyramid
from .._storage import MagStore
from ..copying import check_compatible, copy_files, is_inside as _is_inside, link, reencode, same_layout
from ..downsampling import resolve_mode
from ..errors import DatasetError, NameTakenError, ReadOnlyError, UnsupportedLayerError
from ..geometry import BoundingBox, Mag, MagLike
from ..utils import executor_for
from ..view_configuration import LayerViewConfiguration, get_view_configuration, set_view_configuration
from .mag_view import MagView, mag_header

__all__ = ["Layer", "SegmentationLayer", "LayerCategories", "LayerOwner", "COLOR_CATEGORY", "SEGMENTATION_CATEGORY"]

COLOR_CATEGORY = "color"
SEGMENTATION_CATEGORY = "segmentation"
CATEGORIES = (COLOR_CATEGORY, SEGMENTATION_CATEGORY)

PathLike = Union[str, os.PathLike]


class LayerCategories:
    """The layer categories by their webknossos 0.8.13 names."""

    COLOR_TYPE = COLOR_CATEGORY
    SEGMENTATION_TYPE = SEGMENTATION_CATEGORY


class LayerOwner(Protocol):
    """What a :class:`Layer` uses of its dataset (a :class:`wkview.Dataset` is one)."""

    @property
    def path(self) -> Path: ...

    @property
    def scale(self) -> tuple[float, float, float]: ...

    def _save_properties(self) -> None: ...

    def _check_new_layer_name(self, layer_name: str) -> None: ...

    def _layer_renamed(self, old_name: str, new_name: str) -> None: ...


class Layer:
    """A layer of a dataset: one kind of data (color or segmentation) in several mags.

    New mags come empty (:meth:`add_mag`), linked (:meth:`add_symlink_mag`) or
    built whole (:meth:`build_mag`, behind :meth:`add_copy_mag`,
    :meth:`downsample` and :meth:`upsample`): a built mag is filled in a hidden
    folder and named in the properties file only when its data is complete.
    """

    def __init__(self, dataset: "LayerOwner", properties: props.LayerProperties) -> None:
        self._dataset = dataset
        self._properties = properties
        self._mags: Optional[dict[Mag, MagView]] = None

    # -- properties ------------------------------------------------------------------------

    @property
    def dataset(self) -> "LayerOwner":
        """The :class:`~wkview.Dataset` this layer belongs to."""
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
        os.rename(old, new)
        old_name = self.name
        for mag_props in self._properties.mags:
            if mag_props.path == old_name or mag_props.path.startswith(old_name + "/"):
                mag_props.path = layer_name + mag_props.path[len(old_name):]
        self._properties.name = layer_name
        dataset._layer_renamed(old_name, layer_name)
        for view in views.values():
            view._follow_rename()
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
        if header.block_len != block_len or header.file_len != file_len or view.is_compressed != bool(compress):
            raise DatasetError(
                f"mag {mag} of layer {self.name!r} exists with block_len={header.block_len}, "
                f"file_len={header.file_len}, compressed={view.is_compressed}"
            )
        return view

    def delete_mag(self, mag: MagLike) -> None:
        """Remove the mag from the properties and delete its folder."""
        view = self.get_mag(mag)
        self._properties.mags = [m for m in self._properties.mags if m.mag != view.mag]
        del self._mag_views()[view.mag]
        self._dataset._save_properties()
        view._release()
        if view.path.is_dir() and _is_inside(view.path, self._dataset.path):
            shutil.rmtree(view.path)

    def get_finest_mag(self) -> "MagView":
        views = self._mag_views()
        if not views:
            raise DatasetError(f"layer {self.name!r} has no mags")
        return views[min(views)]

    # -- building mags -------------------------------------------------------------------------

    def build_mag(
        self,
        mag: MagLike,
        header: wkw.Header,
        fill: pyramid.Fill,
        *,
        box: Optional[BoundingBox] = None,
        compression_level: Optional[int] = None,
    ) -> "MagView":
        """Add the mag ``mag``, filled by ``fill``, and name it in the properties file last.

        The one way wkview builds a mag from data (:meth:`add_copy_mag`,
        :meth:`downsample_mag`, :meth:`upsample`, ``copy_dataset``): the mag is
        created in a hidden folder beside its final one (``.<mag>-building``),
        ``fill(view)`` writes its data, the folder is renamed into place and only
        then the properties file names the mag. Readers never see a half-filled
        mag; when ``fill`` raises, the hidden folder is removed and the layer is
        unchanged; after a kill, the next build of the mag removes the leftover.

        Parameters
        ----------
        mag : mag-like
            The new mag; it must not exist in the layer.
        header : wkw.Header
            Its ``header.wkw`` (dtype and channels those of the layer), e.g.
            :func:`wkview.dataset.mag_header` or another mag's ``header``.
        fill : callable
            ``fill(view)`` gets a writable :class:`~wkview.View` of the new mag from
            (0, 0, 0) to the end of ``box``, in absolute voxels of the mag.
        box : BoundingBox, optional
            The data's box in voxels of this mag (writes ending at its border are
            not unaligned); default: the layer's bounding box in this mag.
        compression_level : int, optional
            LZ4HC level of the writes of ``fill`` and of the returned mag view.

        Returns
        -------
        MagView
            The new mag.
        """
        mag = Mag(mag)
        if mag in self._mag_views():
            raise NameTakenError(f"Adding mag {mag} failed. There is already a mag with this name")
        self._check_own_folder()
        check_compatible(header, f"the header of mag {mag}", self.dtype_per_channel, self.num_channels, self.name)
        rel_path = f"{self.name}/{mag.to_layer_name()}"
        if box is None:
            box = self.bounding_box.align_with_mag(mag, ceil=True).in_mag(mag)
        pyramid.build_mag_folder(self._dataset.path / rel_path, header, box, fill, compression_level=compression_level)
        return self._register_mag(mag, rel_path, header.block_len * header.file_len, compression_level)

    def _refill_or_build(self, mag: Mag, fill: pyramid.Fill, *, header: wkw.Header) -> "MagView":
        """An existing mag (of ``header``'s layout) filled again in place, or a new one built."""
        if mag in self._mag_views():
            view = self.get_or_add_mag(mag, header.block_len, header.file_len, header.block_type != wkw.Header.BLOCK_TYPE_RAW)
            fill(view)
            return view
        return self.build_mag(mag, header, fill)

    # -- mags of other datasets -------------------------------------------------------------

    def _foreign_mag(self, foreign_mag: Union[PathLike, "MagView"]) -> "MagView":
        if isinstance(foreign_mag, (str, os.PathLike)):
            folder = Path(foreign_mag)
            layer = type(self._dataset)(folder.parent.parent).get_layer(folder.parent.name)
            resolved = folder.resolve()
            for view in layer.mags.values():
                if view.path.resolve() == resolved:
                    return view
            try:
                return layer.get_mag(Mag(folder.name))
            except ValueError:
                raise DatasetError(f"{folder} is no mag folder of layer {layer.name!r}") from None
        return foreign_mag

    def _check_fits(self, foreign: "MagView") -> None:
        check_compatible(
            foreign.header, f"mag {foreign.mag} of {foreign.layer.name!r}", self.dtype_per_channel, self.num_channels,
            self.name,
        )  # fmt: skip

    def _grow_to(self, foreign: "MagView") -> None:
        bbox = self._properties.bounding_box.extended_by(foreign.layer.bounding_box)
        if bbox != self._properties.bounding_box:
            self.bounding_box = bbox

    def add_symlink_mag(self, foreign_mag_path: Union[PathLike, "MagView"], make_relative: bool = False) -> "MagView":
        """Link one mag folder of another dataset's layer into this layer.

        The layer's bounding box grows to cover the other layer's. Writes to the
        mag go through the link into the linked data (as in webknossos 0.8.13).

        Raises
        ------
        DatasetError
            When the mag exists in this layer.
        DTypeMismatchError
            When its dtype or channels differ from this layer's.
        """
        foreign = self._foreign_mag(foreign_mag_path)
        self._check_fits(foreign)
        rel_path = self._check_new_mag(foreign.mag)
        link(foreign.path, self._dataset.path / rel_path, make_relative)
        cube_length = foreign.header.block_len * foreign.header.file_len
        try:
            view = self._register_mag(foreign.mag, rel_path, cube_length)
        except BaseException:
            os.unlink(self._dataset.path / rel_path)
            raise
        self._grow_to(foreign)
        return view

    def add_copy_mag(
        self,
        foreign_mag_path: Union[PathLike, "MagView"],
        *,
        executor: Any = None,
        progress: Optional[bool] = None,
    ) -> "MagView":
        """Copy one mag of another dataset's layer into this layer (byte for byte).

        The layer's bounding box grows to cover the other layer's.
        """
        foreign = self._foreign_mag(foreign_mag_path)
        view = self._copy_mag(foreign, executor=executor, progress=progress)
        self._grow_to(foreign)
        return view

    def _copy_mag(
        self,
        source: "MagView",
        block_len: Optional[int] = None,
        file_len: Optional[int] = None,
        compress: Optional[bool] = None,
        executor: Any = None,
        progress: Optional[bool] = None,
    ) -> "MagView":
        """Build ``source``'s mag in this layer from its data.

        None keeps the source's ``block_len``, ``file_len`` and compression. When
        all three stay the same, the data files are copied byte for byte (LZ4
        stays LZ4, LZ4HC stays LZ4HC); otherwise the source's voxels inside its
        layer's bounding box are re-encoded into the new layout, one job per
        target file that holds data, and this layer's bounding box grows to cover
        the source layer's. The jobs run on ``executor`` (None: here).
        """
        header = source.header
        block_len = header.block_len if block_len is None else block_len
        file_len = header.file_len if file_len is None else file_len
        compressed = source.is_compressed if compress is None else bool(compress)
        self._check_fits(source)
        name = f"{source.layer.name}/{source.mag}"
        edge = source.file_edge
        files = [(b.topleft[0] // edge, b.topleft[1] // edge, b.topleft[2] // edge) for b in source.get_bounding_boxes_on_disk()]
        if same_layout(header, source.is_compressed, block_len, file_len, compressed):
            fill = functools.partial(copy_files, source, files=files, executor=executor, progress=progress, desc=f"copy {name}")
            return self.build_mag(source.mag, header, fill)
        box = source.layer.bounding_box.align_with_mag(source.mag, ceil=True).in_mag(source.mag)
        view = self.build_mag(
            source.mag,
            self._mag_header(block_len, file_len, compressed),
            lambda target: reencode(source, target, box, set(files), executor, progress=progress, desc=f"re-encode {name}"),
            box=box,
        )
        if not box.is_empty():
            self.bounding_box = self.bounding_box.extended_by(source.layer.bounding_box)
        return view

    # -- downsampling and upsampling ------------------------------------------------------------

    def downsample_mag(
        self,
        from_mag: MagLike,
        target_mag: MagLike,
        interpolation_mode: str = "default",
        compress: bool = True,
        buffer_edge_len: Optional[int] = None,
        executor: Any = None,
        *,
        args: Optional[Namespace] = None,
        progress: Optional[bool] = None,
    ) -> "MagView":
        """Compute ``target_mag`` from ``from_mag`` with chunked jobs on ``executor``.

        Every component of ``target_mag`` must be a multiple of ``from_mag``'s.
        ``interpolation_mode``: "mean", "median", "mode", "nearest", "max",
        "min", or "default" (median for color, mode for segmentation).
        Each job writes whole target files (no read-modify-write); it reads
        its source in slabs of ``buffer_edge_len`` target voxels per edge.
        A new mag is built with :meth:`build_mag` (named in the properties
        file only when complete); an existing one is computed again in place.
        ``args`` (an argparse Namespace, as in 0.8.13, also accepted in the
        place of ``executor``) makes the executor with
        :func:`wkview.utils.get_executor_for_args`; without either the jobs
        run in this process.
        """
        with executor_for(args, executor) as resolved:
            return self._downsample_chain(
                Mag(from_mag), [Mag(target_mag)], interpolation_mode, compress, buffer_edge_len, resolved, progress
            )[0]

    def _downsample_chain(
        self, source_mag: Mag, targets: list[Mag], interpolation_mode: str, compress: bool,
        buffer_edge_len: Optional[int], executor: Any, progress: Optional[bool],
    ) -> list["MagView"]:  # fmt: skip
        source = self.get_mag(source_mag)
        mode = resolve_mode(interpolation_mode, self.category)
        header = self._mag_header(source.header.block_len, source.header.file_len, compress)
        return pyramid.downsample_chain(
            source, source_mag, targets, self.bounding_box, mode,
            functools.partial(self._refill_or_build, header=header),
            buffer_edge_len=buffer_edge_len, executor=executor, progress=progress,
        )  # fmt: skip

    def downsample(
        self,
        from_mag: Optional[MagLike] = None,
        max_mag: Optional[MagLike] = None,
        interpolation_mode: str = "default",
        compress: bool = True,
        sampling_mode: str = "auto",
        buffer_edge_len: Optional[int] = None,
        executor: Any = None,
        *,
        args: Optional[Namespace] = None,
        progress: Optional[bool] = None,
    ) -> list["MagView"]:
        """Build the mag pyramid from ``from_mag`` (default: the finest) up to ``max_mag``.

        ``sampling_mode``: "isotropic" doubles every axis per step;
        "anisotropic"/"auto" doubles the axes whose physical voxel size
        (dataset scale times mag) is within 1.5x of the smallest, so that the
        voxels become isotropic first (scale (11, 11, 25) gives 2-2-1, 4-4-2,
        ...). ``max_mag`` defaults to the first mag in which the layer's
        bounding box fits into 256 voxels per axis. ``args`` / ``executor`` as in
        :meth:`downsample_mag`. Returns the new mag views.
        """
        start = Mag(from_mag) if from_mag is not None else self.get_finest_mag().mag
        mags = pyramid.downsampling_chain(
            start, None if max_mag is None else Mag(max_mag), sampling_mode, self._dataset.scale, self.bounding_box.size
        )
        return self.downsample_mag_list(
            start, mags, interpolation_mode, compress, buffer_edge_len, executor=executor, args=args, progress=progress
        )

    def downsample_mag_list(
        self,
        from_mag: MagLike,
        target_mags: list[MagLike],
        interpolation_mode: str = "default",
        compress: bool = True,
        buffer_edge_len: Optional[int] = None,
        args: Optional[Namespace] = None,
        *,
        executor: Any = None,
        progress: Optional[bool] = None,
    ) -> list["MagView"]:
        """Downsample step by step: ``from_mag`` to ``target_mags[0]``, that to ``target_mags[1]``, ...

        Each target must be a coarser multiple of the previous one. ``args``
        / ``executor`` as in :meth:`downsample_mag`. Returns the new mag views.
        """
        previous = Mag(from_mag)
        self.get_mag(previous)
        with executor_for(args, executor) as resolved:
            return self._downsample_chain(
                previous, [Mag(m) for m in target_mags], interpolation_mode, compress, buffer_edge_len, resolved, progress
            )

    def upsample(
        self,
        from_mag: MagLike,
        min_mag: Optional[MagLike] = None,
        compress: bool = True,
        sampling_mode: str = "auto",
        buffer_edge_len: Optional[int] = None,
        args: Optional[Namespace] = None,
        *,
        executor: Any = None,
        progress: Optional[bool] = None,
    ) -> list["MagView"]:
        """Build finer mags from ``from_mag`` down to ``min_mag`` by repeating voxels.

        Parameters
        ----------
        from_mag : mag-like
            An existing mag of the layer.
        min_mag : mag-like, optional
            The finest mag to build (default 1).
        compress : bool
            LZ4HC-compress the new mags (they keep ``from_mag``'s block_len and file_len).
        sampling_mode : str
            ``"auto"``/``"anisotropic"``: each step halves the axes whose
            physical voxel size (scale times mag) is within 1.5x of the
            largest, the reverse of :meth:`downsample`; ``"isotropic"``
            halves every axis.
        buffer_edge_len : int, optional
            Accepted for compatibility; jobs bound their memory by writing
            each target file in slabs.
        args, executor, progress
            As in :meth:`downsample_mag`.

        Returns
        -------
        list of MagView
            The new (built with :meth:`build_mag`) or refilled existing mags, coarse to fine.
        """
        if sampling_mode not in ("auto", "anisotropic", "isotropic"):
            raise ValueError(f"sampling_mode must be 'auto', 'anisotropic' or 'isotropic', got {sampling_mode!r}")
        source_mag = Mag(from_mag)
        chain = pyramid.upsampling_chain(
            source_mag, Mag(1 if min_mag is None else min_mag),
            None if sampling_mode == "isotropic" else self._dataset.scale,
        )  # fmt: skip
        with executor_for(args, executor) as resolved:
            source = self.get_mag(source_mag)
            header = self._mag_header(source.header.block_len, source.header.file_len, compress)
            return pyramid.upsample_chain(
                source, source_mag, chain, self.bounding_box, functools.partial(self._refill_or_build, header=header),
                executor=resolved, progress=progress,
            )  # fmt: skip

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

"""Copying and linking layers and mags between datasets (API of webknossos 0.8.13).

A mag whose target has the same block_len, file_len and block type as its
source is copied file by file, byte for byte (nothing is decoded); otherwise
every target file is written once from voxels read out of the source (re-
encoded), one job per target file, on any executor. Links are plain symlinks
(absolute, or relative with ``make_relative=True``); wkview only reads data
behind a link that leaves the dataset folder.

The methods live in two mixins, :class:`DatasetCopyMixin` and
:class:`LayerCopyMixin`, which :class:`wkview.Dataset` and
:class:`wkview.Layer` inherit.
"""

from __future__ import annotations

import copy
import os
import shutil
import tempfile
from argparse import Namespace
from itertools import product
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Union

import numpy as np
import wkw

from . import properties as props
from ._storage import _FileCheck, get_io_threads
from .errors import DatasetError, DTypeMismatchError, ShapeError
from .executors import get_executor, run_jobs
from .geometry import BoundingBox, Mag
from .utils import executor_for
from .view_configuration import VIEW_CONFIGURATION_KEY

if TYPE_CHECKING:  # only for annotations: dataset.py imports this module
    from .dataset import Dataset, Layer, MagView
    from .view import View

__all__ = ["DatasetCopyMixin", "LayerCopyMixin", "copy_mag", "write_in_slabs"]

PathLike = Union[str, os.PathLike]

# voxels per slab when a job fills one target file: bounds a job's memory for big files
_SLAB_BYTES = 128 * 2**20


def is_inside(path: Path, root: Path) -> bool:
    """True when ``path`` resolves (symlinks followed) to ``root`` or a path below it."""
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


# -- jobs (module level: they pickle for process and cluster executors) ---------------------


class CopyFilesJob:
    """Copy one data file of a mag byte for byte (validated first, renamed into place)."""

    def __init__(self, source: str, target: str, header: wkw.Header) -> None:
        self.source = source
        self.target = target
        self.header = header

    def __getstate__(self) -> dict[str, Any]:
        h = self.header
        state = dict(self.__dict__)
        state["header"] = dict(
            voxel_type=h.voxel_type, num_channels=h.num_channels, version=h.version,
            block_len=h.block_len, file_len=h.file_len, block_type=h.block_type,
        )  # fmt: skip
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.header = wkw.Header(**state["header"])

    def __call__(self, index: tuple[int, int, int]) -> int:
        x, y, z = index
        rel = os.path.join(f"z{z}", f"y{y}", f"x{x}.wkw")
        source = os.path.join(self.source, rel)
        _FileCheck().check(source, self.header)  # CorruptFileError names a damaged file
        target = os.path.join(self.target, rel)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(target), prefix=f".x{x}.", suffix=".tmp")
        os.close(fd)
        try:
            shutil.copyfile(source, tmp)  # sendfile / copy_file_range: no pass through Python
            os.replace(tmp, target)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return os.path.getsize(target)


def write_in_slabs(
    target: "View",
    offset: tuple[int, int, int],
    size: tuple[int, int, int],
    produce: Any,
    slab_bytes: int = _SLAB_BYTES,
) -> None:
    """Fill the box ``(offset, size)`` of ``target`` (relative offsets, inside the view) with ``produce(offset, size)``.

    A box larger than ``slab_bytes`` (128 MiB) is written in z-slabs whose
    borders lie on the target's block grid, so no block is encoded twice and a
    job's memory stays bounded; a smaller box goes in one write.
    """
    channels = target.header.num_channels
    itemsize = np.dtype(target.get_dtype()).itemsize
    plane = size[0] * size[1] * channels * itemsize
    block = target.header.block_len
    depth = max(block, (slab_bytes // max(plane, 1)) // block * block)
    absolute_z = target.global_offset[2] + offset[2]
    z, end = offset[2], offset[2] + size[2]
    while z < end:
        # the next border on the block grid at least `depth` further, in absolute coordinates
        stop = min(end, ((absolute_z + (z - offset[2]) + depth) // block) * block - absolute_z + offset[2])
        if stop <= z:
            stop = min(end, z + depth)
        box_off, box_size = (offset[0], offset[1], z), (size[0], size[1], stop - z)
        data = produce(box_off, box_size)
        if data.shape != (channels, *box_size) or data.dtype != target.get_dtype():
            raise ShapeError(f"expected {channels} x {box_size} voxels of {np.dtype(target.get_dtype())}, got {data.shape} {data.dtype}")
        # straight to the store: a slab inside a file is planned, not the unaligned write View warns about
        absolute = tuple(target.global_offset[i] + box_off[i] for i in range(3))
        target._store.write(absolute, data)
        z = stop


class ReencodeJob:
    """Write one target box from the same box of the source (the voxels are re-encoded)."""

    def __init__(self, source: "View", target: "View") -> None:
        self.source = source
        self.target = target

    def __call__(self, box: tuple[tuple[int, int, int], tuple[int, int, int]]) -> None:
        offset, size = box
        write_in_slabs(self.target, offset, size, self.source.read)


# -- mag copies -------------------------------------------------------------------------------


def _same_layout(header: wkw.Header, source_compressed: bool, block_len: int, file_len: int, compressed: bool) -> bool:
    return header.block_len == block_len and header.file_len == file_len and source_compressed == compressed


def copy_mag(
    source: "MagView",
    layer: "Layer",
    block_len: Optional[int] = None,
    file_len: Optional[int] = None,
    compress: Optional[bool] = None,
    executor: Any = None,
    progress: Optional[bool] = None,
) -> "MagView":
    """Add ``source``'s mag to ``layer`` and copy its data.

    None keeps the source's ``block_len``, ``file_len`` and compression. When
    all three stay the same, the data files are copied byte for byte (LZ4
    stays LZ4, LZ4HC stays LZ4HC); otherwise the source's voxels inside its
    layer's bounding box are re-encoded into the new layout, one job per
    target file that holds data. The jobs run on ``executor`` (None: here).
    """
    header = source.header
    source_compressed = source._store.is_compressed
    block_len = header.block_len if block_len is None else block_len
    file_len = header.file_len if file_len is None else file_len
    compressed = source_compressed if compress is None else bool(compress)
    _check_compatible(source, layer)
    name = f"{source.layer.name}/{source.mag}"
    if _same_layout(header, source_compressed, block_len, file_len, compressed):
        target = layer._add_mag(source.mag, header)
        files = source._store.list_files()
        job = CopyFilesJob(str(source._store.path), str(target._store.path), header)
        run_jobs(job, files, executor, progress=progress, desc=f"copy {name}", describe=_describe_file)
        return target
    target = layer.add_mag(source.mag, block_len, file_len, compressed)
    box = source.layer.bounding_box.align_with_mag(source.mag, ceil=True).in_mag(source.mag)
    if box.is_empty():
        return target
    layer.bounding_box = layer.bounding_box.extended_by(source.layer.bounding_box)
    boxes = _boxes_with_data(box, source._store.file_edge, set(source._store.list_files()), target._store.file_edge)
    job = ReencodeJob(
        source.get_view(offset=box.topleft, size=box.size, read_only=True),
        target.get_view(offset=box.topleft, size=box.size),
    )
    if executor is None and len(boxes) > 1 and get_io_threads() > 1:
        # small files stay on one thread inside the codec: run several files at once instead
        # (the codec reads and encodes without the GIL)
        with get_executor("threads", max_workers=get_io_threads()) as threads:
            run_jobs(job, boxes, threads, progress=progress, desc=f"re-encode {name}", describe=_describe_box)
    else:
        run_jobs(job, boxes, executor, progress=progress, desc=f"re-encode {name}", describe=_describe_box)
    return target


def _boxes_with_data(
    box: BoundingBox, source_edge: int, source_files: set[tuple[int, int, int]], target_edge: int
) -> list[tuple[tuple[int, int, int], tuple[int, int, int]]]:
    """Target-file-aligned parts of ``box`` (offsets relative to it) that overlap a source file."""
    out = []
    for chunk in box.chunk((target_edge,) * 3, (target_edge,) * 3):
        lo = chunk.topleft // source_edge
        hi = (chunk.bottomright - 1) // source_edge
        ranges = (range(lo[i], hi[i] + 1) for i in range(3))
        if any(index in source_files for index in product(*ranges)):
            out.append(((chunk.topleft - box.topleft).to_tuple(), chunk.size.to_tuple()))
    return out


def _describe_file(index: tuple[int, int, int]) -> str:
    return f"file z{index[2]}/y{index[1]}/x{index[0]}.wkw"


def _describe_box(box: tuple[tuple[int, int, int], tuple[int, int, int]]) -> str:
    return f"box at {box[0]} of size {box[1]} (relative to the layer's box)"


def _rebased_mags(layer: "Layer", new_name: str) -> list[props.MagProperties]:
    """The layer's mag entries, with paths under ``new_name`` (they must lie in the layer folder)."""
    out = []
    for mag in layer._properties.mags:
        if not (mag.path == layer.name or mag.path.startswith(layer.name + "/")):
            raise DatasetError(
                f"mag {mag.mag} of layer {layer.name!r} lies in {mag.path!r}, outside the layer's folder; "
                "it cannot be linked or copied with the layer"
            )
        path = new_name + mag.path[len(layer.name) :]
        out.append(props.MagProperties(mag.mag, mag.cube_length, path, copy.deepcopy(mag.extra)))
    return out


def _foreign_entry(foreign: "Layer", mags: list[props.MagProperties]) -> props.LayerProperties:
    """A copy of another dataset's layer entry (every field it has), with ``mags``."""
    entry = foreign._properties
    return props.LayerProperties(
        name=foreign.name,
        category=entry.category,
        element_class=entry.element_class,
        num_channels=entry.num_channels,
        bounding_box=entry.bounding_box,
        data_format="wkw",
        mags=mags,
        largest_segment_id=entry.largest_segment_id,
        extra=copy.deepcopy(entry.extra),
    )


def _link(target: Path, link: Path, make_relative: bool) -> None:
    if os.path.lexists(link):
        raise DatasetError(f"cannot create the link {link}: the path exists")
    pointee = os.path.relpath(os.path.abspath(target), os.path.abspath(link.parent)) if make_relative else os.path.abspath(target)
    os.symlink(pointee, link, target_is_directory=True)


# -- the mixins -------------------------------------------------------------------------------


class DatasetCopyMixin:
    """:class:`wkview.Dataset` methods that add layers of other datasets or copy the dataset."""

    path: Path
    _layers: dict[str, "Layer"]
    _properties: props.DatasetProperties

    def _foreign_layer(self, foreign_layer: Union[PathLike, "Layer"]) -> "Layer":
        if isinstance(foreign_layer, (str, os.PathLike)):
            folder = Path(foreign_layer)
            layer = type(self)(folder.parent).get_layer(folder.name)  # type: ignore[call-arg, attr-defined]
        else:
            layer = foreign_layer
        layer._require_wkw()
        if layer.dataset.path.resolve() == self.path.resolve():
            raise DatasetError(f"layer {layer.name!r} already belongs to {self.path}")
        return layer

    def add_layer_like(self, other_layer: "Layer", layer_name: str) -> "Layer":
        """A new, empty layer with ``other_layer``'s category, dtype, channels and view configuration.

        A segmentation layer also gets its ``largest_segment_id``. The new
        layer has no mags and an empty bounding box.
        """
        self._check_new_layer_name(layer_name)  # type: ignore[attr-defined]
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
        return self._register_layer(layer_props)  # type: ignore[attr-defined, no-any-return]

    def add_symlink_layer(self, foreign_layer: Union[PathLike, "Layer"], make_relative: bool = False) -> "Layer":
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
        self._check_new_layer_name(foreign.name)  # type: ignore[attr-defined]
        _rebased_mags(foreign, foreign.name)  # refuse before linking
        _link(foreign.path, self.path / foreign.name, make_relative)
        try:
            return self._register_layer(  # type: ignore[attr-defined, no-any-return]
                _foreign_entry(foreign, _rebased_mags(foreign, foreign.name))
            )
        except BaseException:
            os.unlink(self.path / foreign.name)
            raise

    def add_copy_layer(
        self,
        foreign_layer: Union[PathLike, "Layer"],
        *,
        executor: Any = None,
        progress: Optional[bool] = None,
    ) -> "Layer":
        """Copy a layer of another dataset into this one: its data (byte for byte), other files, properties.

        Files of the layer folder that belong to no mag (``mappings/``, ...)
        are copied as they are.
        """
        foreign = self._foreign_layer(foreign_layer)
        self._check_new_layer_name(foreign.name)  # type: ignore[attr-defined]
        mags = _rebased_mags(foreign, foreign.name)
        mag_folders = {m.path.split("/")[1] for m in mags if "/" in m.path}
        target = self.path / foreign.name
        target.mkdir()
        for entry in foreign.path.iterdir():
            if entry.name not in mag_folders:
                if entry.is_dir():
                    shutil.copytree(entry, target / entry.name)
                else:
                    shutil.copy2(entry, target / entry.name)
        layer = self._register_layer(_foreign_entry(foreign, []))  # type: ignore[attr-defined]
        for view in foreign.mags.values():
            copy_mag(view, layer, executor=executor, progress=progress)
        return layer  # type: ignore[no-any-return]

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
        new = type(self).create(new_dataset_path, scale if scale is not None else self.scale)  # type: ignore[attr-defined]
        view_config = self._properties.extra.get(VIEW_CONFIGURATION_KEY)
        if view_config is not None:
            new._properties.extra[VIEW_CONFIGURATION_KEY] = copy.deepcopy(view_config)
        with executor_for(args, executor) as resolved:
            for layer in self._layers.values():
                layer._require_wkw()
                new_layer = new.add_layer_like(layer, layer.name)
                new_layer.bounding_box = layer.bounding_box
                for view in layer.mags.values():
                    copy_mag(view, new_layer, block_len, file_len, compress, resolved, progress)
        return new  # type: ignore[no-any-return]


class LayerCopyMixin:
    """:class:`wkview.Layer` methods that link or copy mags of other datasets."""

    _dataset: "Dataset"
    _properties: props.LayerProperties

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

    def _grow_to(self, foreign: "MagView") -> None:
        bbox = self._properties.bounding_box.extended_by(foreign.layer.bounding_box)
        if bbox != self._properties.bounding_box:
            self.bounding_box = bbox  # type: ignore[misc]

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
        _check_compatible(foreign, self)  # type: ignore[arg-type]
        rel_path = self._check_new_mag(foreign.mag)  # type: ignore[attr-defined]
        _link(foreign.path, self._dataset.path / rel_path, make_relative)
        cube_length = foreign.header.block_len * foreign.header.file_len
        try:
            view = self._register_mag(foreign.mag, rel_path, cube_length)  # type: ignore[attr-defined]
        except BaseException:
            os.unlink(self._dataset.path / rel_path)
            raise
        self._grow_to(foreign)
        return view  # type: ignore[no-any-return]

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
        _check_compatible(foreign, self)  # type: ignore[arg-type]
        view = copy_mag(foreign, self, executor=executor, progress=progress)  # type: ignore[arg-type]
        self._grow_to(foreign)
        return view


def _check_compatible(foreign: "MagView", layer: "Layer") -> None:
    header = foreign.header
    if np.dtype(header.voxel_type) != layer.dtype_per_channel or header.num_channels != layer.num_channels:
        raise DTypeMismatchError(
            f"mag {foreign.mag} of {foreign.layer.name!r} stores {header.num_channels} x "
            f"{np.dtype(header.voxel_type)}; layer {layer.name!r} stores {layer.num_channels} x "
            f"{layer.dtype_per_channel}"
        )

"""Readers of chunked and single-file volumes: Zarr v2/v3 arrays, OME-Zarr multiscales,
N5, Neuroglancer precomputed, HDF5 datasets and MRC/REC files.

Each reader is a :class:`~wkview.sources.VolumeSource`: a small picklable record of
where the volume is and how its axes map to x, y, z and channels, never an open file.
Every :meth:`read` opens the file or store, reads its one box and closes it again: a
conversion job carries only the record to its worker, which opens the volume itself,
and no handle outlives the read that needed it (a batch is large, so opening costs
little beside it).

Which axis is which
-------------------
* **Zarr, OME-Zarr, N5, precomputed** (read through ``tensorstore``): the axis names
  come from the metadata where it has them (OME-Zarr ``axes``, Zarr v3
  ``dimension_names``, precomputed's fixed ``x, y, z, channel``); otherwise from the
  number of axes in NumPy (C) order, the OME-NGFF convention: ``zyx``, ``czyx``,
  ``tczyx`` (and ``yx`` for one slice). N5 has no axis names; tensorstore presents its
  dimensions in that same convention. An OME-Zarr multiscale group is read at its
  finest level (its first dataset).
* **HDF5** (``h5py``): ``file.h5:/path/to/dataset``; a file holding one dataset of 3 or
  4 axes needs no path. The axis order is ``--axis-order`` (``axis_order=``), ``zyx``
  by default (how most EM volumes are stored: CREMI, FIB-25, ilastik exports), or
  ``xyz``; a fourth axis holds channels and comes first for ``zyx`` (``czyx``) and
  last for ``xyz`` (``xyzc``).
* **MRC/REC** (``mrcfile``): ``zyx`` as the format defines it (one image per section).

An axis named ``t`` of length 1 is dropped; a longer one is refused (pick a timepoint
first). Every check happens when the source is opened, before anything is written,
and raises :class:`~wkview.errors.SourceError` naming the file.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np

from .errors import SourceError
from .images import check_dtype as _check_dtype
from .sources import VOLUME_OPENERS, VolumeSource, _empty, _stat_list

__all__ = [
    "AXIS_ORDERS",
    "TensorStoreVolume",
    "Hdf5Volume",
    "MrcVolume",
    "open_volume",
]

PathLike = Union[str, os.PathLike]

#: Axis orders ``--axis-order`` offers for HDF5 datasets (first axis first, NumPy order).
AXIS_ORDERS = ("zyx", "xyz")

#: File name endings read as HDF5 and MRC (case-insensitive).
HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf", ".he5")
MRC_SUFFIXES = (".mrc", ".rec", ".st", ".map", ".ali", ".mrcs")

_HDF5_WITH_PATH = re.compile(r"^(?P<file>.+?(?:" + "|".join(re.escape(s) for s in HDF5_SUFFIXES) + r")):(?P<dataset>.*)$",
                             re.IGNORECASE)

_ZARR_V3, _ZARRAY, _ZGROUP, _ZATTRS = "zarr.json", ".zarray", ".zgroup", ".zattrs"
_N5_ATTRIBUTES, _PRECOMPUTED_INFO = "attributes.json", "info"


def _read_json(path: Path, where: Path) -> Any:
    try:
        return json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise SourceError(f"{where}: cannot read {path.name} ({type(exc).__name__}: {exc})") from None


def _volume_axes(where: Any, axes: Sequence[str], shape: Sequence[int]) -> tuple[str, ...]:
    """Check that ``axes`` (one name per array axis) places x and y once each; returns them."""
    if len(axes) != len(shape):
        raise SourceError(f"{where}: {len(axes)} axis names for an array of {len(shape)} axes")
    if len(set(axes)) != len(axes) or not {"x", "y"} <= set(axes) or not set(axes) <= set("tczyx"):
        raise SourceError(
            f"{where}: cannot place the axes {','.join(axes)} (expected x and y once each, plus z, c and t at most)"
        )
    if "t" in axes and shape[axes.index("t")] != 1:
        raise SourceError(
            f"{where}: holds {shape[axes.index('t')]} timepoints; wkview converts one volume (pick a timepoint first)"
        )
    return tuple(axes)


def _positional_axes(where: Any, ndim: int) -> tuple[str, ...]:
    """The OME-NGFF convention for unnamed axes, in NumPy order."""
    known = {2: "yx", 3: "zyx", 4: "czyx", 5: "tczyx"}
    if ndim not in known:
        raise SourceError(f"{where}: an array of {ndim} axes is not a volume (expected 2 to 5 axes)")
    return tuple(known[ndim])


_AXIS_ALIASES = {"channel": "c", "channels": "c", "time": "t"}


def _axis_name(name: Any) -> str:
    text = str(name).lower()
    return _AXIS_ALIASES.get(text, text)


class _AxesMixin:
    """Shape, channels and the box read of an array whose axes are named in ``axes``."""

    axes: tuple[str, ...]
    array_shape: tuple[int, ...]
    array_dtype: np.dtype

    @property
    def shape(self) -> tuple[int, int, int]:
        sizes = dict(zip(self.axes, self.array_shape))
        return (sizes["x"], sizes["y"], sizes.get("z", 1))

    @property
    def dtype(self) -> np.dtype:
        return self.array_dtype

    @property
    def num_channels(self) -> int:
        return dict(zip(self.axes, self.array_shape)).get("c", 1)

    def _index(self, offset: Sequence[int], size: Sequence[int], origin: Optional[Sequence[int]] = None
               ) -> tuple[Any, ...]:
        """The array index of a box: a slice per spatial axis, every channel, the first
        timepoint; ``origin`` is the array's lowest index per axis (default 0)."""
        low = [0] * len(self.axes) if origin is None else list(origin)
        box = {a: (int(o), int(o) + int(s)) for a, o, s in zip("xyz", offset, size)}
        index: list[Any] = []
        for axis, start in zip(self.axes, low):
            if axis in box:
                index.append(slice(start + box[axis][0], start + box[axis][1]))
            else:
                index.append(start if axis == "t" else slice(None))
        return tuple(index)

    def _to_cxyz(self, block: np.ndarray, size: Sequence[int]) -> np.ndarray:
        """``block`` (the array's axes without t) as ``(c, x, y, z)``, Fortran order."""
        kept = [a for a in self.axes if a != "t"]
        if "z" not in kept:
            block, kept = block[..., None], kept + ["z"]
        if "c" not in kept:
            block, kept = block[None], ["c"] + kept
        block = block.transpose([kept.index(a) for a in "cxyz"])
        if block.flags.f_contiguous:  # a zyx or czyx C-order read already is: no copy
            return block
        out = _empty(self.num_channels, size, self.dtype)
        out[...] = block
        return out

    def _fortran_read(self) -> bool:
        """Whether a Fortran-order read gives the ``(c, x, y, z)`` result without a copy:
        when the array's axes already come in that order (webknossos' ``c, x, y, z``)."""
        kept = [a for a in self.axes if a != "t"]
        positions = [kept.index(a) for a in "cxyz" if a in kept]
        return positions == sorted(positions)

    def _axes_text(self) -> str:
        return ",".join(self.axes)


# -- Zarr, OME-Zarr, N5, precomputed: tensorstore ------------------------------------------------


@dataclass(frozen=True)
class TensorStoreVolume(_AxesMixin, VolumeSource):
    """A Zarr v2/v3 array, an OME-Zarr multiscale (finest level), an N5 dataset or a
    Neuroglancer precomputed volume (finest scale), read through tensorstore.

    ``spec`` is the tensorstore open spec (as JSON text), ``axes`` names each array
    axis (``x``, ``y``, ``z``, ``c``, ``t``), ``origin`` is the array's lowest index
    (precomputed volumes may start elsewhere than 0).
    """

    path: Path
    kind: str
    spec: str
    axes: tuple[str, ...]
    array_shape: tuple[int, ...]
    array_dtype: np.dtype
    origin: tuple[int, ...]
    names: Optional[tuple[str, ...]] = None
    metadata_files: tuple[Path, ...] = field(default=())

    @property
    def channel_names(self) -> Optional[list[str]]:
        """The channels' names from OME-Zarr ``omero`` metadata, or None."""
        return None if self.names is None else list(self.names)

    def read(self, offset: Sequence[int], size: Sequence[int]) -> np.ndarray:
        import tensorstore as ts

        try:
            array = ts.open(json.loads(self.spec), read=True, open=True).result()
            # one read of the whole box: tensorstore decodes its chunks on its own threads,
            # into the memory order that needs no copy afterwards
            box = array[self._index(offset, size, self.origin)]
            block = box.read(order="F" if self._fortran_read() else "C").result()
        except Exception as exc:  # a missing or damaged chunk, a vanished store
            raise SourceError(
                f"{self.path}: cannot read the box at {tuple(offset)} of size {tuple(size)} "
                f"({type(exc).__name__}: {exc})"
            ) from None
        return self._to_cxyz(np.asarray(block), size)

    def describe(self) -> str:
        x, y, z = self.shape
        return (f"the {self.kind} {self.path} (axes {self._axes_text()}; {x}x{y}x{z} voxels of "
                f"{self.dtype} x {self.num_channels})")

    def fingerprint(self) -> list[Any]:
        return ["tensorstore", self.spec, list(self.array_shape), _stat_list(list(self.metadata_files))]


def _kvstore(path: Path) -> dict[str, Any]:
    return {"driver": "file", "path": str(path.resolve())}


def _open_tensorstore(path: Path, kind: str, spec: dict[str, Any], axes_hint: Optional[Sequence[str]],
                      names: Optional[Sequence[str]], metadata_files: Sequence[Path]) -> TensorStoreVolume:
    import tensorstore as ts

    try:
        array = ts.open(spec, read=True, open=True).result()
    except Exception as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SourceError(f"{path}: not a readable {kind} ({message})") from None
    shape = tuple(int(s) for s in array.shape)
    labels = list(array.domain.labels)
    if axes_hint:
        axes = [_axis_name(a) for a in axes_hint]
    elif all(labels):
        axes = [_axis_name(a) for a in labels]
    else:
        axes = list(_positional_axes(path, len(shape)))
    axes_t = _volume_axes(path, axes, shape)
    dtype = np.dtype(array.dtype.numpy_dtype)
    _check_dtype(path, dtype)
    channels = dict(zip(axes_t, shape)).get("c", 1)
    if names is not None and len(names) != channels:
        names = None  # omero metadata that does not match the array is not trusted
    return TensorStoreVolume(
        path=path,
        kind=kind,
        spec=json.dumps(spec, sort_keys=True),
        axes=axes_t,
        array_shape=shape,
        array_dtype=dtype,
        origin=tuple(int(v) for v in array.domain.inclusive_min),
        names=None if names is None else tuple(str(n) for n in names),
        metadata_files=tuple(metadata_files),
    )


def _ome_multiscale(path: Path, attributes: dict[str, Any]) -> Optional[tuple[str, list[str], Optional[list[str]]]]:
    """The finest dataset path, axis names and channel names of an OME-Zarr group, or
    None when ``attributes`` describe no multiscale."""
    attributes = attributes.get("ome", attributes)  # NGFF 0.5 nests them under "ome"
    multiscales = attributes.get("multiscales")
    if not multiscales:
        return None
    try:
        first = multiscales[0]
        datasets = first["datasets"]
        finest = str(datasets[0]["path"])
        axes = [a["name"] if isinstance(a, dict) else a for a in first.get("axes", [])]
    except (KeyError, IndexError, TypeError) as exc:
        raise SourceError(f"{path}: malformed OME-Zarr multiscales metadata ({type(exc).__name__}: {exc})") from None
    channels = attributes.get("omero", {}).get("channels") if isinstance(attributes.get("omero"), dict) else None
    names = None
    if isinstance(channels, list) and all(isinstance(c, dict) and "label" in c for c in channels):
        names = [str(c["label"]) for c in channels]
    return finest, [str(a) for a in axes], names


def _open_zarr(path: Path) -> TensorStoreVolume:
    if (path / _ZARR_V3).is_file():
        meta = _read_json(path / _ZARR_V3, path)
        node = meta.get("node_type") if isinstance(meta, dict) else None
        if node == "array":
            return _open_tensorstore(path, "Zarr v3 array", {"driver": "zarr3", "kvstore": _kvstore(path)}, None,
                                     None, [path / _ZARR_V3])
        if node == "group":
            found = _ome_multiscale(path, meta.get("attributes", {}))
            if found is None:
                raise SourceError(f"{path}: a Zarr v3 group without OME-Zarr multiscales; give one of its arrays")
            finest, axes, names = found
            level = path / finest
            driver = "zarr3" if (level / _ZARR_V3).is_file() else "zarr"
            return _open_tensorstore(path, "OME-Zarr", {"driver": driver, "kvstore": _kvstore(level)}, axes or None,
                                     names, [path / _ZARR_V3])
        raise SourceError(f"{path}: {_ZARR_V3} names neither an array nor a group (node_type {node!r})")
    if (path / _ZARRAY).is_file():
        return _open_tensorstore(path, "Zarr v2 array", {"driver": "zarr", "kvstore": _kvstore(path)}, None, None,
                                 [path / _ZARRAY])
    attributes = _read_json(path / _ZATTRS, path) if (path / _ZATTRS).is_file() else {}
    found = _ome_multiscale(path, attributes if isinstance(attributes, dict) else {})
    if found is None:
        raise SourceError(f"{path}: a Zarr v2 group without OME-Zarr multiscales; give one of its arrays")
    finest, axes, names = found
    level = path / finest
    driver = "zarr3" if (level / _ZARR_V3).is_file() else "zarr"
    return _open_tensorstore(path, "OME-Zarr", {"driver": driver, "kvstore": _kvstore(level)}, axes or None, names,
                             [path / _ZATTRS] if (path / _ZATTRS).is_file() else [path / _ZGROUP])


def _open_n5(path: Path) -> TensorStoreVolume:
    attributes = _read_json(path / _N5_ATTRIBUTES, path) if (path / _N5_ATTRIBUTES).is_file() else {}
    dataset = path
    if not (isinstance(attributes, dict) and "dimensions" in attributes and "dataType" in attributes):
        # a multiscale group: s0 is the finest level by the common convention
        dataset = path / "s0"
        if not (dataset / _N5_ATTRIBUTES).is_file():
            raise SourceError(f"{path}: an N5 group that is neither a dataset nor a pyramid (no s0 level)")
    return _open_tensorstore(path, "N5 dataset", {"driver": "n5", "kvstore": _kvstore(dataset)}, None, None,
                             [dataset / _N5_ATTRIBUTES])


def _open_precomputed(path: Path) -> TensorStoreVolume:
    info = _read_json(path / _PRECOMPUTED_INFO, path)
    if not isinstance(info, dict) or not info.get("scales"):
        raise SourceError(f"{path}: the info file is not a Neuroglancer precomputed volume")
    spec = {"driver": "neuroglancer_precomputed", "kvstore": _kvstore(path), "scale_index": 0}
    return _open_tensorstore(path, "Neuroglancer precomputed volume", spec, None, None, [path / _PRECOMPUTED_INFO])


def _chunked_kind(path: Path) -> Optional[str]:
    """Which chunked format a folder holds, from its metadata files (None: not one)."""
    if (path / _ZARR_V3).is_file() or (path / _ZARRAY).is_file() or (path / _ZGROUP).is_file():
        return "zarr"
    if (path / _N5_ATTRIBUTES).is_file() or (path / "s0" / _N5_ATTRIBUTES).is_file():
        return "n5"
    if (path / _PRECOMPUTED_INFO).is_file():
        info_text = (path / _PRECOMPUTED_INFO).read_bytes()[:4096]
        if b"scales" in info_text:
            return "precomputed"
    return None


# -- HDF5: h5py ----------------------------------------------------------------------------------


def _check_axis_order(axis_order: Optional[str], default: str) -> str:
    order = default if axis_order is None else str(axis_order).lower()
    if order not in AXIS_ORDERS:
        raise SourceError(f"axis order must be one of {', '.join(AXIS_ORDERS)}, got {axis_order!r}")
    return order


@dataclass(frozen=True)
class Hdf5Volume(_AxesMixin, VolumeSource):
    """One dataset of an HDF5 file, read hyperslab by hyperslab through h5py.

    ``axes`` names each axis of the dataset: ``zyx``/``czyx`` or ``xyz``/``xyzc``.
    """

    path: Path
    dataset: str
    axes: tuple[str, ...]
    array_shape: tuple[int, ...]
    array_dtype: np.dtype

    @classmethod
    def from_spec(cls, path: PathLike, dataset: Optional[str] = None, axis_order: Optional[str] = None) -> "Hdf5Volume":
        """Open ``dataset`` of the HDF5 file ``path`` (None: its only volume dataset)."""
        import h5py

        path = Path(path)
        order = _check_axis_order(axis_order, "zyx")
        if not path.is_file():
            raise SourceError(f"{path}: no such file")
        try:
            with h5py.File(path, "r") as f:
                if not dataset:
                    found: list[str] = []
                    f.visititems(lambda name, obj: found.append(name) if isinstance(obj, h5py.Dataset) else None)
                    volumes = [name for name in found if f[name].ndim in (3, 4)]
                    if len(volumes) != 1:
                        listed = ", ".join("/" + n for n in found[:10]) or "none"
                        raise SourceError(
                            f"{path}: holds {len(volumes)} datasets of 3 or 4 axes (datasets: {listed}); "
                            f"name one as {path}:/path/to/dataset"
                        )
                    dataset = volumes[0]
                node = f.get(dataset)
                if not isinstance(node, h5py.Dataset):
                    what = "a group" if isinstance(node, h5py.Group) else "nothing"
                    raise SourceError(f"{path}: {dataset} is {what}, not a dataset")
                shape, dtype = tuple(int(s) for s in node.shape), np.dtype(node.dtype)
                dataset = node.name
        except SourceError:
            raise
        except Exception as exc:  # h5py raises OSError for files that are not HDF5
            raise SourceError(f"{path}: not a readable HDF5 file ({type(exc).__name__}: {exc})") from None
        _check_dtype(f"{path}:{dataset}", dtype)
        if len(shape) == 3:
            axes = tuple(order)
        elif len(shape) == 4:
            axes = ("c", *order) if order == "zyx" else (*order, "c")
        else:
            raise SourceError(f"{path}:{dataset}: a dataset of shape {shape} is not a volume (expected 3 or 4 axes)")
        return cls(path, str(dataset), _volume_axes(f"{path}:{dataset}", axes, shape), shape, dtype)

    @property
    def channel_names(self) -> Optional[list[str]]:
        """HDF5 datasets carry no channel names."""
        return None

    def read(self, offset: Sequence[int], size: Sequence[int]) -> np.ndarray:
        import h5py

        try:
            with h5py.File(self.path, "r") as f:
                block = f[self.dataset][self._index(offset, size)]
        except Exception as exc:
            raise SourceError(
                f"{self.path}:{self.dataset}: cannot read the box at {tuple(offset)} of size {tuple(size)} "
                f"({type(exc).__name__}: {exc})"
            ) from None
        return self._to_cxyz(block, size)

    def describe(self) -> str:
        x, y, z = self.shape
        return (f"the HDF5 dataset {self.path}:{self.dataset} (axes {self._axes_text()}; {x}x{y}x{z} voxels of "
                f"{self.dtype} x {self.num_channels})")

    def fingerprint(self) -> list[Any]:
        return ["hdf5", self.dataset, list(self.axes), _stat_list([self.path])]


# -- MRC: mrcfile --------------------------------------------------------------------------------


@dataclass(frozen=True)
class MrcVolume(_AxesMixin, VolumeSource):
    """An MRC/REC volume (sections along z), memory-mapped through mrcfile."""

    path: Path
    axes: tuple[str, ...]
    array_shape: tuple[int, ...]
    array_dtype: np.dtype

    @classmethod
    def from_file(cls, path: PathLike) -> "MrcVolume":
        import mrcfile

        path = Path(path)
        try:
            with mrcfile.mmap(path, mode="r", permissive=False) as mrc:
                if mrc.data is None:
                    raise SourceError(f"{path}: the MRC file holds no data")
                shape, dtype = tuple(int(s) for s in mrc.data.shape), np.dtype(mrc.data.dtype)
        except SourceError:
            raise
        except Exception as exc:  # mrcfile raises ValueError on bad headers and short files
            raise SourceError(f"{path}: not a readable MRC file ({type(exc).__name__}: {exc})") from None
        _check_dtype(path, dtype.newbyteorder("="))
        if len(shape) not in (2, 3):
            raise SourceError(f"{path}: MRC data of shape {shape} is not a volume")
        axes = ("z", "y", "x") if len(shape) == 3 else ("y", "x")
        return cls(path, axes, shape, dtype.newbyteorder("="))

    @property
    def channel_names(self) -> Optional[list[str]]:
        """MRC files have one channel and no names."""
        return None

    def read(self, offset: Sequence[int], size: Sequence[int]) -> np.ndarray:
        import mrcfile

        try:
            with mrcfile.mmap(self.path, mode="r", permissive=False) as mrc:
                block = np.array(mrc.data[self._index(offset, size)], dtype=self.dtype)
        except Exception as exc:
            raise SourceError(
                f"{self.path}: cannot read the box at {tuple(offset)} of size {tuple(size)} ({type(exc).__name__}: {exc})"
            ) from None
        return self._to_cxyz(block, size)

    def describe(self) -> str:
        x, y, z = self.shape
        return f"the MRC file {self.path} (axes {self._axes_text()}; {x}x{y}x{z} voxels of {self.dtype})"

    def fingerprint(self) -> list[Any]:
        return ["mrc", _stat_list([self.path])]


# -- finding the reader ----------------------------------------------------------------------------


def open_volume(source: PathLike, axis_order: Optional[str] = None) -> Optional[VolumeSource]:
    """The chunked or single-file volume reader for ``source``, or None when ``source`` is
    none of Zarr, OME-Zarr, N5, precomputed, HDF5 or MRC (other readers may take it).

    ``axis_order`` (``zyx`` or ``xyz``) applies to HDF5 datasets, whose files do not say
    it; the other formats name their axes or define them.

    Raises
    ------
    SourceError
        ``source`` is one of these formats but damaged or not a volume (naming the file),
        or ``axis_order`` is given for a format that defines its own axes.
    """
    text = os.fspath(source)
    match = _HDF5_WITH_PATH.match(text)
    path = Path(text)
    found: Optional[VolumeSource] = None
    if match and not path.exists():
        found = Hdf5Volume.from_spec(match.group("file"), match.group("dataset") or None, axis_order)
    elif path.is_file() and path.suffix.lower() in HDF5_SUFFIXES:
        found = Hdf5Volume.from_spec(path, None, axis_order)
    elif path.is_file() and path.suffix.lower() in MRC_SUFFIXES:
        found = MrcVolume.from_file(path)
    elif path.is_dir():
        kind = _chunked_kind(path)
        if kind == "zarr":
            found = _open_zarr(path)
        elif kind == "n5":
            found = _open_n5(path)
        elif kind == "precomputed":
            found = _open_precomputed(path)
    if axis_order is not None and not isinstance(found, Hdf5Volume):
        _check_axis_order(axis_order, "zyx")
        # the other formats name or define their axes: a given order would be ignored
        raise SourceError(f"{text}: --axis-order applies to HDF5 datasets only")
    return found


VOLUME_OPENERS.append(open_volume)

"""Writers of small chunked and single-file volumes for the tests (Zarr v2/v3, OME-Zarr, N5,
Neuroglancer precomputed, HDF5, MRC), each made with the format's own library.

Every writer takes the volume as wkview reads it, ``(channels, x, y, z)``, stores it in the
format's own axis order, and returns the string to hand to ``wkview convert``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Sequence

import numpy as np


def _czyx(data: np.ndarray) -> np.ndarray:
    """``(c, x, y, z)`` as the C-order ``(c, z, y, x)`` most formats store."""
    return np.ascontiguousarray(data.transpose(0, 3, 2, 1))


def _ts_write(spec: dict, array: np.ndarray) -> None:
    import tensorstore as ts

    store = ts.open(spec, create=True, delete_existing=True, dtype=array.dtype, shape=array.shape).result()
    store.write(array).result()


def write_zarr(path: Path, data: np.ndarray, version: int = 3, chunks: Sequence[int] = (5, 6, 7),
               dimension_names: Optional[Sequence[str]] = None) -> str:
    """A plain Zarr array: ``zyx`` for one channel, ``czyx`` otherwise (v3: optionally named)."""
    array = _czyx(data)
    if data.shape[0] == 1:
        array = array[0]
    grid = list(chunks)[-array.ndim:] if len(chunks) >= array.ndim else [2] * (array.ndim - len(chunks)) + list(chunks)
    if version == 3:
        metadata: dict = {"chunk_grid": {"name": "regular", "configuration": {"chunk_shape": grid}}}
        if dimension_names is not None:
            metadata["dimension_names"] = list(dimension_names)
        spec = {"driver": "zarr3", "kvstore": {"driver": "file", "path": str(path)}, "metadata": metadata}
    else:
        spec = {"driver": "zarr", "kvstore": {"driver": "file", "path": str(path)}, "metadata": {"chunks": grid}}
    _ts_write(spec, array)
    return str(path)


def write_ome_zarr(path: Path, data: np.ndarray, version: int = 3, channel_names: Optional[Sequence[str]] = None,
                   chunks: Sequence[int] = (8, 8, 8)) -> str:
    """An OME-Zarr multiscale group (NGFF 0.5 on Zarr v3, 0.4 on v2) with one level ``0``
    holding ``czyx`` (or ``zyx`` for one channel) and a coarser level ``1`` that must not be read."""
    channels = data.shape[0]
    axes = ([{"name": "c", "type": "channel"}] if channels > 1 else []) + [
        {"name": a, "type": "space", "unit": "nanometer"} for a in "zyx"
    ]
    scale0 = [1.0] * (1 if channels > 1 else 0) + [1.0, 1.0, 1.0]
    multiscales = [{
        "version": "0.5" if version == 3 else "0.4",
        "axes": axes,
        "datasets": [
            {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": scale0}]},
            {"path": "1", "coordinateTransformations": [{"type": "scale", "scale": [s * 2 for s in scale0]}]},
        ],
    }]
    attributes: dict = {"multiscales": multiscales}
    if channel_names is not None:
        attributes["omero"] = {"channels": [{"label": n, "color": "FFFFFF", "active": True} for n in channel_names]}
    path.mkdir(parents=True)
    if version == 3:
        (path / "zarr.json").write_text(json.dumps(
            {"zarr_format": 3, "node_type": "group", "attributes": {"ome": {"version": "0.5", **attributes}}}
        ))
    else:
        (path / ".zgroup").write_text(json.dumps({"zarr_format": 2}))
        (path / ".zattrs").write_text(json.dumps(attributes))
    level_chunks = [1] * (data.ndim - 1 - 3) + list(chunks) if channels > 1 else list(chunks)
    write_zarr(path / "0", data, version, level_chunks)
    # a different, coarser level: reading it instead of level 0 would show
    write_zarr(path / "1", np.ascontiguousarray(data[:, ::2, ::2, ::2]) + 1, version, level_chunks)
    return str(path)


def write_n5(path: Path, data: np.ndarray, pyramid: bool = False) -> str:
    """An N5 dataset (tensorstore's dimension order: ``zyx``/``czyx``), or a pyramid with ``s0``."""
    array = _czyx(data)
    if data.shape[0] == 1:
        array = array[0]
    target = path / "s0" if pyramid else path
    spec = {
        "driver": "n5",
        "kvstore": {"driver": "file", "path": str(target)},
        "metadata": {"blockSize": [4] * array.ndim, "compression": {"type": "gzip"}},
    }
    _ts_write(spec, array)
    if pyramid:
        (path / "attributes.json").write_text(json.dumps({"n5": "2.0.0"}))
    return str(path)


def write_precomputed(path: Path, data: np.ndarray, voxel_offset: Sequence[int] = (0, 0, 0)) -> str:
    """A Neuroglancer precomputed volume (``x, y, z, channel``), raw chunks of 8^3."""
    import tensorstore as ts

    channels, x, y, z = data.shape
    spec = {
        "driver": "neuroglancer_precomputed",
        "kvstore": {"driver": "file", "path": str(path)},
        "multiscale_metadata": {"type": "image", "data_type": str(data.dtype), "num_channels": channels},
        "scale_metadata": {"size": [x, y, z], "voxel_offset": list(voxel_offset), "chunk_size": [8, 8, 8],
                           "encoding": "raw", "resolution": [1, 1, 1]},
    }
    store = ts.open(spec, create=True, delete_existing=True).result()
    store.write(np.ascontiguousarray(data.transpose(1, 2, 3, 0))).result()
    return str(path)


def write_hdf5(path: Path, data: np.ndarray, dataset: str = "volumes/raw", order: str = "zyx",
               compression: Optional[str] = "gzip", extra: bool = False) -> str:
    """An HDF5 dataset in ``order`` (``zyx``: ``czyx`` for channels; ``xyz``: ``xyzc``),
    chunked and compressed; ``extra`` adds a second, 1D dataset (labels) beside it."""
    import h5py

    if order == "zyx":
        array = _czyx(data)
        array = array[0] if data.shape[0] == 1 else array
    else:
        array = np.ascontiguousarray(data.transpose(1, 2, 3, 0))
        array = array[..., 0] if data.shape[0] == 1 else array
    with h5py.File(path, "a") as f:
        f.create_dataset(dataset, data=array, chunks=True if compression else None, compression=compression)
        if extra:
            f.create_dataset("meta/ids", data=np.arange(5))
    return f"{path}:/{dataset}"


def write_mrc(path: Path, data: np.ndarray) -> str:
    """An MRC file (sections along z: ``zyx``)."""
    import mrcfile

    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(_czyx(data)[0])
    return str(path)

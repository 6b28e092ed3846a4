"""wkview: fast, safe views on WKW voxel volumes.

Public names live here; everything else is private.
"""

try:
    from . import _core  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only on broken installs
    raise ImportError(
        "wkview's compiled core (wkview._core) is missing or broken. wkview has no "
        "slow pure-Python fallback: build it with `pip install .` (or `pip install -e .` "
        "in a checkout), which needs a C compiler and Cython 3."
    ) from exc

from .errors import (
    BoundsError,
    ChunkingError,
    CorruptFileError,
    DatasetError,
    DTypeMismatchError,
    NotADatasetError,
    PropertiesError,
    ReadOnlyError,
    ShapeError,
    UnsupportedLayerError,
    ViewStateError,
    WkviewError,
)
from .geometry import BoundingBox, Mag, Vec3Int
from .view import View
from .dataset import Dataset, Layer, MagView, SegmentationLayer
from .executors import JobError, JobTimeoutError, get_executor, run_jobs
from ._storage import get_io_threads, set_io_threads
from ._settings import fsync_enabled, locking_enabled, set_fsync, set_locking
from . import repair

__version__ = "0.1.0"

__all__ = [
    "Dataset",
    "Layer",
    "SegmentationLayer",
    "MagView",
    "View",
    "get_executor",
    "run_jobs",
    "get_io_threads",
    "set_io_threads",
    "set_locking",
    "locking_enabled",
    "set_fsync",
    "fsync_enabled",
    "repair",
    "JobError",
    "JobTimeoutError",
    "BoundingBox",
    "Mag",
    "Vec3Int",
    "WkviewError",
    "BoundsError",
    "ChunkingError",
    "CorruptFileError",
    "DatasetError",
    "DTypeMismatchError",
    "NotADatasetError",
    "PropertiesError",
    "ReadOnlyError",
    "ShapeError",
    "UnsupportedLayerError",
    "ViewStateError",
]

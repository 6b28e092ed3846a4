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
    DTypeError,
    DTypeMismatchError,
    ImmutableError,
    LayerLookupError,
    NameTakenError,
    NotADatasetError,
    PropertiesError,
    ReadOnlyError,
    ShapeError,
    SourceError,
    TargetExistsError,
    UnsupportedLayerError,
    ViewStateError,
    WkviewError,
)
from .geometry import BoundingBox, BoundingBoxNamedTuple, Mag, Vec3Int
from .view import View
from .dataset import Dataset, Layer, LayerCategories, MagView, SegmentationLayer
from .view_configuration import DatasetViewConfiguration, LayerViewConfiguration
from . import utils
from .executors import JobError, JobTimeoutError, get_executor, run_jobs
from ._storage import get_io_threads, set_io_threads
from ._settings import fsync_enabled, locking_enabled, set_fsync, set_locking
from . import repair
from . import volume_sources as _volume_sources  # noqa: F401  (adds its readers to sources.open_source)

__version__ = "0.1.0"

__all__ = [
    "Dataset",
    "Layer",
    "SegmentationLayer",
    "LayerCategories",
    "MagView",
    "DatasetViewConfiguration",
    "LayerViewConfiguration",
    "utils",
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
    "BoundingBoxNamedTuple",
    "Mag",
    "Vec3Int",
    "WkviewError",
    "BoundsError",
    "ChunkingError",
    "CorruptFileError",
    "DatasetError",
    "DTypeError",
    "DTypeMismatchError",
    "ImmutableError",
    "LayerLookupError",
    "NameTakenError",
    "NotADatasetError",
    "PropertiesError",
    "ReadOnlyError",
    "ShapeError",
    "SourceError",
    "TargetExistsError",
    "UnsupportedLayerError",
    "ViewStateError",
]

# WKVIEW_WEBKNOSSOS_BACKEND=1: make webknossos (4.3.x) use wkview for WKW at import time
# (for worker processes whose jobs open datasets themselves; see wkview.webknossos_backend)
import os as _os

if _os.environ.get("WKVIEW_WEBKNOSSOS_BACKEND", "").strip() not in ("", "0"):
    from . import webknossos_backend as _webknossos_backend

    _webknossos_backend.enable_from_environment()
del _os

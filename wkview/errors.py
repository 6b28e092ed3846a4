"""Exceptions raised by wkview.

Every exception derives from :class:`WkviewError` and from the built-in
exception that fits the failure, so ``except ValueError`` works as usual.
Checks that webknossos 0.8.13 made with ``assert`` raise exceptions that also
derive from :class:`AssertionError`: code written against it that catches
``AssertionError`` keeps working, and unlike an ``assert`` the check still
runs under ``python -O``.
"""

from __future__ import annotations

__all__ = [
    "WkviewError",
    "BoundsError",
    "ShapeError",
    "DTypeMismatchError",
    "ReadOnlyError",
    "ChunkingError",
    "ViewStateError",
    "DatasetError",
    "NotADatasetError",
    "PropertiesError",
    "CorruptFileError",
    "UnsupportedLayerError",
    "SourceError",
    "TargetExistsError",
    "DTypeError",
    "LayerLookupError",
    "NameTakenError",
    "ImmutableError",
]


class WkviewError(Exception):
    """Base class of every error wkview raises on purpose."""


class BoundsError(WkviewError, ValueError, AssertionError):
    """A read, write or sub-view reaches outside the bounds of a view."""


class ShapeError(WkviewError, ValueError, AssertionError):
    """An array, offset or size has the wrong number of axes, channels or values."""


class DTypeMismatchError(WkviewError, TypeError, AssertionError):
    """Data of one dtype was given where the layer stores another (never cast silently)."""


class ReadOnlyError(WkviewError, PermissionError, AssertionError):
    """A write to a read-only view, or a writable sub-view of a read-only view."""


class ChunkingError(WkviewError, ValueError, AssertionError):
    """Chunk sizes or chunk pairings that would give wrong or lost results."""


class ViewStateError(WkviewError, RuntimeError):
    """``open()`` on an opened view or ``close()`` on a view that is not open."""


class DatasetError(WkviewError, ValueError, AssertionError):
    """A dataset, layer or mag that does not exist or cannot be created as asked."""


class NotADatasetError(DatasetError, FileNotFoundError):
    """A folder without ``datasource-properties.json``."""


class PropertiesError(DatasetError):
    """A ``datasource-properties.json`` that is malformed or unsafe.

    The message names the file and the field.
    """


class CorruptFileError(WkviewError, OSError):
    """A ``.wkw`` file that is empty, truncated or not a WKW file at all."""


class UnsupportedLayerError(DatasetError, NotImplementedError):
    """A layer stored in a format other than WKW (zarr, zarr3, n5, ...) was used."""


class SourceError(WkviewError, ValueError):
    """Input of a conversion that cannot be read as asked: missing, unreadable, or
    slices that differ in size or type. The message names the file."""


class TargetExistsError(WkviewError, FileExistsError):
    """A conversion target that already holds data (pass ``overwrite=True`` to replace it)."""


class DTypeError(DatasetError, TypeError):
    """A dtype or element class a WKW layer cannot store, or one that does not split into
    whole channels (``dtype_per_layer="uint30"`` with 3 channels).

    webknossos 0.8.13 raised :class:`TypeError` here; this is also one.
    """


class LayerLookupError(DatasetError, IndexError):
    """``get_color_layer()`` / ``get_segmentation_layer()`` found no or several layers.

    webknossos 0.8.13 raised :class:`IndexError` here; this is also one.
    """


class NameTakenError(DatasetError, IndexError):
    """A layer or mag is added under a name the dataset or layer already has
    (``add_layer``, ``add_symlink_layer``, ``add_copy_layer``, ``add_layer_like``,
    ``add_mag``, ``add_symlink_mag``, ``add_copy_mag``).

    webknossos 0.8.13 raised :class:`IndexError` here; this is also one.
    """


class ImmutableError(WkviewError, AttributeError):
    """A mutation of an immutable value (:class:`~wkview.Mag`, :class:`~wkview.BoundingBox`).

    The message names the method that returns the changed copy instead
    (``scaled_by``, ``with_size``, ...).
    """

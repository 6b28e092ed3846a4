"""Dataset, Layer, SegmentationLayer and MagView: the WKW dataset on disk, as webknossos lays it out.

One module per class as users meet them: :mod:`~wkview.dataset.dataset` (the
dataset folder and its properties file), :mod:`~wkview.dataset.layer` (layers and
everything that makes mags: add, link, copy, build, downsample, upsample) and
:mod:`~wkview.dataset.mag_view` (one mag, a view in absolute coordinates). Each
imports only the ones below it; the work on files is done by lower modules that
know nothing of datasets (:mod:`wkview.copying`, :mod:`wkview.pyramid`,
:mod:`wkview.compression`, :mod:`wkview.view`).
"""

from .dataset import Dataset
from .layer import COLOR_CATEGORY, SEGMENTATION_CATEGORY, Layer, LayerCategories, SegmentationLayer
from .mag_view import MagView, mag_header

__all__ = [
    "Dataset", "Layer", "SegmentationLayer", "MagView", "LayerCategories", "COLOR_CATEGORY", "SEGMENTATION_CATEGORY",
    "mag_header",
]  # fmt: skip

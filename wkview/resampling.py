"""Layer methods that build mags from other mags: downsampling and upsampling.

:meth:`downsample_mag` pools a finer mag into a coarser one (kernels and the
chunk job in :mod:`wkview.downsampling`); :meth:`downsample` and
:meth:`downsample_mag_list` chain such steps. :meth:`upsample` (API of
webknossos 0.8.13) steps down from a coarse mag to ``min_mag`` by repeating
voxels (nearest neighbour); each step is the reverse of a downsampling step
of the same ``sampling_mode``, so both produce the same mag names. Every job
writes whole target files. The methods live in :class:`ResamplingMixin`,
which :class:`wkview.Layer` inherits.
"""

from __future__ import annotations

from argparse import Namespace
from typing import TYPE_CHECKING, Any, Optional

from . import pyramid
from .pyramid import UpsampleJob, upsampling_chain
from .downsampling import resolve_mode
from .errors import DatasetError
from .geometry import Mag, MagLike
from .utils import executor_for

if TYPE_CHECKING:  # only for annotations: dataset.py imports this module
    from .dataset import Dataset, MagView

__all__ = ["ResamplingMixin"]


class ResamplingMixin:
    """The downsampling and upsampling methods of :class:`wkview.Layer`."""

    _dataset: "Dataset"

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
        ``args`` (an argparse Namespace, as in 0.8.13, also accepted in the
        place of ``executor``) makes the executor with
        :func:`wkview.utils.get_executor_for_args`; without either the jobs
        run in this process.
        """
        with executor_for(args, executor) as resolved:
            return self._downsample_mag(
                Mag(from_mag), Mag(target_mag), interpolation_mode, compress, buffer_edge_len, resolved, progress
            )

    def _downsample_mag(
        self, source_mag: Mag, target: Mag, interpolation_mode: str, compress: bool,
        buffer_edge_len: Optional[int], executor: Any, progress: Optional[bool],
    ) -> "MagView":  # fmt: skip
        source_view = self.get_mag(source_mag)  # type: ignore[attr-defined]
        if any(t % s for t, s in zip(target, source_mag)) or target == source_mag:
            raise DatasetError(f"cannot downsample from mag {source_mag} to {target}: not a coarser multiple")
        mode = resolve_mode(interpolation_mode, self.category)  # type: ignore[attr-defined]
        header = source_view.header
        bbox = self.bounding_box  # type: ignore[attr-defined]
        if target in self.mags:  # type: ignore[attr-defined]
            target_view = self.get_or_add_mag(target, header.block_len, header.file_len, compress)  # type: ignore[attr-defined]
            pyramid.downsample_into(
                source_view, target_view, bbox, source_mag, target, mode, buffer_edge_len, executor, progress=progress
            )
            return target_view  # type: ignore[no-any-return]
        # A new mag is computed into its folder first and named in the properties file
        # last: until it is complete no reader sees it, and a rerun after an
        # interruption starts that mag again from an empty folder.
        rel_path = f"{self.name}/{target.to_layer_name()}"  # type: ignore[attr-defined]
        self._check_own_folder()  # type: ignore[attr-defined]
        new_header = self._mag_header(header.block_len, header.file_len, compress)  # type: ignore[attr-defined]
        path = self._dataset.path / rel_path
        pyramid.fresh_mag_folder(path, new_header)
        box = bbox.align_with_mag(target, ceil=True).in_mag(target)
        pyramid.downsample_into(
            source_view, pyramid.bare_view(path, new_header, box), bbox, source_mag, target, mode, buffer_edge_len,
            executor, progress=progress,
        )
        return self._register_mag(  # type: ignore[attr-defined,no-any-return]
            target, rel_path, new_header.block_len * new_header.file_len
        )

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
        mags = self._downsampling_chain(start, None if max_mag is None else Mag(max_mag), sampling_mode)
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
        views = []
        with executor_for(args, executor) as resolved:
            for mag in target_mags:
                mag = Mag(mag)
                views.append(
                    self._downsample_mag(previous, mag, interpolation_mode, compress, buffer_edge_len, resolved, progress)
                )
                previous = mag
        return views

    def _downsampling_chain(self, start: Mag, max_mag: Optional[Mag], sampling_mode: str) -> list[Mag]:
        return pyramid.downsampling_chain(
            start, max_mag, sampling_mode, self._dataset.scale, self.bounding_box.size  # type: ignore[attr-defined]
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
            The new (or refilled existing) mags, coarse to fine.
        """
        if sampling_mode not in ("auto", "anisotropic", "isotropic"):
            raise ValueError(f"sampling_mode must be 'auto', 'anisotropic' or 'isotropic', got {sampling_mode!r}")
        source_mag = Mag(from_mag)
        chain = upsampling_chain(
            source_mag, Mag(1 if min_mag is None else min_mag),
            None if sampling_mode == "isotropic" else self._dataset.scale,
        )  # fmt: skip
        views = []
        with executor_for(args, executor) as resolved:
            for mag in chain:
                views.append(self._upsample_mag(source_mag, mag, compress, resolved, progress))
                source_mag = mag
        return views

    def _upsample_mag(self, source_mag: Mag, target: Mag, compress: bool, executor: Any, progress: Optional[bool]) -> "MagView":
        source_view = self.get_mag(source_mag)  # type: ignore[attr-defined]
        factors = tuple(s // t for s, t in zip(source_mag, target))
        header = source_view.header
        target_view = self.get_or_add_mag(  # type: ignore[attr-defined]
            target, block_len=header.block_len, file_len=header.file_len, compress=compress
        )
        bbox = self.bounding_box  # type: ignore[attr-defined]
        src_box = bbox.align_with_mag(source_mag, ceil=True).in_mag(source_mag)
        tgt_box = bbox.align_with_mag(target, ceil=True).in_mag(target)
        if tgt_box.is_empty():
            return target_view  # type: ignore[no-any-return]
        source = source_view.get_view(offset=src_box.topleft, size=src_box.size, read_only=True)
        destination = target_view.get_view(offset=tgt_box.topleft, size=tgt_box.size)
        edge = target_view._store.file_edge
        destination.for_each_chunk(UpsampleJob(source, factors), (edge, edge, edge), executor, progress=progress)  # type: ignore[arg-type]
        return target_view  # type: ignore[no-any-return]

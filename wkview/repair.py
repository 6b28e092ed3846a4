"""Clean up after killed writers: stale temporary files, unfinished raw writes, half-swapped mags.

wkview writes every file beside its target and renames it into place, so a killed
writer never leaves a damaged data file, but it may leave hidden leftovers:

* ``.x3.wkw.<random>.tmp`` and ``.datasource-properties.json.<random>.tmp``: new
  versions that were never renamed into place;
* ``.x3.wkw.undo`` (and ``.x3.wkw.old``): the undo journal of an in-place write of a
  raw file that did not finish; rolling it back restores the old file;
* ``.<mag>-compress-<random>``, ``.<mag>-compressed``, ``.<mag>-raw-old``: folders of a
  :meth:`~wkview.MagView.compress` that did not finish;
* ``.<mag>-building``: the folder of a :meth:`~wkview.Layer.build_mag` (downsampling,
  upsampling, copying a mag) that was killed; the mag was never named in the properties
  file, so the folder is removed;
* ``.header-<random>.tmp``: header work folders of earlier wkview versions;
* ``.x3.wkw.lock``: the per-file lock files of earlier wkview versions (data files now
  share the lock files of their mag's ``.wkview-locks`` folder); not damage, but one
  inode per data file.

The next write of the same file removes its leftovers anyway;
:func:`remove_stale_temp_files` cleans a whole dataset at once (``wkview verify
--repair``). Leftovers whose lock a live process holds are left alone.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from pathlib import Path

from . import _durable

__all__ = ["remove_stale_temp_files", "stale_building_folders", "BUILDING_SUFFIX", "has_swap_leftovers", "recover_mag_folder", "recover_mag_folder_locked", "swap_in_mag_folder"]

#: seconds after which a hidden header work folder (of MagStore.create in earlier wkview
#: versions, which lived for milliseconds) counts as stale
HEADER_WORK_MAX_AGE = 600

#: suffix of the hidden folder a mag is built in (``.<mag>-building`` beside the mag folder)
BUILDING_SUFFIX = "-building"

_COMPRESS_WORK = "-compress-"
_COMPRESS_DONE = "-compressed"
_RAW_OLD = "-raw-old"


def _target_of_temp(name: str) -> str | None:
    """``.x3.wkw.ab12cd.tmp`` -> ``x3.wkw`` (None for other names)."""
    if not (name.startswith(".") and name.endswith(_durable.TEMP_SUFFIX)):
        return None
    stem = name[1 : -len(_durable.TEMP_SUFFIX)]
    target, sep, _ = stem.rpartition(".")
    return target if sep and target else None


def _mag_of_leftover(name: str) -> str | None:
    """The mag folder name a hidden compress folder belongs to (None for other names)."""
    if not name.startswith("."):
        return None
    if _COMPRESS_WORK in name:
        return name[1:].rsplit(_COMPRESS_WORK, 1)[0] or None
    for suffix in (_COMPRESS_DONE, _RAW_OLD):
        if name.endswith(suffix):
            return name[1 : -len(suffix)] or None
    return None


def _mag_of_building(name: str) -> str | None:
    """``.2-2-1-building`` -> ``2-2-1`` (None for other names)."""
    if name.startswith(".") and name.endswith(BUILDING_SUFFIX) and len(name) > len(BUILDING_SUFFIX) + 1:
        return name[1 : -len(BUILDING_SUFFIX)]
    return None


def stale_building_folders(layer_folder: str | os.PathLike) -> list[Path]:
    """The ``.<mag>-building`` folders in ``layer_folder`` that no live build holds (the
    build holds the mag's lock), sorted."""
    try:
        names = os.listdir(layer_folder)
    except FileNotFoundError:
        return []
    return _stale_builds(os.fspath(layer_folder), names)


def _stale_builds(folder: str, names: list[str]) -> list[Path]:
    stale = []
    for name in sorted(names):
        mag = _mag_of_building(name)
        full = os.path.join(folder, name)
        if mag is not None and os.path.isdir(full):
            with _durable.try_lock(os.path.join(folder, mag)) as free:
                if free:
                    stale.append(Path(full))
    return stale


def remove_stale_temp_files(path: str | os.PathLike) -> list[Path]:
    """Remove what killed writers left in a dataset, layer or mag folder.

    Walks ``path`` and removes temporary files no live writer holds, rolls back
    unfinished in-place writes of raw files (removing their journals), finishes
    or undoes interrupted :meth:`~wkview.MagView.compress` runs, removes the folders
    of killed mag builds (:func:`stale_building_folders`) and the
    per-file lock files of earlier wkview versions that no process holds. Data files and
    ``datasource-properties.json`` are only ever replaced by complete versions.

    Parameters
    ----------
    path : str or os.PathLike
        A dataset folder, a layer folder or a mag folder.

    Returns
    -------
    list of pathlib.Path
        The files and folders removed (sorted).
    """
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder")
    removed: list[Path] = []
    for folder, dirs, files in os.walk(root):
        if _durable.LOCK_FOLDER in dirs:
            dirs.remove(_durable.LOCK_FOLDER)  # the lock files in use: nothing to clean up
        mags = set()
        for name in list(dirs):
            mag = _mag_of_leftover(name)
            if mag is not None:
                dirs.remove(name)  # never walk into them
                mags.add(mag)
        for mag in sorted(mags):
            removed.extend(recover_mag_folder(os.path.join(folder, mag)))
        for stale in _stale_builds(folder, dirs):
            shutil.rmtree(stale, ignore_errors=True)
            removed.append(stale)
        dirs[:] = [name for name in dirs if _mag_of_building(name) is None]  # live builds: not ours
        for name in list(dirs):
            if name.startswith(".header-") and name.endswith(_durable.TEMP_SUFFIX):
                full = os.path.join(folder, name)
                # earlier versions' MagStore.create work folder lived for milliseconds: an old one is stale
                if time.time() - os.stat(full).st_mtime > HEADER_WORK_MAX_AGE:
                    shutil.rmtree(full, ignore_errors=True)
                    removed.append(Path(full))
                dirs.remove(name)
        for name in files:
            full = os.path.join(folder, name)
            if _durable.is_legacy_lock(name):
                if _durable.remove_legacy_lock(full):
                    removed.append(Path(full))
                continue
            journal_target = None
            if name.startswith("."):
                for suffix in (_durable.UNDO_SUFFIX, _durable.UNDO_SUFFIX + ".part", ".old"):
                    if name.endswith(suffix):
                        journal_target = os.path.join(folder, name[1 : -len(suffix)])
            if journal_target is not None:
                with _durable.try_lock(journal_target) as free:
                    if free and os.path.exists(full) and _durable.roll_back_raw(journal_target):
                        removed.append(Path(full))
                continue
            target_name = _target_of_temp(name)
            if target_name is None:
                continue
            with _durable.try_lock(os.path.join(folder, target_name)) as free:
                if free:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(full)
                        removed.append(Path(full))
    return sorted(set(removed))


def has_swap_leftovers(mag_path: str | os.PathLike) -> bool:
    """Whether an interrupted compress left folders beside the mag folder (no disk writes)."""
    mag = Path(mag_path)
    parent, name = mag.parent, mag.name
    try:
        entries = os.listdir(parent)
    except OSError:
        return False
    return any(_mag_of_leftover(entry) == name for entry in entries)


def recover_mag_folder(mag_path: str | os.PathLike) -> list[Path]:
    """Finish or undo an interrupted swap of a mag folder (see :func:`swap_in_mag_folder`).

    Takes the mag's lock (``.<mag>.lock`` beside the folder) and waits for a live
    swap to end. Returns the folders removed.
    """
    mag = Path(mag_path)
    if not has_swap_leftovers(mag):
        return []
    with _durable.locked([str(mag)]):
        return recover_mag_folder_locked(mag)


def recover_mag_folder_locked(mag: Path) -> list[Path]:
    """:func:`recover_mag_folder` for a caller that holds the mag's lock."""
    parent, name = mag.parent, mag.name
    done = parent / f".{name}{_COMPRESS_DONE}"
    old = parent / f".{name}{_RAW_OLD}"
    removed: list[Path] = []
    if done.exists():
        if (mag / "header.wkw").exists():
            shutil.rmtree(done)  # killed before the swap began: the mag is as it was
            removed.append(done)
        elif not mag.exists():
            os.replace(done, mag)  # killed between the two renames: finish the swap
            _durable.fsync_folder(parent)
    if old.exists():
        if mag.exists():
            shutil.rmtree(old)
        else:
            os.replace(old, mag)
        removed.append(old)
    for entry in os.listdir(parent):
        if entry.startswith(f".{name}{_COMPRESS_WORK}"):
            shutil.rmtree(parent / entry, ignore_errors=True)
            removed.append(parent / entry)
    return removed


def swap_in_mag_folder(mag_path: str | os.PathLike, new_folder: str | os.PathLike) -> None:
    """Replace the mag folder by the complete folder ``new_folder`` (a sibling), crash-safely.

    ``new_folder`` is first renamed to ``.<mag>-compressed`` (it is complete), then the
    old folder to ``.<mag>-raw-old``, then the new one into place; the old one is removed
    last. :func:`recover_mag_folder` finishes or undoes each step after a kill. The caller
    holds the mag's lock.
    """
    mag = Path(mag_path)
    parent, name = mag.parent, mag.name
    done = parent / f".{name}{_COMPRESS_DONE}"
    old = parent / f".{name}{_RAW_OLD}"
    os.replace(new_folder, done)
    _durable.fsync_folder(parent)
    os.replace(mag, old)
    os.replace(done, mag)
    _durable.fsync_folder(parent)
    shutil.rmtree(old)

"""Process-wide settings of wkview's file IO: IO threads, cross-process locks, fsync.

A leaf module (it imports nothing of wkview), so that the storage layer
(:mod:`wkview._storage`), the codec (:mod:`wkview.codec`) and the properties file
code (:mod:`wkview.properties`) can all read the settings without importing each
other. Each setting has an environment variable (read once, on first use) and a
setter that overrides it for this process.
"""

from __future__ import annotations

import os

__all__ = [
    "get_io_threads",
    "set_io_threads_value",
    "locking_enabled",
    "set_locking",
    "fsync_enabled",
    "set_fsync",
]

_io_threads: int | None = None
_locking: bool | None = None
_fsync: bool | None = None


def _default_io_threads() -> int:
    env = os.environ.get("WKVIEW_IO_THREADS")
    if env:
        try:
            value = int(env)
        except ValueError:
            raise ValueError(f"WKVIEW_IO_THREADS must be a positive int, got {env!r}") from None
        if value > 0:
            return value
        raise ValueError(f"WKVIEW_IO_THREADS must be a positive int, got {env!r}")
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def get_io_threads() -> int:
    """Threads used to read and write the files of one large box in parallel."""
    global _io_threads
    if _io_threads is None:
        _io_threads = _default_io_threads()
    return _io_threads


def set_io_threads_value(threads: int | None) -> None:
    """Store the IO thread count (None: the default); the pools are rebuilt by their owners."""
    global _io_threads
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads <= 0):
        raise ValueError(f"threads must be a positive int or None, got {threads!r}")
    _io_threads = threads


def _env_flag(name: str) -> bool:
    value = os.environ.get(name, "1").strip().lower()
    if value in ("1", "true", "yes", "on", ""):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name} must be 1 or 0 (on or off), got {value!r}")


def locking_enabled() -> bool:
    """Whether writes take cross-process file locks (``WKVIEW_LOCKING``, default on)."""
    global _locking
    if _locking is None:
        _locking = _env_flag("WKVIEW_LOCKING")
    return _locking


def set_locking(enabled: bool | None) -> None:
    """Turn the cross-process locks of writes on or off for this process.

    Parameters
    ----------
    enabled : bool or None
        False only for a process that writes the dataset alone: concurrent
        writers then lose updates, and stale temporary files are left for
        :func:`wkview.repair.remove_stale_temp_files`. None restores the
        default (``WKVIEW_LOCKING``, else on).
    """
    global _locking
    if enabled is not None and not isinstance(enabled, bool):
        raise TypeError(f"enabled must be a bool or None, got {enabled!r}")
    _locking = enabled


def fsync_enabled() -> bool:
    """Whether written files and their folders are fsynced (``WKVIEW_FSYNC``, default on)."""
    global _fsync
    if _fsync is None:
        _fsync = _env_flag("WKVIEW_FSYNC")
    return _fsync


def set_fsync(enabled: bool | None) -> None:
    """Turn fsync of written data files, the properties file and their folders on or off.

    Parameters
    ----------
    enabled : bool or None
        False for scratch data: writes stay atomic (readers see the old or the
        new file) but a power loss may lose the last writes. None restores the
        default (``WKVIEW_FSYNC``, else on).
    """
    global _fsync
    if enabled is not None and not isinstance(enabled, bool):
        raise TypeError(f"enabled must be a bool or None, got {enabled!r}")
    _fsync = enabled

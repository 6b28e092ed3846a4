"""Safe replacement of files shared by processes: advisory locks, fsync, stale temp files.

Every read-modify-write of a data file or of ``datasource-properties.json`` runs
under an exclusive ``flock`` on a lock file beside it (``.x3.wkw.lock`` for
``x3.wkw``); reads take no lock (files are replaced by rename, readers see the
old or the new file). A call that touches several files locks them in one
global order (sorted by name), so two writers never wait on
each other in a cycle. Lock files are never deleted: removing one while another
process waits on it would let a third process lock a new file of the same name.

A writer creates its temporary file (``.x3.wkw.<random>.tmp``) only while it
holds the file's lock, so a temporary file whose lock is free belongs to a
writer that died: the next write of that file removes it, and so does
:func:`remove_stale_temps` (``wkview.repair``).

``flock`` holds between processes on one machine and, on Linux, on NFSv4 (the
client maps it to a whole-file ``fcntl`` lock the server enforces) and on
Lustre mounted with ``-o flock``. Settings: :mod:`wkview._settings`.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import struct
import threading
from collections.abc import Iterable, Iterator
from typing import Any

from ._settings import fsync_enabled, locking_enabled

__all__ = [
    "lock_path",
    "locked",
    "try_lock",
    "temp_prefix",
    "stale_temps",
    "remove_stale_temps_locked",
    "fsync_fd",
    "fsync_path",
    "fsync_folder",
    "TEMP_SUFFIX",
    "LOCK_SUFFIX",
]

TEMP_SUFFIX = ".tmp"
LOCK_SUFFIX = ".lock"


def lock_path(path: str) -> str:
    """The lock file of ``path``: a hidden sibling ``.<name>.lock``."""
    folder, name = os.path.split(path)
    return os.path.join(folder, "." + name + LOCK_SUFFIX)


def temp_prefix(path: str) -> str:
    """Name prefix of the temporary files that replace ``path`` (hidden: never matched as data)."""
    return "." + os.path.basename(path) + "."


def _open_lock(path: str) -> int:
    lock = lock_path(path)
    try:
        return os.open(lock, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
    except PermissionError as exc:
        raise PermissionError(
            exc.errno, f"cannot write {path}: no permission to create its lock file ({exc.strerror})", lock
        ) from None
    except FileNotFoundError:
        makedirs_durable(os.path.dirname(lock) or ".")
        return os.open(lock, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)


def _flock(fd: int, path: str, blocking: bool = True) -> bool:
    flags = fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB
    while True:
        try:
            fcntl.flock(fd, flags)
            return True
        except InterruptedError:  # pragma: no cover - PEP 475 retries, kept for old kernels
            continue
        except OSError as exc:
            if not blocking and exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return False
            if exc.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                raise OSError(
                    exc.errno,
                    f"cannot lock {path}: the file system does not support flock ({exc.strerror}); "
                    "mount NFS as v4 or Lustre with -o flock, or turn locking off "
                    "(WKVIEW_LOCKING=0 or wkview.set_locking(False)) if this process writes alone",
                ) from None
            raise


class Locks:
    """Exclusive locks of several files, taken one by one in the global order.

    :attr:`order` lists the paths in the order they must be locked: sorted by name.
    The files of one call share their folder prefix (one mag, one dataset), so the
    order is the same in every process, whatever spelling of the prefix it uses.
    :meth:`acquire` must be called in that order (earlier locks may still be held),
    :meth:`release` in any order and from any thread. A lock file is open only while
    its lock is held. With locking off every call is a no-op.
    """

    def __init__(self, paths: Iterable[str]) -> None:
        self.enabled = locking_enabled()
        self._mutex = threading.Lock()  # release() may run on another thread than acquire()
        self._fds: dict[str, int] = {}
        self.order: list[str] = sorted(set(paths))

    def acquire(self, path: str) -> None:
        if not self.enabled:
            return
        with self._mutex:
            if path in self._fds:
                return
        fd = _open_lock(path)
        try:
            _flock(fd, path)
        except BaseException:
            os.close(fd)
            raise
        with self._mutex:
            self._fds[path] = fd

    def release(self, path: str) -> None:
        with self._mutex:
            fd = self._fds.pop(path, None)
        if fd is not None:
            os.close(fd)  # closing the only descriptor releases its flock

    def close(self) -> None:
        """Release every lock still held."""
        with self._mutex:
            fds, self._fds = self._fds, {}
        for fd in fds.values():
            os.close(fd)

    def __enter__(self) -> "Locks":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def locked(paths: Iterable[str]) -> Iterator[None]:
    """Hold the exclusive locks of all ``paths`` (taken in the global order) for the block."""
    with Locks(paths) as locks:
        for path in locks.order:
            locks.acquire(path)
        yield


@contextlib.contextmanager
def try_lock(path: str) -> Iterator[bool]:
    """Lock ``path`` without waiting; yields False when a live process holds the lock."""
    try:
        fd = os.open(lock_path(path), os.O_RDWR | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        yield True  # nobody ever locked it: no writer can be running
        return
    try:
        yield _flock(fd, path, blocking=False)
    finally:
        os.close(fd)


def stale_temps(path: str) -> list[str]:
    """Temporary files of ``path`` in its folder (``.<name>.<random>.tmp``)."""
    folder = os.path.dirname(path) or "."
    prefix = temp_prefix(path)
    try:
        with os.scandir(folder) as entries:
            return [
                e.path for e in entries if e.name.startswith(prefix) and e.name.endswith(TEMP_SUFFIX)
            ]
    except FileNotFoundError:
        return []


def remove_stale_temps_locked(path: str) -> list[str]:
    """Remove the temporary files of ``path``; the caller holds its lock (so they are stale)."""
    removed = []
    for tmp in stale_temps(path):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
            removed.append(tmp)
    return removed


def fsync_fd(fd: int) -> None:
    """fsync ``fd`` when fsync is on."""
    if fsync_enabled():
        os.fsync(fd)


def fsync_path(path: str) -> None:
    """fsync an existing file by name when fsync is on (for files another library wrote)."""
    if not fsync_enabled():
        return
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_folder(folder: str | os.PathLike) -> None:
    """fsync a folder (makes renames and new entries in it durable) when fsync is on."""
    if not fsync_enabled() or os.name == "nt":
        return
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.EBADF):  # folders some file systems cannot sync
            raise
    finally:
        os.close(fd)


def makedirs_durable(folder: str) -> None:
    """``os.makedirs``; with fsync on, the parents of new folders are fsynced."""
    if os.path.isdir(folder):
        return
    created = []
    current = os.path.abspath(folder)
    while not os.path.isdir(current):
        created.append(current)
        current = os.path.dirname(current)
    os.makedirs(folder, exist_ok=True)
    for new in reversed(created):
        fsync_folder(os.path.dirname(new))


# -- undo journal of raw files ----------------------------------------------------------
# Raw (uncompressed) files are written in place by libwkw: a writer killed half-way would
# leave some blocks new and some old. Before touching a raw file, the writer saves what it
# will overwrite in ``.<name>.undo`` (the old bytes of the blocks, or "the file did not
# exist"); the journal is removed once the new bytes are on disk. A journal whose lock is
# free belongs to a dead writer: rolling it back gives the old file again.

UNDO_SUFFIX = ".undo"
_UNDO_MAGIC = b"WKVUNDO1"
_UNDO_ABSENT = b"WKVUNDO0"
_UNDO_ASIDE = b"WKVUNDO2"


def aside_path(path: str) -> str:
    folder, name = os.path.split(path)
    return os.path.join(folder, "." + name + ".old")


def undo_path(path: str) -> str:
    folder, name = os.path.split(path)
    return os.path.join(folder, "." + name + UNDO_SUFFIX)


def _write_journal(path: str, payload: bytes) -> str:
    journal = undo_path(path)
    tmp = journal + ".part"
    makedirs_durable(os.path.dirname(journal) or ".")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0), 0o600)
    try:
        try:
            view = memoryview(payload)
            while len(view):
                view = view[os.write(fd, view):]
            fsync_fd(fd)
        finally:
            os.close(fd)
        os.replace(tmp, journal)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_folder(os.path.dirname(journal) or ".")
    return journal


def begin_raw_undo(path: str, ranges: Any) -> str:
    """Save what a raw write will overwrite; the caller holds the file's lock.

    ``ranges``: the ``(offset, length)`` byte ranges the write may change, None
    when the file does not exist yet, or ``"aside"`` when the write replaces the
    whole file (the old file is moved aside, not copied). Returns the journal's path for
    :func:`end_raw_undo`.
    """
    if ranges is None:
        return _write_journal(path, _UNDO_ABSENT)
    if ranges == "aside":
        journal = _write_journal(path, _UNDO_ASIDE)
        os.replace(path, aside_path(path))  # the writer makes a new file; the old one waits here
        return journal
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    parts = [_UNDO_MAGIC, struct.pack("<QQ", len(ranges), os.fstat(fd).st_size)]
    try:
        for offset, length in ranges:
            old = os.pread(fd, length, offset)
            parts.append(struct.pack("<QQ", offset, len(old)))
            parts.append(old)
    finally:
        os.close(fd)
    return _write_journal(path, b"".join(parts))


def end_raw_undo(journal: str) -> None:
    """The new bytes are on disk (fsynced): the journal is no longer needed."""
    folder, name = os.path.split(journal)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(journal)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(folder, name[: -len(UNDO_SUFFIX)] + ".old"))


def roll_back_raw(path: str) -> bool:
    """Undo the unfinished write of a dead writer to ``path`` (the caller holds the lock,
    or locking is off and this process writes alone). Returns True if there was one."""
    journal = undo_path(path)
    found = False
    with contextlib.suppress(FileNotFoundError):
        os.unlink(journal + ".part")  # a journal never finished: the file was not touched yet
        found = True
    try:
        with open(journal, "rb") as f:
            payload = f.read()
    except FileNotFoundError:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(aside_path(path))  # killed after the write was complete, before this
            found = True
        return found
    if payload.startswith(_UNDO_ASIDE):
        if os.path.exists(aside_path(path)):
            os.replace(aside_path(path), path)
    elif payload.startswith(_UNDO_ABSENT):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    elif payload.startswith(_UNDO_MAGIC):
        count, size = struct.unpack_from("<QQ", payload, 8)
        pos = 24
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
        try:
            os.ftruncate(fd, size)
            for _ in range(count):
                offset, length = struct.unpack_from("<QQ", payload, pos)
                pos += 16
                view = memoryview(payload)[pos : pos + length]
                while len(view):
                    done = os.pwrite(fd, view, offset)
                    view, offset = view[done:], offset + done
                pos += length
            fsync_fd(fd)
        finally:
            os.close(fd)
    fsync_folder(os.path.dirname(path) or ".")
    os.unlink(journal)
    return True


def roll_back_if_stale(path: str) -> bool:
    """Roll back a dead writer's journal of ``path`` when no live process holds the lock."""
    if not os.path.exists(undo_path(path)) or not locking_enabled():
        return False
    with try_lock(path) as free:
        if free:
            return roll_back_raw(path)
    return False

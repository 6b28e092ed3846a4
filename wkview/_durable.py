"""Safe replacement of files shared by processes: advisory locks, fsync, stale temp files.

Every file wkview writes as a whole (compressed data files, a mag's ``header.wkw``,
byte copies of data files and of a layer's other files, ``datasource-properties.json``,
``convert``'s progress records) goes through :func:`replacing` (or, for the
codec's many files at once, :class:`Locks` and :class:`Replacement`): under the
file's lock a hidden temporary file ``.x3.wkw.<random>.tmp`` is made beside it with
the mode ``open()`` would give a new file (the umask's, read once at import; an
existing file keeps its mode), written, fsynced and renamed over the file, then
the folder is fsynced; on any error the temporary file is removed and the old file
is unchanged. Raw data files, which libwkw edits in place, are guarded by an undo
journal instead (below).

Locks are exclusive ``flock`` locks on lock files, taken for every read-modify-write
(reads take none: files are replaced by rename, readers see the old or the new file).
A data file ``<mag>/z1/y2/x3.wkw`` is guarded by one of :data:`LOCK_STRIPES` lock
files of its mag, ``<mag>/.wkview-locks/<stripe>.lock``, the stripe chosen by a
stable hash of ``z1/y2/x3.wkw``: a mag holds at most 256 lock files however many
data files it has; the mag's ``header.wkw`` takes a stripe the same way. Any other file
(``datasource-properties.json``, a mag folder)
has its own lock file beside it, ``.<name>.lock``. A call that touches several files
takes their lock files in one global order (sorted by lock file), each once, so two
writers never wait on each other in a cycle. Lock files are never deleted: removing
one while another process waits on it would let a third process lock a new file of
the same name. (Earlier wkview versions made one ``.x3.wkw.lock`` beside every data file;
they are ignored, and ``wkview verify --repair`` removes them.)

A writer creates its temporary file only while it holds the file's lock, so a
temporary file whose lock is free belongs to a writer that died: the next write of
that file removes it, and so does :func:`wkview.repair.remove_stale_temp_files`.

``flock`` holds between processes on one machine and, on Linux, on NFSv4 (the
client maps it to a whole-file ``fcntl`` lock the server enforces) and on Lustre
mounted with ``-o flock``. wkview runs on POSIX systems only (this module imports
``fcntl``). Settings: :mod:`wkview._settings`.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import io
import os
import stat
import struct
import tempfile
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, BinaryIO

from ._settings import fsync_enabled, locking_enabled
from .errors import CorruptFileError

__all__ = [
    "lock_path",
    "locked",
    "try_lock",
    "Locks",
    "Replacement",
    "replacing",
    "write_file",
    "copy_file",
    "new_file_mode",
    "temp_prefix",
    "stale_temps",
    "remove_stale_temps_locked",
    "is_legacy_lock",
    "remove_legacy_lock",
    "disk_full_error",
    "copy_range",
    "pwrite_all",
    "fsync_fd",
    "fsync_path",
    "fsync_folder",
    "makedirs_durable",
    "TEMP_SUFFIX",
    "LOCK_SUFFIX",
    "LOCK_FOLDER",
    "LOCK_STRIPES",
]

TEMP_SUFFIX = ".tmp"
LOCK_SUFFIX = ".lock"

#: the hidden folder of a mag that holds the lock files of its data files
LOCK_FOLDER = ".wkview-locks"

#: lock files per mag: a data file's lock is one of them, chosen by a hash of its name
LOCK_STRIPES = 256

#: chunk of a plain copy between files when copy_file_range is not available
COPY_CHUNK = 8 << 20


# -- the mode of new files ---------------------------------------------------------------


def _read_umask() -> int:
    """The process umask. Linux shows it in /proc without changing it; elsewhere it can
    only be read by setting it, which this module does once, at import."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def new_file_mode() -> int:
    """The mode ``open()`` gives a new file in this process (``0o666`` less the umask).

    The umask is read once, when wkview is imported.
    """
    return 0o666 & ~_UMASK


def _mode_for(path: str) -> int:
    """The mode of a new version of ``path``: the old file's, or a new file's."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return new_file_mode()


# -- lock files --------------------------------------------------------------------------


def _stripe_of(path: str) -> tuple[str, int] | None:
    """``(mag folder, stripe)`` of a data file ``<mag>/z1/y2/x3.wkw`` or of a mag's
    ``<mag>/header.wkw``; None for other files."""
    folder, name = os.path.split(path)
    if name == "header.wkw":
        return folder or ".", zlib.crc32(b"header.wkw") % LOCK_STRIPES
    parts = path.rsplit(os.sep, 3)
    if len(parts) == 3:
        parts.insert(0, ".")  # relative to the mag folder: the same lock as any other spelling
    if len(parts) != 4:
        return None
    mag, z, y, x = parts
    if not (
        z[:1] == "z" and z[1:].isdigit() and y[:1] == "y" and y[1:].isdigit()
        and x[:1] == "x" and x.endswith(".wkw") and x[1:-4].isdigit()
    ):  # fmt: skip
        return None
    # crc32 of the name inside the mag: the same stripe in every process and Python version
    return mag, zlib.crc32(f"{z}/{y}/{x}".encode("ascii")) % LOCK_STRIPES


def lock_path(path: str) -> str:
    """The lock file that guards ``path``.

    A data file ``<mag>/zZ/yY/xX.wkw`` shares one of its mag's :data:`LOCK_STRIPES`
    lock files in ``<mag>/.wkview-locks/``; any other file has a hidden sibling
    ``.<name>.lock``.
    """
    striped = _stripe_of(path)
    if striped is not None:
        mag, stripe = striped
        return os.path.join(mag, LOCK_FOLDER, f"{stripe:02x}{LOCK_SUFFIX}")
    folder, name = os.path.split(path)
    return os.path.join(folder, "." + name + LOCK_SUFFIX)


def temp_prefix(path: str) -> str:
    """Name prefix of the temporary files that replace ``path`` (hidden: never matched as data)."""
    return "." + os.path.basename(path) + "."


def _open_lock(lock: str, path: str) -> int:
    flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC
    try:
        try:
            return os.open(lock, flags, 0o666)
        except FileNotFoundError:
            makedirs_durable(os.path.dirname(lock) or ".")
            return os.open(lock, flags, 0o666)
    except PermissionError as exc:
        raise PermissionError(
            exc.errno, f"cannot write {path}: no permission to create its lock file ({exc.strerror})", lock
        ) from None


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

    :attr:`order` lists the paths in the order they must be locked: sorted by lock
    file (:func:`lock_path`), so the paths sharing a lock file come together. The files
    of one call share their folder prefix (one mag, one dataset), so the order is the
    same in every process, whatever spelling of the prefix it uses. :meth:`acquire`
    must be called in that order from one thread (earlier locks may still be held);
    :meth:`release` in any order and from any thread. A lock file is taken once however
    many of the paths share it, and is released (closed) when the last of them is. With
    locking off every call is a no-op.
    """

    def __init__(self, paths: Iterable[str]) -> None:
        self.enabled = locking_enabled()
        self._mutex = threading.Lock()  # release() may run on another thread than acquire()
        self._lock_of = {path: lock_path(path) for path in set(paths)}
        self.order: list[str] = sorted(self._lock_of, key=lambda path: (self._lock_of[path], path))
        self._fds: dict[str, int] = {}  # lock file -> its descriptor, while held
        self._holders: dict[str, set[str]] = {}  # lock file -> the paths acquired under it

    def acquire(self, path: str) -> None:
        if not self.enabled:
            return
        lock = self._lock_of[path]
        with self._mutex:
            if lock in self._fds:
                self._holders[lock].add(path)
                return
        fd = _open_lock(lock, path)
        try:
            _flock(fd, path)
        except BaseException:
            os.close(fd)
            raise
        with self._mutex:
            self._fds[lock] = fd
            self._holders[lock] = {path}

    def release(self, path: str) -> None:
        lock = self._lock_of.get(path)
        with self._mutex:
            holders = self._holders.get(lock) if lock is not None else None
            if holders is None or path not in holders:
                return
            holders.discard(path)
            if holders:
                return  # another path of this call still needs the lock file
            del self._holders[lock]
            fd = self._fds.pop(lock)
        os.close(fd)  # closing the only descriptor releases its flock

    def close(self) -> None:
        """Release every lock still held."""
        with self._mutex:
            fds, self._fds, self._holders = self._fds, {}, {}
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
    """Lock ``path`` without waiting; yields False when a live process holds the lock.

    Files sharing a lock file count as held while any of them is written (a leftover
    is then left for a later repair).
    """
    try:
        fd = os.open(lock_path(path), os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        yield True  # nobody ever locked it: no writer can be running
        return
    try:
        yield _flock(fd, path, blocking=False)
    finally:
        os.close(fd)


def is_legacy_lock(name: str) -> bool:
    """Whether ``name`` is the per-file lock of a data file of earlier wkview versions."""
    return name.startswith(".x") and name.endswith(".wkw" + LOCK_SUFFIX) and name[2 : -len(".wkw.lock")].isdigit()


def remove_legacy_lock(lock: str) -> bool:
    """Remove an old per-file lock file unless a live process holds it; True if removed."""
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        if not _flock(fd, lock, blocking=False):
            return False
        os.unlink(lock)
        return True
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


# -- replacing a file ----------------------------------------------------------------------


class Replacement:
    """A new version of ``path`` being written: a hidden temporary file beside it.

    The caller holds ``path``'s lock (see :class:`Locks`); with locking on, the
    temporary files of ``path`` found here are a dead writer's and are removed first.
    The new file gets the old file's mode, or a new file's (:func:`new_file_mode`).
    Write through :attr:`fd`, then :meth:`commit` (fsync, rename) or :meth:`abort`.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = os.fspath(path)
        folder = os.path.dirname(self.path) or "."
        if locking_enabled():
            remove_stale_temps_locked(self.path)
        makedirs_durable(folder)
        try:
            self.fd, self.tmp = tempfile.mkstemp(dir=folder, prefix=temp_prefix(self.path), suffix=TEMP_SUFFIX)
        except PermissionError as exc:
            raise PermissionError(exc.errno, f"cannot write {self.path}: no write permission in {folder}") from None
        try:
            os.fchmod(self.fd, _mode_for(self.path))  # mkstemp makes 0600
        except BaseException:
            self.abort()
            raise

    def commit(self, sync_folder: bool = True) -> None:
        """fsync the new file (unless fsync is off), rename it over ``path``, and fsync
        the folder (unless ``sync_folder`` is False: the caller syncs it once for many files)."""
        fsync_fd(self.fd)  # the new bytes are on disk before the name points at them
        os.close(self.fd)
        self.fd = -1
        os.replace(self.tmp, self.path)
        if sync_folder:
            fsync_folder(os.path.dirname(self.path) or ".")

    def abort(self) -> None:
        """Close and remove the temporary file (the old file stays as it is)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.tmp)


@contextlib.contextmanager
def replacing(path: str | os.PathLike, *, lock: bool = True) -> Iterator[Replacement]:
    """Replace ``path`` by what the block writes to the yielded :class:`Replacement`'s ``fd``.

    Under ``path``'s lock (``lock=False``: the caller holds it already), a temporary file
    is written beside ``path``, fsynced and renamed over it, and the folder is fsynced.
    On any error the temporary file is removed and ``path`` is unchanged; a full disk
    raises an :class:`OSError` that says so.
    """
    path = os.fspath(path)
    with locked([path] if lock else []):
        new = Replacement(path)
        try:
            yield new
            new.commit()
        except BaseException as exc:
            new.abort()
            if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise disk_full_error(exc, [path], single=True) from exc
            raise


def write_file(path: str | os.PathLike, data: bytes | bytearray | memoryview, *, lock: bool = True) -> None:
    """Replace ``path`` by ``data`` through :func:`replacing` (``lock=False``: the caller
    holds the lock)."""
    with replacing(path, lock=lock) as new:
        pwrite_all(new.fd, data, 0)


def write_encoded(path: str | os.PathLike, encode: Callable[[BinaryIO], object], *, lock: bool = True) -> None:
    """Replace ``path`` through :func:`replacing` by what ``encode`` writes to a binary
    file object (an image library's ``save``/``imwrite``, say), encoded in memory first
    so that a failed encoding leaves ``path`` untouched."""
    buffer = io.BytesIO()
    encode(buffer)
    write_file(path, buffer.getbuffer(), lock=lock)


def copy_file(source: str | os.PathLike, target: str | os.PathLike, *, lock: bool = True) -> int:
    """Replace ``target`` by a byte copy of ``source`` through :func:`replacing`: the copy
    gets a new file's mode (not the source's); returns the bytes copied. ``lock=False``:
    the caller holds the lock, or ``target`` is in a new folder no other process writes."""
    with open(source, "rb") as src, replacing(target, lock=lock) as new:
        size = os.fstat(src.fileno()).st_size
        copy_range(src.fileno(), new.fd, 0, 0, size)  # copy_file_range: no pass through Python
    return size


def disk_full_error(exc: OSError, paths: Sequence[str], single: bool = False) -> OSError:
    """The error of a replacement that ran out of space or quota (the old files are unchanged).

    ``single``: the call replaces one file by nature (not one of a set of files).
    """
    names = ", ".join(paths[:3]) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")
    old = "the old file is unchanged" if single else "the old files are unchanged"
    return OSError(
        exc.errno, f"{exc.strerror} while writing {names}: nothing was replaced, {old} and the temporary files removed"
    )


def pwrite_all(fd: int, data: bytes | bytearray | memoryview, pos: int) -> None:
    """Write all of ``data`` at ``pos`` (``os.pwrite`` may write less)."""
    view = memoryview(data)
    while len(view):
        done = os.pwrite(fd, view, pos)
        view, pos = view[done:], pos + done


def copy_range(src_fd: int, dst_fd: int, src_pos: int, dst_pos: int, count: int) -> None:
    """Copy ``count`` bytes between files in the kernel where it can (``copy_file_range``),
    else in chunks of :data:`COPY_CHUNK`; :class:`CorruptFileError` if the source ends early."""
    copy_file_range = getattr(os, "copy_file_range", None)  # Linux only
    while count > 0 and copy_file_range is not None:
        try:
            done = copy_file_range(src_fd, dst_fd, count, src_pos, dst_pos)
        except OSError:
            break  # cross-device, unsupported fs, ...: plain copy below
        if done == 0:
            break
        src_pos, dst_pos, count = src_pos + done, dst_pos + done, count - done
    while count > 0:
        chunk = os.pread(src_fd, min(count, COPY_CHUNK), src_pos)
        if not chunk:
            raise CorruptFileError(f"unexpected end of file while copying at byte {src_pos}")
        pwrite_all(dst_fd, chunk, dst_pos)
        src_pos, dst_pos, count = src_pos + len(chunk), dst_pos + len(chunk), count - len(chunk)


# -- fsync ---------------------------------------------------------------------------------


def fsync_fd(fd: int) -> None:
    """fsync ``fd`` when fsync is on."""
    if fsync_enabled():
        os.fsync(fd)


def fsync_path(path: str) -> None:
    """fsync an existing file by name when fsync is on (for files another library wrote)."""
    if not fsync_enabled():
        return
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_folder(folder: str | os.PathLike) -> None:
    """fsync a folder (makes renames and new entries in it durable) when fsync is on."""
    if not fsync_enabled():
        return
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
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
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        try:
            pwrite_all(fd, payload, 0)
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
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
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
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o666)
        try:
            os.ftruncate(fd, size)
            for _ in range(count):
                offset, length = struct.unpack_from("<QQ", payload, pos)
                pos += 16
                pwrite_all(fd, memoryview(payload)[pos : pos + length], offset)
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

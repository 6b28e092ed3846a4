"""wkview's one Python thread pool, shared by the codec (block encoding of writes) and
the storage layer (libwkw calls on raw mags and ``codec="libwkw"``).

Reads of compressed mags do not use it: the codec decodes their blocks on native
threads (see ``wkview._codec.read_boxes``). Tasks on this pool never wait for other
tasks of it, so one pool serves both callers without a deadlock.

Fork-safe: a forked child never uses its parent's pool (its threads do not exist in
the child); the first use in the child builds a new one.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

from ._settings import get_io_threads

__all__ = ["get_pool", "reset_pool"]

_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_size = 0
_pid = -1


def get_pool(workers: int | None = None) -> ThreadPoolExecutor:
    """The process's pool, with at least ``workers`` threads (default: the IO threads)."""
    global _pool, _size, _pid
    need = get_io_threads() if workers is None else workers
    pool = _pool
    if pool is not None and _pid == os.getpid() and _size >= need:
        return pool
    with _lock:
        if _pool is None or _pid != os.getpid() or _size < need:
            # a smaller old pool is dropped, not shut down: a call may still be submitting
            # to it; its idle threads end when it is garbage collected
            _pool = ThreadPoolExecutor(max_workers=need, thread_name_prefix="wkview-io")
            _size, _pid = need, os.getpid()
        return _pool


def reset_pool() -> None:
    """Shut the pool down (after its running tasks); the next use builds a new one."""
    global _pool
    with _lock:
        old, _pool = _pool, None
    if old is not None and _pid == os.getpid():
        old.shutdown(wait=True)


def _forget_in_child() -> None:
    global _pool, _lock
    _pool = None
    _lock = threading.Lock()  # the parent may have held it while forking


os.register_at_fork(after_in_child=_forget_in_child)

"""Chunk jobs for tests/test_webknossos_backend.py (importable by worker processes).

They take webknossos views (not wkview's) and report what the worker process saw.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np


def add_one(args: tuple[Any, int]) -> None:
    """``for_each_chunk`` job: read-modify-write +1 on every voxel of the chunk."""
    view, _ = args
    data = view.read()
    view.write(data + np.ones_like(data))


def backend_state(view: Any) -> tuple[int, bool, bool]:
    """``map_chunk`` job: (pid, is the backend enabled here, does this view use a wkview store)."""
    from wkview import webknossos_backend

    return os.getpid(), webknossos_backend.is_enabled(), webknossos_backend.store_of(view) is not None

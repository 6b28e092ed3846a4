"""Package-level guarantees: a loud ImportError without the compiled core; handles after fork."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
import textwrap

import numpy as np

from .conftest import make_mag


def test_missing_compiled_core_is_a_loud_import_error():
    script = textwrap.dedent(
        """
        import importlib.abc, sys

        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name == "wkview._core":
                    raise ImportError("simulated: no compiled core")
                return None

        sys.meta_path.insert(0, Block())
        try:
            import wkview
        except ImportError as exc:
            print("ImportError:", exc)
        else:
            print("imported without the core")
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.startswith("ImportError:") and "compiled core" in out and "pip install" in out


def _read_sum_in_child(view, queue):
    queue.put(int(view.read().sum()))


def test_handle_is_reopened_in_a_forked_child(tmp_path):
    from wkview.view import View

    store = make_mag(tmp_path / "m")
    view = View(store.path, store.header, size=(16, 16, 16))
    view.write(np.full((16, 16, 16), 2, np.uint8))
    with view:  # the parent holds an open handle while forking
        ctx = multiprocessing.get_context("fork")
        queue = ctx.Queue()
        child = ctx.Process(target=_read_sum_in_child, args=(view, queue))
        child.start()
        result = queue.get(timeout=60)
        child.join(timeout=60)
        assert child.exitcode == 0
        assert result == 2 * 16**3
        assert view.read().sum() == 2 * 16**3  # the parent's handle still works

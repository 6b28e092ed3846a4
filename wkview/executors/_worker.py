"""What runs in the worker processes: the batch runner and the Dask task's child process.

Tasks reference these functions by module path when they are pickled, so
they stay at module level here, importable wherever the tasks run.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import threading
import traceback
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple


class _Failure(NamedTuple):
    """A job's exception, in a form that survives pickling."""

    position: int  # index of the item within its batch
    type_name: str
    message: str
    traceback_text: str
    exception: BaseException | None  # None when it would not survive pickling


class _BatchOutcome(NamedTuple):
    """What a task returns: the results of its items up to the first failure."""

    results: list[Any]
    failure: _Failure | None


def _safe_str(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:  # a broken __str__ must not hide the failure
        return f"<{type(exc).__name__} whose str() failed>"


def _portable(exc: BaseException) -> BaseException | None:
    """``exc`` if a pickle round trip reproduces it, else None.

    Exceptions whose ``__init__`` does not take ``self.args`` pickle fine but
    fail to unpickle, so the whole round trip is tried here in the worker:
    an exception that cannot travel must not turn the task's result into an
    unpicklable one.
    """
    try:
        return pickle.loads(pickle.dumps(exc))  # type: ignore[no-any-return]
    except Exception:
        return None


def _failure_of(exc: Exception, position: int, kept: BaseException | None) -> _Failure:
    """Describe a job's exception; the traceback starts in the job function, not in our loop."""
    tb = exc.__traceback__.tb_next if exc.__traceback__ is not None else None
    text = "".join(traceback.format_exception(type(exc), exc, tb))
    return _Failure(position, type(exc).__qualname__, _safe_str(exc), text, kept)


def _run_batch(fn: Callable[[Any], Any], portable: bool, items: Iterable[Any]) -> _BatchOutcome:
    """Call ``fn`` on every item of one batch, stopping at the first failure.

    This is the function every task runs. It never raises an ``Exception``:
    a failure comes back as data, so the caller gets the same report from
    every engine, including the traceback text that Dask and process pools
    would otherwise drop.

    Parameters
    ----------
    fn : callable
        The job function.
    portable : bool
        Whether the outcome crosses a process boundary; if so, an exception
        that cannot be pickled is sent as text only.
    items : iterable
        The batch.

    Returns
    -------
    _BatchOutcome
        The results in order and the failure, if any.
    """
    results: list[Any] = []
    for position, item in enumerate(items):
        try:
            results.append(fn(item))
        except Exception as exc:
            return _BatchOutcome(results, _failure_of(exc, position, _portable(exc) if portable else exc))
    return _BatchOutcome(results, None)


def _child_main(conn: Any, runner: Callable[[Any], Any], items: Any, env: dict[str, str], cwd: str) -> None:
    """Body of the process that runs one Dask task (see :func:`_run_in_child`)."""
    os.environ.update(env)
    try:
        os.chdir(cwd)
    except OSError:
        pass
    try:
        payload: tuple[str, Any] = ("ok", runner(items))
    except BaseException as exc:
        payload = ("error", exc)
    try:
        conn.send(payload)
    except Exception as exc:  # an unpicklable result
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        conn.send(("error", RuntimeError(f"the task's result could not be sent back:\n{text}")))
    finally:
        conn.close()


_child_context_lock = threading.Lock()
_child_context: Any = None


def _task_process_context() -> Any:
    """The multiprocessing context for Dask task processes, made once per worker.

    ``forkserver`` with wkview preloaded forks a task process in ~15 ms; a
    ``spawn``-ed one (what cluster_tools uses) starts an interpreter and
    imports numpy and wkview again, ~0.3 s. Where there is no forkserver
    (Windows), ``spawn``.
    """
    global _child_context
    with _child_context_lock:
        if _child_context is None:
            if "forkserver" in multiprocessing.get_all_start_methods():
                context = multiprocessing.get_context("forkserver")
                context.set_forkserver_preload([__name__])
            else:
                context = multiprocessing.get_context("spawn")
            _child_context = context
        return _child_context


def _run_in_child(runner: Callable[[Any], Any], items: Any, env: dict[str, str], cwd: str) -> Any:
    """Run ``runner(items)`` in a process of its own; what a Dask task runs.

    Like cluster_tools' Dask executor, every task gets its own process (so a
    job that holds the GIL cannot starve the worker's event loop, and a crash
    cannot take the worker down) with the submitting process' environment
    and working directory. Unlike it, the result is read *before* the child
    is joined: cluster_tools joins first, which deadlocks as soon as a result
    is larger than the pipe buffer (64 KiB), since the child cannot exit
    before its result has been read. And the process is forked from a
    forkserver that has wkview imported (see :func:`_task_process_context`).
    """
    context = _task_process_context()
    reader, writer = context.Pipe(duplex=False)
    process = context.Process(target=_child_main, args=(writer, runner, items, env, cwd))
    process.start()
    writer.close()
    try:
        status, value = reader.recv()
    except EOFError:
        process.join()
        raise ChildProcessError(
            f"the task's process (pid {process.pid}) exited with code {process.exitcode} before sending its result"
        ) from None
    finally:
        reader.close()
    process.join()
    if status == "error":
        raise value
    return value

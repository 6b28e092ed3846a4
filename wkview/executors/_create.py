"""Creating executors: :func:`get_executor` and its defaults, and :func:`executor_for_strategy`,
the one factory that turns a distribution strategy and its options into an executor."""

from __future__ import annotations

import getpass
import json
import multiprocessing
import os
import signal
import tempfile
import threading
import warnings
from collections.abc import Callable, Mapping
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any, TypeVar

import cluster_tools

from ._errors import ExecutorOptionsError

__all__ = [
    "EXECUTOR_NAMES",
    "LazyPool",
    "available_cores",
    "executor_for_strategy",
    "get_executor",
    "parse_job_resources",
]

_T = TypeVar("_T")

#: Names :func:`get_executor` accepts.
EXECUTOR_NAMES = (
    "sequential",
    "multiprocessing",
    "threads",
    "processes",
    "dask",
    "slurm",
    "pbs",
    "kubernetes",
    "sequential_with_pickling",
    "multiprocessing_with_pickling",
)


def available_cores() -> int:
    """Number of CPU cores this process may run on (its affinity mask)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _default_cfut_dir() -> str:
    """Folder for the pickled jobs and logs of the cluster executors.

    ``CFUT_DIR`` wins; otherwise a per-user folder in the temp dir, which is
    shared with the jobs only on a one-node cluster: on a real cluster set
    ``CFUT_DIR`` (or pass ``cfut_dir=``) to a folder on a shared filesystem.
    """
    env = os.environ.get("CFUT_DIR")
    if env:
        return env
    return os.path.join(tempfile.gettempdir(), f"wkview-cfut-{getpass.getuser()}")


def _keep_sigint_handler(make: Callable[[], _T]) -> _T:
    """Run ``make`` and undo the SIGINT handler it installs.

    cluster_tools' Dask and cluster executors replace the SIGINT handler with
    one that cancels their jobs but swallows ``KeyboardInterrupt`` when the
    default handler was active, so Ctrl-C no longer stops the program.
    :func:`run_jobs` cancels its own tasks on ``KeyboardInterrupt``, so the
    previous handler is put back.
    """
    in_main = threading.current_thread() is threading.main_thread()
    before = signal.getsignal(signal.SIGINT) if in_main else None
    executor = make()
    if in_main and signal.getsignal(signal.SIGINT) is not before:
        signal.signal(signal.SIGINT, before)
    return executor


def get_executor(name: str = "multiprocessing", **kwargs: Any) -> Any:
    """Create an executor for :func:`run_jobs` (and for webknossos' API).

    Parameters
    ----------
    name : str
        One of :data:`EXECUTOR_NAMES`:

        ``"sequential"``
            cluster_tools' in-process executor (jobs run inside ``submit``).
        ``"multiprocessing"``
            cluster_tools' process pool (``spawn``); ``max_workers`` defaults
            to :func:`available_cores`.
        ``"threads"``, ``"processes"``
            plain :class:`~concurrent.futures.ThreadPoolExecutor` /
            :class:`~concurrent.futures.ProcessPoolExecutor` with
            ``max_workers`` = :func:`available_cores`; the process pool uses
            ``spawn`` unless ``mp_context`` or ``start_method`` is given
            (``fork`` in a process with threads can deadlock).
        ``"dask"``
            cluster_tools' Dask executor. The scheduler address comes from
            ``address=`` or ``job_resources["address"]`` or the environment
            variable ``DASK_ADDRESS`` (or pass a ``client=``); without any of
            them a :class:`ValueError` is raised rather than silently starting
            a local cluster. Workers must run with
            ``DASK_DISTRIBUTED__WORKER__DAEMON=False``.
        ``"slurm"``, ``"pbs"``, ``"kubernetes"``
            cluster_tools' cluster executors. ``cfut_dir`` defaults to
            ``CFUT_DIR`` or a per-user temp folder (which must be visible to
            the jobs); for Slurm, ``job_resources`` gets ``mem="500M"``
            unless it names ``mem``, and ``USER`` is set if missing (the
            Slurm commands cluster_tools runs need it). ``poll_interval``
            (seconds) sets how often cluster_tools looks for finished jobs
            (its default is 2 s).
        ``"sequential_with_pickling"``, ``"multiprocessing_with_pickling"``
            cluster_tools' variants that pickle every job (to test that jobs
            pickle).
    **kwargs
        Passed on to the executor's constructor.

    Returns
    -------
    Executor
        Use it as a context manager, or call ``shutdown()`` when done.

    Raises
    ------
    ValueError
        For an unknown name or a Dask executor without an address.

    Notes
    -----
    The Dask and cluster executors would replace the process' SIGINT handler
    with one that swallows Ctrl-C; the previous handler is restored (pass
    ``keep_sigint=False`` to keep cluster_tools' handler).
    """
    if name not in EXECUTOR_NAMES:
        raise ValueError(f"unknown executor {name!r}; expected one of {', '.join(EXECUTOR_NAMES)}")
    keep_sigint = kwargs.pop("keep_sigint", True)

    if name == "threads":
        kwargs.setdefault("max_workers", available_cores())
        return ThreadPoolExecutor(**kwargs)
    if name == "processes":
        start_method = kwargs.pop("start_method", None)
        if "mp_context" not in kwargs:
            kwargs["mp_context"] = multiprocessing.get_context(start_method or "spawn")
        elif start_method is not None:
            raise ValueError("give either start_method or mp_context, not both")
        kwargs.setdefault("max_workers", available_cores())
        return ProcessPoolExecutor(**kwargs)
    if name in ("multiprocessing", "multiprocessing_with_pickling"):
        kwargs.setdefault("max_workers", available_cores())
        return cluster_tools.get_executor(name, **kwargs)  # type: ignore[call-overload]
    if name == "dask":
        return _get_dask_executor(kwargs, keep_sigint)
    if name in ("slurm", "pbs", "kubernetes"):
        return _get_cluster_executor(name, kwargs, keep_sigint)
    return cluster_tools.get_executor(name, **kwargs)  # type: ignore[call-overload]


def _get_dask_executor(kwargs: dict[str, Any], keep_sigint: bool) -> Any:
    address = kwargs.pop("address", None)
    job_resources = dict(kwargs.pop("job_resources", None) or {})
    if address is not None:
        job_resources["address"] = address
    if "client" not in kwargs and "address" not in job_resources and not os.environ.get("DASK_ADDRESS"):
        raise ValueError(
            "the dask executor needs a scheduler: pass address='tcp://host:port' "
            "(or client=, or set DASK_ADDRESS)"
        )

    def make() -> Any:
        # cluster_tools deprecates its Dask executor; it is still the one
        # webknossos uses, so the warning is not the caller's business.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return cluster_tools.get_executor("dask", job_resources=job_resources, **kwargs)

    return _keep_sigint_handler(make) if keep_sigint else make()


def _get_cluster_executor(name: str, kwargs: dict[str, Any], keep_sigint: bool) -> Any:
    poll_interval = kwargs.pop("poll_interval", None)
    if poll_interval is not None and not poll_interval > 0:
        raise ValueError(f"poll_interval must be positive, got {poll_interval!r}")
    kwargs.setdefault("cfut_dir", _default_cfut_dir())
    os.makedirs(kwargs["cfut_dir"], exist_ok=True)
    if name == "slurm":
        resources = dict(kwargs.get("job_resources") or {})
        resources.setdefault("mem", "500M")
        kwargs["job_resources"] = resources
        # cluster_tools runs `squeue -u $USER`; a shell without USER would
        # list every user's jobs as ours
        if not os.environ.get("USER"):
            os.environ["USER"] = getpass.getuser()

    def make() -> Any:
        return cluster_tools.get_executor(name, **kwargs)  # type: ignore[call-overload]

    executor = _keep_sigint_handler(make) if keep_sigint else make()
    if poll_interval is not None:
        executor.wait_thread.interval = poll_interval
    return executor


class LazyPool(Executor):
    """A local process pool that starts when its first job is submitted.

    cluster_tools' multiprocessing pool starts a process at once when it is created
    (the one that forwards the workers' log records, which imports everything the
    program has imported: about a second of CPU), and its workers at the first job.
    A command whose work turns out to fit in the calling process (a conversion of one
    batch, an input refused before any job) starts neither through this wrapper.
    The other methods of ``cls`` (``map_to_futures``, ``forward_log``, ...) start the
    pool and are the started pool's; asking whether it has one does not start it.

    Parameters
    ----------
    make : callable
        Creates the pool.
    cls : type
        The class of the pool ``make`` returns.
    max_workers : int
        Its number of workers (read by :func:`default_batch_size` before it starts).
    """

    def __init__(self, make: Callable[[], Any], cls: type, max_workers: int) -> None:
        self._make = make
        self._cls = cls
        self._max_workers = max_workers
        self._pool: Any = None
        self._closed = False
        self._lock = threading.Lock()

    @property
    def started(self) -> bool:
        """Whether the pool has been started."""
        return self._pool is not None

    @property
    def pool(self) -> Any:
        """The pool, started now if it has not been."""
        with self._lock:
            if self._closed:
                raise RuntimeError("cannot schedule new futures after shutdown")
            if self._pool is None:
                self._pool = self._make()
            return self._pool

    def submit(self, fn: Callable[..., _T], /, *args: Any, **kwargs: Any) -> Future[_T]:
        return self.pool.submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._closed = True
            pool = self._pool
        if pool is not None:
            pool.shutdown(wait=wait, cancel_futures=cancel_futures)

    def __getattr__(self, name: str) -> Any:
        # only names this class lacks reach here; private ones are not the pool's API, and
        # a name the pool's class lacks (e.g. a Dask executor's `client`) starts nothing
        if name.startswith("_") or not hasattr(self._cls, name):
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        return getattr(self.pool, name)


def parse_job_resources(value: Any) -> dict[str, Any]:
    """Cluster job resources as a dict: from a mapping, a JSON object text (as webknossos'
    command line takes them) or ``KEY=VALUE,KEY=VALUE`` text; None or "" give ``{}``.

    Raises
    ------
    ExecutorOptionsError
        For text that is neither, or JSON that is not an object.
    """
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return dict(value)
    if not isinstance(value, str):
        raise ExecutorOptionsError(f"job_resources must be a dict or text, got {type(value).__name__}")
    text = value.strip()
    if not text:
        return {}
    if text.startswith("{"):
        try:
            parsed = json.loads(text)
        except ValueError as exc:
            raise ExecutorOptionsError(f"job_resources is not valid JSON: {exc}") from None
        if not isinstance(parsed, dict):
            raise ExecutorOptionsError(f"job_resources must be a JSON object, got {value!r}")
        return parsed
    resources = {}
    for pair in text.split(","):
        key, sep, item = pair.partition("=")
        if not sep or not key.strip():
            raise ExecutorOptionsError(f"job_resources: expected KEY=VALUE pairs or a JSON object, got {pair!r}")
        resources[key.strip()] = item.strip()
    return resources


def executor_for_strategy(
    strategy: str,
    *,
    jobs: int | None = None,
    job_resources: Any = None,
    dask_address: str | None = None,
    lazy: bool = False,
) -> Any:
    """The executor a distribution strategy and its options name: the one factory behind
    the ``wkview`` command's engine flags, :func:`wkview.utils.get_executor_for_args`
    and :func:`wkview.utils.executor_for`.

    Parameters
    ----------
    strategy : str
        A name of :data:`EXECUTOR_NAMES` (``"sequential"``, ``"multiprocessing"``,
        ``"slurm"``, ``"dask"``, ...).
    jobs : int, optional
        Workers of a ``"multiprocessing"`` pool (default: :func:`available_cores`).
    job_resources : dict or str, optional
        Resources of cluster jobs (``"slurm"``, ``"pbs"``, ``"kubernetes"``) and Dask
        tasks: a dict, JSON object text or ``KEY=VALUE,...`` (:func:`parse_job_resources`).
    dask_address : str, optional
        Scheduler of ``"dask"``; else ``job_resources["address"]``, else ``DASK_ADDRESS``.
    lazy : bool
        Wrap a ``"multiprocessing"`` pool in a :class:`LazyPool`, which starts no
        process before its first job (the ``wkview`` command's choice).

    Returns
    -------
    Executor
        Use it as a context manager.

    Raises
    ------
    ExecutorOptionsError
        An unknown strategy, ``jobs`` below 1, unreadable ``job_resources`` or Dask
        without a scheduler address: a mistake in the options, not a failure.
    """
    if strategy not in EXECUTOR_NAMES:
        raise ExecutorOptionsError(
            f"unknown distribution_strategy {strategy!r}; expected one of {', '.join(EXECUTOR_NAMES)}"
        )
    if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1):
        raise ExecutorOptionsError(f"jobs must be a positive int, got {jobs!r}")
    resources = parse_job_resources(job_resources)
    if strategy == "multiprocessing":
        workers = jobs or available_cores()
        if lazy:
            return LazyPool(
                lambda: get_executor(strategy, max_workers=workers), cluster_tools.MultiprocessingExecutor, workers
            )
        return get_executor(strategy, max_workers=workers)
    if strategy == "dask":
        address = dask_address or resources.pop("address", None) or os.environ.get("DASK_ADDRESS")
        if not address:
            raise ExecutorOptionsError(
                "the dask strategy needs a scheduler address (--dask-address, job_resources "
                "address=tcp://host:port, or the environment variable DASK_ADDRESS)"
            )
        return get_executor(strategy, address=address, job_resources=resources)
    if strategy in ("slurm", "pbs", "kubernetes"):
        return get_executor(strategy, job_resources=resources)
    return get_executor(strategy)

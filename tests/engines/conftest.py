"""Fixtures for the engine tests: a Dask and a Slurm executor, or a skip.

The tests run when the services are reachable: a Dask scheduler at
``DASK_ADDRESS`` and a Slurm cluster (``sbatch`` on PATH, ``sinfo`` answers
with a usable node). ``scripts/run_engine_tests.sh`` starts both, runs these
tests and stops both. The measured latencies are printed at the end of the
run. With ``WKVIEW_REQUIRE_ENGINES=1`` (set by that script) an unreachable
service fails the tests instead of skipping them.
"""

from __future__ import annotations

import functools
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from wkview.executors import get_executor

# The jobs are in tests._jobs; the workers find them through PYTHONPATH=<repo>.
# Here the repo root must come before site-packages, where the wkw wheel
# installs a `tests` package of its own.
_REPO = str(Path(__file__).resolve().parents[2])
if _REPO not in sys.path:
    sys.path.insert(0, _REPO)

# cluster_tools waits this long between SIGINT and SIGKILL when it cancels
# jobs at shutdown; the test jobs do not need it
os.environ.setdefault("SIGTERM_WAIT_IN_S", "0.5")

#: label -> seconds, filled by the tests and printed in the terminal summary
TIMINGS: dict[str, str] = {}


@functools.lru_cache(maxsize=None)
def _dask_reachable(address: str) -> str | None:
    """None if a scheduler answers at ``address``, else why not."""
    parsed = urlparse(address)
    if not parsed.hostname or not parsed.port:
        return f"DASK_ADDRESS={address!r} is not tcp://host:port"
    try:
        with socket.create_connection((parsed.hostname, parsed.port), timeout=2):
            return None
    except OSError as exc:
        return f"no Dask scheduler at {address}: {exc}"


def _slurmctld_unreachable() -> str | None:
    """Why no controller can answer, when slurm.conf names one whose port refuses at once.

    ``sinfo`` retries a dead controller for seconds (on every test worker); a refused
    connection to the controller's port says the same in a millisecond. None when the
    controller accepts, or when slurm.conf cannot be read (``sinfo`` decides then).
    """
    conf = Path(os.environ.get("SLURM_CONF", "/etc/slurm/slurm.conf"))
    try:
        lines = conf.read_text().splitlines()
    except OSError:
        return None
    settings = {}
    for line in lines:
        key, sep, value = line.split("#", 1)[0].strip().partition("=")
        if sep:
            settings.setdefault(key.strip().lower(), value.strip())
    host = settings.get("slurmctldhost") or settings.get("controlmachine")
    if not host:
        return None
    # "name(address)": the address is where the controller listens
    address = host.split("(", 1)[1].rstrip(")") if "(" in host else host
    port = int(settings.get("slurmctldport", "6817").split("-", 1)[0])
    try:
        with socket.create_connection((address, port), timeout=2):
            return None
    except ConnectionRefusedError as exc:
        return f"no Slurm controller at {address}:{port} ({conf}): {exc}"
    except OSError:
        return None  # unresolvable or slow: leave it to sinfo


@functools.lru_cache(maxsize=None)
def _slurm_reachable() -> str | None:
    """None if Slurm takes jobs here, else why not."""
    if shutil.which("sbatch") is None or shutil.which("sinfo") is None:
        return "sbatch/sinfo not on PATH"
    why = _slurmctld_unreachable()
    if why is not None:
        return why
    try:
        out = subprocess.run(
            # a live controller answers in milliseconds; a dead one is retried for ~10 s
            ["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=3, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        return f"sinfo does not answer: {exc}"
    states = out.split()
    if not any(s.rstrip("*~#") in ("idle", "mixed", "allocated", "completing") for s in states):
        return f"no usable Slurm node (states: {states})"
    return None


def _unavailable(why: str) -> None:
    if os.environ.get("WKVIEW_REQUIRE_ENGINES") == "1":
        pytest.fail(f"engine required but unavailable: {why}", pytrace=False)
    pytest.skip(why)


@pytest.fixture(scope="session")
def dask_executor() -> Iterator[Any]:
    address = os.environ.get("DASK_ADDRESS", "")
    why = _dask_reachable(address) if address else "DASK_ADDRESS is not set"
    if why is not None:
        _unavailable(why)
    executor = get_executor("dask", address=address)
    yield executor
    # not shutdown(wait=True): cluster_tools would call result() on futures
    # that a failing test cancelled
    executor.shutdown(wait=False)


@pytest.fixture(scope="session")
def slurm_executor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    why = _slurm_reachable()
    if why is not None:
        _unavailable(why)
    # a one-node cluster: the session's temp dir is visible to the jobs
    cfut_dir = str(tmp_path_factory.mktemp("cfut"))
    executor = get_executor("slurm", cfut_dir=cfut_dir, poll_interval=0.2, job_resources={"mem": "300M"})
    yield executor
    # wait for the jobs still known to cluster_tools (cancelled ones finish as
    # failed), but never hang the session on one it lost track of
    deadline = time.monotonic() + 60
    while executor.jobs and time.monotonic() < deadline:
        time.sleep(0.2)
    executor.shutdown(wait=not executor.jobs)


@pytest.fixture(params=[pytest.param("dask", marks=pytest.mark.dask), pytest.param("slurm", marks=pytest.mark.slurm)])
def engine(request: pytest.FixtureRequest) -> Any:
    """The same workload on each engine."""
    return request.getfixturevalue(f"{request.param}_executor")


@pytest.fixture(scope="session")
def engine_timings() -> dict[str, str]:
    """Where tests record timings (label -> text) for the terminal summary."""
    return TIMINGS


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if TIMINGS:
        terminalreporter.section("engine timings")
        for label, value in TIMINGS.items():
            terminalreporter.write_line(f"{label}: {value}")

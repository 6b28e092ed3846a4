"""Shared fixtures of the benchmarks."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def as_test(request: pytest.FixtureRequest) -> bool:
    """True when benchmarks are disabled (``./run.sh test``: every benchmark runs once as a
    test of its result), so module fixtures can fill their data at the smallest size that
    still exercises the same code paths; ``./run.sh bench`` enables them."""
    config = request.config
    return bool(config.getoption("benchmark_disable") and not config.getoption("benchmark_enable"))

"""Chunked-processing benchmarks (issue: parallel chunk processing).

Normal test runs use small sizes; WKVIEW_BENCH_FULL=1 uses the issue's sizes
(1024^3 view for dispatch, 512^3 for downsampling). Run with
``./run.sh bench -k parallel`` (add WKVIEW_BENCH_FULL=1 for the real figures).
"""

from __future__ import annotations

import os

import pytest

import wkview

from ._parallel_workloads import DownsampleCase, dispatch, dispatch_setup

FULL = os.environ.get("WKVIEW_BENCH_FULL") == "1"
DISPATCH_N = 1024 if FULL else 256
DOWNSAMPLE_N = 512 if FULL else 256


@pytest.mark.benchmark(group="dispatch")
def test_dispatch_noop_sequential(benchmark):
    view = dispatch_setup(DISPATCH_N)
    chunks = benchmark(dispatch, view)
    assert chunks == (DISPATCH_N // 32) ** 3


@pytest.mark.benchmark(group="dispatch")
def test_dispatch_noop_cluster_tools_sequential(benchmark):
    cluster_tools = pytest.importorskip("cluster_tools")
    view = dispatch_setup(DISPATCH_N)
    with cluster_tools.get_executor("sequential") as executor:
        chunks = benchmark(dispatch, view, executor)
    assert chunks == (DISPATCH_N // 32) ** 3


@pytest.fixture(scope="module")
def downsample_case():
    case = DownsampleCase(DOWNSAMPLE_N)
    yield case
    case.close()


@pytest.mark.benchmark(group="downsample")
def test_downsample_wkview_two_processes(benchmark, downsample_case):
    with wkview.get_executor("multiprocessing", max_workers=2) as executor:
        benchmark.pedantic(downsample_case.wkview_run, args=(executor,), rounds=1 if not FULL else 3)
    downsample_case.numpy_run()
    downsample_case.check()


@pytest.mark.benchmark(group="downsample")
def test_downsample_numpy_one_process(benchmark, downsample_case):
    benchmark.pedantic(downsample_case.numpy_run, rounds=1 if not FULL else 3)

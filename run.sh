#!/usr/bin/env bash
# One entry point for everything: sets up .venv (create, install, build) when needed, then
#   ./run.sh demo            the main job on built-in sample data
#   ./run.sh test [ARGS]     the whole test suite but the soak runs marked slow (ARGS go to
#                            pytest; -m "slow or not slow" adds them), on 2 workers; with WKVIEW_ENGINES=1
#                            it first starts a one-node Slurm and a local Dask cluster (Slurm
#                            from Debian's packages, installed if missing) and stops them after
#   ./run.sh bench [ARGS]    the benchmarks in bench/ (pytest-benchmark), full length
#   ./run.sh compare         side-by-side IO comparison (bench/compare.py)
#   ./run.sh compare-convert wkview convert vs webknossos convert (bench/compare_convert.py)
# WKVIEW_VENV overrides the virtualenv location (default: .venv next to this script).
set -euo pipefail
cd "$(dirname "$0")"
VENV=${WKVIEW_VENV:-$PWD/.venv}
PY=$VENV/bin/python

setup() {
  if [ ! -x "$PY" ]; then
    python3 -m venv "$VENV"
  fi
  # Reinstall only when the build inputs changed since the last install.
  local stamp=$VENV/.wkview-install-stamp
  local newest
  newest=$(ls -t pyproject.toml setup.py wkview/_core.pyx requirements-dev.txt 2>/dev/null | head -1)
  if [ ! -f "$stamp" ] || [ "$newest" -nt "$stamp" ] || ! "$PY" -c "import wkview._core" 2>/dev/null; then
    echo "run.sh: installing wkview and its dependencies into $VENV" >&2
    "$PY" -m pip install -q --upgrade pip 2>&1 | grep -v '^WARNING: Location' >&2 || true
    "$PY" -m pip install -q -r requirements-dev.txt 2>&1 | grep -v '^WARNING: Location' >&2 || true
    "$PY" -m pip install -q --no-build-isolation -e . 2>&1 | grep -v '^WARNING: Location' >&2 || true
    "$PY" -c "import wkview._core" || { echo "run.sh: building wkview failed" >&2; exit 1; }
    touch "$stamp"
  fi
}

cmd=${1:-help}
shift || true
case "$cmd" in
  demo)
    setup
    exec "$PY" -m wkview.demo "$@" ;;
  test)
    setup
    if [ "${WKVIEW_ENGINES:-0}" = 1 ]; then
      # same suite, with the engine tests required to run (the script exits 1 on "no tests")
      WKVIEW_VENV=$VENV exec scripts/run_engine_tests.sh --all "$@"
    fi
    # exit code 5 ("no tests collected") is a failure too; two pytest-xdist workers use both
    # cores (WKVIEW_TEST_WORKERS=0 runs in one process; CI's engine run above is serial)
    set +e
    "$PY" -m pytest -n "${WKVIEW_TEST_WORKERS:-2}" "$@"
    rc=$?
    set -e
    if [ "$rc" -eq 5 ]; then echo "run.sh: pytest collected no tests" >&2; exit 1; fi
    exit "$rc" ;;
  bench)
    setup
    exec "$PY" -m pytest bench/ --benchmark-enable --benchmark-only -p no:cacheprovider "$@" ;;
  compare)
    setup
    exec "$PY" bench/compare.py "$@" ;;
  compare-convert)
    setup
    exec "$PY" bench/compare_convert.py "$@" ;;
  *)
    sed -n '2,11p' "$0"; exit 2 ;;
esac

#!/usr/bin/env bash
# Run wkview's engine tests (tests/engines) on a real one-node Slurm cluster and a local Dask
# cluster: starts both, runs pytest, and stops both again whatever happens (trap on EXIT).
#
#   scripts/run_engine_tests.sh [PYTEST ARGS]          the engine tests only
#   scripts/run_engine_tests.sh --all [PYTEST ARGS]    the whole suite, engines included
#                                                      (what `WKVIEW_ENGINES=1 ./run.sh test` runs)
#
# Slurm comes from Debian's packages (installed on first use, about 10-60 s). The tests fail
# rather than skip when a service is not reachable (WKVIEW_REQUIRE_ENGINES=1).
# Environment: VENV or WKVIEW_VENV (default: the repo's .venv, made by ./run.sh),
# WKVIEW_ENGINES_DIR (state, logs and job files; default ${TMPDIR:-/tmp}/wkview-engines).
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ENGINES_SH=$REPO/scripts/engines
if [ -n "${VENV:-${WKVIEW_VENV:-}}" ]; then VENV=${VENV:-$WKVIEW_VENV}
elif [ -x "$REPO/.venv/bin/python" ]; then VENV=$REPO/.venv
else echo "run_engine_tests: no virtualenv; run ./run.sh test (it creates .venv) or set VENV" >&2; exit 2; fi
export VENV
export WKVIEW_ENGINES_DIR=${WKVIEW_ENGINES_DIR:-${TMPDIR:-/tmp}/wkview-engines}
export DASK_BASE=$WKVIEW_ENGINES_DIR/dask SLURM_BASE=$WKVIEW_ENGINES_DIR/slurm
export USER=${USER:-$(id -un)}   # cluster_tools runs `squeue -u $USER`

PYTEST_PID=""
stop_all() {
  local rc=$?
  trap - EXIT
  if [ -n "$PYTEST_PID" ] && kill -0 "$PYTEST_PID" 2>/dev/null; then
    # interrupted: pytest first (SIGINT lets run_jobs cancel its tasks), then the engines
    echo "run_engine_tests: stopping pytest ($PYTEST_PID)"
    kill -INT "$PYTEST_PID" 2>/dev/null
    for _ in $(seq 100); do kill -0 "$PYTEST_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$PYTEST_PID" 2>/dev/null
  fi
  echo "run_engine_tests: stopping the engines"
  "$ENGINES_SH/stop_dask.sh" || rc=1
  "$ENGINES_SH/stop_slurm.sh" || rc=1
  exit "$rc"
}
trap stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$ENGINES_SH/start_slurm.sh"
"$ENGINES_SH/start_dask.sh"

# job functions: wkview is installed in the venv; tests._jobs needs the repo root first on
# the path (the wkw wheel installs a `tests` package into site-packages)
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
export DASK_ADDRESS
DASK_ADDRESS=$(cat "$DASK_BASE/address")
export CFUT_DIR=$WKVIEW_ENGINES_DIR/cfut
export WKVIEW_REQUIRE_ENGINES=1
mkdir -p "$CFUT_DIR"
cd "$REPO"
# In the background, so that a signal to this script is handled at once (bash runs traps only
# after a foreground child exits); with job control on (set -m), or the background pytest
# would ignore the SIGINT that stop_all forwards to it.
set -m
if [ "${1:-}" = "--all" ]; then
  shift
  "$VENV/bin/python" -m pytest "$@" &
else
  "$VENV/bin/python" -m pytest tests/engines -m "dask or slurm" -p no:cacheprovider -ra "$@" &
fi
PYTEST_PID=$!
set +m
set +e
wait "$PYTEST_PID"
rc=$?
set -e
PYTEST_PID=""
if [ "$rc" -eq 5 ]; then echo "run_engine_tests: pytest collected no tests" >&2; rc=1; fi
exit "$rc"

#!/usr/bin/env bash
# Start a local Dask cluster for wkview's engine tests: one scheduler and $DASK_NWORKERS worker
# processes (default 2, one thread each), all bound to 127.0.0.1, run from the project's venv.
#
#   scripts/engines/start_dask.sh      # idempotent; prints the address, also written to
#                                      # $DASK_BASE/address; use it as DASK_ADDRESS
#   scripts/engines/stop_dask.sh
#
# Job functions must be importable by the workers: wkview is installed (editable) in the venv,
# and the repo root is put on the PYTHONPATH of scheduler and workers (for tests._jobs).
# Environment: VENV or WKVIEW_VENV (default: the repo's .venv, made by ./run.sh),
# DASK_BASE (default ${WKVIEW_ENGINES_DIR:-${TMPDIR:-/tmp}/wkview-engines}/dask), DASK_PORT
# (8786), DASK_NWORKERS (2), DASK_NTHREADS (1), DASK_WAIT_S (60).
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
ENGINES=${WKVIEW_ENGINES_DIR:-${TMPDIR:-/tmp}/wkview-engines}
BASE=${DASK_BASE:-$ENGINES/dask}
if [ -n "${VENV:-${WKVIEW_VENV:-}}" ]; then VENV=${VENV:-$WKVIEW_VENV}
elif [ -x "$REPO/.venv/bin/python" ]; then VENV=$REPO/.venv
else echo "start_dask: no virtualenv; set VENV" >&2; exit 2; fi
PY=$VENV/bin/python
PORT=${DASK_PORT:-8786}
NWORKERS=${DASK_NWORKERS:-2}
NTHREADS=${DASK_NTHREADS:-1}
ADDR=tcp://127.0.0.1:$PORT
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
t0=$(now)

[ -x "$PY" ] || { echo "start_dask: no python at $PY (set VENV)" >&2; exit 1; }
if ! "$PY" -c "import distributed, cluster_tools" 2>/dev/null; then
  echo "start_dask: installing dask[distributed] into $VENV"
  "$PY" -m pip install -q "dask[distributed]>=2024.1" "distributed>=2024.1"
fi
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$BASE"/{log,run,tmp}

alive() {  # pidfile: true if it names a live (non-zombie) dask process
  local pid
  [ -s "$1" ] || return 1
  pid=$(cat "$1")
  [ -r "/proc/$pid/status" ] && ! grep -q '^State:.*Z' "/proc/$pid/status" &&
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q dask
}

if alive "$BASE/run/scheduler.pid"; then
  echo "start_dask: scheduler already running (pid $(cat "$BASE/run/scheduler.pid"))"
else
  if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
    echo "start_dask: port $PORT is taken by another process; set DASK_PORT" >&2; exit 1
  fi
  # the dashboard address matters even with --no-dashboard: the scheduler's HTTP server
  # (health, metrics) would otherwise listen on 0.0.0.0:8787
  nohup "$VENV/bin/dask" scheduler --host 127.0.0.1 --port "$PORT" \
    --no-dashboard --dashboard-address 127.0.0.1:0 \
    >>"$BASE/log/scheduler.log" 2>&1 </dev/null &
  echo $! >"$BASE/run/scheduler.pid"
fi

if alive "$BASE/run/worker.pid"; then
  echo "start_dask: workers already running (pid $(cat "$BASE/run/worker.pid"))"
else
  mem_kb=$(awk '/MemTotal/ {print $2}' /proc/meminfo)
  mem=$((mem_kb * 1024 / 2 / NWORKERS))   # half the RAM, split between the workers
  # DAEMON=False: cluster_tools runs each task in a fresh 'spawn' child process, which a
  # daemonic worker process may not create. --resources lets job_resources={"mem": ...} match.
  DASK_DISTRIBUTED__WORKER__DAEMON=False \
  nohup "$VENV/bin/dask" worker "$ADDR" --host 127.0.0.1 \
    --nworkers "$NWORKERS" --nthreads "$NTHREADS" --memory-limit "$mem" \
    --resources "mem=$mem cpus=$NTHREADS" \
    --no-dashboard --dashboard-address 127.0.0.1:0 \
    --local-directory "$BASE/tmp" \
    >>"$BASE/log/worker.log" 2>&1 </dev/null &
  echo $! >"$BASE/run/worker.pid"
fi

"$PY" -W ignore - "$ADDR" "$NWORKERS" "${DASK_WAIT_S:-60}" <<'PYEOF'
import sys
from distributed import Client

address, n, wait = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
with Client(address, timeout=wait) as client:
    client.wait_for_workers(n, timeout=wait)
    for name, threads in sorted(client.nthreads().items()):
        print(f"start_dask:   worker {name} threads={threads}")
PYEOF
echo "$ADDR" >"$BASE/address"
echo "start_dask: cluster ready at $ADDR after $(since "$t0")s"

#!/usr/bin/env bash
# Stop what scripts/engines/start_dask.sh started, by its pid files: the `dask worker` process
# (its nannies stop their worker processes on SIGTERM), then the scheduler. Processes of those
# trees still alive after 10 s are killed by pid.
set -uo pipefail
ENGINES=${WKVIEW_ENGINES_DIR:-${TMPDIR:-/tmp}/wkview-engines}
BASE=${DASK_BASE:-$ENGINES/dask}
rc=0

running() { [ -r "/proc/$1/status" ] && ! grep -q '^State:.*Z' "/proc/$1/status"; }
tree() {  # pid -> its descendants, children first (not the pid itself)
  local c
  for c in $(ps -o pid= --ppid "$1" 2>/dev/null); do tree "$c"; echo "$c"; done
}
stop_pidfile() {  # name pidfile
  local name=$1 pf=$2 pid kids p
  if [ ! -s "$pf" ]; then echo "stop_dask: $name: not started by start_dask.sh"; return; fi
  pid=$(cat "$pf")
  if running "$pid" && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q dask; then
    kids=$(tree "$pid")
    kill -TERM "$pid"
    for _ in $(seq 100); do running "$pid" || break; sleep 0.1; done
    if running "$pid"; then kill -KILL "$pid"; echo "stop_dask: $name ($pid) killed"
    else echo "stop_dask: $name ($pid) stopped"; fi
    for p in $kids; do
      for _ in $(seq 20); do running "$p" || break; sleep 0.1; done
      if running "$p"; then kill -KILL "$p" 2>/dev/null; echo "stop_dask:   killed leftover process $p"; fi
    done
    sleep 0.1
    for p in $pid $kids; do running "$p" && { echo "stop_dask: $p still alive" >&2; rc=1; }; done
  else
    echo "stop_dask: $name: pid $pid not running"
  fi
  rm -f "$pf"
}
stop_pidfile "dask worker" "$BASE/run/worker.pid"
stop_pidfile "dask scheduler" "$BASE/run/scheduler.pid"
rm -f "$BASE/address"
exit $rc

#!/usr/bin/env bash
# Stop what scripts/engines/start_slurm.sh started, by the pid files under $SLURM_BASE/run:
# cancels the queued and running jobs, then stops slurmd, slurmctld and munged (munged only if
# start_slurm.sh started it). Job step daemons (slurmstepd) left behind by our slurmd are found
# by their open files under $SLURM_BASE and killed with their process trees. Always exits 0
# unless a daemon survived SIGKILL.
set -uo pipefail
ENGINES=${WKVIEW_ENGINES_DIR:-${TMPDIR:-/tmp}/wkview-engines}
BASE=${SLURM_BASE:-$ENGINES/slurm}
rc=0

is_running() {  # pid expected-comm
  [ -r "/proc/$1/status" ] && ! grep -q '^State:.*Z' "/proc/$1/status" &&
    [ "$(cat "/proc/$1/comm" 2>/dev/null)" = "$2" ]
}
tree() {  # pid -> the pid and all its descendants, children first
  local c
  for c in $(ps -o pid= --ppid "$1" 2>/dev/null); do tree "$c"; done
  echo "$1"
}
stop_pidfile() {  # comm pidfile
  local name=$1 pf=$2 pid
  if [ ! -s "$pf" ]; then echo "stop_slurm: $name: not started by start_slurm.sh"; return; fi
  pid=$(cat "$pf")
  if is_running "$pid" "$name"; then
    kill -TERM "$pid"
    for _ in $(seq 100); do is_running "$pid" "$name" || break; sleep 0.1; done
    if is_running "$pid" "$name"; then
      kill -KILL "$pid"; sleep 0.2
      is_running "$pid" "$name" && { echo "stop_slurm: $name ($pid) survived SIGKILL" >&2; rc=1; }
      echo "stop_slurm: $name ($pid) killed"
    else
      echo "stop_slurm: $name ($pid) stopped"
    fi
  else
    echo "stop_slurm: $name: pid $pid not running"
  fi
  rm -f "$pf"
}
our_stepds() {  # slurmstepd processes with a file open under $BASE (its log or spool)
  local p
  for p in $(pgrep -x slurmstepd 2>/dev/null); do
    if ls -l "/proc/$p/fd" 2>/dev/null | grep -qF -- "$BASE/"; then echo "$p"; fi
  done
}

# 1. cancel every job while slurmctld still answers, and wait for them to go
if [ -s "$BASE/run/slurmctld.pid" ] && is_running "$(cat "$BASE/run/slurmctld.pid")" slurmctld; then
  jobs=$(squeue -h -o %A 2>/dev/null | sort -u | tr '\n' ' ')
  if [ -n "${jobs// /}" ]; then
    echo "stop_slurm: cancelling jobs $jobs"
    # shellcheck disable=SC2086
    scancel $jobs 2>/dev/null
    for _ in $(seq 50); do [ -z "$(squeue -h 2>/dev/null)" ] && break; sleep 0.2; done
  fi
fi

# 2. the daemons
stop_pidfile slurmd "$BASE/run/slurmd.pid"
stop_pidfile slurmctld "$BASE/run/slurmctld.pid"   # saves its state to $BASE/state on SIGTERM

# 3. step daemons (and their jobs) that outlived slurmd
for p in $(our_stepds); do
  pids=$(tree "$p")
  echo "stop_slurm: killing leftover slurmstepd $p and its processes: $(echo $pids)"
  # shellcheck disable=SC2086
  kill -TERM $pids 2>/dev/null; sleep 1
  # shellcheck disable=SC2086
  kill -KILL $pids 2>/dev/null
done

stop_pidfile munged "$BASE/run/munged.pid"
exit $rc

#!/usr/bin/env bash
# Start a one-node Slurm cluster on this machine (Debian 12, root, no systemd) for wkview's
# engine tests: munged + slurmctld + slurmd as plain daemons, all state under $SLURM_BASE.
#
#   scripts/engines/start_slurm.sh        # idempotent; prints the node state and the timings
#   scripts/engines/stop_slurm.sh         # stops only what this script started
#
# Installs slurm-wlm and munge with apt-get when they are missing. Writes /etc/slurm/slurm.conf
# (refuses to replace one it did not write, unless WKVIEW_SLURM_FORCE_CONF=1).
# Environment: SLURM_BASE (default ${WKVIEW_ENGINES_DIR:-${TMPDIR:-/tmp}/wkview-engines}/slurm),
# SLURM_WAIT_S (seconds to wait for the node, default 60).
set -euo pipefail
ENGINES=${WKVIEW_ENGINES_DIR:-${TMPDIR:-/tmp}/wkview-engines}
BASE=${SLURM_BASE:-$ENGINES/slurm}
CONF=/etc/slurm/slurm.conf
MARK="# written by wkview scripts/engines/start_slurm.sh"
NODE=$(hostname -s)
export DEBIAN_FRONTEND=noninteractive
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
t0=$(now)

# The daemons are only ours if this script started them; the pid files under $BASE/run say so.
is_running() {  # pid expected-comm: true for a live (non-zombie) process of that name
  [ -r "/proc/$1/status" ] && ! grep -q '^State:.*Z' "/proc/$1/status" &&
    [ "$(cat "/proc/$1/comm" 2>/dev/null)" = "$2" ]
}
pidfile_alive() {  # pidfile comm
  [ -s "$1" ] && is_running "$(cat "$1")" "$2"
}

# --- packages ---------------------------------------------------------------------------
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
need=()
for p in slurmctld slurmd slurm-client munge; do have_pkg "$p" || need+=("$p"); done
if ((${#need[@]})); then
  echo "start_slurm: installing slurm-wlm munge (missing: ${need[*]})"
  apt-get update -qq
  # no recommends: keeps out the PMIx/MPI plugins this cluster does not use
  apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
  echo "start_slurm: packages installed after $(since "$t0")s"
fi
t_pk=$(now)
mkdir -p "$BASE"/{state,spool,log,run}

# --- munge ------------------------------------------------------------------------------
if [ ! -s /etc/munge/munge.key ]; then
  mungekey --create --force --keyfile=/etc/munge/munge.key
  chown munge:munge /etc/munge/munge.key
  chmod 0400 /etc/munge/munge.key
fi
if [ -s /run/munge/munged.pid ] && is_running "$(cat /run/munge/munged.pid)" munged; then
  echo "start_slurm: munged already running (pid $(cat /run/munge/munged.pid))"
else
  install -d -o munge -g munge -m 0755 /run/munge
  install -d -o munge -g munge -m 0700 /var/log/munge /var/lib/munge
  rm -f /run/munge/munged.pid
  # as user munge, like the packaged service; munged daemonizes and writes its pid file
  runuser -u munge -- /usr/sbin/munged
  for _ in $(seq 100); do [ -s /run/munge/munged.pid ] && break; sleep 0.05; done
  [ -s /run/munge/munged.pid ] || { echo "start_slurm: munged did not start" >&2; exit 1; }
  cp /run/munge/munged.pid "$BASE/run/munged.pid"
fi
munge -n | unmunge >/dev/null || { echo "start_slurm: munge self-test failed" >&2; exit 1; }

# --- slurm.conf ---------------------------------------------------------------------------
# The node line comes from what slurmd detects; 1 GiB of RAM stays with the OS.
hw=$(slurmd -C | head -1)
topology=$(tr ' ' '\n' <<<"$hw" |
  grep -E '^(CPUs|Boards|SocketsPerBoard|CoresPerSocket|ThreadsPerCore)=' | paste -sd' ')
realmem=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$hw")
((realmem > 2048)) && realmem=$((realmem - 1024))
conf=$(cat <<EOC
$MARK
ClusterName=wkview
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# bind to the node's address (127.0.0.1), not to every interface
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
StateSaveLocation=$BASE/state
SlurmdSpoolDir=$BASE/spool
SlurmctldPidFile=$BASE/run/slurmctld.pid
SlurmdPidFile=$BASE/run/slurmd.pid
SlurmctldLogFile=$BASE/log/slurmctld.log
SlurmdLogFile=$BASE/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SwitchType=switch/none
MpiDefault=none
MailProg=/bin/true
# start jobs as soon as they are submitted (the default waits for the next scheduling pass)
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_min_interval=100000
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=512
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
MinJobAge=300
NodeName=$NODE NodeAddr=127.0.0.1 $topology RealMemory=$realmem State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOC
)
if [ -e "$CONF" ] && ! grep -qxF "$MARK" "$CONF" && [ "${WKVIEW_SLURM_FORCE_CONF:-0}" != 1 ]; then
  echo "start_slurm: $CONF was not written by this script; not replacing it" \
       "(set WKVIEW_SLURM_FORCE_CONF=1 to replace it)" >&2
  exit 1
fi
conf_changed=0
if [ "$(cat "$CONF" 2>/dev/null)" != "$conf" ]; then
  mkdir -p "$(dirname "$CONF")"
  printf '%s\n' "$conf" >"$CONF"
  conf_changed=1
fi

# --- daemons ------------------------------------------------------------------------------
if pidfile_alive "$BASE/run/slurmctld.pid" slurmctld; then
  echo "start_slurm: slurmctld already running (pid $(cat "$BASE/run/slurmctld.pid"))"
  ((conf_changed)) && scontrol reconfigure
else
  /usr/sbin/slurmctld   # daemonizes and writes its pid file (SlurmctldPidFile)
fi
if pidfile_alive "$BASE/run/slurmd.pid" slurmd; then
  echo "start_slurm: slurmd already running (pid $(cat "$BASE/run/slurmd.pid"))"
else
  /usr/sbin/slurmd
fi

# --- wait until the node takes jobs -------------------------------------------------------
state=""
deadline=$(( $(date +%s) + ${SLURM_WAIT_S:-60} ))
while (( $(date +%s) < deadline )); do
  state=$(sinfo -h -n "$NODE" -o %T 2>/dev/null | head -1 || true)
  case "$state" in
    idle | mixed | allocated | completing) break ;;
    down* | drain*) scontrol update NodeName="$NODE" State=RESUME >/dev/null 2>&1 || true ;;
  esac
  sleep 0.2
done
echo "start_slurm: node $NODE is '$state'; daemons up $(since "$t_pk")s after the package check," \
     "$(since "$t0")s in total"
case "$state" in
  idle | mixed | allocated | completing) sinfo ;;
  *) echo "start_slurm: the node did not become ready; logs in $BASE/log" >&2; exit 1 ;;
esac

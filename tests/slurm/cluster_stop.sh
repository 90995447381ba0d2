#!/usr/bin/env bash
# tests/slurm/cluster_stop.sh — stop the cluster that tests/slurm/cluster_start.sh started in DIR.
#
#   tests/slurm/cluster_stop.sh DIR [--keep]
#
# Cancels the cluster's jobs (bounded wait), then stops slurmd, slurmctld and munged by the PIDs recorded in
# DIR/pids/ (SIGTERM, SIGKILL after 10 s), each only if that PID still runs the program it was recorded for (a PID
# can be reused). Job step daemons (slurmstepd) that outlive slurmd are found by the DEALER_SLURM_CLUSTER=DIR
# marker in their environment, which cluster_start.sh gave slurmd. Then the files cluster_start.sh made under DIR
# are removed (and DIR, when that leaves it empty) unless --keep is given.
# Safe to run twice, or on a cluster that only half started.
set -uo pipefail
(($# >= 1 && $# <= 2)) || { echo "usage: tests/slurm/cluster_stop.sh DIR [--keep]" >&2; exit 2; }
[[ -d $1 ]] || exit 0
dir=$(cd "$1" && pwd)
keep=${2:-}

export SLURM_CONF=$dir/etc/slurm.conf
# Runs PROG from the pid file NAME, if it is still that program.
recorded_pid() { # recorded_pid NAME PROG
  local f=$dir/pids/$1.pid pid
  [[ -s $f ]] || return 1
  pid=$(<"$f")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  [[ -r /proc/$pid/cmdline ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$2" || return 1
  echo "$pid"
}
stop_pid() { # stop_pid PID WHAT
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    # A zombie (no init reaping in some containers) counts as stopped.
    [[ $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) == Z ]] && return 0
    sleep 0.1
  done
  echo "cluster_stop.sh: $2 (pid $pid) ignored SIGTERM for 10 s; killing it" >&2
  kill -KILL "$pid" 2>/dev/null || true
}

# Jobs first, while slurmctld and slurmd can still end them properly.
if recorded_pid slurmctld slurmctld >/dev/null && command -v squeue >/dev/null; then
  jobs=$(timeout 10 squeue -h -o %i 2>/dev/null || true)
  if [[ -n $jobs ]]; then
    # shellcheck disable=SC2086
    timeout 10 scancel $jobs 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
      [[ -z $(timeout 5 squeue -h -t running,completing -o %i 2>/dev/null) ]] && break
      sleep 0.2
    done
  fi
fi

for daemon in slurmd slurmctld munged; do
  if pid=$(recorded_pid "$daemon" "$daemon"); then
    stop_pid "$pid" "$daemon"
  fi
done

# Step daemons of this cluster whose slurmd is gone.
for env in /proc/[0-9]*/environ; do
  pid=${env#/proc/}; pid=${pid%/environ}
  [[ $pid == "$$" ]] && continue
  if tr '\0' '\n' 2>/dev/null <"$env" | grep -qx "DEALER_SLURM_CLUSTER=$dir"; then
    if tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -q slurmstepd; then
      stop_pid "$pid" slurmstepd
    fi
  fi
done

rm -f "$dir"/pids/*.pid
if [[ $keep != --keep ]]; then
  # Only what cluster_start.sh made: DIR itself goes only when nothing else is left in it.
  rm -rf "${dir:?}/munge" "${dir:?}/etc" "${dir:?}/state" "${dir:?}/spool" "${dir:?}/log" "${dir:?}/pids"
  rmdir "$dir" 2>/dev/null || true
fi
exit 0

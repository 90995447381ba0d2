#!/usr/bin/env bash
# tests/slurm/cluster_start.sh — start a private one-node Slurm cluster on localhost, for tests and for trying the
# batch scripts on a laptop or in a container.
#
#   tests/slurm/cluster_start.sh DIR      start it, with every file under DIR (created if missing)
#   export SLURM_CONF=DIR/etc/slurm.conf  then sbatch, srun, squeue, scontrol talk to it
#   tests/slurm/cluster_stop.sh DIR       stop it
#
# Needs root (slurmd starts jobs as their users) and scripts/setup (slurm-wlm, munge). Works without systemd: the
# three daemons run in the foreground (munged -F, slurmctld -D, slurmd -D) as background children of this script,
# which writes their PIDs to DIR/pids/ for cluster_stop.sh. munged runs as the munge user with its own key and
# socket under DIR/munge (mode 755, so job users can reach the socket); Slurm finds the socket through
# AuthInfo=socket=..., so a system munged, if any, is left alone. The ports are the first free pair from 6817 up,
# so the cluster can run beside a real Slurm. Returns when `sinfo` shows the node idle, or fails within
# DEALER_SLURM_START_TIMEOUT seconds (default 60) printing the daemons' logs.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
die() { echo "cluster_start.sh: $*" >&2; exit 1; }

(($# == 1)) || { echo "usage: tests/slurm/cluster_start.sh DIR" >&2; exit 2; }
[[ $(id -u) -eq 0 ]] || die "needs root: slurmd starts each job as its user (run it as root, e.g. in a container)"
for tool in munged mungekey slurmctld slurmd sinfo sbatch scontrol squeue scancel; do
  command -v "$tool" >/dev/null || die "'$tool' not found: run scripts/setup (it installs slurm-wlm and munge)"
done
id munge >/dev/null 2>&1 || die "no 'munge' user: the munge package did not install properly (run scripts/setup)"

mkdir -p "$1"
dir=$(cd "$1" && pwd)
[[ -e $dir/pids/slurmctld.pid ]] && die "$dir already holds a cluster (stop it with tests/slurm/cluster_stop.sh $dir)"
timeout_s=${DEALER_SLURM_START_TIMEOUT:-60}

# Job users (and munged, which checks every directory on the way to its socket) must be able to walk into DIR.
chmod 755 "$dir"
mkdir -p "$dir/etc" "$dir/state" "$dir/spool" "$dir/log" "$dir/pids"
install -d -m 755 -o munge -g munge "$dir/munge"
as_munge=(setpriv --reuid=munge --regid=munge --init-groups)

# ---- munge: a key of our own (created once), the daemon as the munge user --------------------------------------
if [[ ! -s $dir/munge/munge.key ]]; then
  if ! "${as_munge[@]}" mungekey --create --keyfile="$dir/munge/munge.key" 2>/dev/null; then
    dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
    chown munge:munge "$dir/munge/munge.key"
  fi
  chmod 600 "$dir/munge/munge.key"
fi
socket=$dir/munge/munge.socket

# ---- ports and the node's size ------------------------------------------------------------------------------
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
ctld_port=6817
while port_busy "$ctld_port" || port_busy $((ctld_port + 1)); do
  ctld_port=$((ctld_port + 2))
  ((ctld_port < 6917)) || die "no free port pair between 6817 and 6917"
done
slurmd_port=$((ctld_port + 1))
# nproc alone would answer OMP_NUM_THREADS (coreutils honours it); the CPUs this process may use are wanted.
cpus=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)
# What `free -m` shows as total, read directly (procps is not on a minimal Debian).
mem_mb=$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)

conf=$dir/etc/slurm.conf
cat >"$conf" <<EOF
# Written by tests/slurm/cluster_start.sh: a one-node cluster on localhost, everything under $dir.
ClusterName=dealer-test
SlurmctldHost=localhost
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# A requeued job may start again only when the credentials of its last run have expired (120 s by default).
AuthInfo=socket=$socket,cred_expire=5
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/pids/slurmctld.daemon.pid
SlurmdPidFile=$dir/pids/slurmd.daemon.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
# No cgroups in a container: track processes by parent, no binding.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
# Open MPI 4 launched by srun --mpi=pmix (Debian's slurm-wlm-basic-plugins ships mpi_pmix).
MpiDefault=pmix
JobRequeue=1
ReturnToService=2
# The node is what this file says (CPUs from nproc, which a container may limit), not what slurmd probes.
SlurmdParameters=config_overrides
SchedulerType=sched/backfill
# Look at pending jobs every second (default 60 s), so a requeued job starts as soon as it may.
SchedulerParameters=sched_interval=1,bf_interval=1
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MailProg=/bin/true
# Quick turnarounds for tests: short kill wait, finished jobs stay visible to scontrol for 10 minutes.
KillWait=5
MinJobAge=600
InactiveLimit=0
SlurmctldTimeout=60
SlurmdTimeout=60
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF

# ---- start the daemons, recording each PID -----------------------------------------------------------------
# The marker lets cluster_stop.sh find slurmstepd processes (children of slurmd) that outlive their slurmd.
export DEALER_SLURM_CLUSTER=$dir
export SLURM_CONF=$conf

dump_logs() {
  local f
  for f in "$dir"/log/*; do
    [[ -s $f ]] || continue
    echo "---- $f (last 30 lines)" >&2
    tail -n 30 "$f" >&2
  done
}
fail_start() {
  echo "cluster_start.sh: $*" >&2
  dump_logs
  "$here/cluster_stop.sh" "$dir" --keep >&2 || true
  echo "cluster_start.sh: daemons stopped; logs kept in $dir/log" >&2
  exit 1
}
wait_for() { # wait_for SECONDS WHAT CMD...: polls CMD every 0.2 s
  local limit=$1 what=$2; shift 2
  local deadline=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || fail_start "$what not ready after ${limit} s"
    sleep 0.2
  done
}
alive() { kill -0 "$1" 2>/dev/null; }

"${as_munge[@]}" munged -F --socket="$socket" --key-file="$dir/munge/munge.key" \
  --pid-file="$dir/munge/munged.pid" --seed-file="$dir/munge/munged.seed" --log-file=/dev/null \
  >"$dir/log/munged.log" 2>&1 </dev/null &
echo $! >"$dir/pids/munged.pid"
wait_for 10 "munged (socket $socket)" munge -S "$socket" -n

slurmctld -D -c -f "$conf" >"$dir/log/slurmctld.out" 2>&1 </dev/null &
echo $! >"$dir/pids/slurmctld.pid"
wait_for 20 "slurmctld (port $ctld_port)" scontrol ping
alive "$(cat "$dir/pids/slurmctld.pid")" || fail_start "slurmctld exited"

slurmd -D -N localhost -f "$conf" >"$dir/log/slurmd.out" 2>&1 </dev/null &
echo $! >"$dir/pids/slurmd.pid"

node_idle() { [[ $(sinfo -h -n localhost -o %T 2>/dev/null) == idle ]]; }
deadline=$((SECONDS + timeout_s))
until node_idle; do
  alive "$(cat "$dir/pids/slurmd.pid")" || fail_start "slurmd exited"
  ((SECONDS < deadline)) || fail_start "node not idle after ${timeout_s} s: $(sinfo -h -N -o '%N %T %E' 2>&1)"
  sleep 0.3
done
echo "cluster_start.sh: Slurm on localhost is up ($cpus CPUs, ${mem_mb} MB, ports $ctld_port/$slurmd_port)." >&2
echo "cluster_start.sh: export SLURM_CONF=$conf   # then sbatch, squeue, scontrol reach it" >&2

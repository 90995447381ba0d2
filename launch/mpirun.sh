#!/usr/bin/env bash
# launch/mpirun.sh — start `dealer train` under Open MPI's mpirun with sane defaults, printing the exact command.
#
#   launch/mpirun.sh [-n RANKS] [--hosts h1:slots,h2:slots | --hostfile FILE] [--mca NAME VALUE ...]
#                    [--dealer PATH] CONFIG [key=value ...]
#   launch/mpirun.sh [options] dealer train CONFIG [key=value ...]     (the same; PATH/dealer train picks that binary)
#
#   -n, -np RANKS     ranks in all (default 2)
#   --hosts LIST      hosts and their slots (ranks per host), as mpirun --host takes them
#   --hostfile FILE   an Open MPI hostfile ("node1 slots=8" per line)
#   --mca NAME VALUE  an Open MPI parameter, passed to mpirun (which hands it to the other nodes' daemons);
#                     repeat for more, e.g. --mca btl_tcp_if_include eth0 --mca oob_tcp_if_include eth0
#   --dealer PATH     the dealer binary (default: $DEALER_BIN, else build/dealer of this checkout)
#   --dry-run         print the command and exit
#
# Defaults: --bind-to none (a rank's OpenMP threads must not share the one core a rank would be bound to),
# --map-by slot (fill a host's slots before the next), OMP_NUM_THREADS = this host's cores / ranks on a host
# (at least 1) unless already set, --oversubscribe only when a single host gets more ranks than cores, and Open MPI's
# run-as-root variables only when running as root. mpirun replaces this script (exec), so `kill -USR1 PID` of it
# reaches mpirun, which forwards SIGUSR1 to every rank: they checkpoint and exit 75.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
ranks=2
hosts=""
hostfile=""
dry_run=0
dealer="${DEALER_BIN:-$root/build/dealer}"
mca=()
usage() { sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$0"; } # the comment block above
die() { echo "launch/mpirun.sh: $*" >&2; exit 2; }
while (($#)); do
  case $1 in
    -n|-np|--ranks) (($# >= 2)) || die "$1 needs a number"; ranks=$2; shift 2 ;;
    --hosts) (($# >= 2)) || die "--hosts needs host:slots,..."; hosts=$2; shift 2 ;;
    --hostfile) (($# >= 2)) || die "--hostfile needs a file"; hostfile=$2; shift 2 ;;
    --mca)
      (($# >= 3)) || die "--mca needs a parameter name and a value"
      [[ $2 =~ ^[A-Za-z0-9_]+$ ]] || die "--mca: '$2' is not an Open MPI parameter name (letters, digits, _)"
      [[ -n $3 ]] || die "--mca $2 needs a value"
      mca+=(--mca "$2" "$3"); shift 3 ;;
    --dealer) (($# >= 2)) || die "--dealer needs a path"; dealer=$2; shift 2 ;;
    --dry-run) dry_run=1; shift ;;
    -h|--help) usage; exit 0 ;;
    --) shift; break ;;
    -*) die "unknown option '$1' (see --help)" ;;
    *) break ;;
  esac
done
(($#)) || die "missing CONFIG (see --help)"
# The command as a user would type it without the launcher, `dealer train CONFIG ...`, is accepted too: bare `dealer`
# means the binary chosen above, a path to a dealer binary means that one.
if (($# >= 2)) && [[ $2 == train && ${1##*/} == dealer ]]; then
  [[ $1 == */* ]] && dealer=$1
  shift 2
  (($#)) || die "missing CONFIG after 'dealer train' (see --help)"
elif [[ ${1##*/} == dealer || $1 == train ]]; then
  die "'$*': only 'dealer train CONFIG' can be launched (or CONFIG alone)"
fi
[[ $ranks =~ ^[1-9][0-9]*$ ]] || die "-n needs a positive integer, got '$ranks'"
[[ -z $hosts || -z $hostfile ]] || die "give --hosts or --hostfile, not both"
[[ -z $hostfile || -r $hostfile ]] || die "hostfile '$hostfile' not found"
[[ -x $dealer ]] || die "no dealer binary at $dealer (run scripts/build, or --dealer PATH)"
command -v mpirun >/dev/null || die "mpirun not found (install openmpi-bin: scripts/setup)"
config=$1; shift
[[ -f $config ]] || die "config '$config' not found"

# Ranks on the busiest host: the hosts' slot counts when given (assumed alike to this host), else all on this one.
# (nproc honours OMP_NUM_THREADS, so ask it without.)
cores=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc 2>/dev/null || echo 1)
per_host=$ranks
slot_counts=()
if [[ -n $hosts ]]; then
  IFS=, read -r -a entries <<<"$hosts"
  for e in "${entries[@]}"; do [[ $e == *:* ]] && slot_counts+=("${e##*:}") || slot_counts+=(1); done
elif [[ -n $hostfile ]]; then
  while read -r line; do
    line=${line%%#*}
    [[ -n ${line// /} ]] || continue
    if [[ $line =~ slots=([0-9]+) ]]; then slot_counts+=("${BASH_REMATCH[1]}"); else slot_counts+=(1); fi
  done <"$hostfile"
fi
if ((${#slot_counts[@]})); then
  per_host=0
  for n in "${slot_counts[@]}"; do
    [[ $n =~ ^[0-9]+$ ]] || die "bad slot count '$n' in the host list"
    ((n > per_host)) && per_host=$n
  done
  ((per_host > ranks)) && per_host=$ranks
  ((per_host >= 1)) || per_host=1
fi

args=(mpirun -np "$ranks" --bind-to none --map-by slot "${mca[@]}")
if [[ -n $hosts ]]; then
  args+=(--host "$hosts")
elif [[ -n $hostfile ]]; then
  args+=(--hostfile "$hostfile")
elif ((ranks > cores)); then
  args+=(--oversubscribe)
fi
if [[ -z ${OMP_NUM_THREADS:-} ]]; then
  threads=$((cores / per_host))
  ((threads >= 1)) || threads=1
  export OMP_NUM_THREADS=$threads
fi
# -x sends a variable to the ranks on other hosts too.
args+=(-x OMP_NUM_THREADS)
for var in OPENBLAS_CORETYPE DEALER_CPU_VARIANT DEALER_LOG OMP_WAIT_POLICY GOMP_SPINCOUNT; do
  [[ -n ${!var:-} ]] && args+=(-x "$var")
done
prefix="OMP_NUM_THREADS=$OMP_NUM_THREADS"
if [[ $(id -u) -eq 0 ]]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  prefix+=" OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1"
fi
args+=("$dealer" train "$config" "$@")
# The exact command, quoted (only where needed) so it can be pasted back into a shell.
quoted=""
for a in "${args[@]}"; do
  if [[ $a =~ ^[A-Za-z0-9_./:=,@%+-]+$ ]]; then quoted+=" $a"; else quoted+=" $(printf '%q' "$a")"; fi
done
echo "+ $prefix$quoted" >&2
((dry_run)) && exit 0
exec "${args[@]}"

#!/usr/bin/env bash
# launch/mpirun.sh — start `dealer train` under mpirun with sane defaults, printing the exact command.
#
#   launch/mpirun.sh [-n RANKS] [--hosts h1:slots,h2:slots] [--dealer PATH] CONFIG [section.key=value ...]
#
# Defaults: 2 ranks on this host, --bind-to none (OpenMP threads must not be pinned to one core), --map-by slot,
# OMP_NUM_THREADS = cores / ranks (at least 1) unless already set, --oversubscribe when ranks exceed cores, and
# Open MPI's run-as-root variables only when running as root.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
ranks=2
hosts=""
dealer="${DEALER_BIN:-$root/build/dealer}"
usage() { sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; }
while (($#)); do
  case $1 in
    -n|--ranks) ranks=${2:?"-n needs a number"}; shift 2 ;;
    --hosts) hosts=${2:?"--hosts needs host:slots,..."}; shift 2 ;;
    --dealer) dealer=${2:?"--dealer needs a path"}; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    -*) echo "launch/mpirun.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
    *) break ;;
  esac
done
(($#)) || { echo "launch/mpirun.sh: missing CONFIG (see --help)" >&2; exit 2; }
[[ $ranks =~ ^[1-9][0-9]*$ ]] || { echo "launch/mpirun.sh: -n needs a positive integer, got '$ranks'" >&2; exit 2; }
[[ -x $dealer ]] || { echo "launch/mpirun.sh: no dealer binary at $dealer (run scripts/build, or --dealer PATH)" >&2; exit 2; }
config=$1; shift
[[ -f $config ]] || { echo "launch/mpirun.sh: config '$config' not found" >&2; exit 2; }

cores=$(nproc 2>/dev/null || echo 1)
args=(mpirun -np "$ranks" --bind-to none --map-by slot)
if [[ -n $hosts ]]; then
  args+=(--host "$hosts")
elif ((ranks > cores)); then
  args+=(--oversubscribe)
fi
if [[ -z ${OMP_NUM_THREADS:-} ]]; then
  threads=$((cores / ranks)); ((threads >= 1)) || threads=1
  export OMP_NUM_THREADS=$threads
fi
args+=(-x OMP_NUM_THREADS)
if [[ $(id -u) -eq 0 ]]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
args+=("$dealer" train "$config" "$@")
echo "+ OMP_NUM_THREADS=$OMP_NUM_THREADS ${args[*]}" >&2
exec "${args[@]}"

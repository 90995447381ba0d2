#!/usr/bin/env bash
# tests/slurm/fake_trainer.sh — a stand-in for `dealer train` with the same outside behaviour, so the launch scripts
# can be checked independently of the real trainer (tests/e2e/test_launch_mpirun.sh; test_slurm.sh runs the real one):
#
#   fake_trainer.sh train CONFIG [run.dir=DIR] [train.steps=N] [train.resume=auto|never] [other.keys=ignored]
#
# - prints one line per step and appends {"step": N, "loss": X} to DIR/metrics.jsonl (rank 0 only);
# - on SIGUSR1 or SIGTERM finishes the current step, writes DIR/ckpt/step_%08d.h5 (a text marker here) and
#   DIR/ckpt/latest (the file name), prints "stopping on SIGUSR1 after step S: checkpoint ..." and exits 75;
# - on start with train.resume=auto and DIR/ckpt/latest present, prints "resuming from DIR/ckpt/step_%08d.h5" and
#   carries on at the next step;
# - at the end writes the final checkpoint and prints "training done: N steps".
# The rank comes from OMPI_COMM_WORLD_RANK, PMIX_RANK or SLURM_PROCID; FAKE_STEP_S sets the time per step (default 0.2).
set -uo pipefail
(($# >= 2)) && [[ $1 == train ]] || { echo "usage: fake_trainer.sh train CONFIG [key=value ...]" >&2; exit 2; }
config=$2; shift 2
[[ -f $config ]] || { echo "dealer: error: config '$config' not found" >&2; exit 2; }
run_dir=runs/fake steps=20 resume=auto
for kv in "$@"; do
  case $kv in
    run.dir=*) run_dir=${kv#*=} ;;
    train.steps=*) steps=${kv#*=} ;;
    train.resume=*) resume=${kv#*=} ;;
    *=*) ;;
    *) echo "dealer: error: override '$kv' is not key=value" >&2; exit 2 ;;
  esac
done
[[ $steps =~ ^[1-9][0-9]*$ ]] || { echo "dealer: error: train.steps must be a positive integer" >&2; exit 2; }
# mpirun inside a Slurm job leaves the batch step's SLURM_PROCID (0) in every rank's environment: ask MPI first.
rank=${OMPI_COMM_WORLD_RANK:-${PMIX_RANK:-${SLURM_PROCID:-0}}}
world=${OMPI_COMM_WORLD_SIZE:-${SLURM_NTASKS:-1}}
step_s=${FAKE_STEP_S:-0.2}
ckpt=$run_dir/ckpt
say() { ((rank == 0)) && echo "$*"; return 0; }

stop=""
trap 'stop=${stop:-SIGUSR1}' USR1
trap 'stop=${stop:-SIGTERM}' TERM

save() { # save STEP: the checkpoint, then `latest`, each written aside and renamed
  ((rank == 0)) || return 0
  local name
  name=$(printf 'step_%08d.h5' "$1")
  mkdir -p "$ckpt"
  echo "fake checkpoint: step $1" >"$ckpt/$name.tmp" && mv -f "$ckpt/$name.tmp" "$ckpt/$name"
  echo "$name" >"$ckpt/latest.tmp" && mv -f "$ckpt/latest.tmp" "$ckpt/latest"
}

start=0
if [[ $resume == auto && -s $ckpt/latest ]]; then
  name=$(<"$ckpt/latest")
  [[ $name =~ ^step_0*([0-9]+)\.h5$ ]] || { echo "dealer: error: $ckpt/latest names '$name'" >&2; exit 2; }
  start=${BASH_REMATCH[1]}
  say "resuming from $ckpt/$name (step $start)"
fi
say "fake dealer train: $world rank(s), OMP_NUM_THREADS=${OMP_NUM_THREADS:-unset}, run dir $run_dir, steps $((start + 1))..$steps"
((rank == 0)) && mkdir -p "$run_dir"

for ((s = start + 1; s <= steps; s++)); do
  sleep "$step_s" &
  # A trapped signal cuts the wait short; finish the step anyway, as the trainer finishes its step.
  while ! wait $!; do kill -0 $! 2>/dev/null || break; done
  say "step $s/$steps loss $(awk -v s="$s" 'BEGIN { printf "%.4f", 4.0 / (1 + 0.1 * s) }')"
  ((rank == 0)) && printf '{"step": %d, "loss": %s}\n' "$s" "$(awk -v s="$s" 'BEGIN { printf "%.4f", 4.0 / (1 + 0.1 * s) }')" >>"$run_dir/metrics.jsonl"
  if [[ -n $stop && $s -lt $steps ]]; then
    save "$s"
    say "stopping on $stop after step $s: checkpoint $ckpt/$(printf 'step_%08d.h5' "$s") written; exit 75 (requeue)"
    # The other ranks leave a moment later, standing in for the trainer's barrier after the checkpoint: mpirun
    # kills every rank as soon as one exits non-zero.
    ((rank == 0)) || sleep 1
    exit 75
  fi
done
save "$steps"
say "training done: $steps steps"
exit 0

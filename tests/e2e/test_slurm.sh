#!/usr/bin/env bash
# test_slurm.sh — launch/slurm/train.sbatch on a real one-node Slurm cluster (tests/slurm/cluster_start.sh):
#
#   0. srun --mpi=pmix starts a 2-rank Open MPI program (the PMIx plugin of Debian's Slurm works with its Open MPI);
#   1. job A (srun, 2 ranks): SIGUSR1 to the batch shell mid-run (what --signal=B:USR1@120 does before the time
#      limit) -> the ranks checkpoint and exit 75 -> the script requeues the job -> the same job id starts again with
#      SLURM_RESTART_COUNT=1, resumes from the checkpoint and finishes: COMPLETED, Restarts=1, no step done twice;
#   2. job B (DEALER_LAUNCHER=mpirun, 2 ranks): SIGTERM to the batch shell -> checkpoint, exit 75, not requeued.
#
# The trainer is always the real `dealer train` (a stand-in would let the test pass while the trainer is broken).
# What the trainer must do for these checks: print a line with the signal's name (SIGUSR1/SIGTERM) when it stops,
# write run_dir/ckpt/step_%08d.h5 and run_dir/ckpt/latest (one line, the file name), exit 75 after the checkpoint,
# print a line containing "resum" and the checkpoint's file name when it continues, append {"step": N, ...} to
# run_dir/metrics.jsonl for every step (log.every=1; evaluation lines without a "loss" key are ignored), and write
# the final step's checkpoint at the end.
#
# Needs root and scripts/setup (slurm-wlm, munge). Every wait is bounded; the cluster is stopped on any exit.
# DEALER_SLURM_KEEP=1 keeps the work directory (logs, run dirs) for a look afterwards.
set -euo pipefail
src=${DEALER_SOURCE_DIR:?DEALER_SOURCE_DIR must point at the repository}
dealer=${DEALER_BIN:?DEALER_BIN must point at the dealer binary}

fail() {
  echo "FAIL: $*" >&2
  for f in "${job_logs[@]}"; do [[ -f $f ]] && { echo "---- $f" >&2; cat "$f" >&2; }; done
  for f in "$cluster"/log/slurmctld.log "$cluster"/log/slurmd.log; do
    [[ -f $f ]] && { echo "---- $f (last 25 lines)" >&2; tail -n 25 "$f" >&2; }
  done
  exit 1
}
[[ $(id -u) -eq 0 ]] || { echo "FAIL: test_slurm needs root (slurmd runs jobs as their users); CI runs as root" >&2; exit 1; }
command -v slurmctld >/dev/null && command -v munged >/dev/null ||
  { echo "FAIL: Slurm or munge missing: run scripts/setup (it installs slurm-wlm and munge)" >&2; exit 1; }

work=$(mktemp -d /tmp/dealer-slurm-test.XXXXXX)
chmod 755 "$work"
cluster=$work/cluster
job_logs=()
cleanup() {
  if [[ -n ${DEALER_SLURM_KEEP:-} ]]; then
    "$src/tests/slurm/cluster_stop.sh" "$cluster" --keep || true
    echo "test_slurm: kept $work (job logs, run dirs, cluster/log)" >&2
  else
    "$src/tests/slurm/cluster_stop.sh" "$cluster" || true
    rm -rf "$work"
  fi
}
trap cleanup EXIT

# ---- the trainer -----------------------------------------------------------------------------------------------
cd "$work"
trainer=$dealer
# The bundled GPT demo cut down to ~30 ms a step (200 steps: a few seconds, under ASan well within the time); its
# records are made here as scripts/demo makes them.
config=${DEALER_SLURM_CONFIG:-$src/configs/gpt-shakespeare.yaml}
steps=200
mkdir -p data
"$dealer" data convert --format text --doc-split blank "$src/data/tinyshakespeare.txt" \
  -o data/train.tfrecord --valid-fraction 0.05 --valid-out data/valid.tfrecord >/dev/null ||
  fail "dealer data convert failed"
overrides=(data.train=data/train.tfrecord data.valid=data/valid.tfrecord "train.steps=$steps" log.every=1
           model.n_layer=1 data.seq_len=128 model.max_seq_len=128 train.batch_per_rank=4 optim.warmup_steps=2
           train.eval_every=0 train.eval_steps=1 ckpt.every=0 ckpt.keep=0 log.tensorboard=false)

# ---- the cluster ---------------------------------------------------------------------------------------------
"$src/tests/slurm/cluster_start.sh" "$cluster" || fail "the cluster did not start"
export SLURM_CONF=$cluster/etc/slurm.conf

# Polls CMD every 0.25 s for at most SECONDS; fails naming WHAT. The limits are bounds for a hung job, not waits:
# generous enough for a machine ten times slower than an idle 2-core one running ASan builds.
wait_until() { # wait_until SECONDS WHAT CMD...
  local limit=$1 what=$2; shift 2
  local deadline=$((SECONDS + limit))
  until "$@"; do
    ((SECONDS < deadline)) || fail "timed out after ${limit} s waiting for $what"
    sleep 0.25
  done
}
job_field() { scontrol show job "$1" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n 1; }
metric_lines() { [[ -f $1 ]] && wc -l <"$1" || echo 0; }
has_metrics() { (($(metric_lines "$1") >= $2)); }
job_ended() { # job_ended JOB: true once in a final state (a requeued job passes through PENDING, not final)
  case $(job_field "$1" JobState) in COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY) return 0 ;; esac
  return 1
}

# ---- 0. PMIx: srun starts an MPI program --------------------------------------------------------------------
cat >hello.c <<'EOF'
#include <mpi.h>
#include <stdio.h>
int main(int argc, char **argv) {
    int rank, size, one = 1, sum = 0;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Allreduce(&one, &sum, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    printf("rank %d of %d sum %d\n", rank, size, sum);
    MPI_Finalize();
    return 0;
}
EOF
mpicc -o hello hello.c || fail "mpicc could not build the MPI check"
out=$(timeout 60 srun --mpi=pmix -n 2 ./hello 2>&1) || fail "srun --mpi=pmix -n 2 failed: $out"
[[ $(grep -c "of 2 sum 2" <<<"$out") -eq 2 ]] || fail "srun --mpi=pmix did not make one 2-rank MPI job: $out"
echo "test_slurm: srun --mpi=pmix runs a 2-rank MPI job"

# ---- 1. SIGUSR1: checkpoint, requeue, resume, finish -----------------------------------------------------------
log_a=$work/job-a.out
job_logs+=("$log_a")
job_a=$(DEALER_BIN=$trainer sbatch --parsable --ntasks=2 --cpus-per-task=1 --time=10 --output="$log_a" \
  "$src/launch/slurm/train.sbatch" "$config" "${overrides[@]}") || fail "sbatch refused job A"
run_a=$work/runs/$job_a
echo "test_slurm: job A is $job_a (run dir $run_a)"
wait_until 300 "job A to log 3 steps" has_metrics "$run_a/metrics.jsonl" 3
scancel --signal=USR1 --batch "$job_a" || fail "scancel --signal=USR1 --batch $job_a failed"
wait_until 600 "job A to be requeued and finish" job_ended "$job_a"

state=$(job_field "$job_a" JobState)
[[ $state == COMPLETED ]] || fail "job A ended $state (exit $(job_field "$job_a" ExitCode)), want COMPLETED"
[[ $(job_field "$job_a" Restarts) == 1 ]] || fail "job A restarted $(job_field "$job_a" Restarts) times, want 1"
grep -q "SLURM_RESTART_COUNT=0," "$log_a" || fail "job A's first start did not log SLURM_RESTART_COUNT=0"
grep -q "SLURM_RESTART_COUNT=1," "$log_a" || fail "job A's second start did not log SLURM_RESTART_COUNT=1"
grep -q "exit 75): requeueing job $job_a" "$log_a" || fail "train.sbatch did not requeue after exit 75"
# The first run's part of the log (up to the requeue): the trainer itself names the signal it stopped on.
first_run=$(sed -n "1,/requeueing job $job_a/p" "$log_a")
grep -v '^\[train.sbatch' <<<"$first_run" | grep -q SIGUSR1 || fail "the trainer did not report stopping on SIGUSR1"
resumed=$(grep -v '^\[train.sbatch' "$log_a" | grep -i resum | grep -oE 'step_[0-9]{8}\.h5' | head -n 1 || true)
[[ -n $resumed ]] || fail "the second run did not say it resumed from a step_%08d.h5 checkpoint"
stop_step=$((10#${resumed:5:8}))
((stop_step >= 3 && stop_step < steps)) || fail "resumed from step $stop_step, want one in 3..$((steps - 1))"
[[ -f $run_a/ckpt/latest ]] || fail "no $run_a/ckpt/latest"
final=$(printf 'step_%08d.h5' "$steps")
[[ $(<"$run_a/ckpt/latest") == "$final" ]] || fail "latest names '$(<"$run_a/ckpt/latest")', want $final"
[[ -f $run_a/ckpt/$final ]] || fail "no final checkpoint $run_a/ckpt/$final"
# Every step logged exactly once across the two runs, in order: nothing redone, nothing skipped. Training records
# are the lines with a "loss" key (evaluation records carry "val_loss" at the same step).
logged=$(grep -F '"loss":' "$run_a/metrics.jsonl" | grep -oE '"step": *[0-9]+' | grep -oE '[0-9]+$' | tr '\n' ' ' ||
  true)
[[ $logged == "$(seq -s ' ' 1 "$steps") " ]] || fail "metrics.jsonl steps are [$logged], want 1..$steps once each"
echo "test_slurm: job A stopped at step $stop_step on SIGUSR1, was requeued, resumed and finished $steps steps"

# ---- 2. SIGTERM to the batch shell, mpirun launcher: checkpoint, no requeue ------------------------------------
log_b=$work/job-b.out
job_logs+=("$log_b")
job_b=$(DEALER_BIN=$trainer DEALER_LAUNCHER=mpirun sbatch --parsable --ntasks=2 --cpus-per-task=1 --time=10 \
  --output="$log_b" "$src/launch/slurm/train.sbatch" "$config" "${overrides[@]}") || fail "sbatch refused job B"
run_b=$work/runs/$job_b
wait_until 300 "job B to log 3 steps" has_metrics "$run_b/metrics.jsonl" 3
scancel --signal=TERM --batch "$job_b" || fail "scancel --signal=TERM --batch $job_b failed"
wait_until 300 "job B to end" job_ended "$job_b"
[[ $(job_field "$job_b" JobState) == FAILED ]] || fail "job B ended $(job_field "$job_b" JobState), want FAILED (exit 75)"
[[ $(job_field "$job_b" ExitCode) == 75:0 ]] || fail "job B exit code $(job_field "$job_b" ExitCode), want 75:0"
[[ $(job_field "$job_b" Restarts) == 0 ]] || fail "job B was requeued after SIGTERM"
grep -q "mpirun -np 2 --bind-to none --map-by slot" "$log_b" || fail "job B did not run under mpirun"
grep -v '^\[train.sbatch' "$log_b" | grep -q SIGUSR1 || fail "the ranks of job B did not get the stop as SIGUSR1"
grep -q "dealer exited 75" "$log_b" || fail "train.sbatch did not report exit 75 for job B"
latest_b=$(<"$run_b/ckpt/latest") || fail "job B left no checkpoint"
[[ -f $run_b/ckpt/$latest_b && $latest_b != "$final" ]] || fail "job B's latest ($latest_b) is not a mid-run checkpoint"
echo "test_slurm: job B (mpirun) stopped on SIGTERM with checkpoint $latest_b and was not requeued"
echo "test_slurm: ok"

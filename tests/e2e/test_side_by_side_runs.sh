#!/usr/bin/env bash
# Several one-rank runs started by hand at once on one machine (no launcher) must not touch each other: each is its
# own MPI singleton. Open MPI used to give every such singleton the same session directory, and the first to finish
# deleted it under the others, whose next checkpoint (an MPI-IO open) then failed. Here two runs write a checkpoint
# every step while short runs start and finish beside them; every run must succeed, no MPI-IO complaint may reach
# stderr, and once they are done no session directory is left behind (TMPDIR points Open MPI at this test's own
# directory, so other tests' processes cannot interfere with the count).
set -euo pipefail
dealer=${DEALER_BIN:?}
src=${DEALER_SOURCE_DIR:?}
work=$(mktemp -d /tmp/dealer_e2e_side.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
config="$src/configs/ffm-criteo.yaml"
mkdir -p "$work/tmp"
export TMPDIR="$work/tmp"

for f in small_train.txt small_test.txt; do
  "$dealer" data convert --format libffm "$src/data/criteo/$f" -o "$work/${f%.*}.tfrecord" --no-progress >/dev/null
done
common=(data.train="$work/small_train.tfrecord" data.valid="$work/small_test.tfrecord" model.num_fields=18
        model.hash_buckets=10000 train.threads=1 train.resume=never log.every=1000 train.eval_every=0)

# Two long runs: 200 rows in batches of 8 is 25 steps an epoch, 4 epochs, a checkpoint every step (100 MPI-IO opens
# each), interleaved with the short runs' start-ups and shutdowns.
for r in a b; do
  "$dealer" train "$config" "${common[@]}" run.dir="$work/long_$r" train.batch_per_rank=8 train.epochs=4 ckpt.every=1 \
    >"$work/long_$r.out" 2>"$work/long_$r.err" &
  pids+=($!)
done
short_runs=0
while kill -0 "${pids[0]}" 2>/dev/null || kill -0 "${pids[1]}" 2>/dev/null; do
  short_runs=$((short_runs + 1))
  "$dealer" train "$config" "${common[@]}" run.dir="$work/short" run.overwrite=true train.epochs=1 \
    >"$work/short.out" 2>"$work/short.err" || { cat "$work/short.err"; fail "short run $short_runs failed"; }
  grep -i 'sharedfp\|mmap\|session' "$work/short.err" && fail "short run $short_runs: MPI complained (above)"
done
for i in 0 1; do
  r=$([[ $i -eq 0 ]] && echo a || echo b)
  wait "${pids[$i]}" || { tail -5 "$work/long_$r.err"; fail "long run $r failed beside $short_runs short runs"; }
  grep -i 'sharedfp\|mmap\|session' "$work/long_$r.err" && fail "long run $r: MPI complained (above)"
  [[ -f $work/long_$r/ckpt/step_00000100.h5 ]] || fail "long run $r has no final checkpoint"
done
[[ $short_runs -ge 2 ]] || fail "only $short_runs short run(s) overlapped the long ones: the test proved nothing"
left=$(find "$work/tmp" -mindepth 1 | head -5)
[[ -z $left ]] || fail "the runs left MPI session files behind: $left"
echo "2 checkpointing runs beside $short_runs short runs: all succeeded, no session directory left"

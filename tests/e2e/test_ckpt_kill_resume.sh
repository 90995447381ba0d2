#!/usr/bin/env bash
# Crash safety and exact resume: a tiny GPT run checkpointing every step is killed with SIGKILL again and again —
# inside checkpoint writes (datasets written, file closed but not renamed, renamed but `latest` not yet updated:
# DEALER_TEST_KILL_CKPT makes rank 0 kill itself at exactly that point) and at random moments (steps, start-up,
# writes) — and resumed each time with train.resume=auto. After every kill, `latest` must name a complete
# checkpoint whose every CRC holds; at the end the parameters, optimizer state and data cursor must equal an
# uninterrupted run's bit for bit (dealer ckpt diff --tol 0). DEALER_TEST_SEED replays the random kill times.
set -euo pipefail
dealer=${DEALER_BIN:?}
src=${DEALER_SOURCE_DIR:?}
work=$(mktemp -d /tmp/dealer_e2e_ckpt_kill.XXXXXX)
pid=
cleanup() {
  if [[ -n $pid ]]; then kill -9 "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

seed=${DEALER_TEST_SEED:-$(( $(date +%s) % 100000 ))}
echo "kill times from seed $seed (DEALER_TEST_SEED=$seed replays them)"
RANDOM=$seed

head -c 60000 "$src/data/tinyshakespeare.txt" > "$work/text.txt"
"$dealer" data convert --format text "$work/text.txt" -o "$work/train.tfrecord" --no-progress >/dev/null

steps=60
args=(data.train="$work/train.tfrecord" data.valid= model.n_layer=1 model.n_head=2 model.n_embd=16
      model.max_seq_len=16 data.seq_len=16 train.batch_per_rank=2 train.steps=$steps optim.warmup_steps=3
      train.eval_every=0 log.every=1000 train.threads=1 ckpt.every=1 ckpt.keep=3)
train() { "$dealer" train "$src/configs/gpt-shakespeare.yaml" "${args[@]}" "$@"; }

# The uninterrupted reference.
train run.dir="$work/ref" >"$work/ref.out" 2>&1 || { cat "$work/ref.out"; fail "reference run failed"; }
[[ -f $work/ref/ckpt/step_$(printf %08d $steps).h5 ]] || fail "reference run wrote no final checkpoint"

run=$work/run
kills=0
# After a kill: `latest` (if any) names a complete file whose CRCs all hold.
check_latest() {
  local what=$1
  [[ -f $run/ckpt/latest ]] || return 0
  local name
  name=$(cat "$run/ckpt/latest")
  [[ -f $run/ckpt/$name ]] || fail "after $what: latest names $name, which does not exist"
  "$dealer" ckpt show "$run/ckpt/$name" --tensors >"$work/show.out" 2>&1 ||
    { cat "$work/show.out"; fail "after $what: latest names $name, which does not verify"; }
}
last_step() { grep -oE '"step": [0-9]+' "$run/metrics.jsonl" 2>/dev/null | tail -1 | awk '{print $2}'; }

# 1. Kills inside checkpoint writes, at each phase.
for point in data:2 close:4 rename:6 data:9 close:11 rename:13; do
  set +e
  DEALER_TEST_KILL_CKPT=$point train run.dir="$run" >"$work/kill.out" 2>&1
  code=$?
  set -e
  [[ $code -eq 137 ]] || { cat "$work/kill.out"; fail "run with DEALER_TEST_KILL_CKPT=$point exited $code, not by SIGKILL"; }
  kills=$((kills + 1))
  phase=${point%:*} step=${point#*:}
  want=$((step - 1))
  # Killed while writing step N: the newest complete checkpoint is N-1 (also after `rename`, where step N's file
  # is complete but latest was not yet moved to it).
  grep -qx "step_$(printf %08d "$want").h5" "$run/ckpt/latest" ||
    fail "killed at $point: latest is $(cat "$run/ckpt/latest"), want step $want"
  if [[ $phase == rename ]]; then
    [[ -f $run/ckpt/step_$(printf %08d "$step").h5 ]] || fail "killed at $point: the renamed file is missing"
  fi
  check_latest "kill at $point"
  echo "killed in checkpoint write ($point): latest is step $want"
done

# 2. Kills at random moments of the training: once the resumed run has logged 1 to 3 new steps, a random 0-20 ms
# more (a step and its checkpoint write take 10-50 ms, so kills land in both). Counting steps rather than time keeps
# the progress per round, and so the number of kills, the same on fast and slow machines. The watcher starts no
# process while the trainer runs (bash builtins only: a pipe nobody writes to naps, the metrics file is read by bash):
# under load a fork+exec per poll took so long that the trainer ran 25 steps past its target before the kill (load
# average 30), leaving no steps for the later rounds. SIGSTOP then SIGKILL: the process dies where it was stopped.
exec {nap_fd}<> <(:)
nap() { read -r -t "$1" -u "$nap_fd" _ || true; }
read_last_step() { # sets now to the newest step in metrics.jsonl (0 when none), without starting a process
  local line last=
  now=0
  [[ -f $run/metrics.jsonl ]] || return 0
  while IFS= read -r line || [[ -n $line ]]; do last=$line; done <"$run/metrics.jsonl"
  [[ $last =~ \"step\":\ ([0-9]+) ]] && now=${BASH_REMATCH[1]}
  return 0
}
for round in $(seq 1 6); do
  before=$(last_step)
  target=$(( ${before:-0} + 1 + RANDOM % 3 ))
  printf -v delay '0.%03d' $((RANDOM % 21))
  # Started directly, not through the train function, so $! is dealer itself and not a subshell.
  "$dealer" train "$src/configs/gpt-shakespeare.yaml" "${args[@]}" run.dir="$run" >"$work/kill.out" 2>&1 &
  pid=$!
  deadline=$((SECONDS + 120)) # a bound only: the loop ends at the target step (seconds, or minutes 10x slower)
  while ((SECONDS < deadline)); do
    read_last_step
    ((now >= target)) && break
    kill -0 "$pid" 2>/dev/null || break
    nap 0.002
  done
  nap "$delay"
  if kill -STOP "$pid" 2>/dev/null; then
    kill -KILL "$pid"
    kills=$((kills + 1))
    echo "killed ${delay}s after step $target was logged (metrics had step ${before:-0} before this start, $(last_step) at the kill)"
  else
    echo "run finished before the kill"
  fi
  wait "$pid" 2>/dev/null || true
  pid=
  check_latest "random kill $round"
  [[ $(last_step) == "$steps" && -f $run/ckpt/step_$(printf %08d $steps).h5 ]] && break
done
((kills >= 10)) || fail "only $kills kills happened"

# 3. Finish, and compare with the uninterrupted run.
train run.dir="$run" >"$work/last.out" 2>&1 || { cat "$work/last.out"; fail "the final resume failed"; }
grep -q "resumed from" "$work/last.out" || grep -q "resumed from" "$work/kill.out" || fail "no run ever resumed"
final=step_$(printf %08d $steps).h5
# --tol 0 holds: both runs are this binary on this machine with the same thread count, BLAS kernel and shapes, so
# every step repeats the same float operations; a resume must restore state, not approximate it.
"$dealer" ckpt diff "$work/ref/ckpt/$final" "$run/ckpt/$final" --tol 0 >"$work/diff.out" ||
  { cat "$work/diff.out"; fail "after $kills kills the final checkpoint differs from the uninterrupted run's"; }
tail -1 "$work/diff.out"
# The curves survive too: TensorBoard files from every start, and the final step's loss is the reference's.
ls "$run"/events.out.tfevents.* >/dev/null || fail "no TensorBoard event files"
ref_loss=$(grep "\"step\": $steps," "$work/ref/metrics.jsonl" | grep -oE '"loss": [-0-9.e]+')
run_loss=$(grep "\"step\": $steps," "$run/metrics.jsonl" | tail -1 | grep -oE '"loss": [-0-9.e]+')
[[ $ref_loss == "$run_loss" ]] || fail "final loss $run_loss, uninterrupted $ref_loss"
echo "kill/resume e2e: ok ($kills kills, final state bit-identical)"

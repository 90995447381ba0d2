#!/usr/bin/env bash
# test_kill_rank.sh — a 3-rank training job never outlives a broken rank:
#   1. kill -9 of rank 1 mid-run: the job exits non-zero within comm.timeout_s + 10 s, with a message;
#   2. SIGSTOP of rank 2 (a hung rank, alive but silent): the watchdog on the other ranks times out after
#      comm.timeout_s, names the collective and rank 2, and the job exits non-zero within comm.timeout_s + 10 s;
#   3. a rank that fails on its own (a corrupt record in its shard): it prints the error, the others stop at the
#      same step ("another rank failed"), with gradient buckets already in flight, and the job exits non-zero.
set -euo pipefail
dealer=${DEALER_BIN:?}
src=${DEALER_SOURCE_DIR:?}
work=$(mktemp -d /tmp/dealer_e2e_kill.XXXXXX)
job=""
victim=""
cleanup() {
  [[ -n $victim ]] && kill -CONT "$victim" 2>/dev/null || true
  if [[ -n $job ]] && kill -0 "$job" 2>/dev/null; then
    kill -TERM "$job" 2>/dev/null || true
    sleep 1
    kill -KILL "$job" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; for f in "$work"/*.out.txt "$work"/*.err.txt; do [[ -f $f ]] && { echo "== $f" >&2; tail -20 "$f" >&2; }; done; exit 1; }
timeout_s=15  # well above a slow step on a loaded 2-core CI machine, so only a real hang trips it

head -c 60000 "$src/data/tinyshakespeare.txt" > "$work/text.txt"
"$dealer" data convert --format text "$work/text.txt" -o "$work/train.tfrecord" >/dev/null

args=(data.train="$work/train.tfrecord" model.n_layer=2 model.n_head=2 model.n_embd=32 model.max_seq_len=64
      data.seq_len=64 train.batch_per_rank=2 train.steps=1000000 train.eval_every=0 ckpt.every=0 log.every=1
      data.valid= train.threads=1 comm.bucket_mb=0.01 comm.timeout_s=$timeout_s log.tensorboard=false)

# Starts the job in the background (run dir $1); waits until it has logged a few steps.
start_job() {
  local name=$1; shift
  mpirun -np 3 --oversubscribe --bind-to none "$dealer" train "$src/configs/gpt-shakespeare.yaml" \
    run.dir="$work/$name" "${args[@]}" "$@" >"$work/$name.out.txt" 2>"$work/$name.err.txt" &
  job=$!
  for ((i = 0; i < 1800; i++)); do # up to 3 min for start-up and 3 steps: a bound, not a wait
    [[ $(grep -c '^step' "$work/$name.out.txt" 2>/dev/null || true) -ge 3 ]] && return 0
    kill -0 "$job" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# The pid of rank $1 of the running job: Open MPI's mpirun starts local ranks as its children.
rank_pid() {
  local pid
  for pid in $(pgrep -P "$job"); do
    if tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$1"; then
      echo "$pid"
      return 0
    fi
  done
  return 1
}

# Waits for the job to end: sets code (its exit status) and took (seconds since $1, a start time in ns).
wait_job() {
  code=0
  wait "$job" || code=$?
  job=""
  took=$(( ($(date +%s%N) - $1) / 1000000000 ))
}

# ---- 1. kill -9 ------------------------------------------------------------------------------------------------
start_job kill || { tail -n 5 "$work/kill.err.txt" >&2; tail -n 5 "$work/kill.out.txt" >&2; fail "the job did not start training"; }
victim=$(rank_pid 1) || fail "cannot find rank 1 among mpirun's children"
t0=$(date +%s%N)
kill -KILL "$victim"
wait_job "$t0"
victim=""
echo "kill -9 of rank 1: exit $code after ${took} s"
[[ $code -ne 0 ]] || fail "the job exited 0 after a rank was killed"
(( took <= timeout_s + 10 )) || fail "the job took ${took} s to end after a rank was killed"
grep -qiE "signal 9|killed|rank 1|not arrived|timed out" "$work/kill.err.txt" "$work/kill.out.txt" ||
  fail "no message names the dead rank"

# ---- 2. a hung rank --------------------------------------------------------------------------------------------
start_job hang || fail "the job did not start training"
victim=$(rank_pid 2) || fail "cannot find rank 2 among mpirun's children"
t0=$(date +%s%N)
kill -STOP "$victim"
wait_job "$t0"
kill -KILL "$victim" 2>/dev/null || true
victim=""
echo "SIGSTOP of rank 2: exit $code after ${took} s"
[[ $code -ne 0 ]] || fail "the job exited 0 with a hung rank"
(( took >= timeout_s - 1 && took <= timeout_s + 10 )) ||
  fail "the job ended ${took} s after rank 2 hung, want about comm.timeout_s = $timeout_s"
grep -qE "timed out after [0-9]+ s on rank [01]: rank 2 had not arrived" "$work/hang.err.txt" ||
  fail "the watchdog message does not name rank 2: $(grep -m2 'timed out' "$work/hang.err.txt")"
grep -m1 "timed out" "$work/hang.err.txt"

# ---- 3. a rank fails on its own ---------------------------------------------------------------------------------
# Corrupt one payload byte of a record half-way through the file: whichever rank reads it fails with a CRC error.
size=$(stat -c %s "$work/train.tfrecord")
cp "$work/train.tfrecord" "$work/bad.tfrecord"
cp "$work/train.tfrecord.idx" "$work/bad.tfrecord.idx"
printf '\xff' | dd of="$work/bad.tfrecord" bs=1 seek=$((size / 2)) conv=notrunc status=none
touch -d "+2 seconds" "$work/bad.tfrecord.idx" # the index stays valid, so the damage shows only when read mid-run
t0=$(date +%s%N)
set +e
mpirun -np 3 --oversubscribe --bind-to none "$dealer" train "$src/configs/gpt-shakespeare.yaml" \
  run.dir="$work/bad" "${args[@]}" data.train="$work/bad.tfrecord" data.prefetch=0 \
  >"$work/bad.out.txt" 2>"$work/bad.err.txt"
code=$?
set -e
took=$(( ($(date +%s%N) - t0) / 1000000000 ))
echo "corrupt record: exit $code after ${took} s"
[[ $code -ne 0 ]] || fail "the job exited 0 with a corrupt record"
grep -qE "error \(rank [0-2]\): data rank [0-2], epoch 0, position .*bad.tfrecord: record" "$work/bad.err.txt" ||
  fail "the failing rank did not name the record"
[[ $(grep -c '^step' "$work/bad.out.txt") -ge 1 ]] || fail "the corrupt record was found before training started"
(( took <= timeout_s + 20 )) || fail "the job took ${took} s to stop after a rank failed"
grep -q "timed out" "$work/bad.err.txt" && fail "a rank waited for the watchdog instead of stopping with the others"
echo "kill rank e2e: ok"

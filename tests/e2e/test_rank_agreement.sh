#!/usr/bin/env bash
# test_rank_agreement.sh — ranks started with different settings (an `mpirun A : B` line) refuse to train: every
# rank exits 2 within seconds, and rank 0's line names each differing rank, key and both values. Before the check
# these cases segfaulted (n_embd), trained diverging copies and exited 0 (lr, seed), failed inside MPI (steps) or
# hung (run.dir). Also: a rank whose own config fails to load ends the job with its message; a rank-local setting
# (log.level) may differ; a run directory held by another run ends all ranks with exit 2.
set -euo pipefail
dealer=${DEALER_BIN:?}
src=${DEALER_SOURCE_DIR:?}
fail() { echo "FAIL: $*" >&2; exit 1; }
work=$(mktemp -d /tmp/dealer_e2e_ranks.XXXXXX)
holder=""
cleanup() { [[ -n $holder ]] && kill "$holder" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

head -c 40000 "$src/data/tinyshakespeare.txt" >"$work/text.txt"
"$dealer" data convert --format text "$work/text.txt" -o "$work/train.tfrecord" --no-progress >/dev/null
config=$src/configs/gpt-shakespeare.yaml
tiny=(data.train="$work/train.tfrecord" data.valid= model.n_layer=1 model.n_head=2 model.n_embd=16
      model.max_seq_len=16 data.seq_len=16 train.batch_per_rank=2 train.steps=4 optim.warmup_steps=1
      train.eval_every=0 log.every=1000 train.threads=1 ckpt.every=0 comm.timeout_s=60)
mpi=(mpirun --oversubscribe --bind-to none)

# mpmd NAME "OVERRIDES OF RANK 0" "OVERRIDES OF RANK 1" ["OVERRIDES OF RANK 2"]: runs one rank per argument (a
# `:`-separated mpirun line) under a 120 s guard; exit code in $code, output in $work/NAME.out.
mpmd() {
  local name=$1
  shift
  local line=() first=1
  for extra in "$@"; do
    ((first)) || line+=(:)
    first=0
    read -r -a words <<<"$extra"
    line+=(-np 1 "$dealer" train "$config" "${tiny[@]}" "${words[@]}")
  done
  set +e
  timeout 120 "${mpi[@]}" "${line[@]}" >"$work/$name.out" 2>&1
  code=$?
  set -e
  ((code != 124)) || { cat "$work/$name.out"; fail "$name: the job hung (killed after 120 s)"; }
}

# want_refused NAME PATTERN...: exit 2, no crash, and every pattern in the output.
want_refused() {
  local name=$1
  shift
  [[ $code -eq 2 ]] || { cat "$work/$name.out"; fail "$name: exit $code, want 2"; }
  ! grep -qiE "segmentation|signal 11|core dumped|MPI Error|NBC" "$work/$name.out" || { cat "$work/$name.out"; fail "$name: crashed"; }
  for want in "$@"; do
    grep -qF -- "$want" "$work/$name.out" || { cat "$work/$name.out"; fail "$name: output lacks '$want'"; }
  done
}

r=run.dir=$work/r
mpmd n_embd "$r model.n_embd=16" "$r model.n_embd=32"
want_refused n_embd "error (rank 0): the ranks were started with different configs" \
  "rank 1 differs from rank 0: model.n_embd = 16 (rank 0) vs 32 (rank 1)" \
  "error (rank 1): this rank's config differs from rank 0's: model.n_embd = 16 (rank 0) vs 32 (rank 1)"
mpmd lr_seed "$r optim.lr=1e-3 run.seed=1" "$r optim.lr=2e-3 run.seed=2"
want_refused lr_seed "optim.lr = 0.001 (rank 0) vs 0.002 (rank 1)" "run.seed = 1 (rank 0) vs 2 (rank 1)"
mpmd steps "$r train.steps=4" "$r train.steps=5"
want_refused steps "train.steps = 4 (rank 0) vs 5 (rank 1)"
mpmd run_dir "run.dir=$work/a" "run.dir=$work/b"
want_refused run_dir "run.dir = \"$work/a\" (rank 0) vs \"$work/b\" (rank 1)"
[[ ! -e $work/a/ckpt && ! -e $work/b/ckpt ]] || fail "a refused run wrote checkpoints"

# Three ranks, the last one different: rank 0 names it; the middle rank (same as rank 0) prints nothing of its own.
mpmd three "$r optim.lr=1e-3" "$r optim.lr=1e-3" "$r optim.lr=5e-4"
want_refused three "rank 2 differs from rank 0: optim.lr = 0.001 (rank 0) vs 0.0005 (rank 2)"
! grep -q "error (rank 1)" "$work/three.out" || { cat "$work/three.out"; fail "three: rank 1 printed an error of its own"; }

# A bad override on one rank only: that rank's own message, and the others stop too.
mpmd one_bad "$r" "$r optim.lr=fast"
want_refused one_bad "optim.lr: expected a number, got 'fast'" "rank 1 could not load the config"

# The rank-local log level may differ: the job trains.
mpmd log_level "run.dir=$work/ok log.level=info" "run.dir=$work/ok log.level=warn"
[[ $code -eq 0 ]] || { cat "$work/log_level.out"; fail "log_level: exit $code, want 0"; }
[[ -f $work/ok/ckpt/step_00000004.h5 ]] || fail "log_level: no final checkpoint"

# A run directory another process holds: all ranks exit 2 naming the holder (rank 0 holds the lock for the job).
mkdir -p "$work/held"
echo "otherhost 4242" >"$work/held/run.lock"
# The holder is `sleep` itself (exec), holding the lock on fd 9, with no pipe of ours open (ctest waits for those).
(exec 9>>"$work/held/run.lock"; flock 9; exec sleep 600) </dev/null >/dev/null 2>&1 &
holder=$!
for ((i = 0; i < 100; i++)); do flock -n "$work/held/run.lock" true 2>/dev/null || break; sleep 0.1; done
mpmd held "run.dir=$work/held" "run.dir=$work/held"
want_refused held "run.dir $work/held is in use by another run (pid 4242 on host otherhost"
echo "rank agreement: ok"

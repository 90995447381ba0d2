#!/usr/bin/env bash
# test_run_guards.sh — what dealer refuses instead of destroying or ignoring something (docs/training.md, "What
# dealer guarantees"), each case one line and exit 2 unless said otherwise:
#   - an output that is an input, by any name (same path, ./, symlink, hard link), for every command that writes a
#     file from inputs; the input is left byte for byte as it was;
#   - a second run in a run directory (flock'ed run.lock naming the holder); a lock left by a dead process is taken
#     over with a warning; train.resume=never over an old run's checkpoints unless run.overwrite=true;
#   - a key the model kind does not read; sizes whose products wrap internal integers; an input path that is a
#     directory; a record or plain file where a checkpoint or run directory belongs;
# and what now works: every checkpoint form in every command (ckpt diff A/ckpt/latest B/ckpt/latest), hints whose
# values the config accepts (data.skip_corrupt=N), non-finite metrics as JSON null with a reason, an ETA that is
# never negative, SIGINT stopping a run like SIGTERM (checkpoint, exit 75).
set -euo pipefail
dealer=${DEALER_BIN:?}
src=${DEALER_SOURCE_DIR:?}
fail() { echo "FAIL: $*" >&2; exit 1; }
work=$(mktemp -d /tmp/dealer_e2e_guards.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
cd "$work"

# expect CODE PATTERN CMD...: the exit code, one line on stderr holding PATTERN, nothing crashed.
expect() {
  local want=$1 pattern=$2
  shift 2
  set +e
  "$@" >"$work/out" 2>"$work/err"
  local code=$?
  set -e
  [[ $code -eq $want ]] || { cat "$work/out" "$work/err"; fail "'$*' exited $code, want $want"; }
  if [[ -n $pattern ]]; then
    grep -qF -- "$pattern" "$work/err" || { cat "$work/err"; fail "'$*': stderr lacks '$pattern'"; }
    [[ $(grep -c . "$work/err") -eq 1 ]] || { cat "$work/err"; fail "'$*': not one line"; }
  fi
}

head -c 40000 "$src/data/tinyshakespeare.txt" >text.txt
"$dealer" data convert --format text text.txt -o train.tfrecord --no-progress >/dev/null
config=$src/configs/gpt-shakespeare.yaml
tiny=(data.train="$work/train.tfrecord" data.valid= model.n_layer=1 model.n_head=2 model.n_embd=16
      model.max_seq_len=16 data.seq_len=16 train.batch_per_rank=2 optim.warmup_steps=1 train.eval_every=0
      log.every=1000 train.threads=1 log.level=warn)
train() { "$dealer" train "$config" "${tiny[@]}" "$@"; }

# ---- never destroy an input -------------------------------------------------------------------------------------
cp text.txt keep.txt
ln -s text.txt link.txt
ln text.txt hard.txt
mkdir sub
for out in text.txt ./text.txt link.txt hard.txt sub/../text.txt "$work/text.txt"; do
  expect 2 "writing it would destroy the input" "$dealer" data convert --format text text.txt -o "$out" --no-progress
  expect 2 "writing it would destroy the input" "$dealer" data make-pairs text.txt -o "$out"
done
expect 2 "writing it would destroy the input" "$dealer" data convert --format text keep.txt text.txt -o link.txt
expect 2 "--valid-out" "$dealer" data convert --format text text.txt -o x.tfrecord --valid-out hard.txt \
  --valid-fraction 0.1
cmp -s text.txt keep.txt || fail "an input was changed by a refused write"
expect 2 "is a directory" "$dealer" data convert --format text text.txt -o sub

train run.dir=a train.steps=4 ckpt.every=2 >/dev/null 2>&1 || fail "training a failed"
cp a/ckpt/step_00000004.h5 keep.h5
expect 2 "writing it would destroy the input" "$dealer" ckpt export a --format safetensors -o a/ckpt/step_00000004.h5
expect 2 "writing it would destroy the input" "$dealer" ckpt export a/ckpt/latest --format safetensors \
  -o "$work/a/../a/ckpt/step_00000004.h5"
cmp -s a/ckpt/step_00000004.h5 keep.h5 || fail "ckpt export changed its input"

printf '1 0:1:1 1:2:1\n0 0:3:1 1:4:1\n1 0:1:1 1:4:1\n0 0:3:1 1:2:1\n' >clicks.ffm
cp clicks.ffm keep.ffm
"$dealer" data convert --format libffm clicks.ffm -o clicks.tfrecord --no-progress >/dev/null
"$dealer" train "$src/configs/ffm-criteo.yaml" data.train="$work/clicks.tfrecord" data.valid= model.num_fields=2 \
  model.hash_buckets=64 train.epochs=1 train.batch_per_rank=2 run.dir=f >/dev/null 2>&1 || fail "ffm training failed"
expect 2 "writing it would destroy the input" "$dealer" predict f clicks.ffm -o ./clicks.ffm
cmp -s clicks.ffm keep.ffm || fail "predict changed its input"
expect 2 "writing it would destroy the input" "$dealer" predict f clicks.ffm -o "f/ckpt/./$(cat f/ckpt/latest)"

# ---- one run per run directory ----------------------------------------------------------------------------------
mkdir -p held
echo "otherhost 4242" >held/run.lock
(exec 9>>held/run.lock; flock 9; exec sleep 600) </dev/null >/dev/null 2>&1 &
pids+=($!)
for ((i = 0; i < 100; i++)); do flock -n held/run.lock true 2>/dev/null || break; sleep 0.1; done
expect 2 "run.dir held is in use by another run (pid 4242 on host otherhost" train run.dir=held train.steps=2
[[ ! -e held/config.yaml && ! -e held/ckpt ]] || fail "a refused run wrote into the held run.dir"
kill -KILL "${pids[0]}"
wait "${pids[0]}" 2>/dev/null || true
pids=()
# A real second dealer in a directory a running dealer holds.
"$dealer" train "$config" "${tiny[@]}" run.dir=busy train.steps=100000000 ckpt.every=0 log.every=1 >busy.out 2>&1 &
pids+=($!)
for ((i = 0; i < 600; i++)); do [[ -s busy/metrics.jsonl ]] && break; sleep 0.1; done
[[ -s busy/metrics.jsonl ]] || { cat busy.out; fail "the first run never started"; }
expect 2 "run.dir busy is in use by another run (pid ${pids[0]} on host" train run.dir=busy train.steps=2
kill -KILL "${pids[0]}"
wait "${pids[0]}" 2>/dev/null || true
pids=()
# Its lock file still names it; the next run takes the lock over and says so.
expect 0 "" train run.dir=busy train.steps=2 train.resume=never ckpt.every=0
grep -q "taking over the lock left by pid" "$work/err" || { cat "$work/err"; fail "no warning on a stale lock"; }
[[ ! -s busy/run.lock ]] || fail "a finished run left its name in run.lock"

# train.resume=never over an old run's checkpoints: refused; run.overwrite=true starts over cleanly.
expect 2 "train.resume=never but run.dir a already holds checkpoints" train run.dir=a train.steps=2 train.resume=never
[[ -f a/ckpt/step_00000002.h5 && -f a/ckpt/step_00000004.h5 ]] || fail "a refused run touched the old checkpoints"
expect 0 "" train run.dir=a train.steps=3 train.resume=never run.overwrite=true ckpt.every=0
[[ $(ls a/ckpt) == $'latest\nstep_00000003.h5' ]] || fail "run.overwrite left: $(ls a/ckpt)"
[[ $(grep -c '"step"' a/metrics.jsonl) -eq 3 ]] || fail "run.overwrite kept the old metrics: $(cat a/metrics.jsonl)"

# ---- no key ignored, no size wrapped ----------------------------------------------------------------------------
expect 2 "model.k is not read by model.kind gpt (only by fm,ffm)" train run.dir=k model.k=8
expect 2 "model.n_layer is not read by model.kind ffm" "$dealer" train "$src/configs/ffm-criteo.yaml" model.n_layer=3
expect 2 "train.early_stop is not read by model.kind gpt" train run.dir=k data.valid="$work/train.tfrecord" \
  train.early_stop=true
"$dealer" config keys >keys.txt
grep -Eq '^model\.k +int \[1, 4096\] +4 +fm,ffm ' keys.txt || fail "config keys: no read-by column"
grep -Eq '^model\.init_from .* gpt,dpo ' keys.txt || fail "config keys: model.init_from is read by gpt and dpo"
expect 2 "train.batch_per_rank (1000000000) x data.seq_len (16)" train run.dir=k train.batch_per_rank=1e9
expect 2 "x data.seq_len (2147483647) = " train run.dir=k model.max_seq_len=2147483647 data.seq_len=2147483647
expect 2 "floats per activation" train run.dir=k model.n_embd=1048576 model.n_head=1 data.seq_len=16 \
  train.batch_per_rank=2097152
[[ ! -e k ]] || fail "a refused run created its run.dir"

# ---- paths are what they should be ------------------------------------------------------------------------------
expect 2 "sub is a directory, not a record file" train run.dir=d data.train="$work/sub"
expect 2 "is a record file (TFRecord), not a checkpoint" "$dealer" ckpt show train.tfrecord
expect 2 "is a record file (TFRecord), not a checkpoint" "$dealer" eval train.tfrecord --data train.tfrecord
expect 2 "is a plain file, not a checkpoint" "$dealer" ckpt ls text.txt
expect 2 "is a plain file, not a checkpoint" "$dealer" generate text.txt --prompt a
expect 2 "is a record file" train run.dir=r train.resume="$work/train.tfrecord"
expect 2 "run.dir $work/text.txt is a file, not a directory" train run.dir="$work/text.txt"

# Every checkpoint form in every command.
train run.dir=b train.steps=4 ckpt.every=2 >/dev/null 2>&1 || fail "training b failed"
for form in a a/ckpt a/ckpt/latest a/ckpt/step_00000003.h5; do
  expect 0 "" "$dealer" ckpt show "$form"
  expect 0 "" "$dealer" eval "$form" --data train.tfrecord --batches 1
  expect 0 "" "$dealer" generate "$form" --prompt a --tokens 2
done
set +e
"$dealer" ckpt diff a/ckpt/latest b/ckpt/latest >diff.out 2>diff.err
code=$?
set -e
[[ $code -eq 1 ]] || { cat diff.out diff.err; fail "ckpt diff of two runs' latest: exit $code, want 1 (they differ)"; }
expect 0 "" "$dealer" ckpt diff b/ckpt/latest b/ckpt/step_00000004.h5
expect 0 "" train run.dir=r2 train.steps=5 train.resume="$work/b/ckpt/latest" log.level=info
grep -q "resumed from $work/b/ckpt/step_00000004.h5 at step 4" "$work/err" || { cat "$work/err"; fail "resume from ckpt/latest"; }

# ---- hints suggest what the config accepts ----------------------------------------------------------------------
cp train.tfrecord damaged.tfrecord
"$dealer" data index damaged.tfrecord >/dev/null
printf '\xff' | dd of=damaged.tfrecord bs=1 seek=200 conv=notrunc 2>/dev/null
touch damaged.tfrecord.idx # the index is still right (same offsets): the damage is met while reading, not at open
expect 2 "data.skip_corrupt=10" train run.dir=c data.train="$work/damaged.tfrecord" train.steps=60 data.shuffle=false
expect 0 "" train run.dir=c2 data.train="$work/damaged.tfrecord" train.steps=60 data.shuffle=false data.skip_corrupt=10

# ---- metrics and the step line ----------------------------------------------------------------------------------
expect 0 "" train run.dir=nan train.steps=4 optim.lr=1e30 optim.grad_clip=0 optim.schedule=constant \
  train.max_bad_steps=100 data.valid="$work/train.tfrecord" train.eval_steps=1 train.eval_every=2
python3 - nan/metrics.jsonl <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]      # every line is strict JSON (no NaN, no Infinity)
assert not any(v == -1 for r in rows for v in r.values()), rows
bad = [r for r in rows if r.get("loss", 0) is None or r.get("val_loss", 0) is None]
assert bad, "no non-finite figure in a run with lr 1e30"
assert all("reason" in r and " is nan" in r["reason"] or " is inf" in r["reason"] for r in bad), bad
PY
# ETA with more steps than the clock can count: never negative.
"$dealer" train "$config" "${tiny[@]}" run.dir=eta train.steps=4000000000000000000 ckpt.every=0 log.every=1 >eta.out 2>&1 &
pids+=($!)
for ((i = 0; i < 600; i++)); do [[ $(grep -c '^step' eta.out) -ge 3 ]] && break; sleep 0.1; done
kill -TERM "${pids[0]}"
set +e
wait "${pids[0]}"
code=$?
set -e
pids=()
[[ $code -eq 75 ]] || { cat eta.out; fail "SIGTERM: exit $code, want 75"; }
grep -q 'ETA >99999d' eta.out || { cat eta.out; fail "no capped ETA"; }
! grep -q 'ETA -' eta.out || { cat eta.out; fail "negative ETA"; }

# ---- Ctrl-C on a single-process run: checkpoint and 75, like SIGTERM -------------------------------------------
"$dealer" train "$config" "${tiny[@]}" run.dir=int train.steps=100000000 ckpt.every=0 log.every=1 log.level=info >int.out 2>&1 &
pids+=($!)
for ((i = 0; i < 600; i++)); do [[ -s int/metrics.jsonl ]] && break; sleep 0.1; done
kill -INT "${pids[0]}"
set +e
wait "${pids[0]}"
code=$?
set -e
pids=()
[[ $code -eq 75 ]] || { cat int.out; fail "SIGINT: exit $code, want 75"; }
grep -q "stopping on SIGINT at step" int.out || { cat int.out; fail "SIGINT: no stop line"; }
[[ -s int/ckpt/latest ]] || fail "SIGINT: no checkpoint"
echo "run guards: ok"

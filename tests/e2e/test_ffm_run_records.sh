#!/usr/bin/env bash
# What an FM/FFM user sees of a run: the log and files speak rows (no tokens, MFU, packing or gradient norm),
# early stopping keeps a checkpoint named for the best epoch's step and says so in metrics.jsonl, feature ids at or
# above 2^31 are hashed (counted at conversion) instead of folded onto real ids, and the range checks and hints;
# ckpt.fsync false says so and writes the same checkpoint.
set -euo pipefail
dealer=${DEALER_BIN:?}
src=${DEALER_SOURCE_DIR:?}
work=$(mktemp -d /tmp/dealer_e2e_ffm_records.XXXXXX)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
config="$src/configs/ffm-criteo.yaml"

for f in small_train.txt small_test.txt; do
  "$dealer" data convert --format libffm "$src/data/criteo/$f" -o "$work/${f%.*}.tfrecord" --no-progress >/dev/null
done
# 200 training rows, batches of 32: 7 steps an epoch (the last one short).
small=(data.train="$work/small_train.tfrecord" data.valid="$work/small_test.tfrecord" model.num_fields=18
       model.hash_buckets=10000 train.threads=1 train.resume=never)

# ---- the log and files of a click run --------------------------------------------------------------------------------
"$dealer" train "$config" "${small[@]}" run.dir="$work/run" train.epochs=2 log.every=1 >"$work/run.out" \
  2>"$work/run.err" || { cat "$work/run.err"; fail "training failed"; }
step_lines=$(grep -c '^step .*rows/s' "$work/run.out" || true)
[[ $step_lines -eq 14 ]] || fail "want 14 step lines with rows/s, got $step_lines: $(head -3 "$work/run.out")"
if grep -E 'tok/s|MFU|pack |tokens|grad ' "$work/run.out" "$work/run.err"; then
  fail "a click run's log speaks of tokens, MFU, packing or gradient norms (lines above)"
fi
grep -q 'INFO\] ffm model: [0-9]* parameters ([0-9.]* MiB); 1 rank on cpu (1 thread each)$' "$work/run.err" ||
  fail "no start-up line naming the model's size: $(cat "$work/run.err")"
grep -q 'INFO\] 14 steps of 1 rank × 32 rows$' "$work/run.err" || fail "no start-up line in rows: $(cat "$work/run.err")"
grep -q 'INFO\] start-up [0-9.]* s: data and model [0-9.]* s, parameters [0-9.]* s' "$work/run.err" ||
  fail "no start-up time line"
grep -q 'sgemm\|BLAS' "$work/run.err" && fail "a click run measured or named BLAS: $(cat "$work/run.err")"
grep -q 'INFO\] checkpoint .*step_00000014.h5 ([0-9.]* MB in [0-9.]* s, [0-9]* MB/s' "$work/run.err" ||
  fail "the checkpoint line gives no write speed: $(grep checkpoint "$work/run.err")"
grep -q 'INFO\] finished 14 steps in .* (400 rows seen; peak resident memory [0-9]* MiB per rank at most, [0-9]* MiB of it file pages: mapped records and code)$' \
  "$work/run.err" || fail "no rows or memory in the final line: $(tail -1 "$work/run.err")"
# metrics.jsonl: per step exactly the documented keys (docs/ffm.md), per evaluation val_loss/val_logloss/val_auc
steps_json=$(grep -c '"rows_per_s"' "$work/run/metrics.jsonl")
[[ $steps_json -eq 14 ]] || fail "want 14 step records in metrics.jsonl, got $steps_json"
keys=$(grep '"rows_per_s"' "$work/run/metrics.jsonl" | head -1 | grep -oE '"[a-z_/]+":' | tr -d '":' | tr '\n' ' ')
[[ $keys == "step loss lr rows_per_s ms rows_seen " ]] || fail "step record keys are '$keys'"
grep -q '"rows_seen": 400' "$work/run/metrics.jsonl" || fail "metrics.jsonl never reaches 400 rows seen"
[[ $(grep -c '"val_logloss"' "$work/run/metrics.jsonl") -eq 2 ]] || fail "want one evaluation record per epoch"
grep -qE 'tokens|mfu|packing|grad_norm' "$work/run/metrics.jsonl" && fail "metrics.jsonl speaks of tokens or MFU"
events=$(ls "$work/run"/events.out.tfevents.*)
grep -qa 'rows_per_s' "$events" || fail "TensorBoard has no rows_per_s"
grep -qaE 'tokens_per_s|mfu|grad_norm' "$events" && fail "TensorBoard events hold token or MFU scalars"
echo "click run log and files: ok ($(grep '^step' "$work/run.out" | tail -1))"

# ---- ckpt.fsync false: the log says so, and the checkpoint is the same file's worth --------------------------------
"$dealer" train "$config" "${small[@]}" run.dir="$work/nosync" train.epochs=2 log.every=100 ckpt.fsync=false \
  >"$work/nosync.out" 2>"$work/nosync.err" || { cat "$work/nosync.err"; fail "the ckpt.fsync=false run failed"; }
grep -q 'INFO\] checkpoint .*step_00000014.h5 ([0-9.]* MB in [0-9.]* s, [0-9]* MB/s without fsync: ckpt.fsync false)$' \
  "$work/nosync.err" || fail "the checkpoint line does not say it skipped the fsync: $(grep checkpoint "$work/nosync.err")"
"$dealer" ckpt diff "$work/run/ckpt/step_00000014.h5" "$work/nosync/ckpt/step_00000014.h5" >"$work/nosync.diff" ||
  { cat "$work/nosync.diff"; fail "the unsynced checkpoint differs from the synced run's"; }

# ---- early stopping: the kept checkpoint is the best epoch's -------------------------------------------------------
"$dealer" train "$config" "${small[@]}" run.dir="$work/es" run.seed=3 train.epochs=40 train.early_stop=true \
  log.every=100000 >"$work/es.out" 2>"$work/es.err" || { cat "$work/es.err"; fail "early-stopping run failed"; }
grep -q 'early stop: validation loss rose' "$work/es.err" || fail "no early stop in 40 epochs"
# the evaluations, in order: "step N/M | val_loss L ..."; the best is the lowest, its epoch = its position
read -r best_epoch best_step best_loss < <(grep -oE '^step +[0-9]+/[0-9]+ \| val_loss [0-9.]+' "$work/es.out" |
  awk '{ split($2, s, "/"); n++; if (n == 1 || $5 < b) { b = $5; e = n; st = s[1] } } END { print e, st, b }')
last_step=$(grep -oE '^step +[0-9]+/' "$work/es.out" | tail -1 | grep -oE '[0-9]+')
[[ $best_step -lt $last_step ]] || fail "the best epoch ($best_step) is the last one ($last_step): no early stop?"
ckpts=$(ls "$work/es/ckpt" | grep -c '\.h5$')
kept=$(printf 'step_%08d.h5' "$best_step")
[[ -f $work/es/ckpt/$kept && $ckpts -eq 1 ]] || fail "want only $kept in the run, have: $(ls "$work/es/ckpt")"
[[ $(cat "$work/es/ckpt/latest") == "$kept" ]] || fail "latest names $(cat "$work/es/ckpt/latest"), not $kept"
"$dealer" ckpt show "$work/es/ckpt/$kept" >"$work/show.out" || fail "ckpt show failed"
grep -qE "step\b.*\b$best_step\b" "$work/show.out" || fail "the kept checkpoint's step is not $best_step"
grep -q "keeping epoch $best_epoch's parameters (step $best_step)" "$work/es.err" ||
  fail "the early-stop line does not name epoch $best_epoch, step $best_step: $(grep 'early stop' "$work/es.err")"
last=$(tail -1 "$work/es/metrics.jsonl")
[[ $last == *'"early_stop": true'* && $last == *"\"best_epoch\": $best_epoch,"* &&
   $last == *"\"best_step\": $best_step,"* ]] || fail "metrics.jsonl ends with $last"
logged=$(echo "$last" | grep -oE '"best_val_logloss": [0-9.e-]+' | awk '{print $2}')
awk -v a="$logged" -v b="$best_loss" 'BEGIN { d = a - b; exit !(d < 1e-4 && d > -1e-4) }' ||
  fail "best_val_logloss $logged, the best evaluation printed $best_loss"
echo "early stop: epoch $best_epoch (step $best_step, val_loss $best_loss) kept as $kept"

# ---- feature ids at or above 2^31: hashed apart from real ids, counted at conversion ---------------------------------
# Row A uses real ids 5 and 6; row B uses two ids above 2^31 that the old 31-bit fold mapped exactly onto 5 and 6
# (found by inverting the fold), so training on B used to move A's score. Hashed, they land on rows of their own.
printf '1 0:5:1 1:6:1\n' >"$work/a.ffm"
printf '1 0:697978758125263862:1 1:8363451390581232002:1\n' >"$work/b.ffm"
"$dealer" data convert --format libffm "$work/b.ffm" -o "$work/b.tfrecord" --no-progress >"$work/conv.out" ||
  fail "converting wide ids failed"
grep -q '; 2 feature ids at or above 2^31 hashed$' "$work/conv.out" || fail "conversion said: $(cat "$work/conv.out")"
"$dealer" data convert --format libffm "$work/a.ffm" -o "$work/a.tfrecord" --no-progress >"$work/conv.out"
grep -q '; 0 feature ids at or above 2^31 hashed$' "$work/conv.out" || fail "conversion said: $(cat "$work/conv.out")"
wide=(model.num_fields=2 model.hash_buckets=1000 data.valid= train.epochs=1 train.batch_per_rank=1 log.every=1000
      train.threads=1 train.resume=never run.seed=1 data.train="$work/b.tfrecord")
# One epoch on B at libffm's rate, and the same run at a rate too small to move any weight (w - 1e-30·g/√G rounds
# back to w): the reference for "untrained". A's score must be the same after both; B's must not.
"$dealer" train "$config" "${wide[@]}" run.dir="$work/w1" >/dev/null 2>&1 || fail "training on wide ids failed"
"$dealer" train "$config" "${wide[@]}" run.dir="$work/w0" optim.lr=1e-30 >/dev/null 2>&1 ||
  fail "the untrained reference run failed"
for r in w0 w1; do
  for x in a b; do
    "$dealer" predict "$work/$r" "$work/$x.ffm" -o "$work/$x.$r.pred" >/dev/null || fail "predict $x with $r failed"
  done
done
cmp -s "$work/a.w0.pred" "$work/a.w1.pred" ||
  fail "training on wide ids changed the score of real ids 5 and 6: $(cat "$work/a.w0.pred") -> $(cat "$work/a.w1.pred")"
cmp -s "$work/b.w0.pred" "$work/b.w1.pred" && fail "training on B did not change B's score (its rows were not trained)"
echo "wide ids: B trained ($(cat "$work/b.w0.pred") -> $(cat "$work/b.w1.pred")), A untouched ($(cat "$work/a.w1.pred"))"

# ---- range checks and hints: one line, exit 2 ------------------------------------------------------------------------
expect_error() { # name, pattern, command...
  local name=$1 pattern=$2
  shift 2
  set +e
  "$@" >"$work/bad.out" 2>"$work/bad.err"
  local code=$?
  set -e
  [[ $code -eq 2 ]] || fail "$name: exit $code, want 2: $(cat "$work/bad.err")"
  grep -q -- "$pattern" "$work/bad.err" || fail "$name: message lacks '$pattern': $(cat "$work/bad.err")"
  echo "$name: $(grep -v '^\[dealer' "$work/bad.err" | head -1)"
}
expect_error "hash_buckets 2^31" "model.hash_buckets: 2147483648 is out of range (must be between 1 and 2147483647)" \
  "$dealer" train "$config" "${small[@]}" model.hash_buckets=2147483648 run.dir="$work/bad"
expect_error "hash_buckets 0" "model.hash_buckets: 0 is out of range" \
  "$dealer" train "$config" "${small[@]}" model.hash_buckets=0 run.dir="$work/bad"
"$dealer" config keys >"$work/keys.out" # to a file: grep -q on a pipe would stop dealer with SIGPIPE (pipefail)
grep -q 'model.hash_buckets *int \[1, 2147483647\]' "$work/keys.out" || fail "config keys shows another range"
[[ ! -e $work/bad ]] || fail "a refused config created its run directory"
: >"$work/blank.ffm"
printf '\n  \n' >>"$work/blank.ffm"
expect_error "blank libffm file" "blank.ffm holds no libffm rows (2 lines, all blank)" \
  "$dealer" data convert --format libffm "$work/blank.ffm" -o "$work/blank.tfrecord" --no-progress
[[ ! -e $work/blank.tfrecord && ! -e $work/blank.tfrecord.idx ]] || fail "a refused conversion left output"
: >"$work/blank.svm"
expect_error "empty libsvm file" "blank.svm holds no libsvm rows" \
  "$dealer" data convert --format libsvm "$work/blank.svm" -o "$work/blank.tfrecord" --no-progress
: >"$work/empty.tfrecord"
expect_error "empty data.valid" "data.valid: dataset .*empty.tfrecord has no records.*point data.valid elsewhere" \
  "$dealer" train "$config" "${small[@]}" data.valid="$work/empty.tfrecord" run.dir="$work/bad"
expect_error "empty data.train" "data.train: dataset .*empty.tfrecord has no records.*point data.train elsewhere" \
  "$dealer" train "$config" "${small[@]}" data.train="$work/empty.tfrecord" run.dir="$work/bad"
expect_error "predict: empty DATA" "empty.tfrecord has no records.*point dealer predict's DATA argument elsewhere" \
  "$dealer" predict "$work/run" "$work/empty.tfrecord" -o "$work/bad.pred"
grep -q 'data.train' "$work/bad.err" && fail "predict's hint names data.train: $(cat "$work/bad.err")"
echo "ffm run records e2e: ok"

#!/usr/bin/env bash
# dealer eval: train a tiny GPT on one rank whose evaluation reads all of data.valid, then check that `dealer eval`
# on its checkpoint reports the trainer's last val_loss (same documents, same packing: the same loss up to float
# rounding), that --data and --batches work, and that bad input gives one line and exit 2.
set -euo pipefail
dealer=${DEALER_BIN:?}
src=${DEALER_SOURCE_DIR:?}
work=$(mktemp -d /tmp/dealer_e2e_eval.XXXXXX)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

head -c 120000 "$src/data/tinyshakespeare.txt" > "$work/text.txt"
"$dealer" data convert --format text --doc-split blank "$work/text.txt" -o "$work/train.tfrecord" \
  --valid-fraction 0.1 --valid-out "$work/valid.tfrecord" >/dev/null

args=(run.dir="$work/run" data.train="$work/train.tfrecord" data.valid="$work/valid.tfrecord"
      model.n_layer=2 model.n_head=2 model.n_embd=32 model.max_seq_len=64 data.seq_len=64
      train.batch_per_rank=4 train.steps=60 train.eval_every=0 train.eval_steps=0 optim.lr=3e-3
      optim.warmup_steps=5 ckpt.every=0 log.every=20 train.threads=1)
"$dealer" train "$src/configs/gpt-shakespeare.yaml" "${args[@]}" >"$work/out.txt" 2>"$work/err.txt" ||
  { cat "$work/err.txt"; fail "training exited non-zero"; }
val=$(grep -oE '"val_loss": [0-9.e+-]+' "$work/run/metrics.jsonl" | tail -1 | awk '{print $2}')
[[ -n $val ]] || fail "the trainer logged no val_loss"
ckpt="$work/run/ckpt/step_00000060.h5"
[[ -f $ckpt ]] || fail "no checkpoint at step 60"

# The run directory means its latest checkpoint; the default data is the config's data.valid.
line=$("$dealer" eval "$work/run")
echo "$line"
[[ $line == "$ckpt: loss "* ]] || fail "eval line does not start with the checkpoint path: $line"
json=$("$dealer" eval "$ckpt" --json)
echo "$json"
loss=$(grep -oE '"loss": [0-9.]+' <<<"$json" | awk '{print $2}')
ppl=$(grep -oE '"perplexity": [0-9.]+' <<<"$json" | awk '{print $2}')
echo "trainer val_loss $val, dealer eval $loss (perplexity $ppl)"
awk -v a="$loss" -v b="$val" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 1e-4 * b) }' ||
  fail "eval loss $loss differs from the trainer's val_loss $val"
awk -v l="$loss" -v p="$ppl" 'BEGIN { d = exp(l) - p; if (d < 0) d = -d; exit !(d <= 1e-3 * p) }' ||
  fail "perplexity $ppl is not exp($loss)"
awk -v l="$loss" 'BEGIN { exit !(l > 1.0 && l < 3.31) }' || fail "loss $loss is not below the unigram entropy 3.31"

# Explicit --data gives the same figure; --batches 1 reads one batch (fewer targets); other rows, same loss.
json2=$("$dealer" eval "$ckpt" --data "$work/valid.tfrecord" --json)
[[ $(grep -oE '"loss": [0-9.]+' <<<"$json2") == "\"loss\": $loss" ]] || fail "--data valid differs: $json2"
one=$("$dealer" eval "$ckpt" --batches 1 --json)
grep -q '"batches": 1,' <<<"$one" || fail "--batches 1 read more: $one"
all_targets=$(grep -oE '"targets": [0-9]+' <<<"$json" | awk '{print $2}')
one_targets=$(grep -oE '"targets": [0-9]+' <<<"$one" | awk '{print $2}')
(( one_targets > 0 && one_targets < all_targets )) || fail "--batches 1 counted $one_targets of $all_targets targets"
rows=$("$dealer" eval "$ckpt" --rows 3 --json)
loss3=$(grep -oE '"loss": [0-9.]+' <<<"$rows" | awk '{print $2}')
awk -v a="$loss3" -v b="$loss" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 1e-4 * b) }' ||
  fail "--rows 3 gives $loss3, want $loss (the batch shape does not change the loss over a whole file)"
train_loss=$("$dealer" eval "$ckpt" --data "$work/train.tfrecord" --batches 5 --json)
grep -q '"batches": 5,' <<<"$train_loss" || fail "--data train --batches 5: $train_loss"

# Bad input: one line on stderr, exit 2, nothing on stdout.
expect_bad() { # expect_bad WHAT-TO-GREP dealer-eval-args...
  local want=$1; shift
  set +e
  "$dealer" eval "$@" >"$work/bad_out.txt" 2>"$work/bad.txt"; local code=$?
  set -e
  [[ $code -eq 2 ]] || fail "dealer eval $* exited $code, want 2: $(cat "$work/bad.txt")"
  [[ $(grep -c . "$work/bad.txt") -eq 1 ]] || fail "dealer eval $*: not one line: $(cat "$work/bad.txt")"
  grep -q -- "$want" "$work/bad.txt" || fail "dealer eval $*: message lacks '$want': $(cat "$work/bad.txt")"
  [[ ! -s $work/bad_out.txt ]] || fail "dealer eval $* printed a result"
}
expect_bad "missing CKPT"
expect_bad "no such checkpoint" "$work/nothing.h5"
expect_bad "no checkpoint" "$work"
expect_bad "missing.tfrecord" "$ckpt" --data "$work/missing.tfrecord"
expect_bad "--batches needs an integer" "$ckpt" --batches 0
expect_bad "unknown option '--bogus'" "$ckpt" --bogus
expect_bad "--data needs at least one" "$ckpt" --data --json
printf 'not a checkpoint' > "$work/garbage.h5"
expect_bad "garbage.h5" "$work/garbage.h5"
head -c 3000 "$ckpt" > "$work/truncated.h5"
expect_bad "truncated.h5" "$work/truncated.h5"
echo "eval e2e: ok"

#!/usr/bin/env bash
# A whole GPT run on 2 MPI ranks: convert text, train a small model, check the loss fell well below the unigram
# entropy of the text, that checkpoints and metrics were written, that generation works from the checkpoint, that a
# finished run resumes as "nothing left to do", and that bad input fails with exit 2 and one line.
set -euo pipefail
dealer=${DEALER_BIN:?}
src=${DEALER_SOURCE_DIR:?}
work=$(mktemp -d /tmp/dealer_e2e_gpt.XXXXXX)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

head -c 200000 "$src/data/tinyshakespeare.txt" > "$work/text.txt"
"$dealer" data convert --format text "$work/text.txt" -o "$work/train.tfrecord" \
  --valid-fraction 0.1 --valid-out "$work/valid.tfrecord" >/dev/null

args=(run.dir="$work/run" data.train="$work/train.tfrecord" data.valid="$work/valid.tfrecord"
      model.n_layer=2 model.n_head=2 model.n_embd=48 model.max_seq_len=64 data.seq_len=64
      train.batch_per_rank=4 train.steps=300 train.eval_every=150 train.eval_steps=4 optim.lr=3e-3
      optim.warmup_steps=5 ckpt.every=150 log.every=50 train.threads=1)
mpirun -np 2 --oversubscribe --bind-to none "$dealer" train "$src/configs/gpt-shakespeare.yaml" "${args[@]}" \
  >"$work/out.txt" 2>"$work/err.txt" || { cat "$work/err.txt"; fail "training exited non-zero"; }
cat "$work/out.txt"
grep -q "activation memory per rank" "$work/err.txt" || fail "no activation memory line at start-up"
first=$(grep -m1 -oE 'loss [0-9.]+' "$work/out.txt" | awk '{print $2}')
val=$(grep 'val_loss' "$work/out.txt" | tail -1 | grep -oE 'val_loss [0-9.]+' | awk '{print $2}')
echo "first loss $first, final val_loss $val"
awk -v f="$first" 'BEGIN { exit !(f > 5.3 && f < 5.8) }' || fail "first loss $first is not near ln 256 = 5.55"
# Unigram entropy of Shakespeare's bytes is 3.31 nats: below 3.0 needs context.
awk -v v="$val" 'BEGIN { exit !(v < 3.0) }' || fail "val_loss $val not below 3.0"
[[ -f $work/run/ckpt/step_00000300.h5 && -f $work/run/ckpt/step_00000150.h5 ]] || fail "checkpoints missing"
grep -qx "step_00000300.h5" "$work/run/ckpt/latest" || fail "latest does not name step 300"
[[ $(grep -c '"loss"' "$work/run/metrics.jsonl") -eq 300 ]] || fail "metrics.jsonl should hold 300 step records"
grep -q '"val_loss"' "$work/run/metrics.jsonl" || fail "metrics.jsonl has no val_loss"

text=$("$dealer" generate "$work/run" --prompt "KING" --tokens 40 --seed 7)
[[ ${#text} -ge 44 ]] || fail "generate produced too little: '$text'"
[[ $("$dealer" generate "$work/run" --prompt "KING" --tokens 40 --seed 7) == "$text" ]] || fail "same seed, other text"

# Resuming a finished run trains nothing more and keeps the step.
mpirun -np 2 --oversubscribe --bind-to none "$dealer" train "$src/configs/gpt-shakespeare.yaml" "${args[@]}" \
  >"$work/out2.txt" 2>"$work/err2.txt" || { cat "$work/err2.txt"; fail "resume exited non-zero"; }
grep -q "resumed from .*step_00000300.h5 at step 300" "$work/err2.txt" || fail "did not resume from step 300"

# Bad input: one line, exit 2, on every rank count.
set +e
"$dealer" train "$src/configs/gpt-shakespeare.yaml" "${args[@]}" optim.lrr=1 2>"$work/bad.txt"; code=$?
set -e
[[ $code -eq 2 ]] || fail "unknown override exited $code, want 2"
grep -q "unknown key 'lrr' in section optim (did you mean 'lr'?)" "$work/bad.txt" || fail "message: $(cat "$work/bad.txt")"
set +e
"$dealer" train "$src/configs/gpt-shakespeare.yaml" "${args[@]}" data.train="$work/missing.tfrecord" \
  2>"$work/bad2.txt"; code=$?
set -e
[[ $code -eq 2 ]] || fail "missing data file exited $code, want 2: $(cat "$work/bad2.txt")"
grep -q "missing.tfrecord" "$work/bad2.txt" || fail "missing file not named: $(cat "$work/bad2.txt")"
[[ $(grep -c . "$work/bad2.txt") -eq 1 ]] || fail "missing file error is not one line: $(cat "$work/bad2.txt")"
echo "gpt e2e: ok"

#!/usr/bin/env bash
# configs/dpo-hf.yaml on the tiny Hugging Face fixture (tests/fixtures/gpt2-tiny): DPO starts its policy and its
# frozen reference from the model directory and learns the committed synthetic preferences (chosen = a line's real
# next words, rejected = the same words shuffled): held-out reward accuracy must rise well above chance. Also: the
# precomputed reference works from a model directory too, and the tuned policy exports back to a directory that
# imports to the same weights.
#
# Threshold: 80 held-out pairs; a policy that learned nothing scores 0.5 ± 0.056 (binomial), so requiring 0.7
# (3.6 standard deviations) lets chance pass with p < 0.02%; this run reaches about 0.87 at step 100. The held-out DPO
# loss must fall below ln 2 = 0.693 (its value when the policy is the reference).
set -euo pipefail
dealer=${DEALER_BIN:?}
src=${DEALER_SOURCE_DIR:?}
fixture="$src/tests/fixtures/gpt2-tiny"
work=$(mktemp -d /tmp/dealer_e2e_dpo_hf.XXXXXX)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# The fixture's pairs as records, in the fixture model's own BPE vocabulary.
for part in pairs pairs_valid; do
  "$dealer" data convert --format jsonl-pairs --tokenizer "$fixture/tokenizer.json" "$fixture/$part.jsonl" \
    -o "$work/$part.tfrecord" --no-progress >/dev/null
done
args=(run.dir="$work/run" device=cpu model.init_from="$fixture" data.tokenizer="$fixture/tokenizer.json" model.vocab_size=512 model.n_layer=2 model.n_head=4
      model.n_embd=64 model.max_seq_len=64 model.checkpoint=none data.seq_len=64 data.train="$work/pairs.tfrecord"
      data.valid="$work/pairs_valid.tfrecord" optim.lr=1e-3 optim.warmup_steps=5 dpo.beta=0.5 train.steps=100
      train.eval_every=50 train.threads=2 log.every=50 ckpt.every=0 log.tensorboard=false)
"$dealer" train "$src/configs/dpo-hf.yaml" "${args[@]}" >"$work/out.txt" 2>"$work/err.txt" ||
  { cat "$work/err.txt"; fail "DPO from the Hugging Face directory failed"; }
grep "val_loss" "$work/out.txt"
acc=$(grep -oE '"eval/rewards/accuracy": [0-9.e+-]+' "$work/run/metrics.jsonl" | tail -1 | awk '{print $2}')
loss=$(grep -oE '"val_loss": [0-9.e+-]+' "$work/run/metrics.jsonl" | tail -1 | awk '{print $2}')
[[ -n $acc && -n $loss ]] || fail "no held-out figures in metrics.jsonl"
echo "held-out reward accuracy $acc, DPO loss $loss"
awk -v a="$acc" 'BEGIN { exit !(a >= 0.7) }' || fail "held-out reward accuracy $acc is not above chance (0.7)"
awk -v l="$loss" 'BEGIN { exit !(l < 0.69) }' || fail "held-out DPO loss $loss did not fall below ln 2"

# The tuned policy goes back out as a Hugging Face directory and in again unchanged.
"$dealer" ckpt export "$work/run" --format hf -o "$work/hf" --tokenizer "$fixture/tokenizer.json" >/dev/null
"$dealer" ckpt import "$work/hf" -o "$work/back.h5" >/dev/null
# The run's own weights, through dealer's safetensors export (dealer names), imported the same way: equal bits.
"$dealer" ckpt export "$work/run" --format safetensors -o "$work/run.safetensors" >/dev/null
"$dealer" ckpt import "$work/run.safetensors" -o "$work/run_weights.h5" >/dev/null
"$dealer" ckpt diff "$work/back.h5" "$work/run_weights.h5" --tol 0 >/dev/null ||
  fail "the exported policy imports to other weights"

# The precomputed reference from a model directory: the file records it, and a run with it starts.
"$dealer" dpo precompute-ref "$src/configs/dpo-hf.yaml" "${args[@]}" dpo.reference_file="$work/ref.h5" \
  >/dev/null 2>"$work/ref.err" || { cat "$work/ref.err"; fail "precompute-ref from the directory failed"; }
"$dealer" train "$src/configs/dpo-hf.yaml" "${args[@]}" run.dir="$work/run2" dpo.reference=precomputed \
  dpo.reference_file="$work/ref.h5" train.steps=3 train.eval_every=3 >"$work/out2.txt" 2>"$work/err2.txt" ||
  { cat "$work/err2.txt"; fail "DPO with the precomputed reference of a model directory failed"; }
echo "PASS"

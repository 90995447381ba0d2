#!/usr/bin/env bash
# DPO end to end on 2 MPI ranks: train a tiny GPT on Shakespeare, make preference pairs from the same text (dealer
# data make-pairs), tune the GPT with DPO and check that held-out reward accuracy rises well above 0.5 while the
# policy's log-prob of the chosen answers does not collapse; check that a precomputed reference (dealer dpo
# precompute-ref) trains exactly like the frozen reference model; and that bad input (a policy of another shape, an
# over-long pair under data.overlong: error, a reference file made with other settings, label smoothing with ipo)
# fails with exit 2 and one clear line.
set -euo pipefail
dealer=${DEALER_BIN:?}
src=${DEALER_SOURCE_DIR:?}
work=$(mktemp -d /tmp/dealer_e2e_dpo.XXXXXX)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
run2() { mpirun -np 2 --oversubscribe --bind-to none "$dealer" "$@"; }
# The last value of a metric in a metrics.jsonl file (eval records hold eval/... keys).
last_metric() { grep -oE "\"$2\": -?[0-9.e+-]+" "$1" | tail -1 | awk '{print $2}'; }
first_metric() { grep -oE "\"$2\": -?[0-9.e+-]+" "$1" | head -1 | awk '{print $2}'; }

head -c 300000 "$src/data/tinyshakespeare.txt" > "$work/text.txt"

# 1. A tiny GPT: 2 layers, 48 wide, rows of 96 bytes.
"$dealer" data convert --format text "$work/text.txt" -o "$work/train.tfrecord" \
  --valid-fraction 0.1 --valid-out "$work/valid.tfrecord" --no-progress >/dev/null
shape=(model.n_layer=2 model.n_head=2 model.n_embd=48 model.max_seq_len=96 data.seq_len=96)
run2 train "$src/configs/gpt-shakespeare.yaml" "${shape[@]}" run.dir="$work/gpt" data.train="$work/train.tfrecord" \
  data.valid="$work/valid.tfrecord" train.batch_per_rank=4 train.steps=250 train.eval_every=0 train.eval_steps=4 \
  optim.lr=3e-3 optim.warmup_steps=5 ckpt.every=0 log.every=50 train.threads=1 \
  >"$work/gpt.txt" 2>"$work/gpt.err" || { cat "$work/gpt.err"; fail "gpt training exited non-zero"; }
grep -q "val_loss" "$work/gpt.txt" || fail "the gpt run has no val_loss"

# 2. Pairs from the same text: prompt = speaker + opening, chosen = true continuation, rejected = shuffled words.
"$dealer" data make-pairs "$work/text.txt" -o "$work/pairs.tfrecord" --valid-out "$work/pairs-valid.tfrecord" \
  --valid-fraction 0.15 --prompt-bytes 24 --response-bytes 40 >"$work/pairs.txt" || fail "make-pairs failed"
cat "$work/pairs.txt"
"$dealer" data stat "$work/pairs-valid.tfrecord" | grep -q "kind: preference pairs" || fail "valid file holds no pairs"

dpo=("$src/configs/dpo-shakespeare.yaml" "${shape[@]}" model.init_from="$work/gpt"
     data.train="$work/pairs.tfrecord" data.valid="$work/pairs-valid.tfrecord" train.batch_per_rank=4
     train.eval_steps=0 dpo.beta=0.5 log.every=20 ckpt.every=0 train.threads=1)

# 3. Frozen reference vs precomputed reference: the same losses and metrics step by step.
"$dealer" dpo precompute-ref "${dpo[@]}" --out "$work/ref.h5" >"$work/pre.txt" 2>&1 \
  || { cat "$work/pre.txt"; fail "precompute-ref failed"; }
grep -q "wrote reference log-probs of [0-9]* data.train pairs and [0-9]* data.valid pairs" "$work/pre.txt" \
  || fail "precompute-ref summary: $(cat "$work/pre.txt")"
short=(train.steps=12 train.eval_every=6 optim.schedule=constant optim.warmup_steps=0 optim.lr=1e-4)
run2 train "${dpo[@]}" "${short[@]}" run.dir="$work/model-ref" >"$work/a.txt" 2>&1 \
  || { cat "$work/a.txt"; fail "DPO with a frozen reference model exited non-zero"; }
run2 train "${dpo[@]}" "${short[@]}" run.dir="$work/pre-ref" dpo.reference=precomputed \
  dpo.reference_file="$work/ref.h5" >"$work/b.txt" 2>&1 || { cat "$work/b.txt"; fail "precomputed DPO exited non-zero"; }
grep -q "activation memory" "$work/b.txt" || fail "no start-up lines"
# Not bit for bit: precompute-ref batches the pairs otherwise than training does, so the reference log-probs come
# from other matmul shapes (BLAS blocks them otherwise: ~1e-7 relative on a log-prob of ~100 nats). Over 12 steps at
# lr 1e-4 that stays near 1e-5 relative, so loss, margin and log-probs are compared to 1e-3; a wrong reference (another
# pair's log-probs, a shifted token) moves them by whole nats. Accuracy counts margins above 0, a step function: at
# step 1 policy = reference, so every margin is exactly 0 with the frozen model and rounding noise (~1e-5 nats) with
# the precomputed one, and the tie may break either way; later a pair may still sit within that noise of 0. So
# accuracy is compared from step 2 and may differ by one of the step's 8 pairs (2 ranks x 4); the margins themselves
# are held to 1e-3 above.
for key in loss rewards/accuracy rewards/margin logps/chosen; do
  paste <(grep -oE "\"$key\": -?[0-9.e+-]+" "$work/model-ref/metrics.jsonl" | awk '{print $2}') \
        <(grep -oE "\"$key\": -?[0-9.e+-]+" "$work/pre-ref/metrics.jsonl" | awk '{print $2}') |
    awk -v k="$key" '{ d = $1 - $2; if (d < 0) d = -d; s = ($1 < 0 ? -$1 : $1);
                       if (k == "rewards/accuracy") { if (NR > 1 && d > 0.125 + 1e-9) bad_line = 1 }
                       else if (d > 1e-3 * (s > 1 ? s : 1)) bad_line = 1;
                       if (bad_line) { printf "step %d %s: model %s vs precomputed %s\n", NR, k, $1, $2; bad = 1 }
                       bad_line = 0; n++ }
                     END { exit bad || n < 12 }' || fail "the precomputed reference trains differently from the frozen model"
done
# A precomputed run resumes from its checkpoint like any other (the tables are reloaded, the policy restored).
run2 train "${dpo[@]}" "${short[@]}" train.steps=14 run.dir="$work/pre-ref" dpo.reference=precomputed \
  dpo.reference_file="$work/ref.h5" >"$work/b2.txt" 2>&1 || { cat "$work/b2.txt"; fail "precomputed resume failed"; }
grep -q "resumed from .*step_00000012.h5 at step 12" "$work/b2.txt" || fail "the precomputed run did not resume"
grep -q "step     14/14" "$work/b2.txt" || fail "the resumed run did not reach step 14"
# Exact for the frozen reference: at step 1 it is the policy's weights through the same code path and shapes, so
# every margin is x - x = 0.
first_loss=$(first_metric "$work/model-ref/metrics.jsonl" loss)
first_acc=$(first_metric "$work/model-ref/metrics.jsonl" rewards/accuracy)
awk -v l="$first_loss" -v a="$first_acc" 'BEGIN { exit !(l > 0.6930 && l < 0.6932 && a == 0.5) }' \
  || fail "step 1 (policy = reference) should have loss log 2 and accuracy 0.5, got $first_loss and $first_acc"

# 4. The real run: held-out accuracy well above 0.5, chosen log-probs not collapsed.
run2 train "${dpo[@]}" run.dir="$work/dpo" train.steps=120 train.eval_every=60 optim.lr=1e-4 optim.warmup_steps=5 \
  >"$work/dpo.txt" 2>"$work/dpo.err" || { cat "$work/dpo.err"; fail "DPO training exited non-zero"; }
grep -E "val_loss" "$work/dpo.txt"
m="$work/dpo/metrics.jsonl"
acc=$(last_metric "$m" eval/rewards/accuracy)
chosen_reward=$(last_metric "$m" eval/rewards/chosen)
chosen_logp=$(last_metric "$m" eval/logps/chosen)
echo "held-out accuracy $acc, chosen reward $chosen_reward, chosen log-prob $chosen_logp"
awk -v a="$acc" 'BEGIN { exit !(a >= 0.75) }' || fail "held-out rewards/accuracy $acc is not well above 0.5"
# The chosen answers' log-prob under the policy (logps) against the reference's (logps − reward/β): within 15%.
awk -v r="$chosen_reward" -v l="$chosen_logp" 'BEGIN { ref = l - r / 0.5; exit !(l > 1.15 * ref) }' \
  || fail "the chosen log-prob collapsed: policy $chosen_logp, reward $chosen_reward"
[[ -f $work/dpo/ckpt/step_00000120.h5 ]] || fail "no final checkpoint"

# 5. Bad input: exit 2 and one line each (log.level=warn keeps the start-up lines out of the way).
dpo+=(log.level=warn)
expect_bad() { # expect_bad NAME PATTERN ARGS...
  local name=$1 pattern=$2 code
  shift 2
  set +e
  "$dealer" "$@" >"$work/$name.out" 2>"$work/$name.err"
  code=$?
  set -e
  [[ $code -eq 2 ]] || fail "$name exited $code, want 2: $(cat "$work/$name.err")"
  grep -q -- "$pattern" "$work/$name.err" || fail "$name message: $(cat "$work/$name.err")"
  [[ $(grep -c . "$work/$name.err") -eq 1 ]] || fail "$name error is not one line: $(cat "$work/$name.err")"
}
expect_bad shape "model.n_embd is 64 in this config but 48 in the checkpoint" \
  train "${dpo[@]}" run.dir="$work/bad1" model.n_embd=64 train.steps=2
expect_bad overlong "exceed data.seq_len 40 (data.overlong: error)" \
  train "${dpo[@]}" run.dir="$work/bad2" data.seq_len=40 data.overlong=error train.steps=2
expect_bad stale_ref "computed with data.seq_len 96" \
  train "${dpo[@]}" run.dir="$work/bad3" data.seq_len=64 dpo.reference=precomputed dpo.reference_file="$work/ref.h5" \
  train.steps=2
expect_bad smoothing "dpo.label_smoothing (0.1) applies only to dpo.loss sigmoid" \
  train "${dpo[@]}" run.dir="$work/bad4" dpo.loss=ipo dpo.label_smoothing=0.1
expect_bad no_ckpt "model.init_from $work/nothing does not exist" \
  train "${dpo[@]}" run.dir="$work/bad5" model.init_from="$work/nothing"
expect_bad no_ref "make it first: dealer dpo precompute-ref" \
  train "${dpo[@]}" run.dir="$work/bad6" dpo.reference=precomputed dpo.reference_file="$work/none.h5"
expect_bad make_pairs "no output file given" data make-pairs "$work/text.txt"
set +e
mpirun -np 2 --oversubscribe --bind-to none "$dealer" dpo precompute-ref "${dpo[@]}" --out "$work/two.h5" \
  >"$work/two.txt" 2>&1; code=$?
set -e
[[ $code -ne 0 && ! -e $work/two.h5 ]] || fail "precompute-ref under mpirun -np 2 should refuse (exit $code)"
grep -q "run it as a single process" "$work/two.txt" || fail "precompute-ref under mpirun: $(cat "$work/two.txt")"

# Truncating or dropping over-long pairs is counted, not an error (rows of 64 tokens: about half the pairs are longer).
for mode in truncate drop; do
  "$dealer" train "${dpo[@]}" run.dir="$work/$mode" data.seq_len=64 data.overlong=$mode train.steps=3 \
    optim.warmup_steps=0 train.eval_every=0 data.valid= >"$work/$mode.txt" 2>&1 || { cat "$work/$mode.txt"; fail "$mode run"; }
  key=data/truncated other=data/dropped
  [[ $mode == drop ]] && key=data/dropped other=data/truncated
  counted=$(first_metric "$work/$mode/metrics.jsonl" $key)
  none=$(first_metric "$work/$mode/metrics.jsonl" $other)
  awk -v c="$counted" -v n="$none" 'BEGIN { exit !(c > 0 && n == 0) }' \
    || fail "data.overlong $mode: $key is $counted and $other $none with rows of 64 tokens"
done
echo "dpo e2e: ok"

#!/usr/bin/env bash
# Pretrained weights in and out (tests/fixtures/gpt2-tiny: a random GPT2LMHeadModel saved by transformers):
#   - `dealer ckpt import` of the Hugging Face directory and of its bare model.safetensors (with --n-head) give the
#     same checkpoint and print a model section that fits it; the directory's tokenizer is recorded;
#   - `dealer generate --temperature 0` from the import gives transformers' greedy continuation;
#   - import -> export --format hf -> import is bit-identical, and exporting twice gives the same bytes;
#   - model.init_from in every accepted form (HF directory, .safetensors with GPT-2 names, dealer .h5, a run
#     directory, ckpt/latest, dealer's own safetensors export, an exported HF directory) starts from those weights:
#     the step-1 loss equals `dealer eval` of the imported checkpoint on the same first batch, and differs from a
#     random start;
#   - every bad form exits 2 with one line, before any step.
# Step-1 loss against eval: the same 8 rows of 64 tokens (no shuffle; eval packs as training does), the same
# forward code; the trainer prints the loss with 6 significant digits and eval with 7, so they can differ by 5e-7
# relative from printing alone, plus float summation order in the mean. 1e-5 relative covers both; a random start
# is 0.1 away (ln 512 = 6.24 against the fixture's 6.36).
set -euo pipefail
dealer=${DEALER_BIN:?}
src=${DEALER_SOURCE_DIR:?}
fixture="$src/tests/fixtures/gpt2-tiny"
work=$(mktemp -d /tmp/dealer_e2e_hf.XXXXXX)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# ---- import, export, import -------------------------------------------------------------------------------------
"$dealer" ckpt import "$fixture" -o "$work/tiny.h5" >"$work/import.txt" || fail "import of the HF directory failed"
cat "$work/import.txt"
for want in "kind: gpt" "vocab_size: 512" "n_layer: 2" "n_head: 4" "n_embd: 64" "positions: learned" \
    "max_seq_len: 64"; do
  grep -q "^  $want\$" "$work/import.txt" || fail "the printed model section lacks '$want'"
done
# The printed section is a config: it loads, and a run from the import needs no other model key.
sed -n '/^model:/,$p' "$work/import.txt" > "$work/model.yaml"
"$dealer" config show "$work/model.yaml" >/dev/null || fail "the printed model section is not a valid config"

grep -q "^  tokenizer: $fixture/tokenizer.json" "$work/import.txt" || fail "the directory's tokenizer is not recorded"

# Greedy generation through the imported checkpoint and the fixture's tokenizer: transformers' continuation.
python3 - "$fixture/expected.json" "$work/want.txt" <<'PY'
import json, sys
g = json.load(open(sys.argv[1]))["greedy"]
open(sys.argv[2], "w", encoding="utf-8").write(g["prompt_text"] + g["continuation_text"] + "\n")
PY
"$dealer" generate "$work/tiny.h5" --tokenizer "$fixture/tokenizer.json" --prompt $'ROMEO:\nWhat light' \
  --temperature 0 --tokens 24 >"$work/generated.txt" || fail "generate from the import failed"
cmp "$work/want.txt" "$work/generated.txt" ||
  fail "greedy generation differs from transformers': $(od -c "$work/generated.txt" | head -3)"

set +e
"$dealer" ckpt import "$fixture/model.safetensors" -o "$work/bare.h5" >/dev/null 2>"$work/bare.err"
code=$?
set -e
[[ $code -eq 2 ]] || fail "a bare safetensors file without --n-head exited $code, want 2"
grep -q "pass --n-head" "$work/bare.err" || fail "no --n-head hint: $(cat "$work/bare.err")"
"$dealer" ckpt import "$fixture/model.safetensors" --n-head 4 -o "$work/bare.h5" >/dev/null
"$dealer" ckpt diff "$work/tiny.h5" "$work/bare.h5" >/dev/null || fail "the bare file imports other weights"

"$dealer" ckpt export "$work/tiny.h5" --format hf -o "$work/hf1" >/dev/null
[[ -f $work/hf1/config.json && -f $work/hf1/model.safetensors ]] || fail "export --format hf wrote no directory"
[[ ! -e $work/hf1/tokenizer.json ]] || fail "a tokenizer.json appeared without one to copy"
"$dealer" ckpt import "$work/hf1" -o "$work/tiny2.h5" >/dev/null
"$dealer" ckpt diff "$work/tiny.h5" "$work/tiny2.h5" --tol 0 >/dev/null || fail "import -> export -> import changed bits"
"$dealer" ckpt export "$work/tiny2.h5" --format hf -o "$work/hf2" --tokenizer "$fixture/tokenizer.json" >/dev/null
cmp "$work/hf1/model.safetensors" "$work/hf2/model.safetensors" || fail "two exports of the same weights differ"
cmp "$fixture/tokenizer.json" "$work/hf2/tokenizer.json" || fail "the tokenizer was not copied as is"
grep -q '"eos_token_id": 0' "$work/hf2/config.json" || fail "eos_token_id is not the tokenizer's <|endoftext|> (0)"
# A run directory's own tokenizer.json goes along without --tokenizer.
mkdir -p "$work/run/ckpt"
cp "$work/tiny.h5" "$work/run/ckpt/step_00000000.h5"
echo step_00000000.h5 > "$work/run/ckpt/latest"
cp "$fixture/tokenizer.json" "$work/run/tokenizer.json"
"$dealer" ckpt export "$work/run" --format hf -o "$work/hf3" >/dev/null
cmp "$fixture/tokenizer.json" "$work/hf3/tokenizer.json" || fail "the run's tokenizer.json was not exported"
"$dealer" ckpt export "$work/tiny.h5" --format safetensors -o "$work/dealer.safetensors" >/dev/null

# ---- init_from in every form -------------------------------------------------------------------------------------
head -c 3000 "$src/data/tinyshakespeare.txt" > "$work/text.txt"
"$dealer" data convert --format text --doc-split blank --tokenizer "$fixture/tokenizer.json" "$work/text.txt" \
  -o "$work/train.tfrecord" --no-progress >/dev/null
args=(data.train="$work/train.tfrecord" data.valid= data.shuffle=false data.seq_len=64 model.vocab_size=512
      data.tokenizer="$fixture/tokenizer.json"
      model.n_layer=2 model.n_head=4 model.n_embd=64 model.max_seq_len=64 model.positions=learned
      train.steps=1 train.batch_per_rank=8 ckpt.every=0 train.threads=1 log.tensorboard=false)
want=$("$dealer" eval "$work/tiny.h5" --data "$work/train.tfrecord" --batches 1 --rows 8 --json \
         --tokenizer "$fixture/tokenizer.json" |
       grep -oE '"loss": [0-9.]+' | awk '{print $2}')
[[ -n $want ]] || fail "dealer eval printed no loss"
step1() { # step1 RUN_NAME overrides... -> the loss of step 1
  "$dealer" train "$src/configs/gpt-shakespeare.yaml" "${args[@]}" run.dir="$work/$1" "${@:2}" \
    >"$work/$1.out" 2>"$work/$1.err" || { cat "$work/$1.err"; fail "$1: training failed"; }
  grep -oE '"loss": [0-9.e+-]+' "$work/$1/metrics.jsonl" | head -1 | awk '{print $2}'
}
random=$(step1 random)
awk -v a="$random" -v b="$want" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d > 1e-2) }' ||
  fail "a random start gives $random, too close to the imported weights' $want to tell them apart"
for form in "$fixture" "$fixture/model.safetensors" "$work/tiny.h5" "$work/run" "$work/run/ckpt/latest" \
    "$work/run/ckpt" "$work/dealer.safetensors" "$work/hf1"; do
  name=run_$(echo "$form" | md5sum | cut -c1-8)
  got=$(step1 "$name" model.init_from="$form")
  echo "init_from $form: step-1 loss $got (dealer eval of the import: $want)"
  awk -v a="$got" -v b="$want" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 1e-5 * b) }' ||
    fail "init_from $form: step-1 loss $got, want $want"
done

# ---- bad forms: exit 2, one line, no step -----------------------------------------------------------------------
mkdir -p "$work/empty" "$work/half"
cp "$fixture/model.safetensors" "$work/half/"
printf 'not hdf5' > "$work/junk.h5"
printf 'not safetensors' > "$work/junk.safetensors"
expect_bad() { # expect_bad NAME WANT-IN-MESSAGE overrides...
  local name=$1 want=$2
  shift 2
  set +e
  "$dealer" train "$src/configs/gpt-shakespeare.yaml" "${args[@]}" run.dir="$work/bad_$name" "$@" \
    >"$work/$name.out" 2>"$work/$name.err"
  local code=$?
  set -e
  [[ $code -eq 2 ]] || { cat "$work/$name.err"; fail "$name: exit $code, want 2"; }
  grep -q -- "$want" "$work/$name.err" || fail "$name: message lacks '$want': $(cat "$work/$name.err")"
  [[ $(grep -c . "$work/$name.err") -eq 1 ]] || fail "$name: error is not one line: $(cat "$work/$name.err")"
  ! grep -q "^step " "$work/$name.out" || fail "$name: a step ran"
  [[ ! -s $work/bad_$name/metrics.jsonl ]] || fail "$name: metrics were written"
}
expect_bad missing "model.init_from $work/nothing does not exist" model.init_from="$work/nothing"
expect_bad empty_dir "without a checkpoint" model.init_from="$work/empty"
expect_bad no_config "without config.json" model.init_from="$work/half"
expect_bad width "model.n_embd is 32 in this config but 64 in the Hugging Face model directory" \
  model.init_from="$fixture" model.n_embd=32
expect_bad heads "model.n_head is 8 in this config but 4 in the Hugging Face model directory $fixture/config.json" \
  model.init_from="$fixture" model.n_head=8
expect_bad layers "model.n_layer is 3 in this config but 2 in the checkpoint" model.init_from="$work/tiny.h5" \
  model.n_layer=3
expect_bad vocab "model.vocab_size is 1024 in this config but 512 in the safetensors file" \
  model.init_from="$fixture/model.safetensors" model.vocab_size=1024
expect_bad rope "model.positions is rope in this config but learned" model.init_from="$fixture" \
  model.positions=rope
expect_bad junk_h5 "junk.h5" model.init_from="$work/junk.h5"
expect_bad junk_st "junk.safetensors" model.init_from="$work/junk.safetensors"
expect_bad ffm "model.init_from applies to model.kind gpt and dpo, not ffm" model.kind=ffm data.tokenizer=bytes \
  model.init_from="$work/tiny.h5"

# ckpt import / export misuse: exit 2, one line.
bad_cli() { # bad_cli NAME WANT dealer-args...
  local name=$1 want=$2
  shift 2
  set +e
  "$dealer" "$@" >"$work/$name.out" 2>"$work/$name.err"
  local code=$?
  set -e
  [[ $code -eq 2 ]] || { cat "$work/$name.err"; fail "$name: exit $code, want 2"; }
  grep -q -- "$want" "$work/$name.err" || fail "$name: message lacks '$want': $(cat "$work/$name.err")"
}
bad_cli import_missing "does not exist" ckpt import "$work/nothing" -o "$work/x.h5"
bad_cli import_no_out "needs -o" ckpt import "$fixture"
bad_cli import_heads "disagrees" ckpt import "$fixture" --n-head 8 -o "$work/x.h5"
bad_cli export_format "unknown --format 'onnx'" ckpt export "$work/tiny.h5" --format onnx -o "$work/x"
bad_cli export_tok "--tokenizer goes with --format hf" ckpt export "$work/tiny.h5" --format safetensors \
  --tokenizer "$fixture/tokenizer.json" -o "$work/x"
[[ ! -e $work/x.h5 && ! -e $work/x ]] || fail "a failed import or export left output behind"
echo "PASS"

#!/usr/bin/env bash
# Checkpoints as users see them: a 2-rank run writes compressed checkpoints collectively; h5ls and h5dump read them;
# `dealer ckpt ls/show/diff/export` work and exit as documented; and damaged or mismatched checkpoints (truncated
# file, flipped byte inside a dataset, another model shape) each give one clear line naming the file and the tensor
# and exit 2, both from `dealer ckpt show` and when `dealer train` resumes from them.
set -euo pipefail
dealer=${DEALER_BIN:?}
src=${DEALER_SOURCE_DIR:?}
work=$(mktemp -d /tmp/dealer_e2e_ckpt_cli.XXXXXX)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
# Runs a command expecting exit code $1; its stdout+stderr go to $work/out.
expect_exit() {
  local want=$1
  shift
  set +e
  "$@" >"$work/out" 2>&1
  local code=$?
  set -e
  [[ $code -eq $want ]] || { cat "$work/out"; fail "'$*' exited $code, want $want"; }
}

head -c 60000 "$src/data/tinyshakespeare.txt" > "$work/text.txt"
"$dealer" data convert --format text "$work/text.txt" -o "$work/train.tfrecord" --no-progress >/dev/null
args=(data.train="$work/train.tfrecord" data.valid= model.n_layer=1 model.n_head=2 model.n_embd=16
      model.max_seq_len=16 data.seq_len=16 train.batch_per_rank=2 train.steps=6 optim.warmup_steps=2
      train.eval_every=0 log.every=1000 train.threads=1 ckpt.every=3 ckpt.keep=5 ckpt.compress=true)
run=$work/run
mpirun -np 2 --oversubscribe --bind-to none "$dealer" train "$src/configs/gpt-shakespeare.yaml" "${args[@]}" \
  run.dir="$run" >"$work/train.out" 2>&1 || { cat "$work/train.out"; fail "training failed"; }
final=$run/ckpt/step_00000006.h5
early=$run/ckpt/step_00000003.h5
[[ -f $final && -f $early ]] || fail "checkpoints missing: $(ls "$run/ckpt")"

# HDF5's own tools read the file: groups, datasets with true shapes, the root attributes, a dataset's values.
h5ls -r "$final" >"$work/h5ls.out" || fail "h5ls cannot read $final"
grep -qE '^/model/wte +Dataset \{256, 16\}' "$work/h5ls.out" || { cat "$work/h5ls.out"; fail "h5ls: no /model/wte {256, 16}"; }
grep -qE '^/optimizer/adam_v/h.0.attn.qkv.weight +Dataset \{48, 16\}' "$work/h5ls.out" || fail "h5ls: no adam_v state"
h5dump -A "$final" >"$work/h5dump.out" || fail "h5dump cannot read $final"
for attr in format_version dealer_version step epoch tokens_seen samples_seen optimizer_step bad_steps seed rng \
            world_size zero_stage model_kind config crc32c; do
  grep -q "ATTRIBUTE \"$attr\"" "$work/h5dump.out" || fail "h5dump -A: no attribute $attr"
done
h5dump -a /world_size "$final" | grep -q '(0): 2' || fail "world_size attribute is not 2"
h5dump -d /model/lnf.weight "$final" | grep -q 'DATASPACE  SIMPLE { ( 16 ) / ( 16 ) }' || fail "h5dump -d lnf.weight"

# ls: every step with size and date, latest marked; also a single file.
expect_exit 0 "$dealer" ckpt ls "$run"
grep -q 'step_00000003.h5 .*step 3, gpt, 2 ranks' "$work/out" || { cat "$work/out"; fail "ls: no step 3 line"; }
grep -q 'step_00000006.h5 .*<- latest' "$work/out" || { cat "$work/out"; fail "ls: latest not marked"; }
# A temporary a dead writer left (core/fs.h names them step_N.h5.tmp.HOST-PID-XXXXXX) shows as incomplete.
touch "$run/ckpt/step_00000007.h5.tmp.somehost-12345-AbCdEf"
expect_exit 0 "$dealer" ckpt ls "$run"
grep -q 'step_00000007.h5.tmp.somehost-12345-AbCdEf *(incomplete' "$work/out" ||
  { cat "$work/out"; fail "ls: a leftover temporary is not shown as incomplete"; }
rm "$run/ckpt/step_00000007.h5.tmp.somehost-12345-AbCdEf"
expect_exit 0 "$dealer" ckpt ls "$final"
expect_exit 2 "$dealer" ckpt ls "$work/nothing"

# show: meta, cursors, config, every tensor with its CRC status and statistics.
expect_exit 0 "$dealer" ckpt show "$run" --stats
grep -q '^step            6$' "$work/out" || fail "show: no step 6"
grep -q '^world_size      2$' "$work/out" || fail "show: no world size"
grep -q 'rank 1: epoch 0, 6 batches handed out' "$work/out" || { cat "$work/out"; fail "show: rank 1's cursor"; }
grep -q 'n_embd: 16' "$work/out" || fail "show: no config"
grep -qE '/model/wte +float32 +\[256, 16\] .* ok ' "$work/out" || { cat "$work/out"; fail "show: wte line"; }
! grep -q MISMATCH "$work/out" || fail "show: a CRC mismatch in an intact file"

# diff: a file against itself is bit-identical; two steps differ (exit 1) unless the tolerance covers them.
expect_exit 0 "$dealer" ckpt diff "$final" "$final" --tol 0
grep -q 'bit for bit' "$work/out" || fail "diff: same file not reported bit for bit"
expect_exit 1 "$dealer" ckpt diff "$early" "$final"
grep -q '/model/wte .*DIFFERS' "$work/out" || fail "diff: wte should differ between steps 3 and 6"
expect_exit 0 "$dealer" ckpt diff "$early" "$final" --tol 1000
expect_exit 2 "$dealer" ckpt diff "$early" "$final" --tol -1

# export: a safetensors file of the model's tensors (layout checked by tests/unit/test_checkpoint.c).
expect_exit 0 "$dealer" ckpt export "$final" --format safetensors -o "$work/model.safetensors"
grep -q 'tensors, [0-9]* bytes of float32 data' "$work/out" || fail "export: no summary"
[[ $(head -c 9 "$work/model.safetensors" | tail -c 1) == "{" ]] || fail "export: header does not start with {"
expect_exit 2 "$dealer" ckpt export "$final" --format onnx -o "$work/model.onnx"
[[ ! -e $work/model.onnx ]] || fail "a refused export left a file"

resume() { "$dealer" train "$src/configs/gpt-shakespeare.yaml" "${args[@]}" run.dir="$work/resumed" "$@"; }
one_line() { [[ $(grep -c . "$work/out") -eq 1 ]] || { cat "$work/out"; fail "$1: not one line"; }; }

# A truncated file: show and resume both exit 2 naming the file.
cp "$final" "$work/truncated.h5"
truncate -s $(($(stat -c %s "$final") / 2)) "$work/truncated.h5"
expect_exit 2 "$dealer" ckpt show "$work/truncated.h5"
grep -q "truncated.h5: not a readable HDF5 checkpoint" "$work/out" || { cat "$work/out"; fail "truncated: message"; }
expect_exit 2 resume train.resume="$work/truncated.h5"
grep -q "truncated.h5" "$work/out" || { cat "$work/out"; fail "resume from truncated: file not named"; }
one_line "resume from a truncated file"

# A flipped byte inside a dataset's data (an uncompressed checkpoint, so the byte is raw float data): found by
# searching the file for 16 bytes of the tensor as h5dump dumps them.
"$dealer" train "$src/configs/gpt-shakespeare.yaml" "${args[@]}" ckpt.compress=false run.dir="$work/plain" \
  >/dev/null 2>&1 || fail "uncompressed run failed"
cp "$work/plain/ckpt/step_00000006.h5" "$work/flipped.h5"
h5dump -d /model/wte -b LE -o "$work/wte.bin" "$work/flipped.h5" >/dev/null
offset=
for at in 1000 2000 3000 4000 5000 6000; do
  pattern=$(od -An -tx1 -j $at -N 16 "$work/wte.bin" | tr -d ' \n' | sed 's/../\\x&/g')
  offset=$(LC_ALL=C grep -obUaP "$pattern" "$work/flipped.h5" | head -1 | cut -d: -f1 || true)
  [[ -n $offset ]] && break
done
[[ -n $offset ]] || fail "could not locate wte's bytes in the file"
echo "flipping a byte of /model/wte at file offset $((offset + 5))"
byte=$(od -An -tu1 -j $((offset + 5)) -N 1 "$work/flipped.h5" | tr -d ' ')
printf "$(printf '\\x%02x' $((byte ^ 4)))" | dd of="$work/flipped.h5" bs=1 seek=$((offset + 5)) conv=notrunc status=none
expect_exit 2 "$dealer" ckpt show "$work/flipped.h5" --tensors
grep -qE '/model/wte .*MISMATCH' "$work/out" || { cat "$work/out"; fail "show: flipped wte not flagged"; }
grep -q "flipped.h5: 1 tensor failed the CRC check (first: /model/wte)" "$work/out" || fail "show: summary line"
expect_exit 2 resume train.resume="$work/flipped.h5"
grep -q "flipped.h5: tensor /model/wte: CRC mismatch" "$work/out" || { cat "$work/out"; fail "resume: CRC message"; }
one_line "resume from a damaged file"
expect_exit 2 "$dealer" ckpt diff "$work/flipped.h5" "$final"

# Another model shape: resuming a 16-wide checkpoint into a 24-wide model names the tensor and both shapes.
expect_exit 2 resume train.resume="$final" model.n_embd=24
grep -qE "step_00000006.h5: tensor /model/[a-z0-9.]+ is float32 \[[0-9, ]+\] but the model needs float32" "$work/out" ||
  { cat "$work/out"; fail "another shape: message"; }
one_line "resume into another model shape"
# Another depth: the extra layer's tensors are missing from the checkpoint.
expect_exit 2 resume train.resume="$final" model.n_layer=2
grep -q "tensor /model/h.1.* is missing" "$work/out" || { cat "$work/out"; fail "another depth: message"; }

# The TensorBoard event file is there (its contents are checked by tests/unit/test_tensorboard.c).
ls "$run"/events.out.tfevents.* >/dev/null || fail "no TensorBoard event file in $run"
echo "ckpt cli e2e: ok"

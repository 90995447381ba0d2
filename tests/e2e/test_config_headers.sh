#!/usr/bin/env bash
# test_config_headers.sh — the launch lines printed in the header of every configs/*.yaml work as printed: each one
# is handed to launch/mpirun.sh (with --dry-run: the command it builds must train that config), and both shapes the
# headers use, `launch/mpirun.sh -np 2 dealer train CONFIG` and `launch/mpirun.sh -n 2 CONFIG`, run for real on two
# ranks with tiny step counts. The launcher used to take only CONFIG, so the first shape failed.
set -euo pipefail
dealer=${DEALER_BIN:?}
src=${DEALER_SOURCE_DIR:?}
fail() { echo "FAIL: $*" >&2; exit 1; }
work=$(mktemp -d /tmp/dealer_e2e_headers.XXXXXX)
trap 'rm -rf "$work"' EXIT
export DEALER_BIN=$dealer OMP_NUM_THREADS=1

lines=0
for config in "$src"/configs/*.yaml; do
  name=configs/$(basename "$config")
  # Header comment lines that launch something; a trailing "# ..." remark is not part of the command.
  while IFS= read -r line; do
    cmd=${line#*launch/mpirun.sh}
    cmd=${cmd%%#*}
    read -r -a words <<<"$cmd"
    out=$(cd "$src" && launch/mpirun.sh --dry-run "${words[@]}" 2>&1) || fail "$name: '$line' is refused: $out"
    grep -qF -- "$dealer train configs/" <<<"$out" || fail "$name: '$line' does not train a config: $out"
    lines=$((lines + 1))
  done < <(grep -E '^#.*launch/mpirun\.sh' "$config")
done
((lines >= 5)) || fail "found only $lines launch lines in the config headers"

# The two shapes for real: the gpt demo header's line and the dpo header's shape, shrunk to a few steps.
head -c 40000 "$src/data/tinyshakespeare.txt" >"$work/text.txt"
"$dealer" data convert --format text "$work/text.txt" -o "$work/train.tfrecord" --no-progress >/dev/null
tiny=(data.train="$work/train.tfrecord" data.valid= model.n_layer=1 model.n_head=2 model.n_embd=16
      model.max_seq_len=16 data.seq_len=16 train.batch_per_rank=2 train.steps=3 optim.warmup_steps=1
      train.eval_every=0 log.every=1000 train.threads=1 ckpt.every=0)
(cd "$src" && launch/mpirun.sh -np 2 dealer train configs/gpt-shakespeare.yaml "${tiny[@]}" run.dir="$work/a") \
  >"$work/a.out" 2>&1 || { cat "$work/a.out"; fail "launch/mpirun.sh -np 2 dealer train CONFIG failed"; }
[[ -f $work/a/ckpt/step_00000003.h5 ]] || fail "the 'dealer train CONFIG' shape wrote no checkpoint"
(cd "$src" && launch/mpirun.sh -n 2 configs/gpt-shakespeare.yaml "${tiny[@]}" run.dir="$work/b") \
  >"$work/b.out" 2>&1 || { cat "$work/b.out"; fail "launch/mpirun.sh -n 2 CONFIG failed"; }
[[ -f $work/b/ckpt/step_00000003.h5 ]] || fail "the 'CONFIG' shape wrote no checkpoint"

# Anything else where the config belongs is one line and exit 2, not an mpirun error.
set +e
out=$(cd "$src" && launch/mpirun.sh --dry-run -n 2 dealer eval configs/gpt-shakespeare.yaml 2>&1); code=$?
set -e
[[ $code -eq 2 && $out == *"only 'dealer train CONFIG'"* ]] || fail "dealer eval through the launcher: $code $out"
echo "config headers: $lines launch lines ok"

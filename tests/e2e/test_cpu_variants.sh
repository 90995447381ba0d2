#!/usr/bin/env bash
# CPU kernel variants and honest resume across machines:
#  1. `dealer --version` names the variant that runs; DEALER_CPU_VARIANT forces one, and an unknown or missing one
#     (DEALER_TEST_CPU_HIDE makes a variant read as missing on any machine) stops every command with exit 2.
#  2. A short GPT and a short FFM training give bit-identical checkpoints twice on the same variant, and agree
#     across every variant this CPU runs within the tolerance argued below.
#  3. Checkpoints record the BLAS kernel, CPU variant and thread count; resuming with a different one continues
#     with exactly one warning line naming both, and with the same ones warns of nothing.
set -euo pipefail
dealer=${DEALER_BIN:?}
src=${DEALER_SOURCE_DIR:?}
work=$(mktemp -d /tmp/dealer_e2e_cpu_variants.XXXXXX)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# ---- 1. choosing a variant ------------------------------------------------------------------------------------
"$dealer" --version >"$work/version.out"
grep -q '^cpu kernels: ' "$work/version.out" || { cat "$work/version.out"; fail "--version does not name the CPU variant"; }
built=$(sed -n 's/^cpu kernels: .*built in: \(.*\))$/\1/p' "$work/version.out")
[[ -n $built ]] || fail "--version does not list the variants built in"
echo "variants built in: $built"
supported=()
for v in $built; do
  if DEALER_CPU_VARIANT=$v "$dealer" --version >"$work/v.out" 2>&1; then
    grep -q "^cpu kernels: $v (forced by DEALER_CPU_VARIANT" "$work/v.out" || { cat "$work/v.out"; fail "DEALER_CPU_VARIANT=$v: --version names another variant"; }
    supported+=("$v")
  else
    grep -q "lacks" "$work/v.out" || { cat "$work/v.out"; fail "DEALER_CPU_VARIANT=$v failed without saying what the CPU lacks"; }
  fi
done
echo "variants this CPU runs: ${supported[*]}"
((${#supported[@]} >= 1)) || fail "no variant runs on this CPU, yet dealer --version worked"

set +e
DEALER_CPU_VARIANT=sse9 "$dealer" config keys >"$work/bad.out" 2>&1
code=$?
set -e
[[ $code -eq 2 ]] || { cat "$work/bad.out"; fail "DEALER_CPU_VARIANT=sse9 exited $code, want 2"; }
grep -q "DEALER_CPU_VARIANT=sse9" "$work/bad.out" || { cat "$work/bad.out"; fail "the error does not name DEALER_CPU_VARIANT=sse9"; }
[[ $(wc -l <"$work/bad.out") -eq 1 ]] || { cat "$work/bad.out"; fail "a bad DEALER_CPU_VARIANT takes more than one line"; }

if [[ " $built " == *" avx512 "* ]]; then
  # As on a CPU without AVX-512: auto falls back to avx2 (or lower), forcing avx512 is an error.
  DEALER_TEST_CPU_HIDE=avx512 "$dealer" --version >"$work/hide.out"
  grep -q '^cpu kernels: avx2 ' "$work/hide.out" || grep -q '^cpu kernels: baseline ' "$work/hide.out" ||
    { cat "$work/hide.out"; fail "with AVX-512 hidden, auto did not fall back to a lower variant"; }
  set +e
  DEALER_TEST_CPU_HIDE=avx512 DEALER_CPU_VARIANT=avx512 "$dealer" --version >"$work/hide.out" 2>&1
  code=$?
  set -e
  [[ $code -eq 2 ]] || { cat "$work/hide.out"; fail "forcing a variant the CPU lacks exited $code, want 2"; }
  grep -q "CPU variant 'avx512' needs AVX-512" "$work/hide.out" || { cat "$work/hide.out"; fail "unclear error for a missing variant"; }
fi

# ---- 2. training on every variant -------------------------------------------------------------------------------
head -c 40000 "$src/data/tinyshakespeare.txt" >"$work/text.txt"
"$dealer" data convert --format text "$work/text.txt" -o "$work/text.tfrecord" --no-progress >/dev/null
gpt_args=(data.train="$work/text.tfrecord" data.valid= model.n_layer=2 model.n_head=2 model.n_embd=32
          model.max_seq_len=64 data.seq_len=64 train.batch_per_rank=2 train.steps=8 optim.warmup_steps=2
          train.eval_every=0 log.every=1000 train.threads=2 ckpt.every=4)
gpt() { "$dealer" train "$src/configs/gpt-shakespeare.yaml" "${gpt_args[@]}" "$@"; }

head -n 800 "$src/data/criteo/tr1599.ffm" >"$work/ffm.txt"
"$dealer" data convert --format libffm "$work/ffm.txt" -o "$work/ffm.tfrecord" --no-progress >/dev/null
# One thread: FFM's fused training is Hogwild (timing-dependent) with more.
ffm_args=(data.train="$work/ffm.tfrecord" data.valid= train.epochs=2 train.threads=1 log.every=1000)
ffm() { "$dealer" train "$src/configs/ffm-criteo.yaml" "${ffm_args[@]}" "$@"; }

for v in "${supported[@]}"; do
  for rep in 1 2; do
    DEALER_CPU_VARIANT=$v gpt run.dir="$work/gpt_${v}_$rep" >"$work/train.out" 2>&1 || { cat "$work/train.out"; fail "gpt on $v failed"; }
    DEALER_CPU_VARIANT=$v ffm run.dir="$work/ffm_${v}_$rep" >"$work/train.out" 2>&1 || { cat "$work/train.out"; fail "ffm on $v failed"; }
  done
  # Same variant, same shapes, same threads: the same bits.
  "$dealer" ckpt diff "$work/gpt_${v}_1" "$work/gpt_${v}_2" --tol 0 >"$work/diff.out" 2>&1 ||
    { cat "$work/diff.out"; fail "two gpt runs on $v differ"; }
  "$dealer" ckpt diff "$work/ffm_${v}_1" "$work/ffm_${v}_2" --tol 0 >"$work/diff.out" 2>&1 ||
    { cat "$work/diff.out"; fail "two ffm runs on $v differ"; }
  echo "variant $v: repeats bit for bit"
done

# Across variants (dealer ckpt diff --tol bounds max |a-b| per tensor). The kernels differ by rounding only
# (tests/unit/test_cpu_variants.c: about 1e-7 relative), and AdamW turns a relative gradient difference δ into an
# update difference of about lr·δ ≈ 2e-3·1e-7 per step. The exception are parameters whose gradient is zero in exact
# arithmetic (the key biases: softmax ignores a shift), which see pure rounding noise g; AdamW moves them by
# lr·g/(|g| + eps), and with g ≈ 1e-12 against eps = 1e-8 that stays near 1e-6 over 8 steps. Measured between
# baseline and avx512: 8e-7 at most over all tensors (qkv bias, MLP weights). A real kernel bug changes the gradients
# at order 1 and so the updates at
# order lr = 2e-3 per step; 1e-4 sits between the two with two orders of magnitude on either side. The FFM
# kernels fold their lanes in one fixed order in every variant, so their difference is measured as 0.
base=${supported[0]}
for v in "${supported[@]:1}"; do
  "$dealer" ckpt diff "$work/gpt_${base}_1" "$work/gpt_${v}_1" --tol 1e-4 >"$work/diff.out" 2>&1 ||
    { cat "$work/diff.out"; fail "gpt on $v differs from $base by more than rounding"; }
  "$dealer" ckpt diff "$work/ffm_${base}_1" "$work/ffm_${v}_1" --tol 1e-4 >"$work/diff.out" 2>&1 ||
    { cat "$work/diff.out"; fail "ffm on $v differs from $base by more than rounding"; }
  echo "variant $v: agrees with $base within 1e-4"
done

# ---- 3. resume on another machine --------------------------------------------------------------------------------
best=${supported[-1]}
first=$work/gpt_${best}_1/ckpt/step_00000004.h5
"$dealer" ckpt show "$first" >"$work/show.out"
grep -q "^written with    BLAS kernel [A-Za-z0-9]*, CPU variant $best, 2 threads" "$work/show.out" ||
  { cat "$work/show.out"; fail "the checkpoint does not record BLAS kernel, CPU variant and threads"; }
blas=$(sed -n 's/^written with    BLAS kernel \([A-Za-z0-9]*\),.*/\1/p' "$work/show.out")

# resume_from DIR ENV... [-- OVERRIDES...]: resumes the best variant's run from its step-4 checkpoint in DIR with
# the given environment and config overrides; prints the warning lines of the resumed run.
resume_from() {
  local dir=$1
  shift
  local envs=() overrides=()
  while (($#)) && [[ $1 != -- ]]; do envs+=("$1"); shift; done
  if (($#)); then shift; overrides=("$@"); fi
  rm -rf "$dir"
  mkdir -p "$dir/ckpt"
  cp "$first" "$dir/ckpt/"
  echo step_00000004.h5 >"$dir/ckpt/latest"
  env "${envs[@]}" "$dealer" train "$src/configs/gpt-shakespeare.yaml" "${gpt_args[@]}" "${overrides[@]}" \
    run.dir="$dir" >"$work/resume.out" 2>&1 || { cat "$work/resume.out" >&2; fail "resume with ${envs[*]} ${overrides[*]} failed"; }
  grep -q "resumed from .*step_00000004.h5" "$work/resume.out" || { cat "$work/resume.out" >&2; fail "did not resume"; }
  grep -i "warn" "$work/resume.out" || true
}
# want_one_warning WARNINGS WRITTEN NOW: exactly one line, naming both settings and what is lost.
want_one_warning() {
  [[ $(printf '%s\n' "$1" | grep -c .) -eq 1 ]] || fail "want one warning line, got: $1"
  [[ $1 == *"written with BLAS kernel $2; this run has $3:"* ]] || fail "the warning does not name both ($2 / $3): $1"
  [[ $1 == *"not bit-identically"* ]] || fail "the warning does not say what is lost: $1"
}

# Same everything: no warning, and the result is the uninterrupted run's.
warnings=$(resume_from "$work/same" DEALER_CPU_VARIANT="$best")
[[ -z $warnings ]] || fail "resume on the same machine warned: $warnings"
"$dealer" ckpt diff "$work/gpt_${best}_1" "$work/same" --tol 0 >"$work/diff.out" 2>&1 ||
  { cat "$work/diff.out"; fail "resume with the same numerics is not bit-exact"; }

# Another thread count.
warnings=$(resume_from "$work/threads" DEALER_CPU_VARIANT="$best" -- train.threads=1)
want_one_warning "$warnings" "$blas, CPU variant $best, 2 threads" "$blas, $best, 1 thread"

# Another CPU variant (when this CPU runs two): the result is still the uninterrupted run's to rounding.
if ((${#supported[@]} > 1)); then
  other=${supported[0]}
  warnings=$(resume_from "$work/variant" DEALER_CPU_VARIANT="$other")
  want_one_warning "$warnings" "$blas, CPU variant $best, 2 threads" "$blas, $other, 2 threads"
  "$dealer" ckpt diff "$work/gpt_${best}_1" "$work/variant" --tol 1e-4 >"$work/diff.out" 2>&1 ||
    { cat "$work/diff.out"; fail "resumed on $other, the result is not the uninterrupted run's to rounding"; }
fi

# Another BLAS kernel (OpenBLAS takes the user's OPENBLAS_CORETYPE as it is). Nehalem runs on every CPU dealer
# runs on (x86-64-v2).
other_blas=Nehalem
[[ $blas != Nehalem ]] || other_blas=Core2
warnings=$(resume_from "$work/blas" DEALER_CPU_VARIANT="$best" OPENBLAS_CORETYPE=$other_blas)
want_one_warning "$warnings" "$blas, CPU variant $best, 2 threads" "$other_blas, $best, 2 threads"
echo "resume warnings name both settings"
echo PASS

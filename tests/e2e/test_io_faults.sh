#!/usr/bin/env bash
# I/O failures end a run promptly and cleanly, on 1, 2 and 3 ranks, and lose nothing already saved. Failures are
# injected on one chosen rank at a chosen call (DEALER_FAULT=write|fsync|rename:RANK:NTH, core/fault.h) and, where
# mounting is allowed, met for real on a small tmpfs. After each failing run: exit 1 (no signal, no hang past the
# watchdog), one "error (rank R)" line naming the file and the cause, `latest` naming a complete earlier checkpoint,
# no temporary left behind, and a resume from `latest` that runs to the end.
set -euo pipefail
dealer=${DEALER_BIN:?}
src=${DEALER_SOURCE_DIR:?}
work=$(mktemp -d /tmp/dealer_e2e_io_faults.XXXXXX)
mnt=
cleanup() {
  if [[ -n $mnt ]]; then umount "$mnt" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1

head -c 40000 "$src/data/tinyshakespeare.txt" >"$work/text.txt"
"$dealer" data convert --format text "$work/text.txt" -o "$work/train.tfrecord" --no-progress >/dev/null

steps=30
# comm.timeout_s bounds every wait; a failing run must end well within 3 of them on a machine 10x slower.
timeout_s=10
args=(data.train="$work/train.tfrecord" data.valid= model.n_layer=1 model.n_head=2 model.n_embd=16
      model.max_seq_len=16 data.seq_len=16 train.batch_per_rank=2 train.steps=$steps optim.warmup_steps=3
      train.eval_every=0 log.every=1000 train.threads=1 ckpt.every=1 ckpt.keep=0 comm.zero=1
      comm.timeout_s=$timeout_s)

# run NP OUT [k=v ...]: one training run, its exit code in $code and its wall time in $took.
run() {
  local np=$1 out=$2
  shift 2
  local start=$SECONDS
  set +e
  if [[ $np == 1 ]]; then
    timeout 300 "$dealer" train "$src/configs/gpt-shakespeare.yaml" "${args[@]}" "$@" >"$out" 2>&1
  else
    timeout 300 mpirun -np "$np" --bind-to none "$dealer" train "$src/configs/gpt-shakespeare.yaml" "${args[@]}" \
      "$@" >"$out" 2>&1
  fi
  code=$?
  set -e
  took=$((SECONDS - start))
}

# After a failed run in DIR: exit 1 within the bound, one error line matching PATTERN, latest intact, no temporaries.
check_failed() {
  local what=$1 dir=$2 out=$3 pattern=$4
  [[ $code -eq 1 ]] || { cat "$out"; fail "$what: exit $code, want 1"; }
  ((took < 6 * timeout_s)) || fail "$what: took $took s (comm.timeout_s is $timeout_s)"
  if grep -qiE "segmentation|signal [0-9]|core dumped|aborted \(" "$out"; then cat "$out"; fail "$what: a rank crashed"; fi
  local lines
  lines=$(grep -c "error (rank" "$out" || true)
  [[ $lines -eq 1 ]] || { cat "$out"; fail "$what: $lines error lines, want 1"; }
  grep "error (rank" "$out" | grep -qE "$pattern" || { cat "$out"; fail "$what: the error line does not match '$pattern'"; }
  if compgen -G "$dir/ckpt/*.tmp*" >/dev/null; then ls -la "$dir/ckpt"; fail "$what: a temporary was left behind"; fi
  [[ -f $dir/ckpt/latest ]] || fail "$what: no latest"
  local name
  name=$(cat "$dir/ckpt/latest")
  "$dealer" ckpt show "$dir/ckpt/$name" --tensors >"$work/show.out" 2>&1 ||
    { cat "$work/show.out"; fail "$what: latest names $name, which does not verify"; }
  latest_step=$((10#${name:5:8}))
}

# The resumed run goes from latest to the end.
check_resume() {
  local what=$1 np=$2 dir=$3
  run "$np" "$work/resume.out" run.dir="$dir"
  [[ $code -eq 0 ]] || { cat "$work/resume.out"; fail "$what: the resume exited $code"; }
  grep -q "resumed from $dir/ckpt/step_$(printf %08d "$latest_step").h5" "$work/resume.out" ||
    { cat "$work/resume.out"; fail "$what: did not resume from step $latest_step"; }
  [[ $(cat "$dir/ckpt/latest") == step_$(printf %08d $steps).h5 ]] || fail "$what: the resumed run did not finish"
}

# 1. A dataset write fails on one rank inside a checkpoint (not the first one): every rank exits 1, no hang.
for np in 1 2 3; do
  rank=$((np - 1))
  dir=$work/write$np
  DEALER_FAULT=write:$rank:100 run "$np" "$work/w.out" run.dir="$dir"
  check_failed "write fault on rank $rank of $np" "$dir" "$work/w.out" \
    "rank $rank\): $dir/ckpt/step_[0-9]+\.h5: cannot write .*No space left on device"
  failed=$((latest_step + 1))
  [[ ! -e $dir/ckpt/step_$(printf %08d $failed).h5 ]] || fail "np $np: the failed step $failed was committed"
  ((latest_step >= 1)) || fail "np $np: the fault came before the first checkpoint (raise NTH)"
  check_resume "write fault, np $np" "$np" "$dir"
  echo "write fault on rank $rank of $np: exit 1 in ${took}s, latest step $latest_step, resumed"
done

# 2. fsync and rename fail on rank 0 (the rank that commits), and the metadata flush on rank 1. Rank 0's calls per
# checkpoint: flush, fsync before the rename, fsync of latest; renames: the step file, then latest (config.yaml's
# commit took one of each first).
for fault in fsync:0:5 rename:0:4 rename:0:5 fsync:1:3; do
  dir=$work/${fault//:/_}
  DEALER_FAULT=$fault run 2 "$work/f.out" run.dir="$dir"
  check_failed "$fault" "$dir" "$work/f.out" "(fsync|renaming|flushing).*(Input/output error|injected)"
  check_resume "$fault" 2 "$dir"
  echo "$fault: exit 1 in ${took}s, latest step $latest_step, resumed"
done

# 3. metrics.jsonl, then the TensorBoard events, cannot be written: the run stops at the next step after a
# checkpoint, and the file ends with whole records. Rank 0's writes: config.yaml, the event file's header (when
# written), then one line or event per step.
dir=$work/metrics
DEALER_FAULT=write:0:4 run 2 "$work/m.out" run.dir="$dir" log.tensorboard=false ckpt.every=5
check_failed "metrics fault" "$dir" "$work/m.out" \
  "rank 0\): the run stopped at step 4 \(after a checkpoint of this step\): cannot write $dir/metrics.jsonl at step 3: No space"
[[ $latest_step -eq 4 ]] || fail "metrics fault: latest is step $latest_step, want 4"
[[ $(tail -c 1 "$dir/metrics.jsonl" | od -An -c | tr -d ' ') == '\n' ]] || fail "metrics.jsonl ends mid-line"
python3 -c 'import json,sys; [json.loads(l) for l in open(sys.argv[1])]' "$dir/metrics.jsonl" ||
  fail "metrics.jsonl holds a broken line"
check_resume "metrics fault" 2 "$dir"
echo "metrics fault: exit 1, latest step $latest_step, metrics.jsonl whole, resumed"
dir=$work/events
DEALER_FAULT=write:0:3 run 1 "$work/e.out" run.dir="$dir" log.jsonl=false ckpt.every=5
check_failed "events fault" "$dir" "$work/e.out" \
  "rank 0\): the run stopped at step 2 \(after a checkpoint of this step\): cannot write to $dir/events\.out\.tfevents"
check_resume "events fault" 1 "$dir"
echo "events fault: exit 1, latest step $latest_step, resumed"

# 4. A real full disk: a tmpfs with room for a few checkpoints, then not.
mnt=$work/tmpfs
mkdir -p "$mnt"
if ! mount -t tmpfs -o size=600k tmpfs "$mnt" 2>"$work/mount.err"; then
  echo "SKIP tmpfs cases: cannot mount a tmpfs here ($(head -1 "$work/mount.err"))"
  mnt=
else
  for np in 1 2 3; do
    rm -rf "${mnt:?}"/*
    dir=$mnt/run$np
    run "$np" "$work/t.out" run.dir="$dir"
    check_failed "full tmpfs, np $np" "$dir" "$work/t.out" "needs [0-9.]+ MiB and its file system has [0-9.]+ MiB free"
    echo "full tmpfs, np $np: refused before writing in ${took}s, latest step $latest_step"
  done
  # Compressed checkpoints have no size up front: the disk fills during the write itself.
  # On 3 ranks HDF5 itself can stay stuck in the collective flush after a failed write: the guard ends it.
  for np in 1 2 3; do
    rm -rf "${mnt:?}"/*
    dir=$mnt/zrun$np
    run "$np" "$work/t.out" run.dir="$dir" ckpt.compress=true
    [[ $code -eq 1 ]] || { cat "$work/t.out"; fail "compressed, full tmpfs, np $np: exit $code"; }
    ((took < 6 * timeout_s)) || fail "compressed, full tmpfs, np $np: took $took s"
    if grep -qiE "segmentation|core dumped" "$work/t.out"; then cat "$work/t.out"; fail "np $np: a rank crashed"; fi
    grep -qE "error \(rank [0-9]+\): .*(no space left on device|No space left on device|did not finish within)" \
      "$work/t.out" || { cat "$work/t.out"; fail "compressed, full tmpfs, np $np: no clear error line"; }
    if compgen -G "$dir/ckpt/*.tmp*" >/dev/null; then fail "compressed, np $np: a temporary was left behind"; fi
    name=$(cat "$dir/ckpt/latest")
    "$dealer" ckpt show "$dir/ckpt/$name" --tensors >/dev/null || fail "compressed, np $np: latest does not verify"
    echo "compressed, full tmpfs, np $np: exit 1 in ${took}s, latest $name verifies"
  done
  umount "$mnt"
  mnt=
fi
echo "I/O faults e2e: ok"

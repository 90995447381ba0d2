#!/usr/bin/env bash
# ffm_e2e.sh — whole-process FFM training time, dealer beside libffm, as users run them: `dealer train` for one
# epoch (start-up, table initialisation, the loop, the final checkpoint) against `ffm-train -t 1` (its binary
# cache check, initialisation, the epoch, writing its model), on the same rows, interleaved A,B,A,B.
#
#   bench/ffm_e2e.sh --dealer build/dealer --libffm /path/to/libffm --text ROWS.txt --records ROWS.tfrecord \
#       [--k 4] [--threads 1] [--ranks 1] [--rounds 3] [--fields 18] [--buckets 1000000] [--cpus 0-1] [--work DIR]
#       [--before OLD/dealer]   (a second dealer build, e.g. the commit before a change, run third in each round)
#       [--embeddings sharded|shared]   (how --ranks W > 1 keep the table; default sharded)
#       [--nosync]   (also run dealer with ckpt.fsync=false each round, as "nosync": its checkpoint unsynced, as
#                     libffm writes its model; the default run keeps dealer's fsync)
#
# ROWS.txt is libffm text and ROWS.tfrecord the same rows as records (`dealer data synth-clicks SAMPLE --rows N`
# writes either; bench/criteo_kaggle.sh makes Criteo-shaped ones). libffm converts the text to its .bin cache on
# its first run; that run is a warm-up and not reported (dealer's records are likewise converted beforehand).
# Settings are libffm's defaults on both sides (λ 2e-5, η 0.2, normalisation, AdaGrad from 1, no linear terms),
# libffm's feature ids are its table rows and dealer's table has --buckets rows (ids below it are their own row).
# With --ranks W > 1 dealer runs under mpirun with comm.embeddings: sharded (or --embeddings shared: one table in
# the node's shared memory, trained in place), one thread per rank.
#
# Each run prints one line: who, round, wall s, user s, sys s, rows/s (wall), rows per CPU-second (user + sys), peak
# resident memory (per rank for dealer, with how much of it is file pages), load average at the start. The load
# matters: on a shared machine wall time measures the other jobs too (CPU time much less), so report min and median
# of the interleaved rounds.
set -euo pipefail
dealer=build/dealer before= libffm= text= records= k=4 threads=1 ranks=1 rounds=3 fields=18 buckets=1000000 cpus= work=
embeddings=sharded nosync=0
while [[ $# -gt 0 ]]; do
  case $1 in
    --dealer) dealer=$2 ;; --before) before=$2 ;; --libffm) libffm=$2 ;; --text) text=$2 ;; --records) records=$2 ;; --k) k=$2 ;;
    --threads) threads=$2 ;; --ranks) ranks=$2 ;; --rounds) rounds=$2 ;; --fields) fields=$2 ;;
    --buckets) buckets=$2 ;; --cpus) cpus=$2 ;; --work) work=$2 ;; --embeddings) embeddings=$2 ;;
    --nosync) nosync=1; shift; continue ;;
    *) echo "ffm_e2e.sh: unknown option $1 (see the top of the script)" >&2; exit 2 ;;
  esac
  shift 2
done
[[ -x $dealer ]] || { echo "ffm_e2e.sh: --dealer $dealer is not an executable" >&2; exit 2; }
[[ -n $text && -f $text ]] || { echo "ffm_e2e.sh: --text names no file" >&2; exit 2; }
[[ -n $records && -f $records ]] || { echo "ffm_e2e.sh: --records names no file" >&2; exit 2; }
rows=$(wc -l <"$text")
work=${work:-$(mktemp -d /tmp/ffm_e2e.XXXXXX)}
mkdir -p "$work"
pin=()
[[ -n $cpus ]] && pin=(taskset -c "$cpus")

cat >"$work/ffm.yaml" <<EOF
device: cpu
run: {dir: $work/run, seed: 1}
model: {kind: ffm, k: $k, num_fields: $fields, hash_buckets: $buckets, linear_terms: false, normalize: true}
data: {train: $records, format: clicks, shuffle: true}
optim: {name: adagrad, lr: 0.2, weight_decay: 2.0e-5, adagrad_init: 1.0, grad_clip: 0, schedule: constant}
train: {epochs: 1, steps: 1000000000, batch_per_rank: 1024, eval_every: 0, threads: $threads, resume: never}
comm: {embeddings: $embeddings}
ckpt: {every: 0, keep: 1}
log: {every: 100000}
EOF

# who, round, command...: one timed run, its line on stdout, its output in $work/<who>.<round>.log
timed() {
  local who=$1 round=$2
  shift 2
  rm -rf "$work/run" "$work/model.libffm"
  local load
  # Start each run with the disk's queue empty: libffm writes its model without fsync, so its dirty pages would
  # otherwise be flushed during the next run (dealer's checkpoint fsync waited on them: 0.5 s became 1.6 s).
  sync
  load=$(cut -d' ' -f1 /proc/loadavg)
  /usr/bin/time -f "%e %U %S %M" -o "$work/time" "$@" >"$work/$who.$round.log" 2>&1 ||
    { cat "$work/$who.$round.log" >&2; echo "ffm_e2e.sh: $who failed" >&2; exit 1; }
  read -r wall user sys rss <"$work/time"
  # peak memory: libffm's own (time's %M); dealer's from its last line, the most any rank held (under mpirun %M
  # would be mpirun's)
  local peak
  peak=$(grep -oE 'peak resident memory [0-9]+ MiB' "$work/$who.$round.log" | grep -oE '[0-9]+' || true)
  [[ -n $peak ]] || peak=$((rss / 1024))
  # dealer's mapped record files count in its resident size (page cache pages): say how much of the peak they are
  local file_pages
  file_pages=$(grep -oE '[0-9]+ MiB of it file pages' "$work/$who.$round.log" | grep -oE '^[0-9]+' || true)
  file_pages=${file_pages:-0}
  awk -v w="$who" -v r="$round" -v e="$wall" -v u="$user" -v s="$sys" -v n="$rows" -v l="$load" -v m="$peak" \
    -v f="$file_pages" \
    'BEGIN { printf "%-8s round %d | wall %7.2f s | user %7.2f s | sys %6.2f s | %9.0f rows/s | %9.0f rows/CPU-s | peak %5d MiB/rank (%d file) | load %s\n",
             w, r, e, u, s, n / e, n / (u + s), m, f, l }'
}

libffm_cmd=(env OMP_NUM_THREADS="$threads" "${pin[@]}" "$libffm/ffm-train" -t 1 -s "$threads" -k "$k" "$text"
            "$work/model.libffm")
dealer_command() { # binary: the command line of one dealer run
  if [[ $ranks -gt 1 ]]; then
    echo env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 "${pin[@]}" mpirun -np "$ranks" \
      --oversubscribe --bind-to none "$1" train "$work/ffm.yaml" train.threads=1
  else
    echo env OMP_NUM_THREADS="$threads" "${pin[@]}" "$1" train "$work/ffm.yaml"
  fi
}
read -r -a dealer_cmd <<<"$(dealer_command "$dealer")"
before_cmd=()
[[ -n $before ]] && read -r -a before_cmd <<<"$(dealer_command "$before")"

echo "# $rows rows, k=$k, $threads thread(s), $ranks rank(s) ($embeddings tables when several); $(nproc) CPUs; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
if [[ -n $libffm ]]; then
  (cd "$work" && "${libffm_cmd[@]}" >/dev/null 2>&1) || true # builds libffm's .bin cache beside the text: not timed
fi
for round in $(seq 1 "$rounds"); do
  if [[ -n $libffm ]]; then (cd "$work" && timed libffm "$round" "${libffm_cmd[@]}"); fi
  timed dealer "$round" "${dealer_cmd[@]}"
  if ((nosync)); then timed nosync "$round" "${dealer_cmd[@]}" ckpt.fsync=false; fi
  if [[ -n $before ]]; then timed before "$round" "${before_cmd[@]}"; fi
done

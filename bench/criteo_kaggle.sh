#!/usr/bin/env bash
# criteo_kaggle.sh — FFM on Criteo-Kaggle-shaped data, dealer beside libffm: not part of CI (10M rows are ~4.5 GB
# of text, ~4 GB of records and ~4.7 GB of libffm's binary cache, and an epoch takes minutes).
#
#   bench/criteo_kaggle.sh --libffm /path/to/libffm [--rows 10000000] [--build build] [--work DIR] [--rounds 2]
#                          [--ks "4 8"] [--cpus 0-1]
#
# 1. bench_criteo_synth writes the rows (39 fields: 13 counts binned as libffm's Criteo recipe does, 26 Zipf-skewed
#    categories, all hashed into 1,000,000 buckets; see bench/bench_criteo_synth.c).
# 2. dealer data convert makes the record file (timed, not part of the runs below; libffm's own text-to-binary
#    conversion happens in ffm_e2e.sh's untimed warm-up run).
# 3. For each k: bench/ffm_e2e.sh, one epoch, whole processes interleaved with libffm: 1 thread, 2 threads, and
#    dealer on 2 ranks with sharded tables, then with one shared table (1 thread each), beside libffm on 2 threads. Each line gives wall time,
#    CPU time, rows/s, rows per CPU-second and peak resident memory per rank.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/build libffm= rows=10000000 work= rounds=2 ks="4 8" cpus=
while [[ $# -gt 0 ]]; do
  case $1 in
    --libffm) libffm=$2 ;; --rows) rows=$2 ;; --build) build=$2 ;; --work) work=$2 ;; --rounds) rounds=$2 ;;
    --ks) ks=$2 ;; --cpus) cpus=$2 ;;
    *) echo "criteo_kaggle.sh: unknown option $1 (see the top of the script)" >&2; exit 2 ;;
  esac
  shift 2
done
[[ -x $build/dealer && -x $build/bench_criteo_synth ]] ||
  { echo "criteo_kaggle.sh: build dealer and the benchmarks first (scripts/build $build)" >&2; exit 2; }
work=${work:-$(mktemp -d /tmp/criteo_kaggle.XXXXXX)}
mkdir -p "$work"
text=$work/criteo.txt records=$work/criteo.tfrecord
if [[ ! -s $text ]]; then
  echo "# writing $rows Criteo-shaped rows to $text"
  "$build/bench_criteo_synth" -o "$text" --rows "$rows" --buckets 1000000
fi
if [[ ! -s $records ]]; then
  start=$(date +%s.%N)
  "$build/dealer" data convert --format libffm "$text" -o "$records" --no-progress
  echo "# conversion: $(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }') s"
fi
"$build/dealer" data stat "$records" | grep -E 'rows|labels|features|entries per row'
echo "# machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2); $("$build/dealer" --version | head -1)"
pin=()
[[ -n $cpus ]] && pin=(--cpus "$cpus")
common=(--dealer "$build/dealer" --text "$text" --records "$records" --fields 39 --buckets 1000000
        --rounds "$rounds" --work "$work/runs" "${pin[@]}")
[[ -n $libffm ]] && common+=(--libffm "$libffm")
for k in $ks; do
  "$root/bench/ffm_e2e.sh" "${common[@]}" --k "$k" --threads 1
  "$root/bench/ffm_e2e.sh" "${common[@]}" --k "$k" --threads 2
  "$root/bench/ffm_e2e.sh" "${common[@]}" --k "$k" --threads 2 --ranks 2
  "$root/bench/ffm_e2e.sh" "${common[@]}" --k "$k" --threads 2 --ranks 2 --embeddings shared
done

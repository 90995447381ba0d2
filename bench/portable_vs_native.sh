#!/usr/bin/env bash
# bench/portable_vs_native.sh — the portable build (x86-64-v2 with run-time CPU variants) against -march=native on
# the GPT-2 124M training step (bench_gpt step) and one FFM k=4 epoch (bench_ffm), interleaved in one run:
# native, portable, native, portable, ... so both see the same machine load. Prints every run, then min and median
# per build and the portable/native ratio (time: above 1 is slower; throughput: below 1 is slower).
#
#   scripts/build build -DDEALER_CUDA=OFF
#   scripts/build build-native -DDEALER_NATIVE=ON -DDEALER_CUDA=OFF -DDEALER_TESTS=OFF
#   bench/portable_vs_native.sh [--rounds N] [--gpt-steps S] [--ffm-rows R] [--native DIR] [--portable DIR]
#
# Each figure is reported in wall time and in CPU time (all threads of the process): on a shared machine the wall
# time measures the other jobs as much as the code, CPU time much less. Both builds are pinned to the same cores
# (taskset, cores 0-1 by default: --cpus LIST) with 2 OpenMP threads.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
rounds=3 gpt_steps=3 ffm_rows=500000 cpus=0,1
native=$root/build-native portable=$root/build
while (($#)); do
  case $1 in
    --rounds) rounds=$2; shift 2 ;;
    --gpt-steps) gpt_steps=$2; shift 2 ;;
    --ffm-rows) ffm_rows=$2; shift 2 ;;
    --native) native=$2; shift 2 ;;
    --portable) portable=$2; shift 2 ;;
    --cpus) cpus=$2; shift 2 ;;
    *) echo "usage: bench/portable_vs_native.sh [--rounds N] [--gpt-steps S] [--ffm-rows R] [--native DIR] [--portable DIR] [--cpus LIST]" >&2
       exit 2 ;;
  esac
done
for dir in "$native" "$portable"; do
  for bin in dealer bench_gpt bench_ffm; do
    [[ -x $dir/$bin ]] || { echo "portable_vs_native: $dir/$bin is missing (build it: see the top of this script)" >&2; exit 2; }
  done
done
"$native/dealer" --version | grep -q '^cpu kernels: native' ||
  { echo "portable_vs_native: $native is not a -DDEALER_NATIVE=ON build" >&2; exit 2; }

out=$(mktemp -d /tmp/dealer_portable_vs_native.XXXXXX)
trap 'rm -rf "$out"' EXIT
echo "# portable vs native, $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "cpu: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; pinned to cores $cpus, 2 threads"
for dir in "$native" "$portable"; do
  echo "$(basename "$dir"): $("$dir/dealer" --version | grep -E '^(blas|cpu kernels):' | tr '\n' ' ')"
done
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| round | build | GPT step median ms (wall) | GPT step CPU ms | FFM rows/s (wall) | FFM rows per CPU-s | load |"
echo "|---|---|---|---|---|---|---|"
for ((r = 1; r <= rounds; r++)); do
  for build in native portable; do
    dir=$native
    [[ $build == portable ]] && dir=$portable
    (cd "$root" && OMP_NUM_THREADS=2 taskset -c "$cpus" "$dir/bench_gpt" step --threads 2 --steps "$gpt_steps") \
      >"$out/gpt.txt" 2>&1 || { cat "$out/gpt.txt" >&2; exit 1; }
    (cd "$root" && OMP_NUM_THREADS=2 taskset -c "$cpus" "$dir/bench_ffm" --rows "$ffm_rows" --models ffm4 --threads 2) \
      >"$out/ffm.txt" 2>&1 || { cat "$out/ffm.txt" >&2; exit 1; }
    gpt_wall=$(sed -n 's/^median step: \([0-9.]*\) ms.*/\1/p' "$out/gpt.txt")
    gpt_cpu=$(sed -n 's/^CPU time: \([0-9.]*\) ms per step.*/\1/p' "$out/gpt.txt")
    read -r ffm_wall ffm_cpu < <(awk -F'|' '$2 ~ /ffm4/ {gsub(/ /, "", $3); gsub(/ /, "", $6); print $3, $6}' "$out/ffm.txt")
    [[ -n $gpt_wall && -n $gpt_cpu && -n $ffm_wall && -n $ffm_cpu ]] ||
      { cat "$out/gpt.txt" "$out/ffm.txt" >&2; echo "portable_vs_native: could not read the figures" >&2; exit 1; }
    echo "| $r | $build | $gpt_wall | $gpt_cpu | $ffm_wall | $ffm_cpu | $(cut -d' ' -f1 /proc/loadavg) |"
    echo "$build $gpt_wall $gpt_cpu $ffm_wall $ffm_cpu" >>"$out/all.txt"
  done
done
echo
awk '
  function sorted_stats(build, col,    n, i, j, t, v) {
    n = 0
    for (i = 1; i <= rows; i++) if (b[i] == build) v[++n] = x[i, col]
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
    mn = v[1]; mx = v[n]
    md = n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
  }
  { rows++; b[rows] = $1; for (c = 2; c <= 5; c++) x[rows, c] = $c }
  END {
    split("GPT step ms (wall),GPT step CPU ms,FFM rows/s (wall),FFM rows per CPU-s", name, ",")
    print "| figure | native min / median | portable min / median | portable/native (median) |"
    print "|---|---|---|---|"
    for (c = 2; c <= 5; c++) {
      sorted_stats("native", c); nmin = mn; nmax = mx; nmed = md
      sorted_stats("portable", c); pmin = mn; pmax = mx; pmed = md
      # for times the best is the minimum, for throughputs the maximum
      if (c <= 3) printf "| %s | %.1f / %.1f | %.1f / %.1f | %.3f |\n", name[c - 1], nmin, nmed, pmin, pmed, pmed / nmed
      else printf "| %s | %.0f (max) / %.0f | %.0f (max) / %.0f | %.3f |\n", name[c - 1], nmax, nmed, pmax, pmed, pmed / nmed
    }
  }' "$out/all.txt"
echo
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"

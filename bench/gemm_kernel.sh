#!/usr/bin/env bash
# bench/gemm_kernel.sh — dealer's automatic OpenBLAS kernel choice against the kernel forced by hand, in one run.
# The foundation goal: `dealer bench gemm` with nothing set reaches >= 70% of OPENBLAS_CORETYPE=SkylakeX.
set -euo pipefail
dealer=${DEALER_BIN:-$(dirname "$0")/../build/dealer}
size=${1:-2048}
run() { env -u DEALER_BLAS_REEXEC "$@" "$dealer" bench gemm --size "$size" --repeat 5 --json |
        sed -E 's/.*"gflops": ([0-9.]+).*/\1/'; }
auto=$(run -u OPENBLAS_CORETYPE)
forced=$(run OPENBLAS_CORETYPE=SkylakeX)
generic=$(run OPENBLAS_CORETYPE=Prescott)
echo "sgemm ${size}^3, $(nproc) threads: auto ${auto} GFLOP/s, SkylakeX by hand ${forced}, generic (Prescott) ${generic}"
awk -v a="$auto" -v f="$forced" -v g="$generic" 'BEGIN { printf "auto / SkylakeX = %.2f   (goal >= 0.70)\nSkylakeX / generic = %.2f\n", a / f, f / g }'

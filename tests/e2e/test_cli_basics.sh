#!/usr/bin/env bash
# The dealer command's contract: --help and --version, exit codes 0/1/2, one-line errors, and that the BLAS kernel
# in use is the best the CPU supports without any variable set by the user.
set -euo pipefail
dealer=${DEALER_BIN:?DEALER_BIN must point at the dealer binary}
fail() { echo "FAIL: $*" >&2; exit 1; }
expect_exit() { # expect_exit CODE CMD...
  local want=$1; shift
  set +e; "$@" >/tmp/dealer_cli_out.$$ 2>/tmp/dealer_cli_err.$$; local got=$?; set -e
  [[ $got == "$want" ]] || fail "'$*' exited $got, want $want; stderr: $(cat /tmp/dealer_cli_err.$$)"
}
trap 'rm -f /tmp/dealer_cli_out.$$ /tmp/dealer_cli_err.$$' EXIT

expect_exit 0 "$dealer" --help
grep -q "usage: dealer <command>" /tmp/dealer_cli_out.$$ || fail "--help shows no usage"
expect_exit 2 "$dealer"
expect_exit 2 "$dealer" no-such-command
grep -q "unknown command 'no-such-command'" /tmp/dealer_cli_err.$$ || fail "unknown command message"
[[ $(wc -l </tmp/dealer_cli_err.$$) -eq 1 ]] || fail "unknown command error is not one line"

unset OPENBLAS_CORETYPE DEALER_BLAS_REEXEC DEALER_BLAS_AUTOSELECT
expect_exit 0 "$dealer" --version
grep -qE '^dealer [0-9]+\.[0-9]+\.[0-9]+ \(git [0-9a-f]+|unknown\)' /tmp/dealer_cli_out.$$ || fail "--version line: $(head -1 /tmp/dealer_cli_out.$$)"
grep -qE '^cuda: (built in|not built)' /tmp/dealer_cli_out.$$ || fail "--version has no cuda line"
grep -q '^blas: OpenBLAS' /tmp/dealer_cli_out.$$ || fail "--version has no blas line"
# With nothing set by the user, the kernel must not be one dealer considers too slow for this CPU.
if grep -q 'slow:' /tmp/dealer_cli_out.$$; then fail "BLAS kernel not auto-selected: $(grep blas: /tmp/dealer_cli_out.$$)"; fi

for cmd in train eval generate predict data ckpt config bench dpo tokenizer; do
  expect_exit 0 "$dealer" "$cmd" --help
done

expect_exit 0 "$dealer" bench gemm --size 128 --repeat 2
grep -qE 'GFLOP/s' /tmp/dealer_cli_out.$$ || fail "bench gemm prints no rate"
expect_exit 0 "$dealer" bench gemm --size 96 --repeat 1 --json
grep -qE '"gflops": [0-9.]+' /tmp/dealer_cli_out.$$ || fail "bench gemm --json"
expect_exit 2 "$dealer" bench gemm --size abc
grep -q -- "--size needs a positive integer" /tmp/dealer_cli_err.$$ || fail "bad --size message"
expect_exit 2 "$dealer" bench nothing
echo "cli basics: ok"

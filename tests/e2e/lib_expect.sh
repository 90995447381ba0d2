# lib_expect.sh — helpers for e2e tests that run dealer commands and check what they print; source it after setting
# T (a scratch directory): stdout and stderr of the last command are kept in $T/out and $T/err.
fail() { echo "FAIL: $*" >&2; exit 1; }
# expect CODE CMD... : runs CMD, checks its exit code.
expect() {
    local want=$1; shift
    set +e; "$@" >"$T/out" 2>"$T/err"; local got=$?; set -e
    [ "$got" -eq "$want" ] || { cat "$T/out" "$T/err" >&2; fail "'$*' exited $got, want $want"; }
}
# has out|err TEXT / lacks out|err TEXT : TEXT (fixed, not a pattern) is or is not in the kept output.
has() { grep -qF -- "$2" "$T/$1" || { cat "$T/$1" >&2; fail "$1 lacks '$2'"; }; }
lacks() { ! grep -qF -- "$2" "$T/$1" || { cat "$T/$1" >&2; fail "$1 has '$2'"; }; }

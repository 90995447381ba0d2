#!/usr/bin/env bash
# test_cli_options.sh — the option syntax every dealer command shares (getopt_long, src/cli/cli_common.c):
# `--opt VALUE`, `--opt=VALUE` and the short aliases give the same result; options and positional words mix in any
# order; `--` ends the options; config overrides (section.key=value) are never taken for options; and every usage
# error (unknown, abbreviated or misspelt option, missing value, a flag given a value, a bad number) is one line on
# stderr naming the option, with exit code 2 and nothing written.
set -euo pipefail

D=${DEALER_BIN:?set DEALER_BIN to the dealer binary}
SRC=${DEALER_SOURCE_DIR:?set DEALER_SOURCE_DIR to the repository root}
T=$(mktemp -d /tmp/dealer_e2e_options.XXXXXX)
trap 'rm -rf "$T"' EXIT

# shellcheck source=tests/e2e/lib_expect.sh
source "$SRC/tests/e2e/lib_expect.sh"
one_line() { [ "$(wc -l <"$T/err")" -eq 1 ] || { cat "$T/err" >&2; fail "stderr is not one line"; }; }
# usage_error MESSAGE CMD... : exit 2, one line on stderr holding MESSAGE, nothing on stdout.
usage_error() {
    local message=$1; shift
    expect 2 "$@"; has err "$message"; one_line
    [ ! -s "$T/out" ] || { cat "$T/out" >&2; fail "'$*' printed on stdout"; }
}

printf 'First document.\nIts second line.\n\nSecond document.\n' >"$T/in.txt"
head -c 60000 "$SRC/data/tinyshakespeare.txt" >"$T/shakespeare.txt"
cat >"$T/cfg.yaml" <<'EOF'
model:
  kind: gpt
optim:
  lr: 0.01
EOF

# ---- --opt=VALUE is --opt VALUE; short aliases; options before, between and after positional words ----
expect 0 "$D" data convert --format text --doc-split line "$T/in.txt" -o "$T/a.tfrecord" --no-progress
expect 0 "$D" data convert --format=text --doc-split=line --output="$T/b.tfrecord" --no-progress "$T/in.txt"
expect 0 "$D" data convert "-o$T/c.tfrecord" "$T/in.txt" --no-progress --doc-split=line --format=text
for f in b c; do
    cmp "$T/a.tfrecord" "$T/$f.tfrecord" || fail "convert: $f.tfrecord differs from a.tfrecord"
    cmp "$T/a.tfrecord.idx" "$T/$f.tfrecord.idx" || fail "convert: $f.tfrecord.idx differs"
done
expect 0 "$D" data stat "$T/a.tfrecord"; has out "records"

expect 0 "$D" data make-pairs "$T/shakespeare.txt" -o "$T/p1.tfrecord" --valid-out "$T/v1.tfrecord" \
    --valid-fraction 0.25 --seed 7 --prompt-bytes 32 --rejected swap
expect 0 "$D" data make-pairs --seed=7 --rejected=swap --valid-fraction=0.25 --prompt-bytes=32 \
    --valid-out="$T/v2.tfrecord" --output="$T/p2.tfrecord" "$T/shakespeare.txt"
cmp "$T/p1.tfrecord" "$T/p2.tfrecord" || fail "make-pairs: --opt=VALUE gave other pairs"
cmp "$T/v1.tfrecord" "$T/v2.tfrecord" || fail "make-pairs: --opt=VALUE gave another valid split"

expect 0 "$D" tokenizer encode bytes --file "$T/in.txt"; cp "$T/out" "$T/ids1"
expect 0 "$D" tokenizer encode --file="$T/in.txt" bytes; cmp "$T/ids1" "$T/out" || fail "encode --file=PATH"

expect 0 "$D" bench gemm --size=64 --repeat=1 --json; has out '"size": 64'

# ---- config overrides are positional words, wherever they stand, and never options ----
expect 0 "$D" config show "$T/cfg.yaml" optim.lr=0.003 --no-sources train.steps=7 run.dir=--odd
cp "$T/out" "$T/show1"
has show1 "lr: 0.003"; has show1 "steps: 7"; has show1 'dir: "--odd"'; lacks show1 "# override"
expect 0 "$D" config show --no-sources optim.lr=0.003 "$T/cfg.yaml" train.steps=7 run.dir=--odd
cmp "$T/show1" "$T/out" || fail "config show: the order of options and overrides changed the result"
expect 0 env POSIXLY_CORRECT=1 "$D" config show "$T/cfg.yaml" optim.lr=0.003 --no-sources train.steps=7 run.dir=--odd
cmp "$T/show1" "$T/out" || fail "config show: POSIXLY_CORRECT changed how options are read"
# A bad override reaches the config loader (its message), not the option parser.
usage_error "override 'optim.lr=fast'" "$D" config show "$T/cfg.yaml" optim.lr=fast
usage_error "override 'optim.lr=fast'" "$D" train "$T/cfg.yaml" optim.lr=fast

# ---- `--` ends the options ----
expect 0 "$D" config show -- "$T/cfg.yaml" optim.lr=0.005; has out "lr: 0.005"; has out "# override"
expect 0 "$D" tokenizer encode bytes -- --tokens; has out "45 45 116 111 107 101 110 115"
expect 0 "$D" tokenizer encode bytes --tokens -- --help; has out "45:'-' 45:'-' 104:'h'"
cp "$T/in.txt" "$T/-dash.txt"
(cd "$T" && expect 0 "$D" data convert --format text --doc-split line --no-progress -o dash.tfrecord -- -dash.txt)
cmp "$T/a.tfrecord" "$T/dash.tfrecord" || fail "-- : the input named -dash.txt was not converted as in.txt was"
usage_error "unknown option '-x'" "$D" data stat -x
usage_error "cannot open -x" "$D" data stat -- -x
usage_error "unexpected argument '--json'" "$D" bench gemm -- --json

# ---- unknown options: one line naming the option, exit 2, and the nearest option when one is close ----
usage_error "unknown option '--bogus-flag'" "$D" train "$T/cfg.yaml" --bogus-flag
usage_error "unknown option '--bogus-flag'" "$D" eval "$T/none.h5" --bogus-flag
usage_error "unknown option '--bogus-flag'" "$D" generate --bogus-flag=3 "$T/none.h5"
usage_error "unknown option '--bogus-flag'" "$D" predict "$T/none.h5" "$T/in.txt" -o "$T/p.txt" --bogus-flag
usage_error "unknown option '--bogus-flag'" "$D" data index --bogus-flag "$T/a.tfrecord"
usage_error "unknown option '--bogus-flag'" "$D" ckpt show "$T/none.h5" --bogus-flag
usage_error "unknown option '--bogus-flag'" "$D" config keys --bogus-flag
usage_error "unknown option '--bogus-flag'" "$D" tokenizer stat bytes --bogus-flag
usage_error "unknown option '--bogus-flag'" "$D" dpo precompute-ref "$T/cfg.yaml" --bogus-flag
usage_error "unknown option '--tokenzier'; did you mean '--tokenizer'?" \
    "$D" data convert --format text "$T/in.txt" -o "$T/x.tfrecord" --tokenzier bytes
usage_error "unknown option '--batchs'; did you mean '--batches'?" "$D" eval "$T/none.h5" --batchs=3
usage_error "unknown option '--tol-abs'" "$D" ckpt diff "$T/a.h5" "$T/b.h5" --tol-abs 1
# Names are matched whole: glibc's unambiguous abbreviations would stop being unambiguous as options are added.
usage_error "unknown option '--form'; did you mean '--format'?" "$D" data convert --form text "$T/in.txt" -o "$T/x.tfrecord"
usage_error "unknown option '-q'" "$D" data convert -q --format text "$T/in.txt" -o "$T/x.tfrecord"
[ ! -e "$T/x.tfrecord" ] || fail "a refused conversion wrote its output"

# ---- missing values, flags given values, forgotten values, bad numbers ----
usage_error "--format needs a format" "$D" data convert "$T/in.txt" -o "$T/x.tfrecord" --format
usage_error "-o needs a file name" "$D" predict "$T/none.h5" "$T/in.txt" -o
usage_error "--tol needs a finite number >= 0" "$D" ckpt diff "$T/a.h5" "$T/b.h5" --tol
usage_error "--vocab-size needs an integer" "$D" tokenizer train "$T/in.txt" -o "$T/tok.json" --vocab-size
usage_error "--markdown takes no value, got '--markdown=yes'" "$D" config keys --markdown=yes
usage_error "-o needs a file name, got the option '--no-progress'" \
    "$D" data convert --format text "$T/in.txt" -o --no-progress
[ ! -e "$T/--no-progress" ] && [ ! -e ./--no-progress ] || fail "a file named --no-progress was written"
usage_error "--tokens needs an integer in [1, 1000000], got '0'" "$D" generate "$T/none.h5" --tokens=0
usage_error "--temperature needs a number in [0, 100], got 'hot'" "$D" generate "$T/none.h5" --temperature hot
usage_error "--seed needs a non-negative integer, got '-1'" \
    "$D" data convert --format text "$T/in.txt" -o "$T/x.tfrecord" --seed=-1
usage_error "--valid-fraction needs a number in [0, 1), got '1'" \
    "$D" data make-pairs "$T/shakespeare.txt" -o "$T/x.tfrecord" --valid-fraction=1 --valid-out "$T/v.tfrecord"
[ ! -e "$T/x.tfrecord" ] || fail "a refused command wrote its output"

# ---- every --help still answers, wherever it stands before `--` ----
for cmd in "data convert" "data make-pairs" "ckpt diff" "config show" "tokenizer train" "bench gemm" "eval" "generate"; do
    # shellcheck disable=SC2086  # the command's words split on purpose
    expect 0 "$D" $cmd --format=text --help; has out "usage: dealer"
done
echo "cli options: ok"

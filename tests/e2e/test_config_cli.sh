#!/usr/bin/env bash
# test_config_cli.sh — `dealer config show` and `dealer config keys` as a user runs them: the resolved YAML with
# sources, an override winning over the file, a bad key's one-line file:line error with exit code 2 and nothing on
# stdout, and every bundled config loading.
set -u
: "${DEALER_BIN:?DEALER_BIN must name the dealer binary}"
: "${DEALER_SOURCE_DIR:?DEALER_SOURCE_DIR must name the repository root}"
cd "$DEALER_SOURCE_DIR"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# An override beats the file, and its source says so.
"$DEALER_BIN" config show configs/gpt-shakespeare.yaml optim.lr=1e-3 >"$tmp/out" 2>"$tmp/err"
rc=$?
[ "$rc" -eq 0 ] || fail "config show exited $rc: $(cat "$tmp/err")"
grep -Eq '^  lr: 0\.001 +# override$' "$tmp/out" || fail "no 'lr: 0.001 # override' line in: $(grep ' lr:' "$tmp/out")"
grep -Eq '^  vocab_size: 256 +# configs/gpt-shakespeare\.yaml:[0-9]+$' "$tmp/out" || fail "vocab_size source missing"
grep -Eq '^  beta1: 0\.9 +# configs/gpt-shakespeare\.yaml:[0-9]+$' "$tmp/out" || fail "beta1 source missing"
grep -Eq '^  eps: 1e-8 +# default$' "$tmp/out" || fail "eps default missing"
[ ! -s "$tmp/err" ] || fail "unexpected stderr: $(cat "$tmp/err")"

# What show prints is itself a config that loads to the same thing.
"$DEALER_BIN" config show "$tmp/out" --no-sources >"$tmp/again" || fail "the printed config does not load"
"$DEALER_BIN" config show configs/gpt-shakespeare.yaml optim.lr=1e-3 --no-sources >"$tmp/direct" || fail "--no-sources"
diff -u "$tmp/direct" "$tmp/again" >/dev/null || fail "printed config reads back differently"

# A misspelt key: exit 2, one line naming file:line and the nearest key, nothing on stdout.
printf 'device: cpu\noptim:\n  lrr: 3e-4\n' >"$tmp/bad.yaml"
"$DEALER_BIN" config show "$tmp/bad.yaml" >"$tmp/out" 2>"$tmp/err"
rc=$?
[ "$rc" -eq 2 ] || fail "bad key exited $rc, want 2"
[ ! -s "$tmp/out" ] || fail "bad key printed on stdout"
[ "$(wc -l <"$tmp/err")" -eq 1 ] || fail "want one error line, got: $(cat "$tmp/err")"
grep -Fq "$tmp/bad.yaml:3: unknown key 'lrr' in section optim (did you mean 'lr'?)" "$tmp/err" ||
    fail "unexpected message: $(cat "$tmp/err")"

# A bad override: exit 2 naming the override.
"$DEALER_BIN" config show configs/gpt-shakespeare.yaml train.steps=-5 >/dev/null 2>"$tmp/err"
[ $? -eq 2 ] || fail "bad override did not exit 2"
grep -Fq "override 'train.steps=-5': train.steps: -5 is out of range (must be >= 1)" "$tmp/err" ||
    fail "unexpected message: $(cat "$tmp/err")"

# A missing file: exit 2.
"$DEALER_BIN" config show "$tmp/none.yaml" >/dev/null 2>"$tmp/err"
[ $? -eq 2 ] || fail "missing file did not exit 2"
grep -Fq "$tmp/none.yaml: cannot open config" "$tmp/err" || fail "unexpected message: $(cat "$tmp/err")"

# Usage errors exit 2; --help exits 0.
"$DEALER_BIN" config show >/dev/null 2>&1; [ $? -eq 2 ] || fail "show without CONFIG did not exit 2"
"$DEALER_BIN" config frob >/dev/null 2>&1; [ $? -eq 2 ] || fail "unknown subcommand did not exit 2"
"$DEALER_BIN" config --help | grep -q 'dealer config show' || fail "config --help"
"$DEALER_BIN" config show --help | grep -q 'dealer config keys' || fail "config show --help"
"$DEALER_BIN" config keys --help >/dev/null || fail "config keys --help"

# keys lists every key, one per line.
"$DEALER_BIN" config keys >"$tmp/keys" || fail "config keys failed"
grep -Eq '^optim\.lr +float > 0 +0\.0006 ' "$tmp/keys" || fail "optim.lr missing from config keys"
grep -Eq '^train\.resume +auto\|never\|PATH ' "$tmp/keys" || fail "train.resume missing from config keys"
"$DEALER_BIN" config keys --markdown | grep -q '^| `model.kind` |' || fail "config keys --markdown"

# Every bundled config loads.
for f in configs/*.yaml; do
    "$DEALER_BIN" config show "$f" >/dev/null 2>"$tmp/err" || fail "$f: $(cat "$tmp/err")"
done
echo "ok"

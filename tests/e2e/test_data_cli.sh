#!/usr/bin/env bash
# test_data_cli.sh — `dealer data convert|index|stat` as a user runs them: conversions of every format, the
# Shakespeare figures, the train/valid split, and the failures (malformed line, corrupt and truncated records,
# bad usage) with their exit codes, one-line messages and no output left behind.
set -euo pipefail

D=${DEALER_BIN:?set DEALER_BIN to the dealer binary}
SRC=${DEALER_SOURCE_DIR:?set DEALER_SOURCE_DIR to the repository root}
T=$(mktemp -d /tmp/dealer_e2e_data.XXXXXX)
trap 'rm -rf "$T"' EXIT

# fail, expect CODE CMD..., has/lacks out|err TEXT (stdout and stderr kept in $T/out and $T/err)
# shellcheck source=tests/e2e/lib_expect.sh
source "$SRC/tests/e2e/lib_expect.sh"
# A NAME.tmp also covers the per-writer temporaries NAME.tmp.HOST-PID-XXXXXX (core/fs.h).
absent() {
  for f in "$@"; do
    [ ! -e "$f" ] || fail "$f was left behind"
    if [[ $f == *.tmp ]] && compgen -G "$f.*" >/dev/null; then fail "$(compgen -G "$f.*" | head -1) was left behind"; fi
  done
}

# ---- help and usage ----
expect 0 "$D" data --help; has out "convert"
for sub in convert index stat; do expect 0 "$D" data $sub --help; has out "usage: dealer data $sub"; done
expect 2 "$D" data
expect 2 "$D" data frobnicate; has err "unknown command 'frobnicate'"
expect 2 "$D" data convert; has err "--format is required"
expect 2 "$D" data convert --format csv x -o y; has err "unknown --format 'csv'"
expect 2 "$D" data convert --format text --bogus x -o y; has err "unknown option '--bogus'"
expect 2 "$D" data convert --format libffm --doc-split line x -o y; has err "--doc-split applies to --format text only"
expect 2 "$D" data convert --format text x -o y --valid-fraction 1.5 --valid-out v; has err "--valid-fraction needs a number in [0, 1)"
expect 2 "$D" data convert --format text x -o y --valid-fraction 0.1; has err "--valid-fraction needs --valid-out"
expect 2 "$D" data stat; has err "no record files given"

# ---- text: Shakespeare, 7,222 speeches ----
expect 0 "$D" data convert --format text "$SRC/data/tinyshakespeare.txt" -o "$T/shakes.tfrecord"
has out "wrote 7,222 records to $T/shakes.tfrecord"
[ -s "$T/shakes.tfrecord.idx" ] || fail "no index written"
absent "$T/shakes.tfrecord.tmp"
expect 0 "$D" data stat "$T/shakes.tfrecord"
has out "documents: 7,222"
has out "document length (tokens): min 4, median 83, p90 347, max 3,080"
has out "[64, 128)"
has out "indexed"
# Standard input works too, and --doc-split line gives one document per non-blank line.
cat "$SRC/data/tinyshakespeare.txt" | expect 0 "$D" data convert --format text --doc-split line - -o "$T/lines.tfrecord"
has out "wrote 32,777 records"

# ---- index ----
rm "$T/shakes.tfrecord.idx"
expect 0 "$D" data stat "$T/shakes.tfrecord"; has out "no valid index (scanned)"
expect 0 "$D" data index "$T/shakes.tfrecord"; has out "7,222 records"
[ -s "$T/shakes.tfrecord.idx" ] || fail "dealer data index wrote no index"
expect 0 "$D" data stat "$T/shakes.tfrecord"; has out ", indexed"

# ---- clicks: libffm with a valid split, libsvm ----
expect 0 "$D" data convert --format libffm "$SRC/data/criteo/small_train.txt" -o "$T/tr.tfrecord" \
    --valid-fraction 0.25 --valid-out "$T/va.tfrecord" --seed 7
tr_n=$("$D" data stat "$T/tr.tfrecord" | sed -n 's/^rows: //p' | tr -d ,)
va_n=$("$D" data stat "$T/va.tfrecord" | sed -n 's/^rows: //p' | tr -d ,)
[ $((tr_n + va_n)) -eq 200 ] || fail "train $tr_n + valid $va_n rows != 200"
[ "$va_n" -gt 20 ] && [ "$va_n" -lt 80 ] || fail "valid share $va_n of 200 is far from 25%"
cp "$T/va.tfrecord" "$T/va_first.tfrecord"
expect 0 "$D" data convert --format libffm "$SRC/data/criteo/small_train.txt" -o "$T/tr.tfrecord" \
    --valid-fraction 0.25 --valid-out "$T/va.tfrecord" --seed 7
cmp -s "$T/va.tfrecord" "$T/va_first.tfrecord" || fail "the same seed gave another split"
expect 0 "$D" data stat "$T/tr.tfrecord"; has out "fields: 18 distinct"
printf '+1 3:1 10:0.5\n-1 4:2\n\n0 3:1\n' > "$T/small.svm"
expect 0 "$D" data convert --format libsvm --libsvm-fields position "$T/small.svm" -o "$T/svm.tfrecord"
has out "wrote 3 records"
expect 0 "$D" data stat "$T/svm.tfrecord"; has out "labels: 1 positive"; has out "fields: 2 distinct, largest id 1"

# ---- pairs ----
printf '%s\n' '{"prompt": "2+2=", "chosen": "4", "rejected": "5"}' '{"prompt": "hi", "chosen": "hello", "rejected": "go away"}' > "$T/p.jsonl"
expect 0 "$D" data convert --format jsonl-pairs "$T/p.jsonl" -o "$T/p.tfrecord"
expect 0 "$D" data stat "$T/p.tfrecord"; has out "pairs: 2"; has out "chosen length (tokens): min 1, median 1, p90 5, max 5"

# ---- malformed input: exit 2, file:line:column, nothing written ----
printf '1 0:1:1\n1 0:1:x\n' > "$T/bad.ffm"
expect 2 "$D" data convert --format libffm "$T/bad.ffm" -o "$T/bad.tfrecord" --valid-fraction 0.5 --valid-out "$T/badv.tfrecord"
has err "$T/bad.ffm:2: column 3: token '0:1:x': value 'x' is not a finite number"
[ "$(wc -l < "$T/err")" -eq 1 ] || fail "the error is not one line"
absent "$T/bad.tfrecord" "$T/bad.tfrecord.tmp" "$T/bad.tfrecord.idx" "$T/badv.tfrecord" "$T/badv.tfrecord.tmp"
printf '{"prompt": "a", "chosen": "b"}\n' > "$T/bad.jsonl"
expect 2 "$D" data convert --format jsonl-pairs "$T/bad.jsonl" -o "$T/bad.tfrecord"; has err "bad.jsonl:1: missing \"rejected\""
absent "$T/bad.tfrecord" "$T/bad.tfrecord.tmp"
expect 1 "$D" data convert --format text "$SRC/data/tinyshakespeare.txt" -o "$T/no/such/dir/x.tfrecord"
has err "cannot create $T/no/such/dir/x.tfrecord.tmp"
expect 2 "$D" data convert --format text "$T/missing.txt" -o "$T/x.tfrecord"; has err "cannot open $T/missing.txt"
absent "$T/x.tfrecord"

# ---- damaged record files: exit 2 naming file, record and byte offset ----
cp "$T/shakes.tfrecord" "$T/corrupt.tfrecord"
cp "$T/shakes.tfrecord.idx" "$T/corrupt.tfrecord.idx"
# Byte 100000 lies inside some record; 0xff never appears in these payloads (ASCII tokens, short lengths).
printf '\377' | dd of="$T/corrupt.tfrecord" bs=1 seek=100000 conv=notrunc status=none
expect 2 "$D" data stat "$T/corrupt.tfrecord"
has err "$T/corrupt.tfrecord: record "; has err " at byte "; has err "CRC mismatch"
expect 2 "$D" data index "$T/corrupt.tfrecord"; has err "CRC mismatch"
head -c 50000 "$T/shakes.tfrecord" > "$T/trunc.tfrecord"
expect 2 "$D" data stat "$T/trunc.tfrecord"; has err "truncated record"
expect 2 "$D" data stat "$T/nothing.tfrecord"; has err "cannot open $T/nothing.tfrecord"

echo "test_data_cli: all checks passed"

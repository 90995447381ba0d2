#!/usr/bin/env bash
# test_tokenizer_cli.sh — the BPE path as a user runs it: `dealer tokenizer train|encode|decode|stat`, converting
# text and JSONL pairs with --tokenizer (parallel output equal to serial, the .tokenizer stamp, --skip-bad), a short
# GPT run on BPE data that keeps its tokenizer, `generate` and `eval` finding it without being told (eval printing
# bits per byte), and every mismatch (data of another tokenizer, a vocabulary too small, a wrong --tokenizer, bad
# tokenizer files) refused with exit 2 and one line naming what to fix.
set -euo pipefail

D=${DEALER_BIN:?set DEALER_BIN to the dealer binary}
SRC=${DEALER_SOURCE_DIR:?set DEALER_SOURCE_DIR to the repository root}
T=$(mktemp -d /tmp/dealer_e2e_tok.XXXXXX)
trap 'rm -rf "$T"' EXIT

# fail, expect CODE CMD..., has/lacks out|err TEXT (stdout and stderr kept in $T/out and $T/err)
# shellcheck source=tests/e2e/lib_expect.sh
source "$SRC/tests/e2e/lib_expect.sh"
FIX="$SRC/tests/fixtures/tokenizer/tokenizer.json"

# ---- help and usage ----
expect 0 "$D" tokenizer --help; has out "train"
for sub in train encode decode stat; do expect 0 "$D" tokenizer $sub --help; has out "usage: dealer tokenizer $sub"; done
expect 2 "$D" tokenizer
expect 2 "$D" tokenizer frob; has err "unknown command 'frob'"
expect 2 "$D" tokenizer train "$SRC/data/tinyshakespeare.txt" -o "$T/x.json"; has err "--vocab-size is required"
expect 2 "$D" tokenizer train "$SRC/data/tinyshakespeare.txt" -o "$T/x.json" --vocab-size 100
has err "too small"
expect 2 "$D" tokenizer train "$T/missing.txt" -o "$T/x.json" --vocab-size 300; has err "missing.txt"
[ ! -e "$T/x.json" ] || fail "a failed training left x.json"
expect 2 "$D" tokenizer encode "$T/missing.json" "hi"; has err "missing.json"
expect 2 "$D" tokenizer decode "$FIX" 1 x; has err "'x' is not a token id"
expect 2 "$D" tokenizer decode "$FIX" 99999; has err "outside the vocabulary"

# ---- bad tokenizer files: one line, exit 2 ----
printf '{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}' > "$T/broken.json"
expect 2 "$D" tokenizer stat "$T/broken.json"; has err "broken.json:1:"
python3 - "$FIX" "$T" <<'PY' || { echo "python3 needed for the variants"; exit 1; }
import json, sys
d = json.load(open(sys.argv[1]))
def write(name, edit):
    e = json.loads(json.dumps(d)); edit(e); json.dump(e, open(f"{sys.argv[2]}/{name}", "w"))
write("normalizer.json", lambda e: e.__setitem__("normalizer", {"type": "NFKC"}))
write("wordpiece.json", lambda e: e["model"].__setitem__("type", "WordPiece"))
write("badmerge.json", lambda e: e["model"]["merges"].append(["Ġ", "zzzz"]))
write("template.json", lambda e: e.__setitem__("post_processor", {"type": "TemplateProcessing"}))
PY
expect 2 "$D" tokenizer stat "$T/normalizer.json"; has err "\"normalizer\" of type NFKC is not supported"
expect 2 "$D" tokenizer stat "$T/wordpiece.json"; has err "model.type is WordPiece"
expect 2 "$D" tokenizer stat "$T/badmerge.json"; has err "'zzzz' is not in the vocabulary"
expect 2 "$D" tokenizer stat "$T/template.json"; has err "post_processor"

# ---- train, encode, decode ----
head -c 300000 "$SRC/data/tinyshakespeare.txt" > "$T/text.txt"
expect 0 "$D" tokenizer train "$T/text.txt" -o "$T/tok.json" --vocab-size 320 --special '<|endoftext|>' --no-progress
has out "vocabulary 320"
expect 0 "$D" tokenizer stat "$T/tok.json" "$T/text.txt"; has out "bpe"; has out "bytes/token"
expect 0 "$D" tokenizer encode "$T/tok.json" "First Citizen: héllo 👍<|endoftext|>"
ids=$(cat "$T/out")
printf 'First Citizen: héllo 👍<|endoftext|>' > "$T/want"
"$D" tokenizer decode "$T/tok.json" $ids > "$T/back"
cmp "$T/want" "$T/back" || fail "decode(encode(x)) != x"
[[ $(echo "$ids" | wc -w) -lt 30 ]] || fail "BPE did not merge: $ids"

# ---- convert: parallel == serial, stamp ----
expect 0 "$D" data convert --format text "$T/text.txt" -o "$T/t1.tfrecord" --tokenizer "$T/tok.json" --threads 1 \
    --valid-fraction 0.1 --valid-out "$T/v1.tfrecord" --no-progress
expect 0 "$D" data convert --format text "$T/text.txt" -o "$T/t3.tfrecord" --tokenizer "$T/tok.json" --threads 3 \
    --valid-fraction 0.1 --valid-out "$T/v3.tfrecord" --no-progress
cmp "$T/t1.tfrecord" "$T/t3.tfrecord" || fail "3 threads wrote other records than 1"
cmp "$T/v1.tfrecord" "$T/v3.tfrecord" || fail "3 threads wrote another valid file than 1"
hash=$("$D" tokenizer stat "$T/tok.json" | awk '/^hash/ {print $2}')
grep -q "\"hash\": \"$hash\"" "$T/t1.tfrecord.tokenizer" || fail "t1.tfrecord.tokenizer does not hold $hash"
grep -q "\"hash\": \"$hash\"" "$T/v1.tfrecord.tokenizer" || fail "v1.tfrecord.tokenizer does not hold $hash"
expect 0 "$D" data convert --format text "$T/text.txt" -o "$T/bytes.tfrecord" --no-progress
expect 2 "$D" data convert --format libsvm "$T/text.txt" -o "$T/x" --tokenizer "$T/tok.json"
has err "--tokenizer applies to --format text and jsonl-pairs only"

# ---- JSONL pairs: standard and conversational, bad lines ----
cat > "$T/p.jsonl" <<'JSONL'
{"prompt": "2+2=", "chosen": "4", "rejected": "5"}
{"chosen": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}], "rejected": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "go away"}]}
{"prompt": "x", "chosen": [{"role": "assistant", "content": "a"}], "rejected": "b"}
JSONL
expect 2 "$D" data convert --format jsonl-pairs "$T/p.jsonl" -o "$T/p.tfrecord" --tokenizer "$T/tok.json"
has err "p.jsonl:3: \"rejected\" must be a message list like \"chosen\""
[ ! -e "$T/p.tfrecord" ] || fail "a failed conversion left p.tfrecord"
expect 0 "$D" data convert --format jsonl-pairs "$T/p.jsonl" -o "$T/p.tfrecord" --tokenizer "$T/tok.json" --skip-bad
has out "wrote 2 records"; has err "skipped 1 malformed line"
expect 0 "$D" data stat "$T/p.tfrecord"; has out "pairs: 2"

# ---- make-pairs with a tokenizer ----
expect 0 "$D" data make-pairs "$SRC/data/tinyshakespeare.txt" -o "$T/mp.tfrecord" --tokenizer "$T/tok.json"
grep -q "\"hash\": \"$hash\"" "$T/mp.tfrecord.tokenizer" || fail "make-pairs did not stamp its tokenizer"
expect 0 "$D" data stat "$T/mp.tfrecord"; has out "pairs"
expect 2 "$D" data make-pairs "$SRC/data/tinyshakespeare.txt" -o "$T/mp2.tfrecord" --tokenizer "$T/nope.json"
has err "nope.json"; [ ! -e "$T/mp2.tfrecord" ] || fail "a failed make-pairs left its output"

# ---- a GPT run on BPE data ----
args=(run.dir="$T/run" data.train="$T/t1.tfrecord" data.valid="$T/v1.tfrecord" data.tokenizer="$T/tok.json"
      model.vocab_size=320 model.n_layer=1 model.n_head=2 model.n_embd=32 model.max_seq_len=32 data.seq_len=32
      train.batch_per_rank=4 train.steps=20 train.eval_every=0 train.eval_steps=2 optim.lr=3e-3 ckpt.every=20
      log.every=10 train.threads=1)
expect 0 "$D" train "$SRC/configs/gpt-shakespeare.yaml" "${args[@]}"
[ -f "$T/run/tokenizer.json" ] || fail "the run did not keep its tokenizer"
expect 0 "$D" tokenizer stat "$T/run/tokenizer.json"; has out "$hash"
h5dump -a /tokenizer_hash "$T/run/ckpt/step_00000020.h5" > "$T/attr" 2>&1 || { cat "$T/attr"; fail "no tokenizer_hash"; }
grep -q "$hash" "$T/attr" || fail "the checkpoint records another tokenizer hash"
expect 0 "$D" generate "$T/run" --prompt "KING" --tokens 20 --seed 3
has out "KING"
expect 0 "$D" eval "$T/run" --json; has out '"bits_per_byte"'
# bits/byte = bits/token * tokens / bytes: both are positive and the byte figure is the smaller
python3 - "$T/out" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
assert 0 < r["bits_per_byte"] < r["bits_per_token"], r
assert r["target_bytes"] > r["targets"], r
PY

# ---- mismatches: exit 2, both hashes named ----
expect 2 "$D" train "$SRC/configs/gpt-shakespeare.yaml" "${args[@]}" run.dir="$T/run2" data.train="$T/bytes.tfrecord"
has err "bytes.tfrecord was made with tokenizer"; has err "$hash"
expect 2 "$D" train "$SRC/configs/gpt-shakespeare.yaml" "${args[@]}" run.dir="$T/run3" model.vocab_size=300
has err "model.vocab_size 300 is smaller than the vocabulary"
expect 2 "$D" eval "$T/run" --data "$T/bytes.tfrecord"; has err "was made with tokenizer"
# resuming the BPE run with another tokenizer (and data to match it) is refused before any step
expect 0 "$D" data convert --format text "$T/text.txt" -o "$T/fix.tfrecord" --tokenizer "$FIX" --no-progress
expect 2 "$D" train "$SRC/configs/gpt-shakespeare.yaml" "${args[@]}" data.tokenizer="$FIX" data.train="$T/fix.tfrecord" \
    data.valid= model.vocab_size=512 train.steps=40
has err "was trained with tokenizer $hash"
expect 2 "$D" generate "$T/run" --tokenizer "$FIX" --tokens 2; has err "was trained with tokenizer $hash"
expect 2 "$D" train "$SRC/configs/fm-criteo.yaml" data.tokenizer="$T/tok.json"; has err "data.tokenizer applies to gpt and dpo"
echo "OK"

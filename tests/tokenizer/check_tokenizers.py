#!/usr/bin/env python3
"""Equality of dealer's byte-level BPE with Hugging Face `tokenizers` (the library users already trust).

usage: check_tokenizers.py DEALER_BIN SOURCE_DIR WORK_DIR

For the same tokenizer.json, dealer's ids must EQUAL `tokenizers`' ids, on the whole of tinyshakespeare and on a
hostile set (emoji, CJK, combining marks, RTL, invalid UTF-8, 10,000 spaces, CRLF, NUL, every byte, every Unicode
code point, mixed special tokens); and decode(encode(x)) == x for every valid UTF-8 input. Both directions:
  - vocabularies trained by `tokenizers` (ByteLevel BPE) and variants of them (merges as "a b" strings,
    add_prefix_space, vocab.json + merges.txt, a vocabulary missing bytes, added tokens with lstrip/rstrip/
    single_word) loaded by dealer;
  - a vocabulary trained by `dealer tokenizer train` loaded by `tokenizers` (and equal, merge for merge, to the one
    `tokenizers` trains from the same file with the same options).
Invalid UTF-8 is compared against `tokenizers` on bytes.decode("utf-8", "replace"): `tokenizers` takes only str,
and that is the one conversion both sides define (see src/data/tokenizer.h).

Exit 0 when everything is equal, 1 with the first differences otherwise, 77 (skip) without the `tokenizers` wheel.
"""
import json
import os
import subprocess
import sys

try:
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
except ImportError:
    print("SKIP: the Python package `tokenizers` is not installed (scripts/setup installs it)")
    sys.exit(77)

DEALER, SRC, WORK = sys.argv[1], sys.argv[2], sys.argv[3]
SHAKESPEARE = os.path.join(SRC, "data", "tinyshakespeare.txt")
os.makedirs(WORK, exist_ok=True)
failures = []


def dealer(*args, stdin=None):
    r = subprocess.run([DEALER, *args], input=stdin, capture_output=True)
    if r.returncode != 0:
        raise RuntimeError(f"dealer {' '.join(args)} exited {r.returncode}: {r.stderr.decode(errors='replace')}")
    return r.stdout


def dealer_encode(tok_path, data):
    path = os.path.join(WORK, "input.bin")
    with open(path, "wb") as f:
        f.write(data)
    out = dealer("tokenizer", "encode", tok_path, "--file", path).decode().split()
    return [int(x) for x in out]


def dealer_decode(tok_path, ids):
    return dealer("tokenizer", "decode", tok_path, stdin=" ".join(map(str, ids)).encode())


def first_difference(a, b):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return min(len(a), len(b))


def hostile_inputs():
    cases = {
        "emoji": "👍🏽 family 👨‍👩‍👧‍👦 flags 🇯🇵🇫🇷 keycap 1️⃣ 😀😃😄".encode(),
        "cjk": "日本語のテキスト、中文字符串。한국어 텍스트 ｆｕｌｌｗｉｄｔｈ".encode(),
        "combining": "e\u0301 a\u0308\u0304 Z̷̢̛a̸l̵g̶o̴ n\u0303o\u0328".encode(),
        "rtl": "مرحبا بالعالم שלום עולם \u202eevil\u202c ١٢٣".encode(),
        "invalid_utf8": b"\xff\xfe abc \xc3\x28 \xe2\x82 \xed\xa0\x80 \xf0\x9f\x98 \x80\x80 \xf4\x90\x80\x80 \xc0\xaf end\xe0",
        "lone_surrogates_utf8": b"\xed\xa0\x80\xed\xbf\xbf x \xed\xb0\x80",
        "spaces_10000": b" " * 10000,
        "word_spaces_word": b"a" + b" " * 10000 + b"b",
        "newlines": b"\n" * 5000 + b"x\n\n \n\t\n",
        "crlf": b"line one\r\nline two\r\n\r\n  indented\r\n",
        "nul": b"a\x00b\x00\x00 c \x00",
        "every_byte": bytes(range(256)),
        "every_byte_twice": bytes(range(256)) * 2,
        "specials": b"<|endoftext|><|endoftext|>x<|endoftext|> <|endoftext|>\n<|endoft <|endoftext|",
        "contractions": b"I'm he's they'll we've you'd it's DON'T 'S ''s '  've",
        "numbers": "123 4567 ١٢٣ ⅷ ½ 3.14 1e10 0x1F".encode(),
        "whitespace_kinds": "a\u00a0b\u1680c\u2000d\u200ae\u2028f\u2029g\u202fh\u205fi\u3000j\u0085k\u180el\u200bm\u000bn\u000c".encode(),
        "empty": b"",
        "one_byte": b"x",
    }
    with open(SHAKESPEARE, "rb") as f:
        cases["tinyshakespeare"] = f.read()
    return cases


def every_code_point():
    """Every code point (surrogates excluded: not encodable), each between a space and a letter, so that its regex
    class (letter, number, space, other) decides the split: where PCRE2 and `tokenizers`' Oniguruma could differ."""
    cps = [c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    return {f"every_code_point_{part}": "".join(" " + chr(c) + "a" for c in cps[part::4]).encode("utf-8")
            for part in range(4)}


def compare(label, hf, tok_path, cases, roundtrip=True):
    for name, data in cases.items():
        text = data.decode("utf-8", "replace")
        want = hf.encode(text).ids
        got = dealer_encode(tok_path, data)
        if got != want:
            i = first_difference(got, want)
            failures.append(f"{label}/{name}: ids differ at {i}: dealer {got[i:i+8]} tokenizers {want[i:i+8]} "
                            f"(lengths {len(got)} vs {len(want)})")
            continue
        try:
            valid = data.decode("utf-8") is not None
        except UnicodeDecodeError:
            valid = False
        if roundtrip and valid:
            back = dealer_decode(tok_path, got)
            if back != data:
                failures.append(f"{label}/{name}: decode(encode(x)) != x")
    print(f"{label}: {len(cases)} inputs compared")


def train_hf(vocab_size, special, path, min_frequency=0, alphabet=True, corpus=SHAKESPEARE):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    kw = dict(vocab_size=vocab_size, special_tokens=special, show_progress=False, min_frequency=min_frequency)
    if alphabet:
        kw["initial_alphabet"] = pre_tokenizers.ByteLevel.alphabet()
    tok.train([corpus], trainers.BpeTrainer(**kw))
    tok.save(path)
    return tok


def variant(src_path, dst_path, edit):
    with open(src_path, encoding="utf-8") as f:
        d = json.load(f)
    edit(d)
    with open(dst_path, "w", encoding="utf-8") as f:
        json.dump(d, f, ensure_ascii=False)
    return Tokenizer.from_file(dst_path)


def main():
    cases = hostile_inputs()
    big = every_code_point()

    # 1. vocabularies trained by `tokenizers`, loaded by dealer
    hf_path = os.path.join(WORK, "hf.json")
    hf = train_hf(1000, ["<|endoftext|>"], hf_path)
    compare("tokenizers-trained", hf, hf_path, cases)
    compare("tokenizers-trained", hf, hf_path, big)

    fixture = os.path.join(SRC, "tests", "fixtures", "tokenizer", "tokenizer.json")
    compare("fixture", Tokenizer.from_file(fixture), fixture, cases)

    def string_merges(d):
        d["model"]["merges"] = [" ".join(m) if isinstance(m, list) else m for m in d["model"]["merges"]]
    p = os.path.join(WORK, "string_merges.json")
    compare("string-merges", variant(hf_path, p, string_merges), p, cases)

    def prefix_space(d):
        d["pre_tokenizer"]["add_prefix_space"] = True
    p = os.path.join(WORK, "prefix_space.json")
    # decode gives the added space back, so no round trip here
    compare("add-prefix-space", variant(hf_path, p, prefix_space), p, cases, roundtrip=False)

    def added_tokens(d):
        top = max(d["model"]["vocab"].values())
        d["added_tokens"] += [
            {"id": top + 1, "content": "hello", "single_word": False, "lstrip": True, "rstrip": True,
             "normalized": False, "special": False},
            {"id": top + 2, "content": "<pad>", "single_word": False, "lstrip": False, "rstrip": False,
             "normalized": False, "special": True},
            {"id": top + 3, "content": "KING", "single_word": True, "lstrip": False, "rstrip": False,
             "normalized": True, "special": False},
            {"id": top + 4, "content": "KING RICHARD", "single_word": False, "lstrip": False, "rstrip": False,
             "normalized": True, "special": False},
        ]
    p = os.path.join(WORK, "added.json")
    added = variant(hf_path, p, added_tokens)
    compare("added-tokens", added, p, cases)
    # lstrip/rstrip fold the spaces around "hello" into the token, so this text does not round-trip (in either)
    compare("added-tokens", added, p, {"added_tokens": b"say hello  there,hello\n<pad><pad>x KING RICHARD KINGS KING, "
                                                      b"aKING <pad> hellohello  hello <|endoftext|>hello"},
            roundtrip=False)

    # A vocabulary that lacks bytes never seen in training: `tokenizers` drops such bytes (no unk token).
    p = os.path.join(WORK, "no_alphabet.json")
    train_hf(400, [], p, alphabet=False)
    compare("missing-bytes", Tokenizer.from_file(p), p, cases, roundtrip=False)

    # vocab.json + merges.txt (GPT-2's original files): <|...|> entries become special tokens.
    vm_dir = os.path.join(WORK, "vocab_merges")
    os.makedirs(vm_dir, exist_ok=True)
    hf.model.save(vm_dir)
    compare("vocab-merges", hf, os.path.join(vm_dir, "vocab.json"), cases)

    # 2. a vocabulary trained by dealer, loaded by `tokenizers`; the same merges as BpeTrainer's, also on a corpus
    #    holding special tokens, CRLF line ends and non-ASCII text (training does not cut specials out) where the
    #    pairs run out before the vocabulary is full
    odd = os.path.join(WORK, "odd_corpus.txt")
    with open(odd, "w", encoding="utf-8", newline="") as f:
        f.write(("hello world<|endoftext|>the end of text<|endoftext|>\n" * 50 +
                 "endoftext endoftext |> <| more\r\nlines \u00e9t\u00e9 \u65e5\u672c\n") * 3)
    for corpus, vocab_size, min_freq in ((SHAKESPEARE, 1000, 0), (SHAKESPEARE, 700, 5), (odd, 400, 0)):
        tag = f"{os.path.basename(corpus)}-{vocab_size}"
        dl_path = os.path.join(WORK, f"dealer_{tag}.json")
        args = ["tokenizer", "train", corpus, "-o", dl_path, "--vocab-size", str(vocab_size),
                "--special", "<|endoftext|>", "--no-progress"]
        if min_freq:
            args += ["--min-frequency", str(min_freq)]
        dealer(*args)
        dl = Tokenizer.from_file(dl_path)
        compare(f"dealer-trained-{tag}", dl, dl_path, cases)
        if vocab_size == 1000:
            compare(f"dealer-trained-{tag}", dl, dl_path, big)
        ref_path = os.path.join(WORK, f"hf_{tag}.json")
        train_hf(vocab_size, ["<|endoftext|>"], ref_path, min_frequency=min_freq, corpus=corpus)
        with open(dl_path, encoding="utf-8") as f:
            mine = json.load(f)["model"]
        with open(ref_path, encoding="utf-8") as f:
            ref = json.load(f)["model"]
        if mine["vocab"] != ref["vocab"]:
            failures.append(f"dealer-trained-{tag}: vocabulary differs from tokenizers' BpeTrainer")
        mm = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in mine["merges"]]
        rm = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in ref["merges"]]
        if mm != rm:
            i = first_difference(mm, rm)
            failures.append(f"dealer-trained-{tag}: merge {i} differs: dealer {mm[i:i+3]} "
                            f"tokenizers {rm[i:i+3]} ({len(mm)} vs {len(rm)} merges)")
        print(f"dealer-trained-{tag}: {len(mm)} merges, same as tokenizers: {mm == rm}")

    if failures:
        print(f"FAIL: {len(failures)} difference(s):")
        for f in failures[:40]:
            print("  " + f)
        return 1
    print("OK: dealer and tokenizers agree on every input")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Encoding speed of dealer's BPE against Hugging Face `tokenizers`, single-threaded, same tokenizer.json, same text.

usage: bench/bench_tokenizer.py BENCH_BIN [TOKENIZER] [TEXT] [--copies N] [--rounds R]

TEXT is repeated N times and cut into documents, each ending after a blank line ("\n\n"), as a corpus is fed to
a tokenizer (one huge string is not a fair test: `tokenizers` slows down badly on a multi-megabyte string, 0.14 MB/s
here). Runs A (dealer: BENCH_BIN = build/bench_tokenizer, fresh cache) and B (`tokenizers`: a fresh
Tokenizer.from_file, then encode_batch over the documents on one thread, RAYON_NUM_THREADS=1) interleaved
A,B,A,B... R times, checks both give the same number of tokens, and prints min and median MB/s of each and their
ratio. Defaults: tests/fixtures/tokenizer/tokenizer.json on data/tinyshakespeare.txt x 8, 5 rounds."""
import os
import statistics
import subprocess
import sys
import time

os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
from tokenizers import Tokenizer  # noqa: E402

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
args = [a for a in sys.argv[1:]]
copies, rounds = 8, 5
if "--copies" in args:
    i = args.index("--copies"); copies = int(args[i + 1]); del args[i:i + 2]
if "--rounds" in args:
    i = args.index("--rounds"); rounds = int(args[i + 1]); del args[i:i + 2]
bench = args[0]
tok_path = args[1] if len(args) > 1 else os.path.join(root, "tests/fixtures/tokenizer/tokenizer.json")
text_path = args[2] if len(args) > 2 else os.path.join(root, "data/tinyshakespeare.txt")
with open(text_path, "rb") as f:
    raw = f.read() * copies
docs, start = [], 0
while start < len(raw):
    end = raw.find(b"\n\n", start)
    stop = len(raw) if end < 0 else end + 2
    docs.append(raw[start:stop].decode("utf-8", "replace"))
    start = stop
mb = len(raw) / 1e6

dealer, hf, dealer_cpu, hf_cpu = [], [], [], []
hf_tokens = None
for r in range(rounds):
    out = subprocess.run([bench, tok_path, text_path, "--copies", str(copies), "--reps", "1"], check=True,
                         capture_output=True, text=True).stdout.split()
    dealer.append(float(out[3]))
    dealer_cpu.append(float(out[9]))
    dealer_tokens = int(out[5])
    tok = Tokenizer.from_file(tok_path)
    c0, t0 = time.process_time(), time.perf_counter()
    encodings = tok.encode_batch(docs)
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    hf.append(mb / dt)
    hf_cpu.append(mb / cpu)
    hf_tokens = sum(len(e.ids) for e in encodings)
    if dealer_tokens != hf_tokens:
        sys.exit(f"token counts differ: dealer {dealer_tokens}, tokenizers {hf_tokens}")
print(f"text: {text_path} x {copies} = {mb:.1f} MB in {len(docs)} documents, {hf_tokens} tokens, "
      f"tokenizer {tok_path}")
print(f"dealer     MB/s: min {min(dealer):.2f} median {statistics.median(dealer):.2f}  ({', '.join(f'{x:.2f}' for x in dealer)})")
print(f"tokenizers MB/s: min {min(hf):.2f} median {statistics.median(hf):.2f}  ({', '.join(f'{x:.2f}' for x in hf)})")
print(f"dealer     MB/CPU-s: median {statistics.median(dealer_cpu):.2f}; tokenizers MB/CPU-s: median "
      f"{statistics.median(hf_cpu):.2f}")
print(f"median ratio dealer/tokenizers: wall {statistics.median(dealer) / statistics.median(hf):.2f}x, "
      f"CPU {statistics.median(dealer_cpu) / statistics.median(hf_cpu):.2f}x")

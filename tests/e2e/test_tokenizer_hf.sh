#!/usr/bin/env bash
# test_tokenizer_hf.sh — dealer's BPE tokenizer against Hugging Face `tokenizers`: identical ids on tinyshakespeare,
# a hostile set and every Unicode code point, in both directions (vocabularies trained by `tokenizers` loaded by
# dealer, and one trained by `dealer tokenizer train` loaded by `tokenizers`, merge for merge equal to BpeTrainer's).
# The work is tests/tokenizer/check_tokenizers.py; this runs it. scripts/setup installs the `tokenizers` wheel, so
# CI runs it; without python3 or the wheel it says SKIP and passes.
set -euo pipefail

D=${DEALER_BIN:?set DEALER_BIN to the dealer binary}
SRC=${DEALER_SOURCE_DIR:?set DEALER_SOURCE_DIR to the repository root}
T=$(mktemp -d /tmp/dealer_e2e_tokhf.XXXXXX)
trap 'rm -rf "$T"' EXIT

if ! command -v python3 >/dev/null; then
    echo "SKIP: python3 is not installed (scripts/setup installs it with the tokenizers wheel)"
    exit 0
fi
if ! python3 -c "import tokenizers" 2>/dev/null; then
    echo "SKIP: the Python package 'tokenizers' is not installed (scripts/setup installs it)"
    exit 0
fi
python3 "$SRC/tests/tokenizer/check_tokenizers.py" "$D" "$SRC" "$T"

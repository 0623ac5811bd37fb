#!/bin/sh
# fuzz-seeds.sh DIR [SHARED_DIR] - build the seed corpora:
# DIR/model: small synthetic models (`make-seeds --models`) for fuzz_model;
# DIR/tokenizer: llama.cpp's tokenizer test strings (SHARED_DIR/vocab/*.inp);
# DIR/imatrix: importance matrices, legacy and GGUF (`make-seeds --imatrix`);
# DIR/gguf for fuzz_gguf:
#   - the small valid files `make-seeds` writes with the project's writer;
#   - for every model in SHARED_DIR/models (when present), its first
#     min(64 KiB, file size) bytes: real headers, cut where the data begins.
# MAKE_SEEDS names the seeds program (default: build-fuzz/make-seeds next to
# this script's repository).
set -eu
if [ $# -lt 1 ] || [ $# -gt 2 ]; then
    echo "usage: $0 DIR [SHARED_DIR]" >&2
    exit 1
fi
dir=$1
shared=${2:-}
root=$(cd "$(dirname "$0")/.." && pwd)
make_seeds=${MAKE_SEEDS:-$root/build-fuzz/make-seeds}

out=$dir/gguf
mkdir -p "$out"
"$make_seeds" "$out"

n=0
if [ -n "$shared" ] && [ -d "$shared/models" ]; then
    for f in "$shared"/models/*.gguf; do
        [ -f "$f" ] || continue
        head -c 65536 "$f" > "$out/header-$(basename "$f")"
        n=$((n + 1))
    done
    echo "fuzz-seeds: $n model headers from $shared/models"
else
    echo "fuzz-seeds: no $shared/models: writer seeds only"
fi

mkdir -p "$dir/model" "$dir/tokenizer" "$dir/imatrix"
"$make_seeds" --models "$dir/model"
"$make_seeds" --imatrix "$dir/imatrix"
if [ -n "$shared" ] && [ -d "$shared/vocab" ]; then
    for f in "$shared"/vocab/*.inp; do
        [ -f "$f" ] && cp "$f" "$dir/tokenizer/$(basename "$f")"
    done
fi
printf 'Hello world\n' > "$dir/tokenizer/hello.txt"
printf ' \xe2\x96\x81<s>\xf0\x9f\xa6\x99 <0x41>\t\r\n' > "$dir/tokenizer/specials.txt"

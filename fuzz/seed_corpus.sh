#!/usr/bin/env bash
# seed_corpus.sh — builds the fuzzers' starting corpora in OUT_DIR (not committed):
#   OUT_DIR/model_load:   every model.onnx of the ONNX backend test data
#                         (/usr/share/libonnx-testdata, Debian's libonnx-testdata),
#                         the repo's own small .onnx files and fuzz/seeds/model_load
#                         (not fuzz/regressions: fuzz.sh replays those itself, and
#                         the known-open ones would stop the fuzzer at once);
#   OUT_DIR/value_decode: the test data's input_*.pb / output_*.pb up to MAX_PB
#                         bytes and fuzz/seeds/value_decode;
#   OUT_DIR/image_decode: fuzz/seeds/image_decode (small JPEG/PNG files of every
#                         kind, written by tools/gen_image_fixtures.py --fuzz-seeds).
# Files are named by content hash, so duplicates collapse.
# Usage: fuzz/seed_corpus.sh OUT_DIR
set -euo pipefail
out=${1:?usage: seed_corpus.sh OUT_DIR}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
testdata=${ONNX_TESTDATA:-/usr/share/libonnx-testdata/data}
max_model=${MAX_MODEL:-16384}
max_pb=${MAX_PB:-4096}

mkdir -p "$out/model_load" "$out/value_decode" "$out/batch_reader" "$out/image_decode"

add() { # add DEST FILE: copy under its content hash
  local sum
  sum=$(sha1sum "$2" | cut -c1-40)
  cp "$2" "$1/$sum"
}

models=() pbs=()
if [ -d "$testdata" ]; then
  while IFS= read -r -d '' f; do models+=("$f"); done \
    < <(find "$testdata" -name model.onnx -size -"$((max_model + 1))"c -print0)
  while IFS= read -r -d '' f; do pbs+=("$f"); done \
    < <(find "$testdata" -path '*test_data_set_*' -name '*.pb' -size -"$((max_pb + 1))"c -print0)
else
  echo "seed_corpus.sh: $testdata missing (apt-get install libonnx-testdata); using committed seeds only" >&2
fi
while IFS= read -r -d '' f; do models+=("$f"); done \
  < <(find "$repo" -path "$repo/build*" -prune -o -path "$repo/.git" -prune -o \
        -path "$repo/fuzz/regressions" -prune -o \
        -name '*.onnx' -size -"$((max_model + 1))"c -print0)
while IFS= read -r -d '' f; do pbs+=("$f"); done \
  < <(find "$here/seeds/value_decode" -type f -print0)

for f in "$here"/seeds/batch_reader/*; do add "$out/batch_reader" "$f"; done
for f in "${models[@]}"; do add "$out/model_load" "$f"; done
for f in "${pbs[@]}"; do add "$out/value_decode" "$f"; done
while IFS= read -r -d '' f; do add "$out/image_decode" "$f"; done \
  < <(find "$here/seeds/image_decode" -type f -print0)
echo "seed_corpus.sh: $(ls "$out/model_load" | wc -l) model seeds, $(ls "$out/value_decode" | wc -l) value seeds, $(ls "$out/image_decode" | wc -l) image seeds in $out" >&2

#!/usr/bin/env bash
# Runs every test of the C connector:
#   1. native unit tests of src/text.c under AddressSanitizer/UBSan,
#   2. ./build.sh,
#   3. tests/e2e.py against a Plugboard host and a fake Tasks API on loopback,
#   4. `plugboard test` (conformance + plugboard-test.json), when the host
#      binary has that command and the fixture file exists.
#
#   tests/run.sh                              # plugboard from PATH
#   PLUGBOARD=/path/to/plugboard tests/run.sh
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
plugboard=${PLUGBOARD:-$(command -v plugboard || true)}
[[ -n $plugboard ]] || { echo "run.sh: no plugboard binary: put it on PATH or set PLUGBOARD" >&2; exit 1; }

mkdir -p build
echo "== unit tests"
"${CC_NATIVE:-cc}" -std=c11 -Wall -Wextra -Wpedantic -Werror \
    -fsanitize=address,undefined -fno-sanitize-recover=all \
    -I src src/text.c tests/unit_test.c -o build/unit_test
./build/unit_test

echo "== build"
./build.sh

echo "== end-to-end ($plugboard)"
python3 tests/e2e.py --plugboard "$plugboard" --wasm dist/tasks.wasm

if [[ -f plugboard-test.json ]] && "$plugboard" test --help >/dev/null 2>&1; then
    echo "== plugboard test"
    "$plugboard" test dist/tasks.wasm
else
    echo "== plugboard test: skipped (no plugboard-test.json or no \`plugboard test\` in $plugboard)"
fi

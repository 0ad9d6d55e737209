#!/usr/bin/env bash
# Builds the connector component.
#
#   ./build.sh [OUT.wasm]     # default: dist/$NAME.wasm
#
# Tools: componentize-py, pinned in requirements.txt; ./setup.sh installs it
# into ./.venv, which this script prefers over one on PATH.
NAME=tasks
set -euo pipefail
cd "$(dirname "$0")"
HERE=$(pwd)

OUT=${1:-dist/$NAME.wasm}
case "$OUT" in /*) ;; *) OUT="$HERE/$OUT" ;; esac

PIN=$(grep -E '^componentize-py==' requirements.txt | cut -d= -f3)
if [ -x .venv/bin/componentize-py ]; then
    CPY=.venv/bin/componentize-py
elif command -v componentize-py >/dev/null 2>&1; then
    CPY=$(command -v componentize-py)
else
    echo "build.sh: componentize-py not found (need $PIN); run ./setup.sh, or: pip install componentize-py==$PIN" >&2
    exit 1
fi
HAVE=$("$CPY" --version | awk '{print $2}')
if [ "$HAVE" != "$PIN" ]; then
    echo "build.sh: componentize-py $HAVE found at $CPY, but $PIN is pinned; run ./setup.sh" >&2
    exit 1
fi

# The WIT: the repository's when this connector sits in the Plugboard tree,
# else the copy `plugboard new` puts in ./wit.
if [ -f ../../wit/connector.wit ]; then
    WIT_SRC=../../wit
elif [ -f wit/connector.wit ]; then
    WIT_SRC=wit
else
    echo "build.sh: no WIT found (looked for ../../wit/connector.wit and wit/connector.wit)" >&2
    exit 1
fi
rm -rf build
mkdir -p build "$(dirname "$OUT")"
cp -R "$WIT_SRC" build/wit

# Bindings in build/bindings are for editors and type checkers (point them
# at it); componentize-py generates its own copy while componentizing.
"$CPY" -d build/wit -w connector bindings build/bindings
"$CPY" -d build/wit -w connector componentize -p src -o "$OUT" app
echo "built $OUT ($(wc -c <"$OUT") bytes)"

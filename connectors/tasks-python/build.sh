#!/usr/bin/env bash
# Builds the connector component.
#
#   ./build.sh [OUT.wasm]     # default: dist/$NAME.wasm
#
# Tools: componentize-py, pinned in requirements.txt; ./setup.sh installs it
# into ./.venv. Taken from $COMPONENTIZE_PY, else ./.venv, else PATH; any
# other version than the pinned one is refused.
NAME=tasks
set -euo pipefail
cd "$(dirname "$0")"
HERE=$(pwd)

OUT=${1:-dist/$NAME.wasm}
case "$OUT" in /*) ;; *) OUT="$HERE/$OUT" ;; esac

PIN=$(grep -E '^componentize-py==' requirements.txt | cut -d= -f3)
if [ -n "${COMPONENTIZE_PY:-}" ]; then
    CPY=$COMPONENTIZE_PY
elif [ -x .venv/bin/componentize-py ]; then
    CPY=.venv/bin/componentize-py
elif command -v componentize-py >/dev/null 2>&1; then
    CPY=$(command -v componentize-py)
else
    echo "build.sh: componentize-py not found (need $PIN); run ./setup.sh, or: pip install componentize-py==$PIN" >&2
    exit 1
fi
HAVE=$("$CPY" --version 2>/dev/null | awk '{print $2}' || true)
if [ "$HAVE" != "$PIN" ]; then
    echo "build.sh: componentize-py ${HAVE:-of unknown version} found at $CPY, but $PIN is pinned; run ./setup.sh" >&2
    exit 1
fi

# The WIT: ./wit in a project made by `plugboard new`, else the
# repository's (this example lives in connectors/tasks-python, which has no
# wit/ of its own). Local first, so a project never picks up an unrelated
# ../../wit by accident.
if [ -f wit/connector.wit ]; then
    WIT_SRC=wit
elif [ -f ../../wit/connector.wit ]; then
    WIT_SRC=../../wit
else
    echo "build.sh: no WIT found (looked for wit/connector.wit and ../../wit/connector.wit)" >&2
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

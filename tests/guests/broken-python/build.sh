#!/usr/bin/env bash
# Builds the deliberately broken Python test connector.
#
#   ./build.sh [OUT.wasm]     # default: dist/$NAME.wasm
#
# Same contract as connectors/tasks-python/build.sh. componentize-py (the
# version pinned in requirements.txt) is taken from, in order: $COMPONENTIZE_PY,
# ./.venv, the tasks-python connector's .venv (../../../connectors/tasks-python,
# made by its setup.sh), PATH.
NAME=broken-python
set -euo pipefail
cd "$(dirname "$0")"
HERE=$(pwd)

OUT=${1:-dist/$NAME.wasm}
case "$OUT" in /*) ;; *) OUT="$HERE/$OUT" ;; esac

PIN=$(grep -E '^componentize-py==' requirements.txt | cut -d= -f3)
CPY=${COMPONENTIZE_PY:-}
for candidate in .venv/bin/componentize-py ../../../connectors/tasks-python/.venv/bin/componentize-py; do
    if [ -z "$CPY" ] && [ -x "$candidate" ]; then CPY=$candidate; fi
done
if [ -z "$CPY" ] && command -v componentize-py >/dev/null 2>&1; then
    CPY=$(command -v componentize-py)
fi
if [ -z "$CPY" ]; then
    echo "build.sh: componentize-py not found (need $PIN); run ../../../connectors/tasks-python/setup.sh, or: pip install componentize-py==$PIN" >&2
    exit 1
fi
HAVE=$("$CPY" --version | awk '{print $2}')
if [ "$HAVE" != "$PIN" ]; then
    echo "build.sh: componentize-py $HAVE found at $CPY, but $PIN is pinned" >&2
    exit 1
fi

if [ -f ../../../wit/connector.wit ]; then
    WIT_SRC=../../../wit
elif [ -f wit/connector.wit ]; then
    WIT_SRC=wit
else
    echo "build.sh: no WIT found (looked for ../../../wit/connector.wit and wit/connector.wit)" >&2
    exit 1
fi
rm -rf build
mkdir -p build "$(dirname "$OUT")"
cp -R "$WIT_SRC" build/wit
"$CPY" -q -d build/wit -w connector componentize -p src -o "$OUT" app
echo "built $OUT ($(wc -c <"$OUT") bytes)"

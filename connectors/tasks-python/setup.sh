#!/usr/bin/env bash
# Installs the pinned build tools into ./.venv (idempotent: a second run
# only checks). build.sh uses ./.venv/bin/componentize-py when present.
#
#   ./setup.sh            # needs python3 >= 3.9 with the venv module, and PyPI
#   PYTHON=python3.12 ./setup.sh
set -euo pipefail
cd "$(dirname "$0")"

PYTHON=${PYTHON:-python3}
command -v "$PYTHON" >/dev/null 2>&1 || {
    echo "setup.sh: $PYTHON not found; install Python 3 (with venv) or set PYTHON=" >&2
    exit 1
}

if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv || {
        echo "setup.sh: '$PYTHON -m venv' failed (on Debian: apt-get install python3-venv)" >&2
        exit 1
    }
fi

PIN=$(grep -E '^componentize-py==' requirements.txt | cut -d= -f3)
HAVE=$(.venv/bin/python -m pip show componentize-py 2>/dev/null | sed -n 's/^Version: //p' || true)
if [ "$HAVE" = "$PIN" ]; then
    echo "componentize-py $PIN already installed in .venv"
else
    .venv/bin/python -m pip install --disable-pip-version-check --quiet -r requirements.txt
    echo "installed componentize-py $PIN into .venv"
fi

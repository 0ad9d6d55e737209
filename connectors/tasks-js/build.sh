#!/usr/bin/env bash
# Builds the connector component from source.
#
#   ./build.sh [OUT.wasm]      default: dist/tasks.wasm
#
# Tools: Node.js >= 20 with npm, and @bytecodealliance/componentize-js at the
# exact version pinned in package.json / package-lock.json (installed into
# node_modules/ by `npm ci` when missing or older than the lock file).
# ./setup.sh installs them; docs/authoring/js.md explains the whole setup.
#
# WIT: inside the Plugboard repository the single source of truth is the
# repository's wit/ (../../wit), copied fresh into build/wit/ on every build.
# In a project made by `plugboard new`, which has no ../../wit, the project's
# own wit/ is used. componentize-js wants the WIT directory inside the
# directory it runs in, hence the copy rather than a path outside.
set -euo pipefail

NAME=tasks
ENTRY=src/connector.js
WORLD=connector
MIN_NODE_MAJOR=20

die() { echo "build.sh: $*" >&2; exit 1; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# Resolve OUT against the caller's directory before changing into ours.
out=${1:-$here/dist/$NAME.wasm}
case $out in /*) ;; *) out=$PWD/$out ;; esac
[ $# -le 1 ] || die "usage: ./build.sh [OUT.wasm]"

command -v node >/dev/null 2>&1 || die "node not found: install Node.js >= $MIN_NODE_MAJOR (see docs/authoring/js.md, or run ./setup.sh)"
command -v npm >/dev/null 2>&1 || die "npm not found: install npm with Node.js >= $MIN_NODE_MAJOR (see docs/authoring/js.md, or run ./setup.sh)"
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge "$MIN_NODE_MAJOR" ] || die "node $(node --version) is too old: componentize-js needs Node.js >= $MIN_NODE_MAJOR"

cd "$here"

# npm ci only when node_modules is missing or older than the lock file: npm
# writes node_modules/.package-lock.json on every install.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "build.sh: installing pinned npm packages (npm ci)" >&2
  npm ci --no-audit --no-fund >&2
fi
[ -x node_modules/.bin/componentize-js ] || die "node_modules/.bin/componentize-js missing after npm ci"

if [ -f "$here/../../wit/connector.wit" ]; then
  rm -rf build/wit
  mkdir -p build
  cp -R "$here/../../wit" build/wit
  wit=build/wit
elif [ -f wit/connector.wit ]; then
  wit=wit
else
  die "no WIT found: expected ../../wit/connector.wit (inside the Plugboard repository) or wit/connector.wit"
fi

mkdir -p "$(dirname "$out")"
tmp="$out.tmp.$$"
trap 'rm -f "$tmp"' EXIT
# Runs from this directory so relative `import`s in src/ resolve: the
# componentize-js pre-initialization maps the working directory to `/`.
node_modules/.bin/componentize-js "$ENTRY" --wit "$wit" --world-name "$WORLD" -o "$tmp"
mv -f "$tmp" "$out"
trap - EXIT
echo "build.sh: wrote $out ($(wc -c <"$out") bytes)" >&2

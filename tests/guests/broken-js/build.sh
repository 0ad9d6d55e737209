#!/usr/bin/env bash
# Builds the `broken-js` test guest.
#
#   ./build.sh [OUT.wasm]      default: dist/broken-js.wasm
#
# Uses the pinned toolchain of the JavaScript example connector
# (connectors/tasks-js: its package.json / package-lock.json, componentize-js
# 0.23.0), installing it there with `npm ci` when missing or older than its
# lock file, so this guest has no node_modules of its own (and none under
# tests/, which cargo watches). The WIT is the repository's wit/, copied
# into build/wit: componentize-js wants it inside the directory it runs in.
set -euo pipefail

NAME=broken-js
ENTRY=src/broken.js
WORLD=connector
MIN_NODE_MAJOR=20

die() { echo "build.sh: $*" >&2; exit 1; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../../.." && pwd)
tools=$root/connectors/tasks-js

out=${1:-$here/dist/$NAME.wasm}
case $out in /*) ;; *) out=$PWD/$out ;; esac
[ $# -le 1 ] || die "usage: ./build.sh [OUT.wasm]"

command -v node >/dev/null 2>&1 || die "node not found: install Node.js >= $MIN_NODE_MAJOR (see docs/authoring/js.md)"
command -v npm >/dev/null 2>&1 || die "npm not found: install npm with Node.js >= $MIN_NODE_MAJOR (see docs/authoring/js.md)"
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge "$MIN_NODE_MAJOR" ] || die "node $(node --version) is too old: componentize-js needs Node.js >= $MIN_NODE_MAJOR"
[ -f "$tools/package-lock.json" ] || die "$tools/package-lock.json not found: this guest builds with the tasks-js toolchain"
[ -f "$root/wit/connector.wit" ] || die "$root/wit/connector.wit not found"

if [ ! -f "$tools/node_modules/.package-lock.json" ] || [ "$tools/package-lock.json" -nt "$tools/node_modules/.package-lock.json" ]; then
  echo "build.sh: installing the pinned npm packages of connectors/tasks-js (npm ci)" >&2
  (cd "$tools" && npm ci --no-audit --no-fund >&2)
fi
[ -x "$tools/node_modules/.bin/componentize-js" ] || die "componentize-js missing in $tools/node_modules after npm ci"

cd "$here"
rm -rf build/wit
mkdir -p build "$(dirname "$out")"
cp -R "$root/wit" build/wit
tmp="$out.tmp.$$"
trap 'rm -f "$tmp"' EXIT
"$tools/node_modules/.bin/componentize-js" "$ENTRY" --wit build/wit --world-name "$WORLD" -o "$tmp"
mv -f "$tmp" "$out"
trap - EXIT
echo "build.sh: wrote $out ($(wc -c <"$out") bytes)" >&2

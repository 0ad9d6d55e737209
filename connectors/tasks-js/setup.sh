#!/usr/bin/env bash
# Installs what building this connector needs on a fresh Debian/Ubuntu
# machine, then the pinned npm packages. Safe to run again: it only installs
# what is missing.
#
#   ./setup.sh
#
# Needs Node.js >= 20 (componentize-js 0.23's parser, oxc-parser, requires
# it) with npm. When node is missing or too old and apt offers nodejs >= 20
# (Debian 13, Ubuntu 24.04), it is installed with apt-get (via sudo when not
# root). Debian 12's own nodejs is 18: there, install Node.js 20+ from
# https://nodejs.org/ or NodeSource and run this again.
set -euo pipefail

MIN_NODE_MAJOR=20

die() { echo "setup.sh: $*" >&2; exit 1; }
say() { echo "setup.sh: $*" >&2; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

node_ok() {
  command -v node >/dev/null 2>&1 || return 1
  [ "$(node -p 'process.versions.node.split(".")[0]')" -ge "$MIN_NODE_MAJOR" ]
}

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else die "need root to run: $* (no sudo found)"
  fi
}

if ! node_ok; then
  have=$(command -v node >/dev/null 2>&1 && node --version || echo "none")
  command -v apt-get >/dev/null 2>&1 || die "Node.js >= $MIN_NODE_MAJOR needed (found: $have) and no apt-get here: install it from https://nodejs.org/"
  say "Node.js >= $MIN_NODE_MAJOR needed (found: $have); looking at apt"
  as_root apt-get update -qq
  candidate=$(apt-cache policy nodejs | awk '/Candidate:/ {print $2}')
  major=${candidate#*:}      # drop an epoch such as "1:"
  major=${major%%.*}
  case $major in ''|*[!0-9]*) major=0 ;; esac
  [ "$major" -ge "$MIN_NODE_MAJOR" ] || die "apt offers nodejs ${candidate:-none}, older than $MIN_NODE_MAJOR: install Node.js $MIN_NODE_MAJOR+ from https://nodejs.org/ or NodeSource, then run ./setup.sh again"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs
  node_ok || die "installed nodejs $candidate but node is still missing or too old"
fi

if ! command -v npm >/dev/null 2>&1; then
  # NodeSource's nodejs ships npm; Debian's packages it separately.
  command -v apt-get >/dev/null 2>&1 || die "npm not found: install npm for Node.js $(node --version)"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm
fi
say "node $(node --version), npm $(npm --version)"

cd "$here"
# npm writes node_modules/.package-lock.json on every install: when it is
# newer than package-lock.json, the installed packages are the locked ones.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing pinned npm packages (npm ci)"
  npm ci --no-audit --no-fund
else
  say "npm packages already installed"
fi
say "ready: ./build.sh [OUT.wasm]"

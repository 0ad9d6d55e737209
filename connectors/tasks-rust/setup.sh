#!/usr/bin/env bash
# Installs what build.sh needs beyond Rust itself: the wasm32-wasip2
# standard library. Idempotent: a second run only checks.
#
#   ./setup.sh            # needs rustup (https://rustup.rs) and Rust >= 1.95
set -euo pipefail

MIN_RUST=1.95
TARGET=wasm32-wasip2

die() {
    echo "setup.sh: $*" >&2
    exit 1
}

command -v rustc >/dev/null 2>&1 ||
    die "rustc not found; install Rust $MIN_RUST or newer with rustup (https://rustup.rs)"
HAVE=$(rustc --version | awk '{print $2}' | cut -d. -f1,2)
if [ "$(printf '%s\n%s\n' "$MIN_RUST" "$HAVE" | sort -t. -k1,1n -k2,2n | head -n1)" != "$MIN_RUST" ]; then
    die "rustc $HAVE is too old: Rust $MIN_RUST or newer is needed (rustup update stable)"
fi

LIBDIR=$(rustc --print target-libdir --target "$TARGET" 2>/dev/null || true)
if [ -n "$LIBDIR" ] && [ -d "$LIBDIR" ]; then
    echo "Rust $HAVE with $TARGET already installed"
    exit 0
fi
command -v rustup >/dev/null 2>&1 ||
    die "$TARGET is not installed and rustup is not available to add it; install Rust with rustup (https://rustup.rs)"
rustup target add "$TARGET"
echo "installed the $TARGET target for Rust $HAVE"

#!/usr/bin/env bash
# Builds the connector component.
#
#   ./build.sh [OUT.wasm]     # default: dist/$NAME.wasm (next to this script)
#
# Tools: cargo and rustc >= $MIN_RUST with the wasm32-wasip2 target
# (./setup.sh adds the target). Crate versions are pinned by Cargo.lock: the
# Plugboard workspace's, or the project's own once the first build wrote it.
# Works both inside the Plugboard repository (SDK at ../../guest-sdk) and in
# a project from `plugboard new` (SDK vendored at ./plugboard-guest, WIT in
# ./wit); Cargo.toml says which.
NAME=tasks
set -euo pipefail

MIN_RUST=1.95
TARGET=wasm32-wasip2
# Library crates are named with `_` where the package has `-`.
STEM=${NAME//-/_}

HERE=$(cd "$(dirname "$0")" && pwd)
# An explicit OUT is relative to where you run the script from.
OUT=${1:-$HERE/dist/$NAME.wasm}
case "$OUT" in /*) ;; *) OUT="$(pwd)/$OUT" ;; esac

die() {
    echo "build.sh: $*" >&2
    exit 1
}

command -v cargo >/dev/null 2>&1 ||
    die "cargo not found; install Rust $MIN_RUST or newer (https://rustup.rs), then run ./setup.sh"
command -v rustc >/dev/null 2>&1 || die "rustc not found; install Rust $MIN_RUST or newer (https://rustup.rs)"

# rustc 1.95.0 (59807616e 2026-04-14) -> 1.95
HAVE=$(rustc --version | awk '{print $2}' | cut -d. -f1,2)
if [ "$(printf '%s\n%s\n' "$MIN_RUST" "$HAVE" | sort -t. -k1,1n -k2,2n | head -n1)" != "$MIN_RUST" ]; then
    die "rustc $HAVE is too old: Rust $MIN_RUST or newer is needed (rustup update stable)"
fi

LIBDIR=$(rustc --print target-libdir --target "$TARGET" 2>/dev/null || true)
if [ -z "$LIBDIR" ] || [ ! -d "$LIBDIR" ]; then
    die "the Rust standard library for $TARGET is not installed; run ./setup.sh (rustup target add $TARGET)"
fi

# The guest profile Plugboard's own tests build with: small components
# upload and compile faster, and each call in flight holds less of the
# host's memory than at opt-level 3. Set here so it applies inside the
# workspace too, whose [profile.release] is the host's.
export CARGO_PROFILE_RELEASE_OPT_LEVEL=s
export CARGO_PROFILE_RELEASE_LTO=true
export CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1
export CARGO_PROFILE_RELEASE_DEBUG=false
export CARGO_PROFILE_RELEASE_STRIP=debuginfo
export CARGO_PROFILE_RELEASE_INCREMENTAL=false

# Cargo prints where it put the artifact; that works with any target
# directory (the workspace's, ./target, or $CARGO_TARGET_DIR). Diagnostics
# still go to the terminal.
MESSAGES=$(cargo build --release --target "$TARGET" \
    --manifest-path "$HERE/Cargo.toml" \
    --message-format=json-render-diagnostics) || die "cargo build failed (see above)"
ARTIFACT=$(printf '%s\n' "$MESSAGES" |
    grep -o "\"filenames\":\[\"[^\"]*/$STEM\.wasm\"" |
    sed -e 's/^"filenames":\["//' -e 's/"$//' | tail -n1 || true)
[ -n "$ARTIFACT" ] && [ -f "$ARTIFACT" ] ||
    die "cargo build succeeded but reported no $STEM.wasm (is the package named $NAME, with crate-type cdylib?)"

mkdir -p "$(dirname "$OUT")"
cp "$ARTIFACT" "$OUT"
echo "built $OUT ($(wc -c <"$OUT") bytes)"

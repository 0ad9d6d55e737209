#!/usr/bin/env bash
# Installs what ./build.sh needs. Idempotent: anything already present at the
# pinned version is left alone, so running it again is cheap.
#
#   ./setup.sh
#
# 1. Debian/Ubuntu packages: clang lld wasi-libc libclang-rt-dev-wasm32
#    (apt-get, via sudo when not root). Elsewhere: install clang >= 14 with
#    wasm-ld and a wasi-libc sysroot yourself (e.g. wasi-sdk; then point
#    CC and WASI_SYSROOT at it when running build.sh).
# 2. wit-bindgen-cli 0.63.0 and wasm-tools 1.263.0 with `cargo install --locked`
#    into ${TOOLS_ROOT:-$HOME/.cargo} (binaries in its bin/). Only the features
#    the build uses are compiled, which keeps the first run to a few minutes.
# 3. The WASI preview1 reactor adapter from the crates.io crate
#    wasi-preview1-component-adapter-provider 48.0.8 (fetched with cargo, so
#    crates.io's checksum applies), copied next to this script and checked
#    against the SHA-256 build.sh pins.
set -euo pipefail

WIT_BINDGEN_VERSION=0.63.0
WASM_TOOLS_VERSION=1.263.0
ADAPTER_CRATE=wasi-preview1-component-adapter-provider
ADAPTER_VERSION=48.0.8
ADAPTER_SHA256=134b86dc09c6b62077f2307b96fa8b83b94dc86737bc705ac3dbe27cb107b1f9
APT_PACKAGES=(clang lld wasi-libc libclang-rt-dev-wasm32)

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
tools_root=${TOOLS_ROOT:-$HOME/.cargo}

say() { echo "setup.sh: $*"; }
die() {
    echo "setup.sh: error: $*" >&2
    exit 1
}

# --- 1. system packages -----------------------------------------------------
if command -v dpkg-query >/dev/null && command -v apt-get >/dev/null; then
    missing=()
    for p in "${APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if ((${#missing[@]})); then
        sudo=()
        ((EUID == 0)) || sudo=(sudo)
        say "installing ${missing[*]}"
        "${sudo[@]}" apt-get update -qq
        DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${missing[@]}"
    else
        say "apt packages present: ${APT_PACKAGES[*]}"
    fi
else
    command -v clang >/dev/null && command -v wasm-ld >/dev/null ||
        die "not a Debian system: install clang >= 14, wasm-ld and wasi-libc (or wasi-sdk) yourself"
    say "not a Debian system; using $(command -v clang) (set WASI_SYSROOT for build.sh if clang lacks a wasi sysroot)"
fi

# --- 2. cargo tools -----------------------------------------------------------
command -v cargo >/dev/null || die "cargo not found: install Rust from https://rustup.rs"

# Prints the version of tool $1 found where build.sh looks, or nothing.
tool_version() {
    local dir
    for dir in "" "$tools_root/bin" "$here/../../target/tools/c/bin"; do
        if [[ -z $dir ]] && command -v "$1" >/dev/null; then
            "$1" --version | awk '{print $2}'
            return
        elif [[ -n $dir && -x $dir/$1 ]]; then
            "$dir/$1" --version | awk '{print $2}'
            return
        fi
    done
}

install_crate() { # install_crate BINARY CRATE VERSION FEATURES
    local have
    have=$(tool_version "$1")
    if [[ $have == "$3" ]]; then
        say "$1 $3 present"
        return
    fi
    say "installing $2 $3 into $tools_root (found: ${have:-none}); this compiles for a few minutes"
    nice -n 10 cargo install --locked --root "$tools_root" "$2" --version "=$3" \
        --no-default-features --features "$4"
}
install_crate wit-bindgen wit-bindgen-cli "$WIT_BINDGEN_VERSION" c
install_crate wasm-tools wasm-tools "$WASM_TOOLS_VERSION" component,validate,print

# --- 3. the WASI adapter ------------------------------------------------------
adapter=$here/wasi_snapshot_preview1.reactor.wasm
sha() { sha256sum "$1" | awk '{print $1}'; }
if [[ -f $adapter && $(sha "$adapter") == "$ADAPTER_SHA256" ]]; then
    say "adapter present"
else
    say "fetching $ADAPTER_CRATE $ADAPTER_VERSION"
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    mkdir "$tmp/src"
    : >"$tmp/src/lib.rs"
    cat >"$tmp/Cargo.toml" <<EOF
[package]
name = "adapter-fetch"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
$ADAPTER_CRATE = "=$ADAPTER_VERSION"
EOF
    cargo fetch --quiet --manifest-path "$tmp/Cargo.toml"
    candidate=
    for dir in "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/"$ADAPTER_CRATE-$ADAPTER_VERSION"; do
        [[ -f $dir/artefacts/wasi_snapshot_preview1.reactor.wasm ]] &&
            candidate=$dir/artefacts/wasi_snapshot_preview1.reactor.wasm
    done
    [[ -n $candidate ]] || die "the fetched $ADAPTER_CRATE $ADAPTER_VERSION has no artefacts/wasi_snapshot_preview1.reactor.wasm"
    got=$(sha "$candidate")
    [[ $got == "$ADAPTER_SHA256" ]] || die "adapter checksum mismatch: $got, want $ADAPTER_SHA256"
    cp "$candidate" "$adapter"
    say "adapter written to $adapter"
fi

say "done; build with ./build.sh"

#!/usr/bin/env bash
# Builds the connector component from source.
#
#   ./build.sh [OUT.wasm]        default: dist/$NAME.wasm
#
# Steps: generate C bindings from the WIT with `wit-bindgen c`, compile them
# and src/*.c plus vendored cJSON with clang for wasm32-wasi (WASI preview 1)
# as a reactor module, then wrap the module into a component with
# `wasm-tools component new` and the preview1-to-preview2 reactor adapter.
#
# Tools (pinned; ./setup.sh installs them, docs/authoring/c.md explains):
#   clang + wasm-ld >= 14, wasi-libc (Debian: clang lld wasi-libc libclang-rt-dev-wasm32)
#   wit-bindgen      0.63.0  (crates.io wit-bindgen-cli)
#   wasm-tools       1.263.0 (crates.io wasm-tools)
#   WASI adapter     wasi_snapshot_preview1.reactor.wasm from crates.io
#                    wasi-preview1-component-adapter-provider 48.0.8
#
# Environment:
#   WASI_ADAPTER   path of the reactor adapter (default: next to this script)
#   WASI_SYSROOT   wasi-libc sysroot, e.g. a wasi-sdk's share/wasi-sysroot
#                  (default: the one clang finds, e.g. Debian's wasi-libc)
#   CC             clang to use (default: clang)
#   WASI_TARGET    clang target (default: wasm32-wasi; wasm32-wasip1 with a
#                  wasi-sdk whose sysroot only has that name)
#   WIT_BINDGEN, WASM_TOOLS   paths of those tools (default: found on PATH,
#                  in ${TOOLS_ROOT:-$HOME/.cargo}/bin, or the repo's target/tools/c/bin)
set -euo pipefail

NAME=tasks

WIT_BINDGEN_VERSION=0.63.0
WASM_TOOLS_VERSION=1.263.0
ADAPTER_SHA256=134b86dc09c6b62077f2307b96fa8b83b94dc86737bc705ac3dbe27cb107b1f9
MIN_CLANG_MAJOR=14

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=${1:-$here/dist/$NAME.wasm}
case $out in /*) ;; *) out=$PWD/$out ;; esac

die() {
    echo "build.sh: error: $*" >&2
    exit 1
}

# Finds tool $1 (env override $2) and prints its path.
find_tool() {
    local tool=$1 override=${2:-}
    if [[ -n $override ]]; then
        [[ -x $override ]] || die "$tool: $override is not an executable"
        echo "$override"
        return
    fi
    local dir
    for dir in "" "${TOOLS_ROOT:-$HOME/.cargo}/bin" "$here/../../target/tools/c/bin"; do
        if [[ -z $dir ]]; then
            command -v "$tool" 2>/dev/null && return
        elif [[ -x $dir/$tool ]]; then
            echo "$dir/$tool"
            return
        fi
    done
    return 1
}

# --- tools ---------------------------------------------------------------
CC=${CC:-clang}
command -v "$CC" >/dev/null ||
    die "clang not found (CC=$CC). Install it: apt-get install clang lld wasi-libc libclang-rt-dev-wasm32 (or run ./setup.sh)"
clang_major=$("$CC" -dumpversion | cut -d. -f1)
((clang_major >= MIN_CLANG_MAJOR)) || die "clang >= $MIN_CLANG_MAJOR required, found $("$CC" -dumpversion)"
command -v wasm-ld >/dev/null || [[ -x $(dirname "$(command -v "$CC")")/wasm-ld ]] ||
    die "wasm-ld not found. Install it: apt-get install lld (or run ./setup.sh)"

wit_bindgen=$(find_tool wit-bindgen "${WIT_BINDGEN:-}") ||
    die "wit-bindgen not found. Install it: cargo install --locked wit-bindgen-cli@$WIT_BINDGEN_VERSION (or run ./setup.sh)"
have=$("$wit_bindgen" --version | awk '{print $2}')
[[ $have == "$WIT_BINDGEN_VERSION" ]] ||
    die "wit-bindgen $WIT_BINDGEN_VERSION required, $wit_bindgen is $have. Run: cargo install --locked --force wit-bindgen-cli@$WIT_BINDGEN_VERSION (or ./setup.sh)"

wasm_tools=$(find_tool wasm-tools "${WASM_TOOLS:-}") ||
    die "wasm-tools not found. Install it: cargo install --locked wasm-tools@$WASM_TOOLS_VERSION (or run ./setup.sh)"
have=$("$wasm_tools" --version | awk '{print $2}')
[[ $have == "$WASM_TOOLS_VERSION" ]] ||
    die "wasm-tools $WASM_TOOLS_VERSION required, $wasm_tools is $have. Run: cargo install --locked --force wasm-tools@$WASM_TOOLS_VERSION (or ./setup.sh)"

if [[ -n ${WASI_ADAPTER:-} ]]; then
    adapter=$WASI_ADAPTER
    [[ -f $adapter ]] || die "WASI_ADAPTER=$adapter does not exist"
else
    adapter=$here/wasi_snapshot_preview1.reactor.wasm
    [[ -f $adapter ]] ||
        die "WASI adapter not found at $adapter. Run ./setup.sh, or set WASI_ADAPTER to the wasi_snapshot_preview1.reactor.wasm of wasi-preview1-component-adapter-provider 48.0.8"
    sum=$(sha256sum "$adapter" | awk '{print $1}')
    [[ $sum == "$ADAPTER_SHA256" ]] ||
        die "$adapter is not the pinned adapter (sha256 $sum, want $ADAPTER_SHA256). Delete it and run ./setup.sh"
fi

# --- WIT: the repo's when building inside it, else the project's copy ------
if [[ -f $here/../../wit/connector.wit ]]; then
    wit=$here/../../wit
elif [[ -f $here/wit/connector.wit ]]; then
    wit=$here/wit
else
    die "no WIT found: expected ../../wit/connector.wit (inside the Plugboard repo) or wit/connector.wit"
fi

# --- build ---------------------------------------------------------------
build=$here/build
gen=$build/gen
rm -rf "$build"
mkdir -p "$gen" "$(dirname "$out")"

# wit-bindgen reports each file it writes; show that only when it fails.
if ! log=$("$wit_bindgen" c "$wit" --world connector --out-dir "$gen" 2>&1); then
    echo "$log" >&2
    die "wit-bindgen failed on $wit"
fi

# wasm32-wasi is WASI preview 1; clang >= 18 also calls it wasm32-wasip1,
# clang 14 knows only this spelling. The adapter turns the preview 1 imports
# into preview 2 ones.
target_flags=("--target=${WASI_TARGET:-wasm32-wasi}")
[[ -n ${WASI_SYSROOT:-} ]] && target_flags+=("--sysroot=$WASI_SYSROOT")
common=("${target_flags[@]}" -std=c11 -Os -I "$gen" -I "$here/src" -I "$here/vendor/cjson")
# Our code: strict warnings, errors on any.
strict=(-Wall -Wextra -Wpedantic -Wno-gnu-zero-variadic-macro-arguments -Werror)

objs=()
compile() { # compile PREFIX SRC FLAGS...  (the prefix keeps object names apart)
    local src=$2 obj=$build/$1-$(basename "${2%.c}").o
    shift 2
    "$CC" "${common[@]}" "$@" -c "$src" -o "$obj"
    objs+=("$obj")
}
compile gen "$gen/connector.c" -w # generated: not ours to lint
compile vendor "$here/vendor/cjson/cJSON.c" -w
for src in "$here"/src/*.c; do
    compile src "$src" "${strict[@]}"
done

core=$build/$NAME.core.wasm
# --stack-first: a stack overflow traps instead of silently overwriting data.
# 1 MiB of stack leaves room for cJSON's recursion (nesting limit 1000).
# -mexec-model=reactor: no main; exports _initialize, which the adapter runs.
"$CC" "${target_flags[@]}" -mexec-model=reactor -Os "${objs[@]}" "$gen/connector_component_type.o" \
    -Wl,--stack-first -Wl,-z,stack-size=1048576 -Wl,--strip-debug -o "$core"

"$wasm_tools" component new "$core" --adapt "wasi_snapshot_preview1=$adapter" -o "$out"
"$wasm_tools" validate --features component-model "$out"

echo "built $out ($(wc -c <"$out" | tr -d ' ') bytes)"

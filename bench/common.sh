# Shared helpers of scripts/bench-load and scripts/bench-scale (sourced, not run).
#
# What they give the scripts: one scratch directory, every server started in
# the background and stopped on exit (trap), servers on 127.0.0.1 ephemeral
# ports whose address is read from their own "listening" line, a readiness
# check before any load, and loud failures (`die`) with the server's log tail.
#
# The caller sets BENCH_NAME before sourcing, and `set -euo pipefail`.

BENCH_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_TARGET="$BENCH_ROOT/target/bench"

note() { printf '%s: %s\n' "$BENCH_NAME" "$*" >&2; }
die() {
  printf '\n%s: ERROR: %s\n' "$BENCH_NAME" "$*" >&2
  exit 1
}
# A notice that must not scroll by unseen.
loud() {
  printf '\n%s: !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n' "$BENCH_NAME" >&2
  printf '%s: !!! %s\n' "$BENCH_NAME" "$*" >&2
  printf '%s: !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\n' "$BENCH_NAME" >&2
}

for tool in curl python3; do
  command -v "$tool" >/dev/null || die "$tool is required (apt-get install -y $tool)"
done

# Whether PID runs (a child that exited stays a zombie until waited for,
# and `kill -0` still succeeds on it).
alive() {
  local state
  state=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
  [[ $state != Z* ]]
}

# Whether PID is still a child of this script: a PID that was reaped may
# already belong to someone else's process, which must never be signalled.
our_child() {
  [ "$(ps -o ppid= -p "$1" 2>/dev/null | tr -d ' ')" = "$$" ]
}

BENCH_WORK=$(mktemp -d -t "plugboard-$BENCH_NAME.XXXXXX")
BENCH_PIDS=()

forget_pid() {
  local keep=() p
  for p in "${BENCH_PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  BENCH_PIDS=("${keep[@]}")
}

# Stops every process this script started and still runs: SIGTERM, then
# SIGKILL after 5 s. Keeps the scratch directory (logs) when the script
# failed or BENCH_KEEP=1.
bench_cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  local pid i
  for pid in "${BENCH_PIDS[@]}"; do
    if our_child "$pid"; then kill -TERM "$pid" 2>/dev/null || true; fi
  done
  for pid in "${BENCH_PIDS[@]}"; do
    for i in $(seq 1 50); do alive "$pid" || break; sleep 0.1; done
    if our_child "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
  done
  wait 2>/dev/null || true
  if [ "$rc" -ne 0 ] || [ "${BENCH_KEEP:-0}" = 1 ]; then
    note "logs and data kept in $BENCH_WORK"
  else
    rm -rf "$BENCH_WORK"
  fi
  exit "$rc"
}
trap bench_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start_server NAME LOG URL-REGEX CMD…: starts CMD in the background (output
# to LOG, RUST_BACKTRACE unset: wasmtime captures a backtrace per store drop
# with it), waits up to 60 s for a line matching URL-REGEX (which must match
# the URL itself), and sets SERVER_URL (no trailing slash) and SERVER_PID.
start_server() {
  local name=$1 log=$2 regex=$3
  shift 3
  env -u RUST_BACKTRACE "$@" >"$log" 2>&1 &
  SERVER_PID=$!
  BENCH_PIDS+=("$SERVER_PID")
  SERVER_URL=
  local i
  for i in $(seq 1 600); do
    SERVER_URL=$(grep -Eo -m1 "$regex" "$log" 2>/dev/null | head -1 | sed 's#/$##') || true
    [ -n "$SERVER_URL" ] && return 0
    if ! alive "$SERVER_PID"; then
      tail -20 "$log" >&2
      die "$name exited before listening (command: $*)"
    fi
    sleep 0.1
  done
  tail -20 "$log" >&2
  die "$name printed no address within 60 s (log: $log)"
}

# stop_server PID: SIGTERM and wait (up to 10 s), then SIGKILL.
stop_server() {
  local pid=$1 i
  if our_child "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 100); do alive "$pid" || break; sleep 0.1; done
    if our_child "$pid" && alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
  fi
  wait "$pid" 2>/dev/null || true
  forget_pid "$pid"
}

# run_child OUT ERR CMD…: runs CMD to completion with stdout to OUT and
# stderr to ERR, in the background and waited for, so that a signal to this
# script is handled at once (the trap then stops CMD too). Returns CMD's status.
run_child() {
  local out=$1 err=$2 pid rc=0
  shift 2
  env -u RUST_BACKTRACE "$@" >"$out" 2>"$err" &
  pid=$!
  BENCH_PIDS+=("$pid")
  wait "$pid" || rc=$?
  forget_pid "$pid"
  return "$rc"
}

# wait_ready NAME URL [STATUS]: polls URL until it answers STATUS (200).
wait_ready() {
  local name=$1 url=$2 want=${3:-200} got i
  for i in $(seq 1 100); do
    got=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url" || true)
    [ "$got" = "$want" ] && return 0
    sleep 0.1
  done
  die "$name is not ready: GET $url answered ${got:-nothing}, expected $want"
}

# The host binary: $PLUGBOARD_BIN, or a fresh release build.
resolve_plugboard() {
  if [ -n "${PLUGBOARD_BIN:-}" ]; then
    [ -x "$PLUGBOARD_BIN" ] || die "PLUGBOARD_BIN=$PLUGBOARD_BIN is not an executable"
  else
    note "building the host: cargo build --release -p plugboard (set PLUGBOARD_BIN to skip)"
    (cd "$BENCH_ROOT" && nice -n 10 cargo build --release -p plugboard) ||
      die "building the host failed"
    PLUGBOARD_BIN="$BENCH_ROOT/target/release/plugboard"
  fi
  PLUGBOARD_VERSION=$("$PLUGBOARD_BIN" --version)
}

# build_bench CRATE [--target T]: release build of bench/CRATE into target/bench.
build_bench() {
  local crate=$1
  shift
  note "building bench/$crate"
  CARGO_TARGET_DIR="$BENCH_TARGET" nice -n 10 cargo build --quiet --locked --release \
    --manifest-path "$BENCH_ROOT/bench/$crate/Cargo.toml" "$@" ||
    die "building bench/$crate failed"
}

# The shipped connectors, built like scripts/serve builds them, if missing.
GUESTS_DIR=${GUESTS_DIR:-$BENCH_ROOT/target/guests/wasm32-wasip2/release}
ensure_shipped_guests() {
  local missing=0 c
  for c in echo rest slack freshdesk github; do [ -f "$GUESTS_DIR/$c.wasm" ] || missing=1; done
  [ "$missing" = 0 ] && return 0
  note "building the shipped connectors into target/guests (as scripts/serve does)"
  (cd "$BENCH_ROOT" && rustup target add wasm32-wasip2 >/dev/null &&
    CARGO_TARGET_DIR=target/guests \
      CARGO_PROFILE_RELEASE_OPT_LEVEL=s CARGO_PROFILE_RELEASE_LTO=true \
      CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1 CARGO_PROFILE_RELEASE_DEBUG=false \
      CARGO_PROFILE_RELEASE_STRIP=debuginfo CARGO_PROFILE_RELEASE_INCREMENTAL=false \
      nice -n 10 cargo build --release --target wasm32-wasip2 -p echo -p rest -p slack -p freshdesk -p github) ||
    die "building the shipped connectors failed"
}

# JSON field of stdin: json_get '["id"]'
json_get() { python3 -c 'import json,sys; v=json.load(sys.stdin); print(eval("v"+sys.argv[1]))' "$1"; }

# api URL TOKEN METHOD PATH [curl args…]: prints the body; dies on a non-2xx.
api() {
  local url=$1 token=$2 method=$3 path=$4
  shift 4
  local out="$BENCH_WORK/api.out" code
  code=$(curl -sS -o "$out" -w '%{http_code}' -X "$method" -H "authorization: Bearer $token" "$@" "$url$path") ||
    die "$method $path: curl failed"
  case "$code" in
    2??) cat "$out" ;;
    *) die "$method $path answered $code: $(head -c 600 "$out")" ;;
  esac
}

# upload URL TOKEN FILE: uploads a component, prints its connector id.
upload() {
  api "$1" "$2" POST /v1/connectors -H 'content-type: application/wasm' --data-binary "@$3" | json_get '["id"]'
}

# create_instance URL TOKEN JSON: prints the new instance id.
create_instance() {
  api "$1" "$2" POST /v1/instances -H 'content-type: application/json' -d "$3" | json_get '["id"]'
}

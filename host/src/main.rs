//! The `plugboard` binary: see [`plugboard::cli`].

/// mimalloc instead of glibc's malloc: the invoke path allocates many small,
/// short-lived objects (JSON values, headers, spans) across two worker
/// threads, where glibc spent ~8 % of the host's CPU in malloc/free
/// (perf under `scripts/bench-load`). Measured before/after in the commit
/// that added it and in `docs/benchmarks.md`.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    plugboard::cli::main()
}

//! The `plugboard` binary, built inside the test package so end-to-end tests
//! can spawn it via `CARGO_BIN_EXE_plugboard-e2e-host` (cargo only exposes
//! binaries of the package under test).

fn main() -> std::process::ExitCode {
    plugboard::cli::main()
}

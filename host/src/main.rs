//! The `plugboard` binary: see [`plugboard::cli`].

fn main() -> std::process::ExitCode {
    plugboard::cli::main()
}

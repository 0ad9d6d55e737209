//! The command line: `plugboard serve` (and, as they arrive, client
//! commands). Exit codes: 0 success, 1 runtime failure, 2 usage error.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{Overrides, Settings};

/// Plugboard: run integration connectors as sandboxed WebAssembly components.
#[derive(Debug, Parser)]
#[command(name = "plugboard", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the host: API server and connector runtime.
    Serve(Overrides),
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(overrides) => {
            let settings = match Settings::resolve(&overrides) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("plugboard: {e}");
                    return ExitCode::from(2);
                }
            };
            crate::telemetry::init(settings.log_format);
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("plugboard: cannot start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(crate::server::serve(settings)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("plugboard: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

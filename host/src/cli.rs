//! The command line: `plugboard serve`, `plugboard rotate-key` (and, as
//! they arrive, client commands). Exit codes: 0 success, 1 runtime failure, 2 usage error.

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
    /// Re-seal every stored credential under a new master key (stop the
    /// host first). With the key file, the file is replaced; with
    /// `PLUGBOARD_MASTER_KEY`, the new key is left in
    /// `<data-dir>/master.key.next` for you to move into the variable.
    RotateKey(Overrides),
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::RotateKey(overrides) => {
            let settings = match settings(&overrides) {
                Ok(s) => s,
                Err(code) => return code,
            };
            match rotate_key(&settings) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("plugboard: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Serve(overrides) => {
            let settings = match settings(&overrides) {
                Ok(s) => s,
                Err(code) => return code,
            };
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

/// Resolves the settings and starts logging; a bad setting is a usage
/// error (exit 2).
fn settings(overrides: &Overrides) -> Result<Settings, ExitCode> {
    let settings = Settings::resolve(overrides).map_err(|e| {
        eprintln!("plugboard: {e}");
        ExitCode::from(2)
    })?;
    crate::telemetry::init(settings.log_format);
    Ok(settings)
}

fn rotate_key(settings: &Settings) -> anyhow::Result<()> {
    let store = crate::server::open_store(settings)?;
    let r = crate::vault::open::rotate(&*store, &settings.data_dir, settings.master_key.as_ref())?;
    println!(
        "re-sealed {} credential field(s): key {} -> {}",
        r.fields, r.old_key, r.new_key
    );
    if r.env_swap_needed {
        println!(
            "the new key is in {}: set PLUGBOARD_MASTER_KEY to its contents, then delete the file",
            r.new_key_path.display()
        );
    } else {
        println!("the new key is in {}", r.new_key_path.display());
    }
    Ok(())
}

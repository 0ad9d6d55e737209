//! The command line: `plugboard serve`, `plugboard rotate-key`, the API
//! client's commands (`plugboard connectors …`, see [`crate::client`]) and
//! `plugboard completions`.
//!
//! Exit codes: 0 success; 1 a runtime failure (host) or anything
//! unexpected (client); 2 a usage error (flags, settings, local input); 3
//! an API error (the server answered non-2xx); 4 a transport error (no
//! connection, timeout, TLS, an answer that is not the API's JSON).

use std::process::ExitCode;

use clap::{CommandFactory as _, Parser, Subcommand};

use crate::client::ClientCommand;
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
    /// Client commands against a running host.
    #[command(flatten)]
    Client(ClientCommand),
    /// Print a shell completion script (`plugboard completions bash >
    /// ~/.local/share/bash-completion/completions/plugboard`).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Client(command) => crate::client::run(command),
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "plugboard", &mut script);
            crate::client::output::raw(&script);
            ExitCode::SUCCESS
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        // clap checks names, conflicts and globals only when asked.
        Cli::command().debug_assert();
    }

    #[test]
    fn client_flags_go_before_or_after_the_subcommand() {
        for args in [
            &["plugboard", "instances", "--json", "list"][..],
            &["plugboard", "instances", "list", "--json"][..],
        ] {
            let cli = Cli::try_parse_from(args).expect("parses");
            let Command::Client(c) = cli.command else {
                panic!("not a client command")
            };
            assert!(c.args().json, "{args:?}");
        }
        // An instance's `--config` is not the client's `--cli-config`
        // (clap's debug_assert does not see a global and a local argument
        // of one name clash; parsing does).
        let cli = Cli::try_parse_from([
            "plugboard",
            "instances",
            "create",
            "echo",
            "--name",
            "demo",
            "--config",
            "{}",
            "--cli-config",
            "cli.toml",
            "--timeout",
            "5",
        ])
        .expect("parses");
        let Command::Client(c) = cli.command else {
            panic!("not a client command")
        };
        assert_eq!(
            c.args().cli_config.as_deref(),
            Some(std::path::Path::new("cli.toml"))
        );
        let e = Cli::try_parse_from([
            "plugboard",
            "tokens",
            "list",
            "--token",
            "a",
            "--token-file",
            "b",
        ])
        .expect_err("conflict");
        assert_eq!(e.exit_code(), 2);
    }
}

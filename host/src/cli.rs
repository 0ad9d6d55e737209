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
    /// Check a connector component without a server: upload, manifest,
    /// the example calls of its fixture file (`plugboard-test.json`),
    /// refused requests, webhooks and secrets, against a private host
    /// started in this process. Exit 0 when every check passes, 1 when one
    /// fails.
    Test(TestArgs),
    /// Start a new connector from a template that builds and passes
    /// `plugboard test` as it is.
    New(crate::scaffold::NewArgs),
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

/// Arguments of `plugboard test`.
#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// The component (`.wasm`) to check.
    pub component: std::path::PathBuf,
    /// The fixture file; default: `plugboard-test.json` in the current
    /// directory, else next to the component or in its parent directory.
    #[arg(long)]
    pub fixtures: Option<std::path::PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Seconds each step may take (an upload compiles the component).
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Client(command) => crate::client::run(command),
        Command::Test(args) => test(&args),
        Command::New(args) => match crate::scaffold::create(&args) {
            Ok(summary) => {
                println!("{summary}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("plugboard new: {e:#}");
                ExitCode::from(2)
            }
        },
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
            let runtime = match async_runtime() {
                Ok(rt) => rt,
                Err(code) => return code,
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

/// The multi-threaded tokio runtime of `serve` and `test`.
fn async_runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("plugboard: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        })
}

/// The fixture file `plugboard test` uses when none is named.
fn default_fixtures(component: &std::path::Path) -> Option<std::path::PathBuf> {
    const NAME: &str = "plugboard-test.json";
    let dir = component.parent().filter(|d| !d.as_os_str().is_empty());
    [
        Some(std::path::PathBuf::from(NAME)),
        dir.map(|d| d.join(NAME)),
        dir.and_then(|d| d.parent())
            .filter(|d| !d.as_os_str().is_empty())
            .map(|d| d.join(NAME)),
    ]
    .into_iter()
    .flatten()
    .find(|p| p.is_file())
}

fn test(args: &TestArgs) -> ExitCode {
    if !args.component.is_file() {
        eprintln!("plugboard test: {} is not a file", args.component.display());
        return ExitCode::from(2);
    }
    let options = crate::conformance::Options {
        component: args.component.clone(),
        fixtures: args
            .fixtures
            .clone()
            .or_else(|| default_fixtures(&args.component)),
        timeout: std::time::Duration::from_secs(args.timeout),
    };
    let runtime = match async_runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    match runtime.block_on(crate::conformance::run(&options)) {
        Ok(report) => {
            if args.json {
                crate::client::output::raw(
                    format!(
                        "{}\n",
                        serde_json::to_string_pretty(&report).unwrap_or_default()
                    )
                    .as_bytes(),
                );
            } else {
                crate::client::output::raw(report.render().as_bytes());
            }
            if report.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("plugboard test: {e:#}");
            ExitCode::from(2)
        }
    }
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

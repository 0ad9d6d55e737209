//! The command-line client of the HTTP API: `plugboard connectors …`,
//! `plugboard invoke …` and friends, in the same binary as the host.
//!
//! Each command builds one or a few [`http::Call`]s, sends them with the
//! connection [`config`] resolved, and prints the answer through
//! [`output`]. Exit codes (see [`error`]): 0 success, 2 usage error, 3 API
//! error, 4 transport error, 1 anything else.

pub mod commands;
pub mod config;
pub mod error;
pub mod http;
pub mod input;
pub mod output;
pub mod upload;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

pub use commands::ClientCommand;
use error::{CliError, CliResult};
use output::Output;

/// Connection and output flags of every client command. They may stand
/// anywhere after the command name (`plugboard instances list --json`).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Connection and output")]
pub struct ClientArgs {
    /// Host URL [env: PLUGBOARD_SERVER] [default: http://127.0.0.1:8080].
    #[arg(long, global = true, value_name = "URL")]
    pub server: Option<String>,
    /// API token [env: PLUGBOARD_TOKEN].
    ///
    /// Prefer --token-file or the variable: other users can read command
    /// lines. Without any token option, the client uses the host's
    /// `$PLUGBOARD_DATA_DIR/admin.token` or `./plugboard-data/admin.token`.
    #[arg(long, global = true, value_name = "TOKEN")]
    pub token: Option<String>,
    /// File holding the API token [env: PLUGBOARD_TOKEN_FILE].
    #[arg(long, global = true, value_name = "PATH", conflicts_with = "token")]
    pub token_file: Option<PathBuf>,
    /// Client config file (TOML: `server`, `token` or `token_file`).
    ///
    /// Default: `$XDG_CONFIG_HOME/plugboard/cli.toml`, else
    /// `~/.config/plugboard/cli.toml`. (Not `--config`: that is an
    /// instance's config in `instances create|update`, and the host's
    /// config file in `serve`.)
    #[arg(
        long = "cli-config",
        global = true,
        env = "PLUGBOARD_CLI_CONFIG",
        hide_env_values = true,
        value_name = "PATH"
    )]
    pub cli_config: Option<PathBuf>,
    /// Print the server's JSON answers as they are (pretty).
    #[arg(long, global = true)]
    pub json: bool,
    /// Print only the id of what was created or shown.
    ///
    /// Lists print one id per line, `tokens create|rotate` the token,
    /// `invoke` and `instances test` the result.
    #[arg(short, long, global = true, conflicts_with = "json")]
    pub quiet: bool,
    /// Print each request's method, URL, status and time to stderr.
    ///
    /// Never headers, so never the token.
    #[arg(short, long, global = true)]
    pub verbose: bool,
    /// Seconds to wait for each answer (an upload's includes compiling).
    #[arg(
        long,
        global = true,
        value_name = "SECS",
        default_value_t = 300,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub timeout: u64,
}

/// What a command needs: the API client and the output mode.
pub struct Ctx {
    /// The server's client.
    pub api: http::Api,
    /// How to print.
    pub out: Output,
}

/// Runs a client command and turns its outcome into the exit code.
pub fn run(command: ClientCommand) -> ExitCode {
    let args = command.args().clone();
    let out = Output {
        json: args.json,
        quiet: args.quiet,
    };
    match execute(&args, out, command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            output::print_error(&e, args.json);
            ExitCode::from(e.exit_code())
        }
    }
}

fn execute(args: &ClientArgs, out: Output, command: ClientCommand) -> CliResult {
    let flags = config::Flags {
        server: args.server.clone(),
        token: args.token.clone(),
        token_file: args.token_file.clone(),
        config: args.cli_config.clone(),
    };
    let connection = config::resolve(&flags, &|name| std::env::var(name).ok())?;
    if args.verbose {
        eprintln!(
            "server {}, token from {}",
            connection.server,
            connection
                .token_source
                .as_deref()
                .unwrap_or("nowhere (none found)")
        );
    }
    let api = http::Api::new(connection, Duration::from_secs(args.timeout), args.verbose);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Other(anyhow::anyhow!("cannot start the async runtime: {e}")))?;
    let ctx = Ctx { api, out };
    runtime.block_on(commands::run(&ctx, command))
}

//! `plugboard oauth start|callback|disconnect`: the OAuth 2.0 connect flow
//! of an instance, driven from the command line.

use clap::Subcommand;
use serde_json::json;

use super::body;
use crate::client::Ctx;
use crate::client::error::CliResult;
use crate::client::http::Call;
use crate::client::output::kv;

/// OAuth subcommands.
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Start the connect flow: prints the URL to send the user to.
    Start {
        /// Instance id.
        id: String,
        /// Where the provider sends the browser back (e.g. the host's
        /// `/oauth2/callback`).
        #[arg(long, value_name = "URL")]
        redirect_uri: String,
    },
    /// Finish the flow with what the provider sent to the redirect URI.
    #[command(group = clap::ArgGroup::new("outcome").required(true).args(["code", "error"]))]
    Callback {
        /// Instance id.
        id: String,
        // The four values are opaque strings from the host or the
        // provider: a base64url `state` starts with `-` one time in 64, which
        // clap would otherwise take for a flag ("unexpected argument '-5'").
        /// The `state` from the redirect.
        #[arg(long, allow_hyphen_values = true)]
        state: String,
        /// The `code` from the redirect.
        #[arg(long, allow_hyphen_values = true)]
        code: Option<String>,
        /// The `error` from the redirect (the user declined, …).
        #[arg(long, allow_hyphen_values = true)]
        error: Option<String>,
        /// The `error_description` from the redirect.
        #[arg(long, requires = "error", allow_hyphen_values = true)]
        error_description: Option<String>,
    },
    /// Revoke and forget the instance's tokens (the client stays).
    Disconnect {
        /// Instance id.
        id: String,
    },
}

/// Runs an OAuth subcommand.
pub async fn run(ctx: &Ctx, cmd: Cmd) -> CliResult {
    match cmd {
        Cmd::Start { id, redirect_uri } => {
            let answer = body(
                ctx.api
                    .call(
                        Call::post(&["instances", &id, "oauth2", "start"])
                            .json(json!({ "redirectUri": redirect_uri })),
                    )
                    .await?,
            );
            ctx.out.show(&answer, "/authorizationUrl", kv);
        }
        Cmd::Callback {
            id,
            state,
            code,
            error,
            error_description,
        } => {
            let mut req = json!({ "state": state });
            for (key, value) in [
                ("code", code),
                ("error", error),
                ("errorDescription", error_description),
            ] {
                if let Some(v) = value {
                    req[key] = json!(v);
                }
            }
            let answer = body(
                ctx.api
                    .call(Call::post(&["instances", &id, "oauth2", "callback"]).json(req))
                    .await?,
            );
            ctx.out.show(&answer, "/status", kv);
        }
        Cmd::Disconnect { id } => {
            ctx.api
                .call(Call::delete(&["instances", &id, "oauth2"]))
                .await?;
            ctx.out.done(&format!("disconnected instance {id}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::Cmd;

    #[derive(Debug, Parser)]
    struct Line {
        #[command(subcommand)]
        cmd: Cmd,
    }

    /// `oauth callback inst_1 <args>`, parsed: state, code, error and
    /// error description.
    fn callback(args: &[&str]) -> [Option<String>; 4] {
        let line = Line::try_parse_from(["oauth", "callback", "inst_1"].iter().chain(args))
            .unwrap_or_else(|e| panic!("{args:?} does not parse: {e}"));
        let Cmd::Callback {
            id,
            state,
            code,
            error,
            error_description,
        } = line.cmd
        else {
            panic!("not a callback: {line:?}")
        };
        assert_eq!(id, "inst_1");
        [Some(state), code, error, error_description]
    }

    #[test]
    fn callback_values_may_start_with_a_hyphen() {
        // What a base64url state and a provider's code can look like.
        assert_eq!(
            callback(&["--state", "-5Fq_x", "--code", "-abc"]),
            [Some("-5Fq_x".into()), Some("-abc".into()), None, None]
        );
        assert_eq!(
            callback(&[
                "--state",
                "s",
                "--error",
                "-x",
                "--error-description",
                "--denied"
            ]),
            [
                Some("s".into()),
                None,
                Some("-x".into()),
                Some("--denied".into())
            ]
        );
    }
}

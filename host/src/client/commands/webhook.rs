//! `plugboard webhook send`: post a raw delivery to an instance's webhook
//! endpoint, as a platform would (signature headers included), to test a
//! connector's webhook handling.

use clap::Subcommand;

use crate::client::Ctx;
use crate::client::error::{CliError, CliResult};
use crate::client::http::Call;
use crate::client::input;
use crate::client::output::{self, kv};

/// Webhook subcommands.
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Send a delivery: the body as is, plus headers.
    Send {
        /// Instance id.
        instance: String,
        /// The raw body: text, `@file` or `-` (stdin); empty if left out.
        body: Option<String>,
        /// A header `Name: value` (repeatable), e.g. the signature.
        #[arg(short = 'H', long = "header", value_name = "NAME: VALUE")]
        headers: Vec<String>,
        /// The body's content type.
        #[arg(long, default_value = "application/json")]
        content_type: String,
    },
}

/// Runs a webhook subcommand.
pub async fn run(ctx: &Ctx, cmd: Cmd) -> CliResult {
    let Cmd::Send {
        instance,
        body,
        headers,
        content_type,
    } = cmd;
    let bytes = match &body {
        Some(arg) => input::raw(arg, "the body")?,
        None => Vec::new(),
    };
    // No API token: the signature is the authentication, and the token
    // has no business travelling with a test delivery.
    let mut call = Call::post(&["webhooks", &instance])
        .without_token()
        .header("content-type", &content_type)?
        .bytes(bytes);
    for header in &headers {
        let (name, value) = header
            .split_once(':')
            .ok_or_else(|| CliError::usage(format!("header {header:?} is not `Name: value`")))?;
        call = call.header(name, value)?;
    }
    let reply = ctx.api.send(call).await?;
    if !reply.status.is_success() {
        return Err(ctx.api.api_error(&reply));
    }
    // The connector may answer anything (a verification challenge, say):
    // JSON is shown like any answer, anything else as it came.
    match serde_json::from_slice(&reply.body) {
        Ok(answer) => ctx.out.show(&answer, "/status", kv),
        Err(_) => output::raw(&reply.body),
    }
    Ok(())
}

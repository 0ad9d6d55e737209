//! `plugboard invoke <instance> <method> [params]`, and the display of a
//! call's answer shared with `instances test`.

use serde_json::{Value, json};

use super::body;
use crate::client::Ctx;
use crate::client::error::CliResult;
use crate::client::http::Call;
use crate::client::input;
use crate::client::output::{self, col, kv_fields};

/// Arguments of `invoke`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Instance id.
    instance: String,
    /// Method name.
    method: String,
    /// Parameters: JSON, `@file` or `-` (stdin); `{}` if left out.
    #[arg(value_name = "PARAMS")]
    params: Option<String>,
    /// Idempotency key (1-255 characters): the same key with the same
    /// parameters answers the stored result without running the method.
    #[arg(long, value_name = "KEY")]
    idempotency_key: Option<String>,
    #[command(flatten)]
    outbound: Outbound,
}

/// `--outbound`: ask for the call's outbound attempts.
#[derive(Debug, clap::Args)]
pub struct Outbound {
    /// Include the call's outbound HTTP attempts in the answer.
    #[arg(long = "outbound")]
    enabled: bool,
}

impl Outbound {
    /// Adds `?outbound=true` when asked for.
    pub fn apply(&self, call: Call) -> Call {
        if self.enabled {
            call.query("outbound", "true")
        } else {
            call
        }
    }
}

/// Runs `invoke`.
pub async fn run(ctx: &Ctx, args: Args) -> CliResult {
    let params = match &args.params {
        Some(arg) => input::json(arg, "parameters")?,
        None => json!({}),
    };
    let mut call = Call::post(&["instances", &args.instance, "methods", &args.method])
        .json(json!({ "parameters": params }));
    if let Some(key) = &args.idempotency_key {
        call = call.header("idempotency-key", key)?;
    }
    show_call(ctx, args.outbound.apply(call)).await
}

/// Sends a call (invoke or test) and prints its answer: the facts, the
/// result as JSON, and the outbound attempts if any. `--quiet` prints the
/// result alone.
pub async fn show_call(ctx: &Ctx, call: Call) -> CliResult {
    let answer = body(ctx.api.call(call).await?);
    ctx.out.show(&answer, "/data", |a| {
        let mut text = kv_fields(a, &["status", "invocationId", "durationMs", "replayed"]);
        text.push_str("\n\n");
        text.push_str(&serde_json::to_string_pretty(&a["data"]).unwrap_or_default());
        if let Some(attempts) = a["outbound"].as_array().filter(|l| !l.is_empty()) {
            text.push_str("\n\n");
            text.push_str(&outbound_table(attempts));
        }
        text
    });
    Ok(())
}

/// The outbound attempts of a call, one row each.
fn outbound_table(attempts: &[Value]) -> String {
    output::table(
        attempts,
        &[
            col("METHOD", "/method"),
            col("UPSTREAM", "/upstream"),
            col("ATTEMPT", "/attempt"),
            col("DECISION", "/decision"),
            col("STATUS", "/status"),
            col("LATENCY MS", "/latencyMs"),
            col("ERROR", "/error/kind"),
        ],
    )
}

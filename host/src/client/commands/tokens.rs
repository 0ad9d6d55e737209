//! `plugboard tokens create|list|revoke|rotate`.

use clap::{Subcommand, ValueEnum};
use serde_json::{Value, json};

use super::body;
use crate::client::Ctx;
use crate::client::error::CliResult;
use crate::client::http::Call;
use crate::client::output::{col, kv_fields};

/// What a token may do.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Scope {
    /// Everything.
    Admin,
    /// Call, test and read the given instances only.
    Invoke,
}

/// Token subcommands.
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Mint a token; it is shown once, here.
    Create {
        /// What the token is for.
        #[arg(long)]
        name: String,
        /// What it may do.
        #[arg(long, value_enum)]
        scope: Scope,
        /// An instance an `invoke` token may use (repeatable).
        #[arg(long = "instance", value_name = "ID")]
        instances: Vec<String>,
    },
    /// List tokens (ids, names, scopes; never the tokens).
    List,
    /// Revoke a token at once.
    Revoke {
        /// Token id.
        id: String,
    },
    /// Replace a token by a new one with the same name and scope; the old
    /// one stops working. The new token is shown once, here.
    Rotate {
        /// Token id.
        id: String,
    },
}

/// Runs a token subcommand.
pub async fn run(ctx: &Ctx, cmd: Cmd) -> CliResult {
    match cmd {
        Cmd::Create {
            name,
            scope,
            instances,
        } => {
            let scope = match scope {
                Scope::Admin => "admin",
                Scope::Invoke => "invoke",
            };
            let mut req = json!({ "name": name, "scope": scope });
            if !instances.is_empty() {
                req["instances"] = json!(instances);
            }
            let minted = body(ctx.api.call(Call::post(&["tokens"]).json(req)).await?);
            ctx.out.show(&minted, "/token", minted_view);
        }
        Cmd::List => {
            let list = body(ctx.api.call(Call::get(&["tokens"])).await?);
            ctx.out.list(
                &list,
                &[
                    col("ID", "/id"),
                    col("NAME", "/name"),
                    col("SCOPE", "/scope"),
                    col("INSTANCES", "/instances"),
                    col("CREATED", "/createdAt"),
                    col("LAST USED", "/lastUsedAt"),
                ],
            );
        }
        Cmd::Revoke { id } => {
            ctx.api.call(Call::delete(&["tokens", &id])).await?;
            ctx.out.done(&format!("revoked token {id}"));
        }
        Cmd::Rotate { id } => {
            let minted = body(ctx.api.call(Call::post(&["tokens", &id, "rotate"])).await?);
            ctx.out.show(&minted, "/token", minted_view);
        }
    }
    Ok(())
}

/// A freshly minted token: the only time it is shown.
fn minted_view(minted: &Value) -> String {
    let mut text = kv_fields(
        minted,
        &["id", "name", "scope", "instances", "createdAt", "token"],
    );
    text.push_str("\n\nstore the token now: it is not shown again");
    text
}

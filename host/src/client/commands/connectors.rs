//! `plugboard connectors upload|list|show|delete|rate-limit`.

use std::path::PathBuf;

use clap::Subcommand;
use serde_json::{Value, json};

use super::body;
use crate::client::Ctx;
use crate::client::error::CliResult;
use crate::client::http::Call;
use crate::client::output::{self, col, kv_fields, plain};
use crate::client::upload::Upload;

/// Connector subcommands.
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Upload a component (`.wasm`); the host compiles and validates it.
    Upload {
        /// The component file.
        file: PathBuf,
    },
    /// List connectors.
    List,
    /// Show a connector: manifest, methods, hosts.
    Show {
        /// `name@version`, or `name` for the highest version.
        id: String,
    },
    /// Delete a connector (refused while instances use it).
    Delete {
        /// `name@version`.
        id: String,
    },
    /// Override the rate of the budget shared per upstream and credential,
    /// or `--clear` to go back to the manifest's.
    RateLimit {
        /// `name@version`, or `name` for the highest version.
        id: String,
        /// Requests per period.
        #[arg(long, required_unless_present = "clear", requires_all = ["per_ms", "burst"])]
        requests: Option<u32>,
        /// The period, in milliseconds.
        #[arg(long, requires = "requests")]
        per_ms: Option<u64>,
        /// Requests that may go back to back.
        #[arg(long, requires = "requests")]
        burst: Option<u32>,
        /// Revert to the manifest's default.
        #[arg(long, conflicts_with_all = ["requests", "per_ms", "burst"])]
        clear: bool,
    },
}

/// Runs a connector subcommand.
pub async fn run(ctx: &Ctx, cmd: Cmd) -> CliResult {
    match cmd {
        Cmd::Upload { file } => {
            let upload = Upload::open(&file, !ctx.out.json && !ctx.out.quiet).await?;
            let progress = upload.progress();
            let sent = ctx
                .api
                .send(Call::post(&["connectors"]).upload(upload))
                .await;
            progress.finish_and_clear();
            let reply = sent?;
            if !reply.status.is_success() {
                return Err(ctx.api.api_error(&reply));
            }
            let record = body(reply.json()?);
            let verb = if reply.status == http::StatusCode::CREATED {
                "uploaded"
            } else {
                "already stored (identical bytes)"
            };
            ctx.out.show(&record, "/id", |r| {
                format!("{verb}: {}\n{}", plain(&r["id"]), summary(r))
            });
        }
        Cmd::List => {
            let list = body(ctx.api.call(Call::get(&["connectors"])).await?);
            ctx.out.list(
                &list,
                &[
                    col("ID", "/id"),
                    col("DESCRIPTION", "/description"),
                    col("METHODS", "/methods"),
                    col("SIZE", "/size"),
                    col("CREATED", "/createdAt"),
                ],
            );
        }
        Cmd::Show { id } => {
            let record = body(ctx.api.call(Call::get(&["connectors", &id])).await?);
            ctx.out.show(&record, "/id", summary);
        }
        Cmd::Delete { id } => {
            ctx.api.call(Call::delete(&["connectors", &id])).await?;
            ctx.out.done(&format!("deleted connector {id}"));
        }
        Cmd::RateLimit {
            id,
            requests,
            per_ms,
            burst,
            clear: _,
        } => {
            // clap guarantees all three or `--clear`.
            let rate = match (requests, per_ms, burst) {
                (Some(requests), Some(per_ms), Some(burst)) => {
                    json!({ "requests": requests, "perMs": per_ms, "burst": burst })
                }
                _ => Value::Null,
            };
            let record = body(
                ctx.api
                    .call(
                        Call::put(&["connectors", &id, "rate-limit"])
                            .json(json!({ "rateLimit": rate })),
                    )
                    .await?,
            );
            ctx.out.show(&record, "/id", |r| {
                kv_fields(r, &["id", "rateLimit", "manifest.rateLimit"])
            });
        }
    }
    Ok(())
}

/// A connector record: the facts, then its methods.
fn summary(record: &Value) -> String {
    let m = &record["manifest"];
    let mut text = kv_fields(
        &json!({
            "id": record["id"],
            "description": m["description"],
            "digest": record["digest"],
            "size": record["size"],
            "createdAt": record["createdAt"],
            "auth": m.pointer("/auth/scheme/type"),
            "hosts": m["hosts"],
            "rateLimit": record.get("rateLimit").filter(|r| !r.is_null()).or(m.get("rateLimit")),
            "webhook": m.get("webhook").filter(|w| !w.is_null()).map(|_| "yes"),
        }),
        &[
            "id",
            "description",
            "digest",
            "size",
            "createdAt",
            "auth",
            "hosts",
            "rateLimit",
            "webhook",
        ],
    );
    let methods = m["methods"].as_array().cloned().unwrap_or_default();
    if !methods.is_empty() {
        text.push_str("\n\n");
        text.push_str(&output::table(
            &methods,
            &[col("METHOD", "/name"), col("DESCRIPTION", "/description")],
        ));
    }
    text
}

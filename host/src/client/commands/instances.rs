//! `plugboard instances create|list|show|update|delete|test|health|stats|credentials`.

use clap::Subcommand;
use serde_json::{Map, Value, json};

use super::body;
use super::invoke::{Outbound, show_call};
use crate::client::Ctx;
use crate::client::error::{CliError, CliResult};
use crate::client::http::Call;
use crate::client::input;
use crate::client::output::{self, col, kv, kv_fields, kv_rows, plain};

/// Instance subcommands.
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Create an instance of a connector.
    Create {
        /// `name@version`, or `name` for the highest version.
        connector: String,
        /// Display name.
        #[arg(long)]
        name: String,
        /// Config object: JSON, `@file` or `-` (stdin).
        #[arg(long, value_name = "JSON")]
        config: Option<String>,
        /// Limits (`timeoutMs`, `memoryMib`, `rateLimit`, `allowedHosts`):
        /// JSON, `@file` or `-`.
        #[arg(long, value_name = "JSON")]
        limits: Option<String>,
        /// Credentials object: `@file` or `-` (inline JSON works but shows in
        /// `ps` and shell history).
        #[arg(long, value_name = "JSON")]
        credentials: Option<String>,
    },
    /// List instances.
    List,
    /// Show an instance (credentials as names only).
    Show {
        /// Instance id.
        id: String,
    },
    /// Change an instance: each option given replaces the stored value.
    Update {
        /// Instance id.
        id: String,
        /// New display name.
        #[arg(long)]
        name: Option<String>,
        /// New config: JSON, `@file` or `-`.
        #[arg(long, value_name = "JSON")]
        config: Option<String>,
        /// New limits: JSON, `@file` or `-`.
        #[arg(long, value_name = "JSON")]
        limits: Option<String>,
        /// New credentials: `@file` or `-` (or inline JSON).
        #[arg(long, value_name = "JSON")]
        credentials: Option<String>,
    },
    /// Delete an instance.
    Delete {
        /// Instance id.
        id: String,
    },
    /// Run the connector's connection test; sets the status.
    Test {
        /// Instance id.
        id: String,
        #[command(flatten)]
        outbound: Outbound,
    },
    /// The upstreams' circuits and budgets as the broker sees them.
    Health {
        /// Instance id.
        id: String,
    },
    /// Outbound statistics: requests, decisions, statuses, latency.
    Stats {
        /// Instance id.
        id: String,
        /// Window (`5m`, `1h`, `24h`, `7d`, `all`); the host's default if
        /// left out.
        #[arg(long)]
        window: Option<String>,
    },
    /// Replace all credentials at once.
    Credentials {
        /// Instance id.
        id: String,
        /// Credentials object: `@file` or `-` (inline JSON works but shows
        /// in `ps` and shell history).
        credentials: String,
        /// When they expire (RFC 3339); health warns 7 days before.
        #[arg(long, value_name = "TIME")]
        expires_at: Option<String>,
    },
}

/// Runs an instance subcommand.
pub async fn run(ctx: &Ctx, cmd: Cmd) -> CliResult {
    match cmd {
        Cmd::Create {
            connector,
            name,
            config,
            limits,
            credentials,
        } => {
            let mut req = Map::new();
            req.insert("connector".into(), json!(connector));
            req.insert("name".into(), json!(name));
            add_objects(&mut req, config, limits, credentials)?;
            let instance = body(
                ctx.api
                    .call(Call::post(&["instances"]).json(req.into()))
                    .await?,
            );
            ctx.out.show(&instance, "/id", view);
        }
        Cmd::List => {
            let list = body(ctx.api.call(Call::get(&["instances"])).await?);
            ctx.out.list(
                &list,
                &[
                    col("ID", "/id"),
                    col("NAME", "/name"),
                    col("CONNECTOR", "/connector"),
                    col("STATUS", "/status"),
                    col("CREATED", "/createdAt"),
                ],
            );
        }
        Cmd::Show { id } => {
            let instance = body(ctx.api.call(Call::get(&["instances", &id])).await?);
            ctx.out.show(&instance, "/id", view);
        }
        Cmd::Update {
            id,
            name,
            config,
            limits,
            credentials,
        } => {
            let mut req = Map::new();
            if let Some(name) = name {
                req.insert("name".into(), json!(name));
            }
            add_objects(&mut req, config, limits, credentials)?;
            if req.is_empty() {
                return Err(CliError::usage(
                    "nothing to update: give --name, --config, --limits or --credentials",
                ));
            }
            let instance = body(
                ctx.api
                    .call(Call::patch(&["instances", &id]).json(req.into()))
                    .await?,
            );
            ctx.out.show(&instance, "/id", view);
        }
        Cmd::Delete { id } => {
            ctx.api.call(Call::delete(&["instances", &id])).await?;
            ctx.out.done(&format!("deleted instance {id}"));
        }
        Cmd::Test { id, outbound } => {
            let call = outbound.apply(Call::post(&["instances", &id, "test"]));
            show_call(ctx, call).await?;
        }
        Cmd::Health { id } => {
            let health = body(
                ctx.api
                    .call(Call::get(&["instances", &id, "health"]))
                    .await?,
            );
            ctx.out.show(&health, "/status", health_view);
        }
        Cmd::Stats { id, window } => stats(ctx, &id, window.as_deref()).await?,
        Cmd::Credentials {
            id,
            credentials,
            expires_at,
        } => {
            let mut req = json!({ "credentials": input::object(&credentials, "credentials")? });
            if let Some(at) = expires_at {
                req["expiresAt"] = json!(at);
            }
            let instance = body(
                ctx.api
                    .call(Call::put(&["instances", &id, "credentials"]).json(req))
                    .await?,
            );
            ctx.out.show(&instance, "/id", view);
        }
    }
    Ok(())
}

/// `GET /v1/instances/{id}/stats`, shared with the top-level `stats`.
pub async fn stats(ctx: &Ctx, id: &str, window: Option<&str>) -> CliResult {
    let stats = body(
        ctx.api
            .call(Call::get(&["instances", id, "stats"]).query_opt("window", window))
            .await?,
    );
    ctx.out.show(&stats, "/instance", stats_view);
    Ok(())
}

/// Adds the JSON-object options of create and update.
fn add_objects(
    req: &mut Map<String, Value>,
    config: Option<String>,
    limits: Option<String>,
    credentials: Option<String>,
) -> CliResult {
    for (key, arg) in [
        ("config", config),
        ("limits", limits),
        ("credentials", credentials),
    ] {
        if let Some(arg) = arg {
            req.insert(key.into(), input::object(&arg, &format!("--{key}"))?);
        }
    }
    Ok(())
}

/// An instance: facts, config and limits, credentials by name.
fn view(instance: &Value) -> String {
    let mut rows: Vec<(String, String)> = Vec::new();
    for key in [
        "id",
        "name",
        "connector",
        "status",
        "statusReason",
        "createdAt",
        "allowedHosts",
        "config",
        "limits",
    ] {
        match instance.get(key) {
            None => {}
            Some(Value::Object(o)) if o.is_empty() => {}
            Some(v) => rows.push((key.to_owned(), plain(v))),
        }
    }
    if let Some(fields) = instance
        .pointer("/credentials/fields")
        .and_then(Value::as_object)
        .filter(|f| !f.is_empty())
    {
        let names: Vec<&str> = fields.keys().map(String::as_str).collect();
        rows.push(("credentials".into(), names.join(", ")));
    }
    if let Some(at) = instance
        .pointer("/credentials/expiresAt")
        .filter(|v| !v.is_null())
    {
        rows.push(("credentialsExpireAt".into(), plain(at)));
    }
    kv_rows(&rows)
}

/// Stats: the figures as dotted keys, then per-method and per-upstream
/// tables.
fn stats_view(stats: &Value) -> String {
    let mut figures = stats.clone();
    let methods = take(&mut figures, "/invocations", "methods");
    let upstreams = take(&mut figures, "/outbound", "upstreams");
    let mut text = kv(&figures);
    if let Some(methods) = methods.as_object().filter(|m| !m.is_empty()) {
        let rows: Vec<Value> = methods
            .iter()
            .map(|(name, m)| json!({ "method": name, "count": m["count"], "failed": m["failed"] }))
            .collect();
        text.push_str("\n\n");
        text.push_str(&output::table(
            &rows,
            &[
                col("METHOD", "/method"),
                col("CALLS", "/count"),
                col("FAILED", "/failed"),
            ],
        ));
    }
    if let Some(list) = upstreams.as_array().filter(|l| !l.is_empty()) {
        text.push_str("\n\n");
        text.push_str(&output::table(
            list,
            &[
                col("UPSTREAM", "/upstream"),
                col("REQUESTS", "/requests"),
                col("ERRORS", "/errors"),
                col("BYTES OUT", "/bytesOut"),
                col("BYTES IN", "/bytesIn"),
                col("LAST STATUS", "/lastStatus"),
            ],
        ));
    }
    text
}

/// Removes `key` from the object at `pointer`, returning it (null if
/// absent).
fn take(value: &mut Value, pointer: &str, key: &str) -> Value {
    value
        .pointer_mut(pointer)
        .and_then(Value::as_object_mut)
        .and_then(|o| o.remove(key))
        .unwrap_or(Value::Null)
}

/// Health: the verdict and its reasons, then one line per upstream.
fn health_view(health: &Value) -> String {
    let mut text = kv_fields(
        health,
        &[
            "instance",
            "status",
            "instanceStatus",
            "warnings",
            "lastSuccessAt",
            "lastFailure.at",
            "lastFailure.code",
            "recent.window",
            "recent.calls",
            "recent.failed",
            "recent.errorRate",
            "budget",
        ],
    );
    if let Some(list) = health["upstreams"].as_array().filter(|l| !l.is_empty()) {
        text.push_str("\n\n");
        text.push_str(&output::table(
            list,
            &[
                col("UPSTREAM", "/upstream"),
                col("CIRCUIT", "/circuit/state"),
                col("FAILURES", "/circuit/failures"),
                col("RATE", "/budget/rateLimit"),
                col("PAUSED UNTIL", "/budget/pausedUntil"),
                col("WAITING", "/budget/waiting"),
            ],
        ));
    }
    text
}

//! Looking at a host: `audit`, `stats`, `usage`, `metrics`, `status`.

use http::Method;

use super::body;
use crate::client::Ctx;
use crate::client::error::CliResult;
use crate::client::http::Call;
use crate::client::output::{self, col, kv};

/// No arguments beyond the client flags.
#[derive(Debug, clap::Args)]
pub struct NoArgs {}

/// Arguments of `audit`.
#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// Only records of this actor: a token id, or a kind (`token`,
    /// `webhook`, `system`).
    #[arg(long)]
    actor: Option<String>,
    /// Only records about this resource: `type` or `type:id` (e.g.
    /// `instance:inst_…`).
    #[arg(long)]
    resource: Option<String>,
    /// Only records of this action (`instance.create`, or `instance.*`).
    #[arg(long)]
    action: Option<String>,
    /// Only records at or after this time (RFC 3339).
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
    /// Only records before this time (RFC 3339).
    #[arg(long, value_name = "TIME")]
    until: Option<String>,
    /// At most this many.
    #[arg(long)]
    limit: Option<u32>,
    /// Continue after a previous page (its `more: --cursor …`).
    #[arg(long)]
    cursor: Option<String>,
}

/// Arguments of `stats`.
#[derive(Debug, clap::Args)]
pub struct StatsArgs {
    /// Instance id.
    instance: String,
    /// Window (`5m`, `1h`, `24h`, `7d`, `all`).
    #[arg(long)]
    window: Option<String>,
}

/// Arguments of `usage`.
#[derive(Debug, clap::Args)]
pub struct UsageArgs {
    /// Window (`5m`, `1h`, `24h`, `7d`, `all`).
    #[arg(long)]
    window: Option<String>,
}

/// `GET /v1/audit`.
pub async fn audit(ctx: &Ctx, args: AuditArgs) -> CliResult {
    let call = Call::get(&["audit"])
        .query_opt("actor", args.actor)
        .query_opt("resource", args.resource)
        .query_opt("action", args.action)
        .query_opt("since", args.since)
        .query_opt("until", args.until)
        .query_opt("limit", args.limit)
        .query_opt("cursor", args.cursor);
    let page = body(ctx.api.call(call).await?);
    ctx.out.list(
        &page,
        &[
            col("AT", "/at"),
            col("ACTOR", "/actor/name"),
            col("ACTOR ID", "/actor/id"),
            col("ACTION", "/action"),
            col("RESOURCE", "/resource/type"),
            col("ID", "/resource/id"),
            col("RESULT", "/outcome/result"),
            col("CODE", "/outcome/code"),
        ],
    );
    Ok(())
}

/// `GET /v1/instances/{id}/stats`.
pub async fn stats(ctx: &Ctx, args: StatsArgs) -> CliResult {
    super::instances::stats(ctx, &args.instance, args.window.as_deref()).await
}

/// `GET /v1/usage`.
pub async fn usage(ctx: &Ctx, args: UsageArgs) -> CliResult {
    let usage = body(
        ctx.api
            .call(Call::get(&["usage"]).query_opt("window", args.window))
            .await?,
    );
    ctx.out.show(&usage, "/window", kv);
    Ok(())
}

/// `GET /metrics`: Prometheus text, printed as served whatever the mode.
pub async fn metrics(ctx: &Ctx) -> CliResult {
    let reply = ctx.api.send(Call::new(Method::GET, &["metrics"])).await?;
    if !reply.status.is_success() {
        return Err(ctx.api.api_error(&reply));
    }
    output::raw(&reply.body);
    Ok(())
}

/// `GET /healthz` (public: no token sent).
pub async fn status(ctx: &Ctx) -> CliResult {
    let health = body(
        ctx.api
            .call(Call::new(Method::GET, &["healthz"]).without_token())
            .await?,
    );
    ctx.out.show(&health, "/status", kv);
    Ok(())
}

//! The client's commands, one module per resource of the API. Each module
//! declares its arguments (clap) and runs them against [`Ctx`].

mod connectors;
mod events;
mod instances;
mod invoke;
mod oauth;
mod observe;
mod rules;
mod tokens;
mod webhook;

use clap::{Args, Subcommand};

use super::error::CliResult;
use super::{ClientArgs, Ctx};

/// A command group (`connectors list`, …) with the client flags.
#[derive(Debug, Args)]
pub struct Group<T: Subcommand> {
    #[command(flatten)]
    global: ClientArgs,
    #[command(subcommand)]
    command: T,
}

/// A single command (`invoke`, `audit`, …) with the client flags.
#[derive(Debug, Args)]
pub struct Leaf<T: Args> {
    // The command's own arguments first: the client flags open a help
    // section of their own that would swallow anything after them.
    #[command(flatten)]
    args: T,
    #[command(flatten)]
    global: ClientArgs,
}

/// Commands that talk to a running host.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Upload, list, show and delete connectors; override their rate limit.
    Connectors(Group<connectors::Cmd>),
    /// Create, list, show, update, delete, test instances; their health,
    /// stats and credentials.
    Instances(Group<instances::Cmd>),
    /// Call a method of an instance: `invoke <instance> <method> [params]`.
    Invoke(Leaf<invoke::Args>),
    /// Connect an instance with OAuth 2.0, or disconnect it.
    Oauth(Group<oauth::Cmd>),
    /// Create, list, revoke and rotate API tokens.
    Tokens(Group<tokens::Cmd>),
    /// Events received by webhooks.
    Events(Group<events::Cmd>),
    /// Rules that turn events into actions.
    Rules(Group<rules::RulesCmd>),
    /// Jobs: rule actions run for events; replay dead ones.
    Jobs(Group<rules::JobsCmd>),
    /// Send a webhook delivery to an instance (for testing a connector's
    /// webhook handling).
    Webhook(Group<webhook::Cmd>),
    /// The audit log: who changed what, when.
    Audit(Leaf<observe::AuditArgs>),
    /// Outbound statistics of an instance (same as `instances stats`).
    Stats(Leaf<observe::StatsArgs>),
    /// Usage per connector and instance over a window.
    Usage(Leaf<observe::UsageArgs>),
    /// The host's Prometheus metrics (text, as served).
    Metrics(Leaf<observe::NoArgs>),
    /// The host's version and runtime counters (`GET /healthz`, no token).
    Status(Leaf<observe::NoArgs>),
}

impl ClientCommand {
    /// The client flags given with the command.
    pub fn args(&self) -> &ClientArgs {
        match self {
            Self::Connectors(g) => &g.global,
            Self::Instances(g) => &g.global,
            Self::Invoke(l) => &l.global,
            Self::Oauth(g) => &g.global,
            Self::Tokens(g) => &g.global,
            Self::Events(g) => &g.global,
            Self::Rules(g) => &g.global,
            Self::Jobs(g) => &g.global,
            Self::Webhook(g) => &g.global,
            Self::Audit(l) => &l.global,
            Self::Stats(l) => &l.global,
            Self::Usage(l) => &l.global,
            Self::Metrics(l) => &l.global,
            Self::Status(l) => &l.global,
        }
    }
}

/// Runs a command.
pub async fn run(ctx: &Ctx, command: ClientCommand) -> CliResult {
    match command {
        ClientCommand::Connectors(g) => connectors::run(ctx, g.command).await,
        ClientCommand::Instances(g) => instances::run(ctx, g.command).await,
        ClientCommand::Invoke(l) => invoke::run(ctx, l.args).await,
        ClientCommand::Oauth(g) => oauth::run(ctx, g.command).await,
        ClientCommand::Tokens(g) => tokens::run(ctx, g.command).await,
        ClientCommand::Events(g) => events::run(ctx, g.command).await,
        ClientCommand::Rules(g) => rules::run_rules(ctx, g.command).await,
        ClientCommand::Jobs(g) => rules::run_jobs(ctx, g.command).await,
        ClientCommand::Webhook(g) => webhook::run(ctx, g.command).await,
        ClientCommand::Audit(l) => observe::audit(ctx, l.args).await,
        ClientCommand::Stats(l) => observe::stats(ctx, l.args).await,
        ClientCommand::Usage(l) => observe::usage(ctx, l.args).await,
        ClientCommand::Metrics(_) => observe::metrics(ctx).await,
        ClientCommand::Status(_) => observe::status(ctx).await,
    }
}

/// The answer of a call that must have a body.
fn body(answer: Option<serde_json::Value>) -> serde_json::Value {
    answer.unwrap_or(serde_json::Value::Null)
}

//! `plugboard events list|show`: events that webhooks delivered.

use clap::Subcommand;

use super::body;
use crate::client::Ctx;
use crate::client::error::CliResult;
use crate::client::http::Call;
use crate::client::output::{col, kv};

/// Event subcommands.
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// List events, oldest first.
    List {
        /// Only this instance's events.
        #[arg(long)]
        instance: Option<String>,
        /// Only events of this kind.
        #[arg(long)]
        kind: Option<String>,
        /// Only events received at or after this time (RFC 3339).
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        /// Only events after this id (the `more: --after …` of a page).
        #[arg(long, value_name = "ID")]
        after: Option<String>,
        /// At most this many (1-1000; the host's default is 100).
        #[arg(long)]
        limit: Option<u32>,
    },
    /// Show an event with its payload.
    Show {
        /// Event id.
        id: String,
    },
}

/// Runs an event subcommand.
pub async fn run(ctx: &Ctx, cmd: Cmd) -> CliResult {
    match cmd {
        Cmd::List {
            instance,
            kind,
            since,
            after,
            limit,
        } => {
            let call = Call::get(&["events"])
                .query_opt("instance", instance)
                .query_opt("kind", kind)
                .query_opt("since", since)
                .query_opt("after", after)
                .query_opt("limit", limit);
            let list = body(ctx.api.call(call).await?);
            ctx.out.list(
                &list,
                &[
                    col("ID", "/id"),
                    col("KIND", "/kind"),
                    col("INSTANCE", "/instance"),
                    col("SOURCE ID", "/sourceId"),
                    col("RECEIVED", "/receivedAt"),
                ],
            );
        }
        Cmd::Show { id } => {
            let event = body(ctx.api.call(Call::get(&["events", &id])).await?);
            ctx.out.show(&event, "/id", kv);
        }
    }
    Ok(())
}

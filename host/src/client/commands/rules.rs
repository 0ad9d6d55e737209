//! `plugboard rules …` and `plugboard jobs …`: what events set in motion.

use clap::{Subcommand, ValueEnum};

use super::body;
use crate::client::Ctx;
use crate::client::error::CliResult;
use crate::client::http::Call;
use crate::client::input;
use crate::client::output::{col, kv};

/// Rule subcommands.
#[derive(Debug, Subcommand)]
pub enum RulesCmd {
    /// Create a rule from its JSON (inline, `@file` or `-`).
    Create {
        /// The rule: `{"name", "enabled", "trigger", "actions"}`.
        rule: String,
    },
    /// List rules.
    List,
    /// Show a rule.
    Show {
        /// Rule id.
        id: String,
    },
    /// Replace a rule with new JSON (inline, `@file` or `-`).
    Replace {
        /// Rule id.
        id: String,
        /// The rule.
        rule: String,
    },
    /// Delete a rule (its queued jobs still run).
    Delete {
        /// Rule id.
        id: String,
    },
}

/// Job states.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum JobState {
    /// Waiting to run (or to retry).
    Pending,
    /// Running now.
    Running,
    /// Done.
    Succeeded,
    /// Given up on: replay it when the cause is fixed.
    Dead,
}

impl JobState {
    fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Dead => "dead",
        }
    }
}

/// Job subcommands.
#[derive(Debug, Subcommand)]
pub enum JobsCmd {
    /// List jobs.
    List {
        /// Only jobs in this state.
        #[arg(long, value_enum)]
        state: Option<JobState>,
        /// Only jobs of this rule.
        #[arg(long, value_name = "ID")]
        rule: Option<String>,
        /// Only jobs of this event.
        #[arg(long, value_name = "ID")]
        event: Option<String>,
    },
    /// Show a job with its last error or result.
    Show {
        /// Job id.
        id: String,
    },
    /// Run a dead job again from its first attempt.
    Replay {
        /// Job id.
        id: String,
    },
}

/// Runs a rule subcommand.
pub async fn run_rules(ctx: &Ctx, cmd: RulesCmd) -> CliResult {
    match cmd {
        RulesCmd::Create { rule } => {
            let rule = input::object(&rule, "the rule")?;
            let saved = body(ctx.api.call(Call::post(&["rules"]).json(rule)).await?);
            ctx.out.show(&saved, "/id", kv);
        }
        RulesCmd::List => {
            let list = body(ctx.api.call(Call::get(&["rules"])).await?);
            ctx.out.list(
                &list,
                &[
                    col("ID", "/id"),
                    col("NAME", "/name"),
                    col("ENABLED", "/enabled"),
                    col("KIND", "/trigger/kind"),
                    col("INSTANCE", "/trigger/instance"),
                    col("CREATED", "/createdAt"),
                ],
            );
        }
        RulesCmd::Show { id } => {
            let rule = body(ctx.api.call(Call::get(&["rules", &id])).await?);
            ctx.out.show(&rule, "/id", kv);
        }
        RulesCmd::Replace { id, rule } => {
            let rule = input::object(&rule, "the rule")?;
            let saved = body(ctx.api.call(Call::put(&["rules", &id]).json(rule)).await?);
            ctx.out.show(&saved, "/id", kv);
        }
        RulesCmd::Delete { id } => {
            ctx.api.call(Call::delete(&["rules", &id])).await?;
            ctx.out.done(&format!("deleted rule {id}"));
        }
    }
    Ok(())
}

/// Runs a job subcommand.
pub async fn run_jobs(ctx: &Ctx, cmd: JobsCmd) -> CliResult {
    match cmd {
        JobsCmd::List { state, rule, event } => {
            let call = Call::get(&["jobs"])
                .query_opt("state", state.map(JobState::as_str))
                .query_opt("rule", rule)
                .query_opt("event", event);
            let list = body(ctx.api.call(call).await?);
            ctx.out.list(
                &list,
                &[
                    col("ID", "/id"),
                    col("STATE", "/state"),
                    col("RULE", "/rule"),
                    col("EVENT", "/event"),
                    col("METHOD", "/method"),
                    col("ATTEMPTS", "/attempts"),
                    col("ERROR", "/lastError/code"),
                    col("UPDATED", "/updatedAt"),
                ],
            );
        }
        JobsCmd::Show { id } => {
            let job = body(ctx.api.call(Call::get(&["jobs", &id])).await?);
            ctx.out.show(&job, "/id", kv);
        }
        JobsCmd::Replay { id } => {
            let job = body(ctx.api.call(Call::post(&["jobs", &id, "replay"])).await?);
            ctx.out.show(&job, "/id", kv);
        }
    }
    Ok(())
}

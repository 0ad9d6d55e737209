//! Outbound HTTP policy: the single place where a guest's request is allowed
//! out or refused, metered, retried and recorded.
//!
//! - [`pattern`]: manifest host patterns + instance config → [`Allowlist`].
//! - `ip`: which resolved addresses may be connected to ([`IpPolicy`]).
//! - `client`: the pooled client whose connector resolves, checks and
//!   connects to the checked address.
//! - `body`: byte caps, counters and idle timeouts on bodies.
//! - [`budget`], [`breaker`], [`retry`]: rate budgets, circuit breakers and
//!   retry decisions (pure logic, unit-tested on their own).
//! - `broker`: the process-wide client, settings and shared state
//!   ([`Broker`]).
//! - `auth`: the manifest's auth scheme rendered from the instance's
//!   credentials ([`AuthPlan`]), applied to requests towards auth hosts.
//! - `hooks`: the per-invocation `WasiHttpHooks` (allowlist, request count,
//!   forbidden headers) handing each request to `attempt`, which runs the
//!   breaker → budgets → send → retry loop.
//! - `journal`: what happened to each attempt ([`OutboundJournal`]), read by
//!   the runtime, the API, [`crate::usage`] and [`crate::metrics`].

mod attempt;
mod auth;
mod body;
pub mod breaker;
mod broker;
pub mod budget;
pub mod category;
mod client;
mod hooks;
mod ip;
mod journal;
mod pattern;
pub mod retry;

pub use auth::{AuthError, AuthPlan};
pub(crate) use auth::{encode as percent_encode, render as render_template};
pub use broker::Broker;
pub use hooks::{Caller, EgressHooks, EgressPolicy, IDEMPOTENT_HEADER, Reauth};
pub use ip::{ForbiddenAddress, IpPolicy};
pub use journal::{
    Decision, OutboundJournal, OutboundOutcome, OutboundRecord, explanation, millis,
};
pub use pattern::{Allowlist, HostPattern, HostRule, PatternError, upstream_of};

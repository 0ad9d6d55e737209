//! Outbound HTTP policy: the single place where a guest's request is allowed
//! out or refused.
//!
//! - [`pattern`]: manifest host patterns + instance config → [`Allowlist`].
//! - `ip`: which resolved addresses may be connected to ([`IpPolicy`]).
//! - `client`: the pooled client whose connector resolves, checks and
//!   connects to the checked address.
//! - `body`: byte caps, counters and idle timeouts on bodies.
//! - `broker`: the shared client + settings ([`Broker`]).
//! - `hooks`: the per-invocation `WasiHttpHooks` (allowlist, request count,
//!   forbidden headers, timeouts) writing the [`OutboundJournal`] the runtime
//!   reads after the call.

mod body;
pub mod breaker;
mod broker;
pub mod budget;
pub mod category;
mod client;
mod hooks;
mod ip;
mod pattern;
pub mod retry;

pub use broker::Broker;
pub use hooks::{EgressHooks, OutboundJournal, OutboundOutcome, OutboundRecord};
pub use ip::{ForbiddenAddress, IpPolicy};
pub use pattern::{Allowlist, HostPattern, HostRule, PatternError};

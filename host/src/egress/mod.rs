//! Outbound HTTP policy: the single place where a guest's request is allowed
//! out or refused.
//!
//! [`pattern`] turns manifest host patterns plus instance config into an
//! [`Allowlist`]; [`hooks`] plugs that allowlist into wasmtime-wasi-http's
//! `send_request` hook and records what happened in an [`OutboundJournal`]
//! the runtime reads after the call. Rate budgets, retries and IP checks
//! belong here too when they arrive.

mod hooks;
mod pattern;
pub mod breaker;
pub mod budget;
pub mod category;
pub mod retry;

pub use hooks::{EgressHooks, OutboundJournal, OutboundOutcome};
pub use pattern::{Allowlist, HostPattern, HostRule, PatternError};

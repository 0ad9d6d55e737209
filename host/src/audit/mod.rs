//! The audit trail: append-only records of every admin action, every
//! request refused for lack of a valid token or scope, and every use of an
//! instance's credentials by the broker — who, what, on which resource,
//! when, with what outcome; never a secret.
//!
//! - `record`: the record shape ([`AuditRecord`]), its time-ordered key
//!   ([`AuditKey`]) and the stable action names ([`actions`]).
//! - `log`: [`AuditLog`], the queue every part of the host appends
//!   through, and the writer task that stores records in batches.
//! - `context`: the current actor, a task-local set by the API.
//! - `credential`: credential-use records from the broker
//!   ([`CredentialAudit`]).
//! - `query`: filters and paging of `GET /v1/audit` ([`AuditQuery`]).
//! - `retention`: the sweep, the only deletion.
//!
//! Records live in the store's `audit` tree under their keys; the store
//! has no API to change or delete one except the sweep.

mod context;
mod credential;
mod log;
mod query;
mod record;
mod retention;

pub use context::{acting, current_actor};
pub use credential::CredentialAudit;
pub use log::{AuditLog, MAX_BATCH, QUEUE_CAPACITY};
pub use query::{AuditQuery, DEFAULT_LIMIT, MAX_LIMIT, MAX_SCAN, Page, page};
pub use record::{
    Actor, ActorKind, AuditKey, AuditRecord, Outcome, OutcomeResult, Resource, actions,
    parse_rfc3339_ms, rfc3339_ms,
};
pub use retention::{SWEEP_EVERY, spawn_sweeper, sweep, sweep_and_record};

//! Plugboard: a host that runs untrusted integration connectors as sandboxed
//! WebAssembly components.
//!
//! Data flows one way: [`api`] → [`runtime`] → (guest) → [`egress`] → upstream.
//! The runtime and the egress policy read from [`store`]; nothing below the
//! API layer knows about HTTP routes. [`client`] is the other side: the
//! command-line client of the API, in the same binary.

pub mod api;
pub mod audit;
pub mod cli;
pub mod client;
pub mod config;
pub mod conformance;
pub mod egress;
pub mod manifest;
pub mod metrics;
pub mod oauth;
pub mod rules;
pub mod runtime;
pub mod scaffold;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod usage;
pub mod vault;
pub mod webhook;

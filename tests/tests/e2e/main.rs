//! End-to-end tests: each starts a real host process on an ephemeral
//! loopback port and uses it over HTTP, with real components built from
//! source and fake upstreams on 127.0.0.1.

#![allow(missing_docs, clippy::unwrap_used)]

mod common;

mod audit;
mod auth_restart;
mod broker;
mod cli;
mod conformance;
mod connectors;
mod credentials;
mod egress;
mod invoke;
mod oauth;
mod observe;
mod openapi;
mod readme;
mod rest;
mod sandbox;
mod tokens;
mod upload;
mod webhooks;

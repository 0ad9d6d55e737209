//! The conformance suite: what every connector must do, in any language,
//! checked by driving a private host through its real API.
//!
//! `plugboard test <component.wasm>` runs it without a server of the
//! user's: it starts a host in this process (temporary data directory,
//! loopback egress allowed), uploads the component as an operator would,
//! creates instances from the connector's fixtures (`plugboard-test.json`)
//! and checks:
//!
//! - **upload**: the bytes are a component implementing the `connector`
//!   world, `describe` works and the manifest validates (the host's own
//!   upload checks; their error is the report);
//! - **manifest**: conventions the host does not enforce (method names,
//!   descriptions, schemas that describe objects, credential fields that
//!   auth and webhook settings name exist in the credential schema);
//! - **examples**: each example call answers the expected result (which
//!   must also match the method's result schema) or API error code, and
//!   sends exactly the expected upstream requests — with the credential
//!   the host injects;
//! - **denied host**: each example that calls an upstream, pointed at an
//!   address the egress policy refuses, fails with `HOST_DENIED`: the
//!   connector turned the refusal into an error instead of trapping;
//! - **webhooks**: signed deliveries produce the expected events or errors,
//!   and a signed delivery of garbage bytes does not trap;
//! - **secrets**: no credential value appears in any answer.
//!
//! Every check runs through the same code paths as production (the API,
//! the broker, signature verification), so a connector that passes here
//! behaves the same when uploaded to a real host. The report is
//! [`report::Report`].

pub mod fixtures;
pub mod report;
mod run;
mod upstream;

pub use run::{Options, run};

//! Test connector: a bearer token plus a static header (Notion style),
//! applied by the host to `{allowed}` only.

use plugboard_guest::types::{Auth, AuthScheme};

const NAME: &str = "auth-bearer";

fn auth() -> Auth {
    Auth::new(AuthScheme::Bearer("token".into()))
        .host("{allowed}")
        .static_header("Notion-Version", "2022-06-28")
}

/// Credentials.
#[derive(serde::Deserialize, schemars::JsonSchema)]
#[allow(dead_code, reason = "read by the host, declared for the schema")]
struct Creds {
    /// The bearer token.
    token: String,
}

include!("common.rs");

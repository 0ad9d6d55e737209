//! Test connector: an API key in a header with a value template
//! (`Authorization: Token token={api_key}`), applied by the host to
//! `{allowed}` only.

use plugboard_guest::types::{Auth, AuthScheme, TemplateParam};

const NAME: &str = "auth-header";

fn auth() -> Auth {
    Auth::new(AuthScheme::ApiKeyHeader(vec![TemplateParam::new(
        "Authorization",
        "Token token={api_key}",
    )]))
    .host("{allowed}")
}

/// Credentials.
#[derive(serde::Deserialize, schemars::JsonSchema)]
#[allow(dead_code, reason = "read by the host, declared for the schema")]
struct Creds {
    /// The API key.
    api_key: String,
}

include!("../../auth-bearer/src/common.rs");

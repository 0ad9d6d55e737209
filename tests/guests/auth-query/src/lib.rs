//! Test connector: API key and token as query parameters (Trello's `key`
//! and `token`), applied by the host to `{allowed}` only.

use plugboard_guest::types::{Auth, AuthScheme, TemplateParam};

const NAME: &str = "auth-query";

fn auth() -> Auth {
    Auth::new(AuthScheme::ApiKeyQuery(vec![
        TemplateParam::new("key", "{key}"),
        TemplateParam::new("token", "{token}"),
    ]))
    .host("{allowed}")
}

/// Credentials.
#[derive(serde::Deserialize, schemars::JsonSchema)]
#[allow(dead_code, reason = "read by the host, declared for the schema")]
struct Creds {
    /// The application key.
    key: String,
    /// The user token.
    token: String,
}

include!("../../auth-bearer/src/common.rs");

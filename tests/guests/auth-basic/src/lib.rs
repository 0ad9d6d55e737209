//! Test connector: HTTP basic from templates (Zendesk's
//! `{email}/token:{api_token}`), applied by the host to `{allowed}` only.

use plugboard_guest::types::{Auth, AuthScheme, BasicAuth};

const NAME: &str = "auth-basic";

fn auth() -> Auth {
    Auth::new(AuthScheme::Basic(BasicAuth {
        username: "{email}/token".into(),
        password: "{api_token}".into(),
    }))
    .host("{allowed}")
}

/// Credentials (the email comes from config).
#[derive(serde::Deserialize, schemars::JsonSchema)]
#[allow(dead_code, reason = "read by the host, declared for the schema")]
struct Creds {
    /// The API token.
    api_token: String,
}

include!("../../auth-bearer/src/common.rs");

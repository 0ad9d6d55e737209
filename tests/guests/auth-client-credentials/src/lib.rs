//! Test connector: the OAuth 2.0 client-credentials grant (server to
//! server) against a provider at `{allowed}`; no connect flow, the host
//! fetches and renews the token itself.

use plugboard_guest::types::{Auth, AuthScheme, Oauth2Auth, Oauth2ClientAuth, Oauth2Grant};

const NAME: &str = "auth-client-credentials";

fn auth() -> Auth {
    Auth::new(AuthScheme::Oauth2(Oauth2Auth {
        grant: Oauth2Grant::ClientCredentials,
        authorization_url: String::new(),
        token_url: "{allowed}/oauth/token".into(),
        refresh_url: None,
        revocation_url: None,
        scopes: vec!["reports".into()],
        scope_delimiter: " ".into(),
        extra_authorization_params: Vec::new(),
        client_auth: Oauth2ClientAuth::BasicHeader,
        pkce: false,
    }))
    .host("{allowed}")
}

/// Credentials: the OAuth client.
#[derive(serde::Deserialize, schemars::JsonSchema)]
#[allow(dead_code, reason = "read by the host, declared for the schema")]
struct Creds {
    /// OAuth client id.
    client_id: String,
    /// OAuth client secret.
    client_secret: String,
}

include!("../../auth-bearer/src/common.rs");

//! Test connector: OAuth 2.0 (authorization code, PKCE, basic client
//! authentication, offline access) against a provider at `{allowed}`; the
//! host runs the flow and injects the access token for `{allowed}` only.

use plugboard_guest::types::{
    Auth, AuthScheme, Oauth2Auth, Oauth2ClientAuth, Oauth2Grant, TemplateParam,
};

const NAME: &str = "auth-oauth";

fn auth() -> Auth {
    Auth::new(AuthScheme::Oauth2(Oauth2Auth {
        grant: Oauth2Grant::AuthorizationCode,
        authorization_url: "{allowed}/oauth/authorize".into(),
        token_url: "{allowed}/oauth/token".into(),
        refresh_url: None,
        revocation_url: Some("{allowed}/oauth/revoke".into()),
        scopes: vec!["calendar.read".into(), "calendar.write".into()],
        scope_delimiter: " ".into(),
        extra_authorization_params: vec![
            TemplateParam::new("access_type", "offline"),
            TemplateParam::new("prompt", "consent"),
        ],
        client_auth: Oauth2ClientAuth::BasicHeader,
        pkce: true,
    }))
    .host("{allowed}")
}

/// Credentials: the OAuth client; the host adds the tokens.
#[derive(serde::Deserialize, schemars::JsonSchema)]
#[allow(dead_code, reason = "read by the host, declared for the schema")]
struct Creds {
    /// OAuth client id.
    client_id: String,
    /// OAuth client secret.
    client_secret: String,
}

include!("../../auth-bearer/src/common.rs");

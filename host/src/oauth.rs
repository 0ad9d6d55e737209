//! OAuth 2.0 run by the host: the connect flow (authorization code with
//! optional PKCE), the client-credentials grant, refresh before expiry or on
//! a 401, rotated refresh tokens, re-authentication, disconnect.
//!
//! Tokens live in the instance's sealed credentials as the fields
//! `access_token` and `refresh_token`; the credentials record's `expiresAt`
//! is the access token's expiry. Client id and secret are ordinary
//! credential fields (`client_id`, `client_secret`). Every token change is
//! one atomic write of the whole record, so a rotated refresh token is
//! stored together with the access token it came with.
//!
//! Refreshes are single-flight per instance ([`OAuth::lock`]): concurrent
//! invocations that find the token expiring queue on the lock and, once in,
//! re-read the record and find it fresh.
//!
//! Token requests go out through the broker's checked client, so the IP
//! policy applies to the provider like to any upstream. Nothing here logs
//! or returns a token, code, verifier or client secret.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::egress::{Broker, percent_encode, render_template};
use crate::manifest::OAuth2;
use crate::store::{CredentialsRecord, InstanceRecord, SealedField};
use crate::vault::{Credentials, Vault};

/// Field names in the sealed credentials.
pub const ACCESS_TOKEN: &str = "access_token";
/// Refresh token field.
pub const REFRESH_TOKEN: &str = "refresh_token";
/// Client id field.
pub const CLIENT_ID: &str = "client_id";
/// Client secret field.
pub const CLIENT_SECRET: &str = "client_secret";
/// Status of an instance whose refresh token was refused.
pub const REAUTH_REQUIRED: &str = "REAUTH_REQUIRED";

/// Refresh this long before the access token expires.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(60);
/// How long a connect flow's `state` stays valid.
pub const STATE_TTL: Duration = Duration::from_secs(600);
/// Largest token endpoint answer read.
const MAX_TOKEN_RESPONSE: usize = 64 << 10;
/// Time allowed for a token request.
const TOKEN_TIMEOUT: Duration = Duration::from_secs(30);

/// An OAuth failure, for the API edge.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    /// The provider refused the grant (`invalid_grant` and friends).
    #[error("the provider refused the grant: {error}{}", description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Refused {
        /// The OAuth error code.
        error: String,
        /// The provider's description, if any.
        description: Option<String>,
    },
    /// The token endpoint could not be reached or answered nonsense.
    #[error("token endpoint: {0}")]
    Endpoint(String),
    /// The instance lacks something the flow needs.
    #[error("{0}")]
    Config(String),
}

impl OAuthError {
    /// Whether the refresh token is dead and the user must reconnect.
    pub fn needs_reauth(&self) -> bool {
        matches!(self, Self::Refused { error, .. } if error == "invalid_grant")
    }
}

/// Tokens from the token endpoint.
struct Tokens {
    access: String,
    refresh: Option<String>,
    expires_in: Option<u64>,
}

/// Per-instance refresh locks.
#[derive(Default)]
pub struct OAuth {
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl OAuth {
    /// The refresh lock of `instance`.
    pub fn lock(&self, instance: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.locks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(instance.to_owned())
            .or_default()
            .clone()
    }
}

/// A fresh PKCE verifier and its S256 challenge.
pub fn pkce_pair() -> (String, String) {
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes);
    let verifier = B64URL.encode(bytes);
    let challenge = B64URL.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

/// A fresh `state` value.
pub fn new_state() -> String {
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes);
    B64URL.encode(bytes)
}

/// Renders a URL template (`https://{subdomain}.zendesk.com/…`) from config.
pub fn render_url(template: &str, config: &Value) -> Result<String, OAuthError> {
    render_template(template, config, &Credentials::default())
        .map(|s| s.expose().to_owned())
        .map_err(|e| OAuthError::Config(e.to_string()))
}

/// The authorization URL the user is sent to.
pub fn authorization_url(
    o: &OAuth2,
    config: &Value,
    client_id: &str,
    redirect_uri: &str,
    state: &str,
    challenge: Option<&str>,
) -> Result<String, OAuthError> {
    let base = render_url(&o.authorization_url, config)?;
    let mut params: Vec<(String, String)> = vec![
        ("response_type".into(), "code".into()),
        ("client_id".into(), client_id.into()),
        ("redirect_uri".into(), redirect_uri.into()),
        ("state".into(), state.into()),
    ];
    if let Some(scope) = scope(o) {
        params.push(("scope".into(), scope));
    }
    if let Some(c) = challenge {
        params.push(("code_challenge".into(), c.into()));
        params.push(("code_challenge_method".into(), "S256".into()));
    }
    for p in &o.extra_authorization_params {
        params.push((p.name.clone(), render_url(&p.value, config)?));
    }
    let query = form(&params);
    let sep = if base.contains('?') { '&' } else { '?' };
    Ok(format!("{base}{sep}{query}"))
}

/// The `scope` parameter (space-delimited unless the manifest says
/// otherwise), if any scopes are declared.
fn scope(o: &OAuth2) -> Option<String> {
    let delimiter = if o.scope_delimiter.is_empty() {
        " "
    } else {
        &o.scope_delimiter
    };
    (!o.scopes.is_empty()).then(|| o.scopes.join(delimiter))
}

fn form(params: &[(String, String)]) -> String {
    params
        .iter()
        .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Client id and secret from the instance's credentials.
fn client(creds: &Credentials) -> Result<(String, Option<String>), OAuthError> {
    let id = creds.get(CLIENT_ID).ok_or_else(|| {
        OAuthError::Config(format!(
            "the instance has no `{CLIENT_ID}` credential; set it with PUT /v1/instances/{{id}}/credentials"
        ))
    })?;
    Ok((
        id.expose().to_owned(),
        creds.get(CLIENT_SECRET).map(|s| s.expose().to_owned()),
    ))
}

/// POSTs a form with the configured client authentication; returns the
/// status and the (bounded) body.
async fn post_form(
    broker: &Broker,
    o: &OAuth2,
    url: &str,
    creds: &Credentials,
    mut params: Vec<(String, String)>,
) -> Result<(http::StatusCode, Bytes), OAuthError> {
    let (client_id, client_secret) = client(creds)?;
    let mut builder = http::Request::post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("accept", "application/json");
    if o.client_auth == "basicHeader" {
        // RFC 6749 §2.3.1: both parts form-encoded, then base64.
        let pair = format!(
            "{}:{}",
            percent_encode(&client_id),
            percent_encode(client_secret.as_deref().unwrap_or(""))
        );
        let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
        let mut value = http::HeaderValue::from_str(&format!("Basic {encoded}")).map_err(|_| {
            OAuthError::Config("client credentials are not valid header text".into())
        })?;
        value.set_sensitive(true);
        builder = builder.header("authorization", value);
    } else {
        params.push(("client_id".into(), client_id));
        if let Some(secret) = client_secret {
            params.push(("client_secret".into(), secret));
        }
    }
    let body = Full::new(Bytes::from(form(&params)))
        .map_err(|never| match never {})
        .boxed_unsync();
    let request = builder
        .body(body)
        .map_err(|_| OAuthError::Config(format!("OAuth URL {url:?} is not a valid URL")))?;
    let response = tokio::time::timeout(TOKEN_TIMEOUT, broker.client().send(request))
        .await
        .map_err(|_| OAuthError::Endpoint(format!("no answer within {TOKEN_TIMEOUT:?}")))?
        .map_err(|e| OAuthError::Endpoint(e.detail))?;
    let status = response.status();
    let body = http_body_util::Limited::new(response.into_body(), MAX_TOKEN_RESPONSE)
        .collect()
        .await
        .map_err(|e| OAuthError::Endpoint(format!("reading the answer: {e}")))?
        .to_bytes();
    Ok((status, body))
}

/// Sends a token request and parses the tokens or the OAuth error.
async fn token_request(
    broker: &Broker,
    o: &OAuth2,
    url: &str,
    creds: &Credentials,
    params: Vec<(String, String)>,
) -> Result<Tokens, OAuthError> {
    let (status, body) = post_form(broker, o, url, creds, params).await?;
    let json: Value = serde_json::from_slice(&body).map_err(|_| {
        OAuthError::Endpoint(format!("answered {status} with a body that is not JSON"))
    })?;
    if !status.is_success() || json.get("error").is_some() {
        let error = json["error"].as_str().unwrap_or("unknown_error").to_owned();
        let description = json["error_description"]
            .as_str()
            .map(|d| d.chars().take(300).collect());
        return Err(OAuthError::Refused { error, description });
    }
    let access = json["access_token"]
        .as_str()
        .ok_or_else(|| OAuthError::Endpoint("the answer has no access_token".into()))?
        .to_owned();
    Ok(Tokens {
        access,
        refresh: json["refresh_token"].as_str().map(str::to_owned),
        expires_in: json["expires_in"].as_u64(),
    })
}

/// Revokes the refresh token (else the access token) at the provider's
/// revocation URL (RFC 7009).
pub async fn revoke(
    broker: &Broker,
    o: &OAuth2,
    config: &Value,
    creds: &Credentials,
) -> Result<(), OAuthError> {
    let Some(url) = &o.revocation_url else {
        return Ok(());
    };
    let url = render_url(url, config)?;
    let (token, hint) = match (creds.get(REFRESH_TOKEN), creds.get(ACCESS_TOKEN)) {
        (Some(r), _) => (r, "refresh_token"),
        (None, Some(a)) => (a, "access_token"),
        (None, None) => return Ok(()),
    };
    let params = vec![
        ("token".into(), token.expose().to_owned()),
        ("token_type_hint".into(), hint.into()),
    ];
    let (status, _) = post_form(broker, o, &url, creds, params).await?;
    if status.is_success() {
        Ok(())
    } else {
        Err(OAuthError::Endpoint(format!(
            "revocation answered {status}"
        )))
    }
}

/// Exchanges an authorization code.
pub async fn exchange_code(
    broker: &Broker,
    o: &OAuth2,
    config: &Value,
    creds: &Credentials,
    code: &str,
    redirect_uri: &str,
    verifier: Option<&str>,
) -> Result<CredentialsUpdate, OAuthError> {
    let url = render_url(&o.token_url, config)?;
    let mut params = vec![
        ("grant_type".into(), "authorization_code".into()),
        ("code".into(), code.to_owned()),
        ("redirect_uri".into(), redirect_uri.to_owned()),
    ];
    if let Some(v) = verifier {
        params.push(("code_verifier".into(), v.to_owned()));
    }
    token_request(broker, o, &url, creds, params)
        .await
        .map(CredentialsUpdate)
}

/// Uses the refresh token (or, for the client-credentials grant, the client
/// credentials) to get a new access token.
pub async fn renew(
    broker: &Broker,
    o: &OAuth2,
    config: &Value,
    creds: &Credentials,
) -> Result<CredentialsUpdate, OAuthError> {
    if o.grant == "clientCredentials" {
        let url = render_url(&o.token_url, config)?;
        let mut params = vec![("grant_type".into(), "client_credentials".into())];
        if let Some(scope) = scope(o) {
            params.push(("scope".into(), scope));
        }
        return token_request(broker, o, &url, creds, params)
            .await
            .map(CredentialsUpdate);
    }
    let refresh = creds
        .get(REFRESH_TOKEN)
        .ok_or_else(|| OAuthError::Refused {
            error: "invalid_grant".into(),
            description: Some("no refresh token stored; reconnect the instance".into()),
        })?;
    let url = render_url(o.refresh_url.as_deref().unwrap_or(&o.token_url), config)?;
    let params = vec![
        ("grant_type".into(), "refresh_token".into()),
        ("refresh_token".into(), refresh.expose().to_owned()),
    ];
    token_request(broker, o, &url, creds, params)
        .await
        .map(CredentialsUpdate)
}

/// New tokens, to be written into an instance's credentials.
pub struct CredentialsUpdate(Tokens);

impl CredentialsUpdate {
    /// The record with the new tokens sealed in: the access token replaced,
    /// the refresh token replaced only if the provider sent a new one
    /// (rotation), the expiry set from `expires_in`.
    pub fn apply(
        self,
        vault: &Vault,
        instance: &str,
        mut record: CredentialsRecord,
    ) -> CredentialsRecord {
        let now = crate::api::now();
        let Tokens {
            access,
            refresh,
            expires_in,
        } = self.0;
        let mut put = |field: &str, value: &str| {
            record.fields.insert(
                field.to_owned(),
                SealedField {
                    sealed: vault.seal(instance, field, value),
                    updated_at: now.clone(),
                },
            );
        };
        put(ACCESS_TOKEN, &access);
        if let Some(r) = &refresh {
            put(REFRESH_TOKEN, r);
        }
        record.expires_at = expires_in.map(|s| {
            (time::OffsetDateTime::now_utc() + time::Duration::seconds(s as i64))
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default()
        });
        record
    }
}

/// Whether the access token in `record` is missing or expires within the
/// margin.
pub fn needs_renewal(record: &CredentialsRecord) -> bool {
    if !record.fields.contains_key(ACCESS_TOKEN) {
        return true;
    }
    let Some(at) = record.expires_at.as_deref().and_then(|e| {
        time::OffsetDateTime::parse(e, &time::format_description::well_known::Rfc3339).ok()
    }) else {
        return false;
    };
    at - time::OffsetDateTime::now_utc()
        <= time::Duration::try_from(REFRESH_MARGIN).unwrap_or_default()
}

/// Whether an instance of this OAuth connector is connected (has an access
/// token, or can get one on its own).
pub fn connected(o: &OAuth2, record: Option<&CredentialsRecord>) -> bool {
    match record {
        None => false,
        Some(r) if o.grant == "clientCredentials" => r.fields.contains_key(CLIENT_ID),
        Some(r) => r.fields.contains_key(ACCESS_TOKEN),
    }
}

/// Drops the token fields, keeping the client credentials.
pub fn without_tokens(mut record: CredentialsRecord) -> CredentialsRecord {
    record.fields.remove(ACCESS_TOKEN);
    record.fields.remove(REFRESH_TOKEN);
    record.expires_at = None;
    record
}

/// The status an instance gets when its tokens go bad.
pub fn reauth(mut instance: InstanceRecord, reason: String) -> InstanceRecord {
    instance.status = REAUTH_REQUIRED.into();
    instance.status_reason = Some(reason);
    instance
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::manifest::TemplateParam;

    fn provider() -> OAuth2 {
        OAuth2 {
            grant: "authorizationCode".into(),
            authorization_url: "https://{subdomain}.example.com/oauth/authorize".into(),
            token_url: "https://{subdomain}.example.com/oauth/token".into(),
            refresh_url: None,
            revocation_url: None,
            scopes: vec!["read".into(), "write".into()],
            scope_delimiter: " ".into(),
            extra_authorization_params: vec![TemplateParam {
                name: "access_type".into(),
                value: "offline".into(),
            }],
            client_auth: "basicHeader".into(),
            pkce: true,
        }
    }

    #[test]
    fn the_authorization_url_carries_everything() {
        let (verifier, challenge) = pkce_pair();
        assert_eq!(verifier.len(), 43);
        assert_eq!(
            challenge,
            B64URL.encode(Sha256::digest(verifier.as_bytes()))
        );
        let url = authorization_url(
            &provider(),
            &json!({"subdomain": "acme"}),
            "cid",
            "https://app.test/cb",
            "st8",
            Some(&challenge),
        )
        .unwrap();
        assert!(
            url.starts_with(
                "https://acme.example.com/oauth/authorize?response_type=code&client_id=cid"
            ),
            "{url}"
        );
        for part in [
            "redirect_uri=https%3A%2F%2Fapp.test%2Fcb",
            "state=st8",
            "scope=read%20write",
            &format!("code_challenge={challenge}"),
            "code_challenge_method=S256",
            "access_type=offline",
        ] {
            assert!(url.contains(part), "{part} missing in {url}");
        }
    }

    #[test]
    fn renewal_is_due_near_expiry_or_without_a_token() {
        let mut r = CredentialsRecord::default();
        assert!(needs_renewal(&r));
        r.fields.insert(
            ACCESS_TOKEN.into(),
            SealedField {
                sealed: String::new(),
                updated_at: String::new(),
            },
        );
        assert!(!needs_renewal(&r), "no expiry known");
        r.expires_at = Some("2000-01-01T00:00:00Z".into());
        assert!(needs_renewal(&r));
        r.expires_at = Some("2999-01-01T00:00:00Z".into());
        assert!(!needs_renewal(&r));
        let cleared = without_tokens(r);
        assert!(!cleared.fields.contains_key(ACCESS_TOKEN));
        assert!(needs_renewal(&cleared));
    }
}

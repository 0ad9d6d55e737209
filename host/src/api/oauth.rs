//! OAuth endpoints: start a connect flow, complete it (API or browser
//! callback), disconnect; and the token upkeep every call of an OAuth
//! instance goes through ([`ensure_fresh`]).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::instances::{ACTIVE, PENDING, load_connector, load_instance};
use super::openapi::error_responses;
use super::openapi::schemas::{OAuthConnected, OAuthStarted};
use super::{ApiError, ApiResult, AppState, credentials, read_json};
use crate::egress::AuthPlan;
use crate::manifest::{AuthScheme, OAuth2};
use crate::oauth::{self, OAuthError};
use crate::store::{ConnectorRecord, CredentialsRecord, InstanceRecord, OAuthState};

/// The OAuth description of an instance's connector, or 400.
fn provider(connector: &ConnectorRecord) -> ApiResult<&OAuth2> {
    match &connector.manifest.auth.scheme {
        AuthScheme::Oauth2(o) => Ok(o),
        _ => Err(ApiError::bad_request(
            "NOT_OAUTH",
            format!("connector {} does not use OAuth 2.0", connector.id),
        )),
    }
}

fn token_error(e: &OAuthError) -> ApiError {
    match e {
        OAuthError::Config(m) => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "CONFIG_ERROR", m.clone())
        }
        OAuthError::Refused { .. } | OAuthError::Endpoint(_) => {
            ApiError::new(StatusCode::BAD_GATEWAY, "OAUTH_TOKEN_ERROR", e.to_string())
        }
    }
}

/// Body of `POST …/oauth2/start`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StartBody {
    /// Where the provider sends the user back: an absolute http(s) URL,
    /// e.g. this host's `/oauth2/callback`.
    redirect_uri: String,
}

/// The path parameter naming an instance.
const INSTANCE_ID: &str = "Instance id (`inst_…`)";

error_responses!(
    StartErrors = [
        INVALID_REQUEST,
        NOT_OAUTH,
        NOT_FOUND,
        CREDENTIALS_REQUIRED,
        PAYLOAD_TOO_LARGE,
        CONFIG_ERROR,
        CREDENTIALS_UNREADABLE,
        OAUTH_TOKEN_ERROR,
    ]
);

/// Start an OAuth connect flow.
///
/// Needs the instance's `client_id` credential. The authorization URL
/// carries client id, redirect URI, scopes, a single-use `state` and the
/// PKCE challenge; send the user there.
#[utoipa::path(
    post,
    path = "/v1/instances/{id}/oauth2/start",
    operation_id = "startOAuth",
    tag = "oauth",
    params(("id" = String, Path, description = INSTANCE_ID)),
    request_body = StartBody,
    responses((status = 200, description = "The flow started.", body = OAuthStarted), StartErrors),
)]
pub async fn start(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Body,
) -> ApiResult<Json<Value>> {
    let req: StartBody = read_json(body, state.settings.limits.max_request_bytes).await?;
    if !(req.redirect_uri.starts_with("https://") || req.redirect_uri.starts_with("http://")) {
        return Err(ApiError::bad_request(
            "INVALID_REQUEST",
            "`redirectUri` must be an absolute http(s) URL",
        ));
    }
    let instance = load_instance(&state, &id)?;
    let connector = load_connector(&state, &instance)?;
    let o = provider(&connector)?;
    if o.grant != "authorizationCode" {
        return Err(ApiError::bad_request(
            "NOT_OAUTH",
            "this connector uses the client-credentials grant: no connect flow is needed",
        ));
    }
    let record = state.store.credentials(&id)?.unwrap_or_default();
    let creds = credentials::open(&state.vault, &id, &record)?;
    let client_id = creds
        .get(oauth::CLIENT_ID)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::CONFLICT,
                "CREDENTIALS_REQUIRED",
                format!(
                    "set the `client_id` (and `client_secret`) credentials of instance {id} first"
                ),
            )
        })?
        .expose()
        .to_owned();
    let flow_state = oauth::new_state();
    let (verifier, challenge) = if o.pkce {
        let (v, c) = oauth::pkce_pair();
        (Some(v), Some(c))
    } else {
        (None, None)
    };
    let url = oauth::authorization_url(
        o,
        &instance.config,
        &client_id,
        &req.redirect_uri,
        &flow_state,
        challenge.as_deref(),
    )
    .map_err(|e| token_error(&e))?;
    let expires_at = super::unix_ms() / 1000 + oauth::STATE_TTL.as_secs();
    state.store.put_oauth_state(
        &flow_state,
        &OAuthState {
            instance: id.clone(),
            verifier: verifier.map(|v| state.vault.seal(&id, "pkce", &v)),
            redirect_uri: req.redirect_uri,
            expires_at,
        },
    )?;
    tracing::info!(instance = %id, "OAuth connect flow started");
    Ok(Json(json!({
        "authorizationUrl": url,
        "state": flow_state,
        "expiresInSecs": oauth::STATE_TTL.as_secs(),
    })))
}

/// Body of `POST …/oauth2/callback`, and query of the browser callback.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CallbackBody {
    /// The `state` of the flow.
    state: String,
    /// The provider's authorization code.
    #[serde(default)]
    code: Option<String>,
    /// The provider's `error`, if it refused.
    #[serde(default)]
    error: Option<String>,
    /// The provider's `error_description`.
    #[serde(default, alias = "error_description")]
    error_description: Option<String>,
}

error_responses!(
    CallbackErrors = [
        INVALID_REQUEST,
        NOT_OAUTH,
        OAUTH_STATE_INVALID,
        OAUTH_STATE_EXPIRED,
        OAUTH_DENIED,
        NOT_FOUND,
        PAYLOAD_TOO_LARGE,
        CONFIG_ERROR,
        CREDENTIALS_UNREADABLE,
        OAUTH_TOKEN_ERROR,
    ]
);

/// Complete an OAuth connect flow.
///
/// Forward the `code` and `state` the provider redirected with (or its
/// `error`). The code is exchanged at the token URL, the tokens are stored
/// sealed and the instance becomes `ACTIVE`. Any failure leaves the
/// instance as it was.
#[utoipa::path(
    post,
    path = "/v1/instances/{id}/oauth2/callback",
    operation_id = "completeOAuth",
    tag = "oauth",
    params(("id" = String, Path, description = INSTANCE_ID)),
    request_body = CallbackBody,
    responses((status = 200, description = "Connected.", body = OAuthConnected), CallbackErrors),
)]
pub async fn callback(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Body,
) -> ApiResult<Json<Value>> {
    let req: CallbackBody = read_json(body, state.settings.limits.max_request_bytes).await?;
    let instance = complete(&state, Some(&id), req).await?;
    Ok(Json(
        json!({ "instance": instance.id, "status": instance.status }),
    ))
}

error_responses!(
    html BrowserCallbackErrors = [
        INVALID_REQUEST,
        NOT_OAUTH,
        OAUTH_STATE_INVALID,
        OAUTH_STATE_EXPIRED,
        OAUTH_DENIED,
        NOT_FOUND,
        CONFIG_ERROR,
        CREDENTIALS_UNREADABLE,
        OAUTH_TOKEN_ERROR,
    ]
);

/// The browser's OAuth callback.
///
/// Where a provider sends the user's browser (point `redirectUri` here).
/// Public: the single-use `state` alone binds it to an instance. Answers a
/// small HTML page saying whether the instance is connected.
#[utoipa::path(
    get,
    path = "/oauth2/callback",
    operation_id = "oauthBrowserCallback",
    tag = "oauth",
    params(
        ("state" = String, Query, description = "The `state` of the flow"),
        ("code" = Option<String>, Query, description = "The provider's authorization code"),
        ("error" = Option<String>, Query, description = "The provider's `error`, if it refused"),
        ("error_description" = Option<String>, Query, description = "The provider's `error_description`"),
    ),
    responses(
        (status = 200, description = "Connected: a page saying so.", content_type = "text/html", body = String),
        BrowserCallbackErrors,
    ),
)]
pub async fn browser_callback(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let req = CallbackBody {
        state: query.get("state").cloned().unwrap_or_default(),
        code: query.get("code").cloned(),
        error: query.get("error").cloned(),
        error_description: query.get("error_description").cloned(),
    };
    let result = complete(&state, None, req).await;
    // No API token comes with the browser; the single-use state is the
    // authority, so the host records the connect in its own name.
    state
        .audit
        .append(super::audit::browser_connect(&state, &result))
        .await;
    let (status, title, text) = match result {
        Ok(_) => (
            StatusCode::OK,
            "Connected",
            "You can close this window.".to_owned(),
        ),
        Err(e) => (e.status, "Not connected", e.message.clone()),
    };
    let escape = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    (
        status,
        Html(format!(
            "<!doctype html><meta charset=utf-8><title>{title}</title><h1>{title}</h1><p>{}</p>",
            escape(&text)
        )),
    )
        .into_response()
}

/// Checks the state, exchanges the code, stores the tokens, sets `ACTIVE`.
/// Any failure leaves the instance as it was.
async fn complete(
    state: &AppState,
    instance_id: Option<&str>,
    req: CallbackBody,
) -> ApiResult<InstanceRecord> {
    let invalid = || {
        ApiError::bad_request(
            "OAUTH_STATE_INVALID",
            "unknown or already used OAuth state; start the connect flow again",
        )
    };
    let flow = state
        .store
        .take_oauth_state(&req.state)?
        .ok_or_else(invalid)?;
    if instance_id.is_some_and(|id| id != flow.instance) {
        return Err(invalid());
    }
    if super::unix_ms() / 1000 > flow.expires_at {
        return Err(ApiError::bad_request(
            "OAUTH_STATE_EXPIRED",
            "the OAuth state expired; start the connect flow again",
        ));
    }
    if let Some(error) = req.error {
        let description = req
            .error_description
            .map(|d| format!(": {}", d.chars().take(300).collect::<String>()))
            .unwrap_or_default();
        return Err(ApiError::bad_request(
            "OAUTH_DENIED",
            format!("the provider answered {error}{description}; the instance is unchanged"),
        ));
    }
    let code = req
        .code
        .ok_or_else(|| ApiError::bad_request("INVALID_REQUEST", "`code` is missing"))?;
    let id = flow.instance.as_str();
    let mut instance = load_instance(state, id)?;
    let connector = load_connector(state, &instance)?;
    let o = provider(&connector)?;
    let record = state.store.credentials(id)?.unwrap_or_default();
    let creds = credentials::open(&state.vault, id, &record)?;
    let verifier = match &flow.verifier {
        Some(sealed) => Some(
            state
                .vault
                .open(id, "pkce", sealed)
                .map_err(|e| ApiError::internal(format!("PKCE verifier: {e}")))?,
        ),
        None => None,
    };
    let update = oauth::exchange_code(
        state.runtime.broker(),
        o,
        &instance.config,
        &creds,
        &code,
        &flow.redirect_uri,
        verifier.as_ref().map(|v| v.expose()),
    )
    .await
    .map_err(|e| {
        tracing::warn!(instance = %id, error = %e, "OAuth code exchange failed");
        token_error(&e)
    })?;
    let record = update.apply(&state.vault, id, record);
    instance.status = ACTIVE.into();
    instance.status_reason = None;
    state.store.put_credentials(&instance, &record)?;
    tracing::info!(instance = %id, "OAuth connected");
    Ok(instance)
}

error_responses!(DisconnectErrors = [NOT_OAUTH, NOT_FOUND, CREDENTIALS_UNREADABLE]);

/// Disconnect an OAuth instance.
///
/// Revokes the refresh token at the provider (best effort, if the manifest
/// says how) and wipes the tokens; the client credentials stay and the
/// instance is `PENDING_AUTHENTICATION` again.
#[utoipa::path(
    delete,
    path = "/v1/instances/{id}/oauth2",
    operation_id = "disconnectOAuth",
    tag = "oauth",
    params(("id" = String, Path, description = INSTANCE_ID)),
    responses((status = 204, description = "Disconnected."), DisconnectErrors),
)]
pub async fn disconnect(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let mut instance = load_instance(&state, &id)?;
    let connector = load_connector(&state, &instance)?;
    let o = provider(&connector)?;
    let record = state.store.credentials(&id)?.unwrap_or_default();
    if o.revocation_url.is_some() {
        // Best effort: a provider that is down must not keep the tokens here.
        if let Err(e) = oauth::revoke(
            state.runtime.broker(),
            o,
            &instance.config,
            &credentials::open(&state.vault, &id, &record)?,
        )
        .await
        {
            tracing::warn!(instance = %id, error = %e, "OAuth revocation failed; tokens are wiped anyway");
        }
    }
    instance.status = PENDING.into();
    instance.status_reason = Some(format!(
        "disconnected; connect again with POST /v1/instances/{id}/oauth2/start"
    ));
    state
        .store
        .put_credentials(&instance, &oauth::without_tokens(record))?;
    tracing::info!(instance = %id, "OAuth disconnected");
    Ok(StatusCode::NO_CONTENT)
}

/// Makes sure an OAuth instance has a usable access token before a call
/// and returns its credentials record: refreshes (single-flight) when the
/// token expires within the margin, or when `stale` names the sealed token
/// an upstream just refused.
///
/// A fresh token is the common case, so it is checked without the refresh
/// lock: only calls that find the token due queue on the lock, and the
/// first of them refreshes while the others then find it fresh.
pub async fn ensure_fresh(
    state: &AppState,
    instance: &InstanceRecord,
    o: &OAuth2,
    stale: Option<&str>,
) -> ApiResult<CredentialsRecord> {
    let id = instance.id.as_str();
    if stale.is_none() {
        if instance.status == oauth::REAUTH_REQUIRED {
            return Err(reauth_error(instance));
        }
        let record = state.store.credentials(id)?.unwrap_or_default();
        if !oauth::needs_renewal(&record) {
            return Ok(record);
        }
    }
    let lock = state.oauth.lock(id);
    let _guard = lock.lock().await;
    // Re-read under the lock: whoever held it may have refreshed already.
    let mut instance = load_instance(state, id)?;
    if instance.status == oauth::REAUTH_REQUIRED {
        return Err(reauth_error(&instance));
    }
    let record = state.store.credentials(id)?.unwrap_or_default();
    let current = record
        .fields
        .get(oauth::ACCESS_TOKEN)
        .map(|f| f.sealed.as_str());
    let due = match stale {
        Some(stale) => current == Some(stale),
        None => oauth::needs_renewal(&record),
    };
    if !due {
        return Ok(record);
    }
    let creds = credentials::open(&state.vault, id, &record)?;
    match oauth::renew(state.runtime.broker(), o, &instance.config, &creds).await {
        Ok(update) => {
            let record = update.apply(&state.vault, id, record);
            instance.status = ACTIVE.into();
            instance.status_reason = None;
            state.store.put_credentials(&instance, &record)?;
            tracing::info!(instance = %id, "OAuth access token renewed");
            Ok(record)
        }
        Err(e) if e.needs_reauth() => {
            let instance = oauth::reauth(instance, format!("{e}; reconnect the instance"));
            state.store.update_instance(&instance)?;
            tracing::warn!(instance = %id, event = "oauth.reauth_required", error = %e, "OAuth refresh refused; the instance must be reconnected");
            Err(reauth_error(&instance))
        }
        Err(e) => {
            tracing::warn!(instance = %id, error = %e, "OAuth refresh failed");
            Err(token_error(&e))
        }
    }
}

fn reauth_error(instance: &InstanceRecord) -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "AUTH_REQUIRED",
        format!(
            "instance {} must be reconnected: {}",
            instance.id,
            instance
                .status_reason
                .as_deref()
                .unwrap_or("the provider refused its refresh token")
        ),
    )
}

/// The renewal hook for the broker: after a 401 to the injected token,
/// refresh (unless someone already did) and hand back the new plan.
pub fn reauth_hook(
    state: &AppState,
    id: &str,
    connector: &ConnectorRecord,
    used_token: Option<String>,
) -> Option<crate::egress::Reauth> {
    if !matches!(connector.manifest.auth.scheme, AuthScheme::Oauth2(_)) {
        return None;
    }
    let (state, id, auth) = (
        state.clone(),
        id.to_owned(),
        connector.manifest.auth.clone(),
    );
    let used = Arc::new(used_token);
    Some(Arc::new(move || {
        let (state, id, auth, used) = (state.clone(), id.clone(), auth.clone(), used.clone());
        Box::pin(async move {
            let AuthScheme::Oauth2(o) = &auth.scheme else {
                return None;
            };
            let stale = used.as_deref()?;
            let instance = state.store.instance(&id).ok()??;
            let record = ensure_fresh(&state, &instance, o, Some(stale)).await.ok()?;
            let creds = credentials::open(&state.vault, &id, &record).ok()?;
            AuthPlan::build(&auth, &instance.config, &creds)
                .ok()?
                .map(Arc::new)
        })
    }))
}

//! The HTTP API (axum): routes, authentication, error mapping.
//!
//! Handlers validate input, call into the runtime and the store, and map
//! every failure onto [`ApiError`]. Nothing here knows how guests run.

mod audit;
mod auth;
mod connectors;
mod credentials;
mod error;
mod instances;
mod oauth;
mod observe;
mod rules;
mod webhooks;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use axum::routing::{get, post};
use http_body_util::BodyExt as _;
use serde_json::json;

pub use audit::AuditNote;
pub use auth::{ADMIN_TOKEN_FILE, ensure_admin_token, write_owner_only};
pub use error::{ApiError, ApiResult};
pub use rules::spawn_worker;

use crate::config::Settings;
use crate::runtime::Runtime;
use crate::store::Store;
use crate::vault::Vault;

/// Shared state of all handlers.
#[derive(Clone)]
pub struct AppState {
    /// Persistent state.
    pub store: Arc<dyn Store>,
    /// Component runtime.
    pub runtime: Arc<Runtime>,
    /// Resolved settings.
    pub settings: Arc<Settings>,
    /// Seals and opens instance credentials.
    pub vault: Arc<Vault>,
    /// OAuth refresh locks.
    pub oauth: Arc<crate::oauth::OAuth>,
    /// Wakes the job worker when jobs are queued.
    pub jobs: Arc<tokio::sync::Notify>,
    /// The audit trail.
    pub audit: crate::audit::AuditLog,
    /// When each token's `lastUsedAt` was last written (Unix ms), so it is
    /// written at most once a minute per token rather than per request.
    token_seen: Arc<Mutex<HashMap<String, u64>>>,
    /// Compiled parameter validators per (digest, method): compiling a JSON
    /// Schema costs far more than validating against it.
    validators: Arc<Mutex<ValidatorCache>>,
}

/// Key: (component digest, method name).
type ValidatorCache = HashMap<(String, String), Arc<jsonschema::Validator>>;

impl AppState {
    /// Bundles the parts.
    pub fn new(
        store: Arc<dyn Store>,
        runtime: Arc<Runtime>,
        vault: Arc<Vault>,
        settings: Settings,
        audit: crate::audit::AuditLog,
    ) -> Self {
        Self {
            store,
            runtime,
            vault,
            oauth: Arc::default(),
            jobs: Arc::default(),
            audit,
            token_seen: Arc::default(),
            settings: Arc::new(settings),
            validators: Arc::default(),
        }
    }
}

/// The full router.
pub fn router(state: AppState) -> Router {
    let v1 = Router::new()
        .route(
            "/connectors",
            post(connectors::upload).get(connectors::list),
        )
        .route(
            "/connectors/{id}",
            get(connectors::show).delete(connectors::delete),
        )
        .route("/instances", post(instances::create).get(instances::list))
        .route(
            "/connectors/{id}/rate-limit",
            axum::routing::put(connectors::set_rate_limit),
        )
        .route(
            "/instances/{id}",
            get(instances::show)
                .patch(instances::update)
                .delete(instances::delete),
        )
        .route("/instances/{id}/health", get(instances::health))
        .route("/instances/{id}/stats", get(instances::stats))
        .route("/instances/{id}/test", post(instances::test))
        .route("/tokens", post(auth::create_token).get(auth::list_tokens))
        .route("/tokens/{id}", axum::routing::delete(auth::delete_token))
        .route("/tokens/{id}/rotate", post(auth::rotate_token))
        .route("/audit", get(audit::list))
        .route("/events", get(webhooks::list_events))
        .route("/events/{id}", get(webhooks::show_event))
        .route("/rules", post(rules::create).get(rules::list))
        .route(
            "/rules/{id}",
            get(rules::show).put(rules::replace).delete(rules::delete),
        )
        .route("/usage", get(observe::usage))
        .route("/jobs", get(rules::list_jobs))
        .route("/jobs/{id}", get(rules::show_job))
        .route("/jobs/{id}/replay", post(rules::replay))
        .route("/instances/{id}/oauth2/start", post(oauth::start))
        .route("/instances/{id}/oauth2/callback", post(oauth::callback))
        .route(
            "/instances/{id}/oauth2",
            axum::routing::delete(oauth::disconnect),
        )
        .route(
            "/instances/{id}/credentials",
            axum::routing::put(instances::put_credentials),
        )
        .route("/instances/{id}/methods/{method}", post(instances::invoke))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ));
    // Prometheus scrapes with a bearer token like any API client.
    let metrics = Router::new()
        .route("/metrics", get(observe::metrics))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ));
    Router::new()
        .route("/healthz", get(healthz))
        // Where OAuth providers send the browser: no API token there; the
        // single-use state binds it to an instance.
        .route("/oauth2/callback", get(oauth::browser_callback))
        // Webhooks carry no API token: the signature is the authentication.
        .route("/v1/webhooks/{id}", post(webhooks::ingress))
        .nest("/v1", v1)
        .merge(metrics)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn(observe::track))
        .with_state(state)
}

async fn healthz(State(state): State<AppState>) -> axum::Json<serde_json::Value> {
    axum::Json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "runtime": state.runtime.stats(),
    }))
}

async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        format!("no route for {method} {}", uri.path()),
    )
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
        format!("{method} is not allowed on {}", uri.path()),
    )
}

/// Reads a request body up to `limit` bytes; larger bodies get 413
/// `PAYLOAD_TOO_LARGE` without being buffered.
pub async fn read_body(body: Body, limit: usize) -> ApiResult<Bytes> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PAYLOAD_TOO_LARGE",
            format!("request body exceeds the limit of {limit} bytes"),
        )
        .body_unread()
    };
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(too_large())
        }
        Err(e) => Err(ApiError::bad_request(
            "INVALID_REQUEST",
            format!("could not read the request body: {e}"),
        )),
    }
}

/// Parses a JSON request body into `T` with a clear error.
pub async fn read_json<T: serde::de::DeserializeOwned>(body: Body, limit: usize) -> ApiResult<T> {
    let bytes = read_body(body, limit).await?;
    serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::bad_request("INVALID_REQUEST", format!("invalid JSON request body: {e}"))
    })
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Current time, RFC 3339.
pub fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

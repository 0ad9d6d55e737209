//! The HTTP API (axum): routes, authentication, error mapping.
//!
//! Handlers validate input, call into the runtime and the store, and map
//! every failure onto [`ApiError`]. Nothing here knows how guests run.

mod audit;
mod auth;
mod connectors;
mod context;
mod credentials;
mod error;
mod fast;
mod fresh;
mod instances;
mod oauth;
mod observe;
mod openapi;
mod rules;
mod webhooks;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use http_body_util::BodyExt as _;
use serde_json::json;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use audit::AuditNote;
pub use auth::{ADMIN_TOKEN_FILE, ensure_admin_token, write_owner_only};
pub use error::{ApiError, ApiResult};
pub use fast::Front;
pub use rules::spawn_worker;

use crate::config::Settings;
use crate::runtime::Runtime;
use crate::store::Store;
use crate::vault::Vault;

/// Shared state of all handlers: one `Arc`, because axum clones the state
/// for every handler and middleware a request passes (cloning and dropping
/// a dozen `Arc`s each time showed up at ~3 % of the host's CPU under load).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What [`AppState`] shares.
pub struct Shared {
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
    /// written at most once a minute per token rather than per request;
    /// outlives the [`auth::Known`] entries, which each store write drops.
    token_seen: Mutex<HashMap<String, u64>>,
    /// Compiled params and result validators per digest and method:
    /// compiling a JSON Schema costs far more than validating against it.
    validators: Mutex<ValidatorCache>,
    /// Per-instance call contexts (records and prepared egress pieces).
    contexts: context::Contexts,
    /// Token records by hash, so a request does not read and decode its
    /// token from the store.
    tokens: fresh::Fresh<[u8; 32], Arc<auth::Known>>,
}

/// By component digest, then method name (two levels, so a lookup borrows
/// both and allocates nothing).
type ValidatorCache = HashMap<String, HashMap<String, Arc<instances::MethodSchemas>>>;

impl AppState {
    /// Bundles the parts.
    pub fn new(
        store: Arc<dyn Store>,
        runtime: Arc<Runtime>,
        vault: Arc<Vault>,
        settings: Settings,
        audit: crate::audit::AuditLog,
    ) -> Self {
        Self(Arc::new(Shared {
            store,
            runtime,
            vault,
            oauth: Arc::default(),
            jobs: Arc::default(),
            audit,
            token_seen: Default::default(),
            settings: Arc::new(settings),
            validators: Default::default(),
            contexts: Default::default(),
            tokens: Default::default(),
        }))
    }
}

/// The full router, and the spec it serves (built once, here).
pub fn router(state: AppState) -> Router {
    let guard = axum::middleware::from_fn_with_state(state.clone(), auth::require_token);
    let (router, spec) = routes(|v1| v1.route_layer(guard)).split_for_parts();
    router
        .layer(axum::Extension(Arc::new(openapi::Published::new(&spec))))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn(observe::track))
        .with_state(state)
}

/// What the host serves: [`router`] behind the invoke route's fast path.
pub fn service(state: AppState) -> Front {
    Front::new(router(state.clone()), state)
}

/// The OpenAPI description of [`router`]'s routes.
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes(|v1| v1).into_openapi()
}

/// The route table: each `routes!` entry adds the handlers of one path to
/// the router and their `#[utoipa::path]` annotations to the spec. To add a
/// route, annotate its handler and list it here (handlers of one path go in
/// one `routes!`). `guard` puts the token check on the `/v1` routes.
fn routes(
    guard: impl FnOnce(OpenApiRouter<AppState>) -> OpenApiRouter<AppState>,
) -> OpenApiRouter<AppState> {
    let v1 = OpenApiRouter::new()
        .routes(routes!(connectors::upload, connectors::list))
        .routes(routes!(connectors::show, connectors::delete))
        .routes(routes!(connectors::set_rate_limit))
        .routes(routes!(instances::create, instances::list))
        .routes(routes!(
            instances::show,
            instances::update,
            instances::delete
        ))
        .routes(routes!(instances::put_credentials))
        .routes(routes!(instances::health))
        .routes(routes!(instances::stats))
        .routes(routes!(instances::test))
        .routes(routes!(instances::invoke))
        .routes(routes!(oauth::start))
        .routes(routes!(oauth::callback))
        .routes(routes!(oauth::disconnect))
        .routes(routes!(auth::create_token, auth::list_tokens))
        .routes(routes!(auth::delete_token))
        .routes(routes!(auth::rotate_token))
        .routes(routes!(audit::list))
        .routes(routes!(observe::usage))
        // Prometheus scrapes with a bearer token like any API client.
        .routes(routes!(observe::metrics))
        .routes(routes!(webhooks::list_events))
        .routes(routes!(webhooks::show_event))
        .routes(routes!(rules::create, rules::list))
        .routes(routes!(rules::show, rules::replace, rules::delete))
        .routes(routes!(rules::list_jobs))
        .routes(routes!(rules::show_job))
        .routes(routes!(rules::replay));
    let mut v1 = guard(v1);
    openapi::responses::require_bearer(v1.get_openapi_mut());
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(healthz))
        .routes(routes!(openapi::openapi_json))
        .routes(routes!(openapi::docs))
        // Where OAuth providers send the browser: no API token there; the
        // single-use state binds it to an instance.
        .routes(routes!(oauth::browser_callback))
        // Webhooks carry no API token: the signature is the authentication.
        .routes(routes!(webhooks::ingress))
        .merge(v1)
}

/// Liveness and version.
///
/// Public. `runtime` counts how components were obtained since start:
/// compiled from bytes, or loaded from stored artifacts.
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz",
    tag = "meta",
    responses((status = 200, description = "The host is serving.", body = openapi::schemas::Healthz)),
)]
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

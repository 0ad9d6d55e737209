//! Operating figures: how calls end (recorded into usage and metrics),
//! `GET /v1/usage`, `GET /metrics`, and the per-request span and metrics
//! of the API itself.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use axum::Json;
use axum::extract::{MatchedPath, Query, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tracing::Instrument as _;

use super::openapi::error_responses;
use super::openapi::schemas::UsageSummary;
use super::{ApiError, ApiResult, AppState};
use crate::store::ConnectorRecord;
use crate::usage::{CallOutcome, Window};

/// How the `window` query parameter is documented.
pub(super) const WINDOW: &str =
    "`all` (default: since the host started), `1m`..`60m`, `1h`..`168h` or `1d`..`7d`";

/// Method label of connection tests.
pub const TEST_CONNECTION: &str = "test-connection";
/// Method label of webhook deliveries.
pub const HANDLE_WEBHOOK: &str = "handle-webhook";
/// Method label of calls to a method the connector does not have: names
/// come from requests, and metrics labels must stay bounded.
const UNKNOWN_METHOD: &str = "_unknown";

/// Records how one call of `instance` ended, in its usage and in metrics.
pub(super) fn record_call<T>(
    state: &AppState,
    instance: &str,
    connector: &ConnectorRecord,
    method: &str,
    duration: Duration,
    result: &ApiResult<T>,
) {
    let method = if method == TEST_CONNECTION
        || method == HANDLE_WEBHOOK
        || connector.manifest.method(method).is_some()
    {
        method
    } else {
        UNKNOWN_METHOD
    };
    let error = result.as_ref().err().map(|e| e.code);
    let outcome = CallOutcome {
        method,
        error,
        category: error.map(|code| super::error::category(code).as_str()),
        duration,
    };
    state.runtime.broker().usage().record_call(
        instance,
        &connector.id,
        &outcome,
        SystemTime::now(),
    );
    crate::metrics::invocation(&connector.id, method, error.unwrap_or("SUCCESS"), duration);
}

/// The `window` query parameter (default `all`); 400 `INVALID_REQUEST` if
/// malformed.
pub(super) fn window(query: &HashMap<String, String>) -> ApiResult<Window> {
    match query.get("window") {
        None => Ok(Window::All),
        Some(w) => w.parse().map_err(|e: crate::usage::BadWindow| {
            ApiError::bad_request("INVALID_REQUEST", e.to_string())
        }),
    }
}

error_responses!(UsageErrors = [INVALID_REQUEST]);

/// Usage per connector and per instance.
///
/// Calls, failures, compute time, outbound requests and bytes over the
/// window, for cost tracking; in memory since the host started.
#[utoipa::path(
    get,
    path = "/v1/usage",
    operation_id = "usage",
    tag = "operations",
    params(("window" = Option<String>, Query, description = WINDOW)),
    responses((status = 200, description = "The summary.", body = UsageSummary), UsageErrors),
)]
pub async fn usage(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let window = window(&query)?;
    Ok(Json(
        state
            .runtime
            .broker()
            .usage()
            .summary(window, SystemTime::now()),
    ))
}

error_responses!(MetricsErrors = []);

/// Prometheus metrics.
///
/// Text exposition format 0.0.4: calls by code, durations, outbound
/// requests by upstream and decision, rate-limit waits, circuit states,
/// instantiation time, component cache hits, API requests. Needs an admin
/// token (Prometheus: `authorization` in the scrape config).
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "operations",
    responses(
        (status = 200, description = "The metrics.", content_type = "text/plain", body = String),
        MetricsErrors,
    ),
)]
pub async fn metrics(State(state): State<AppState>) -> Response {
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::metrics::render(state.runtime.broker()),
    )
        .into_response()
}

/// Middleware around every route: a tracing span with the route pattern
/// (never the raw path: it may carry ids an operator does not want in
/// every line, and patterns keep metrics labels bounded) and request
/// count and duration metrics.
pub async fn track(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_owned();
    let method = request.method().clone();
    tracked(&route, method, |_| next.run(request)).await
}

/// What [`track`] does around a request of `route`: shared with the invoke
/// route's fast path ([`super::fast`]), which knows its route without
/// axum's routing.
///
/// Takes the handler's future as a closure that makes it: a future passed
/// in would sit in this one's state twice, as the argument and inside the
/// `Instrumented` awaited, for the whole request.
///
/// The closure gets the instant the request's tracking started, for
/// handlers that time themselves from it without another clock read.
pub(super) async fn tracked<F: Future<Output = Response>>(
    route: &str,
    method: Method,
    response: impl FnOnce(Instant) -> F,
) -> Response {
    // Debug, not info: the fmt layer formats a span's fields when it is
    // created, which was ~4 % of the host's CPU per invocation under load
    // (perf), and the `invocation` span already names what a call's lines
    // need. `RUST_LOG=plugboard=debug` brings it back.
    let span = tracing::debug_span!("request", http.method = %method, http.route = %route);
    let started = Instant::now();
    let response = response(started).instrument(span).await;
    crate::metrics::http_request(route, method.as_str(), response.status(), started.elapsed());
    response
}

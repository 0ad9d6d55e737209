//! `GET /v1/audit`, and how API requests become audit records.
//!
//! Recording happens in one place, [`super::auth::guarded`], which the
//! auth middleware ([`super::auth::require_token`]) and the invoke route's
//! fast path ([`super::fast`]) both run: it names a mutating admin request's
//! action from its method and matched route ([`admin_action`]), runs the
//! handler, and records the outcome from the response (status, and the
//! error code [`ApiError`] leaves in an extension). Handlers add only what
//! they alone know — the id of what they created, non-secret particulars —
//! as an [`AuditNote`] response extension. Refusals (401/403) become
//! `auth.denied`. Invocations and reads are not admin actions; the broker
//! records the credential uses of invocations.

use std::borrow::Cow;

use axum::Json;
use axum::extract::{FromRequestParts as _, MatchedPath, Query, RawPathParams, State};
use axum::http::request::Parts;
use axum::http::{Method, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::error::ErrorCode;
use super::openapi::error_responses;
use super::openapi::schemas::AuditPage;
use super::{ApiError, ApiResult, AppState};
use crate::audit::{
    Actor, AuditQuery, AuditRecord, Outcome, OutcomeResult, Resource, actions, page,
};

/// What a handler adds to its admin action's record (see the module doc).
#[derive(Debug, Clone, Default)]
pub struct AuditNote {
    /// The id of the resource, when the path does not hold it (creates).
    pub resource_id: Option<String>,
    /// Non-secret particulars.
    pub detail: Map<String, Value>,
}

impl AuditNote {
    /// A note naming the resource `id`.
    pub fn on(id: &str) -> Self {
        Self {
            resource_id: Some(id.to_owned()),
            detail: Map::new(),
        }
    }

    /// Adds a detail member.
    pub fn with(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.detail.insert(name.to_owned(), value.into());
        self
    }

    /// Attaches the note to a response.
    pub fn attach(self, response: impl IntoResponse) -> Response {
        let mut response = response.into_response();
        response.extensions_mut().insert(self);
        response
    }
}

/// The request, as far as the audit trail cares: method, route and the
/// `{id}` path parameter.
///
/// Borrowed where it can be: the invoke route's fast path makes one per
/// call from its static route and the request's path, without allocating.
pub(super) struct Target<'a> {
    method: Method,
    /// The matched route without `/v1`, e.g. `/instances/{id}/credentials`.
    route: Cow<'a, str>,
    /// The route's `{id}`, percent-decoded.
    id: Option<Cow<'a, str>>,
}

impl<'a> Target<'a> {
    /// The target of a request of `method` on the matched `route` (as the
    /// router spells it, `/v1` included), whose `{id}` is `id`
    /// (percent-decoded).
    pub(super) fn new(
        method: Method,
        route: impl Into<Cow<'a, str>>,
        id: Option<Cow<'a, str>>,
    ) -> Self {
        let route = match route.into() {
            Cow::Borrowed(r) => Cow::Borrowed(r.strip_prefix("/v1").unwrap_or(r)),
            Cow::Owned(mut r) => {
                if r.starts_with("/v1") {
                    r.drain(.."/v1".len());
                }
                Cow::Owned(r)
            }
        };
        Self { method, route, id }
    }

    /// Reads the target of a routed request.
    pub(super) async fn of(parts: &mut Parts) -> Target<'static> {
        let id = RawPathParams::from_request_parts(parts, &())
            .await
            .ok()
            .and_then(|p| {
                p.iter()
                    .find(|(k, _)| *k == "id")
                    .map(|(_, v)| Cow::Owned(v.to_owned()))
            });
        let route = parts
            .extensions
            .get::<MatchedPath>()
            .map(|m| m.as_str())
            .unwrap_or_else(|| parts.uri.path());
        Target::new(parts.method.clone(), route.to_owned(), id)
    }

    /// The admin action this request performs, if it is one.
    pub(super) fn action(&self) -> Option<&'static str> {
        admin_action(&self.method, &self.route)
    }

    fn resource(&self, id: Option<&str>) -> Resource {
        let first = self
            .route
            .trim_start_matches('/')
            .split('/')
            .next()
            .unwrap_or("");
        let kind = match first {
            "connectors" => "connector",
            "instances" => "instance",
            "tokens" => "token",
            "rules" => "rule",
            "jobs" => "job",
            "events" => "event",
            other => other,
        };
        Resource::new(kind, id.or(self.id.as_deref()))
    }
}

/// The action of a mutating admin request, by method and route.
fn admin_action(method: &Method, route: &str) -> Option<&'static str> {
    use actions::*;
    Some(match (method.as_str(), route) {
        ("POST", "/connectors") => CONNECTOR_UPLOAD,
        ("DELETE", "/connectors/{id}") => CONNECTOR_DELETE,
        ("PUT", "/connectors/{id}/rate-limit") => CONNECTOR_RATE_LIMIT,
        ("POST", "/instances") => INSTANCE_CREATE,
        ("PATCH", "/instances/{id}") => INSTANCE_UPDATE,
        ("DELETE", "/instances/{id}") => INSTANCE_DELETE,
        ("PUT", "/instances/{id}/credentials") => INSTANCE_CREDENTIALS,
        ("POST", "/instances/{id}/oauth2/start") => INSTANCE_OAUTH_START,
        ("POST", "/instances/{id}/oauth2/callback") => INSTANCE_OAUTH_CONNECT,
        ("DELETE", "/instances/{id}/oauth2") => INSTANCE_OAUTH_DISCONNECT,
        ("POST", "/rules") => RULE_CREATE,
        ("PUT", "/rules/{id}") => RULE_REPLACE,
        ("DELETE", "/rules/{id}") => RULE_DELETE,
        ("POST", "/jobs/{id}/replay") => JOB_REPLAY,
        ("POST", "/tokens") => TOKEN_CREATE,
        ("DELETE", "/tokens/{id}") => TOKEN_REVOKE,
        ("POST", "/tokens/{id}/rotate") => TOKEN_ROTATE,
        _ => return None,
    })
}

/// Records a refused request (`auth.denied`) and hands back the error.
/// Waits for room in the queue, not for the write: a flood of bad tokens
/// slows itself down instead of losing records.
pub(super) async fn denied(
    state: &AppState,
    target: &Target<'_>,
    actor: Actor,
    reason: &str,
    error: ApiError,
) -> ApiError {
    let record = AuditRecord::new(
        state.audit.key(),
        actor,
        actions::AUTH_DENIED,
        target.resource(None),
        Outcome {
            result: OutcomeResult::Denied,
            status: Some(error.status.as_u16()),
            code: Some(error.code.to_owned()),
        },
    )
    .with("method", target.method.as_str())
    .with("route", format!("/v1{}", target.route))
    .with("reason", reason);
    state.audit.submit(record).await;
    error
}

/// The record of an admin action's outcome. (Built apart from the write:
/// a response is not `Sync`, so no reference to it may live across an
/// `await`.)
pub(super) fn admin(
    state: &AppState,
    target: &Target<'_>,
    action: &str,
    actor: Actor,
    response: &Response,
) -> AuditRecord {
    let status = response.status();
    let note = response.extensions().get::<AuditNote>();
    let result = if status.is_success() || status.is_redirection() {
        OutcomeResult::Success
    } else {
        OutcomeResult::Failure
    };
    let mut record = AuditRecord::new(
        state.audit.key(),
        actor,
        action,
        target.resource(note.and_then(|n| n.resource_id.as_deref())),
        Outcome {
            result,
            status: Some(status.as_u16()),
            code: response
                .extensions()
                .get::<ErrorCode>()
                .map(|c| c.0.to_owned()),
        },
    );
    if let Some(note) = note {
        record.detail = note.detail.clone();
    }
    record
}

/// The record of an OAuth connect completed in the browser
/// (`GET /oauth2/callback`, outside `/v1` and its middleware).
pub(super) fn browser_connect(
    state: &AppState,
    result: &ApiResult<crate::store::InstanceRecord>,
) -> AuditRecord {
    let (instance, outcome) = match result {
        Ok(instance) => (
            Some(instance.id.as_str()),
            Outcome {
                result: OutcomeResult::Success,
                status: Some(200),
                code: None,
            },
        ),
        Err(e) => (
            None,
            Outcome {
                result: OutcomeResult::Failure,
                status: Some(e.status.as_u16()),
                code: Some(e.code.to_owned()),
            },
        ),
    };
    AuditRecord::new(
        state.audit.key(),
        Actor::system("oauth browser callback", None),
        actions::INSTANCE_OAUTH_CONNECT,
        Resource::new("instance", instance),
        outcome,
    )
}

error_responses!(ListErrors = [INVALID_REQUEST]);

/// Read the audit trail.
///
/// One page, newest first: admin actions (with the acting token and the
/// outcome) and every credential use by the broker (credential id, never
/// its value; destination; decision). Follow `nextCursor` for the next
/// page; a page reads at most 10,000 records, so a rare filter can give a
/// short page that still has a cursor.
#[utoipa::path(
    get,
    path = "/v1/audit",
    operation_id = "listAudit",
    tag = "audit",
    params(
        ("actor" = Option<String>, Query, description = "A token id (`tok_…`) or an actor kind (`token`, `webhook`, `system`)"),
        ("resource" = Option<String>, Query, description = "`type` or `type:id`, e.g. `instance:inst_…`"),
        ("action" = Option<String>, Query, description = "An action (`instance.create`) or a prefix ending in `.*` (`instance.*`)"),
        ("since" = Option<String>, Query, description = "Records at or after this RFC 3339 time"),
        ("until" = Option<String>, Query, description = "Records before this RFC 3339 time"),
        ("limit" = Option<u32>, Query, description = "Page size, 1-1000 (default 100)", minimum = 1, maximum = 1000),
        ("cursor" = Option<String>, Query, description = "`nextCursor` of the previous page"),
    ),
    responses((status = 200, description = "A page of records.", body = AuditPage), ListErrors),
)]
pub async fn list(State(state): State<AppState>, uri: Uri) -> ApiResult<Json<Value>> {
    let Query(pairs) = Query::<Vec<(String, String)>>::try_from_uri(&uri).map_err(|e| {
        ApiError::bad_request("INVALID_REQUEST", format!("invalid query string: {e}"))
    })?;
    let query = AuditQuery::parse(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .map_err(|m| ApiError::bad_request("INVALID_REQUEST", m))?;
    // Everything queued before this request is visible to it.
    state.audit.sync().await;
    let store = state.store.clone();
    let found = tokio::task::spawn_blocking(move || page(&*store, &query))
        .await
        .map_err(ApiError::internal)??;
    Ok(Json(json!({
        "items": found.items,
        "nextCursor": found.next_cursor,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_mutating_route_has_an_action_and_reads_have_none() {
        let m = |s: &str| Method::from_bytes(s.as_bytes()).unwrap();
        assert_eq!(
            admin_action(&m("PUT"), "/instances/{id}/credentials"),
            Some("instance.credentials")
        );
        assert_eq!(
            admin_action(&m("POST"), "/tokens/{id}/rotate"),
            Some("token.rotate")
        );
        for (method, route) in [
            ("GET", "/instances/{id}"),
            ("GET", "/audit"),
            ("POST", "/instances/{id}/methods/{method}"),
            ("POST", "/instances/{id}/test"),
        ] {
            assert_eq!(admin_action(&m(method), route), None, "{method} {route}");
        }
    }

    #[test]
    fn a_target_is_the_route_without_v1_whether_borrowed_or_owned() {
        let borrowed = Target::new(Method::PUT, "/v1/instances/{id}/credentials", None);
        assert!(matches!(borrowed.route, Cow::Borrowed(_)), "no copy");
        let owned = Target::new(
            Method::PUT,
            String::from("/v1/instances/{id}/credentials"),
            Some(Cow::Owned("inst_1".into())),
        );
        for target in [&borrowed, &owned] {
            assert_eq!(target.route, "/instances/{id}/credentials");
            assert_eq!(target.action(), Some("instance.credentials"));
        }
        assert_eq!(owned.resource(None).id.as_deref(), Some("inst_1"));
        // Only the prefix goes.
        assert_eq!(Target::new(Method::GET, "/health", None).route, "/health");
        assert_eq!(
            Target::new(Method::GET, String::from("/health"), None).route,
            "/health"
        );
    }
}

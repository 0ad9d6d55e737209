//! `POST /v1/webhooks/{instance}` (no API token: the signature is the
//! authentication) and `GET /v1/events`.
//!
//! A delivery is verified before any guest code runs; a duplicate (same
//! delivery id) is answered without side effects; the connector turns it
//! into events; matching rules' actions become jobs; events, jobs and the
//! dedup marker are written in one transaction and synced before the sender
//! hears "accepted".

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::openapi::codes::CALL;
use super::openapi::error_responses;
use super::openapi::schemas::{EventPage, RawBytes, WebhookAck};
use super::{ApiError, ApiResult, AppState, credentials, now, read_body, unix_ms};
use crate::runtime::{Call, WebhookInput};
use crate::store::{DeliveryWrite, EventRecord, JobRecord, JobState};
use crate::webhook::verify::verify;

/// Largest webhook body accepted.
const MAX_WEBHOOK_BYTES: usize = 1 << 20;

/// A time-ordered id: prefix, 16 hex digits of microseconds, 8 random.
pub(crate) fn ordered_id(prefix: &str) -> String {
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64);
    format!("{prefix}_{micros:016x}{:08x}", rand::random::<u32>())
}

error_responses!(
    IngressErrors = [
        INVALID_REQUEST,
        WEBHOOK_SIGNATURE_INVALID,
        NOT_FOUND,
        PAYLOAD_TOO_LARGE,
        INVALID_CONNECTOR_OUTPUT,
    ] + CALL
);

/// Deliver a webhook.
///
/// No API token: the signature is the authentication. The host verifies it
/// as the connector's manifest declares, with the instance's credential,
/// before any guest code runs. A delivery id seen before answers
/// `DUPLICATE` and does nothing. Otherwise the connector turns the
/// delivery into events; events, the jobs of matching rules and the
/// delivery marker are stored in one transaction before the answer. The
/// connector may answer itself instead (e.g. a verification challenge),
/// with a status, headers and body of its choosing.
#[utoipa::path(
    post,
    path = "/v1/webhooks/{id}",
    operation_id = "deliverWebhook",
    tag = "webhooks",
    params(("id" = String, Path, description = "The receiving instance's id (`inst_…`)")),
    request_body(content = inline(RawBytes), content_type = "*/*", description = "The delivery as the platform sends it, at most 1 MiB."),
    responses(
        (status = 200, description = "Accepted (or a duplicate).", body = WebhookAck),
        (status = "default", description = "The connector's own answer (e.g. a verification challenge)."),
        IngressErrors,
    ),
)]
pub async fn ingress(
    State(state): State<AppState>,
    Path(id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let body = read_body(body, MAX_WEBHOOK_BYTES).await?;
    let ctx = state.contexts.get(&state, &id)?;
    let Some(webhook) = &ctx.connector.manifest.webhook else {
        return Err(ApiError::not_found(format!(
            "webhook endpoint of instance {id}"
        )));
    };
    let creds = match &ctx.prepared {
        Some(prepared) => prepared.credentials.clone(),
        None => {
            let record = state.store.credentials(&id)?.unwrap_or_default();
            Arc::new(credentials::open(&state.vault, &id, &record)?)
        }
    };
    let secret = |field: &str| creds.get(field).map(|s| s.expose().to_owned());
    let now_unix = (unix_ms() / 1000) as i64;
    if let Err(e) = verify(&webhook.scheme, &headers, &body, &secret, now_unix) {
        tracing::warn!(instance = %id, reason = %e, "webhook refused");
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "WEBHOOK_SIGNATURE_INVALID",
            format!("webhook refused: {e}"),
        ));
    }
    let delivery_id =
        crate::webhook::delivery_id(webhook.delivery_id_header.as_deref(), &headers, &body);
    let dedup_key = delivery_id.as_ref().map(|d| format!("{id}\0{d}"));
    if let Some(key) = &dedup_key
        && state.store.delivery_seen(key)?
    {
        tracing::info!(instance = %id, delivery = ?delivery_id, "duplicate webhook delivery ignored");
        return Ok(
            Json(json!({ "status": "DUPLICATE", "deliveryId": delivery_id })).into_response(),
        );
    }

    let input = WebhookInput {
        method: method.to_string(),
        query: uri.query().unwrap_or("").to_owned(),
        headers: headers
            .iter()
            .filter_map(|(k, v)| Some((k.to_string(), v.to_str().ok()?.to_owned())))
            .collect(),
        body: body.to_vec(),
    };
    let invocation_id = super::instances::new_invocation_id();
    let started = std::time::Instant::now();
    let output = async {
        let called = crate::audit::acting(
            crate::audit::Actor::webhook(&id),
            super::instances::run(&state, &ctx, &invocation_id, Call::Webhook(input)),
        )
        .await?;
        called
            .result
            .and_then(crate::runtime::Output::into_webhook)
            .map_err(|e| ApiError::from(e).with_top("invocationId", json!(&*invocation_id)))
    }
    .await;
    super::observe::record_call(
        &state,
        &id,
        &ctx.connector,
        super::observe::HANDLE_WEBHOOK,
        started.elapsed(),
        &output,
    );
    let output = output?;

    let received_at = now();
    let mut events = Vec::new();
    for (kind, source_id, payload) in &output.events {
        let payload: Value = serde_json::from_str(payload).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                "INVALID_CONNECTOR_OUTPUT",
                format!("event {kind:?} has a payload that is not JSON: {e}"),
            )
        })?;
        events.push(EventRecord {
            id: ordered_id("evt"),
            instance: id.clone(),
            connector: ctx.connector.id.clone(),
            kind: kind.clone(),
            source_id: source_id.clone(),
            payload,
            delivery_id: delivery_id.clone(),
            received_at: received_at.clone(),
        });
    }
    let jobs = jobs_for(&state, &events)?;
    let written = state.store.record_delivery(&DeliveryWrite {
        dedup_key,
        events: &events,
        jobs: &jobs,
    })?;
    if !written {
        return Ok(
            Json(json!({ "status": "DUPLICATE", "deliveryId": delivery_id })).into_response(),
        );
    }
    tracing::info!(instance = %id, events = events.len(), jobs = jobs.len(), delivery = ?delivery_id, "webhook accepted");
    if !jobs.is_empty() {
        state.jobs.notify_one();
    }
    Ok(match output.response {
        Some((status, headers, body)) => {
            let mut response =
                (StatusCode::from_u16(status).unwrap_or(StatusCode::OK), body).into_response();
            for (name, value) in headers {
                if let (Ok(n), Ok(v)) = (
                    HeaderName::from_bytes(name.as_bytes()),
                    HeaderValue::from_str(&value),
                ) {
                    response.headers_mut().append(n, v);
                }
            }
            response
        }
        None => Json(json!({
            "status": "ACCEPTED",
            "events": events.iter().map(|e| &e.id).collect::<Vec<_>>(),
        }))
        .into_response(),
    })
}

/// The jobs of every enabled rule each event matches, parameters rendered
/// now; a rendering failure makes a dead job that says why.
fn jobs_for(state: &AppState, events: &[EventRecord]) -> ApiResult<Vec<JobRecord>> {
    let rules = state.store.rules()?;
    let mut jobs = Vec::new();
    let created = now();
    for event in events {
        let ctx = crate::rules::context(event);
        for rule in rules
            .iter()
            .filter(|r| r.enabled && r.trigger.matches(event))
        {
            for (index, action) in rule.actions.iter().enumerate() {
                let rendered = crate::rules::render(&action.parameters, &ctx);
                let (parameters, state_, last_error) = match rendered {
                    Ok(p) => (p, JobState::Pending, None),
                    Err(e) => (
                        Value::Null,
                        JobState::Dead,
                        Some(json!({ "code": "TEMPLATE_ERROR", "message": e })),
                    ),
                };
                jobs.push(JobRecord {
                    id: ordered_id("job"),
                    event: event.id.clone(),
                    rule: rule.id.clone(),
                    action_index: index,
                    instance: action.instance.clone(),
                    method: action.method.clone(),
                    parameters,
                    idempotency_key: format!("{}:{}:{index}", event.id, rule.id),
                    state: state_,
                    attempts: 0,
                    next_attempt_at: unix_ms(),
                    last_error,
                    result: None,
                    created_at: created.clone(),
                    updated_at: created.clone(),
                });
            }
        }
    }
    Ok(jobs)
}

error_responses!(ListEventsErrors = [INVALID_REQUEST]);

/// List events.
///
/// Oldest first; `next` is the `after` cursor of the following page.
#[utoipa::path(
    get,
    path = "/v1/events",
    operation_id = "listEvents",
    tag = "webhooks",
    params(
        ("instance" = Option<String>, Query, description = "Only events of this instance"),
        ("kind" = Option<String>, Query, description = "Only events of this kind"),
        ("since" = Option<String>, Query, description = "Only events received at or after this RFC 3339 time"),
        ("after" = Option<String>, Query, description = "Only events after this event id (a `next` cursor)"),
        ("limit" = Option<u32>, Query, description = "Page size, 1-1000 (default 100)", minimum = 1, maximum = 1000),
    ),
    responses((status = 200, description = "A page of events.", body = EventPage), ListEventsErrors),
)]
pub async fn list_events(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let limit: usize = match q.get("limit") {
        None => 100,
        Some(l) => l
            .parse()
            .ok()
            .filter(|l| (1..=1000).contains(l))
            .ok_or_else(|| ApiError::bad_request("INVALID_REQUEST", "`limit` must be 1-1000"))?,
    };
    let events = state.store.events()?;
    let items: Vec<&EventRecord> = events
        .iter()
        .filter(|e| q.get("instance").is_none_or(|i| *i == e.instance))
        .filter(|e| q.get("kind").is_none_or(|k| *k == e.kind))
        .filter(|e| {
            q.get("since")
                .is_none_or(|s| e.received_at.as_str() >= s.as_str())
        })
        .filter(|e| q.get("after").is_none_or(|a| e.id.as_str() > a.as_str()))
        .take(limit + 1)
        .collect();
    let next = (items.len() > limit).then(|| items[limit - 1].id.clone());
    let items: Vec<&EventRecord> = items.into_iter().take(limit).collect();
    Ok(Json(json!({ "items": items, "next": next })))
}

error_responses!(ShowEventErrors = [NOT_FOUND]);

/// Show an event.
#[utoipa::path(
    get,
    path = "/v1/events/{id}",
    operation_id = "showEvent",
    tag = "webhooks",
    params(("id" = String, Path, description = "Event id (`evt_…`)")),
    responses((status = 200, description = "The event.", body = EventRecord), ShowEventErrors),
)]
pub async fn show_event(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<EventRecord>> {
    Ok(Json(state.store.event(&id)?.ok_or_else(|| {
        ApiError::not_found(format!("event {id}"))
    })?))
}

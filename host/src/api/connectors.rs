//! `/v1/connectors`: upload, list, show, delete, and the operator's
//! rate-limit override.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{ApiError, ApiResult, AppState, AuditNote, now, read_body, read_json};
use crate::egress::budget::RateSpec;
use crate::store::ConnectorRecord;

/// List entry: the record without the (large) manifest schemas.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Summary<'a> {
    id: &'a str,
    name: &'a str,
    version: &'a str,
    description: &'a str,
    digest: &'a str,
    size: u64,
    methods: Vec<&'a str>,
    created_at: &'a str,
}

impl<'a> From<&'a ConnectorRecord> for Summary<'a> {
    fn from(r: &'a ConnectorRecord) -> Self {
        Self {
            id: &r.id,
            name: &r.name,
            version: &r.version,
            description: &r.manifest.description,
            digest: &r.digest,
            size: r.size,
            methods: r.manifest.methods.iter().map(|m| m.name.as_str()).collect(),
            created_at: &r.created_at,
        }
    }
}

/// `POST /v1/connectors` with the component bytes as the body.
/// 201 on first upload, 200 when the identical bytes are already stored,
/// 409 when `name@version` exists with other bytes.
pub async fn upload(State(state): State<AppState>, body: Body) -> ApiResult<Response> {
    let bytes = read_body(body, state.settings.limits.max_component_bytes).await?;
    if bytes.is_empty() {
        return Err(ApiError::bad_request(
            "INVALID_COMPONENT",
            "empty body: send the component's .wasm bytes as the request body",
        ));
    }
    let digest = hex::encode(Sha256::digest(&bytes));
    // Same bytes already stored: answer without compiling again.
    if let Some(existing) = state
        .store
        .connectors()?
        .into_iter()
        .find(|c| c.digest == digest)
    {
        let note = AuditNote::on(&existing.id)
            .with("digest", digest)
            .with("created", false);
        return Ok(note.attach((StatusCode::OK, Json(existing))));
    }
    let prepared = state.runtime.prepare(Arc::new(bytes.to_vec())).await?;
    let record = ConnectorRecord {
        id: prepared.manifest.id(),
        name: prepared.manifest.name.clone(),
        version: prepared.manifest.version.clone(),
        digest: prepared.digest.clone(),
        size: bytes.len() as u64,
        manifest: prepared.manifest,
        created_at: now(),
        rate_limit: None,
    };
    let created = state
        .store
        .put_connector(&record, &bytes, &prepared.artifact)?;
    state.runtime.remember(&record.digest, prepared.loaded);
    let note = AuditNote::on(&record.id)
        .with("digest", record.digest.as_str())
        .with("created", created);
    if created {
        tracing::info!(connector = %record.id, digest = %record.digest, size = record.size, "connector uploaded");
        Ok(note.attach((StatusCode::CREATED, Json(record))))
    } else {
        let existing = state.store.connector(&record.id)?.unwrap_or(record);
        Ok(note.attach((StatusCode::OK, Json(existing))))
    }
}

/// `GET /v1/connectors`.
pub async fn list(State(state): State<AppState>) -> ApiResult<Response> {
    let records = state.store.connectors()?;
    let items: Vec<Summary<'_>> = records.iter().map(Summary::from).collect();
    Ok(Json(serde_json::json!({ "items": items })).into_response())
}

/// `GET /v1/connectors/{id}` where id is `name@version` or `name` (latest).
pub async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<ConnectorRecord>> {
    Ok(Json(resolve(&state, &id)?))
}

/// `DELETE /v1/connectors/{id}`; 409 while instances use it.
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let record = state
        .store
        .connector(&id)?
        .ok_or_else(|| ApiError::not_found(format!("connector {id}")))?;
    state.store.delete_connector(&record.id)?;
    state.runtime.forget(&record.digest);
    tracing::info!(connector = %record.id, "connector deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// Body of `PUT /v1/connectors/{id}/rate-limit`.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RateLimitBody {
    /// The new rate of the shared upstream budget; `null` reverts to the
    /// manifest's default.
    rate_limit: Option<RateSpec>,
}

/// `PUT /v1/connectors/{id}/rate-limit`: overrides the manifest's
/// `rateLimit` for every instance of this connector version.
pub async fn set_rate_limit(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Body,
) -> ApiResult<Json<ConnectorRecord>> {
    let req: RateLimitBody = read_json(body, state.settings.limits.max_request_bytes).await?;
    if let Some(rate) = &req.rate_limit {
        rate.validate()
            .map_err(|e| ApiError::bad_request("INVALID_REQUEST", format!("rateLimit: {e}")))?;
    }
    let record = resolve(&state, &id)?;
    let record = state
        .store
        .set_connector_rate_limit(&record.id, req.rate_limit)?;
    tracing::info!(connector = %record.id, rate_limit = ?record.rate_limit, "connector rate limit set");
    Ok(Json(record))
}

/// Finds a connector by `name@version`, or the highest version of `name`.
pub fn resolve(state: &AppState, reference: &str) -> ApiResult<ConnectorRecord> {
    if reference.contains('@') {
        return state
            .store
            .connector(reference)?
            .ok_or_else(|| ApiError::not_found(format!("connector {reference}")));
    }
    state
        .store
        .connectors()?
        .into_iter()
        .filter(|c| c.name == reference)
        .filter_map(|c| semver::Version::parse(&c.version).ok().map(|v| (v, c)))
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, c)| c)
        .ok_or_else(|| ApiError::not_found(format!("connector {reference}")))
}

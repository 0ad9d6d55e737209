//! `/v1/instances`: create, list, show, delete, test, and method invocation.

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::connectors::resolve;
use super::{ApiError, ApiResult, AppState, now, read_json};
use crate::egress::Allowlist;
use crate::runtime::{Call, Envelope, Invocation};
use crate::store::{ConnectorRecord, InstanceLimits, InstanceRecord};

/// Body of `POST /v1/instances`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateInstance {
    /// `name@version`, or `name` for the highest stored version.
    connector: String,
    /// Display name.
    name: String,
    /// Config object, validated against the connector's config schema.
    #[serde(default = "empty_object")]
    config: Value,
    /// Optional narrower limits.
    #[serde(default)]
    limits: InstanceLimits,
}

fn empty_object() -> Value {
    json!({})
}

/// Body of `POST /v1/instances/{id}/methods/{method}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InvokeBody {
    /// Method parameters.
    #[serde(default = "empty_object")]
    parameters: Value,
}

/// Field-level schema errors, at most 20, as API details.
fn schema_errors(validator: &jsonschema::Validator, value: &Value) -> Option<(String, Value)> {
    let errors: Vec<(String, String)> = validator
        .iter_errors(value)
        .take(20)
        .map(|e| (e.instance_path().to_string(), e.to_string()))
        .collect();
    let (path, first) = errors.first()?;
    let at = if path.is_empty() {
        String::new()
    } else {
        format!(" at {path}")
    };
    let summary = format!("{first}{at}");
    let details = json!({
        "errors": errors.iter().map(|(p, m)| json!({ "path": p, "message": m })).collect::<Vec<_>>()
    });
    Some((summary, details))
}

fn instance_view(record: &InstanceRecord, allowlist: Option<&Allowlist>) -> Value {
    let mut v = serde_json::to_value(record).unwrap_or_default();
    if let Some(a) = allowlist {
        v["allowedHosts"] = a.rules().iter().map(|r| r.to_string()).collect();
    }
    v
}

/// `POST /v1/instances`.
pub async fn create(State(state): State<AppState>, body: Body) -> ApiResult<Response> {
    let req: CreateInstance = read_json(body, state.settings.limits.max_request_bytes).await?;
    let name = req.name.trim();
    if name.is_empty() || name.len() > 128 {
        return Err(ApiError::bad_request(
            "INVALID_REQUEST",
            "`name` must be 1-128 characters",
        ));
    }
    let connector = resolve(&state, &req.connector).map_err(|e| {
        if e.status == StatusCode::NOT_FOUND {
            ApiError::bad_request(
                "CONNECTOR_NOT_FOUND",
                format!("connector {} is not uploaded", req.connector),
            )
        } else {
            e
        }
    })?;
    if !req.config.is_object() {
        return Err(ApiError::bad_request(
            "INVALID_CONFIG",
            "`config` must be a JSON object",
        ));
    }
    let validator =
        jsonschema::validator_for(&connector.manifest.config_schema).map_err(ApiError::internal)?;
    if let Some((summary, details)) = schema_errors(&validator, &req.config) {
        return Err(
            ApiError::bad_request("INVALID_CONFIG", format!("invalid config: {summary}"))
                .with_details(details),
        );
    }
    let allowlist = Allowlist::resolve(&connector.manifest.hosts, &req.config)
        .map_err(|e| ApiError::bad_request("INVALID_CONFIG", format!("invalid config: {e}")))?;
    let record = InstanceRecord {
        id: format!("inst_{}", uuid::Uuid::new_v4().simple()),
        name: name.to_owned(),
        connector: connector.id.clone(),
        config: req.config,
        limits: req.limits,
        status: "ACTIVE".into(),
        created_at: now(),
    };
    state.store.create_instance(&record)?;
    tracing::info!(instance = %record.id, connector = %record.connector, "instance created");
    Ok((
        StatusCode::CREATED,
        Json(instance_view(&record, Some(&allowlist))),
    )
        .into_response())
}

/// `GET /v1/instances`.
pub async fn list(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let items: Vec<Value> = state
        .store
        .instances()?
        .iter()
        .map(|r| instance_view(r, None))
        .collect();
    Ok(Json(json!({ "items": items })))
}

fn load_instance(state: &AppState, id: &str) -> ApiResult<InstanceRecord> {
    state
        .store
        .instance(id)?
        .ok_or_else(|| ApiError::not_found(format!("instance {id}")))
}

fn load_connector(state: &AppState, instance: &InstanceRecord) -> ApiResult<ConnectorRecord> {
    state.store.connector(&instance.connector)?.ok_or_else(|| {
        ApiError::internal(format!(
            "instance {} refers to missing connector {}",
            instance.id, instance.connector
        ))
    })
}

/// `GET /v1/instances/{id}`.
pub async fn show(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let instance = load_instance(&state, &id)?;
    let connector = load_connector(&state, &instance)?;
    let allowlist = Allowlist::resolve(&connector.manifest.hosts, &instance.config).ok();
    Ok(Json(instance_view(&instance, allowlist.as_ref())))
}

/// `DELETE /v1/instances/{id}`.
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state.store.delete_instance(&id)?;
    tracing::info!(instance = %id, "instance deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/instances/{id}/test`: runs the connector's `test-connection`.
pub async fn test(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let instance = load_instance(&state, &id)?;
    let connector = load_connector(&state, &instance)?;
    let started = Instant::now();
    let invocation_id = new_invocation_id();
    let summary = run(
        &state,
        &instance,
        &connector,
        &invocation_id,
        Call::TestConnection,
    )
    .await?;
    Ok(Json(json!({
        "status": "SUCCESS",
        "data": { "message": summary },
        "invocationId": invocation_id,
        "durationMs": duration_ms(started),
    })))
}

/// `POST /v1/instances/{id}/methods/{method}` with `{"parameters": {...}}`.
pub async fn invoke(
    State(state): State<AppState>,
    Path((id, method)): Path<(String, String)>,
    body: Body,
) -> ApiResult<Json<Value>> {
    let started = Instant::now();
    let req: InvokeBody = read_json(body, state.settings.limits.max_request_bytes).await?;
    let instance = load_instance(&state, &id)?;
    let connector = load_connector(&state, &instance)?;
    let validator = params_validator(&state, &connector, &method)?;
    if let Some((summary, details)) = schema_errors(&validator, &req.parameters) {
        return Err(ApiError::bad_request(
            "INVALID_PARAMS",
            format!("invalid parameters: {summary}"),
        )
        .with_details(details));
    }
    let invocation_id = new_invocation_id();
    let output = run(
        &state,
        &instance,
        &connector,
        &invocation_id,
        Call::Invoke {
            method,
            params: req.parameters.to_string(),
        },
    )
    .await?;
    let data: Value = serde_json::from_str(&output).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            "INVALID_CONNECTOR_OUTPUT",
            format!("the connector returned a result that is not JSON: {e}"),
        )
    })?;
    Ok(Json(json!({
        "status": "SUCCESS",
        "data": data,
        "invocationId": invocation_id,
        "durationMs": duration_ms(started),
    })))
}

/// The compiled params schema of a method; 404 `METHOD_NOT_FOUND` if the
/// connector has no such method.
fn params_validator(
    state: &AppState,
    connector: &ConnectorRecord,
    method: &str,
) -> ApiResult<Arc<jsonschema::Validator>> {
    let key = (connector.digest.clone(), method.to_owned());
    if let Some(v) = state
        .validators
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&key)
    {
        return Ok(v.clone());
    }
    let info = connector.manifest.method(method).ok_or_else(|| {
        let known: Vec<&str> = connector
            .manifest
            .methods
            .iter()
            .map(|m| m.name.as_str())
            .collect();
        ApiError::new(
            StatusCode::NOT_FOUND,
            "METHOD_NOT_FOUND",
            format!("connector {} has no method {method:?}", connector.id),
        )
        .with_details(json!({ "methods": known }))
    })?;
    let validator =
        Arc::new(jsonschema::validator_for(&info.params_schema).map_err(ApiError::internal)?);
    state
        .validators
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, validator.clone());
    Ok(validator)
}

/// Elapsed milliseconds with microsecond precision (most calls take < 1 ms).
fn duration_ms(started: Instant) -> f64 {
    (started.elapsed().as_secs_f64() * 1e6).round() / 1e3
}

/// A fresh id for one call (`inv_` + 32 hex characters).
fn new_invocation_id() -> String {
    format!("inv_{}", uuid::Uuid::new_v4().simple())
}

async fn run(
    state: &AppState,
    instance: &InstanceRecord,
    connector: &ConnectorRecord,
    invocation_id: &str,
    call: Call,
) -> ApiResult<String> {
    let allowlist =
        Allowlist::resolve(&connector.manifest.hosts, &instance.config).map_err(|e| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "CONFIG_ERROR",
                e.to_string(),
            )
        })?;
    let loaded = state.runtime.load(state.store.clone(), connector).await?;
    let invocation = Invocation {
        connector: Arc::from(connector.id.as_str()),
        instance: Some(Arc::from(instance.id.as_str())),
        config: Arc::new(instance.config.clone()),
        id: Arc::from(invocation_id),
    };
    let envelope = Envelope::for_instance(state.runtime.limits(), &instance.limits);
    let result = state
        .runtime
        .call(&loaded, invocation, Arc::new(allowlist), envelope, call)
        .await;
    match &result {
        Ok(_) => {
            tracing::debug!(instance = %instance.id, connector = %connector.id, invocation = invocation_id, "invocation succeeded")
        }
        Err(e) => {
            tracing::info!(instance = %instance.id, connector = %connector.id, invocation = invocation_id, error = %e, "invocation failed")
        }
    }
    Ok(result?)
}

//! `/v1/instances`: create, list, show, update, delete, test, method
//! invocation, and the broker's view of an instance (health, stats).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

use super::connectors::resolve;
use super::context::{CallContext, Prepared};
use super::credentials;
use super::openapi::codes::CALL;
use super::openapi::error_responses;
use super::openapi::schemas::{
    CallSuccess, Instance, InstanceHealth, InstanceList, InstanceStats, TestSuccess,
};
use super::{ApiError, ApiResult, AppState, AuditNote, now, read_json};
use crate::egress::budget::BudgetKey;
use crate::egress::{Allowlist, EgressPolicy, PatternError, millis};
use crate::manifest::AuthScheme;
use crate::runtime::{Call, Called, Envelope, Invocation};
use crate::store::{ConnectorRecord, CredentialsRecord, InstanceLimits, InstanceRecord};

/// Body of `POST /v1/instances`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateInstance {
    /// `name@version`, or `name` for the highest stored version.
    connector: String,
    /// Display name.
    name: String,
    /// Config object, completed with the config schema's defaults and
    /// validated against it.
    #[serde(default = "empty_object")]
    #[schema(value_type = Object)]
    config: Value,
    /// Optional narrower limits.
    #[serde(default)]
    limits: InstanceLimits,
    /// Secret values (strings), validated against the credential schema
    /// and sealed.
    #[serde(default)]
    #[schema(value_type = Option<HashMap<String, String>>)]
    credentials: Option<Value>,
}

fn empty_object() -> Value {
    json!({})
}

/// Body of `POST /v1/instances/{id}/methods/{method}`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InvokeBody {
    /// Method parameters, validated against the method's `paramsSchema`
    /// before any guest code runs.
    #[serde(default = "empty_object")]
    #[schema(value_type = Value)]
    parameters: Value,
}

/// Field-level schema errors, at most 20, as API details.
fn schema_errors(validator: &jsonschema::Validator, value: &Value) -> Option<(String, Value)> {
    // Nearly every value is valid: `is_valid` stops at nothing and
    // allocates nothing, where `iter_errors` builds its error iterators
    // even when they yield nothing.
    if validator.is_valid(value) {
        return None;
    }
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

fn instance_view(
    record: &InstanceRecord,
    allowlist: Option<&Allowlist>,
    credentials: Option<&CredentialsRecord>,
) -> Value {
    let mut v = serde_json::to_value(record).unwrap_or_default();
    v["credentials"] = credentials::view(credentials);
    if let Some(a) = allowlist {
        v["allowedHosts"] = a.rules().iter().map(|r| r.to_string()).collect();
    }
    v
}

/// The hosts an instance may reach: the manifest's patterns, narrowed by
/// the instance's own `allowedHosts` if set.
pub(super) fn allowlist_for(
    connector: &ConnectorRecord,
    config: &Value,
    limits: &InstanceLimits,
) -> Result<Allowlist, PatternError> {
    let allowlist = Allowlist::resolve(&connector.manifest.hosts, config)?;
    match &limits.allowed_hosts {
        Some(hosts) => allowlist.narrowed(hosts, config),
        None => Ok(allowlist),
    }
}

/// Validates config and limits against the connector; returns the
/// resulting allowlist.
fn check_instance(
    connector: &ConnectorRecord,
    config: &Value,
    limits: &InstanceLimits,
) -> ApiResult<Allowlist> {
    if !config.is_object() {
        return Err(ApiError::bad_request(
            "INVALID_CONFIG",
            "`config` must be a JSON object",
        ));
    }
    let validator =
        jsonschema::validator_for(&connector.manifest.config_schema).map_err(ApiError::internal)?;
    if let Some((summary, details)) = schema_errors(&validator, config) {
        return Err(
            ApiError::bad_request("INVALID_CONFIG", format!("invalid config: {summary}"))
                .with_details(details),
        );
    }
    if let Some(rate) = &limits.rate_limit {
        rate.validate().map_err(|e| {
            ApiError::bad_request("INVALID_REQUEST", format!("limits.rateLimit: {e}"))
        })?;
    }
    let allowlist = Allowlist::resolve(&connector.manifest.hosts, config)
        .map_err(|e| ApiError::bad_request("INVALID_CONFIG", format!("invalid config: {e}")))?;
    match &limits.allowed_hosts {
        Some(hosts) => allowlist.narrowed(hosts, config).map_err(|e| {
            ApiError::bad_request("INVALID_REQUEST", format!("limits.allowedHosts: {e}"))
        }),
        None => Ok(allowlist),
    }
}

/// The path parameter naming an instance.
const INSTANCE_ID: &str = "Instance id (`inst_…`)";

error_responses!(
    CreateErrors = [
        INVALID_REQUEST,
        CONNECTOR_NOT_FOUND,
        INVALID_CONFIG,
        INVALID_CREDENTIALS,
        CONFLICT,
        PAYLOAD_TOO_LARGE,
    ]
);

/// Create an instance.
///
/// Absent top-level `config` keys with a schema `default` are filled in
/// (and stored); `config` is then validated against the connector's config
/// schema and must resolve every host pattern of its manifest; `limits` can only narrow
/// what the host and the connector allow; `credentials` are validated
/// against the credential schema and sealed at rest. Without credentials,
/// an instance of a connector that needs them is `PENDING_AUTHENTICATION`.
#[utoipa::path(
    post,
    path = "/v1/instances",
    operation_id = "createInstance",
    tag = "instances",
    request_body = CreateInstance,
    responses(
        (status = 201, description = "Created; credentials shown as names only.", body = Instance),
        CreateErrors,
    ),
)]
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
    let config = connector.manifest.config_with_defaults(req.config);
    let allowlist = check_instance(&connector, &config, &req.limits)?;
    if let Some(c) = &req.credentials {
        credentials::validate(&connector.manifest, c)?;
    }
    let id = format!("inst_{}", uuid::Uuid::new_v4().simple());
    let sealed = req
        .credentials
        .as_ref()
        .map(|c| credentials::seal(&state.vault, &id, c, None));
    let (status, status_reason) = initial_status(&connector, &id, sealed.as_ref());
    let record = InstanceRecord {
        id,
        name: name.to_owned(),
        connector: connector.id.clone(),
        config,
        limits: req.limits,
        status,
        status_reason,
        created_at: now(),
    };
    state.store.create_instance(&record, sealed.as_ref())?;
    tracing::info!(instance = %record.id, connector = %record.connector, status = %record.status, "instance created");
    let note = AuditNote::on(&record.id)
        .with("connector", record.connector.as_str())
        .with("credentialFields", field_names(sealed.as_ref()));
    Ok(note.attach((
        StatusCode::CREATED,
        Json(instance_view(&record, Some(&allowlist), sealed.as_ref())),
    )))
}

/// Names of the set credential fields (for the audit trail; never values).
fn field_names(sealed: Option<&CredentialsRecord>) -> Vec<String> {
    sealed.map_or_else(Vec::new, |c| c.fields.keys().cloned().collect())
}

/// `PENDING_AUTHENTICATION` while a connector that needs credentials has
/// none; `ACTIVE` otherwise (until a connection test says `ERROR`).
fn initial_status(
    connector: &ConnectorRecord,
    id: &str,
    credentials: Option<&CredentialsRecord>,
) -> (String, Option<String>) {
    if let AuthScheme::Oauth2(o) = &connector.manifest.auth.scheme {
        if crate::oauth::connected(o, credentials) {
            return (ACTIVE.into(), None);
        }
        return (
            PENDING.into(),
            Some(format!(
                "not connected; set `client_id`/`client_secret` and connect with POST /v1/instances/{id}/oauth2/start"
            )),
        );
    }
    if credentials::required(&connector.manifest) && credentials.is_none() {
        (
            PENDING.into(),
            Some(format!(
                "no credentials yet; set them with PUT /v1/instances/{id}/credentials"
            )),
        )
    } else {
        (ACTIVE.into(), None)
    }
}

pub(super) const ACTIVE: &str = "ACTIVE";
pub(super) const PENDING: &str = "PENDING_AUTHENTICATION";
const ERROR: &str = "ERROR";

/// Body of `PUT /v1/instances/{id}/credentials`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PutCredentials {
    /// All the credentials (strings), replacing the stored ones.
    #[schema(value_type = HashMap<String, String>)]
    credentials: Value,
    /// When they expire (RFC 3339): health warns from 7 days before.
    #[serde(default)]
    expires_at: Option<String>,
}

/// Validates and seals `value` as all of the instance's credentials, sets
/// the status they imply (whatever the last test said no longer holds) and
/// stores both at once. `expires_at`: `Some` sets the expiry, `None` keeps
/// the stored one. For OAuth connectors the tokens are the host's, not the
/// operator's: replacing the client credentials keeps them (and their
/// expiry).
fn replace_credentials(
    state: &AppState,
    connector: &ConnectorRecord,
    record: &mut InstanceRecord,
    value: &Value,
    expires_at: Option<Option<String>>,
) -> ApiResult<CredentialsRecord> {
    credentials::validate(&connector.manifest, value)?;
    let old = state.store.credentials(&record.id)?;
    let expires_at = expires_at.unwrap_or_else(|| old.as_ref().and_then(|o| o.expires_at.clone()));
    let mut sealed = credentials::seal(&state.vault, &record.id, value, expires_at);
    if matches!(connector.manifest.auth.scheme, AuthScheme::Oauth2(_))
        && let Some(old) = old
    {
        for field in [crate::oauth::ACCESS_TOKEN, crate::oauth::REFRESH_TOKEN] {
            sealed.fields.remove(field);
            if let Some(v) = old.fields.get(field) {
                sealed.fields.insert(field.to_owned(), v.clone());
            }
        }
        sealed.expires_at = old.expires_at;
    }
    (record.status, record.status_reason) = initial_status(connector, &record.id, Some(&sealed));
    state.store.put_credentials(record, &sealed)?;
    Ok(sealed)
}

error_responses!(
    PutCredentialsErrors = [
        INVALID_REQUEST,
        INVALID_CREDENTIALS,
        NOT_FOUND,
        PAYLOAD_TOO_LARGE
    ]
);

/// Replace an instance's credentials.
///
/// All at once, atomically with the status they imply. No API ever returns
/// a credential value.
#[utoipa::path(
    put,
    path = "/v1/instances/{id}/credentials",
    operation_id = "putInstanceCredentials",
    tag = "instances",
    params(("id" = String, Path, description = INSTANCE_ID)),
    request_body = PutCredentials,
    responses((status = 200, description = "The instance.", body = Instance), PutCredentialsErrors),
)]
pub async fn put_credentials(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Body,
) -> ApiResult<Response> {
    let req: PutCredentials = read_json(body, state.settings.limits.max_request_bytes).await?;
    let mut record = load_instance(&state, &id)?;
    let connector = load_connector(&state, &record)?;
    let expires_at = credentials::parse_expiry(req.expires_at.as_deref())?;
    let sealed = replace_credentials(
        &state,
        &connector,
        &mut record,
        &req.credentials,
        Some(expires_at),
    )?;
    tracing::info!(instance = %id, fields = ?sealed.fields.keys().collect::<Vec<_>>(), "credentials replaced");
    let allowlist = allowlist_for(&connector, &record.config, &record.limits).ok();
    let note = AuditNote::default()
        .with("credentialFields", field_names(Some(&sealed)))
        .with("expiresAt", sealed.expires_at.clone());
    Ok(note.attach(Json(instance_view(
        &record,
        allowlist.as_ref(),
        Some(&sealed),
    ))))
}

error_responses!(ListErrors = []);

/// List instances.
#[utoipa::path(
    get,
    path = "/v1/instances",
    operation_id = "listInstances",
    tag = "instances",
    responses((status = 200, description = "Every instance.", body = InstanceList), ListErrors),
)]
pub async fn list(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let items: Vec<Value> = state
        .store
        .instances()?
        .iter()
        .map(|r| {
            let creds = state.store.credentials(&r.id).ok().flatten();
            instance_view(r, None, creds.as_ref())
        })
        .collect();
    Ok(Json(json!({ "items": items })))
}

pub(super) fn load_instance(state: &AppState, id: &str) -> ApiResult<InstanceRecord> {
    state
        .store
        .instance(id)?
        .ok_or_else(|| instance_not_found(id))
}

/// 404 `NOT_FOUND` for an unknown instance id.
pub(super) fn instance_not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("instance {id}"))
}

pub(super) fn load_connector(
    state: &AppState,
    instance: &InstanceRecord,
) -> ApiResult<ConnectorRecord> {
    state.store.connector(&instance.connector)?.ok_or_else(|| {
        ApiError::internal(format!(
            "instance {} refers to missing connector {}",
            instance.id, instance.connector
        ))
    })
}

error_responses!(ShowErrors = [NOT_FOUND]);

/// Show an instance.
#[utoipa::path(
    get,
    path = "/v1/instances/{id}",
    operation_id = "showInstance",
    tag = "instances",
    params(("id" = String, Path, description = INSTANCE_ID)),
    responses((status = 200, description = "The instance.", body = Instance), ShowErrors),
)]
pub async fn show(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let instance = load_instance(&state, &id)?;
    let connector = load_connector(&state, &instance)?;
    let allowlist = Allowlist::resolve(&connector.manifest.hosts, &instance.config).ok();
    let creds = state.store.credentials(&id)?;
    Ok(Json(instance_view(
        &instance,
        allowlist.as_ref(),
        creds.as_ref(),
    )))
}

/// Body of `PATCH /v1/instances/{id}`: each member present replaces the
/// stored one.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateInstance {
    /// Display name.
    name: Option<String>,
    /// Config object.
    #[schema(value_type = Option<Object>)]
    config: Option<Value>,
    /// Limits.
    limits: Option<InstanceLimits>,
    /// All the credentials (strings).
    #[schema(value_type = Option<HashMap<String, String>>)]
    credentials: Option<Value>,
}

error_responses!(
    UpdateErrors = [
        INVALID_REQUEST,
        INVALID_CONFIG,
        INVALID_CREDENTIALS,
        NOT_FOUND,
        PAYLOAD_TOO_LARGE,
    ]
);

/// Update an instance.
///
/// Renames, reconfigures, re-limits or sets the credentials of an
/// instance: each member present replaces the stored one, validated like a
/// create.
#[utoipa::path(
    patch,
    path = "/v1/instances/{id}",
    operation_id = "updateInstance",
    tag = "instances",
    params(("id" = String, Path, description = INSTANCE_ID)),
    request_body = UpdateInstance,
    responses((status = 200, description = "The instance.", body = Instance), UpdateErrors),
)]
pub async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Body,
) -> ApiResult<Response> {
    let req: UpdateInstance = read_json(body, state.settings.limits.max_request_bytes).await?;
    let changed: Vec<&str> = [
        ("name", req.name.is_some()),
        ("config", req.config.is_some()),
        ("limits", req.limits.is_some()),
        ("credentials", req.credentials.is_some()),
    ]
    .into_iter()
    .filter_map(|(part, set)| set.then_some(part))
    .collect();
    let note = AuditNote::default().with("changed", changed);
    let mut record = load_instance(&state, &id)?;
    let connector = load_connector(&state, &record)?;
    if let Some(name) = req.name {
        let name = name.trim();
        if name.is_empty() || name.len() > 128 {
            return Err(ApiError::bad_request(
                "INVALID_REQUEST",
                "`name` must be 1-128 characters",
            ));
        }
        record.name = name.to_owned();
    }
    if let Some(config) = req.config {
        record.config = connector.manifest.config_with_defaults(config);
    }
    if let Some(limits) = req.limits {
        record.limits = limits;
    }
    let allowlist = check_instance(&connector, &record.config, &record.limits)?;
    let creds = match &req.credentials {
        Some(c) => Some(replace_credentials(
            &state,
            &connector,
            &mut record,
            c,
            None,
        )?),
        None => {
            state.store.update_instance(&record)?;
            state.store.credentials(&id)?
        }
    };
    tracing::info!(instance = %record.id, "instance updated");
    Ok(note.attach(Json(instance_view(
        &record,
        Some(&allowlist),
        creds.as_ref(),
    ))))
}

error_responses!(DeleteErrors = [NOT_FOUND]);

/// Delete an instance (and its credentials).
#[utoipa::path(
    delete,
    path = "/v1/instances/{id}",
    operation_id = "deleteInstance",
    tag = "instances",
    params(("id" = String, Path, description = INSTANCE_ID)),
    responses((status = 204, description = "Deleted."), DeleteErrors),
)]
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state.store.delete_instance(&id)?;
    state.runtime.broker().usage().forget(&id);
    tracing::info!(instance = %id, "instance deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// Query of the calling endpoints: `?outbound=true` adds the invocation's
/// outbound attempts to the answer.
fn wants_outbound(query: &HashMap<String, String>) -> ApiResult<bool> {
    match query.get("outbound").map(String::as_str) {
        None | Some("false") => Ok(false),
        Some("true") | Some("") => Ok(true),
        Some(other) => Err(ApiError::bad_request(
            "INVALID_REQUEST",
            format!("query parameter `outbound` must be true or false, not {other:?}"),
        )),
    }
}

/// The `outbound` query parameter of the calling endpoints.
const OUTBOUND: &str =
    "`true` adds the call's outbound attempts to the answer (`outbound`), on success and on error.";

error_responses!(TestErrors = [INVALID_REQUEST, NOT_FOUND] + CALL);

/// Test an instance's connection.
///
/// Runs the connector's `test-connection`: success sets the instance
/// `ACTIVE`; a failure of the connection sets `ERROR` with the reason.
#[utoipa::path(
    post,
    path = "/v1/instances/{id}/test",
    operation_id = "testInstance",
    tag = "calls",
    params(
        ("id" = String, Path, description = INSTANCE_ID),
        ("outbound" = Option<bool>, Query, description = OUTBOUND),
    ),
    responses((status = 200, description = "The test passed.", body = TestSuccess), TestErrors),
)]
pub async fn test(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Json<Success>> {
    let outbound = wants_outbound(&query)?;
    let ctx = state.contexts.get(&state, &id)?;
    let started = Instant::now();
    let invocation_id = new_invocation_id();
    let summary = async {
        let called = run(&state, &ctx, &invocation_id, Call::TestConnection).await?;
        record_test_result(&state, &id, &called.result);
        finish(called, &invocation_id, outbound)
    }
    .await;
    let duration = started.elapsed();
    super::observe::record_call(
        &state,
        &id,
        &ctx.connector,
        super::observe::TEST_CONNECTION,
        duration,
        &summary,
    );
    let summary = summary?;
    Ok(Json(success(
        json!({ "message": summary.0, "instanceStatus": ACTIVE }),
        invocation_id,
        duration,
        summary.1,
    )))
}

/// A connection test decides the instance's status: `ACTIVE`, or `ERROR`
/// with the reason. Failures of the host itself (capacity, internal
/// errors) say nothing about the connection and change nothing.
fn record_test_result(
    state: &AppState,
    id: &str,
    result: &Result<crate::runtime::Output, crate::runtime::InvokeError>,
) {
    use crate::runtime::InvokeError as E;
    let (status, reason) = match result {
        Ok(_) => (ACTIVE, None),
        Err(E::Capacity(_) | E::Internal(_)) => return,
        Err(e) => (ERROR, Some(e.to_string())),
    };
    // Re-read: the record may have changed while the test ran.
    let Ok(Some(mut record)) = state.store.instance(id) else {
        return;
    };
    if record.status == status && record.status_reason == reason {
        return;
    }
    record.status = status.into();
    record.status_reason = reason;
    match state.store.update_instance(&record) {
        Ok(()) => tracing::info!(instance = %id, %status, "instance status set by connection test"),
        Err(e) => tracing::warn!(instance = %id, error = %e, "could not store the test result"),
    }
}

/// The success envelope of a call.
fn success(
    data: Value,
    invocation_id: Arc<str>,
    duration: Duration,
    outbound: Option<Value>,
) -> Success {
    Success {
        data,
        duration_ms: millis(duration),
        invocation_id,
        outbound,
        replayed: false,
        status: "SUCCESS",
    }
}

/// The answer of a successful call, serialized straight from its parts
/// (building a `Value` first cost a map and its keys per call). Fields in
/// the alphabetical order a `Value` map would give them.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Success {
    data: Value,
    duration_ms: f64,
    invocation_id: Arc<str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    outbound: Option<Value>,
    /// Set (true) only on a stored result replayed for an idempotency key.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    replayed: bool,
    status: &'static str,
}

/// The guest's output and, if asked, the outbound summary; or the error,
/// carrying the invocation id and (if asked) the summary.
fn finish(
    called: Called,
    invocation_id: &str,
    outbound: bool,
) -> ApiResult<(String, Option<Value>)> {
    let summary =
        outbound.then(|| Value::Array(called.outbound.iter().map(|r| r.to_json()).collect()));
    match called.result.and_then(crate::runtime::Output::into_text) {
        Ok(output) => Ok((output, summary)),
        Err(e) => {
            let mut e = ApiError::from(e).with_top("invocationId", json!(invocation_id));
            if let Some(s) = summary {
                e = e.with_top("outbound", s);
            }
            Err(e)
        }
    }
}

error_responses!(
    InvokeErrors = [
        INVALID_REQUEST,
        NOT_FOUND,
        METHOD_NOT_FOUND,
        IDEMPOTENCY_CONFLICT,
        PAYLOAD_TOO_LARGE,
        INVALID_CONNECTOR_OUTPUT,
    ] + CALL
);

/// Call a method.
///
/// Parameters are validated against the method's `paramsSchema` before any
/// guest code runs. Each call runs in a fresh sandbox: memory cap,
/// deadline, no filesystem, environment or sockets; outbound HTTP only to
/// allowed hosts. With an `Idempotency-Key`, the first successful result
/// is stored for 24 h and answered again for the same method and
/// parameters.
#[utoipa::path(
    post,
    path = "/v1/instances/{id}/methods/{method}",
    operation_id = "invokeMethod",
    tag = "calls",
    params(
        ("id" = String, Path, description = INSTANCE_ID),
        ("method" = String, Path, description = "A method of the instance's connector"),
        ("outbound" = Option<bool>, Query, description = OUTBOUND),
        ("Idempotency-Key" = Option<String>, Header, description = "1-255 visible ASCII characters: the same key with the same method and parameters answers the stored result (`replayed`)"),
    ),
    request_body = InvokeBody,
    responses((status = 200, description = "The method's result.", body = CallSuccess), InvokeErrors),
)]
pub async fn invoke(
    State(state): State<AppState>,
    Path((id, method)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: axum::http::HeaderMap,
    body: Body,
) -> ApiResult<Json<Success>> {
    let started = Instant::now();
    let outbound = wants_outbound(&query)?;
    invoke_request(&state, &id, &method, outbound, &headers, body, started)
        .await
        .map(Json)
}

/// [`invoke`] once its path and query are read: shared with the invoke
/// route's fast path ([`super::fast`]), which reads them itself.
pub(super) async fn invoke_request(
    state: &AppState,
    id: &str,
    method: &str,
    outbound: bool,
    headers: &axum::http::HeaderMap,
    body: Body,
    started: Instant,
) -> ApiResult<Success> {
    let req: InvokeBody = read_json(body, state.settings.limits.max_request_bytes).await?;
    let key = match headers.get("idempotency-key") {
        None => None,
        Some(v) => {
            let k = v.to_str().ok().filter(|k| !k.is_empty() && k.len() <= 255);
            Some(k.ok_or_else(|| {
                ApiError::bad_request(
                    "INVALID_REQUEST",
                    "`Idempotency-Key` must be 1-255 visible ASCII characters",
                )
            })?)
        }
    };
    let (done, duration) =
        invoke_method(state, id, method, req.parameters, key, outbound, started).await?;
    let mut answer = success(done.data, done.invocation_id, duration, done.outbound);
    answer.replayed = done.replayed;
    Ok(answer)
}

/// A finished invocation.
pub(crate) struct Invoked {
    /// The method's result.
    pub data: Value,
    /// Id of the invocation that produced it.
    pub invocation_id: Arc<str>,
    /// The outbound summary, if asked for.
    pub outbound: Option<Value>,
    /// Whether it was a stored result (same idempotency key and parameters).
    pub replayed: bool,
}

/// How long an idempotency key's result is kept.
const IDEMPOTENCY_RETENTION_SECS: u64 = 24 * 3600;

/// Validates parameters, honours an idempotency key, runs the method. Used
/// by the API and by rule jobs. Returns the call's duration too (usage,
/// metrics, the answer), counted from `started`: when the API began
/// handling the request, or when the job began.
pub(crate) async fn invoke_method(
    state: &AppState,
    id: &str,
    method: &str,
    parameters: Value,
    idempotency_key: Option<&str>,
    outbound: bool,
    started: Instant,
) -> ApiResult<(Invoked, Duration)> {
    let ctx = state.contexts.get(state, id)?;
    let result = invoke_loaded(state, &ctx, method, parameters, idempotency_key, outbound).await;
    let duration = started.elapsed();
    // A replayed result ran nothing: it is not a call.
    if !result.as_ref().is_ok_and(|r| r.replayed) {
        super::observe::record_call(state, id, &ctx.connector, method, duration, &result);
    }
    result.map(|done| (done, duration))
}

async fn invoke_loaded(
    state: &AppState,
    ctx: &CallContext,
    method: &str,
    parameters: Value,
    idempotency_key: Option<&str>,
    outbound: bool,
) -> ApiResult<Invoked> {
    let id = ctx.instance.id.as_str();
    let schemas = method_schemas(state, &ctx.connector, method)?;
    if let Some((summary, details)) = schema_errors(&schemas.params, &parameters) {
        return Err(ApiError::bad_request(
            "INVALID_PARAMS",
            format!("invalid parameters: {summary}"),
        )
        .with_details(details));
    }
    // The crate's `to_string` writes bytes straight into a buffer; the
    // `Display` impl goes through `fmt` for every token, which perf showed
    // at ~1.7 % of the host's CPU under load.
    let params = serde_json::to_string(&parameters).map_err(ApiError::internal)?;
    // Only calls with an idempotency key pay for the hash, the lookup and
    // the clock read.
    let idempotency = idempotency_key.map(|k| {
        use sha2::Digest as _;
        let hash = sha2::Sha256::new()
            .chain_update(method.as_bytes())
            .chain_update([0])
            .chain_update(params.as_bytes())
            .finalize();
        (
            format!("{id}\0{k}"),
            hex::encode(hash),
            super::unix_ms() / 1000,
        )
    });
    if let Some((key, request_hash, now_secs)) = &idempotency
        && let Some(stored) = state.store.idempotent_result(key)?
        && now_secs.saturating_sub(stored.stored_at) < IDEMPOTENCY_RETENTION_SECS
    {
        if stored.request_hash != *request_hash {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "IDEMPOTENCY_CONFLICT",
                "this Idempotency-Key was used with another method or other parameters",
            ));
        }
        return Ok(Invoked {
            data: stored.data,
            invocation_id: stored.invocation_id.into(),
            outbound: None,
            replayed: true,
        });
    }
    let invocation_id = new_invocation_id();
    let called = run(
        state,
        ctx,
        &invocation_id,
        Call::Invoke {
            method: method.into(),
            params,
        },
    )
    .await?;
    let (output, summary) = finish(called, &invocation_id, outbound)?;
    let data: Value = serde_json::from_str(&output).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            "INVALID_CONNECTOR_OUTPUT",
            format!("the connector returned a result that is not JSON: {e}"),
        )
        .with_top("invocationId", json!(&*invocation_id))
    })?;
    // The result schema is the connector's promise to its callers (rules,
    // generated clients): a result that breaks it is the connector's
    // fault, reported as such rather than passed on.
    if let Some((summary, details)) = schema_errors(&schemas.result, &data) {
        return Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            "INVALID_CONNECTOR_OUTPUT",
            format!("the result of {method} does not match its result schema: {summary}"),
        )
        .with_details(details)
        .with_top("invocationId", json!(&*invocation_id)));
    }
    if let Some((key, request_hash, now_secs)) = idempotency {
        state.store.put_idempotent_result(
            &key,
            &crate::store::IdempotentResult {
                request_hash,
                data: data.clone(),
                invocation_id: invocation_id.to_string(),
                stored_at: now_secs,
            },
        )?;
    }
    Ok(Invoked {
        data,
        invocation_id,
        outbound: summary,
        replayed: false,
    })
}

/// A method's compiled params and result schemas.
pub(crate) struct MethodSchemas {
    /// Checked before any guest code runs.
    pub params: jsonschema::Validator,
    /// Checked on every result.
    pub result: jsonschema::Validator,
}

/// The compiled schemas of a method; 404 `METHOD_NOT_FOUND` if the
/// connector has no such method.
fn method_schemas(
    state: &AppState,
    connector: &ConnectorRecord,
    method: &str,
) -> ApiResult<Arc<MethodSchemas>> {
    // Looked up by reference: no owned key on every call.
    if let Some(v) = state
        .validators
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&connector.digest)
        .and_then(|methods| methods.get(method))
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
    let validator = Arc::new(MethodSchemas {
        params: jsonschema::validator_for(&info.params_schema).map_err(ApiError::internal)?,
        result: jsonschema::validator_for(&info.result_schema).map_err(ApiError::internal)?,
    });
    state
        .validators
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(connector.digest.clone())
        .or_default()
        .insert(method.to_owned(), validator.clone());
    Ok(validator)
}

/// A fresh id for one call (`inv_` + 32 hex characters).
///
/// Shared, not owned: the call's guest state, its egress hooks and the
/// answer all hold it. Composed on the stack, so it is one allocation.
pub(super) fn new_invocation_id() -> Arc<str> {
    const PREFIX: &[u8] = b"inv_";
    let mut id = [0u8; PREFIX.len() + uuid::fmt::Simple::LENGTH];
    id[..PREFIX.len()].copy_from_slice(PREFIX);
    uuid::Uuid::new_v4()
        .simple()
        .encode_lower(&mut id[PREFIX.len()..]);
    Arc::from(std::str::from_utf8(&id).expect("ASCII: a prefix and hex digits"))
}

pub(super) async fn run(
    state: &AppState,
    ctx: &CallContext,
    invocation_id: &Arc<str>,
    call: Call<'_>,
) -> ApiResult<Called> {
    let (instance, connector) = (&ctx.instance, &ctx.connector);
    let (egress, reauth) = match &ctx.prepared {
        Some(prepared) => (prepared.clone(), None),
        None => unprepared(state, ctx).await?,
    };
    // Only requests the host adds credentials to are credential uses.
    let audit = egress.auth.as_ref().map(|plan| {
        Arc::new(crate::audit::CredentialAudit::new(
            state.audit.clone(),
            crate::audit::current_actor(),
            &instance.id,
            &connector.id,
            invocation_id,
            egress.credential.as_deref(),
            plan.fields(),
        ))
    });
    let policy = EgressPolicy {
        allowlist: egress.allowlist,
        instance_rate: instance.limits.rate_limit,
        upstream_rate: connector.effective_rate_limit(),
        credential: egress.credential,
        credentials: egress.credentials,
        auth: egress.auth,
        reauth,
        audit,
    };
    let loaded = state.runtime.load(state.store.clone(), connector).await?;
    let invocation = Invocation {
        connector: ctx.connector_id.clone(),
        instance: Some(ctx.instance_id.clone()),
        config: ctx.config.clone(),
        id: invocation_id.clone(),
    };
    let envelope = Envelope::for_instance(state.runtime.limits(), &instance.limits);
    let called = state
        .runtime
        .call(&loaded, invocation, policy, envelope, call)
        .await;
    match &called.result {
        Ok(_) => {
            tracing::debug!(instance = %instance.id, connector = %connector.id, invocation = &**invocation_id, "invocation succeeded")
        }
        Err(e) => {
            tracing::info!(instance = %instance.id, connector = %connector.id, invocation = &**invocation_id, error = %e, "invocation failed")
        }
    }
    Ok(called)
}

/// The egress pieces of a call whose context has none prepared: OAuth
/// instances (a fresh token per call, and a hook that renews it after a
/// 401), and instances whose config or credentials fail, which this
/// reports with the exact error.
async fn unprepared(
    state: &AppState,
    ctx: &CallContext,
) -> ApiResult<(Prepared, Option<crate::egress::Reauth>)> {
    let (instance, connector) = (&ctx.instance, &ctx.connector);
    let allowlist = callable(instance, connector)?;
    let record = match &connector.manifest.auth.scheme {
        AuthScheme::Oauth2(o) => Some(super::oauth::ensure_fresh(state, instance, o, None).await?),
        _ => state.store.credentials(&instance.id)?,
    };
    let used_token = record
        .as_ref()
        .and_then(|r| r.fields.get(crate::oauth::ACCESS_TOKEN))
        .map(|f| f.sealed.clone());
    let egress = Prepared::build(state, instance, connector, allowlist, record.as_ref())?;
    let reauth = super::oauth::reauth_hook(state, &instance.id, connector, used_token);
    Ok((egress, reauth))
}

/// Whether the instance can be called at all: the hosts it may reach
/// resolve against its config (422 `CONFIG_ERROR`), and it is not waiting
/// for credentials (409 `CREDENTIALS_REQUIRED`). Returns the hosts.
pub(super) fn callable(
    instance: &InstanceRecord,
    connector: &ConnectorRecord,
) -> ApiResult<Allowlist> {
    let allowlist = allowlist_for(connector, &instance.config, &instance.limits).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "CONFIG_ERROR",
            e.to_string(),
        )
    })?;
    if instance.status == PENDING {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "CREDENTIALS_REQUIRED",
            format!(
                "instance {} has no credentials yet; set them with PUT /v1/instances/{}/credentials",
                instance.id, instance.id
            ),
        ));
    }
    Ok(allowlist)
}

/// Who the shared upstream budget is keyed by: instances with the same
/// credentials share it (a keyed fingerprint, so equal tokens meet without
/// the key revealing them); an OAuth instance is its own account (its
/// tokens rotate, the account does not); instances without credentials
/// share one budget per upstream (`None`).
pub(super) fn credential_identity(
    state: &AppState,
    connector: &ConnectorRecord,
    instance: &str,
    creds: &crate::vault::Credentials,
) -> Option<String> {
    if matches!(connector.manifest.auth.scheme, AuthScheme::Oauth2(_)) {
        return Some(format!("oauth:{instance}"));
    }
    (!creds.is_empty()).then(|| state.vault.fingerprint(creds))
}

error_responses!(HealthErrors = [NOT_FOUND, CREDENTIALS_UNREADABLE]);

/// An instance's health.
///
/// The broker's view of the upstreams the instance uses (those it called
/// since the host started, plus the exact hosts it may call): their
/// circuits and rate budgets. `status` is `unavailable` while a circuit is
/// open or the credentials have expired; `degraded` while a circuit is
/// half-open, a budget is paused by the upstream, the credentials expire
/// within 7 days or the instance is not `ACTIVE`; else `healthy`.
#[utoipa::path(
    get,
    path = "/v1/instances/{id}/health",
    operation_id = "instanceHealth",
    tag = "instances",
    params(("id" = String, Path, description = INSTANCE_ID)),
    responses((status = 200, description = "The health.", body = InstanceHealth), HealthErrors),
)]
pub async fn health(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let instance = load_instance(&state, &id)?;
    let connector = load_connector(&state, &instance)?;
    let broker = state.runtime.broker();
    // Upstreams it has called, plus the exact hosts it may call (wildcards
    // name no single upstream).
    let mut upstreams = broker.usage().upstreams(&id);
    if let Ok(allowlist) = allowlist_for(&connector, &instance.config, &instance.limits) {
        upstreams.extend(
            allowlist
                .rules()
                .iter()
                .map(|r| r.to_string())
                .filter(|u| !u.contains('*')),
        );
    }
    upstreams.sort();
    upstreams.dedup();
    // The same budget keys the instance's requests use.
    let cred_record = state.store.credentials(&id)?;
    let creds = match &cred_record {
        Some(record) => credentials::open(&state.vault, &id, record)?,
        None => Default::default(),
    };
    let credential = credential_identity(&state, &connector, &id, &creds);
    let budgets = broker.budgets().snapshot();
    let budget_view = |key: &BudgetKey| {
        budgets.iter().find(|b| b.key == *key).map(|b| {
            json!({
                "key": b.key.0,
                "rateLimit": b.spec,
                "pausedUntil": b.paused_until.map(rfc3339),
                "waiting": b.waiters,
            })
        })
    };
    let now = Instant::now();
    let mut status = Health::Healthy;
    let mut worse = |s: Health| status = status.max(s);
    let items: Vec<Value> = upstreams
        .iter()
        .map(|u| {
            let c = broker.breakers().state(u, now);
            match c.state.as_str() {
                "open" => worse(Health::Unavailable),
                "half_open" => worse(Health::Degraded),
                _ => {}
            }
            let budget = budget_view(&BudgetKey::upstream(u, credential.as_deref()));
            if budget.as_ref().is_some_and(|b| !b["pausedUntil"].is_null()) {
                worse(Health::Degraded);
            }
            json!({
                "upstream": u,
                "circuit": {
                    "state": c.state.as_str(),
                    "failures": c.failures,
                    "retryAfterMs": c.retry_after.map(|d| d.as_millis() as u64),
                },
                "budget": budget,
            })
        })
        .collect();
    let mut warnings = Vec::new();
    if instance.status != ACTIVE {
        worse(Health::Degraded);
        warnings.push(format!(
            "instance status is {}{}",
            instance.status,
            instance
                .status_reason
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        ));
    }
    let oauth_managed = matches!(connector.manifest.auth.scheme, AuthScheme::Oauth2(_));
    let expires_at = cred_record
        .filter(|_| !oauth_managed)
        .and_then(|c| c.expires_at)
        .and_then(|e| {
            time::OffsetDateTime::parse(&e, &time::format_description::well_known::Rfc3339).ok()
        });
    if let Some(at) = expires_at {
        let left = at - time::OffsetDateTime::now_utc();
        if left <= time::Duration::ZERO {
            worse(Health::Unavailable);
            warnings.push(format!("credentials expired at {}", rfc3339(at.into())));
        } else if left <= CREDENTIAL_EXPIRY_WARNING {
            worse(Health::Degraded);
            warnings.push(format!(
                "credentials expire at {} (in {} h); rotate them with PUT /v1/instances/{id}/credentials",
                rfc3339(at.into()),
                left.whole_hours()
            ));
        }
    }
    let recent = broker.usage().recent(&id, SystemTime::now());
    let error_rate = if recent.calls == 0 {
        0.0
    } else {
        recent.failed as f64 / recent.calls as f64
    };
    if recent.calls >= ERROR_RATE_MIN_CALLS && error_rate >= ERROR_RATE_DEGRADED {
        worse(Health::Degraded);
        warnings.push(format!(
            "{} of the last {} calls failed (within {})",
            recent.failed,
            recent.calls,
            crate::usage::HEALTH_WINDOW
        ));
    }
    Ok(Json(json!({
        "instance": id,
        "status": status,
        "instanceStatus": instance.status,
        "warnings": warnings,
        "lastSuccessAt": recent.last_success.map(rfc3339),
        "lastFailure": recent.last_failure.map(|(at, code)| json!({ "at": rfc3339(at), "code": code })),
        "recent": {
            "window": crate::usage::HEALTH_WINDOW.to_string(),
            "calls": recent.calls,
            "failed": recent.failed,
            "errorRate": error_rate,
        },
        "upstreams": items,
        "budget": budget_view(&BudgetKey::instance(&id)),
    })))
}

/// An instance's overall health; the worst finding wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
enum Health {
    Healthy,
    Degraded,
    Unavailable,
}

/// Health is `degraded` when at least this share of recent calls failed…
const ERROR_RATE_DEGRADED: f64 = 0.5;
/// …out of at least this many (one failed call alone says little).
const ERROR_RATE_MIN_CALLS: u64 = 5;

/// How long before credentials expire health starts warning.
const CREDENTIAL_EXPIRY_WARNING: time::Duration = time::Duration::days(7);

error_responses!(StatsErrors = [NOT_FOUND, INVALID_REQUEST]);

/// An instance's calls and outbound attempts over a window.
///
/// Calls by outcome code, category and method with durations, and
/// outbound attempts by broker decision, status and error category, with
/// bytes, latency (time to response headers) and per-upstream counts; in
/// memory since the host started. No path, query, header or body is ever
/// recorded.
#[utoipa::path(
    get,
    path = "/v1/instances/{id}/stats",
    operation_id = "instanceStats",
    tag = "instances",
    params(
        ("id" = String, Path, description = INSTANCE_ID),
        ("window" = Option<String>, Query, description = super::observe::WINDOW),
    ),
    responses((status = 200, description = "The stats.", body = InstanceStats), StatsErrors),
)]
pub async fn stats(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let window = super::observe::window(&query)?;
    load_instance(&state, &id)?;
    let mut stats = state
        .runtime
        .broker()
        .usage()
        .stats(&id, window, SystemTime::now());
    stats["instance"] = json!(id);
    Ok(Json(stats))
}

use crate::usage::rfc3339;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invocation_id_is_inv_and_32_lowercase_hex_digits() {
        let a = new_invocation_id();
        let hex = a.strip_prefix("inv_").expect("the prefix");
        assert_eq!(hex.len(), 32, "{a}");
        assert!(
            hex.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
            "{a}"
        );
        assert_ne!(a, new_invocation_id(), "two calls, two ids");
    }
}

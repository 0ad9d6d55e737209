//! `/v1/rules` (CRUD, validated at save) and `/v1/jobs` (list, show,
//! replay), plus the worker that runs jobs.

use std::collections::HashMap;
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::instances::{invoke_method, load_connector};
use super::openapi::error_responses;
use super::openapi::schemas::{JobList, RuleList};
use super::{ApiError, ApiResult, AppState, now, read_json, unix_ms};
use crate::rules::{Action, Trigger, check_templates, check_trigger};
use crate::store::{JobRecord, JobState, RuleRecord};

/// Body of `POST /v1/rules` and `PUT /v1/rules/{id}`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RuleBody {
    /// Display name, 1-128 characters.
    name: String,
    /// Whether the rule runs (default `true`).
    #[serde(default = "yes")]
    enabled: bool,
    /// What it matches.
    trigger: Trigger,
    /// What it does, in order (at least one).
    actions: Vec<Action>,
}

fn yes() -> bool {
    true
}

/// Everything a rule must satisfy before it is stored.
fn validate(state: &AppState, body: &RuleBody) -> ApiResult<()> {
    let bad = |m: String| ApiError::bad_request("INVALID_RULE", m);
    if body.name.trim().is_empty() || body.name.len() > 128 {
        return Err(bad("`name` must be 1-128 characters".into()));
    }
    check_trigger(&body.trigger).map_err(bad)?;
    if let Some(i) = &body.trigger.instance {
        state
            .store
            .instance(i)?
            .ok_or_else(|| bad(format!("trigger.instance {i} does not exist")))?;
    }
    if let Some(c) = &body.trigger.connector {
        let known = state
            .store
            .connectors()?
            .iter()
            .any(|r| r.id == *c || r.name == *c);
        if !known {
            return Err(bad(format!("trigger.connector {c} is not uploaded")));
        }
    }
    if body.actions.is_empty() {
        return Err(bad("a rule needs at least one action".into()));
    }
    for (n, a) in body.actions.iter().enumerate() {
        let instance = state.store.instance(&a.instance)?.ok_or_else(|| {
            bad(format!(
                "actions[{n}].instance {} does not exist",
                a.instance
            ))
        })?;
        let connector = load_connector(state, &instance)?;
        if connector.manifest.method(&a.method).is_none() {
            return Err(bad(format!(
                "actions[{n}].method: connector {} has no method {:?}",
                connector.id, a.method
            )));
        }
        if !a.parameters.is_object() {
            return Err(bad(format!("actions[{n}].parameters must be an object")));
        }
        check_templates(&a.parameters).map_err(|e| bad(format!("actions[{n}].parameters: {e}")))?;
    }
    Ok(())
}

/// The path parameter naming a rule.
const RULE_ID: &str = "Rule id (`rule_…`)";

/// The path parameter naming a job.
const JOB_ID: &str = "Job id (`job_…`)";

error_responses!(CreateErrors = [INVALID_REQUEST, INVALID_RULE, PAYLOAD_TOO_LARGE]);

/// Create a rule.
///
/// A trigger matches an event `kind`, optionally an `instance` or a
/// `connector`, and all `conditions` on the payload. Every string in an
/// action's `parameters` is a minijinja template over the event payload
/// plus `event`; a missing field is an error, not an empty string. Saving
/// checks instances, methods, templates and paths.
#[utoipa::path(
    post,
    path = "/v1/rules",
    operation_id = "createRule",
    tag = "rules",
    request_body = RuleBody,
    responses((status = 201, description = "Created.", body = RuleRecord), CreateErrors),
)]
pub async fn create(
    State(state): State<AppState>,
    body: Body,
) -> ApiResult<axum::response::Response> {
    let body: RuleBody = read_json(body, state.settings.limits.max_request_bytes).await?;
    validate(&state, &body)?;
    let rule = RuleRecord {
        id: format!("rule_{}", uuid::Uuid::new_v4().simple()),
        name: body.name.trim().to_owned(),
        enabled: body.enabled,
        trigger: body.trigger,
        actions: body.actions,
        created_at: now(),
    };
    state.store.put_rule(&rule)?;
    tracing::info!(rule = %rule.id, "rule created");
    Ok(super::AuditNote::on(&rule.id).attach((StatusCode::CREATED, Json(rule))))
}

error_responses!(ReplaceErrors = [INVALID_REQUEST, INVALID_RULE, NOT_FOUND, PAYLOAD_TOO_LARGE]);

/// Replace a rule.
///
/// Validated like a create; keeps the id and creation time.
#[utoipa::path(
    put,
    path = "/v1/rules/{id}",
    operation_id = "replaceRule",
    tag = "rules",
    params(("id" = String, Path, description = RULE_ID)),
    request_body = RuleBody,
    responses((status = 200, description = "The rule.", body = RuleRecord), ReplaceErrors),
)]
pub async fn replace(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Body,
) -> ApiResult<Json<RuleRecord>> {
    let old = state
        .store
        .rule(&id)?
        .ok_or_else(|| ApiError::not_found(format!("rule {id}")))?;
    let body: RuleBody = read_json(body, state.settings.limits.max_request_bytes).await?;
    validate(&state, &body)?;
    let rule = RuleRecord {
        name: body.name.trim().to_owned(),
        enabled: body.enabled,
        trigger: body.trigger,
        actions: body.actions,
        ..old
    };
    state.store.put_rule(&rule)?;
    Ok(Json(rule))
}

error_responses!(ListErrors = []);

/// List rules.
#[utoipa::path(
    get,
    path = "/v1/rules",
    operation_id = "listRules",
    tag = "rules",
    responses((status = 200, description = "Every rule.", body = RuleList), ListErrors),
)]
pub async fn list(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    Ok(Json(json!({ "items": state.store.rules()? })))
}

error_responses!(ShowErrors = [NOT_FOUND]);

/// Show a rule.
#[utoipa::path(
    get,
    path = "/v1/rules/{id}",
    operation_id = "showRule",
    tag = "rules",
    params(("id" = String, Path, description = RULE_ID)),
    responses((status = 200, description = "The rule.", body = RuleRecord), ShowErrors),
)]
pub async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<RuleRecord>> {
    Ok(Json(state.store.rule(&id)?.ok_or_else(|| {
        ApiError::not_found(format!("rule {id}"))
    })?))
}

error_responses!(DeleteErrors = [NOT_FOUND]);

/// Delete a rule.
///
/// Jobs it already queued still run.
#[utoipa::path(
    delete,
    path = "/v1/rules/{id}",
    operation_id = "deleteRule",
    tag = "rules",
    params(("id" = String, Path, description = RULE_ID)),
    responses((status = 204, description = "Deleted."), DeleteErrors),
)]
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state.store.delete_rule(&id)?;
    Ok(StatusCode::NO_CONTENT)
}

error_responses!(ListJobsErrors = [INVALID_REQUEST]);

/// List jobs.
///
/// A job is one action for one event: `state` goes `pending` → `running`
/// → `succeeded`, or `dead` after the last attempt or a non-retryable
/// error (`lastError` says why).
#[utoipa::path(
    get,
    path = "/v1/jobs",
    operation_id = "listJobs",
    tag = "jobs",
    params(
        ("state" = Option<JobState>, Query, description = "Only jobs in this state"),
        ("rule" = Option<String>, Query, description = "Only jobs of this rule"),
        ("event" = Option<String>, Query, description = "Only jobs of this event"),
    ),
    responses((status = 200, description = "The jobs.", body = JobList), ListJobsErrors),
)]
pub async fn list_jobs(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let wanted = match q.get("state") {
        None => None,
        Some(s) => Some(serde_json::from_value::<JobState>(json!(s)).map_err(|_| {
            ApiError::bad_request(
                "INVALID_REQUEST",
                "`state` must be pending, running, succeeded or dead",
            )
        })?),
    };
    let items: Vec<JobRecord> = state
        .store
        .jobs()?
        .into_iter()
        .filter(|j| wanted.is_none_or(|s| s == j.state))
        .filter(|j| q.get("rule").is_none_or(|r| *r == j.rule))
        .filter(|j| q.get("event").is_none_or(|e| *e == j.event))
        .collect();
    Ok(Json(json!({ "items": items })))
}

error_responses!(ShowJobErrors = [NOT_FOUND]);

/// Show a job.
#[utoipa::path(
    get,
    path = "/v1/jobs/{id}",
    operation_id = "showJob",
    tag = "jobs",
    params(("id" = String, Path, description = JOB_ID)),
    responses((status = 200, description = "The job.", body = JobRecord), ShowJobErrors),
)]
pub async fn show_job(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<JobRecord>> {
    Ok(Json(
        state
            .store
            .job(&id)?
            .ok_or_else(|| ApiError::not_found(format!("job {id}")))?,
    ))
}

error_responses!(ReplayErrors = [NOT_FOUND, CONFLICT]);

/// Replay a dead job.
///
/// It runs again from its first attempt, with the same idempotency key.
/// Refused with 409 `CONFLICT` for a job that is not dead, or whose
/// parameters could not be rendered.
#[utoipa::path(
    post,
    path = "/v1/jobs/{id}/replay",
    operation_id = "replayJob",
    tag = "jobs",
    params(("id" = String, Path, description = JOB_ID)),
    responses((status = 200, description = "The job, pending again.", body = JobRecord), ReplayErrors),
)]
pub async fn replay(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<JobRecord>> {
    let mut job = state
        .store
        .job(&id)?
        .ok_or_else(|| ApiError::not_found(format!("job {id}")))?;
    if job.state != JobState::Dead {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "CONFLICT",
            format!(
                "job {id} is {:?}, only dead jobs can be replayed",
                job.state
            )
            .to_lowercase(),
        ));
    }
    if job.parameters.is_null() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "CONFLICT",
            "the job's parameters could not be rendered; fix the rule and let a new event trigger it",
        ));
    }
    job.state = JobState::Pending;
    job.attempts = 0;
    job.next_attempt_at = unix_ms();
    job.updated_at = now();
    state.store.put_job(&job)?;
    state.jobs.notify_one();
    tracing::info!(job = %id, "job replayed");
    Ok(Json(job))
}

/// Runs due jobs until the process ends. Jobs left `running` by a crash are
/// due again at start-up (at-least-once; the idempotency key makes a
/// repeat after a finished invocation return its stored result).
pub fn spawn_worker(state: AppState) {
    tokio::spawn(async move {
        if let Ok(jobs) = state.store.unfinished_jobs() {
            for mut job in jobs.into_iter().filter(|j| j.state == JobState::Running) {
                job.state = JobState::Pending;
                let _ = state.store.put_job(&job);
            }
        }
        if state.settings.jobs.paused {
            tracing::warn!(
                "rule actions are paused (--jobs-paused): events are stored and jobs queued, none run"
            );
            return;
        }
        loop {
            let now = unix_ms();
            let jobs = state.store.unfinished_jobs().unwrap_or_default();
            let mut next_due: Option<u64> = None;
            for job in jobs.into_iter().filter(|j| j.state == JobState::Pending) {
                if job.next_attempt_at <= now {
                    run_job(&state, job).await;
                } else {
                    next_due =
                        Some(next_due.map_or(job.next_attempt_at, |n| n.min(job.next_attempt_at)));
                }
            }
            let wait = next_due.map_or(Duration::from_secs(5), |t| {
                Duration::from_millis(t.saturating_sub(unix_ms()).clamp(1, 5000))
            });
            tokio::select! {
                () = state.jobs.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    });
}

async fn run_job(state: &AppState, mut job: JobRecord) {
    job.state = JobState::Running;
    job.attempts += 1;
    job.updated_at = now();
    if state.store.put_job(&job).is_err() {
        return;
    }
    let actor = crate::audit::Actor::system("rule job", Some(&job.id));
    let outcome = crate::audit::acting(
        actor,
        invoke_method(
            state,
            &job.instance,
            &job.method,
            job.parameters.clone(),
            Some(&job.idempotency_key),
            false,
            std::time::Instant::now(),
        ),
    )
    .await;
    let settings = &state.settings.jobs;
    match outcome {
        Ok((done, _)) => {
            job.state = JobState::Succeeded;
            job.result = Some(done.data);
            job.last_error = None;
            tracing::info!(job = %job.id, attempts = job.attempts, "job succeeded");
        }
        Err(e) => {
            let retryable = super::error::category(e.code).retryable();
            job.last_error = Some(json!({ "code": e.code, "message": e.message }));
            if retryable && job.attempts < settings.max_attempts {
                // Full jitter over an exponential ceiling, at least the
                // `Retry-After` the failure asked for.
                let ceiling = settings
                    .backoff
                    .saturating_mul(2u32.saturating_pow(job.attempts - 1))
                    .min(Duration::from_secs(3600));
                let jitter = rand::random_range(0..=ceiling.as_millis() as u64);
                let floor = e.retry_after.map_or(0, |s| u64::from(s) * 1000);
                job.next_attempt_at = unix_ms() + jitter.max(floor);
                job.state = JobState::Pending;
                tracing::info!(job = %job.id, attempts = job.attempts, code = e.code, "job failed; will retry");
            } else {
                job.state = JobState::Dead;
                tracing::warn!(job = %job.id, attempts = job.attempts, code = e.code, "job dead-lettered");
            }
        }
    }
    job.updated_at = now();
    if let Err(e) = state.store.put_job(&job) {
        tracing::error!(job = %job.id, error = %e, "could not store the job's outcome");
    }
}

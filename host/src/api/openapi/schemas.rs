//! Schemas of the answers handlers build as JSON values (`json!`), so the
//! spec can describe them. Stored records and request bodies derive
//! `ToSchema` where they are defined; the types here only mirror a
//! builder, named next to each. Change both together: the e2e walker
//! (`tests/tests/e2e/openapi.rs`) validates every answer against these and
//! fails on a field they do not document.

// Nothing constructs these: they exist for their schemas. (Serialize is
// derived only so `#[serde(flatten)]` can compose stored records.)
#![allow(dead_code, reason = "documentation types, never constructed")]

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};

use crate::egress::Decision;
use crate::egress::budget::RateSpec;
use crate::egress::category::ErrorCategory;
use crate::store::{InstanceRecord, TokenRecord};

use super::codes;

/// Every error answer (`ApiError` in `api/error.rs`). Each response lists
/// the codes it can carry in `x-error-codes`.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct ErrorBody {
    /// Always `ERROR`.
    #[schema(inline)]
    status: ErrorTag,
    /// What went wrong.
    error: ErrorDetail,
    /// Errors of a call (`…/test`, `…/methods/…`, webhooks): the
    /// invocation's id, as in the host log.
    #[schema(required = false)]
    invocation_id: String,
    /// Errors of a call with `?outbound=true`: its outbound attempts.
    #[schema(required = false)]
    outbound: Vec<OutboundAttempt>,
}

/// The `status` of an error answer.
#[derive(ToSchema)]
#[schema(rename_all = "UPPERCASE")]
enum ErrorTag {
    /// An error.
    Error,
}

/// The `error` object of an error answer.
#[derive(ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable code.
    #[schema(schema_with = code_schema)]
    code: String,
    /// For humans; may change.
    message: String,
    /// Retry later (`temporary`, `rate_limited`) or fix something first
    /// (`configuration`, `permanent`).
    category: ErrorCategory,
    /// Whether the same request can succeed later unchanged.
    retryable: bool,
    /// Code-specific details (field errors, `target`, `upstreamStatus`, …).
    #[schema(required = false, value_type = Object)]
    details: Value,
}

/// Every code of the catalogue.
fn code_schema() -> utoipa::openapi::schema::Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(codes::ALL.iter().map(|c| c.code)))
        .description(Some("Stable, machine-readable code."))
        .build()
}

/// One outbound attempt of a call (`OutboundRecord::to_json` in
/// `egress/journal.rs`). No path, query, header or body is ever recorded.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct OutboundAttempt {
    /// HTTP method.
    method: String,
    /// `scheme://host:port`.
    upstream: String,
    /// 1 for the first attempt of a request, 2 for its first retry, …
    attempt: u32,
    /// What the broker decided.
    decision: Decision,
    /// The upstream's status, if it answered.
    #[schema(required = false)]
    status: u16,
    /// Time spent waiting in a rate budget.
    queued_ms: f64,
    /// Time to response headers.
    latency_ms: f64,
    /// Request body bytes sent.
    bytes_out: u64,
    /// Response body bytes received.
    bytes_in: u64,
    /// Why the attempt failed, if it did.
    #[schema(required = false)]
    error: OutboundFailure,
}

/// The failure of one outbound attempt.
#[derive(ToSchema)]
pub struct OutboundFailure {
    /// How it ended.
    #[schema(inline)]
    kind: OutboundKind,
    /// The failure's category.
    category: ErrorCategory,
    /// What happened, in words.
    #[schema(required = false)]
    message: String,
}

/// How an outbound attempt ended.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
enum OutboundKind {
    /// Refused by the egress policy.
    Denied,
    /// Refused or cut off by a per-invocation limit.
    Limit,
    /// Refused by a rate budget.
    RateLimited,
    /// Refused: the upstream's circuit is open.
    Unavailable,
    /// No answer in time.
    Timeout,
    /// The connection failed.
    Failed,
    /// The upstream answered with a failure status.
    Status,
}

/// `GET /healthz` (`healthz` in `api/mod.rs`).
#[derive(ToSchema)]
pub struct Healthz {
    /// Always `ok`.
    #[schema(inline)]
    status: HealthzStatus,
    /// The host's version.
    version: String,
    /// How components were obtained since start.
    runtime: crate::runtime::RuntimeStats,
}

/// The `status` of `/healthz`.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
enum HealthzStatus {
    /// Serving.
    Ok,
}

/// An instance as the API shows it (`instance_view` in
/// `api/instances.rs`): the record, the resolved allowlist and the
/// credentials as names only.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Instance {
    #[serde(flatten)]
    record: InstanceRecord,
    /// Credential field names and times; never a value.
    credentials: CredentialsView,
    /// The hosts the instance may call, as resolved from the manifest and
    /// the instance's config and `allowedHosts` (not in lists).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    allowed_hosts: Option<Vec<String>>,
}

/// An instance's credentials, names only (`credentials::view`).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialsView {
    /// By field name.
    fields: BTreeMap<String, CredentialField>,
    /// When the operator said they expire (RFC 3339), if set.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    expires_at: Option<String>,
}

/// One credential field, without its value.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialField {
    /// Always `true`.
    set: bool,
    /// RFC 3339 time the value was set.
    updated_at: String,
}

/// A token as minted: the record plus the token itself, shown only in this
/// answer (`create_token` in `api/auth.rs`).
#[derive(Serialize, ToSchema)]
pub struct NewToken {
    #[serde(flatten)]
    record: TokenRecord,
    /// The bearer token. Store it now: the host keeps only its sha256.
    token: String,
}

/// `{"items": […]}` answers of the list endpoints.
macro_rules! lists {
    ($($(#[$doc:meta])* $name:ident: $item:ty;)*) => {$(
        $(#[$doc])*
        #[derive(ToSchema)]
        pub struct $name {
            /// Everything, in id order.
            items: Vec<$item>,
        }
    )*};
}

lists! {
    /// Connectors, without their manifests' schemas.
    ConnectorList: super::super::connectors::Summary<'static>;
    /// Instances (without `allowedHosts`).
    InstanceList: Instance;
    /// Tokens: ids, scopes, names; never the tokens.
    TokenList: TokenRecord;
    /// Rules.
    RuleList: crate::store::RuleRecord;
    /// Jobs.
    JobList: crate::store::JobRecord;
}

/// A page of events (`list_events` in `api/webhooks.rs`).
#[derive(ToSchema)]
pub struct EventPage {
    /// Events, oldest first.
    items: Vec<crate::store::EventRecord>,
    /// The `after` cursor of the next page; `null` on the last.
    #[schema(required = true)]
    next: Option<String>,
}

/// The success answer of a method call (`success` in `api/instances.rs`).
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct CallSuccess {
    /// Always `SUCCESS`.
    #[schema(inline)]
    status: SuccessTag,
    /// The method's JSON result (valid against its `resultSchema`).
    #[schema(value_type = Value)]
    data: Value,
    /// The invocation's id, as in the host log.
    invocation_id: String,
    /// Time the call took.
    duration_ms: f64,
    /// With `?outbound=true`: the call's outbound attempts.
    #[schema(required = false)]
    outbound: Vec<OutboundAttempt>,
    /// `true` when the answer is the stored result of an earlier call with
    /// the same `Idempotency-Key` (same `invocationId`; nothing ran).
    #[schema(required = false)]
    replayed: bool,
}

/// The success answer of a connection test (`test` in `api/instances.rs`).
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct TestSuccess {
    /// Always `SUCCESS`.
    #[schema(inline)]
    status: SuccessTag,
    /// What the connector said.
    data: TestResult,
    /// The invocation's id, as in the host log.
    invocation_id: String,
    /// Time the test took.
    duration_ms: f64,
    /// With `?outbound=true`: the test's outbound attempts.
    #[schema(required = false)]
    outbound: Vec<OutboundAttempt>,
}

/// The `data` of a passed connection test.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct TestResult {
    /// The connector's message.
    message: String,
    /// The instance's status now: `ACTIVE`.
    instance_status: String,
}

/// The `status` of a success answer.
#[derive(ToSchema)]
#[schema(rename_all = "UPPERCASE")]
enum SuccessTag {
    /// Success.
    Success,
}

/// The broker's view of an instance (`health` in `api/instances.rs`).
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct InstanceHealth {
    /// The instance id.
    instance: String,
    /// The worst finding.
    #[schema(inline)]
    status: HealthStatus,
    /// The instance's own status (`ACTIVE`, `PENDING_AUTHENTICATION`, …).
    instance_status: String,
    /// Why the status is not `healthy`, in words.
    warnings: Vec<String>,
    /// When a call last succeeded (RFC 3339), since the host started.
    #[schema(required = true)]
    last_success_at: Option<String>,
    /// When a call last failed, and how.
    #[schema(required = true)]
    last_failure: Option<LastFailure>,
    /// Calls in the last 15 minutes.
    recent: RecentCalls,
    /// The upstreams it called since start, and the exact hosts it may call.
    upstreams: Vec<UpstreamHealth>,
    /// The instance's own `rateLimit` budget, if set.
    #[schema(required = true)]
    budget: Option<BudgetView>,
}

/// The last failed call of an instance.
#[derive(ToSchema)]
pub struct LastFailure {
    /// When (RFC 3339).
    at: String,
    /// Its error code.
    code: String,
}

/// Calls within the health window.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct RecentCalls {
    /// The window (`15m`).
    window: String,
    /// Calls.
    calls: u64,
    /// Of which failed.
    failed: u64,
    /// `failed / calls` (0 without calls).
    error_rate: f64,
}

/// An instance's overall health.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
enum HealthStatus {
    /// Nothing wrong.
    Healthy,
    /// A circuit is half-open, a budget is paused, the credentials expire
    /// within 7 days, the instance is not `ACTIVE`, or at least half of at
    /// least 5 calls in the last 15 minutes failed.
    Degraded,
    /// A circuit is open or the credentials have expired.
    Unavailable,
}

/// One upstream of an instance.
#[derive(ToSchema)]
pub struct UpstreamHealth {
    /// `scheme://host:port`.
    upstream: String,
    /// Its circuit breaker.
    circuit: Circuit,
    /// The shared (upstream, credential) budget it uses, once it exists.
    #[schema(required = true)]
    budget: Option<BudgetView>,
}

/// A circuit breaker's state.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct Circuit {
    /// `closed`, `open` or `half_open`.
    #[schema(inline)]
    state: CircuitState,
    /// Consecutive failures (closed), or the failures that opened it.
    failures: u32,
    /// Open: time until probing starts.
    #[schema(required = true)]
    retry_after_ms: Option<u64>,
}

/// The states of a circuit.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
enum CircuitState {
    /// Requests flow.
    Closed,
    /// Requests are refused.
    Open,
    /// One probe at a time.
    HalfOpen,
}

/// A rate budget.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct BudgetView {
    /// The bucket, e.g. `instance:inst_…` or `upstream:…|cred:…`.
    key: String,
    /// Its rate; `null` if only a pause is known.
    #[schema(required = true)]
    rate_limit: Option<RateSpec>,
    /// End of a pause an upstream asked for (RFC 3339).
    #[schema(required = true)]
    paused_until: Option<String>,
    /// Requests queued on it.
    waiting: u64,
}

/// An instance's figures over a window (`Usage::stats` in `usage/mod.rs`).
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct InstanceStats {
    /// The instance id.
    instance: String,
    /// The window asked for (`all`, `5m`, `24h`, …).
    window: String,
    /// Where the window starts (RFC 3339): its first slot, or when the host
    /// started counting.
    from: String,
    /// Now (RFC 3339).
    to: String,
    /// Calls of the instance.
    invocations: CallStats,
    /// Its outbound attempts.
    outbound: OutboundStats,
}

/// Calls by outcome (`Calls::to_json` in `usage/bucket.rs`).
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct CallStats {
    /// Calls: methods (also those refused before the guest ran), connection
    /// tests and verified webhook deliveries.
    count: u64,
    /// Calls that succeeded.
    succeeded: u64,
    /// Calls that failed.
    failed: u64,
    /// `failed / count` (0 without calls).
    error_rate: f64,
    /// Failed calls by error code.
    errors_by_code: BTreeMap<String, u64>,
    /// Failed calls by error category.
    errors_by_category: BTreeMap<String, u64>,
    /// Per method (`test-connection`, `handle-webhook`, `_unknown` for
    /// methods the connector lacks).
    methods: BTreeMap<String, MethodCalls>,
    /// Wall time of calls as the API saw them.
    duration_ms: Latency,
    /// Sum of call durations (compute time, for cost tracking).
    total_duration_ms: f64,
}

/// Calls of one method.
#[derive(ToSchema)]
pub struct MethodCalls {
    /// Calls.
    count: u64,
    /// Of which failed.
    failed: u64,
}

/// Outbound attempts (`Outbound::to_json` in `usage/bucket.rs`).
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct OutboundStats {
    /// Attempts that reached the network.
    requests: u64,
    /// Every attempt by broker decision.
    decisions: BTreeMap<String, u64>,
    /// Upstream answers by status.
    statuses: BTreeMap<String, u64>,
    /// Failed attempts by category.
    errors: BTreeMap<String, u64>,
    /// Request body bytes sent.
    bytes_out: u64,
    /// Response body bytes received.
    bytes_in: u64,
    /// Time spent waiting on rate budgets.
    queued_ms: f64,
    /// Time to response headers.
    latency_ms: Latency,
    /// Per upstream.
    upstreams: Vec<UpstreamStats>,
}

/// Percentiles in milliseconds (within ~5 %; `max` is exact); `null`
/// before the first sample.
#[derive(ToSchema)]
pub struct Latency {
    /// Samples.
    count: u64,
    /// Median.
    #[schema(required = true)]
    p50: Option<f64>,
    /// 90th percentile.
    #[schema(required = true)]
    p90: Option<f64>,
    /// 99th percentile.
    #[schema(required = true)]
    p99: Option<f64>,
    /// Slowest.
    #[schema(required = true)]
    max: Option<f64>,
}

/// One upstream in an instance's stats.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct UpstreamStats {
    /// `scheme://host:port`.
    upstream: String,
    /// Attempts that reached it.
    requests: u64,
    /// Of which failed.
    errors: u64,
    /// Request body bytes sent to it.
    bytes_out: u64,
    /// Response body bytes received from it.
    bytes_in: u64,
    /// Its last status.
    #[schema(required = true)]
    last_status: Option<u16>,
}

/// Usage per connector and instance (`Usage::summary` in `usage/mod.rs`).
#[derive(ToSchema)]
pub struct UsageSummary {
    /// The window asked for.
    window: String,
    /// Now (RFC 3339).
    to: String,
    /// Per connector version, by id.
    connectors: Vec<ConnectorUsage>,
    /// Per instance, by id.
    instances: Vec<InstanceUsage>,
}

/// The figures usage reports for a connector or an instance.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct UsageFigures {
    /// Calls.
    invocations: u64,
    /// Of which failed.
    failed: u64,
    /// Sum of call durations.
    total_duration_ms: f64,
    /// Outbound attempts that reached the network.
    outbound_requests: u64,
    /// Request body bytes sent.
    bytes_out: u64,
    /// Response body bytes received.
    bytes_in: u64,
}

/// A connector version's usage.
#[derive(ToSchema)]
pub struct ConnectorUsage {
    /// `name@version`.
    connector: String,
    /// Its figures.
    #[serde(flatten)]
    figures: UsageFigures,
}

/// An instance's usage.
#[derive(ToSchema)]
pub struct InstanceUsage {
    /// The instance id.
    instance: String,
    /// Its connector (`name@version`).
    connector: String,
    /// Its figures.
    #[serde(flatten)]
    figures: UsageFigures,
}

/// A page of the audit trail (`list` in `api/audit.rs`).
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct AuditPage {
    /// Records, newest first.
    items: Vec<crate::audit::AuditRecord>,
    /// Pass as `cursor` for the next page; `null` at the end.
    #[schema(required = true)]
    next_cursor: Option<String>,
}

/// A started OAuth connect flow (`start` in `api/oauth.rs`).
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct OAuthStarted {
    /// Where to send the user.
    authorization_url: String,
    /// The single-use state bound to the instance.
    state: String,
    /// How long the state stays valid.
    expires_in_secs: u64,
}

/// A completed OAuth connect flow (`callback` in `api/oauth.rs`).
#[derive(ToSchema)]
pub struct OAuthConnected {
    /// The instance id.
    instance: String,
    /// Its status now: `ACTIVE`.
    status: String,
}

/// A webhook delivery the host took (`ingress` in `api/webhooks.rs`).
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct WebhookAck {
    /// `ACCEPTED`, or `DUPLICATE` for a delivery id seen before (nothing
    /// was done).
    #[schema(inline)]
    status: WebhookStatus,
    /// `ACCEPTED`: ids of the events stored.
    #[schema(required = false)]
    events: Vec<String>,
    /// `DUPLICATE`: the delivery id.
    #[schema(required = false)]
    delivery_id: Option<String>,
}

/// The `status` of a webhook answer.
#[derive(ToSchema)]
#[schema(rename_all = "UPPERCASE")]
enum WebhookStatus {
    /// Stored.
    Accepted,
    /// Seen before.
    Duplicate,
}

/// A component's `.wasm` bytes (use as `inline(WasmBytes)`).
pub struct WasmBytes;

impl utoipa::PartialSchema for WasmBytes {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .content_media_type("application/wasm")
            .description(Some("A component's `.wasm` bytes."))
            .into()
    }
}

impl ToSchema for WasmBytes {}

/// Bytes as a sender sends them (use as `inline(RawBytes)`).
pub struct RawBytes;

impl utoipa::PartialSchema for RawBytes {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some("Bytes as the sender sends them."))
            .into()
    }
}

impl ToSchema for RawBytes {}

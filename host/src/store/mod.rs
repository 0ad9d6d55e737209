//! Persistent state behind a small trait of our own ([`Store`]), so a shared
//! database can replace the embedded sled store when one host is not enough.
//!
//! Records are plain serde types ([`ConnectorRecord`], [`InstanceRecord`],
//! [`TokenRecord`], [`AuditRecord`]); component bytes and compiled
//! artifacts are blobs keyed by the component's sha256. Audit records are
//! keyed by time ([`AuditKey`]) and append-only. Writes that belong
//! together are atomic: a connector's record is stored only once its bytes
//! and artifact are, and an instance cannot be created for a connector that
//! is being deleted.

mod files;
mod sled_store;

use serde::{Deserialize, Serialize};

use crate::audit::{AuditKey, AuditRecord};
use crate::egress::budget::RateSpec;

pub use sled_store::SledStore;
/// Store helpers for other modules' unit tests.
#[cfg(test)]
pub(crate) use sled_store::tests as testing;

/// Errors at the storage edge.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The underlying database failed (I/O, corruption).
    #[error("storage failure: {0}")]
    Backend(String),
    /// A stored record could not be decoded.
    #[error("corrupt record in `{tree}`: {message}")]
    Corrupt {
        /// Which tree.
        tree: &'static str,
        /// Decoder message.
        message: String,
    },
    /// The write conflicts with existing state (message says how).
    #[error("{0}")]
    Conflict(String),
    /// The record does not exist.
    #[error("{0} not found")]
    NotFound(String),
}

/// Result alias for store operations.
pub type StoreResult<T> = Result<T, StoreError>;

/// A stored connector version (the bytes and artifact live beside it).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectorRecord {
    /// `name@version`.
    pub id: String,
    /// Connector name.
    pub name: String,
    /// Connector version.
    pub version: String,
    /// Hex sha256 of the component bytes.
    pub digest: String,
    /// Size of the component in bytes.
    pub size: u64,
    /// The manifest as returned by `describe`, in API form.
    pub manifest: crate::manifest::Manifest,
    /// RFC 3339 upload time.
    pub created_at: String,
    /// The operator's override of the manifest's `rateLimit` (the shared
    /// upstream budget's rate), if set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateSpec>,
}

impl JobState {
    /// Whether the worker still has to run it.
    pub fn unfinished(self) -> bool {
        matches!(self, Self::Pending | Self::Running)
    }
}

impl ConnectorRecord {
    /// The rate of the shared (upstream, credential) budget: the operator's
    /// override, else the manifest's default, else none.
    pub fn effective_rate_limit(&self) -> Option<RateSpec> {
        self.rate_limit.or(self.manifest.rate_limit)
    }
}

/// Per-instance overrides of the host's resource envelope (each capped by the
/// host maximum).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InstanceLimits {
    /// Invocation deadline in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Guest memory cap in MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mib: Option<u64>,
    /// The instance's own rate budget (on top of the shared upstream one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateSpec>,
    /// Host patterns narrowing what the manifest declares: a request must
    /// match both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_hosts: Option<Vec<String>>,
}

/// One sealed credential field.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SealedField {
    /// `pbv1.<key id>.<nonce‖ciphertext>` (see [`crate::vault`]).
    pub sealed: String,
    /// RFC 3339 time the value was set.
    pub updated_at: String,
}

/// An instance's credentials, sealed field by field.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CredentialsRecord {
    /// Sealed values by field name.
    pub fields: std::collections::BTreeMap<String, SealedField>,
    /// When the operator said they expire (RFC 3339), if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

/// A pending OAuth connect flow, keyed by its `state`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OAuthState {
    /// The instance the flow connects.
    pub instance: String,
    /// The PKCE verifier, sealed (record = instance, field = `pkce`).
    pub verifier: Option<String>,
    /// Redirect URI sent with the authorization request.
    pub redirect_uri: String,
    /// Unix seconds after which the state is refused.
    pub expires_at: u64,
}

/// A normalized event a connector produced from a webhook delivery.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventRecord {
    /// Host id, time-ordered: `evt_` + 16 hex digits of microseconds + 8
    /// random hex digits.
    pub id: String,
    /// The instance that received the delivery.
    pub instance: String,
    /// Its connector (`name@version`).
    pub connector: String,
    /// Event kind, e.g. `ticket.created`.
    pub kind: String,
    /// The connector's id of the event (upstream object id).
    pub source_id: String,
    /// The normalized payload.
    #[schema(value_type = Value)]
    pub payload: serde_json::Value,
    /// Delivery id (header or payload), if the platform sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_id: Option<String>,
    /// RFC 3339 reception time.
    pub received_at: String,
}

/// An operator's rule: when an event matches, run actions.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RuleRecord {
    /// `rule_` + 32 hex.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Whether the rule runs.
    pub enabled: bool,
    /// What it matches.
    pub trigger: crate::rules::Trigger,
    /// What it does, in order.
    pub actions: Vec<crate::rules::Action>,
    /// RFC 3339 creation time.
    pub created_at: String,
}

/// State of an action job.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for its next attempt.
    Pending,
    /// An attempt is running (reset to pending at start-up).
    Running,
    /// Done.
    Succeeded,
    /// Gave up; replay with `POST /v1/jobs/{id}/replay`.
    Dead,
}

/// One action to run for one matched event (the outbox entry).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobRecord {
    /// `job_` + the event id's time part + random, so ids sort by time.
    pub id: String,
    /// The event that caused it.
    pub event: String,
    /// The rule and the action's index in it.
    pub rule: String,
    /// Index of the action in the rule.
    pub action_index: usize,
    /// Target instance and method.
    pub instance: String,
    /// Method name.
    pub method: String,
    /// Parameters, rendered from the rule's templates when enqueued.
    #[schema(value_type = Value)]
    pub parameters: serde_json::Value,
    /// `event:rule:index`, passed as the invocation's idempotency key.
    pub idempotency_key: String,
    /// Where it is.
    pub state: JobState,
    /// Attempts made.
    pub attempts: u32,
    /// Unix milliseconds of the next attempt.
    pub next_attempt_at: u64,
    /// The last failure (code and message).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object)]
    pub last_error: Option<serde_json::Value>,
    /// The invocation's result, once succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Value)]
    pub result: Option<serde_json::Value>,
    /// RFC 3339 creation time.
    pub created_at: String,
    /// RFC 3339 time of the last change.
    pub updated_at: String,
}

/// A stored invocation result under an idempotency key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct IdempotentResult {
    /// sha256 of method + canonical parameters.
    pub request_hash: String,
    /// The success answer's `data`.
    pub data: serde_json::Value,
    /// The original invocation id.
    pub invocation_id: String,
    /// Unix seconds when stored.
    pub stored_at: u64,
}

/// Everything one accepted webhook delivery writes, atomically.
pub struct DeliveryWrite<'a> {
    /// `instance\0delivery id`, if the delivery has an id.
    pub dedup_key: Option<String>,
    /// Events the connector produced.
    pub events: &'a [EventRecord],
    /// Jobs of the rules they matched.
    pub jobs: &'a [JobRecord],
}

/// Proof of the master key a store was sealed with: a known value sealed
/// under it, checked at start-up.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct VaultCheck {
    /// Id of the key everything is sealed with.
    pub key_id: String,
    /// A known value sealed under that key.
    pub sealed: String,
}

/// A configured account of a connector.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstanceRecord {
    /// Opaque id, `inst_` + 26 characters.
    pub id: String,
    /// Operator-chosen display name.
    pub name: String,
    /// Connector id (`name@version`).
    pub connector: String,
    /// Non-secret configuration, valid against the connector's config schema.
    #[schema(value_type = Object)]
    pub config: serde_json::Value,
    /// Resource overrides.
    #[serde(default)]
    pub limits: InstanceLimits,
    /// `PENDING_AUTHENTICATION` (credentials missing), `ACTIVE`, or
    /// `ERROR` (the last connection test failed).
    pub status: String,
    /// Why the status is `ERROR` (or pending), for operators.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
    /// RFC 3339 creation time.
    pub created_at: String,
}

/// An API token; only the hash of the token is stored.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenRecord {
    /// Short public id, safe to log.
    pub id: String,
    /// What the token may do: `admin` (everything) or `invoke` (call and
    /// read the listed instances only).
    pub scope: String,
    /// Operator's label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// For `invoke` tokens: the instances they may use.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub instances: Vec<String>,
    /// RFC 3339 creation time.
    pub created_at: String,
    /// RFC 3339 time the token was last accepted, to the minute (the host
    /// writes it at most once a minute per token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<String>,
}

/// The storage operations the host needs. Implementations must make each
/// method atomic.
pub trait Store: Send + Sync + 'static {
    /// Stores a connector with its bytes and compiled artifact, atomically.
    /// Fails with [`StoreError::Conflict`] if the id exists with another digest.
    /// Returns `false` (and changes nothing) if the identical connector exists.
    fn put_connector(
        &self,
        record: &ConnectorRecord,
        bytes: &[u8],
        artifact: &[u8],
    ) -> StoreResult<bool>;
    /// Looks a connector up by `name@version`.
    fn connector(&self, id: &str) -> StoreResult<Option<ConnectorRecord>>;
    /// All connectors, ordered by id.
    fn connectors(&self) -> StoreResult<Vec<ConnectorRecord>>;
    /// Deletes a connector and its blobs; refuses while instances use it.
    fn delete_connector(&self, id: &str) -> StoreResult<()>;
    /// The component bytes of a digest.
    fn component_bytes(&self, digest: &str) -> StoreResult<Option<Vec<u8>>>;
    /// The compiled artifact of a digest.
    fn artifact(&self, digest: &str) -> StoreResult<Option<Vec<u8>>>;
    /// Replaces the compiled artifact of a digest (after a recompile).
    fn put_artifact(&self, digest: &str, artifact: &[u8]) -> StoreResult<()>;

    /// Creates an instance; fails if its connector does not exist.
    fn create_instance(
        &self,
        record: &InstanceRecord,
        credentials: Option<&CredentialsRecord>,
    ) -> StoreResult<()>;
    /// Looks an instance up.
    fn instance(&self, id: &str) -> StoreResult<Option<InstanceRecord>>;
    /// An instance's sealed credentials.
    fn credentials(&self, instance: &str) -> StoreResult<Option<CredentialsRecord>>;
    /// Replaces an instance's credentials and record together (the record
    /// usually changes status).
    fn put_credentials(
        &self,
        record: &InstanceRecord,
        credentials: &CredentialsRecord,
    ) -> StoreResult<()>;
    /// Stores a pending OAuth flow.
    fn put_oauth_state(&self, state: &str, record: &OAuthState) -> StoreResult<()>;
    /// Removes and returns a pending OAuth flow (single use).
    fn take_oauth_state(&self, state: &str) -> StoreResult<Option<OAuthState>>;
    /// Stores a delivery's events and jobs (and its dedup marker) in one
    /// transaction; `false` (nothing written) if the delivery id was seen.
    fn record_delivery(&self, delivery: &DeliveryWrite<'_>) -> StoreResult<bool>;
    /// Whether a delivery dedup key was recorded.
    fn delivery_seen(&self, key: &str) -> StoreResult<bool>;
    /// Stored events, oldest first.
    fn events(&self) -> StoreResult<Vec<EventRecord>>;
    /// One event.
    fn event(&self, id: &str) -> StoreResult<Option<EventRecord>>;
    /// Creates or replaces a rule.
    fn put_rule(&self, rule: &RuleRecord) -> StoreResult<()>;
    /// One rule.
    fn rule(&self, id: &str) -> StoreResult<Option<RuleRecord>>;
    /// All rules.
    fn rules(&self) -> StoreResult<Vec<RuleRecord>>;
    /// Deletes a rule.
    fn delete_rule(&self, id: &str) -> StoreResult<()>;
    /// All jobs, oldest first.
    fn jobs(&self) -> StoreResult<Vec<JobRecord>>;
    /// Jobs still to run (`pending` or `running`), oldest first, read
    /// through an index so the worker never scans finished jobs.
    fn unfinished_jobs(&self) -> StoreResult<Vec<JobRecord>>;
    /// One job.
    fn job(&self, id: &str) -> StoreResult<Option<JobRecord>>;
    /// Replaces a job.
    fn put_job(&self, job: &JobRecord) -> StoreResult<()>;
    /// A stored result under an idempotency key (`instance\0key`).
    fn idempotent_result(&self, key: &str) -> StoreResult<Option<IdempotentResult>>;
    /// Stores a result under an idempotency key.
    fn put_idempotent_result(&self, key: &str, result: &IdempotentResult) -> StoreResult<()>;
    /// The master-key check value, if anything was ever sealed.
    fn vault_check(&self) -> StoreResult<Option<VaultCheck>>;
    /// Stores the master-key check value.
    fn put_vault_check(&self, check: &VaultCheck) -> StoreResult<()>;
    /// Re-seals every instance's credentials with `reseal` and stores the
    /// new check value, all in one transaction (key rotation). Returns the
    /// number of fields re-sealed.
    fn reseal_all(
        &self,
        reseal: &dyn Fn(&str, &CredentialsRecord) -> Result<CredentialsRecord, String>,
        check: &VaultCheck,
    ) -> StoreResult<usize>;
    /// Replaces an existing instance record (same connector).
    fn update_instance(&self, record: &InstanceRecord) -> StoreResult<()>;
    /// Sets or clears the operator's rate-limit override of a connector.
    fn set_connector_rate_limit(
        &self,
        id: &str,
        rate_limit: Option<RateSpec>,
    ) -> StoreResult<ConnectorRecord>;
    /// All instances, ordered by id.
    fn instances(&self) -> StoreResult<Vec<InstanceRecord>>;
    /// Deletes an instance.
    fn delete_instance(&self, id: &str) -> StoreResult<()>;

    /// Stores an API token by the hash of its secret.
    fn put_token(&self, hash: &[u8; 32], record: &TokenRecord) -> StoreResult<()>;
    /// Finds a token by the hash of its secret.
    fn token(&self, hash: &[u8; 32]) -> StoreResult<Option<TokenRecord>>;
    /// Whether any token exists (first start creates the admin token).
    fn has_tokens(&self) -> StoreResult<bool>;
    /// All token records (never the tokens themselves).
    fn tokens(&self) -> StoreResult<Vec<TokenRecord>>;
    /// Deletes the token with public id `id` (revocation, immediate).
    fn delete_token(&self, id: &str) -> StoreResult<()>;
    /// Replaces the token with public id `id` by `record` stored under
    /// `hash`, atomically (rotation: the old token stops working when the
    /// new one starts). Returns the hash the old token was stored under.
    fn replace_token(
        &self,
        id: &str,
        hash: &[u8; 32],
        record: &TokenRecord,
    ) -> StoreResult<[u8; 32]>;
    /// Sets a token's `last_used_at` if the token still exists (a revoked
    /// token is never brought back). Not flushed: the time is a hint.
    fn touch_token(&self, hash: &[u8; 32], at: &str) -> StoreResult<()>;

    /// Appends audit records under their keys, in one transaction, durably.
    /// There is no way to change a stored record.
    fn append_audit(&self, records: &[AuditRecord]) -> StoreResult<()>;
    /// Visits the audit records with keys in `[from, below)` (unbounded
    /// where `None`), newest first, until `visit` returns `false`.
    fn scan_audit(
        &self,
        from: Option<AuditKey>,
        below: Option<AuditKey>,
        visit: &mut dyn FnMut(AuditRecord) -> bool,
    ) -> StoreResult<()>;
    /// Deletes the audit records with keys below `before` (the retention
    /// sweep, the only deletion); returns how many. Oldest first, in
    /// batches: a crash mid-sweep leaves a shorter trail with no gap, and
    /// the next sweep finishes the job.
    fn sweep_audit(&self, before: AuditKey) -> StoreResult<u64>;
    /// The highest audit sequence number ever stored, if any (keys stay
    /// unique across restarts even if the clock stepped back).
    fn audit_seq(&self) -> StoreResult<Option<u64>>;

    /// A counter that moves on every write to connectors (and their rate
    /// limits), instances, credentials and tokens, in this process. What is
    /// derived from those records may be kept in memory and tagged with the
    /// generation it was read at; once the counter has moved it is stale.
    fn generation(&self) -> u64;

    /// Flushes buffered writes to disk.
    fn flush(&self) -> StoreResult<()>;
}

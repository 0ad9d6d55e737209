//! Persistent state behind a small trait of our own ([`Store`]), so a shared
//! database can replace the embedded sled store when one host is not enough.
//!
//! Records are plain serde types ([`ConnectorRecord`], [`InstanceRecord`],
//! [`TokenRecord`]); component bytes and compiled artifacts are blobs keyed by
//! the component's sha256. Writes that belong together are atomic: storing a
//! connector writes its record, bytes and artifact in one transaction, and an
//! instance cannot be created for a connector that is being deleted.

mod sled_store;

use serde::{Deserialize, Serialize};

use crate::egress::budget::RateSpec;

pub use sled_store::SledStore;

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
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
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

impl ConnectorRecord {
    /// The rate of the shared (upstream, credential) budget: the operator's
    /// override, else the manifest's default, else none.
    pub fn effective_rate_limit(&self) -> Option<RateSpec> {
        self.rate_limit.or(self.manifest.rate_limit)
    }
}

/// Per-instance overrides of the host's resource envelope (each capped by the
/// host maximum).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
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
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct InstanceRecord {
    /// Opaque id, `inst_` + 26 characters.
    pub id: String,
    /// Operator-chosen display name.
    pub name: String,
    /// Connector id (`name@version`).
    pub connector: String,
    /// Non-secret configuration, valid against the connector's config schema.
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
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TokenRecord {
    /// Short public id, safe to log.
    pub id: String,
    /// What the token may do, e.g. `admin`.
    pub scope: String,
    /// RFC 3339 creation time.
    pub created_at: String,
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

    /// Flushes buffered writes to disk.
    fn flush(&self) -> StoreResult<()>;
}

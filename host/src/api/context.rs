//! Per-instance call contexts, kept in memory between calls.
//!
//! Every call of an instance needs its record, its connector's record (with
//! the whole manifest), the allowlist resolved against the config and, for
//! instances with static credentials, the opened credentials, the auth plan
//! built from them and their fingerprint. Reading and decoding all that
//! from the store on every call was about a fifth of the host's CPU under
//! load (perf, `docs/benchmarks.md`), yet it changes only when an operator
//! writes a connector, an instance, credentials or a rate limit. So a
//! context is built once and reused until [`Store::generation`] moves.
//!
//! Only what succeeds is prepared: an instance whose config, credentials or
//! auth plan fails (or that waits for credentials) keeps `prepared: None`,
//! and each call takes the slow path that reports the exact error. OAuth
//! instances are never prepared either: their access token is refreshed on
//! time, not on writes, so each call still goes through `ensure_fresh`.
//!
//! The opened credentials stay in memory as long as the context. They were
//! already opened on every call; the master key that opens them lives in
//! the same process for its whole life, so keeping them adds no exposure
//! beyond that.
//!
//! [`Store::generation`]: crate::store::Store::generation

use std::sync::Arc;

use axum::http::StatusCode;
use serde_json::Value;

use super::fresh::Fresh;
use super::{ApiError, ApiResult, AppState, credentials};
use crate::egress::{Allowlist, AuthPlan};
use crate::manifest::AuthScheme;
use crate::store::{ConnectorRecord, CredentialsRecord, InstanceRecord};
use crate::vault::Credentials;

/// What every call of one instance starts from.
pub(crate) struct CallContext {
    /// The instance as stored.
    pub instance: InstanceRecord,
    /// Its connector as stored.
    pub connector: ConnectorRecord,
    /// The instance config, shared with every call (warm guest instances
    /// compare it by pointer first).
    pub config: Arc<Value>,
    /// The instance id, shared with every call.
    pub instance_id: Arc<str>,
    /// The connector id, shared with every call.
    pub connector_id: Arc<str>,
    /// The egress pieces, when they could be built ahead of the call.
    pub prepared: Option<Prepared>,
}

/// What a call's egress policy is made of, apart from per-call parts.
#[derive(Clone)]
pub(crate) struct Prepared {
    /// Hosts the instance may reach.
    pub allowlist: Arc<Allowlist>,
    /// The opened credentials.
    pub credentials: Arc<Credentials>,
    /// What the host adds to requests towards the auth hosts.
    pub auth: Option<Arc<AuthPlan>>,
    /// The shared budget's credential key (see
    /// [`super::instances::credential_identity`]).
    pub credential: Option<Arc<str>>,
}

impl Prepared {
    /// From the instance's credentials `record` (none: no credentials);
    /// fails if they do not open or the auth plan cannot be built from
    /// them (422 `CONFIG_ERROR`).
    pub fn build(
        state: &AppState,
        instance: &InstanceRecord,
        connector: &ConnectorRecord,
        allowlist: Allowlist,
        record: Option<&CredentialsRecord>,
    ) -> ApiResult<Self> {
        let creds = match record {
            Some(record) => credentials::open(&state.vault, &instance.id, record)?,
            None => Credentials::default(),
        };
        let auth =
            AuthPlan::build(&connector.manifest.auth, &instance.config, &creds).map_err(|e| {
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "CONFIG_ERROR",
                    e.to_string(),
                )
            })?;
        let credential =
            super::instances::credential_identity(state, connector, &instance.id, &creds);
        Ok(Self {
            allowlist: Arc::new(allowlist),
            credentials: Arc::new(creds),
            auth: auth.map(Arc::new),
            credential: credential.map(Arc::from),
        })
    }
}

impl CallContext {
    fn build(state: &AppState, instance: InstanceRecord, connector: ConnectorRecord) -> Self {
        let prepared = prepare(state, &instance, &connector);
        Self {
            config: Arc::new(instance.config.clone()),
            instance_id: Arc::from(instance.id.as_str()),
            connector_id: Arc::from(connector.id.as_str()),
            instance,
            connector,
            prepared,
        }
    }
}

/// The egress pieces, or `None` when the call must build them itself
/// (OAuth, or any step failing: the call then reports the failure exactly
/// as without a context).
fn prepare(
    state: &AppState,
    instance: &InstanceRecord,
    connector: &ConnectorRecord,
) -> Option<Prepared> {
    if matches!(connector.manifest.auth.scheme, AuthScheme::Oauth2(_)) {
        return None;
    }
    let allowlist = super::instances::callable(instance, connector).ok()?;
    let record = state.store.credentials(&instance.id).ok()?;
    Prepared::build(state, instance, connector, allowlist, record.as_ref()).ok()
}

/// The contexts of the instances called since the store last changed.
#[derive(Default)]
pub(crate) struct Contexts {
    by_instance: Fresh<String, Arc<CallContext>>,
}

impl Contexts {
    /// The context of instance `id`: from memory if nothing was written
    /// since it was read, else read from the store (404 `NOT_FOUND` for an
    /// unknown instance).
    pub fn get(&self, state: &AppState, id: &str) -> ApiResult<Arc<CallContext>> {
        self.by_instance
            .get(&*state.store, id, || {
                let Some(instance) = state.store.instance(id)? else {
                    return Ok::<_, ApiError>(None);
                };
                let connector = super::instances::load_connector(state, &instance)?;
                Ok(Some(Arc::new(CallContext::build(
                    state, instance, connector,
                ))))
            })?
            .ok_or_else(|| super::instances::instance_not_found(id))
    }
}

//! Running connector components: one engine, one linker, one pre-linked
//! `ConnectorPre` per connector version, and a fresh store + instance per
//! call with a memory cap and a deadline.
//!
//! - [`engine`]: the process-wide engine and epoch ticker.
//! - [`loader`]: bytes → validated, compiled component; manifest conversion.
//! - [`state`]: what one guest store holds; the `host` import.
//! - this module: the component cache and [`Runtime::call`].

mod bindings;
mod engine;
pub mod loader;
mod state;
mod warm;

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use sha2::{Digest, Sha256};
use tracing::Instrument as _;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Engine, Store, UpdateDeadline};

use self::bindings::{Connector, ConnectorPre, wit};
pub use self::loader::LoadError;
pub use self::state::Invocation;
use self::state::{GuestState, MemoryLimitExceeded};
use self::warm::{Warm, WarmKey, WarmPool};
use crate::config::Limits;
use crate::egress::{Broker, Caller, EgressHooks, EgressPolicy, OutboundOutcome, OutboundRecord};
use crate::manifest::Manifest;
use crate::store::{ConnectorRecord, InstanceLimits};

/// Raised (as a trap) when the wall-clock deadline passes while guest code runs.
#[derive(Debug, thiserror::Error)]
#[error("deadline exceeded")]
struct DeadlineExceeded;

/// An error the connector itself returned (the WIT `error` variant).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuestError {
    /// Bad parameters.
    InvalidInput(String),
    /// Credentials missing or rejected.
    Unauthorized(String),
    /// Upstream object not found.
    NotFound(String),
    /// Upstream rate limit.
    RateLimited {
        /// Message.
        message: String,
        /// Seconds to wait, if known.
        retry_after_secs: Option<u32>,
    },
    /// Unexpected upstream status.
    Upstream {
        /// HTTP status.
        status: u16,
        /// Message.
        message: String,
    },
    /// Transient failure.
    Temporary(String),
    /// Permanent failure.
    Permanent(String),
    /// Instance configuration problem.
    Config(String),
}

impl From<wit::Error> for GuestError {
    fn from(e: wit::Error) -> Self {
        match e {
            wit::Error::InvalidInput(m) => Self::InvalidInput(m),
            wit::Error::Unauthorized(m) => Self::Unauthorized(m),
            wit::Error::NotFound(m) => Self::NotFound(m),
            wit::Error::RateLimited(r) => Self::RateLimited {
                message: r.message,
                retry_after_secs: r.retry_after_secs,
            },
            wit::Error::Upstream(u) => Self::Upstream {
                status: u.status,
                message: u.message,
            },
            wit::Error::Temporary(m) => Self::Temporary(m),
            wit::Error::Permanent(m) => Self::Permanent(m),
            wit::Error::Config(m) => Self::Config(m),
        }
    }
}

/// Why a call did not produce a result.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    /// The deadline passed (guest busy or waiting on an upstream).
    #[error("the invocation exceeded its deadline of {0:?}")]
    Timeout(Duration),
    /// The guest asked for more memory than its cap.
    #[error("{0}")]
    MemoryLimit(String),
    /// The guest trapped (panic, abort, unreachable, stack overflow).
    #[error("{0}")]
    Trapped(String),
    /// The guest returned an error.
    #[error("connector error: {0:?}")]
    Guest(GuestError),
    /// The guest failed after the egress policy refused one of its requests.
    #[error("outbound request denied: {target}: {reason}")]
    HostDenied {
        /// `METHOD scheme://authority` of the refused request.
        target: String,
        /// Why the policy refused it.
        reason: String,
    },
    /// The guest failed after one of its requests hit a per-invocation limit.
    #[error("outbound limit exceeded: {target}: {reason}")]
    OutboundLimit {
        /// `METHOD scheme://authority`.
        target: String,
        /// Which limit.
        reason: String,
    },
    /// The guest failed after an upstream did not answer in time.
    #[error("upstream timed out: {target}: {reason}")]
    UpstreamTimeout {
        /// `METHOD scheme://authority`.
        target: String,
        /// Which timeout.
        reason: String,
    },
    /// The guest failed after an upstream could not be reached.
    #[error("upstream unreachable: {target}: {reason}")]
    UpstreamUnreachable {
        /// `METHOD scheme://authority`.
        target: String,
        /// Transport failure.
        reason: String,
    },
    /// The guest failed after an upstream's TLS certificate was refused.
    #[error("upstream certificate refused: {target}: {reason}")]
    UpstreamCertificate {
        /// `METHOD scheme://authority`.
        target: String,
        /// What was wrong with the certificate.
        reason: String,
    },
    /// The guest failed after a rate budget could not admit one of its
    /// requests before the deadline.
    #[error("rate limit exceeded: {target}: {reason}")]
    RateLimited {
        /// `METHOD scheme://host:port`.
        target: String,
        /// Which budget.
        reason: String,
        /// When a request may be admitted again.
        retry_after: Duration,
    },
    /// The guest failed after the circuit breaker refused one of its
    /// requests.
    #[error("upstream unavailable: {target}: {reason}")]
    UpstreamUnavailable {
        /// `METHOD scheme://host:port`.
        target: String,
        /// Why the circuit is open.
        reason: String,
        /// When the circuit lets a probe through.
        retry_after: Duration,
    },
    /// Every guest instance slot is in use; retry shortly.
    #[error("{0}")]
    Capacity(String),
    /// The host could not run the call.
    #[error("internal error: {0}")]
    Internal(String),
}

/// The resource envelope of one call.
#[derive(Debug, Clone, Copy)]
pub struct Envelope {
    /// Wall-clock deadline.
    pub timeout: Duration,
    /// Cap on the guest's total linear memory.
    pub memory_bytes: u64,
}

impl Envelope {
    /// The host limits narrowed by an instance's overrides (never widened).
    pub fn for_instance(limits: &Limits, overrides: &InstanceLimits) -> Self {
        let timeout = overrides
            .timeout_ms
            .map(Duration::from_millis)
            .map_or(limits.invoke_timeout, |t| t.min(limits.invoke_timeout));
        let memory_bytes = overrides
            .memory_mib
            .map(|m| m.saturating_mul(1 << 20))
            .map_or(limits.max_memory_bytes, |m| m.min(limits.max_memory_bytes));
        Self {
            timeout,
            memory_bytes,
        }
    }
}

/// Which export to call.
#[derive(Debug)]
pub enum Call<'a> {
    /// `test-connection`.
    TestConnection,
    /// `handle-webhook(request)`; the output is [`WebhookOutput`] as JSON.
    Webhook(WebhookInput),
    /// `invoke(method, params)`.
    Invoke {
        /// Method name (borrowed from the request on the API's path).
        method: Cow<'a, str>,
        /// Parameters as JSON text.
        params: String,
    },
}

impl<'a> Call<'a> {
    /// The guest function's name for logs and spans (the method, for
    /// `invoke`): a copy of a borrowed method name is a pointer copy.
    fn name(&self) -> Cow<'a, str> {
        match self {
            Call::TestConnection => Cow::Borrowed("test-connection"),
            Call::Webhook(_) => Cow::Borrowed("handle-webhook"),
            Call::Invoke { method, .. } => method.clone(),
        }
    }
}

/// Who an invocation's outbound requests are from.
fn caller(invocation: &Invocation) -> Caller {
    Caller {
        connector: invocation.connector.clone(),
        instance: invocation.instance.clone(),
        invocation: invocation.id.clone(),
    }
}

/// What a call produced.
#[derive(Debug)]
pub enum Output {
    /// `invoke`'s JSON text or `test-connection`'s summary.
    Text(String),
    /// `handle-webhook`'s answer and events.
    Webhook(WebhookOutput),
}

impl Output {
    /// The text of an `invoke` or `test-connection` call.
    pub fn into_text(self) -> Result<String, InvokeError> {
        match self {
            Self::Text(t) => Ok(t),
            Self::Webhook(_) => Err(InvokeError::Internal(
                "a webhook call's output was read as text".into(),
            )),
        }
    }

    /// The outcome of a `handle-webhook` call.
    pub fn into_webhook(self) -> Result<WebhookOutput, InvokeError> {
        match self {
            Self::Webhook(w) => Ok(w),
            Self::Text(_) => Err(InvokeError::Internal(
                "a text output was read as a webhook outcome".into(),
            )),
        }
    }
}

/// The result of one call and the outbound attempts it made.
pub struct Called {
    /// The guest's output, or why there is none.
    pub result: Result<Output, InvokeError>,
    /// Every outbound attempt, in order.
    pub outbound: Vec<OutboundRecord>,
}

/// A verified webhook delivery for the guest.
#[derive(Debug, Clone)]
pub struct WebhookInput {
    /// HTTP method.
    pub method: String,
    /// Raw query string.
    pub query: String,
    /// Headers (names lowercase).
    pub headers: Vec<(String, String)>,
    /// Raw body.
    pub body: Vec<u8>,
}

/// The answer to a webhook sender: status, headers, body.
pub type WebhookReply = (u16, Vec<(String, String)>, Vec<u8>);

/// What the guest made of a webhook delivery.
#[derive(Debug, Clone)]
pub struct WebhookOutput {
    /// The answer to send back: status, headers, body.
    pub response: Option<WebhookReply>,
    /// Normalized events: kind, id, JSON payload text.
    pub events: Vec<(String, String, String)>,
}

/// A compiled, pre-linked connector version, ready to instantiate.
pub struct Loaded {
    pre: ConnectorPre<GuestState>,
    /// Idle instances of this version, kept for reuse.
    warm: WarmPool,
}

/// The outcome of compiling an upload.
pub struct Prepared {
    /// Validated manifest.
    pub manifest: Manifest,
    /// Hex sha256 of the bytes.
    pub digest: String,
    /// Serialized artifact (with its checksum prefix) to store.
    pub artifact: Vec<u8>,
    /// The ready component.
    pub loaded: Arc<Loaded>,
}

/// How components were obtained since start, for `/healthz` and tests.
#[derive(Debug, Default, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeStats {
    /// Components compiled from bytes (uploads and fallbacks).
    #[schema(value_type = u64)]
    pub compiled: AtomicU64,
    /// Components deserialized from stored artifacts.
    #[schema(value_type = u64)]
    pub deserialized: AtomicU64,
    /// Stored artifacts that were unusable and replaced by a recompile.
    #[schema(value_type = u64)]
    pub artifact_rejected: AtomicU64,
    /// Guest instances created (one per call that found no warm one).
    #[schema(value_type = u64)]
    pub instantiated: AtomicU64,
    /// Calls that ran in a warm instance of the same instance and config.
    #[schema(value_type = u64)]
    pub reused: AtomicU64,
}

/// The component runtime.
pub struct Runtime {
    engine: Engine,
    broker: Arc<Broker>,
    linker: Linker<GuestState>,
    limits: Limits,
    cache: Mutex<HashMap<String, Arc<Loaded>>>,
    stats: RuntimeStats,
    /// Idle warm instances across all connectors (bounded by
    /// `Limits::warm_instances`).
    warm_idle: AtomicUsize,
    _ticker: engine::EpochTicker,
}

/// Length of the sha256 prefix in a stored artifact.
const CHECKSUM_LEN: usize = 32;

impl Runtime {
    /// Builds the engine, linker and epoch ticker; guests' outbound HTTP
    /// goes through `broker`.
    pub fn new(limits: Limits, broker: Arc<Broker>) -> anyhow::Result<Self> {
        let engine = engine::build(&limits)?;
        let mut linker = Linker::new(&engine);
        // All of WASI 0.2 is linked so components from any toolchain
        // instantiate, but the per-store WasiCtx grants nothing.
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        bindings::host_api::add_to_linker::<_, HasSelf<GuestState>>(&mut linker, |s| s)?;
        let ticker =
            engine::EpochTicker::start(engine.clone()).context("starting the epoch ticker")?;
        Ok(Self {
            engine,
            broker,
            linker,
            limits,
            cache: Mutex::default(),
            stats: RuntimeStats::default(),
            warm_idle: AtomicUsize::new(0),
            _ticker: ticker,
        })
    }

    /// The outbound broker.
    pub fn broker(&self) -> &Broker {
        &self.broker
    }

    /// The host limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Counters.
    pub fn stats(&self) -> &RuntimeStats {
        &self.stats
    }

    /// Validates, compiles and describes uploaded bytes.
    pub async fn prepare(self: &Arc<Self>, bytes: Arc<Vec<u8>>) -> Result<Prepared, LoadError> {
        let digest = hex::encode(Sha256::digest(bytes.as_slice()));
        let this = self.clone();
        let (loaded, artifact) = tokio::task::spawn_blocking(move || {
            let component = loader::compile(&this.engine, &bytes)?;
            this.stats.compiled.fetch_add(1, Ordering::Relaxed);
            loader::check_world(&this.engine, &component)?;
            let loaded = this.link(&component)?;
            let artifact =
                seal_artifact(&component).map_err(|e| LoadError::Internal(format!("{e:#}")))?;
            Ok::<_, LoadError>((loaded, artifact))
        })
        .await
        .map_err(|e| LoadError::Internal(e.to_string()))??;

        let manifest = self.describe(&loaded).await?;
        let manifest = loader::convert_manifest(manifest)?;
        let loaded = Arc::new(loaded);
        Ok(Prepared {
            manifest,
            digest,
            artifact,
            loaded,
        })
    }

    /// Remembers a prepared component under its digest.
    pub fn remember(&self, digest: &str, loaded: Arc<Loaded>) {
        self.lock_cache().insert(digest.to_owned(), loaded);
    }

    /// Drops a component from the cache (after delete).
    pub fn forget(&self, digest: &str) {
        self.lock_cache().remove(digest);
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Loaded>>> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The ready component for a stored connector: from memory, else from
    /// the stored artifact, else (artifact missing, tampered or from another
    /// engine version) recompiled from the stored bytes.
    pub async fn load(
        self: &Arc<Self>,
        store: Arc<dyn crate::store::Store>,
        record: &ConnectorRecord,
    ) -> Result<Arc<Loaded>, LoadError> {
        if let Some(hit) = self.lock_cache().get(&record.digest) {
            crate::metrics::component_load("memory");
            return Ok(hit.clone());
        }
        let this = self.clone();
        let record = record.clone();
        tokio::task::spawn_blocking(move || this.load_blocking(&*store, &record))
            .await
            .map_err(|e| LoadError::Internal(e.to_string()))?
    }

    fn load_blocking(
        &self,
        store: &dyn crate::store::Store,
        record: &ConnectorRecord,
    ) -> Result<Arc<Loaded>, LoadError> {
        let internal = |e: crate::store::StoreError| LoadError::Internal(e.to_string());
        let started = Instant::now();
        if let Some(artifact) = store.artifact(&record.digest).map_err(internal)? {
            match self.open_artifact(&artifact) {
                Ok(component) => {
                    let loaded = Arc::new(self.link(&component)?);
                    self.stats.deserialized.fetch_add(1, Ordering::Relaxed);
                    crate::metrics::component_load("artifact");
                    tracing::info!(connector = %record.id, elapsed = ?started.elapsed(), source = "artifact",
                        "loaded compiled artifact");
                    self.remember(&record.digest, loaded.clone());
                    return Ok(loaded);
                }
                Err(e) => {
                    self.stats.artifact_rejected.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(connector = %record.id, error = %format!("{e:#}"),
                        "stored artifact unusable; recompiling from the component bytes");
                }
            }
        }
        let bytes = store
            .component_bytes(&record.digest)
            .map_err(internal)?
            .ok_or_else(|| {
                LoadError::Internal(format!("component bytes of {} are missing", record.id))
            })?;
        if hex::encode(Sha256::digest(&bytes)) != record.digest {
            return Err(LoadError::Internal(format!(
                "stored bytes of {} do not match their digest; re-upload the connector",
                record.id
            )));
        }
        let component = loader::compile(&self.engine, &bytes)?;
        self.stats.compiled.fetch_add(1, Ordering::Relaxed);
        crate::metrics::component_load("compiled");
        let artifact =
            seal_artifact(&component).map_err(|e| LoadError::Internal(format!("{e:#}")))?;
        store
            .put_artifact(&record.digest, &artifact)
            .map_err(internal)?;
        let loaded = Arc::new(self.link(&component)?);
        tracing::info!(connector = %record.id, elapsed = ?started.elapsed(), source = "compiled", "compiled component");
        self.remember(&record.digest, loaded.clone());
        Ok(loaded)
    }

    /// Deserializes a stored artifact after checking its checksum, so a
    /// corrupted or tampered file on disk is never handed to wasmtime.
    fn open_artifact(&self, artifact: &[u8]) -> anyhow::Result<Component> {
        anyhow::ensure!(artifact.len() > CHECKSUM_LEN, "artifact is truncated");
        let (sum, body) = artifact.split_at(CHECKSUM_LEN);
        anyhow::ensure!(
            Sha256::digest(body).as_slice() == sum,
            "artifact checksum mismatch"
        );
        // SAFETY: `Component::deserialize` trusts its input to be an artifact
        // this wasmtime produced. The bytes were written by
        // `seal_artifact` in this host's own store and their checksum was
        // just verified; wasmtime itself rejects artifacts from another
        // version or engine configuration with an error.
        #[allow(unsafe_code)]
        let component = unsafe { Component::deserialize(&self.engine, body)? };
        Ok(component)
    }

    fn link(&self, component: &Component) -> Result<Loaded, LoadError> {
        let pre = self
            .linker
            .instantiate_pre(component)
            .map_err(|e| LoadError::WorldMismatch {
                message: format!("the component's imports cannot be satisfied: {e:#}"),
                missing: Vec::new(),
                unexpected: vec![format!("{e:#}")],
            })?;
        let pre = ConnectorPre::new(pre).map_err(|e| LoadError::WorldMismatch {
            message: format!("the component's exports do not match the connector world: {e:#}"),
            missing: Vec::new(),
            unexpected: vec![format!("{e:#}")],
        })?;
        Ok(Loaded {
            pre,
            warm: WarmPool::default(),
        })
    }

    async fn describe(&self, loaded: &Loaded) -> Result<wit::Manifest, LoadError> {
        let invocation = Invocation {
            connector: Arc::from("(upload)"),
            instance: None,
            config: Arc::new(serde_json::json!({})),
            id: Arc::from("describe"),
        };
        let envelope = Envelope {
            timeout: self.limits.invoke_timeout.min(Duration::from_secs(10)),
            memory_bytes: self.limits.max_memory_bytes,
        };
        let mut store = self.new_store(invocation, EgressPolicy::default(), envelope);
        let result = tokio::time::timeout(envelope.timeout, async {
            let instance = loaded.pre.instantiate_async(&mut store).await?;
            instance.call_describe(&mut store).await
        })
        .await;
        match result {
            Ok(Ok(m)) => Ok(m),
            Ok(Err(e)) => Err(LoadError::DescribeFailed(
                classify_trap(&e, &store, envelope).to_string(),
            )),
            Err(_) => Err(LoadError::DescribeFailed(
                InvokeError::Timeout(envelope.timeout).to_string(),
            )),
        }
    }

    fn new_store(
        &self,
        invocation: Invocation,
        policy: EgressPolicy,
        envelope: Envelope,
    ) -> Store<GuestState> {
        let deadline = Instant::now() + envelope.timeout;
        let hooks = EgressHooks::new(self.broker.clone(), caller(&invocation), policy, deadline);
        let state = GuestState::new(invocation, hooks, envelope.memory_bytes, deadline);
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        // Every epoch tick, check the deadline; until then yield to the
        // executor so a busy guest cannot starve other tasks on its thread.
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|ctx| {
            if Instant::now() >= ctx.data().deadline {
                Err(DeadlineExceeded.into())
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });
        store
    }

    /// Runs one call — in a warm instance of the same instance and config
    /// when one is idle (see [`warm`]), else in a fresh one: the JSON (or
    /// summary) string the guest produced, and its outbound attempts, which
    /// are also added to the instance's stats.
    pub async fn call(
        &self,
        loaded: &Loaded,
        invocation: Invocation,
        policy: EgressPolicy,
        envelope: Envelope,
        call: Call<'_>,
    ) -> Called {
        let instance = invocation.instance.clone();
        let (connector, invocation_id) = (invocation.connector.clone(), invocation.id.clone());
        let method = call.name();
        // With `RUST_LOG=plugboard=debug`, every line logged during the call
        // carries these fields. Debug, not info: the fmt layer formats a
        // span's fields when it is created, ~1.5 % of the host's CPU per
        // warm call under load (perf), and the lines a call logs at info
        // and above name the invocation themselves (the guest's lines,
        // the broker's, the outbound summary, a failure).
        let span = tracing::debug_span!("invocation", invocation = %invocation_id,
            instance = instance.as_deref().unwrap_or("-"), %connector, %method);
        let key = self.warm_key(&invocation, envelope);
        let warm = key
            .as_ref()
            .and_then(|k| loaded.warm.take(k, &self.warm_idle));
        let (mut store, ready) = match warm {
            Some(mut w) => {
                self.stats.reused.fetch_add(1, Ordering::Relaxed);
                self.reset(&mut w.store, invocation, policy, envelope);
                (w.store, Ok((w.instance, w.uses, w.born)))
            }
            None => {
                let mut store = self.new_store(invocation.clone(), policy.clone(), envelope);
                let mut ready = self.instantiate(&mut store, loaded, envelope).await;
                // Idle warm instances hold pool slots: when the pool is
                // full, give them back and try once more.
                if matches!(ready, Err(InvokeError::Capacity(_))) && self.evict_warm() > 0 {
                    store = self.new_store(invocation, policy, envelope);
                    ready = self.instantiate(&mut store, loaded, envelope).await;
                }
                (store, ready.map(|i| (i, 0, Instant::now())))
            }
        };
        let journal = store.data().hooks.journal();
        let result = match ready {
            Err(e) => Err(Failure::Invoke(e)),
            Ok((instance, uses, born)) => {
                let (result, reusable) = self
                    .run(&mut store, &instance, envelope, call)
                    .instrument(span)
                    .await;
                // Keep the instance only after a clean end with nothing
                // left open in its resource table.
                if reusable
                    && let Some(key) = key
                    && store.data().table_is_empty()
                {
                    let warm = Warm::new(store, instance, uses + 1, born);
                    loaded.warm.put(
                        key,
                        warm,
                        &self.warm_idle,
                        self.limits.warm_instances as usize,
                    );
                } else {
                    // The store holds the guest's resources, including
                    // response bodies still being metered; drop it before
                    // reading the final counts.
                    drop(store);
                }
                result
            }
        };
        let outbound =
            std::mem::take(&mut journal.lock().unwrap_or_else(|e| e.into_inner()).records);
        // One line per attempt: the egress audit trail operators can
        // filter on (`RUST_LOG=plugboard::outbound=info`). No path, query,
        // header or body: those may carry secrets.
        for r in &outbound {
            let outcome = r.effective_outcome();
            tracing::info!(target: "plugboard::outbound",
                invocation = %invocation_id, instance = ?instance.as_deref(), %connector, %method,
                http_method = %r.method, upstream = %r.upstream, attempt = r.attempt,
                decision = r.decision.as_str(),
                status = match r.outcome { OutboundOutcome::Status(s) => Some(s), _ => None },
                error = outcome.category().map(|c| c.as_str()),
                latency_ms = crate::egress::millis(r.elapsed),
                queued_ms = crate::egress::millis(r.queued),
                bytes_out = r.bytes_out,
                bytes_in = r.bytes_in.load(Ordering::Relaxed),
                "outbound request");
        }
        // (Checked here too so that a call without outbound requests, most
        // of them, does not read the clock for nothing.)
        if let Some(instance) = &instance
            && !outbound.is_empty()
        {
            self.broker.usage().record_outbound(
                instance,
                &connector,
                &outbound,
                std::time::SystemTime::now(),
            );
        }
        crate::metrics::outbound(&outbound);
        let result = match result {
            Err(Failure::Guest(guest_error)) => Err(explain(guest_error, &outbound)),
            Err(Failure::Invoke(e)) => Err(e),
            Ok(value) => Ok(value),
        };
        Called { result, outbound }
    }

    /// Who may reuse this call's instance afterwards: calls of an instance
    /// (not `describe`), when warm instances are enabled.
    fn warm_key(&self, invocation: &Invocation, envelope: Envelope) -> Option<WarmKey> {
        if self.limits.warm_instances == 0 {
            return None;
        }
        Some(WarmKey {
            instance: invocation.instance.clone()?,
            config: invocation.config.clone(),
            memory_bytes: envelope.memory_bytes,
        })
    }

    /// Prepares a warm store for its next call: a new deadline, egress
    /// hooks and identity; cleared stderr.
    fn reset(
        &self,
        store: &mut Store<GuestState>,
        invocation: Invocation,
        policy: EgressPolicy,
        envelope: Envelope,
    ) {
        let deadline = Instant::now() + envelope.timeout;
        let state = store.data_mut();
        state.hooks.renew(caller(&invocation), policy, deadline);
        state.renew(invocation, deadline);
        store.set_epoch_deadline(1);
    }

    /// Drops every idle warm instance; returns how many there were.
    fn evict_warm(&self) -> usize {
        let before = self.warm_idle.load(Ordering::Relaxed);
        if before == 0 {
            return 0;
        }
        let loaded: Vec<Arc<Loaded>> = self.lock_cache().values().cloned().collect();
        for l in loaded {
            l.warm.clear(&self.warm_idle);
        }
        before
    }

    /// A fresh guest instance in `store`, within the call's deadline.
    async fn instantiate(
        &self,
        store: &mut Store<GuestState>,
        loaded: &Loaded,
        envelope: Envelope,
    ) -> Result<Connector, InvokeError> {
        let started = Instant::now();
        let deadline = store.data().deadline;
        // Boxed: instantiating was the largest state of a call's future (by
        // 200 bytes, `api::fast`'s future size test) but lasts a moment,
        // while a call waiting on its upstream holds that future for
        // seconds: inline, every call in flight paid for it.
        let result = Box::pin(tokio::time::timeout_at(
            deadline.into(),
            loaded.pre.instantiate_async(&mut *store),
        ))
        .await;
        match result {
            Err(_) => Err(InvokeError::Timeout(envelope.timeout)),
            Ok(Err(e)) => Err(classify_instantiation(&e, store, envelope)),
            Ok(Ok(instance)) => {
                self.stats.instantiated.fetch_add(1, Ordering::Relaxed);
                crate::metrics::instantiation(started);
                Ok(instance)
            }
        }
    }

    /// Runs `call` in `instance`; also says whether the instance may serve
    /// another call (it ended with a result or the guest's own error).
    async fn run(
        &self,
        store: &mut Store<GuestState>,
        instance: &Connector,
        envelope: Envelope,
        call: Call<'_>,
    ) -> (Result<Output, Failure>, bool) {
        let deadline = store.data().deadline;
        let result = tokio::time::timeout_at(deadline.into(), async {
            match call {
                Call::TestConnection => instance
                    .call_test_connection(&mut *store)
                    .await
                    .map(|r| r.map(Output::Text)),
                Call::Webhook(w) => {
                    let request = wit::WebhookRequest {
                        method: w.method,
                        query: w.query,
                        headers: w
                            .headers
                            .into_iter()
                            .map(|(name, value)| wit::Header { name, value })
                            .collect(),
                        body: w.body,
                    };
                    instance
                        .call_handle_webhook(&mut *store, &request)
                        .await
                        .map(|r| r.map(|o| Output::Webhook(webhook_output(o))))
                }
                Call::Invoke { method, params } => instance
                    .call_invoke(&mut *store, &method, &params)
                    .await
                    .map(|r| r.map(Output::Text)),
            }
        })
        .await;
        match result {
            Err(_) => (
                Err(Failure::Invoke(InvokeError::Timeout(envelope.timeout))),
                false,
            ),
            Ok(Err(trap)) => (
                Err(Failure::Invoke(classify_trap(&trap, store, envelope))),
                false,
            ),
            Ok(Ok(Ok(value))) => (Ok(value), true),
            Ok(Ok(Err(e))) => (Err(Failure::Guest(GuestError::from(e))), true),
        }
    }
}

/// The host's view of a `webhook-outcome`.
fn webhook_output(o: wit::WebhookOutcome) -> WebhookOutput {
    WebhookOutput {
        response: o.response.map(|r| {
            (
                r.status,
                r.headers.into_iter().map(|h| (h.name, h.value)).collect(),
                r.body,
            )
        }),
        events: o
            .events
            .into_iter()
            .map(|e| (e.kind, e.id, e.payload))
            .collect(),
    }
}

/// How [`Runtime::run`] failed: the guest's own error still needs the
/// journal to be explained.
enum Failure {
    Guest(GuestError),
    Invoke(InvokeError),
}

/// The guest failed: if the host saw why (a refused, rate-limited or
/// unreachable upstream), report that instead of the guest's paraphrase.
fn explain(guest_error: GuestError, outbound: &[OutboundRecord]) -> InvokeError {
    let Some((record, outcome)) = crate::egress::explanation(outbound) else {
        return InvokeError::Guest(guest_error);
    };
    let target = record.target();
    match outcome.clone() {
        OutboundOutcome::Denied(reason) => InvokeError::HostDenied { target, reason },
        OutboundOutcome::Limit(reason) => InvokeError::OutboundLimit { target, reason },
        OutboundOutcome::RateLimited {
            reason,
            retry_after,
        } => InvokeError::RateLimited {
            target,
            reason,
            retry_after,
        },
        OutboundOutcome::Unavailable {
            reason,
            retry_after,
        } => InvokeError::UpstreamUnavailable {
            target,
            reason,
            retry_after,
        },
        OutboundOutcome::Timeout(reason) => InvokeError::UpstreamTimeout { target, reason },
        OutboundOutcome::Failed(reason) => InvokeError::UpstreamUnreachable { target, reason },
        OutboundOutcome::Certificate(reason) => InvokeError::UpstreamCertificate { target, reason },
        OutboundOutcome::Status(_) => InvokeError::Guest(guest_error),
    }
}

/// Serializes a component and prefixes the sha256 of the serialization.
fn seal_artifact(component: &Component) -> anyhow::Result<Vec<u8>> {
    let body = component.serialize()?;
    let mut out = Vec::with_capacity(CHECKSUM_LEN + body.len());
    out.extend_from_slice(&Sha256::digest(&body));
    out.extend_from_slice(&body);
    Ok(out)
}

/// Instantiation runs guest start functions too, so guest faults are
/// possible; a full pool is the host's capacity, not the guest's fault.
fn classify_instantiation(
    e: &wasmtime::Error,
    store: &Store<GuestState>,
    envelope: Envelope,
) -> InvokeError {
    if e.downcast_ref::<wasmtime::PoolConcurrencyLimitError>()
        .is_some()
    {
        return InvokeError::Capacity(format!("all guest instance slots are busy: {e}"));
    }
    classify_trap(e, store, envelope)
}

/// Names the reason a guest stopped: our own typed traps first, then a
/// guest-requested exit, then wasmtime traps (with the tail of the guest's
/// stderr, where Rust, JS and Python put their panic messages). Anything
/// else raised while guest code ran is a guest misusing a host API (for
/// example a stale resource handle), which is the guest's fault too.
fn classify_trap(
    e: &wasmtime::Error,
    store: &Store<GuestState>,
    envelope: Envelope,
) -> InvokeError {
    if e.downcast_ref::<DeadlineExceeded>().is_some() {
        return InvokeError::Timeout(envelope.timeout);
    }
    if let Some(m) = e.downcast_ref::<MemoryLimitExceeded>() {
        return InvokeError::MemoryLimit(m.to_string());
    }
    let reason = if let Some(exit) = e.downcast_ref::<wasmtime_wasi::I32Exit>() {
        format!("connector exited with status {}", exit.0)
    } else if let Some(trap) = e.downcast_ref::<wasmtime::Trap>() {
        format!("connector trapped: {trap}")
    } else {
        format!("connector failed: {e:#}")
    };
    let stderr = store.data().stderr.text();
    if stderr.is_empty() {
        InvokeError::Trapped(reason)
    } else {
        InvokeError::Trapped(format!("{reason}: {stderr}"))
    }
}

//! The embedded [`Store`] on sled: one directory, no server.
//!
//! Records are JSON (readable with any sled dump tool, cheap at our sizes).
//! Multi-tree writes use sled transactions so a crash leaves either the old or
//! the new state. `connector_refs` counts instances per connector so deleting a
//! connector can refuse atomically while instances still use it (sled
//! transactions cannot scan). Audit records are keyed by the big-endian
//! bytes of their [`AuditKey`], so a time range is a key range.
//!
//! Component bytes and compiled artifacts are files beside the database
//! ([`super::files`]), not sled values: sled reads large values back while
//! it recovers its log at open. A connector's files are written (durably) before its
//! record, and removed after it, so a record never names missing files; a
//! crash in between leaves files no record names, which the next open
//! removes.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use serde::de::DeserializeOwned;
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};

use super::files::{Files, Kind};
use super::{
    AuditKey, AuditRecord, ConnectorRecord, CredentialsRecord, DeliveryWrite, EventRecord,
    IdempotentResult, InstanceRecord, JobRecord, OAuthState, RuleRecord, Store, StoreError,
    StoreResult, TokenRecord, VaultCheck,
};
use crate::egress::budget::RateSpec;

const CONNECTORS: &str = "connectors";
const BLOBS: &str = "component_bytes";
const ARTIFACTS: &str = "artifacts";
const INSTANCES: &str = "instances";
const REFS: &str = "connector_refs";
const TOKENS: &str = "tokens";
const CREDENTIALS: &str = "credentials";
const VAULT: &str = "vault";
const OAUTH_STATES: &str = "oauth_states";
const EVENTS: &str = "events";
const DELIVERIES: &str = "deliveries";
const RULES: &str = "rules";
const JOBS: &str = "jobs";
/// Ids of unfinished jobs (values empty): the worker's to-do list.
const JOBS_UNFINISHED: &str = "jobs_unfinished";
const IDEMPOTENCY: &str = "idempotency";
/// Audit records under their [`AuditKey`] bytes (time-ordered).
const AUDIT: &str = "audit";
/// Audit bookkeeping: the highest sequence number stored (`seq`).
const AUDIT_META: &str = "audit_meta";
/// Key of the highest audit sequence number in `audit_meta`.
const AUDIT_SEQ: &str = "seq";
/// Audit records the sweep deletes per batch.
const SWEEP_BATCH: usize = 4096;
/// Key of the master-key check value in the `vault` tree.
const CHECK: &str = "check";
/// The directory of component and artifact files, inside the store's.
const FILES_DIR: &str = "components";

/// sled-backed store.
pub struct SledStore {
    db: sled::Db,
    connectors: sled::Tree,
    blobs: sled::Tree,
    artifacts: sled::Tree,
    instances: sled::Tree,
    refs: sled::Tree,
    tokens: sled::Tree,
    credentials: sled::Tree,
    vault: sled::Tree,
    oauth_states: sled::Tree,
    events: sled::Tree,
    deliveries: sled::Tree,
    rules: sled::Tree,
    jobs: sled::Tree,
    jobs_unfinished: sled::Tree,
    idempotency: sled::Tree,
    audit: sled::Tree,
    audit_meta: sled::Tree,
    /// See [`Store::generation`].
    generation: AtomicU64,
    /// Component bytes and artifacts.
    files: Files,
    /// Held across a connector's existence check, files and record, so
    /// uploads and deletes cannot interleave into a record without its
    /// files (or files removed under a record).
    connector_writes: std::sync::Mutex<()>,
}

impl SledStore {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path) -> StoreResult<Self> {
        let db = sled::Config::new()
            .path(dir)
            // Flush every 500 ms in the background; explicit flushes happen on
            // writes that must survive a crash right away.
            .flush_every_ms(Some(500))
            .open()
            .map_err(backend)?;
        let tree = |name: &str| db.open_tree(name).map_err(backend);
        Ok(Self {
            connectors: tree(CONNECTORS)?,
            blobs: tree(BLOBS)?,
            artifacts: tree(ARTIFACTS)?,
            instances: tree(INSTANCES)?,
            refs: tree(REFS)?,
            tokens: tree(TOKENS)?,
            credentials: tree(CREDENTIALS)?,
            vault: tree(VAULT)?,
            oauth_states: tree(OAUTH_STATES)?,
            events: tree(EVENTS)?,
            deliveries: tree(DELIVERIES)?,
            rules: tree(RULES)?,
            jobs: tree(JOBS)?,
            jobs_unfinished: tree(JOBS_UNFINISHED)?,
            idempotency: tree(IDEMPOTENCY)?,
            audit: tree(AUDIT)?,
            audit_meta: tree(AUDIT_META)?,
            generation: AtomicU64::new(0),
            files: Files::open(&dir.join(FILES_DIR)).map_err(backend)?,
            connector_writes: std::sync::Mutex::new(()),
            db,
        })
        .and_then(|store| {
            store.move_blobs_to_files()?;
            store.sweep_files()?;
            Ok(store)
        })
    }

    /// Stores from before [`super::files`] kept bytes and artifacts in the
    /// `component_bytes` and `artifacts` trees: move them out, once.
    fn move_blobs_to_files(&self) -> StoreResult<()> {
        let mut moved = 0;
        for (tree, kind) in [
            (&self.blobs, Kind::Component),
            (&self.artifacts, Kind::Artifact),
        ] {
            for entry in tree.iter() {
                let (key, value) = entry.map_err(backend)?;
                let digest = String::from_utf8_lossy(&key).into_owned();
                self.files.put(&digest, kind, &value).map_err(backend)?;
                tree.remove(key).map_err(backend)?;
                moved += 1;
            }
        }
        if moved > 0 {
            self.db.flush().map_err(backend)?;
            tracing::info!(
                moved,
                "moved component bytes and artifacts out of the database into files"
            );
        }
        Ok(())
    }

    /// Removes files no connector record names (see the module docs). If a
    /// record cannot be read, nothing is removed: the store still opens
    /// (the bad record is reported where it is used), and no file is taken
    /// from a record that might name it.
    fn sweep_files(&self) -> StoreResult<()> {
        let digests: std::collections::HashSet<String> = match all::<ConnectorRecord>(
            &self.connectors,
            CONNECTORS,
        ) {
            Ok(records) => records.into_iter().map(|c| c.digest).collect(),
            Err(e) => {
                tracing::warn!(error = %e, "not sweeping component files: a connector record does not read");
                return Ok(());
            }
        };
        let removed = self
            .files
            .sweep(|digest| digests.contains(digest))
            .map_err(backend)?;
        if removed > 0 {
            tracing::warn!(
                removed,
                "removed component files no connector refers to (left by an interrupted upload or delete)"
            );
        }
        Ok(())
    }

    fn durable<T>(&self, value: T) -> StoreResult<T> {
        self.db.flush().map_err(backend)?;
        Ok(value)
    }

    /// [`Self::durable`] for a write that changes what a call reads
    /// (connectors, instances, credentials, tokens). The generation moves
    /// after the write is applied and before the flush, so a reader that
    /// sees the new generation also sees the new data, and a failed flush
    /// (the data is applied in memory all the same) still moves it.
    fn changed<T>(&self, value: T) -> StoreResult<T> {
        self.generation.fetch_add(1, Ordering::Release);
        self.durable(value)
    }
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn encode<T: Serialize>(value: &T) -> StoreResult<Vec<u8>> {
    serde_json::to_vec(value).map_err(backend)
}

fn decode<T: DeserializeOwned>(tree: &'static str, bytes: &[u8]) -> StoreResult<T> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        tree,
        message: e.to_string(),
    })
}

fn get<T: DeserializeOwned>(
    t: &sled::Tree,
    name: &'static str,
    key: &str,
) -> StoreResult<Option<T>> {
    t.get(key)
        .map_err(backend)?
        .map(|v| decode(name, &v))
        .transpose()
}

fn all<T: DeserializeOwned>(t: &sled::Tree, name: &'static str) -> StoreResult<Vec<T>> {
    t.iter()
        .values()
        .map(|v| decode(name, &v.map_err(backend)?))
        .collect()
}

/// Maps a transaction outcome, turning our own aborts back into [`StoreError`].
fn finish<T>(r: Result<T, TransactionError<StoreError>>) -> StoreResult<T> {
    r.map_err(|e| match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => backend(e),
    })
}

fn abort<T>(e: StoreError) -> Result<T, ConflictableTransactionError<StoreError>> {
    Err(ConflictableTransactionError::Abort(e))
}

/// A store result inside a transaction closure: errors abort it.
fn in_tx<T>(r: StoreResult<T>) -> Result<T, ConflictableTransactionError<StoreError>> {
    r.map_err(ConflictableTransactionError::Abort)
}

fn read_count(
    t: &TransactionalTree,
    key: &str,
) -> Result<u64, ConflictableTransactionError<StoreError>> {
    Ok(t.get(key)?
        .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
        .map(u64::from_be_bytes)
        .unwrap_or(0))
}

impl Store for SledStore {
    fn put_connector(
        &self,
        record: &ConnectorRecord,
        bytes: &[u8],
        artifact: &[u8],
    ) -> StoreResult<bool> {
        let value = encode(record)?;
        // Connector writes are serialized, so what this reads stays true
        // until the record is inserted.
        let _serial = self
            .connector_writes
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(existing) = self.connector(&record.id)? {
            if existing.digest == record.digest {
                return Ok(false);
            }
            return Err(StoreError::Conflict(format!(
                "connector {} already exists with different bytes (sha256 {}); \
                 bump the version to upload a change",
                record.id, existing.digest
            )));
        }
        // The files first, so the record never names missing ones; if the
        // insert fails, no record names them and the next open sweeps them.
        let digest = record.digest.as_str();
        self.files
            .put(digest, Kind::Component, bytes)
            .and_then(|()| self.files.put(digest, Kind::Artifact, artifact))
            .map_err(backend)?;
        self.connectors
            .insert(record.id.as_bytes(), value)
            .map_err(backend)?;
        self.changed(true)
    }

    fn connector(&self, id: &str) -> StoreResult<Option<ConnectorRecord>> {
        get(&self.connectors, CONNECTORS, id)
    }

    fn connectors(&self) -> StoreResult<Vec<ConnectorRecord>> {
        all(&self.connectors, CONNECTORS)
    }

    fn delete_connector(&self, id: &str) -> StoreResult<()> {
        let _serial = self
            .connector_writes
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let record = finish(
            (&self.connectors, &self.refs).transaction(|(connectors, refs)| {
                let Some(existing) = connectors.get(id)? else {
                    return abort(StoreError::NotFound(format!("connector {id}")));
                };
                let in_use = read_count(refs, id)?;
                if in_use > 0 {
                    return abort(StoreError::Conflict(format!(
                        "connector {id} is used by {in_use} instance(s); delete them first"
                    )));
                }
                let record: ConnectorRecord = in_tx(decode(CONNECTORS, &existing))?;
                connectors.remove(id)?;
                refs.remove(id)?;
                Ok(record)
            }),
        )?;
        let deleted = self.changed(());
        // After the record: a crash in between leaves files the next open
        // sweeps, never a record without its files.
        for kind in [Kind::Component, Kind::Artifact] {
            if let Err(e) = self.files.remove(&record.digest, kind) {
                tracing::warn!(connector = %id, error = %e, "could not remove a deleted connector's file; the next start removes it");
            }
        }
        deleted
    }

    fn component_bytes(&self, digest: &str) -> StoreResult<Option<Vec<u8>>> {
        self.files.get(digest, Kind::Component).map_err(backend)
    }

    fn artifact(&self, digest: &str) -> StoreResult<Option<Vec<u8>>> {
        self.files.get(digest, Kind::Artifact).map_err(backend)
    }

    fn put_artifact(&self, digest: &str, artifact: &[u8]) -> StoreResult<()> {
        self.files
            .put(digest, Kind::Artifact, artifact)
            .map_err(backend)
    }

    fn create_instance(
        &self,
        record: &InstanceRecord,
        credentials: Option<&CredentialsRecord>,
    ) -> StoreResult<()> {
        let value = encode(record)?;
        let sealed = credentials.map(encode).transpose()?;
        finish(
            (
                &self.connectors,
                &self.instances,
                &self.refs,
                &self.credentials,
            )
                .transaction(|(connectors, instances, refs, creds)| {
                    if connectors.get(&record.connector)?.is_none() {
                        return abort(StoreError::NotFound(format!(
                            "connector {}",
                            record.connector
                        )));
                    }
                    if instances.get(&record.id)?.is_some() {
                        return abort(StoreError::Conflict(format!(
                            "instance {} exists",
                            record.id
                        )));
                    }
                    let count = read_count(refs, &record.connector)?;
                    refs.insert(record.connector.as_bytes(), &(count + 1).to_be_bytes())?;
                    instances.insert(record.id.as_bytes(), value.as_slice())?;
                    if let Some(sealed) = &sealed {
                        creds.insert(record.id.as_bytes(), sealed.as_slice())?;
                    }
                    Ok(())
                }),
        )?;
        self.changed(())
    }

    fn credentials(&self, instance: &str) -> StoreResult<Option<CredentialsRecord>> {
        get(&self.credentials, CREDENTIALS, instance)
    }

    fn put_credentials(
        &self,
        record: &InstanceRecord,
        credentials: &CredentialsRecord,
    ) -> StoreResult<()> {
        let value = encode(record)?;
        let sealed = encode(credentials)?;
        finish(
            (&self.instances, &self.credentials).transaction(|(instances, creds)| {
                if instances.get(&record.id)?.is_none() {
                    return abort(StoreError::NotFound(format!("instance {}", record.id)));
                }
                instances.insert(record.id.as_bytes(), value.as_slice())?;
                creds.insert(record.id.as_bytes(), sealed.as_slice())?;
                Ok(())
            }),
        )?;
        self.changed(())
    }

    fn record_delivery(&self, delivery: &DeliveryWrite<'_>) -> StoreResult<bool> {
        let events: Vec<(String, Vec<u8>)> = delivery
            .events
            .iter()
            .map(|e| Ok((e.id.clone(), encode(e)?)))
            .collect::<StoreResult<_>>()?;
        let jobs: Vec<(&JobRecord, Vec<u8>)> = delivery
            .jobs
            .iter()
            .map(|j| Ok((j, encode(j)?)))
            .collect::<StoreResult<_>>()?;
        let now = crate::api::now();
        let written = finish(
            (
                &self.deliveries,
                &self.events,
                &self.jobs,
                &self.jobs_unfinished,
            )
                .transaction(|(deliveries, ev, jb, unfinished)| {
                    if let Some(key) = &delivery.dedup_key {
                        if deliveries.get(key.as_bytes())?.is_some() {
                            return Ok(false);
                        }
                        deliveries.insert(key.as_bytes(), now.as_bytes())?;
                    }
                    for (id, value) in &events {
                        ev.insert(id.as_bytes(), value.as_slice())?;
                    }
                    for (job, value) in &jobs {
                        jb.insert(job.id.as_bytes(), value.as_slice())?;
                        if job.state.unfinished() {
                            unfinished.insert(job.id.as_bytes(), &[])?;
                        }
                    }
                    Ok(true)
                }),
        )?;
        // Durable before the sender hears "accepted": a crash after the
        // answer must not lose the event or its jobs.
        self.durable(written)
    }

    fn delivery_seen(&self, key: &str) -> StoreResult<bool> {
        self.deliveries.contains_key(key).map_err(backend)
    }

    fn events(&self) -> StoreResult<Vec<EventRecord>> {
        all(&self.events, EVENTS)
    }

    fn event(&self, id: &str) -> StoreResult<Option<EventRecord>> {
        get(&self.events, EVENTS, id)
    }

    fn put_rule(&self, rule: &RuleRecord) -> StoreResult<()> {
        self.rules
            .insert(&rule.id, encode(rule)?)
            .map_err(backend)?;
        self.durable(())
    }

    fn rule(&self, id: &str) -> StoreResult<Option<RuleRecord>> {
        get(&self.rules, RULES, id)
    }

    fn rules(&self) -> StoreResult<Vec<RuleRecord>> {
        all(&self.rules, RULES)
    }

    fn delete_rule(&self, id: &str) -> StoreResult<()> {
        match self.rules.remove(id).map_err(backend)? {
            Some(_) => self.durable(()),
            None => Err(StoreError::NotFound(format!("rule {id}"))),
        }
    }

    fn jobs(&self) -> StoreResult<Vec<JobRecord>> {
        all(&self.jobs, JOBS)
    }

    fn job(&self, id: &str) -> StoreResult<Option<JobRecord>> {
        get(&self.jobs, JOBS, id)
    }

    fn unfinished_jobs(&self) -> StoreResult<Vec<JobRecord>> {
        let mut out = Vec::new();
        for id in self.jobs_unfinished.iter().keys() {
            let id = id.map_err(backend)?;
            if let Some(value) = self.jobs.get(&id).map_err(backend)? {
                out.push(decode(JOBS, &value)?);
            }
        }
        Ok(out)
    }

    fn put_job(&self, job: &JobRecord) -> StoreResult<()> {
        let value = encode(job)?;
        let unfinished = job.state.unfinished();
        finish(
            (&self.jobs, &self.jobs_unfinished).transaction(|(jobs, index)| {
                jobs.insert(job.id.as_bytes(), value.as_slice())?;
                if unfinished {
                    index.insert(job.id.as_bytes(), &[])?;
                } else {
                    index.remove(job.id.as_bytes())?;
                }
                Ok(())
            }),
        )?;
        self.durable(())
    }

    fn idempotent_result(&self, key: &str) -> StoreResult<Option<IdempotentResult>> {
        get(&self.idempotency, IDEMPOTENCY, key)
    }

    fn put_idempotent_result(&self, key: &str, result: &IdempotentResult) -> StoreResult<()> {
        self.idempotency
            .insert(key, encode(result)?)
            .map_err(backend)?;
        self.durable(())
    }

    fn put_oauth_state(&self, state: &str, record: &OAuthState) -> StoreResult<()> {
        self.oauth_states
            .insert(state, encode(record)?)
            .map_err(backend)?;
        self.durable(())
    }

    fn take_oauth_state(&self, state: &str) -> StoreResult<Option<OAuthState>> {
        // `remove` is atomic: of two callbacks racing with one state, only
        // one gets it.
        let Some(bytes) = self.oauth_states.remove(state).map_err(backend)? else {
            return Ok(None);
        };
        let record = decode(OAUTH_STATES, &bytes)?;
        self.durable(Some(record))
    }

    fn vault_check(&self) -> StoreResult<Option<VaultCheck>> {
        get(&self.vault, VAULT, CHECK)
    }

    fn put_vault_check(&self, check: &VaultCheck) -> StoreResult<()> {
        self.vault.insert(CHECK, encode(check)?).map_err(backend)?;
        self.durable(())
    }

    fn reseal_all(
        &self,
        reseal: &dyn Fn(&str, &CredentialsRecord) -> Result<CredentialsRecord, String>,
        check: &VaultCheck,
    ) -> StoreResult<usize> {
        // Read outside, write inside one transaction that also verifies
        // nothing changed meanwhile (the host is stopped during rotation,
        // but the check is cheap).
        let current: Vec<(sled::IVec, sled::IVec)> = self
            .credentials
            .iter()
            .collect::<Result<_, _>>()
            .map_err(backend)?;
        let mut updates = Vec::with_capacity(current.len());
        let mut fields = 0;
        for (key, value) in &current {
            let instance = String::from_utf8_lossy(key).into_owned();
            let record: CredentialsRecord = decode(CREDENTIALS, value)?;
            let resealed = reseal(&instance, &record).map_err(|message| {
                StoreError::Conflict(format!("credentials of instance {instance}: {message}"))
            })?;
            fields += resealed.fields.len();
            updates.push((key.clone(), value.clone(), encode(&resealed)?));
        }
        let check = encode(check)?;
        finish(
            (&self.credentials, &self.vault).transaction(|(creds, vault)| {
                for (key, old, new) in &updates {
                    if creds.get(key)?.as_ref() != Some(old) {
                        return abort(StoreError::Conflict(
                            "credentials changed during rotation; run it again".into(),
                        ));
                    }
                    creds.insert(key, new.as_slice())?;
                }
                vault.insert(CHECK, check.as_slice())?;
                Ok(())
            }),
        )?;
        self.changed(fields)
    }

    fn update_instance(&self, record: &InstanceRecord) -> StoreResult<()> {
        let value = encode(record)?;
        finish(self.instances.transaction(|instances| {
            let Some(existing) = instances.get(&record.id)? else {
                return abort(StoreError::NotFound(format!("instance {}", record.id)));
            };
            let existing: InstanceRecord = in_tx(decode(INSTANCES, &existing))?;
            // The connector reference count is keyed by it; moving an
            // instance to another connector is not an update.
            if existing.connector != record.connector {
                return abort(StoreError::Conflict(format!(
                    "instance {} belongs to connector {}",
                    record.id, existing.connector
                )));
            }
            instances.insert(record.id.as_bytes(), value.as_slice())?;
            Ok(())
        }))?;
        self.changed(())
    }

    fn set_connector_rate_limit(
        &self,
        id: &str,
        rate_limit: Option<RateSpec>,
    ) -> StoreResult<ConnectorRecord> {
        let record = finish(self.connectors.transaction(|connectors| {
            let Some(existing) = connectors.get(id)? else {
                return abort(StoreError::NotFound(format!("connector {id}")));
            };
            let mut record: ConnectorRecord = in_tx(decode(CONNECTORS, &existing))?;
            record.rate_limit = rate_limit;
            let value = in_tx(encode(&record))?;
            connectors.insert(id.as_bytes(), value.as_slice())?;
            Ok(record)
        }))?;
        self.changed(record)
    }

    fn instance(&self, id: &str) -> StoreResult<Option<InstanceRecord>> {
        get(&self.instances, INSTANCES, id)
    }

    fn instances(&self) -> StoreResult<Vec<InstanceRecord>> {
        all(&self.instances, INSTANCES)
    }

    fn delete_instance(&self, id: &str) -> StoreResult<()> {
        finish(
            (&self.instances, &self.refs, &self.credentials).transaction(
                |(instances, refs, creds)| {
                    let Some(existing) = instances.remove(id)? else {
                        return abort(StoreError::NotFound(format!("instance {id}")));
                    };
                    creds.remove(id)?;
                    let record: InstanceRecord = in_tx(decode(INSTANCES, &existing))?;
                    let count = read_count(refs, &record.connector)?;
                    refs.insert(
                        record.connector.as_bytes(),
                        &count.saturating_sub(1).to_be_bytes(),
                    )?;
                    Ok(())
                },
            ),
        )?;
        self.changed(())
    }

    fn put_token(&self, hash: &[u8; 32], record: &TokenRecord) -> StoreResult<()> {
        self.tokens.insert(hash, encode(record)?).map_err(backend)?;
        self.changed(())
    }

    fn token(&self, hash: &[u8; 32]) -> StoreResult<Option<TokenRecord>> {
        self.tokens
            .get(hash)
            .map_err(backend)?
            .map(|v| decode(TOKENS, &v))
            .transpose()
    }

    fn tokens(&self) -> StoreResult<Vec<TokenRecord>> {
        all(&self.tokens, TOKENS)
    }

    fn delete_token(&self, id: &str) -> StoreResult<()> {
        for entry in self.tokens.iter() {
            let (hash, value) = entry.map_err(backend)?;
            let record: TokenRecord = decode(TOKENS, &value)?;
            if record.id == id {
                self.tokens.remove(hash).map_err(backend)?;
                return self.changed(());
            }
        }
        Err(StoreError::NotFound(format!("token {id}")))
    }

    fn replace_token(
        &self,
        id: &str,
        hash: &[u8; 32],
        record: &TokenRecord,
    ) -> StoreResult<[u8; 32]> {
        // Tokens are keyed by hash, so find the old one by id first; the
        // transaction then checks it is still there.
        let mut old = None;
        for entry in self.tokens.iter() {
            let (key, value) = entry.map_err(backend)?;
            let existing: TokenRecord = decode(TOKENS, &value)?;
            if existing.id == id {
                old = <[u8; 32]>::try_from(key.as_ref()).ok();
                break;
            }
        }
        let Some(old) = old else {
            return Err(StoreError::NotFound(format!("token {id}")));
        };
        let value = encode(record)?;
        finish(self.tokens.transaction(|tokens| {
            if tokens.remove(&old)?.is_none() {
                return abort(StoreError::NotFound(format!("token {id}")));
            }
            tokens.insert(hash, value.as_slice())?;
            Ok(())
        }))?;
        self.changed(old)
    }

    fn touch_token(&self, hash: &[u8; 32], at: &str) -> StoreResult<()> {
        // Compare-and-swap on the existing value only: returning `None` for
        // a missing key leaves it missing, so a token revoked meanwhile
        // stays revoked.
        self.tokens
            .update_and_fetch(hash, |old| {
                let old = old?;
                let Ok(mut record) = serde_json::from_slice::<TokenRecord>(old) else {
                    return Some(old.to_vec());
                };
                record.last_used_at = Some(at.to_owned());
                Some(serde_json::to_vec(&record).unwrap_or_else(|_| old.to_vec()))
            })
            .map_err(backend)?;
        Ok(())
    }

    fn append_audit(&self, records: &[AuditRecord]) -> StoreResult<()> {
        let encoded: Vec<([u8; AuditKey::LEN], Vec<u8>)> = records
            .iter()
            .map(|r| Ok((r.key.to_bytes(), encode(r)?)))
            .collect::<StoreResult<_>>()?;
        let Some(top) = records.iter().map(|r| r.key.seq).max() else {
            return Ok(());
        };
        finish(
            (&self.audit, &self.audit_meta).transaction(|(audit, meta)| {
                for (key, value) in &encoded {
                    audit.insert(key, value.as_slice())?;
                }
                let stored = meta
                    .get(AUDIT_SEQ)?
                    .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
                    .map(u64::from_be_bytes);
                if stored.is_none_or(|s| top > s) {
                    meta.insert(AUDIT_SEQ, &top.to_be_bytes())?;
                }
                Ok(())
            }),
        )?;
        self.durable(())
    }

    fn scan_audit(
        &self,
        from: Option<AuditKey>,
        below: Option<AuditKey>,
        visit: &mut dyn FnMut(AuditRecord) -> bool,
    ) -> StoreResult<()> {
        use std::ops::Bound;
        let lower = from.map_or(Bound::Unbounded, |k| Bound::Included(k.to_bytes()));
        let upper = below.map_or(Bound::Unbounded, |k| Bound::Excluded(k.to_bytes()));
        for entry in self
            .audit
            .range::<[u8; AuditKey::LEN], _>((lower, upper))
            .rev()
        {
            let (key, value) = entry.map_err(backend)?;
            let mut record: AuditRecord = decode(AUDIT, &value)?;
            record.key = AuditKey::from_bytes(&key).ok_or_else(|| StoreError::Corrupt {
                tree: AUDIT,
                message: format!("key of {} bytes", key.len()),
            })?;
            if !visit(record) {
                break;
            }
        }
        Ok(())
    }

    fn sweep_audit(&self, before: AuditKey) -> StoreResult<u64> {
        // In batches, so a long-overdue sweep neither holds millions of
        // keys in memory nor one huge write.
        let mut deleted = 0;
        loop {
            let mut batch = sled::Batch::default();
            let mut n = 0;
            for key in self
                .audit
                .range(..before.to_bytes())
                .keys()
                .take(SWEEP_BATCH)
            {
                batch.remove(key.map_err(backend)?);
                n += 1;
            }
            if n == 0 {
                break;
            }
            self.audit.apply_batch(batch).map_err(backend)?;
            deleted += n as u64;
        }
        if deleted > 0 {
            self.durable(())?;
        }
        Ok(deleted)
    }

    fn audit_seq(&self) -> StoreResult<Option<u64>> {
        Ok(self
            .audit_meta
            .get(AUDIT_SEQ)
            .map_err(backend)?
            .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
            .map(u64::from_be_bytes))
    }

    fn has_tokens(&self) -> StoreResult<bool> {
        Ok(!self.tokens.is_empty())
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn flush(&self) -> StoreResult<()> {
        self.db.flush().map_err(backend).map(|_| ())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::manifest::Manifest;
    use crate::store::JobState;

    /// A sha256 digest named by `label` (files are named by digests).
    fn digest(label: &str) -> String {
        use sha2::Digest as _;
        hex::encode(sha2::Sha256::digest(label.as_bytes()))
    }

    fn connector(id: &str, label: &str) -> ConnectorRecord {
        let (name, version) = id.split_once('@').unwrap();
        ConnectorRecord {
            id: id.into(),
            name: name.into(),
            version: version.into(),
            digest: digest(label),
            size: 3,
            manifest: Manifest::minimal(name, version),
            created_at: "2026-01-01T00:00:00Z".into(),
            rate_limit: None,
        }
    }

    fn instance(id: &str, connector: &str) -> InstanceRecord {
        InstanceRecord {
            id: id.into(),
            name: id.into(),
            connector: connector.into(),
            config: serde_json::json!({}),
            limits: Default::default(),
            status: "ACTIVE".into(),
            status_reason: None,
            created_at: "2026-01-01T00:00:00Z".into(),
        }
    }

    /// An empty store in a fresh temporary directory (removed by the caller).
    pub(crate) fn temp_store() -> (SledStore, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!(
            "pb-store-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4()
        ));
        (SledStore::open(&dir).unwrap(), dir)
    }

    #[test]
    fn connector_put_is_idempotent_and_conflicts_on_new_bytes() {
        let (store, dir) = temp_store();
        assert!(
            store
                .put_connector(&connector("a@1.0.0", "d1"), b"abc", b"art")
                .unwrap()
        );
        assert!(
            !store
                .put_connector(&connector("a@1.0.0", "d1"), b"abc", b"art")
                .unwrap()
        );
        let err = store
            .put_connector(&connector("a@1.0.0", "d2"), b"xyz", b"art")
            .unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)), "{err}");
        assert_eq!(
            store.component_bytes(&digest("d1")).unwrap().unwrap(),
            b"abc"
        );
        assert!(store.component_bytes(&digest("d2")).unwrap().is_none());
        drop(store);
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn only_unfinished_jobs_are_on_the_workers_list() {
        let (store, dir) = temp_store();
        let job = |id: &str, state| JobRecord {
            id: id.into(),
            event: "evt_1".into(),
            rule: "rule_1".into(),
            action_index: 0,
            instance: "i1".into(),
            method: "m".into(),
            parameters: serde_json::json!({}),
            idempotency_key: "k".into(),
            state,
            attempts: 0,
            next_attempt_at: 0,
            last_error: None,
            result: None,
            created_at: "now".into(),
            updated_at: "now".into(),
        };
        let jobs = [
            job("job_1", JobState::Pending),
            job("job_2", JobState::Dead),
        ];
        let written = store
            .record_delivery(&DeliveryWrite {
                dedup_key: None,
                events: &[],
                jobs: &jobs,
            })
            .unwrap();
        assert!(written);
        let ids = |s: &SledStore| -> Vec<String> {
            s.unfinished_jobs()
                .unwrap()
                .into_iter()
                .map(|j| j.id)
                .collect()
        };
        assert_eq!(ids(&store), ["job_1"]);
        store.put_job(&job("job_1", JobState::Running)).unwrap();
        assert_eq!(ids(&store), ["job_1"]);
        store.put_job(&job("job_1", JobState::Succeeded)).unwrap();
        assert!(ids(&store).is_empty());
        store.put_job(&job("job_2", JobState::Pending)).unwrap();
        assert_eq!(ids(&store), ["job_2"]);
        assert_eq!(store.jobs().unwrap().len(), 2);
        drop(store);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn connector_with_instances_cannot_be_deleted() {
        let (store, dir) = temp_store();
        store
            .put_connector(&connector("a@1.0.0", "d1"), b"abc", b"art")
            .unwrap();
        store
            .create_instance(&instance("i1", "a@1.0.0"), None)
            .unwrap();
        let err = store
            .create_instance(&instance("i2", "missing@1.0.0"), None)
            .unwrap_err();
        assert!(matches!(err, StoreError::NotFound(_)));
        let err = store.delete_connector("a@1.0.0").unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)), "{err}");
        store.delete_instance("i1").unwrap();
        store.delete_connector("a@1.0.0").unwrap();
        assert!(store.connector("a@1.0.0").unwrap().is_none());
        assert!(store.component_bytes(&digest("d1")).unwrap().is_none());
        assert!(store.artifact(&digest("d1")).unwrap().is_none());
        drop(store);
        std::fs::remove_dir_all(dir).ok();
    }

    /// An invoke-scoped token record.
    pub(crate) fn token(id: &str) -> TokenRecord {
        TokenRecord {
            id: id.into(),
            scope: "invoke".into(),
            name: Some("bot".into()),
            instances: vec!["i1".into()],
            created_at: "now".into(),
            last_used_at: None,
        }
    }

    #[test]
    fn rotation_swaps_tokens_at_once_and_touch_never_revives() {
        let (store, dir) = temp_store();
        store.put_token(&[1; 32], &token("t1")).unwrap();
        let old = store.replace_token("t1", &[2; 32], &token("t2")).unwrap();
        assert_eq!(old, [1; 32]);
        assert!(store.token(&[1; 32]).unwrap().is_none(), "old one gone");
        assert_eq!(store.token(&[2; 32]).unwrap().unwrap().id, "t2");
        let err = store
            .replace_token("t1", &[3; 32], &token("t3"))
            .unwrap_err();
        assert!(matches!(err, StoreError::NotFound(_)), "{err}");
        assert!(store.token(&[3; 32]).unwrap().is_none());

        store.touch_token(&[2; 32], "2026-01-01T00:00:00Z").unwrap();
        let touched = store.token(&[2; 32]).unwrap().unwrap();
        assert_eq!(
            touched.last_used_at.as_deref(),
            Some("2026-01-01T00:00:00Z")
        );
        assert_eq!(touched.instances, ["i1"]);
        store.delete_token("t2").unwrap();
        store.touch_token(&[2; 32], "2026-01-01T00:01:00Z").unwrap();
        assert!(store.token(&[2; 32]).unwrap().is_none(), "stays revoked");
        drop(store);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn audit_sequence_is_the_highest_ever_stored() {
        use crate::audit::{Actor, AuditKey, AuditRecord, Outcome, Resource};
        let (store, dir) = temp_store();
        assert_eq!(store.audit_seq().unwrap(), None);
        let record = |ms, seq| {
            AuditRecord::new(
                AuditKey { ms, seq },
                Actor::system("test", None),
                "rule.create",
                Resource::new("rule", None),
                Outcome::success(),
            )
        };
        store.append_audit(&[record(10, 0), record(20, 7)]).unwrap();
        assert_eq!(store.audit_seq().unwrap(), Some(7));
        // A clock that stepped back: a lower time, a lower sequence in a
        // later batch does not lower the stored maximum.
        store.append_audit(&[record(5, 3)]).unwrap();
        assert_eq!(store.audit_seq().unwrap(), Some(7));
        let mut keys = Vec::new();
        store
            .scan_audit(None, None, &mut |r| {
                keys.push((r.key.ms, r.key.seq));
                true
            })
            .unwrap();
        assert_eq!(keys, [(20, 7), (10, 0), (5, 3)]);
        drop(store);
        let _ = std::fs::remove_dir_all(dir);
    }

    /// A store holding connector `a@1.0.0` (bytes `abc`, artifact `art`),
    /// changed by `before`, then closed and opened again.
    fn reopened_after(before: impl FnOnce(&SledStore)) -> (SledStore, std::path::PathBuf) {
        let (store, dir) = temp_store();
        store
            .put_connector(&connector("a@1.0.0", "d1"), b"abc", b"art")
            .unwrap();
        before(&store);
        store.flush().unwrap();
        drop(store);
        (reopen(&dir), dir)
    }

    /// Opens the store in `dir` again after its handle was dropped. sled's
    /// background flusher may hold the directory lock for a moment after
    /// the drop; wait for the lock (bounded), not for luck.
    fn reopen(dir: &Path) -> SledStore {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match SledStore::open(dir) {
                Ok(store) => return store,
                Err(_) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(e) => panic!("reopen failed: {e}"),
            }
        }
    }

    #[test]
    fn reopening_moves_old_blobs_to_files_and_removes_orphans() {
        let (store, dir) = reopened_after(|store| {
            // As a store from before component files kept them.
            store.files.remove(&digest("d1"), Kind::Component).unwrap();
            store.files.remove(&digest("d1"), Kind::Artifact).unwrap();
            store.blobs.insert(digest("d1"), &b"abc"[..]).unwrap();
            store.artifacts.insert(digest("d1"), &b"art"[..]).unwrap();
            // Left by an upload that crashed before its record.
            store
                .files
                .put(&digest("d9"), Kind::Component, b"orphan")
                .unwrap();
        });
        assert_eq!(
            store.component_bytes(&digest("d1")).unwrap().unwrap(),
            b"abc"
        );
        assert_eq!(store.artifact(&digest("d1")).unwrap().unwrap(), b"art");
        assert!(store.blobs.is_empty() && store.artifacts.is_empty());
        assert!(store.component_bytes(&digest("d9")).unwrap().is_none());
        drop(store);
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn an_unreadable_connector_record_neither_stops_the_open_nor_loses_files() {
        let (store, dir) = reopened_after(|store| {
            store
                .connectors
                .insert("b@1.0.0", &b"{not json"[..])
                .unwrap();
        });
        assert_eq!(
            store.component_bytes(&digest("d1")).unwrap().unwrap(),
            b"abc"
        );
        assert!(store.connector("b@1.0.0").is_err());
        drop(store);
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn records_survive_reopen() {
        let (store, dir) = temp_store();
        store
            .put_connector(&connector("a@1.0.0", "d1"), b"abc", b"art")
            .unwrap();
        store
            .create_instance(&instance("i1", "a@1.0.0"), None)
            .unwrap();
        store
            .put_token(
                &[7; 32],
                &TokenRecord {
                    id: "t1".into(),
                    scope: "admin".into(),
                    name: None,
                    instances: Vec::new(),
                    created_at: "now".into(),
                    last_used_at: None,
                },
            )
            .unwrap();
        drop(store);
        let store = reopen(&dir);
        assert_eq!(store.connectors().unwrap().len(), 1);
        assert_eq!(store.instance("i1").unwrap().unwrap().connector, "a@1.0.0");
        assert!(store.has_tokens().unwrap());
        assert_eq!(store.token(&[7; 32]).unwrap().unwrap().scope, "admin");
        drop(store);
        std::fs::remove_dir_all(dir).ok();
    }
}

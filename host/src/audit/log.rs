//! [`AuditLog`]: the handle every part of the host appends records through,
//! and the one writer task that stores them.
//!
//! Why a queue and a writer: credential-use records come from the broker's
//! hot path, one per outbound attempt. A synchronous sled write (and fsync)
//! per request would put the disk inside every upstream call. Instead
//! records go into a bounded channel; the writer takes whatever has queued
//! up (up to [`MAX_BATCH`]) and stores it in one transaction with one
//! flush — group commit: the busier the host, the bigger the batches.
//!
//! Three ways in, by how much the caller may wait:
//!
//! - [`AuditLog::append`] (admin actions): waits for room *and* for the
//!   batch to be on disk, so an answered admin request has its record.
//! - [`AuditLog::submit`] (refused requests): waits for room only — a flood
//!   of bad tokens slows itself down rather than losing records.
//! - [`AuditLog::offer`] (credential use, from synchronous broker code):
//!   never waits. When the queue is full the record is dropped, *counted*
//!   and logged; the writer then stores an `audit.overflow` record with the
//!   count, so the gap is visible in the trail itself. With
//!   [`QUEUE_CAPACITY`] records of room this only happens when the disk
//!   stalls; blocking outbound calls on the audit disk instead would turn a
//!   slow disk into an outage of every connector.
//!
//! A hard kill loses what is still queued (at most one batch in flight plus
//! the queue); a graceful stop drains it ([`AuditLog::sync`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{mpsc, oneshot};

use super::record::{Actor, AuditKey, AuditRecord, Outcome, Resource, actions};
use crate::store::{Store, StoreResult};

/// Records the queue holds before [`AuditLog::offer`] starts dropping.
pub const QUEUE_CAPACITY: usize = 8192;
/// Records stored per transaction at most.
pub const MAX_BATCH: usize = 512;

enum Msg {
    /// A record, and whom to tell once it is stored (`true`) or lost.
    Record(Box<AuditRecord>, Option<oneshot::Sender<bool>>),
    /// Answered once everything queued before it is stored.
    Barrier(oneshot::Sender<()>),
}

/// State the handles and the writer share.
struct Shared {
    /// The next key's sequence number.
    seq: AtomicU64,
    /// Records dropped since the writer last recorded an overflow.
    dropped: AtomicU64,
}

impl Shared {
    fn key(&self, ms: u64) -> AuditKey {
        AuditKey {
            ms,
            seq: self.seq.fetch_add(1, Ordering::Relaxed),
        }
    }
}

/// Appends to the audit trail; cheap to clone.
#[derive(Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<Msg>,
    shared: Arc<Shared>,
}

impl AuditLog {
    /// Starts the writer for `store` (inside a tokio runtime) and returns
    /// the handle. Sequence numbers continue after the highest stored one.
    pub fn start(store: Arc<dyn Store>) -> StoreResult<Self> {
        Self::with_capacity(store, QUEUE_CAPACITY)
    }

    fn with_capacity(store: Arc<dyn Store>, capacity: usize) -> StoreResult<Self> {
        let shared = Arc::new(Shared {
            seq: AtomicU64::new(store.audit_seq()?.map_or(0, |s| s + 1)),
            dropped: AtomicU64::new(0),
        });
        let (tx, rx) = mpsc::channel(capacity);
        tokio::spawn(write_loop(store, rx, shared.clone()));
        Ok(Self { tx, shared })
    }

    /// A fresh key for a record that happens now.
    pub fn key(&self) -> AuditKey {
        self.shared.key(crate::api::unix_ms())
    }

    /// Queues `record` and waits until it is stored; `false` if it could
    /// not be (the writer logged why).
    pub async fn append(&self, record: AuditRecord) -> bool {
        let (ack, stored) = oneshot::channel();
        if self
            .tx
            .send(Msg::Record(Box::new(record), Some(ack)))
            .await
            .is_err()
        {
            self.lost("the audit writer has stopped");
            return false;
        }
        stored.await.unwrap_or(false)
    }

    /// Queues `record`, waiting for room but not for the write.
    pub async fn submit(&self, record: AuditRecord) {
        if self
            .tx
            .send(Msg::Record(Box::new(record), None))
            .await
            .is_err()
        {
            self.lost("the audit writer has stopped");
        }
    }

    /// Queues `record` without waiting; if the queue is full the record is
    /// dropped and counted (see the module doc).
    pub fn offer(&self, record: AuditRecord) {
        match self.tx.try_send(Msg::Record(Box::new(record), None)) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => self.lost("the audit queue is full"),
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.lost("the audit writer has stopped");
            }
        }
    }

    fn lost(&self, why: &str) {
        let dropped = self.shared.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        // The first loss of an episode and then every power of two: loud
        // enough to notice, bounded when the disk is stuck.
        if dropped.is_power_of_two() {
            tracing::warn!(
                dropped,
                reason = why,
                "audit records dropped (counted; an audit.overflow record follows)"
            );
        }
    }

    /// Waits until every record queued before this call is stored.
    pub async fn sync(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Msg::Barrier(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

/// Takes what has queued up, stores it in one batch, answers the waiters.
async fn write_loop(store: Arc<dyn Store>, mut rx: mpsc::Receiver<Msg>, shared: Arc<Shared>) {
    let mut buffer = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut buffer, MAX_BATCH).await > 0 {
        let mut records = Vec::with_capacity(buffer.len() + 1);
        let mut acks = Vec::new();
        let mut barriers = Vec::new();
        let dropped = shared.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            records.push(
                AuditRecord::new(
                    shared.key(crate::api::unix_ms()),
                    Actor::system("audit writer", None),
                    actions::AUDIT_OVERFLOW,
                    Resource::new("audit", None),
                    Outcome::success(),
                )
                .with("dropped", dropped),
            );
        }
        for msg in buffer.drain(..) {
            match msg {
                Msg::Record(record, ack) => {
                    records.push(*record);
                    acks.extend(ack);
                }
                Msg::Barrier(done) => barriers.push(done),
            }
        }
        // What is lost if this batch cannot be stored: its records, with
        // the overflow record standing for the drops it counts.
        let at_stake = records.len() as u64 + dropped.saturating_sub(1);
        let stored = if records.is_empty() {
            true
        } else {
            let count = records.len();
            let store = store.clone();
            match tokio::task::spawn_blocking(move || store.append_audit(&records)).await {
                Ok(Ok(())) => true,
                Ok(Err(e)) => {
                    tracing::error!(records = count, error = %e, "audit records could not be stored and are lost");
                    false
                }
                Err(e) => {
                    tracing::error!(records = count, error = %e, "audit writer failed; records lost");
                    false
                }
            }
        };
        if !stored {
            // Counted again, so the next batch that is stored says so.
            shared.dropped.fetch_add(at_stake, Ordering::Relaxed);
        }
        for ack in acks {
            let _ = ack.send(stored);
        }
        for done in barriers {
            let _ = done.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(log: &AuditLog, action: &str) -> AuditRecord {
        AuditRecord::new(
            log.key(),
            Actor::system("test", None),
            action,
            Resource::new("instance", Some("inst_1")),
            Outcome::success(),
        )
    }

    fn stored(store: &dyn Store) -> Vec<AuditRecord> {
        let mut out = Vec::new();
        store
            .scan_audit(None, None, &mut |r| {
                out.push(r);
                true
            })
            .unwrap();
        out.reverse();
        out
    }

    // A current-thread runtime: the writer runs only when the test awaits,
    // so the queue fills deterministically.
    #[tokio::test(flavor = "current_thread")]
    async fn a_full_queue_drops_counts_and_records_the_overflow() {
        let dir = std::env::temp_dir().join(format!(
            "pb-audit-log-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4()
        ));
        let store: Arc<dyn Store> = Arc::new(crate::store::SledStore::open(&dir).unwrap());
        let log = AuditLog::with_capacity(store.clone(), 2).unwrap();
        for _ in 0..5 {
            log.offer(record(&log, actions::CREDENTIAL_USE));
        }
        log.sync().await;
        let records = stored(&*store);
        let actions: Vec<&str> = records.iter().map(|r| r.action.as_str()).collect();
        assert_eq!(
            actions,
            [
                actions::CREDENTIAL_USE,
                actions::CREDENTIAL_USE,
                actions::AUDIT_OVERFLOW
            ],
            "two queued, three dropped and counted"
        );
        assert_eq!(records[2].detail["dropped"], 3);

        // `append` waits for the write; keys keep growing.
        assert!(log.append(record(&log, actions::RULE_CREATE)).await);
        let records = stored(&*store);
        assert_eq!(records.len(), 4);
        assert!(records.windows(2).all(|w| w[0].key < w[1].key));
        drop(log);

        // After a restart the sequence continues above the stored maximum.
        let again = AuditLog::start(store.clone()).unwrap();
        assert!(again.key().seq > records.iter().map(|r| r.key.seq).max().unwrap());
        drop((again, store));
        let _ = std::fs::remove_dir_all(dir);
    }
}

//! The retention sweep: the only way records leave the trail. Runs once
//! at start-up (before the host listens) and then hourly; a sweep that
//! deleted something is itself recorded (`audit.sweep`, with the count).
//! Sweeps that found nothing to delete are not recorded: on a quiet host
//! they would be most of the trail.

use std::sync::Arc;
use std::time::Duration;

use super::log::AuditLog;
use super::record::{Actor, AuditKey, AuditRecord, Outcome, Resource, actions};
use crate::store::{Store, StoreResult};

/// How often the background sweep runs.
pub const SWEEP_EVERY: Duration = Duration::from_secs(3600);

/// Deletes the records older than `retention` before `now_ms`; returns how
/// many.
pub fn sweep(store: &dyn Store, retention: Duration, now_ms: u64) -> StoreResult<u64> {
    let cutoff = now_ms.saturating_sub(retention.as_millis() as u64);
    store.sweep_audit(AuditKey::floor(cutoff))
}

/// Sweeps (off the async threads) and records the sweep if it deleted
/// anything; returns the count.
pub async fn sweep_and_record(
    log: &AuditLog,
    store: Arc<dyn Store>,
    retention: Duration,
) -> anyhow::Result<u64> {
    let now = crate::api::unix_ms();
    let deleted = tokio::task::spawn_blocking(move || sweep(&*store, retention, now)).await??;
    if deleted > 0 {
        tracing::info!(
            deleted,
            retention_days = retention.as_secs() / 86_400,
            "audit records past retention deleted"
        );
        let record = AuditRecord::new(
            log.key(),
            Actor::system("retention sweep", None),
            actions::AUDIT_SWEEP,
            Resource::new("audit", None),
            Outcome::success(),
        )
        .with("count", deleted)
        .with("retentionDays", retention.as_secs() / 86_400);
        log.append(record).await;
    }
    Ok(deleted)
}

/// Sweeps every [`SWEEP_EVERY`] until the process ends (the start-up sweep
/// is the caller's).
pub fn spawn_sweeper(log: AuditLog, store: Arc<dyn Store>, retention: Duration) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(SWEEP_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick is immediate; the start-up sweep just ran.
        every.tick().await;
        loop {
            every.tick().await;
            if let Err(e) = sweep_and_record(&log, store.clone(), retention).await {
                tracing::error!(error = %e, "audit retention sweep failed");
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::record::ActorKind;

    const DAY: u64 = 86_400_000;

    #[test]
    fn only_records_older_than_the_retention_go() {
        let dir = std::env::temp_dir().join(format!(
            "pb-audit-sweep-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4()
        ));
        let store = crate::store::SledStore::open(&dir).unwrap();
        let now = 1_800_000_000_000;
        let ages = [100 * DAY, 31 * DAY, 30 * DAY + 1, 30 * DAY, DAY, 0];
        let records: Vec<AuditRecord> = ages
            .iter()
            .enumerate()
            .map(|(i, age)| {
                AuditRecord::new(
                    AuditKey {
                        ms: now - age,
                        seq: i as u64,
                    },
                    Actor {
                        kind: ActorKind::System,
                        id: None,
                        name: None,
                    },
                    actions::RULE_CREATE,
                    Resource::new("rule", None),
                    Outcome::success(),
                )
            })
            .collect();
        store.append_audit(&records).unwrap();
        let retention = Duration::from_millis(30 * DAY);
        assert_eq!(sweep(&store, retention, now).unwrap(), 3);
        assert_eq!(sweep(&store, retention, now).unwrap(), 0, "idempotent");
        let mut left = Vec::new();
        store
            .scan_audit(None, None, &mut |r| {
                left.push(r.key.seq);
                true
            })
            .unwrap();
        assert_eq!(left, [5, 4, 3], "newest first; exactly 30 days old is kept");
        drop(store);
        let _ = std::fs::remove_dir_all(dir);
    }
}

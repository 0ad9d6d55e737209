//! Calls each thread has recorded and not yet folded into the shared
//! figures.
//!
//! Why: every call used to take one mutex shared by all workers, look its
//! instance up, and add itself to three slots (total, minute, hour). Under
//! `wrk -t2 -c32` against `echo` (the load of `scripts/bench-load`) that
//! had 2.66 % of the host's samples in a DWARF profile, some of them
//! waiting on the lock (0.93 % after this module). Now a call adds itself
//! once, to its thread's pending figures for its instance and minute,
//! under a lock only that thread and readers take. The pending figures are folded into the
//! shared ones when the thread's next call of the instance falls in
//! another minute (or another connector version), and by every read.
//!
//! Memory stays bounded: at most one pending minute per thread and
//! instance, and a thread's figures are folded (and its shard dropped) by
//! the first read after it exits.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use super::bucket::{CallOutcome, Calls};

/// One thread's not yet folded calls of one instance, all in one minute.
#[derive(Debug)]
pub struct Pending {
    /// The connector version the calls ran.
    pub connector: String,
    /// The minute (Unix seconds / 60) the calls ended in.
    pub minute: u64,
    /// When the first of them ended.
    pub since: SystemTime,
    /// The calls.
    pub calls: Calls,
    /// When one last succeeded.
    pub last_success: Option<SystemTime>,
    /// When one last failed, and with which code.
    pub last_failure: Option<(SystemTime, &'static str)>,
}

impl Pending {
    fn new(connector: &str, minute: u64, now: SystemTime) -> Self {
        Self {
            connector: connector.to_owned(),
            minute,
            since: now,
            calls: Calls::default(),
            last_success: None,
            last_failure: None,
        }
    }

    fn add(&mut self, outcome: &CallOutcome<'_>, now: SystemTime) {
        self.calls.add(outcome);
        match outcome.error {
            None => self.last_success = Some(now),
            Some(code) => self.last_failure = Some((now, code)),
        }
    }
}

/// One thread's pending figures of one [`super::Usage`], by instance id.
type Shard = Mutex<HashMap<String, Pending>>;

fn lock(shard: &Shard) -> MutexGuard<'_, HashMap<String, Pending>> {
    // Each change leaves the map consistent; a panic elsewhere while
    // holding the lock does not invalidate it.
    shard.lock().unwrap_or_else(|e| e.into_inner())
}

/// The shards of one [`super::Usage`]: one per thread that recorded a call.
pub struct Shards {
    /// Tells this `Usage`'s shard apart in a thread's list (tests run
    /// several hosts, so several `Usage`s, in one process).
    id: u64,
    all: Mutex<Vec<Arc<Shard>>>,
}

impl Default for Shards {
    fn default() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        Self {
            id: NEXT.fetch_add(1, Ordering::Relaxed),
            all: Mutex::default(),
        }
    }
}

thread_local! {
    /// This thread's shard of each `Usage` it recorded calls for, by id.
    static MINE: RefCell<Vec<(u64, Arc<Shard>)>> = const { RefCell::new(Vec::new()) };
}

impl Shards {
    pub(super) fn all(&self) -> MutexGuard<'_, Vec<Arc<Shard>>> {
        self.all.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds one call of `instance` to this thread's pending figures.
    /// Returns figures for the caller to fold now: the pending ones the
    /// call replaced (another minute or another connector version), or,
    /// on a thread that is exiting (no shard any more), the call itself.
    pub fn record(
        &self,
        instance: &str,
        connector: &str,
        outcome: &CallOutcome<'_>,
        now: SystemTime,
    ) -> Option<Pending> {
        let minute = super::unix_secs(now) / 60;
        let fresh = || {
            let mut p = Pending::new(connector, minute, now);
            p.add(outcome, now);
            p
        };
        let record = |shard: &Shard| {
            let mut pending = lock(shard);
            match pending.get_mut(instance) {
                Some(p) if p.minute == minute && p.connector == connector => {
                    p.add(outcome, now);
                    None
                }
                Some(p) => Some(std::mem::replace(p, fresh())),
                None => {
                    pending.insert(instance.to_owned(), fresh());
                    None
                }
            }
        };
        MINE.try_with(|mine| {
            let mut mine = mine.borrow_mut();
            if let Some((_, shard)) = mine.iter().find(|(id, _)| *id == self.id) {
                return record(shard);
            }
            // Shards whose `Usage` is gone are held by this list only.
            mine.retain(|(_, shard)| Arc::strong_count(shard) > 1);
            let shard = Arc::new(Shard::default());
            self.all().push(shard.clone());
            let stale = record(&shard);
            mine.push((self.id, shard));
            stale
        })
        .unwrap_or_else(|_| Some(fresh()))
    }

    /// Takes every thread's pending figures, oldest minute first, and drops
    /// the shards of threads that exited.
    pub fn drain(&self) -> Vec<(String, Pending)> {
        let mut drained = Vec::new();
        self.all().retain(|shard| {
            drained.extend(lock(shard).drain());
            // Only this list holds the shard of an exited thread.
            Arc::strong_count(shard) > 1
        });
        // A later minute's connector version wins when both are folded.
        drained.sort_by_key(|(_, p)| p.minute);
        drained
    }
}

//! Warm guest instances: after a clean call, the guest instance and its
//! store are kept, and the next call of the *same* Plugboard instance (same
//! connector version, same config, same memory cap) runs in it instead of
//! instantiating anew.
//!
//! Why: instantiation is most of what a call costs — tens of microseconds
//! for a Rust guest, hundreds for JavaScript and Python, whose runtimes
//! are large — while a second call of one instance needs nothing a fresh
//! instance would give it. The tenant, the config and the memory cap are
//! the same (they are the key), and credentials never enter a guest: the
//! host applies them per request through the per-call egress hooks.
//!
//! Reset for every call: the deadline, the egress hooks (policy,
//! credentials, journal), the invocation's identity and the captured
//! stderr. What persists is the guest's own memory and globals, as in any
//! long-lived worker serving one account; operators who want a fresh
//! instance for every call set `warm_instances = 0`.
//!
//! A store is only kept when the call ended cleanly (a result or the
//! guest's own error: never after a trap, a timeout or a host failure) and
//! left nothing in its resource table (no response body, stream or request
//! still open, which would keep connections and metering alive across
//! calls). It is retired after [`MAX_USES`] calls or [`MAX_AGE`], and
//! dropped once idle for [`MAX_IDLE`]. Idle stores hold pooling-allocator
//! slots, so the host-wide number is bounded by `Limits::warm_instances`,
//! at most [`PER_KEY`] per key, and all are evicted when the pool runs out
//! of slots.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wasmtime::Store;

use super::bindings::Connector;
use super::state::GuestState;

/// Calls one warm instance may serve before it is retired.
pub const MAX_USES: u32 = 10_000;
/// Age at which a warm instance is retired.
pub const MAX_AGE: Duration = Duration::from_secs(300);
/// Idle time after which a warm instance is dropped.
pub const MAX_IDLE: Duration = Duration::from_secs(30);
/// Idle instances kept per Plugboard instance (its concurrent calls).
pub const PER_KEY: usize = 8;

/// Who may reuse a warm instance: the same Plugboard instance with the
/// same config and memory cap. Idle instances are filed by instance id;
/// config and cap are compared when one is taken (by pointer first, then
/// by value), so a call never serializes or hashes its config.
#[derive(Debug, Clone)]
pub struct WarmKey {
    /// The Plugboard instance id.
    pub instance: Arc<str>,
    /// Its config.
    pub config: Arc<serde_json::Value>,
    /// Its memory cap.
    pub memory_bytes: u64,
}

impl WarmKey {
    fn fits(&self, other: &WarmKey) -> bool {
        self.memory_bytes == other.memory_bytes
            && (Arc::ptr_eq(&self.config, &other.config) || self.config == other.config)
    }
}

/// An idle guest instance and its store.
pub struct Warm {
    /// The store, data included.
    pub store: Store<GuestState>,
    /// The instance's exports.
    pub instance: Connector,
    /// Calls served so far.
    pub uses: u32,
    /// When it was instantiated.
    pub born: Instant,
    idle_since: Instant,
    /// Set when it is filed: the config and cap it was used with.
    key: Option<WarmKey>,
}

impl Warm {
    /// A freshly used instance.
    pub fn new(store: Store<GuestState>, instance: Connector, uses: u32, born: Instant) -> Self {
        Self {
            store,
            instance,
            uses,
            born,
            idle_since: Instant::now(),
            key: None,
        }
    }
}

/// The idle instances of one connector version.
#[derive(Default)]
pub struct WarmPool {
    idle: Mutex<Idle>,
}

#[derive(Default)]
struct Idle {
    by_key: HashMap<Arc<str>, Vec<Warm>>,
    /// Sweeping walks every idle instance: at most once a second.
    last_sweep: Option<Instant>,
}

impl WarmPool {
    fn lock(&self) -> std::sync::MutexGuard<'_, Idle> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An idle instance for `key`, if one is fit for another call.
    pub fn take(&self, key: &WarmKey, budget: &AtomicUsize) -> Option<Warm> {
        let mut guard = self.lock();
        let idle = &mut guard.by_key;
        let list = idle.get_mut(&key.instance)?;
        // One clock read for every check (reads are ~1 % of the host's
        // CPU per call under load, perf).
        let now = Instant::now();
        // Unfit ones (expired, or from before a config change) are dropped
        // on the way.
        while let Some(warm) = list.pop() {
            budget.fetch_sub(1, Ordering::Relaxed);
            if now.duration_since(warm.idle_since) < MAX_IDLE
                && now.duration_since(warm.born) < MAX_AGE
                && warm.key.as_ref().is_some_and(|k| k.fits(key))
            {
                return Some(warm);
            }
        }
        idle.remove(&key.instance);
        None
    }

    /// Keeps an instance for reuse if the budget allows; drops it otherwise
    /// (and sweeps idle ones, so a busy host does not keep stale stores).
    pub fn put(&self, key: WarmKey, warm: Warm, budget: &AtomicUsize, capacity: usize) {
        // `Warm::new` read the clock a moment ago: no need to read it again.
        let now = warm.idle_since;
        if warm.uses >= MAX_USES || now.duration_since(warm.born) >= MAX_AGE {
            return;
        }
        let mut idle = self.lock();
        if idle
            .last_sweep
            .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1))
        {
            idle.last_sweep = Some(now);
            sweep(&mut idle.by_key, budget, now);
        }
        let list = idle.by_key.entry(key.instance.clone()).or_default();
        if list.len() >= PER_KEY || budget.load(Ordering::Relaxed) >= capacity {
            return;
        }
        budget.fetch_add(1, Ordering::Relaxed);
        list.push(Warm {
            key: Some(key),
            ..warm
        });
    }

    /// Drops every idle instance.
    pub fn clear(&self, budget: &AtomicUsize) {
        let mut idle = self.lock();
        let n: usize = idle.by_key.values().map(Vec::len).sum();
        idle.by_key.clear();
        budget.fetch_sub(n, Ordering::Relaxed);
    }
}

/// Drops instances idle for longer than [`MAX_IDLE`].
fn sweep(idle: &mut HashMap<Arc<str>, Vec<Warm>>, budget: &AtomicUsize, now: Instant) {
    let mut dropped = 0;
    idle.retain(|_, list| {
        let before = list.len();
        list.retain(|w| now.duration_since(w.idle_since) < MAX_IDLE);
        dropped += before - list.len();
        !list.is_empty()
    });
    budget.fetch_sub(dropped, Ordering::Relaxed);
}

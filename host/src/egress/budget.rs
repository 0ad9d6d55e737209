//! Rate budgets: token buckets that outbound requests wait in, shared across
//! invocations, and that learn from the upstream's rate-limit headers.
//!
//! A request lists the budgets it draws from — typically its instance's
//! (`instance:<id>`) and the shared one of its upstream and credential
//! (`upstream:<scheme://host:port>|cred:<credential id>`) — and
//! [`Budgets::acquire`] admits it once every one of them has room. Keys are
//! shown in errors and stats, so they must not contain secrets (ids are
//! fine).
//!
//! # The bucket arithmetic
//!
//! Each bucket is [`governor`]'s GCRA (a token bucket expressed as one
//! "theoretical arrival time"). Governor is used through its two extension
//! points rather than its ready-made limiters:
//!
//! - a clock that we *pin* to the instant we want a decision for, so a
//!   bucket can be asked "could a request go at time T?" for a T in the
//!   future, and so everything runs on `tokio::time` (tests use
//!   `tokio::time::pause` and are exact);
//! - a state store whose value we can read and restore, so a question can
//!   be asked without consuming anything, and a reservation can be handed
//!   back when its waiter is cancelled.
//!
//! All bucket operations run under one mutex and never await, so a decision
//! over several buckets is atomic.
//!
//! # Waiting, deadlines and several buckets
//!
//! `acquire` computes, without consuming, the earliest instant `T` at which
//! every listed bucket admits one request (a learned pause counts as "not
//! before the pause ends"). Then:
//!
//! - `T` is now: take one token from each bucket, done.
//! - `T` is after the deadline: fail at once with
//!   [`BudgetError::Exceeded`] and `retry_after = T - now`. Nothing was
//!   consumed; the request never sleeps only to fail at its deadline.
//! - Otherwise the request queues: it *reserves* its slot at `T` in the
//!   bucket(s) that decide `T` (GCRA virtual scheduling: later arrivals are
//!   scheduled after it, so each bucket's queue is FIFO and costs no
//!   polling), sleeps until `T`, and then takes the other buckets' tokens.
//!
//! Only the deciding buckets are reserved early. Reserving a future slot in
//! a GCRA bucket blocks every later-arriving request of that bucket until
//! that slot, so reserving, say, the instance budget for a request stuck
//! behind a slow shared upstream budget would stall the instance's requests
//! to *other* upstreams too. The trade-off: if a non-deciding bucket has
//! filled up by the time the reservation comes due, the request gives its
//! reservation back (if nobody queued behind it; otherwise the slot goes
//! unused — the budget is under-used, never exceeded) and queues again, at
//! the back. A request is thus admitted only when all its buckets admit it
//! at that instant, every bucket counts it at the instant it is sent, and a
//! failure never consumes anything.
//!
//! At most `max_waiters` requests queue per bucket; beyond that `acquire`
//! fails at once with [`BudgetError::QueueFull`].
//!
//! # Learning
//!
//! [`Budgets::learn`] reads a response's rate-limit headers (see
//! [`learned_pause`]) and pauses the bucket until the upstream's reset: no
//! request of that budget is admitted before then, including ones already
//! queued (they re-check when their turn comes).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::num::{NonZeroU32, NonZeroU64};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::{NotKeyed, StateStore};
use governor::{Quota, RateLimiter};
use http::HeaderMap;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::category::ErrorCategory;
use super::retry::{self, MAX_RETRY_AFTER};

/// Default bound of the queue of each bucket.
pub const DEFAULT_MAX_WAITERS: usize = 1024;

/// Serde for a `Duration` as integer milliseconds, the unit of the `…Ms`
/// fields in the API and config.
pub(crate) mod duration_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

/// A budget: `requests` per `per`, of which up to `burst` may go at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RateSpec {
    /// Requests per period (the sustained rate).
    pub requests: u32,
    /// The period.
    #[serde(rename = "perMs", with = "duration_ms")]
    #[schema(value_type = u64)]
    pub per: Duration,
    /// Requests that may go back to back after a quiet spell.
    pub burst: u32,
}

/// An invalid [`RateSpec`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RateSpecError {
    /// A field is zero.
    #[error("rate budget {0} must be greater than zero")]
    Zero(&'static str),
    /// `per / requests` is below a nanosecond.
    #[error("rate budget is faster than one request per nanosecond")]
    TooFast,
}

impl RateSpec {
    /// Rejects zero values and rates the clock cannot represent.
    pub fn validate(&self) -> Result<(), RateSpecError> {
        self.quota().map(|_| ())
    }

    fn quota(&self) -> Result<Quota, RateSpecError> {
        let burst = NonZeroU32::new(self.burst).ok_or(RateSpecError::Zero("burst"))?;
        if self.requests == 0 {
            return Err(RateSpecError::Zero("requests"));
        }
        if self.per.is_zero() {
            return Err(RateSpecError::Zero("perMs"));
        }
        let quota = Quota::with_period(self.per / self.requests).ok_or(RateSpecError::TooFast)?;
        Ok(quota.allow_burst(burst))
    }
}

/// Names one bucket, e.g. `instance:inst_…` or
/// `upstream:https://api.example.com:443|cred:cred_…`.
#[derive(Clone, Hash, Eq, PartialEq, Ord, PartialOrd, Debug)]
pub struct BudgetKey(pub String);

impl BudgetKey {
    /// The budget shared by every request to `upstream` (`scheme://host:port`)
    /// made with the credential `credential` (an identity, never a secret;
    /// `None`: requests without credentials).
    pub fn upstream(upstream: &str, credential: Option<&str>) -> Self {
        Self(format!(
            "upstream:{upstream}|cred:{}",
            credential.unwrap_or("none")
        ))
    }

    /// The instance's own budget.
    pub fn instance(instance: &str) -> Self {
        Self(format!("instance:{instance}"))
    }
}

impl fmt::Display for BudgetKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a request was not admitted. Nothing was consumed from any budget.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BudgetError {
    /// The earliest admission is after the deadline.
    #[error("rate budget {key} exceeded; retry after {retry_after:?}")]
    Exceeded {
        /// The budget that decided the wait.
        key: BudgetKey,
        /// Until the earliest admission, as of the refusal.
        retry_after: Duration,
    },
    /// Too many requests are already queued on this budget.
    #[error("too many requests queued on rate budget {key}; retry after {retry_after:?}")]
    QueueFull {
        /// The full budget.
        key: BudgetKey,
        /// Until the earliest admission, as of the refusal.
        retry_after: Duration,
    },
    /// The budget's spec is invalid (a configuration error).
    #[error("rate budget {key}: {error}")]
    InvalidSpec {
        /// The budget.
        key: BudgetKey,
        /// What is wrong.
        error: RateSpecError,
    },
}

impl BudgetError {
    /// The hint for a `Retry-After`, if the failure is a rate limit.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Exceeded { retry_after, .. } | Self::QueueFull { retry_after, .. } => {
                Some(*retry_after)
            }
            Self::InvalidSpec { .. } => None,
        }
    }

    /// Rate-limited, or configuration for an invalid spec.
    pub fn category(&self) -> ErrorCategory {
        match self {
            Self::Exceeded { .. } | Self::QueueFull { .. } => ErrorCategory::RateLimited,
            Self::InvalidSpec { .. } => ErrorCategory::Configuration,
        }
    }
}

/// How long an admitted request queued (zero if it went at once).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Waited {
    /// Time from the call to admission.
    pub duration: Duration,
    /// Whether the request had to wait in a queue (or a learned pause).
    pub queued: bool,
}

/// One bucket, for stats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetSnapshot {
    /// The bucket.
    pub key: BudgetKey,
    /// Its spec; `None` if only a pause has been learned for it so far.
    pub spec: Option<RateSpec>,
    /// End of a learned pause still in effect.
    pub paused_until: Option<SystemTime>,
    /// Requests queued on it.
    pub waiters: usize,
}

/// How long a response asks the budget it was sent under to pause, from
/// `now`; `None` if it does not.
///
/// - `Retry-After` on 429 and 503 (and on 403, which GitHub uses for its
///   secondary rate limits), as delta-seconds or an HTTP-date.
/// - A remaining count of 0 in `X-RateLimit-Remaining`,
///   `RateLimit-Remaining` or `X-Rate-Limit-Remaining`, with the reset in
///   the same family's `…-Reset` (or, failing that, another family's).
///   Reset values above 10^9 are Unix epoch seconds (GitHub, Twitter),
///   above 10^12 epoch milliseconds; smaller ones are seconds from now (the
///   IETF `RateLimit-Reset` draft, most others). A remaining 0 without a
///   reset teaches nothing: the retry backoff handles what follows.
///
/// The remaining-0 rule applies to any status, since the 2xx that used the
/// last unit is the one that says so. When both rules apply, the later end
/// wins; pauses are capped at [`MAX_RETRY_AFTER`].
pub fn learned_pause(status: u16, headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    const FAMILIES: [(&str, &str); 3] = [
        ("x-ratelimit-remaining", "x-ratelimit-reset"),
        ("ratelimit-remaining", "ratelimit-reset"),
        ("x-rate-limit-remaining", "x-rate-limit-reset"),
    ];
    let header = |name: &str| headers.get(name)?.to_str().ok().map(str::trim);

    let mut pause = None;
    if matches!(status, 403 | 429 | 503) {
        pause = retry::retry_after(headers, now);
    }
    for (i, (remaining, reset)) in FAMILIES.iter().enumerate() {
        if header(remaining).and_then(|v| v.parse::<u64>().ok()) != Some(0) {
            continue;
        }
        // Own family first, then the others in order.
        let resets = std::iter::once(*reset).chain(
            FAMILIES
                .iter()
                .enumerate()
                .filter(move |(j, _)| *j != i)
                .map(|(_, (_, r))| *r),
        );
        if let Some(d) = resets.filter_map(|r| parse_reset(header(r)?, now)).next() {
            pause = pause.max(Some(d));
        }
    }
    pause.map(|d| d.min(MAX_RETRY_AFTER))
}

/// A `…-Reset` value: epoch seconds, epoch milliseconds or delta seconds.
fn parse_reset(value: &str, now: SystemTime) -> Option<Duration> {
    const EPOCH_SECONDS: Duration = Duration::from_secs(1_000_000_000);
    const EPOCH_MILLIS: Duration = Duration::from_secs(1_000_000_000_000);
    let v = retry::parse_seconds(value)?;
    let at = if v > EPOCH_MILLIS {
        SystemTime::UNIX_EPOCH + v / 1000
    } else if v > EPOCH_SECONDS {
        SystemTime::UNIX_EPOCH + v
    } else {
        return Some(v);
    };
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Governor's clock, pinned by us to the instant a decision is for:
/// nanoseconds since [`Budgets`]' epoch.
#[derive(Debug, Default)]
struct PinnedClock(AtomicU64);

impl PinnedClock {
    fn pin(&self, at: u64) {
        self.0.store(at, Ordering::Relaxed);
    }
}

impl Clock for PinnedClock {
    type Instant = Nanos;

    fn now(&self) -> Nanos {
        Nanos::from(self.0.load(Ordering::Relaxed))
    }
}

/// Governor's GCRA state (the theoretical arrival time, 0 = fresh), shared
/// with us so it can be read and restored.
#[derive(Debug, Default, Clone)]
struct SharedTat(Arc<AtomicU64>);

impl SharedTat {
    fn get(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }

    fn set(&self, tat: u64) {
        self.0.store(tat, Ordering::Release);
    }
}

impl StateStore for SharedTat {
    type Key = NotKeyed;

    fn measure_and_replace<T, F, E>(&self, _key: &NotKeyed, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        // Only ever used under `Budgets`' lock, so no writer can interleave.
        let tat = NonZeroU64::new(self.get()).map(|n| Nanos::from(n.get()));
        let (result, next) = f(tat)?;
        self.set(next.as_u64());
        Ok(result)
    }
}

/// One token bucket: governor's GCRA, asked at instants of our choosing.
struct Gcra {
    limiter: RateLimiter<NotKeyed, SharedTat, PinnedClock, NoOpMiddleware<Nanos>>,
    tat: SharedTat,
}

impl Gcra {
    fn new(quota: Quota) -> Self {
        let tat = SharedTat::default();
        // The clock reads 0 here, so governor's own "start" is our epoch.
        let limiter = RateLimiter::new(quota, tat.clone(), PinnedClock::default());
        Self { limiter, tat }
    }

    /// The earliest instant ≥ `at` at which one request conforms; consumes
    /// nothing.
    fn earliest(&self, at: u64) -> u64 {
        self.limiter.clock().pin(at);
        let saved = self.tat.get();
        match self.limiter.check() {
            Ok(()) => {
                self.tat.set(saved);
                at
            }
            Err(not_until) => not_until.earliest_possible().as_u64(),
        }
    }

    /// Takes one request at `at`, returning the state before and after, or
    /// `None` (and no change) if it does not conform then.
    fn take(&self, at: u64) -> Option<(u64, u64)> {
        self.limiter.clock().pin(at);
        let before = self.tat.get();
        self.limiter.check().ok()?;
        Some((before, self.tat.get()))
    }
}

struct Bucket {
    /// Distinguishes a bucket from its replacement after a spec change.
    id: u64,
    spec: RateSpec,
    gcra: Gcra,
}

struct Pause {
    /// Nanoseconds since the epoch.
    until: u64,
    until_wall: SystemTime,
}

#[derive(Default)]
struct Entry {
    /// `None` while only a pause is known (learned before first use).
    bucket: Option<Bucket>,
    pause: Option<Pause>,
    waiters: usize,
}

impl Entry {
    /// Earliest admission ≥ `at`, counting the pause.
    fn earliest(&self, at: u64) -> u64 {
        let at = self.pause.as_ref().map_or(at, |p| at.max(p.until));
        self.bucket.as_ref().map_or(at, |b| b.gcra.earliest(at))
    }

    fn paused_at(&self, at: u64) -> bool {
        self.pause.as_ref().is_some_and(|p| p.until > at)
    }
}

#[derive(Default)]
struct Inner {
    entries: HashMap<BudgetKey, Entry>,
    next_id: u64,
}

/// All rate budgets of the host. `Send + Sync`; share it via `Arc`.
pub struct Budgets {
    inner: Mutex<Inner>,
    max_waiters: usize,
    /// Instant 0 of the buckets' clock.
    epoch: Instant,
}

impl fmt::Debug for Budgets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Budgets")
            .field("buckets", &self.lock().entries.len())
            .field("max_waiters", &self.max_waiters)
            .finish()
    }
}

impl Default for Budgets {
    fn default() -> Self {
        Self::new()
    }
}

impl Budgets {
    /// Empty registry with the default queue bound.
    pub fn new() -> Self {
        Self::with_max_waiters(DEFAULT_MAX_WAITERS)
    }

    /// Empty registry queueing at most `max_waiters` requests per bucket.
    pub fn with_max_waiters(max_waiters: usize) -> Self {
        Self {
            inner: Mutex::default(),
            max_waiters,
            epoch: Instant::now(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Critical sections leave the state consistent; a panic elsewhere
        // while holding the lock does not invalidate it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn nanos(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    fn instant(&self, nanos: u64) -> Instant {
        self.epoch + Duration::from_nanos(nanos)
    }

    /// Waits until every listed budget admits one request, or fails at once
    /// if that cannot happen by `deadline` (see the module doc). Buckets
    /// are created on first use; a bucket whose spec changed is replaced by
    /// a fresh one. A key listed twice counts once (first spec wins). A key
    /// listed without a rate (`None`) only holds the request back while a
    /// learned pause is in effect, so an upstream's `Retry-After` is
    /// honoured even where nobody configured a budget.
    ///
    /// Cancel-safe: dropping the future gives back a reservation nobody has
    /// queued behind, and leaves the queue.
    pub async fn acquire<S: Copy + Into<Option<RateSpec>>>(
        &self,
        wants: &[(BudgetKey, S)],
        deadline: Instant,
    ) -> Result<Waited, BudgetError> {
        let started = Instant::now();
        let mut wanted: BTreeMap<&BudgetKey, Option<RateSpec>> = BTreeMap::new();
        for (key, spec) in wants {
            wanted.entry(key).or_insert((*spec).into());
        }
        for (key, spec) in &wanted {
            if let Some(spec) = spec {
                spec.validate().map_err(|error| BudgetError::InvalidSpec {
                    key: (*key).clone(),
                    error,
                })?;
            }
        }
        let mut ticket = Ticket {
            budgets: self,
            keys: wanted.into_iter().map(|(k, s)| (k.clone(), s)).collect(),
            held: Vec::new(),
            queued: false,
        };
        let mut queued = false;
        while let Some(at) = ticket.round(Instant::now(), deadline)? {
            queued = true;
            tokio::time::sleep_until(at).await;
        }
        Ok(Waited {
            duration: Instant::now().saturating_duration_since(started),
            queued,
        })
    }

    /// Learns from a response sent under budget `key` (see
    /// [`learned_pause`]): pauses the bucket until the upstream's reset.
    /// A pause is only ever extended, never shortened.
    pub fn learn(&self, key: &BudgetKey, status: u16, headers: &HeaderMap, now: SystemTime) {
        let Some(delay) = learned_pause(status, headers, now).filter(|d| !d.is_zero()) else {
            return;
        };
        let until = self.nanos(Instant::now() + delay);
        let mut inner = self.lock();
        let entry = inner.entries.entry(key.clone()).or_default();
        if entry.pause.as_ref().is_none_or(|p| p.until < until) {
            entry.pause = Some(Pause {
                until,
                until_wall: now + delay,
            });
        }
    }

    /// End of the learned pause of `key`, if one is in effect.
    pub fn paused_until(&self, key: &BudgetKey) -> Option<SystemTime> {
        let now = self.nanos(Instant::now());
        let inner = self.lock();
        let entry = inner.entries.get(key)?;
        entry
            .paused_at(now)
            .then(|| entry.pause.as_ref().map(|p| p.until_wall))
            .flatten()
    }

    /// Every known bucket, sorted by key.
    pub fn snapshot(&self) -> Vec<BudgetSnapshot> {
        let now = self.nanos(Instant::now());
        let inner = self.lock();
        let mut out: Vec<BudgetSnapshot> = inner
            .entries
            .iter()
            .map(|(key, e)| BudgetSnapshot {
                key: key.clone(),
                spec: e.bucket.as_ref().map(|b| b.spec),
                paused_until: e
                    .pause
                    .as_ref()
                    .filter(|p| p.until > now)
                    .map(|p| p.until_wall),
                waiters: e.waiters,
            })
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        out
    }
}

/// A slot reserved in one bucket.
struct Held {
    key: usize,
    bucket: u64,
    at: u64,
    /// GCRA state before and after the reservation, to give it back.
    before: u64,
    after: u64,
}

/// One `acquire` in progress: its buckets (sorted), its reservations, and
/// whether it is counted in their queues. Dropping it unfinished gives both
/// back.
struct Ticket<'a> {
    budgets: &'a Budgets,
    /// `None`: the key has no rate of its own, only learned pauses apply.
    keys: Vec<(BudgetKey, Option<RateSpec>)>,
    held: Vec<Held>,
    queued: bool,
}

impl Ticket<'_> {
    /// One decision: `None` = admitted (tokens taken), `Some(t)` = sleep
    /// until `t` and call again.
    fn round(&mut self, now: Instant, deadline: Instant) -> Result<Option<Instant>, BudgetError> {
        let b = self.budgets;
        let now = b.nanos(now);
        let mut guard = b.lock();
        let inner = &mut *guard;
        for (key, spec) in &self.keys {
            match spec {
                Some(spec) => ensure_bucket(inner, key, *spec),
                None => {
                    inner.entries.entry(key.clone()).or_default();
                }
            }
        }

        // A reservation came due: go if it still stands (no pause, bucket
        // not replaced) and every other bucket admits the request now.
        if !self.held.is_empty() {
            let due = self.held.iter().all(|h| {
                let e = &inner.entries[&self.keys[h.key].0];
                h.at <= now
                    && !e.paused_at(now)
                    && e.bucket.as_ref().is_some_and(|bk| bk.id == h.bucket)
            });
            let others_ready = self
                .unheld()
                .all(|i| inner.entries[&self.keys[i].0].earliest(now) <= now);
            if due && others_ready {
                for i in self.unheld().collect::<Vec<_>>() {
                    take(inner, &self.keys[i].0, now);
                }
                self.held.clear();
                self.dequeue(inner);
                return Ok(None);
            }
            self.give_back(inner);
        }

        // Earliest instant every bucket admits the request, and which
        // bucket(s) decide it.
        let earliest: Vec<u64> = self
            .keys
            .iter()
            .map(|(key, _)| inner.entries[key].earliest(now))
            .collect();
        let at = earliest.iter().copied().max().unwrap_or(now);
        let decider = earliest.iter().position(|e| *e == at).unwrap_or(0);
        let retry_after = Duration::from_nanos(at - now);
        if at <= now {
            for (key, _) in &self.keys {
                take(inner, key, now);
            }
            self.dequeue(inner);
            return Ok(None);
        }
        if at > b.nanos(deadline) {
            self.dequeue(inner);
            return Err(BudgetError::Exceeded {
                key: self.keys[decider].0.clone(),
                retry_after,
            });
        }
        if !self.queued {
            if let Some((key, _)) = self
                .keys
                .iter()
                .find(|(key, _)| inner.entries[key].waiters >= b.max_waiters)
            {
                return Err(BudgetError::QueueFull {
                    key: key.clone(),
                    retry_after,
                });
            }
            for (key, _) in &self.keys {
                if let Some(e) = inner.entries.get_mut(key) {
                    e.waiters += 1;
                }
            }
            self.queued = true;
        }
        for (i, e) in earliest.iter().enumerate() {
            if *e != at {
                continue;
            }
            let Some(bucket) = inner.entries[&self.keys[i].0].bucket.as_ref() else {
                continue; // a pause-only key: nothing to reserve, re-check at `at`
            };
            if let Some((before, after)) = bucket.gcra.take(at) {
                self.held.push(Held {
                    key: i,
                    bucket: bucket.id,
                    at,
                    before,
                    after,
                });
            }
        }
        Ok(Some(b.instant(at)))
    }

    /// Indices of the buckets without a reservation.
    fn unheld(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.keys.len()).filter(|i| !self.held.iter().any(|h| h.key == *i))
    }

    /// Hands reservations back where nobody has reserved after them;
    /// otherwise the slot just goes unused.
    fn give_back(&mut self, inner: &mut Inner) {
        for h in self.held.drain(..) {
            let bucket = inner
                .entries
                .get(&self.keys[h.key].0)
                .and_then(|e| e.bucket.as_ref());
            if let Some(bucket) = bucket
                && bucket.id == h.bucket
                && bucket.gcra.tat.get() == h.after
            {
                bucket.gcra.tat.set(h.before);
            }
        }
    }

    fn dequeue(&mut self, inner: &mut Inner) {
        if !std::mem::take(&mut self.queued) {
            return;
        }
        for (key, _) in &self.keys {
            if let Some(e) = inner.entries.get_mut(key) {
                e.waiters = e.waiters.saturating_sub(1);
            }
        }
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if self.held.is_empty() && !self.queued {
            return;
        }
        let mut guard = self.budgets.lock();
        self.give_back(&mut guard);
        self.dequeue(&mut guard);
    }
}

/// Creates the bucket of `key`, or replaces it if its spec changed (keeping
/// a learned pause and the queue count).
fn ensure_bucket(inner: &mut Inner, key: &BudgetKey, spec: RateSpec) {
    let entry = inner.entries.entry(key.clone()).or_default();
    if entry.bucket.as_ref().is_some_and(|b| b.spec == spec) {
        return;
    }
    // Validated by `acquire` before any bucket is touched.
    let Ok(quota) = spec.quota() else { return };
    inner.next_id += 1;
    entry.bucket = Some(Bucket {
        id: inner.next_id,
        spec,
        gcra: Gcra::new(quota),
    });
}

/// Takes one token from `key` at `now` (known to conform).
fn take(inner: &mut Inner, key: &BudgetKey, now: u64) {
    if let Some(b) = inner.entries.get(key).and_then(|e| e.bucket.as_ref()) {
        let _ = b.gcra.take(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> BudgetKey {
        BudgetKey(s.to_owned())
    }

    fn spec(requests: u32, per_ms: u64, burst: u32) -> RateSpec {
        RateSpec {
            requests,
            per: Duration::from_millis(per_ms),
            burst,
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    /// 2024-01-01T00:00:00Z.
    fn wall() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_704_067_200)
    }

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(3600)
    }

    /// Starts `n` acquires of `wants` at once; returns their admission
    /// times relative to now (`None` for a failure), in completion order.
    async fn burst_of(
        budgets: &Arc<Budgets>,
        wants: Vec<(BudgetKey, RateSpec)>,
        n: usize,
        deadline: Instant,
    ) -> Vec<Option<Duration>> {
        let start = Instant::now();
        let tasks: Vec<_> = (0..n)
            .map(|_| {
                let b = Arc::clone(budgets);
                let wants = wants.clone();
                tokio::spawn(async move {
                    b.acquire(&wants, deadline)
                        .await
                        .ok()
                        .map(|_| Instant::now() - start)
                })
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    }

    /// Lets spawned tasks run up to their first await.
    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[test]
    fn spec_validation_and_serde() {
        assert_eq!(spec(10, 1000, 5).validate(), Ok(()));
        assert_eq!(
            spec(0, 1000, 5).validate(),
            Err(RateSpecError::Zero("requests"))
        );
        assert_eq!(spec(10, 0, 5).validate(), Err(RateSpecError::Zero("perMs")));
        assert_eq!(
            spec(10, 1000, 0).validate(),
            Err(RateSpecError::Zero("burst"))
        );
        let too_fast = RateSpec {
            requests: 10,
            per: Duration::from_nanos(5),
            burst: 1,
        };
        assert_eq!(too_fast.validate(), Err(RateSpecError::TooFast));
        let json = serde_json::json!({"requests": 10, "perMs": 1000, "burst": 5});
        assert_eq!(serde_json::to_value(spec(10, 1000, 5)).unwrap(), json);
        assert_eq!(
            serde_json::from_value::<RateSpec>(json).unwrap(),
            spec(10, 1000, 5)
        );
        assert!(
            serde_json::from_value::<RateSpec>(
                serde_json::json!({"requests": 1, "per": 1, "burst": 1})
            )
            .is_err()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn ten_per_second_with_burst_one_admits_ten_per_second() {
        let b = Arc::new(Budgets::new());
        let times = burst_of(&b, vec![(key("upstream:u"), spec(10, 1000, 1))], 25, far()).await;
        let mut times: Vec<Duration> = times.into_iter().map(Option::unwrap).collect();
        times.sort();
        // Exactly one every 100 ms, starting at once.
        let want: Vec<Duration> = (0..25).map(|i| ms(100 * i)).collect();
        assert_eq!(times, want);
        assert_eq!(times.iter().filter(|t| **t < ms(1000)).count(), 10);
        assert_eq!(b.snapshot()[0].waiters, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_goes_at_once_then_the_rate_applies() {
        let b = Arc::new(Budgets::new());
        let times = burst_of(&b, vec![(key("k"), spec(10, 1000, 5))], 20, far()).await;
        let mut times: Vec<Duration> = times.into_iter().map(Option::unwrap).collect();
        times.sort();
        assert_eq!(times.iter().filter(|t| t.is_zero()).count(), 5);
        // Then one per 100 ms: 5 + 9 within the first second.
        assert_eq!(times.iter().filter(|t| **t < ms(1000)).count(), 14);
        // No 1 s window holds more than rate + burst.
        for start in &times {
            let n = times
                .iter()
                .filter(|t| **t >= *start && **t < *start + ms(1000))
                .count();
            assert!(n <= 15, "{n} in the window from {start:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_queue_is_first_come_first_served() {
        let b = Arc::new(Budgets::new());
        let wants = vec![(key("k"), spec(1, 1000, 1))];
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for i in 0..5 {
            let (b, wants, order) = (Arc::clone(&b), wants.clone(), Arc::clone(&order));
            tasks.push(tokio::spawn(async move {
                b.acquire(&wants, far()).await.unwrap();
                order.lock().unwrap().push(i);
            }));
            settle().await;
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), [0, 1, 2, 3, 4]);
    }

    #[tokio::test(start_paused = true)]
    async fn waited_reports_the_queueing_time() {
        let b = Budgets::new();
        let wants = [(key("k"), spec(2, 1000, 1))];
        assert_eq!(
            b.acquire(&wants, far()).await.unwrap().duration,
            Duration::ZERO
        );
        assert_eq!(b.acquire(&wants, far()).await.unwrap().duration, ms(500));
    }

    #[tokio::test(start_paused = true)]
    async fn fails_fast_when_the_deadline_is_too_close() {
        let b = Budgets::new();
        let wants = [(key("k"), spec(1, 1000, 1))];
        b.acquire(&wants, far()).await.unwrap();
        let start = Instant::now();
        let err = b.acquire(&wants, start + ms(300)).await.unwrap_err();
        // Refused without waiting, with the time the request would have gone.
        assert_eq!(Instant::now(), start);
        assert_eq!(
            err,
            BudgetError::Exceeded {
                key: key("k"),
                retry_after: ms(1000)
            }
        );
        assert_eq!(err.retry_after(), Some(ms(1000)));
        assert_eq!(err.category(), ErrorCategory::RateLimited);
        // Nothing was consumed: the next slot is still at 1 s.
        assert_eq!(
            b.acquire(&wants, start + ms(1000)).await.unwrap().duration,
            ms(1000)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_queue_is_bounded() {
        let b = Arc::new(Budgets::with_max_waiters(2));
        let wants = vec![(key("k"), spec(1, 1000, 1))];
        b.acquire(&wants, far()).await.unwrap();
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let (b, wants) = (Arc::clone(&b), wants.clone());
                tokio::spawn(async move { b.acquire(&wants, far()).await })
            })
            .collect();
        settle().await;
        assert_eq!(b.snapshot()[0].waiters, 2);
        let err = b.acquire(&wants, far()).await.unwrap_err();
        assert_eq!(
            err,
            BudgetError::QueueFull {
                key: key("k"),
                retry_after: ms(3000)
            }
        );
        for w in waiters {
            w.await.unwrap().unwrap();
        }
        assert_eq!(b.snapshot()[0].waiters, 0);
        // Room again.
        b.acquire(&wants, far()).await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn several_buckets_fail_without_consuming_any() {
        let b = Budgets::new();
        let fast = (key("instance:a"), spec(10, 1000, 1));
        let slow = (key("upstream:u"), spec(1, 1000, 1));
        b.acquire(std::slice::from_ref(&slow), far()).await.unwrap();
        let start = Instant::now();
        let err = b
            .acquire(&[fast.clone(), slow.clone()], start + ms(100))
            .await
            .unwrap_err();
        assert_eq!(
            err,
            BudgetError::Exceeded {
                key: slow.0.clone(),
                retry_after: ms(1000)
            }
        );
        // The fast bucket's token is still there, right now.
        let w = b.acquire(std::slice::from_ref(&fast), start).await.unwrap();
        assert_eq!(w.duration, Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_on_one_bucket_does_not_hold_the_others() {
        let b = Arc::new(Budgets::new());
        let fast = (key("instance:a"), spec(10, 1000, 1));
        let slow = (key("upstream:u"), spec(1, 1000, 1));
        b.acquire(std::slice::from_ref(&slow), far()).await.unwrap();
        let start = Instant::now();
        let both = {
            let (b, wants) = (Arc::clone(&b), vec![fast.clone(), slow.clone()]);
            tokio::spawn(async move { b.acquire(&wants, far()).await.unwrap().duration })
        };
        settle().await;
        // The instance's requests elsewhere are not stuck behind it.
        for i in 0..5 {
            let w = b.acquire(std::slice::from_ref(&fast), far()).await.unwrap();
            assert_eq!(Instant::now() - start, ms(100 * i), "{w:?}");
        }
        assert_eq!(both.await.unwrap(), ms(1000));
    }

    #[tokio::test(start_paused = true)]
    async fn a_bucket_that_filled_up_meanwhile_requeues_the_request() {
        let b = Arc::new(Budgets::new());
        let a = (key("a"), spec(1, 1000, 1));
        let u = (key("u"), spec(1, 1000, 1));
        b.acquire(std::slice::from_ref(&u), far()).await.unwrap();
        let start = Instant::now();
        let both = {
            let (b, wants) = (Arc::clone(&b), vec![a.clone(), u.clone()]);
            tokio::spawn(async move { b.acquire(&wants, far()).await.unwrap().duration })
        };
        settle().await;
        // At 0.5 s someone takes `a`, which is then busy until 1.5 s.
        tokio::time::sleep_until(start + ms(500)).await;
        b.acquire(std::slice::from_ref(&a), far()).await.unwrap();
        assert_eq!(both.await.unwrap(), ms(1500));
        // `u`'s unused slot at 1 s was handed back, so `u` took its token at
        // 1.5 s and is next free at 2.5 s.
        let w = b.acquire(std::slice::from_ref(&u), far()).await.unwrap();
        assert_eq!(w.duration, ms(1000));
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_waiter_gives_its_slot_back() {
        let b = Arc::new(Budgets::new());
        let wants = vec![(key("k"), spec(1, 1000, 1))];
        b.acquire(&wants, far()).await.unwrap();
        let start = Instant::now();
        let cancelled = {
            let (b, wants) = (Arc::clone(&b), wants.clone());
            tokio::spawn(async move { b.acquire(&wants, far()).await })
        };
        settle().await;
        assert_eq!(b.snapshot()[0].waiters, 1);
        cancelled.abort();
        assert!(cancelled.await.unwrap_err().is_cancelled());
        assert_eq!(b.snapshot()[0].waiters, 0);
        // The 1 s slot is free again rather than lost.
        b.acquire(&wants, far()).await.unwrap();
        assert_eq!(Instant::now() - start, ms(1000));
        b.acquire(&wants, far()).await.unwrap();
        assert_eq!(Instant::now() - start, ms(2000));
    }

    #[tokio::test(start_paused = true)]
    async fn a_changed_spec_replaces_the_bucket() {
        let b = Budgets::new();
        let k = key("k");
        b.acquire(&[(k.clone(), spec(1, 60_000, 1))], far())
            .await
            .unwrap();
        // Same spec: busy for a minute.
        let err = b
            .acquire(&[(k.clone(), spec(1, 60_000, 1))], Instant::now())
            .await
            .unwrap_err();
        assert_eq!(err.retry_after(), Some(ms(60_000)));
        // New spec: a fresh bucket.
        let w = b
            .acquire(&[(k.clone(), spec(10, 1000, 1))], Instant::now())
            .await;
        assert_eq!(w.unwrap().duration, Duration::ZERO);
        assert_eq!(b.snapshot()[0].spec, Some(spec(10, 1000, 1)));
    }

    #[tokio::test(start_paused = true)]
    async fn invalid_specs_are_refused() {
        let b = Budgets::new();
        let err = b
            .acquire(&[(key("k"), spec(0, 1000, 1))], far())
            .await
            .unwrap_err();
        assert_eq!(
            err,
            BudgetError::InvalidSpec {
                key: key("k"),
                error: RateSpecError::Zero("requests")
            }
        );
        assert_eq!(err.category(), ErrorCategory::Configuration);
        assert!(b.snapshot().is_empty());
    }

    #[test]
    fn learns_from_each_header_variant() {
        let now = wall();
        let epoch = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let in_60 = (epoch + 60).to_string();
        let in_60_ms = ((epoch + 60) * 1000).to_string();
        /// Status, response headers, expected pause.
        type Case<'a> = (u16, Vec<(&'a str, &'a str)>, Option<Duration>);
        let cases: Vec<Case<'_>> = vec![
            (429, vec![("retry-after", "2")], Some(ms(2000))),
            (
                503,
                vec![("retry-after", "Mon, 01 Jan 2024 00:00:30 GMT")],
                Some(ms(30_000)),
            ),
            (403, vec![("retry-after", "5")], Some(ms(5000))),
            // Retry-After on a success or a 500 is not about rate limits.
            (200, vec![("retry-after", "2")], None),
            (500, vec![("retry-after", "2")], None),
            // GitHub: epoch seconds.
            (
                200,
                vec![
                    ("x-ratelimit-remaining", "0"),
                    ("x-ratelimit-reset", &in_60),
                ],
                Some(ms(60_000)),
            ),
            // Many others: delta seconds.
            (
                200,
                vec![("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "7")],
                Some(ms(7000)),
            ),
            // IETF draft.
            (
                200,
                vec![("ratelimit-remaining", "0"), ("ratelimit-reset", "12")],
                Some(ms(12_000)),
            ),
            // Twitter.
            (
                429,
                vec![
                    ("x-rate-limit-remaining", "0"),
                    ("x-rate-limit-reset", &in_60),
                ],
                Some(ms(60_000)),
            ),
            // Epoch milliseconds, decimals.
            (
                200,
                vec![
                    ("x-ratelimit-remaining", "0"),
                    ("x-ratelimit-reset", &in_60_ms),
                ],
                Some(ms(60_000)),
            ),
            (
                200,
                vec![("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "1.5")],
                Some(ms(1500)),
            ),
            // A reset from another family when the own one is missing.
            (
                200,
                vec![("x-ratelimit-remaining", "0"), ("ratelimit-reset", "3")],
                Some(ms(3000)),
            ),
            // Units left: no pause.
            (
                200,
                vec![("x-ratelimit-remaining", "1"), ("x-ratelimit-reset", "7")],
                None,
            ),
            // No reset: nothing to learn.
            (200, vec![("x-ratelimit-remaining", "0")], None),
            // A reset in the past: nothing to wait for.
            (
                200,
                vec![
                    ("x-ratelimit-remaining", "0"),
                    ("x-ratelimit-reset", "1500000000"),
                ],
                Some(Duration::ZERO),
            ),
            // Both: the later end wins.
            (
                429,
                vec![
                    ("retry-after", "2"),
                    ("ratelimit-remaining", "0"),
                    ("ratelimit-reset", "9"),
                ],
                Some(ms(9000)),
            ),
            // Capped.
            (429, vec![("retry-after", "86400")], Some(MAX_RETRY_AFTER)),
            (
                200,
                vec![
                    ("x-ratelimit-remaining", "0"),
                    ("x-ratelimit-reset", "86400"),
                ],
                Some(MAX_RETRY_AFTER),
            ),
            // Garbage.
            (
                429,
                vec![("retry-after", "soon"), ("x-ratelimit-remaining", "zero")],
                None,
            ),
        ];
        for (status, pairs, want) in cases {
            assert_eq!(
                learned_pause(status, &headers(&pairs), now),
                want,
                "{status} {pairs:?}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_learned_pause_holds_requests_until_the_reset() {
        let b = Budgets::new();
        let k = key("upstream:u");
        let wants = [(k.clone(), spec(100, 1000, 10))];
        b.acquire(&wants, far()).await.unwrap();
        b.learn(&k, 429, &headers(&[("retry-after", "2")]), wall());
        assert_eq!(b.paused_until(&k), Some(wall() + ms(2000)));
        assert_eq!(b.snapshot()[0].paused_until, Some(wall() + ms(2000)));
        let start = Instant::now();
        // A deadline before the reset fails at once, saying when.
        let err = b.acquire(&wants, start + ms(1000)).await.unwrap_err();
        assert_eq!(err.retry_after(), Some(ms(2000)));
        assert_eq!(Instant::now(), start);
        // A longer one waits for the reset.
        assert_eq!(b.acquire(&wants, far()).await.unwrap().duration, ms(2000));
        assert_eq!(b.paused_until(&k), None);
        // A shorter pause learned later does not cut a longer one short.
        b.learn(&k, 429, &headers(&[("retry-after", "10")]), wall());
        b.learn(&k, 429, &headers(&[("retry-after", "1")]), wall());
        assert_eq!(b.paused_until(&k), Some(wall() + ms(10_000)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_key_without_a_rate_is_held_only_by_a_learned_pause() {
        let b = Budgets::new();
        let k = key("upstream:u|cred:none");
        let wants = [(k.clone(), None::<RateSpec>)];
        for _ in 0..1000 {
            let w = b.acquire(&wants, far()).await.unwrap();
            assert!(!w.queued);
        }
        b.learn(&k, 503, &headers(&[("retry-after", "2")]), wall());
        let start = Instant::now();
        let err = b.acquire(&wants, start + ms(500)).await.unwrap_err();
        assert_eq!(err.retry_after(), Some(ms(2000)));
        let w = b.acquire(&wants, far()).await.unwrap();
        assert!(w.queued);
        assert_eq!(w.duration, ms(2000));
        assert_eq!(b.snapshot()[0].spec, None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_learned_while_waiting_holds_the_waiters_too() {
        let b = Arc::new(Budgets::new());
        let k = key("upstream:u");
        let wants = vec![(k.clone(), spec(1, 1000, 1))];
        b.acquire(&wants, far()).await.unwrap();
        let start = Instant::now();
        let waiter = {
            let (b, wants) = (Arc::clone(&b), wants.clone());
            tokio::spawn(async move { b.acquire(&wants, far()).await.unwrap().duration })
        };
        settle().await;
        // Queued for 1 s; then the upstream says "not for 5 s".
        tokio::time::sleep_until(start + ms(100)).await;
        b.learn(&k, 429, &headers(&[("retry-after", "5")]), wall());
        assert_eq!(waiter.await.unwrap(), ms(5100));
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_can_be_learned_before_first_use() {
        let b = Budgets::new();
        let k = key("upstream:u");
        b.learn(
            &k,
            200,
            &headers(&[("ratelimit-remaining", "0"), ("ratelimit-reset", "3")]),
            wall(),
        );
        let snap = b.snapshot();
        assert_eq!(
            (snap[0].spec, snap[0].paused_until),
            (None, Some(wall() + ms(3000)))
        );
        let w = b.acquire(&[(k, spec(10, 1000, 1))], far()).await.unwrap();
        assert_eq!(w.duration, ms(3000));
    }

    #[tokio::test(start_paused = true)]
    async fn no_budgets_means_no_wait() {
        let b = Budgets::new();
        assert_eq!(
            b.acquire::<RateSpec>(&[], Instant::now())
                .await
                .unwrap()
                .duration,
            Duration::ZERO
        );
    }

    #[test]
    fn budgets_are_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Budgets>();
        assert_send_sync::<BudgetError>();
    }
}

//! Circuit breakers, one per upstream (`scheme://host:port`).
//!
//! When an upstream is down, every request to it burns the caller's time up
//! to a timeout and adds load to something that is already struggling. The
//! breaker notices repeated failures and then refuses requests to that
//! upstream at once ([`BreakerOpen`], which the API reports as
//! `UPSTREAM_UNAVAILABLE`) until `open_for` has passed; then it lets a few
//! probe requests through (half-open) and closes again on the first success.
//!
//! States and transitions:
//!
//! - **closed**: requests pass. `failure_threshold` failures in a row, each
//!   younger than `window`, open the circuit. A success clears the count:
//!   what trips the breaker is an upstream that *only* fails, not a busy one
//!   with a small background error rate (which a plain count per window
//!   would eventually trip).
//! - **open**: requests fail fast with the time left until `opened + open_for`.
//! - **half-open** (entered lazily, by the first request after `open_for`):
//!   up to `half_open_max_probes` requests pass as probes; others fail fast.
//!   A probe's success closes the circuit, its failure opens it again for
//!   another `open_for`. A probe permit dropped without a result (the
//!   request was cancelled) frees its slot, so a cancelled probe cannot
//!   wedge the circuit half-open.
//!
//! What counts as a failure is the caller's decision, made once in the send
//! path: connection errors, timeouts and 5xx are failures; **4xx are
//! successes** — the upstream is up and answering, the request was wrong (a
//! 429 is handled by the rate budgets, not by the breaker).
//!
//! A result is only counted in the state it was admitted in: each transition
//! starts a new generation, and permits from an older one are ignored. That
//! keeps a burst of slow failures from before an opening from extending it,
//! and a stale success from closing a circuit a probe has just re-opened.
//!
//! Time is passed in (`now`), never read, so tests are deterministic and the
//! caller decides which clock is authoritative.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::budget::duration_ms;

/// How long callers are told to wait while the permitted probes are still
/// out: their result is due soon, and then the circuit is either closed or
/// open for a known time.
const PROBE_PENDING_RETRY_AFTER: Duration = Duration::from_secs(1);

/// Thresholds of the breakers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct BreakerConfig {
    /// Consecutive failures (within `window`) that open the circuit.
    pub failure_threshold: u32,
    /// Failures older than this are forgotten.
    #[serde(rename = "windowMs", with = "duration_ms")]
    pub window: Duration,
    /// How long an opened circuit refuses requests before probing.
    #[serde(rename = "openForMs", with = "duration_ms")]
    pub open_for: Duration,
    /// Probe requests allowed at once while half-open.
    pub half_open_max_probes: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            window: Duration::from_secs(30),
            open_for: Duration::from_secs(30),
            half_open_max_probes: 1,
        }
    }
}

impl BreakerConfig {
    /// Rejects values that make the breaker meaningless (zero threshold,
    /// window, open time or probes).
    pub fn validate(&self) -> Result<(), BreakerConfigError> {
        let zero = [
            ("failureThreshold", self.failure_threshold == 0),
            ("windowMs", self.window.is_zero()),
            ("openForMs", self.open_for.is_zero()),
            ("halfOpenMaxProbes", self.half_open_max_probes == 0),
        ];
        match zero.iter().find(|(_, z)| *z) {
            Some((field, _)) => Err(BreakerConfigError { field }),
            None => Ok(()),
        }
    }
}

/// An invalid [`BreakerConfig`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("circuit breaker setting {field} must be greater than zero")]
pub struct BreakerConfigError {
    /// The offending field, as spelled in the config.
    pub field: &'static str,
}

/// The circuit is open: the request was not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("upstream unavailable (circuit open); retry after {retry_after:?}")]
pub struct BreakerOpen {
    /// When a request has a chance again.
    pub retry_after: Duration,
}

impl BreakerOpen {
    /// Always temporary: the breaker closes by itself.
    pub fn category(&self) -> super::category::ErrorCategory {
        super::category::ErrorCategory::Temporary
    }
}

/// The state of one circuit, as the API shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Requests pass.
    Closed,
    /// Requests fail fast.
    Open,
    /// Probes pass (or would, for the next request).
    HalfOpen,
}

impl BreakerState {
    /// `closed`, `open` or `half_open`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }

    /// The metrics gauge value: 0 closed, 1 half-open, 2 open.
    pub fn level(self) -> f64 {
        match self {
            Self::Closed => 0.0,
            Self::HalfOpen => 1.0,
            Self::Open => 2.0,
        }
    }
}

/// A point-in-time view of one circuit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakerSnapshot {
    /// The upstream key.
    pub upstream: String,
    /// Current state.
    pub state: BreakerState,
    /// Closed: recent consecutive failures. Open / half-open: the failures
    /// that opened it (1 after a failed probe).
    pub failures: u32,
    /// When the circuit last opened, unless closed.
    pub opened_at: Option<Instant>,
    /// Open: time until probing starts. Half-open with every probe slot
    /// taken: a short hint. Otherwise `None`.
    pub retry_after: Option<Duration>,
    /// Half-open: probes in flight.
    pub probes_in_flight: u32,
}

#[derive(Debug)]
enum State {
    Closed {
        /// Times of the consecutive failures, oldest first, at most
        /// `failure_threshold` of them.
        failures: VecDeque<Instant>,
    },
    Open {
        opened_at: Instant,
        until: Instant,
        failures: u32,
    },
    HalfOpen {
        opened_at: Instant,
        failures: u32,
        probes: u32,
    },
}

#[derive(Debug)]
struct Circuit {
    /// Bumped on every transition; permits remember the one they were
    /// issued in.
    generation: u64,
    state: State,
}

impl Circuit {
    fn new() -> Self {
        Self {
            generation: 0,
            state: State::Closed {
                failures: VecDeque::new(),
            },
        }
    }

    fn set(&mut self, state: State) {
        self.generation += 1;
        self.state = state;
    }

    /// Open → half-open once `open_for` has passed.
    fn advance(&mut self, now: Instant) {
        if let State::Open {
            opened_at,
            until,
            failures,
        } = self.state
            && now >= until
        {
            self.set(State::HalfOpen {
                opened_at,
                failures,
                probes: 0,
            });
        }
    }

    fn open(&mut self, now: Instant, failures: u32, config: &BreakerConfig) {
        self.set(State::Open {
            opened_at: now,
            until: now + config.open_for,
            failures,
        });
    }
}

fn forget_old(failures: &mut VecDeque<Instant>, now: Instant, window: Duration) {
    while failures
        .front()
        .is_some_and(|t| now.saturating_duration_since(*t) > window)
    {
        failures.pop_front();
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves the state consistent, so a panic in
    // another thread while holding the lock does not invalidate it.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Permission to send one request to an upstream. Hand it back with
/// [`Breakers::record`]; dropping it instead means "no result" (the
/// request was cancelled), which frees a probe slot and counts nothing.
#[derive(Debug)]
#[must_use = "record the result with Breakers::record"]
pub struct BreakerPermit {
    circuit: Arc<Mutex<Circuit>>,
    generation: u64,
    probe: bool,
    /// Set by `record`, so `Drop` does not release a probe slot twice.
    recorded: bool,
}

impl BreakerPermit {
    /// Whether this request is a half-open probe.
    pub fn is_probe(&self) -> bool {
        self.probe
    }
}

impl Drop for BreakerPermit {
    fn drop(&mut self) {
        if self.recorded || !self.probe {
            return;
        }
        let mut c = lock(&self.circuit);
        if c.generation == self.generation
            && let State::HalfOpen { probes, .. } = &mut c.state
        {
            *probes = probes.saturating_sub(1);
        }
    }
}

/// The breakers of all upstreams, created on first use. Share it via `Arc`.
#[derive(Debug, Default)]
pub struct Breakers {
    config: BreakerConfig,
    circuits: Mutex<HashMap<String, Arc<Mutex<Circuit>>>>,
}

impl Breakers {
    /// Breakers with these thresholds for every upstream.
    pub fn new(config: BreakerConfig) -> Self {
        Self {
            config,
            circuits: Mutex::default(),
        }
    }

    /// The thresholds in use.
    pub fn config(&self) -> &BreakerConfig {
        &self.config
    }

    fn circuit(&self, upstream: &str) -> Arc<Mutex<Circuit>> {
        let mut map = lock(&self.circuits);
        if let Some(c) = map.get(upstream) {
            return Arc::clone(c);
        }
        let c = Arc::new(Mutex::new(Circuit::new()));
        map.insert(upstream.to_owned(), Arc::clone(&c));
        c
    }

    /// Asks to send one request to `upstream`.
    pub fn try_acquire(&self, upstream: &str, now: Instant) -> Result<BreakerPermit, BreakerOpen> {
        let circuit = self.circuit(upstream);
        let mut c = lock(&circuit);
        c.advance(now);
        let generation = c.generation;
        let probe = match &mut c.state {
            State::Closed { .. } => false,
            State::Open { until, .. } => {
                return Err(BreakerOpen {
                    retry_after: until.saturating_duration_since(now),
                });
            }
            State::HalfOpen { probes, .. } => {
                if *probes >= self.config.half_open_max_probes.max(1) {
                    return Err(BreakerOpen {
                        retry_after: PROBE_PENDING_RETRY_AFTER.min(self.config.open_for),
                    });
                }
                *probes += 1;
                true
            }
        };
        drop(c);
        Ok(BreakerPermit {
            circuit,
            generation,
            probe,
            recorded: false,
        })
    }

    /// Reports how the permitted request went (see the module doc for what
    /// counts as a failure).
    pub fn record(&self, mut permit: BreakerPermit, success: bool, now: Instant) {
        permit.recorded = true;
        let mut c = lock(&permit.circuit);
        if c.generation != permit.generation {
            return;
        }
        let threshold = self.config.failure_threshold.max(1);
        match &mut c.state {
            State::Closed { failures } => {
                if success {
                    failures.clear();
                    return;
                }
                forget_old(failures, now, self.config.window);
                failures.push_back(now);
                let n = u32::try_from(failures.len()).unwrap_or(u32::MAX);
                if n >= threshold {
                    c.open(now, n, &self.config);
                }
            }
            State::HalfOpen { .. } => {
                if success {
                    c.set(State::Closed {
                        failures: VecDeque::new(),
                    });
                } else {
                    c.open(now, 1, &self.config);
                }
            }
            // Unreachable with a matching generation: permits are only
            // issued closed or half-open, and every transition bumps it.
            State::Open { .. } => {}
        }
    }

    /// The state of `upstream`'s circuit at `now` (closed if never used).
    pub fn state(&self, upstream: &str, now: Instant) -> BreakerSnapshot {
        let circuit = lock(&self.circuits).get(upstream).map(Arc::clone);
        match circuit {
            Some(c) => self.view(upstream, &lock(&c), now),
            None => self.view(upstream, &Circuit::new(), now),
        }
    }

    /// Every known circuit, sorted by upstream.
    pub fn snapshot_all(&self, now: Instant) -> Vec<BreakerSnapshot> {
        let circuits: Vec<(String, Arc<Mutex<Circuit>>)> = lock(&self.circuits)
            .iter()
            .map(|(k, v)| (k.clone(), Arc::clone(v)))
            .collect();
        let mut out: Vec<BreakerSnapshot> = circuits
            .iter()
            .map(|(k, c)| self.view(k, &lock(c), now))
            .collect();
        out.sort_by(|a, b| a.upstream.cmp(&b.upstream));
        out
    }

    /// Read-only view; reports an expired open circuit as half-open, which
    /// is what the next request will find.
    fn view(&self, upstream: &str, c: &Circuit, now: Instant) -> BreakerSnapshot {
        let mut s = BreakerSnapshot {
            upstream: upstream.to_owned(),
            state: BreakerState::Closed,
            failures: 0,
            opened_at: None,
            retry_after: None,
            probes_in_flight: 0,
        };
        match &c.state {
            State::Closed { failures } => {
                let recent = failures
                    .iter()
                    .filter(|t| now.saturating_duration_since(**t) <= self.config.window)
                    .count();
                s.failures = u32::try_from(recent).unwrap_or(u32::MAX);
            }
            State::Open {
                opened_at,
                until,
                failures,
            } => {
                s.failures = *failures;
                s.opened_at = Some(*opened_at);
                if now < *until {
                    s.state = BreakerState::Open;
                    s.retry_after = Some(until.saturating_duration_since(now));
                } else {
                    s.state = BreakerState::HalfOpen;
                }
            }
            State::HalfOpen {
                opened_at,
                failures,
                probes,
            } => {
                s.state = BreakerState::HalfOpen;
                s.failures = *failures;
                s.opened_at = Some(*opened_at);
                s.probes_in_flight = *probes;
                if *probes >= self.config.half_open_max_probes.max(1) {
                    s.retry_after = Some(PROBE_PENDING_RETRY_AFTER.min(self.config.open_for));
                }
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UP: &str = "https://api.example.com:443";

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn breakers() -> Breakers {
        Breakers::new(BreakerConfig::default())
    }

    /// One request with the given result.
    fn call(b: &Breakers, now: Instant, success: bool) {
        let p = b.try_acquire(UP, now).expect("circuit should let it pass");
        b.record(p, success, now);
    }

    fn trip(b: &Breakers, now: Instant) {
        for _ in 0..b.config().failure_threshold {
            call(b, now, false);
        }
        assert_eq!(b.state(UP, now).state, BreakerState::Open);
    }

    #[test]
    fn opens_after_threshold_failures_within_the_window() {
        let b = breakers();
        let t = Instant::now();
        for i in 0..4 {
            call(&b, t + secs(i), false);
            assert_eq!(b.state(UP, t + secs(i)).state, BreakerState::Closed);
        }
        assert_eq!(b.state(UP, t + secs(4)).failures, 4);
        call(&b, t + secs(4), false);
        let s = b.state(UP, t + secs(4));
        assert_eq!(s.state, BreakerState::Open);
        assert_eq!(s.failures, 5);
        assert_eq!(s.opened_at, Some(t + secs(4)));
        assert_eq!(s.retry_after, Some(secs(30)));
    }

    #[test]
    fn failures_outside_the_window_are_forgotten() {
        let b = breakers();
        let t = Instant::now();
        // Four failures, then a long quiet spell, then four more: never five
        // within 30 s.
        for i in 0..4 {
            call(&b, t + secs(i), false);
        }
        assert_eq!(b.state(UP, t + secs(40)).failures, 0);
        for i in 40..44 {
            call(&b, t + secs(i), false);
        }
        assert_eq!(b.state(UP, t + secs(44)).state, BreakerState::Closed);
        // Sliding: at 60 s the failures at 40..43 are still in the window.
        call(&b, t + secs(60), false);
        assert_eq!(b.state(UP, t + secs(60)).state, BreakerState::Open);
    }

    #[test]
    fn a_success_resets_the_count() {
        let b = breakers();
        let t = Instant::now();
        for _ in 0..4 {
            call(&b, t, false);
        }
        call(&b, t, true);
        for _ in 0..4 {
            call(&b, t, false);
        }
        assert_eq!(b.state(UP, t).state, BreakerState::Closed);
        assert_eq!(b.state(UP, t).failures, 4);
    }

    #[test]
    fn open_fails_fast_with_the_time_left() {
        let b = breakers();
        let t = Instant::now();
        trip(&b, t);
        let err = b.try_acquire(UP, t + secs(10)).unwrap_err();
        assert_eq!(err.retry_after, secs(20));
        assert_eq!(
            err.category(),
            crate::egress::category::ErrorCategory::Temporary
        );
        // Other upstreams are unaffected.
        assert!(b.try_acquire("https://other.example:443", t).is_ok());
    }

    #[test]
    fn one_probe_after_open_for_and_a_second_is_refused() {
        let b = breakers();
        let t = Instant::now();
        trip(&b, t);
        let later = t + secs(30);
        assert_eq!(b.state(UP, later).state, BreakerState::HalfOpen);
        let probe = b.try_acquire(UP, later).unwrap();
        assert!(probe.is_probe());
        let err = b.try_acquire(UP, later).unwrap_err();
        assert_eq!(err.retry_after, PROBE_PENDING_RETRY_AFTER);
        let s = b.state(UP, later);
        assert_eq!((s.state, s.probes_in_flight), (BreakerState::HalfOpen, 1));
        b.record(probe, true, later);
    }

    #[test]
    fn probe_success_closes() {
        let b = breakers();
        let t = Instant::now();
        trip(&b, t);
        let probe = b.try_acquire(UP, t + secs(31)).unwrap();
        b.record(probe, true, t + secs(31));
        let s = b.state(UP, t + secs(31));
        assert_eq!(
            (s.state, s.failures, s.opened_at),
            (BreakerState::Closed, 0, None)
        );
        let p = b.try_acquire(UP, t + secs(31)).unwrap();
        assert!(!p.is_probe());
        b.record(p, true, t + secs(31));
    }

    #[test]
    fn probe_failure_reopens_for_another_open_for() {
        let b = breakers();
        let t = Instant::now();
        trip(&b, t);
        let probe = b.try_acquire(UP, t + secs(31)).unwrap();
        b.record(probe, false, t + secs(32));
        let s = b.state(UP, t + secs(32));
        assert_eq!(s.state, BreakerState::Open);
        assert_eq!(s.retry_after, Some(secs(30)));
        assert_eq!(
            b.try_acquire(UP, t + secs(61)).unwrap_err().retry_after,
            secs(1)
        );
        assert!(b.try_acquire(UP, t + secs(62)).unwrap().is_probe());
    }

    #[test]
    fn a_dropped_probe_frees_its_slot() {
        let b = breakers();
        let t = Instant::now();
        trip(&b, t);
        let probe = b.try_acquire(UP, t + secs(30)).unwrap();
        assert!(b.try_acquire(UP, t + secs(30)).is_err());
        drop(probe);
        assert_eq!(b.state(UP, t + secs(30)).probes_in_flight, 0);
        let again = b.try_acquire(UP, t + secs(30)).unwrap();
        assert!(again.is_probe());
        // Recording does not also release a slot on drop.
        b.record(again, false, t + secs(30));
        assert_eq!(b.state(UP, t + secs(30)).state, BreakerState::Open);
    }

    #[test]
    fn several_probes_when_configured() {
        let b = Breakers::new(BreakerConfig {
            half_open_max_probes: 2,
            ..BreakerConfig::default()
        });
        let t = Instant::now();
        trip(&b, t);
        let later = t + secs(30);
        let p1 = b.try_acquire(UP, later).unwrap();
        let p2 = b.try_acquire(UP, later).unwrap();
        assert!(b.try_acquire(UP, later).is_err());
        b.record(p1, true, later);
        // p2 belongs to the half-open generation that p1 just ended.
        b.record(p2, false, later);
        assert_eq!(b.state(UP, later).state, BreakerState::Closed);
    }

    #[test]
    fn results_from_before_a_transition_are_ignored() {
        let b = breakers();
        let t = Instant::now();
        let slow_ok = b.try_acquire(UP, t).unwrap();
        let slow_fail = b.try_acquire(UP, t).unwrap();
        trip(&b, t);
        // Admitted while closed, succeeded after the circuit opened: does
        // not close it.
        b.record(slow_ok, true, t + secs(1));
        assert_eq!(b.state(UP, t + secs(1)).state, BreakerState::Open);
        let probe = b.try_acquire(UP, t + secs(30)).unwrap();
        b.record(probe, true, t + secs(30));
        assert_eq!(b.state(UP, t + secs(30)).state, BreakerState::Closed);
        // A failure from the previous closed period does not count in the
        // new one.
        b.record(slow_fail, false, t + secs(31));
        assert_eq!(b.state(UP, t + secs(31)).failures, 0);
    }

    #[test]
    fn snapshot_lists_every_upstream_sorted() {
        let b = breakers();
        let t = Instant::now();
        call(&b, t, true);
        let p = b.try_acquire("http://a.example:80", t).unwrap();
        b.record(p, false, t);
        let all = b.snapshot_all(t);
        let names: Vec<&str> = all.iter().map(|s| s.upstream.as_str()).collect();
        assert_eq!(names, ["http://a.example:80", UP]);
        assert_eq!(all[0].failures, 1);
        assert_eq!(
            b.state("https://never.example:443", t).state,
            BreakerState::Closed
        );
    }

    #[test]
    fn config_serde_and_validation() {
        let c: BreakerConfig =
            serde_json::from_value(serde_json::json!({"failureThreshold": 3, "openForMs": 5000}))
                .unwrap();
        assert_eq!(c.failure_threshold, 3);
        assert_eq!(c.open_for, secs(5));
        assert_eq!(c.window, secs(30));
        assert_eq!(c.validate(), Ok(()));
        let json = serde_json::to_value(BreakerConfig::default()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "failureThreshold": 5, "windowMs": 30000, "openForMs": 30000, "halfOpenMaxProbes": 1
            })
        );
        let bad = BreakerConfig {
            half_open_max_probes: 0,
            ..BreakerConfig::default()
        };
        assert_eq!(bad.validate().unwrap_err().field, "halfOpenMaxProbes");
        assert!(serde_json::from_value::<BreakerConfig>(serde_json::json!({"window": 1})).is_err());
        assert_eq!(
            serde_json::to_value(BreakerState::HalfOpen).unwrap(),
            serde_json::json!("half_open")
        );
    }
}

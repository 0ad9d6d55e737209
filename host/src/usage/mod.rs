//! Per-instance usage over selectable windows: calls (outcomes by code,
//! category and method, durations) and outbound attempts (decisions,
//! statuses, bytes, latency, per upstream), for `…/stats`, `…/health` and
//! the cost summary `GET /v1/usage`.
//!
//! Kept in memory since the host started, in constant space per instance:
//! a ring of minute slots for the last hour, a ring of hour slots for the
//! last week ([`window`]) and a running total. The durable record of who
//! did what is the audit trail's job; these are operating figures, like
//! `/metrics` but per instance.
//!
//! Every call writes here, so the figures are sharded by thread: a call
//! updates its own thread's shard and reads merge the shards. With one
//! shared map both workers took the same lock on every call and wrote the
//! same instance's slots; perf under `scripts/bench-load` showed the lock
//! contended (futex waits under `record_call`) and `record_call` at 2.2 %
//! of the host's CPU.
//!
//! - [`histogram`]: the sparse log-scale latency histogram every slot holds.
//! - [`bucket`]: what a slot holds, how slots merge, their JSON.
//! - [`window`]: `?window=` parsing and the slot rings.

pub mod bucket;
pub mod histogram;
pub mod window;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

pub use bucket::{Bucket, CallOutcome};
pub use window::{BadWindow, Window};

use crate::egress::OutboundRecord;
use window::Ring;

/// The window health reports an error rate over.
pub const HEALTH_WINDOW: Window = Window::Minutes(15);

/// How many shards [`Usage`] keeps. Threads take them in turn; the host's
/// calls run on its async workers (one per core) and a few blocking
/// threads, so 16 keeps them apart on machines of up to 8 cores or so,
/// and two threads that share a shard still only share a lock.
const SHARDS: usize = 16;

/// Usage of all instances.
pub struct Usage {
    shards: Box<[Shard]>,
}

/// One thread's share of the figures. Aligned to two cache lines so that
/// neighbouring shards' locks are not written through one line.
#[repr(align(128))]
#[derive(Default)]
struct Shard(Mutex<HashMap<String, InstanceUsage>>);

impl Default for Usage {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
        }
    }
}

struct InstanceUsage {
    connector: String,
    /// When this shard last saw `connector` change (or the entry begin):
    /// after an upgrade the newest shard's name wins.
    connector_since: SystemTime,
    since: SystemTime,
    total: Bucket,
    minutes: Ring<Bucket>,
    hours: Ring<Bucket>,
    last_success: Option<SystemTime>,
    last_failure: Option<(SystemTime, &'static str)>,
}

impl InstanceUsage {
    fn new(connector: &str, now: SystemTime) -> Self {
        Self {
            connector: connector.to_owned(),
            connector_since: now,
            since: now,
            total: Bucket::default(),
            minutes: Ring::minutes(),
            hours: Ring::hours(),
            last_success: None,
            last_failure: None,
        }
    }

    /// Applies `f` to the total and to the current minute and hour slots.
    fn each(&mut self, now: SystemTime, f: impl Fn(&mut Bucket)) {
        let secs = unix_secs(now);
        f(&mut self.total);
        f(self.minutes.slot(secs));
        f(self.hours.slot(secs));
    }

    fn window(&self, window: Window, now: SystemTime) -> Bucket {
        let secs = unix_secs(now);
        let slots: Box<dyn Iterator<Item = &Bucket>> = match window {
            Window::All => return self.total.clone(),
            Window::Minutes(n) => Box::new(self.minutes.last(n, secs)),
            Window::Hours(n) => Box::new(self.hours.last(n, secs)),
        };
        slots.fold(Bucket::default(), |mut acc, b| {
            acc.merge(b);
            acc
        })
    }
}

/// What health needs to know of an instance's recent calls.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Recent {
    /// When a call last succeeded.
    pub last_success: Option<SystemTime>,
    /// When a call last failed, and with which code.
    pub last_failure: Option<(SystemTime, &'static str)>,
    /// Calls and failed calls within [`HEALTH_WINDOW`].
    pub calls: u64,
    /// Failed calls within [`HEALTH_WINDOW`].
    pub failed: u64,
}

impl Usage {
    /// The calling thread's shard.
    fn own(&self) -> MutexGuard<'_, HashMap<String, InstanceUsage>> {
        thread_local! {
            static SHARD: usize = {
                static NEXT: AtomicUsize = AtomicUsize::new(0);
                NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS
            };
        }
        lock(&self.shards[SHARD.with(|s| *s)])
    }

    /// Every shard, locked one after the other (never two at once, so a
    /// reader cannot deadlock with a writer or another reader).
    fn each_shard(&self, mut f: impl FnMut(&HashMap<String, InstanceUsage>)) {
        for shard in &self.shards {
            f(&lock(shard));
        }
    }

    /// `instance`'s entries, merged: what one map held before sharding.
    fn merged(&self, instance: &str, window: Window, now: SystemTime) -> Option<Merged> {
        let mut merged: Option<Merged> = None;
        self.each_shard(|map| {
            if let Some(u) = map.get(instance) {
                let part = Merged::of(u, window, now);
                match &mut merged {
                    None => merged = Some(part),
                    Some(m) => m.add(part),
                }
            }
        });
        merged
    }

    /// Runs `f` on `instance`'s entry in this thread's shard, created on
    /// first use.
    fn update(
        &self,
        instance: &str,
        connector: &str,
        now: SystemTime,
        f: impl FnOnce(&mut InstanceUsage),
    ) {
        let mut map = self.own();
        // Look up before inserting: no owned key, and one hash, on every call.
        match map.get_mut(instance) {
            Some(entry) => {
                // After an upgrade the instance's usage counts for the new version.
                if entry.connector != connector {
                    entry.connector = connector.to_owned();
                    entry.connector_since = now;
                }
                f(entry);
            }
            None => {
                let mut entry = InstanceUsage::new(connector, now);
                f(&mut entry);
                map.insert(instance.to_owned(), entry);
            }
        }
    }

    /// Records how a call of `instance` ended.
    pub fn record_call(
        &self,
        instance: &str,
        connector: &str,
        outcome: &CallOutcome<'_>,
        now: SystemTime,
    ) {
        self.update(instance, connector, now, |u| {
            u.each(now, |b| b.calls.add(outcome));
            match outcome.error {
                None => u.last_success = Some(now),
                Some(code) => u.last_failure = Some((now, code)),
            }
        });
    }

    /// Folds one call's outbound journal into `instance`'s usage.
    pub fn record_outbound(
        &self,
        instance: &str,
        connector: &str,
        records: &[OutboundRecord],
        now: SystemTime,
    ) {
        if records.is_empty() {
            return;
        }
        self.update(instance, connector, now, |u| {
            u.each(now, |b| {
                for r in records {
                    b.outbound.add(r);
                }
            });
        });
    }

    /// `instance`'s figures over `window` (zeroes if it has not run).
    pub fn stats(&self, instance: &str, window: Window, now: SystemTime) -> Value {
        let (bucket, since) = match self.merged(instance, window, now) {
            Some(m) => (m.bucket, m.since),
            None => (Bucket::default(), now),
        };
        let mut v = bucket.to_json();
        v["window"] = json!(window.to_string());
        v["from"] = json!(rfc3339(match window.start(unix_secs(now)) {
            // A window reaching back before the host started starts then.
            Some(start) => (UNIX_EPOCH + Duration::from_secs(start)).max(since),
            None => since,
        }));
        v["to"] = json!(rfc3339(now));
        v
    }

    /// The cost summary over `window`: per instance and per connector.
    pub fn summary(&self, window: Window, now: SystemTime) -> Value {
        let mut all: HashMap<String, Merged> = HashMap::new();
        self.each_shard(|map| {
            for (id, u) in map {
                let part = Merged::of(u, window, now);
                match all.get_mut(id) {
                    Some(m) => m.add(part),
                    None => {
                        all.insert(id.clone(), part);
                    }
                }
            }
        });
        let mut instances: Vec<(&str, &Merged)> =
            all.iter().map(|(id, m)| (id.as_str(), m)).collect();
        instances.sort_by(|a, b| a.0.cmp(b.0));
        let mut per_connector: std::collections::BTreeMap<&str, Bucket> = Default::default();
        for (_, m) in &instances {
            per_connector
                .entry(m.connector.as_str())
                .or_default()
                .merge(&m.bucket);
        }
        json!({
            "window": window.to_string(),
            "to": rfc3339(now),
            "connectors": per_connector.iter().map(|(c, b)| {
                let mut v = b.summary();
                v["connector"] = json!(c);
                v
            }).collect::<Vec<_>>(),
            "instances": instances.iter().map(|(i, m)| {
                let mut v = m.bucket.summary();
                v["instance"] = json!(i);
                v["connector"] = json!(m.connector);
                v
            }).collect::<Vec<_>>(),
        })
    }

    /// Last outcomes and the recent error rate of `instance`.
    pub fn recent(&self, instance: &str, now: SystemTime) -> Recent {
        let Some(m) = self.merged(instance, HEALTH_WINDOW, now) else {
            return Recent::default();
        };
        Recent {
            last_success: m.last_success,
            last_failure: m.last_failure,
            calls: m.bucket.calls.count(),
            failed: m.bucket.calls.failed(),
        }
    }

    /// The upstreams `instance` has sent requests to since start.
    pub fn upstreams(&self, instance: &str) -> Vec<String> {
        let mut names = std::collections::BTreeSet::new();
        self.each_shard(|map| {
            if let Some(u) = map.get(instance) {
                names.extend(u.total.outbound.upstream_names().map(str::to_owned));
            }
        });
        names.into_iter().collect()
    }

    /// Drops the usage of a deleted instance.
    pub fn forget(&self, instance: &str) {
        for shard in &self.shards {
            lock(shard).remove(instance);
        }
    }
}

/// A shard's map. Each update leaves it consistent; a panic elsewhere while
/// holding the lock does not invalidate it.
fn lock(shard: &Shard) -> MutexGuard<'_, HashMap<String, InstanceUsage>> {
    shard.0.lock().unwrap_or_else(|e| e.into_inner())
}

/// One instance's figures over a window, added up over the shards that
/// hold some of them.
struct Merged {
    connector: String,
    connector_since: SystemTime,
    since: SystemTime,
    bucket: Bucket,
    last_success: Option<SystemTime>,
    last_failure: Option<(SystemTime, &'static str)>,
}

impl Merged {
    fn of(u: &InstanceUsage, window: Window, now: SystemTime) -> Self {
        Self {
            connector: u.connector.clone(),
            connector_since: u.connector_since,
            since: u.since,
            bucket: u.window(window, now),
            last_success: u.last_success,
            last_failure: u.last_failure,
        }
    }

    fn add(&mut self, o: Self) {
        if o.connector_since > self.connector_since {
            self.connector = o.connector;
            self.connector_since = o.connector_since;
        }
        self.since = self.since.min(o.since);
        self.bucket.merge(&o.bucket);
        self.last_success = self.last_success.max(o.last_success);
        self.last_failure = match (self.last_failure, o.last_failure) {
            (Some(a), Some(b)) => Some(if b.0 > a.0 { b } else { a }),
            (a, b) => a.or(b),
        };
    }
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// RFC 3339 in UTC, as the API writes times.
pub fn rfc3339(t: SystemTime) -> String {
    time::OffsetDateTime::from(t)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicU64;

    use super::*;
    use crate::egress::{Decision, OutboundOutcome};

    fn record(outcome: OutboundOutcome, decision: Decision, ms: u64) -> OutboundRecord {
        OutboundRecord {
            elapsed: Duration::from_millis(ms),
            bytes_out: 3,
            bytes_in: Arc::new(AtomicU64::new(10)),
            ..OutboundRecord::new(
                "GET".into(),
                Arc::from("http://127.0.0.1:9"),
                1,
                decision,
                outcome,
            )
        }
    }

    fn ok(ms: u64) -> CallOutcome<'static> {
        CallOutcome {
            method: "fetch",
            error: None,
            category: None,
            duration: Duration::from_millis(ms),
        }
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    const T0: u64 = 1_800_000_000;

    #[test]
    fn folds_journals_into_counts_and_percentiles() {
        let u = Usage::default();
        let mut records: Vec<OutboundRecord> = (1..=100)
            .map(|ms| record(OutboundOutcome::Status(200), Decision::Allowed, ms))
            .collect();
        records.push(record(
            OutboundOutcome::Status(503),
            Decision::Retried,
            1000,
        ));
        records.push(record(
            OutboundOutcome::Unavailable {
                reason: "open".into(),
                retry_after: Duration::from_secs(1),
            },
            Decision::ShortCircuited,
            0,
        ));
        u.record_outbound("inst_a", "c@1", &records[..50], at(T0));
        u.record_outbound("inst_a", "c@1", &records[50..], at(T0));
        let s = &u.stats("inst_a", Window::All, at(T0))["outbound"];
        assert_eq!(s["requests"], 101, "the short-circuited one never left");
        assert_eq!(s["decisions"]["allowed"], 100);
        assert_eq!(s["decisions"]["retried"], 1);
        assert_eq!(s["decisions"]["short_circuited"], 1);
        assert_eq!(s["statuses"]["200"], 100);
        assert_eq!(s["statuses"]["503"], 1);
        assert_eq!(s["errors"]["temporary"], 2);
        assert_eq!(s["bytesIn"], 1020);
        let p50 = s["latencyMs"]["p50"].as_f64().unwrap();
        // 101 samples: the 51st is 51 ms, within the histogram's ~4.5 %.
        assert!((48.5..=53.5).contains(&p50), "{p50}");
        assert_eq!(s["latencyMs"]["max"], 1000.0, "the maximum is exact");
        assert_eq!(s["upstreams"][0]["requests"], 101);
        assert_eq!(s["upstreams"][0]["errors"], 1);
        assert_eq!(s["upstreams"][0]["bytesOut"], 303);
        assert_eq!(u.upstreams("inst_a"), vec!["http://127.0.0.1:9"]);
        u.forget("inst_a");
        assert_eq!(
            u.stats("inst_a", Window::All, at(T0))["outbound"]["requests"],
            0
        );
        assert!(u.stats("inst_b", Window::All, at(T0))["outbound"]["latencyMs"]["p50"].is_null());
    }

    #[test]
    fn calls_count_by_code_category_and_method_per_window() {
        let u = Usage::default();
        // Two hours ago: 3 successes. Ten minutes ago: one failure. Now: a
        // success and a failure of another method.
        for _ in 0..3 {
            u.record_call("i", "c@1", &ok(10), at(T0 - 7200));
        }
        let fail = |method, code, category| CallOutcome {
            method,
            error: Some(code),
            category: Some(category),
            duration: Duration::from_millis(30),
        };
        u.record_call(
            "i",
            "c@1",
            &fail("fetch", "UPSTREAM_ERROR", "temporary"),
            at(T0 - 600),
        );
        u.record_call("i", "c@1", &ok(20), at(T0));
        u.record_call(
            "i",
            "c@1",
            &fail("post", "INVALID_PARAMS", "permanent"),
            at(T0),
        );

        let w = |s: &str| u.stats("i", s.parse().unwrap(), at(T0))["invocations"].clone();
        assert_eq!(w("5m")["count"], 2);
        assert_eq!(w("15m")["count"], 3);
        assert_eq!(w("15m")["errorsByCode"]["UPSTREAM_ERROR"], 1);
        assert_eq!(w("3h")["count"], 6);
        assert_eq!(w("all")["count"], 6);
        let all = w("all");
        assert_eq!(all["failed"], 2);
        assert_eq!(all["succeeded"], 4);
        assert_eq!(all["errorsByCategory"]["permanent"], 1);
        assert_eq!(all["methods"]["fetch"]["count"], 5);
        assert_eq!(all["methods"]["post"]["failed"], 1);
        assert_eq!(all["totalDurationMs"], 110.0);
        let s = u.stats("i", Window::Minutes(5), at(T0));
        assert_eq!(s["window"], "5m");
        assert_eq!(s["from"], rfc3339(at(T0 / 60 * 60 - 240)));

        let r = u.recent("i", at(T0));
        assert_eq!((r.calls, r.failed), (3, 2));
        assert_eq!(r.last_success, Some(at(T0)));
        assert_eq!(r.last_failure, Some((at(T0), "INVALID_PARAMS")));
    }

    /// Calls of one instance on several threads land in several shards;
    /// every read adds them up as one map held them before.
    #[test]
    fn figures_from_many_threads_read_as_one() {
        let u = Usage::default();
        let r = record(OutboundOutcome::Status(200), Decision::Allowed, 5);
        std::thread::scope(|scope| {
            for t in 0..(2 * SHARDS as u64) {
                let (u, r) = (&u, &r);
                scope.spawn(move || {
                    u.record_call("i1", "slack@1", &ok(10), at(T0 + t));
                    u.record_outbound("i1", "slack@1", std::slice::from_ref(r), at(T0 + t));
                });
            }
        });
        // Threads take the shards in turn (other tests' threads too, so
        // not exactly one each): the figures are spread over several.
        let holding = u.shards.iter().filter(|s| lock(s).contains_key("i1")).count();
        assert!(holding > 1, "{holding} shard(s) hold the calls");
        let calls = 2 * SHARDS as u64;
        let end = at(T0 + calls);
        let stats = u.stats("i1", Window::All, end);
        assert_eq!(stats["invocations"]["count"], calls);
        assert_eq!(stats["outbound"]["requests"], calls);
        assert_eq!(stats["from"], json!(rfc3339(at(T0))));
        assert_eq!(u.upstreams("i1"), vec!["http://127.0.0.1:9".to_owned()]);
        let recent = u.recent("i1", end);
        assert_eq!((recent.calls, recent.failed), (calls, 0));
        // An upgrade seen by one thread names the instance's connector.
        std::thread::scope(|scope| {
            scope.spawn(|| u.record_call("i1", "slack@2", &ok(10), end));
        });
        // The newest success of any shard is the instance's last one.
        assert_eq!(u.recent("i1", end).last_success, Some(end));
        let summary = u.summary(Window::All, end);
        assert_eq!(summary["instances"].as_array().map(Vec::len), Some(1));
        assert_eq!(summary["instances"][0]["connector"], "slack@2");
        assert_eq!(summary["connectors"][0]["invocations"], calls + 1);
        u.forget("i1");
        assert!(u.shards.iter().all(|s| lock(s).is_empty()));
    }

    #[test]
    fn summary_adds_instances_up_per_connector() {
        let u = Usage::default();
        u.record_call("i1", "slack@1", &ok(10), at(T0));
        u.record_call("i2", "slack@1", &ok(10), at(T0));
        u.record_call("i3", "github@2", &ok(10), at(T0));
        let r = record(OutboundOutcome::Status(200), Decision::Allowed, 5);
        u.record_outbound("i1", "slack@1", std::slice::from_ref(&r), at(T0));
        let s = u.summary(Window::Hours(24), at(T0));
        assert_eq!(s["connectors"][0]["connector"], "github@2");
        assert_eq!(s["connectors"][1]["invocations"], 2);
        assert_eq!(s["connectors"][1]["outboundRequests"], 1);
        assert_eq!(s["connectors"][1]["bytesIn"], 10);
        assert_eq!(s["instances"].as_array().unwrap().len(), 3);
        assert_eq!(s["instances"][0]["instance"], "i1");
        // A week later the 24 h window is empty but `all` is not.
        let later = at(T0 + 8 * 24 * 3600);
        assert_eq!(
            u.summary(Window::Hours(24), later)["connectors"][1]["invocations"],
            0
        );
        assert_eq!(
            u.summary(Window::All, later)["connectors"][1]["invocations"],
            2
        );
    }
}

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
//! - [`histogram`]: the sparse log-scale latency histogram every slot holds.
//! - [`bucket`]: what a slot holds, how slots merge, their JSON.
//! - [`window`]: `?window=` parsing and the slot rings.
//! - [`pending`]: each thread's calls not yet folded into the shared
//!   figures (folded by every read).

pub mod bucket;
pub mod histogram;
mod pending;
pub mod window;

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

pub use bucket::{Bucket, CallOutcome};
pub use window::{BadWindow, Window};

use crate::egress::OutboundRecord;
use pending::Pending;
use window::Ring;

/// The window health reports an error rate over.
pub const HEALTH_WINDOW: Window = Window::Minutes(15);

/// Usage of all instances.
#[derive(Default)]
pub struct Usage {
    instances: Mutex<HashMap<String, InstanceUsage>>,
    /// Calls recorded and not yet in `instances`.
    pending: pending::Shards,
}

struct InstanceUsage {
    connector: String,
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
            since: now,
            total: Bucket::default(),
            minutes: Ring::minutes(),
            hours: Ring::hours(),
            last_success: None,
            last_failure: None,
        }
    }

    /// Applies `f` to the total and to the minute and hour slots of
    /// `secs` (those still kept).
    fn each(&mut self, secs: u64, f: impl Fn(&mut Bucket)) {
        f(&mut self.total);
        self.minutes.slot(secs).map(&f);
        self.hours.slot(secs).map(&f);
    }

    /// Adds a thread's pending calls.
    fn fold(&mut self, p: &Pending) {
        self.since = self.since.min(p.since);
        self.each(p.minute * 60, |b| b.calls.merge(&p.calls));
        self.last_success = self.last_success.max(p.last_success);
        if p.last_failure
            .is_some_and(|(t, _)| self.last_failure.is_none_or(|(u, _)| t >= u))
        {
            self.last_failure = p.last_failure;
        }
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
    fn lock(&self) -> MutexGuard<'_, HashMap<String, InstanceUsage>> {
        // Each update leaves the map consistent; a panic elsewhere while
        // holding the lock does not invalidate it.
        self.instances.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The shared figures, with every thread's pending calls folded in:
    /// what every read starts from.
    fn settled(&self) -> MutexGuard<'_, HashMap<String, InstanceUsage>> {
        let drained = self.pending.drain();
        let mut map = self.lock();
        for (instance, p) in &drained {
            Self::fold_into(&mut map, instance, p);
        }
        map
    }

    fn fold_into(map: &mut HashMap<String, InstanceUsage>, instance: &str, p: &Pending) {
        entry(map, instance, &p.connector, p.since).fold(p);
    }

    /// Records how a call of `instance` ended: in this thread's pending
    /// figures ([`pending`]), folding the ones it replaces.
    pub fn record_call(
        &self,
        instance: &str,
        connector: &str,
        outcome: &CallOutcome<'_>,
        now: SystemTime,
    ) {
        if let Some(stale) = self.pending.record(instance, connector, outcome, now) {
            Self::fold_into(&mut self.lock(), instance, &stale);
        }
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
        entry(&mut self.lock(), instance, connector, now).each(unix_secs(now), |b| {
            for r in records {
                b.outbound.add(r);
            }
        });
    }

    /// `instance`'s figures over `window` (zeroes if it has not run).
    pub fn stats(&self, instance: &str, window: Window, now: SystemTime) -> Value {
        let map = self.settled();
        let (bucket, since) = match map.get(instance) {
            Some(u) => (u.window(window, now), u.since),
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
        let map = self.settled();
        let mut per_connector: std::collections::BTreeMap<&str, Bucket> = Default::default();
        let mut instances: Vec<(&str, &str, Bucket)> = map
            .iter()
            .map(|(id, u)| (id.as_str(), u.connector.as_str(), u.window(window, now)))
            .collect();
        instances.sort_by(|a, b| a.0.cmp(b.0));
        for (_, connector, b) in &instances {
            per_connector.entry(connector).or_default().merge(b);
        }
        json!({
            "window": window.to_string(),
            "to": rfc3339(now),
            "connectors": per_connector.iter().map(|(c, b)| {
                let mut v = b.summary();
                v["connector"] = json!(c);
                v
            }).collect::<Vec<_>>(),
            "instances": instances.iter().map(|(i, c, b)| {
                let mut v = b.summary();
                v["instance"] = json!(i);
                v["connector"] = json!(c);
                v
            }).collect::<Vec<_>>(),
        })
    }

    /// Last outcomes and the recent error rate of `instance`.
    pub fn recent(&self, instance: &str, now: SystemTime) -> Recent {
        let map = self.settled();
        let Some(u) = map.get(instance) else {
            return Recent::default();
        };
        let b = u.window(HEALTH_WINDOW, now);
        Recent {
            last_success: u.last_success,
            last_failure: u.last_failure,
            calls: b.calls.count(),
            failed: b.calls.failed(),
        }
    }

    /// The upstreams `instance` has sent requests to since start.
    pub fn upstreams(&self, instance: &str) -> Vec<String> {
        self.settled()
            .get(instance)
            .map(|u| {
                u.total
                    .outbound
                    .upstream_names()
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Drops the usage of a deleted instance.
    pub fn forget(&self, instance: &str) {
        self.settled().remove(instance);
    }
}

/// `instance`'s entry in `map`, created on first use.
fn entry<'m>(
    map: &'m mut HashMap<String, InstanceUsage>,
    instance: &str,
    connector: &str,
    now: SystemTime,
) -> &'m mut InstanceUsage {
    // Looked up before inserting: no owned key when it exists.
    if !map.contains_key(instance) {
        map.insert(instance.to_owned(), InstanceUsage::new(connector, now));
    }
    let entry = map.get_mut(instance).expect("the entry was just ensured");
    // After an upgrade the instance's usage counts for the new version.
    if entry.connector != connector {
        connector.clone_into(&mut entry.connector);
    }
    entry
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

    #[test]
    fn calls_of_every_thread_count_once_folded() {
        let u = Arc::new(Usage::default());
        let record = |u: &Usage, n: usize, at_secs: u64| {
            for _ in 0..n {
                u.record_call("i", "c@1", &ok(10), at(at_secs));
            }
        };
        // One thread exits before the read, one is alive during it.
        let exited = {
            let u = u.clone();
            std::thread::spawn(move || record(&u, 3, T0))
        };
        exited.join().unwrap();
        let (recorded, read) = std::sync::mpsc::channel();
        let (done, wait) = std::sync::mpsc::channel::<()>();
        let alive = {
            let u = u.clone();
            std::thread::spawn(move || {
                record(&u, 2, T0);
                recorded.send(()).unwrap();
                wait.recv().unwrap();
            })
        };
        read.recv().unwrap();
        record(&u, 1, T0);
        // Nothing reached the shared figures yet: each call is pending.
        assert!(u.lock().is_empty());
        assert_eq!(u.pending.all().len(), 3, "one shard per thread");
        let calls = |u: &Usage, w: &str| {
            u.stats("i", w.parse().unwrap(), at(T0))["invocations"]["count"].clone()
        };
        assert_eq!(calls(&u, "1m"), 6);
        assert_eq!(calls(&u, "all"), 6);
        assert_eq!(
            u.pending.all().len(),
            2,
            "the exited thread's shard is gone"
        );
        done.send(()).unwrap();
        alive.join().unwrap();

        // A call in a later minute folds the thread's pending minute into
        // its own slot, without a read.
        record(&u, 1, T0 + 60);
        record(&u, 1, T0 + 120);
        assert_eq!(u.lock()["i"].total.calls.count(), 7);
        let at_minute = |w: &str, minute: u64| {
            u.stats("i", w.parse().unwrap(), at(T0 + minute * 60))["invocations"]["count"].clone()
        };
        assert_eq!(at_minute("1m", 1), 1);
        assert_eq!(at_minute("1m", 2), 1);
        assert_eq!(at_minute("3m", 2), 8);
        // A thread's pending minute folded after a newer one (by a read)
        // still lands in its own minute.
        let late = {
            let u = u.clone();
            std::thread::spawn(move || record(&u, 4, T0 + 60))
        };
        late.join().unwrap();
        record(&u, 2, T0 + 180);
        assert_eq!(at_minute("1m", 3), 2);
        assert_eq!(at_minute("2m", 3), 3);
        // Minute 1 holds the main thread's call and the late thread's 4.
        assert_eq!(at_minute("3m", 3), 8);
        assert_eq!(at_minute("4m", 3), 14);
        assert_eq!(at_minute("all", 3), 14);

        // Forgetting an instance drops its pending calls too.
        record(&u, 1, T0 + 180);
        u.forget("i");
        assert_eq!(calls(&u, "all"), 0);
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

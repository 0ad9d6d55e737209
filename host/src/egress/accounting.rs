//! Per-instance outbound statistics: counts by decision, status and error
//! category, bytes, and latency percentiles, folded from each invocation's
//! journal.
//!
//! Kept in memory since the host started (like a metrics endpoint), not
//! persisted: the durable per-request audit trail is the audit log's job.
//! Latencies go into an HDR histogram (the `hdrhistogram` crate), so
//! percentiles cost constant memory per instance however many requests it
//! makes.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{Value, json};

use super::journal::{OutboundRecord, millis};

/// Stats of all instances.
#[derive(Default)]
pub struct Accounting {
    instances: Mutex<HashMap<String, InstanceStats>>,
}

/// One upstream as seen by one instance.
#[derive(Default)]
struct UpstreamStats {
    requests: u64,
    errors: u64,
    last_status: Option<u16>,
}

struct InstanceStats {
    since: String,
    invocations: u64,
    /// Attempts that reached the network.
    requests: u64,
    decisions: BTreeMap<&'static str, u64>,
    statuses: BTreeMap<u16, u64>,
    errors: BTreeMap<&'static str, u64>,
    bytes_out: u64,
    bytes_in: u64,
    /// Microseconds to response headers, of attempts that got a response.
    latency: Histogram<u64>,
    upstreams: BTreeMap<String, UpstreamStats>,
}

impl InstanceStats {
    fn new() -> Self {
        Self {
            since: crate::api::now(),
            invocations: 0,
            requests: 0,
            decisions: BTreeMap::new(),
            statuses: BTreeMap::new(),
            errors: BTreeMap::new(),
            bytes_out: 0,
            bytes_in: 0,
            // 1 µs .. 1 h at 3 significant digits (~ 25 KiB); auto-resize
            // covers anything longer instead of dropping it.
            latency: {
                let mut h = Histogram::new_with_bounds(1, 3_600_000_000, 3)
                    .unwrap_or_else(|_| Histogram::new(3).expect("3 significant digits is valid"));
                h.auto(true);
                h
            },
            upstreams: BTreeMap::new(),
        }
    }

    fn add(&mut self, r: &OutboundRecord) {
        *self.decisions.entry(r.decision.as_str()).or_default() += 1;
        let outcome = r.effective_outcome();
        let category = outcome.category();
        if let Some(c) = category {
            *self.errors.entry(c.as_str()).or_default() += 1;
        }
        self.bytes_out += r.bytes_out;
        self.bytes_in += r.bytes_in.load(Ordering::Relaxed);
        if !r.outcome.reached_upstream() {
            return;
        }
        self.requests += 1;
        let upstream = self.upstreams.entry(r.upstream.to_string()).or_default();
        upstream.requests += 1;
        upstream.errors += u64::from(category.is_some());
        if let super::OutboundOutcome::Status(s) = r.outcome {
            *self.statuses.entry(s).or_default() += 1;
            upstream.last_status = Some(s);
            let micros = u64::try_from(r.elapsed.as_micros()).unwrap_or(u64::MAX);
            // `record` only fails beyond the bounds, which auto-resize lifts.
            let _ = self.latency.record(micros.max(1));
        }
    }

    fn to_json(&self) -> Value {
        let p = |q: f64| {
            if self.latency.is_empty() {
                Value::Null
            } else {
                json!(millis(Duration::from_micros(
                    self.latency.value_at_quantile(q)
                )))
            }
        };
        let statuses: BTreeMap<String, u64> = self
            .statuses
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect();
        json!({
            "since": self.since,
            "invocations": self.invocations,
            "requests": self.requests,
            "decisions": self.decisions,
            "statuses": statuses,
            "errors": self.errors,
            "bytesOut": self.bytes_out,
            "bytesIn": self.bytes_in,
            "latencyMs": {
                "count": self.latency.len(),
                "p50": p(0.5),
                "p90": p(0.9),
                "p99": p(0.99),
                "max": p(1.0),
            },
            "upstreams": self.upstreams.iter().map(|(u, s)| json!({
                "upstream": u,
                "requests": s.requests,
                "errors": s.errors,
                "lastStatus": s.last_status,
            })).collect::<Vec<_>>(),
        })
    }
}

impl Accounting {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, InstanceStats>> {
        // Each update leaves the map consistent; a panic elsewhere while
        // holding the lock does not invalidate it.
        self.instances.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Folds one invocation's journal into `instance`'s stats.
    pub fn record(&self, instance: &str, records: &[OutboundRecord]) {
        let mut map = self.lock();
        let stats = map
            .entry(instance.to_owned())
            .or_insert_with(InstanceStats::new);
        stats.invocations += 1;
        for r in records {
            stats.add(r);
        }
    }

    /// The stats of `instance` (zeroes if it has not run since start).
    pub fn stats(&self, instance: &str) -> Value {
        match self.lock().get(instance) {
            Some(s) => s.to_json(),
            None => InstanceStats::new().to_json(),
        }
    }

    /// The upstreams `instance` has sent requests to since start.
    pub fn upstreams(&self, instance: &str) -> Vec<String> {
        self.lock()
            .get(instance)
            .map(|s| s.upstreams.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Drops the stats of a deleted instance.
    pub fn forget(&self, instance: &str) {
        self.lock().remove(instance);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicU64;

    use super::super::journal::Decision;
    use super::super::{OutboundOutcome, OutboundRecord};
    use super::*;

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

    #[test]
    fn folds_journals_into_counts_and_percentiles() {
        let a = Accounting::default();
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
        a.record("inst_a", &records[..50]);
        a.record("inst_a", &records[50..]);
        let s = a.stats("inst_a");
        assert_eq!(s["invocations"], 2);
        assert_eq!(s["requests"], 101, "the short-circuited one never left");
        assert_eq!(s["decisions"]["allowed"], 100);
        assert_eq!(s["decisions"]["retried"], 1);
        assert_eq!(s["decisions"]["short_circuited"], 1);
        assert_eq!(s["statuses"]["200"], 100);
        assert_eq!(s["statuses"]["503"], 1);
        assert_eq!(s["errors"]["temporary"], 2);
        assert_eq!(s["bytesIn"], 1020);
        let p50 = s["latencyMs"]["p50"].as_f64().unwrap();
        // 101 samples: the 51st is 51 ms, within HDR's 0.1% precision.
        assert!((50.9..=51.1).contains(&p50), "{p50}");
        let max = s["latencyMs"]["max"].as_f64().unwrap();
        assert!((999.0..=1001.0).contains(&max), "{max}");
        assert_eq!(s["upstreams"][0]["requests"], 101);
        assert_eq!(s["upstreams"][0]["errors"], 1);
        assert_eq!(a.upstreams("inst_a"), vec!["http://127.0.0.1:9"]);
        a.forget("inst_a");
        assert_eq!(a.stats("inst_a")["requests"], 0);
        assert!(a.stats("inst_b")["latencyMs"]["p50"].is_null());
    }
}

//! What one time slot (or the since-start total) of one instance holds:
//! its calls' outcomes and its outbound attempts, with `add`, `merge` and
//! the JSON the API shows.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::{Value, json};

use super::histogram::LogHistogram;
use crate::egress::{OutboundOutcome, OutboundRecord, millis};

/// How one call ended, as usage records it.
#[derive(Debug, Clone, Copy)]
pub struct CallOutcome<'a> {
    /// Method name, `test-connection` or `handle-webhook`.
    pub method: &'a str,
    /// The API error code, `None` on success.
    pub error: Option<&'static str>,
    /// The error's category (`temporary`, …), `None` on success.
    pub category: Option<&'static str>,
    /// Wall time of the call as the API saw it.
    pub duration: Duration,
}

/// Calls: counts, outcomes, durations.
#[derive(Debug, Default, Clone)]
pub struct Calls {
    count: u64,
    failed: u64,
    by_code: BTreeMap<&'static str, u64>,
    by_category: BTreeMap<&'static str, u64>,
    /// (calls, failed) per method.
    methods: BTreeMap<String, (u64, u64)>,
    duration: LogHistogram,
    /// Sum of durations, for cost tracking (compute time).
    total: Duration,
}

/// One upstream as seen by one instance.
#[derive(Debug, Default, Clone)]
struct Upstream {
    requests: u64,
    errors: u64,
    bytes_out: u64,
    bytes_in: u64,
    last_status: Option<u16>,
}

/// Outbound attempts: decisions, statuses, errors, bytes, latency.
#[derive(Debug, Default, Clone)]
pub struct Outbound {
    /// Attempts that reached the network.
    requests: u64,
    decisions: BTreeMap<&'static str, u64>,
    statuses: BTreeMap<u16, u64>,
    errors: BTreeMap<&'static str, u64>,
    bytes_out: u64,
    bytes_in: u64,
    /// Time spent queued on rate budgets, summed.
    queued: Duration,
    /// Time to response headers, of attempts that got a response.
    latency: LogHistogram,
    upstreams: BTreeMap<String, Upstream>,
}

/// One slot's worth of an instance's usage.
#[derive(Debug, Default, Clone)]
pub struct Bucket {
    /// Calls that ended in this slot.
    pub calls: Calls,
    /// Outbound attempts of calls that ended in this slot.
    pub outbound: Outbound,
}

impl Calls {
    pub(super) fn add(&mut self, c: &CallOutcome<'_>) {
        self.count += 1;
        let failed = u64::from(c.error.is_some());
        self.failed += failed;
        if let Some(code) = c.error {
            *self.by_code.entry(code).or_default() += 1;
        }
        if let Some(category) = c.category {
            *self.by_category.entry(category).or_default() += 1;
        }
        let m = entry(&mut self.methods, c.method);
        m.0 += 1;
        m.1 += failed;
        self.duration.record(c.duration);
        self.total += c.duration;
    }

    pub(super) fn merge(&mut self, o: &Self) {
        self.count += o.count;
        self.failed += o.failed;
        add_counts(&mut self.by_code, &o.by_code);
        add_counts(&mut self.by_category, &o.by_category);
        for (m, (n, f)) in &o.methods {
            let e = self.methods.entry(m.clone()).or_default();
            e.0 += n;
            e.1 += f;
        }
        self.duration.merge(&o.duration);
        self.total += o.total;
    }

    /// Number of calls.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Number of failed calls.
    pub fn failed(&self) -> u64 {
        self.failed
    }

    fn to_json(&self) -> Value {
        json!({
            "count": self.count,
            "succeeded": self.count - self.failed,
            "failed": self.failed,
            "errorRate": if self.count == 0 { 0.0 } else { self.failed as f64 / self.count as f64 },
            "errorsByCode": self.by_code,
            "errorsByCategory": self.by_category,
            "methods": self.methods.iter().map(|(m, (n, f))| (m.clone(), json!({"count": n, "failed": f}))).collect::<serde_json::Map<_, _>>(),
            "durationMs": percentiles(&self.duration),
            "totalDurationMs": millis(self.total),
        })
    }
}

impl Outbound {
    pub(super) fn add(&mut self, r: &OutboundRecord) {
        *self.decisions.entry(r.decision.as_str()).or_default() += 1;
        let category = r.effective_outcome().category();
        if let Some(c) = category {
            *self.errors.entry(c.as_str()).or_default() += 1;
        }
        let bytes_in = r.bytes_in.load(Ordering::Relaxed);
        self.bytes_out += r.bytes_out;
        self.bytes_in += bytes_in;
        self.queued += r.queued;
        if !r.outcome.reached_upstream() {
            return;
        }
        self.requests += 1;
        let upstream = entry(&mut self.upstreams, &r.upstream);
        upstream.requests += 1;
        upstream.errors += u64::from(category.is_some());
        upstream.bytes_out += r.bytes_out;
        upstream.bytes_in += bytes_in;
        if let OutboundOutcome::Status(s) = r.outcome {
            *self.statuses.entry(s).or_default() += 1;
            upstream.last_status = Some(s);
            self.latency.record(r.elapsed);
        }
    }

    fn merge(&mut self, o: &Self) {
        self.requests += o.requests;
        add_counts(&mut self.decisions, &o.decisions);
        add_counts(&mut self.statuses, &o.statuses);
        add_counts(&mut self.errors, &o.errors);
        self.bytes_out += o.bytes_out;
        self.bytes_in += o.bytes_in;
        self.queued += o.queued;
        self.latency.merge(&o.latency);
        // `o` is the newer slot when merging oldest first, so its last
        // status wins.
        for (name, u) in &o.upstreams {
            let e = self.upstreams.entry(name.clone()).or_default();
            e.requests += u.requests;
            e.errors += u.errors;
            e.bytes_out += u.bytes_out;
            e.bytes_in += u.bytes_in;
            e.last_status = u.last_status.or(e.last_status);
        }
    }

    /// Attempts that reached the network.
    pub fn requests(&self) -> u64 {
        self.requests
    }

    /// Request and response body bytes.
    pub fn bytes(&self) -> (u64, u64) {
        (self.bytes_out, self.bytes_in)
    }

    /// The upstreams called.
    pub fn upstream_names(&self) -> impl Iterator<Item = &str> {
        self.upstreams.keys().map(String::as_str)
    }

    fn to_json(&self) -> Value {
        let statuses: BTreeMap<String, u64> = self
            .statuses
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect();
        json!({
            "requests": self.requests,
            "decisions": self.decisions,
            "statuses": statuses,
            "errors": self.errors,
            "bytesOut": self.bytes_out,
            "bytesIn": self.bytes_in,
            "queuedMs": millis(self.queued),
            "latencyMs": percentiles(&self.latency),
            "upstreams": self.upstreams.iter().map(|(u, s)| json!({
                "upstream": u,
                "requests": s.requests,
                "errors": s.errors,
                "bytesOut": s.bytes_out,
                "bytesIn": s.bytes_in,
                "lastStatus": s.last_status,
            })).collect::<Vec<_>>(),
        })
    }
}

impl Bucket {
    /// Adds `o`'s counts to this bucket.
    pub fn merge(&mut self, o: &Self) {
        self.calls.merge(&o.calls);
        self.outbound.merge(&o.outbound);
    }

    /// `{"invocations": …, "outbound": …}`.
    pub fn to_json(&self) -> Value {
        json!({
            "invocations": self.calls.to_json(),
            "outbound": self.outbound.to_json(),
        })
    }

    /// The cost-tracking summary: calls, failures, compute time, outbound
    /// requests and bytes.
    pub fn summary(&self) -> Value {
        json!({
            "invocations": self.calls.count,
            "failed": self.calls.failed,
            "totalDurationMs": millis(self.calls.total),
            "outboundRequests": self.outbound.requests,
            "bytesOut": self.outbound.bytes_out,
            "bytesIn": self.outbound.bytes_in,
        })
    }
}

/// `map[key]`, created if missing. Every call and attempt updates three
/// buckets (total, minute, hour): looking up before inserting spares an
/// owned key per bucket on the invoke path once the key exists.
fn entry<'a, V: Default>(map: &'a mut BTreeMap<String, V>, key: &str) -> &'a mut V {
    if !map.contains_key(key) {
        map.insert(key.to_owned(), V::default());
    }
    map.get_mut(key).expect("inserted above")
}

fn add_counts<K: Ord + Clone>(into: &mut BTreeMap<K, u64>, from: &BTreeMap<K, u64>) {
    for (k, n) in from {
        *into.entry(k.clone()).or_default() += n;
    }
}

fn percentiles(h: &LogHistogram) -> Value {
    let p = |q: f64| h.quantile(q).map(millis);
    json!({
        "count": h.len(),
        "p50": p(0.5),
        "p90": p(0.9),
        "p99": p(0.99),
        "max": p(1.0),
    })
}

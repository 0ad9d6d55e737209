//! Prometheus metrics (`GET /metrics`), recorded with the `metrics` facade
//! and rendered by `metrics-exporter-prometheus`.
//!
//! Labels are bounded on purpose: connector ids and method names come
//! from stored manifests (a method the manifest lacks is `_unknown`),
//! upstreams are `scheme://host:port` of declared hosts, routes are the
//! router's patterns. Instance ids are not labels (there can be many);
//! per-instance figures are `GET /v1/instances/{id}/stats`.
//!
//! Counters and histograms are recorded where things happen; the state of
//! circuits is read when the page is rendered.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash as _, Hasher as _};
use std::sync::OnceLock;
use std::thread::LocalKey;
use std::time::{Duration, Instant};

use metrics::{Counter, Histogram, counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use rustc_hash::FxHasher;

use crate::egress::{Broker, Decision, OutboundOutcome, OutboundRecord};

/// Histogram buckets in seconds: 100 µs to 60 s, roughly ×2.5 apart — an
/// invocation of a small guest takes ~50 µs of host time, an upstream call
/// tens of milliseconds, a slow one seconds.
const BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide recorder (once) and returns the handle that
/// renders it. If another recorder is already installed (an embedding
/// application's), ours renders only the metric descriptions.
pub fn install() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
            .map(PrometheusBuilder::build_recorder)
            .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed; /metrics will be empty");
        }
        describe();
        handle
    })
}

/// Drains histogram samples into their buckets now and then, so memory
/// stays flat when nobody scrapes.
pub fn spawn_upkeep() {
    let handle = install();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            handle.run_upkeep();
        }
    });
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "plugboard_invocations_total",
        "Calls of connector methods (incl. test-connection and handle-webhook), by outcome code (SUCCESS or the API error code)"
    );
    describe_histogram!(
        "plugboard_invocation_duration_seconds",
        Unit::Seconds,
        "Wall time of calls as the API saw them"
    );
    describe_counter!(
        "plugboard_outbound_requests_total",
        "Outbound attempts by upstream and broker decision (allowed, queued, retried, denied, rate_limited, short_circuited)"
    );
    describe_counter!(
        "plugboard_outbound_errors_total",
        "Outbound attempts that failed, by upstream and error category"
    );
    describe_histogram!(
        "plugboard_outbound_duration_seconds",
        Unit::Seconds,
        "Time to response headers of outbound attempts that got a response"
    );
    describe_histogram!(
        "plugboard_rate_limit_wait_seconds",
        Unit::Seconds,
        "Time outbound attempts waited on rate budgets (attempts that waited)"
    );
    describe_gauge!(
        "plugboard_circuit_state",
        "Circuit of each upstream: 0 closed, 1 half-open, 2 open"
    );
    describe_histogram!(
        "plugboard_instantiation_seconds",
        Unit::Seconds,
        "Time to instantiate a component for one call"
    );
    describe_counter!(
        "plugboard_component_loads_total",
        "Component lookups by source: memory (cache hit), artifact (stored compiled artifact), compiled (compiled from bytes)"
    );
    describe_counter!(
        "plugboard_http_requests_total",
        "API requests by route pattern, method and status"
    );
    describe_histogram!(
        "plugboard_http_request_duration_seconds",
        Unit::Seconds,
        "API request handling time by route pattern and method"
    );
}

/// One finished call.
pub fn invocation(connector: &str, method: &str, code: &'static str, duration: Duration) {
    thread_local! {
        static HANDLES: Handles<(Counter, Histogram)> = Handles::default();
    }
    let make = || {
        (
            counter!("plugboard_invocations_total",
                "connector" => connector.to_owned(), "method" => method.to_owned(), "code" => code),
            histogram!("plugboard_invocation_duration_seconds",
                "connector" => connector.to_owned(), "method" => method.to_owned()),
        )
    };
    with_handles(
        &HANDLES,
        &[connector, method, code],
        make,
        |(calls, durations)| {
            calls.increment(1);
            durations.record(duration);
        },
    );
}

/// One call's outbound attempts.
pub fn outbound(records: &[OutboundRecord]) {
    for r in records {
        let upstream = r.upstream.to_string();
        counter!("plugboard_outbound_requests_total",
            "upstream" => upstream.clone(), "decision" => r.decision.as_str())
        .increment(1);
        if let Some(c) = r.effective_outcome().category() {
            counter!("plugboard_outbound_errors_total",
                "upstream" => upstream.clone(), "category" => c.as_str())
            .increment(1);
        }
        if let OutboundOutcome::Status(_) = r.outcome {
            histogram!("plugboard_outbound_duration_seconds", "upstream" => upstream.clone())
                .record(r.elapsed);
        }
        if r.queued > Duration::ZERO || r.decision == Decision::Queued {
            histogram!("plugboard_rate_limit_wait_seconds", "upstream" => upstream)
                .record(r.queued);
        }
    }
}

/// Where a component came from for one call.
pub fn component_load(source: &'static str) {
    thread_local! {
        static HANDLES: Handles<Counter> = Handles::default();
    }
    let make = || counter!("plugboard_component_loads_total", "source" => source);
    with_handles(&HANDLES, &[source], make, |loads| loads.increment(1));
}

/// Time to instantiate a component for one call.
pub fn instantiation(started: Instant) {
    histogram!("plugboard_instantiation_seconds").record(started.elapsed());
}

/// One API request.
pub fn http_request(route: &str, method: &str, status: http::StatusCode, duration: Duration) {
    thread_local! {
        static HANDLES: Handles<(Counter, Histogram)> = Handles::default();
    }
    let make = || {
        (
            counter!("plugboard_http_requests_total",
                "route" => route.to_owned(), "method" => method.to_owned(),
                "status" => status.as_str().to_owned()),
            histogram!("plugboard_http_request_duration_seconds",
                "route" => route.to_owned(), "method" => method.to_owned()),
        )
    };
    let labels = [route, method, status.as_str()];
    with_handles(&HANDLES, &labels, make, |(requests, durations)| {
        requests.increment(1);
        durations.record(duration);
    });
}

/// Metric handles by label values. The facade's macros build a key (an
/// allocation per label) and look it up in the registry on every use: per
/// invocation that was ~4 % of the host's CPU under load (perf). A handle
/// found here is an atomic add. Label values are bounded (module docs), so
/// no thread's map grows past the label sets actually seen.
///
/// One per thread (each use is a `thread_local!`): a shared map behind a
/// mutex, and cloning the handles out of it (and dropping the clones), put
/// a lock and four writes to reference counts on each request's path, all
/// of them shared by every worker (perf: ~2 % of the host's CPU, some of it
/// waiting on the lock; the per-thread lookup is ~0.5 %). The handles point
/// at the same metrics whichever thread found them.
struct Handles<V> {
    /// By a hash of the labels; each bucket compares the labels themselves.
    /// FxHash: the labels are bounded and not chosen by callers (module
    /// docs), so a keyed hash buys nothing here.
    by_hash: RefCell<HashMap<u64, Bucket<V>, BuildHasherDefault<FxHasher>>>,
}

// By hand: a derive would ask for `V: Default`, which handles are not.
impl<V> Default for Handles<V> {
    fn default() -> Self {
        Self {
            by_hash: RefCell::default(),
        }
    }
}

/// The label sets (and their handles) that share a hash.
type Bucket<V> = Vec<(Box<[Box<str>]>, V)>;

/// Runs `f` on this thread's handles for `labels` in `cache`, made by `make`
/// the first time this thread sees them.
fn with_handles<V: 'static>(
    cache: &'static LocalKey<Handles<V>>,
    labels: &[&str],
    make: impl FnOnce() -> V,
    f: impl FnOnce(&V),
) {
    let mut hasher = FxHasher::default();
    labels.hash(&mut hasher);
    let hash = hasher.finish();
    cache.with(|cache| {
        let mut map = cache.by_hash.borrow_mut();
        let bucket = map.entry(hash).or_default();
        let same = |seen: &[Box<str>]| seen.iter().map(|s| &**s).eq(labels.iter().copied());
        match bucket.iter().find(|(seen, _)| same(seen)) {
            Some((_, handles)) => f(handles),
            None => {
                let handles = make();
                f(&handles);
                let key = labels.iter().map(|&l| Box::from(l)).collect();
                bucket.push((key, handles));
            }
        }
    });
}

/// The exposition text, with the circuit gauges read now.
pub fn render(broker: &Broker) -> String {
    for c in broker.breakers().snapshot_all(Instant::now()) {
        gauge!("plugboard_circuit_state", "upstream" => c.upstream).set(c.state.level());
    }
    install().render()
}

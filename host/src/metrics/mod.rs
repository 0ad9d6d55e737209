//! Prometheus metrics (`GET /metrics`).
//!
//! - The metrics every call updates (calls, their durations, API requests,
//!   component loads, instantiations) are kept per thread by [`sharded`]
//!   and added up when the page is rendered: on the invoke path, the
//!   exporter's shared atomics had 4.03 % of the host's profile samples.
//! - The rest (outbound attempts, rate-limit waits, circuit states) go
//!   through the `metrics` facade and `metrics-exporter-prometheus`.
//!
//! Labels are bounded on purpose: connector ids and method names come
//! from stored manifests (a method the manifest lacks is `_unknown`),
//! upstreams are `scheme://host:port` of declared hosts, routes are the
//! router's patterns. Instance ids are not labels (there can be many);
//! per-instance figures are `GET /v1/instances/{id}/stats`.
//!
//! Counters and histograms are recorded where things happen; the state of
//! circuits is read when the page is rendered.

mod sharded;

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::egress::{Broker, Decision, OutboundOutcome, OutboundRecord};
use sharded::{Family, Kind};

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
}

static INVOCATIONS: Family = Family::new(
    Kind::Counter,
    "plugboard_invocations_total",
    "Calls of connector methods (incl. test-connection and handle-webhook), by outcome code (SUCCESS or the API error code)",
    &["connector", "method", "code"],
);
static INVOCATION_DURATION: Family = Family::new(
    Kind::Histogram,
    "plugboard_invocation_duration_seconds",
    "Wall time of calls as the API saw them",
    &["connector", "method"],
);
static INSTANTIATION: Family = Family::new(
    Kind::Histogram,
    "plugboard_instantiation_seconds",
    "Time to instantiate a component for one call",
    &[],
);
static COMPONENT_LOADS: Family = Family::new(
    Kind::Counter,
    "plugboard_component_loads_total",
    "Component lookups by source: memory (cache hit), artifact (stored compiled artifact), compiled (compiled from bytes)",
    &["source"],
);
static HTTP_REQUESTS: Family = Family::new(
    Kind::Counter,
    "plugboard_http_requests_total",
    "API requests by route pattern, method and status",
    &["route", "method", "status"],
);
static HTTP_REQUEST_DURATION: Family = Family::new(
    Kind::Histogram,
    "plugboard_http_request_duration_seconds",
    "API request handling time by route pattern and method",
    &["route", "method"],
);

/// The families [`sharded`] keeps, in the order `/metrics` shows them.
static SHARDED: [&Family; 6] = [
    &INVOCATIONS,
    &INVOCATION_DURATION,
    &INSTANTIATION,
    &COMPONENT_LOADS,
    &HTTP_REQUESTS,
    &HTTP_REQUEST_DURATION,
];

/// One finished call.
pub fn invocation(connector: &str, method: &str, code: &'static str, duration: Duration) {
    sharded::with(
        &[&INVOCATIONS, &INVOCATION_DURATION],
        &[connector, method, code],
        |cells| {
            cells[0].increment();
            cells[1].observe(duration);
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
    sharded::with(&[&COMPONENT_LOADS], &[source], |cells| cells[0].increment());
}

/// Time to instantiate a component for one call.
pub fn instantiation(started: Instant) {
    let elapsed = started.elapsed();
    sharded::with(&[&INSTANTIATION], &[], |cells| cells[0].observe(elapsed));
}

/// One API request.
pub fn http_request(route: &str, method: &str, status: http::StatusCode, duration: Duration) {
    sharded::with(
        &[&HTTP_REQUESTS, &HTTP_REQUEST_DURATION],
        &[route, method, status.as_str()],
        |cells| {
            cells[0].increment();
            cells[1].observe(duration);
        },
    );
}

/// The exposition text, with the circuit gauges read now.
pub fn render(broker: &Broker) -> String {
    for c in broker.breakers().snapshot_all(Instant::now()) {
        gauge!("plugboard_circuit_state", "upstream" => c.upstream).set(c.state.level());
    }
    let mut text = install().render();
    if !text.is_empty() && !text.ends_with("\n\n") {
        text.push('\n');
    }
    text.push_str(&sharded::render(&SHARDED));
    text
}

//! Added latency of the outbound broker for one `GET` to a loopback upstream.
//!
//! A tiny axum server on `127.0.0.1:0` answers `GET /item` with `{"id":1}`,
//! in the same tokio runtime. Three series, interleaved request by request
//! (in all six orders in turn) so machine noise lands on all of them alike:
//!
//! - **baseline**: a plain pooled hyper client (`hyper_util` legacy client,
//!   HTTP/1.1 keep-alive) doing the `GET` and collecting the body;
//! - **broker**: the same `GET` through the host's per-invocation hook — a
//!   fresh [`EgressHooks`] per request (production makes one per
//!   invocation), `WasiHttpHooks::send_request`, then collecting the
//!   response body. That is everything the broker does: allowlist check,
//!   per-invocation request count, circuit breaker, the shared upstream
//!   budget (no configured rate: only a learned `Retry-After` pause would
//!   apply), buffering the (empty) request body, the pooled client with the
//!   IP policy, metering the response body, the journal, and folding the
//!   journal into the instance's stats as `Runtime::call` does at the end;
//! - **broker + budget**: the same with a configured upstream rate (a
//!   million requests per second, never exhausted), so a real token bucket
//!   is consulted on every request.
//!
//! The added latency is broker mean − baseline mean (and the same for p50).
//!
//! Run: `env -u RUST_BACKTRACE cargo bench -p plugboard-tests --bench broker`.
//! Set `PLUGBOARD_BENCH_CALLS` to change N (default 5,000 per series, after
//! 300 warm-up requests per series).

#![allow(missing_docs, clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use plugboard::config::EgressSettings;
use plugboard::egress::budget::RateSpec;
use plugboard::egress::{Allowlist, Broker, Caller, Decision, EgressHooks, EgressPolicy};
use wasmtime_wasi_http::{WasiBody, WasiHttpHooks as _};

const BODY: &str = "{\"id\":1}";
const WARM_UP: usize = 300;
/// Every order of the three series, taken in turn, so each series follows
/// each other one equally often (what ran just before affects caches and
/// which connection task is warm).
const ORDERS: [[usize; 3]; 6] = [
    [0, 1, 2],
    [0, 2, 1],
    [1, 0, 2],
    [1, 2, 0],
    [2, 0, 1],
    [2, 1, 0],
];

/// Prints one series; returns (mean, p50) in µs.
fn summarize(name: &str, mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort();
    let n = samples.len();
    let total: Duration = samples.iter().sum();
    let mean = total.as_secs_f64() * 1e6 / n as f64;
    let pct = |p: f64| samples[((n as f64 * p) as usize).min(n - 1)].as_secs_f64() * 1e6;
    let p50 = pct(0.50);
    println!(
        "{name:<28} n={n:<7} mean={mean:>8.2} µs  p50={p50:>8.2} µs  p99={:>8.2} µs",
        pct(0.99)
    );
    (mean, p50)
}

type PlainClient = Client<HttpConnector, Empty<Bytes>>;

async fn plain_get(client: &PlainClient, uri: &http::Uri) -> Bytes {
    let response = client.get(uri.clone()).await.unwrap();
    assert_eq!(response.status(), 200);
    response.into_body().collect().await.unwrap().to_bytes()
}

/// One brokered `GET`, as one invocation making one request.
async fn brokered_get(
    broker: &Arc<Broker>,
    caller: &Caller,
    policy: &EgressPolicy,
    uri: &http::Uri,
) -> Bytes {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut hooks = EgressHooks::new(broker.clone(), caller.clone(), policy.clone(), deadline);
    let body: WasiBody = Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed_unsync();
    let request = http::Request::get(uri.clone()).body(body).unwrap();
    let fut = hooks.send_request(request, None, Box::new(async { Ok(()) }));
    let (response, _io) = Box::into_pin(fut).await.unwrap();
    assert_eq!(response.status(), 200);
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    // What `Runtime::call` does once the invocation is over.
    let records = std::mem::take(
        &mut hooks
            .journal()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .records,
    );
    assert!(records.len() == 1 && records[0].decision == Decision::Allowed);
    if let Some(instance) = &caller.instance {
        broker
            .usage()
            .record_outbound(instance, "bench@1", &records, std::time::SystemTime::now());
    }
    plugboard::metrics::outbound(&records);
    bytes
}

fn main() {
    // Record metrics as the host does, so their cost is in the figures.
    plugboard::metrics::install();
    let calls: usize = std::env::var("PLUGBOARD_BENCH_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let app = Router::new().route("/item", get(|| async { BODY }));
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let uri: http::Uri = format!("http://127.0.0.1:{port}/item").parse().unwrap();

        let plain: PlainClient = Client::builder(TokioExecutor::new()).build_http();

        let settings = EgressSettings {
            allow_cidrs: vec!["127.0.0.1/32".parse().unwrap()],
            ..EgressSettings::default()
        };
        let broker = Arc::new(Broker::new(settings));
        let caller = Caller {
            connector: Arc::from("bench@1"),
            instance: Some(Arc::from("inst_bench")),
            invocation: Arc::from("inv_bench"),
        };
        let allowlist = Arc::new(
            Allowlist::resolve(
                &[format!("http://127.0.0.1:{port}")],
                &serde_json::json!({}),
            )
            .unwrap(),
        );
        let unmetered = EgressPolicy {
            allowlist: allowlist.clone(),
            upstream_rate: None,
            ..EgressPolicy::default()
        };
        let budgeted = EgressPolicy {
            allowlist,
            upstream_rate: Some(RateSpec {
                requests: 1_000_000,
                per: Duration::from_secs(1),
                burst: 1_000_000,
            }),
            ..EgressPolicy::default()
        };

        // Series 0: plain client, 1: broker, 2: broker + budget.
        let one = async |series: usize| match series {
            0 => plain_get(&plain, &uri).await,
            1 => brokered_get(&broker, &caller, &unmetered, &uri).await,
            _ => brokered_get(&broker, &caller, &budgeted, &uri).await,
        };
        for _ in 0..WARM_UP {
            for series in 0..3 {
                assert_eq!(one(series).await, BODY.as_bytes());
            }
        }
        let mut samples: [Vec<Duration>; 3] = std::array::from_fn(|_| Vec::with_capacity(calls));
        for i in 0..calls {
            for &series in &ORDERS[i % ORDERS.len()] {
                let t = Instant::now();
                let out = one(series).await;
                samples[series].push(t.elapsed());
                std::hint::black_box(out);
            }
        }
        let [plain_s, broker_s, budget_s] = samples;
        let (base_mean, base_p50) = summarize("baseline: hyper client GET", plain_s);
        let (broker_mean, broker_p50) = summarize("broker: EgressHooks GET", broker_s);
        let (budget_mean, budget_p50) = summarize("broker + upstream budget", budget_s);
        println!(
            "added by the broker:         mean={:>8.2} µs  p50={:>8.2} µs",
            broker_mean - base_mean,
            broker_p50 - base_p50
        );
        println!(
            "added with a budget:         mean={:>8.2} µs  p50={:>8.2} µs",
            budget_mean - base_mean,
            budget_p50 - base_p50
        );
    });
}

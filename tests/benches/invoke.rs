//! In-process cost of one invocation of the `echo` connector, in two modes:
//! `fresh` (`warm_instances = 0`: a new store, instantiation from the
//! pre-linked component, the `invoke` call with JSON in and out, teardown)
//! and `warm` (the default: the call runs in the idle instance the previous
//! call of the same instance left) — the per-call work the HTTP API adds
//! around.
//!
//! Baseline in the same run: the same JSON work done natively (parse the
//! params, build the result, serialize it).
//!
//! Run: `RUST_BACKTRACE=0 cargo bench -p plugboard-tests --bench invoke`
//! (with `RUST_BACKTRACE=1` wasmtime captures a backtrace on every store
//! drop, which costs ~15%). Set `PLUGBOARD_BENCH_CALLS` to change N.

#![allow(missing_docs, clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use plugboard::config::{EgressSettings, Limits};
use plugboard::egress::{Broker, EgressPolicy};
use plugboard::runtime::{Call, Envelope, Invocation, Runtime};
use serde_json::{Value, json};

fn summarize(name: &str, mut samples: Vec<Duration>) -> f64 {
    samples.sort();
    let n = samples.len();
    let total: Duration = samples.iter().sum();
    let mean = total.as_secs_f64() * 1e6 / n as f64;
    let pct = |p: f64| samples[((n as f64 * p) as usize).min(n - 1)].as_secs_f64() * 1e6;
    println!(
        "{name:<28} n={n:<7} mean={mean:>8.2} µs  p50={:>8.2} µs  p99={:>8.2} µs",
        pct(0.50),
        pct(0.99)
    );
    mean
}

fn main() {
    let calls: usize = std::env::var("PLUGBOARD_BENCH_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let bytes = std::fs::read(plugboard_tests::ECHO_WASM).unwrap();
        let params = json!({"message": "hello", "data": {"n": [1, 2, 3]}}).to_string();
        let mut means = Vec::new();
        for (mode, warm_instances) in [("fresh", 0), ("warm", 256)] {
            let broker = Arc::new(Broker::new(EgressSettings::default()));
            let limits = Limits {
                warm_instances,
                ..Limits::default()
            };
            let runtime = Arc::new(Runtime::new(limits, broker).unwrap());
            let bytes = bytes.clone();
            let started = Instant::now();
            let prepared = runtime.prepare(Arc::new(bytes)).await.unwrap();
            println!("compile + describe of echo: {:?}", started.elapsed());
            let loaded = prepared.loaded;
            let invocation = Invocation {
                connector: Arc::from("echo@bench"),
                instance: Some(Arc::from("inst_bench")),
                config: Arc::new(json!({})),
                id: Arc::from("inv_bench"),
            };
            // No hosts allowed: echo makes no outbound calls.
            let policy = EgressPolicy::default();
            let envelope = Envelope::for_instance(runtime.limits(), &Default::default());
            let call = || Call::Invoke {
                method: "echo".into(),
                params: params.clone(),
            };

            let once = || {
                runtime.call(
                    &loaded,
                    invocation.clone(),
                    policy.clone(),
                    envelope,
                    call(),
                )
            };
            // Warm up the pool slots and caches.
            for _ in 0..500 {
                once().await.result.unwrap();
            }
            let mut samples = Vec::with_capacity(calls);
            for _ in 0..calls {
                let t = Instant::now();
                let out = once().await.result.unwrap();
                samples.push(t.elapsed());
                std::hint::black_box(out);
            }
            means.push(summarize(&format!("echo ({mode})"), samples));
        }

        let mut native = Vec::with_capacity(calls);
        for _ in 0..calls {
            let t = Instant::now();
            let p: Value = serde_json::from_str(&params).unwrap();
            let out = json!({"message": p["message"], "data": p["data"]}).to_string();
            native.push(t.elapsed());
            std::hint::black_box(out);
        }
        let base = summarize("native baseline (JSON only)", native);
        println!(
            "ratio fresh/native: {:.1}x, warm/native: {:.1}x",
            means[0] / base,
            means[1] / base
        );
    });
}

//! Instantiate + call per guest language, with criterion: the `echo`
//! method of the `tasks` example connector (the same behaviour in Rust,
//! JavaScript, Python and C), and the `echo` connector's `echo` with the
//! params `scripts/bench-load` sends over HTTP (`rust-echo`: what the load
//! test's guest call costs in process), in two modes:
//!
//! - `fresh`: a new guest instance for every call (`warm_instances = 0`):
//!   store, instantiation from the pre-linked component, the call, teardown;
//! - `warm`: the host's default, where the call runs in an idle instance
//!   the same Plugboard instance left behind (see `runtime/warm.rs`).
//!
//! Run: `env -u RUST_BACKTRACE cargo bench -p plugboard-tests --bench languages`
//! (with `RUST_BACKTRACE=1` wasmtime captures a backtrace on every store
//! drop). Criterion prints the mean with its confidence interval; each
//! benchmark runs thousands of calls (at least 1,000 even for the slowest).
//! Compiling the JavaScript and Python components takes several seconds
//! each before their benchmarks start. `BENCH_EAGER_INIT=1` runs them with
//! `--eager-instance-init` (data copied in, tables filled up front).

#![allow(missing_docs, clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use plugboard::config::{EgressSettings, Limits};
use plugboard::egress::{Broker, EgressPolicy};
use plugboard::runtime::{Call, Envelope, Invocation, Runtime};
use serde_json::json;

fn languages(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("echo");
    group
        .sample_size(50)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(4));
    let message = json!({"message": "hello"});
    let load_test = json!({"message": "hello", "data": {"n": 1, "tags": ["a", "b"]}});
    for (lang, wasm, params) in [
        ("rust-echo", plugboard_tests::ECHO_WASM, &load_test),
        ("rust", plugboard_tests::TASKS_RUST_WASM, &message),
        ("c", plugboard_tests::TASKS_C_WASM, &message),
        ("js", plugboard_tests::TASKS_JS_WASM, &message),
        ("python", plugboard_tests::TASKS_PYTHON_WASM, &message),
    ] {
        let bytes = Arc::new(std::fs::read(wasm).unwrap());
        for (mode, warm_instances) in [("fresh", 0), ("warm", 64)] {
            let limits = Limits {
                warm_instances,
                eager_instance_init: std::env::var("BENCH_EAGER_INIT").as_deref() == Ok("1"),
                ..Limits::default()
            };
            let broker = Arc::new(Broker::new(EgressSettings::default()));
            let runtime = Arc::new(Runtime::new(limits, broker).unwrap());
            let loaded = rt.block_on(runtime.prepare(bytes.clone())).unwrap().loaded;
            let invocation = Invocation {
                connector: Arc::from("tasks@bench"),
                instance: Some(Arc::from("inst_bench")),
                config: Arc::new(json!({"api_base": "https://tasks.example.com/api"})),
                id: Arc::from("inv_bench"),
            };
            let envelope = Envelope::for_instance(runtime.limits(), &Default::default());
            let params = params.to_string();
            group.bench_function(format!("{lang}/{mode}"), |b| {
                b.to_async(&rt).iter(|| async {
                    let called = runtime
                        .call(
                            &loaded,
                            invocation.clone(),
                            EgressPolicy::default(),
                            envelope,
                            Call::Invoke {
                                method: "echo".into(),
                                params: params.clone(),
                            },
                        )
                        .await;
                    std::hint::black_box(called.result.unwrap())
                });
            });
        }
    }
    group.finish();
}

criterion_group!(benches, languages);
criterion_main!(benches);

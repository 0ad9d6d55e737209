//! The shipped connectors (Freshdesk, Slack, GitHub) end to end: a real
//! host, the real components, and fake upstreams from the harness in
//! `plugboard_tests::fake` standing in for the platforms, each test
//! asserting the exact requests the platform would have received.

mod flagship;
mod freshdesk;
mod github;
mod har;
mod slack;

use plugboard_tests::fake::{Recorded, Upstream};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::Host;

/// Uploads `wasm` (if not yet there) and creates an instance; returns its id.
pub async fn instance(host: &Host, wasm: &str, config: Value, credentials: Value) -> String {
    let (status, body) = host.upload(wasm).await;
    assert!(status.is_success(), "upload failed: {status} {body}");
    let (status, body) = host
        .post(
            "/instances",
            json!({ "connector": body["id"], "name": "test", "config": config, "credentials": credentials }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

/// Invokes and expects success; returns `data`.
pub async fn call(host: &Host, instance: &str, method: &str, params: Value) -> Value {
    let (status, body) = host.invoke(instance, method, params).await;
    assert_eq!(status, StatusCode::OK, "{method}: {body}");
    body["data"].clone()
}

/// The requests the fake received since `from` (an index into its log).
pub fn since(up: &Upstream, from: usize) -> Vec<Recorded> {
    up.requests().into_iter().skip(from).collect()
}

/// The single request received since `from`; panics unless exactly one.
#[track_caller]
pub fn only_since(up: &Upstream, from: usize) -> Recorded {
    let got = since(up, from);
    assert_eq!(
        got.len(),
        1,
        "expected exactly one request, got {:?}",
        got.iter().map(Recorded::line).collect::<Vec<_>>()
    );
    got.into_iter().next().unwrap()
}

/// Asserts method, path (with query) and JSON body of a request.
#[track_caller]
pub fn assert_request(r: &Recorded, line: &str, body: Option<Value>) {
    assert_eq!(r.line(), line, "{r:?}");
    assert_eq!(
        r.matched.as_deref().map(|_| ()),
        Some(()),
        "unmatched: {r:?}"
    );
    match body {
        Some(want) => {
            assert_eq!(r.json(), Some(want), "body of {line}");
            assert!(
                r.header("content-type")
                    .is_some_and(|ct| ct.starts_with("application/json")),
                "content type of {line}: {:?}",
                r.header("content-type")
            );
        }
        None => assert!(r.body.is_empty(), "{line} has a body: {}", r.text()),
    }
}

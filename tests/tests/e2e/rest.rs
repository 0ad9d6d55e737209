//! The generic REST connector against a fake upstream on loopback.

use plugboard_tests::REST_WASM;
use serde_json::json;

use crate::common::{FakeUpstream, Host, assert_error, closed_port};

#[tokio::test]
async fn rest_get_and_post_reach_the_upstream() {
    let host = Host::start(&[]);
    let upstream = FakeUpstream::start().await;
    let inst = host
        .instance(
            REST_WASM,
            json!({"base_url": format!("{}/api", upstream.url)}),
        )
        .await;

    let (status, body) = host
        .invoke(
            &inst,
            "request",
            json!({"method": "GET", "path": "/items", "query": {"page": "2", "q": "a b"}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["status"], 200);
    assert_eq!(body["data"]["body"][1]["name"], "second");

    let (status, body) = host
        .invoke(
            &inst,
            "request",
            json!({"method": "POST", "path": "/items", "headers": {"x-trace": "abc"}, "body": {"name": "new"}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["status"], 201);
    assert_eq!(body["data"]["body"], json!({"name": "new", "id": 3}));

    let requests = upstream.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].method, "GET");
    assert_eq!(requests[0].path, "/api/items");
    let query = requests[0].query.clone().unwrap_or_default();
    assert!(query.contains("page=2"), "{query}");
    assert!(
        query.contains("q=a%20b") || query.contains("q=a+b"),
        "{query}"
    );
    assert_eq!(requests[1].method, "POST");
    let sent: serde_json::Value = serde_json::from_slice(&requests[1].body).unwrap();
    assert_eq!(sent, json!({"name": "new"}));
    assert!(
        requests[1]
            .headers
            .iter()
            .any(|(k, v)| k == "x-trace" && v == "abc")
    );
    assert!(
        requests[1]
            .headers
            .iter()
            .any(|(k, v)| k == "content-type" && v.starts_with("application/json")),
        "{:?}",
        requests[1].headers
    );
}

#[tokio::test]
async fn rest_errors_reach_the_api_as_distinct_codes() {
    let host = Host::start(&[]);
    let upstream = FakeUpstream::start().await;
    let inst = host
        .instance(
            REST_WASM,
            json!({"base_url": format!("{}/api", upstream.url)}),
        )
        .await;
    let get = |path: &str| json!({"method": "GET", "path": path});

    let e = assert_error(
        &host.invoke(&inst, "request", get("/bad")).await,
        422,
        "UPSTREAM_REJECTED",
    );
    assert_eq!(e["details"]["upstreamStatus"], 400);
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("field `name` is required"),
        "{e}"
    );

    let e = assert_error(
        &host.invoke(&inst, "request", get("/boom")).await,
        502,
        "UPSTREAM_ERROR",
    );
    assert_eq!(e["details"]["upstreamStatus"], 503);

    assert_error(
        &host.invoke(&inst, "request", get("/nothing-here")).await,
        404,
        "UPSTREAM_NOT_FOUND",
    );

    let e = assert_error(
        &host.invoke(&inst, "request", get("/limited")).await,
        429,
        "RATE_LIMIT_EXCEEDED",
    );
    assert_eq!(e["details"]["retryAfterSecs"], 30);

    // Nothing listens on this port: connection refused.
    let dead = host
        .instance(
            REST_WASM,
            json!({"base_url": format!("http://127.0.0.1:{}", closed_port())}),
        )
        .await;
    let e = assert_error(
        &host.invoke(&dead, "request", get("/items")).await,
        502,
        "UPSTREAM_UNREACHABLE",
    );
    assert!(e["message"].as_str().unwrap().contains("connect"), "{e}");
}

#[tokio::test]
async fn rest_config_must_be_a_url() {
    let host = Host::start(&[]);
    assert_eq!(host.upload(REST_WASM).await.0, 201);
    let answer = host
        .post(
            "/instances",
            json!({"connector": "rest", "name": "x", "config": {"base_url": "not a url"}}),
        )
        .await;
    assert_error(&answer, 400, "INVALID_CONFIG");
}

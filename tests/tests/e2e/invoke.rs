//! Invoking methods: results, parameter validation, method lookup, config,
//! and the mapping of every connector error variant onto the API.

use plugboard_tests::ECHO_WASM;
use serde_json::json;

use crate::common::{Host, assert_error};

#[tokio::test]
async fn echo_returns_its_json() {
    let host = Host::start(&[]);
    let inst = host.instance(ECHO_WASM, json!({"greeting": "hi"})).await;
    let (status, body) = host
        .invoke(
            &inst,
            "echo",
            json!({"message": "hello", "data": {"n": [1, 2, 3]}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "SUCCESS");
    assert_eq!(body["data"]["message"], "hello");
    assert_eq!(body["data"]["data"], json!({"n": [1, 2, 3]}));

    // The guest reads its instance config through the host import.
    let (status, body) = host.invoke(&inst, "config", json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["greeting"], "hi", "{body}");
}

#[tokio::test]
async fn invalid_params_and_unknown_methods_are_refused_before_guest_code() {
    let host = Host::start(&[]);
    let inst = host.instance(ECHO_WASM, json!({})).await;

    let e = assert_error(
        &host.invoke(&inst, "echo", json!({"message": 5})).await,
        400,
        "INVALID_PARAMS",
    );
    assert!(e["message"].as_str().unwrap().contains("/message"), "{e}");
    assert_eq!(e["details"]["errors"][0]["path"], "/message", "{e}");

    let e = assert_error(
        &host.invoke(&inst, "echo", json!({})).await,
        400,
        "INVALID_PARAMS",
    );
    assert!(e["message"].as_str().unwrap().contains("message"), "{e}");

    let e = assert_error(
        &host.invoke(&inst, "nope", json!({})).await,
        404,
        "METHOD_NOT_FOUND",
    );
    assert!(
        e["details"]["methods"]
            .as_array()
            .unwrap()
            .contains(&json!("echo")),
        "{e}"
    );

    assert_error(
        &host
            .invoke("inst_missing", "echo", json!({"message": "x"}))
            .await,
        404,
        "NOT_FOUND",
    );

    // Malformed request bodies.
    let resp = host
        .client
        .post(host.v1(&format!("/instances/{inst}/methods/echo")))
        .bearer_auth(&host.token)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "INVALID_REQUEST");
}

#[tokio::test]
async fn connector_errors_map_to_stable_codes() {
    let host = Host::start(&[]);
    let inst = host.instance(ECHO_WASM, json!({})).await;
    let cases = [
        ("invalid_input", 400, "INVALID_PARAMS", "permanent"),
        ("unauthorized", 401, "AUTH_REQUIRED", "configuration"),
        ("not_found", 404, "UPSTREAM_NOT_FOUND", "permanent"),
        ("rate_limited", 429, "RATE_LIMIT_EXCEEDED", "rate_limited"),
        ("upstream", 422, "UPSTREAM_REJECTED", "permanent"),
        ("temporary", 503, "TEMPORARY_ERROR", "temporary"),
        ("permanent", 422, "PERMANENT_ERROR", "permanent"),
        ("config", 422, "CONFIG_ERROR", "configuration"),
    ];
    for (kind, status, code, category) in cases {
        let answer = host
            .invoke(
                &inst,
                "fail",
                json!({"kind": kind, "message": format!("failing as {kind}")}),
            )
            .await;
        let e = assert_error(&answer, status, code);
        assert_eq!(e["category"], category, "{kind}: {e}");
        assert!(e["message"].as_str().unwrap().contains(kind), "{kind}: {e}");
    }
    let e = assert_error(
        &host
            .invoke(
                &inst,
                "fail",
                json!({"kind": "rate_limited", "message": "x"}),
            )
            .await,
        429,
        "RATE_LIMIT_EXCEEDED",
    );
    assert_eq!(e["details"]["retryAfterSecs"], 7);
    let e = assert_error(
        &host
            .invoke(&inst, "fail", json!({"kind": "upstream", "message": "x"}))
            .await,
        422,
        "UPSTREAM_REJECTED",
    );
    assert_eq!(e["details"]["upstreamStatus"], 418);
}

#[tokio::test]
async fn instance_config_is_validated_against_the_schema() {
    let host = Host::start(&[]);
    assert_eq!(host.upload(ECHO_WASM).await.0, 201);
    let e = assert_error(
        &host
            .post(
                "/instances",
                json!({"connector": "echo", "name": "x", "config": {"greeting": 12}}),
            )
            .await,
        400,
        "INVALID_CONFIG",
    );
    assert!(e["message"].as_str().unwrap().contains("/greeting"), "{e}");
    assert_error(
        &host
            .post("/instances", json!({"connector": "nope", "name": "x"}))
            .await,
        400,
        "CONNECTOR_NOT_FOUND",
    );
    assert_error(
        &host
            .post("/instances", json!({"connector": "echo", "name": ""}))
            .await,
        400,
        "INVALID_REQUEST",
    );
    assert_error(
        &host
            .post(
                "/instances",
                json!({"connector": "echo", "name": "x", "colour": 1}),
            )
            .await,
        400,
        "INVALID_REQUEST",
    );
    let (status, created) = host
        .post("/instances", json!({"connector": "echo", "name": "ok"}))
        .await;
    assert_eq!(status, 201, "{created}");
    let (status, list) = host.get("/instances").await;
    assert_eq!(status, 200);
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let (status, shown) = host
        .get(&format!("/instances/{}", created["id"].as_str().unwrap()))
        .await;
    assert_eq!(status, 200);
    assert_eq!(shown["connector"], created["connector"]);
}

#[tokio::test]
async fn guest_logs_reach_the_host_log_tagged_and_bounded() {
    let host = Host::start(&[]);
    let inst = host.instance(ECHO_WASM, json!({})).await;
    let (status, body) = host
        .invoke(&inst, "log", json!({"message": "guest says hi"}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["logged"], true);
    let (status, _) = host
        .invoke(&inst, "log", json!({"message": "y".repeat(20_000)}))
        .await;
    assert_eq!(status, 200);
    let log = host.log();
    let line = log
        .lines()
        .find(|l| l.contains("guest says hi"))
        .unwrap_or_else(|| panic!("guest log line missing:\n{log}"));
    assert!(line.contains("plugboard::guest"), "{line}");
    assert!(line.contains(&inst), "instance id missing: {line}");
    assert!(line.contains("echo@"), "connector id missing: {line}");
    assert!(
        line.contains(body["invocationId"].as_str().unwrap()),
        "invocation id missing: {line}"
    );
    assert!(line.contains("source=\"echo\""), "fields missing: {line}");
    let long = log.lines().find(|l| l.contains("yyyy")).unwrap();
    assert!(
        long.len() < 6_000,
        "guest log lines must be truncated, got {} bytes",
        long.len()
    );
}

#[tokio::test]
async fn test_connection_runs_the_guest_check() {
    let host = Host::start(&[]);
    let inst = host.instance(ECHO_WASM, json!({})).await;
    let (status, body) = host
        .post(&format!("/instances/{inst}/test"), json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["message"], "echo is always reachable");
}

/// The API port also speaks HTTP/2 with prior knowledge (h2c), for clients
/// and proxies that multiplex many calls over one connection: plain invoke
/// calls (the fast path takes their absolute-form URIs: `api::fast`'s unit
/// tests) and routed ones answer, and refusals keep their stable codes.
#[tokio::test]
async fn the_api_answers_http2_with_prior_knowledge() {
    let host = Host::start(&[]);
    let inst = host.instance(ECHO_WASM, json!({})).await;
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let invoke = |path: String, params: serde_json::Value| {
        h2.post(host.v1(&path))
            .bearer_auth(&host.token)
            .json(&json!({ "parameters": params }))
            .send()
    };

    // Concurrent calls over HTTP/2: each stream gets its own answer.
    let calls = (0..8).map(|n| {
        invoke(
            format!("/instances/{inst}/methods/echo"),
            json!({ "message": format!("call {n}") }),
        )
    });
    for (n, answer) in futures::future::join_all(calls)
        .await
        .into_iter()
        .enumerate()
    {
        let answer = answer.unwrap();
        assert_eq!(answer.version(), reqwest::Version::HTTP_2);
        assert_eq!(answer.status(), 200);
        let body: serde_json::Value = answer.json().await.unwrap();
        assert_eq!(body["data"]["message"], format!("call {n}"), "{body}");
    }

    // Through the router (a percent-encoded method name skips the fast path).
    let answer = invoke(
        format!("/instances/{inst}/methods/ech%6F"),
        json!({ "message": "routed" }),
    )
    .await
    .unwrap();
    assert_eq!(answer.version(), reqwest::Version::HTTP_2);
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(body["data"]["message"], "routed", "{body}");

    // Errors keep their codes over HTTP/2.
    let answer = invoke(format!("/instances/{inst}/methods/nope"), json!({}))
        .await
        .unwrap();
    assert_eq!(answer.status(), 404);
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(body["error"]["code"], "METHOD_NOT_FOUND", "{body}");
    let answer = h2.get(host.v1("/connectors")).send().await.unwrap();
    assert_eq!(answer.status(), 401);
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(body["error"]["code"], "UNAUTHORIZED", "{body}");
}

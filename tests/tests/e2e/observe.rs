//! Operating figures end to end: after a scripted scenario (invocations
//! with successes and failures of several kinds, a credential rotation),
//! `…/stats`, `…/health`, `/v1/usage`, `/metrics` and the audit trail
//! report exactly what the test did and what the fake upstream received.

use std::collections::BTreeMap;

use plugboard_tests::AUTH_BEARER_WASM;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{FakeUpstream, Host, assert_error};

/// One sample of the Prometheus text format: name, labels, value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the exposition text (no escaped quotes occur in our labels).
fn parse_metrics(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap();
            let (name, labels) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let labels = labels
                .split("\",")
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once("=\"").unwrap();
                    (k.to_owned(), v.trim_end_matches('"').to_owned())
                })
                .collect();
            Sample {
                name: name.to_owned(),
                labels,
                value: value.parse().unwrap(),
            }
        })
        .collect()
}

/// Sum of the samples named `name` whose labels include all of `want`.
fn sum(samples: &[Sample], name: &str, want: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            want.iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .sum()
}

async fn metrics(host: &Host) -> Vec<Sample> {
    let resp = host
        .client
        .get(format!("{}/metrics", host.url))
        .bearer_auth(&host.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    parse_metrics(&resp.text().await.unwrap())
}

#[tokio::test]
async fn stats_health_usage_and_metrics_match_the_scenario() {
    let host = Host::start(&[]);
    let upstream = FakeUpstream::start().await;
    let (status, uploaded) = host.upload(AUTH_BEARER_WASM).await;
    assert!(status.is_success(), "{uploaded}");
    let connector = uploaded["id"].as_str().unwrap().to_owned();
    let (status, created) = host
        .post(
            "/instances",
            json!({ "connector": connector, "name": "acct",
                    "config": { "allowed": upstream.url, "second": "http://127.0.0.1:9" },
                    "credentials": { "token": "first-token-1234" } }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let inst = created["id"].as_str().unwrap().to_owned();
    let fetch = |path: &str| json!({ "url": format!("{}{path}", upstream.url) });

    // 5 successes, 1 success whose upstream answered 503 (retried by the
    // broker: GET is idempotent), 2 invalid parameters, 1 denied host.
    for _ in 0..5 {
        let (status, body) = host.invoke(&inst, "fetch", fetch("/api/items")).await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, body) = host.invoke(&inst, "fetch", fetch("/api/boom")).await;
    assert_eq!(
        (status.as_u16(), &body["data"]["status"]),
        (200, &json!(503)),
        "{body}"
    );
    for _ in 0..2 {
        let answer = host.invoke(&inst, "fetch", json!({ "url": 42 })).await;
        assert_error(&answer, 400, "INVALID_PARAMS");
    }
    let answer = host
        .invoke(&inst, "fetch", json!({ "url": "http://127.0.0.2:1/x" }))
        .await;
    assert_error(&answer, 403, "HOST_DENIED");
    // Rotate the credential; the next call carries the new one.
    let (status, body) = host
        .put(
            &format!("/instances/{inst}/credentials"),
            json!({ "credentials": { "token": "second-token-5678" } }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = host.invoke(&inst, "fetch", fetch("/api/items")).await;
    assert_eq!(status, 200, "{body}");
    // Last: a method the connector does not have.
    assert_error(
        &host.invoke(&inst, "nope", json!({})).await,
        404,
        "METHOD_NOT_FOUND",
    );

    let received = upstream.requests();
    let boom = received.iter().filter(|r| r.path == "/api/boom").count();
    assert!(boom >= 2, "the 503 was retried: {received:?}");
    assert_eq!(received.len(), 6 + boom);
    let last_auth = received
        .last()
        .unwrap()
        .headers
        .iter()
        .find(|(k, _)| k == "authorization");
    assert_eq!(last_auth.unwrap().1, "Bearer second-token-5678");

    // Stats over the last 5 minutes and since start agree: everything
    // happened just now.
    for window in ["5m", "all"] {
        let (status, s) = host
            .get(&format!("/instances/{inst}/stats?window={window}"))
            .await;
        assert_eq!(status, 200, "{s}");
        assert_eq!(s["window"], window);
        let calls = &s["invocations"];
        assert_eq!(calls["count"], 11, "{s}");
        assert_eq!(calls["succeeded"], 7);
        assert_eq!(calls["failed"], 4);
        assert_eq!(
            calls["errorsByCode"],
            json!({ "INVALID_PARAMS": 2, "HOST_DENIED": 1, "METHOD_NOT_FOUND": 1 })
        );
        assert_eq!(
            calls["errorsByCategory"],
            json!({ "permanent": 3, "configuration": 1 })
        );
        assert_eq!(
            calls["methods"]["fetch"],
            json!({ "count": 10, "failed": 3 })
        );
        assert_eq!(
            calls["methods"]["_unknown"],
            json!({ "count": 1, "failed": 1 })
        );
        assert_eq!(calls["durationMs"]["count"], 11);
        let out = &s["outbound"];
        assert_eq!(out["requests"], received.len() as u64, "{s}");
        assert_eq!(out["decisions"]["denied"], 1);
        assert_eq!(out["statuses"]["503"], boom as u64);
        assert_eq!(out["statuses"]["200"], 6);
        assert_eq!(out["upstreams"][0]["upstream"], upstream.url.as_str());
        assert_eq!(out["upstreams"][0]["requests"], received.len() as u64);
        assert!(out["bytesIn"].as_u64().unwrap() > 0);
        // No secret, path or body in the figures.
        let text = s.to_string();
        for leak in ["first-token", "second-token", "/api/items"] {
            assert!(!text.contains(leak), "{leak} in {text}");
        }
    }
    assert_error(
        &host
            .get(&format!("/instances/{inst}/stats?window=90s"))
            .await,
        400,
        "INVALID_REQUEST",
    );

    let (status, h) = host.get(&format!("/instances/{inst}/health")).await;
    assert_eq!(status, 200, "{h}");
    assert_eq!(
        h["status"], "healthy",
        "4 of 11 failed: below the threshold: {h}"
    );
    assert!(h["lastSuccessAt"].is_string(), "{h}");
    assert_eq!(h["lastFailure"]["code"], "METHOD_NOT_FOUND");
    assert_eq!(h["recent"]["calls"], 11);
    assert_eq!(h["recent"]["failed"], 4);

    let (status, usage) = host.get("/usage?window=1h").await;
    assert_eq!(status, 200, "{usage}");
    let mine = usage["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["instance"] == inst.as_str())
        .unwrap();
    assert_eq!(mine["connector"], connector.as_str());
    assert_eq!(mine["invocations"], 11);
    assert_eq!(mine["failed"], 4);
    assert_eq!(mine["outboundRequests"], received.len() as u64);
    assert_eq!(usage["connectors"][0]["connector"], connector.as_str());
    assert_eq!(usage["connectors"][0]["invocations"], 11);
    assert_error(&host.get("/usage?window=1y").await, 400, "INVALID_REQUEST");

    let m = metrics(&host).await;
    let calls = |method, code| {
        sum(
            &m,
            "plugboard_invocations_total",
            &[
                ("connector", &connector),
                ("method", method),
                ("code", code),
            ],
        )
    };
    assert_eq!(calls("fetch", "SUCCESS"), 7.0);
    assert_eq!(calls("fetch", "INVALID_PARAMS"), 2.0);
    assert_eq!(calls("fetch", "HOST_DENIED"), 1.0);
    assert_eq!(calls("_unknown", "METHOD_NOT_FOUND"), 1.0);
    let outbound = |decision| {
        sum(
            &m,
            "plugboard_outbound_requests_total",
            &[("upstream", &upstream.url), ("decision", decision)],
        )
    };
    // Every attempt that reached the upstream, and the denied one.
    assert_eq!(
        outbound("allowed") + outbound("retried") + outbound("queued"),
        received.len() as f64
    );
    assert_eq!(
        sum(
            &m,
            "plugboard_outbound_requests_total",
            &[("decision", "denied")]
        ),
        1.0
    );
    assert_eq!(
        sum(
            &m,
            "plugboard_circuit_state",
            &[("upstream", &upstream.url)]
        ),
        0.0
    );
    assert_eq!(
        sum(
            &m,
            "plugboard_invocation_duration_seconds_count",
            &[("connector", &connector), ("method", "fetch")]
        ),
        10.0
    );
    // The 8 calls that ran the guest ran in a fresh instance (timed by
    // the instantiation histogram, with the upload's describe) or a warm
    // one the instance left behind.
    let instantiations = sum(&m, "plugboard_instantiation_seconds_count", &[]);
    let runtime = host.healthz().await["runtime"].clone();
    assert!(instantiations >= 1.0, "{runtime}");
    assert!(
        runtime["instantiated"].as_f64().unwrap() + runtime["reused"].as_f64().unwrap() >= 8.0,
        "{runtime}"
    );
    assert!(
        sum(
            &m,
            "plugboard_component_loads_total",
            &[("source", "memory")]
        ) >= 8.0
    );
    assert_eq!(
        sum(
            &m,
            "plugboard_http_requests_total",
            &[
                ("route", "/v1/instances/{id}/methods/{method}"),
                ("status", "200")
            ]
        ),
        7.0
    );
    let text = m.iter().map(|s| format!("{s:?}")).collect::<String>();
    assert!(
        !text.contains("second-token") && !text.contains(&inst),
        "no secrets, no instance ids"
    );

    // The audit trail of the same scenario: the admin actions, and one
    // credential use per attempt the upstream received.
    let (status, trail) = host
        .get(&format!("/audit?resource=instance:{inst}&limit=1000"))
        .await;
    assert_eq!(status, 200, "{trail}");
    let items = trail["items"].as_array().unwrap();
    let actions = |name: &str| items.iter().filter(|r| r["action"] == name).count();
    assert_eq!(actions("instance.create"), 1, "{trail}");
    assert_eq!(actions("instance.credentials"), 1, "{trail}");
    let sent = items
        .iter()
        .filter(|r| r["action"] == "credential.use" && r["outcome"]["result"] != "denied")
        .count();
    assert_eq!(sent, received.len(), "{trail}");
    let (_, uploads) = host.get("/audit?action=connector.upload").await;
    assert_eq!(uploads["items"].as_array().unwrap().len(), 1, "{uploads}");
    for leak in ["first-token", "second-token"] {
        assert!(!trail.to_string().contains(leak), "{leak} in the trail");
    }

    // Failures dominating the last 15 minutes degrade health.
    for _ in 0..10 {
        let answer = host.invoke(&inst, "fetch", json!({ "url": 7 })).await;
        assert_error(&answer, 400, "INVALID_PARAMS");
    }
    let (_, h) = host.get(&format!("/instances/{inst}/health")).await;
    assert_eq!(h["status"], "degraded", "{h}");
    assert!(
        h["warnings"]
            .to_string()
            .contains("14 of the last 21 calls failed"),
        "{h}"
    );
}

#[tokio::test]
async fn metrics_and_usage_need_an_admin_token() {
    let host = Host::start(&[]);
    let inst = host
        .instance(plugboard_tests::ECHO_WASM, json!({ "greeting": "hi" }))
        .await;
    let created = host.invoke_token("bot", &inst).await;
    let token = created["token"].as_str().unwrap();
    for (url, bearer) in [
        (format!("{}/metrics", host.url), Some(token)),
        (format!("{}/metrics", host.url), None),
        (host.v1("/usage"), Some(token)),
    ] {
        let mut req = host.client.get(&url);
        if let Some(t) = bearer {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        let want = if bearer.is_some() { 403 } else { 401 };
        assert_eq!(resp.status().as_u16(), want, "{url}");
        let body: Value = resp.json().await.unwrap();
        assert!(body["error"]["code"].is_string(), "{body}");
    }
    // The invoke token still reads its own instance's stats.
    let resp = host
        .client
        .get(host.v1(&format!("/instances/{inst}/stats?window=15m")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

/// The host answers plain invoke requests on a fast path in front of its
/// router (`host/src/api/fast.rs`); requests with a query or
/// percent-encoded segments go through the router. Both must answer,
/// refuse, count and audit alike.
#[tokio::test]
async fn the_invoke_routes_fast_path_and_router_answer_alike() {
    use reqwest::Method;

    let host = Host::start(&[]);
    let inst = host.instance(plugboard_tests::ECHO_WASM, json!({})).await;
    let other = host.instance(plugboard_tests::ECHO_WASM, json!({})).await;
    let params = json!({ "parameters": { "message": "hi", "data": [1] } });
    let forms = [
        format!("/instances/{inst}/methods/echo"),
        format!("/instances/{inst}/methods/ech%6F"),
        format!("/instances/{inst}/methods/echo?outbound=false"),
    ];
    for path in &forms {
        let (status, body) = host.post(path, params.clone()).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert_eq!(body["status"], "SUCCESS", "{path}: {body}");
        assert_eq!(
            body["data"],
            json!({ "message": "hi", "data": [1] }),
            "{path}"
        );
        assert!(body["invocationId"].is_string(), "{path}: {body}");
        assert!(body.get("outbound").is_none(), "{path}: {body}");
    }

    // A token for another instance is refused on both paths, before the
    // body is read; so is a request without a token.
    let bot = host.invoke_token("other", &other).await;
    let bot = bot["token"].as_str().unwrap();
    for path in &forms[..2] {
        let refused = host
            .as_token(bot, Method::POST, path, Some(params.clone()))
            .await;
        let e = assert_error(&refused, 403, "FORBIDDEN");
        assert!(
            e["message"].as_str().unwrap().contains(path.as_str()),
            "{path}: {e}"
        );
    }
    let resp = host
        .client
        .post(host.v1(&forms[0]))
        .json(&params)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    // The invoke token works on its own instance through the fast path.
    let (status, body) = host
        .as_token(
            bot,
            Method::POST,
            &format!("/instances/{other}/methods/echo"),
            Some(params.clone()),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    let m = metrics(&host).await;
    let route = ("route", "/v1/instances/{id}/methods/{method}");
    let count = |status| {
        sum(
            &m,
            "plugboard_http_requests_total",
            &[route, ("status", status)],
        )
    };
    assert_eq!(count("200"), 4.0);
    assert_eq!(count("403"), 2.0);
    assert_eq!(count("401"), 1.0);
    assert_eq!(
        sum(
            &m,
            "plugboard_invocations_total",
            &[("method", "echo"), ("code", "SUCCESS")]
        ),
        4.0
    );

    let (status, page) = host.get("/audit?action=auth.denied").await;
    assert_eq!(status, 200, "{page}");
    let denied = page["items"].as_array().unwrap();
    assert_eq!(denied.len(), 3, "{page}");
    for record in denied {
        assert_eq!(
            record["resource"],
            json!({ "type": "instance", "id": inst }),
            "{record}"
        );
        assert_eq!(record["detail"]["method"], "POST", "{record}");
        assert_eq!(
            record["detail"]["route"], "/v1/instances/{id}/methods/{method}",
            "{record}"
        );
    }
}

//! API authentication, the admin token file, and restarts on the same data
//! directory (no recompilation).

use plugboard_tests::ECHO_WASM;
use serde_json::json;

use crate::common::{Host, mode};

#[tokio::test]
async fn every_v1_route_needs_a_valid_token() {
    let host = Host::start(&[]);
    let token_file = host.data_dir.join("admin.token");
    assert_eq!(mode(&token_file), 0o600, "token file must be owner-only");
    assert_eq!(mode(&host.data_dir), 0o700, "data dir must be owner-only");
    assert!(host.token.starts_with("pb_"));
    assert!(
        !host.log().contains(&host.token),
        "the token must never be logged"
    );

    let routes = [
        ("GET", "/v1/connectors"),
        ("POST", "/v1/connectors"),
        ("GET", "/v1/connectors/echo@0.1.0"),
        ("DELETE", "/v1/connectors/echo@0.1.0"),
        ("GET", "/v1/instances"),
        ("POST", "/v1/instances"),
        ("GET", "/v1/instances/inst_x"),
        ("DELETE", "/v1/instances/inst_x"),
        ("POST", "/v1/instances/inst_x/test"),
        ("POST", "/v1/instances/inst_x/methods/echo"),
    ];
    for (method, path) in routes {
        let url = format!("{}{}", host.url, path);
        let m: reqwest::Method = method.parse().unwrap();
        for auth in [
            None,
            Some("Bearer pb_wrong"),
            Some("Basic YWRtaW46YWRtaW4="),
            Some(format!("Bearer {}x", host.token).as_str()),
        ] {
            let mut req = host.client.request(m.clone(), &url);
            if let Some(a) = auth {
                req = req.header("authorization", a);
            }
            let resp = req.send().await.unwrap();
            assert_eq!(resp.status(), 401, "{method} {path} with {auth:?}");
            assert_eq!(resp.headers()["www-authenticate"], "Bearer");
            let body: serde_json::Value = resp.json().await.unwrap();
            assert_eq!(body["error"]["code"], "UNAUTHORIZED", "{method} {path}");
        }
    }
    // Health is public; the right token works.
    assert_eq!(host.healthz().await["status"], "ok");
    assert_eq!(host.get("/connectors").await.0, 200);
    // Unknown routes answer JSON too.
    let (status, body) = host.get("/nope").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "NOT_FOUND");
}

#[tokio::test]
async fn restart_keeps_everything_and_does_not_recompile() {
    let mut host = Host::start(&[]);
    let inst = host
        .instance(ECHO_WASM, json!({"greeting": "persisted"}))
        .await;
    assert_eq!(
        host.invoke(&inst, "echo", json!({"message": "before"}))
            .await
            .0,
        200
    );
    assert_eq!(host.healthz().await["runtime"]["compiled"], 1);
    let token = host.token.clone();
    let root = host.root();
    host.stop();

    let host = Host::start_in(root, &[]);
    assert_eq!(host.token, token, "the admin token survives a restart");
    let health = host.healthz().await;
    assert_eq!(health["runtime"]["compiled"], 0, "{health}");
    let (_, connectors) = host.get("/connectors").await;
    assert_eq!(connectors["items"].as_array().unwrap().len(), 1);
    let (status, shown) = host.get(&format!("/instances/{inst}")).await;
    assert_eq!(status, 200, "{shown}");
    assert_eq!(shown["config"]["greeting"], "persisted");

    let (status, body) = host
        .invoke(&inst, "echo", json!({"message": "after"}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["message"], "after");
    let health = host.healthz().await;
    assert_eq!(
        health["runtime"]["compiled"], 0,
        "restart must not recompile: {health}"
    );
    assert_eq!(health["runtime"]["deserialized"], 1, "{health}");
    assert!(
        host.log().contains("loaded compiled artifact"),
        "{}",
        host.log()
    );
}

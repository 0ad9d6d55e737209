//! API tokens: an `invoke`-scoped token calls and reads only its
//! instances (403 elsewhere); a revoked token is refused at once; tokens are
//! shown once and never listed.

use plugboard_tests::{ECHO_WASM, HOSTILE_WASM};
use serde_json::json;

use crate::common::{Host, assert_error};

#[tokio::test]
async fn invoke_tokens_are_confined_and_revocation_is_immediate() {
    let host = Host::start(&[]);
    let mine = host.instance(ECHO_WASM, json!({})).await;
    let other = host.instance(ECHO_WASM, json!({})).await;

    let created = host.invoke_token("ci bot", &mine).await;
    let token = created["token"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(token.starts_with("pb_"));
    let (_, listed) = host.get("/tokens").await;
    assert!(!listed.to_string().contains(&token), "{listed}");
    assert!(
        listed["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["id"] == id.as_str())
    );

    use reqwest::Method as M;
    let call = json!({ "parameters": { "message": "hi" } });
    let (status, body) = host
        .as_token(
            &token,
            M::POST,
            &format!("/instances/{mine}/methods/echo"),
            Some(call.clone()),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = host
        .as_token(&token, M::GET, &format!("/instances/{mine}"), None)
        .await;
    assert_eq!(status, 200);

    let forbidden = [
        (
            M::POST,
            format!("/instances/{other}/methods/echo"),
            Some(call.clone()),
        ),
        (M::GET, format!("/instances/{other}"), None),
        (M::GET, "/instances".to_owned(), None),
        (
            M::POST,
            "/instances".to_owned(),
            Some(json!({ "connector": "echo", "name": "x" })),
        ),
        (M::DELETE, format!("/instances/{mine}"), None),
        (
            M::PUT,
            format!("/instances/{mine}/credentials"),
            Some(json!({ "credentials": {} })),
        ),
        (M::GET, "/tokens".to_owned(), None),
        (
            M::POST,
            "/tokens".to_owned(),
            Some(json!({ "name": "escalate", "scope": "admin" })),
        ),
        (M::GET, "/connectors".to_owned(), None),
    ];
    for (method, path, body) in forbidden {
        let answer = host.as_token(&token, method.clone(), &path, body).await;
        let e = assert_error(&answer, 403, "FORBIDDEN");
        assert_eq!(e["category"], "configuration", "{method} {path}");
    }
    // Uploads are refused too (before the body is read as a component).
    let upload = host
        .client
        .post(host.v1("/connectors"))
        .bearer_auth(&token)
        .body(std::fs::read(HOSTILE_WASM).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(upload.status(), 403);

    // Revoked: refused at once.
    let (status, _) = host.delete(&format!("/tokens/{id}")).await;
    assert_eq!(status, 204);
    let answer = host
        .as_token(
            &token,
            M::POST,
            &format!("/instances/{mine}/methods/echo"),
            Some(call),
        )
        .await;
    assert_error(&answer, 401, "UNAUTHORIZED");

    // Bad requests for tokens.
    for body in [
        json!({ "name": "x", "scope": "root" }),
        json!({ "name": "x", "scope": "invoke" }),
        json!({ "name": "x", "scope": "invoke", "instances": ["inst_nope"] }),
        json!({ "name": "x", "scope": "admin", "instances": [mine] }),
    ] {
        assert_error(&host.post("/tokens", body).await, 400, "INVALID_REQUEST");
    }
}

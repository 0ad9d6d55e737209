//! Uploading components: manifests, refusals with precise codes, idempotency.

use plugboard_tests::{ECHO_WASM, WRONG_WORLD_WASM};
use serde_json::Value;

use crate::common::{Host, assert_error};

#[tokio::test]
async fn echo_upload_returns_its_manifest() {
    let host = Host::start(&[]);
    let (status, body) = host.upload(ECHO_WASM).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["name"], "echo");
    assert_eq!(
        body["id"],
        format!("echo@{}", body["version"].as_str().unwrap())
    );
    assert_eq!(body["digest"].as_str().unwrap().len(), 64);
    let methods: Vec<&str> = body["manifest"]["methods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert!(methods.contains(&"echo"), "{methods:?}");
    let echo = &body["manifest"]["methods"][methods.iter().position(|m| *m == "echo").unwrap()];
    assert_eq!(echo["paramsSchema"]["type"], "object", "{echo}");

    let (status, list) = host.get("/connectors").await;
    assert_eq!(status, 200);
    assert_eq!(list["items"][0]["id"], body["id"]);
    let (status, shown) = host.get("/connectors/echo").await;
    assert_eq!(status, 200);
    assert_eq!(shown["digest"], body["digest"]);
}

#[tokio::test]
async fn garbage_core_modules_and_other_worlds_are_refused() {
    let host = Host::start(&[]);
    let e = assert_error(
        &host.upload_bytes(b"definitely not wasm".to_vec()).await,
        400,
        "INVALID_COMPONENT",
    );
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("not a WebAssembly binary"),
        "{e}"
    );

    // The smallest valid core module: magic + version 1.
    let e = assert_error(
        &host.upload_bytes(b"\0asm\x01\0\0\0".to_vec()).await,
        400,
        "INVALID_COMPONENT",
    );
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("component is required"),
        "{e}"
    );

    // A component header followed by junk fails validation.
    let e = assert_error(
        &host
            .upload_bytes(b"\0asm\x0d\0\x01\0\xff\xff\xff".to_vec())
            .await,
        400,
        "INVALID_COMPONENT",
    );
    assert!(
        e["message"].as_str().unwrap().contains("invalid component"),
        "{e}"
    );

    let e = assert_error(&host.upload(WRONG_WORLD_WASM).await, 400, "WORLD_MISMATCH");
    let missing: Vec<&str> = e["details"]["missing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        missing,
        ["describe", "test-connection", "invoke", "handle-webhook"],
        "{e}"
    );
    let unexpected = e["details"]["unexpected"].to_string();
    assert!(unexpected.contains("wasi:cli/run"), "{e}");

    let (_, list) = host.get("/connectors").await;
    assert_eq!(
        list["items"],
        Value::Array(vec![]),
        "refused uploads must store nothing"
    );
}

#[tokio::test]
async fn oversized_uploads_get_413() {
    let host = Host::start(&["--max-component-mib", "1"]);
    let e = assert_error(
        &host.upload_bytes(vec![0u8; 2 << 20]).await,
        413,
        "PAYLOAD_TOO_LARGE",
    );
    assert!(e["message"].as_str().unwrap().contains("1048576"), "{e}");
    // The host is fine afterwards.
    assert_eq!(host.upload(ECHO_WASM).await.0, 201);
}

/// Appends a custom section: a different byte string (and digest) for the
/// same component, i.e. the same `name@version` with other bytes.
fn with_custom_section(mut bytes: Vec<u8>) -> Vec<u8> {
    let name = b"plugboard-test";
    let payload = b"changed";
    bytes.push(0); // custom section id
    bytes.push((1 + name.len() + payload.len()) as u8);
    bytes.push(name.len() as u8);
    bytes.extend_from_slice(name);
    bytes.extend_from_slice(payload);
    bytes
}

#[tokio::test]
async fn reupload_is_idempotent_and_changed_bytes_conflict() {
    let host = Host::start(&[]);
    let (s1, first) = host.upload(ECHO_WASM).await;
    assert_eq!(s1, 201, "{first}");
    let (s2, second) = host.upload(ECHO_WASM).await;
    assert_eq!(s2, 200, "{second}");
    assert_eq!(first, second);

    let changed = with_custom_section(std::fs::read(ECHO_WASM).unwrap());
    let e = assert_error(&host.upload_bytes(changed).await, 409, "CONFLICT");
    assert!(
        e["message"].as_str().unwrap().contains("bump the version"),
        "{e}"
    );
    let (_, list) = host.get("/connectors").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert_eq!(list["items"][0]["digest"], first["digest"]);
}

#[tokio::test]
async fn connectors_in_use_cannot_be_deleted() {
    let host = Host::start(&[]);
    let inst = host.instance(ECHO_WASM, serde_json::json!({})).await;
    let (_, conn) = host.get("/connectors/echo").await;
    let id = conn["id"].as_str().unwrap();
    assert_error(
        &host.delete(&format!("/connectors/{id}")).await,
        409,
        "CONFLICT",
    );
    assert_eq!(host.delete(&format!("/instances/{inst}")).await.0, 204);
    assert_eq!(host.delete(&format!("/connectors/{id}")).await.0, 204);
    assert_error(
        &host.get(&format!("/connectors/{id}")).await,
        404,
        "NOT_FOUND",
    );
}

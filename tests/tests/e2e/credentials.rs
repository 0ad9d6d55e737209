//! Credentials end to end: sealed at rest, applied by the host per scheme
//! to the auth hosts only, never visible to the guest or in any output,
//! tamper-evident, bound to the master key, rotatable; connection tests set
//! the instance status.

use std::path::Path;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use plugboard_tests::{AUTH_BASIC_WASM, AUTH_BEARER_WASM, AUTH_HEADER_WASM, AUTH_QUERY_WASM};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{Host, Received, assert_error, run_host};

type Check = Arc<dyn Fn(&Received) -> bool + Send + Sync>;

/// A fake API that records what arrives; `/me` answers 200 when `check`
/// accepts the request's credentials and 401 (with a JSON reason, like most
/// APIs) otherwise; anything else answers 200.
struct AuthUpstream {
    url: String,
    received: Arc<Mutex<Vec<Received>>>,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl AuthUpstream {
    async fn start(check: Check) -> AuthUpstream {
        use axum::extract::Request;
        use axum::response::IntoResponse;

        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let log = received.clone();
        let app = axum::Router::new().fallback(move |req: Request| {
            let (log, check) = (log.clone(), check.clone());
            async move {
                let (parts, _) = req.into_parts();
                let r = Received::new(&parts, Vec::new());
                let ok = r.path != "/me" || check(&r);
                log.lock().unwrap().push(r);
                if ok {
                    axum::Json(json!({ "ok": true })).into_response()
                } else {
                    (
                        StatusCode::UNAUTHORIZED,
                        axum::Json(json!({ "message": "invalid token" })),
                    )
                        .into_response()
                }
            }
        });
        let (url, tx) = crate::common::serve_loopback(app).await;
        AuthUpstream {
            url,
            received,
            _shutdown: tx,
        }
    }

    fn last(&self) -> Received {
        self.received.lock().unwrap().last().cloned().unwrap()
    }

    fn header(r: &Received, name: &str) -> Option<String> {
        r.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }
}

fn accept_all() -> Check {
    Arc::new(|_| true)
}

/// Uploads `wasm` and creates an instance whose `allowed` host is `a` and
/// `second` host is `b`; returns the id and the creation answer.
async fn create(
    host: &Host,
    wasm: &str,
    config: Value,
    credentials: Option<Value>,
) -> (String, Value) {
    let (status, body) = host.upload(wasm).await;
    assert!(status.is_success(), "{body}");
    let mut req = json!({ "connector": body["id"], "name": "acct", "config": config });
    if let Some(c) = credentials {
        req["credentials"] = c;
    }
    let (status, body) = host.post("/instances", req).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    (body["id"].as_str().unwrap().to_owned(), body)
}

async fn fetch(host: &Host, inst: &str, url: String, headers: Value) -> (StatusCode, Value) {
    host.invoke(inst, "fetch", json!({ "url": url, "headers": headers }))
        .await
}

const BEARER: &str = "tok-Vq7Lp2Xz9Rk4Wm8N";

#[tokio::test]
async fn a_bearer_token_reaches_only_the_auth_host_and_never_the_guest() {
    let host = Host::start(&[]);
    let a = AuthUpstream::start(accept_all()).await;
    let b = AuthUpstream::start(accept_all()).await;
    let (inst, created) = create(
        &host,
        AUTH_BEARER_WASM,
        json!({ "allowed": a.url, "second": b.url }),
        Some(json!({ "token": BEARER })),
    )
    .await;
    assert_eq!(created["status"], "ACTIVE");
    assert_eq!(created["credentials"]["fields"]["token"]["set"], true);
    assert!(!created.to_string().contains(BEARER));

    // The auth host gets the token and the static header.
    let (status, body) = fetch(&host, &inst, format!("{}/items", a.url), json!({})).await;
    assert_eq!(status, 200, "{body}");
    let got = a.last();
    assert_eq!(
        AuthUpstream::header(&got, "authorization").as_deref(),
        Some(format!("Bearer {BEARER}").as_str())
    );
    assert_eq!(
        AuthUpstream::header(&got, "notion-version").as_deref(),
        Some("2022-06-28")
    );

    // A guest-set Authorization towards the auth host loses to the host's.
    fetch(
        &host,
        &inst,
        format!("{}/items", a.url),
        json!({ "authorization": "Bearer forged" }),
    )
    .await;
    assert_eq!(
        AuthUpstream::header(&a.last(), "authorization").as_deref(),
        Some(format!("Bearer {BEARER}").as_str())
    );
    assert!(host.log().contains("the host's values were used"));

    // The second allowed host gets no credential at all.
    let (status, body) = fetch(&host, &inst, format!("{}/items", b.url), json!({})).await;
    assert_eq!(status, 200, "{body}");
    let got = b.last();
    assert_eq!(AuthUpstream::header(&got, "authorization"), None);
    assert_eq!(AuthUpstream::header(&got, "notion-version"), None);

    // Whatever the guest looks at, the token is not there.
    let (status, body) = host.invoke(&inst, "peek", json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert!(!body.to_string().contains(BEARER), "{body}");
    assert!(body["data"]["credential_keys"]["token"].is_null(), "{body}");

    // It can sign with it, getting only the MAC.
    use hmac::Mac as _;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(BEARER.as_bytes()).unwrap();
    mac.update(b"v0:123:payload");
    let want = hex::encode(mac.finalize().into_bytes());
    let (status, body) = host
        .invoke(
            &inst,
            "sign",
            json!({ "field": "token", "data": "v0:123:payload" }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"], want.as_str());
    let missing = host
        .invoke(&inst, "sign", json!({ "field": "nope", "data": "x" }))
        .await;
    assert_error(&missing, 422, "CONFIG_ERROR");

    // Reads never return values.
    let (_, shown) = host.get(&format!("/instances/{inst}")).await;
    assert_eq!(
        shown["credentials"]["fields"]["token"]["set"], true,
        "{shown}"
    );
    assert!(!shown.to_string().contains(BEARER));
}

#[tokio::test]
async fn each_scheme_sends_exactly_what_the_platform_expects() {
    let host = Host::start(&[]);
    let a = AuthUpstream::start(accept_all()).await;
    let b = AuthUpstream::start(accept_all()).await;
    let config = |extra: Value| {
        let mut c = json!({ "allowed": a.url, "second": b.url });
        c.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        c
    };

    // Basic, Zendesk style: username from config, password from credentials.
    let (basic, _) = create(
        &host,
        AUTH_BASIC_WASM,
        config(json!({ "email": "ops@acme.test" })),
        Some(json!({ "api_token": "zd-Hn3Jk8Qw" })),
    )
    .await;
    fetch(
        &host,
        &basic,
        format!("{}/api/v2/tickets", a.url),
        json!({}),
    )
    .await;
    let want = base64::engine::general_purpose::STANDARD.encode("ops@acme.test/token:zd-Hn3Jk8Qw");
    assert_eq!(
        AuthUpstream::header(&a.last(), "authorization"),
        Some(format!("Basic {want}"))
    );

    // A header with a value template.
    let (header, _) = create(
        &host,
        AUTH_HEADER_WASM,
        config(json!({})),
        Some(json!({ "api_key": "pk-Rt5Yu1" })),
    )
    .await;
    fetch(&host, &header, format!("{}/v1/me", a.url), json!({})).await;
    assert_eq!(
        AuthUpstream::header(&a.last(), "authorization").as_deref(),
        Some("Token token=pk-Rt5Yu1")
    );

    // Query parameters, Trello style; a guest-set `token` is replaced, other
    // parameters survive.
    let (query, _) = create(
        &host,
        AUTH_QUERY_WASM,
        config(json!({})),
        Some(json!({ "key": "tk-Aa1", "token": "tt-Bb2/+=" })),
    )
    .await;
    fetch(
        &host,
        &query,
        format!("{}/1/members/me/boards?fields=name&token=guess", a.url),
        json!({}),
    )
    .await;
    let got = a.last();
    assert_eq!(got.path, "/1/members/me/boards");
    assert_eq!(
        got.query.as_deref(),
        Some("fields=name&key=tk-Aa1&token=tt-Bb2%2F%2B%3D")
    );
    assert_eq!(AuthUpstream::header(&got, "authorization"), None);

    // None of them reaches the second host with anything.
    for inst in [&basic, &header, &query] {
        fetch(&host, inst, format!("{}/x?fields=id", b.url), json!({})).await;
        let got = b.last();
        assert_eq!(AuthUpstream::header(&got, "authorization"), None, "{inst}");
        assert_eq!(got.query.as_deref(), Some("fields=id"), "{inst}");
    }
}

#[tokio::test]
async fn test_connection_sets_the_instance_status() {
    let host = Host::start(&[]);
    let good: Check = Arc::new(|r| {
        AuthUpstream::header(r, "authorization").as_deref() == Some("Bearer right-token-123")
    });
    let a = AuthUpstream::start(good).await;
    let b = AuthUpstream::start(accept_all()).await;
    let config = json!({ "allowed": a.url, "second": b.url });

    // No credentials yet: pending, and calls are refused before guest code.
    let (inst, created) = create(&host, AUTH_BEARER_WASM, config, None).await;
    assert_eq!(created["status"], "PENDING_AUTHENTICATION", "{created}");
    let refused = host.invoke(&inst, "peek", json!({})).await;
    let e = assert_error(&refused, 409, "CREDENTIALS_REQUIRED");
    assert_eq!(e["category"], "configuration");

    // Bad credentials: the test fails with the upstream's reason.
    let creds_path = format!("/instances/{inst}/credentials");
    let put = |token: &str| {
        host.put(
            &creds_path,
            json!({ "credentials": { "token": token }, "expiresAt": "2099-01-01T00:00:00Z" }),
        )
    };
    let (status, body) = put("wrong-token-456").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["credentials"]["expiresAt"], "2099-01-01T00:00:00Z");
    let answer = host
        .post(&format!("/instances/{inst}/test"), json!({}))
        .await;
    assert_error(&answer, 401, "AUTH_REQUIRED");
    let (_, shown) = host.get(&format!("/instances/{inst}")).await;
    assert_eq!(shown["status"], "ERROR", "{shown}");
    assert!(
        shown["statusReason"]
            .as_str()
            .unwrap()
            .contains("invalid token"),
        "{shown}"
    );

    // Good credentials: ACTIVE.
    put("right-token-123").await;
    let (status, body) = host
        .post(&format!("/instances/{inst}/test"), json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, shown) = host.get(&format!("/instances/{inst}")).await;
    assert_eq!(shown["status"], "ACTIVE", "{shown}");
    assert!(shown.get("statusReason").is_none(), "{shown}");

    // Health warns about the expiry the operator gave.
    let health_path = format!("/instances/{inst}/health");
    let (_, h) = host.get(&health_path).await;
    assert_eq!(h["status"], "healthy", "{h}");
    assert_eq!(h["warnings"], json!([]), "{h}");
    let (status, _) = host
        .put(
            &creds_path,
            json!({ "credentials": { "token": "right-token-123" }, "expiresAt": "2020-01-01T00:00:00Z" }),
        )
        .await;
    assert_eq!(status, 200);
    let (_, h) = host.get(&health_path).await;
    assert_eq!(h["status"], "unavailable", "{h}");
    assert!(
        h["warnings"][0].as_str().unwrap().contains("expired"),
        "{h}"
    );
    let bad_expiry = host
        .put(
            &creds_path,
            json!({ "credentials": { "token": "x" }, "expiresAt": "tomorrow" }),
        )
        .await;
    assert_error(&bad_expiry, 400, "INVALID_REQUEST");

    // Credentials are validated against the schema without echoing values.
    let bad = host
        .put(
            &format!("/instances/{inst}/credentials"),
            json!({ "credentials": { "tokn": "typo-value-789" } }),
        )
        .await;
    let e = assert_error(&bad, 400, "INVALID_CREDENTIALS");
    assert!(!bad.1.to_string().contains("typo-value-789"), "{e}");
}

/// Every way a secret could show up as text in bytes: plain, hex, and
/// base64 at the three alignments (standard and URL-safe alphabets).
pub(crate) fn encodings(secret: &str) -> Vec<String> {
    let mut out = vec![
        secret.to_owned(),
        hex::encode(secret),
        hex::encode_upper(secret),
    ];
    for engine in [
        base64::engine::general_purpose::STANDARD,
        base64::engine::general_purpose::URL_SAFE,
    ] {
        for pad in 0..3 {
            let mut bytes = vec![0u8; pad];
            bytes.extend_from_slice(secret.as_bytes());
            let enc = engine.encode(&bytes);
            // Drop the characters that depend on neighbouring bytes.
            let core = &enc[4.min(enc.len())..enc.len().saturating_sub(4)];
            if core.len() >= 8 {
                out.push(core.to_owned());
            }
        }
    }
    out
}

pub(crate) fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[tokio::test]
async fn secrets_appear_nowhere_on_disk_in_logs_or_answers() {
    let secrets = [
        "sk-live-7fQ2mZ9xW4pL",
        "zd-api-K8vN3bT6yR1c",
        "key-H5jD2sG9aQ0e",
        "trello-Tok-U4iO7pE3",
    ];
    let mut host = Host::start(&[]);
    let a = AuthUpstream::start(Arc::new(|_| false)).await;
    let b = AuthUpstream::start(accept_all()).await;
    let config = json!({ "allowed": a.url, "second": b.url, "email": "me@x.test" });
    let mut answers: Vec<Value> = Vec::new();
    let cases = [
        (AUTH_BEARER_WASM, json!({ "token": secrets[0] })),
        (AUTH_BASIC_WASM, json!({ "api_token": secrets[1] })),
        (AUTH_HEADER_WASM, json!({ "api_key": secrets[2] })),
        (
            AUTH_QUERY_WASM,
            json!({ "key": secrets[2], "token": secrets[3] }),
        ),
    ];
    for (wasm, creds) in cases {
        let (inst, created) = create(&host, wasm, config.clone(), Some(creds.clone())).await;
        answers.push(created);
        // Calls that succeed, fail upstream (401), and errors of every kind.
        answers.push(
            fetch(&host, &inst, format!("{}/items", a.url), json!({}))
                .await
                .1,
        );
        answers.push(
            host.post(&format!("/instances/{inst}/test"), json!({}))
                .await
                .1,
        );
        answers.push(host.invoke(&inst, "peek", json!({})).await.1);
        answers.push(
            host.post(
                &format!("/instances/{inst}/methods/fetch?outbound=true"),
                json!({ "parameters": { "url": "http://127.0.0.2:1/x" } }),
            )
            .await
            .1,
        );
        answers.push(host.get(&format!("/instances/{inst}")).await.1);
        answers.push(host.get(&format!("/instances/{inst}/stats")).await.1);
        answers.push(host.get(&format!("/instances/{inst}/health")).await.1);
        // A rejected update that carries a secret in the wrong shape.
        let mut wrong = creds.clone();
        let first = wrong.as_object().unwrap().keys().next().unwrap().clone();
        wrong[&first] = json!([secrets[0]]);
        answers.push(
            host.put(
                &format!("/instances/{inst}/credentials"),
                json!({ "credentials": wrong }),
            )
            .await
            .1,
        );
    }
    answers.push(host.get("/instances").await.1);
    host.stop();

    let mut haystacks: Vec<(String, Vec<u8>)> = files_under(&host.data_dir)
        .into_iter()
        .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
        .collect();
    assert!(haystacks.len() > 2, "the store has files");
    haystacks.push(("host log".into(), host.log().into_bytes()));
    for (i, a) in answers.iter().enumerate() {
        haystacks.push((format!("answer {i}"), a.to_string().into_bytes()));
    }
    for secret in secrets {
        for needle in encodings(secret) {
            for (name, bytes) in &haystacks {
                let found = bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
                assert!(!found, "{needle:?} (from {secret:?}) found in {name}");
            }
        }
    }
}

#[tokio::test]
async fn tampering_a_wrong_key_and_rotation() {
    let root = Arc::new(tempfile::tempdir().unwrap());
    let mut host = Host::start_in(root.clone(), &[]);
    let a = AuthUpstream::start(accept_all()).await;
    let b = AuthUpstream::start(accept_all()).await;
    let config = json!({ "allowed": a.url, "second": b.url });
    let (first, _) = create(
        &host,
        AUTH_BEARER_WASM,
        config.clone(),
        Some(json!({ "token": "first-AAAA1111" })),
    )
    .await;
    let (second, _) = create(
        &host,
        AUTH_BEARER_WASM,
        config.clone(),
        Some(json!({ "token": "second-BBBB2222" })),
    )
    .await;
    let data_dir = host.data_dir.clone();
    let key_before = std::fs::read_to_string(data_dir.join("master.key")).unwrap();
    host.stop();

    // Copy the first instance's sealed credentials onto the second's record.
    {
        use plugboard::store::{SledStore, Store as _};
        let store = SledStore::open(&data_dir.join("store")).unwrap();
        let sealed = store.credentials(&first).unwrap().unwrap();
        let record = store.instance(&second).unwrap().unwrap();
        store.put_credentials(&record, &sealed).unwrap();
        store.flush().unwrap();
    }
    let mut host = Host::start_in(root.clone(), &[]);
    let answer = fetch(&host, &second, format!("{}/x", a.url), json!({})).await;
    let e = assert_error(&answer, 500, "CREDENTIALS_UNREADABLE");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("sealed for another instance"),
        "{e}"
    );
    assert!(!answer.1.to_string().contains("first-AAAA1111"));
    // The untouched instance still works; the broken one is fixed by a PUT.
    let (status, _) = fetch(&host, &first, format!("{}/x", a.url), json!({})).await;
    assert_eq!(status, 200);
    let (status, body) = host
        .put(
            &format!("/instances/{second}/credentials"),
            json!({ "credentials": { "token": "second-BBBB2222" } }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    host.stop();

    // A wrong master key stops the start, saying so.
    let data = data_dir.to_str().unwrap();
    let other_key = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
    let (ok, _, stderr) = run_host(
        &["serve", "--listen", "127.0.0.1:0", "--data-dir", data],
        &[("PLUGBOARD_MASTER_KEY", &other_key)],
    );
    assert!(!ok);
    assert!(stderr.contains("wrong master key"), "{stderr}");

    // Rotation re-seals everything; the host then runs with only the new key.
    let (ok, stdout, stderr) = run_host(&["rotate-key", "--data-dir", data], &[]);
    assert!(ok, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("re-sealed 2 credential field(s)"),
        "{stdout}"
    );
    let key_after = std::fs::read_to_string(data_dir.join("master.key")).unwrap();
    assert_ne!(key_before, key_after);
    assert!(!data_dir.join("master.key.next").exists());
    let host = Host::start_in(root.clone(), &[]);
    for (inst, token) in [(&first, "first-AAAA1111"), (&second, "second-BBBB2222")] {
        let (status, body) = fetch(&host, inst, format!("{}/x", a.url), json!({})).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            AuthUpstream::header(&a.last(), "authorization"),
            Some(format!("Bearer {token}"))
        );
    }
    drop(host);
    // The old key no longer opens the store.
    let (ok, _, stderr) = run_host(
        &["serve", "--listen", "127.0.0.1:0", "--data-dir", data],
        &[("PLUGBOARD_MASTER_KEY", key_before.trim())],
    );
    assert!(!ok);
    assert!(stderr.contains("wrong master key"), "{stderr}");
}

//! OAuth 2.0 end to end against a fake provider on 127.0.0.1 that
//! implements the token endpoint (authorization code with PKCE, refresh with
//! rotating refresh tokens, revocation) and a protected API, with scripted
//! failures.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use plugboard_tests::{AUTH_CLIENT_CREDENTIALS_WASM, AUTH_OAUTH_WASM};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::Digest as _;

use crate::common::{Host, assert_error, serve_loopback};
use crate::credentials::{encodings, files_under};

const CLIENT_ID: &str = "cid-Gm4Tn8";
const CLIENT_SECRET: &str = "csecret-Yx2Vb7Qp9";
const CODE: &str = "code-Ju6Kl3Rr";

#[derive(Default)]
struct Provider {
    /// Valid access token and the one valid refresh token.
    access: Option<String>,
    refresh: Option<String>,
    issued: u32,
    /// `expires_in` of the next tokens.
    expires_in: u64,
    /// Answer the next N API calls 401 even with the valid token.
    reject_next: u32,
    /// Refuse every refresh with `invalid_grant`.
    refuse_refresh: bool,
    /// Form fields of every token request.
    token_requests: Vec<HashMap<String, String>>,
    /// Authorization header of every token request.
    token_auth: Vec<String>,
    revoked: Vec<String>,
    /// Every token ever issued, for the leak check.
    all_tokens: Vec<String>,
}

struct FakeProvider {
    url: String,
    state: Arc<Mutex<Provider>>,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

fn parse_form(body: &[u8]) -> HashMap<String, String> {
    let decode = |s: &str| {
        let s = s.replace('+', " ");
        let mut out = Vec::new();
        let b = s.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'%'
                && i + 2 < b.len()
                && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16)
            {
                out.push(v);
                i += 3;
                continue;
            }
            out.push(b[i]);
            i += 1;
        }
        String::from_utf8(out).unwrap()
    };
    String::from_utf8_lossy(body)
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

impl FakeProvider {
    async fn start() -> FakeProvider {
        use axum::extract::Request;
        use axum::response::IntoResponse;

        let state = Arc::new(Mutex::new(Provider {
            expires_in: 3600,
            ..Provider::default()
        }));
        let shared = state.clone();
        let app = axum::Router::new().fallback(move |req: Request| {
            let shared = shared.clone();
            async move {
                let (parts, body) = req.into_parts();
                let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
                let auth = parts
                    .headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                let mut p = shared.lock().unwrap();
                let err = |status: u16, error: &str| {
                    (
                        StatusCode::from_u16(status).unwrap(),
                        axum::Json(json!({ "error": error, "error_description": "scripted" })),
                    )
                        .into_response()
                };
                match parts.uri.path() {
                    "/oauth/token" => {
                        let form = parse_form(&body);
                        p.token_requests.push(form.clone());
                        p.token_auth.push(auth.clone());
                        let basic = base64::engine::general_purpose::STANDARD
                            .encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"));
                        if auth != format!("Basic {basic}") {
                            return err(401, "invalid_client");
                        }
                        let ok = match form.get("grant_type").map(String::as_str) {
                            Some("authorization_code") => {
                                form.get("code").map(String::as_str) == Some(CODE)
                            }
                            Some("refresh_token") => {
                                !p.refuse_refresh && form.get("refresh_token") == p.refresh.as_ref()
                            }
                            Some("client_credentials") => {
                                form.get("scope").map(String::as_str) == Some("reports")
                            }
                            _ => false,
                        };
                        if !ok {
                            return err(400, "invalid_grant");
                        }
                        p.issued += 1;
                        let n = p.issued;
                        let access = format!("at-{n}-Zq8Wp3Lk");
                        let refresh = format!("rt-{n}-Hc5Dn1Vs");
                        p.access = Some(access.clone());
                        p.refresh = Some(refresh.clone());
                        p.all_tokens.extend([access.clone(), refresh.clone()]);
                        axum::Json(json!({
                            "access_token": access,
                            "refresh_token": refresh,
                            "token_type": "Bearer",
                            "expires_in": p.expires_in,
                        }))
                        .into_response()
                    }
                    "/oauth/revoke" => {
                        let form = parse_form(&body);
                        p.revoked
                            .push(form.get("token").cloned().unwrap_or_default());
                        StatusCode::OK.into_response()
                    }
                    _ => {
                        let valid = p
                            .access
                            .as_ref()
                            .is_some_and(|a| auth == format!("Bearer {a}"));
                        if p.reject_next > 0 {
                            p.reject_next -= 1;
                            return err(401, "invalid_token");
                        }
                        if !valid {
                            return err(401, "invalid_token");
                        }
                        axum::Json(json!({ "ok": true })).into_response()
                    }
                }
            }
        });
        let (url, tx) = serve_loopback(app).await;
        FakeProvider {
            url,
            state,
            _shutdown: tx,
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut Provider) -> R) -> R {
        f(&mut self.state.lock().unwrap())
    }

    fn refreshes(&self) -> Vec<String> {
        self.with(|p| {
            p.token_requests
                .iter()
                .filter(|f| f.get("grant_type").map(String::as_str) == Some("refresh_token"))
                .map(|f| f["refresh_token"].clone())
                .collect()
        })
    }
}

/// Creates an OAuth instance with client credentials (pending).
async fn instance(host: &Host, provider: &FakeProvider) -> String {
    let (status, body) = host.upload(AUTH_OAUTH_WASM).await;
    assert!(status.is_success(), "{body}");
    let (status, body) = host
        .post(
            "/instances",
            json!({
                "connector": body["id"], "name": "cal",
                "config": { "allowed": provider.url, "second": "http://127.0.0.1:9" },
                "credentials": { "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET },
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["status"], "PENDING_AUTHENTICATION", "{body}");
    body["id"].as_str().unwrap().to_owned()
}

async fn start(host: &Host, inst: &str) -> (String, HashMap<String, String>) {
    let (status, body) = host
        .post(
            &format!("/instances/{inst}/oauth2/start"),
            json!({ "redirectUri": "https://app.example/cb" }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let url = body["authorizationUrl"].as_str().unwrap().to_owned();
    let query = url.split_once('?').unwrap().1;
    (
        body["state"].as_str().unwrap().to_owned(),
        parse_form(query.as_bytes()),
    )
}

async fn connect(host: &Host, inst: &str) -> (StatusCode, Value) {
    let (state, _) = start(host, inst).await;
    host.post(
        &format!("/instances/{inst}/oauth2/callback"),
        json!({ "code": CODE, "state": state }),
    )
    .await
}

async fn api_call(host: &Host, inst: &str, provider: &FakeProvider) -> (StatusCode, Value) {
    host.invoke(
        inst,
        "fetch",
        json!({ "url": format!("{}/calendars", provider.url) }),
    )
    .await
}

#[tokio::test]
async fn connect_refresh_once_under_load_rotate_across_restart_and_retry_a_401() {
    let root = Arc::new(tempfile::tempdir().unwrap());
    let mut host = Host::start_in(root.clone(), &["--max-instances", "128"]);
    let provider = FakeProvider::start().await;
    let inst = instance(&host, &provider).await;
    let refused = api_call(&host, &inst, &provider).await;
    assert_error(&refused, 409, "CREDENTIALS_REQUIRED");

    // The authorization URL carries everything the provider needs.
    let (state, q) = start(&host, &inst).await;
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["client_id"], CLIENT_ID);
    assert_eq!(q["redirect_uri"], "https://app.example/cb");
    assert_eq!(q["scope"], "calendar.read calendar.write");
    assert_eq!(q["state"], state);
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["access_type"], "offline");
    assert_eq!(q["prompt"], "consent");
    let challenge = q["code_challenge"].clone();

    // The user declines: a clear error, the instance unchanged.
    let denied = host
        .post(
            &format!("/instances/{inst}/oauth2/callback"),
            json!({ "error": "access_denied", "state": state }),
        )
        .await;
    assert_error(&denied, 400, "OAUTH_DENIED");
    let (_, shown) = host.get(&format!("/instances/{inst}")).await;
    assert_eq!(shown["status"], "PENDING_AUTHENTICATION");
    // That state is spent.
    let reused = host
        .post(
            &format!("/instances/{inst}/oauth2/callback"),
            json!({ "code": CODE, "state": state }),
        )
        .await;
    assert_error(&reused, 400, "OAUTH_STATE_INVALID");

    // The real connect, through the browser callback, with a token that is
    // about to expire.
    provider.with(|p| p.expires_in = 30);
    let (state, q) = start(&host, &inst).await;
    let page = host
        .client
        .get(format!(
            "{}/oauth2/callback?code={CODE}&state={state}",
            host.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("Connected"));
    let (_, shown) = host.get(&format!("/instances/{inst}")).await;
    assert_eq!(shown["status"], "ACTIVE", "{shown}");
    // Audited in the host's name (no API token comes with the browser),
    // after the refused API callback with the spent state.
    let (_, trail) = host.get("/audit?action=instance.oauth.connect").await;
    let connects = trail["items"].as_array().unwrap();
    assert_eq!(
        connects[0]["actor"],
        json!({ "kind": "system", "name": "oauth browser callback" })
    );
    assert_eq!(
        connects[0]["resource"],
        json!({ "type": "instance", "id": inst })
    );
    assert_eq!(connects[0]["outcome"]["result"], "success");
    assert_eq!(connects[1]["outcome"]["code"], "OAUTH_STATE_INVALID");
    let exchange = provider.with(|p| p.token_requests.last().cloned().unwrap());
    assert_eq!(exchange["grant_type"], "authorization_code");
    assert_eq!(exchange["redirect_uri"], "https://app.example/cb");
    let verifier = &exchange["code_verifier"];
    let want = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()));
    assert_eq!(want, q["code_challenge"]);
    assert_ne!(q["code_challenge"], challenge, "a fresh verifier per flow");
    assert!(!exchange.contains_key("client_secret"), "basic client auth");

    // 100 concurrent calls on the expiring token: exactly one refresh.
    provider.with(|p| p.expires_in = 3600);
    let calls = (0..100).map(|_| api_call(&host, &inst, &provider));
    let answers = futures::future::join_all(calls).await;
    for (status, body) in &answers {
        assert_eq!(*status, 200, "{body}");
        assert_eq!(body["data"]["status"], 200, "{body}");
    }
    assert_eq!(provider.refreshes(), ["rt-1-Hc5Dn1Vs"]);

    // Restart right after the refresh: the rotated refresh token survived.
    host.stop();
    let host = Host::start_in(root.clone(), &[]);
    // A 401 on a fresh-looking token: one refresh (with the rotated token),
    // one retry, success.
    provider.with(|p| p.reject_next = 1);
    let (status, body) = api_call(&host, &inst, &provider).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["status"], 200, "{body}");
    assert_eq!(provider.refreshes(), ["rt-1-Hc5Dn1Vs", "rt-2-Hc5Dn1Vs"]);

    // Two 401s: one refresh, one retry, then the 401 reaches the connector
    // (AUTH_REQUIRED) — no loop.
    provider.with(|p| p.reject_next = 2);
    let answer = host
        .post(&format!("/instances/{inst}/test"), json!({}))
        .await;
    assert_error(&answer, 401, "AUTH_REQUIRED");
    assert_eq!(provider.refreshes().len(), 3);

    // Disconnect revokes the refresh token and wipes the tokens.
    let current = provider.with(|p| p.refresh.clone().unwrap());
    let (status, _) = host.delete(&format!("/instances/{inst}/oauth2")).await;
    assert_eq!(status, 204);
    assert_eq!(provider.with(|p| p.revoked.clone()), [current]);
    let (_, shown) = host.get(&format!("/instances/{inst}")).await;
    assert_eq!(shown["status"], "PENDING_AUTHENTICATION", "{shown}");
    assert!(
        shown["credentials"]["fields"].get("access_token").is_none(),
        "{shown}"
    );
}

#[tokio::test]
async fn invalid_grant_needs_reauth_and_nothing_leaks() {
    let mut host = Host::start(&[]);
    let provider = FakeProvider::start().await;
    let inst = instance(&host, &provider).await;
    let mut answers = Vec::new();
    let (status, body) = connect(&host, &inst).await;
    assert_eq!(status, 200, "{body}");
    answers.push(body);
    answers.push(api_call(&host, &inst, &provider).await.1);

    // The provider kills the refresh token; the next 401 finds out.
    provider.with(|p| {
        p.refuse_refresh = true;
        p.reject_next = 1;
    });
    answers.push(api_call(&host, &inst, &provider).await.1);
    let (_, shown) = host.get(&format!("/instances/{inst}")).await;
    assert_eq!(shown["status"], "REAUTH_REQUIRED", "{shown}");
    assert!(host.log().contains("oauth.reauth_required"));
    // Now calls fail fast, without reaching the provider.
    let before = provider.with(|p| p.token_requests.len());
    let fast = api_call(&host, &inst, &provider).await;
    let e = assert_error(&fast, 401, "AUTH_REQUIRED");
    assert!(e["message"].as_str().unwrap().contains("reconnect"), "{e}");
    assert_eq!(provider.with(|p| p.token_requests.len()), before);
    answers.push(fast.1);

    // A new connect flow restores it.
    provider.with(|p| p.refuse_refresh = false);
    let (status, body) = connect(&host, &inst).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ACTIVE");
    let (status, body) = api_call(&host, &inst, &provider).await;
    assert_eq!(status, 200, "{body}");
    answers.push(body);
    answers.push(host.get(&format!("/instances/{inst}")).await.1);
    host.stop();

    // No token, code, verifier or client secret anywhere.
    let (mut secrets, verifiers) = provider.with(|p| {
        (
            p.all_tokens.clone(),
            p.token_requests
                .iter()
                .filter_map(|f| f.get("code_verifier").cloned())
                .collect::<Vec<_>>(),
        )
    });
    assert!(secrets.len() >= 4);
    secrets.extend(verifiers);
    secrets.push(CLIENT_SECRET.into());
    secrets.push(CODE.into());
    let mut haystacks: Vec<(String, Vec<u8>)> = files_under(&host.data_dir)
        .into_iter()
        .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
        .collect();
    haystacks.push(("host log".into(), host.log().into_bytes()));
    for (i, a) in answers.iter().enumerate() {
        haystacks.push((format!("answer {i}"), a.to_string().into_bytes()));
    }
    for secret in &secrets {
        for needle in encodings(secret) {
            for (name, bytes) in &haystacks {
                let found = bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
                assert!(!found, "{needle:?} (from {secret:?}) found in {name}");
            }
        }
    }
}

#[tokio::test]
async fn the_client_credentials_grant_needs_no_connect_flow() {
    let host = Host::start(&[]);
    let provider = FakeProvider::start().await;
    let (status, body) = host.upload(AUTH_CLIENT_CREDENTIALS_WASM).await;
    assert!(status.is_success(), "{body}");
    let (status, body) = host
        .post(
            "/instances",
            json!({
                "connector": body["id"], "name": "reports",
                "config": { "allowed": provider.url, "second": "http://127.0.0.1:9" },
                "credentials": { "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET },
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["status"], "ACTIVE", "{body}");
    let inst = body["id"].as_str().unwrap().to_owned();
    for _ in 0..3 {
        let (status, body) = api_call(&host, &inst, &provider).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["data"]["status"], 200, "{body}");
    }
    // One token request for three calls, with basic client authentication.
    let requests = provider.with(|p| p.token_requests.clone());
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0]["grant_type"], "client_credentials");
    assert!(!requests[0].contains_key("client_secret"));
    // There is no connect flow to start.
    let start = host
        .post(
            &format!("/instances/{inst}/oauth2/start"),
            json!({ "redirectUri": "https://a.test/cb" }),
        )
        .await;
    assert_error(&start, 400, "NOT_OAUTH");
}

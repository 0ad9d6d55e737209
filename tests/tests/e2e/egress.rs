//! The egress policy end to end: special address ranges, host headers,
//! per-invocation limits and timeouts, each refused with its own code and
//! without tying up the host.

use plugboard_tests::{ECHO_WASM, HOSTILE_WASM, REST_WASM};
use serde_json::json;

use crate::common::{FakeUpstream, Host, assert_error};

/// Creates a hostile instance whose one declared host is `allowed` and asks
/// it to GET `url`.
async fn fetch_via(
    host: &Host,
    allowed: &str,
    url: &str,
) -> (reqwest::StatusCode, serde_json::Value) {
    let inst = host
        .instance(HOSTILE_WASM, json!({ "allowed": allowed }))
        .await;
    host.invoke(&inst, "fetch", json!({ "url": url })).await
}

#[tokio::test]
async fn special_addresses_are_refused_by_default() {
    let host = Host::start_strict(&[]);
    let upstream = FakeUpstream::start().await;
    let port = upstream.url.rsplit(':').next().unwrap().to_owned();
    let cases = [
        // (declared host = fetched URL, expected range in the reason)
        (upstream.url.clone(), "loopback"),
        (format!("http://localhost:{port}"), "loopback"),
        (format!("http://[::1]:{port}"), "loopback"),
        (format!("http://[::ffff:127.0.0.1]:{port}"), "loopback"),
        ("http://169.254.169.254".to_owned(), "cloud metadata"),
        ("http://10.0.0.1".to_owned(), "private"),
        ("http://192.168.1.1:8080".to_owned(), "private"),
        ("http://100.64.0.1".to_owned(), "CGNAT"),
        ("http://[fd00::1]".to_owned(), "unique-local"),
    ];
    for (base, range) in cases {
        let answer = fetch_via(&host, &base, &format!("{base}/api/items")).await;
        let e = assert_error(&answer, 403, "HOST_DENIED");
        let message = e["message"].as_str().unwrap();
        assert!(message.contains(range), "{base}: {message}");
        assert!(message.contains("--egress-allow-cidr"), "{base}: {message}");
    }
    assert!(
        upstream.requests().is_empty(),
        "a refused request reached the upstream"
    );
}

#[tokio::test]
async fn an_allowed_range_opens_exactly_that_range() {
    // The default test host allows 127.0.0.1/32 and nothing else.
    let host = Host::start(&[]);
    let upstream = FakeUpstream::start().await;
    let port = upstream.url.rsplit(':').next().unwrap().to_owned();

    let (status, body) =
        fetch_via(&host, &upstream.url, &format!("{}/api/items", upstream.url)).await;
    assert_eq!(status, 200, "{body}");
    // A name resolving to the allowed address works too (::1, if listed
    // first, is skipped).
    let localhost = format!("http://localhost:{port}");
    let (status, body) = fetch_via(&host, &localhost, &format!("{localhost}/api/items")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(upstream.requests().len(), 2);

    // Another loopback address is still refused.
    let other = format!("http://127.0.0.2:{port}");
    let e = assert_error(
        &fetch_via(&host, &other, &format!("{other}/api/items")).await,
        403,
        "HOST_DENIED",
    );
    assert!(e["message"].as_str().unwrap().contains("loopback"), "{e}");
}

#[tokio::test]
async fn a_guest_cannot_redirect_a_request_with_host_headers() {
    let host = Host::start(&[]);
    let upstream = FakeUpstream::start().await;
    let inst = host
        .instance(HOSTILE_WASM, json!({ "allowed": upstream.url }))
        .await;
    for header in [
        "host",
        "Host",
        "x-forwarded-host",
        "forwarded",
        "x-forwarded-for",
    ] {
        let answer = host
            .invoke(
                &inst,
                "fetch",
                json!({ "url": format!("{}/api/items", upstream.url), "headers": { header: "evil.example.com" } }),
            )
            .await;
        // The header is refused outright (the guest's request fails) …
        assert_ne!(answer.0, 200, "{header}: {}", answer.1);
    }
    // … so nothing carrying it ever arrived.
    for r in upstream.requests() {
        for (k, v) in &r.headers {
            assert!(!v.contains("evil.example.com"), "{k}: {v} arrived");
        }
    }
}

#[tokio::test]
async fn per_invocation_request_cap() {
    let host = Host::start(&["--egress-max-requests", "3"]);
    let upstream = FakeUpstream::start().await;
    let inst = host
        .instance(HOSTILE_WASM, json!({ "allowed": upstream.url }))
        .await;
    let url = format!("{}/api/items", upstream.url);
    let (status, body) = host
        .invoke(&inst, "fetch", json!({ "url": url, "repeat": 3 }))
        .await;
    assert_eq!(status, 200, "{body}");
    let e = assert_error(
        &host
            .invoke(&inst, "fetch", json!({ "url": url, "repeat": 4 }))
            .await,
        502,
        "OUTBOUND_LIMIT",
    );
    assert!(
        e["message"].as_str().unwrap().contains("more than 3"),
        "{e}"
    );
    // 3 + 3: the fourth request of the second call never left.
    assert_eq!(upstream.requests().len(), 6);
}

#[tokio::test]
async fn slow_and_huge_upstreams_are_cut_off_without_blocking_others() {
    let host = std::sync::Arc::new(Host::start(&[
        "--egress-first-byte-timeout-ms",
        "700",
        "--egress-max-response-kib",
        "1024",
    ]));
    let upstream = FakeUpstream::start().await;
    let rest = host
        .instance(
            REST_WASM,
            json!({ "base_url": format!("{}/api", upstream.url) }),
        )
        .await;
    let echo = host.instance(ECHO_WASM, json!({})).await;

    let slow = {
        let (host, rest) = (host.clone(), rest.clone());
        tokio::spawn(async move {
            host.invoke(&rest, "request", json!({"path": "/slow"}))
                .await
        })
    };
    // While the slow call waits on its upstream, other calls proceed.
    let (status, body) = host
        .invoke(&echo, "echo", json!({"message": "meanwhile"}))
        .await;
    assert_eq!(status, 200, "{body}");
    let e = assert_error(&slow.await.unwrap(), 504, "UPSTREAM_TIMEOUT");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("no response headers"),
        "{e}"
    );

    let e = assert_error(
        &host
            .invoke(&rest, "request", json!({"path": "/huge"}))
            .await,
        502,
        "OUTBOUND_LIMIT",
    );
    assert!(e["message"].as_str().unwrap().contains("1048576"), "{e}");
    let (status, body) = host
        .invoke(&echo, "echo", json!({"message": "after"}))
        .await;
    assert_eq!(status, 200, "{body}");
}

/// Calls the HTTP/2 test sends at once.
const TOGETHER: usize = 8;

/// An HTTPS "platform" on loopback: `GET /api/version` answers which HTTP
/// version the request arrived over; `GET /api/together` answers only once
/// [`TOGETHER`] such requests are in flight at the same time (or says it
/// gave up waiting after 10 s), so calls that arrive one after another
/// cannot pass for concurrent ones.
async fn tls_platform() -> crate::common::TlsUpstream {
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(TOGETHER));
    let app = axum::Router::new()
        .route(
            "/api/version",
            axum::routing::get(|req: axum::extract::Request| async move {
                axum::Json(json!({ "version": format!("{:?}", req.version()) }))
            }),
        )
        .route(
            "/api/together",
            axum::routing::get(move |req: axum::extract::Request| async move {
                let waited =
                    tokio::time::timeout(std::time::Duration::from_secs(10), barrier.wait()).await;
                axum::Json(json!({
                    "version": format!("{:?}", req.version()),
                    "together": waited.is_ok(),
                }))
            }),
        );
    crate::common::TlsUpstream::start(app).await
}

/// Writes the upstream's certificate into a fresh data root; returns the
/// root and the file's path.
fn ca_file(upstream: &crate::common::TlsUpstream) -> (std::sync::Arc<tempfile::TempDir>, String) {
    let root = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let path = root.path().join("upstream-ca.pem");
    std::fs::write(&path, &upstream.ca_pem).unwrap();
    (root, path.to_str().unwrap().to_owned())
}

/// A `rest` instance whose base URL is the platform's `/api`.
async fn rest_instance(host: &Host, upstream: &crate::common::TlsUpstream) -> String {
    host.instance(
        REST_WASM,
        json!({ "base_url": format!("{}/api", upstream.url) }),
    )
    .await
}

/// Asks the platform, through the instance, which HTTP version it got.
async fn ask_version(host: &Host, inst: &str) -> (reqwest::StatusCode, serde_json::Value) {
    host.invoke(
        inst,
        "request",
        json!({"method": "GET", "path": "/version"}),
    )
    .await
}

fn served(upstream: &crate::common::TlsUpstream) -> (usize, usize) {
    use std::sync::atomic::Ordering::SeqCst;
    (
        upstream.connections.load(SeqCst),
        upstream.refused.load(SeqCst),
    )
}

#[tokio::test]
async fn https_upstreams_get_http2_and_concurrent_calls_share_one_connection() {
    let upstream = tls_platform().await;
    let (root, ca) = ca_file(&upstream);
    let host = Host::start_in(root, &["--egress-ca-file", &ca]);
    let inst = rest_instance(&host, &upstream).await;
    let (status, body) = ask_version(&host, &inst).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["body"]["version"], "HTTP/2.0", "{body}");
    assert_eq!(served(&upstream), (1, 0));

    let calls = (0..TOGETHER).map(|_| {
        host.invoke(
            &inst,
            "request",
            json!({"method": "GET", "path": "/together"}),
        )
    });
    for (status, body) in futures::future::join_all(calls).await {
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["data"]["body"]["version"], "HTTP/2.0", "{body}");
        assert_eq!(body["data"]["body"]["together"], true, "{body}");
    }
    assert_eq!(
        served(&upstream),
        (1, 0),
        "eight calls in flight at once after the first share its connection"
    );
}

#[tokio::test]
async fn an_upstream_certificate_the_host_does_not_trust_is_refused() {
    let upstream = tls_platform().await;
    // One failure would open an upstream's circuit: a refused certificate
    // must not count as one.
    let host = Host::start(&["--egress-breaker-threshold", "1"]);
    let inst = rest_instance(&host, &upstream).await;
    let e = assert_error(
        &ask_version(&host, &inst).await,
        502,
        "UPSTREAM_CERTIFICATE",
    );
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("invalid peer certificate: UnknownIssuer"),
        "{e}"
    );
    assert_eq!(e["category"], "configuration", "{e}");
    assert_eq!(e["retryable"], false, "{e}");
    let (connections, refused) = served(&upstream);
    assert_eq!(connections, 0, "no request reached the upstream");
    assert_eq!(refused, 1, "one handshake, not retried");

    let again = ask_version(&host, &inst).await;
    assert_error(&again, 502, "UPSTREAM_CERTIFICATE");
    assert_eq!(
        served(&upstream),
        (0, 2),
        "the circuit stayed closed: the second call tried again"
    );
}

#[tokio::test]
async fn http2_can_be_switched_off_in_the_config_file() {
    let upstream = tls_platform().await;
    let (root, ca) = ca_file(&upstream);
    let config = root.path().join("plugboard.toml");
    std::fs::write(
        &config,
        format!("[egress]\nhttp2 = false\nca_files = [{ca:?}]\n"),
    )
    .unwrap();
    let host = Host::start_in(root, &["--config", config.to_str().unwrap()]);
    let inst = rest_instance(&host, &upstream).await;
    let (status, body) = ask_version(&host, &inst).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["body"]["version"], "HTTP/1.1", "{body}");
}

#[test]
fn a_ca_file_that_holds_no_certificate_stops_the_host_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("not-a-ca.pem");
    std::fs::write(&bad, "this is not PEM\n").unwrap();
    let data = dir.path().join("data");
    let (ok, _, stderr) = crate::common::run_host(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data.to_str().unwrap(),
            "--egress-ca-file",
            bad.to_str().unwrap(),
        ],
        &[],
    );
    assert!(!ok, "the host must not start");
    assert!(stderr.contains("egress ca_file"), "{stderr}");
    assert!(stderr.contains("not-a-ca.pem"), "{stderr}");
    assert!(stderr.contains("no PEM certificate"), "{stderr}");
}

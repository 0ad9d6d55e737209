//! Shared harness of the end-to-end tests: a real `plugboard serve` process on
//! an ephemeral loopback port with its own data directory, an HTTP client
//! that talks to it like a user would, and fake upstreams on 127.0.0.1.

#![allow(dead_code, missing_docs, clippy::unwrap_used)]

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

/// The host binary built from this workspace for the tests.
pub const HOST_BIN: &str = env!("CARGO_BIN_EXE_plugboard-e2e-host");

/// A running host process.
pub struct Host {
    child: Option<Child>,
    pub url: String,
    pub token: String,
    pub data_dir: PathBuf,
    pub log_path: PathBuf,
    pub client: reqwest::Client,
    // Keeps the temporary directory alive as long as the host.
    root: Arc<tempfile::TempDir>,
}

/// Default flags for test hosts, each used unless the test passes the same
/// flag: small pools so parallel tests stay light, and the one special
/// address range tests need — the fake upstreams on 127.0.0.1 — and no other.
pub const TEST_DEFAULTS: &[(&str, &str)] = &[
    ("--max-instances", "64"),
    ("--egress-allow-cidr", "127.0.0.1/32"),
];

impl Host {
    /// Starts a host with a fresh data directory.
    pub fn start(extra: &[&str]) -> Host {
        let root = Arc::new(tempfile::tempdir().unwrap());
        Self::start_in(root, extra)
    }

    /// Starts a host with the production egress policy: no special address
    /// range allowed, not even loopback.
    pub fn start_strict(extra: &[&str]) -> Host {
        let root = Arc::new(tempfile::tempdir().unwrap());
        Self::launch(root, extra, false, &[])
    }

    /// Starts a host whose data directory lives in `root` (reused across
    /// restarts).
    pub fn start_in(root: Arc<tempfile::TempDir>, extra: &[&str]) -> Host {
        Self::launch(root, extra, true, &[])
    }

    /// Like [`Host::start_in`], with extra environment variables.
    pub fn start_in_env(
        root: Arc<tempfile::TempDir>,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Host {
        Self::launch(root, extra, true, env)
    }

    fn launch(
        root: Arc<tempfile::TempDir>,
        extra: &[&str],
        allow_loopback: bool,
        env: &[(&str, &str)],
    ) -> Host {
        let wanted = |flag: &str| {
            !extra.contains(&flag) && (allow_loopback || flag != "--egress-allow-cidr")
        };
        let defaults: Vec<&str> = TEST_DEFAULTS
            .iter()
            .filter(|(flag, _)| wanted(flag))
            .flat_map(|(flag, value)| [*flag, *value])
            .collect();
        let data_dir = root.path().join("plugboard-data");
        let log_path = root.path().join(format!("host-{}.log", uuid_like()));
        let log = std::fs::File::create(&log_path).unwrap();
        let mut child = host_command(env)
            .arg("serve")
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data_dir)
            .args(&defaults)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        // Wait for the line announcing the bound address (bounded: a host
        // that does not come up within 60 s fails the test with its log).
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(url) = line.strip_prefix("plugboard listening on ") {
                    let _ = tx.send(url.trim().to_owned());
                }
            }
        });
        let url = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "host did not start; log:\n{}",
                    std::fs::read_to_string(&log_path).unwrap_or_default()
                );
            }
        };
        let token = std::fs::read_to_string(data_dir.join("admin.token"))
            .unwrap()
            .trim()
            .to_owned();
        Host {
            child: Some(child),
            url,
            token,
            data_dir,
            log_path,
            client: reqwest::Client::new(),
            root,
        }
    }

    /// The temporary root (to restart a host on the same data directory).
    pub fn root(&self) -> Arc<tempfile::TempDir> {
        self.root.clone()
    }

    /// Stops the host gracefully (SIGTERM) and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let status = child.wait().unwrap();
            assert!(
                status.success(),
                "host exited with {status}; log:\n{}",
                self.log()
            );
        }
    }

    /// Kills the host with SIGKILL (a crash: no shutdown code runs).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            let _ = child.wait();
        }
    }

    /// Everything the host logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn v1(&self, path: &str) -> String {
        format!("{}/v1{}", self.url, path)
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let resp = req.bearer_auth(&self.token).send().await.unwrap();
        let status = resp.status();
        let bytes = resp.bytes().await.unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                panic!(
                    "non-JSON answer ({status}): {e}: {}",
                    String::from_utf8_lossy(&bytes)
                )
            })
        };
        (status, body)
    }

    /// `method path` under `/v1` with `token` instead of the admin token;
    /// a non-JSON answer reads as `null`.
    pub async fn as_token(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .client
            .request(method, self.v1(path))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send(self.client.get(self.v1(path))).await
    }

    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.send(self.client.delete(self.v1(path))).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(self.client.post(self.v1(path)).json(&body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(self.client.put(self.v1(path)).json(&body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(self.client.patch(self.v1(path)).json(&body))
            .await
    }

    /// Creates an instance of an uploaded connector with `limits`.
    pub async fn instance_with(&self, connector: &str, config: Value, limits: Value) -> String {
        let (status, body) = self
            .post(
                "/instances",
                json!({ "connector": connector, "name": "test", "config": config, "limits": limits }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_str().unwrap().to_owned()
    }

    pub async fn upload_bytes(&self, bytes: Vec<u8>) -> (StatusCode, Value) {
        self.send(
            self.client
                .post(self.v1("/connectors"))
                .header("content-type", "application/wasm")
                .body(bytes),
        )
        .await
    }

    pub async fn upload(&self, path: &str) -> (StatusCode, Value) {
        self.upload_bytes(std::fs::read(path).unwrap()).await
    }

    /// Uploads (if needed) and creates an instance; returns its id.
    pub async fn instance(&self, wasm: &str, config: Value) -> String {
        let (status, body) = self.upload(wasm).await;
        assert!(status.is_success(), "upload failed: {status} {body}");
        let (status, body) = self
            .post(
                "/instances",
                json!({ "connector": body["id"], "name": "test", "config": config }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_str().unwrap().to_owned()
    }

    /// Creates an invoke-scoped token named `name` for `instance`; returns
    /// the created record (`token`, `id`, …).
    pub async fn invoke_token(&self, name: &str, instance: &str) -> Value {
        let (status, created) = self
            .post(
                "/tokens",
                json!({ "name": name, "scope": "invoke", "instances": [instance] }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        created
    }

    pub async fn invoke(&self, instance: &str, method: &str, params: Value) -> (StatusCode, Value) {
        self.post(
            &format!("/instances/{instance}/methods/{method}"),
            json!({ "parameters": params }),
        )
        .await
    }

    pub async fn healthz(&self) -> Value {
        self.client
            .get(format!("{}/healthz", self.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Asserts an error answer's status and code, returning the error object.
#[track_caller]
pub fn assert_error(answer: &(StatusCode, Value), status: u16, code: &str) -> Value {
    let (s, body) = answer;
    assert_eq!(
        s.as_u16(),
        status,
        "expected {status} {code}, got {s}: {body}"
    );
    assert_eq!(body["status"], "ERROR", "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "error without message: {body}"
    );
    body["error"].clone()
}

/// One request a fake upstream received.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Received {
    /// What arrived: request line parts and headers, plus the body read.
    pub fn new(parts: &axum::http::request::Parts, body: Vec<u8>) -> Received {
        Received {
            method: parts.method.to_string(),
            path: parts.uri.path().to_owned(),
            query: parts.uri.query().map(str::to_owned),
            headers: parts
                .headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
                .collect(),
            body,
        }
    }
}

/// A small HTTP server on 127.0.0.1 standing in for a platform's API. It
/// behaves like a typical JSON REST API: list/create with proper status
/// codes, JSON error bodies, and a few scripted failures.
pub struct FakeUpstream {
    pub url: String,
    pub received: Arc<Mutex<Vec<Received>>>,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl FakeUpstream {
    pub async fn start() -> FakeUpstream {
        use axum::extract::Request;
        use axum::response::IntoResponse;

        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let log = received.clone();
        let app = axum::Router::new().fallback(move |req: Request| {
            let log = log.clone();
            async move {
                let (parts, body) = req.into_parts();
                let body = axum::body::to_bytes(body, 1 << 20).await.unwrap().to_vec();
                let path = parts.uri.path().to_owned();
                log.lock()
                    .unwrap()
                    .push(Received::new(&parts, body.clone()));
                let j = |status: u16, v: Value| {
                    (StatusCode::from_u16(status).unwrap(), axum::Json(v)).into_response()
                };
                match (parts.method.as_str(), path.as_str()) {
                    ("GET", "/api/items") => j(
                        200,
                        json!([{"id": 1, "name": "first"}, {"id": 2, "name": "second"}]),
                    ),
                    ("POST", "/api/items") => {
                        let mut item: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                        item["id"] = json!(3);
                        j(201, item)
                    }
                    ("GET", "/api/text") => "plain text".into_response(),
                    ("GET", "/api/bad") => j(400, json!({"message": "field `name` is required"})),
                    ("GET", "/api/limited") => (
                        StatusCode::TOO_MANY_REQUESTS,
                        [("retry-after", "30")],
                        axum::Json(json!({"message": "slow down"})),
                    )
                        .into_response(),
                    ("GET", "/api/boom") => j(503, json!({"message": "upstream maintenance"})),
                    // Headers that never come (bounded, so the server task ends).
                    ("GET", "/api/slow") => {
                        tokio::time::sleep(Duration::from_secs(30)).await;
                        j(200, json!({"late": true}))
                    }
                    ("GET", "/api/huge") => vec![b'x'; 5 << 20].into_response(),
                    _ => j(404, json!({"message": "no such resource"})),
                }
            }
        });
        let (url, tx) = serve_loopback(app).await;
        FakeUpstream {
            url,
            received,
            _shutdown: tx,
        }
    }

    pub fn requests(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

/// The host binary with the tests' environment: info logs, no backtraces
/// (they slow every store drop), no inherited master key, plus `env`.
fn host_command(env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(HOST_BIN);
    command
        .env("RUST_LOG", "info")
        .env_remove("RUST_BACKTRACE")
        .env_remove("PLUGBOARD_MASTER_KEY")
        .envs(env.iter().copied())
        .stdin(Stdio::null());
    command
}

/// Runs the host binary to completion (bounded: 60 s) with `args` and
/// `env`; returns (success, stdout, stderr).
pub fn run_host(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let mut child = host_command(env)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("`plugboard {}` did not finish within 60 s", args.join(" "));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Serves `app` on an ephemeral 127.0.0.1 port until the returned sender
/// is dropped; returns the base URL.
pub async fn serve_loopback(app: axum::Router) -> (String, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await
            .unwrap();
    });
    (url, tx)
}

/// An HTTPS upstream on 127.0.0.1 with a fresh self-signed certificate,
/// offering HTTP/2 and HTTP/1.1 by ALPN like a platform's API does. It stops
/// when dropped.
pub struct TlsUpstream {
    /// `https://127.0.0.1:<port>`.
    pub url: String,
    /// The certificate, PEM: what `--egress-ca-file` must name for the host
    /// to trust this upstream.
    pub ca_pem: String,
    /// TLS handshakes that succeeded (connections served).
    pub connections: Arc<std::sync::atomic::AtomicUsize>,
    /// TLS handshakes that failed (e.g. the client refused the certificate).
    pub refused: Arc<std::sync::atomic::AtomicUsize>,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl TlsUpstream {
    /// Serves `app` over TLS.
    pub async fn start(app: axum::Router) -> TlsUpstream {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
        let key =
            rustls::pki_types::PrivateKeyDer::Pkcs8(certified.key_pair.serialize_der().into());
        let mut config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(vec![certified.cert.der().clone()], key)
            .unwrap();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("https://{}", listener.local_addr().unwrap());
        let (connections, refused) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (served, failed) = (connections.clone(), refused.clone());
        let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            loop {
                let tcp = tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((tcp, _)) => tcp,
                        Err(_) => continue,
                    },
                    _ = &mut rx => return,
                };
                let (acceptor, app) = (acceptor.clone(), app.clone());
                let (served, failed) = (served.clone(), failed.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        failed.fetch_add(1, Ordering::SeqCst);
                        return;
                    };
                    served.fetch_add(1, Ordering::SeqCst);
                    let service = hyper_util::service::TowerToHyperService::new(app);
                    let _ = hyper_util::server::conn::auto::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
                });
            }
        });
        TlsUpstream {
            url,
            ca_pem: certified.cert.pem(),
            connections,
            refused,
            _shutdown: tx,
        }
    }
}

/// A loopback port with nothing listening on it.
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Permission bits of a file.
pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

//! The fake upstream of `plugboard test`: a loopback HTTP server that
//! expects the example's exchanges in order, answers each as scripted and
//! reports every difference.
//!
//! Deliberately strict: a request nothing expects gets `501` and is a
//! failure, so a connector cannot pass by sending requests the fixtures do
//! not mention.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::fixtures::Exchange;

/// Largest request body the fake reads.
const MAX_BODY: usize = 4 << 20;

#[derive(Default)]
struct Script {
    expected: VecDeque<Exchange>,
    problems: Vec<String>,
}

/// A running fake upstream.
pub struct FakeUpstream {
    addr: SocketAddr,
    script: Arc<Mutex<Script>>,
    _task: tokio::task::JoinHandle<()>,
}

impl FakeUpstream {
    /// Binds `127.0.0.1:0` and serves until dropped.
    pub async fn start() -> anyhow::Result<Self> {
        let script = Arc::new(Mutex::new(Script::default()));
        let app = axum::Router::new()
            .fallback(answer)
            .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
            .with_state(script.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            addr,
            script,
            _task: task,
        })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Script> {
        self.script.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Expects these exchanges next, in order (forgetting any earlier state).
    pub fn expect(&self, exchanges: &[Exchange]) {
        *self.lock() = Script {
            expected: exchanges.iter().cloned().collect(),
            ..Script::default()
        };
    }

    /// Every difference since [`Self::expect`]: unexpected or mismatched
    /// requests, and expected requests that never came.
    pub fn finish(&self) -> Vec<String> {
        let mut script = self.lock();
        let mut problems = std::mem::take(&mut script.problems);
        for missing in script.expected.drain(..) {
            problems.push(format!(
                "expected request never came: {} {}",
                missing.request.method, missing.request.path
            ));
        }
        problems
    }
}

async fn answer(
    State(script): State<Arc<Mutex<Script>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut script = script.lock().unwrap_or_else(|e| e.into_inner());
    let target = format!("{method} {}", uri.path());
    let Some(next) = script.expected.pop_front() else {
        script
            .problems
            .push(format!("unexpected request: {target}"));
        return (
            StatusCode::NOT_IMPLEMENTED,
            format!("fake upstream: no request expected, got {target}"),
        )
            .into_response();
    };
    let mismatches = mismatches(&next, &method, &uri, &headers, &body);
    if !mismatches.is_empty() {
        script.problems.push(format!(
            "request {target} does not match the expected {} {}: {}",
            next.request.method,
            next.request.path,
            mismatches.join("; ")
        ));
        return (
            StatusCode::NOT_IMPLEMENTED,
            format!(
                "fake upstream: request does not match: {}",
                mismatches.join("; ")
            ),
        )
            .into_response();
    }
    drop(script);
    reply(&next)
}

/// What differs between a request and its expectation.
fn mismatches(
    exchange: &Exchange,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Vec<String> {
    let want = &exchange.request;
    let mut out = Vec::new();
    if !want.method.eq_ignore_ascii_case(method.as_str()) {
        out.push(format!("method is {method}, expected {}", want.method));
    }
    if want.path != uri.path() {
        out.push(format!("path is {}, expected {}", uri.path(), want.path));
    }
    let query: Vec<(String, String)> = form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .into_owned()
        .collect();
    for (k, v) in &want.query {
        if !query.iter().any(|(qk, qv)| qk == k && qv == v) {
            out.push(format!("query parameter {k}={v} is missing"));
        }
    }
    for (k, v) in &want.headers {
        match headers.get(k.as_str()).map(|h| h.to_str()) {
            Some(Ok(got)) if got == v => {}
            // Header values may be credentials: name the header, never show
            // what arrived.
            Some(_) => out.push(format!("header {k} has another value than expected")),
            None => out.push(format!("header {k} is missing")),
        }
    }
    if let Some(json) = &want.json {
        match serde_json::from_slice::<Value>(body) {
            Ok(got) if &got == json => {}
            Ok(got) => out.push(format!("JSON body is {got}, expected {json}")),
            Err(_) => out.push(format!(
                "body is not JSON ({} bytes), expected {json}",
                body.len()
            )),
        }
    }
    out
}

fn reply(exchange: &Exchange) -> Response {
    let r = &exchange.response;
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut builder = axum::http::Response::builder().status(status);
    let body = if let Some(json) = &r.json {
        builder = builder.header("content-type", "application/json");
        json.to_string()
    } else {
        r.text.clone().unwrap_or_default()
    };
    for (k, v) in &r.headers {
        builder = builder.header(k.as_str(), v.as_str());
    }
    builder
        .body(axum::body::Body::from(body))
        .unwrap_or_else(|e| {
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("fake upstream: bad scripted response: {e}"),
            )
                .into_response()
        })
}

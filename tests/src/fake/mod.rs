//! A fake upstream for connector tests: an HTTP server on 127.0.0.1 that
//! answers scripted exchanges and records every request.
//!
//! A test describes what the platform would answer as a [`Script`] of
//! [`Exchange`]s — written by hand, generated ([`Pages`] for paginated
//! listings, [`Reply::rate_limited`] for 429s, [`Reply::delay`] for slow
//! answers), or loaded from a HAR recording ([`Har`]) — starts an
//! [`Upstream`], points a connector instance's base URL at
//! [`Upstream::url`], and afterwards asserts on [`Upstream::requests`]: the
//! exact method, path, query, auth header and body the platform would have
//! received.
//!
//! How a request is answered: exchanges are tried in script order; the
//! first that matches and has uses left answers (and uses one up). A
//! request nothing matches is recorded with `matched: None` and answered
//! `501` with a JSON message naming it, so a connector test fails loudly
//! instead of talking to anything real. [`Upstream::assert_done`] checks
//! that nothing went unmatched and every limited exchange was used.
//!
//! Replies may contain `{{base_url}}`, and any origin registered with
//! [`Script::rewrite_origin`] (HAR origins are registered automatically);
//! both are replaced by the fake's own URL when served, so `Link` headers
//! and URLs in bodies (Slack's `upload_url`) lead back to the fake.
//!
//! See `docs/testing-connectors.md` for a walk-through.

mod exchange;
mod har;
mod pages;
mod recorded;

use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

pub use exchange::{Exchange, Reply};
pub use har::{Har, HarError, HarOptions};
pub use pages::Pages;
pub use recorded::Recorded;

/// Largest request body the fake reads.
const MAX_BODY: usize = 64 << 20;

/// The exchanges a fake upstream answers, in the order they are tried.
#[derive(Debug, Clone, Default)]
pub struct Script {
    exchanges: Vec<Exchange>,
    origins: Vec<String>,
}

impl Script {
    /// An empty script (every request gets `501`).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an exchange (tried after the ones already there).
    pub fn on(mut self, exchange: Exchange) -> Self {
        self.exchanges.push(exchange);
        self
    }

    /// Adds several exchanges.
    pub fn extend(mut self, exchanges: impl IntoIterator<Item = Exchange>) -> Self {
        self.exchanges.extend(exchanges);
        self
    }

    /// Replaces `origin` (e.g. `https://files.slack.com`) in replies with
    /// the fake's URL.
    pub fn rewrite_origin(mut self, origin: impl Into<String>) -> Self {
        self.origins.push(origin.into());
        self
    }

    /// Adds a HAR recording's entries (see [`Har::exchanges`]) and
    /// registers its origins for rewriting.
    pub fn har(mut self, har: &Har, options: &HarOptions) -> Result<Self, HarError> {
        self.exchanges.extend(har.exchanges(options)?);
        self.origins.extend(har.origins());
        Ok(self)
    }

    /// Loads a HAR file with default options (method, path and query
    /// matched; each entry answers once, in order).
    pub fn har_file(self, path: impl AsRef<std::path::Path>) -> Result<Self, HarError> {
        let har = Har::from_file(path)?;
        self.har(&har, &HarOptions::default())
    }
}

#[derive(Debug, Default)]
struct State {
    exchanges: Vec<Exchange>,
    origins: Vec<String>,
    recorded: Vec<Recorded>,
}

/// A running fake upstream; it stops when dropped.
#[derive(Debug)]
pub struct Upstream {
    url: String,
    state: Arc<Mutex<State>>,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl Upstream {
    /// Serves `script` on an ephemeral port of 127.0.0.1. Must be called
    /// within a tokio runtime.
    pub async fn start(script: Script) -> Upstream {
        let state = Arc::new(Mutex::new(State {
            exchanges: script.exchanges,
            origins: script.origins,
            recorded: Vec::new(),
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let url = format!(
            "http://{}",
            listener
                .local_addr()
                .expect("a bound listener has an address")
        );
        let (handler_state, base) = (state.clone(), url.clone());
        let app = axum::Router::new().fallback(move |req: Request| {
            let (state, base) = (handler_state.clone(), base.clone());
            async move { answer(&state, &base, req).await }
        });
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Upstream {
            url,
            state,
            _shutdown: tx,
        }
    }

    /// Base URL, `http://127.0.0.1:<port>` (no trailing slash).
    pub fn url(&self) -> &str {
        &self.url
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds an exchange while running (tried after the existing ones).
    pub fn add(&self, exchange: Exchange) {
        self.lock().exchanges.push(exchange);
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.lock().recorded.clone()
    }

    /// Requests with `method` to `path`.
    pub fn requests_to(&self, method: &str, path: &str) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.method.eq_ignore_ascii_case(method) && r.path == path)
            .collect()
    }

    /// Requests no exchange matched.
    pub fn unmatched(&self) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.matched.is_none())
            .collect()
    }

    /// Labels of exchanges limited with `once`/`times` that still have uses
    /// left.
    pub fn unused(&self) -> Vec<String> {
        self.lock()
            .exchanges
            .iter()
            .filter(|e| e.times.is_some_and(|n| n > 0))
            .map(|e| e.label().to_owned())
            .collect()
    }

    /// Panics unless every request matched an exchange and every limited
    /// exchange was used up: the connector sent exactly the script.
    #[track_caller]
    pub fn assert_done(&self) {
        let unmatched: Vec<String> = self.unmatched().iter().map(Recorded::line).collect();
        assert!(
            unmatched.is_empty(),
            "requests matched no exchange: {unmatched:?}"
        );
        let unused = self.unused();
        assert!(unused.is_empty(), "exchanges never used: {unused:?}");
    }
}

/// Records `req`, finds its exchange and builds the reply.
async fn answer(state: &Mutex<State>, base: &str, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b.to_vec(),
        Err(e) => return (StatusCode::PAYLOAD_TOO_LARGE, e.to_string()).into_response(),
    };
    let mut recorded = Recorded {
        method: parts.method.as_str().to_ascii_uppercase(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body,
        matched: None,
    };
    let (reply, origins) = {
        let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
        let found = st
            .exchanges
            .iter_mut()
            .find(|e| e.available() && e.matches(&recorded));
        let reply = found.map(|e| {
            if let Some(n) = e.times.as_mut() {
                *n -= 1;
            }
            recorded.matched = Some(e.label().to_owned());
            e.reply.clone()
        });
        let line = recorded.line();
        st.recorded.push(recorded);
        match reply {
            Some(r) => (r, st.origins.clone()),
            None => (
                Reply::json(
                    501,
                    serde_json::json!({
                        "message": format!("fake upstream: no scripted exchange matches {line}")
                    }),
                ),
                Vec::new(),
            ),
        }
    };
    if let Some(delay) = reply.delay {
        tokio::time::sleep(delay).await;
    }
    render(reply, base, &origins)
}

/// The HTTP response for `reply`, with `{{base_url}}` and rewritten origins
/// replaced by `base`.
fn render(reply: Reply, base: &str, origins: &[String]) -> Response {
    let rewrite = |text: &str| {
        let mut out = text.replace("{{base_url}}", base);
        for origin in origins {
            out = out.replace(origin.as_str(), base);
        }
        out
    };
    let body = match String::from_utf8(reply.body) {
        Ok(text) => rewrite(&text).into_bytes(),
        Err(e) => e.into_bytes(),
    };
    let mut response = Response::new(Body::from(body));
    *response.status_mut() =
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in reply.headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&rewrite(&value)),
        ) {
            response.headers_mut().append(n, v);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;

    #[tokio::test]
    async fn answers_in_order_records_and_rewrites() {
        let up = Upstream::start(
            Script::new()
                .on(Exchange::get("/limited")
                    .reply(Reply::rate_limited(7))
                    .once())
                .on(Exchange::get("/limited").reply_json(200, json!({"next": "{{base_url}}/p2"})))
                .on(Exchange::post("/files")
                    .reply_json(200, json!({"upload_url": "https://files.example.com/up/1"})))
                .rewrite_origin("https://files.example.com"),
        )
        .await;
        let client = reqwest::Client::new();
        let first = client
            .get(format!("{}/limited", up.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(first.status(), 429);
        assert_eq!(first.headers()["retry-after"], "7");
        let second: serde_json::Value = client
            .get(format!("{}/limited", up.url()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(second["next"], format!("{}/p2", up.url()));
        let files: serde_json::Value = client
            .post(format!("{}/files", up.url()))
            .bearer_auth("tok")
            .json(&json!({"a": 1}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(files["upload_url"], format!("{}/up/1", up.url()));

        let missing = client
            .delete(format!("{}/nope?x=1", up.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(missing.status(), 501);
        assert!(missing.text().await.unwrap().contains("DELETE /nope?x=1"));

        let reqs = up.requests();
        assert_eq!(reqs.len(), 4);
        assert_eq!(reqs[0].matched.as_deref(), Some("GET /limited"));
        assert_eq!(reqs[2].bearer(), Some("tok"));
        assert_eq!(reqs[2].json(), Some(json!({"a": 1})));
        assert_eq!(up.unmatched().len(), 1);
        assert_eq!(up.requests_to("POST", "/files").len(), 1);
        assert!(up.unused().is_empty());
        let done = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| up.assert_done()));
        assert!(done.is_err(), "an unmatched request must fail assert_done");
    }

    #[tokio::test(start_paused = true)]
    async fn slow_replies_wait() {
        let up = Upstream::start(
            Script::new().on(Exchange::get("/slow")
                .reply(Reply::text(200, "late").delay(Duration::from_secs(30)))
                .once()),
        )
        .await;
        assert_eq!(up.unused(), ["GET /slow"]);
        let url = format!("{}/slow", up.url());
        let started = tokio::time::Instant::now();
        // The clock is paused: tokio jumps over the 30 s once everything
        // else is idle, so this is exact and takes no real time.
        let text = reqwest::get(url).await.unwrap().text().await.unwrap();
        assert_eq!(text, "late");
        assert!(started.elapsed() >= Duration::from_secs(30));
        up.assert_done();
    }
}

//! The HTTP side of the client: builds requests against the server's base
//! URL, adds the bearer token, and sorts every outcome into an answer, an
//! API error (the server's JSON error) or a transport error.
//!
//! Built on the same hyper + rustls (ring, webpki roots) stack the host
//! uses for outbound calls, so the CLI adds no second HTTP stack.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HeaderName, HeaderValue};
use http::{HeaderMap, Method, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Empty, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use super::config::{Connection, Token};
use super::error::{CliError, CliResult};
use super::upload::Upload;

/// Request body type of the client.
type Body = BoxBody<Bytes, std::io::Error>;

/// Largest answer read: far above any API answer, low enough that a
/// misdirected `--server` cannot fill memory.
const MAX_ANSWER_BYTES: usize = 64 << 20;

/// Time to open a TCP connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// One request to the server.
#[derive(Debug)]
pub struct Call {
    method: Method,
    path: Vec<String>,
    query: Vec<(String, String)>,
    headers: Vec<(HeaderName, HeaderValue)>,
    payload: Payload,
    auth: bool,
}

/// What a request carries.
#[derive(Debug)]
enum Payload {
    Empty,
    Json(Value),
    Bytes(Bytes),
    Upload(Upload),
}

impl Call {
    /// A request to `path` (segments, percent-encoded when sent) with the
    /// bearer token.
    pub fn new(method: Method, path: &[&str]) -> Self {
        Self {
            method,
            path: path.iter().map(|s| (*s).to_owned()).collect(),
            query: Vec::new(),
            headers: Vec::new(),
            payload: Payload::Empty,
            auth: true,
        }
    }

    /// `GET /v1/<path>`.
    pub fn get(path: &[&str]) -> Self {
        Self::new(Method::GET, &v1(path))
    }

    /// `POST /v1/<path>`.
    pub fn post(path: &[&str]) -> Self {
        Self::new(Method::POST, &v1(path))
    }

    /// `PUT /v1/<path>`.
    pub fn put(path: &[&str]) -> Self {
        Self::new(Method::PUT, &v1(path))
    }

    /// `PATCH /v1/<path>`.
    pub fn patch(path: &[&str]) -> Self {
        Self::new(Method::PATCH, &v1(path))
    }

    /// `DELETE /v1/<path>`.
    pub fn delete(path: &[&str]) -> Self {
        Self::new(Method::DELETE, &v1(path))
    }

    /// Adds a query parameter.
    pub fn query(mut self, key: &str, value: impl ToString) -> Self {
        self.query.push((key.to_owned(), value.to_string()));
        self
    }

    /// Adds a query parameter when there is a value.
    pub fn query_opt(self, key: &str, value: Option<impl ToString>) -> Self {
        match value {
            Some(v) => self.query(key, v),
            None => self,
        }
    }

    /// Adds a header; a name or value HTTP cannot carry is a usage error.
    pub fn header(mut self, name: &str, value: &str) -> CliResult<Self> {
        let name = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| CliError::usage(format!("invalid header name {name:?}")))?;
        let value = HeaderValue::from_str(value.trim())
            .map_err(|_| CliError::usage(format!("invalid value for header {name}")))?;
        self.headers.push((name, value));
        Ok(self)
    }

    /// Sends `value` as the JSON body.
    pub fn json(mut self, value: Value) -> Self {
        self.payload = Payload::Json(value);
        self
    }

    /// Sends `bytes` as the body, as they are.
    pub fn bytes(mut self, bytes: impl Into<Bytes>) -> Self {
        self.payload = Payload::Bytes(bytes.into());
        self
    }

    /// Streams a file as the body.
    pub fn upload(mut self, upload: Upload) -> Self {
        self.payload = Payload::Upload(upload);
        self
    }

    /// Sends no token (public routes: `/healthz`, webhooks).
    pub fn without_token(mut self) -> Self {
        self.auth = false;
        self
    }
}

/// Prefixes the API version segment.
fn v1<'a>(path: &[&'a str]) -> Vec<&'a str> {
    std::iter::once("v1").chain(path.iter().copied()).collect()
}

/// An answer as it came.
#[derive(Debug)]
pub struct Reply {
    /// HTTP status.
    pub status: StatusCode,
    /// Response headers.
    pub headers: HeaderMap,
    /// The body, read whole.
    pub body: Bytes,
}

impl Reply {
    /// The body as JSON, or `None` when empty; a body that is not JSON is a
    /// transport error (something other than Plugboard answered).
    pub fn json(&self) -> CliResult<Option<Value>> {
        if self.body.is_empty() {
            return Ok(None);
        }
        serde_json::from_slice(&self.body)
            .map(Some)
            .map_err(|_| garbage(self.status, &self.body))
    }
}

/// The client of one server.
pub struct Api {
    server: url::Url,
    token: Option<Token>,
    token_source: Option<String>,
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Body>,
    timeout: Duration,
    verbose: bool,
}

impl Api {
    /// A client for `connection`; `timeout` bounds each whole exchange.
    pub fn new(connection: Connection, timeout: Duration, verbose: bool) -> Self {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        http.set_nodelay(true);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new()).build(https);
        Self {
            server: connection.server,
            token: connection.token,
            token_source: connection.token_source,
            client,
            timeout,
            verbose,
        }
    }

    /// The server's base URL.
    pub fn server(&self) -> &url::Url {
        &self.server
    }

    /// The full URL of a call.
    pub fn url(&self, call: &Call) -> url::Url {
        let mut url = self.server.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().extend(&call.path);
        }
        if !call.query.is_empty() {
            url.query_pairs_mut().extend_pairs(&call.query);
        }
        url
    }

    /// Sends a call and reads the whole answer, whatever its status.
    pub async fn send(&self, call: Call) -> CliResult<Reply> {
        let url = self.url(&call);
        let started = Instant::now();
        if self.verbose {
            // The URL and method only: headers carry the token.
            eprintln!("> {} {url}", call.method);
        }
        let request = self.request(call, &url)?;
        let exchange = async {
            let response = self.client.request(request).await.map_err(|e| {
                CliError::transport(format!("cannot reach {}: {}", self.server, describe(&e)))
            })?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, MAX_ANSWER_BYTES)
                .collect()
                .await
                .map_err(|e| {
                    CliError::transport(format!(
                        "reading the answer from {} failed: {e}",
                        self.server
                    ))
                })?
                .to_bytes();
            Ok::<_, CliError>(Reply {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        let reply = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| {
                CliError::transport(format!(
                    "no answer from {} within {} s (see --timeout)",
                    self.server,
                    self.timeout.as_secs()
                ))
            })??;
        if self.verbose {
            eprintln!(
                "< {} ({} ms, {} bytes)",
                reply.status,
                started.elapsed().as_millis(),
                reply.body.len()
            );
        }
        Ok(reply)
    }

    /// Sends an API call: a 2xx answer's JSON (`None` when empty), or the
    /// server's error as [`CliError::Api`].
    pub async fn call(&self, call: Call) -> CliResult<Option<Value>> {
        let reply = self.send(call).await?;
        if reply.status.is_success() {
            return reply.json();
        }
        Err(self.api_error(&reply))
    }

    /// Turns a non-2xx answer into an error: the API's error JSON, or a
    /// transport error when the answer is not one.
    pub fn api_error(&self, reply: &Reply) -> CliError {
        let body: Value = match serde_json::from_slice(&reply.body) {
            Ok(v) => v,
            Err(_) => return garbage(reply.status, &reply.body),
        };
        let Some(code) = body
            .pointer("/error/code")
            .and_then(Value::as_str)
            .map(str::to_owned)
        else {
            return garbage(reply.status, &reply.body);
        };
        let mut message = body
            .pointer("/error/message")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        if reply.status == StatusCode::UNAUTHORIZED && code == "UNAUTHORIZED" {
            message.push_str(&match &self.token_source {
                None => " (no token found: pass --token-file or --token, set PLUGBOARD_TOKEN, \
                     or run where the host's plugboard-data/admin.token is)"
                    .to_owned(),
                Some(source) => format!(" (the token from {source} was refused)"),
            });
        }
        CliError::Api {
            status: reply.status.as_u16(),
            code,
            message,
            body,
        }
    }

    fn request(&self, call: Call, url: &url::Url) -> CliResult<http::Request<Body>> {
        let mut builder = http::Request::builder()
            .method(call.method)
            .uri(url.as_str())
            .header(
                "user-agent",
                concat!("plugboard-cli/", env!("CARGO_PKG_VERSION")),
            )
            .header("accept", "application/json");
        if call.auth
            && let Some(token) = &self.token
        {
            let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
                .map_err(|_| CliError::usage("the token cannot be sent in an HTTP header"))?;
            value.set_sensitive(true);
            builder = builder.header(AUTHORIZATION, value);
        }
        let body: Body = match call.payload {
            Payload::Empty => Empty::new().map_err(|e| match e {}).boxed(),
            Payload::Json(value) => {
                builder = builder.header(CONTENT_TYPE, "application/json");
                Full::new(Bytes::from(value.to_string()))
                    .map_err(|e| match e {})
                    .boxed()
            }
            Payload::Bytes(bytes) => Full::new(bytes).map_err(|e| match e {}).boxed(),
            Payload::Upload(upload) => {
                builder = builder
                    .header(CONTENT_TYPE, "application/wasm")
                    .header(CONTENT_LENGTH, upload.size());
                upload.boxed()
            }
        };
        if let Some(headers) = builder.headers_mut() {
            // Given headers replace the defaults above (a webhook's own
            // content type, say).
            for (name, value) in call.headers {
                headers.insert(name, value);
            }
        }
        builder
            .body(body)
            .map_err(|e| CliError::usage(format!("cannot build the request to {url}: {e}")))
    }
}

/// A transport error for an answer that is not the API's JSON.
fn garbage(status: StatusCode, body: &[u8]) -> CliError {
    let text = String::from_utf8_lossy(body);
    let excerpt: String = text.chars().take(200).collect();
    let excerpt = excerpt.trim();
    CliError::transport(if excerpt.is_empty() {
        format!("the server answered {status} without a JSON body: is this a Plugboard host?")
    } else {
        format!(
            "the server answered {status} with something that is not the API's JSON \
             (is this a Plugboard host?): {excerpt}"
        )
    })
}

/// A client error and its causes, innermost last (`connection refused`,
/// the TLS alert, …).
fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![error.to_string()];
    let mut source = error.source();
    while let Some(e) = source {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = e.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(server: &str) -> Api {
        Api::new(
            Connection {
                server: url::Url::parse(server).expect("url"),
                token: None,
                token_source: None,
            },
            Duration::from_secs(1),
            false,
        )
    }

    #[test]
    fn urls_encode_segments_and_keep_a_base_path() {
        let a = api("http://127.0.0.1:8080");
        let call = Call::get(&["connectors", "echo@0.1.0"]);
        assert_eq!(
            a.url(&call).as_str(),
            "http://127.0.0.1:8080/v1/connectors/echo@0.1.0"
        );
        let call = Call::get(&["events", "a/b c"]).query("since", "2026-01-01T00:00:00+01:00");
        assert_eq!(
            a.url(&call).as_str(),
            "http://127.0.0.1:8080/v1/events/a%2Fb%20c?since=2026-01-01T00%3A00%3A00%2B01%3A00"
        );
        let a = api("https://pb.example/base/");
        assert_eq!(
            a.url(&Call::get(&["instances"])).as_str(),
            "https://pb.example/base/v1/instances"
        );
    }

    #[test]
    fn error_answers_are_sorted() {
        let a = api("http://127.0.0.1:8080");
        let reply = |status: u16, body: &'static str| Reply {
            status: StatusCode::from_u16(status).expect("status"),
            headers: HeaderMap::new(),
            body: Bytes::from_static(body.as_bytes()),
        };
        let e = a.api_error(&reply(
            400,
            r#"{"status":"ERROR","error":{"code":"INVALID_PARAMS","message":"bad"}}"#,
        ));
        assert_eq!(
            (e.exit_code(), e.to_string()),
            (3, "INVALID_PARAMS: bad".into())
        );
        let e = a.api_error(&reply(
            401,
            r#"{"status":"ERROR","error":{"code":"UNAUTHORIZED","message":"no"}}"#,
        ));
        assert!(e.to_string().contains("no token found"), "{e}");
        let e = a.api_error(&reply(502, "<html>bad gateway</html>"));
        assert_eq!(e.exit_code(), 4);
        assert!(e.to_string().contains("bad gateway"), "{e}");
        assert_eq!(
            reply(200, "oops").json().expect_err("garbage").exit_code(),
            4
        );
        assert_eq!(reply(204, "").json().expect("empty"), None);
    }
}

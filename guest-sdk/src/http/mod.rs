//! A small blocking HTTP client over the raw `wasi:http` imports.
//!
//! It is written directly against the generated bindings rather than a crate
//! such as `wstd` or `waki` so that what the host says is what the connector
//! sees: a request the host's egress policy refuses surfaces as
//! [`HttpErrorKind::Transport`] with `ErrorCode::HttpRequestDenied`, and the
//! `?` conversion into [`crate::Error`] keeps that distinction (permanent)
//! apart from network trouble (temporary).
//!
//! ```no_run
//! use plugboard_guest::http::Request;
//! use std::time::Duration;
//!
//! # fn demo() -> plugboard_guest::Result<()> {
//! let created: serde_json::Value = Request::post("https://api.example.com/v1/tickets")
//!     .query("notify", "false")
//!     .header("accept", "application/json")
//!     .json(&serde_json::json!({ "subject": "Printer on fire" }))
//!     .timeout(Duration::from_secs(15))
//!     .send()?             // HttpError -> Error (denied: permanent, network: temporary)
//!     .error_for_status()? // 401/403, 404, 429, other >= 400 -> typed errors
//!     .json()?;
//! # let _ = created; Ok(()) }
//! ```
//!
//! Everything blocks the (single) guest thread; the host runs many instances
//! concurrently, so there is nothing to gain from async inside one call.

mod link;
mod pages;
mod status;
pub(crate) mod url;

use core::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Error;
use crate::bindings::wasi::http::outgoing_handler;
use crate::bindings::wasi::http::types::{
    self as wasi, Fields, IncomingBody, OutgoingBody, OutgoingRequest, RequestOptions,
};
use crate::bindings::wasi::io::streams::StreamError;

pub use link::{Link, parse_link_header};
pub use pages::{Page, follow_next_links};
pub use url::encode_component;

/// The `wasi:http` error code of a failed request (`HttpRequestDenied`,
/// `ConnectionRefused`, `DnsError`, …).
pub use crate::bindings::wasi::http::types::ErrorCode;

/// The decoded query parameter `name` of an absolute or relative URL, e.g.
/// the `page` of a `Link: <…?page=3>; rel="next"` target.
///
/// ```
/// use plugboard_guest::http::query_param;
/// let next = "https://api.github.com/repositories/1/issues?per_page=50&page=3";
/// assert_eq!(query_param(next, "page").as_deref(), Some("3"));
/// assert_eq!(query_param(next, "state"), None);
/// ```
pub fn query_param(url: &str, name: &str) -> Option<String> {
    let query = url.split('#').next()?.split_once('?')?.1;
    url::query_pairs(query)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// Default cap on a response body; see [`Request::max_response_bytes`].
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// `blocking-write-and-flush` accepts at most 4096 bytes per call.
const WRITE_CHUNK: usize = 4096;

/// Bytes asked for per body read; the host may return fewer.
const READ_CHUNK: u64 = 64 * 1024;

/// An outgoing HTTP request, built by chaining and sent with [`Request::send`].
#[derive(Debug, Clone)]
#[must_use = "a request does nothing until `.send()`"]
pub struct Request {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    query: Vec<(String, String)>,
    body: Option<Vec<u8>>,
    timeout: Option<Duration>,
    max_response_bytes: usize,
    /// A builder step that failed (e.g. JSON serialization); reported by `send`
    /// so the chain stays infallible.
    deferred: Option<HttpErrorKind>,
}

impl Request {
    /// A request with any method (upper-cased), e.g. `Request::new("OPTIONS", url)`.
    pub fn new(method: impl Into<String>, url: impl Into<String>) -> Self {
        Self {
            method: method.into().to_ascii_uppercase(),
            url: url.into(),
            headers: Vec::new(),
            query: Vec::new(),
            body: None,
            timeout: None,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            deferred: None,
        }
    }

    /// A `GET` request.
    pub fn get(url: impl Into<String>) -> Self {
        Self::new("GET", url)
    }

    /// A `POST` request.
    pub fn post(url: impl Into<String>) -> Self {
        Self::new("POST", url)
    }

    /// A `PUT` request.
    pub fn put(url: impl Into<String>) -> Self {
        Self::new("PUT", url)
    }

    /// A `PATCH` request.
    pub fn patch(url: impl Into<String>) -> Self {
        Self::new("PATCH", url)
    }

    /// A `DELETE` request.
    pub fn delete(url: impl Into<String>) -> Self {
        Self::new("DELETE", url)
    }

    /// A `HEAD` request.
    pub fn head(url: impl Into<String>) -> Self {
        Self::new("HEAD", url)
    }

    /// Adds a header (repeated names are sent repeatedly). The host refuses
    /// headers it owns, such as `host`; `send` then fails with
    /// [`HttpErrorKind::InvalidHeader`].
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Marks the request safe to send more than once (for example a `POST`
    /// the upstream deduplicates by a key in its body), so the host retries
    /// it on 429/502/503/504 and timeouts like a `GET`. `GET`, `HEAD`,
    /// `PUT`, `DELETE` and `OPTIONS` are idempotent already, and so is any
    /// request with an `Idempotency-Key` header.
    pub fn idempotent(self) -> Self {
        self.header(IDEMPOTENT_HEADER, "true")
    }

    /// Appends a query parameter, percent-encoding name and value.
    pub fn query(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.query.push((name.into(), value.into()));
        self
    }

    /// Sets a JSON body, and `content-type: application/json` unless a
    /// content type was already set.
    pub fn json<T: Serialize + ?Sized>(mut self, value: &T) -> Self {
        match serde_json::to_vec(value) {
            Ok(bytes) => {
                if self.header_value("content-type").is_none() {
                    self.headers
                        .push(("content-type".to_owned(), "application/json".to_owned()));
                }
                self.body = Some(bytes);
            }
            Err(e) => self.deferred = Some(HttpErrorKind::InvalidBody(e.to_string())),
        }
        self
    }

    /// Sets an `application/x-www-form-urlencoded` body from name/value
    /// pairs (percent-encoded), and that content type unless one was set.
    /// Slack's Web API and OAuth token endpoints take forms.
    pub fn form<K: AsRef<str>, V: AsRef<str>>(mut self, pairs: &[(K, V)]) -> Self {
        if self.header_value("content-type").is_none() {
            self.headers.push((
                "content-type".to_owned(),
                "application/x-www-form-urlencoded".to_owned(),
            ));
        }
        self.body = Some(url::encode_form(pairs).into_bytes());
        self
    }

    /// Sets a raw body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Some(body.into());
        self
    }

    /// Limits connecting, waiting for the first response byte, and each gap
    /// between body bytes to `timeout` (the three `wasi:http` request
    /// options). Without it the host's defaults apply; the host may also cap
    /// the whole invocation.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Caps the response body (default [`DEFAULT_MAX_RESPONSE_BYTES`]); a
    /// longer body fails with [`HttpErrorKind::BodyTooLarge`].
    pub fn max_response_bytes(mut self, limit: usize) -> Self {
        self.max_response_bytes = limit;
        self
    }

    fn header_value(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Sends the request and reads the whole response body.
    ///
    /// Any status counts as success here; use [`Response::error_for_status`]
    /// to turn 4xx/5xx into errors.
    pub fn send(self) -> Result<Response, HttpError> {
        let target = url::parse(&self.url);
        let shown_url = match &target {
            Ok(t) => t.display_without_query(),
            Err(_) => self
                .url
                .split(['?', '#'])
                .next()
                .unwrap_or_default()
                .to_owned(),
        };
        let fail = |kind| HttpError {
            method: self.method.clone(),
            url: shown_url.clone(),
            kind,
        };
        if let Some(kind) = self.deferred.clone() {
            return Err(fail(kind));
        }
        let mut target = target.map_err(|reason| fail(HttpErrorKind::InvalidUrl(reason)))?;
        url::append_query(&mut target.path_and_query, &self.query);
        self.transmit(&target).map_err(fail)
    }

    /// The `wasi:http` exchange proper.
    fn transmit(&self, target: &url::Target) -> Result<Response, HttpErrorKind> {
        let fields = Fields::new();
        for (name, value) in &self.headers {
            fields
                .append(name, value.as_bytes())
                .map_err(|e| HttpErrorKind::InvalidHeader {
                    name: name.clone(),
                    reason: header_error_reason(e).to_owned(),
                })?;
        }
        let request = OutgoingRequest::new(fields);
        request
            .set_method(&wasi_method(&self.method))
            .map_err(|()| {
                HttpErrorKind::InvalidRequest(format!("invalid method {:?}", self.method))
            })?;
        let scheme = match target.scheme.as_str() {
            "http" => wasi::Scheme::Http,
            "https" => wasi::Scheme::Https,
            other => wasi::Scheme::Other(other.to_owned()),
        };
        request.set_scheme(Some(&scheme)).map_err(|()| {
            HttpErrorKind::InvalidUrl(format!("unsupported scheme {:?}", target.scheme))
        })?;
        request
            .set_authority(Some(&target.authority))
            .map_err(|()| {
                HttpErrorKind::InvalidUrl(format!("invalid host {:?}", target.authority))
            })?;
        request
            .set_path_with_query(Some(&target.path_and_query))
            .map_err(|()| HttpErrorKind::InvalidUrl("invalid path or query".to_owned()))?;

        let options = self.timeout.map(|timeout| {
            let options = RequestOptions::new();
            let nanos = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
            // A host that does not support a timeout refuses to set it; the
            // host's own limits still apply then, so carry on.
            let _ = options.set_connect_timeout(Some(nanos));
            let _ = options.set_first_byte_timeout(Some(nanos));
            let _ = options.set_between_bytes_timeout(Some(nanos));
            options
        });

        let outgoing_body = request
            .body()
            .map_err(|()| HttpErrorKind::Stream("outgoing body already taken".to_owned()))?;
        // Hand the request over before writing the body: the host only drains
        // the body stream once the request is in flight, so writing a large
        // body first could wait forever.
        let future =
            outgoing_handler::handle(request, options).map_err(HttpErrorKind::Transport)?;
        let write_result = write_body(outgoing_body, self.body.as_deref().unwrap_or_default());

        let pollable = future.subscribe();
        pollable.block();
        drop(pollable);
        let incoming = match future.get() {
            Some(Ok(Ok(response))) => response,
            Some(Ok(Err(code))) => return Err(HttpErrorKind::Transport(code)),
            Some(Err(())) | None => {
                return Err(HttpErrorKind::Stream(
                    "response future was not ready".to_owned(),
                ));
            }
        };
        // If the upstream answered, its answer is more informative than a
        // body write that failed because it stopped reading (e.g. 413).
        let _ = write_result;

        let status = incoming.status();
        let headers = {
            let fields = incoming.headers();
            fields
                .entries()
                .into_iter()
                .map(|(name, value)| (name, String::from_utf8_lossy(&value).into_owned()))
                .collect()
        };
        let body = incoming
            .consume()
            .map_err(|()| HttpErrorKind::Stream("response body already taken".to_owned()))?;
        let body = read_body(body, self.max_response_bytes)?;
        Ok(Response {
            status,
            headers,
            body,
        })
    }
}

/// Writes `bytes` to the request body in chunks `blocking-write-and-flush`
/// accepts, then finishes the body.
fn write_body(body: OutgoingBody, bytes: &[u8]) -> Result<(), HttpErrorKind> {
    if !bytes.is_empty() {
        let stream = body
            .write()
            .map_err(|()| HttpErrorKind::Stream("request body stream already taken".to_owned()))?;
        for chunk in bytes.chunks(WRITE_CHUNK) {
            stream
                .blocking_write_and_flush(chunk)
                .map_err(stream_error)?;
        }
        // The stream is a child of the body and must go before `finish`.
        drop(stream);
    }
    OutgoingBody::finish(body, None).map_err(HttpErrorKind::Transport)
}

/// Reads a response body to the end, blocking on the stream's pollable, and
/// refuses to hold more than `limit` bytes.
fn read_body(body: IncomingBody, limit: usize) -> Result<Vec<u8>, HttpErrorKind> {
    let mut out = Vec::new();
    {
        let stream = body
            .stream()
            .map_err(|()| HttpErrorKind::Stream("response body stream already taken".to_owned()))?;
        let pollable = stream.subscribe();
        loop {
            match stream.read(READ_CHUNK) {
                Ok(chunk) if chunk.is_empty() => pollable.block(),
                Ok(chunk) => {
                    if out.len().saturating_add(chunk.len()) > limit {
                        return Err(HttpErrorKind::BodyTooLarge { limit });
                    }
                    out.extend_from_slice(&chunk);
                }
                Err(StreamError::Closed) => break,
                Err(e) => return Err(stream_error(e)),
            }
        }
        // `pollable` and `stream` drop here, before the body they belong to.
    }
    drop(IncomingBody::finish(body));
    Ok(out)
}

/// Prefers the `wasi:http` error code behind a stream error, when there is one.
fn stream_error(e: StreamError) -> HttpErrorKind {
    match e {
        StreamError::Closed => HttpErrorKind::Stream("stream closed early".to_owned()),
        StreamError::LastOperationFailed(io) => match wasi::http_error_code(&io) {
            Some(code) => HttpErrorKind::Transport(code),
            None => HttpErrorKind::Stream(io.to_debug_string()),
        },
    }
}

fn wasi_method(method: &str) -> wasi::Method {
    match method {
        "GET" => wasi::Method::Get,
        "HEAD" => wasi::Method::Head,
        "POST" => wasi::Method::Post,
        "PUT" => wasi::Method::Put,
        "DELETE" => wasi::Method::Delete,
        "CONNECT" => wasi::Method::Connect,
        "OPTIONS" => wasi::Method::Options,
        "TRACE" => wasi::Method::Trace,
        "PATCH" => wasi::Method::Patch,
        other => wasi::Method::Other(other.to_owned()),
    }
}

fn header_error_reason(e: wasi::HeaderError) -> &'static str {
    match e {
        wasi::HeaderError::InvalidSyntax => "invalid header name or value",
        wasi::HeaderError::Forbidden => "header is forbidden by the host",
        wasi::HeaderError::Immutable => "headers are immutable",
    }
}

/// An HTTP response with its whole body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers in order, names lower-case as the host delivers them; values
    /// that are not UTF-8 are decoded lossily.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

/// The header [`Request::idempotent`] sets; the host strips it before
/// sending.
pub const IDEMPOTENT_HEADER: &str = "plugboard-idempotent";

impl Response {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// Whether the content type is JSON (`application/json`, `…+json`).
    pub fn is_json(&self) -> bool {
        self.header("content-type").is_some_and(|ct| {
            let essence = ct.split(';').next().unwrap_or_default().trim();
            essence.eq_ignore_ascii_case("application/json")
                || essence.to_ascii_lowercase().ends_with("+json")
        })
    }

    /// The body parsed as JSON. A body that does not parse is the upstream's
    /// fault, so this is [`Error::Upstream`] with the response status.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_slice(&self.body).map_err(|e| {
            Error::upstream(
                self.status,
                format!("upstream body is not the expected JSON: {e}"),
            )
        })
    }

    /// The body as text, with invalid UTF-8 replaced.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Every link of the response's `Link` headers (RFC 8288).
    pub fn links(&self) -> Vec<Link> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("link"))
            .flat_map(|(_, v)| parse_link_header(v))
            .collect()
    }

    /// The URL of the `Link` with relation `rel`, e.g. `next` for the
    /// following page of a GitHub or Freshdesk listing.
    pub fn link(&self, rel: &str) -> Option<String> {
        self.links()
            .into_iter()
            .find(|l| l.has_rel(rel))
            .map(|l| l.url)
    }

    /// Passes 1xx–3xx responses through and turns the rest into errors:
    /// 401/403 → `unauthorized`, 404 → `not-found`, 429 → `rate-limited`
    /// (with `Retry-After`), any other status ≥ 400 → `upstream` with the
    /// status and a short excerpt of the body.
    ///
    /// A 403 that carries `Retry-After`, or `X-RateLimit-Remaining: 0`, is a
    /// rate limit rather than refused credentials (GitHub's primary and
    /// secondary limits): `rate-limited`, waiting for `Retry-After` or
    /// until `X-RateLimit-Reset`.
    pub fn error_for_status(self) -> Result<Self, Error> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let hints = status::RateHints {
            retry_after: self.header("retry-after"),
            remaining: self.header("x-ratelimit-remaining"),
            reset: self.header("x-ratelimit-reset"),
        };
        match status::status_error(self.status, &hints, &self.body, now) {
            Some(e) => Err(e),
            None => Ok(self),
        }
    }
}

/// Why a request produced no response.
#[derive(Debug, Clone)]
pub struct HttpError {
    method: String,
    /// Scheme, authority and path only: short, and without query values.
    url: String,
    kind: HttpErrorKind,
}

/// The cause of an [`HttpError`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum HttpErrorKind {
    /// The URL could not be used (relative, bad scheme, user info, …).
    InvalidUrl(String),
    /// The host refused a header.
    InvalidHeader {
        /// Header name.
        name: String,
        /// What was wrong.
        reason: String,
    },
    /// The request could not be built (e.g. an invalid method).
    InvalidRequest(String),
    /// The body could not be produced (e.g. JSON serialization failed).
    InvalidBody(String),
    /// The host or the network failed the request; the code says how.
    Transport(ErrorCode),
    /// A stream failed without an HTTP error code.
    Stream(String),
    /// The response body exceeded the limit.
    BodyTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
}

impl HttpError {
    /// The cause.
    pub fn kind(&self) -> &HttpErrorKind {
        &self.kind
    }

    /// The `wasi:http` error code, when the host or network failed the request.
    pub fn code(&self) -> Option<&ErrorCode> {
        match &self.kind {
            HttpErrorKind::Transport(code) => Some(code),
            _ => None,
        }
    }

    /// Whether the host's egress policy refused the request.
    pub fn is_denied(&self) -> bool {
        matches!(self.code(), Some(ErrorCode::HttpRequestDenied))
    }

    /// The request method.
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The request URL without query and fragment.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.method, self.url, self.kind)
    }
}

impl fmt::Display for HttpErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidUrl(r) => write!(f, "invalid URL: {r}"),
            Self::InvalidHeader { name, reason } => write!(f, "header {name:?}: {reason}"),
            Self::InvalidRequest(r) => write!(f, "invalid request: {r}"),
            Self::InvalidBody(r) => write!(f, "invalid request body: {r}"),
            Self::Transport(code) => f.write_str(&describe_code(code)),
            Self::Stream(r) => write!(f, "I/O error: {r}"),
            Self::BodyTooLarge { limit } => {
                write!(f, "response body larger than the {limit}-byte limit")
            }
        }
    }
}

impl std::error::Error for HttpError {}

/// Denied requests are permanent (retrying cannot change the policy);
/// network trouble and timeouts are temporary; mistakes in the request itself
/// are permanent.
impl From<HttpError> for Error {
    fn from(e: HttpError) -> Self {
        match &e.kind {
            HttpErrorKind::Transport(ErrorCode::HttpRequestDenied) => Error::permanent(format!(
                "request denied by the host's egress policy: {} {}",
                e.method, e.url
            )),
            HttpErrorKind::Transport(code) if is_temporary(code) => Error::temporary(e.to_string()),
            HttpErrorKind::Stream(_) => Error::temporary(e.to_string()),
            _ => Error::permanent(e.to_string()),
        }
    }
}

/// Whether a failure with `code` may go away by itself.
fn is_temporary(code: &ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::DnsTimeout
            | ErrorCode::DnsError(_)
            | ErrorCode::DestinationNotFound
            | ErrorCode::DestinationUnavailable
            | ErrorCode::ConnectionRefused
            | ErrorCode::ConnectionTerminated
            | ErrorCode::ConnectionTimeout
            | ErrorCode::ConnectionReadTimeout
            | ErrorCode::ConnectionWriteTimeout
            | ErrorCode::ConnectionLimitReached
            | ErrorCode::TlsAlertReceived(_)
            | ErrorCode::HttpResponseIncomplete
            | ErrorCode::HttpResponseTimeout
            | ErrorCode::HttpProtocolError
            | ErrorCode::InternalError(_)
    )
}

/// A human-readable sentence for a `wasi:http` error code.
fn describe_code(code: &ErrorCode) -> String {
    let opt = |s: &Option<String>| s.as_deref().map(|s| format!(": {s}")).unwrap_or_default();
    match code {
        ErrorCode::DnsTimeout => "DNS lookup timed out".to_owned(),
        ErrorCode::DnsError(p) => {
            let info = p
                .info_code
                .map(|c| format!(" (info code {c})"))
                .unwrap_or_default();
            format!("DNS lookup failed{}{info}", opt(&p.rcode))
        }
        ErrorCode::DestinationNotFound => "destination not found".to_owned(),
        ErrorCode::DestinationUnavailable => "destination unavailable".to_owned(),
        ErrorCode::DestinationIpProhibited => "destination IP address prohibited".to_owned(),
        ErrorCode::DestinationIpUnroutable => "destination IP address unroutable".to_owned(),
        ErrorCode::ConnectionRefused => "connection refused".to_owned(),
        ErrorCode::ConnectionTerminated => "connection terminated".to_owned(),
        ErrorCode::ConnectionTimeout => "connection timed out".to_owned(),
        ErrorCode::ConnectionReadTimeout => "timed out reading from the connection".to_owned(),
        ErrorCode::ConnectionWriteTimeout => "timed out writing to the connection".to_owned(),
        ErrorCode::ConnectionLimitReached => "connection limit reached".to_owned(),
        ErrorCode::TlsProtocolError => "TLS protocol error".to_owned(),
        ErrorCode::TlsCertificateError => "TLS certificate error".to_owned(),
        ErrorCode::TlsAlertReceived(p) => format!("TLS alert received{}", opt(&p.alert_message)),
        ErrorCode::HttpRequestDenied => "request denied by the host".to_owned(),
        ErrorCode::HttpRequestLengthRequired => "request length required".to_owned(),
        ErrorCode::HttpRequestBodySize(_) => "request body too large".to_owned(),
        ErrorCode::HttpRequestMethodInvalid => "invalid request method".to_owned(),
        ErrorCode::HttpRequestUriInvalid => "invalid request URI".to_owned(),
        ErrorCode::HttpRequestUriTooLong => "request URI too long".to_owned(),
        ErrorCode::HttpRequestHeaderSectionSize(_) | ErrorCode::HttpRequestHeaderSize(_) => {
            "request headers too large".to_owned()
        }
        ErrorCode::HttpRequestTrailerSectionSize(_) | ErrorCode::HttpRequestTrailerSize(_) => {
            "request trailers too large".to_owned()
        }
        ErrorCode::HttpResponseIncomplete => "response incomplete".to_owned(),
        ErrorCode::HttpResponseHeaderSectionSize(_) | ErrorCode::HttpResponseHeaderSize(_) => {
            "response headers too large".to_owned()
        }
        ErrorCode::HttpResponseBodySize(_) => "response body too large for the host".to_owned(),
        ErrorCode::HttpResponseTrailerSectionSize(_) | ErrorCode::HttpResponseTrailerSize(_) => {
            "response trailers too large".to_owned()
        }
        ErrorCode::HttpResponseTransferCoding(c) => {
            format!("unsupported transfer coding{}", opt(c))
        }
        ErrorCode::HttpResponseContentCoding(c) => format!("unsupported content coding{}", opt(c)),
        ErrorCode::HttpResponseTimeout => "timed out waiting for the response".to_owned(),
        ErrorCode::HttpUpgradeFailed => "HTTP upgrade failed".to_owned(),
        ErrorCode::HttpProtocolError => "HTTP protocol error".to_owned(),
        ErrorCode::LoopDetected => "loop detected".to_owned(),
        ErrorCode::ConfigurationError => "HTTP configuration error in the host".to_owned(),
        ErrorCode::InternalError(m) => format!("internal error in the host{}", opt(m)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(kind: HttpErrorKind) -> Error {
        HttpError {
            method: "GET".into(),
            url: "https://api.example.com/v1".into(),
            kind,
        }
        .into()
    }

    #[test]
    fn denied_requests_are_permanent_and_say_so() {
        let e = err(HttpErrorKind::Transport(ErrorCode::HttpRequestDenied));
        assert_eq!(
            e,
            Error::permanent(
                "request denied by the host's egress policy: GET https://api.example.com/v1"
            )
        );
    }

    #[test]
    fn network_trouble_is_temporary() {
        for code in [
            ErrorCode::ConnectionRefused,
            ErrorCode::ConnectionTimeout,
            ErrorCode::HttpResponseTimeout,
            ErrorCode::DnsTimeout,
            ErrorCode::DnsError(wasi::DnsErrorPayload {
                rcode: Some("NXDOMAIN".into()),
                info_code: None,
            }),
        ] {
            let e = err(HttpErrorKind::Transport(code));
            assert_eq!(e.kind(), "temporary", "{e}");
            assert!(
                e.message().starts_with("GET https://api.example.com/v1: "),
                "{e}"
            );
        }
        let e = err(HttpErrorKind::Transport(ErrorCode::ConnectionRefused));
        assert_eq!(
            e.message(),
            "GET https://api.example.com/v1: connection refused"
        );
    }

    #[test]
    fn request_mistakes_are_permanent() {
        for kind in [
            HttpErrorKind::InvalidUrl("x".into()),
            HttpErrorKind::InvalidHeader {
                name: "host".into(),
                reason: "forbidden".into(),
            },
            HttpErrorKind::BodyTooLarge { limit: 1 },
            HttpErrorKind::Transport(ErrorCode::DestinationIpProhibited),
            HttpErrorKind::Transport(ErrorCode::TlsCertificateError),
        ] {
            assert_eq!(err(kind).kind(), "permanent");
        }
    }

    #[test]
    fn builder_collects_parts() {
        let r = Request::post("https://x.test/a")
            .header("X-A", "1")
            .query("q", "a b")
            .json(&serde_json::json!({"k": 1}))
            .timeout(Duration::from_secs(3));
        assert_eq!(r.method, "POST");
        assert_eq!(r.header_value("content-type"), Some("application/json"));
        assert_eq!(r.body.as_deref(), Some(&br#"{"k":1}"#[..]));
        assert_eq!(r.timeout, Some(Duration::from_secs(3)));

        let r = Request::put("https://x.test/a")
            .header("Content-Type", "application/merge-patch+json")
            .json(&1);
        assert_eq!(r.headers.len(), 1);

        let r = Request::post("https://x.test/a").form(&[("name", "a b"), ("users", "U1,U2")]);
        assert_eq!(
            r.header_value("content-type"),
            Some("application/x-www-form-urlencoded")
        );
        assert_eq!(r.body.as_deref(), Some(&b"name=a%20b&users=U1%2CU2"[..]));
    }

    #[test]
    fn links_and_rate_limited_403s() {
        let r = Response {
            status: 403,
            headers: vec![
                (
                    "link".into(),
                    "<https://x.test/i?page=2>; rel=\"next\"".into(),
                ),
                ("retry-after".into(), "60".into()),
            ],
            body: br#"{"message":"You have exceeded a secondary rate limit"}"#.to_vec(),
        };
        assert_eq!(r.link("next").as_deref(), Some("https://x.test/i?page=2"));
        assert_eq!(r.link("last"), None);
        assert_eq!(
            r.error_for_status(),
            Err(Error::rate_limited(
                "upstream rate limit exceeded (403 Forbidden): You have exceeded a secondary rate limit",
                Some(60)
            ))
        );
    }

    #[test]
    fn response_helpers() {
        let r = Response {
            status: 429,
            headers: vec![
                (
                    "content-type".into(),
                    "application/problem+json; charset=utf-8".into(),
                ),
                ("retry-after".into(), "7".into()),
            ],
            body: br#"{"detail":"slow down"}"#.to_vec(),
        };
        assert!(r.is_json());
        assert!(!r.is_success());
        assert_eq!(r.header("Retry-After"), Some("7"));
        assert_eq!(
            r.clone().error_for_status(),
            Err(Error::rate_limited(
                "upstream rate limit exceeded (429 Too Many Requests): slow down",
                Some(7)
            ))
        );
        let bad = Response {
            status: 200,
            headers: vec![],
            body: b"nope".to_vec(),
        };
        assert_eq!(
            bad.json::<serde_json::Value>().map_err(|e| e.kind()),
            Err("upstream")
        );
        assert!(bad.clone().error_for_status().is_ok());
    }
}

//! Calling the Tasks API: the configured base URL, the headers every request
//! carries, and the upstream's answers turned into connector errors.
//!
//! The error mapping is the table of `docs/authoring/tasks-example.md`, not
//! the SDK's generic `Response::error_for_status`: the spec wants 400/422 as
//! `invalid-input`, 5xx as `temporary`, the message from the body's `error`
//! field, and a request the host refused as `temporary("request failed:
//! HttpRequestDenied")` (the host reports that one as `HOST_DENIED` anyway).
//! Everything that decides is a plain function over status, headers and
//! bytes, so the unit tests below run natively.

use std::time::Duration;

use plugboard_guest::http::{self, ErrorCode, HttpError, HttpErrorKind, Request, Response};
use plugboard_guest::prelude::*;
use plugboard_guest::serde::de::DeserializeOwned;
use plugboard_guest::serde_json;

/// The base URL when the instance config has no `api_base`.
pub const DEFAULT_API_BASE: &str = "https://tasks.example.com/api";

/// Limit on connecting and on each wait for upstream bytes. The host caps
/// the whole invocation too; this keeps one stalled request from using all
/// of it.
const TIMEOUT: Duration = Duration::from_secs(30);

/// The serde default of the config's `api_base` (also the schema's `default`).
pub fn default_api_base() -> String {
    DEFAULT_API_BASE.to_owned()
}

/// A task, reduced to the fields the connector returns: whatever else the
/// upstream sends is dropped by deserializing into this type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Task {
    pub id: String,
    pub title: String,
    pub done: bool,
}

/// `path` (starting with `/`) under the configured base URL.
pub fn url(path: &str) -> Result<String> {
    Ok(format!("{}{path}", base()?))
}

/// The configured `api_base` (the host returns it as JSON text; the SDK
/// parses it), or the default, without one trailing `/`.
fn base() -> Result<String> {
    let configured = config::get_as::<String>("api_base")?;
    Ok(strip_one_slash(configured.unwrap_or_else(default_api_base)))
}

fn strip_one_slash(mut base: String) -> String {
    if base.ends_with('/') {
        base.pop();
    }
    base
}

/// `value` (the parameter `name`) percent-encoded as one path segment:
/// `/`, `?`, `#`, `%`, spaces and everything else outside RFC 3986's
/// unreserved characters are escaped.
///
/// `.` and `..` are refused: they would be dot-segments, which servers and
/// proxies resolve (`/tasks/..` is `/`, and many decode `%2E%2E` first), so
/// no encoding reliably keeps them one segment. The JavaScript example,
/// whose `fetch` removes them even percent-encoded, refuses them the same way.
pub fn segment(name: &str, value: &str) -> Result<String> {
    if value == "." || value == ".." {
        return Err(Error::invalid_input(format!(
            "{name} must not be `.` or `..`"
        )));
    }
    Ok(http::encode_component(value))
}

/// Sends `request` with `accept: application/json` and the timeout, and
/// returns the response if it is a 2xx; every other outcome is the error
/// the spec's table names.
pub fn send(request: Request) -> Result<Response> {
    let response = request
        .header("accept", "application/json")
        .timeout(TIMEOUT)
        .send()
        .map_err(request_failed)?;
    if is_success(response.status) {
        Ok(response)
    } else {
        Err(status_error(
            response.status,
            response.header("retry-after"),
            &response.body,
        ))
    }
}

fn is_success(status: u16) -> bool {
    (200..300).contains(&status)
}

/// A 2xx body as a [`Task`].
pub fn task(response: &Response) -> Result<Task> {
    object_body(response.status, &response.body)
}

/// The `name` of a `/me` answer.
pub fn name(response: &Response) -> Result<String> {
    #[derive(Deserialize)]
    struct Me {
        name: String,
    }
    object_body::<Me>(response.status, &response.body).map(|me| me.name)
}

/// A 2xx body that must be a JSON object of shape `T`; anything else is
/// `upstream({status, "unexpected response body"})`.
fn object_body<T: DeserializeOwned>(status: u16, body: &[u8]) -> Result<T> {
    let unexpected = || Error::upstream(status, "unexpected response body");
    // Through `Value` first: serde would also accept a JSON *array* for a
    // struct (fields by position), and the spec wants an object.
    let value: Value = serde_json::from_slice(body).map_err(|_| unexpected())?;
    if !value.is_object() {
        return Err(unexpected());
    }
    serde_json::from_value(value).map_err(|_| unexpected())
}

/// The error for a non-2xx answer: `status`, its `Retry-After` header and body.
pub fn status_error(status: u16, retry_after: Option<&str>, body: &[u8]) -> Error {
    let message = error_message(status, body);
    match status {
        400 | 422 => Error::invalid_input(message),
        401 | 403 => Error::unauthorized(message),
        404 => Error::not_found(message),
        429 => Error::rate_limited(message, retry_after.and_then(retry_after_secs)),
        500..=599 => Error::temporary(message),
        _ => Error::upstream(status, message),
    }
}

/// The body's string field `error` when the body is a JSON object that has
/// one, else `HTTP <status>`.
pub fn error_message(status: u16, body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| format!("HTTP {status}"))
}

/// `Retry-After` as whole seconds. Only the delay-seconds form counts (the
/// spec asks for integer seconds); huge values saturate.
pub fn retry_after_secs(value: &str) -> Option<u32> {
    let value = value.trim();
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs = value.parse::<u64>().unwrap_or(u64::MAX);
    Some(u32::try_from(secs).unwrap_or(u32::MAX))
}

/// A request that produced no response: `temporary("request failed: …")`.
fn request_failed(e: HttpError) -> Error {
    Error::temporary(format!("request failed: {}", failure_reason(e.kind())))
}

/// The `wasi:http` error code's name when the host or network failed the
/// request (`HttpRequestDenied`, `ConnectionRefused`, …), else what the SDK
/// says went wrong (e.g. an `api_base` that is not an absolute URL).
pub fn failure_reason(kind: &HttpErrorKind) -> String {
    match kind {
        HttpErrorKind::Transport(code) => code_name(code).to_owned(),
        other => other.to_string(),
    }
}

/// The name of a `wasi:http` `error-code` case, in the spelling the four
/// example connectors share (the Rust variant name).
pub fn code_name(code: &ErrorCode) -> &'static str {
    match code {
        ErrorCode::DnsTimeout => "DnsTimeout",
        ErrorCode::DnsError(_) => "DnsError",
        ErrorCode::DestinationNotFound => "DestinationNotFound",
        ErrorCode::DestinationUnavailable => "DestinationUnavailable",
        ErrorCode::DestinationIpProhibited => "DestinationIpProhibited",
        ErrorCode::DestinationIpUnroutable => "DestinationIpUnroutable",
        ErrorCode::ConnectionRefused => "ConnectionRefused",
        ErrorCode::ConnectionTerminated => "ConnectionTerminated",
        ErrorCode::ConnectionTimeout => "ConnectionTimeout",
        ErrorCode::ConnectionReadTimeout => "ConnectionReadTimeout",
        ErrorCode::ConnectionWriteTimeout => "ConnectionWriteTimeout",
        ErrorCode::ConnectionLimitReached => "ConnectionLimitReached",
        ErrorCode::TlsProtocolError => "TlsProtocolError",
        ErrorCode::TlsCertificateError => "TlsCertificateError",
        ErrorCode::TlsAlertReceived(_) => "TlsAlertReceived",
        ErrorCode::HttpRequestDenied => "HttpRequestDenied",
        ErrorCode::HttpRequestLengthRequired => "HttpRequestLengthRequired",
        ErrorCode::HttpRequestBodySize(_) => "HttpRequestBodySize",
        ErrorCode::HttpRequestMethodInvalid => "HttpRequestMethodInvalid",
        ErrorCode::HttpRequestUriInvalid => "HttpRequestUriInvalid",
        ErrorCode::HttpRequestUriTooLong => "HttpRequestUriTooLong",
        ErrorCode::HttpRequestHeaderSectionSize(_) => "HttpRequestHeaderSectionSize",
        ErrorCode::HttpRequestHeaderSize(_) => "HttpRequestHeaderSize",
        ErrorCode::HttpRequestTrailerSectionSize(_) => "HttpRequestTrailerSectionSize",
        ErrorCode::HttpRequestTrailerSize(_) => "HttpRequestTrailerSize",
        ErrorCode::HttpResponseIncomplete => "HttpResponseIncomplete",
        ErrorCode::HttpResponseHeaderSectionSize(_) => "HttpResponseHeaderSectionSize",
        ErrorCode::HttpResponseHeaderSize(_) => "HttpResponseHeaderSize",
        ErrorCode::HttpResponseBodySize(_) => "HttpResponseBodySize",
        ErrorCode::HttpResponseTrailerSectionSize(_) => "HttpResponseTrailerSectionSize",
        ErrorCode::HttpResponseTrailerSize(_) => "HttpResponseTrailerSize",
        ErrorCode::HttpResponseTransferCoding(_) => "HttpResponseTransferCoding",
        ErrorCode::HttpResponseContentCoding(_) => "HttpResponseContentCoding",
        ErrorCode::HttpResponseTimeout => "HttpResponseTimeout",
        ErrorCode::HttpUpgradeFailed => "HttpUpgradeFailed",
        ErrorCode::HttpProtocolError => "HttpProtocolError",
        ErrorCode::LoopDetected => "LoopDetected",
        ErrorCode::ConfigurationError => "ConfigurationError",
        ErrorCode::InternalError(_) => "InternalError",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(status: u16, retry_after: Option<&str>, body: &str) -> Error {
        status_error(status, retry_after, body.as_bytes())
    }

    #[test]
    fn statuses_map_as_the_spec_says() {
        let body = r#"{"error":"title is required"}"#;
        assert_eq!(
            err(400, None, body),
            Error::invalid_input("title is required")
        );
        assert_eq!(
            err(422, None, body),
            Error::invalid_input("title is required")
        );
        assert_eq!(err(401, None, "{}"), Error::unauthorized("HTTP 401"));
        assert_eq!(err(403, None, ""), Error::unauthorized("HTTP 403"));
        assert_eq!(
            err(404, None, r#"{"error":"no such task"}"#),
            Error::not_found("no such task")
        );
        assert_eq!(
            err(429, Some("120"), r#"{"error":"slow down"}"#),
            Error::rate_limited("slow down", Some(120))
        );
        assert_eq!(err(429, None, ""), Error::rate_limited("HTTP 429", None));
        assert_eq!(err(500, None, "oops"), Error::temporary("HTTP 500"));
        assert_eq!(
            err(503, None, r#"{"error":"down"}"#),
            Error::temporary("down")
        );
        assert_eq!(err(599, None, ""), Error::temporary("HTTP 599"));
        assert_eq!(
            err(409, None, r#"{"error":"x"}"#),
            Error::upstream(409, "x")
        );
        assert_eq!(err(302, None, ""), Error::upstream(302, "HTTP 302"));
        assert_eq!(err(418, None, ""), Error::upstream(418, "HTTP 418"));
    }

    #[test]
    fn messages_come_from_a_string_error_field_only() {
        assert_eq!(error_message(400, br#"{"error":"bad"}"#), "bad");
        assert_eq!(error_message(400, br#"{"error":{"code":1}}"#), "HTTP 400");
        assert_eq!(error_message(400, br#"{"message":"bad"}"#), "HTTP 400");
        assert_eq!(error_message(400, br#"["error"]"#), "HTTP 400");
        assert_eq!(error_message(502, b"<html>bad gateway</html>"), "HTTP 502");
    }

    #[test]
    fn retry_after_is_integer_seconds() {
        assert_eq!(retry_after_secs("120"), Some(120));
        assert_eq!(retry_after_secs(" 7 "), Some(7));
        assert_eq!(retry_after_secs("0"), Some(0));
        assert_eq!(retry_after_secs("99999999999999999999999"), Some(u32::MAX));
        assert_eq!(retry_after_secs("-1"), None);
        assert_eq!(retry_after_secs("1.5"), None);
        assert_eq!(retry_after_secs(""), None);
        assert_eq!(retry_after_secs("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }

    #[test]
    fn success_bodies_are_checked_and_reduced() {
        let ok: Task = object_body(
            200,
            br#"{"id":"42","title":"Write docs","done":false,"owner":"ann"}"#,
        )
        .expect("a task");
        assert_eq!(
            ok,
            Task {
                id: "42".into(),
                title: "Write docs".into(),
                done: false
            }
        );
        let unexpected = |status, body: &str| {
            assert_eq!(
                object_body::<Task>(status, body.as_bytes()),
                Err(Error::upstream(status, "unexpected response body")),
                "{body}"
            );
        };
        unexpected(200, "");
        unexpected(200, "not json");
        unexpected(201, r#"["42","Write docs",false]"#);
        unexpected(200, r#"{"id":42,"title":"t","done":false}"#);
        unexpected(200, r#"{"id":"42","title":"t","done":"no"}"#);
        unexpected(200, r#"{"id":"42","done":true}"#);
        unexpected(200, "null");
    }

    #[test]
    fn request_failures_name_the_wasi_http_code() {
        assert_eq!(
            failure_reason(&HttpErrorKind::Transport(ErrorCode::HttpRequestDenied)),
            "HttpRequestDenied"
        );
        assert_eq!(
            failure_reason(&HttpErrorKind::Transport(ErrorCode::ConnectionRefused)),
            "ConnectionRefused"
        );
        assert_eq!(
            failure_reason(&HttpErrorKind::Transport(ErrorCode::InternalError(Some(
                "boom".into()
            )))),
            "InternalError"
        );
        assert!(
            failure_reason(&HttpErrorKind::InvalidUrl("relative URL".into()))
                .contains("relative URL")
        );
    }

    #[test]
    fn base_urls_lose_one_trailing_slash() {
        assert_eq!(
            strip_one_slash("http://127.0.0.1:9/api/".into()),
            "http://127.0.0.1:9/api"
        );
        assert_eq!(
            strip_one_slash("http://127.0.0.1:9/api//".into()),
            "http://127.0.0.1:9/api/"
        );
        assert_eq!(strip_one_slash(DEFAULT_API_BASE.into()), DEFAULT_API_BASE);
    }

    #[test]
    fn ids_are_one_path_segment() {
        assert_eq!(segment("id", "42"), Ok("42".to_owned()));
        assert_eq!(
            segment("id", "a/b c?d#e%"),
            Ok("a%2Fb%20c%3Fd%23e%25".to_owned())
        );
        assert_eq!(segment("id", "v1.2"), Ok("v1.2".to_owned()));
        assert_eq!(segment("id", "..."), Ok("...".to_owned()));
        for dots in [".", ".."] {
            assert_eq!(
                segment("id", dots),
                Err(Error::invalid_input("id must not be `.` or `..`"))
            );
        }
    }
}

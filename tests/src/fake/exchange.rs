//! Scripted exchanges: which requests an [`Exchange`] answers (method, path,
//! query, headers, JSON or form body fields) and the [`Reply`] it sends
//! (status, headers, body, delay), plus how often it may be used.
//!
//! Matching is a pure function of a [`Recorded`] request, so it is
//! unit-tested without a server.

use std::time::Duration;

use serde_json::Value;

use super::recorded::Recorded;

/// What a fake upstream sends back for a matched request.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Headers, in order. Values may contain `{{base_url}}`, replaced by the
    /// fake's own URL when served (for `Link` headers and upload URLs).
    pub headers: Vec<(String, String)>,
    /// Body bytes; `{{base_url}}` is replaced the same way.
    pub body: Vec<u8>,
    /// How long to wait before sending the response headers (a slow upstream).
    pub delay: Option<Duration>,
}

impl Reply {
    /// An empty reply with `status`.
    pub fn status(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            delay: None,
        }
    }

    /// A JSON reply (`content-type: application/json; charset=utf-8`).
    pub fn json(status: u16, body: Value) -> Self {
        Self::status(status)
            .header("content-type", "application/json; charset=utf-8")
            .body(body.to_string())
    }

    /// A plain-text reply.
    pub fn text(status: u16, body: impl Into<String>) -> Self {
        Self::status(status)
            .header("content-type", "text/plain; charset=utf-8")
            .body(body.into())
    }

    /// `429 Too Many Requests` with `Retry-After: <secs>` and a JSON message,
    /// the way most APIs signal a rate limit.
    pub fn rate_limited(retry_after_secs: u32) -> Self {
        Self::json(
            429,
            serde_json::json!({ "message": "You have exceeded the rate limit" }),
        )
        .header("retry-after", retry_after_secs.to_string())
    }

    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Waits `delay` before answering.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }
}

/// How a path is matched.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PathMatch {
    /// Any path.
    Any,
    /// Segment by segment; a `*` segment matches any one segment.
    Segments(Vec<String>),
}

impl PathMatch {
    fn parse(pattern: &str) -> Self {
        Self::Segments(pattern.split('/').map(str::to_owned).collect())
    }

    fn matches(&self, path: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Segments(want) => {
                let got: Vec<&str> = path.split('/').collect();
                got.len() == want.len() && want.iter().zip(&got).all(|(w, g)| w == "*" || w == g)
            }
        }
    }
}

/// One condition on the request body.
#[derive(Debug, Clone, PartialEq)]
enum BodyMatch {
    /// The JSON body equals this value.
    Json(Value),
    /// The JSON value at a JSON Pointer (`/ticket/priority`) equals this.
    JsonField(String, Value),
    /// The form-encoded body has this field with this value.
    FormField(String, String),
    /// The raw body equals these bytes.
    Raw(Vec<u8>),
}

impl BodyMatch {
    fn matches(&self, r: &Recorded) -> bool {
        match self {
            Self::Json(want) => r.json().as_ref() == Some(want),
            Self::JsonField(pointer, want) => {
                r.json().as_ref().and_then(|v| v.pointer(pointer)) == Some(want)
            }
            Self::FormField(name, want) => r.form_field(name).as_deref() == Some(want.as_str()),
            Self::Raw(want) => &r.body == want,
        }
    }
}

/// A request pattern and the reply to it.
///
/// Built with chained calls:
///
/// ```
/// use plugboard_tests::fake::{Exchange, Reply};
/// use serde_json::json;
///
/// let e = Exchange::post("/api/chat.postMessage")
///     .header("authorization", "Bearer xoxb-test")
///     .json_field("/channel", json!("C123"))
///     .reply(Reply::json(200, json!({"ok": true, "ts": "1.2"})))
///     .once();
/// assert_eq!(e.label(), "POST /api/chat.postMessage");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Exchange {
    label: String,
    method: Option<String>,
    path: PathMatch,
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    body: Vec<BodyMatch>,
    pub(crate) reply: Reply,
    /// Uses left; `None` for unlimited.
    pub(crate) times: Option<u32>,
}

impl Exchange {
    /// An exchange for `method` (any case) and `path` (`*` matches one
    /// segment), answering `200` with an empty body until told otherwise.
    pub fn new(method: &str, path: &str) -> Self {
        Self {
            label: format!("{} {path}", method.to_ascii_uppercase()),
            method: Some(method.to_ascii_uppercase()),
            path: PathMatch::parse(path),
            query: Vec::new(),
            headers: Vec::new(),
            body: Vec::new(),
            reply: Reply::status(200),
            times: None,
        }
    }

    /// Any request at all (a catch-all, e.g. for a failing upstream).
    pub fn any() -> Self {
        Self {
            label: "any request".to_owned(),
            method: None,
            path: PathMatch::Any,
            ..Self::new("GET", "/")
        }
    }

    /// `GET path`.
    pub fn get(path: &str) -> Self {
        Self::new("GET", path)
    }

    /// `POST path`.
    pub fn post(path: &str) -> Self {
        Self::new("POST", path)
    }

    /// `PUT path`.
    pub fn put(path: &str) -> Self {
        Self::new("PUT", path)
    }

    /// `PATCH path`.
    pub fn patch(path: &str) -> Self {
        Self::new("PATCH", path)
    }

    /// `DELETE path`.
    pub fn delete(path: &str) -> Self {
        Self::new("DELETE", path)
    }

    /// Names the exchange (shown in [`Recorded::matched`] and errors).
    pub fn label_as(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }

    /// The exchange's name: `METHOD /path` unless renamed.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Requires query parameter `name` with (decoded) `value`; other
    /// parameters may be present too.
    pub fn query(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.query.push((name.into(), value.into()));
        self
    }

    /// Requires header `name` (any case) with exactly `value`.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers
            .push((name.into().to_ascii_lowercase(), value.into()));
        self
    }

    /// Requires the JSON body to equal `body`.
    pub fn json_body(mut self, body: Value) -> Self {
        self.body.push(BodyMatch::Json(body));
        self
    }

    /// Requires the JSON value at `pointer` (RFC 6901, e.g. `/channel`) to
    /// equal `value`.
    pub fn json_field(mut self, pointer: impl Into<String>, value: Value) -> Self {
        self.body.push(BodyMatch::JsonField(pointer.into(), value));
        self
    }

    /// Requires form field `name` (of a form-encoded body) to be `value`.
    pub fn form_field(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.body
            .push(BodyMatch::FormField(name.into(), value.into()));
        self
    }

    /// Requires the raw body to be exactly `body`.
    pub fn raw_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body.push(BodyMatch::Raw(body.into()));
        self
    }

    /// Sets the reply.
    pub fn reply(mut self, reply: Reply) -> Self {
        self.reply = reply;
        self
    }

    /// Shorthand for `.reply(Reply::json(status, body))`.
    pub fn reply_json(self, status: u16, body: Value) -> Self {
        self.reply(Reply::json(status, body))
    }

    /// Answers at most once (then later exchanges get their turn).
    pub fn once(self) -> Self {
        self.times(1)
    }

    /// Answers at most `n` times.
    pub fn times(mut self, n: u32) -> Self {
        self.times = Some(n);
        self
    }

    /// Whether `r` is a request this exchange answers (uses left aside).
    pub fn matches(&self, r: &Recorded) -> bool {
        self.method.as_deref().is_none_or(|m| m == r.method)
            && self.path.matches(&r.path)
            && self
                .query
                .iter()
                .all(|(k, v)| r.query_param(k).as_deref() == Some(v.as_str()))
            && self
                .headers
                .iter()
                .all(|(k, v)| r.header(k) == Some(v.as_str()))
            && self.body.iter().all(|b| b.matches(r))
    }

    /// Whether the exchange may still answer.
    pub fn available(&self) -> bool {
        self.times != Some(0)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn req(method: &str, path: &str, query: Option<&str>, body: &str) -> Recorded {
        Recorded {
            method: method.into(),
            path: path.into(),
            query: query.map(str::to_owned),
            headers: vec![
                ("authorization".into(), "Bearer t0k".into()),
                ("content-type".into(), "application/json".into()),
            ],
            body: body.as_bytes().to_vec(),
            matched: None,
        }
    }

    #[test]
    fn matches_method_path_and_wildcards() {
        let e = Exchange::put("/api/v2/tickets/*");
        assert!(e.matches(&req("PUT", "/api/v2/tickets/17", None, "")));
        assert!(!e.matches(&req("GET", "/api/v2/tickets/17", None, "")));
        assert!(!e.matches(&req("PUT", "/api/v2/tickets/17/notes", None, "")));
        assert!(!e.matches(&req("PUT", "/api/v2/tickets", None, "")));
        assert!(Exchange::any().matches(&req("DELETE", "/x", None, "")));
    }

    #[test]
    fn matches_query_headers_and_bodies() {
        let r = req(
            "POST",
            "/api/x",
            Some("page=2&q=a%20b"),
            r#"{"channel":"C1","blocks":[{"type":"section"}]}"#,
        );
        let base = Exchange::post("/api/x");
        assert!(
            base.clone()
                .query("page", "2")
                .query("q", "a b")
                .matches(&r)
        );
        assert!(!base.clone().query("page", "3").matches(&r));
        assert!(
            base.clone()
                .header("Authorization", "Bearer t0k")
                .matches(&r)
        );
        assert!(
            !base
                .clone()
                .header("authorization", "Bearer other")
                .matches(&r)
        );
        assert!(base.clone().json_field("/channel", json!("C1")).matches(&r));
        assert!(
            base.clone()
                .json_field("/blocks/0/type", json!("section"))
                .matches(&r)
        );
        assert!(!base.clone().json_field("/missing", json!(1)).matches(&r));
        assert!(
            base.clone()
                .json_body(json!({"channel":"C1","blocks":[{"type":"section"}]}))
                .matches(&r)
        );
        assert!(!base.clone().json_body(json!({"channel":"C1"})).matches(&r));

        let form = req("POST", "/f", None, "payload=%7B%22a%22%3A1%7D&x=y+z");
        assert!(
            Exchange::post("/f")
                .form_field("payload", r#"{"a":1}"#)
                .form_field("x", "y z")
                .matches(&form)
        );
        assert!(
            Exchange::post("/f")
                .raw_body("payload=%7B%22a%22%3A1%7D&x=y+z")
                .matches(&form)
        );
    }

    #[test]
    fn limited_exchanges_run_out() {
        let mut e = Exchange::get("/").once();
        assert!(e.available());
        e.times = Some(0);
        assert!(!e.available());
        assert!(Exchange::get("/").available());
    }
}

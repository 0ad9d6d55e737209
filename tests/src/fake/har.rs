//! HAR (HTTP Archive 1.2) files as scripts for a fake upstream.
//!
//! Browsers' developer tools, mitmproxy, Charles, Proxyman, Insomnia and
//! Postman all export HAR: a JSON `log` whose `entries` each hold one
//! request and its response. [`Har::exchanges`] turns each entry into an
//! [`Exchange`] that matches the recorded method, path and query (plus the
//! request headers and JSON body fields the test selects) and answers with
//! the recorded status, headers and body, once, in recorded order. The
//! recorded origins (`https://slack.com`, …) are reported by
//! [`Har::origins`]; the fake rewrites them in replies to its own URL, so
//! `Link` headers and URLs in bodies lead back to the fake.
//!
//! Only the fields replay needs are read; everything else in the file
//! (cookies, cache, timings other than `wait`, pages) is ignored, so HARs
//! from any tool load. Recorded request headers are *not* matched unless
//! asked for: recordings carry real credentials, which should be scrubbed
//! before a HAR is committed, and the host injects the test's own anyway.

use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use serde::Deserialize;
use serde_json::Value;

use super::exchange::{Exchange, Reply};

/// Why a HAR file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum HarError {
    /// The file could not be read.
    #[error("cannot read HAR file {path}: {source}")]
    Read {
        /// The path.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The text is not HAR JSON.
    #[error("not a HAR document: {0}")]
    Parse(#[from] serde_json::Error),
    /// An entry is unusable; says which and why.
    #[error("HAR entry {index}: {reason}")]
    Entry {
        /// Zero-based entry index.
        index: usize,
        /// What is wrong.
        reason: String,
    },
}

/// A loaded HAR document.
#[derive(Debug, Clone, Deserialize)]
pub struct Har {
    log: Log,
}

#[derive(Debug, Clone, Deserialize)]
struct Log {
    #[serde(default)]
    entries: Vec<Entry>,
}

#[derive(Debug, Clone, Deserialize)]
struct Entry {
    request: HarRequest,
    response: HarResponse,
    #[serde(default)]
    timings: Option<Timings>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct HarRequest {
    method: String,
    url: String,
    #[serde(default)]
    headers: Vec<NameValue>,
    #[serde(default)]
    post_data: Option<PostData>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PostData {
    #[serde(default)]
    mime_type: String,
    #[serde(default)]
    text: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct HarResponse {
    status: u16,
    #[serde(default)]
    headers: Vec<NameValue>,
    #[serde(default)]
    content: Option<Content>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Content {
    #[serde(default)]
    mime_type: Option<String>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    encoding: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct NameValue {
    name: String,
    value: String,
}

#[derive(Debug, Clone, Deserialize)]
struct Timings {
    /// Milliseconds waiting for the first response byte; -1 when unknown.
    #[serde(default)]
    wait: Option<f64>,
}

/// How recorded entries become exchanges.
#[derive(Debug, Clone, Default)]
pub struct HarOptions {
    /// Request headers (names) whose recorded values must match too, in
    /// the entries that recorded them.
    pub headers: Vec<String>,
    /// JSON Pointers (`/channel`) into recorded JSON request bodies whose
    /// values must match too, in the entries that have them.
    pub json_fields: Vec<String>,
    /// Require the whole request body to equal the recorded one (as JSON
    /// when both are JSON, else byte for byte).
    pub exact_body: bool,
    /// Replay each entry's `timings.wait` as a delay before answering.
    pub timing: bool,
    /// Let every entry answer any number of times (default: once each, in
    /// order, like the recorded session).
    pub reusable: bool,
}

impl HarOptions {
    /// Also match the recorded value of request header `name`.
    pub fn header(mut self, name: impl Into<String>) -> Self {
        self.headers.push(name.into());
        self
    }

    /// Also match the recorded value at `pointer` of a JSON request body.
    pub fn json_field(mut self, pointer: impl Into<String>) -> Self {
        self.json_fields.push(pointer.into());
        self
    }

    /// Match whole request bodies.
    pub fn exact_body(mut self) -> Self {
        self.exact_body = true;
        self
    }

    /// Replay recorded waiting times.
    pub fn timing(mut self) -> Self {
        self.timing = true;
        self
    }

    /// Let entries answer repeatedly.
    pub fn reusable(mut self) -> Self {
        self.reusable = true;
        self
    }
}

/// Response headers that describe the recorded transfer, not the content,
/// and would be wrong for a replayed body (HAR keeps bodies decoded).
const TRANSFER_HEADERS: &[&str] = &[
    "content-length",
    "content-encoding",
    "transfer-encoding",
    "connection",
    "keep-alive",
];

impl Har {
    /// Reads and parses a HAR file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, HarError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| HarError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text)
    }

    /// Parses HAR JSON text.
    pub fn parse(text: &str) -> Result<Self, HarError> {
        Ok(serde_json::from_str(text)?)
    }

    /// Number of recorded entries.
    pub fn len(&self) -> usize {
        self.log.entries.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.log.entries.is_empty()
    }

    /// The distinct origins (`scheme://host[:port]`) the entries were
    /// recorded against, in order of first appearance.
    pub fn origins(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for entry in &self.log.entries {
            if let Ok(url) = url::Url::parse(&entry.request.url) {
                let origin = url.origin().ascii_serialization();
                if !out.contains(&origin) {
                    out.push(origin);
                }
            }
        }
        out
    }

    /// One exchange per entry, in recorded order.
    pub fn exchanges(&self, options: &HarOptions) -> Result<Vec<Exchange>, HarError> {
        self.log
            .entries
            .iter()
            .enumerate()
            .map(|(index, entry)| {
                entry_exchange(entry, options).map_err(|reason| HarError::Entry { index, reason })
            })
            .collect()
    }
}

fn entry_exchange(entry: &Entry, options: &HarOptions) -> Result<Exchange, String> {
    let request = &entry.request;
    let url =
        url::Url::parse(&request.url).map_err(|e| format!("bad URL {:?}: {e}", request.url))?;
    let mut exchange = Exchange::new(&request.method, url.path());
    for (name, value) in url.query_pairs() {
        exchange = exchange.query(name, value);
    }
    // Selected headers and fields apply where the recording has them (a
    // `GET` in the same session has no body to match).
    for wanted in &options.headers {
        if let Some(h) = request
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(wanted))
        {
            exchange = exchange.header(wanted.clone(), h.value.clone());
        }
    }
    let body_text = request.post_data.as_ref().and_then(|p| p.text.clone());
    let body_json = body_text
        .as_deref()
        .and_then(|t| serde_json::from_str::<Value>(t).ok());
    for pointer in &options.json_fields {
        if let Some(value) = body_json.as_ref().and_then(|v| v.pointer(pointer)) {
            exchange = exchange.json_field(pointer.clone(), value.clone());
        }
    }
    if options.exact_body {
        let is_json = request
            .post_data
            .as_ref()
            .is_some_and(|p| p.mime_type.contains("json"));
        exchange = match (&body_json, body_text) {
            (Some(json), _) if is_json => exchange.json_body(json.clone()),
            (_, Some(text)) => exchange.raw_body(text),
            (_, None) => exchange.raw_body(Vec::new()),
        };
    }

    let response = &entry.response;
    let mut reply = Reply::status(response.status);
    for h in &response.headers {
        if !TRANSFER_HEADERS.contains(&h.name.to_ascii_lowercase().as_str()) {
            reply = reply.header(h.name.clone(), h.value.clone());
        }
    }
    if let Some(content) = &response.content {
        if let Some(mime) = &content.mime_type
            && !mime.is_empty()
            && !response
                .headers
                .iter()
                .any(|h| h.name.eq_ignore_ascii_case("content-type"))
        {
            reply = reply.header("content-type", mime.clone());
        }
        let text = content.text.clone().unwrap_or_default();
        let body = if content.encoding.as_deref() == Some("base64") {
            base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .map_err(|e| format!("response body is not valid base64: {e}"))?
        } else {
            text.into_bytes()
        };
        reply = reply.body(body);
    }
    if options.timing
        && let Some(wait) = entry.timings.as_ref().and_then(|t| t.wait)
        && wait > 0.0
    {
        reply = reply.delay(Duration::from_secs_f64(wait / 1000.0));
    }
    let exchange = exchange.reply(reply);
    Ok(if options.reusable {
        exchange
    } else {
        exchange.once()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::Recorded;

    const HAR: &str = r#"{
      "log": {
        "version": "1.2",
        "creator": {"name": "hand", "version": "1"},
        "entries": [
          {
            "startedDateTime": "2026-01-01T00:00:00Z", "time": 12,
            "request": {
              "method": "POST", "url": "https://slack.com/api/chat.postMessage?x=1",
              "httpVersion": "HTTP/1.1", "cookies": [],
              "headers": [{"name": "Content-Type", "value": "application/json"}],
              "queryString": [{"name": "x", "value": "1"}],
              "postData": {"mimeType": "application/json", "text": "{\"channel\":\"C1\",\"text\":\"hi\"}"},
              "headersSize": -1, "bodySize": -1
            },
            "response": {
              "status": 200, "statusText": "OK", "httpVersion": "HTTP/1.1", "cookies": [],
              "headers": [{"name": "Content-Length", "value": "99"}, {"name": "X-Slack-Req-Id", "value": "r1"}],
              "content": {"size": 11, "mimeType": "application/json", "text": "eyJvayI6dHJ1ZX0=", "encoding": "base64"},
              "redirectURL": "", "headersSize": -1, "bodySize": -1
            },
            "cache": {}, "timings": {"send": 0, "wait": 250, "receive": 1}
          },
          {
            "request": {"method": "GET", "url": "https://files.slack.com/x"},
            "response": {"status": 204}
          }
        ]
      }
    }"#;

    fn post(body: &str) -> Recorded {
        Recorded {
            method: "POST".into(),
            path: "/api/chat.postMessage".into(),
            query: Some("x=1".into()),
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.as_bytes().to_vec(),
            matched: None,
        }
    }

    #[test]
    fn entries_become_exchanges() {
        let har = Har::parse(HAR).unwrap();
        assert_eq!(har.len(), 2);
        assert_eq!(
            har.origins(),
            ["https://slack.com", "https://files.slack.com"]
        );
        let ex = har.exchanges(&HarOptions::default()).unwrap();
        assert_eq!(ex[0].label(), "POST /api/chat.postMessage");
        assert!(ex[0].matches(&post("anything")));
        assert_eq!(ex[0].times, Some(1));
        let reply = &ex[0].reply;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.body, br#"{"ok":true}"#);
        assert_eq!(
            reply.headers,
            [
                ("X-Slack-Req-Id".to_owned(), "r1".to_owned()),
                ("content-type".to_owned(), "application/json".to_owned())
            ]
        );
        assert_eq!(reply.delay, None);
        assert_eq!(ex[1].reply.status, 204);
    }

    #[test]
    fn options_select_what_must_match() {
        let har = Har::parse(HAR).unwrap();
        let ex = har
            .exchanges(
                &HarOptions::default()
                    .json_field("/channel")
                    .timing()
                    .reusable(),
            )
            .unwrap();
        assert!(ex[0].matches(&post(r#"{"channel":"C1","text":"other"}"#)));
        assert!(!ex[0].matches(&post(r#"{"channel":"C2","text":"hi"}"#)));
        assert_eq!(ex[0].reply.delay, Some(Duration::from_millis(250)));
        assert_eq!(ex[0].times, None);

        let exact = har.exchanges(&HarOptions::default().exact_body()).unwrap();
        assert!(exact[0].matches(&post(r#"{"text":"hi","channel":"C1"}"#)));
        assert!(!exact[0].matches(&post(r#"{"text":"hi"}"#)));

        let by_header = har
            .exchanges(&HarOptions::default().header("content-type"))
            .unwrap();
        let mut xml = post("{}");
        xml.headers = vec![("content-type".into(), "text/xml".into())];
        assert!(!by_header[0].matches(&xml));
        assert!(by_header[0].matches(&post("{}")));
        let bad = Har::parse(r#"{"log": {"entries": [{"request": {"method": "GET", "url": "nope"}, "response": {"status": 200}}]}}"#)
            .unwrap()
            .exchanges(&HarOptions::default())
            .map(|_| ())
            .unwrap_err();
        assert!(bad.to_string().starts_with("HAR entry 0: bad URL"), "{bad}");
        assert!(Har::parse(r#"{"log": {"entries": [{"request": {}}]}}"#).is_err());
    }
}

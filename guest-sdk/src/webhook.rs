//! Conveniences on the WIT webhook records.
//!
//! The records themselves are generated; these constructors and accessors
//! keep `handle_webhook` implementations short.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::http::url::query_pairs;
use crate::types::{Event, Header, WebhookOutcome, WebhookRequest, WebhookResponse};
use crate::{Error, Result};

impl Header {
    /// A header.
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            value: value.into(),
        }
    }
}

impl WebhookRequest {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str())
    }

    /// The first query parameter called `name`, percent-decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        query_pairs(&self.query)
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    /// The body parsed as JSON; a malformed body is [`Error::InvalidInput`].
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.body).map_err(|e| {
            Error::invalid_input(format!("webhook body is not the expected JSON: {e}"))
        })
    }

    /// The body as text, with invalid UTF-8 replaced.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body decoded as `application/x-www-form-urlencoded` pairs (Slack
    /// sends interactive payloads and slash commands this way).
    pub fn form(&self) -> Vec<(String, String)> {
        query_pairs(&self.text())
    }

    /// The form field `name` of a form-encoded body, decoded.
    pub fn form_field(&self, name: &str) -> Option<String> {
        self.form()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    /// Whether the content type is a form (`application/x-www-form-urlencoded`).
    pub fn is_form(&self) -> bool {
        self.header("content-type").is_some_and(|ct| {
            ct.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
    }
}

impl WebhookResponse {
    /// A response with `status`, no headers and an empty body.
    pub fn new(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push(Header::new(name, value));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Sets a JSON body and its content type.
    pub fn json<T: Serialize + ?Sized>(self, value: &T) -> Result<Self> {
        let body = serde_json::to_vec(value)
            .map_err(|e| Error::permanent(format!("response is not serializable: {e}")))?;
        Ok(self.header("content-type", "application/json").body(body))
    }
}

impl Event {
    /// An event of `kind` (e.g. `ticket.created`) with the source's unique
    /// `id` and a JSON object payload.
    pub fn new(
        kind: impl Into<String>,
        id: impl Into<String>,
        payload: &impl Serialize,
    ) -> Result<Self> {
        let payload = serde_json::to_string(payload)
            .map_err(|e| Error::permanent(format!("event payload is not serializable: {e}")))?;
        Ok(Self {
            kind: kind.into(),
            id: id.into(),
            payload,
        })
    }
}

impl WebhookOutcome {
    /// No events and the default response (`200`, empty body).
    pub fn new() -> Self {
        Self {
            response: None,
            events: Vec::new(),
        }
    }

    /// Adds an event.
    pub fn event(mut self, event: Event) -> Self {
        self.events.push(event);
        self
    }

    /// Replaces the default response (e.g. to answer a platform's URL
    /// verification challenge).
    pub fn respond(mut self, response: WebhookResponse) -> Self {
        self.response = Some(response);
        self
    }
}

impl Default for WebhookOutcome {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_accessors() {
        let req = WebhookRequest {
            method: "POST".into(),
            query: "a=1&b=hello%20world&c=x+y".into(),
            headers: vec![Header::new("X-Event", "ping")],
            body: br#"{"n":1}"#.to_vec(),
        };
        assert_eq!(req.header("x-event"), Some("ping"));
        assert_eq!(req.query_param("b").as_deref(), Some("hello world"));
        assert_eq!(req.query_param("c").as_deref(), Some("x y"));
        assert_eq!(req.query_param("z"), None);
        let v: serde_json::Value = req.json().expect("JSON body");
        assert_eq!(v["n"], 1);
        assert!(!req.is_form());
    }

    #[test]
    fn form_bodies() {
        let req = WebhookRequest {
            method: "POST".into(),
            query: String::new(),
            headers: vec![Header::new(
                "Content-Type",
                "application/x-www-form-urlencoded; charset=utf-8",
            )],
            body: b"payload=%7B%22type%22%3A%22block_actions%22%7D&text=a+b".to_vec(),
        };
        assert!(req.is_form());
        assert_eq!(
            req.form_field("payload").as_deref(),
            Some(r#"{"type":"block_actions"}"#)
        );
        assert_eq!(req.form_field("text").as_deref(), Some("a b"));
        assert_eq!(req.form().len(), 2);
    }
}

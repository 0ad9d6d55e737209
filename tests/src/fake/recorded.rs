//! What a fake upstream received: one [`Recorded`] request, with accessors
//! for the things connector tests assert (auth headers, JSON and form
//! bodies, query parameters).

use base64::Engine as _;
use serde_json::Value;

/// One request as the fake upstream saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// Method, upper case.
    pub method: String,
    /// Path, without the query.
    pub path: String,
    /// Raw query string, without `?`.
    pub query: Option<String>,
    /// Headers in order, names lower case.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
    /// Label of the exchange that answered, `None` if none matched (the
    /// fake then answered `501`).
    pub matched: Option<String>,
}

impl Recorded {
    /// `METHOD /path` (with `?query` when present), for messages.
    pub fn line(&self) -> String {
        match &self.query {
            Some(q) => format!("{} {}?{q}", self.method, self.path),
            None => format!("{} {}", self.method, self.path),
        }
    }

    /// The first header called `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of header `name`.
    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The token of an `Authorization: Bearer <token>` header.
    pub fn bearer(&self) -> Option<&str> {
        self.header("authorization")?.strip_prefix("Bearer ")
    }

    /// User name and password of an `Authorization: Basic …` header.
    pub fn basic(&self) -> Option<(String, String)> {
        let encoded = self.header("authorization")?.strip_prefix("Basic ")?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (user, password) = text.split_once(':')?;
        Some((user.to_owned(), password.to_owned()))
    }

    /// The decoded query parameter `name`.
    pub fn query_param(&self, name: &str) -> Option<String> {
        let query = self.query.as_deref()?;
        form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    /// All decoded query parameters, in order.
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        let query = self.query.as_deref().unwrap_or("");
        form_urlencoded::parse(query.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    /// The body parsed as JSON, if it is JSON.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body decoded as `application/x-www-form-urlencoded` pairs.
    pub fn form(&self) -> Vec<(String, String)> {
        form_urlencoded::parse(&self.body)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    /// The form field `name` of a form-encoded body.
    pub fn form_field(&self, name: &str) -> Option<String> {
        form_urlencoded::parse(&self.body)
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accessors() {
        let r = Recorded {
            method: "POST".into(),
            path: "/api/x".into(),
            query: Some("a=1&b=x%20y".into()),
            headers: vec![
                ("authorization".into(), "Basic a2V5LTEyMzpY".into()),
                ("x-many".into(), "1".into()),
                ("X-Many".into(), "2".into()),
            ],
            body: b"payload=%7B%22type%22%3A%22block_actions%22%7D&n=a+b".to_vec(),
            matched: None,
        };
        assert_eq!(r.line(), "POST /api/x?a=1&b=x%20y");
        assert_eq!(r.basic(), Some(("key-123".into(), "X".into())));
        assert_eq!(r.bearer(), None);
        assert_eq!(r.headers_named("x-many"), ["1", "2"]);
        assert_eq!(r.query_param("b").as_deref(), Some("x y"));
        assert_eq!(
            r.form_field("payload").as_deref(),
            Some(r#"{"type":"block_actions"}"#)
        );
        assert_eq!(r.form_field("n").as_deref(), Some("a b"));
        assert_eq!(r.json(), None);
    }
}

//! The fixture file a connector ships for `plugboard test`
//! (`plugboard-test.json`): the instance to create, example calls with the
//! upstream exchanges they should cause, and webhook deliveries.
//!
//! The format is documented in `docs/authoring/testing.md`; the file is
//! JSON so every language's toolchain can read and write it.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

/// The placeholder in config values that becomes the fake upstream's URL.
pub const UPSTREAM_PLACEHOLDER: &str = "{upstream}";

/// A whole fixture file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Fixtures {
    /// Optional `$schema`/comment keys are tolerated.
    #[serde(rename = "$comment", default)]
    pub comment: Option<Value>,
    /// Instance config; string values may contain `{upstream}`.
    #[serde(default)]
    pub config: serde_json::Map<String, Value>,
    /// Instance credentials (test values only: they are printed in reports
    /// never, but they are not secret either).
    #[serde(default)]
    pub credentials: BTreeMap<String, String>,
    /// `test-connection`, if it should be checked.
    #[serde(default)]
    pub test_connection: Option<TestConnection>,
    /// Example calls.
    #[serde(default)]
    pub examples: Vec<Example>,
    /// Webhook deliveries.
    #[serde(default)]
    pub webhooks: Vec<Webhook>,
}

/// The expected outcome of `test-connection`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TestConnection {
    /// Exchanges, in order.
    #[serde(default)]
    pub upstream: Vec<Exchange>,
    /// What must come out.
    pub expect: Expect,
}

/// One example call.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Example {
    /// Shown in the report.
    pub name: String,
    /// Method name.
    pub method: String,
    /// Parameters.
    #[serde(default = "empty_object")]
    pub params: Value,
    /// The requests the call must make, in order, and their answers.
    #[serde(default)]
    pub upstream: Vec<Exchange>,
    /// What must come out.
    pub expect: Expect,
}

/// What a call must produce: a result, or an API error code.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Expect {
    /// The exact JSON result (`invoke`) or summary string (`test-connection`).
    #[serde(default)]
    pub result: Option<Value>,
    /// The API error code, e.g. `UPSTREAM_NOT_FOUND`.
    #[serde(default)]
    pub error: Option<String>,
    /// Text the error message must contain.
    #[serde(default)]
    pub message_contains: Option<String>,
}

/// One expected request and its scripted answer.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Exchange {
    /// What the request must look like.
    pub request: ExpectedRequest,
    /// The answer.
    #[serde(default)]
    pub response: Response,
}

/// A request matcher: everything given must match; what is not given is
/// not checked.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExpectedRequest {
    /// HTTP method, upper case.
    pub method: String,
    /// Path (without query), percent-encoded as sent.
    pub path: String,
    /// Query parameters that must be present with these values.
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    /// Headers (case-insensitive names) that must have these values; the
    /// credential the host injects can be checked here.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The body must be this JSON.
    #[serde(default)]
    pub json: Option<Value>,
}

/// A scripted answer.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Response {
    /// Status code.
    #[serde(default = "ok")]
    pub status: u16,
    /// Headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// A JSON body (sets `content-type: application/json`).
    #[serde(default)]
    pub json: Option<Value>,
    /// A text body.
    #[serde(default)]
    pub text: Option<String>,
}

impl Default for Response {
    fn default() -> Self {
        Self {
            status: 200,
            headers: BTreeMap::new(),
            json: None,
            text: None,
        }
    }
}

/// One webhook delivery.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Webhook {
    /// Shown in the report.
    pub name: String,
    /// Extra headers (the signature is added by the test).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// A JSON body.
    #[serde(default)]
    pub body: Option<Value>,
    /// A raw text body (when the body is not JSON).
    #[serde(default)]
    pub body_text: Option<String>,
    /// What must happen.
    pub expect: WebhookExpect,
}

/// The expected outcome of a delivery.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebhookExpect {
    /// The HTTP status the sender gets (default 200 unless `error`).
    #[serde(default)]
    pub status: Option<u16>,
    /// The events recorded, in order (payload checked when given).
    #[serde(default)]
    pub events: Vec<ExpectedEvent>,
    /// The API error code, when the delivery must fail.
    #[serde(default)]
    pub error: Option<String>,
}

/// An expected event.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExpectedEvent {
    /// Event kind.
    pub kind: String,
    /// Id at the source.
    pub id: String,
    /// The payload, when it should be checked.
    #[serde(default)]
    pub payload: Option<Value>,
}

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

fn ok() -> u16 {
    200
}

impl Fixtures {
    /// Reads and checks a fixture file.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading fixtures {}", path.display()))?;
        let fixtures: Self = serde_json::from_str(&text)
            .with_context(|| format!("fixtures {} are not valid", path.display()))?;
        fixtures
            .check()
            .with_context(|| format!("fixtures {}", path.display()))?;
        Ok(fixtures)
    }

    fn check(&self) -> anyhow::Result<()> {
        for e in &self.examples {
            anyhow::ensure!(
                e.expect.result.is_some() != e.expect.error.is_some(),
                "example {:?}: `expect` needs exactly one of `result` and `error`",
                e.name
            );
        }
        if let Some(t) = &self.test_connection {
            anyhow::ensure!(
                t.expect.result.is_some() != t.expect.error.is_some(),
                "testConnection: `expect` needs exactly one of `result` and `error`"
            );
        }
        for w in &self.webhooks {
            anyhow::ensure!(
                !(w.body.is_some() && w.body_text.is_some()),
                "webhook {:?}: give `body` or `bodyText`, not both",
                w.name
            );
        }
        Ok(())
    }

    /// Whether any config string names `{upstream}`.
    pub fn uses_upstream(&self) -> bool {
        fn names(v: &Value) -> bool {
            match v {
                Value::String(s) => s.contains(UPSTREAM_PLACEHOLDER),
                Value::Array(a) => a.iter().any(names),
                Value::Object(o) => o.values().any(names),
                _ => false,
            }
        }
        self.config.values().any(names)
    }

    /// The config with `{upstream}` replaced by `base` in string values.
    pub fn config_for(&self, base: &str) -> Value {
        Value::Object(
            self.config
                .iter()
                .map(|(k, v)| (k.clone(), substitute(v, base)))
                .collect(),
        )
    }
}

fn substitute(v: &Value, base: &str) -> Value {
    match v {
        Value::String(s) => Value::String(s.replace(UPSTREAM_PLACEHOLDER, base)),
        Value::Array(a) => Value::Array(a.iter().map(|v| substitute(v, base)).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| (k.clone(), substitute(v, base)))
                .collect(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn examples_need_exactly_one_expectation() {
        let f: Fixtures =
            serde_json::from_str(r#"{"examples":[{"name":"x","method":"m","expect":{}}]}"#)
                .unwrap();
        assert!(f.check().is_err());
        let f: Fixtures = serde_json::from_str(
            r#"{"examples":[{"name":"x","method":"m","expect":{"error":"E"}}]}"#,
        )
        .unwrap();
        assert!(f.check().is_ok());
    }

    #[test]
    fn unknown_keys_are_refused_and_upstream_is_substituted() {
        assert!(serde_json::from_str::<Fixtures>(r#"{"exampels":[]}"#).is_err());
        let f: Fixtures =
            serde_json::from_str(r#"{"config":{"api_base":"{upstream}/api","n":1}}"#).unwrap();
        assert!(f.uses_upstream());
        assert!(!Fixtures::default().uses_upstream());
        assert_eq!(
            f.config_for("http://127.0.0.1:9"),
            serde_json::json!({"api_base": "http://127.0.0.1:9/api", "n": 1})
        );
    }
}

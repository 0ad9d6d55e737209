//! Talking to the Freshdesk API v2: the base URL from the config, sending
//! with a timeout, Freshdesk's error bodies turned into connector errors,
//! and `Link`-header pagination.
//!
//! Credentials never pass through here: the manifest declares basic auth
//! (`{api_key}` / `X`) for `{api_base}` and the host adds it.

use std::time::Duration;

use plugboard_guest::http::{self, Page, Request, Response};
use plugboard_guest::prelude::*;

/// Connecting and each wait for upstream bytes.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Non-secret settings of an instance.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("anyOf" = [{"required": ["domain"]}, {"required": ["api_base"]}]))]
pub struct FreshdeskConfig {
    /// Your Freshdesk subdomain: `acme` for `https://acme.freshdesk.com`.
    #[serde(default)]
    #[allow(dead_code, reason = "the host builds `api_base` from it")]
    #[schemars(pattern(r"^[A-Za-z0-9][A-Za-z0-9-]*$"))]
    pub domain: Option<String>,
    /// API base URL, without `/api/v2`. Defaults to
    /// `https://{domain}.freshdesk.com`; set it only for a proxy or a test
    /// double.
    #[serde(default = "default_api_base")]
    #[schemars(extend("format" = "uri"))]
    pub api_base: String,
}

fn default_api_base() -> String {
    "https://{domain}.freshdesk.com".to_owned()
}

/// Secrets; the connector never sees them.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code, reason = "read by the host, declared for the schema")]
pub struct FreshdeskCredentials {
    /// API key of the agent the connector acts as (Profile settings → API
    /// key). Sent as basic auth `api_key:X`.
    pub api_key: String,
    /// Value of the secret header (`X-Webhook-Secret`) your Freshdesk
    /// automation rules send with each webhook.
    #[serde(default)]
    pub webhook_secret: Option<String>,
}

/// The URL of `path` (starting with `/api/v2/`) under the configured base.
pub fn url(path: &str) -> Result<String> {
    Ok(format!("{}{path}", base()?))
}

/// The configured base URL, without a trailing slash.
pub fn base() -> Result<String> {
    let config: FreshdeskConfig = config::parse()?;
    Ok(config.api_base.trim_end_matches('/').to_owned())
}

/// Sends `request` (with the standard timeout and `Accept`) and turns
/// error statuses into connector errors.
pub fn send(request: Request) -> Result<Response> {
    let response = request
        .header("accept", "application/json")
        .timeout(TIMEOUT)
        .send()?;
    check(response)
}

/// Passes successes through; errors keep the SDK's classification (401/403
/// credentials, 404, 429 with `Retry-After`, other statuses) with a
/// message that lists Freshdesk's field errors.
pub fn check(response: Response) -> Result<Response> {
    let detail = error_detail(&response.body);
    match response.error_for_status() {
        Ok(r) => Ok(r),
        Err(Error::Upstream { status, message }) => {
            Err(Error::upstream(status, detail.unwrap_or(message)))
        }
        Err(Error::InvalidInput(m)) => Err(Error::invalid_input(detail.unwrap_or(m))),
        Err(e) => Err(e),
    }
}

/// `Validation failed: email: It should be a valid email address
/// (invalid_value); …` from Freshdesk's error body, if it has field errors.
pub fn error_detail(body: &[u8]) -> Option<String> {
    let v: Value = plugboard_guest::serde_json::from_slice(body).ok()?;
    let errors = v.get("errors")?.as_array()?;
    let parts: Vec<String> = errors
        .iter()
        .map(|e| {
            let field = e.get("field").and_then(Value::as_str).unwrap_or("");
            let message = e.get("message").and_then(Value::as_str).unwrap_or("");
            let code = e.get("code").and_then(Value::as_str).unwrap_or("");
            let mut s = if field.is_empty() {
                message.to_owned()
            } else {
                format!("{field}: {message}")
            };
            if !code.is_empty() {
                s.push_str(&format!(" ({code})"));
            }
            s
        })
        .collect();
    let head = v
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or("Freshdesk refused the request");
    Some(if parts.is_empty() {
        head.to_owned()
    } else {
        format!("{head}: {}", parts.join("; "))
    })
}

/// Fetches `first` and follows `Link: <…>; rel="next"` for up to
/// `max_pages` pages in all, each page sent and checked like any request.
pub fn follow_pages<T: plugboard_guest::serde::de::DeserializeOwned>(
    first: Request,
    max_pages: u32,
) -> Result<Page<T>> {
    http::follow_next_links(first, max_pages, &base()?, send)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_errors_are_listed() {
        let body = br#"{"description":"Validation failed","errors":[{"field":"email","message":"It should be a valid email address","code":"invalid_value"},{"field":"priority","message":"It should be one of these values: '1,2,3,4'","code":"invalid_value"}]}"#;
        assert_eq!(
            error_detail(body).unwrap(),
            "Validation failed: email: It should be a valid email address (invalid_value); \
             priority: It should be one of these values: '1,2,3,4' (invalid_value)"
        );
        assert_eq!(error_detail(br#"{"code":"access_denied"}"#), None);
        assert_eq!(error_detail(b"<html>"), None);
    }

    #[test]
    fn check_keeps_the_classification() {
        let resp = |status: u16, body: &[u8]| Response {
            status,
            headers: vec![("retry-after".into(), "17".into())],
            body: body.to_vec(),
        };
        let e = check(resp(
            400,
            br#"{"description":"Validation failed","errors":[{"field":"email","message":"bad","code":"invalid_value"}]}"#,
        ))
        .unwrap_err();
        assert_eq!(
            e,
            Error::upstream(400, "Validation failed: email: bad (invalid_value)")
        );
        let e = check(resp(429, br#"{"message":"slow down"}"#)).unwrap_err();
        assert_eq!(e.kind(), "rate_limited");
        assert!(matches!(
            e,
            Error::RateLimited {
                retry_after_secs: Some(17),
                ..
            }
        ));
        assert!(check(resp(201, b"{}")).is_ok());
    }
}

//! Calling the GitHub REST API: the configured base, the headers GitHub
//! asks every client to send, its error bodies turned into connector
//! errors, and `Link`-header pagination.
//!
//! The token never passes through here: the manifest declares bearer auth
//! for `{api_base}` and the host adds it.

use std::time::Duration;

use plugboard_guest::http::{self, Page, Request, Response};
use plugboard_guest::prelude::*;

/// Connecting and each wait for upstream bytes.
const TIMEOUT: Duration = Duration::from_secs(30);

/// The REST API version this connector is written against.
pub const API_VERSION: &str = "2022-11-28";

/// Non-secret settings of an instance.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GithubConfig {
    /// REST API base URL; `https://<host>/api/v3` for GitHub Enterprise
    /// Server, or a test double.
    #[serde(default = "default_api_base")]
    #[schemars(extend("format" = "uri"))]
    pub api_base: String,
}

fn default_api_base() -> String {
    "https://api.github.com".to_owned()
}

/// Secrets; the connector never sees them.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code, reason = "read by the host, declared for the schema")]
pub struct GithubCredentials {
    /// A fine-grained or classic personal access token, or an app
    /// installation token; sent as `Authorization: Bearer`.
    pub token: String,
    /// The secret of the repository or organization webhook.
    #[serde(default)]
    pub webhook_secret: Option<String>,
}

/// The URL of `path` (starting with `/`) under the configured base.
pub fn url(path: &str) -> Result<String> {
    Ok(format!("{}{path}", base()?))
}

/// The configured base, without a trailing slash.
pub fn base() -> Result<String> {
    let config: GithubConfig = config::parse()?;
    Ok(config.api_base.trim_end_matches('/').to_owned())
}

/// Adds the headers GitHub wants on every request (it refuses requests
/// without a `User-Agent`).
pub fn headers(request: Request) -> Request {
    request
        .header("accept", "application/vnd.github+json")
        .header("x-github-api-version", API_VERSION)
        .header("user-agent", "plugboard-github-connector")
}

/// Sends and checks.
pub fn send(request: Request) -> Result<Response> {
    check(headers(request).timeout(TIMEOUT).send()?)
}

/// Passes successes through; errors keep the SDK's classification (401
/// and plain 403 credentials, 403/429 with `Retry-After` or an exhausted
/// `X-RateLimit-Remaining` rate limits, 404, others upstream) with
/// GitHub's validation errors spelled out.
pub fn check(response: Response) -> Result<Response> {
    let detail = error_detail(&response.body);
    match response.error_for_status() {
        Ok(r) => Ok(r),
        Err(Error::Upstream { status, message }) => {
            Err(Error::upstream(status, detail.unwrap_or(message)))
        }
        Err(e) => Err(e),
    }
}

/// `Validation Failed: Issue.title missing_field; …` from a GitHub error
/// body with an `errors` array.
pub fn error_detail(body: &[u8]) -> Option<String> {
    let v: Value = plugboard_guest::serde_json::from_slice(body).ok()?;
    let head = v.get("message")?.as_str()?;
    let errors = v.get("errors").and_then(Value::as_array);
    let parts: Vec<String> = errors
        .into_iter()
        .flatten()
        .map(|e| match e {
            Value::String(s) => s.clone(),
            e => {
                if let Some(m) = e.get("message").and_then(Value::as_str) {
                    return m.to_owned();
                }
                let text = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("");
                format!("{}.{} {}", text("resource"), text("field"), text("code"))
            }
        })
        .collect();
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

    fn resp(status: u16, headers: &[(&str, &str)], body: &str) -> Response {
        Response {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn validation_errors_are_spelled_out() {
        let e = check(resp(
            422,
            &[],
            r#"{"message":"Validation Failed","errors":[{"resource":"Issue","field":"title","code":"missing_field"},"plain"],"documentation_url":"https://docs.github.com/rest"}"#,
        ))
        .unwrap_err();
        assert_eq!(
            e,
            Error::upstream(422, "Validation Failed: Issue.title missing_field; plain")
        );
    }

    #[test]
    fn rate_limits_are_not_auth_failures() {
        let secondary = check(resp(
            403,
            &[("retry-after", "60")],
            r#"{"message":"You have exceeded a secondary rate limit"}"#,
        ))
        .unwrap_err();
        assert!(matches!(
            secondary,
            Error::RateLimited {
                retry_after_secs: Some(60),
                ..
            }
        ));
        let denied = check(resp(
            403,
            &[],
            r#"{"message":"Resource not accessible by integration"}"#,
        ))
        .unwrap_err();
        assert_eq!(denied.kind(), "unauthorized");
        assert!(check(resp(201, &[], "{}")).is_ok());
    }
}

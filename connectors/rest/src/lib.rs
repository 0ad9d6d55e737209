//! `rest`: a generic REST connector.
//!
//! One method, `request`, sends any method to a path under the instance's
//! `base_url` and returns status, headers and body. The manifest's only host
//! is `{base_url}`, so the host's egress policy confines the connector to the
//! configured API. Upstream 4xx/5xx answers become the typed connector errors
//! (`unauthorized`, `not-found`, `rate-limited`, `upstream`) so callers get the
//! same error codes as from a purpose-built connector.

use std::collections::BTreeMap;
use std::time::Duration;

use plugboard_guest::http::{HttpErrorKind, Request, Response};
use plugboard_guest::prelude::*;

/// How long connecting and each wait for upstream bytes may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Instance config.
#[derive(Deserialize, JsonSchema)]
struct RestConfig {
    /// Base URL every request path is appended to, e.g. `https://api.example.com/v2`.
    #[schemars(extend("format" = "uri"))]
    base_url: String,
    /// Headers sent with every request (request headers override them).
    #[serde(default)]
    default_headers: Option<BTreeMap<String, String>>,
}

/// HTTP methods `request` can send.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
enum HttpMethod {
    #[default]
    Get,
    Post,
    Put,
    Patch,
    Delete,
    Head,
}

impl HttpMethod {
    fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Patch => "PATCH",
            Self::Delete => "DELETE",
            Self::Head => "HEAD",
        }
    }
}

/// Parameters of `request`.
#[derive(Deserialize, JsonSchema)]
struct RequestParams {
    /// HTTP method.
    #[serde(default)]
    method: HttpMethod,
    /// Path under `base_url`, starting with `/`.
    #[schemars(extend("pattern" = "^/"))]
    path: String,
    /// Query parameters; names and values are percent-encoded.
    #[serde(default)]
    query: Option<BTreeMap<String, String>>,
    /// Request headers.
    #[serde(default)]
    headers: Option<BTreeMap<String, String>>,
    /// Request body: sent as JSON, except that a string with a non-JSON
    /// `content-type` header is sent as-is (e.g. a form-encoded body).
    #[serde(default)]
    body: Option<Value>,
}

/// Result of `request` (2xx and 3xx answers; others are errors).
#[derive(Serialize, JsonSchema)]
struct RequestResult {
    /// Upstream status code.
    status: u16,
    /// Response headers, names lower-case; repeated headers joined with `, `.
    headers: BTreeMap<String, String>,
    /// Parsed JSON when the response is JSON, otherwise the body as text.
    body: Value,
}

/// The connector.
struct Rest;

impl Connector for Rest {
    fn manifest() -> Manifest {
        Manifest::new(
            "rest",
            env!("CARGO_PKG_VERSION"),
            "Calls any path of one REST API, configured by its base URL. Upstream error statuses \
             become typed errors (401/403 unauthorized, 404 not found, 429 rate limited, others \
             upstream).",
        )
        .method::<RequestParams, RequestResult>(
            "request",
            "Sends an HTTP request to `path` under `base_url` and returns status, headers and body.",
        )
        .config_schema::<RestConfig>()
        .host("{base_url}")
    }

    fn invoke(method: &str, params: Params) -> Result<Output> {
        match method {
            "request" => params.call(request),
            other => Err(Error::unknown_method(other)),
        }
    }

    fn test_connection() -> Result<String> {
        let config: RestConfig = config::parse()?;
        let response = send(Request::get(&config.base_url).timeout(TIMEOUT))?;
        // Many APIs answer 404 at their root while working fine, so only
        // refused credentials, rate limits and server errors count as failure.
        let status = response.status;
        if matches!(status, 401 | 403 | 429) || status >= 500 {
            response.error_for_status()?;
        }
        Ok(format!("GET {} answered {status}", config.base_url))
    }
}

/// The `request` method.
fn request(p: RequestParams) -> Result<RequestResult> {
    let config: RestConfig = config::parse()?;
    if !p.path.starts_with('/') {
        return Err(Error::invalid_input("`path` must start with `/`"));
    }
    let url = format!("{}{}", config.base_url.trim_end_matches('/'), p.path);
    let mut req = Request::new(p.method.as_str(), url).timeout(TIMEOUT);

    // Defaults first, then per-request headers replacing same-named defaults.
    let request_headers = p.headers.unwrap_or_default();
    for (name, value) in config.default_headers.unwrap_or_default() {
        if !request_headers
            .keys()
            .any(|n| n.eq_ignore_ascii_case(&name))
        {
            req = req.header(name, value);
        }
    }
    let content_type = request_headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-type"))
        .map(|(_, v)| v.to_ascii_lowercase());
    for (name, value) in request_headers {
        req = req.header(name, value);
    }
    for (name, value) in p.query.unwrap_or_default() {
        req = req.query(name, value);
    }
    req = match (p.body, content_type) {
        (None, _) => req,
        (Some(Value::String(raw)), Some(ct)) if !ct.contains("json") => req.body(raw),
        (Some(body), _) => req.json(&body),
    };

    let response = send(req)?.error_for_status()?;
    let body = body_value(&response);
    let mut headers = BTreeMap::<String, String>::new();
    for (name, value) in response.headers {
        headers
            .entry(name.to_ascii_lowercase())
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(&value);
            })
            .or_insert(value);
    }
    Ok(RequestResult {
        status: response.status,
        headers,
        body,
    })
}

/// Sends, blaming the caller for bad headers and the config for bad URLs.
fn send(req: Request) -> Result<Response> {
    req.send().map_err(|e| match e.kind() {
        HttpErrorKind::InvalidHeader { .. } => Error::invalid_input(e.to_string()),
        HttpErrorKind::InvalidUrl(_) => Error::config(format!("`base_url` is not usable: {e}")),
        _ => e.into(),
    })
}

/// JSON when the response says so and parses, text otherwise.
fn body_value(response: &Response) -> Value {
    if response.is_json()
        && let Ok(value) = plugboard_guest::serde_json::from_slice(&response.body)
    {
        return value;
    }
    Value::String(response.text())
}

plugboard_guest::export_connector!(Rest);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemas_carry_formats_and_defaults() {
        let m = Rest::manifest();
        assert_eq!(m.hosts, ["{base_url}"]);
        assert_eq!(m.config_schema["properties"]["base_url"]["format"], "uri");
        assert_eq!(m.config_schema["required"], json!(["base_url"]));
        let params = &m.methods[0].params_schema;
        assert_eq!(params["properties"]["path"]["pattern"], "^/");
        assert_eq!(params["required"], json!(["path"]));
        assert_eq!(params["properties"]["method"]["default"], "GET", "{params}");
    }

    #[test]
    fn json_bodies_are_parsed_and_others_are_text() {
        let mut r = Response {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: br#"{"a":1}"#.to_vec(),
        };
        assert_eq!(body_value(&r), json!({"a": 1}));
        r.headers.clear();
        assert_eq!(body_value(&r), json!(r#"{"a":1}"#));
    }
}

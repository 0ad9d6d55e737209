//! The OpenAPI 3.1 description of the HTTP API, served at `/openapi.json`
//! with a human page at `/docs`.
//!
//! The spec is not written by hand: [`super::router`] registers every
//! route with `utoipa_axum`'s `routes!`, which takes each handler's
//! `#[utoipa::path]` annotation (summary, parameters, bodies, responses)
//! into the spec as it adds the handler to the router. A route cannot be
//! served without being documented. The spec is built once, at start-up.

pub mod codes;
pub mod responses;
pub mod schemas;

use std::sync::Arc;

use axum::Extension;
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use bytes::Bytes;
use utoipa::openapi::OpenApi as Spec;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

pub(crate) use responses::error_responses;

/// What the spec says before the routes add themselves: info, tags, the
/// security scheme and the shared error schema.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Plugboard HTTP API",
        description = DESCRIPTION,
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    tags(
        (name = "meta", description = "Liveness and this description."),
        (name = "connectors", description = "Upload and manage connector components."),
        (name = "instances", description = "Configured accounts of a connector: config, limits, credentials, health."),
        (name = "calls", description = "Run an instance's methods and its connection test."),
        (name = "oauth", description = "OAuth 2.0 connect flows of instances whose connector uses it."),
        (name = "tokens", description = "API tokens."),
        (name = "webhooks", description = "Signed deliveries from platforms; the events they become."),
        (name = "rules", description = "When an event matches, run actions."),
        (name = "jobs", description = "The actions rules queued, with retries and dead letters."),
        (name = "audit", description = "Who changed what, and which credential was used where."),
        (name = "operations", description = "Usage for cost tracking and Prometheus metrics."),
    ),
    components(schemas(schemas::ErrorBody, schemas::ErrorDetail, schemas::OutboundAttempt)),
    modifiers(&BearerScheme),
)]
pub struct ApiDoc;

const DESCRIPTION: &str = "\
Plugboard runs third-party integration connectors as sandboxed WebAssembly \
components. Bodies are JSON with camelCase fields, except component uploads \
(the `.wasm` bytes) and webhook deliveries (as the platform sends them).

**Authentication.** Every `/v1` route except webhook ingress needs \
`Authorization: Bearer <token>`; on first start the host writes an admin \
token to `<data-dir>/admin.token`. `invoke` tokens may only call, test and \
read their instances (`403 FORBIDDEN` otherwise).

**Errors.** Every error answer is `{\"status\": \"ERROR\", \"error\": \
{\"code\", \"message\", \"category\", \"retryable\", \"details\"?}}`. `code` is \
stable; each response lists the codes it can carry (and `x-error-codes` \
names them). `category` is `temporary`, `rate_limited`, `configuration` or \
`permanent`; retry the first two later, fix something before retrying the \
others. Any path no operation describes answers `404 NOT_FOUND`, and a \
method an operation does not list answers `405 METHOD_NOT_ALLOWED`, both \
with this body.

The prose reference, with examples, is `docs/api.md` in the repository.";

/// Adds the bearer scheme the `/v1` operations require.
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut Spec) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            responses::BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API token: the admin token from `<data-dir>/admin.token`, or one \
                         minted with `POST /v1/tokens`.",
                    ))
                    .build(),
            ),
        );
    }
}

/// The spec as served: rendered once at start-up.
#[derive(Clone)]
pub struct Published {
    json: Bytes,
    page: Arc<str>,
}

/// The `/docs` page: Scalar renders the embedded spec (its script loads
/// from a CDN in the reader's browser; the host serves only this page).
const PAGE: &str = r#"<!doctype html>
<html>
<head>
  <title>Plugboard HTTP API</title>
  <meta charset="utf-8"/>
  <meta name="viewport" content="width=device-width, initial-scale=1"/>
</head>
<body>
<script id="api-reference" type="application/json">
$spec
</script>
<script src="https://cdn.jsdelivr.net/npm/@scalar/api-reference"></script>
</body>
</html>
"#;

impl Published {
    /// Renders `spec` as JSON and as the docs page.
    pub fn new(spec: &Spec) -> Self {
        let json = serde_json::to_vec(spec).unwrap_or_default();
        let page = utoipa_scalar::Scalar::new(spec.clone())
            .custom_html(PAGE)
            .to_html();
        Self {
            json: json.into(),
            page: page.into(),
        }
    }
}

/// The OpenAPI 3.1 description of this API.
///
/// Public, like `/healthz`: it describes the routes and holds no secrets.
#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "openapi",
    tag = "meta",
    responses((
        status = 200,
        description = "The spec (OpenAPI 3.1).",
        content_type = "application/json",
        body = Object,
    )),
)]
pub async fn openapi_json(Extension(spec): Extension<Arc<Published>>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        spec.json.clone(),
    )
        .into_response()
}

/// The human-readable API reference.
///
/// A page that renders `/openapi.json` (with Scalar, loaded from a CDN by
/// the browser).
#[utoipa::path(
    get,
    path = "/docs",
    operation_id = "docs",
    tag = "meta",
    responses((
        status = 200,
        description = "An HTML page.",
        content_type = "text/html",
        body = String,
    )),
)]
pub async fn docs(Extension(spec): Extension<Arc<Published>>) -> Html<String> {
    Html(spec.page.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The spec the router builds, as JSON.
    fn spec() -> serde_json::Value {
        serde_json::to_value(crate::api::openapi()).expect("serialises")
    }

    #[test]
    fn every_operation_is_unique_tagged_and_summarised() {
        let spec = spec();
        assert!(
            spec["openapi"].as_str().unwrap_or("").starts_with("3.1."),
            "{}",
            spec["openapi"]
        );
        let mut ids = std::collections::HashSet::new();
        for (path, item) in spec["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("path item") {
                let what = format!("{method} {path}");
                let id = op["operationId"].as_str().expect(&what);
                assert!(ids.insert(id.to_owned()), "operationId {id} twice");
                assert!(op["summary"].is_string(), "{what} has no summary");
                assert!(
                    op["tags"].as_array().is_some_and(|t| !t.is_empty()),
                    "{what}"
                );
                let secured = op.get("security").is_some();
                assert_eq!(
                    secured,
                    (path.starts_with("/v1/") && !path.starts_with("/v1/webhooks/"))
                        || path == "/metrics",
                    "{what}: security"
                );
            }
        }
    }

    #[test]
    fn error_responses_list_their_codes_with_the_right_status() {
        let spec = spec();
        for (path, item) in spec["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("path item") {
                for (status, response) in op["responses"].as_object().expect("responses") {
                    let Ok(status) = status.parse::<u16>() else {
                        continue;
                    };
                    let listed = response[responses::CODES_EXTENSION].as_array();
                    if status < 400 {
                        assert!(listed.is_none(), "{method} {path} {status}");
                        continue;
                    }
                    let listed = listed
                        .unwrap_or_else(|| panic!("{method} {path} {status} lists no error codes"));
                    assert!(!listed.is_empty());
                    for code in listed {
                        let code = codes::by_name(code.as_str().unwrap_or(""))
                            .unwrap_or_else(|| panic!("unknown code {code}"));
                        assert_eq!(code.status, status, "{method} {path}: {}", code.code);
                    }
                }
            }
        }
    }
}

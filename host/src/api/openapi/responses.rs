//! Error responses in the spec: one response per status, listing its codes
//! (in the description and in `x-error-codes`) with the shared
//! [`ErrorBody`](super::schemas::ErrorBody) schema narrowed to those codes.
//!
//! Operations declare their codes with [`error_responses!`]; the auth layer
//! of `/v1` adds its own with [`require_bearer`], so the spec cannot forget
//! the 401 of a route behind it.

use std::collections::BTreeMap;

use serde_json::json;
use utoipa::openapi::extensions::ExtensionsBuilder;
use utoipa::openapi::path::Operation;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{AllOfBuilder, ObjectBuilder, Schema, Type};
use utoipa::openapi::security::SecurityRequirement;
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr};

use super::codes::{self, ErrorCode};

/// Name of the extension listing a response's error codes.
pub const CODES_EXTENSION: &str = "x-error-codes";

/// Name of the bearer security scheme.
pub const BEARER: &str = "bearer";

/// How an error reaches the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Media {
    /// The JSON error body.
    Json,
    /// A small HTML page with the message (the browser's OAuth callback).
    Html,
}

/// Declares a unit type whose `IntoResponses` are the error responses of
/// one operation: the codes listed (constants of [`codes`]), then any code
/// groups after `+` (e.g. `codes::CALL`), and `INTERNAL_ERROR`, which every
/// handler can answer. Use it in `responses(…)` of `#[utoipa::path]`.
///
/// ```ignore
/// error_responses!(ShowErrors = [NOT_FOUND]);
/// error_responses!(html BrowserErrors = [OAUTH_DENIED]);
/// ```
macro_rules! error_responses {
    ($name:ident = [$($code:ident),* $(,)?] $(+ $group:path)*) => {
        $crate::api::openapi::error_responses!(@ Json $name = [$($code),*] $(+ $group)*);
    };
    (html $name:ident = [$($code:ident),* $(,)?] $(+ $group:path)*) => {
        $crate::api::openapi::error_responses!(@ Html $name = [$($code),*] $(+ $group)*);
    };
    (@ $media:ident $name:ident = [$($code:ident),*] $(+ $group:path)*) => {
        #[doc = concat!("Error responses of an operation (`", stringify!($name), "`).")]
        pub(crate) struct $name;

        impl utoipa::IntoResponses for $name {
            fn responses() -> std::collections::BTreeMap<
                String,
                utoipa::openapi::RefOr<utoipa::openapi::response::Response>,
            > {
                $crate::api::openapi::responses::responses_for(
                    &[&[$($crate::api::openapi::codes::$code),*] $(, $group)*],
                    $crate::api::openapi::responses::Media::$media,
                )
            }
        }
    };
}
pub(crate) use error_responses;

/// The responses of `groups` (plus `INTERNAL_ERROR`), one per status.
pub fn responses_for(groups: &[&[ErrorCode]], media: Media) -> BTreeMap<String, RefOr<Response>> {
    let all = groups
        .iter()
        .flat_map(|g| g.iter().copied())
        .chain([codes::INTERNAL_ERROR]);
    by_status(all)
        .into_iter()
        .map(|(status, codes)| (status.to_string(), response(&codes, media).into()))
        .collect()
}

/// `codes` grouped by status, each group in catalogue order without
/// repeats.
fn by_status(codes: impl IntoIterator<Item = ErrorCode>) -> BTreeMap<u16, Vec<ErrorCode>> {
    let mut groups: BTreeMap<u16, Vec<ErrorCode>> = BTreeMap::new();
    for c in codes {
        let group = groups.entry(c.status).or_default();
        if !group.contains(&c) {
            group.push(c);
        }
    }
    for group in groups.values_mut() {
        group.sort_by_key(|c| codes::ALL.iter().position(|a| a == c));
    }
    groups
}

/// One error response: the codes and when, the body schema, the extension.
fn response(codes: &[ErrorCode], media: Media) -> Response {
    let description = codes
        .iter()
        .map(|c| format!("- `{}`: {}", c.code, c.when))
        .collect::<Vec<_>>()
        .join("\n");
    let names: Vec<&str> = codes.iter().map(|c| c.code).collect();
    let (content_type, schema): (&str, RefOr<Schema>) = match media {
        Media::Json => (
            "application/json",
            AllOfBuilder::new()
                .item(Ref::from_schema_name("ErrorBody"))
                .item(
                    ObjectBuilder::new().property(
                        "error",
                        ObjectBuilder::new().property(
                            "code",
                            ObjectBuilder::new()
                                .schema_type(Type::String)
                                .enum_values(Some(names.clone())),
                        ),
                    ),
                )
                .into(),
        ),
        Media::Html => (
            "text/html",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some("A page with the message."))
                .into(),
        ),
    };
    ResponseBuilder::new()
        .description(description)
        .content(
            content_type,
            ContentBuilder::new().schema(Some(schema)).build(),
        )
        .extensions(Some(
            ExtensionsBuilder::new()
                .add(CODES_EXTENSION, json!(names))
                .build(),
        ))
        .build()
}

/// The codes a response lists, if it is an error response.
fn listed(response: &RefOr<Response>) -> Vec<ErrorCode> {
    let RefOr::T(response) = response else {
        return Vec::new();
    };
    response
        .extensions
        .as_ref()
        .and_then(|e| e.get(CODES_EXTENSION))
        .and_then(|v| v.as_array())
        .into_iter()
        .flatten()
        .filter_map(|v| codes::by_name(v.as_str()?))
        .collect()
}

/// Adds `codes` to an operation's JSON error responses, merging with the
/// codes already listed for the same status.
pub fn add_codes(operation: &mut Operation, codes: &[ErrorCode]) {
    let responses = &mut operation.responses.responses;
    for (status, new) in by_status(codes.iter().copied()) {
        let key = status.to_string();
        let mut all = responses.get(&key).map(listed).unwrap_or_default();
        all.extend(new);
        let merged = by_status(all).remove(&status).unwrap_or_default();
        responses.insert(key, response(&merged, Media::Json).into());
    }
}

/// Marks every operation of `api` as needing a bearer token, with the
/// auth layer's answers: 401 `UNAUTHORIZED`, 403 `FORBIDDEN` (the token's
/// scope). Called on the routes behind `auth::require_token`.
pub fn require_bearer(api: &mut OpenApi) {
    for item in api.paths.paths.values_mut() {
        for operation in [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.options,
            &mut item.head,
            &mut item.patch,
            &mut item.trace,
        ]
        .into_iter()
        .flatten()
        {
            operation.security = Some(vec![SecurityRequirement::new::<_, _, &str>(BEARER, [])]);
            add_codes(operation, &[codes::UNAUTHORIZED, codes::FORBIDDEN]);
        }
    }
}

//! The API's error type: an HTTP status, a stable machine-readable code, a
//! human message and optional structured details, always rendered as
//! `{"status":"ERROR","error":{"code":…,"message":…,"details":…}}`.
//!
//! Codes are part of the API contract: add new ones, never rename.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::egress::category::ErrorCategory;
use crate::runtime::{GuestError, InvokeError, LoadError};
use crate::store::StoreError;

/// An API error response.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable code, e.g. `INVALID_PARAMS`.
    pub code: &'static str,
    /// Human-readable message.
    pub message: String,
    /// Structured details (field errors, upstream status, …).
    pub details: Option<Value>,
    /// Seconds for a `Retry-After` header.
    pub retry_after: Option<u32>,
    /// Extra top-level members of the error body (e.g. `invocationId`,
    /// `outbound`), next to `status` and `error`.
    pub extra: serde_json::Map<String, Value>,
    /// The request body was left unread, so the connection cannot be
    /// reused: the answer says `Connection: close`, or the client races a
    /// half-closed socket.
    pub body_unread: bool,
}

/// Result alias for handlers.
pub type ApiResult<T> = Result<T, ApiError>;

/// The error code of an error response, left in its extensions for the
/// audit trail (which records outcomes without parsing bodies).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ErrorCode(pub &'static str);

impl ApiError {
    /// A new error.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: None,
            retry_after: None,
            extra: serde_json::Map::new(),
            body_unread: false,
        }
    }

    /// Adds details.
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// Adds a top-level member to the error body.
    pub fn with_top(mut self, key: &str, value: Value) -> Self {
        self.extra.insert(key.to_owned(), value);
        self
    }

    /// A broker refusal: `target` and `retryAfterMs` in the details, and a
    /// `Retry-After` header rounded up to whole seconds (at least 1).
    fn retry_later(
        status: StatusCode,
        code: &'static str,
        message: String,
        target: String,
        retry_after: std::time::Duration,
    ) -> Self {
        let mut e = Self::new(status, code, message).with_details(json!({
            "target": target,
            "retryAfterMs": retry_after.as_millis() as u64,
        }));
        e.retry_after = Some((retry_after.as_secs_f64().ceil() as u32).max(1));
        e
    }

    /// Marks the request body as unread (see [`ApiError::body_unread`]).
    pub fn body_unread(mut self) -> Self {
        self.body_unread = true;
        self
    }

    /// 400 with a code.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 404 `NOT_FOUND`.
    pub fn not_found(what: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!("{what} not found"),
        )
    }

    /// 500 `INTERNAL_ERROR`; the detail goes to the log, not the client.
    pub fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL_ERROR",
            "internal error; see the host log",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let category = category(self.code);
        let mut error = json!({
            "code": self.code,
            "message": self.message,
            "category": category.as_str(),
            "retryable": category.retryable(),
        });
        if let Some(d) = self.details {
            error["details"] = d;
        }
        let mut body = self.extra;
        body.insert("status".into(), json!("ERROR"));
        body.insert("error".into(), error);
        let mut response = (self.status, axum::Json(Value::Object(body))).into_response();
        response.extensions_mut().insert(ErrorCode(self.code));
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.body_unread {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if self.status == StatusCode::UNAUTHORIZED && self.code == "UNAUTHORIZED" {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(m) => Self::new(StatusCode::CONFLICT, "CONFLICT", m),
            StoreError::NotFound(what) => Self::not_found(what),
            other => Self::internal(other),
        }
    }
}

impl From<LoadError> for ApiError {
    fn from(e: LoadError) -> Self {
        match e {
            LoadError::InvalidComponent(m) => Self::bad_request("INVALID_COMPONENT", m),
            LoadError::WorldMismatch {
                message,
                missing,
                unexpected,
            } => Self::bad_request("WORLD_MISMATCH", message)
                .with_details(json!({ "missing": missing, "unexpected": unexpected })),
            LoadError::InvalidManifest(m) => Self::bad_request("INVALID_MANIFEST", m.to_string())
                .with_details(json!({ "field": m.field })),
            LoadError::DescribeFailed(m) => Self::bad_request("DESCRIBE_FAILED", m),
            LoadError::Internal(m) => Self::internal(m),
        }
    }
}

impl From<InvokeError> for ApiError {
    fn from(e: InvokeError) -> Self {
        use StatusCode as S;
        let message = e.to_string();
        match e {
            InvokeError::Timeout(after) => Self::new(S::GATEWAY_TIMEOUT, "TIMEOUT_ERROR", message)
                .with_details(json!({ "timeoutMs": after.as_millis() as u64 })),
            InvokeError::MemoryLimit(_) => {
                Self::new(S::INTERNAL_SERVER_ERROR, "MEMORY_LIMIT", message)
            }
            InvokeError::Trapped(_) => {
                Self::new(S::INTERNAL_SERVER_ERROR, "CONNECTOR_TRAPPED", message)
            }
            InvokeError::HostDenied { target, .. } => {
                Self::new(S::FORBIDDEN, "HOST_DENIED", message)
                    .with_details(json!({ "target": target }))
            }
            InvokeError::OutboundLimit { target, .. } => {
                Self::new(S::BAD_GATEWAY, "OUTBOUND_LIMIT", message)
                    .with_details(json!({ "target": target }))
            }
            InvokeError::UpstreamTimeout { target, .. } => {
                Self::new(S::GATEWAY_TIMEOUT, "UPSTREAM_TIMEOUT", message)
                    .with_details(json!({ "target": target }))
            }
            InvokeError::UpstreamUnreachable { target, .. } => {
                Self::new(S::BAD_GATEWAY, "UPSTREAM_UNREACHABLE", message)
                    .with_details(json!({ "target": target }))
            }
            InvokeError::UpstreamCertificate { target, .. } => {
                Self::new(S::BAD_GATEWAY, "UPSTREAM_CERTIFICATE", message)
                    .with_details(json!({ "target": target }))
            }
            InvokeError::RateLimited {
                target,
                retry_after,
                ..
            } => Self::retry_later(
                S::TOO_MANY_REQUESTS,
                "RATE_LIMIT_EXCEEDED",
                message,
                target,
                retry_after,
            ),
            InvokeError::UpstreamUnavailable {
                target,
                retry_after,
                ..
            } => Self::retry_later(
                S::SERVICE_UNAVAILABLE,
                "UPSTREAM_UNAVAILABLE",
                message,
                target,
                retry_after,
            ),
            InvokeError::Capacity(_) => {
                let mut e = Self::new(S::SERVICE_UNAVAILABLE, "CAPACITY_EXCEEDED", message);
                e.retry_after = Some(1);
                e
            }
            InvokeError::Internal(m) => Self::internal(m),
            InvokeError::Guest(g) => guest_error(g),
        }
    }
}

/// Maps the connector's own error variant onto the API.
fn guest_error(g: GuestError) -> ApiError {
    use StatusCode as S;
    match g {
        GuestError::InvalidInput(m) => ApiError::bad_request("INVALID_PARAMS", m),
        GuestError::Unauthorized(m) => ApiError::new(S::UNAUTHORIZED, "AUTH_REQUIRED", m),
        GuestError::NotFound(m) => ApiError::new(S::NOT_FOUND, "UPSTREAM_NOT_FOUND", m),
        GuestError::RateLimited {
            message,
            retry_after_secs,
        } => {
            let mut e = ApiError::new(S::TOO_MANY_REQUESTS, "RATE_LIMIT_EXCEEDED", message)
                .with_details(json!({ "retryAfterSecs": retry_after_secs }));
            e.retry_after = retry_after_secs;
            e
        }
        GuestError::Upstream { status, message } => {
            // 4xx: the upstream refused what we sent; 5xx (and anything odd):
            // the upstream failed. Callers retry the second, not the first.
            let code = if (400..500).contains(&status) {
                "UPSTREAM_REJECTED"
            } else {
                "UPSTREAM_ERROR"
            };
            let http = if code == "UPSTREAM_REJECTED" {
                S::UNPROCESSABLE_ENTITY
            } else {
                S::BAD_GATEWAY
            };
            ApiError::new(http, code, message).with_details(json!({ "upstreamStatus": status }))
        }
        GuestError::Temporary(m) => ApiError::new(S::SERVICE_UNAVAILABLE, "TEMPORARY_ERROR", m),
        GuestError::Permanent(m) => ApiError::new(S::UNPROCESSABLE_ENTITY, "PERMANENT_ERROR", m),
        GuestError::Config(m) => ApiError::new(S::UNPROCESSABLE_ENTITY, "CONFIG_ERROR", m),
    }
}

/// What a caller (or the rules engine) should do with an error code: retry
/// later (temporary, rate-limited) or fix something first (configuration,
/// permanent).
/// The category of an API error code.
pub(crate) fn category(code: &str) -> ErrorCategory {
    use ErrorCategory as C;
    match code {
        "TIMEOUT_ERROR"
        | "UPSTREAM_TIMEOUT"
        | "UPSTREAM_UNREACHABLE"
        | "UPSTREAM_UNAVAILABLE"
        | "UPSTREAM_ERROR"
        | "TEMPORARY_ERROR"
        | "CAPACITY_EXCEEDED"
        | "OAUTH_TOKEN_ERROR"
        | "INTERNAL_ERROR" => C::Temporary,
        "RATE_LIMIT_EXCEEDED" => C::RateLimited,
        "HOST_DENIED"
        | "UPSTREAM_CERTIFICATE"
        | "CONFIG_ERROR"
        | "AUTH_REQUIRED"
        | "UNAUTHORIZED"
        | "INVALID_CONFIG"
        | "CREDENTIALS_REQUIRED"
        | "CREDENTIALS_UNREADABLE"
        | "WEBHOOK_SIGNATURE_INVALID"
        | "FORBIDDEN" => C::Configuration,
        _ => C::Permanent,
    }
}

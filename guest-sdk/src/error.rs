//! The connector error type, mirroring the WIT `error` variant.
//!
//! It is a separate Rust enum (rather than the generated type) so it can have
//! struct-like variants, `Display`, `std::error::Error` and `From` conversions
//! that make `?` do the right thing inside connector code.

use core::fmt;

use crate::types as wit;

/// Result of connector operations.
pub type Result<T, E = Error> = core::result::Result<T, E>;

/// Why a connector operation failed, in terms the host can act on.
///
/// Each variant maps one-to-one onto the WIT `error` variant; the comment on
/// each names the HTTP status and code the host answers with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// Parameters were well-formed but wrong; name the field. → 400 `INVALID_PARAMS`
    InvalidInput(String),
    /// Credentials missing, expired or rejected upstream. → 401 `AUTH_REQUIRED`
    Unauthorized(String),
    /// The upstream object does not exist. → 404 `UPSTREAM_NOT_FOUND`
    NotFound(String),
    /// The upstream rate-limited the call. → 429 `RATE_LIMIT_EXCEEDED`
    RateLimited {
        /// Human-readable explanation.
        message: String,
        /// Seconds to wait before retrying, when the upstream said so.
        retry_after_secs: Option<u32>,
    },
    /// An upstream answer the connector does not handle more specifically.
    /// → 502 `UPSTREAM_ERROR`
    Upstream {
        /// The HTTP status the upstream returned.
        status: u16,
        /// Short explanation, ideally from the upstream's error body.
        message: String,
    },
    /// A transient failure; the same call may succeed later. → 503 `TEMPORARY_ERROR`
    Temporary(String),
    /// A failure retrying will not fix. → 422 `PERMANENT_ERROR`
    Permanent(String),
    /// The instance configuration is wrong or incomplete. → 422 `CONFIG_ERROR`
    Config(String),
}

impl Error {
    /// Parameters were acceptable JSON but wrong for this operation.
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::InvalidInput(message.into())
    }

    /// Credentials are missing, expired or were rejected.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::Unauthorized(message.into())
    }

    /// The upstream object does not exist.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::NotFound(message.into())
    }

    /// The upstream refused because of a rate limit.
    pub fn rate_limited(message: impl Into<String>, retry_after_secs: Option<u32>) -> Self {
        Self::RateLimited {
            message: message.into(),
            retry_after_secs,
        }
    }

    /// The upstream answered `status`, which the connector does not handle
    /// more specifically.
    pub fn upstream(status: u16, message: impl Into<String>) -> Self {
        Self::Upstream {
            status,
            message: message.into(),
        }
    }

    /// A transient failure (network, timeout); the call may succeed later.
    pub fn temporary(message: impl Into<String>) -> Self {
        Self::Temporary(message.into())
    }

    /// A failure retrying will not fix.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self::Permanent(message.into())
    }

    /// The instance's configuration is wrong or incomplete.
    pub fn config(message: impl Into<String>) -> Self {
        Self::Config(message.into())
    }

    /// The answer to a method name `invoke` does not know.
    ///
    /// The host only calls methods the manifest declares, so this means the
    /// manifest and the dispatch disagree; it is still an input error from
    /// the caller's point of view.
    pub fn unknown_method(method: &str) -> Self {
        Self::InvalidInput(format!("unknown method `{method}`"))
    }

    /// The human-readable message of any variant.
    pub fn message(&self) -> &str {
        match self {
            Self::InvalidInput(m)
            | Self::Unauthorized(m)
            | Self::NotFound(m)
            | Self::Temporary(m)
            | Self::Permanent(m)
            | Self::Config(m) => m,
            Self::RateLimited { message, .. } | Self::Upstream { message, .. } => message,
        }
    }

    /// The variant's name in `snake_case` (`invalid_input`, `rate_limited`, …).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::InvalidInput(_) => "invalid_input",
            Self::Unauthorized(_) => "unauthorized",
            Self::NotFound(_) => "not_found",
            Self::RateLimited { .. } => "rate_limited",
            Self::Upstream { .. } => "upstream",
            Self::Temporary(_) => "temporary",
            Self::Permanent(_) => "permanent",
            Self::Config(_) => "config",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidInput(m) => write!(f, "invalid input: {m}"),
            Self::Unauthorized(m) => write!(f, "unauthorized: {m}"),
            Self::NotFound(m) => write!(f, "not found: {m}"),
            Self::RateLimited {
                message,
                retry_after_secs: Some(secs),
            } => write!(f, "rate limited (retry after {secs}s): {message}"),
            Self::RateLimited { message, .. } => write!(f, "rate limited: {message}"),
            Self::Upstream { status, message } => write!(f, "upstream error {status}: {message}"),
            Self::Temporary(m) => write!(f, "temporary failure: {m}"),
            Self::Permanent(m) => write!(f, "permanent failure: {m}"),
            Self::Config(m) => write!(f, "configuration error: {m}"),
        }
    }
}

impl std::error::Error for Error {}

/// JSON that does not fit the expected type is, in a connector, almost always
/// a parameter problem: `?` on `serde_json::from_*` of params gives
/// `invalid-input`. Parsing upstream bodies goes through
/// [`crate::http::Response::json`], which reports an upstream error instead.
impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Self::InvalidInput(e.to_string())
    }
}

impl From<Error> for wit::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::InvalidInput(m) => Self::InvalidInput(m),
            Error::Unauthorized(m) => Self::Unauthorized(m),
            Error::NotFound(m) => Self::NotFound(m),
            Error::RateLimited {
                message,
                retry_after_secs,
            } => Self::RateLimited(wit::RateLimit {
                message,
                retry_after_secs,
            }),
            Error::Upstream { status, message } => {
                Self::Upstream(wit::UpstreamFailure { status, message })
            }
            Error::Temporary(m) => Self::Temporary(m),
            Error::Permanent(m) => Self::Permanent(m),
            Error::Config(m) => Self::Config(m),
        }
    }
}

impl From<wit::Error> for Error {
    fn from(e: wit::Error) -> Self {
        match e {
            wit::Error::InvalidInput(m) => Self::InvalidInput(m),
            wit::Error::Unauthorized(m) => Self::Unauthorized(m),
            wit::Error::NotFound(m) => Self::NotFound(m),
            wit::Error::RateLimited(r) => Self::RateLimited {
                message: r.message,
                retry_after_secs: r.retry_after_secs,
            },
            wit::Error::Upstream(u) => Self::Upstream {
                status: u.status,
                message: u.message,
            },
            wit::Error::Temporary(m) => Self::Temporary(m),
            wit::Error::Permanent(m) => Self::Permanent(m),
            wit::Error::Config(m) => Self::Config(m),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_the_wit_type() {
        let all = [
            Error::invalid_input("a"),
            Error::unauthorized("b"),
            Error::not_found("c"),
            Error::rate_limited("d", Some(7)),
            Error::upstream(418, "e"),
            Error::temporary("f"),
            Error::permanent("g"),
            Error::config("h"),
        ];
        for e in all {
            let back = Error::from(wit::Error::from(e.clone()));
            assert_eq!(back, e);
        }
    }

    #[test]
    fn serde_errors_are_invalid_input() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code, reason = "only the parse error matters")]
        struct P {
            message: String,
        }
        let e: Error = serde_json::from_str::<P>("{}")
            .map(|_| ())
            .expect_err("must fail")
            .into();
        assert_eq!(e.kind(), "invalid_input");
        assert!(e.message().contains("message"), "{e}");
    }
}

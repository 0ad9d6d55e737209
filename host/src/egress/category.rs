//! The four error categories every broker failure maps to.
//!
//! Callers (API clients, the rules engine) should not have to know HTTP or
//! the broker's internals to decide whether to try again: the category says
//! whether a later attempt can succeed unchanged ([`ErrorCategory::retryable`])
//! and, roughly, who has to act — nobody (temporary, rate-limited), the
//! operator (configuration) or the caller (permanent).

use std::fmt;

use serde::Serialize;

/// What kind of failure a request ended in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCategory {
    /// Transient trouble upstream or on the way (timeouts, 5xx, connection
    /// failures, an open circuit): the same request may succeed later.
    Temporary,
    /// The request itself is wrong (4xx other than auth and rate limits):
    /// repeating it gives the same answer.
    Permanent,
    /// Credentials or settings are missing or wrong (401, 403, a host the
    /// egress policy refuses): an operator has to change something.
    Configuration,
    /// A rate limit, ours or the upstream's: retry after the given delay.
    RateLimited,
}

impl ErrorCategory {
    /// Whether the same request can succeed later without anyone changing
    /// anything. Says nothing about whether the *broker* retries on its own:
    /// it only does that for idempotent requests and a narrower set of
    /// outcomes (see [`super::retry`]).
    pub fn retryable(self) -> bool {
        matches!(self, Self::Temporary | Self::RateLimited)
    }

    /// Stable lowercase name, as used in API errors and stats.
    ///
    /// `rate_limited` is snake_case rather than plain lowercase
    /// (`ratelimited`) so that it reads like the other stable identifiers in
    /// the API; [`Serialize`] uses the same names.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Temporary => "temporary",
            Self::Permanent => "permanent",
            Self::Configuration => "configuration",
            Self::RateLimited => "rate_limited",
        }
    }

    /// The category of an upstream HTTP status; `None` for statuses that are
    /// not failures (1xx, 2xx, 3xx) and for values that are not statuses.
    ///
    /// - 429 → rate-limited.
    /// - 401, 403, 407 → configuration: the host injects credentials, so a
    ///   refusal means the instance's credentials or scopes are wrong, not
    ///   the guest's request.
    /// - 408 and 5xx → temporary, except 501 and 505, which describe what the
    ///   server can do at all and do not change by waiting.
    /// - Any other 4xx → permanent.
    pub fn from_status(status: u16) -> Option<Self> {
        match status {
            429 => Some(Self::RateLimited),
            401 | 403 | 407 => Some(Self::Configuration),
            408 => Some(Self::Temporary),
            400..=499 => Some(Self::Permanent),
            501 | 505 => Some(Self::Permanent),
            500..=599 => Some(Self::Temporary),
            _ => None,
        }
    }
}

impl fmt::Display for ErrorCategory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_categories() {
        use ErrorCategory::*;
        let cases = [
            (429, Some(RateLimited)),
            (408, Some(Temporary)),
            (500, Some(Temporary)),
            (502, Some(Temporary)),
            (503, Some(Temporary)),
            (504, Some(Temporary)),
            (401, Some(Configuration)),
            (403, Some(Configuration)),
            (407, Some(Configuration)),
            (400, Some(Permanent)),
            (404, Some(Permanent)),
            (409, Some(Permanent)),
            (422, Some(Permanent)),
            (501, Some(Permanent)),
            (505, Some(Permanent)),
            (200, None),
            (204, None),
            (301, None),
            (304, None),
            (100, None),
            (0, None),
            (600, None),
        ];
        for (status, want) in cases {
            assert_eq!(ErrorCategory::from_status(status), want, "status {status}");
        }
    }

    #[test]
    fn only_temporary_and_rate_limited_are_retryable() {
        assert!(ErrorCategory::Temporary.retryable());
        assert!(ErrorCategory::RateLimited.retryable());
        assert!(!ErrorCategory::Permanent.retryable());
        assert!(!ErrorCategory::Configuration.retryable());
    }

    #[test]
    fn names_are_stable_and_match_serde() {
        for (c, name) in [
            (ErrorCategory::Temporary, "temporary"),
            (ErrorCategory::Permanent, "permanent"),
            (ErrorCategory::Configuration, "configuration"),
            (ErrorCategory::RateLimited, "rate_limited"),
        ] {
            assert_eq!(c.as_str(), name);
            assert_eq!(c.to_string(), name);
            assert_eq!(serde_json::to_value(c).unwrap(), serde_json::json!(name));
        }
    }
}

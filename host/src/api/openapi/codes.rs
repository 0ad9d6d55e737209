//! The catalogue of stable error codes: each with the one HTTP status it is
//! answered with and when, as the spec documents it (and `docs/api.md`'s
//! table says it). Operations list the codes they can answer by these
//! constants, so a code a spec names but the catalogue lacks does not
//! compile.
//!
//! Codes are part of the API contract: add new ones, never rename.

/// A stable error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorCode {
    /// The code, e.g. `INVALID_PARAMS`.
    pub code: &'static str,
    /// The HTTP status it is always answered with.
    pub status: u16,
    /// When it is answered.
    pub when: &'static str,
}

macro_rules! catalogue {
    ($($name:ident = $status:literal, $when:literal;)*) => {
        $(
            #[doc = $when]
            pub const $name: ErrorCode = ErrorCode {
                code: stringify!($name),
                status: $status,
                when: $when,
            };
        )*
        /// Every code.
        pub const ALL: &[ErrorCode] = &[$($name),*];
    };
}

catalogue! {
    INVALID_REQUEST = 400, "Malformed JSON, unknown fields, a bad name or query parameter.";
    INVALID_COMPONENT = 400, "The upload is not WebAssembly, is a core module, or fails validation.";
    WORLD_MISMATCH = 400, "A valid component of another world (`details`: `missing`, `unexpected`).";
    INVALID_MANIFEST = 400, "`describe` returned a manifest the host refuses (`details.field`).";
    DESCRIBE_FAILED = 400, "`describe` trapped or timed out.";
    INVALID_CONFIG = 400, "The instance config fails the connector's config schema or host patterns (`details.errors[{path,message}]`).";
    CONNECTOR_NOT_FOUND = 400, "The instance refers to a connector that is not uploaded.";
    INVALID_PARAMS = 400, "The parameters fail the method's JSON Schema (checked before guest code runs), or the connector said `invalid-input` (`details.errors[{path,message}]`).";
    INVALID_CREDENTIALS = 400, "The credentials fail the connector's credential schema, are not strings, or are too long; messages name the field and rule, never the value.";
    NOT_OAUTH = 400, "An OAuth endpoint on an instance whose connector does not use the authorization-code grant.";
    OAUTH_STATE_INVALID = 400, "Unknown, already used, or another instance's OAuth `state`.";
    OAUTH_STATE_EXPIRED = 400, "The connect flow's `state` is older than 10 minutes.";
    OAUTH_DENIED = 400, "The provider redirected with an `error` (e.g. `access_denied`); the instance is unchanged.";
    INVALID_RULE = 400, "A rule names an unknown instance or method, or has a bad template, condition path or `in` operand.";
    UNAUTHORIZED = 401, "Missing or invalid API token (`WWW-Authenticate: Bearer`).";
    WEBHOOK_SIGNATURE_INVALID = 401, "The webhook failed signature verification (missing header, bad encoding, mismatch, stale timestamp); no guest code ran.";
    AUTH_REQUIRED = 401, "The connector reported missing or rejected upstream credentials, or the OAuth instance must be reconnected.";
    FORBIDDEN = 403, "The token's scope does not allow this request.";
    HOST_DENIED = 403, "The connector tried to reach a host or address its manifest, instance or the IP policy does not allow (`details.target`).";
    NOT_FOUND = 404, "No such route, connector, instance, token, event, rule or job.";
    METHOD_NOT_FOUND = 404, "The connector has no such method (`details.methods`).";
    UPSTREAM_NOT_FOUND = 404, "The upstream object does not exist (connector `not-found`).";
    METHOD_NOT_ALLOWED = 405, "Wrong HTTP method for the route.";
    CONFLICT = 409, "The write conflicts with stored state: `name@version` exists with other bytes, a connector still has instances, a job that is not dead.";
    IDEMPOTENCY_CONFLICT = 409, "An `Idempotency-Key` reused with another method or other parameters.";
    CREDENTIALS_REQUIRED = 409, "The instance is `PENDING_AUTHENTICATION`: its connector needs credentials and none are set.";
    PAYLOAD_TOO_LARGE = 413, "The body is over the limit (`--max-component-mib`, `--max-request-kib`, 1 MiB for webhooks).";
    UPSTREAM_REJECTED = 422, "The upstream answered 4xx (connector `upstream`; `details.upstreamStatus`).";
    PERMANENT_ERROR = 422, "Connector `permanent`: retrying will not help.";
    CONFIG_ERROR = 422, "Connector `config`, or the instance config or OAuth settings no longer resolve.";
    RATE_LIMIT_EXCEEDED = 429, "Connector `rate-limited`, or a rate budget could not admit a request before the deadline; `Retry-After` when known.";
    INTERNAL_ERROR = 500, "A host failure; details are in the host log.";
    CONNECTOR_TRAPPED = 500, "The guest trapped (panic, abort, stack overflow).";
    MEMORY_LIMIT = 500, "The guest exceeded its memory cap.";
    CREDENTIALS_UNREADABLE = 500, "A stored credential does not open (tampered with, or sealed for another instance); set the credentials again.";
    UPSTREAM_ERROR = 502, "The upstream answered 5xx or otherwise failed (connector `upstream`; `details.upstreamStatus`).";
    UPSTREAM_UNREACHABLE = 502, "Connection refused, reset or timed out on the way to the upstream (`details.target`).";
    UPSTREAM_CERTIFICATE = 502, "The upstream's TLS certificate was refused: not issued by a trusted CA (see `--egress-ca-file`), expired, or for another name (`details.target`); the request was not sent.";
    OUTBOUND_LIMIT = 502, "A request exceeded a per-invocation limit: request count, request or response body size (`details.target`).";
    INVALID_CONNECTOR_OUTPUT = 502, "The connector returned a result that is not JSON or does not match the method's result schema, or an event payload that is not JSON.";
    OAUTH_TOKEN_ERROR = 502, "The OAuth token endpoint refused (its OAuth `error` is in the message) or failed.";
    UPSTREAM_UNAVAILABLE = 503, "The upstream's circuit is open after repeated failures; the request was not sent; `Retry-After`.";
    CAPACITY_EXCEEDED = 503, "Every guest instance slot is busy; `Retry-After: 1`.";
    TEMPORARY_ERROR = 503, "Connector `temporary`: retry later.";
    TIMEOUT_ERROR = 504, "The invocation exceeded its deadline (`details.timeoutMs`).";
    UPSTREAM_TIMEOUT = 504, "An upstream sent no response headers (or no body bytes) in time (`details.target`).";
}

/// What running a guest call can answer, on top of the operation's own
/// codes: the invocation's failures, the connector's error variants, and
/// the instance's credentials and OAuth upkeep before the call.
pub const CALL: &[ErrorCode] = &[
    INVALID_PARAMS,
    AUTH_REQUIRED,
    HOST_DENIED,
    UPSTREAM_NOT_FOUND,
    CREDENTIALS_REQUIRED,
    UPSTREAM_REJECTED,
    PERMANENT_ERROR,
    CONFIG_ERROR,
    RATE_LIMIT_EXCEEDED,
    CONNECTOR_TRAPPED,
    MEMORY_LIMIT,
    CREDENTIALS_UNREADABLE,
    UPSTREAM_ERROR,
    UPSTREAM_UNREACHABLE,
    UPSTREAM_CERTIFICATE,
    OUTBOUND_LIMIT,
    OAUTH_TOKEN_ERROR,
    UPSTREAM_UNAVAILABLE,
    CAPACITY_EXCEEDED,
    TEMPORARY_ERROR,
    TIMEOUT_ERROR,
    UPSTREAM_TIMEOUT,
];

/// The code called `code`.
pub fn by_name(code: &str) -> Option<ErrorCode> {
    ALL.iter().copied().find(|c| c.code == code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_categorised_consistently() {
        let mut seen = std::collections::HashSet::new();
        for c in ALL {
            assert!(seen.insert(c.code), "{} twice", c.code);
            assert!((400..600).contains(&c.status), "{}", c.code);
            // Retryable codes must be answered with a status that says so.
            let retryable = crate::api::error::category(c.code).retryable();
            assert!(
                !retryable || c.status >= 429,
                "{} is retryable but answered with {}",
                c.code,
                c.status
            );
        }
    }
}

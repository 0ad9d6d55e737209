//! What happened to each outbound request of one invocation.
//!
//! The hooks append one [`OutboundRecord`] per *attempt* (a retried request
//! has several), including requests the broker never sent. After the call
//! the runtime reads the journal to explain a failure
//! ([`OutboundJournal::explanation`]), the accounting folds it into the
//! instance's stats, and the API can return it as the invocation's
//! `outbound` summary. Records hold no path, query, header or body: those
//! may carry secrets or personal data.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};

use super::category::ErrorCategory;

/// What the broker decided about one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Sent at once.
    Allowed,
    /// Sent after waiting in a rate budget's queue (or a learned pause).
    Queued,
    /// Sent again after a failed attempt.
    Retried,
    /// Refused by the egress policy or a per-invocation limit; not sent.
    Denied,
    /// Refused because its rate budget could not admit it before the
    /// invocation's deadline; not sent.
    RateLimited,
    /// Refused because the upstream's circuit is open; not sent.
    ShortCircuited,
}

impl Decision {
    /// Stable name, as in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allowed => "allowed",
            Self::Queued => "queued",
            Self::Retried => "retried",
            Self::Denied => "denied",
            Self::RateLimited => "rate_limited",
            Self::ShortCircuited => "short_circuited",
        }
    }
}

/// How one attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutboundOutcome {
    /// Refused by the egress policy (host or address); never left the host.
    Denied(String),
    /// Refused or cut off by a per-invocation limit.
    Limit(String),
    /// Refused by a rate budget; retry after the given time.
    RateLimited {
        /// Which budget, and why.
        reason: String,
        /// When the budget may admit a request again.
        retry_after: Duration,
    },
    /// Refused by an open circuit breaker; retry after the given time.
    Unavailable {
        /// Why.
        reason: String,
        /// When the circuit may let a probe through.
        retry_after: Duration,
    },
    /// The upstream did not answer (or stopped sending) in time.
    Timeout(String),
    /// Transport failure before a response (refused, reset, TLS, DNS).
    Failed(String),
    /// The upstream's TLS certificate was refused (untrusted issuer,
    /// expired, another name): a configuration matter, not sent again.
    Certificate(String),
    /// The upstream answered with this status.
    Status(u16),
}

impl OutboundOutcome {
    /// The category of a failure; `None` for a successful status.
    pub fn category(&self) -> Option<ErrorCategory> {
        match self {
            Self::Denied(_) | Self::Certificate(_) => Some(ErrorCategory::Configuration),
            Self::Limit(_) => Some(ErrorCategory::Permanent),
            Self::RateLimited { .. } => Some(ErrorCategory::RateLimited),
            Self::Unavailable { .. } | Self::Timeout(_) | Self::Failed(_) => {
                Some(ErrorCategory::Temporary)
            }
            Self::Status(s) => ErrorCategory::from_status(*s),
        }
    }

    /// Short stable name of the outcome kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Denied(_) => "denied",
            Self::Limit(_) => "limit",
            Self::RateLimited { .. } => "rate_limited",
            Self::Unavailable { .. } => "unavailable",
            Self::Timeout(_) => "timeout",
            Self::Failed(_) => "failed",
            Self::Certificate(_) => "certificate",
            Self::Status(_) => "status",
        }
    }

    fn message(&self) -> Option<&str> {
        match self {
            Self::Denied(m)
            | Self::Limit(m)
            | Self::Timeout(m)
            | Self::Failed(m)
            | Self::Certificate(m) => Some(m),
            Self::RateLimited { reason, .. } | Self::Unavailable { reason, .. } => Some(reason),
            Self::Status(_) => None,
        }
    }

    /// How well this outcome explains a failed invocation: lower is better,
    /// `None` for plain statuses (the guest's own error says more).
    fn rank(&self) -> Option<u8> {
        match self {
            Self::Denied(_) => Some(0),
            Self::Certificate(_) => Some(1),
            Self::Limit(_) => Some(2),
            Self::RateLimited { .. } => Some(3),
            Self::Unavailable { .. } => Some(4),
            Self::Timeout(_) => Some(5),
            Self::Failed(_) => Some(6),
            Self::Status(_) => None,
        }
    }

    /// Whether the attempt reached the network (an answer, a timeout or a
    /// transport failure), as opposed to being refused inside the host.
    pub fn reached_upstream(&self) -> bool {
        matches!(
            self,
            Self::Status(_) | Self::Timeout(_) | Self::Failed(_) | Self::Certificate(_)
        )
    }
}

/// One attempt of one outbound request, as seen by the host.
#[derive(Debug, Clone)]
pub struct OutboundRecord {
    /// HTTP method.
    pub method: String,
    /// `scheme://host:port` (no path or query: those may carry data).
    pub upstream: Arc<str>,
    /// 1 for the first attempt of a request, 2 for its first retry, …
    pub attempt: u32,
    /// What the broker decided.
    pub decision: Decision,
    /// Time spent waiting on rate budgets before sending.
    pub queued: Duration,
    /// How the request ended, up to the response headers.
    pub outcome: OutboundOutcome,
    /// How the response body ended, if it ended early (cap or idle timeout).
    pub body_error: Option<OutboundOutcome>,
    /// Time from sending to response headers (or failure).
    pub elapsed: Duration,
    /// Request body bytes sent (the body is buffered, so known up front).
    pub bytes_out: u64,
    /// Response body bytes received so far.
    pub bytes_in: Arc<AtomicU64>,
}

impl OutboundRecord {
    /// A record of an attempt that has not been timed yet: nothing queued,
    /// sent or received (the sender fills in what happened).
    pub fn new(
        method: String,
        upstream: Arc<str>,
        attempt: u32,
        decision: Decision,
        outcome: OutboundOutcome,
    ) -> Self {
        Self {
            method,
            upstream,
            attempt,
            decision,
            queued: Duration::ZERO,
            outcome,
            body_error: None,
            elapsed: Duration::ZERO,
            bytes_out: 0,
            bytes_in: Arc::default(),
        }
    }

    /// `METHOD scheme://host:port`, for messages.
    pub fn target(&self) -> String {
        format!("{} {}", self.method, self.upstream)
    }

    /// The outcome that decides how this attempt counts: a body failure
    /// overrides the status that preceded it.
    pub fn effective_outcome(&self) -> &OutboundOutcome {
        self.body_error.as_ref().unwrap_or(&self.outcome)
    }

    /// The API form (the invocation's `outbound` summary).
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "method": self.method,
            "upstream": &*self.upstream,
            "attempt": self.attempt,
            "decision": self.decision.as_str(),
            "queuedMs": millis(self.queued),
            "latencyMs": millis(self.elapsed),
            "bytesOut": self.bytes_out,
            "bytesIn": self.bytes_in.load(Ordering::Relaxed),
        });
        if let OutboundOutcome::Status(s) = self.outcome {
            v["status"] = json!(s);
        }
        let outcome = self.effective_outcome();
        if let Some(category) = outcome.category() {
            let mut error = json!({ "kind": outcome.kind(), "category": category.as_str() });
            if let Some(m) = outcome.message() {
                error["message"] = json!(m);
            }
            v["error"] = error;
        }
        v
    }
}

/// Milliseconds with microsecond precision.
pub fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// Outbound attempts of one invocation, in the order they were made.
#[derive(Debug, Default)]
pub struct OutboundJournal {
    /// One per attempt.
    pub records: Vec<OutboundRecord>,
}

impl OutboundJournal {
    /// Appends a record and returns its index (to attach a body failure).
    pub fn push(&mut self, record: OutboundRecord) -> usize {
        self.records.push(record);
        self.records.len() - 1
    }
}

/// The attempt that best explains a failed invocation, if the host saw
/// one: a refusal first, then a limit, a rate budget, an open circuit, a
/// timeout, a transport failure.
pub fn explanation(records: &[OutboundRecord]) -> Option<(&OutboundRecord, &OutboundOutcome)> {
    records
        .iter()
        .flat_map(|r| {
            [Some(&r.outcome), r.body_error.as_ref()]
                .into_iter()
                .flatten()
                .map(move |o| (r, o))
        })
        .filter_map(|(r, o)| o.rank().map(|k| (k, r, o)))
        .min_by_key(|(k, _, _)| *k)
        .map(|(_, r, o)| (r, o))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(outcome: OutboundOutcome) -> OutboundRecord {
        OutboundRecord {
            elapsed: Duration::from_micros(1500),
            bytes_in: Arc::new(AtomicU64::new(42)),
            ..OutboundRecord::new(
                "GET".into(),
                Arc::from("https://api.example.com:443"),
                1,
                Decision::Allowed,
                outcome,
            )
        }
    }

    #[test]
    fn explanation_prefers_refusals_and_ignores_statuses() {
        let mut j = OutboundJournal::default();
        j.push(record(OutboundOutcome::Status(503)));
        assert!(explanation(&j.records).is_none());
        j.push(record(OutboundOutcome::Failed("reset".into())));
        j.push(record(OutboundOutcome::Unavailable {
            reason: "open".into(),
            retry_after: Duration::from_secs(3),
        }));
        let (_, o) = explanation(&j.records).unwrap();
        assert!(matches!(o, OutboundOutcome::Unavailable { .. }), "{o:?}");
        let mut body = record(OutboundOutcome::Status(200));
        body.body_error = Some(OutboundOutcome::Limit("too big".into()));
        j.push(body);
        let (r, o) = explanation(&j.records).unwrap();
        assert_eq!(o, &OutboundOutcome::Limit("too big".into()));
        assert_eq!(r.outcome, OutboundOutcome::Status(200));
    }

    #[test]
    fn summary_names_the_error_and_its_category() {
        let v = record(OutboundOutcome::Status(429)).to_json();
        assert_eq!(v["status"], 429);
        assert_eq!(v["decision"], "allowed");
        assert_eq!(v["latencyMs"], 1.5);
        assert_eq!(v["bytesIn"], 42);
        assert_eq!(v["error"]["category"], "rate_limited");
        let ok = record(OutboundOutcome::Status(200)).to_json();
        assert!(ok.get("error").is_none(), "{ok}");
        let denied = record(OutboundOutcome::Denied("nope".into())).to_json();
        assert_eq!(denied["error"]["category"], "configuration");
        assert_eq!(denied["error"]["message"], "nope");
        assert!(denied.get("status").is_none());
    }
}

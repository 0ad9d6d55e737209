//! The `WasiHttpHooks` implementation every guest store uses: the
//! per-invocation side of the broker.
//!
//! `send_request` is wasmtime-wasi-http's interception point. In order, a
//! request must: match the instance's allowlist (scheme, host, port of the
//! URL itself — headers play no part, and `Host` is a forbidden header), fit
//! the per-invocation request count, and then go out through the shared
//! [`Broker`] client, which connects only to addresses the IP policy accepts.
//! Bodies are metered both ways. Every attempt lands in the invocation's
//! [`OutboundJournal`], so the API can say *why* a call failed even when the
//! guest only reports a generic error.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::HeaderName;
use wasmtime_wasi_http::{
    DEFAULT_FORBIDDEN_HEADERS, Error as HttpError, ForbiddenHeaderFilter, RequestOptions, WasiBody,
    WasiHttpHooks,
};

use super::body::{Direction, Metered};
use super::{Allowlist, Broker};

/// What happened to one outbound request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutboundOutcome {
    /// Refused by the egress policy (host or address); never left the host.
    Denied(String),
    /// Refused or cut off by a per-invocation limit.
    Limit(String),
    /// The upstream did not answer (or stopped sending) in time.
    Timeout(String),
    /// Transport failure before a response (refused, reset, TLS, DNS).
    Failed(String),
    /// The upstream answered with this status.
    Status(u16),
}

/// One outbound request as seen by the host.
#[derive(Debug, Clone)]
pub struct OutboundRecord {
    /// `METHOD scheme://authority` (no path or query: those may carry data).
    pub target: String,
    /// Outcome.
    pub outcome: OutboundOutcome,
    /// Time to response headers or failure.
    pub elapsed: Duration,
    /// Request body bytes sent so far.
    pub bytes_out: Arc<AtomicU64>,
    /// Response body bytes received so far.
    pub bytes_in: Arc<AtomicU64>,
}

/// Outbound requests of one invocation.
#[derive(Debug, Default)]
pub struct OutboundJournal {
    /// In order of sending (a body failure adds a second record).
    pub records: Vec<OutboundRecord>,
}

impl OutboundJournal {
    /// The record that best explains a failed invocation, if the host saw
    /// one: a refusal first, then a limit, a timeout, a transport failure.
    pub fn explanation(&self) -> Option<&OutboundRecord> {
        let rank = |o: &OutboundOutcome| match o {
            OutboundOutcome::Denied(_) => Some(0),
            OutboundOutcome::Limit(_) => Some(1),
            OutboundOutcome::Timeout(_) => Some(2),
            OutboundOutcome::Failed(_) => Some(3),
            OutboundOutcome::Status(_) => None,
        };
        self.records
            .iter()
            .filter_map(|r| rank(&r.outcome).map(|k| (k, r)))
            .min_by_key(|(k, _)| *k)
            .map(|(_, r)| r)
    }
}

/// Headers a guest may never set: wasi-http's defaults (`Host`,
/// hop-by-hop headers) plus headers that would let a guest speak for the
/// host or its network position.
const HOST_OWNED_HEADERS: [&str; 7] = [
    "te",
    "trailer",
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-real-ip",
];

fn forbidden(name: &HeaderName) -> bool {
    DEFAULT_FORBIDDEN_HEADERS.contains(name) || HOST_OWNED_HEADERS.contains(&name.as_str())
}

/// Per-invocation hooks.
pub struct EgressHooks {
    broker: Arc<Broker>,
    allowlist: Arc<Allowlist>,
    journal: Arc<Mutex<OutboundJournal>>,
    connector: Arc<str>,
    sent: u32,
}

impl EgressHooks {
    /// Hooks for one invocation of `connector` with `allowlist`.
    pub fn new(broker: Arc<Broker>, connector: Arc<str>, allowlist: Arc<Allowlist>) -> Self {
        Self {
            broker,
            allowlist,
            journal: Arc::default(),
            connector,
            sent: 0,
        }
    }

    /// The journal, shared with in-flight request futures.
    pub fn journal(&self) -> Arc<Mutex<OutboundJournal>> {
        self.journal.clone()
    }
}

fn push(journal: &Mutex<OutboundJournal>, record: OutboundRecord) {
    // A poisoned journal only means another request future panicked; the
    // records are still plain data, so keep appending.
    journal
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .records
        .push(record);
}

type SendFuture = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), HttpError>> + Send>,
                ),
                HttpError,
            >,
        > + Send,
>;

fn shorter(a: Option<Duration>, b: Duration) -> Duration {
    a.map_or(b, |a| a.min(b))
}

impl WasiHttpHooks for EgressHooks {
    fn forbidden_header_filter(&mut self) -> ForbiddenHeaderFilter {
        Arc::new(forbidden)
    }

    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> SendFuture {
        let uri = request.uri();
        let target = format!(
            "{} {}://{}",
            request.method(),
            uri.scheme_str().unwrap_or("?"),
            uri.authority().map(|a| a.as_str()).unwrap_or("?")
        );
        let record = |outcome: OutboundOutcome, elapsed: Duration| OutboundRecord {
            target: target.clone(),
            outcome,
            elapsed,
            bytes_out: Arc::default(),
            bytes_in: Arc::default(),
        };
        if !self.allowlist.allows(uri) {
            tracing::warn!(connector = %self.connector, %target, "outbound request denied: host not allowed");
            push(
                &self.journal,
                record(
                    OutboundOutcome::Denied(
                        "the host is not declared by the connector for this instance".into(),
                    ),
                    Duration::ZERO,
                ),
            );
            return Box::new(async { Err(HttpError::HttpRequestDenied) });
        }
        let settings = self.broker.settings();
        self.sent += 1;
        if self.sent > settings.max_requests {
            let message = format!(
                "more than {} outbound requests in one invocation",
                settings.max_requests
            );
            tracing::warn!(connector = %self.connector, %target, %message, "outbound request refused");
            push(
                &self.journal,
                record(OutboundOutcome::Limit(message), Duration::ZERO),
            );
            return Box::new(async { Err(HttpError::ConnectionLimitReached) });
        }

        let first_byte = shorter(
            options.and_then(|o| o.first_byte_timeout),
            settings.first_byte_timeout,
        );
        let between_bytes = shorter(
            options.and_then(|o| o.between_bytes_timeout),
            settings.between_bytes_timeout,
        );
        let template = record(OutboundOutcome::Status(0), Duration::ZERO);
        let (max_out, max_in) = (
            settings.max_request_body_bytes,
            settings.max_response_body_bytes,
        );
        let request = request.map(|body| {
            Metered::wrap(
                body,
                Direction::Request,
                max_out,
                template.bytes_out.clone(),
                None,
            )
        });
        let journal = self.journal.clone();
        let connector = self.connector.clone();
        let broker = self.broker.clone();
        Box::new(async move {
            let start = Instant::now();
            let finish = |outcome: OutboundOutcome| OutboundRecord {
                outcome,
                elapsed: start.elapsed(),
                ..template.clone()
            };
            match tokio::time::timeout(first_byte, broker.client().send(request)).await {
                Ok(Ok(response)) => {
                    let status = response.status().as_u16();
                    tracing::debug!(%connector, target = %template.target, status, elapsed = ?start.elapsed(), "outbound request");
                    push(&journal, finish(OutboundOutcome::Status(status)));
                    let body_journal = journal.clone();
                    let body_record = finish(OutboundOutcome::Status(status));
                    let response = response.map(|body| {
                        Metered::wrap_reporting(
                            body,
                            Direction::Response,
                            max_in,
                            template.bytes_in.clone(),
                            Some(between_bytes),
                            Box::new(move |e: &HttpError| {
                                let outcome = match e {
                                    HttpError::HttpResponseBodySize(_) => OutboundOutcome::Limit(
                                        format!("response body larger than {max_in} bytes"),
                                    ),
                                    _ => OutboundOutcome::Timeout(format!(
                                        "no response body bytes for {between_bytes:?}"
                                    )),
                                };
                                push(
                                    &body_journal,
                                    OutboundRecord {
                                        outcome,
                                        ..body_record
                                    },
                                );
                            }),
                        )
                    });
                    Ok((
                        response,
                        Box::new(async { Ok(()) }) as Box<dyn Future<Output = _> + Send>,
                    ))
                }
                Ok(Err(e)) => {
                    tracing::info!(%connector, target = %template.target, reason = %e.detail, "outbound request failed");
                    let outcome = if e.refused {
                        OutboundOutcome::Denied(e.detail)
                    } else {
                        OutboundOutcome::Failed(e.detail)
                    };
                    push(&journal, finish(outcome));
                    Err(e.code)
                }
                Err(_) => {
                    let message = format!("no response headers within {first_byte:?}");
                    tracing::info!(%connector, target = %template.target, %message, "outbound request timed out");
                    push(&journal, finish(OutboundOutcome::Timeout(message)));
                    Err(HttpError::HttpResponseTimeout)
                }
            }
        })
    }
}

//! The `WasiHttpHooks` implementation every guest store uses.
//!
//! `send_request` is wasmtime-wasi-http's interception point: a refused
//! request returns `HttpRequestDenied`, which the guest sees as the wasi:http
//! error code of that name (not a connection reset). Every attempt, allowed
//! or not, lands in the invocation's [`OutboundJournal`], so the API can say
//! *why* a call failed even when the guest only reports a generic error.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

use super::Allowlist;

/// What happened to one outbound request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutboundOutcome {
    /// Refused by the egress policy; never left the host.
    Denied,
    /// The upstream answered with this status.
    Status(u16),
    /// Transport failure before a response (refused, timeout, TLS, DNS).
    Failed(String),
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
}

/// Outbound requests of one invocation.
#[derive(Debug, Default)]
pub struct OutboundJournal {
    /// In order of sending.
    pub records: Vec<OutboundRecord>,
}

impl OutboundJournal {
    /// The first request the policy refused, if any.
    pub fn first_denied(&self) -> Option<&OutboundRecord> {
        self.records
            .iter()
            .find(|r| r.outcome == OutboundOutcome::Denied)
    }

    /// The last transport failure, if any.
    pub fn last_failure(&self) -> Option<&OutboundRecord> {
        self.records
            .iter()
            .rev()
            .find(|r| matches!(r.outcome, OutboundOutcome::Failed(_)))
    }
}

/// Per-invocation hooks: the instance's allowlist and the journal.
pub struct EgressHooks {
    allowlist: Arc<Allowlist>,
    journal: Arc<Mutex<OutboundJournal>>,
    connector: Arc<str>,
}

impl EgressHooks {
    /// Hooks for one invocation of `connector` with `allowlist`.
    pub fn new(connector: Arc<str>, allowlist: Arc<Allowlist>) -> Self {
        Self {
            allowlist,
            journal: Arc::default(),
            connector,
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

impl WasiHttpHooks for EgressHooks {
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
        if !self.allowlist.allows(uri) {
            tracing::warn!(connector = %self.connector, %target, "outbound request denied: host not allowed");
            push(
                &self.journal,
                OutboundRecord {
                    target,
                    outcome: OutboundOutcome::Denied,
                    elapsed: Duration::ZERO,
                },
            );
            return Box::new(async { Err(HttpError::HttpRequestDenied) });
        }
        let journal = self.journal.clone();
        let connector = self.connector.clone();
        Box::new(async move {
            let start = Instant::now();
            let result = wasmtime_wasi_http::default_send_request(request, options).await;
            let elapsed = start.elapsed();
            match result {
                Ok((response, io)) => {
                    let status = response.status().as_u16();
                    tracing::debug!(%connector, %target, status, ?elapsed, "outbound request");
                    push(
                        &journal,
                        OutboundRecord {
                            target,
                            outcome: OutboundOutcome::Status(status),
                            elapsed,
                        },
                    );
                    Ok((
                        response.map(BodyExt::boxed_unsync),
                        Box::new(io) as Box<dyn Future<Output = _> + Send>,
                    ))
                }
                Err(e) => {
                    let reason = describe_error(&e);
                    tracing::info!(%connector, %target, %reason, "outbound request failed");
                    push(
                        &journal,
                        OutboundRecord {
                            target,
                            outcome: OutboundOutcome::Failed(reason),
                            elapsed,
                        },
                    );
                    Err(e)
                }
            }
        })
    }
}

fn describe_error(e: &HttpError) -> String {
    match e {
        HttpError::Connect(io) => format!("connect failed: {}", io.kind()),
        HttpError::Tls(io) => format!("TLS failed: {}", io.kind()),
        other => format!("{other:?}"),
    }
}

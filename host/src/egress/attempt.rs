//! Sending one guest request once it passed the allowlist: the circuit
//! breaker, the rate budgets, the pooled client, and retries.
//!
//! Per attempt, in this order:
//!
//! 1. **Breaker** of the upstream: an open circuit fails the request at once
//!    (`short_circuited`), before it could wait in a budget queue.
//! 2. **Budgets**: the shared (upstream, credential) budget — always listed,
//!    so a learned `Retry-After` pause holds even without a configured rate
//!    — and the instance's own, if set. A request that cannot be admitted
//!    before the invocation's deadline (less [`ADMISSION_MARGIN`]) fails at
//!    once (`rate_limited`).
//! 3. **Send** with the first-byte timeout (never past the deadline). The
//!    response teaches the budget (rate-limit headers) and the breaker
//!    (5xx, timeouts and transport errors are failures).
//! 4. **Retry** if [`RetryPolicy::next_delay`](super::retry::RetryPolicy::next_delay)
//!    says so (idempotent requests; 429/502/503/504, timeouts, connection
//!    failures), after its backoff, from step 1.
//!
//! The request body is buffered (up to the request-body cap) so an attempt
//! can be repeated; connector requests are small API calls, and the cap
//! bounds the memory.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use wasmtime_wasi_http::{Error as HttpError, WasiBody};

use super::Broker;
use super::body::{Direction, Metered};
use super::budget::{BudgetKey, RateSpec};
use super::hooks::{Caller, EgressPolicy, push};
use super::journal::{Decision, OutboundJournal, OutboundOutcome, OutboundRecord};
use super::retry::AttemptOutcome;

/// One guest request on its way out.
pub(super) struct Outbound {
    pub broker: Arc<Broker>,
    pub caller: Caller,
    pub policy: EgressPolicy,
    pub journal: Arc<Mutex<OutboundJournal>>,
    pub method: http::Method,
    /// `scheme://host:port`.
    pub upstream: Arc<str>,
    pub idempotent: bool,
    /// Whether the host added credentials to this request.
    pub authed: bool,
    pub deadline: Instant,
    pub first_byte: Duration,
    pub between_bytes: Duration,
}

/// Time a request needs after admission to be worth sending: a budget does
/// not admit a request later than this before the invocation's deadline,
/// since it would only burn the upstream's quota on an answer nobody waits
/// for. Loopback calls take ~1 ms and API calls tens to hundreds of ms;
/// 250 ms leaves room for the request and the guest's own work after it.
const ADMISSION_MARGIN: Duration = Duration::from_millis(250);

type IoFuture = Box<dyn Future<Output = Result<(), HttpError>> + Send>;

/// Sends `request`, retrying as allowed; see the module doc.
pub(super) async fn send(
    o: Outbound,
    request: http::Request<WasiBody>,
) -> Result<(http::Response<WasiBody>, IoFuture), HttpError> {
    let (mut parts, body) = request.into_parts();
    let mut reauthed = false;
    let max_out = o.broker.settings().max_request_body_bytes;
    let body = match buffer(body, max_out, o.between_bytes).await {
        Ok(body) => body,
        Err(e) => {
            let outcome = match &e {
                HttpError::HttpRequestBodySize(_) => {
                    OutboundOutcome::Limit(format!("request body larger than {max_out} bytes"))
                }
                other => OutboundOutcome::Failed(format!("reading the request body: {other}")),
            };
            o.record(
                1,
                Decision::Denied,
                Duration::ZERO,
                outcome,
                Duration::ZERO,
                0,
            );
            return Err(e);
        }
    };
    let keys = o.budget_keys();
    let mut attempt = 0;
    loop {
        attempt += 1;
        let permit = match o.broker.breakers().try_acquire(&o.upstream, Instant::now()) {
            Ok(permit) => permit,
            Err(open) => {
                let reason = format!(
                    "the circuit of {} is open after repeated failures",
                    o.upstream
                );
                o.warn(&reason);
                let outcome = OutboundOutcome::Unavailable {
                    reason,
                    retry_after: open.retry_after,
                };
                o.record(
                    attempt,
                    Decision::ShortCircuited,
                    Duration::ZERO,
                    outcome,
                    Duration::ZERO,
                    0,
                );
                return Err(HttpError::DestinationUnavailable);
            }
        };
        let deadline = tokio::time::Instant::from_std(
            o.deadline
                .checked_sub(ADMISSION_MARGIN)
                .unwrap_or(o.deadline),
        );
        let waited = match o.broker.budgets().acquire(&keys, deadline).await {
            Ok(waited) => waited,
            Err(e) => {
                let reason = e.to_string();
                o.warn(&reason);
                let outcome = match e.retry_after() {
                    Some(retry_after) => OutboundOutcome::RateLimited {
                        reason: reason.clone(),
                        retry_after,
                    },
                    None => OutboundOutcome::Denied(reason.clone()),
                };
                o.record(
                    attempt,
                    Decision::RateLimited,
                    Duration::ZERO,
                    outcome,
                    Duration::ZERO,
                    0,
                );
                return Err(HttpError::InternalError(Some(reason)));
            }
        };
        let decision = if attempt > 1 {
            Decision::Retried
        } else if waited.queued {
            Decision::Queued
        } else {
            Decision::Allowed
        };
        let full = Full::new(body.clone()).map_err(|never| match never {});
        let request = http::Request::from_parts(parts.clone(), full.boxed_unsync());
        let sent = Instant::now();
        let first_byte = o.first_byte.min(o.deadline.saturating_duration_since(sent));
        let result = tokio::time::timeout(first_byte, o.broker.client().send(request)).await;
        let elapsed = sent.elapsed();
        let len = body.len() as u64;
        let record = |outcome| o.record(attempt, decision, waited.duration, outcome, elapsed, len);
        match result {
            Ok(Ok(response)) => {
                let status = response.status().as_u16();
                o.broker
                    .budgets()
                    .learn(&keys[0].0, status, response.headers(), SystemTime::now());
                o.broker
                    .breakers()
                    .record(permit, status < 500, Instant::now());
                let retry = o.retry_delay(
                    attempt,
                    &AttemptOutcome::Response {
                        status,
                        headers: response.headers(),
                    },
                );
                let index = record(OutboundOutcome::Status(status));
                tracing::debug!(connector = %o.caller.connector, instance = ?o.caller.instance,
                    invocation = %o.caller.invocation, method = %o.method, upstream = %o.upstream, status, attempt, ?elapsed, "outbound request");
                // A 401 to credentials the host injected: renew them once
                // (OAuth refresh) and send again; a second 401 goes to the
                // guest, so there is no loop.
                if status == 401
                    && o.authed
                    && !reauthed
                    && let Some(reauth) = &o.policy.reauth
                {
                    reauthed = true;
                    if let Some(plan) = reauth().await {
                        tracing::info!(connector = %o.caller.connector, invocation = %o.caller.invocation,
                            upstream = %o.upstream, "credentials renewed after a 401; sending again");
                        let mut with_auth = http::Request::from_parts(parts, ());
                        plan.apply(&mut with_auth);
                        parts = with_auth.into_parts().0;
                        continue;
                    }
                }
                match retry {
                    Some(delay) => o.backoff(delay, &format!("status {status}")).await,
                    None => return Ok((o.meter(response, index), Box::new(async { Ok(()) }))),
                }
            }
            Ok(Err(e)) if e.refused => {
                // The IP policy refused the resolved address: a
                // configuration matter, not the upstream's failure.
                drop(permit);
                o.warn(&e.detail);
                o.record(
                    attempt,
                    Decision::Denied,
                    Duration::ZERO,
                    OutboundOutcome::Denied(e.detail),
                    Duration::ZERO,
                    0,
                );
                return Err(e.code);
            }
            Ok(Err(e)) if e.certificate_refused() => {
                // Trust is configuration (`--egress-ca-file`), the same on
                // every attempt: not retried, and not the upstream's failure
                // for its circuit breaker.
                drop(permit);
                o.warn(&e.detail);
                record(OutboundOutcome::Certificate(e.detail));
                return Err(e.code);
            }
            Ok(Err(e)) => {
                o.broker.breakers().record(permit, false, Instant::now());
                let kind = if e.connect_failed {
                    AttemptOutcome::ConnectFailed
                } else {
                    AttemptOutcome::Other
                };
                let retry = o.retry_delay(attempt, &kind);
                tracing::info!(connector = %o.caller.connector, invocation = %o.caller.invocation,
                    upstream = %o.upstream, attempt, reason = %e.detail, "outbound request failed");
                record(OutboundOutcome::Failed(e.detail));
                match retry {
                    Some(delay) => o.backoff(delay, "transport failure").await,
                    None => return Err(e.code),
                }
            }
            Err(_) => {
                o.broker.breakers().record(permit, false, Instant::now());
                let retry = o.retry_delay(attempt, &AttemptOutcome::TimedOut);
                let message = format!("no response headers within {first_byte:?}");
                tracing::info!(connector = %o.caller.connector, invocation = %o.caller.invocation,
                    upstream = %o.upstream, attempt, %message, "outbound request timed out");
                record(OutboundOutcome::Timeout(message));
                match retry {
                    Some(delay) => o.backoff(delay, "timeout").await,
                    None => return Err(HttpError::HttpResponseTimeout),
                }
            }
        }
    }
}

/// Reads the whole request body, up to `limit` bytes, waiting at most
/// `idle` between chunks.
async fn buffer(body: WasiBody, limit: u64, idle: Duration) -> Result<Bytes, HttpError> {
    let metered = Metered::wrap(body, Direction::Request, limit, Arc::default(), Some(idle));
    Ok(metered.collect().await?.to_bytes())
}

impl Outbound {
    /// The budgets a request draws from: the shared (upstream, credential)
    /// one first (the one learning applies to), then the instance's.
    fn budget_keys(&self) -> Vec<(BudgetKey, Option<RateSpec>)> {
        let mut keys = vec![(
            BudgetKey::upstream(&self.upstream, self.policy.credential.as_deref()),
            self.policy.upstream_rate,
        )];
        if let (Some(instance), Some(rate)) = (&self.caller.instance, self.policy.instance_rate) {
            keys.push((BudgetKey::instance(instance), Some(rate)));
        }
        keys
    }

    fn retry_delay(&self, attempt: u32, outcome: &AttemptOutcome<'_>) -> Option<Duration> {
        let remaining = self.deadline.saturating_duration_since(Instant::now());
        self.broker.settings().retry.next_delay(
            attempt,
            self.idempotent,
            outcome,
            SystemTime::now(),
            remaining,
            &mut rand::rng(),
        )
    }

    async fn backoff(&self, delay: Duration, why: &str) {
        tracing::info!(connector = %self.caller.connector, instance = ?self.caller.instance,
            invocation = %self.caller.invocation, method = %self.method, upstream = %self.upstream,
            ?delay, why, "retrying outbound request");
        tokio::time::sleep(delay).await;
    }

    fn warn(&self, reason: &str) {
        tracing::warn!(connector = %self.caller.connector, instance = ?self.caller.instance,
            invocation = %self.caller.invocation, method = %self.method, upstream = %self.upstream,
            reason, "outbound request refused");
    }

    /// Journals one attempt (and audits it if it carried credentials);
    /// returns its index.
    fn record(
        &self,
        attempt: u32,
        decision: Decision,
        queued: Duration,
        outcome: OutboundOutcome,
        elapsed: Duration,
        bytes_out: u64,
    ) -> usize {
        let record = OutboundRecord {
            queued,
            elapsed,
            bytes_out,
            ..OutboundRecord::new(
                self.method.to_string(),
                self.upstream.clone(),
                attempt,
                decision,
                outcome,
            )
        };
        if self.authed
            && let Some(audit) = &self.policy.audit
        {
            audit.used(&record);
        }
        push(&self.journal, record)
    }

    /// Meters the response body into the journal record at `index`: bytes
    /// received, and the cap or idle timeout that ended it, if any.
    fn meter(&self, response: http::Response<WasiBody>, index: usize) -> http::Response<WasiBody> {
        let max_in = self.broker.settings().max_response_body_bytes;
        let between = self.between_bytes;
        let journal = self.journal.clone();
        let counter = journal.lock().unwrap_or_else(|e| e.into_inner()).records[index]
            .bytes_in
            .clone();
        response.map(|body| {
            Metered::wrap_reporting(
                body,
                Direction::Response,
                max_in,
                counter,
                Some(between),
                Box::new(move |e: &HttpError| {
                    let outcome = match e {
                        HttpError::HttpResponseBodySize(_) => OutboundOutcome::Limit(format!(
                            "response body larger than {max_in} bytes"
                        )),
                        _ => OutboundOutcome::Timeout(format!(
                            "no response body bytes for {between:?}"
                        )),
                    };
                    let mut journal = journal.lock().unwrap_or_else(|e| e.into_inner());
                    if let Some(r) = journal.records.get_mut(index) {
                        r.body_error = Some(outcome);
                    }
                }),
            )
        })
    }
}

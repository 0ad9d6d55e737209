//! The `WasiHttpHooks` implementation every guest store uses: the
//! per-invocation side of the broker.
//!
//! `send_request` is wasmtime-wasi-http's interception point. A request
//! must first match the instance's allowlist (scheme, host, port of the URL
//! itself — headers play no part, and `Host` is a forbidden header) and fit
//! the per-invocation request count; then [`super::attempt`] sends it
//! through the shared [`Broker`]: circuit breaker, rate budgets, the pooled
//! client (which connects only to addresses the IP policy accepts), retries.
//! Every attempt lands in the invocation's [`OutboundJournal`], so the API
//! can say *why* a call failed even when the guest only reports a generic
//! error.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::HeaderName;
use wasmtime_wasi_http::{
    DEFAULT_FORBIDDEN_HEADERS, Error as HttpError, ForbiddenHeaderFilter, RequestOptions, WasiBody,
    WasiHttpHooks,
};

use super::attempt::{self, Outbound};
use super::auth::AuthPlan;
use super::budget::RateSpec;
use super::journal::{Decision, OutboundJournal, OutboundOutcome, OutboundRecord};
use super::pattern::upstream_of;
use super::{Allowlist, Broker};
use crate::vault::Credentials;

/// Header a guest sets (to any value but `false`/`0`) to mark a request
/// safe to repeat, e.g. a `POST` the upstream deduplicates. The host strips
/// it before sending. A request carrying an `Idempotency-Key` (Stripe's
/// convention, honoured by many APIs) counts as marked too.
pub const IDEMPOTENT_HEADER: &str = "plugboard-idempotent";

/// What one invocation may do outbound, resolved before the call.
#[derive(Clone, Default)]
pub struct EgressPolicy {
    /// Hosts the instance may reach.
    pub allowlist: Arc<Allowlist>,
    /// The instance's own rate budget, if the operator set one.
    pub instance_rate: Option<RateSpec>,
    /// The rate of the shared (upstream, credential) budget: the
    /// connector's (manifest default or operator override), if any.
    pub upstream_rate: Option<RateSpec>,
    /// Identifies the credential the requests go out with, for the shared
    /// budget's key (an id or a keyed digest, never the secret itself);
    /// `None` for instances without credentials.
    pub credential: Option<Arc<str>>,
    /// The instance's opened credentials (for the `hmac` host import).
    pub credentials: Arc<Credentials>,
    /// What the host adds to requests towards the auth hosts.
    pub auth: Option<Arc<AuthPlan>>,
    /// Gets fresh credentials after an auth host answered 401 to ones the
    /// host injected (OAuth refresh); the request is then retried once.
    pub reauth: Option<Reauth>,
    /// Records each attempt that carries (or would have carried) the
    /// credentials in the audit trail; set whenever `auth` is.
    pub audit: Option<Arc<crate::audit::CredentialAudit>>,
}

/// See [`EgressPolicy::reauth`]: returns the new plan, or `None` if the
/// credentials could not be renewed.
pub type Reauth = Arc<
    dyn Fn() -> std::pin::Pin<Box<dyn Future<Output = Option<Arc<AuthPlan>>> + Send>> + Send + Sync,
>;

/// Who is calling, for budget keys and logs.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Connector id (`name@version`).
    pub connector: Arc<str>,
    /// Instance id; `None` while describing an upload.
    pub instance: Option<Arc<str>>,
    /// Id of the call whose guest sends (`inv_…`), named on the broker's
    /// log lines: the call's span is debug-level, and the request itself
    /// runs on a task wasi-http spawns, outside that span anyway.
    pub invocation: Arc<str>,
}

/// Per-invocation hooks.
pub struct EgressHooks {
    broker: Arc<Broker>,
    caller: Caller,
    policy: EgressPolicy,
    deadline: Instant,
    journal: Arc<Mutex<OutboundJournal>>,
    sent: u32,
}

impl EgressHooks {
    /// Hooks for one invocation that must finish by `deadline`.
    pub fn new(
        broker: Arc<Broker>,
        caller: Caller,
        policy: EgressPolicy,
        deadline: Instant,
    ) -> Self {
        Self {
            broker,
            caller,
            policy,
            deadline,
            journal: Arc::default(),
            sent: 0,
        }
    }

    /// Readies a warm instance's hooks for its next call: as [`Self::new`],
    /// but keeping the journal's allocation when nothing else holds it (a
    /// call that ended cleanly left no request futures behind; the journal
    /// was emptied when that call read its records).
    pub fn renew(&mut self, caller: Caller, policy: EgressPolicy, deadline: Instant) {
        match Arc::get_mut(&mut self.journal) {
            Some(journal) => {
                *journal.get_mut().unwrap_or_else(|e| e.into_inner()) = OutboundJournal::default();
            }
            None => self.journal = Arc::default(),
        }
        self.caller = caller;
        self.policy = policy;
        self.deadline = deadline;
        self.sent = 0;
    }

    /// The journal, shared with in-flight request futures.
    pub fn journal(&self) -> Arc<Mutex<OutboundJournal>> {
        self.journal.clone()
    }

    /// The instance's opened credentials.
    pub fn credentials(&self) -> &Credentials {
        &self.policy.credentials
    }

    /// Records a request refused before any attempt and returns the error
    /// the guest sees. `credentialed`: the host would have added the
    /// credentials to it (audited as a refused credential use).
    fn refuse(
        &self,
        method: &http::Method,
        upstream: Arc<str>,
        credentialed: bool,
        outcome: OutboundOutcome,
        code: HttpError,
    ) -> SendFuture {
        tracing::warn!(connector = %self.caller.connector, instance = ?self.caller.instance,
            invocation = %self.caller.invocation, method = %method, %upstream, reason = ?outcome,
            "outbound request refused");
        let record =
            OutboundRecord::new(method.to_string(), upstream, 1, Decision::Denied, outcome);
        if credentialed && let Some(audit) = &self.policy.audit {
            audit.used(&record);
        }
        push(&self.journal, record);
        Box::new(async move { Err(code) })
    }

    /// Whether the host adds credentials to requests to `uri`.
    fn credentialed(&self, uri: &http::Uri) -> bool {
        self.policy
            .auth
            .as_ref()
            .is_some_and(|plan| plan.applies_to(uri))
    }
}

/// Appends to a journal shared with request futures.
pub(super) fn push(journal: &Mutex<OutboundJournal>, record: OutboundRecord) -> usize {
    // A poisoned journal only means another request future panicked; the
    // records are still plain data, so keep appending.
    journal
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(record)
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

/// Whether the guest marked the request idempotent; strips the marker.
fn take_idempotent_mark(headers: &mut http::HeaderMap) -> bool {
    let marked = headers
        .remove(IDEMPOTENT_HEADER)
        .is_some_and(|v| !matches!(v.as_bytes(), b"false" | b"0"));
    marked || headers.contains_key("idempotency-key")
}

pub(super) type SendFuture = Box<
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
        mut request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> SendFuture {
        let method = request.method().clone();
        let upstream: Arc<str> = Arc::from(upstream_of(request.uri()));
        let credentialed = self.credentialed(request.uri());
        if !self.policy.allowlist.allows(request.uri()) {
            let reason = if self.policy.allowlist.narrowing().is_some() {
                "the host is not declared by the connector, or not in the instance's allowed hosts"
            } else {
                "the host is not declared by the connector for this instance"
            };
            return self.refuse(
                &method,
                upstream,
                credentialed,
                OutboundOutcome::Denied(reason.into()),
                HttpError::HttpRequestDenied,
            );
        }
        let settings = self.broker.settings();
        self.sent += 1;
        if self.sent > settings.max_requests {
            let message = format!(
                "more than {} outbound requests in one invocation",
                settings.max_requests
            );
            return self.refuse(
                &method,
                upstream,
                credentialed,
                OutboundOutcome::Limit(message),
                HttpError::ConnectionLimitReached,
            );
        }
        let authed = credentialed;
        if let Some(plan) = &self.policy.auth
            && credentialed
        {
            let replaced = plan.apply(&mut request);
            if !replaced.is_empty() {
                tracing::warn!(connector = %self.caller.connector, instance = ?self.caller.instance,
                    invocation = %self.caller.invocation, %upstream, ?replaced,
                    "the connector set auth headers or parameters the host owns; the host's values were used");
            }
        }
        let idempotent =
            super::retry::is_idempotent(&method, take_idempotent_mark(request.headers_mut()));

        let outbound = Outbound {
            broker: self.broker.clone(),
            caller: self.caller.clone(),
            policy: self.policy.clone(),
            journal: self.journal.clone(),
            method,
            upstream,
            idempotent,
            authed,
            deadline: self.deadline,
            first_byte: shorter(
                options.and_then(|o| o.first_byte_timeout),
                settings.first_byte_timeout,
            ),
            between_bytes: shorter(
                options.and_then(|o| o.between_bytes_timeout),
                settings.between_bytes_timeout,
            ),
        };
        Box::new(attempt::send(outbound, request))
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn idempotency_marks() {
        let mut h = http::HeaderMap::new();
        assert!(!take_idempotent_mark(&mut h));
        h.insert(IDEMPOTENT_HEADER, HeaderValue::from_static("true"));
        assert!(take_idempotent_mark(&mut h));
        assert!(h.is_empty(), "the marker is stripped");
        h.insert(IDEMPOTENT_HEADER, HeaderValue::from_static("0"));
        assert!(!take_idempotent_mark(&mut h));
        h.insert("idempotency-key", HeaderValue::from_static("k-1"));
        assert!(take_idempotent_mark(&mut h));
        assert!(h.contains_key("idempotency-key"), "the key itself goes out");
    }

    fn caller(invocation: &str) -> Caller {
        Caller {
            connector: "c@1".into(),
            instance: Some("inst_1".into()),
            invocation: invocation.into(),
        }
    }

    fn record() -> OutboundRecord {
        OutboundRecord::new(
            "GET".into(),
            "https://example.com:443".into(),
            1,
            Decision::Denied,
            OutboundOutcome::Denied("not allowed".into()),
        )
    }

    #[test]
    fn renewed_hooks_start_empty_and_keep_the_journal_only_if_no_one_else_holds_it() {
        let broker = Arc::new(Broker::new(Default::default()));
        let deadline = Instant::now();
        let mut hooks = EgressHooks::new(broker, caller("inv_1"), Default::default(), deadline);
        hooks.sent = 3;
        hooks.journal.lock().unwrap().push(record());
        let first = Arc::as_ptr(&hooks.journal);

        hooks.renew(caller("inv_2"), Default::default(), deadline);
        assert_eq!(
            Arc::as_ptr(&hooks.journal),
            first,
            "the allocation is reused"
        );
        assert!(hooks.journal.lock().unwrap().records.is_empty());
        assert_eq!((hooks.sent, &*hooks.caller.invocation), (0, "inv_2"));

        // A request future of the last call still holds it: whatever it
        // records must not land in the next call's journal.
        let held = hooks.journal();
        hooks.renew(caller("inv_3"), Default::default(), deadline);
        held.lock().unwrap().push(record());
        assert!(!Arc::ptr_eq(&held, &hooks.journal), "a fresh journal");
        assert!(hooks.journal.lock().unwrap().records.is_empty());
        assert_eq!(&*hooks.caller.invocation, "inv_3");
    }
}

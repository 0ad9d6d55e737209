//! Credential-use records: one per outbound attempt on which the broker
//! applied an instance's credentials, and one per request it refused that
//! would have carried them. They name the credential by id — the vault's
//! keyed fingerprint (or `oauth:<instance>`) and the field names the auth
//! scheme reads — never by value, and the destination by
//! `scheme://host:port` only (paths and queries may carry data).

use std::sync::Arc;

use serde_json::json;

use super::log::AuditLog;
use super::record::{Actor, AuditRecord, Outcome, OutcomeResult, Resource, actions};
use crate::egress::{Decision, OutboundOutcome, OutboundRecord};

/// Everything a credential-use record needs that is fixed for one
/// invocation; the egress hooks hold it in their policy.
pub struct CredentialAudit {
    log: AuditLog,
    actor: Actor,
    instance: Arc<str>,
    connector: Arc<str>,
    invocation: Arc<str>,
    credential: serde_json::Value,
}

impl CredentialAudit {
    /// For one invocation of `instance` by `actor`, whose requests carry
    /// the credential `credential_id` built from the fields `fields`.
    pub fn new(
        log: AuditLog,
        actor: Actor,
        instance: &str,
        connector: &str,
        invocation: &str,
        credential_id: Option<&str>,
        fields: &[String],
    ) -> Self {
        Self {
            log,
            actor,
            instance: Arc::from(instance),
            connector: Arc::from(connector),
            invocation: Arc::from(invocation),
            credential: json!({ "id": credential_id, "fields": fields }),
        }
    }

    /// Queues the record of one attempt. Never waits (it runs on the
    /// broker's hot path; see [`AuditLog::offer`]).
    pub fn used(&self, attempt: &OutboundRecord) {
        let outcome = outcome(attempt.decision, &attempt.outcome);
        let mut record = AuditRecord::new(
            self.log.key(),
            self.actor.clone(),
            actions::CREDENTIAL_USE,
            Resource::new("instance", Some(&self.instance)),
            outcome,
        )
        .with("connector", &*self.connector)
        .with("invocation", &*self.invocation)
        .with("credential", self.credential.clone())
        .with("destination", &*attempt.upstream)
        .with("method", attempt.method.as_str())
        .with("attempt", attempt.attempt)
        .with("decision", attempt.decision.as_str());
        if !matches!(attempt.outcome, OutboundOutcome::Status(_)) {
            record = record.with("error", attempt.outcome.kind());
        }
        self.log.offer(record);
    }
}

/// Refused by the broker → denied; an upstream answer below 400 →
/// success; an error status, a timeout or a transport failure → failure.
fn outcome(decision: Decision, outcome: &OutboundOutcome) -> Outcome {
    let refused = matches!(
        decision,
        Decision::Denied | Decision::RateLimited | Decision::ShortCircuited
    );
    let status = match outcome {
        OutboundOutcome::Status(s) => Some(*s),
        _ => None,
    };
    let result = match status {
        _ if refused => OutcomeResult::Denied,
        Some(s) if s < 400 => OutcomeResult::Success,
        _ => OutcomeResult::Failure,
    };
    Outcome {
        result,
        status,
        code: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_follow_the_broker_and_the_upstream() {
        let o = |d, oc| outcome(d, &oc).result;
        assert_eq!(
            o(Decision::Allowed, OutboundOutcome::Status(204)),
            OutcomeResult::Success
        );
        assert_eq!(
            o(Decision::Retried, OutboundOutcome::Status(500)),
            OutcomeResult::Failure
        );
        assert_eq!(
            o(Decision::Queued, OutboundOutcome::Timeout("t".into())),
            OutcomeResult::Failure
        );
        assert_eq!(
            o(Decision::Denied, OutboundOutcome::Denied("no".into())),
            OutcomeResult::Denied
        );
        assert_eq!(
            o(
                Decision::RateLimited,
                OutboundOutcome::RateLimited {
                    reason: "r".into(),
                    retry_after: std::time::Duration::from_secs(1)
                }
            ),
            OutcomeResult::Denied
        );
        assert_eq!(
            outcome(Decision::Allowed, &OutboundOutcome::Status(401)).status,
            Some(401)
        );
    }
}

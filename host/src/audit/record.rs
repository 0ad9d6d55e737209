//! The shape of one audit record ([`AuditRecord`]), its time-ordered store
//! key ([`AuditKey`]) and the stable action names ([`actions`]).
//!
//! Records hold ids, names, hosts and outcomes — never a credential value,
//! a token, a request body or a URL path or query (those may carry data).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Where a record sits in the trail: milliseconds since the Unix epoch,
/// then a sequence number that only grows (across restarts too), so keys
/// are unique even within one millisecond or after the clock stepped back.
/// Stored big-endian, so the store's byte order is time order and a time
/// range is a key range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct AuditKey {
    /// Unix milliseconds.
    pub ms: u64,
    /// Tie-breaker, unique per record.
    pub seq: u64,
}

impl AuditKey {
    /// Length of the stored key.
    pub const LEN: usize = 16;

    /// The smallest key at `ms` (a range bound).
    pub fn floor(ms: u64) -> Self {
        Self { ms, seq: 0 }
    }

    /// The big-endian bytes the store orders by.
    pub fn to_bytes(self) -> [u8; Self::LEN] {
        let mut out = [0; Self::LEN];
        out[..8].copy_from_slice(&self.ms.to_be_bytes());
        out[8..].copy_from_slice(&self.seq.to_be_bytes());
        out
    }

    /// Parses stored bytes; `None` unless exactly [`Self::LEN`] of them.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let bytes: [u8; Self::LEN] = bytes.try_into().ok()?;
        let (ms, seq) = bytes.split_at(8);
        Some(Self {
            ms: u64::from_be_bytes(ms.try_into().ok()?),
            seq: u64::from_be_bytes(seq.try_into().ok()?),
        })
    }

    /// 32 lowercase hex digits (record ids and paging cursors).
    pub fn to_hex(self) -> String {
        hex::encode(self.to_bytes())
    }

    /// Parses [`Self::to_hex`].
    pub fn from_hex(s: &str) -> Option<Self> {
        if s.len() != 2 * Self::LEN {
            return None;
        }
        Self::from_bytes(&hex::decode(s).ok()?)
    }
}

/// Who acted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    /// An API token (`id` is its public id; absent when the request
    /// carried no valid token).
    Token,
    /// A verified webhook delivery (`id` is the receiving instance).
    Webhook,
    /// The host itself: rule jobs (`id` is the job), the retention sweep.
    System,
}

impl ActorKind {
    /// Stable name, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Token => "token",
            Self::Webhook => "webhook",
            Self::System => "system",
        }
    }
}

/// The actor of a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Actor {
    /// What kind of actor.
    pub kind: ActorKind,
    /// Token id, instance id (webhooks) or job id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Display name (a token's label).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl Actor {
    /// An API token.
    pub fn token(record: &crate::store::TokenRecord) -> Self {
        Self {
            kind: ActorKind::Token,
            id: Some(record.id.clone()),
            name: record.name.clone(),
        }
    }

    /// Someone whose request carried no valid token.
    pub fn unidentified() -> Self {
        Self {
            kind: ActorKind::Token,
            id: None,
            name: None,
        }
    }

    /// A webhook delivery to `instance`.
    pub fn webhook(instance: &str) -> Self {
        Self {
            kind: ActorKind::Webhook,
            id: Some(instance.to_owned()),
            name: None,
        }
    }

    /// The host, doing `name` (for `id`, if any).
    pub fn system(name: &str, id: Option<&str>) -> Self {
        Self {
            kind: ActorKind::System,
            id: id.map(str::to_owned),
            name: Some(name.to_owned()),
        }
    }
}

/// What a record is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Resource {
    /// `connector`, `instance`, `token`, `rule`, `job`, `audit`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// Its id, when the action concerns one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

impl Resource {
    /// A resource of `kind` with an optional id.
    pub fn new(kind: &str, id: Option<&str>) -> Self {
        Self {
            kind: kind.to_owned(),
            id: id.map(str::to_owned),
        }
    }
}

/// How the action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeResult {
    /// It happened.
    Success,
    /// It was attempted and failed (validation, conflict, upstream error).
    Failure,
    /// It was refused before it happened (authentication, scope, broker
    /// policy).
    Denied,
}

/// The outcome of a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Outcome {
    /// Success, failure or refusal.
    pub result: OutcomeResult,
    /// HTTP status: the API's answer, or the upstream's for credential use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The API error code, for failures and refusals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

impl Outcome {
    /// A plain success.
    pub fn success() -> Self {
        Self {
            result: OutcomeResult::Success,
            status: None,
            code: None,
        }
    }
}

/// One entry of the trail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditRecord {
    /// Where it is stored (also encoded in `id`).
    #[serde(skip)]
    pub key: AuditKey,
    /// `aud_` + the key in hex.
    pub id: String,
    /// RFC 3339 UTC time with milliseconds.
    pub at: String,
    /// Who.
    pub actor: Actor,
    /// What: one of [`actions::ALL`].
    pub action: String,
    /// On what.
    pub resource: Resource,
    /// With what result.
    pub outcome: Outcome,
    /// Non-secret particulars of the action.
    #[serde(default)]
    pub detail: Map<String, Value>,
}

impl AuditRecord {
    /// A record at `key` (which fixes its id and time), without detail.
    pub fn new(
        key: AuditKey,
        actor: Actor,
        action: &str,
        resource: Resource,
        outcome: Outcome,
    ) -> Self {
        Self {
            key,
            id: format!("aud_{}", key.to_hex()),
            at: rfc3339_ms(key.ms),
            actor,
            action: action.to_owned(),
            resource,
            outcome,
            detail: Map::new(),
        }
    }

    /// Adds one detail member.
    pub fn with(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.detail.insert(name.to_owned(), value.into());
        self
    }
}

/// `2026-01-02T03:04:05.678Z` for Unix milliseconds.
pub fn rfc3339_ms(ms: u64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// Unix milliseconds of an RFC 3339 time; `None` if it does not parse or
/// is before 1970.
pub fn parse_rfc3339_ms(s: &str) -> Option<u64> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    u64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

/// The stable action names. Add new ones; never rename.
pub mod actions {
    /// A connector was uploaded (also the idempotent re-upload).
    pub const CONNECTOR_UPLOAD: &str = "connector.upload";
    /// A connector was deleted.
    pub const CONNECTOR_DELETE: &str = "connector.delete";
    /// A connector's rate-limit override was set or cleared.
    pub const CONNECTOR_RATE_LIMIT: &str = "connector.rate_limit";
    /// An instance was created.
    pub const INSTANCE_CREATE: &str = "instance.create";
    /// An instance was renamed, reconfigured, re-limited (or its
    /// credentials replaced through `PATCH`).
    pub const INSTANCE_UPDATE: &str = "instance.update";
    /// An instance was deleted.
    pub const INSTANCE_DELETE: &str = "instance.delete";
    /// An instance's credentials were replaced.
    pub const INSTANCE_CREDENTIALS: &str = "instance.credentials";
    /// An OAuth connect flow was started.
    pub const INSTANCE_OAUTH_START: &str = "instance.oauth.start";
    /// An OAuth connect flow was completed through the API.
    pub const INSTANCE_OAUTH_CONNECT: &str = "instance.oauth.connect";
    /// An instance's OAuth tokens were dropped.
    pub const INSTANCE_OAUTH_DISCONNECT: &str = "instance.oauth.disconnect";
    /// A rule was created.
    pub const RULE_CREATE: &str = "rule.create";
    /// A rule was replaced.
    pub const RULE_REPLACE: &str = "rule.replace";
    /// A rule was deleted.
    pub const RULE_DELETE: &str = "rule.delete";
    /// A dead job was replayed.
    pub const JOB_REPLAY: &str = "job.replay";
    /// An API token was created.
    pub const TOKEN_CREATE: &str = "token.create";
    /// An API token was revoked.
    pub const TOKEN_REVOKE: &str = "token.revoke";
    /// An API token was replaced by a new one.
    pub const TOKEN_ROTATE: &str = "token.rotate";
    /// A request was refused with 401 or 403.
    pub const AUTH_DENIED: &str = "auth.denied";
    /// The broker applied (or refused a request that would have carried)
    /// an instance's credentials.
    pub const CREDENTIAL_USE: &str = "credential.use";
    /// The retention sweep deleted old records.
    pub const AUDIT_SWEEP: &str = "audit.sweep";
    /// Records were lost because the queue was full (count in detail).
    pub const AUDIT_OVERFLOW: &str = "audit.overflow";

    /// Every action, for filter validation and the docs.
    pub const ALL: &[&str] = &[
        CONNECTOR_UPLOAD,
        CONNECTOR_DELETE,
        CONNECTOR_RATE_LIMIT,
        INSTANCE_CREATE,
        INSTANCE_UPDATE,
        INSTANCE_DELETE,
        INSTANCE_CREDENTIALS,
        INSTANCE_OAUTH_START,
        INSTANCE_OAUTH_CONNECT,
        INSTANCE_OAUTH_DISCONNECT,
        RULE_CREATE,
        RULE_REPLACE,
        RULE_DELETE,
        JOB_REPLAY,
        TOKEN_CREATE,
        TOKEN_REVOKE,
        TOKEN_ROTATE,
        AUTH_DENIED,
        CREDENTIAL_USE,
        AUDIT_SWEEP,
        AUDIT_OVERFLOW,
    ];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_by_time_then_sequence_as_bytes() {
        let keys = [
            AuditKey { ms: 0, seq: 5 },
            AuditKey { ms: 1, seq: 0 },
            AuditKey { ms: 1, seq: 1 },
            AuditKey { ms: 255, seq: 0 },
            AuditKey { ms: 256, seq: 0 },
            AuditKey {
                ms: 1_767_225_600_000,
                seq: u64::MAX,
            },
            AuditKey {
                ms: 1_767_225_600_001,
                seq: 0,
            },
        ];
        for pair in keys.windows(2) {
            assert!(pair[0] < pair[1]);
            assert!(
                pair[0].to_bytes() < pair[1].to_bytes(),
                "byte order follows {:?} < {:?}",
                pair[0],
                pair[1]
            );
            assert!(pair[0].to_hex() < pair[1].to_hex(), "hex order too");
        }
        for k in keys {
            assert_eq!(AuditKey::from_bytes(&k.to_bytes()), Some(k));
            assert_eq!(AuditKey::from_hex(&k.to_hex()), Some(k));
        }
        assert_eq!(AuditKey::from_hex("zz"), None);
        assert_eq!(AuditKey::from_hex(&"g".repeat(32)), None);
        assert_eq!(AuditKey::from_bytes(&[0; 15]), None);
    }

    #[test]
    fn times_have_milliseconds_and_round_trip() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(1_767_225_600_042), "2026-01-01T00:00:00.042Z");
        assert_eq!(
            parse_rfc3339_ms("2026-01-01T00:00:00.042Z"),
            Some(1_767_225_600_042)
        );
        assert_eq!(
            parse_rfc3339_ms("2026-01-01T01:00:00+01:00"),
            Some(1_767_225_600_000)
        );
        assert_eq!(parse_rfc3339_ms("yesterday"), None);
        assert_eq!(parse_rfc3339_ms("1969-12-31T23:59:59Z"), None);
    }

    #[test]
    fn records_serialize_in_the_documented_shape() {
        let r = AuditRecord::new(
            AuditKey {
                ms: 1_767_225_600_000,
                seq: 7,
            },
            Actor::system("retention sweep", None),
            actions::AUDIT_SWEEP,
            Resource::new("audit", None),
            Outcome::success(),
        )
        .with("count", 3);
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["id"], format!("aud_{}", r.key.to_hex()));
        assert_eq!(v["at"], "2026-01-01T00:00:00.000Z");
        assert_eq!(
            v["actor"],
            serde_json::json!({"kind": "system", "name": "retention sweep"})
        );
        assert_eq!(v["resource"], serde_json::json!({"type": "audit"}));
        assert_eq!(v["outcome"], serde_json::json!({"result": "success"}));
        assert_eq!(v["detail"]["count"], 3);
        assert!(v.get("key").is_none());
        let back: AuditRecord = serde_json::from_value(v).unwrap();
        assert_eq!(back.id, r.id);
    }
}

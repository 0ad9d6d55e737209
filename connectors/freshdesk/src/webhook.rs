//! Freshdesk webhooks → normalized events.
//!
//! Freshdesk sends webhooks from automation rules ("Trigger webhook"
//! action), with a body the admin writes. Two shapes are understood:
//!
//! - the recommended *advanced* template (see the README): `{"event":
//!   "ticket_created", "ticket": {"id": "{{ticket.id}}", …}}`, plus
//!   `contact` or `note` objects for those events;
//! - Freshdesk's *simple* format, `{"freshdesk_webhook": {"ticket_id": …,
//!   "ticket_subject": …}}`, whose `ticket_*`, `contact_*` and `note_*`
//!   keys are regrouped into `ticket`, `contact` and `note`.
//!
//! The event name comes from the body's `event` or, failing that, from the
//! webhook URL's `?event=` query (one URL per automation rule). Placeholders
//! render as text, so ids are turned back into numbers, and priorities and
//! statuses given by name (`Urgent`, `Open`) into Freshdesk's numbers, with
//! the name kept in `priority_name` / `status_name`: a rule can then test
//! `ticket.priority >= 4` whatever the template sent.
//!
//! The host has already checked the shared secret header before this runs.

use plugboard_guest::prelude::*;
use plugboard_guest::serde_json::Map;

/// The events this connector emits, by Freshdesk event name.
pub const EVENTS: &[(&str, &str)] = &[
    ("ticket_created", "ticket.created"),
    ("ticket_updated", "ticket.updated"),
    ("ticket_resolved", "ticket.resolved"),
    ("ticket_closed", "ticket.closed"),
    ("note_created", "note.created"),
    ("contact_created", "contact.created"),
    ("contact_updated", "contact.updated"),
];

/// Fields that are Freshdesk's numeric ids (not, say, `unique_external_id`
/// or `twitter_id`, which are the customer's text even when all digits).
const NUMERIC_IDS: &[&str] = &[
    "id",
    "ticket_id",
    "requester_id",
    "responder_id",
    "group_id",
    "company_id",
    "product_id",
    "agent_id",
    "user_id",
    "contact_id",
    "email_config_id",
];

/// Freshdesk priorities by name.
const PRIORITIES: &[(&str, u64)] = &[("low", 1), ("medium", 2), ("high", 3), ("urgent", 4)];
/// Freshdesk's built-in statuses by name.
const STATUSES: &[(&str, u64)] = &[("open", 2), ("pending", 3), ("resolved", 4), ("closed", 5)];

/// One normalized event: kind, source id and payload.
#[derive(Debug, Clone, PartialEq)]
pub struct Normalized {
    /// Dotted kind, e.g. `ticket.created`.
    pub kind: String,
    /// Id at the source, e.g. `ticket_created:42`.
    pub id: String,
    /// `{"freshdesk_event", "ticket"?, "contact"?, "note"?}`.
    pub payload: Value,
}

/// Normalizes a webhook body; `query_event` is the URL's `?event=`. The
/// payload is `{"freshdesk_event", "ticket"?, "contact"?, "note"?}` plus
/// any other top-level fields of the body.
pub fn normalize(body: &Value, query_event: Option<&str>) -> Result<Normalized> {
    let Some(object) = body.as_object() else {
        return Err(Error::invalid_input(
            "Freshdesk webhook body must be a JSON object",
        ));
    };
    let (mut groups, body_event) = match object.get("freshdesk_webhook") {
        Some(Value::Object(flat)) => (regroup(flat), flat.get("event").cloned()),
        _ => (object.clone(), object.get("event").cloned()),
    };
    let event_name = body_event
        .as_ref()
        .and_then(Value::as_str)
        .or(query_event)
        .ok_or_else(|| {
            Error::invalid_input(
                "the webhook names no event: add \"event\" to the body or ?event= to the URL",
            )
        })?
        .trim()
        .replace('.', "_")
        .to_ascii_lowercase();
    let kind = EVENTS
        .iter()
        .find(|(name, _)| *name == event_name)
        .map(|(_, kind)| *kind)
        .ok_or_else(|| {
            Error::invalid_input(format!(
                "unknown Freshdesk event {event_name:?}; expected one of {}",
                EVENTS
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
    for key in ["ticket", "contact", "note"] {
        if let Some(Value::Object(o)) = groups.get_mut(key) {
            tidy(o);
        }
    }
    // Not `event`: rule templates see the event's own metadata under that
    // name, which would hide a payload field of the same name.
    groups.remove("event");
    groups.insert("freshdesk_event".into(), Value::String(event_name.clone()));
    let subject = if kind.starts_with("contact") {
        "contact"
    } else if kind.starts_with("note") {
        "note"
    } else {
        "ticket"
    };
    let object_id = groups
        .get(subject)
        .and_then(|o| o.get("id"))
        .or_else(|| groups.get("ticket").and_then(|o| o.get("id")))
        .map(plain)
        .ok_or_else(|| Error::invalid_input(format!("the webhook has no {subject} id")))?;
    let mut id = format!("{event_name}:{object_id}");
    if let Some(at) = groups
        .get(subject)
        .and_then(|o| o.get("updated_at"))
        .filter(|_| !kind.ends_with("created"))
    {
        id.push(':');
        id.push_str(&plain(at));
    }
    Ok(Normalized {
        kind: kind.to_owned(),
        id,
        payload: Value::Object(groups),
    })
}

/// A value as text without JSON quotes.
fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Regroups the simple format's flat keys under `ticket`, `contact`, `note`.
fn regroup(flat: &Map<String, Value>) -> Map<String, Value> {
    let mut groups = Map::new();
    for (key, value) in flat {
        if key == "event" {
            continue;
        }
        let (group, field) = ["ticket_", "contact_", "note_"]
            .iter()
            .find_map(|prefix| {
                key.strip_prefix(prefix)
                    .map(|rest| (prefix.trim_end_matches('_'), rest))
            })
            .unwrap_or(("ticket", key.as_str()));
        if let Value::Object(o) = groups
            .entry(group.to_owned())
            .or_insert_with(|| Value::Object(Map::new()))
        {
            o.insert(field.to_owned(), value.clone());
        }
    }
    groups
}

/// Numbers back from text (`"42"` → 42) for ids, and named priorities and
/// statuses to their numbers.
fn tidy(o: &mut Map<String, Value>) {
    for (key, value) in o.iter_mut() {
        if NUMERIC_IDS.contains(&key.as_str())
            && let Some(n) = value.as_str().and_then(|s| s.trim().parse::<u64>().ok())
        {
            *value = Value::from(n);
        }
    }
    for (field, table) in [("priority", PRIORITIES), ("status", STATUSES)] {
        let Some(value) = o.get(field).cloned() else {
            continue;
        };
        let text = plain(&value);
        let number = text.trim().parse::<u64>().ok().or_else(|| {
            table
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(text.trim()))
                .map(|(_, n)| *n)
        });
        if let Some(n) = number {
            o.insert(field.to_owned(), Value::from(n));
            let name = table
                .iter()
                .find(|(_, m)| *m == n)
                .map(|(name, _)| capitalize(name))
                .unwrap_or(text.trim().to_owned());
            o.insert(format!("{field}_name"), Value::String(name));
        }
    }
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    chars
        .next()
        .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advanced_template_is_normalized() {
        let body = json!({
            "event": "ticket_created",
            "ticket": {"id": "42", "subject": "Server down", "priority": "Urgent",
                       "status": "Open", "requester_email": "ada@example.com", "group_id": "7"}
        });
        let n = normalize(&body, None).unwrap();
        assert_eq!(n.kind, "ticket.created");
        assert_eq!(n.id, "ticket_created:42");
        assert_eq!(
            n.payload,
            json!({
                "freshdesk_event": "ticket_created",
                "ticket": {"id": 42, "subject": "Server down", "priority": 4, "priority_name": "Urgent",
                           "status": 2, "status_name": "Open", "requester_email": "ada@example.com",
                           "group_id": 7}
            })
        );
    }

    #[test]
    fn simple_format_and_query_events() {
        let body = json!({"freshdesk_webhook": {
            "ticket_id": 9, "ticket_subject": "Printer", "ticket_priority": 3,
            "ticket_status": "Resolved", "ticket_updated_at": "2026-01-02T03:04:05Z",
            "requester_name": "Ada"
        }});
        let n = normalize(&body, Some("ticket_resolved")).unwrap();
        assert_eq!(n.kind, "ticket.resolved");
        assert_eq!(n.id, "ticket_resolved:9:2026-01-02T03:04:05Z");
        let t = &n.payload["ticket"];
        assert_eq!(t["priority"], 3);
        assert_eq!(t["priority_name"], "High");
        assert_eq!(t["status"], 4);
        assert_eq!(t["requester_name"], "Ada");

        let contact = json!({"event": "contact.updated",
                             "contact": {"id": 5, "name": "Bo", "unique_external_id": "00123"}});
        let n = normalize(&contact, None).unwrap();
        assert_eq!(n.payload["contact"]["unique_external_id"], "00123");
        assert_eq!(
            (n.kind.as_str(), n.id.as_str()),
            ("contact.updated", "contact_updated:5")
        );

        let note = json!({"event": "note_created", "ticket": {"id": 3}, "note": {"id": "77", "body": "hi"}});
        let n = normalize(&note, None).unwrap();
        assert_eq!(
            (n.kind.as_str(), n.id.as_str()),
            ("note.created", "note_created:77")
        );
        assert_eq!(n.payload["note"]["id"], 77);
    }

    #[test]
    fn refuses_what_it_cannot_name() {
        for (body, query, says) in [
            (json!({"ticket": {"id": 1}}), None, "names no event"),
            (
                json!({"event": "ticket_merged", "ticket": {"id": 1}}),
                None,
                "unknown Freshdesk event",
            ),
            (json!({"event": "ticket_created"}), None, "no ticket id"),
            (json!([1]), None, "JSON object"),
        ] {
            let e = normalize(&body, query).unwrap_err();
            assert_eq!(e.kind(), "invalid_input");
            assert!(e.message().contains(says), "{e}");
        }
    }
}

//! GitHub webhook deliveries → events.
//!
//! The host has verified `X-Hub-Signature-256` and de-duplicated on
//! `X-GitHub-Delivery` before this runs. The kind is the `X-GitHub-Event`
//! name, dotted with the payload's `action` when there is one
//! (`issues.opened`, `pull_request.closed`, `push`, `release.published`);
//! the payload is GitHub's, unchanged; the source id is the delivery id.
//! `ping` (sent when a hook is created) produces no event.

use plugboard_guest::prelude::*;

/// The event for one delivery, or `None` for a ping.
pub fn event(
    github_event: Option<&str>,
    delivery: Option<&str>,
    body: &Value,
) -> Result<Option<(String, String, Value)>> {
    let name = github_event
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Error::invalid_input("delivery has no X-GitHub-Event header"))?;
    if name == "ping" {
        return Ok(None);
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c == '_' || c.is_ascii_digit())
    {
        return Err(Error::invalid_input(format!(
            "unexpected X-GitHub-Event {name:?}"
        )));
    }
    let kind = match body.get("action").and_then(Value::as_str) {
        Some(action) => format!("{name}.{action}"),
        None => name.to_owned(),
    };
    let id = delivery
        .map(str::to_owned)
        .ok_or_else(|| Error::invalid_input("delivery has no X-GitHub-Delivery header"))?;
    Ok(Some((kind, id, body.clone())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_from_event_and_action() {
        let opened = json!({"action": "opened", "issue": {"number": 7}});
        let (kind, id, payload) = event(Some("issues"), Some("d-1"), &opened)
            .unwrap()
            .unwrap();
        assert_eq!((kind.as_str(), id.as_str()), ("issues.opened", "d-1"));
        assert_eq!(payload, opened);
        let push = json!({"ref": "refs/heads/main", "commits": []});
        assert_eq!(
            event(Some("push"), Some("d-2"), &push).unwrap().unwrap().0,
            "push"
        );
        assert_eq!(
            event(Some("ping"), Some("d-3"), &json!({"zen": "x"})).unwrap(),
            None
        );
        assert!(event(None, Some("d"), &push).is_err());
        assert!(event(Some("Push!"), Some("d"), &push).is_err());
        assert!(event(Some("push"), None, &push).is_err());
    }
}

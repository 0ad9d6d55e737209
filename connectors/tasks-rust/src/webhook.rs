//! Task webhooks → events.
//!
//! The host has checked `x-tasks-secret` and de-duplicated on
//! `x-tasks-delivery` before this runs. A delivery is
//! `{"type": "task.created", "id": "evt_1", "task": {…}}` and becomes one
//! event: kind `type`, id `id`, payload the `task` object. Anything else is
//! `invalid-input` saying what is wrong (the host answers the sender 400).

use plugboard_guest::prelude::*;
use plugboard_guest::serde_json::{self, Map};

/// The one event of a delivery with body `body`.
pub fn event(body: &[u8]) -> Result<Event> {
    // Read through `Value` rather than a derived struct so each mistake gets
    // its own message instead of serde's generic one.
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| Error::invalid_input(format!("webhook body is not JSON: {e}")))?;
    let Value::Object(delivery) = &value else {
        return Err(Error::invalid_input("webhook body is not a JSON object"));
    };
    let kind = string_field(delivery, "type")?;
    let id = string_field(delivery, "id")?;
    let task = match delivery.get("task") {
        Some(task @ Value::Object(_)) => task,
        Some(_) => {
            return Err(Error::invalid_input(
                "webhook field `task` is not an object",
            ));
        }
        None => return Err(Error::invalid_input("webhook body has no `task` field")),
    };
    Event::new(kind, id, task)
}

/// The string field `name` of the delivery.
fn string_field<'a>(delivery: &'a Map<String, Value>, name: &str) -> Result<&'a str> {
    match delivery.get(name) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(Error::invalid_input(format!(
            "webhook field `{name}` is not a string"
        ))),
        None => Err(Error::invalid_input(format!(
            "webhook body has no `{name}` field"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delivery_is_one_event() {
        let body = br#"{"type":"task.created","id":"evt_1","task":{"id":"42","title":"Write docs","done":false}}"#;
        let e = event(body).expect("an event");
        assert_eq!(e.kind, "task.created");
        assert_eq!(e.id, "evt_1");
        let payload: Value = serde_json::from_str(&e.payload).expect("JSON payload");
        assert_eq!(
            payload,
            json!({"id": "42", "title": "Write docs", "done": false})
        );
    }

    #[test]
    fn malformed_deliveries_say_what_is_wrong() {
        let wrong = |body: &[u8], says: &str| {
            let e = event(body).expect_err("must be refused");
            assert_eq!(e.kind(), "invalid_input", "{e}");
            assert!(e.message().contains(says), "{e} should mention {says:?}");
        };
        wrong(b"", "not JSON");
        wrong(b"\xff\xfe garbage {", "not JSON");
        wrong(b"[1,2]", "not a JSON object");
        wrong(br#"{"id":"e","task":{}}"#, "no `type`");
        wrong(
            br#"{"type":7,"id":"e","task":{}}"#,
            "`type` is not a string",
        );
        wrong(br#"{"type":"t","task":{}}"#, "no `id`");
        wrong(
            br#"{"type":"t","id":null,"task":{}}"#,
            "`id` is not a string",
        );
        wrong(br#"{"type":"t","id":"e"}"#, "no `task`");
        wrong(
            br#"{"type":"t","id":"e","task":"42"}"#,
            "`task` is not an object",
        );
        wrong(
            br#"{"type":"t","id":"e","task":[]}"#,
            "`task` is not an object",
        );
    }
}

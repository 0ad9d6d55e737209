//! Slack's inbound traffic → events: the Events API (JSON bodies:
//! `url_verification` handshakes and `event_callback` envelopes) and
//! interactivity (form bodies: `payload=<JSON>` for button clicks, modal
//! submissions and shortcuts; `command=…` for slash commands).
//!
//! The host has verified `X-Slack-Signature` over `v0:{timestamp}:{body}`
//! within five minutes before this runs. Slack's deprecated verification
//! `token` is dropped from every payload, so it is never stored.
//!
//! Kinds: `message.posted`, `message.changed`, `message.deleted`,
//! `app.mentioned`, `reaction.added`, `reaction.removed`,
//! `member.joined_channel`, `member.left_channel`, `channel.created`,
//! `channel.renamed`, `channel.archived`, `user.joined`; any other event
//! type `t` as `slack.t`; interactions as `interaction.<type>`
//! (`interaction.block_actions`, `interaction.view_submission`, …) and
//! slash commands as `command.invoked`.

use plugboard_guest::prelude::*;
use plugboard_guest::serde_json::Map;

/// Event API types with a name of ours.
const KINDS: &[(&str, &str)] = &[
    ("app_mention", "app.mentioned"),
    ("reaction_added", "reaction.added"),
    ("reaction_removed", "reaction.removed"),
    ("member_joined_channel", "member.joined_channel"),
    ("member_left_channel", "member.left_channel"),
    ("channel_created", "channel.created"),
    ("channel_rename", "channel.renamed"),
    ("channel_archive", "channel.archived"),
    ("team_join", "user.joined"),
];

/// What one delivery turns into.
#[derive(Debug, Clone, PartialEq)]
pub enum Inbound {
    /// A `url_verification` handshake: answer with the challenge.
    Challenge(String),
    /// Events to record, and whether to answer with an empty 200 (Slack
    /// shows an error for interaction answers it cannot read).
    Events {
        /// (kind, source id, payload).
        events: Vec<(String, String, Value)>,
        /// Answer `200` with an empty body.
        empty_answer: bool,
    },
}

/// Turns a verified delivery into events. `form` is the decoded body when
/// it was form-encoded, else `None` and `json` is the body.
pub fn inbound(json: Option<&Value>, form: Option<&[(String, String)]>) -> Result<Inbound> {
    if let Some(form) = form {
        let field = |name: &str| {
            form.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        if let Some(payload) = field("payload") {
            let payload: Value = plugboard_guest::serde_json::from_str(payload).map_err(|e| {
                Error::invalid_input(format!("interactive `payload` is not JSON: {e}"))
            })?;
            return Ok(Inbound::Events {
                events: vec![interaction(payload)?],
                empty_answer: true,
            });
        }
        if field("command").is_some() {
            return Ok(Inbound::Events {
                events: vec![command(form)],
                empty_answer: true,
            });
        }
        return Err(Error::invalid_input(
            "form body has neither `payload` nor `command`",
        ));
    }
    let body = json.ok_or_else(|| Error::invalid_input("empty Slack delivery"))?;
    match body["type"].as_str() {
        Some("url_verification") => {
            let challenge = body["challenge"]
                .as_str()
                .ok_or_else(|| Error::invalid_input("url_verification without a challenge"))?;
            Ok(Inbound::Challenge(challenge.to_owned()))
        }
        Some("event_callback") => Ok(Inbound::Events {
            events: vec![callback(body)?],
            empty_answer: false,
        }),
        // app_rate_limited and future envelope types: acknowledged, no event.
        _ => Ok(Inbound::Events {
            events: Vec::new(),
            empty_answer: false,
        }),
    }
}

/// An `event_callback` envelope: the inner event's fields, plus the
/// envelope's `team_id`, `api_app_id`, `event_id` and `event_time`.
fn callback(body: &Value) -> Result<(String, String, Value)> {
    let Some(inner) = body["event"].as_object() else {
        return Err(Error::invalid_input(
            "event_callback without an event object",
        ));
    };
    let event_type = inner
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("unknown");
    let kind = match event_type {
        "message" => match inner.get("subtype").and_then(Value::as_str) {
            Some("message_changed") => "message.changed".to_owned(),
            Some("message_deleted") => "message.deleted".to_owned(),
            _ => "message.posted".to_owned(),
        },
        other => KINDS
            .iter()
            .find(|(t, _)| *t == other)
            .map_or_else(|| format!("slack.{other}"), |(_, k)| (*k).to_owned()),
    };
    let mut payload = inner.clone();
    for key in ["team_id", "api_app_id", "event_id", "event_time"] {
        if let Some(v) = body.get(key) {
            payload.insert(key.to_owned(), v.clone());
        }
    }
    let id = body["event_id"]
        .as_str()
        .map(str::to_owned)
        .or_else(|| {
            inner
                .get("event_ts")
                .and_then(Value::as_str)
                .map(|ts| format!("{event_type}:{ts}"))
        })
        .unwrap_or_else(|| event_type.to_owned());
    Ok((kind, id, Value::Object(payload)))
}

/// An interactive payload (`block_actions`, `view_submission`,
/// `shortcut`, `message_action`, `view_closed`, …).
fn interaction(mut payload: Value) -> Result<(String, String, Value)> {
    let Some(object) = payload.as_object_mut() else {
        return Err(Error::invalid_input("interactive payload is not an object"));
    };
    object.remove("token");
    let kind_type = object
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("unknown")
        .to_owned();
    let id = object
        .get("trigger_id")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| {
            let ts = object.get("actions")?.get(0)?.get("action_ts")?.as_str()?;
            Some(format!("{kind_type}:{ts}"))
        })
        .unwrap_or_else(|| kind_type.clone());
    Ok((format!("interaction.{kind_type}"), id, payload))
}

/// A slash command's form fields (without `token`).
fn command(form: &[(String, String)]) -> (String, String, Value) {
    let mut payload = Map::new();
    for (k, v) in form {
        if k != "token" {
            payload.insert(k.clone(), Value::String(v.clone()));
        }
    }
    let id = payload
        .get("trigger_id")
        .and_then(Value::as_str)
        .unwrap_or("command")
        .to_owned();
    ("command.invoked".to_owned(), id, Value::Object(payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(i: Inbound) -> Vec<(String, String, Value)> {
        match i {
            Inbound::Events { events, .. } => events,
            Inbound::Challenge(c) => panic!("challenge {c}"),
        }
    }

    #[test]
    fn handshake_and_callbacks() {
        let hello = json!({"token": "t", "challenge": "3eZbrw1aBm", "type": "url_verification"});
        assert_eq!(
            inbound(Some(&hello), None).unwrap(),
            Inbound::Challenge("3eZbrw1aBm".into())
        );
        let msg = json!({
            "token": "legacy", "team_id": "T1", "api_app_id": "A1", "type": "event_callback",
            "event_id": "Ev01", "event_time": 1700000000,
            "event": {"type": "message", "channel": "C1", "user": "U1", "text": "hi", "ts": "1.2", "event_ts": "1.2"}
        });
        let got = events(inbound(Some(&msg), None).unwrap());
        assert_eq!(got[0].0, "message.posted");
        assert_eq!(got[0].1, "Ev01");
        assert_eq!(
            got[0].2,
            json!({"type": "message", "channel": "C1", "user": "U1", "text": "hi", "ts": "1.2",
                   "event_ts": "1.2", "team_id": "T1", "api_app_id": "A1", "event_id": "Ev01",
                   "event_time": 1700000000})
        );
        let changed = json!({"type": "event_callback", "event_id": "Ev02",
                             "event": {"type": "message", "subtype": "message_changed"}});
        assert_eq!(
            events(inbound(Some(&changed), None).unwrap())[0].0,
            "message.changed"
        );
        let reaction = json!({"type": "event_callback", "event_id": "Ev03",
                              "event": {"type": "reaction_added", "reaction": "eyes"}});
        assert_eq!(
            events(inbound(Some(&reaction), None).unwrap())[0].0,
            "reaction.added"
        );
        let other =
            json!({"type": "event_callback", "event_id": "Ev04", "event": {"type": "file_shared"}});
        assert_eq!(
            events(inbound(Some(&other), None).unwrap())[0].0,
            "slack.file_shared"
        );
        let limited = json!({"type": "app_rate_limited", "minute_rate_limited": 1});
        assert!(events(inbound(Some(&limited), None).unwrap()).is_empty());
    }

    #[test]
    fn interactions_and_commands() {
        let payload = json!({"type": "block_actions", "token": "legacy", "trigger_id": "13345.98",
                             "user": {"id": "U1"}, "actions": [{"action_id": "ack", "value": "42", "action_ts": "1.5"}]});
        let form = vec![("payload".to_owned(), payload.to_string())];
        let got = inbound(None, Some(&form)).unwrap();
        let Inbound::Events {
            events: clicked,
            empty_answer,
        } = got
        else {
            panic!("no events");
        };
        assert!(empty_answer);
        assert_eq!(clicked[0].0, "interaction.block_actions");
        assert_eq!(clicked[0].1, "13345.98");
        assert!(
            clicked[0].2.get("token").is_none(),
            "the token must not be stored"
        );
        assert_eq!(clicked[0].2["actions"][0]["value"], "42");

        let form = vec![
            ("token".to_owned(), "legacy".to_owned()),
            ("command".to_owned(), "/ticket".to_owned()),
            ("text".to_owned(), "printer on fire".to_owned()),
            ("trigger_id".to_owned(), "777.1".to_owned()),
        ];
        let got = events(inbound(None, Some(&form)).unwrap());
        assert_eq!(got[0].0, "command.invoked");
        assert_eq!(
            got[0].2,
            json!({"command": "/ticket", "text": "printer on fire", "trigger_id": "777.1"})
        );
        assert!(inbound(None, Some(&[("x".to_owned(), "1".to_owned())])).is_err());
        assert!(inbound(None, Some(&[("payload".to_owned(), "{".to_owned())])).is_err());
    }
}

//! `set_status` (`users.profile.set`): a user's status text, emoji and
//! expiry. Slack only lets user tokens (`xoxp-…`, scope
//! `users.profile:write`) set a status.

use plugboard_guest::prelude::*;

use crate::api;

/// Parameters of `set_status`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetStatus {
    /// Status text, at most 100 characters; empty clears the status.
    #[schemars(length(max = 100))]
    pub status_text: String,
    /// Emoji, e.g. `:palm_tree:`.
    #[serde(default)]
    pub status_emoji: Option<String>,
    /// When the status clears (Unix seconds); 0 or absent: never.
    #[serde(default)]
    pub status_expiration: Option<u64>,
}

/// The status Slack stored.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Status {
    /// Status text.
    pub status_text: String,
    /// Status emoji.
    pub status_emoji: String,
    /// Expiry (Unix seconds), 0 for none.
    pub status_expiration: u64,
}

/// `set_status`.
pub fn set_status(p: SetStatus) -> Result<Status> {
    let profile = json!({
        "status_text": p.status_text,
        "status_emoji": p.status_emoji.unwrap_or_default(),
        "status_expiration": p.status_expiration.unwrap_or(0),
    });
    let answer = api::call("users.profile.set", &json!({ "profile": profile }))?;
    let stored = &answer["profile"];
    Ok(Status {
        status_text: stored["status_text"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        status_emoji: stored["status_emoji"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        status_expiration: stored["status_expiration"].as_u64().unwrap_or(0),
    })
}

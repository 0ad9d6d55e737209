//! `create_channel` (`conversations.create`) and `invite_user`
//! (`conversations.invite`).

use plugboard_guest::prelude::*;
use plugboard_guest::serde_json::Map;

use crate::api;

/// Parameters of `create_channel`.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateChannel {
    /// Channel name: lower case letters, digits, `-` and `_`, at most 80.
    #[schemars(pattern(r"^[a-z0-9_-]{1,80}$"))]
    pub name: String,
    /// Create a private channel.
    #[serde(default)]
    pub is_private: bool,
    /// Workspace id, needed with an org-wide token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team_id: Option<String>,
}

/// A channel as Slack describes it: id and name typed, the rest passed
/// through.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct Channel {
    /// Channel id (`C…`).
    pub id: String,
    /// Channel name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Every other field Slack returned.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// `create_channel`.
pub fn create_channel(p: CreateChannel) -> Result<Channel> {
    let answer = api::call("conversations.create", &p)?;
    Ok(plugboard_guest::serde_json::from_value(
        answer["channel"].clone(),
    )?)
}

/// Parameters of `invite_user`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InviteUser {
    /// Channel id.
    #[schemars(length(min = 1))]
    pub channel: String,
    /// User ids (`U…`) to invite, 1 to 1000.
    #[schemars(length(min = 1, max = 1000))]
    pub users: Vec<String>,
}

/// `invite_user`: Slack takes the users comma-separated.
pub fn invite_user(p: InviteUser) -> Result<Channel> {
    let answer = api::call(
        "conversations.invite",
        &json!({ "channel": p.channel, "users": p.users.join(",") }),
    )?;
    Ok(plugboard_guest::serde_json::from_value(
        answer["channel"].clone(),
    )?)
}

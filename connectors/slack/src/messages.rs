//! `send_message` (`chat.postMessage`) and `update_message` (`chat.update`):
//! text, Block Kit blocks, thread replies.

use plugboard_guest::prelude::*;

use crate::api;

/// Parameters of `send_message`.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SendMessage {
    /// Channel id (`C…`), or a name such as `#general` the bot is in.
    #[schemars(length(min = 1))]
    pub channel: String,
    /// Message text (mrkdwn). With `blocks`, it is the notification
    /// fallback. One of `text` and `blocks` is required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Block Kit blocks, e.g. `[{"type": "section", "text": {"type":
    /// "mrkdwn", "text": "*Hi*"}}]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 50))]
    pub blocks: Option<Vec<Map>>,
    /// Reply in the thread of this parent message `ts`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_ts: Option<String>,
    /// With `thread_ts`: also show the reply in the channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_broadcast: Option<bool>,
    /// Unfurl links to text content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unfurl_links: Option<bool>,
    /// Interpret `text` as mrkdwn (Slack's default: true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mrkdwn: Option<bool>,
}

/// A JSON object (one Block Kit block).
pub type Map = plugboard_guest::serde_json::Map<String, Value>;

/// A posted or updated message.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct PostedMessage {
    /// Channel id the message is in.
    pub channel: String,
    /// The message's timestamp: its id within the channel.
    pub ts: String,
    /// The message as Slack stored it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<Map>,
}

/// `send_message`.
pub fn send_message(p: SendMessage) -> Result<PostedMessage> {
    if p.text.is_none() && p.blocks.is_none() {
        return Err(Error::invalid_input("give `text`, `blocks` or both"));
    }
    if p.reply_broadcast.is_some() && p.thread_ts.is_none() {
        return Err(Error::invalid_input("`reply_broadcast` needs `thread_ts`"));
    }
    Ok(plugboard_guest::serde_json::from_value(api::call(
        "chat.postMessage",
        &p,
    )?)?)
}

/// Parameters of `update_message`.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMessage {
    /// Channel id of the message.
    #[schemars(length(min = 1))]
    pub channel: String,
    /// `ts` of the message to change.
    #[schemars(length(min = 1))]
    pub ts: String,
    /// New text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// New blocks (replace the old ones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 50))]
    pub blocks: Option<Vec<Map>>,
}

/// `update_message`.
pub fn update_message(p: UpdateMessage) -> Result<PostedMessage> {
    if p.text.is_none() && p.blocks.is_none() {
        return Err(Error::invalid_input("give `text`, `blocks` or both"));
    }
    let answer = api::call("chat.update", &p)?;
    // chat.update answers `text` and `message` next to channel and ts.
    Ok(plugboard_guest::serde_json::from_value(answer)?)
}

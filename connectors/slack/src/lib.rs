//! `slack`: the Slack Web API with a bot token, and Slack's inbound
//! webhooks.
//!
//! The host adds `Authorization: Bearer {bot_token}` to requests towards
//! `{api_base}` (`https://slack.com/api` unless configured) and verifies
//! `X-Slack-Signature` with `signing_secret` before [`events`] sees a
//! delivery. Slack answers most failures with HTTP 200 and `{"ok": false,
//! "error": "…"}`; [`api::slack_error`] maps those codes onto the
//! connector error variants.

mod api;
mod conversations;
mod events;
mod files;
mod messages;
mod profile;

use std::time::Duration;

use plugboard_guest::prelude::*;

use api::{SlackConfig, SlackCredentials};
use conversations::{Channel, CreateChannel, InviteUser};
use events::Inbound;
use files::{UploadFile, UploadedFile};
use messages::{PostedMessage, SendMessage, UpdateMessage};
use profile::{SetStatus, Status};

/// The connector.
struct Slack;

impl Connector for Slack {
    fn manifest() -> Manifest {
        Manifest::new(
            "slack",
            env!("CARGO_PKG_VERSION"),
            "Slack: post and update messages (text, Block Kit, threads), create channels, invite \
             users, upload files (external upload flow), set a status; Events API and \
             interactivity webhooks as events.",
        )
        .method::<SendMessage, PostedMessage>(
            "send_message",
            "Posts a message (text and/or Block Kit blocks), optionally as a thread reply.",
        )
        .method::<UpdateMessage, PostedMessage>("update_message", "Changes a posted message.")
        .method::<CreateChannel, Channel>("create_channel", "Creates a public or private channel.")
        .method::<InviteUser, Channel>("invite_user", "Invites users to a channel.")
        .method::<UploadFile, UploadedFile>(
            "upload_file",
            "Uploads a file and optionally shares it in a channel or thread.",
        )
        .method::<SetStatus, Status>(
            "set_status",
            "Sets the token user's status (needs a user token).",
        )
        .config_schema::<SlackConfig>()
        .credential_schema::<SlackCredentials>()
        .hosts(["{api_base}", "{upload_base}"])
        // The token goes to the Web API only; upload URLs are pre-signed.
        .auth(Auth::new(AuthScheme::Bearer("bot_token".into())).host("{api_base}"))
        .webhook(WebhookConfig::new(WebhookScheme::Slack(
            TimestampedSecret {
                secret_field: "signing_secret".into(),
                tolerance_secs: 300,
            },
        )))
        // Slack's Tier 3 (most methods used here): 50+ per minute.
        .rate_limit(50, Duration::from_secs(60), 20)
    }

    fn invoke(method: &str, params: Params) -> Result<Output> {
        match method {
            "send_message" => params.call(messages::send_message),
            "update_message" => params.call(messages::update_message),
            "create_channel" => params.call(conversations::create_channel),
            "invite_user" => params.call(conversations::invite_user),
            "upload_file" => params.call(files::upload_file),
            "set_status" => params.call(profile::set_status),
            other => Err(Error::unknown_method(other)),
        }
    }

    fn test_connection() -> Result<String> {
        let me = api::call("auth.test", &json!({}))?;
        let team = me["team"].as_str().unwrap_or("a workspace");
        let user = me["user"].as_str().unwrap_or("a bot");
        Ok(format!("connected to {team} as {user}"))
    }

    fn handle_webhook(request: WebhookRequest) -> Result<WebhookOutcome> {
        let form = request.is_form().then(|| request.form());
        let json = match &form {
            Some(_) => None,
            None => Some(request.json::<Value>()?),
        };
        Ok(match events::inbound(json.as_ref(), form.as_deref())? {
            Inbound::Challenge(challenge) => WebhookOutcome::new().respond(
                WebhookResponse::new(200)
                    .header("content-type", "text/plain")
                    .body(challenge),
            ),
            Inbound::Events {
                events,
                empty_answer,
            } => {
                let mut outcome = WebhookOutcome::new();
                for (kind, id, payload) in events {
                    outcome = outcome.event(Event::new(kind, id, &payload)?);
                }
                if empty_answer {
                    outcome = outcome.respond(WebhookResponse::new(200));
                }
                outcome
            }
        })
    }
}

plugboard_guest::export_connector!(Slack);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_keeps_the_token_on_the_web_api() {
        let m = Slack::manifest().into_wit();
        assert_eq!(m.hosts, ["{api_base}", "{upload_base}"]);
        assert_eq!(m.auth.hosts, ["{api_base}"]);
        let config: Value = plugboard_guest::serde_json::from_str(&m.config_schema).unwrap();
        assert_eq!(
            config["properties"]["api_base"]["default"],
            "https://slack.com/api"
        );
        assert_eq!(
            config["properties"]["upload_base"]["default"],
            "https://files.slack.com"
        );
        let names: Vec<&str> = m.methods.iter().map(|x| x.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "send_message",
                "update_message",
                "create_channel",
                "invite_user",
                "upload_file",
                "set_status"
            ]
        );
        let send: Value =
            plugboard_guest::serde_json::from_str(&m.methods[0].params_schema).unwrap();
        assert_eq!(send["required"], json!(["channel"]));
        assert_eq!(send["additionalProperties"], false);
    }
}

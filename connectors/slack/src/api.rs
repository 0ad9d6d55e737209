//! Calling the Slack Web API: `POST {api_base}/{method}` with a JSON (or
//! form) body, and Slack's way of failing — HTTP 200 with `{"ok": false,
//! "error": "channel_not_found"}` — mapped onto connector errors.
//!
//! The bot token never passes through here: the manifest declares bearer
//! auth for `{api_base}` and the host adds it.

use std::time::Duration;

use plugboard_guest::http::{Request, Response};
use plugboard_guest::prelude::*;

/// Connecting and each wait for upstream bytes.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// Non-secret settings of an instance.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// Web API base URL. Leave the default except for a proxy or a test
    /// double.
    #[serde(default = "default_api_base")]
    #[schemars(extend("format" = "uri"))]
    pub api_base: String,
    /// Where Slack's upload URLs point (`files.getUploadURLExternal`); the
    /// file bytes go there, without the bot token.
    #[serde(default = "default_upload_base")]
    #[schemars(extend("format" = "uri"))]
    pub upload_base: String,
}

fn default_api_base() -> String {
    "https://slack.com/api".to_owned()
}

fn default_upload_base() -> String {
    "https://files.slack.com".to_owned()
}

/// Secrets; the connector never sees them.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code, reason = "read by the host, declared for the schema")]
pub struct SlackCredentials {
    /// Bot token (`xoxb-…`), sent as `Authorization: Bearer`. `set_status`
    /// needs a user token (`xoxp-…`) with `users.profile:write` instead.
    pub bot_token: String,
    /// The app's signing secret (Basic Information → App Credentials), for
    /// Events API and interactivity webhooks.
    #[serde(default)]
    pub signing_secret: Option<String>,
}

/// The instance config.
pub fn config() -> Result<SlackConfig> {
    config::parse()
}

/// `POST {api_base}/{method}` with a JSON body; the parsed answer when
/// `ok` is true.
pub fn call(method: &str, body: &impl Serialize) -> Result<Value> {
    let base = config()?.api_base;
    let request = Request::post(format!("{}/{method}", base.trim_end_matches('/')))
        .header("content-type", "application/json; charset=utf-8")
        .json(body);
    answer(method, send(request)?)
}

/// `POST {api_base}/{method}` with a form body (for the methods that take
/// no JSON).
pub fn call_form(method: &str, form: &[(&str, String)]) -> Result<Value> {
    let base = config()?.api_base;
    let request = Request::post(format!("{}/{method}", base.trim_end_matches('/'))).form(form);
    answer(method, send(request)?)
}

/// Sends with the standard timeout.
pub fn send(request: Request) -> Result<Response> {
    Ok(request.timeout(TIMEOUT).send()?)
}

/// HTTP errors first (401/403, 404, 429 with `Retry-After`, 5xx), then
/// Slack's own `ok: false`.
fn answer(method: &str, response: Response) -> Result<Value> {
    let retry_after = response
        .header("retry-after")
        .and_then(|v| v.trim().parse::<u32>().ok());
    let response = response.error_for_status()?;
    let body: Value = response.json()?;
    if body["ok"] == Value::Bool(true) {
        return Ok(body);
    }
    Err(slack_error(method, &body, retry_after))
}

/// Slack error codes that mean "no such object".
const NOT_FOUND: &[&str] = &[
    "channel_not_found",
    "user_not_found",
    "users_not_found",
    "message_not_found",
    "thread_not_found",
    "file_not_found",
    "team_not_found",
];

/// Codes that mean the token is missing, wrong, or lacks a permission.
const UNAUTHORIZED: &[&str] = &[
    "not_authed",
    "invalid_auth",
    "account_inactive",
    "token_revoked",
    "token_expired",
    "no_permission",
    "missing_scope",
    "not_allowed_token_type",
    "ekm_access_denied",
    "access_denied",
    "org_login_required",
    "team_access_not_granted",
    "two_factor_setup_required",
];

/// Codes that mean "try again later".
const TEMPORARY: &[&str] = &[
    "internal_error",
    "fatal_error",
    "service_unavailable",
    "request_timeout",
    "team_added_to_org",
];

/// Codes that blame the arguments.
const INVALID_INPUT: &[&str] = &[
    "invalid_arguments",
    "invalid_arg_name",
    "invalid_array_arg",
    "invalid_charset",
    "invalid_form_data",
    "invalid_post_type",
    "missing_post_type",
    "invalid_blocks",
    "invalid_blocks_format",
    "invalid_attachments",
    "invalid_metadata_format",
    "msg_too_long",
    "no_text",
    "too_many_attachments",
    "too_many_blocks",
    "invalid_name",
    "invalid_name_specials",
    "invalid_name_maxlength",
    "invalid_name_required",
    "invalid_name_punctuation",
    "invalid_ts",
    "invalid_users",
    "too_many_users",
    "no_user",
    "invalid_profile",
    "invalid_status_expiration",
];

/// The connector error for an `ok: false` answer of `method`:
/// `channel_not_found` and friends → not-found, token problems →
/// unauthorized, `ratelimited` → rate-limited, Slack-side trouble →
/// temporary, bad arguments → invalid-input, anything else (`name_taken`,
/// `is_archived`, `not_in_channel`, …) → permanent. The message names the
/// Slack code, and the scopes for `missing_scope`.
pub fn slack_error(method: &str, body: &Value, retry_after: Option<u32>) -> Error {
    let code = body["error"].as_str().unwrap_or("unknown_error");
    let mut message = format!("Slack {method} failed: {code}");
    if code == "missing_scope" {
        let needed = body["needed"].as_str().unwrap_or("?");
        let provided = body["provided"].as_str().unwrap_or("?");
        message.push_str(&format!(" (needed: {needed}; provided: {provided})"));
    }
    if let Some(details) = body["response_metadata"]["messages"].as_array() {
        let details: Vec<&str> = details.iter().filter_map(Value::as_str).collect();
        if !details.is_empty() {
            message.push_str(&format!(" ({})", details.join("; ")));
        }
    }
    let is = |list: &[&str]| list.contains(&code);
    if is(NOT_FOUND) {
        Error::not_found(message)
    } else if is(UNAUTHORIZED) {
        Error::unauthorized(message)
    } else if code == "ratelimited" || code == "rate_limited" {
        Error::rate_limited(message, retry_after)
    } else if is(TEMPORARY) {
        Error::temporary(message)
    } else if is(INVALID_INPUT) {
        Error::invalid_input(message)
    } else {
        Error::permanent(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ok_false_codes_map_to_variants() {
        let e = |code: &str| {
            slack_error(
                "chat.postMessage",
                &json!({"ok": false, "error": code}),
                Some(3),
            )
        };
        assert_eq!(
            e("channel_not_found"),
            Error::not_found("Slack chat.postMessage failed: channel_not_found")
        );
        assert_eq!(e("invalid_auth").kind(), "unauthorized");
        assert_eq!(
            e("ratelimited"),
            Error::rate_limited("Slack chat.postMessage failed: ratelimited", Some(3))
        );
        assert_eq!(e("internal_error").kind(), "temporary");
        assert_eq!(e("invalid_blocks").kind(), "invalid_input");
        assert_eq!(e("name_taken").kind(), "permanent");
        assert_eq!(
            slack_error("x", &json!({"ok": false}), None).message(),
            "Slack x failed: unknown_error"
        );
        let scope = slack_error(
            "users.profile.set",
            &json!({"ok": false, "error": "missing_scope", "needed": "users.profile:write", "provided": "chat:write"}),
            None,
        );
        assert_eq!(
            scope,
            Error::unauthorized(
                "Slack users.profile.set failed: missing_scope (needed: users.profile:write; provided: chat:write)"
            )
        );
        let detailed = slack_error(
            "chat.postMessage",
            &json!({"ok": false, "error": "invalid_blocks", "response_metadata": {"messages": ["[ERROR] missing required field: text [json-pointer:/blocks/0/text]"]}}),
            None,
        );
        assert!(
            detailed
                .message()
                .ends_with("[json-pointer:/blocks/0/text])"),
            "{detailed}"
        );
    }
}

//! Test connector for webhooks and rules: a help desk that signs its
//! webhooks (HMAC-SHA256, `X-Desk-Signature: sha256=<hex>`, delivery id in
//! `X-Desk-Delivery`) and has one action, `post_message`, which POSTs to
//! `{base_url}/messages`.
//!
//! `handle_webhook` turns `{"type": "ticket.created", "ticket": {...}}` into
//! an event of that kind whose payload is the body, and answers a
//! `{"challenge": "..."}` handshake with the challenge.

use plugboard_guest::http::Request;
use plugboard_guest::prelude::*;
use plugboard_guest::types::{
    Event, HmacSignature, SignatureEncoding, WebhookConfig, WebhookOutcome, WebhookRequest,
    WebhookResponse, WebhookScheme,
};

/// Config.
#[derive(Deserialize, JsonSchema)]
struct DeskConfig {
    /// API base URL.
    base_url: String,
}

/// Credentials.
#[derive(Deserialize, JsonSchema)]
#[allow(dead_code, reason = "read by the host, declared for the schema")]
struct DeskCreds {
    /// Secret the desk signs webhooks with.
    webhook_secret: String,
}

/// Parameters of `post_message`.
#[derive(Deserialize, JsonSchema)]
struct PostMessage {
    /// Channel name.
    channel: String,
    /// Message text.
    text: String,
}

struct Desk;

impl Connector for Desk {
    fn manifest() -> Manifest {
        Manifest::new(
            "desk",
            env!("CARGO_PKG_VERSION"),
            "Test help desk with signed webhooks.",
        )
        .method::<PostMessage, Value>("post_message", "Posts `text` to `channel`.")
        .config_schema::<DeskConfig>()
        .credential_schema::<DeskCreds>()
        .host("{base_url}")
        .webhook(
            WebhookConfig::new(WebhookScheme::HmacSha256(HmacSignature {
                header: "X-Desk-Signature".into(),
                encoding: SignatureEncoding::Hex,
                prefix: Some("sha256=".into()),
                secret_field: "webhook_secret".into(),
            }))
            .delivery_id_header("X-Desk-Delivery"),
        )
    }

    fn invoke(method: &str, params: Params) -> Result<Output> {
        match method {
            "post_message" => params.call(post_message),
            other => Err(Error::unknown_method(other)),
        }
    }

    fn handle_webhook(request: WebhookRequest) -> Result<WebhookOutcome> {
        let body: Value = request.json()?;
        if let Some(challenge) = body.get("challenge").and_then(Value::as_str) {
            return Ok(WebhookOutcome::new().respond(
                WebhookResponse::new(200)
                    .header("content-type", "text/plain")
                    .body(challenge),
            ));
        }
        let kind = body["type"].as_str().unwrap_or("unknown").to_owned();
        let id = body["ticket"]["id"].to_string();
        Ok(WebhookOutcome::new().event(Event::new(kind, id, &body)?))
    }
}

fn post_message(p: PostMessage) -> Result<Value> {
    let config: DeskConfig = plugboard_guest::config::parse()?;
    let response = Request::post(format!("{}/messages", config.base_url))
        .json(&json!({ "channel": p.channel, "text": p.text }))
        .send()?
        .error_for_status()?;
    response.json()
}

plugboard_guest::export_connector!(Desk);

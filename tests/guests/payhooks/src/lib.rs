//! Test connector: Stripe-style webhooks (`Stripe-Signature: t=…,v1=…`
//! over `t.body`, 300 s tolerance); the event id (`evt_…`) in the body is
//! the delivery id.

use plugboard_guest::prelude::*;
use plugboard_guest::types::{
    Event, TimestampedSecret, WebhookConfig, WebhookOutcome, WebhookRequest, WebhookScheme,
};

/// Credentials.
#[derive(Deserialize, JsonSchema)]
#[allow(dead_code, reason = "read by the host, declared for the schema")]
struct Creds {
    /// The endpoint's signing secret (`whsec_…`).
    signing_secret: String,
}

struct Payhooks;

impl Connector for Payhooks {
    fn manifest() -> Manifest {
        Manifest::new(
            "payhooks",
            env!("CARGO_PKG_VERSION"),
            "Test Stripe-style webhooks.",
        )
        .credential_schema::<Creds>()
        .webhook(WebhookConfig::new(WebhookScheme::Stripe(
            TimestampedSecret {
                secret_field: "signing_secret".into(),
                tolerance_secs: 300,
            },
        )))
    }

    fn invoke(method: &str, _params: Params) -> Result<Output> {
        Err(Error::unknown_method(method))
    }

    fn handle_webhook(request: WebhookRequest) -> Result<WebhookOutcome> {
        let body: Value = request.json()?;
        let kind = body["type"].as_str().unwrap_or("unknown").to_owned();
        let id = body["id"].as_str().unwrap_or("").to_owned();
        Ok(WebhookOutcome::new().event(Event::new(kind, id, &body["data"]["object"])?))
    }
}

plugboard_guest::export_connector!(Payhooks);

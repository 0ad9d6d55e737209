//! Webhook ingress: signature verification (before any guest code runs)
//! and delivery ids for de-duplication.
//!
//! - [`verify`]: the manifest's scheme checked against the raw body.
//! - [`sign`]: the mirror image, for `plugboard test`'s deliveries.

pub mod sign;
pub mod verify;

use serde_json::Value;

/// The delivery id of a request: the manifest's delivery-id header if set
/// and present, else a top-level `id` string of a JSON body (Stripe's
/// `evt_…`), else none.
pub fn delivery_id(header: Option<&str>, headers: &http::HeaderMap, body: &[u8]) -> Option<String> {
    if let Some(name) = header
        && let Some(v) = headers.get(name).and_then(|v| v.to_str().ok())
        && !v.is_empty()
    {
        return Some(v.chars().take(200).collect());
    }
    serde_json::from_slice::<Value>(body)
        .ok()?
        .get("id")?
        .as_str()
        .filter(|s| !s.is_empty())
        .map(|s| s.chars().take(200).collect())
}

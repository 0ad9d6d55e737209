//! Webhook signature verification, done by the host before any guest code
//! runs.
//!
//! A webhook endpoint is public: anyone who learns its URL can POST to it.
//! The connector's manifest says how the provider signs deliveries
//! ([`WebhookScheme`]) and which credential field holds the signing secret,
//! and [`verify`] checks the raw body and headers against that before the
//! delivery reaches the guest. A connector therefore never sees a forged
//! delivery, and connector authors cannot get the check wrong, because they
//! do not write it.
//!
//! What is checked, per scheme:
//!
//! - `hmacSha256`: HMAC-SHA256 of the raw body under the secret, sent as hex
//!   or standard base64 in a configured header, after a fixed prefix if one
//!   is configured. This covers Shopify (`X-Shopify-Hmac-Sha256`, base64),
//!   Zendesk-style base64 headers and most `sha256=<hex>` providers.
//! - `github`: `X-Hub-Signature-256: sha256=<hex>` over the raw body.
//! - `stripe`: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>...]` over
//!   `{t}.{body}`. Any `v1` may match (Stripe sends one per active secret
//!   while a secret is rolled); `t` must be within the tolerance of now.
//! - `slack`: `X-Slack-Signature: v0=<hex>` over
//!   `v0:{X-Slack-Request-Timestamp}:{body}`, the timestamp within the
//!   tolerance of now.
//! - `sharedSecret`: a header whose value is the secret itself.
//!
//! The check is fail-closed: anything short of a signature that provably
//! matches is an error, and every error means 401. A missing or repeated
//! header, a malformed value, an unknown encoding in the manifest, an unset
//! or empty secret, a timestamp outside the window in either direction: all
//! refuse the delivery. There is deliberately no "cannot tell, let it
//! through" path: refusing a genuine delivery costs a provider retry, while
//! accepting a forged one lets an attacker drive the connector, which acts
//! with the instance's credentials.
//!
//! Comparisons are constant-time ([`subtle`]), so response timing does not
//! reveal how much of a guessed signature or secret was right. Errors name
//! headers and credential fields, never a secret, a received value or the
//! expected signature, so they are safe to log and to return to the caller.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use http::{HeaderMap, HeaderValue};
use subtle::ConstantTimeEq as _;

use crate::manifest::WebhookScheme;

/// GitHub's signature header (SHA-256; the SHA-1 `X-Hub-Signature` is not
/// accepted, being the weaker of the two GitHub sends).
const GITHUB_HEADER: &str = "X-Hub-Signature-256";
/// Prefix of GitHub's signature value.
const GITHUB_PREFIX: &str = "sha256=";
/// Stripe's signature header.
const STRIPE_HEADER: &str = "Stripe-Signature";
/// Slack's signature header.
const SLACK_SIGNATURE_HEADER: &str = "X-Slack-Signature";
/// Slack's timestamp header, part of the signed base string.
const SLACK_TIMESTAMP_HEADER: &str = "X-Slack-Request-Timestamp";
/// Prefix of Slack's signature value; also the base string's version tag.
const SLACK_PREFIX: &str = "v0=";

/// Why a delivery is refused (every variant → HTTP 401 at the edge).
///
/// Messages name headers and credential fields only; they never contain a
/// secret, a received header value or an expected signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// A header the scheme needs is absent; holds the header name.
    #[error("webhook delivery has no {0} header")]
    MissingHeader(String),
    /// A header is present but malformed (not ASCII, repeated, lacking its
    /// prefix, not hex or base64, no timestamp, ...), or the manifest names
    /// an unknown encoding; holds what was wrong, never a value.
    #[error("webhook signature is malformed: {0}")]
    BadEncoding(String),
    /// The signature is well-formed but no signature matches.
    #[error("webhook signature does not match")]
    Mismatch,
    /// The signed timestamp is outside the replay window, in the past or the
    /// future.
    #[error(
        "webhook timestamp is outside the {tolerance_secs}s replay window \
         (age {age_secs}s; negative means in the future)"
    )]
    Stale {
        /// `now - timestamp` in seconds; negative when the timestamp is in
        /// the future.
        age_secs: i64,
        /// The window configured in the manifest.
        tolerance_secs: u32,
    },
    /// The credential field holding the secret is not set (or is empty);
    /// holds the field name.
    #[error("credential field {0:?} holding the webhook secret is not set")]
    MissingSecret(String),
}

/// A delivery whose signature checked out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    /// The signed Unix timestamp (seconds) for schemes that sign one (Stripe,
    /// Slack); `None` for schemes that do not. Callers can use it to order
    /// or deduplicate deliveries.
    pub timestamp: Option<i64>,
}

/// Verifies `body` + `headers` per `scheme`. `secret` looks up a credential
/// field's value (returns `None` if unset). `now_unix` is the current Unix
/// time in seconds (injected for tests).
///
/// `body` must be the raw request body exactly as received: providers sign
/// bytes, and re-serialised JSON will not match. Returns
/// `Ok(Verified { timestamp })` on success and an error for anything else
/// (see the module docs); the caller must answer 401 on any error and must
/// not run the guest.
///
/// Cheap checks come first (headers, then the replay window), so malformed
/// or replayed requests are refused before the secret is looked up or an
/// HMAC is computed.
pub fn verify(
    scheme: &WebhookScheme,
    headers: &HeaderMap,
    body: &[u8],
    secret: &dyn Fn(&str) -> Option<String>,
    now_unix: i64,
) -> Result<Verified, VerifyError> {
    match scheme {
        WebhookScheme::HmacSha256 {
            header,
            encoding,
            prefix,
            secret_field,
        } => {
            let encoding = Encoding::parse(encoding)?;
            let prefix = prefix.as_deref().unwrap_or("");
            verify_body_hmac(
                headers,
                header,
                prefix,
                encoding,
                body,
                secret,
                secret_field,
            )
        }
        WebhookScheme::Github { secret_field } => verify_body_hmac(
            headers,
            GITHUB_HEADER,
            GITHUB_PREFIX,
            Encoding::Hex,
            body,
            secret,
            secret_field,
        ),
        WebhookScheme::Stripe {
            secret_field,
            tolerance_secs,
        } => verify_stripe(
            headers,
            body,
            secret,
            secret_field,
            *tolerance_secs,
            now_unix,
        ),
        WebhookScheme::Slack {
            secret_field,
            tolerance_secs,
        } => verify_slack(
            headers,
            body,
            secret,
            secret_field,
            *tolerance_secs,
            now_unix,
        ),
        WebhookScheme::SharedSecret {
            header,
            secret_field,
        } => verify_shared_secret(headers, header, secret, secret_field),
    }
}

/// How a body-HMAC signature is written in its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    /// Hexadecimal, either case.
    Hex,
    /// Standard base64 alphabet, padded.
    Base64,
}

impl Encoding {
    /// The manifest's encoding name. Manifest validation does not check it,
    /// so an unknown name arrives here and must refuse (not default to one).
    fn parse(name: &str) -> Result<Self, VerifyError> {
        if name.eq_ignore_ascii_case("hex") {
            Ok(Self::Hex)
        } else if name.eq_ignore_ascii_case("base64") {
            Ok(Self::Base64)
        } else {
            Err(VerifyError::BadEncoding(format!(
                "the manifest names signature encoding {name:?}; expected \"hex\" or \"base64\""
            )))
        }
    }

    /// Decodes a signature taken from `header` (named in the error only).
    fn decode(self, text: &str, header: &str) -> Result<Vec<u8>, VerifyError> {
        match self {
            Self::Hex => hex::decode(text).map_err(|_| {
                VerifyError::BadEncoding(format!("the {header} signature is not hex"))
            }),
            Self::Base64 => BASE64.decode(text).map_err(|_| {
                VerifyError::BadEncoding(format!("the {header} signature is not base64"))
            }),
        }
    }
}

/// HMAC-SHA256 of the raw body (generic scheme, Shopify, GitHub).
fn verify_body_hmac(
    headers: &HeaderMap,
    header: &str,
    prefix: &str,
    encoding: Encoding,
    body: &[u8],
    secret: &dyn Fn(&str) -> Option<String>,
    secret_field: &str,
) -> Result<Verified, VerifyError> {
    let value = header_str(headers, header)?;
    // The prefix is part of the format: a value without it is not what the
    // provider sends, so it is refused rather than tried bare.
    let text = value.strip_prefix(prefix).ok_or_else(|| {
        VerifyError::BadEncoding(format!(
            "the {header} signature lacks its {prefix:?} prefix"
        ))
    })?;
    let given = encoding.decode(text, header)?;
    let key = lookup_secret(secret, secret_field)?;
    let expected = hmac_sha256(key.as_bytes(), &[body])?;
    if ct_eq(&expected, &given) {
        Ok(Verified { timestamp: None })
    } else {
        Err(VerifyError::Mismatch)
    }
}

/// Stripe: `t=<unix>,v1=<hex>...` over `{t}.{body}`.
fn verify_stripe(
    headers: &HeaderMap,
    body: &[u8],
    secret: &dyn Fn(&str) -> Option<String>,
    secret_field: &str,
    tolerance_secs: u32,
    now_unix: i64,
) -> Result<Verified, VerifyError> {
    let value = header_str(headers, STRIPE_HEADER)?;
    let mut timestamp: Option<&str> = None;
    let mut signatures = Vec::new();
    for item in value.split(',') {
        let Some((key, val)) = item.trim().split_once('=') else {
            return Err(VerifyError::BadEncoding(format!(
                "an item of the {STRIPE_HEADER} header is not key=value"
            )));
        };
        match key.trim() {
            // Two timestamps leave it ambiguous which one was signed.
            "t" if timestamp.is_some() => {
                return Err(VerifyError::BadEncoding(format!(
                    "the {STRIPE_HEADER} header has more than one t="
                )));
            }
            "t" => timestamp = Some(val.trim()),
            "v1" => signatures.push(Encoding::Hex.decode(val.trim(), STRIPE_HEADER)?),
            // `v0` (the legacy test-mode scheme) and any future scheme are
            // ignored: only a `v1` match is ever accepted, so skipping them
            // cannot let anything through.
            _ => {}
        }
    }
    let Some(t_text) = timestamp else {
        return Err(VerifyError::BadEncoding(format!(
            "the {STRIPE_HEADER} header has no t= timestamp"
        )));
    };
    let t = parse_timestamp(t_text, STRIPE_HEADER)?;
    check_window(t, now_unix, tolerance_secs)?;
    let key = lookup_secret(secret, secret_field)?;
    // The timestamp is signed as sent (not re-formatted from `t`), exactly as
    // the provider built the payload.
    let expected = hmac_sha256(key.as_bytes(), &[t_text.as_bytes(), b".", body])?;
    // No `v1` at all leaves nothing to match: Mismatch.
    if any_matches(&expected, &signatures) {
        Ok(Verified { timestamp: Some(t) })
    } else {
        Err(VerifyError::Mismatch)
    }
}

/// Slack: `v0=<hex>` over `v0:{timestamp}:{body}`.
fn verify_slack(
    headers: &HeaderMap,
    body: &[u8],
    secret: &dyn Fn(&str) -> Option<String>,
    secret_field: &str,
    tolerance_secs: u32,
    now_unix: i64,
) -> Result<Verified, VerifyError> {
    let t_text = header_str(headers, SLACK_TIMESTAMP_HEADER)?;
    let value = header_str(headers, SLACK_SIGNATURE_HEADER)?;
    let t = parse_timestamp(t_text, SLACK_TIMESTAMP_HEADER)?;
    // Another version would be another base string; refuse, do not guess.
    let text = value.strip_prefix(SLACK_PREFIX).ok_or_else(|| {
        VerifyError::BadEncoding(format!(
            "the {SLACK_SIGNATURE_HEADER} signature lacks its {SLACK_PREFIX:?} prefix"
        ))
    })?;
    let given = Encoding::Hex.decode(text, SLACK_SIGNATURE_HEADER)?;
    check_window(t, now_unix, tolerance_secs)?;
    let key = lookup_secret(secret, secret_field)?;
    let expected = hmac_sha256(key.as_bytes(), &[b"v0:", t_text.as_bytes(), b":", body])?;
    if ct_eq(&expected, &given) {
        Ok(Verified { timestamp: Some(t) })
    } else {
        Err(VerifyError::Mismatch)
    }
}

/// A header whose value is the secret itself.
fn verify_shared_secret(
    headers: &HeaderMap,
    header: &str,
    secret: &dyn Fn(&str) -> Option<String>,
    secret_field: &str,
) -> Result<Verified, VerifyError> {
    // Raw bytes, not `to_str`: the secret may contain any byte a header can
    // carry, and a non-ASCII guess should be a Mismatch like any other.
    let given = single_header(headers, header)?.as_bytes().trim_ascii();
    let key = lookup_secret(secret, secret_field)?;
    // Comparing SHA-256 digests rather than the values keeps the comparison
    // at a fixed length, so timing reveals neither the secret's content nor
    // its length.
    if ct_eq(&sha256(given), &sha256(key.as_bytes())) {
        Ok(Verified { timestamp: None })
    } else {
        Err(VerifyError::Mismatch)
    }
}

/// The one value of header `name`. Absent → MissingHeader; repeated →
/// BadEncoding, because with two values it is ambiguous which one the
/// provider meant, and picking one is a choice an attacker could steer.
fn single_header<'a>(headers: &'a HeaderMap, name: &str) -> Result<&'a HeaderValue, VerifyError> {
    // `&str` lookups are case-insensitive (the name is lowercased), and an
    // invalid name simply finds nothing.
    let mut values = headers.get_all(name).iter();
    let Some(value) = values.next() else {
        return Err(VerifyError::MissingHeader(name.to_owned()));
    };
    if values.next().is_some() {
        return Err(VerifyError::BadEncoding(format!(
            "the {name} header appears more than once"
        )));
    }
    Ok(value)
}

/// The one value of header `name` as trimmed text. Signatures and
/// timestamps are ASCII, so anything else is malformed.
fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Result<&'a str, VerifyError> {
    single_header(headers, name)?
        .to_str()
        .map(str::trim)
        .map_err(|_| VerifyError::BadEncoding(format!("the {name} header is not visible ASCII")))
}

/// The secret in `field`. An empty secret counts as unset: an empty HMAC
/// key is public knowledge, and an empty shared secret would match an empty
/// header, so either would let anyone through.
fn lookup_secret(
    secret: &dyn Fn(&str) -> Option<String>,
    field: &str,
) -> Result<String, VerifyError> {
    secret(field)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| VerifyError::MissingSecret(field.to_owned()))
}

/// A Unix timestamp in seconds: ASCII digits only. `i64::from_str` would
/// also take a sign; neither provider sends one, and accepting more forms
/// than the provider sends only widens what an attacker can try. At most 18
/// digits, so parsing cannot overflow.
fn parse_timestamp(text: &str, header: &str) -> Result<i64, VerifyError> {
    let bad = || {
        VerifyError::BadEncoding(format!(
            "the {header} timestamp is not a Unix time in seconds"
        ))
    };
    if text.is_empty() || text.len() > 18 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    text.parse().map_err(|_| bad())
}

/// Refuses a timestamp more than `tolerance_secs` from now in either
/// direction: too old is a replay, too far ahead is a pre-signed request
/// meant to be replayed later (or a clock so wrong the window means
/// nothing). A tolerance of 0 accepts only the current second; it does not
/// disable the check.
fn check_window(timestamp: i64, now_unix: i64, tolerance_secs: u32) -> Result<(), VerifyError> {
    // Saturating: both values come from outside (a header, the caller), and
    // an overflow must not wrap into the window.
    let age_secs = now_unix.saturating_sub(timestamp);
    if age_secs.unsigned_abs() > u64::from(tolerance_secs) {
        Err(VerifyError::Stale {
            age_secs,
            tolerance_secs,
        })
    } else {
        Ok(())
    }
}

/// HMAC-SHA256 of the concatenation of `parts` under `key`. Fed part by
/// part so the body is never copied into a signed-payload buffer.
fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Result<Vec<u8>, VerifyError> {
    use hmac::Mac as _;
    // HMAC takes keys of any length, so this cannot fail; should it ever,
    // refuse the delivery rather than panic or accept.
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(key).map_err(|_| VerifyError::Mismatch)?;
    for part in parts {
        mac.update(part);
    }
    Ok(mac.finalize().into_bytes().to_vec())
}

/// SHA-256 of `data`.
fn sha256(data: &[u8]) -> Vec<u8> {
    use sha2::Digest as _;
    sha2::Sha256::digest(data).to_vec()
}

/// Constant-time equality. A length difference fails at once: lengths here
/// are public (a MAC's is fixed by the scheme, shared secrets are compared
/// as digests), so only the content needs hiding.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// Whether any candidate equals `expected`. Every candidate is compared
/// (non-short-circuiting `|`), so timing does not reveal which one matched.
fn any_matches(expected: &[u8], candidates: &[Vec<u8>]) -> bool {
    candidates.iter().fold(false, |matched, candidate| {
        matched | ct_eq(expected, candidate)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderName;

    // GitHub docs, "Validating webhook deliveries".
    const GITHUB_SECRET: &str = "It's a Secret to Everybody";
    const GITHUB_BODY: &str = "Hello, World!";
    const GITHUB_SIG: &str =
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    // Slack docs, "Verifying requests from Slack".
    const SLACK_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
    const SLACK_TS: &str = "1531420618";
    const SLACK_T: i64 = 1_531_420_618;
    const SLACK_BODY: &str = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    const SLACK_SIG: &str = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";

    // Stripe publishes no fixed vector. This one follows the documented
    // construction (HMAC-SHA256 of `{t}.{body}`, secret used as-is including
    // `whsec_`) and was computed independently with
    // `printf '%s' '1700000000.{"id":"evt_test_webhook","object":"event"}' |
    //  openssl dgst -sha256 -hmac whsec_test_secret`
    // (and cross-checked with Python's `hmac`).
    const STRIPE_SECRET: &str = "whsec_test_secret";
    const STRIPE_TS: &str = "1700000000";
    const STRIPE_T: i64 = 1_700_000_000;
    const STRIPE_BODY: &str = r#"{"id":"evt_test_webhook","object":"event"}"#;
    const STRIPE_V1: &str = "d95c6b7477fbd7e9f90b1b0ef5f9c7ac25abca5382460e0d988c2b2a5b71b990";

    // Shopify-style base64 HMAC of the body, computed independently with
    // `printf '%s' '<body>' | openssl dgst -sha256 -hmac shpss_test_secret -binary | base64`.
    const SHOPIFY_SECRET: &str = "shpss_test_secret";
    const SHOPIFY_BODY: &str =
        r#"{"id":820982911946154508,"email":"jon@doe.ca","topic":"orders/create"}"#;
    const SHOPIFY_SIG: &str = "PEyDufoy/9N1yHLdCzWUfYlPHsOsLZowG59JquDg5qE=";
    const SHOPIFY_HEADER: &str = "X-Shopify-Hmac-Sha256";

    const FIELD: &str = "signing_secret";
    const NOW: i64 = 1_800_000_000;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    /// A lookup where only `FIELD` is set, to `value`.
    fn secret_is(value: &'static str) -> impl Fn(&str) -> Option<String> {
        move |field| (field == FIELD).then(|| value.to_owned())
    }

    fn unset(_: &str) -> Option<String> {
        None
    }

    /// `s` with the character at `i` replaced by a different one of the
    /// same class (hex digit or base64 letter), so it stays well-formed.
    fn flip_char(s: &str, i: usize) -> String {
        let mut chars: Vec<char> = s.chars().collect();
        chars[i] = match chars[i] {
            '0' => '1',
            '9' => '8',
            'f' => 'e',
            'F' => 'E',
            'z' => 'y',
            'Z' => 'Y',
            c if c.is_ascii_alphanumeric() => (c as u8 + 1) as char,
            _ => 'A',
        };
        chars.into_iter().collect()
    }

    fn flip_byte(body: &str, i: usize) -> Vec<u8> {
        let mut bytes = body.as_bytes().to_vec();
        bytes[i] ^= 0x01;
        bytes
    }

    fn github() -> WebhookScheme {
        WebhookScheme::Github {
            secret_field: FIELD.into(),
        }
    }

    fn slack() -> WebhookScheme {
        WebhookScheme::Slack {
            secret_field: FIELD.into(),
            tolerance_secs: 300,
        }
    }

    fn stripe() -> WebhookScheme {
        WebhookScheme::Stripe {
            secret_field: FIELD.into(),
            tolerance_secs: 300,
        }
    }

    fn shopify() -> WebhookScheme {
        WebhookScheme::HmacSha256 {
            header: SHOPIFY_HEADER.into(),
            encoding: "base64".into(),
            prefix: None,
            secret_field: FIELD.into(),
        }
    }

    fn shared() -> WebhookScheme {
        WebhookScheme::SharedSecret {
            header: "X-Webhook-Token".into(),
            secret_field: FIELD.into(),
        }
    }

    fn bad_encoding(r: Result<Verified, VerifyError>) -> bool {
        matches!(r, Err(VerifyError::BadEncoding(_)))
    }

    // ---- GitHub ----

    fn github_verify(
        sig: &str,
        body: &[u8],
        secret: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Verified, VerifyError> {
        verify(
            &github(),
            &headers(&[("X-Hub-Signature-256", sig)]),
            body,
            secret,
            NOW,
        )
    }

    #[test]
    fn github_published_vector_verifies() {
        let ok = github_verify(
            GITHUB_SIG,
            GITHUB_BODY.as_bytes(),
            &secret_is(GITHUB_SECRET),
        );
        assert_eq!(ok, Ok(Verified { timestamp: None }));
    }

    #[test]
    fn github_accepts_uppercase_hex_and_any_header_name_case() {
        let upper = format!(
            "sha256={}",
            GITHUB_SIG["sha256=".len()..].to_ascii_uppercase()
        );
        let map = headers(&[("x-hub-signature-256", &upper)]);
        let ok = verify(
            &github(),
            &map,
            GITHUB_BODY.as_bytes(),
            &secret_is(GITHUB_SECRET),
            NOW,
        );
        assert_eq!(ok, Ok(Verified { timestamp: None }));
    }

    #[test]
    fn github_rejects_flipped_body_and_signature() {
        let secret = secret_is(GITHUB_SECRET);
        for i in [0, 5, GITHUB_BODY.len() - 1] {
            let body = flip_byte(GITHUB_BODY, i);
            assert_eq!(
                github_verify(GITHUB_SIG, &body, &secret),
                Err(VerifyError::Mismatch)
            );
        }
        for i in ["sha256=".len(), GITHUB_SIG.len() - 1] {
            let sig = flip_char(GITHUB_SIG, i);
            assert_eq!(
                github_verify(&sig, GITHUB_BODY.as_bytes(), &secret),
                Err(VerifyError::Mismatch)
            );
        }
        // Right secret, wrong one: also a mismatch.
        assert_eq!(
            github_verify(
                GITHUB_SIG,
                GITHUB_BODY.as_bytes(),
                &secret_is("It's a secret to everybody")
            ),
            Err(VerifyError::Mismatch)
        );
        // A truncated signature is well-formed hex of the wrong length.
        assert_eq!(
            github_verify(
                &GITHUB_SIG[..GITHUB_SIG.len() - 2],
                GITHUB_BODY.as_bytes(),
                &secret
            ),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn github_rejects_missing_header_prefix_bad_hex_and_missing_secret() {
        let secret = secret_is(GITHUB_SECRET);
        let body = GITHUB_BODY.as_bytes();
        // The SHA-1 header alone is not enough.
        let sha1_only = headers(&[("X-Hub-Signature", "sha1=0000")]);
        assert_eq!(
            verify(&github(), &sha1_only, body, &secret, NOW),
            Err(VerifyError::MissingHeader("X-Hub-Signature-256".into()))
        );
        assert!(bad_encoding(github_verify(
            &GITHUB_SIG["sha256=".len()..],
            body,
            &secret
        )));
        assert!(bad_encoding(github_verify("sha1=757107ea", body, &secret)));
        let not_hex = GITHUB_SIG.replace('e', "g");
        assert!(bad_encoding(github_verify(&not_hex, body, &secret)));
        assert!(bad_encoding(github_verify(
            &GITHUB_SIG[..GITHUB_SIG.len() - 1],
            body,
            &secret
        )));
        assert_eq!(
            github_verify(GITHUB_SIG, body, &unset),
            Err(VerifyError::MissingSecret(FIELD.into()))
        );
        assert_eq!(
            github_verify(GITHUB_SIG, body, &secret_is("")),
            Err(VerifyError::MissingSecret(FIELD.into()))
        );
    }

    // ---- Slack ----

    fn slack_verify(ts: &str, sig: &str, body: &[u8], now: i64) -> Result<Verified, VerifyError> {
        let map = headers(&[
            ("X-Slack-Request-Timestamp", ts),
            ("X-Slack-Signature", sig),
        ]);
        verify(&slack(), &map, body, &secret_is(SLACK_SECRET), now)
    }

    #[test]
    fn slack_published_vector_verifies() {
        let ok = slack_verify(SLACK_TS, SLACK_SIG, SLACK_BODY.as_bytes(), SLACK_T + 10);
        assert_eq!(
            ok,
            Ok(Verified {
                timestamp: Some(SLACK_T)
            })
        );
    }

    #[test]
    fn slack_rejects_flipped_body_signature_and_timestamp() {
        let body = SLACK_BODY.as_bytes();
        let now = SLACK_T + 10;
        for i in [0, 100, SLACK_BODY.len() - 1] {
            assert_eq!(
                slack_verify(SLACK_TS, SLACK_SIG, &flip_byte(SLACK_BODY, i), now),
                Err(VerifyError::Mismatch)
            );
        }
        for i in [3, SLACK_SIG.len() - 1] {
            assert_eq!(
                slack_verify(SLACK_TS, &flip_char(SLACK_SIG, i), body, now),
                Err(VerifyError::Mismatch)
            );
        }
        // Last digit: still inside the window, but not what was signed.
        assert_eq!(
            slack_verify("1531420619", SLACK_SIG, body, now),
            Err(VerifyError::Mismatch)
        );
        // First digit: far outside the window.
        assert!(matches!(
            slack_verify("2531420618", SLACK_SIG, body, now),
            Err(VerifyError::Stale { .. })
        ));
    }

    #[test]
    fn slack_rejects_stale_and_future_timestamps() {
        let body = SLACK_BODY.as_bytes();
        // The window is inclusive at both ends.
        for now in [SLACK_T - 300, SLACK_T, SLACK_T + 300] {
            assert!(slack_verify(SLACK_TS, SLACK_SIG, body, now).is_ok());
        }
        assert_eq!(
            slack_verify(SLACK_TS, SLACK_SIG, body, SLACK_T + 301),
            Err(VerifyError::Stale {
                age_secs: 301,
                tolerance_secs: 300
            })
        );
        assert_eq!(
            slack_verify(SLACK_TS, SLACK_SIG, body, SLACK_T - 301),
            Err(VerifyError::Stale {
                age_secs: -301,
                tolerance_secs: 300
            })
        );
    }

    #[test]
    fn slack_rejects_missing_headers_bad_encoding_and_missing_secret() {
        let body = SLACK_BODY.as_bytes();
        let now = SLACK_T + 10;
        let secret = secret_is(SLACK_SECRET);
        let no_ts = headers(&[("X-Slack-Signature", SLACK_SIG)]);
        assert_eq!(
            verify(&slack(), &no_ts, body, &secret, now),
            Err(VerifyError::MissingHeader(
                "X-Slack-Request-Timestamp".into()
            ))
        );
        let no_sig = headers(&[("X-Slack-Request-Timestamp", SLACK_TS)]);
        assert_eq!(
            verify(&slack(), &no_sig, body, &secret, now),
            Err(VerifyError::MissingHeader("X-Slack-Signature".into()))
        );
        let v1 = SLACK_SIG.replacen("v0=", "v1=", 1);
        assert!(bad_encoding(slack_verify(SLACK_TS, &v1, body, now)));
        assert!(bad_encoding(slack_verify(
            SLACK_TS,
            &SLACK_SIG[3..],
            body,
            now
        )));
        let not_hex = SLACK_SIG.replace('a', "x");
        assert!(bad_encoding(slack_verify(SLACK_TS, &not_hex, body, now)));
        for ts in [
            "+1531420618",
            "-1531420618",
            "1531420618.0",
            "1.5e9",
            "now",
            "1234567890123456789",
        ] {
            assert!(bad_encoding(slack_verify(ts, SLACK_SIG, body, now)), "{ts}");
        }
        let map = headers(&[
            ("X-Slack-Request-Timestamp", SLACK_TS),
            ("X-Slack-Signature", SLACK_SIG),
        ]);
        assert_eq!(
            verify(&slack(), &map, body, &unset, now),
            Err(VerifyError::MissingSecret(FIELD.into()))
        );
    }

    // ---- Stripe ----

    fn stripe_verify(header: &str, body: &[u8], now: i64) -> Result<Verified, VerifyError> {
        let map = headers(&[("Stripe-Signature", header)]);
        verify(&stripe(), &map, body, &secret_is(STRIPE_SECRET), now)
    }

    #[test]
    fn stripe_pinned_vector_matches_documented_construction() {
        use hmac::Mac as _;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(STRIPE_SECRET.as_bytes()).unwrap();
        mac.update(format!("{STRIPE_TS}.{STRIPE_BODY}").as_bytes());
        assert_eq!(hex::encode(mac.finalize().into_bytes()), STRIPE_V1);

        let header = format!("t={STRIPE_TS},v1={STRIPE_V1}");
        assert_eq!(
            stripe_verify(&header, STRIPE_BODY.as_bytes(), STRIPE_T + 5),
            Ok(Verified {
                timestamp: Some(STRIPE_T)
            })
        );
    }

    #[test]
    fn stripe_accepts_any_v1_when_only_the_second_is_valid() {
        let body = STRIPE_BODY.as_bytes();
        let wrong = flip_char(STRIPE_V1, 0);
        // As during a secret roll: an old-secret v1, the valid v1, and a v0.
        let header = format!("t={STRIPE_TS},v1={wrong},v1={STRIPE_V1},v0={wrong}");
        assert_eq!(
            stripe_verify(&header, body, STRIPE_T),
            Ok(Verified {
                timestamp: Some(STRIPE_T)
            })
        );
        // A valid v1 is not undone by a wrong one after it.
        let header = format!("t={STRIPE_TS},v1={wrong},v1={STRIPE_V1},v1={wrong}");
        assert!(stripe_verify(&header, body, STRIPE_T).is_ok());
        // Order within the header does not matter.
        let header = format!("v1={wrong},v1={STRIPE_V1},t={STRIPE_TS}");
        assert!(stripe_verify(&header, body, STRIPE_T).is_ok());
        // Only wrong ones: mismatch.
        let header = format!("t={STRIPE_TS},v1={wrong},v1={}", flip_char(STRIPE_V1, 63));
        assert_eq!(
            stripe_verify(&header, body, STRIPE_T),
            Err(VerifyError::Mismatch)
        );
        // A correct v0 is not a v1: mismatch.
        let header = format!("t={STRIPE_TS},v0={STRIPE_V1}");
        assert_eq!(
            stripe_verify(&header, body, STRIPE_T),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn stripe_rejects_flipped_body_signature_and_timestamp() {
        let body = STRIPE_BODY.as_bytes();
        let good = format!("t={STRIPE_TS},v1={STRIPE_V1}");
        for i in [0, 10, STRIPE_BODY.len() - 1] {
            assert_eq!(
                stripe_verify(&good, &flip_byte(STRIPE_BODY, i), STRIPE_T),
                Err(VerifyError::Mismatch)
            );
        }
        for i in [0, 31, 63] {
            let header = format!("t={STRIPE_TS},v1={}", flip_char(STRIPE_V1, i));
            assert_eq!(
                stripe_verify(&header, body, STRIPE_T),
                Err(VerifyError::Mismatch)
            );
        }
        // Last digit: inside the window, but not what was signed.
        let header = format!("t=1700000001,v1={STRIPE_V1}");
        assert_eq!(
            stripe_verify(&header, body, STRIPE_T),
            Err(VerifyError::Mismatch)
        );
        // The same instant written differently is not what was signed either.
        let header = format!("t=01700000000,v1={STRIPE_V1}");
        assert_eq!(
            stripe_verify(&header, body, STRIPE_T),
            Err(VerifyError::Mismatch)
        );
        // First digit: outside the window.
        let header = format!("t=2700000000,v1={STRIPE_V1}");
        assert!(matches!(
            stripe_verify(&header, body, STRIPE_T),
            Err(VerifyError::Stale { .. })
        ));
    }

    #[test]
    fn stripe_rejects_stale_and_future_timestamps() {
        let body = STRIPE_BODY.as_bytes();
        let good = format!("t={STRIPE_TS},v1={STRIPE_V1}");
        assert!(stripe_verify(&good, body, STRIPE_T + 300).is_ok());
        assert!(stripe_verify(&good, body, STRIPE_T - 300).is_ok());
        assert_eq!(
            stripe_verify(&good, body, STRIPE_T + 301),
            Err(VerifyError::Stale {
                age_secs: 301,
                tolerance_secs: 300
            })
        );
        assert_eq!(
            stripe_verify(&good, body, STRIPE_T - 301),
            Err(VerifyError::Stale {
                age_secs: -301,
                tolerance_secs: 300
            })
        );
        // Extreme clocks saturate instead of wrapping into the window.
        assert!(matches!(
            stripe_verify(&good, body, i64::MIN),
            Err(VerifyError::Stale {
                age_secs: i64::MIN,
                ..
            })
        ));
        let zero = format!("t=0,v1={STRIPE_V1}");
        assert!(matches!(
            stripe_verify(&zero, body, i64::MAX),
            Err(VerifyError::Stale {
                age_secs: i64::MAX,
                ..
            })
        ));
        // Tolerance 0 is "this second only", not "no check".
        let strict = WebhookScheme::Stripe {
            secret_field: FIELD.into(),
            tolerance_secs: 0,
        };
        let map = headers(&[("Stripe-Signature", &good)]);
        let secret = secret_is(STRIPE_SECRET);
        assert!(verify(&strict, &map, body, &secret, STRIPE_T).is_ok());
        assert!(matches!(
            verify(&strict, &map, body, &secret, STRIPE_T + 1),
            Err(VerifyError::Stale {
                age_secs: 1,
                tolerance_secs: 0
            })
        ));
    }

    #[test]
    fn stripe_rejects_malformed_headers_and_missing_secret() {
        let body = STRIPE_BODY.as_bytes();
        let secret = secret_is(STRIPE_SECRET);
        assert_eq!(
            verify(&stripe(), &HeaderMap::new(), body, &secret, STRIPE_T),
            Err(VerifyError::MissingHeader("Stripe-Signature".into()))
        );
        // No t.
        assert!(bad_encoding(stripe_verify(
            &format!("v1={STRIPE_V1}"),
            body,
            STRIPE_T
        )));
        // Two t's.
        assert!(bad_encoding(stripe_verify(
            &format!("t={STRIPE_TS},t=1,v1={STRIPE_V1}"),
            body,
            STRIPE_T
        )));
        // Not a number.
        assert!(bad_encoding(stripe_verify(
            &format!("t=soon,v1={STRIPE_V1}"),
            body,
            STRIPE_T
        )));
        assert!(bad_encoding(stripe_verify(
            &format!("t=-1,v1={STRIPE_V1}"),
            body,
            STRIPE_T
        )));
        // Not key=value.
        assert!(bad_encoding(stripe_verify(
            &format!("t={STRIPE_TS},{STRIPE_V1}"),
            body,
            STRIPE_T
        )));
        // A v1 that is not hex.
        let not_hex = STRIPE_V1.replace('d', "q");
        assert!(bad_encoding(stripe_verify(
            &format!("t={STRIPE_TS},v1={not_hex}"),
            body,
            STRIPE_T
        )));
        // No v1 at all: nothing matches.
        assert_eq!(
            stripe_verify(&format!("t={STRIPE_TS}"), body, STRIPE_T),
            Err(VerifyError::Mismatch)
        );
        let map = headers(&[("Stripe-Signature", &format!("t={STRIPE_TS},v1={STRIPE_V1}"))]);
        assert_eq!(
            verify(&stripe(), &map, body, &unset, STRIPE_T),
            Err(VerifyError::MissingSecret(FIELD.into()))
        );
    }

    // ---- Generic HMAC-SHA256 (Shopify, hex with prefix) ----

    fn shopify_verify(sig: &str, body: &[u8]) -> Result<Verified, VerifyError> {
        let map = headers(&[(SHOPIFY_HEADER, sig)]);
        verify(&shopify(), &map, body, &secret_is(SHOPIFY_SECRET), NOW)
    }

    #[test]
    fn shopify_base64_vector_verifies() {
        assert_eq!(
            shopify_verify(SHOPIFY_SIG, SHOPIFY_BODY.as_bytes()),
            Ok(Verified { timestamp: None })
        );
        // The manifest's header name is matched case-insensitively.
        let map = headers(&[("x-shopify-hmac-sha256", SHOPIFY_SIG)]);
        assert!(
            verify(
                &shopify(),
                &map,
                SHOPIFY_BODY.as_bytes(),
                &secret_is(SHOPIFY_SECRET),
                NOW
            )
            .is_ok()
        );
    }

    #[test]
    fn shopify_rejects_flipped_body_and_signature() {
        for i in [0, 20, SHOPIFY_BODY.len() - 1] {
            assert_eq!(
                shopify_verify(SHOPIFY_SIG, &flip_byte(SHOPIFY_BODY, i)),
                Err(VerifyError::Mismatch)
            );
        }
        for i in [0, 10, 30] {
            assert_eq!(
                shopify_verify(&flip_char(SHOPIFY_SIG, i), SHOPIFY_BODY.as_bytes()),
                Err(VerifyError::Mismatch)
            );
        }
    }

    #[test]
    fn shopify_rejects_bad_base64_missing_header_and_missing_secret() {
        let body = SHOPIFY_BODY.as_bytes();
        assert!(bad_encoding(shopify_verify("not base64!", body)));
        // Missing padding is not standard base64.
        assert!(bad_encoding(shopify_verify(
            SHOPIFY_SIG.trim_end_matches('='),
            body
        )));
        // URL-safe alphabet is not standard base64.
        assert!(bad_encoding(shopify_verify(
            &SHOPIFY_SIG.replace('/', "_"),
            body
        )));
        // Hex where base64 is configured decodes to the wrong length.
        assert_eq!(
            shopify_verify(&"ab".repeat(32), body),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify(
                &shopify(),
                &HeaderMap::new(),
                body,
                &secret_is(SHOPIFY_SECRET),
                NOW
            ),
            Err(VerifyError::MissingHeader(SHOPIFY_HEADER.into()))
        );
        let map = headers(&[(SHOPIFY_HEADER, SHOPIFY_SIG)]);
        assert_eq!(
            verify(&shopify(), &map, body, &unset, NOW),
            Err(VerifyError::MissingSecret(FIELD.into()))
        );
    }

    #[test]
    fn hmac_hex_prefix_is_required_when_configured() {
        let scheme = WebhookScheme::HmacSha256 {
            header: "X-Signature".into(),
            encoding: "hex".into(),
            prefix: Some("sha256=".into()),
            secret_field: FIELD.into(),
        };
        let body = GITHUB_BODY.as_bytes();
        let secret = secret_is(GITHUB_SECRET);
        let run = |value: &str| {
            verify(
                &scheme,
                &headers(&[("X-Signature", value)]),
                body,
                &secret,
                NOW,
            )
        };
        assert!(run(GITHUB_SIG).is_ok());
        assert!(bad_encoding(run(&GITHUB_SIG["sha256=".len()..])));
        assert!(bad_encoding(run(
            &GITHUB_SIG.replacen("sha256=", "SHA256=", 1)
        )));
        assert_eq!(run(&flip_char(GITHUB_SIG, 10)), Err(VerifyError::Mismatch));

        // Without a configured prefix, a prefixed value is not hex.
        let bare = WebhookScheme::HmacSha256 {
            header: "X-Signature".into(),
            encoding: "HEX".into(),
            prefix: None,
            secret_field: FIELD.into(),
        };
        let run = |value: &str| {
            verify(
                &bare,
                &headers(&[("X-Signature", value)]),
                body,
                &secret,
                NOW,
            )
        };
        assert!(run(&GITHUB_SIG["sha256=".len()..]).is_ok());
        assert!(bad_encoding(run(GITHUB_SIG)));
    }

    #[test]
    fn hmac_unknown_encoding_is_refused() {
        for encoding in ["base64url", "hex ", "", "sha256"] {
            let scheme = WebhookScheme::HmacSha256 {
                header: SHOPIFY_HEADER.into(),
                encoding: encoding.into(),
                prefix: None,
                secret_field: FIELD.into(),
            };
            let map = headers(&[(SHOPIFY_HEADER, SHOPIFY_SIG)]);
            let r = verify(
                &scheme,
                &map,
                SHOPIFY_BODY.as_bytes(),
                &secret_is(SHOPIFY_SECRET),
                NOW,
            );
            assert!(bad_encoding(r), "{encoding:?}");
        }
    }

    // ---- Shared secret ----

    #[test]
    fn shared_secret_must_match_exactly() {
        let secret = secret_is("s3cret-token");
        let run = |value: &str| {
            verify(
                &shared(),
                &headers(&[("X-Webhook-Token", value)]),
                b"any",
                &secret,
                NOW,
            )
        };
        assert_eq!(run("s3cret-token"), Ok(Verified { timestamp: None }));
        // One byte flipped, same length.
        assert_eq!(run("s3cret-tokeo"), Err(VerifyError::Mismatch));
        assert_eq!(run("S3cret-token"), Err(VerifyError::Mismatch));
        // Prefix, extension, empty.
        assert_eq!(run("s3cret"), Err(VerifyError::Mismatch));
        assert_eq!(run("s3cret-token2"), Err(VerifyError::Mismatch));
        assert_eq!(run(""), Err(VerifyError::Mismatch));
        // The body is not involved, so any body passes with the right token.
        let map = headers(&[("x-webhook-token", "s3cret-token")]);
        assert!(verify(&shared(), &map, &[0xff, 0x00], &secret, NOW).is_ok());
    }

    #[test]
    fn shared_secret_rejects_missing_header_and_missing_or_empty_secret() {
        assert_eq!(
            verify(
                &shared(),
                &HeaderMap::new(),
                b"",
                &secret_is("s3cret-token"),
                NOW
            ),
            Err(VerifyError::MissingHeader("X-Webhook-Token".into()))
        );
        let map = headers(&[("X-Webhook-Token", "s3cret-token")]);
        assert_eq!(
            verify(&shared(), &map, b"", &unset, NOW),
            Err(VerifyError::MissingSecret(FIELD.into()))
        );
        // An empty secret would match an empty header: refused as unset.
        let empty = headers(&[("X-Webhook-Token", "")]);
        assert_eq!(
            verify(&shared(), &empty, b"", &secret_is(""), NOW),
            Err(VerifyError::MissingSecret(FIELD.into()))
        );
        // The lookup is asked for the manifest's field, not another.
        let other = |field: &str| (field == "other").then(|| "s3cret-token".to_owned());
        assert_eq!(
            verify(&shared(), &map, b"", &other, NOW),
            Err(VerifyError::MissingSecret(FIELD.into()))
        );
    }

    // ---- Cross-cutting ----

    #[test]
    fn repeated_or_non_ascii_signature_headers_are_refused() {
        let body = GITHUB_BODY.as_bytes();
        let secret = secret_is(GITHUB_SECRET);
        // Even when one of the copies is valid: which one counts is ambiguous.
        let twice = headers(&[
            ("X-Hub-Signature-256", GITHUB_SIG),
            ("X-Hub-Signature-256", GITHUB_SIG),
        ]);
        assert!(bad_encoding(verify(&github(), &twice, body, &secret, NOW)));
        let twice = headers(&[("X-Webhook-Token", "a"), ("X-Webhook-Token", "a")]);
        assert!(bad_encoding(verify(
            &shared(),
            &twice,
            body,
            &secret_is("a"),
            NOW
        )));

        let mut map = HeaderMap::new();
        map.insert(
            "x-hub-signature-256",
            HeaderValue::from_bytes(b"sha256=\xe9\xe9").unwrap(),
        );
        assert!(bad_encoding(verify(&github(), &map, body, &secret, NOW)));
    }

    #[test]
    fn surrounding_whitespace_in_header_values_is_ignored() {
        let padded = format!("  {GITHUB_SIG}\t");
        assert!(github_verify(&padded, GITHUB_BODY.as_bytes(), &secret_is(GITHUB_SECRET)).is_ok());
        let header = format!("t={STRIPE_TS}, v1={STRIPE_V1}");
        assert!(stripe_verify(&header, STRIPE_BODY.as_bytes(), STRIPE_T).is_ok());
    }

    #[test]
    fn errors_never_reveal_the_secret_or_the_expected_signature() {
        let expected_github = &GITHUB_SIG["sha256=".len()..];
        let mut errors = vec![
            github_verify(
                &flip_char(GITHUB_SIG, 10),
                GITHUB_BODY.as_bytes(),
                &secret_is(GITHUB_SECRET),
            ),
            github_verify(
                "sha256=zz",
                GITHUB_BODY.as_bytes(),
                &secret_is(GITHUB_SECRET),
            ),
            github_verify(
                expected_github,
                GITHUB_BODY.as_bytes(),
                &secret_is(GITHUB_SECRET),
            ),
            slack_verify(
                SLACK_TS,
                &flip_char(SLACK_SIG, 5),
                SLACK_BODY.as_bytes(),
                SLACK_T,
            ),
            slack_verify(SLACK_TS, SLACK_SIG, SLACK_BODY.as_bytes(), SLACK_T + 1000),
            stripe_verify(
                &format!("t={STRIPE_TS},v1=00"),
                STRIPE_BODY.as_bytes(),
                STRIPE_T,
            ),
            stripe_verify(
                &format!("t={STRIPE_TS},v1=xx"),
                STRIPE_BODY.as_bytes(),
                STRIPE_T,
            ),
            shopify_verify("AAAA", SHOPIFY_BODY.as_bytes()),
            shopify_verify("!!", SHOPIFY_BODY.as_bytes()),
        ];
        let secret = secret_is("s3cret-token");
        for guess in ["s3cret-toke", "s3cret-tokeX", "s3cret-token\u{e9}"] {
            let mut map = HeaderMap::new();
            map.insert(
                "x-webhook-token",
                HeaderValue::from_bytes(guess.as_bytes()).unwrap(),
            );
            errors.push(verify(&shared(), &map, b"", &secret, NOW));
        }
        let forbidden = [
            GITHUB_SECRET,
            expected_github,
            SLACK_SECRET,
            &SLACK_SIG[3..],
            STRIPE_SECRET,
            STRIPE_V1,
            SHOPIFY_SECRET,
            SHOPIFY_SIG,
            "s3cret",
        ];
        for result in errors {
            let err = result.unwrap_err();
            let shown = format!("{err} {err:?}");
            for needle in forbidden {
                assert!(!shown.contains(needle), "{shown:?} reveals {needle:?}");
            }
        }
    }
}

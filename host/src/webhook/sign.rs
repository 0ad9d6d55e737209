//! Signing a delivery the way a provider would, for every
//! [`WebhookScheme`]: the mirror image of [`super::verify`].
//!
//! The host itself never signs deliveries in production; `plugboard test`
//! does, so a connector's webhook fixtures reach it through the same
//! verification a real platform's deliveries pass.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac as _};
use sha2::Sha256;

use crate::manifest::WebhookScheme;

/// Why a delivery could not be signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    /// The credential field holding the secret has no value; holds its name.
    #[error("credential field {0:?} holding the webhook secret is not set")]
    MissingSecret(String),
    /// The manifest names an encoding other than `hex` or `base64`.
    #[error("unknown signature encoding {0:?}")]
    UnknownEncoding(String),
}

/// The headers that make `body` pass verification under `scheme` at
/// `now_unix`, with the secret looked up by `secret`.
pub fn sign(
    scheme: &WebhookScheme,
    body: &[u8],
    secret: &dyn Fn(&str) -> Option<String>,
    now_unix: i64,
) -> Result<Vec<(String, String)>, SignError> {
    let secret_of = |field: &str| {
        secret(field)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| SignError::MissingSecret(field.to_owned()))
    };
    Ok(match scheme {
        WebhookScheme::HmacSha256 {
            header,
            encoding,
            prefix,
            secret_field,
        } => {
            let mac = hmac(&secret_of(secret_field)?, &[body]);
            let encoded = if encoding.eq_ignore_ascii_case("hex") {
                hex::encode(mac)
            } else if encoding.eq_ignore_ascii_case("base64") {
                BASE64.encode(mac)
            } else {
                return Err(SignError::UnknownEncoding(encoding.clone()));
            };
            let prefix = prefix.as_deref().unwrap_or("");
            vec![(header.clone(), format!("{prefix}{encoded}"))]
        }
        WebhookScheme::Github { secret_field } => {
            let mac = hmac(&secret_of(secret_field)?, &[body]);
            vec![(
                "X-Hub-Signature-256".to_owned(),
                format!("sha256={}", hex::encode(mac)),
            )]
        }
        WebhookScheme::Stripe { secret_field, .. } => {
            let t = now_unix.to_string();
            let mac = hmac(&secret_of(secret_field)?, &[t.as_bytes(), b".", body]);
            vec![(
                "Stripe-Signature".to_owned(),
                format!("t={t},v1={}", hex::encode(mac)),
            )]
        }
        WebhookScheme::Slack { secret_field, .. } => {
            let t = now_unix.to_string();
            let mac = hmac(
                &secret_of(secret_field)?,
                &[b"v0:", t.as_bytes(), b":", body],
            );
            vec![
                ("X-Slack-Request-Timestamp".to_owned(), t),
                (
                    "X-Slack-Signature".to_owned(),
                    format!("v0={}", hex::encode(mac)),
                ),
            ]
        }
        WebhookScheme::SharedSecret {
            header,
            secret_field,
        } => vec![(header.clone(), secret_of(secret_field)?)],
    })
}

fn hmac(key: &str, parts: &[&[u8]]) -> Vec<u8> {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("any key length");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use http::{HeaderMap, HeaderName, HeaderValue};

    use super::*;
    use crate::webhook::verify::verify;

    fn schemes() -> Vec<WebhookScheme> {
        let secret_field = "secret".to_owned();
        vec![
            WebhookScheme::HmacSha256 {
                header: "X-Sig".into(),
                encoding: "base64".into(),
                prefix: None,
                secret_field: secret_field.clone(),
            },
            WebhookScheme::HmacSha256 {
                header: "X-Sig".into(),
                encoding: "hex".into(),
                prefix: Some("sha256=".into()),
                secret_field: secret_field.clone(),
            },
            WebhookScheme::Github {
                secret_field: secret_field.clone(),
            },
            WebhookScheme::Stripe {
                secret_field: secret_field.clone(),
                tolerance_secs: 300,
            },
            WebhookScheme::Slack {
                secret_field: secret_field.clone(),
                tolerance_secs: 300,
            },
            WebhookScheme::SharedSecret {
                header: "X-Secret".into(),
                secret_field,
            },
        ]
    }

    fn headers(pairs: &[(String, String)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    HeaderName::try_from(k.as_str()).unwrap(),
                    HeaderValue::from_str(v).unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn signed_deliveries_verify_and_tampered_ones_do_not() {
        let now = 1_700_000_000;
        let secret = |f: &str| (f == "secret").then(|| "s3cr3t".to_owned());
        let wrong = |f: &str| (f == "secret").then(|| "other".to_owned());
        for scheme in schemes() {
            let signed = sign(&scheme, b"{\"a\":1}", &secret, now).unwrap();
            let h = headers(&signed);
            assert!(
                verify(&scheme, &h, b"{\"a\":1}", &secret, now).is_ok(),
                "{scheme:?}"
            );
            assert!(
                verify(&scheme, &h, b"{\"a\":2}", &secret, now).is_err()
                    || matches!(scheme, WebhookScheme::SharedSecret { .. }),
                "{scheme:?}"
            );
            let signed = sign(&scheme, b"{\"a\":1}", &wrong, now).unwrap();
            assert!(
                verify(&scheme, &headers(&signed), b"{\"a\":1}", &secret, now).is_err(),
                "{scheme:?}"
            );
        }
    }

    #[test]
    fn a_missing_secret_is_named() {
        let none = |_: &str| None;
        let err = sign(&schemes()[0], b"", &none, 0).unwrap_err();
        assert_eq!(err, SignError::MissingSecret("secret".into()));
    }
}

//! Signing with credentials the connector never sees.
//!
//! The host applies an instance's credentials to outbound requests itself
//! (the manifest's auth scheme), so most connectors never touch a secret.
//! Connectors that must *sign* something — a request signature, a webhook
//! verification — ask the host for an HMAC keyed with a named credential
//! field and get only the MAC back.
//!
//! ```no_run
//! use plugboard_guest::secrets;
//! let mac = secrets::hmac_sha256("signing_secret", b"v0:1700000000:body")?;
//! let expected = hex_decode("…");
//! if !secrets::constant_time_eq(&mac, &expected) { /* reject */ }
//! # fn hex_decode(_: &str) -> Vec<u8> { Vec::new() }
//! # Ok::<(), plugboard_guest::Error>(())
//! ```

use crate::bindings::plugboard::connector::host::{self, HmacAlgorithm};
use crate::{Error, Result};

/// HMAC-SHA256 of `data` keyed with the instance's credential `field`.
/// Fails with [`Error::Config`] if the field is not set.
pub fn hmac_sha256(field: &str, data: &[u8]) -> Result<Vec<u8>> {
    host::hmac(HmacAlgorithm::Sha256, field, data).map_err(Error::config)
}

/// HMAC-SHA1, for the APIs that still require it.
pub fn hmac_sha1(field: &str, data: &[u8]) -> Result<Vec<u8>> {
    host::hmac(HmacAlgorithm::Sha1, field, data).map_err(Error::config)
}

/// Compares two byte strings in constant time (for MACs).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    host::constant_time_eq(a, b)
}

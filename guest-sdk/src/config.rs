//! The instance config (non-secret settings) through the host import.
//!
//! Config values are whatever the operator stored for this instance,
//! validated by the host against the manifest's config schema. Credentials
//! are never reachable from here.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::bindings::plugboard::connector::host;
use crate::{Error, Result};

/// The value under `key`, or `None` when the key is not set.
pub fn get(key: &str) -> Option<Value> {
    // The host hands out JSON it produced itself; treat unparsable text like
    // a missing key rather than trapping.
    host::get_config(key).and_then(|json| serde_json::from_str(&json).ok())
}

/// The value under `key` as `T`; a value of the wrong shape is [`Error::Config`].
pub fn get_as<T: DeserializeOwned>(key: &str) -> Result<Option<T>> {
    match get(key) {
        None => Ok(None),
        Some(value) => serde_json::from_value(value)
            .map(Some)
            .map_err(|e| Error::config(format!("config key `{key}`: {e}"))),
    }
}

/// The whole config object.
pub fn all() -> Value {
    serde_json::from_str(&host::get_config_all())
        .unwrap_or_else(|_| Value::Object(Default::default()))
}

/// The whole config parsed into `T` (typically the type given to
/// [`crate::Manifest::config_schema`]); a mismatch is [`Error::Config`].
pub fn parse<T: DeserializeOwned>() -> Result<T> {
    serde_json::from_str(&host::get_config_all())
        .map_err(|e| Error::config(format!("invalid instance config: {e}")))
}

//! Binary data in JSON parameters and results: standard base64.
//!
//! Parameters are JSON, so a method that takes file contents (Slack's
//! `upload_file`, GitHub's file contents) takes them as base64 text;
//! [`base64_decode`] turns a bad value into [`Error::InvalidInput`] naming
//! the field.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::{Error, Result};

/// Decodes standard (padded) base64 from parameter `field`; surrounding
/// whitespace and line breaks are ignored.
pub fn base64_decode(field: &str, text: &str) -> Result<Vec<u8>> {
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    STANDARD
        .decode(compact)
        .map_err(|e| Error::invalid_input(format!("`{field}` is not valid base64: {e}")))
}

/// Encodes bytes as standard (padded) base64.
pub fn base64_encode(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_names_the_field() {
        assert_eq!(base64_encode(b"hello"), "aGVsbG8=");
        assert_eq!(base64_decode("content", "aGVs\nbG8=").unwrap(), b"hello");
        let e = base64_decode("content_base64", "not base64!").unwrap_err();
        assert_eq!(e.kind(), "invalid_input");
        assert!(e.message().contains("`content_base64`"), "{e}");
    }
}

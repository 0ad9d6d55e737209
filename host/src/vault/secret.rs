//! Secret values in memory: zeroized on drop, never printed.
//!
//! A [`Secret`] is what an opened ciphertext becomes. Its `Debug` and
//! `Display` say `[redacted]`, so a secret that ends up in a log line, an
//! error message or a panic shows nothing; the bytes are wiped when it is
//! dropped. [`Credentials`] is one instance's set of them, by field name.

use std::collections::BTreeMap;
use std::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop};

/// A secret string (a token, a password, an API key).
#[derive(Clone, Zeroize, ZeroizeOnDrop, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value; the caller should not keep other copies of it.
    pub fn new(value: String) -> Self {
        Self(value)
    }

    /// The value. Keep the borrow short; never log or return it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// One instance's opened credentials, by field name.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    fields: BTreeMap<String, Secret>,
}

impl Credentials {
    /// From opened fields.
    pub fn new(fields: BTreeMap<String, Secret>) -> Self {
        Self { fields }
    }

    /// The field `name`, if set.
    pub fn get(&self, name: &str) -> Option<&Secret> {
        self.fields.get(name)
    }

    /// Whether no field is set.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Field names (not values), for messages.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.fields.keys().map(String::as_str)
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.names()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("hunter2".into());
        assert_eq!(format!("{s:?} {s}"), "[redacted] [redacted]");
        let c = Credentials::new([("api_token".to_owned(), s)].into());
        let shown = format!("{c:?}");
        assert!(
            shown.contains("api_token") && !shown.contains("hunter2"),
            "{shown}"
        );
        assert_eq!(c.get("api_token").unwrap().expose(), "hunter2");
    }
}

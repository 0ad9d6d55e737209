//! Method parameters as handed over by the host.
//!
//! The host passes params as JSON text it has already validated against the
//! method's schema. `Params` keeps the text and parses it straight into the
//! author's type, skipping an intermediate `Value`; [`Params::call`]
//! serializes the result straight to text ([`Output`]) the same way.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::{Error, Output, Result};

/// The JSON parameters of one `invoke` call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Params {
    json: String,
}

impl Params {
    /// Wraps JSON text (useful in native unit tests of a connector).
    pub fn new(json: impl Into<String>) -> Self {
        Self { json: json.into() }
    }

    /// The raw JSON text.
    pub fn as_str(&self) -> &str {
        &self.json
    }

    /// Parses the params into `T`; a mismatch is [`Error::InvalidInput`]
    /// naming the field.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_str(&self.json)
            .map_err(|e| Error::invalid_input(format!("invalid params: {e}")))
    }

    /// The params as a JSON value.
    pub fn value(&self) -> Result<Value> {
        self.parse()
    }

    /// Parses the params into `T`, runs `f` and serializes its result: the
    /// usual body of one `match` arm in [`crate::Connector::invoke`].
    pub fn call<T, R, F>(&self, f: F) -> Result<Output>
    where
        T: DeserializeOwned,
        R: Serialize,
        F: FnOnce(T) -> Result<R>,
    {
        Output::new(&f(self.parse()?)?)
    }
}

/// Parameters of a method that takes none: an empty JSON object.
///
/// Its schema is a closed empty object, so the host rejects stray fields.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoParams {}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct P {
        n: u32,
    }

    #[test]
    fn call_parses_runs_and_serializes() {
        let out = Params::new(r#"{"n": 2}"#)
            .call(|p: P| Ok(serde_json::json!({ "double": p.n * 2 })))
            .expect("call succeeds");
        assert_eq!(out.as_str(), r#"{"double":4}"#);
    }

    #[test]
    fn bad_params_name_the_field() {
        let err = Params::new(r#"{"n": "x"}"#)
            .call(|p: P| Ok(p.n))
            .expect_err("wrong type");
        assert_eq!(err.kind(), "invalid_input");
        assert!(err.message().contains("invalid type"), "{err}");
    }

    #[test]
    fn no_params_accepts_only_empty_objects() {
        assert!(Params::new("{}").parse::<NoParams>().is_ok());
        assert!(Params::new(r#"{"x":1}"#).parse::<NoParams>().is_err());
    }
}

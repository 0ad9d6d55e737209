//! A method's result, serialized once.
//!
//! The WIT `invoke` export returns the result as JSON text. Serializing the
//! author's result type straight to that text, instead of first into a
//! [`Value`] tree and then the tree into text, skips a copy of every string
//! and a heap node for every object, array and string in it: for the `echo`
//! connector's `{"message":…,"data":{…}}` a warm in-process call went from
//! 2.58–2.65 to 2.04–2.07 µs (`cargo bench -p plugboard-tests --bench
//! languages -- rust-echo/warm`, the two guests alternated), and the host's
//! CPU per HTTP call under `wrk -t2 -c32` from 17.5 to 16.5 µs (medians).

use serde::Serialize;
use serde_json::Value;

use crate::{Error, Result};

/// The JSON result of one `invoke` call.
///
/// [`crate::Params::call`] makes one from the closure's result; build one
/// yourself with [`Output::new`] or from a [`Value`] (`json!({…}).into()`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    json: String,
}

impl Output {
    /// Serializes `result`; a failure (e.g. a map with non-string keys) is
    /// [`Error::Permanent`].
    pub fn new<R: Serialize + ?Sized>(result: &R) -> Result<Self> {
        serde_json::to_string(result)
            .map(|json| Self { json })
            .map_err(|e| Error::permanent(format!("result is not serializable: {e}")))
    }

    /// The JSON text the host receives.
    pub fn as_str(&self) -> &str {
        &self.json
    }

    /// The JSON text, owned.
    pub fn into_string(self) -> String {
        self.json
    }

    /// Parses the result back, e.g. to check it in a native unit test.
    pub fn value(&self) -> Result<Value> {
        serde_json::from_str(&self.json)
            .map_err(|e| Error::permanent(format!("result is not valid JSON: {e}")))
    }
}

impl From<Value> for Output {
    fn from(value: Value) -> Self {
        // A `Value`'s map keys are strings, so serializing it cannot fail.
        Self {
            json: value.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;

    #[test]
    fn serializes_once_and_parses_back() {
        #[derive(Serialize)]
        struct R {
            message: &'static str,
            data: Value,
        }
        let out = Output::new(&R {
            message: "hi",
            data: json!({"n": 1}),
        })
        .expect("serializable");
        assert_eq!(out.as_str(), r#"{"message":"hi","data":{"n":1}}"#);
        assert_eq!(
            out.value().expect("valid"),
            json!({"message": "hi", "data": {"n": 1}})
        );
    }

    #[test]
    fn values_convert_and_unserializable_results_are_permanent_errors() {
        assert_eq!(Output::from(json!([1, "a"])).into_string(), r#"[1,"a"]"#);
        let keys = BTreeMap::from([((1, 2), "tuple keys are not JSON")]);
        let err = Output::new(&keys).expect_err("non-string keys");
        assert_eq!(err.kind(), "permanent");
        assert!(err.message().contains("not serializable"), "{err}");
    }
}

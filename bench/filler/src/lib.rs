//! `bench-filler-NN`: a minimal connector for `scripts/bench-scale`.
//!
//! The restart measurement needs 20 stored connectors, more than the
//! repository builds. The script builds this one once and stores copies
//! whose name differs: it rewrites the 15-byte placeholder [`NAME`] (which
//! occurs exactly once in the component, in a data segment) to
//! `bench-filler-01`, `-02`, …, and refuses to if the placeholder is not
//! found exactly once. Same length, so no offset in the binary moves.

use plugboard_guest::prelude::*;

/// The connector name; the script rewrites these bytes in copies.
const NAME: &str = "bench-filler-00";

/// Parameters of `ping`.
#[derive(Deserialize, JsonSchema)]
struct PingParams {
    /// Text to return.
    message: String,
}

/// Result of `ping`.
#[derive(Serialize, JsonSchema)]
struct PingResult {
    /// The `message` parameter.
    message: String,
    /// The connector's name, to show which copy answered.
    connector: &'static str,
}

/// The connector.
struct Filler;

impl Connector for Filler {
    fn manifest() -> Manifest {
        Manifest::new(NAME, env!("CARGO_PKG_VERSION"), "Benchmark filler: returns its input; no network.")
            .method::<PingParams, PingResult>("ping", "Returns `message` and the connector's name.")
    }

    fn invoke(method: &str, params: Params) -> Result<Value> {
        match method {
            "ping" => params.call(|p: PingParams| {
                Ok(PingResult {
                    message: p.message,
                    connector: NAME,
                })
            }),
            other => Err(Error::unknown_method(other)),
        }
    }

    fn test_connection() -> Result<String> {
        Ok("always reachable".to_owned())
    }
}

plugboard_guest::export_connector!(Filler);

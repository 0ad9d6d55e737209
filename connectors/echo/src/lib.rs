//! `echo`: a connector without network access, for tests and demos.
//!
//! Every behaviour the host must handle on the success path and on each error
//! path is reachable on demand: `echo` returns its input, `config` returns the
//! instance config, `fail` returns any error variant, `log` writes a log line.

use plugboard_guest::prelude::*;

/// Instance config: nothing required.
#[derive(Deserialize, JsonSchema)]
#[allow(
    dead_code,
    reason = "only declares the schema; `config` returns the raw object"
)]
struct EchoConfig {
    /// A greeting the instance carries, to show config reaching the guest.
    greeting: Option<String>,
}

/// Parameters of `echo`.
#[derive(Deserialize, JsonSchema)]
struct EchoParams {
    /// Text to return.
    message: String,
    /// Any JSON to return alongside.
    data: Option<Value>,
}

/// Result of `echo`: the parameters, unchanged.
#[derive(Serialize, JsonSchema)]
struct EchoResult {
    /// The `message` parameter.
    message: String,
    /// The `data` parameter, `null` when absent.
    data: Option<Value>,
}

/// Which error `fail` returns.
#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
enum FailKind {
    InvalidInput,
    Unauthorized,
    NotFound,
    RateLimited,
    Upstream,
    Temporary,
    Permanent,
    Config,
}

/// Parameters of `fail`.
#[derive(Deserialize, JsonSchema)]
struct FailParams {
    /// The error variant to return.
    kind: FailKind,
    /// Its message.
    message: String,
}

/// Parameters of `log`.
#[derive(Deserialize, JsonSchema)]
struct LogParams {
    /// The line to log at info level.
    message: String,
}

/// Result of `log`.
#[derive(Serialize, JsonSchema)]
struct LogResult {
    /// Always `true`.
    logged: bool,
}

/// The connector.
struct Echo;

impl Connector for Echo {
    fn manifest() -> Manifest {
        Manifest::new(
            "echo",
            env!("CARGO_PKG_VERSION"),
            "Echoes its input, returns its config, fails and logs on demand. No network access.",
        )
        .method::<EchoParams, EchoResult>("echo", "Returns `message` and `data` unchanged.")
        .method::<NoParams, Value>("config", "Returns the instance config object.")
        .method::<FailParams, ()>(
            "fail",
            "Fails with the error variant `kind` (rate_limited: retry after 7 s; upstream: status 418).",
        )
        .method::<LogParams, LogResult>("log", "Logs `message` at info level and reports that it did.")
        .config_schema::<EchoConfig>()
    }

    fn invoke(method: &str, params: Params) -> Result<Output> {
        match method {
            "echo" => params.call(|p: EchoParams| {
                Ok(EchoResult {
                    message: p.message,
                    data: p.data,
                })
            }),
            "config" => params.call(|_: NoParams| Ok(config::all())),
            "fail" => {
                params.call(|p: FailParams| -> Result<()> { Err(failure(p.kind, p.message)) })
            }
            "log" => params.call(|p: LogParams| {
                plugboard_guest::info!("{}", p.message; source = "echo", length = p.message.len());
                Ok(LogResult { logged: true })
            }),
            other => Err(Error::unknown_method(other)),
        }
    }

    fn test_connection() -> Result<String> {
        Ok("echo is always reachable".to_owned())
    }
}

/// The error `fail` returns for `kind`.
fn failure(kind: FailKind, message: String) -> Error {
    match kind {
        FailKind::InvalidInput => Error::invalid_input(message),
        FailKind::Unauthorized => Error::unauthorized(message),
        FailKind::NotFound => Error::not_found(message),
        FailKind::RateLimited => Error::rate_limited(message, Some(7)),
        FailKind::Upstream => Error::upstream(418, message),
        FailKind::Temporary => Error::temporary(message),
        FailKind::Permanent => Error::permanent(message),
        FailKind::Config => Error::config(message),
    }
}

plugboard_guest::export_connector!(Echo);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_returns_its_input() {
        let out = Echo::invoke("echo", Params::new(r#"{"message":"hi","data":[1]}"#))
            .expect("echo works");
        assert_eq!(out.as_str(), r#"{"message":"hi","data":[1]}"#);
    }

    #[test]
    fn fail_returns_the_requested_variant() {
        let e = Echo::invoke("fail", Params::new(r#"{"kind":"upstream","message":"m"}"#))
            .expect_err("fails");
        assert_eq!(e, Error::upstream(418, "m"));
    }

    #[test]
    fn manifest_declares_all_methods() {
        let m = Echo::manifest();
        let names: Vec<_> = m.methods.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["echo", "config", "fail", "log"]);
        assert_eq!(
            m.config_schema["properties"]["greeting"]["type"],
            json!(["string", "null"])
        );
        let fail = &m.methods[2].params_schema;
        assert!(fail.to_string().contains("rate_limited"), "{fail}");
    }
}

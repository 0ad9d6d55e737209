// Shared body of the `auth-*` test connectors, included by each one's
// `lib.rs` after it defines `NAME`, `auth()` and `Creds` (the credential
// fields). Each variant differs only in the auth scheme the host applies.
//
// Methods: `fetch` (any URL on the two declared hosts, returns what came
// back), `peek` (everything a guest can see of its environment: the test
// checks no credential is in it) and `sign` (HMAC through the host).

use std::collections::BTreeMap;

use plugboard_guest::http::Request;
use plugboard_guest::prelude::*;
use plugboard_guest::{config, secrets};

/// Config: two hosts the connector may call; only `allowed` gets the
/// credentials.
#[derive(Deserialize, JsonSchema)]
#[allow(dead_code, reason = "read by the host, declared for the schema")]
struct AuthyConfig {
    /// Base URL of the host that receives credentials.
    allowed: String,
    /// Base URL of a second allowed host that must not receive them.
    second: String,
    /// Used by auth templates that mix config and credentials.
    #[serde(default)]
    email: Option<String>,
}

/// Parameters of `fetch`.
#[derive(Deserialize, JsonSchema)]
struct FetchParams {
    /// Absolute URL.
    url: String,
    /// Headers the guest tries to set itself.
    #[serde(default)]
    headers: Option<BTreeMap<String, String>>,
}

/// What came back.
#[derive(Serialize, JsonSchema)]
struct FetchResult {
    status: u16,
    body: String,
}

/// Parameters of `sign`.
#[derive(Deserialize, JsonSchema)]
struct SignParams {
    /// Credential field keying the MAC.
    field: String,
    /// Text to sign.
    data: String,
}

struct Authy;

impl Connector for Authy {
    fn manifest() -> Manifest {
        Manifest::new(NAME, env!("CARGO_PKG_VERSION"), "Test connector: host-applied credentials.")
            .method::<FetchParams, FetchResult>("fetch", "Requests `url`; returns status and body.")
            .method::<NoParams, Value>("peek", "Returns everything the guest can see of its environment.")
            .method::<SignParams, String>("sign", "Hex HMAC-SHA256 of `data` keyed with credential `field`.")
            .config_schema::<AuthyConfig>()
            .credential_schema::<Creds>()
            .host("{allowed}")
            .host("{second}")
            .auth(auth())
    }

    fn invoke(method: &str, params: Params) -> Result<Output> {
        match method {
            "fetch" => params.call(fetch),
            "peek" => params.call(|_: NoParams| -> Result<Value> { Ok(peek()) }),
            "sign" => params.call(sign),
            other => Err(Error::unknown_method(other)),
        }
    }

    fn test_connection() -> Result<String> {
        let allowed: String = config::get_as("allowed")?.unwrap_or_default();
        let response = Request::get(format!("{allowed}/me")).send()?.error_for_status()?;
        Ok(format!("authenticated ({})", response.status))
    }
}

fn fetch(p: FetchParams) -> Result<FetchResult> {
    let mut req = Request::get(p.url);
    for (name, value) in p.headers.unwrap_or_default() {
        req = req.header(name, value);
    }
    let response = req.send()?;
    Ok(FetchResult {
        status: response.status,
        body: response.text(),
    })
}

/// Config, environment, arguments and the filesystem root as the guest
/// sees them.
fn peek() -> Value {
    let credential_keys: BTreeMap<String, Option<Value>> = ["token", "api_token", "api_key", "key", "email"]
        .iter()
        .map(|k| (k.to_string(), config::get(k)))
        .collect();
    json!({
        "config": config::all(),
        "env": std::env::vars().collect::<Vec<_>>(),
        "args": std::env::args().collect::<Vec<_>>(),
        "root": std::fs::read_dir("/").map(|d| d.count()).map_err(|e| e.to_string()),
        "credential_keys": credential_keys,
    })
}

fn sign(p: SignParams) -> Result<String> {
    let mac = secrets::hmac_sha256(&p.field, p.data.as_bytes())?;
    Ok(mac.iter().map(|b| format!("{b:02x}")).collect())
}

plugboard_guest::export_connector!(Authy);

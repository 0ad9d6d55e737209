//! Shared pieces of Plugboard's end-to-end tests.
//!
//! The build script compiles every guest component from source for
//! `wasm32-wasip2` (see `build.rs`); this library exposes where they are.
//! Integration tests live in `tests/tests/`; [`fake`] is the fake-upstream
//! harness connector tests replay platform exchanges with.

pub mod fake;

/// `connectors/echo`: echoes, returns its config, fails and logs on demand;
/// no network.
pub const ECHO_WASM: &str = env!("PLUGBOARD_ECHO_WASM");

/// `connectors/rest`: the generic REST connector (`request` under the
/// config's `base_url`).
pub const REST_WASM: &str = env!("PLUGBOARD_REST_WASM");

/// `connectors/freshdesk`: the Freshdesk connector.
pub const FRESHDESK_WASM: &str = env!("PLUGBOARD_FRESHDESK_WASM");

/// `connectors/slack`: the Slack connector.
pub const SLACK_WASM: &str = env!("PLUGBOARD_SLACK_WASM");

/// `connectors/github`: the GitHub connector.
pub const GITHUB_WASM: &str = env!("PLUGBOARD_GITHUB_WASM");

/// `tests/guests/hostile`: `spin`, `allocate`, `panic`, `fetch`, `abort`;
/// its only declared host is the config's `allowed`.
pub const HOSTILE_WASM: &str = env!("PLUGBOARD_HOSTILE_WASM");

/// `tests/guests/wrong-world`: a `wasi:cli/command` component, i.e. a valid
/// component of another world.
pub const WRONG_WORLD_WASM: &str = env!("PLUGBOARD_WRONG_WORLD_WASM");

/// `tests/guests/auth-bearer`: bearer token + `Notion-Version` static
/// header for `{allowed}`; methods `fetch`, `peek`, `sign`.
pub const AUTH_BEARER_WASM: &str = env!("PLUGBOARD_AUTH_BEARER_WASM");

/// `tests/guests/auth-basic`: basic auth `{email}/token:{api_token}`.
pub const AUTH_BASIC_WASM: &str = env!("PLUGBOARD_AUTH_BASIC_WASM");

/// `tests/guests/auth-header`: `Authorization: Token token={api_key}`.
pub const AUTH_HEADER_WASM: &str = env!("PLUGBOARD_AUTH_HEADER_WASM");

/// `tests/guests/auth-query`: `?key={key}&token={token}`.
pub const AUTH_QUERY_WASM: &str = env!("PLUGBOARD_AUTH_QUERY_WASM");

/// `tests/guests/auth-oauth`: OAuth 2.0 (code + PKCE, basic client auth)
/// with the provider and API at `{allowed}`.
pub const AUTH_OAUTH_WASM: &str = env!("PLUGBOARD_AUTH_OAUTH_WASM");

/// `tests/guests/auth-client-credentials`: OAuth 2.0 client-credentials
/// grant with the provider and API at `{allowed}`.
pub const AUTH_CLIENT_CREDENTIALS_WASM: &str = env!("PLUGBOARD_AUTH_CLIENT_CREDENTIALS_WASM");

/// `tests/guests/desk`: signed webhooks (`X-Desk-Signature: sha256=<hex>`
/// with `webhook_secret`) → events; `post_message` to `{base_url}/messages`.
pub const DESK_WASM: &str = env!("PLUGBOARD_DESK_WASM");

/// `tests/guests/payhooks`: Stripe-style signed webhooks (300 s tolerance).
pub const PAYHOOKS_WASM: &str = env!("PLUGBOARD_PAYHOOKS_WASM");

/// `connectors/tasks-rust`: the `tasks` example in Rust (see
/// `docs/authoring/tasks-example.md`).
pub const TASKS_RUST_WASM: &str = env!("PLUGBOARD_TASKS_RUST_WASM");

/// `connectors/tasks-js`: the `tasks` example in JavaScript (componentize-js).
pub const TASKS_JS_WASM: &str = env!("PLUGBOARD_TASKS_JS_WASM");

/// `connectors/tasks-python`: the `tasks` example in Python (componentize-py).
pub const TASKS_PYTHON_WASM: &str = env!("PLUGBOARD_TASKS_PYTHON_WASM");

/// `connectors/tasks-c`: the `tasks` example in C (wit-bindgen, wasi-libc).
pub const TASKS_C_WASM: &str = env!("PLUGBOARD_TASKS_C_WASM");

/// `tests/guests/broken-js`: a JavaScript connector that breaks the
/// contract on purpose (wrong result type, throws non-errors).
pub const BROKEN_JS_WASM: &str = env!("PLUGBOARD_BROKEN_JS_WASM");

/// `tests/guests/broken-python`: a Python connector that breaks the
/// contract on purpose (wrong result type, raises).
pub const BROKEN_PYTHON_WASM: &str = env!("PLUGBOARD_BROKEN_PYTHON_WASM");

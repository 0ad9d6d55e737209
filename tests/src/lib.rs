//! Shared pieces of Plugboard's end-to-end tests.
//!
//! The build script compiles every guest component from source for
//! `wasm32-wasip2` (see `build.rs`); this library exposes where they are.
//! Integration tests live in `tests/tests/`.

/// `connectors/echo`: echoes, returns its config, fails and logs on demand;
/// no network.
pub const ECHO_WASM: &str = env!("PLUGBOARD_ECHO_WASM");

/// `connectors/rest`: the generic REST connector (`request` under the
/// config's `base_url`).
pub const REST_WASM: &str = env!("PLUGBOARD_REST_WASM");

/// `tests/guests/hostile`: `spin`, `allocate`, `panic`, `fetch`, `abort`;
/// its only declared host is the config's `allowed`.
pub const HOSTILE_WASM: &str = env!("PLUGBOARD_HOSTILE_WASM");

/// `tests/guests/wrong-world`: a `wasi:cli/command` component, i.e. a valid
/// component of another world.
pub const WRONG_WORLD_WASM: &str = env!("PLUGBOARD_WRONG_WORLD_WASM");

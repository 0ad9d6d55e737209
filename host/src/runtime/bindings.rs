//! Host-side bindings of the `plugboard:connector/connector` world.
//!
//! wasi:http, wasi:io and wasi:clocks are mapped onto wasmtime-wasi(-http)'s
//! own bindings so their resource types are the ones those crates implement.

#![allow(missing_docs)] // generated code

wasmtime::component::bindgen!({
    path: "../wit",
    world: "plugboard:connector/connector",
    exports: { default: async },
    with: {
        "wasi:http": wasmtime_wasi_http::p2::bindings::http,
        "wasi:io": wasmtime_wasi::p2::bindings::io,
        "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
    },
    require_store_data_send: true,
});

pub use plugboard::connector::host::{self as host_api, HmacAlgorithm, LogField, LogLevel};
pub use plugboard::connector::types as wit;

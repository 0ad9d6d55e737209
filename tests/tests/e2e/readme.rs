//! The README's example session, executed verbatim against a real host.

use std::process::Command;

use plugboard_tests::ECHO_WASM;

use crate::common::Host;

const README: &str = include_str!("../../../README.md");

/// The shell block between the session markers.
fn session() -> &'static str {
    let start = README
        .find("<!-- session:start -->")
        .expect("session start marker");
    let end = README
        .find("<!-- session:end -->")
        .expect("session end marker");
    let block = &README[start..end];
    let code = block.find("```sh\n").expect("sh code block") + "```sh\n".len();
    let close = block[code..].find("```").expect("closing fence");
    &block[code..code + close]
}

#[tokio::test]
async fn readme_session_works_verbatim() {
    let host = Host::start(&[]);
    let script = session();
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", script])
        .env("PB", &host.url)
        .env("PLUGBOARD_DATA_DIR", &host.data_dir)
        .env("ECHO_WASM", ECHO_WASM)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "session failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains(r#""status":"SUCCESS""#), "{stdout}");
    assert!(
        stdout.contains(r#""message":"hello, plugboard""#),
        "{stdout}"
    );
    assert!(stdout.contains(r#""code":"INVALID_PARAMS""#), "{stdout}");
    assert!(stdout.contains(r#""invocations":{"count":2"#), "{stdout}");
    assert!(stdout.contains(r#""status":"healthy""#), "{stdout}");
}

//! The conformance suite (`plugboard test`) on the `tasks` example in every
//! language, on deliberately broken connectors, and on fresh projects from
//! `plugboard new`.
//!
//! The examples are built from source by the build script; `.ci/run`
//! installs their toolchains (`connectors/tasks-*/setup.sh`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::common::{HOST_BIN, Host};
use plugboard_tests::{
    BROKEN_JS_WASM, BROKEN_PYTHON_WASM, TASKS_C_WASM, TASKS_JS_WASM, TASKS_PYTHON_WASM,
    TASKS_RUST_WASM,
};

/// Generous: a JS or Python component compiles for several seconds, more
/// on a loaded machine. Only a hang protection, not a timing assertion.
const BOUND: Duration = Duration::from_secs(900);

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Runs a command to completion (bounded); returns (exit code, stdout,
/// stderr).
fn run(mut command: Command) -> (i32, String, String) {
    let shown = format!("{command:?}");
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{shown}: {e}"));
    // Drain the pipes while waiting, so a chatty build cannot block.
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut out, &mut s).ok();
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut err, &mut s).ok();
        s
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > BOUND {
            let _ = child.kill();
            panic!("{shown} did not finish within {BOUND:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (
        status.code().unwrap_or(-1),
        out.join().unwrap(),
        err.join().unwrap(),
    )
}

/// `plugboard test --json` on a component; returns (exit code, report).
fn conformance(wasm: &str, fixtures: Option<&Path>) -> (i32, Value) {
    let mut command = Command::new(HOST_BIN);
    command.args(["test", wasm, "--json"]);
    if let Some(f) = fixtures {
        command.arg("--fixtures").arg(f);
    }
    // No fixture file may be picked up from the test's working directory.
    command.current_dir(std::env::temp_dir());
    let (code, stdout, stderr) = run(command);
    let report: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("not a JSON report ({e}):\n{stdout}\n{stderr}"));
    (code, report)
}

fn checks<'a>(report: &'a Value, outcome: &str) -> Vec<&'a Value> {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["outcome"] == outcome)
        .collect()
}

/// The example of `lang` passes every check of its fixtures.
fn example_passes(wasm: &str, lang: &str) {
    let fixtures = workspace().join(format!("connectors/tasks-{lang}/plugboard-test.json"));
    let (code, report) = conformance(wasm, Some(&fixtures));
    let failed = checks(&report, "fail");
    assert!(failed.is_empty(), "{lang}: {failed:#?}");
    assert!(checks(&report, "skip").is_empty(), "{lang}: {report:#}");
    assert_eq!(code, 0, "{lang}");
    assert_eq!(report["connector"], "tasks@0.1.0", "{lang}");
    // Every kind of check ran: 11 examples, test-connection, the denied
    // host, 3 webhooks and the garbage probe, upload, manifest, secrets.
    let names: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 20, "{lang}: {names:#?}");
    for needle in [
        "upload",
        "test-connection",
        "denied host",
        "webhook: task.created",
        "secrets",
    ] {
        assert!(
            names.iter().any(|n| n.starts_with(needle)),
            "{lang}: no {needle} check"
        );
    }
}

#[test]
fn the_rust_example_passes_the_conformance_suite() {
    example_passes(TASKS_RUST_WASM, "rust");
}

#[test]
fn the_javascript_example_passes_the_conformance_suite() {
    example_passes(TASKS_JS_WASM, "js");
}

#[test]
fn the_python_example_passes_the_conformance_suite() {
    example_passes(TASKS_PYTHON_WASM, "python");
}

#[test]
fn the_c_example_passes_the_conformance_suite() {
    example_passes(TASKS_C_WASM, "c");
}

#[test]
fn the_four_examples_share_one_fixture_file() {
    let read = |lang: &str| {
        std::fs::read(workspace().join(format!("connectors/tasks-{lang}/plugboard-test.json")))
            .unwrap()
    };
    let rust = read("rust");
    for lang in ["js", "python", "c"] {
        assert!(
            read(lang) == rust,
            "connectors/tasks-{lang}/plugboard-test.json differs from Rust's"
        );
    }
}

#[test]
fn a_fixture_the_connector_does_not_meet_is_reported_precisely() {
    // The Rust example against fixtures that expect other answers: each
    // difference is named, and the run fails.
    let dir = tempfile::tempdir().unwrap();
    let fixtures = dir.path().join("plugboard-test.json");
    std::fs::write(
        &fixtures,
        json!({
            "config": {"api_base": "{upstream}"},
            "credentials": {"api_token": "tok-123456"},
            "examples": [
                {"name": "wrong expectation", "method": "echo", "params": {"message": "hi"},
                 "expect": {"result": {"message": "bye"}}},
                {"name": "an unscripted request", "method": "get_task", "params": {"id": "7"},
                 "expect": {"error": "UPSTREAM_NOT_FOUND"}},
                {"name": "a request that never comes", "method": "echo", "params": {"message": "x"},
                 "upstream": [{"request": {"method": "GET", "path": "/never"}}],
                 "expect": {"result": {"message": "x"}}}
            ]
        })
        .to_string(),
    )
    .unwrap();
    let (code, report) = conformance(TASKS_RUST_WASM, Some(&fixtures));
    assert_eq!(code, 1, "{report:#}");
    let detail = |name: &str| {
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"].as_str().unwrap().contains(name))
            .unwrap_or_else(|| panic!("no check {name}: {report:#}"))["detail"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    };
    assert!(
        detail("wrong expectation")
            .contains(r#"result differs: expected {"message":"bye"}, got {"message":"hi"}"#),
        "{report:#}"
    );
    let unscripted = detail("an unscripted request");
    assert!(
        unscripted.contains("unexpected request: GET /tasks/7"),
        "{unscripted}"
    );
    assert!(
        detail("a request that never comes").contains("expected request never came: GET /never"),
        "{report:#}"
    );
}

#[test]
fn a_file_that_is_not_a_component_is_reported_not_crashed() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = dir.path().join("junk.wasm");
    std::fs::write(&wasm, b"\0asm\x01\0\0\0garbage").unwrap();
    let (code, report) = conformance(wasm.to_str().unwrap(), None);
    assert_eq!(code, 1);
    let failed = checks(&report, "fail");
    assert_eq!(failed.len(), 1, "{report:#}");
    assert!(failed[0]["name"].as_str().unwrap().starts_with("upload"));
    assert!(
        failed[0]["detail"].as_str().unwrap().starts_with("400 "),
        "{report:#}"
    );
}

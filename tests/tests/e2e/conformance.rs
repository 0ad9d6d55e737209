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

/// The detail of the check whose name contains `name`.
fn detail_of(report: &Value, name: &str) -> String {
    let check = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"].as_str().unwrap().contains(name))
        .unwrap_or_else(|| panic!("no check {name}: {report:#}"));
    assert_eq!(check["outcome"], "fail", "{name}: {check:#}");
    check["detail"].as_str().unwrap().to_owned()
}

fn broken_fixtures(dir: &str) -> PathBuf {
    workspace().join(format!("tests/guests/{dir}/plugboard-test.json"))
}

#[test]
fn a_broken_javascript_connector_gets_a_precise_report() {
    let (code, report) = conformance(BROKEN_JS_WASM, Some(&broken_fixtures("broken-js")));
    assert_eq!(code, 1, "{report:#}");
    let wrong = detail_of(&report, "a result that breaks the result schema");
    assert!(
        wrong.contains("502 INVALID_CONNECTOR_OUTPUT: the result of wrong_result does not match its result schema: [1,2] is not of type \"object\""),
        "{wrong}"
    );
    for (name, received) in [
        ("a thrown object", "received `[object Object]`"),
        ("a thrown Error", "received `Error: boom`"),
        (
            "an undeclared error case",
            "invalid variant tag value `\"teapot\"`",
        ),
    ] {
        let d = detail_of(&report, name);
        assert!(d.contains("500 CONNECTOR_TRAPPED"), "{name}: {d}");
        assert!(d.contains(received), "{name}: {d}");
        assert!(d.contains("hint: a JavaScript export threw something that is not a value of the WIT `error` variant"), "{name}: {d}");
    }
}

#[test]
fn a_broken_python_connector_gets_a_precise_report() {
    let (code, report) = conformance(BROKEN_PYTHON_WASM, Some(&broken_fixtures("broken-python")));
    assert_eq!(code, 1, "{report:#}");
    let wrong = detail_of(&report, "a result that breaks the result schema");
    assert!(
        wrong.contains("does not match its result schema: [1,2,3] is not of type \"object\""),
        "{wrong}"
    );
    let raised = detail_of(&report, "a raised exception");
    assert!(raised.contains("500 CONNECTOR_TRAPPED"), "{raised}");
    assert!(raised.contains("ValueError: boom"), "{raised}");
    assert!(
        raised.contains("hint: a Python export raised an exception other than Err("),
        "{raised}"
    );
    let undeclared = detail_of(&report, "an undeclared error");
    assert!(undeclared.contains("KeyError"), "{undeclared}");
    assert!(
        undeclared.contains(
            "hint: a Python export raised Err(…) with a value that is not an Error_… case"
        ),
        "{undeclared}"
    );
}

#[tokio::test]
async fn broken_connectors_get_clear_api_errors_and_the_host_keeps_serving() {
    let host = Host::start(&[]);
    for (wasm, cases) in [
        (
            BROKEN_JS_WASM,
            &[
                (
                    "wrong_result",
                    502,
                    "INVALID_CONNECTOR_OUTPUT",
                    "does not match its result schema",
                ),
                (
                    "throw_object",
                    500,
                    "CONNECTOR_TRAPPED",
                    "invalid variant tag value",
                ),
                (
                    "throw_error",
                    500,
                    "CONNECTOR_TRAPPED",
                    "received `Error: boom`",
                ),
                ("undeclared_error", 500, "CONNECTOR_TRAPPED", "`\"teapot\"`"),
            ][..],
        ),
        (
            BROKEN_PYTHON_WASM,
            &[
                (
                    "wrong_result",
                    502,
                    "INVALID_CONNECTOR_OUTPUT",
                    "does not match its result schema",
                ),
                (
                    "raise_exception",
                    500,
                    "CONNECTOR_TRAPPED",
                    "ValueError: boom",
                ),
                ("undeclared_error", 500, "CONNECTOR_TRAPPED", "KeyError"),
            ][..],
        ),
    ] {
        let instance = host.instance(wasm, json!({})).await;
        for (method, status, code, text) in cases {
            let answer = host.invoke(&instance, method, json!({})).await;
            let error = super::common::assert_error(&answer, *status, code);
            let message = error["message"].as_str().unwrap();
            assert!(message.contains(text), "{method}: {message}");
            assert!(
                answer.1["invocationId"].as_str().is_some(),
                "{method}: {answer:?}"
            );
        }
        // The failures cost the host nothing: the next good call works.
        let healthz = host.healthz().await;
        assert_eq!(healthz["status"], "ok", "{healthz}");
    }
}

/// `plugboard new acme-notes --lang <lang>`, the documented build
/// (`./build.sh`), `plugboard test` in the project, and an upload to a
/// running host whose `echo` then answers.
///
/// The language's toolchain is the one the examples' `setup.sh` installed
/// (`.ci/run` runs them): `env` points the new project's build at it,
/// as `docs/authoring/<lang>.md` describes for a machine that has it.
async fn new_project_builds_passes_and_uploads(lang: &str, env: &[(&str, PathBuf)]) {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("acme-notes");
    let mut new = Command::new(HOST_BIN);
    new.args(["new", "acme-notes", "--lang", lang, "--dir"])
        .arg(&project);
    let (code, out, err) = run(new);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("./build.sh"), "{out}");

    let mut build = Command::new(project.join("build.sh"));
    build.current_dir(&project);
    for (k, v) in env {
        build.env(k, v);
    }
    let (code, out, err) = run(build);
    assert_eq!(code, 0, "{lang}: build.sh failed:\n{out}\n{err}");
    let wasm = project.join("dist/acme-notes.wasm");
    assert!(wasm.is_file(), "{lang}: no {}", wasm.display());

    // From inside the project, as the docs say: the fixtures are found in
    // the working directory.
    let mut test = Command::new(HOST_BIN);
    test.args(["test", "dist/acme-notes.wasm", "--json"])
        .current_dir(&project);
    let (code, stdout, stderr) = run(test);
    let report: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{lang}: not a JSON report ({e}):\n{stdout}\n{stderr}"));
    assert!(checks(&report, "fail").is_empty(), "{lang}: {report:#}");
    assert_eq!(code, 0, "{lang}");
    assert_eq!(report["connector"], "acme-notes@0.1.0", "{lang}");

    let host = Host::start(&[]);
    let (status, uploaded) = host.upload(wasm.to_str().unwrap()).await;
    assert_eq!(status, 201, "{lang}: {uploaded}");
    let (status, created) = host
        .post(
            "/instances",
            json!({"connector": uploaded["id"], "name": "acme",
                   "config": {"api_base": "http://127.0.0.1:9"},
                   "credentials": {"api_token": "t0k3n-acme"}}),
        )
        .await;
    assert_eq!(status, 201, "{lang}: {created}");
    let instance = created["id"].as_str().unwrap();
    let (status, body) = host
        .invoke(
            instance,
            "echo",
            json!({"message": "hello from a new project"}),
        )
        .await;
    assert_eq!(status, 200, "{lang}: {body}");
    assert_eq!(
        body["data"],
        json!({"message": "hello from a new project"}),
        "{lang}"
    );
}

#[tokio::test]
async fn plugboard_new_rust_builds_passes_and_uploads() {
    // A target dir of the tests' own, kept between runs, so the vendored
    // SDK and its dependencies compile once per machine.
    let target = workspace().join("target/new-projects");
    new_project_builds_passes_and_uploads("rust", &[("CARGO_TARGET_DIR", target)]).await;
}

#[tokio::test]
async fn plugboard_new_javascript_builds_passes_and_uploads() {
    new_project_builds_passes_and_uploads("js", &[]).await;
}

#[tokio::test]
async fn plugboard_new_python_builds_passes_and_uploads() {
    let cpy = workspace().join("connectors/tasks-python/.venv/bin/componentize-py");
    new_project_builds_passes_and_uploads("python", &[("COMPONENTIZE_PY", cpy)]).await;
}

#[tokio::test]
async fn plugboard_new_c_builds_passes_and_uploads() {
    // The project gets the preview1 adapter from `plugboard new`; clang,
    // wit-bindgen and wasm-tools are the ones setup.sh installed.
    new_project_builds_passes_and_uploads("c", &[]).await;
}

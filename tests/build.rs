//! Builds every guest component from source for `wasm32-wasip2`.
//!
//! Like wasmtime's `crates/test-programs/artifacts`, this runs a nested
//! `cargo build` of the guest crates with a target directory of its own
//! (`target/guests`), so the outer build's lock and artifacts are never
//! touched, and hands the `.wasm` paths to the library as `PLUGBOARD_*_WASM`
//! environment variables. No prebuilt `.wasm` is ever committed.

use std::env;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";

/// (directory, package, artifact file stem, env var) of every Rust guest.
const GUESTS: &[(&str, &str, &str, &str)] = &[
    ("connectors/echo", "echo", "echo", "PLUGBOARD_ECHO_WASM"),
    ("connectors/rest", "rest", "rest", "PLUGBOARD_REST_WASM"),
    (
        "connectors/freshdesk",
        "freshdesk",
        "freshdesk",
        "PLUGBOARD_FRESHDESK_WASM",
    ),
    ("connectors/slack", "slack", "slack", "PLUGBOARD_SLACK_WASM"),
    (
        "connectors/github",
        "github",
        "github",
        "PLUGBOARD_GITHUB_WASM",
    ),
    (
        "tests/guests/hostile",
        "hostile",
        "hostile",
        "PLUGBOARD_HOSTILE_WASM",
    ),
    (
        "tests/guests/wrong-world",
        "wrong-world",
        "wrong-world",
        "PLUGBOARD_WRONG_WORLD_WASM",
    ),
    (
        "tests/guests/auth-bearer",
        "auth-bearer",
        "auth_bearer",
        "PLUGBOARD_AUTH_BEARER_WASM",
    ),
    (
        "tests/guests/auth-basic",
        "auth-basic",
        "auth_basic",
        "PLUGBOARD_AUTH_BASIC_WASM",
    ),
    (
        "tests/guests/auth-header",
        "auth-header",
        "auth_header",
        "PLUGBOARD_AUTH_HEADER_WASM",
    ),
    (
        "tests/guests/auth-query",
        "auth-query",
        "auth_query",
        "PLUGBOARD_AUTH_QUERY_WASM",
    ),
    (
        "tests/guests/auth-oauth",
        "auth-oauth",
        "auth_oauth",
        "PLUGBOARD_AUTH_OAUTH_WASM",
    ),
    ("tests/guests/desk", "desk", "desk", "PLUGBOARD_DESK_WASM"),
    (
        "tests/guests/payhooks",
        "payhooks",
        "payhooks",
        "PLUGBOARD_PAYHOOKS_WASM",
    ),
    (
        "tests/guests/auth-client-credentials",
        "auth-client-credentials",
        "auth_client_credentials",
        "PLUGBOARD_AUTH_CLIENT_CREDENTIALS_WASM",
    ),
    (
        "connectors/tasks-rust",
        "tasks",
        "tasks",
        "PLUGBOARD_TASKS_RUST_WASM",
    ),
];

/// Guests in other languages, each built by its own `build.sh OUT.wasm`:
/// (directory, env var, the inputs whose change rebuilds it). Only sources
/// are watched: the scripts write `node_modules/`, `.venv/` and generated
/// bindings into their directories, which must not trigger a rebuild.
const EXTERNAL: &[(&str, &str, &[&str])] = &[
    (
        "connectors/tasks-js",
        "PLUGBOARD_TASKS_JS_WASM",
        &["src", "build.sh", "package.json", "package-lock.json"],
    ),
    (
        "connectors/tasks-python",
        "PLUGBOARD_TASKS_PYTHON_WASM",
        &["src", "build.sh", "requirements.txt"],
    ),
    (
        "connectors/tasks-c",
        "PLUGBOARD_TASKS_C_WASM",
        &["src", "vendor", "build.sh"],
    ),
    (
        "tests/guests/broken-js",
        "PLUGBOARD_BROKEN_JS_WASM",
        &["src", "build.sh", "package.json", "package-lock.json"],
    ),
    (
        "tests/guests/broken-python",
        "PLUGBOARD_BROKEN_PYTHON_WASM",
        &["src", "build.sh", "requirements.txt"],
    ),
];

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let workspace = manifest_dir
        .parent()
        .expect("tests/ lives in the workspace root")
        .to_path_buf();
    let target_dir = workspace.join("target").join("guests");

    let mut watched: Vec<String> = ["guest-sdk", "wit", "Cargo.toml", "Cargo.lock"]
        .map(str::to_owned)
        .to_vec();
    for (dir, _, _, _) in GUESTS {
        watched.push(format!("{dir}/src"));
        watched.push(format!("{dir}/Cargo.toml"));
    }
    for (dir, _, inputs) in EXTERNAL {
        watched.extend(inputs.iter().map(|i| format!("{dir}/{i}")));
    }
    for path in watched {
        println!("cargo:rerun-if-changed={}", workspace.join(path).display());
    }
    let cargo = env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| OsString::from("rustc"));
    check_target_installed(&rustc);

    let mut cmd = Command::new(&cargo);
    cmd.current_dir(&workspace)
        .args(["build", "--release", "--target", TARGET])
        .args(GUESTS.iter().flat_map(|(_, package, _, _)| ["-p", package]))
        .env("CARGO_TARGET_DIR", &target_dir)
        // The guest profile, set here rather than in the workspace's
        // `[profile.release]` (which is the host's), and shared with
        // `scripts/serve`, the benchmarks and `plugboard new`'s template.
        // `"s"`, not 3: `opt-level = 3` took 0.4 us of host CPU off a warm
        // `echo` call (+2 % req/s) but made every call in flight hold
        // ~16 KiB more (10,000 concurrent `rest` calls: 993 -> 1,151 MiB
        // peak RSS, docs/benchmarks.md). Fat LTO cuts components by a third
        // for about 8 s more per rebuild. Debug info is dropped but the
        // name section stays, so traps show function names; panic messages
        // live in data and survive anyway.
        .env("CARGO_PROFILE_RELEASE_OPT_LEVEL", "s")
        .env("CARGO_PROFILE_RELEASE_LTO", "true")
        .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "1")
        .env("CARGO_PROFILE_RELEASE_DEBUG", "false")
        .env("CARGO_PROFILE_RELEASE_STRIP", "debuginfo")
        .env("CARGO_PROFILE_RELEASE_INCREMENTAL", "false");
    // Nothing of the outer (native) build may reach the wasm build: its
    // rustflags (coverage, sanitizers, target-cpu) would break it, `cargo
    // clippy`'s workspace wrapper would lint guests with outer settings, and
    // the per-build-script variables would look like settings of the guest
    // crates' own build scripts (a stray `CARGO_FEATURE_*` enables a feature).
    // `CARGO_MAKEFLAGS` stays, so the nested build shares the jobserver.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "OUT_DIR",
        "TARGET",
        "HOST",
        "PROFILE",
        "OPT_LEVEL",
        "DEBUG",
        "NUM_JOBS",
    ] {
        cmd.env_remove(var);
    }
    for (key, _) in env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        if [
            "CARGO_CFG_",
            "CARGO_FEATURE_",
            "CARGO_PKG_",
            "CARGO_MANIFEST_",
        ]
        .iter()
        .any(|prefix| key.starts_with(prefix))
        {
            cmd.env_remove(key);
        }
    }

    let output = cmd
        .output()
        .unwrap_or_else(|e| panic!("could not run {}: {e}", Path::new(&cargo).display()));
    if !output.status.success() {
        panic!(
            "building the guest components failed ({}):\n{}\n\nrerun by hand with:\n  \
             CARGO_TARGET_DIR=target/guests cargo build --release --target {TARGET} {}",
            output.status,
            String::from_utf8_lossy(&output.stderr),
            GUESTS
                .iter()
                .map(|(_, p, _, _)| format!("-p {p}"))
                .collect::<Vec<_>>()
                .join(" "),
        );
    }

    let out = target_dir.join(TARGET).join("release");
    for (_, package, stem, var) in GUESTS {
        let wasm = out.join(format!("{stem}.wasm"));
        assert!(
            wasm.is_file(),
            "the build of `{package}` succeeded but {} is missing",
            wasm.display()
        );
        println!("cargo:rustc-env={var}={}", wasm.display());
    }
    build_external(&workspace, &target_dir.join("external"));
}

/// Builds the other languages' guests, in parallel (each is mostly one
/// single-threaded toolchain process), with the preview1 adapter the C
/// build needs written next to them.
fn build_external(workspace: &Path, out: &Path) {
    std::fs::create_dir_all(out).expect("creating target/guests/external");
    let adapter = out.join("wasi_snapshot_preview1.reactor.wasm");
    std::fs::write(
        &adapter,
        wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
    )
    .expect("writing the preview1 adapter");
    let results: Vec<(&str, &str, Result<PathBuf, String>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = EXTERNAL
            .iter()
            .map(|(dir, var, inputs)| {
                let adapter = &adapter;
                (
                    *dir,
                    *var,
                    scope.spawn(move || build_one(workspace, dir, inputs, out, adapter)),
                )
            })
            .collect();
        handles
            .into_iter()
            .map(|(dir, var, h)| {
                (
                    dir,
                    var,
                    h.join()
                        .unwrap_or_else(|_| Err("the build thread panicked".into())),
                )
            })
            .collect()
    });
    let mut failures = Vec::new();
    for (dir, var, result) in results {
        match result {
            Ok(wasm) => println!("cargo:rustc-env={var}={}", wasm.display()),
            Err(e) => failures.push(format!("{dir}: {e}")),
        }
    }
    if !failures.is_empty() {
        panic!(
            "building the JavaScript, Python and C guests failed:\n\n{}\n\n\
             Each guest's toolchain is installed by its setup.sh \
             (`connectors/tasks-js/setup.sh`, …); `.ci/run` runs them all.",
            failures.join("\n\n")
        );
    }
}

fn build_one(
    workspace: &Path,
    dir: &str,
    inputs: &[&str],
    out: &Path,
    adapter: &Path,
) -> Result<PathBuf, String> {
    let name = Path::new(dir)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("guest");
    let wasm = out.join(format!("{name}.wasm"));
    // These toolchains take tens of seconds and the script reruns for any
    // profile (test, bench): skip a component newer than all its inputs.
    let built = std::fs::metadata(&wasm).and_then(|m| m.modified()).ok();
    let newest_input = inputs
        .iter()
        .map(|i| workspace.join(dir).join(i))
        .chain(std::iter::once(workspace.join("wit")))
        .filter_map(|p| newest(&p))
        .max();
    if let (Some(built), Some(input)) = (built, newest_input)
        && built > input
    {
        return Ok(wasm);
    }
    let script = workspace.join(dir).join("build.sh");
    let output = Command::new(&script)
        .arg(&wasm)
        .current_dir(workspace.join(dir))
        .env("WASI_ADAPTER", adapter)
        // The outer build's variables mean nothing to npm, pip or clang.
        .env_remove("CARGO_MAKEFLAGS")
        .env_remove("MAKEFLAGS")
        .output()
        .map_err(|e| format!("could not run {}: {e}", script.display()))?;
    if !output.status.success() {
        let tail = |b: &[u8]| {
            let text = String::from_utf8_lossy(b);
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(30)..].join("\n")
        };
        return Err(format!(
            "{} {} failed ({}):\n{}\n{}",
            script.display(),
            wasm.display(),
            output.status,
            tail(&output.stdout),
            tail(&output.stderr)
        ));
    }
    if !wasm.is_file() {
        return Err(format!(
            "{} succeeded but wrote no {}",
            script.display(),
            wasm.display()
        ));
    }
    Ok(wasm)
}

/// Fails early, with the fix, when the standard library for the target is
/// missing (otherwise the nested build ends in a puzzling "can't find crate
/// for `core`").
fn check_target_installed(rustc: &OsString) {
    let libdir = Command::new(rustc)
        .args(["--print", "target-libdir", "--target", TARGET])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    // A rustc that cannot even print the directory will fail the build below
    // with its own message; only a missing directory is diagnosed here.
    if let Some(dir) = libdir
        && !dir.is_dir()
    {
        panic!(
            "the Rust standard library for {TARGET} is not installed ({} is missing); \
             install it with:\n\n    rustup target add {TARGET}\n",
            dir.display()
        );
    }
}

/// The newest modification time of a file or, recursively, a directory.
fn newest(path: &Path) -> Option<std::time::SystemTime> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_dir() {
        return meta.modified().ok();
    }
    std::fs::read_dir(path)
        .ok()?
        .flatten()
        .filter_map(|e| newest(&e.path()))
        .chain(meta.modified().ok())
        .max()
}

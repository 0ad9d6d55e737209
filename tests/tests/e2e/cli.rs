//! The `plugboard` command-line client against a real host, through the
//! binary only: the README's CLI session verbatim, the same session with
//! `--json` parsed and tables read, exit codes (usage 2, API 3, transport
//! 4), where the token comes from, parameters from `@file` and stdin, one
//! test per command group so every API operation runs at least once, and
//! the token never showing in any output.

use std::io::{Read as _, Write as _};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hmac::Mac as _;
use plugboard_tests::{AUTH_OAUTH_WASM, DESK_WASM, ECHO_WASM};
use serde_json::{Value, json};

use crate::common::{HOST_BIN, Host, closed_port};

/// A place to run the CLI from: its own working directory, `HOME` and
/// `XDG_CONFIG_HOME` (so no config file or `./plugboard-data` of the
/// machine leaks in), and the environment the test gives it.
struct Cli {
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
}

/// What a run left behind.
#[derive(Debug)]
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    #[track_caller]
    fn ok(self) -> Out {
        assert_eq!(self.code, 0, "expected success: {self:#?}");
        self
    }

    #[track_caller]
    fn code(self, code: i32) -> Out {
        assert_eq!(self.code, code, "expected exit code {code}: {self:#?}");
        self
    }

    #[track_caller]
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:#?}"))
    }

    /// Everything printed, to search for what must never be there.
    fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

/// Client-related variables of the machine running the tests, removed so
/// only what a test sets counts.
const CLIENT_ENV: &[&str] = &[
    "PLUGBOARD_SERVER",
    "PLUGBOARD_TOKEN",
    "PLUGBOARD_TOKEN_FILE",
    "PLUGBOARD_CLI_CONFIG",
    "PLUGBOARD_DATA_DIR",
    "RUST_BACKTRACE",
];

impl Cli {
    /// No server, no token: only what the test adds.
    fn bare() -> Cli {
        Cli {
            dir: tempfile::tempdir().unwrap(),
            env: Vec::new(),
        }
    }

    /// Pointed at `host`, finding its admin token in the data directory
    /// as a user in the quickstart would.
    fn for_host(host: &Host) -> Cli {
        Cli::bare()
            .env("PLUGBOARD_SERVER", &host.url)
            .env("PLUGBOARD_DATA_DIR", host.data_dir.to_str().unwrap())
    }

    fn env(mut self, key: &str, value: &str) -> Cli {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Writes a file in the working directory; returns its path.
    fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    fn run(&self, args: &[&str]) -> Out {
        self.run_with_stdin(args, None)
    }

    /// Runs `plugboard <args>` to completion (bounded: 60 s).
    fn run_with_stdin(&self, args: &[&str], stdin: Option<&str>) -> Out {
        let mut command = Command::new(HOST_BIN);
        command
            .args(args)
            .current_dir(self.dir.path())
            .env("HOME", self.dir.path())
            .env("XDG_CONFIG_HOME", self.dir.path().join("config"))
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for key in CLIENT_ENV {
            command.env_remove(key);
        }
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        let mut child = command.spawn().unwrap();
        if let Some(input) = stdin {
            let mut pipe = child.stdin.take().unwrap();
            pipe.write_all(input.as_bytes()).unwrap();
        }
        // Read both pipes on threads: a full pipe would stall the child.
        let mut stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let out = std::thread::spawn(move || {
            let mut s = String::new();
            stdout.read_to_string(&mut s).unwrap();
            s
        });
        let err = std::thread::spawn(move || {
            let mut s = String::new();
            stderr.read_to_string(&mut s).unwrap();
            s
        });
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if started.elapsed() > Duration::from_secs(60) {
                let _ = child.kill();
                panic!("`plugboard {}` did not finish within 60 s", args.join(" "));
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        Out {
            code: status.code().expect("exited, not killed"),
            stdout: out.join().unwrap(),
            stderr: err.join().unwrap(),
        }
    }
}

/// Uploads echo and creates an instance of it; returns its id.
fn echo_instance(cli: &Cli) -> String {
    cli.run(&["connectors", "upload", ECHO_WASM, "--quiet"])
        .ok();
    let out = cli
        .run(&[
            "instances",
            "create",
            "echo",
            "--name",
            "demo",
            "--config",
            r#"{"greeting": "hi"}"#,
            "--quiet",
        ])
        .ok();
    out.stdout.trim().to_owned()
}

const README: &str = include_str!("../../../README.md");

/// The shell block between the CLI session markers of the README.
fn readme_cli_session() -> &'static str {
    let start = README
        .find("<!-- cli-session:start -->")
        .expect("CLI session start marker");
    let end = README
        .find("<!-- cli-session:end -->")
        .expect("CLI session end marker");
    let block = &README[start..end];
    let code = block.find("```sh\n").expect("sh code block") + "```sh\n".len();
    let close = block[code..].find("```").expect("closing fence");
    &block[code..code + close]
}

#[test]
fn readme_cli_session_works_verbatim() {
    let host = Host::start(&[]);
    // The README's `plugboard` is the binary under test.
    let bin = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(HOST_BIN, bin.path().join("plugboard")).unwrap();
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let cwd = tempfile::tempdir().unwrap();
    let mut command = Command::new("bash");
    command
        .args(["-euo", "pipefail", "-c", readme_cli_session()])
        .current_dir(cwd.path())
        .env("PATH", path)
        .env("HOME", cwd.path())
        .env("XDG_CONFIG_HOME", cwd.path())
        .env("PLUGBOARD_SERVER", &host.url)
        .env("PLUGBOARD_DATA_DIR", &host.data_dir)
        .env("ECHO_WASM", ECHO_WASM);
    for key in [
        "PLUGBOARD_TOKEN",
        "PLUGBOARD_TOKEN_FILE",
        "PLUGBOARD_CLI_CONFIG",
    ] {
        command.env_remove(key);
    }
    let out = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "session failed:\n{stdout}\n{stderr}");
    for expected in [
        "uploaded: echo@0.1.0",
        "instance: inst_",
        "SUCCESS",
        "\"message\": \"hello, plugboard\"",
        "exit code: 3",
        "invocations.count",
        "healthy",
        "\"name\": \"demo\"",
    ] {
        assert!(stdout.contains(expected), "no {expected:?} in:\n{stdout}");
    }
    assert!(
        stderr.contains("error: INVALID_PARAMS: invalid parameters: 42 is not of type"),
        "{stderr}"
    );
}

#[test]
fn the_readme_session_through_the_cli_with_json_and_tables() {
    let host = Host::start(&[]);
    let cli = Cli::for_host(&host);

    let uploaded = cli
        .run(&["connectors", "upload", ECHO_WASM, "--json"])
        .ok()
        .json();
    assert_eq!(uploaded["id"], "echo@0.1.0");
    assert_eq!(uploaded["manifest"]["name"], "echo");
    // Not a terminal: no progress bar, nothing on stderr.
    let again = cli.run(&["connectors", "upload", ECHO_WASM]).ok();
    assert!(again.stdout.contains("already stored"), "{again:?}");
    assert_eq!(again.stderr, "");

    let created = cli
        .run(&[
            "instances",
            "create",
            "echo",
            "--name",
            "demo",
            "--config",
            r#"{"greeting": "hi"}"#,
            "--json",
        ])
        .ok()
        .json();
    let instance = created["id"].as_str().unwrap().to_owned();
    assert!(instance.starts_with("inst_"), "{created}");
    assert_eq!(created["status"], "ACTIVE");

    let table = cli.run(&["instances", "list"]).ok().stdout;
    let header = table.lines().next().unwrap();
    assert!(
        header.starts_with("ID") && header.contains("STATUS"),
        "{table}"
    );
    let row = table.lines().find(|l| l.contains(&instance)).unwrap();
    for cell in ["demo", "echo@0.1.0", "ACTIVE"] {
        assert!(row.contains(cell), "{row}");
    }

    let ok = cli
        .run(&[
            "invoke",
            &instance,
            "echo",
            r#"{"message": "hello, plugboard"}"#,
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(ok["status"], "SUCCESS");
    assert_eq!(ok["data"]["message"], "hello, plugboard");
    let shown = cli
        .run(&["invoke", &instance, "echo", r#"{"message": "as a table"}"#])
        .ok()
        .stdout;
    assert!(shown.contains("status        SUCCESS"), "{shown}");
    assert!(shown.contains("\"message\": \"as a table\""), "{shown}");

    let refused = cli
        .run(&["invoke", &instance, "echo", r#"{"message": 42}"#, "--json"])
        .code(3);
    assert_eq!(refused.json()["error"]["code"], "INVALID_PARAMS");
    assert!(
        refused
            .stderr
            .starts_with("error: INVALID_PARAMS: invalid parameters: 42 is not of type"),
        "{refused:?}"
    );
    assert!(
        refused.stderr.contains("/message: 42 is not of type"),
        "{refused:?}"
    );

    let stats = cli
        .run(&["instances", "stats", &instance, "--json"])
        .ok()
        .json();
    assert_eq!(stats["invocations"]["count"], 3, "{stats}");
    assert_eq!(stats["invocations"]["errorsByCode"]["INVALID_PARAMS"], 1);
    let stats = cli.run(&["stats", &instance, "--window", "5m"]).ok().stdout;
    assert!(stats.contains("window"), "{stats}");
    assert!(stats.contains("5m"), "{stats}");
    let row = stats.lines().find(|l| l.starts_with("echo ")).unwrap();
    assert_eq!(
        row.split_whitespace().collect::<Vec<_>>(),
        ["echo", "3", "1"]
    );

    let health = cli
        .run(&["instances", "health", &instance, "--json"])
        .ok()
        .json();
    assert_eq!(health["status"], "healthy");
    let health = cli.run(&["instances", "health", &instance]).ok().stdout;
    assert!(
        health
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["status", "healthy"]),
        "{health}"
    );
}

#[test]
fn exit_codes_tell_usage_api_and_transport_errors_apart() {
    let host = Host::start(&[]);
    let cli = Cli::for_host(&host);
    let instance = echo_instance(&cli);

    // Usage (2): clap, and local input that is wrong; nothing is sent.
    cli.run(&["instances", "list", "--no-such-flag"]).code(2);
    cli.run(&["invoke", &instance]).code(2);
    let bad = cli.run(&["invoke", &instance, "echo", "{not json"]).code(2);
    assert!(
        bad.stderr
            .starts_with("error: parameters is not valid JSON"),
        "{bad:?}"
    );
    let missing = cli
        .run(&["invoke", &instance, "echo", "@does-not-exist.json"])
        .code(2);
    assert!(
        missing.stderr.contains("cannot read does-not-exist.json"),
        "{missing:?}"
    );
    cli.run(&["instances", "update", &instance]).code(2);
    cli.run(&["status", "--server", "not a url"]).code(2);
    let stats = cli
        .run(&["instances", "stats", &instance, "--json"])
        .ok()
        .json();
    assert_eq!(
        stats["invocations"]["count"], 0,
        "a usage error sent something"
    );

    // API (3): the server's code and message.
    let out = cli.run(&["connectors", "show", "nope@1.0.0"]).code(3);
    assert!(out.stderr.starts_with("error: NOT_FOUND: "), "{out:?}");
    let out = cli.run(&["invoke", &instance, "nope"]).code(3);
    assert!(
        out.stderr.starts_with("error: METHOD_NOT_FOUND: "),
        "{out:?}"
    );

    // Transport (4): nothing listening, an answer that is not the API's,
    // no answer in time.
    let closed = format!("http://127.0.0.1:{}", closed_port());
    let out = cli.run(&["instances", "list", "--server", &closed]).code(4);
    assert!(out.stderr.starts_with("error: cannot reach"), "{out:?}");

    let garbage = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let garbage_url = format!("http://{}", garbage.local_addr().unwrap());
    let server = std::thread::spawn(move || {
        let (mut conn, _) = garbage.accept().unwrap();
        let mut buf = [0u8; 4096];
        let _ = conn.read(&mut buf).unwrap();
        conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 19\r\nconnection: close\r\n\r\n<html>hello</html>\n")
            .unwrap();
    });
    let out = cli
        .run(&["instances", "list", "--server", &garbage_url])
        .code(4);
    assert!(out.stderr.contains("not the API's JSON"), "{out:?}");
    server.join().unwrap();

    // Accepts connections (the backlog) but never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!("http://{}", silent.local_addr().unwrap());
    let out = cli
        .run(&[
            "instances",
            "list",
            "--server",
            &silent_url,
            "--timeout",
            "1",
        ])
        .code(4);
    assert!(out.stderr.contains("no answer from"), "{out:?}");
    drop(silent);
}

#[test]
fn the_token_comes_from_flag_then_env_then_config_then_data_dir() {
    let host = Host::start(&[]);
    let admin = Cli::for_host(&host);
    let instance = echo_instance(&admin);
    // An invoke token may not list tokens (403), a bogus one gets 401, the
    // admin token may: which answer comes back tells which token was sent.
    let invoke_token = admin
        .run(&[
            "tokens",
            "create",
            "--name",
            "ci",
            "--scope",
            "invoke",
            "--instance",
            &instance,
            "--quiet",
        ])
        .ok()
        .stdout
        .trim()
        .to_owned();
    assert!(invoke_token.starts_with("pb_"), "{invoke_token}");
    let bogus = "pb_0000000000000000000000000000000000000000000000000000000000000000";
    let sent = |out: Out| -> &'static str {
        match out.code {
            0 => "admin",
            3 if out.stderr.contains("FORBIDDEN") => "invoke",
            3 if out.stderr.contains("UNAUTHORIZED") => "bogus",
            _ => panic!("unexpected: {out:?}"),
        }
    };

    // Data directory only.
    let cli = Cli::for_host(&host);
    assert_eq!(sent(cli.run(&["tokens", "list"])), "admin");

    // The config file beats the data directory (default place, XDG).
    let config_dir = cli.dir.path().join("config").join("plugboard");
    std::fs::create_dir_all(&config_dir).unwrap();
    std::fs::write(
        config_dir.join("cli.toml"),
        format!("token = \"{bogus}\"\n"),
    )
    .unwrap();
    assert_eq!(sent(cli.run(&["tokens", "list"])), "bogus");
    // `--cli-config` names another file, with a token file relative to it.
    cli.write("invoke.token", &format!("{invoke_token}\n"));
    let other = cli.write("other.toml", "token_file = \"invoke.token\"\n");
    assert_eq!(
        sent(cli.run(&["tokens", "list", "--cli-config", other.to_str().unwrap()])),
        "invoke"
    );

    // The environment beats the config file.
    let cli = cli.env("PLUGBOARD_TOKEN", &invoke_token);
    assert_eq!(sent(cli.run(&["tokens", "list"])), "invoke");

    // Flags beat the environment.
    let admin_file = host.data_dir.join("admin.token");
    assert_eq!(
        sent(cli.run(&[
            "tokens",
            "list",
            "--token-file",
            admin_file.to_str().unwrap()
        ])),
        "admin"
    );
    assert_eq!(
        sent(cli.run(&["tokens", "list", "--token", bogus])),
        "bogus"
    );

    // The server: flag > env > config file > default.
    let closed = format!("http://127.0.0.1:{}", closed_port());
    let cli = Cli::bare()
        .env("PLUGBOARD_DATA_DIR", host.data_dir.to_str().unwrap())
        .env("PLUGBOARD_SERVER", &host.url);
    let config = cli.write("cli.toml", &format!("server = \"{closed}\"\n"));
    let config = config.to_str().unwrap();
    cli.run(&["tokens", "list", "--cli-config", config]).ok();
    cli.run(&["tokens", "list", "--server", &closed]).code(4);
    let no_env = Cli::bare().env("PLUGBOARD_DATA_DIR", host.data_dir.to_str().unwrap());
    let config = no_env.write("cli.toml", &format!("server = \"{}\"\n", host.url));
    no_env
        .run(&["tokens", "list", "--cli-config", config.to_str().unwrap()])
        .ok();
}

#[test]
fn parameters_come_inline_from_a_file_or_from_stdin() {
    let host = Host::start(&[]);
    let cli = Cli::for_host(&host);
    let instance = echo_instance(&cli);

    let file = cli.write("params.json", r#"{"message": "from a file"}"#);
    let arg = format!("@{}", file.display());
    let out = cli.run(&["invoke", &instance, "echo", &arg, "--json"]).ok();
    assert_eq!(out.json()["data"]["message"], "from a file");

    let out = cli
        .run_with_stdin(
            &["invoke", &instance, "echo", "-", "--json"],
            Some(r#"{"message": "from stdin"}"#),
        )
        .ok();
    assert_eq!(out.json()["data"]["message"], "from stdin");

    // No parameters: `{}` (echo's `message` is required).
    let out = cli.run(&["invoke", &instance, "echo"]).code(3);
    assert!(out.stderr.contains("INVALID_PARAMS"), "{out:?}");

    // `--quiet` prints only the result; an idempotency key replays it.
    let first = cli
        .run(&[
            "invoke",
            &instance,
            "echo",
            r#"{"message": "once"}"#,
            "--idempotency-key",
            "k-1",
            "--json",
        ])
        .ok()
        .json();
    let second = cli
        .run(&[
            "invoke",
            &instance,
            "echo",
            r#"{"message": "once"}"#,
            "--idempotency-key",
            "k-1",
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(second["replayed"], true, "{second}");
    assert_eq!(second["invocationId"], first["invocationId"]);
    let quiet = cli
        .run(&[
            "invoke",
            &instance,
            "echo",
            r#"{"message": "q"}"#,
            "--quiet",
        ])
        .ok();
    assert_eq!(
        serde_json::from_str::<Value>(&quiet.stdout).unwrap()["message"],
        "q"
    );

    // `--outbound` asks for the attempts (echo makes none).
    let out = cli
        .run(&[
            "invoke",
            &instance,
            "echo",
            r#"{"message": "o"}"#,
            "--outbound",
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(out["outbound"], json!([]), "{out}");
    let out = cli
        .run(&["instances", "test", &instance, "--outbound", "--json"])
        .ok()
        .json();
    assert_eq!(out["status"], "SUCCESS");
    assert_eq!(out["outbound"], json!([]), "{out}");
}

#[test]
fn connectors_and_instances_every_operation() {
    let host = Host::start(&[]);
    let cli = Cli::for_host(&host);
    cli.run(&["connectors", "upload", DESK_WASM, "--quiet"])
        .ok();

    let list = cli.run(&["connectors", "list"]).ok().stdout;
    assert!(list.lines().any(|l| l.starts_with("desk@")), "{list}");
    let shown = cli.run(&["connectors", "show", "desk"]).ok().stdout;
    assert!(shown.contains("post_message"), "{shown}");
    let id = cli
        .run(&["connectors", "show", "desk", "--quiet"])
        .ok()
        .stdout
        .trim()
        .to_owned();

    let limited = cli
        .run(&[
            "connectors",
            "rate-limit",
            &id,
            "--requests",
            "5",
            "--per-ms",
            "1000",
            "--burst",
            "2",
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(
        limited["rateLimit"],
        json!({"requests": 5, "perMs": 1000, "burst": 2})
    );
    let cleared = cli
        .run(&["connectors", "rate-limit", &id, "--clear", "--json"])
        .ok()
        .json();
    assert_eq!(cleared["rateLimit"], Value::Null, "{cleared}");
    cli.run(&["connectors", "rate-limit", &id, "--requests", "5"])
        .code(2);

    // Created without credentials: pending until they are set.
    let config = cli.write("config.json", r#"{"base_url": "https://desk.example"}"#);
    let config = format!("@{}", config.display());
    let created = cli
        .run(&[
            "instances",
            "create",
            "desk",
            "--name",
            "helpdesk",
            "--config",
            &config,
            "--limits",
            r#"{"timeoutMs": 5000}"#,
            "--json",
        ])
        .ok()
        .json();
    let instance = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["status"], "PENDING_AUTHENTICATION", "{created}");
    assert_eq!(created["limits"]["timeoutMs"], 5000);

    let secret = "whsec-cli-Zx81Qv";
    let out = cli
        .run_with_stdin(
            &[
                "instances",
                "credentials",
                &instance,
                "-",
                "--expires-at",
                "2099-01-01T00:00:00Z",
            ],
            Some(&format!(r#"{{"webhook_secret": "{secret}"}}"#)),
        )
        .ok();
    assert!(!out.all().contains(secret), "{out:?}");
    assert!(out.stdout.contains("webhook_secret"), "{out:?}");
    let shown = cli
        .run(&["instances", "show", &instance, "--json"])
        .ok()
        .json();
    assert_eq!(shown["status"], "ACTIVE", "{shown}");
    assert!(!shown.to_string().contains(secret));

    let updated = cli
        .run(&[
            "instances",
            "update",
            &instance,
            "--name",
            "renamed",
            "--config",
            r#"{"base_url": "https://other.example"}"#,
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(updated["name"], "renamed");
    assert_eq!(updated["config"]["base_url"], "https://other.example");
    let table = cli.run(&["instances", "show", &instance]).ok().stdout;
    assert!(table.contains("renamed"), "{table}");

    cli.run(&["instances", "test", &instance]).ok();

    // A connector in use cannot go; once its instance is gone it can.
    let out = cli.run(&["connectors", "delete", &id]).code(3);
    assert!(out.stderr.starts_with("error: CONFLICT: "), "{out:?}");
    let out = cli.run(&["instances", "delete", &instance]).ok();
    assert_eq!(out.stdout.trim(), format!("deleted instance {instance}"));
    cli.run(&["instances", "show", &instance]).code(3);
    cli.run(&["connectors", "delete", &id]).ok();
    assert_eq!(
        cli.run(&["connectors", "list"]).ok().stdout.trim(),
        "(none)"
    );
    assert_eq!(
        cli.run(&["connectors", "list", "--json"]).ok().json(),
        json!({"items": []})
    );
}

#[test]
fn tokens_are_created_listed_used_and_revoked() {
    let host = Host::start(&[]);
    let cli = Cli::for_host(&host);
    let instance = echo_instance(&cli);

    let minted = cli
        .run(&[
            "tokens",
            "create",
            "--name",
            "ci bot",
            "--scope",
            "invoke",
            "--instance",
            &instance,
            "--json",
        ])
        .ok()
        .json();
    let token = minted["token"].as_str().unwrap().to_owned();
    let id = minted["id"].as_str().unwrap().to_owned();
    let listed = cli.run(&["tokens", "list"]).ok();
    assert!(!listed.stdout.contains(&token), "{listed:?}");
    let row = listed.stdout.lines().find(|l| l.starts_with(&id)).unwrap();
    assert!(row.contains("ci bot") && row.contains("invoke") && row.contains(&instance));

    let as_bot = Cli::bare()
        .env("PLUGBOARD_SERVER", &host.url)
        .env("PLUGBOARD_TOKEN", &token);
    as_bot
        .run(&["invoke", &instance, "echo", r#"{"message": "bot"}"#])
        .ok();
    let out = as_bot.run(&["instances", "list"]).code(3);
    assert!(out.stderr.starts_with("error: FORBIDDEN: "), "{out:?}");
    cli.run(&["tokens", "create", "--name", "x", "--scope", "root"])
        .code(2);

    let out = cli.run(&["tokens", "revoke", &id]).ok();
    assert_eq!(out.stdout.trim(), format!("revoked token {id}"));
    let out = as_bot
        .run(&["invoke", &instance, "echo", r#"{"message": "bot"}"#])
        .code(3);
    assert!(out.stderr.starts_with("error: UNAUTHORIZED: "), "{out:?}");
    assert!(
        out.stderr.contains("PLUGBOARD_TOKEN was refused"),
        "{out:?}"
    );
}

#[test]
fn a_rotated_token_replaces_the_old_one() {
    let host = Host::start(&[]);
    let cli = Cli::for_host(&host);
    let instance = echo_instance(&cli);
    let minted = cli
        .run(&[
            "tokens",
            "create",
            "--name",
            "rotating",
            "--scope",
            "invoke",
            "--instance",
            &instance,
            "--json",
        ])
        .ok()
        .json();
    let old = minted["token"].as_str().unwrap();
    let rotated = cli
        .run(&["tokens", "rotate", minted["id"].as_str().unwrap(), "--json"])
        .ok()
        .json();
    let new = rotated["token"].as_str().unwrap();
    assert_ne!(new, old);
    assert_eq!(rotated["name"], "rotating");
    let call = |token: &str| {
        Cli::bare()
            .env("PLUGBOARD_SERVER", &host.url)
            .env("PLUGBOARD_TOKEN", token)
            .run(&["invoke", &instance, "echo", r#"{"message": "r"}"#])
    };
    call(new).ok();
    call(old).code(3);

    // Rotating the bootstrap token rewrites the data directory's file,
    // where the CLI finds it: the next command just works.
    let tokens = cli.run(&["tokens", "list", "--json"]).ok().json();
    let bootstrap = tokens["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "bootstrap admin")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let new = cli
        .run(&["tokens", "rotate", &bootstrap, "--quiet"])
        .ok()
        .stdout
        .trim()
        .to_owned();
    assert_ne!(new, host.token);
    let file = std::fs::read_to_string(host.data_dir.join("admin.token")).unwrap();
    assert_eq!(file.trim(), new);
    cli.run(&["tokens", "list"]).ok();
    cli.run(&["tokens", "list", "--token", &host.token]).code(3);
}

const DESK_SECRET: &str = "whsec-desk-cli-7Hq2";

fn desk_signature(body: &str) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(DESK_SECRET.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    format!(
        "X-Desk-Signature: sha256={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// Waits (bounded) until `jobs list --event` shows every job in `state`.
fn jobs_reach(cli: &Cli, event: &str, state: &str) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let list = cli
            .run(&["jobs", "list", "--event", event, "--json"])
            .ok()
            .json();
        let jobs = list["items"].as_array().unwrap().clone();
        if !jobs.is_empty() && jobs.iter().all(|j| j["state"] == state) {
            return jobs;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "jobs never became {state}: {jobs:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn webhooks_events_rules_and_jobs() {
    let host = Host::start(&["--jobs-max-attempts", "1", "--egress-retry-attempts", "1"]);
    let cli = Cli::for_host(&host);
    cli.run(&["connectors", "upload", DESK_WASM, "--quiet"])
        .ok();
    // The action's upstream is a closed port: every job dies, and can be
    // replayed.
    let config = format!(r#"{{"base_url": "http://127.0.0.1:{}"}}"#, closed_port());
    let creds = cli.write(
        "creds.json",
        &format!(r#"{{"webhook_secret": "{DESK_SECRET}"}}"#),
    );
    let creds = format!("@{}", creds.display());
    let mut ids = Vec::new();
    for name in ["source", "target"] {
        let out = cli
            .run(&[
                "instances",
                "create",
                "desk",
                "--name",
                name,
                "--config",
                &config,
                "--credentials",
                &creds,
                "--quiet",
            ])
            .ok();
        ids.push(out.stdout.trim().to_owned());
    }
    let (source, target) = (&ids[0], &ids[1]);

    let rule = json!({
        "name": "urgent tickets to chat",
        "trigger": { "instance": source, "kind": "ticket.created",
                     "conditions": [{ "path": "ticket.priority", "op": "gte", "value": 4 }] },
        "actions": [{ "instance": target, "method": "post_message",
                      "parameters": { "channel": "#urgent", "text": "Urgent: {{ ticket.subject }}" } }],
    });
    let saved = cli
        .run_with_stdin(&["rules", "create", "-", "--json"], Some(&rule.to_string()))
        .ok()
        .json();
    let rule_id = saved["id"].as_str().unwrap().to_owned();
    let mut renamed = rule.clone();
    renamed["name"] = json!("urgent tickets, renamed");
    let replaced = cli
        .run(&["rules", "replace", &rule_id, &renamed.to_string(), "--json"])
        .ok()
        .json();
    assert_eq!(replaced["name"], "urgent tickets, renamed");
    let listed = cli.run(&["rules", "list"]).ok().stdout;
    let row = listed.lines().find(|l| l.starts_with(&rule_id)).unwrap();
    assert!(
        row.contains("ticket.created") && row.contains("true"),
        "{row}"
    );
    let shown = cli.run(&["rules", "show", &rule_id]).ok().stdout;
    assert!(shown.contains("urgent tickets, renamed"), "{shown}");
    let bad = cli.run(&["rules", "create", r#"{"name": "x"}"#]).code(3);
    assert!(
        bad.stderr.starts_with("error: INVALID_REQUEST: "),
        "{bad:?}"
    );

    // A delivery with a wrong signature is refused; a signed one accepted.
    let body = json!({ "type": "ticket.created",
                       "ticket": { "id": 7, "priority": 5, "subject": "Disk full" } })
    .to_string();
    let out = cli
        .run(&[
            "webhook",
            "send",
            source,
            &body,
            "-H",
            "X-Desk-Signature: sha256=00",
        ])
        .code(3);
    assert!(
        out.stderr.starts_with("error: WEBHOOK_SIGNATURE_INVALID: "),
        "{out:?}"
    );
    let accepted = cli
        .run(&[
            "webhook",
            "send",
            source,
            &body,
            "-H",
            &desk_signature(&body),
            "-H",
            "X-Desk-Delivery: d-1",
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(accepted["status"], "ACCEPTED", "{accepted}");
    let event = accepted["events"][0].as_str().unwrap().to_owned();

    let events = cli
        .run(&["events", "list", "--instance", source, "--json"])
        .ok()
        .json();
    assert_eq!(events["items"][0]["id"], event.as_str(), "{events}");
    let table = cli
        .run(&["events", "list", "--kind", "ticket.created"])
        .ok()
        .stdout;
    assert!(table.lines().any(|l| l.starts_with(&event)), "{table}");
    let shown = cli.run(&["events", "show", &event, "--json"]).ok().json();
    assert_eq!(
        shown["payload"]["ticket"]["subject"], "Disk full",
        "{shown}"
    );

    let jobs = jobs_reach(&cli, &event, "dead");
    let job = jobs[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        jobs[0]["lastError"]["code"], "UPSTREAM_UNREACHABLE",
        "{jobs:?}"
    );
    let table = cli.run(&["jobs", "list", "--state", "dead"]).ok().stdout;
    let row = table.lines().find(|l| l.starts_with(&job)).unwrap();
    assert!(
        row.contains("dead") && row.contains("UPSTREAM_UNREACHABLE"),
        "{row}"
    );
    let shown = cli.run(&["jobs", "show", &job, "--json"]).ok().json();
    assert_eq!(shown["rule"], rule_id.as_str());
    let replayed = cli.run(&["jobs", "replay", &job, "--json"]).ok().json();
    assert_eq!(replayed["attempts"], 0, "{replayed}");
    let jobs = jobs_reach(&cli, &event, "dead");
    assert_eq!(jobs[0]["attempts"], 1, "{jobs:?}");

    let out = cli.run(&["rules", "delete", &rule_id]).ok();
    assert_eq!(out.stdout.trim(), format!("deleted rule {rule_id}"));
    assert_eq!(cli.run(&["rules", "list"]).ok().stdout.trim(), "(none)");
}

#[test]
fn the_oauth_connect_flow_from_the_command_line() {
    let host = Host::start(&[]);
    let cli = Cli::for_host(&host);
    cli.run(&["connectors", "upload", AUTH_OAUTH_WASM, "--quiet"])
        .ok();
    // The provider is a closed port: the flow starts, a refusal is
    // recorded, and a code cannot be exchanged.
    let provider = format!("http://127.0.0.1:{}", closed_port());
    let creds = cli.write(
        "client.json",
        r#"{"client_id": "cli-client", "client_secret": "cli-client-secret-9f"}"#,
    );
    let instance = cli
        .run(&[
            "instances",
            "create",
            "auth-oauth",
            "--name",
            "calendar",
            "--config",
            &json!({ "allowed": provider, "second": "http://127.0.0.1:9" }).to_string(),
            "--credentials",
            &format!("@{}", creds.display()),
            "--quiet",
        ])
        .ok()
        .stdout
        .trim()
        .to_owned();

    let start = |cli: &Cli| {
        cli.run(&[
            "oauth",
            "start",
            &instance,
            "--redirect-uri",
            "http://127.0.0.1:9/cb",
            "--json",
        ])
        .ok()
        .json()
    };
    let started = start(&cli);
    let url = started["authorizationUrl"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("{provider}/oauth/authorize?")),
        "{url}"
    );
    assert!(url.contains("client_id=cli-client"), "{url}");
    let state = started["state"].as_str().unwrap();
    let out = cli
        .run(&[
            "oauth",
            "callback",
            &instance,
            "--state",
            state,
            "--error",
            "access_denied",
        ])
        .code(3);
    assert!(out.stderr.starts_with("error: OAUTH_DENIED: "), "{out:?}");

    let started = start(&cli);
    let state = started["state"].as_str().unwrap();
    let out = cli
        .run(&[
            "oauth", "callback", &instance, "--state", state, "--code", "abc",
        ])
        .code(3);
    assert!(
        out.stderr.starts_with("error: OAUTH_TOKEN_ERROR: "),
        "{out:?}"
    );
    cli.run(&["oauth", "callback", &instance, "--state", state])
        .code(2);

    let out = cli.run(&["oauth", "disconnect", &instance]).ok();
    assert_eq!(
        out.stdout.trim(),
        format!("disconnected instance {instance}")
    );
}

#[test]
fn status_usage_and_metrics() {
    let host = Host::start(&[]);
    let cli = Cli::for_host(&host);
    let instance = echo_instance(&cli);
    cli.run(&["invoke", &instance, "echo", r#"{"message": "m"}"#])
        .ok();

    // `/healthz` is public: no token is sent, so a wrong one does not
    // matter.
    let status = Cli::bare()
        .env("PLUGBOARD_SERVER", &host.url)
        .env("PLUGBOARD_TOKEN", "pb_wrong")
        .run(&["status", "--json"])
        .ok()
        .json();
    assert_eq!(status["status"], "ok");

    let usage = cli.run(&["usage", "--window", "5m", "--json"]).ok().json();
    assert_eq!(usage["window"], "5m", "{usage}");
    assert_eq!(
        usage["instances"][0]["instance"],
        instance.as_str(),
        "{usage}"
    );
    assert_eq!(usage["instances"][0]["invocations"], 1, "{usage}");
    let out = cli.run(&["usage", "--window", "forever"]).code(3);
    assert!(
        out.stderr.starts_with("error: INVALID_REQUEST: "),
        "{out:?}"
    );

    let metrics = cli.run(&["metrics"]).ok().stdout;
    assert!(
        metrics.contains("plugboard_invocations_total{connector=\"echo@0.1.0\",method=\"echo\",code=\"SUCCESS\"} 1"),
        "{metrics}"
    );
}

#[test]
fn the_audit_log_filters_and_pages() {
    let host = Host::start(&[]);
    let cli = Cli::for_host(&host);
    let instance = echo_instance(&cli);

    // The instance's creation is in it; pages follow the cursor.
    let page = cli
        .run(&[
            "audit",
            "--resource",
            &format!("instance:{instance}"),
            "--json",
        ])
        .ok()
        .json();
    let items = page["items"].as_array().unwrap();
    assert!(
        items
            .iter()
            .any(|r| r["action"].as_str().is_some_and(|a| a.contains("create"))),
        "{page}"
    );
    let first = cli.run(&["audit", "--limit", "1", "--json"]).ok().json();
    let cursor = first["nextCursor"].as_str().expect("more than one record");
    let second = cli
        .run(&["audit", "--limit", "1", "--cursor", cursor, "--json"])
        .ok()
        .json();
    assert_ne!(second["items"][0]["id"], first["items"][0]["id"]);
    let table = cli.run(&["audit", "--limit", "1"]).ok().stdout;
    assert!(table.starts_with("AT"), "{table}");
    assert!(
        table.contains(&format!("more: --cursor {cursor}")),
        "{table}"
    );
}

#[test]
fn completions_are_printed_for_each_shell() {
    let cli = Cli::bare();
    let bash = cli.run(&["completions", "bash"]).ok().stdout;
    for word in ["plugboard", "instances", "invoke", "--json"] {
        assert!(bash.contains(word), "no {word} in the bash completions");
    }
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        assert!(!cli.run(&["completions", shell]).ok().stdout.is_empty());
    }
    cli.run(&["completions", "tcsh"]).code(2);
}

#[test]
fn the_token_never_appears_in_any_output() {
    let host = Host::start(&[]);
    let token = host.token.clone();
    let token_file = host.data_dir.join("admin.token");
    let instance = echo_instance(&Cli::for_host(&host));
    let closed = format!("http://127.0.0.1:{}", closed_port());

    let token_flag = ["--token", token.as_str()];
    let file_flag = ["--token-file", token_file.to_str().unwrap()];
    let ways: Vec<(Cli, Vec<&str>)> = vec![
        (Cli::for_host(&host), vec![]),
        (
            Cli::bare().env("PLUGBOARD_SERVER", &host.url),
            token_flag.to_vec(),
        ),
        (
            Cli::bare().env("PLUGBOARD_SERVER", &host.url),
            file_flag.to_vec(),
        ),
        (
            Cli::bare()
                .env("PLUGBOARD_SERVER", &host.url)
                .env("PLUGBOARD_TOKEN", &token),
            vec![],
        ),
    ];
    let commands: Vec<Vec<&str>> = vec![
        vec!["instances", "list", "-v"],
        vec!["instances", "list", "--json", "-v"],
        vec!["tokens", "list"],
        vec!["tokens", "list", "--json"],
        vec!["invoke", &instance, "echo", r#"{"message": "x"}"#, "-v"],
        vec![
            "invoke",
            &instance,
            "echo",
            r#"{"message": 1}"#,
            "-v",
            "--json",
        ],
        vec!["instances", "show", "inst_nope", "-v"],
        vec!["audit", "--json"],
        vec!["instances", "list", "--server", &closed, "-v"],
        vec!["instances", "list", "--nope"],
    ];
    let mut runs = 0;
    for (cli, extra) in &ways {
        for command in &commands {
            let args: Vec<&str> = command.iter().chain(extra.iter()).copied().collect();
            let out = cli.run(&args);
            assert!(
                !out.all().contains(&token),
                "token printed by {args:?}: {out:?}"
            );
            runs += 1;
        }
    }
    assert_eq!(runs, ways.len() * commands.len());

    // Nor when the server refuses it, nor when a config file holding it is
    // broken, nor when it is malformed.
    let wrong = "pb_wrong_but_secret_4b1d";
    let cli = Cli::bare().env("PLUGBOARD_SERVER", &host.url);
    let out = cli
        .run(&["instances", "list", "--token", wrong, "-v"])
        .code(3);
    assert!(!out.all().contains(wrong), "{out:?}");
    let broken = cli.write("broken.toml", &format!("token = \"{token}\nserver = [\n"));
    let out = cli
        .run(&[
            "instances",
            "list",
            "--cli-config",
            broken.to_str().unwrap(),
        ])
        .code(2);
    assert!(!out.all().contains(&token), "{out:?}");
    assert!(out.stderr.contains("invalid config file"), "{out:?}");
    let spaced = format!("{token} extra");
    let out = cli.run(&["instances", "list", "--token", &spaced]).code(2);
    assert!(!out.all().contains(&token), "{out:?}");
}

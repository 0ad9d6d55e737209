//! Running the suite: a private host in this process, a fake upstream per
//! example, and one check after another through the host's real API.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use http::StatusCode;
use serde_json::{Value, json};

use super::fixtures::{Example, Expect, Fixtures, UPSTREAM_PLACEHOLDER, Webhook};
use super::report::Report;
use super::upstream::FakeUpstream;
use crate::client::config::{Connection, Token};
use crate::client::http::{Api, Call, Reply};
use crate::config::{Overrides, Settings};
use crate::manifest::WebhookScheme;

/// An address the test host's egress policy refuses: loopback, but outside
/// the one loopback address (`127.0.0.1`) the test host allows.
const DENIED_BASE: &str = "http://127.0.0.2:9";

/// What to test.
#[derive(Debug, Clone)]
pub struct Options {
    /// The component file.
    pub component: PathBuf,
    /// The fixture file, if any.
    pub fixtures: Option<PathBuf>,
    /// Bound on each API exchange (an upload compiles the component).
    pub timeout: Duration,
}

/// Runs the suite. An `Err` means the suite itself could not run (no
/// such file, bad fixtures, the private host did not start); a failing
/// connector is an `Ok` report with failed checks.
pub async fn run(options: &Options) -> anyhow::Result<Report> {
    let bytes = std::fs::read(&options.component)
        .with_context(|| format!("reading {}", options.component.display()))?;
    let fixtures = options
        .fixtures
        .as_deref()
        .map(Fixtures::load)
        .transpose()?;
    let dir = TempDir::new()?;
    let overrides = Overrides {
        data_dir: Some(dir.0.clone()),
        listen: Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0))),
        egress_allow_cidrs: vec!["127.0.0.1/32".parse()?],
        audit_retention_days: Some(0),
        ..Overrides::default()
    };
    let mut settings = Settings::resolve(&overrides)?;
    // A throwaway vault key of its own, whatever the environment holds.
    settings.master_key = None;
    let running = crate::server::start(settings)
        .await
        .context("starting the test host")?;
    let token = std::fs::read_to_string(dir.0.join(crate::api::ADMIN_TOKEN_FILE))
        .context("reading the test host's admin token")?;
    let connection = Connection {
        server: url::Url::parse(&format!("http://{}", running.addr))?,
        token: Some(Token::new(&token, "the test host")?),
        token_source: None,
    };
    let mut suite = Suite {
        api: Api::new(connection, options.timeout, false),
        report: Report {
            component: options.component.display().to_string(),
            fixtures: options.fixtures.as_ref().map(|p| p.display().to_string()),
            ..Report::default()
        },
        answers: Vec::new(),
        instances: 0,
    };
    let outcome = suite.run(bytes, fixtures.as_ref()).await;
    let stopped = running.stop().await;
    outcome?;
    stopped?;
    Ok(suite.report)
}

/// A directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> anyhow::Result<Self> {
        let path =
            std::env::temp_dir().join(format!("plugboard-test-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Self(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Where and how webhook deliveries go.
struct Endpoint<'a> {
    instance: &'a str,
    scheme: &'a WebhookScheme,
    /// Signing secrets are looked up here.
    credentials: &'a std::collections::BTreeMap<String, String>,
    delivery_header: Option<&'a str>,
}

struct Suite {
    api: Api,
    report: Report,
    /// Every answer body, scanned for credential values at the end.
    answers: Vec<String>,
    instances: usize,
}

/// The uploaded connector.
struct Uploaded {
    id: String,
    manifest: Value,
}

impl Suite {
    async fn send(&mut self, call: Call) -> anyhow::Result<Reply> {
        let reply = self
            .api
            .send(call)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        self.answers
            .push(String::from_utf8_lossy(&reply.body).into_owned());
        Ok(reply)
    }

    async fn run(&mut self, bytes: Vec<u8>, fixtures: Option<&Fixtures>) -> anyhow::Result<()> {
        let Some(connector) = self.upload(bytes).await? else {
            return Ok(());
        };
        self.report
            .problems("manifest conventions", lint(&connector.manifest));
        let Some(fixtures) = fixtures else {
            self.report.skip(
                "examples",
                "no fixture file (plugboard-test.json): only the upload and the manifest were checked",
            );
            return Ok(());
        };
        self.test_connection(&connector, fixtures).await?;
        for example in &fixtures.examples {
            self.example(&connector, fixtures, example).await?;
        }
        self.denied_host(&connector, fixtures).await?;
        self.webhooks(&connector, fixtures).await?;
        self.secrets(fixtures);
        Ok(())
    }

    async fn upload(&mut self, bytes: Vec<u8>) -> anyhow::Result<Option<Uploaded>> {
        let started = Instant::now();
        let call = Call::post(&["connectors"])
            .header("content-type", "application/wasm")
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .bytes(bytes);
        let reply = self.send(call).await?;
        if !reply.status.is_success() {
            self.report.fail("upload", api_error(&reply));
            return Ok(None);
        }
        self.report.upload_ms = Some(started.elapsed().as_secs_f64() * 1000.0);
        let body: Value = serde_json::from_slice(&reply.body)?;
        let id = body["id"].as_str().unwrap_or_default().to_owned();
        let manifest = body["manifest"].clone();
        let methods = manifest["methods"].as_array().map_or(0, Vec::len);
        self.report.connector = Some(id.clone());
        self.report.pass(
            "upload: a component of the connector world with a valid manifest",
            Some(format!("{methods} method(s)")),
        );
        Ok(Some(Uploaded { id, manifest }))
    }

    /// Creates an instance whose `{upstream}` is `base`.
    async fn instance(
        &mut self,
        connector: &Uploaded,
        fixtures: &Fixtures,
        base: &str,
    ) -> anyhow::Result<Result<String, String>> {
        self.instances += 1;
        let body = json!({
            "connector": connector.id,
            "name": format!("conformance-{}", self.instances),
            "config": fixtures.config_for(base),
            "credentials": fixtures.credentials,
        });
        let reply = self.send(Call::post(&["instances"]).json(body)).await?;
        if !reply.status.is_success() {
            return Ok(Err(format!(
                "creating an instance from the fixtures' config and credentials failed: {}",
                api_error(&reply)
            )));
        }
        let body: Value = serde_json::from_slice(&reply.body)?;
        Ok(Ok(body["id"].as_str().unwrap_or_default().to_owned()))
    }

    async fn test_connection(
        &mut self,
        connector: &Uploaded,
        fixtures: &Fixtures,
    ) -> anyhow::Result<()> {
        let Some(t) = &fixtures.test_connection else {
            self.report
                .skip("test-connection", "the fixtures have no `testConnection`");
            return Ok(());
        };
        let up = FakeUpstream::start().await?;
        up.expect(&t.upstream);
        let id = match self.instance(connector, fixtures, &up.url()).await? {
            Ok(id) => id,
            Err(e) => {
                self.report.fail("test-connection", e);
                return Ok(());
            }
        };
        let reply = self
            .send(Call::post(&["instances", &id, "test"]).query("outbound", "true"))
            .await?;
        let mut problems = compare(&reply, &t.expect, "/data/message");
        problems.extend(up.finish());
        self.report.problems("test-connection", problems);
        Ok(())
    }

    async fn example(
        &mut self,
        connector: &Uploaded,
        fixtures: &Fixtures,
        example: &Example,
    ) -> anyhow::Result<()> {
        let name = format!("example {}: {}", example.method, example.name);
        // A fake (and so an upstream address) per example: the host's
        // budgets and circuits are per upstream, so a scripted 429 or
        // 5xx in one example cannot refuse the next one's requests.
        let up = FakeUpstream::start().await?;
        up.expect(&example.upstream);
        let id = match self.instance(connector, fixtures, &up.url()).await? {
            Ok(id) => id,
            Err(e) => {
                self.report.fail(name, e);
                return Ok(());
            }
        };
        // The host checks a result against the method's result schema
        // (`INVALID_CONNECTOR_OUTPUT` otherwise), so a result that arrives
        // needs only comparing.
        let reply = self.invoke(&id, example).await?;
        let mut problems = compare(&reply, &example.expect, "/data");
        problems.extend(up.finish());
        self.report.problems(name, problems);
        Ok(())
    }

    async fn invoke(&mut self, instance: &str, example: &Example) -> anyhow::Result<Reply> {
        self.send(
            Call::post(&["instances", instance, "methods", &example.method])
                .query("outbound", "true")
                .json(json!({ "parameters": example.params })),
        )
        .await
    }

    async fn denied_host(
        &mut self,
        connector: &Uploaded,
        fixtures: &Fixtures,
    ) -> anyhow::Result<()> {
        let name = "denied host: a refused request is an error, not a trap";
        let calling: Vec<&Example> = fixtures
            .examples
            .iter()
            .filter(|e| !e.upstream.is_empty())
            .collect();
        if calling.is_empty() {
            self.report.skip(name, "no example calls an upstream");
            return Ok(());
        }
        if !fixtures.uses_upstream() {
            self.report.skip(
                name,
                format!("the fixtures' config does not use {UPSTREAM_PLACEHOLDER}"),
            );
            return Ok(());
        }
        let id = match self.instance(connector, fixtures, DENIED_BASE).await? {
            Ok(id) => id,
            Err(e) => {
                self.report.fail(name, e);
                return Ok(());
            }
        };
        let mut problems = Vec::new();
        for example in calling {
            let reply = self.invoke(&id, example).await?;
            let code = error_code(&reply);
            if code.as_deref() != Some("HOST_DENIED") {
                problems.push(format!(
                    "{} ({}): expected error HOST_DENIED, got {}",
                    example.name,
                    example.method,
                    describe(&reply)
                ));
            }
        }
        self.report.problems(name, problems);
        Ok(())
    }

    async fn webhooks(&mut self, connector: &Uploaded, fixtures: &Fixtures) -> anyhow::Result<()> {
        let declared = &connector.manifest["webhook"];
        if declared.is_null() {
            if fixtures.webhooks.is_empty() {
                self.report
                    .skip("webhooks", "the manifest declares no webhook settings");
            } else {
                self.report.fail(
                    "webhooks",
                    "the fixtures have webhooks but the manifest declares no webhook settings",
                );
            }
            return Ok(());
        }
        let scheme: WebhookScheme = serde_json::from_value(declared["scheme"].clone())
            .context("reading the manifest's webhook scheme")?;
        let delivery_header = declared["deliveryIdHeader"].as_str().map(str::to_owned);
        // Deliveries are signed with the fixtures' credentials, as the
        // platform would sign them with the instance's.
        let secret = |field: &str| fixtures.credentials.get(field).cloned();
        if let Err(e) = crate::webhook::sign::sign(&scheme, b"", &secret, 0) {
            self.report.fail(
                "webhooks",
                format!("cannot sign deliveries: {e} in the fixtures' credentials"),
            );
            return Ok(());
        }
        let up = FakeUpstream::start().await?;
        let id = match self.instance(connector, fixtures, &up.url()).await? {
            Ok(id) => id,
            Err(e) => {
                self.report.fail("webhooks", e);
                return Ok(());
            }
        };
        let endpoint = Endpoint {
            instance: &id,
            scheme: &scheme,
            credentials: &fixtures.credentials,
            delivery_header: delivery_header.as_deref(),
        };
        let mut seen = 0;
        for (n, webhook) in fixtures.webhooks.iter().enumerate() {
            let body = match (&webhook.body, &webhook.body_text) {
                (Some(json), _) => json.to_string().into_bytes(),
                (None, Some(text)) => text.clone().into_bytes(),
                (None, None) => Vec::new(),
            };
            let reply = self
                .deliver(
                    &endpoint,
                    &format!("conformance-{n}"),
                    &webhook.headers,
                    webhook.body.is_some(),
                    body,
                )
                .await?;
            let events = self.events(&id).await?;
            let fresh = events.get(seen..).unwrap_or_default().to_vec();
            seen = events.len();
            let problems = compare_webhook(&reply, webhook, &fresh);
            self.report
                .problems(format!("webhook: {}", webhook.name), problems);
        }
        // Whatever arrives, a connector answers; it never traps.
        let garbage = b"\xff\xfe\x00 this is not JSON {".to_vec();
        let reply = self
            .deliver(
                &endpoint,
                "conformance-garbage",
                &Default::default(),
                false,
                garbage,
            )
            .await?;
        let name = "webhook: a delivery of garbage bytes is an error or an answer, not a trap";
        match error_code(&reply) {
            Some(code) if is_fault(&code) => self.report.fail(name, describe(&reply)),
            _ => self.report.pass(name, Some(describe(&reply))),
        }
        Ok(())
    }

    /// Signs `body` as the platform would and delivers it.
    async fn deliver(
        &mut self,
        endpoint: &Endpoint<'_>,
        delivery: &str,
        extra_headers: &std::collections::BTreeMap<String, String>,
        json: bool,
        body: Vec<u8>,
    ) -> anyhow::Result<Reply> {
        let secret = |field: &str| endpoint.credentials.get(field).cloned();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs() as i64;
        let signature = crate::webhook::sign::sign(endpoint.scheme, &body, &secret, now)?;
        let mut call = Call::post(&["webhooks", endpoint.instance]).without_token();
        let content_type = if json {
            "application/json"
        } else {
            "application/octet-stream"
        };
        let mut headers: Vec<(String, String)> = vec![("content-type".into(), content_type.into())];
        if let Some(h) = endpoint.delivery_header {
            headers.push((h.to_owned(), delivery.to_owned()));
        }
        headers.extend(extra_headers.iter().map(|(k, v)| (k.clone(), v.clone())));
        headers.extend(signature);
        for (k, v) in &headers {
            call = call.header(k, v).map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        self.send(call.bytes(body)).await
    }

    async fn events(&mut self, instance: &str) -> anyhow::Result<Vec<Value>> {
        let reply = self
            .send(
                Call::get(&["events"])
                    .query("instance", instance)
                    .query("limit", 1000),
            )
            .await?;
        let body: Value = serde_json::from_slice(&reply.body).unwrap_or_default();
        Ok(body["items"].as_array().cloned().unwrap_or_default())
    }

    /// No credential value may appear in any answer of the run.
    fn secrets(&mut self, fixtures: &Fixtures) {
        let name = "secrets: no credential value appears in any answer";
        let leaked: Vec<String> = fixtures
            .credentials
            .iter()
            // Very short values would match by accident.
            .filter(|(_, v)| v.len() >= 6)
            .filter(|(_, v)| self.answers.iter().any(|a| a.contains(v.as_str())))
            .map(|(k, _)| format!("the value of credential field {k:?} appears in an answer"))
            .collect();
        self.report.problems(name, leaked);
    }
}

/// Whether an error code means the connector faulted (trapped, ran out of
/// time or memory, or produced output the host cannot use) rather than
/// answering with an error.
fn is_fault(code: &str) -> bool {
    matches!(
        code,
        "CONNECTOR_TRAPPED"
            | "TIMEOUT_ERROR"
            | "MEMORY_LIMIT"
            | "INVALID_CONNECTOR_OUTPUT"
            | "INTERNAL_ERROR"
    )
}

/// The API error code of a non-2xx answer.
fn error_code(reply: &Reply) -> Option<String> {
    if reply.status.is_success() {
        return None;
    }
    serde_json::from_slice::<Value>(&reply.body)
        .ok()?
        .pointer("/error/code")?
        .as_str()
        .map(str::to_owned)
}

/// `status CODE: message` of an error answer, or `status` and the body.
fn api_error(reply: &Reply) -> String {
    let body: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
    match (body.pointer("/error/code"), body.pointer("/error/message")) {
        (Some(code), Some(message)) => format!(
            "{} {}: {}",
            reply.status.as_u16(),
            code.as_str().unwrap_or_default(),
            message.as_str().unwrap_or_default()
        ),
        _ => format!(
            "{} {}",
            reply.status.as_u16(),
            String::from_utf8_lossy(&reply.body)
                .chars()
                .take(300)
                .collect::<String>()
        ),
    }
}

/// What an answer was, in one line.
fn describe(reply: &Reply) -> String {
    if reply.status.is_success() {
        let body: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
        let data = body.get("data").unwrap_or(&body);
        format!(
            "{} with {}",
            reply.status.as_u16(),
            truncate(&data.to_string())
        )
    } else {
        let error = api_error(reply);
        match hint(&error) {
            Some(hint) => format!("{error}\nhint: {hint}"),
            None => error,
        }
    }
}

/// How to fix the traps each guest toolchain produces for the usual
/// mistakes, recognised by the toolchain's own message.
fn hint(error: &str) -> Option<&'static str> {
    const HINTS: &[(&str, &str)] = &[
        (
            "invalid variant tag value",
            "a JavaScript export threw something that is not a value of the WIT `error` variant; \
             throw {tag: 'invalid-input' | 'not-found' | 'temporary' | …, val: …} (docs/authoring/js.md)",
        ),
        (
            "Python function threw an unexpected exception",
            "a Python export raised an exception other than Err(Error_…(…)); catch it and raise \
             e.g. Err(Error_Temporary(str(e))) (docs/authoring/python.md)",
        ),
        (
            "KeyError(<class 'str'>)",
            "a Python export raised Err(…) with a value that is not an Error_… case of the WIT \
             `error` variant (docs/authoring/python.md)",
        ),
        (
            "does not match its result schema",
            "the method returned JSON its result schema does not allow; fix the result or the schema",
        ),
        (
            "panicked at",
            "the connector panicked; return an error value instead of panicking",
        ),
    ];
    HINTS
        .iter()
        .find(|(needle, _)| error.contains(needle))
        .map(|(_, hint)| *hint)
}

fn truncate(s: &str) -> String {
    if s.chars().count() <= 300 {
        s.to_owned()
    } else {
        format!("{}…", s.chars().take(300).collect::<String>())
    }
}

/// How an answer differs from the expectation. `pointer` locates the
/// result in a success answer.
fn compare(reply: &Reply, expect: &Expect, pointer: &str) -> Vec<String> {
    let mut problems = Vec::new();
    match (&expect.result, &expect.error) {
        (Some(want), _) => {
            if !reply.status.is_success() {
                problems.push(format!("expected a result, got {}", describe(reply)));
                return problems;
            }
            let body: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
            let got = body.pointer(pointer).cloned().unwrap_or(Value::Null);
            if &got != want {
                problems.push(format!(
                    "result differs: expected {}, got {}",
                    truncate(&want.to_string()),
                    truncate(&got.to_string())
                ));
            }
        }
        (None, Some(code)) => {
            let got = error_code(reply);
            if got.as_deref() != Some(code.as_str()) {
                problems.push(format!("expected error {code}, got {}", describe(reply)));
            } else if let Some(part) = &expect.message_contains {
                let body: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
                let message = body
                    .pointer("/error/message")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                if !message.contains(part.as_str()) {
                    problems.push(format!(
                        "the error message {message:?} does not contain {part:?}"
                    ));
                }
            }
        }
        (None, None) => problems.push("the fixture expects nothing".into()),
    }
    problems
}

fn compare_webhook(reply: &Reply, webhook: &Webhook, events: &[Value]) -> Vec<String> {
    let want = &webhook.expect;
    let mut problems = Vec::new();
    if let Some(code) = &want.error {
        if error_code(reply).as_deref() != Some(code.as_str()) {
            problems.push(format!("expected error {code}, got {}", describe(reply)));
        }
    } else {
        let status = want.status.unwrap_or(200);
        if reply.status != StatusCode::from_u16(status).unwrap_or(StatusCode::OK) {
            problems.push(format!("expected status {status}, got {}", describe(reply)));
        }
    }
    if events.len() != want.events.len() {
        problems.push(format!(
            "expected {} event(s), got {}: {}",
            want.events.len(),
            events.len(),
            truncate(
                &events
                    .iter()
                    .map(|e| format!(
                        "{}/{}",
                        e["kind"].as_str().unwrap_or("?"),
                        e["sourceId"].as_str().unwrap_or("?")
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        ));
        return problems;
    }
    for (got, want) in events.iter().zip(&want.events) {
        if got["kind"] != want.kind.as_str() || got["sourceId"] != want.id.as_str() {
            problems.push(format!(
                "expected event {}/{}, got {}/{}",
                want.kind,
                want.id,
                got["kind"].as_str().unwrap_or("?"),
                got["sourceId"].as_str().unwrap_or("?")
            ));
        }
        if let Some(payload) = &want.payload
            && &got["payload"] != payload
        {
            problems.push(format!(
                "event {}: payload differs: expected {}, got {}",
                want.id,
                truncate(&payload.to_string()),
                truncate(&got["payload"].to_string())
            ));
        }
    }
    problems
}

/// Conventions the host does not enforce at upload, but every good
/// connector follows.
fn lint(manifest: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let empty = Vec::new();
    let methods = manifest["methods"].as_array().unwrap_or(&empty);
    if methods.is_empty() && manifest["webhook"].is_null() {
        problems.push("the connector has neither methods nor webhook settings".into());
    }
    if manifest["description"]
        .as_str()
        .is_none_or(|d| d.trim().is_empty())
    {
        problems.push("the manifest has no description".into());
    }
    for m in methods {
        let name = m["name"].as_str().unwrap_or("");
        let snake = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !snake {
            problems.push(format!(
                "method {name:?}: names are snake_case (`send_message`)"
            ));
        }
        if m["description"]
            .as_str()
            .is_none_or(|d| d.trim().is_empty())
        {
            problems.push(format!("method {name:?} has no description"));
        }
        let params = &m["paramsSchema"];
        if params["type"] != "object" {
            problems.push(format!(
                "method {name:?}: the params schema must describe an object (`\"type\": \"object\"`)"
            ));
        }
    }
    let credential_fields: Vec<&str> = manifest["credentialSchema"]["properties"]
        .as_object()
        .map(|p| p.keys().map(String::as_str).collect())
        .unwrap_or_default();
    for field in named_credential_fields(manifest) {
        if !credential_fields.contains(&field.as_str()) {
            problems.push(format!(
                "credential field {field:?} is used by the auth or webhook settings but not declared in the credential schema"
            ));
        }
    }
    problems
}

/// Credential fields the manifest's auth and webhook settings read.
fn named_credential_fields(manifest: &Value) -> Vec<String> {
    let mut fields = Vec::new();
    let scheme = &manifest["auth"]["scheme"];
    if scheme["type"] == "bearer"
        && let Some(f) = scheme["tokenField"].as_str()
    {
        fields.push(f.to_owned());
    }
    if let Some(f) = manifest["webhook"]["scheme"]["secretField"].as_str() {
        fields.push(f.to_owned());
    }
    fields
}

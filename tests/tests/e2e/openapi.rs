//! The OpenAPI description against the real host.
//!
//! `/openapi.json` must be a valid OpenAPI 3.1 document (checked against the
//! official JSON Schema, vendored in `tests/fixtures/openapi-3.1/`) and must
//! match the routes: a walker calls every operation the spec lists on a host
//! with real connectors, instances, rules, events, jobs and tokens — without
//! a token, with an invalid body, with made-up ids, and as it should be
//! called — and fails on a status the operation does not document, on a
//! body its schema does not describe (a wrong type, a code the response
//! does not list, or a field the schema leaves out), and on a method a path
//! answers that the spec does not list.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use hmac::Mac as _;
use plugboard_tests::{AUTH_BEARER_WASM, AUTH_OAUTH_WASM, DESK_WASM, ECHO_WASM};
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{Host, serve_loopback};

/// The official OpenAPI 3.1 schema (see the README next to it).
const OAS_SCHEMA: &str = include_str!("../../fixtures/openapi-3.1/schema.json");

/// The desk connector's webhook secret.
const SECRET: &str = "whsec-walker-Tq2Vb8";

async fn fetch_spec(host: &Host) -> Value {
    let resp = host
        .client
        .get(format!("{}/openapi.json", host.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    resp.json().await.unwrap()
}

#[tokio::test]
async fn the_spec_is_valid_openapi_3_1() {
    let host = Host::start(&[]);
    let spec = fetch_spec(&host).await;

    let version = spec["openapi"].as_str().unwrap();
    let patch = version
        .strip_prefix("3.1.")
        .unwrap_or_else(|| panic!("{version}"));
    assert!(patch.parse::<u32>().is_ok(), "{version}");
    assert_eq!(spec["info"]["version"], host.healthz().await["version"]);

    let schema: Value = serde_json::from_str(OAS_SCHEMA).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&spec)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "not OpenAPI 3.1: {errors:#?}");
    // The schema has teeth: a document with a malformed operation fails.
    let mut broken = spec.clone();
    broken["paths"]["/healthz"]["get"]["responses"] = json!({ "200": { "content": {} } });
    assert!(
        !validator.is_valid(&broken),
        "a response without description passed"
    );

    // What the JSON Schema cannot see: path templates and parameters agree,
    // operation ids are unique, every component schema compiles.
    let mut ids = HashSet::new();
    for op in operations(&spec) {
        let templated: HashSet<String> = op
            .path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .map(str::to_owned)
            .collect();
        let declared: HashSet<String> = op.doc["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["in"] == "path")
            .map(|p| {
                assert_eq!(p["required"], true, "{} {}: {p}", op.method, op.path);
                p["name"].as_str().unwrap().to_owned()
            })
            .collect();
        assert_eq!(
            templated, declared,
            "{} {}: path parameters",
            op.method, op.path
        );
        let id = op.doc["operationId"].as_str().unwrap();
        assert!(ids.insert(id.to_owned()), "operationId {id} twice");
    }
    let checker = Checker::new(&spec);
    for name in spec["components"]["schemas"].as_object().unwrap().keys() {
        checker.validator(&json!({ "$ref": format!("#/components/schemas/{name}") }));
    }

    // The human page embeds the same document.
    let page = host
        .client
        .get(format!("{}/docs", host.url))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let page = page.text().await.unwrap();
    assert!(page.contains("api-reference"), "{page}");
    assert!(page.contains("\"operationId\":\"invokeMethod\""), "{page}");
}

/// One operation of the spec.
struct Op {
    /// Lowercase, as in the spec.
    method: String,
    path: String,
    doc: Value,
}

impl Op {
    fn name(&self) -> String {
        format!("{} {}", self.method.to_uppercase(), self.path)
    }

    fn needs_token(&self) -> bool {
        self.doc.get("security").is_some()
    }

    /// The media type of its request body, if it takes one.
    fn body_media(&self) -> Option<&str> {
        let content = self.doc["requestBody"]["content"].as_object()?;
        assert_eq!(content.len(), 1, "{}: one body media type", self.name());
        content.keys().next().map(String::as_str)
    }
}

const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn operations(spec: &Value) -> Vec<Op> {
    let mut ops = Vec::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, doc) in item.as_object().unwrap() {
            assert!(METHODS.contains(&method.as_str()), "{method} {path}");
            ops.push(Op {
                method: method.clone(),
                path: path.clone(),
                doc: doc.clone(),
            });
        }
    }
    ops
}

/// What the host answered.
struct Answer {
    status: u16,
    content_type: Option<String>,
    body: bytes::Bytes,
}

impl Answer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Checks answers against the spec.
struct Checker {
    spec: Value,
    /// `components/schemas` as `$defs`, for standalone validators.
    defs: Value,
}

impl Checker {
    fn new(spec: &Value) -> Checker {
        Checker {
            spec: spec.clone(),
            defs: rebase(&spec["components"]["schemas"]),
        }
    }

    /// A validator for a schema of the spec (its `$ref`s resolved).
    fn validator(&self, schema: &Value) -> jsonschema::Validator {
        let mut root = rebase(schema);
        root["$schema"] = json!("https://json-schema.org/draft/2020-12/schema");
        root["$defs"] = self.defs.clone();
        jsonschema::validator_for(&root)
            .unwrap_or_else(|e| panic!("schema does not compile: {e}: {schema}"))
    }

    /// Whether `value` is valid against `schema` and documents every field.
    fn conforms(&self, schema: &Value, value: &Value) -> Result<(), String> {
        let errors: Vec<String> = self
            .validator(schema)
            .iter_errors(value)
            .map(|e| format!("{e} at {}", e.instance_path()))
            .collect();
        if !errors.is_empty() {
            return Err(format!("does not match its schema: {errors:?}"));
        }
        let mut extra = Vec::new();
        undocumented(&self.spec, &[schema], value, "", &mut extra);
        if !extra.is_empty() {
            return Err(format!(
                "has fields its schema does not document: {extra:?}"
            ));
        }
        Ok(())
    }

    /// The answer is documented for `op`: its status, its media type, and
    /// (JSON) its body. Returns the JSON body.
    fn check(&self, op: &Op, answer: &Answer) -> Result<Option<Value>, String> {
        let documented = &op.doc["responses"][answer.status.to_string()];
        if !documented.is_object() {
            return Err(format!("status {} is not documented", answer.status));
        }
        let content = documented.get("content").and_then(Value::as_object);
        if answer.body.is_empty() {
            return match content {
                None => Ok(None),
                Some(_) => Err(format!("{} is documented with a body", answer.status)),
            };
        }
        let content = content.ok_or_else(|| {
            format!(
                "{} is documented without a body, answered {}",
                answer.status,
                answer.text()
            )
        })?;
        let media = essence(answer.content_type.as_deref().unwrap_or_default());
        let documented_media = content
            .iter()
            .find(|(k, _)| essence(k) == media)
            .map(|(_, v)| v);
        let Some(documented_media) = documented_media else {
            return Err(format!(
                "{} answered {media:?}, documented {:?}",
                answer.status,
                content.keys().collect::<Vec<_>>()
            ));
        };
        if media != "application/json" {
            return Ok(None);
        }
        let value: Value = serde_json::from_slice(&answer.body)
            .map_err(|e| format!("not JSON ({e}): {}", answer.text()))?;
        self.conforms(&documented_media["schema"], &value)
            .map_err(|e| format!("{} body {value} {e}", answer.status))?;
        if answer.status >= 400 {
            let codes = &documented["x-error-codes"];
            let listed = codes
                .as_array()
                .is_some_and(|c| c.contains(&value["error"]["code"]));
            if !listed {
                return Err(format!(
                    "code {} is not among the documented {codes}",
                    value["error"]["code"]
                ));
            }
        }
        Ok(Some(value))
    }
}

/// A media type without its parameters (`text/html; charset=utf-8` →
/// `text/html`).
fn essence(media: &str) -> String {
    media
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// `schema` with its `#/components/schemas/` references pointing at
/// `#/$defs/`.
fn rebase(schema: &Value) -> Value {
    serde_json::from_str(
        &schema
            .to_string()
            .replace("#/components/schemas/", "#/$defs/"),
    )
    .unwrap()
}

/// Collects the fields of `value` no schema in `schemas` names (dotted
/// paths into `out`). Compositions count as the union of their members;
/// free-form objects (no `properties`) document everything.
fn undocumented(spec: &Value, schemas: &[&Value], value: &Value, at: &str, out: &mut Vec<String>) {
    let mut flat = Vec::new();
    for s in schemas {
        flatten(spec, s, &mut flat);
    }
    match value {
        Value::Object(fields) => {
            let candidates: Vec<&Value> = flat.into_iter().filter(|s| admits_object(s)).collect();
            let free_form = candidates
                .iter()
                .any(|s| s.get("properties").is_none() && s.get("additionalProperties").is_none());
            if candidates.is_empty() || free_form {
                return;
            }
            for (key, v) in fields {
                let here = format!("{at}.{key}");
                let mut member: Vec<&Value> = candidates
                    .iter()
                    .filter_map(|s| s.get("properties")?.get(key))
                    .collect();
                if member.is_empty() {
                    member = candidates
                        .iter()
                        .filter_map(|s| s.get("additionalProperties").filter(|a| a.is_object()))
                        .collect();
                }
                if member.is_empty() {
                    out.push(here);
                } else {
                    undocumented(spec, &member, v, &here, out);
                }
            }
        }
        Value::Array(items) => {
            let item_schemas: Vec<&Value> = flat.iter().filter_map(|s| s.get("items")).collect();
            for (i, v) in items.iter().enumerate() {
                undocumented(spec, &item_schemas, v, &format!("{at}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// `schema` with references resolved and compositions expanded.
fn flatten<'a>(spec: &'a Value, schema: &'a Value, out: &mut Vec<&'a Value>) {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let target = spec
            .pointer(r.trim_start_matches('#'))
            .unwrap_or_else(|| panic!("dangling $ref {r}"));
        flatten(spec, target, out);
        return;
    }
    let mut composed = false;
    for key in ["allOf", "oneOf", "anyOf"] {
        for member in schema
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            composed = true;
            flatten(spec, member, out);
        }
    }
    if !composed || schema.get("properties").is_some() {
        out.push(schema);
    }
}

/// Whether a schema may describe an object.
fn admits_object(schema: &Value) -> bool {
    match &schema["type"] {
        Value::Null => true,
        Value::String(t) => t == "object",
        Value::Array(ts) => ts.iter().any(|t| t == "object"),
        _ => false,
    }
}

/// A request to make for an operation, without its path.
#[derive(Clone, Default)]
struct Case {
    /// `?…`, or empty.
    query: String,
    /// Media type and bytes.
    body: Option<(String, Vec<u8>)>,
    headers: Vec<(String, String)>,
    /// The path to call instead of the operation's (already filled in).
    path: Option<String>,
}

impl Case {
    fn json(body: Value) -> Case {
        Case {
            body: Some(("application/json".into(), body.to_string().into_bytes())),
            ..Case::default()
        }
    }

    fn query(mut self, query: &str) -> Case {
        self.query = query.to_owned();
        self
    }

    fn at(mut self, path: String) -> Case {
        self.path = Some(path);
        self
    }
}

/// A fake OAuth provider on 127.0.0.1: issues tokens for any code, accepts
/// revocations.
async fn provider() -> (String, tokio::sync::oneshot::Sender<()>) {
    let issued = std::sync::Arc::new(AtomicU32::new(0));
    let app = axum::Router::new()
        .route(
            "/oauth/token",
            axum::routing::post(move || {
                let n = issued.fetch_add(1, Ordering::Relaxed);
                async move {
                    axum::Json(json!({
                        "access_token": format!("at-{n}-walker"),
                        "refresh_token": format!("rt-{n}-walker"),
                        "token_type": "Bearer",
                        "expires_in": 3600,
                    }))
                }
            }),
        )
        .route("/oauth/revoke", axum::routing::post(|| async { "" }));
    serve_loopback(app).await
}

/// A host with one of everything the API names, and the ids to fill paths
/// with.
struct World {
    host: Host,
    checker: Checker,
    /// An uploaded connector without instances (to delete).
    spare: String,
    echo_connector: String,
    echo: String,
    desk: String,
    oauth: String,
    rule: String,
    event: String,
    job: String,
    token: String,
    /// A second token, for rotation (which replaces its id).
    rotated: String,
    deliveries: AtomicU32,
    _provider: tokio::sync::oneshot::Sender<()>,
}

impl World {
    async fn build() -> World {
        let host = Host::start(&[]);
        let (provider_url, provider) = provider().await;
        let mut ids = Vec::new();
        for wasm in [AUTH_BEARER_WASM, ECHO_WASM, DESK_WASM, AUTH_OAUTH_WASM] {
            let (status, body) = host.upload(wasm).await;
            assert!(status.is_success(), "{body}");
            ids.push(body["id"].as_str().unwrap().to_owned());
        }
        let create = |connector: &str, config: Value, credentials: Value| {
            let body = json!({
                "connector": connector, "name": "walker",
                "config": config, "credentials": credentials,
            });
            async {
                let (status, body) = host.post("/instances", body).await;
                assert_eq!(status, 201, "{body}");
                body["id"].as_str().unwrap().to_owned()
            }
        };
        let echo = create(&ids[1], json!({}), json!({})).await;
        // Its messages go to the provider, which has no such route: a
        // call that reaches an upstream and fails there.
        let desk = create(
            &ids[2],
            json!({ "base_url": provider_url }),
            json!({ "webhook_secret": SECRET }),
        )
        .await;
        let oauth = create(
            &ids[3],
            json!({ "allowed": provider_url, "second": "http://127.0.0.1:9" }),
            json!({ "client_id": "walker-client", "client_secret": "walker-secret" }),
        )
        .await;
        let spec = fetch_spec(&host).await;
        let mut world = World {
            host,
            checker: Checker::new(&spec),
            spare: ids[0].clone(),
            echo_connector: ids[1].clone(),
            echo,
            desk,
            oauth,
            rule: String::new(),
            event: String::new(),
            job: String::new(),
            token: String::new(),
            rotated: String::new(),
            deliveries: AtomicU32::new(0),
            _provider: provider,
        };
        let (status, body) = world.host.post("/rules", world.rule_body()).await;
        assert_eq!(status, 201, "{body}");
        world.rule = body["id"].as_str().unwrap().to_owned();
        let (status, body) = world
            .host
            .post(
                "/tokens",
                json!({ "name": "walker", "scope": "invoke", "instances": [world.echo] }),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        world.token = body["id"].as_str().unwrap().to_owned();
        let (status, body) = world
            .host
            .post("/tokens", json!({ "name": "to rotate", "scope": "admin" }))
            .await;
        assert_eq!(status, 201, "{body}");
        world.rotated = body["id"].as_str().unwrap().to_owned();
        // A delivery → an event → a job whose action fails for good → dead.
        let answer = world
            .send(
                "post",
                &format!("/v1/webhooks/{}", world.desk),
                &world.delivery(),
                true,
            )
            .await;
        assert_eq!(answer.status, 200, "{}", answer.text());
        let accepted: Value = serde_json::from_slice(&answer.body).unwrap();
        world.event = accepted["events"][0].as_str().unwrap().to_owned();
        world.job = world.dead_job().await;
        // The desk instance has called an upstream: its health and stats
        // have something to show.
        let (status, body) = world
            .host
            .invoke(&world.desk, "post_message", world.message())
            .await;
        assert_eq!(status, 404, "{body}");
        world
    }

    fn message(&self) -> Value {
        json!({ "channel": "#walk", "text": "walked" })
    }

    fn rule_body(&self) -> Value {
        json!({
            "name": "walker",
            "trigger": { "instance": self.desk, "kind": "ticket.created" },
            "actions": [{
                "instance": self.echo, "method": "fail",
                "parameters": { "kind": "permanent", "message": "{{ ticket.subject }}" },
            }],
        })
    }

    /// A signed delivery of a new ticket.
    fn delivery(&self) -> Case {
        let n = self.deliveries.fetch_add(1, Ordering::Relaxed);
        let body = json!({ "type": "ticket.created", "ticket": { "id": n, "subject": "walked" } })
            .to_string();
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
        mac.update(body.as_bytes());
        let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        Case {
            body: Some(("application/json".into(), body.into_bytes())),
            headers: vec![
                ("x-desk-signature".into(), signature),
                ("x-desk-delivery".into(), format!("walk-{n}")),
            ],
            ..Case::default()
        }
    }

    /// Waits (bounded) for the event's job to be dead; returns its id.
    async fn dead_job(&self) -> String {
        let started = Instant::now();
        loop {
            let (_, body) = self.host.get(&format!("/jobs?event={}", self.event)).await;
            if let Some(job) = body["items"].as_array().and_then(|j| j.first())
                && job["state"] == "dead"
            {
                return job["id"].as_str().unwrap().to_owned();
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "the job never died: {body}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A fresh OAuth `state` of the OAuth instance.
    async fn oauth_state(&self) -> String {
        let (status, body) = self
            .host
            .post(
                &format!("/instances/{}/oauth2/start", self.oauth),
                json!({ "redirectUri": "https://app.example/cb" }),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["state"].as_str().unwrap().to_owned()
    }

    /// The id a path parameter stands for.
    fn param(&self, path: &str, parent: &str, name: &str) -> String {
        match (parent, name) {
            ("connectors", "id") => self.spare.clone(),
            ("instances", "id") if path.contains("/oauth2") => self.oauth.clone(),
            ("instances", "id") => self.echo.clone(),
            ("methods", "method") => "echo".into(),
            ("tokens", "id") if path.ends_with("/rotate") => self.rotated.clone(),
            ("tokens", "id") => self.token.clone(),
            ("events", "id") => self.event.clone(),
            ("rules", "id") => self.rule.clone(),
            ("jobs", "id") => self.job.clone(),
            ("webhooks", "id") => self.desk.clone(),
            _ => panic!("no value for {{{name}}} in {path}: teach World::param"),
        }
    }

    /// `path` with its parameters filled in: real ids, or made-up ones.
    fn fill(&self, path: &str, made_up: bool) -> String {
        let segments: Vec<&str> = path.split('/').collect();
        segments
            .iter()
            .enumerate()
            .map(
                |(i, s)| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    Some(name) if made_up => format!("made_up_{name}"),
                    Some(name) => self.param(path, segments[i - 1], name),
                    None => (*s).to_owned(),
                },
            )
            .collect::<Vec<_>>()
            .join("/")
    }

    /// How to call `op` so that it succeeds.
    async fn happy(&self, op: &Op) -> Case {
        let case = match (op.method.as_str(), op.path.as_str()) {
            ("post", "/v1/connectors") => Case {
                body: Some(("application/wasm".into(), std::fs::read(ECHO_WASM).unwrap())),
                ..Case::default()
            },
            ("put", "/v1/connectors/{id}/rate-limit") => {
                Case::json(json!({ "rateLimit": { "requests": 50, "perMs": 60000, "burst": 5 } }))
            }
            ("post", "/v1/instances") => Case::json(json!({
                "connector": "echo", "name": "walked", "config": { "greeting": "hi" },
                "limits": { "timeoutMs": 5000, "allowedHosts": [] },
            })),
            ("patch", "/v1/instances/{id}") => Case::json(json!({ "name": "walked" })),
            ("put", "/v1/instances/{id}/credentials") => {
                Case::json(json!({ "credentials": {}, "expiresAt": "2099-01-01T00:00:00Z" }))
            }
            ("post", "/v1/instances/{id}/test") => Case::default().query("?outbound=true"),
            ("post", "/v1/instances/{id}/methods/{method}") => Case {
                headers: vec![("idempotency-key".into(), "walk-1".into())],
                ..Case::json(json!({ "parameters": { "message": "hi", "data": [1] } }))
                    .query("?outbound=true")
            },
            ("post", "/v1/instances/{id}/oauth2/start") => {
                Case::json(json!({ "redirectUri": "https://app.example/cb" }))
            }
            ("post", "/v1/instances/{id}/oauth2/callback") => {
                Case::json(json!({ "code": "c-1", "state": self.oauth_state().await }))
            }
            ("get", "/oauth2/callback") => {
                Case::default().query(&format!("?code=c-2&state={}", self.oauth_state().await))
            }
            ("post", "/v1/tokens") => Case::json(json!({ "name": "walked", "scope": "admin" })),
            ("post", "/v1/rules") | ("put", "/v1/rules/{id}") => Case::json(self.rule_body()),
            ("post", "/v1/webhooks/{id}") => self.delivery(),
            ("get", "/v1/events") => Case::default().query("?limit=1"),
            ("get", "/v1/jobs") => Case::default().query("?state=dead"),
            _ => Case::default(),
        };
        assert_eq!(
            case.body.is_some(),
            op.body_media().is_some(),
            "{}: teach World::happy its request body",
            op.name()
        );
        case
    }

    /// More documented answers worth seeing, besides the probes.
    fn extras(&self, op: &Op) -> Vec<Case> {
        let invoke = |method: &str, params: Value| {
            Case::json(json!({ "parameters": params }))
                .query("?outbound=true")
                .at(format!("/v1/instances/{}/methods/{method}", self.echo))
        };
        match (op.method.as_str(), op.path.as_str()) {
            ("post", "/v1/instances/{id}/methods/{method}") => {
                let mut cases: Vec<Case> = [
                    "invalid_input",
                    "unauthorized",
                    "not_found",
                    "rate_limited",
                    "upstream",
                    "temporary",
                    "permanent",
                    "config",
                ]
                .iter()
                .map(|kind| invoke("fail", json!({ "kind": kind, "message": "walked" })))
                .collect();
                cases.push(invoke("nope", json!({})));
                cases.push(invoke("echo", json!({ "message": 1 })));
                // The happy call's key again: replayed; with other
                // parameters: a conflict.
                for message in ["hi", "other"] {
                    let mut case = invoke("echo", json!({ "message": message, "data": [1] }));
                    case.headers = vec![("idempotency-key".into(), "walk-1".into())];
                    cases.push(case);
                }
                cases.push(invoke("echo", json!({ "message": "hi" })).query("?outbound=maybe"));
                // Through the broker to an upstream that refuses.
                cases.push(
                    Case::json(json!({ "parameters": self.message() }))
                        .query("?outbound=true")
                        .at(format!("/v1/instances/{}/methods/post_message", self.desk)),
                );
                cases
            }
            ("get", "/v1/instances/{id}/health") => {
                vec![Case::default().at(format!("/v1/instances/{}/health", self.desk))]
            }
            ("get", "/v1/instances/{id}/stats") => vec![
                Case::default().at(format!("/v1/instances/{}/stats", self.desk)),
                Case::default().query("?window=5m"),
                Case::default().query("?window=7d"),
                Case::default().query("?window=fortnight"),
            ],
            ("get", "/v1/usage") => vec![
                Case::default().query("?window=24h"),
                Case::default().query("?window=0m"),
            ],
            ("get", "/v1/audit") => vec![
                Case::default().query("?action=instance.*&limit=2"),
                Case::default().query(&format!("?actor={}", self.token)),
                Case::default().query("?resource=instance&since=2020-01-01T00:00:00Z"),
                Case::default().query("?limit=0"),
                Case::default().query("?action=nonsense"),
            ],
            ("get", "/oauth2/callback") => vec![Case::default().query("?state=made_up&code=c-4")],
            ("get", "/v1/events") => vec![Case::default().query("?limit=0")],
            ("get", "/v1/jobs") => vec![Case::default().query("?state=sleeping")],
            // Still has instances.
            ("delete", "/v1/connectors/{id}") => {
                vec![Case::default().at(format!("/v1/connectors/{}", self.echo_connector))]
            }
            ("post", "/v1/jobs/{id}/replay") => {
                vec![Case::default().at(format!("/v1/jobs/{}/replay", self.job))]
            }
            _ => Vec::new(),
        }
    }

    /// Sends `case` to `path` (`case.path` wins), with the admin token or
    /// none.
    async fn send(&self, method: &str, path: &str, case: &Case, token: bool) -> Answer {
        let path = case.path.as_deref().unwrap_or(path);
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let mut req = self
            .host
            .client
            .request(method, format!("{}{path}{}", self.host.url, case.query));
        if token {
            req = req.bearer_auth(&self.host.token);
        }
        for (k, v) in &case.headers {
            req = req.header(k, v);
        }
        if let Some((media, bytes)) = &case.body {
            req = req.header("content-type", media).body(bytes.clone());
        }
        let resp = req.send().await.unwrap();
        Answer {
            status: resp.status().as_u16(),
            content_type: resp
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_owned()),
            body: resp.bytes().await.unwrap(),
        }
    }

    /// Sends and checks; returns the answer.
    async fn call(&self, op: &Op, what: &str, path: &str, case: &Case, token: bool) -> Answer {
        let answer = self.send(&op.method, path, case, token).await;
        if let Err(e) = self.checker.check(op, &answer) {
            panic!(
                "{} ({what}, {}{}): {e}\nanswer: {} {}",
                op.name(),
                case.path.as_deref().unwrap_or(path),
                case.query,
                answer.status,
                answer.text()
            );
        }
        answer
    }

    /// Every probe of one operation.
    async fn walk(&self, op: &Op) {
        let path = self.fill(&op.path, false);
        let happy = self.happy(op).await;
        if let (Some(media), Some((_, bytes))) = (op.body_media(), &happy.body)
            && media == "application/json"
        {
            let body: Value = serde_json::from_slice(bytes).unwrap();
            let schema = &op.doc["requestBody"]["content"][media]["schema"];
            if let Err(e) = self.checker.conforms(schema, &body) {
                panic!("{}: the request body {body} {e}", op.name());
            }
        }

        if op.needs_token() {
            let answer = self.call(op, "no token", &path, &happy, false).await;
            assert_eq!(answer.status, 401, "{}: {}", op.name(), answer.text());
        }
        if let Some(media) = op.body_media() {
            let invalid = Case {
                body: Some((
                    if media == "*/*" {
                        "application/json"
                    } else {
                        media
                    }
                    .to_owned(),
                    b"{\"half\": ".to_vec(),
                )),
                headers: Vec::new(),
                ..happy.clone()
            };
            let answer = self.call(op, "invalid body", &path, &invalid, true).await;
            match media {
                "application/json" | "application/wasm" => {
                    assert_eq!(answer.status, 400, "{}: {}", op.name(), answer.text());
                }
                // Webhooks: an unsigned body is refused as such.
                _ => assert!((400..500).contains(&answer.status), "{}", op.name()),
            }
        }
        if op.path.contains('{') {
            let made_up = self.fill(&op.path, true);
            let case = match (op.method.as_str(), op.path.as_str()) {
                // The state, not the path, names the instance there.
                ("post", "/v1/instances/{id}/oauth2/callback") => {
                    Case::json(json!({ "code": "c-3", "state": "made_up_state" }))
                }
                _ => happy.clone(),
            };
            let answer = self.call(op, "made-up ids", &made_up, &case, true).await;
            let expected = if op.path.ends_with("/oauth2/callback") {
                400
            } else {
                404
            };
            assert_eq!(answer.status, expected, "{}: {}", op.name(), answer.text());
        }
        let answer = self.call(op, "happy", &path, &happy, true).await;
        assert!(
            (200..300).contains(&answer.status),
            "{}: {} {}",
            op.name(),
            answer.status,
            answer.text()
        );
        for case in self.extras(op) {
            self.call(op, "extra", &path, &case, true).await;
        }
    }
}

#[tokio::test]
async fn every_operation_answers_only_what_it_documents() {
    let world = World::build().await;
    let ops = operations(&world.checker.spec);
    // Deletions last, so every other operation finds what it names.
    let (deletes, others): (Vec<&Op>, Vec<&Op>) = ops.iter().partition(|o| o.method == "delete");
    for op in others.into_iter().chain(deletes) {
        world.walk(op).await;
    }

    // The walker has teeth: an answer the spec does not describe fails.
    let show = ops
        .iter()
        .find(|o| o.method == "get" && o.path == "/v1/rules/{id}")
        .unwrap();
    let missing = world
        .send("get", "/v1/rules/made_up", &Case::default(), true)
        .await;
    assert_eq!(missing.status, 404);
    let mut undocumented = Op {
        method: show.method.clone(),
        path: show.path.clone(),
        doc: show.doc.clone(),
    };
    undocumented.doc["responses"]
        .as_object_mut()
        .unwrap()
        .remove("404");
    assert!(world.checker.check(&undocumented, &missing).is_err());
    let healthz = world.send("get", "/healthz", &Case::default(), false).await;
    let mut spec = world.checker.spec.clone();
    spec["components"]["schemas"]["Healthz"]["properties"]
        .as_object_mut()
        .unwrap()
        .remove("runtime");
    let lax = Checker::new(&spec);
    let op = operations(&spec)
        .into_iter()
        .find(|o| o.path == "/healthz")
        .unwrap();
    let err = lax.check(&op, &healthz).unwrap_err();
    assert!(err.contains(".runtime"), "{err}");
}

#[tokio::test]
async fn no_path_answers_a_method_the_spec_does_not_list() {
    let host = Host::start(&[]);
    let spec = fetch_spec(&host).await;
    let world_paths = spec["paths"].as_object().unwrap();
    let mut probes = 0;
    for (path, item) in world_paths {
        let listed: Vec<&str> = item
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        // Path parameters need no real ids: routing picks the method first.
        let url = format!(
            "{}{}",
            host.url,
            path.replace('{', "made_up_").replace('}', "")
        );
        for method in METHODS {
            // HEAD is GET without the body (RFC 9110), so a GET route
            // answers it.
            if listed.contains(method) || (*method == "head" && listed.contains(&"get")) {
                continue;
            }
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let resp = host
                .client
                .request(m, &url)
                .bearer_auth(&host.token)
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            let body = resp.text().await.unwrap();
            assert_eq!(status, 405, "{method} {path} is not in the spec: {body}");
            if *method != "head" {
                let body: Value = serde_json::from_str(&body).unwrap();
                assert_eq!(body["error"]["code"], "METHOD_NOT_ALLOWED", "{body}");
            }
            probes += 1;
        }
    }
    assert!(probes > 100, "only {probes} probes");
}

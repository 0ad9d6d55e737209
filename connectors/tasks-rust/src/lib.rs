//! `tasks`: the example connector of `docs/authoring/tasks-example.md`, in
//! Rust with the `plugboard-guest` SDK.
//!
//! It talks to "Tasks", a small REST API: `echo` (no network), `get_task`,
//! `create_task`, a connection test against `/me`, and task webhooks
//! authenticated with a shared secret. The same connector exists in
//! JavaScript, Python and C; all four pass the same `plugboard-test.json`.
//!
//! What the host does for this connector, so the code below does not:
//! - validates every method's params against the schemas declared here;
//! - adds `Authorization: Bearer <api_token>` to requests towards
//!   `{api_base}` (the connector never sees the token);
//! - refuses requests to any host but `{api_base}`;
//! - checks the `x-tasks-secret` header of webhook deliveries against the
//!   `webhook_secret` credential and drops redeliveries by `x-tasks-delivery`.
//!
//! `plugboard new <name> --lang rust` starts a project from this crate and
//! replaces the name in exactly one place: [`CONNECTOR_NAME`].

mod api;
mod webhook;

use plugboard_guest::http::Request;
use plugboard_guest::prelude::*;

use api::Task;

/// The connector's name, as the host and its API know it.
const CONNECTOR_NAME: &str = "tasks";

/// One paragraph for operators.
const DESCRIPTION: &str =
    "Example connector for the Tasks API: reads and creates tasks, receives task webhooks.";

/// Non-secret settings of an instance.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(
    dead_code,
    reason = "declared for the schema; read with config::get_as"
)]
struct TasksConfig {
    /// Base URL of the Tasks API
    #[serde(default = "api::default_api_base")]
    #[schemars(extend("format" = "uri"))]
    api_base: String,
}

/// Secrets. The connector never sees their values: the host applies
/// `api_token` per the manifest's `auth` and checks `webhook_secret` itself.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code, reason = "read by the host, declared for the schema")]
struct TasksCredentials {
    /// API token
    api_token: String,
    /// Shared secret Tasks sends with webhooks
    // Optional, but a plain `String` rather than `Option<String>` so the
    // schema says `"type": "string"`, not `["string", "null"]`. The
    // `skip_serializing_if` keeps schemars from publishing `"default": ""`:
    // an empty default secret must never be filled in for the operator.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    webhook_secret: String,
}

/// Parameters and result of `echo`.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Echo {
    message: String,
}

/// Parameters of `get_task`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct GetTask {
    #[schemars(length(min = 1))]
    id: String,
}

/// Parameters of `create_task`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct CreateTask {
    #[schemars(length(min = 1))]
    title: String,
}

/// The connector.
struct Tasks;

impl Connector for Tasks {
    fn manifest() -> Manifest {
        Manifest::new(CONNECTOR_NAME, env!("CARGO_PKG_VERSION"), DESCRIPTION)
            .method::<Echo, Echo>("echo", "Returns `message` unchanged; no network.")
            .method::<GetTask, Task>("get_task", "Fetches one task by id.")
            .method::<CreateTask, Task>("create_task", "Creates a task.")
            .config_schema::<TasksConfig>()
            .credential_schema::<TasksCredentials>()
            .host("{api_base}")
            .auth(Auth::new(AuthScheme::Bearer("api_token".into())).host("{api_base}"))
            .webhook(
                WebhookConfig::new(WebhookScheme::SharedSecret(SharedSecret {
                    header: "x-tasks-secret".into(),
                    secret_field: "webhook_secret".into(),
                }))
                .delivery_id_header("x-tasks-delivery"),
            )
    }

    fn invoke(method: &str, params: Params) -> Result<Output> {
        match method {
            "echo" => params.call(echo),
            "get_task" => params.call(get_task),
            "create_task" => params.call(create_task),
            other => Err(Error::unknown_method(other)),
        }
    }

    fn test_connection() -> Result<String> {
        let response = api::send(Request::get(api::url("/me")?))?;
        let name = api::name(&response)?;
        Ok(format!("connected as {name}"))
    }

    fn handle_webhook(request: WebhookRequest) -> Result<WebhookOutcome> {
        // The host has already checked `x-tasks-secret`; only the body is
        // left to read. No response: the host answers 200.
        let event = webhook::event(&request.body)?;
        Ok(WebhookOutcome::new().event(event))
    }
}

plugboard_guest::export_connector!(Tasks);

/// `echo`: the message back, no network.
fn echo(p: Echo) -> Result<Echo> {
    if p.message.is_empty() {
        return Err(Error::invalid_input("message must not be empty"));
    }
    Ok(p)
}

/// `get_task`: `GET {api_base}/tasks/{id}`.
fn get_task(p: GetTask) -> Result<Task> {
    // The id is one path segment: `a/b` must not reach `/tasks/a/b`.
    let url = api::url(&format!("/tasks/{}", api::segment("id", &p.id)?))?;
    api::task(&api::send(Request::get(url))?)
}

/// `create_task`: `POST {api_base}/tasks` with `{"title": …}`.
fn create_task(p: CreateTask) -> Result<Task> {
    let request = Request::post(api::url("/tasks")?).json(&json!({ "title": p.title }));
    api::task(&api::send(request)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_matches_the_spec() {
        let m = Tasks::manifest();
        assert_eq!(m.name, CONNECTOR_NAME);
        assert_eq!(m.version, "0.1.0");
        assert_eq!(m.description, DESCRIPTION);
        assert_eq!(m.hosts, ["{api_base}"]);
        assert_eq!(m.auth.hosts, ["{api_base}"]);
        assert!(m.auth.static_headers.is_empty());
        assert!(matches!(&m.auth.scheme, AuthScheme::Bearer(f) if f == "api_token"));
        assert!(m.rate_limit.is_none());
        let webhook = m.webhook.as_ref().expect("webhook settings");
        assert_eq!(
            webhook.delivery_id_header.as_deref(),
            Some("x-tasks-delivery")
        );
        assert!(matches!(
            &webhook.scheme,
            WebhookScheme::SharedSecret(s) if s.header == "x-tasks-secret" && s.secret_field == "webhook_secret"
        ));

        let names: Vec<&str> = m.methods.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["echo", "get_task", "create_task"]);
    }

    /// The generated schemas say what the spec's hand-written ones say
    /// (schemars adds `$schema`, `title` and descriptions, which is fine).
    #[test]
    fn schemas_match_the_spec() {
        let m = Tasks::manifest();
        let closed = |schema: &Value, field: &str, min_length: Option<u64>| {
            assert_eq!(schema["type"], "object", "{schema}");
            assert_eq!(schema["required"], json!([field]), "{schema}");
            assert_eq!(schema["additionalProperties"], false, "{schema}");
            let props = schema["properties"].as_object().expect("properties");
            assert_eq!(props.len(), 1, "{schema}");
            assert_eq!(props[field]["type"], "string", "{schema}");
            assert_eq!(
                props[field].get("minLength").and_then(Value::as_u64),
                min_length
            );
        };
        closed(&m.methods[0].params_schema, "message", None);
        closed(&m.methods[0].result_schema, "message", None);
        closed(&m.methods[1].params_schema, "id", Some(1));
        closed(&m.methods[2].params_schema, "title", Some(1));

        for method in &m.methods[1..] {
            let task = &method.result_schema;
            assert_eq!(task["type"], "object");
            assert_eq!(task["required"], json!(["id", "title", "done"]));
            assert_eq!(task["properties"]["id"]["type"], "string");
            assert_eq!(task["properties"]["title"]["type"], "string");
            assert_eq!(task["properties"]["done"]["type"], "boolean");
            // The spec leaves the task object open.
            assert!(task.get("additionalProperties").is_none(), "{task}");
        }

        let config = &m.config_schema;
        assert_eq!(config["type"], "object");
        assert_eq!(config["additionalProperties"], false);
        assert!(
            config.get("required").is_none_or(|r| r == &json!([])),
            "{config}"
        );
        let api_base = &config["properties"]["api_base"];
        assert_eq!(api_base["type"], "string");
        assert_eq!(api_base["format"], "uri");
        assert_eq!(api_base["default"], "https://tasks.example.com/api");
        assert_eq!(api_base["description"], "Base URL of the Tasks API");

        let credentials = &m.credential_schema;
        assert_eq!(credentials["type"], "object");
        assert_eq!(credentials["additionalProperties"], false);
        assert_eq!(credentials["required"], json!(["api_token"]));
        let props = &credentials["properties"];
        assert_eq!(props["api_token"]["type"], "string");
        assert_eq!(props["api_token"]["description"], "API token");
        assert_eq!(props["webhook_secret"]["type"], "string");
        assert!(
            props["webhook_secret"].get("default").is_none(),
            "{credentials}"
        );
        assert_eq!(
            props["webhook_secret"]["description"],
            "Shared secret Tasks sends with webhooks"
        );
    }

    #[test]
    fn echo_returns_the_message_and_refuses_empty_ones() {
        let out = Tasks::invoke("echo", Params::new(r#"{"message":"hi"}"#)).expect("echo");
        assert_eq!(out.value(), Ok(json!({ "message": "hi" })));
        let err = Tasks::invoke("echo", Params::new(r#"{"message":""}"#)).expect_err("empty");
        assert_eq!(err, Error::invalid_input("message must not be empty"));
    }

    #[test]
    fn unknown_methods_are_invalid_input() {
        let err = Tasks::invoke("nope", Params::new("{}")).expect_err("unknown");
        assert_eq!(err, Error::invalid_input("unknown method `nope`"));
    }
}

//! Building the manifest `describe` returns.
//!
//! Schemas are generated from Rust types with `schemars` so the types the
//! connector deserializes and the schemas the host validates against cannot
//! drift apart. The builder keeps schemas as `serde_json::Value` and only
//! turns them into JSON text when converting to the WIT record.

use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use serde_json::Value;

use crate::types as wit;
use crate::types::{Auth, AuthScheme, TemplateParam, WebhookConfig, WebhookScheme};

/// JSON Schema (draft 2020-12) of `T`, as the host expects it.
///
/// Nested types land in `$defs` and are referenced with `$ref`; doc comments
/// become `description`s.
pub fn schema_for<T: JsonSchema + ?Sized>() -> Value {
    SchemaSettings::draft2020_12()
        .into_generator()
        .into_root_schema_for::<T>()
        .to_value()
}

/// The schema used for config and credentials when the connector declares
/// none: an empty object, so an operator cannot store values nothing reads.
fn empty_object_schema() -> Value {
    serde_json::json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {},
        "additionalProperties": false,
    })
}

/// One method of a connector.
#[derive(Debug, Clone, PartialEq)]
pub struct Method {
    /// Name used in the API path, `snake_case`.
    pub name: String,
    /// One sentence for operators and generated docs.
    pub description: String,
    /// JSON Schema of the params object.
    pub params_schema: Value,
    /// JSON Schema of the result.
    pub result_schema: Value,
}

/// What a connector says about itself; built with chained methods.
///
/// ```
/// use plugboard_guest::prelude::*;
///
/// #[derive(Deserialize, JsonSchema)]
/// struct Params { text: String }
///
/// let m = Manifest::new("demo", "0.1.0", "A demo.")
///     .method::<Params, String>("shout", "Upper-cases `text`.")
///     .host("https://api.example.com");
/// assert_eq!(m.methods[0].params_schema["required"][0], "text");
/// ```
#[derive(Debug, Clone)]
pub struct Manifest {
    /// Connector name: lowercase letters, digits, `-` and `_`.
    pub name: String,
    /// Semantic version, usually `env!("CARGO_PKG_VERSION")`.
    pub version: String,
    /// One paragraph for operators.
    pub description: String,
    /// Methods `invoke` accepts.
    pub methods: Vec<Method>,
    /// JSON Schema of the instance config (non-secret settings).
    pub config_schema: Value,
    /// JSON Schema of the instance credentials (secret values).
    pub credential_schema: Value,
    /// How the host authenticates outbound requests.
    pub auth: Auth,
    /// URL patterns the connector may call, e.g. `https://api.example.com`,
    /// `https://{domain}.example.com` or `{base_url}` (config placeholders).
    pub hosts: Vec<String>,
    /// Webhook verification, when the connector handles webhooks.
    pub webhook: Option<WebhookConfig>,
    /// The platform's rate limit per credential (see [`Manifest::rate_limit`]).
    pub rate_limit: Option<wit::RateBudget>,
}

impl Manifest {
    /// A manifest with no methods, no config, no credentials, no auth and no
    /// hosts (so no egress at all).
    pub fn new(
        name: impl Into<String>,
        version: impl Into<String>,
        description: impl Into<String>,
    ) -> Self {
        Self {
            name: name.into(),
            version: version.into(),
            description: description.into(),
            methods: Vec::new(),
            config_schema: empty_object_schema(),
            credential_schema: empty_object_schema(),
            auth: Auth::none(),
            hosts: Vec::new(),
            webhook: None,
            rate_limit: None,
        }
    }

    /// Adds a method whose params deserialize into `P` and whose result
    /// serializes from `R`. Use [`crate::NoParams`] for methods without
    /// parameters and [`Value`] for "any JSON".
    pub fn method<P: JsonSchema, R: JsonSchema>(
        self,
        name: impl Into<String>,
        description: impl Into<String>,
    ) -> Self {
        self.method_with_schemas(name, description, schema_for::<P>(), schema_for::<R>())
    }

    /// Adds a method with hand-written schemas.
    pub fn method_with_schemas(
        mut self,
        name: impl Into<String>,
        description: impl Into<String>,
        params_schema: Value,
        result_schema: Value,
    ) -> Self {
        self.methods.push(Method {
            name: name.into(),
            description: description.into(),
            params_schema,
            result_schema,
        });
        self
    }

    /// Declares the instance config schema from `T`.
    pub fn config_schema<T: JsonSchema>(self) -> Self {
        self.config_schema_value(schema_for::<T>())
    }

    /// Declares the instance config schema as a JSON value.
    pub fn config_schema_value(mut self, schema: Value) -> Self {
        self.config_schema = schema;
        self
    }

    /// Declares the credentials schema from `T`.
    pub fn credential_schema<T: JsonSchema>(self) -> Self {
        self.credential_schema_value(schema_for::<T>())
    }

    /// Declares the credentials schema as a JSON value.
    pub fn credential_schema_value(mut self, schema: Value) -> Self {
        self.credential_schema = schema;
        self
    }

    /// Allows calls to one more host pattern.
    pub fn host(mut self, pattern: impl Into<String>) -> Self {
        self.hosts.push(pattern.into());
        self
    }

    /// Allows calls to several host patterns.
    pub fn hosts<I, S>(mut self, patterns: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.hosts.extend(patterns.into_iter().map(Into::into));
        self
    }

    /// Sets how the host authenticates outbound requests.
    ///
    /// If `auth.hosts` is empty and the scheme is not `none`, the credential
    /// goes to every host in [`Manifest::hosts`] (see [`Manifest::into_wit`]).
    pub fn auth(mut self, auth: Auth) -> Self {
        self.auth = auth;
        self
    }

    /// Declares webhook verification.
    pub fn webhook(mut self, webhook: WebhookConfig) -> Self {
        self.webhook = Some(webhook);
        self
    }

    /// Declares the platform's rate limit per credential: `requests` per
    /// `per`, up to `burst` back to back. The host makes every instance that
    /// calls the same upstream with the same credential share one budget of
    /// this rate (operators can override it), queueing requests over it.
    ///
    /// ```
    /// # use plugboard_guest::Manifest;
    /// // Slack's Tier 3: 50 requests per minute, short bursts allowed.
    /// let m = Manifest::new("slack", "1.0.0", "Slack")
    ///     .rate_limit(50, std::time::Duration::from_secs(60), 5);
    /// assert_eq!(m.rate_limit.unwrap().per_ms, 60_000);
    /// ```
    pub fn rate_limit(mut self, requests: u32, per: std::time::Duration, burst: u32) -> Self {
        self.rate_limit = Some(wit::RateBudget {
            requests,
            per_ms: u32::try_from(per.as_millis()).unwrap_or(u32::MAX),
            burst,
        });
        self
    }

    /// The WIT record `describe` returns.
    ///
    /// An auth scheme without explicit hosts applies to all manifest hosts:
    /// a credential that goes nowhere is never what the author meant, and the
    /// manifest hosts are the only hosts reachable anyway.
    pub fn into_wit(self) -> wit::Manifest {
        let mut auth = self.auth;
        if auth.hosts.is_empty() && !matches!(auth.scheme, AuthScheme::None) {
            auth.hosts = self.hosts.clone();
        }
        wit::Manifest {
            name: self.name,
            version: self.version,
            description: self.description,
            methods: self
                .methods
                .into_iter()
                .map(|m| wit::MethodInfo {
                    name: m.name,
                    description: m.description,
                    params_schema: m.params_schema.to_string(),
                    result_schema: m.result_schema.to_string(),
                })
                .collect(),
            config_schema: self.config_schema.to_string(),
            credential_schema: self.credential_schema.to_string(),
            auth,
            hosts: self.hosts,
            webhook: self.webhook,
            rate_limit: self.rate_limit,
        }
    }
}

impl Auth {
    /// No authentication.
    pub fn none() -> Self {
        Self::new(AuthScheme::None)
    }

    /// Authentication with `scheme`, for the manifest's hosts unless
    /// [`Auth::host`] narrows it.
    pub fn new(scheme: AuthScheme) -> Self {
        Self {
            scheme,
            hosts: Vec::new(),
            static_headers: Vec::new(),
        }
    }

    /// Restricts the credential to one more host pattern.
    pub fn host(mut self, pattern: impl Into<String>) -> Self {
        self.hosts.push(pattern.into());
        self
    }

    /// Adds a header the host sets on every request to the auth hosts;
    /// `template` may use `{credential_field}` placeholders.
    pub fn static_header(mut self, name: impl Into<String>, template: impl Into<String>) -> Self {
        self.static_headers.push(TemplateParam::new(name, template));
        self
    }
}

impl Default for Auth {
    fn default() -> Self {
        Self::none()
    }
}

impl TemplateParam {
    /// A name with a value template such as `Token token={api_key}`.
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            value: value.into(),
        }
    }
}

impl WebhookConfig {
    /// Webhooks verified with `scheme`, without delivery de-duplication.
    pub fn new(scheme: WebhookScheme) -> Self {
        Self {
            scheme,
            delivery_id_header: None,
        }
    }

    /// Names the header carrying a unique delivery id (e.g.
    /// `X-GitHub-Delivery`), so the host drops redeliveries.
    pub fn delivery_id_header(mut self, header: impl Into<String>) -> Self {
        self.delivery_id_header = Some(header.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NoParams;

    #[derive(serde::Deserialize, JsonSchema)]
    #[allow(dead_code, reason = "only the schema matters")]
    struct P {
        /// The text.
        text: String,
        count: Option<u32>,
    }

    #[test]
    fn schemas_are_draft_2020_12() {
        let s = schema_for::<P>();
        assert_eq!(s["$schema"], "https://json-schema.org/draft/2020-12/schema");
        assert_eq!(s["type"], "object");
        assert_eq!(s["required"], serde_json::json!(["text"]));
        assert_eq!(s["properties"]["text"]["description"], "The text.");
    }

    #[test]
    fn no_params_is_a_closed_empty_object() {
        let s = schema_for::<NoParams>();
        assert_eq!(s["type"], "object");
        assert_eq!(s["additionalProperties"], false);
    }

    #[test]
    fn auth_without_hosts_covers_manifest_hosts() {
        let m = Manifest::new("x", "0.1.0", "d")
            .host("https://api.example.com")
            .auth(Auth::new(AuthScheme::Bearer("token".into())))
            .into_wit();
        assert_eq!(m.auth.hosts, vec!["https://api.example.com".to_owned()]);

        let m = Manifest::new("x", "0.1.0", "d")
            .host("https://api.example.com")
            .into_wit();
        assert!(m.auth.hosts.is_empty());
    }

    #[test]
    fn converts_schemas_to_json_text() {
        let m = Manifest::new("x", "0.1.0", "d")
            .method::<P, Value>("m", "does m")
            .into_wit();
        let parsed: Value = serde_json::from_str(&m.methods[0].params_schema).expect("valid JSON");
        assert_eq!(parsed["type"], "object");
        let config: Value = serde_json::from_str(&m.config_schema).expect("valid JSON");
        assert_eq!(config["additionalProperties"], false);
    }
}

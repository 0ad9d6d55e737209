//! The connector manifest in API form (serde, camelCase) and its validation.
//!
//! The guest returns the manifest through the WIT `describe` export; the
//! runtime converts it into [`Manifest`], and [`Manifest::validate`] checks
//! everything the host relies on later (names, versions, JSON Schemas, host
//! patterns) so a bad connector is refused at upload, not at first use.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::egress::HostPattern;

/// Why a manifest was refused.
#[derive(Debug, thiserror::Error)]
#[error("invalid manifest: {field}: {message}")]
pub struct ManifestError {
    /// Dotted path of the offending field, e.g. `methods[2].paramsSchema`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> ManifestError {
    ManifestError {
        field: field.into(),
        message: message.into(),
    }
}

/// A string default with `{key}` placeholders filled from `config`, or
/// `None` when a placeholder has no acceptable value (see
/// [`Manifest::config_with_defaults`]). `{{` and `}}` are literal braces.
fn render_default(template: &str, config: &Value) -> Option<String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find(['{', '}']) {
        out.push_str(&rest[..start]);
        let tail = &rest[start..];
        if let Some(after) = tail.strip_prefix("{{") {
            out.push('{');
            rest = after;
        } else if let Some(after) = tail.strip_prefix("}}") {
            out.push('}');
            rest = after;
        } else if let Some(after) = tail.strip_prefix('{') {
            let end = after.find('}')?;
            let value = config.get(&after[..end])?.as_str()?;
            let label_chars = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '.';
            if value.is_empty() || !value.chars().all(label_chars) {
                return None;
            }
            out.push_str(value);
            rest = &after[end + 1..];
        } else {
            // A lone `}`: keep it, as the template says.
            out.push('}');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    Some(out)
}

/// What a connector says about itself.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Connector name.
    pub name: String,
    /// Semantic version.
    pub version: String,
    /// Description for operators.
    pub description: String,
    /// Methods accepted by `invoke`.
    pub methods: Vec<MethodInfo>,
    /// JSON Schema of instance config.
    #[schema(value_type = Object)]
    pub config_schema: Value,
    /// JSON Schema of instance credentials.
    #[schema(value_type = Object)]
    pub credential_schema: Value,
    /// Authentication the host performs.
    pub auth: Auth,
    /// Host patterns the connector may call.
    pub hosts: Vec<String>,
    /// Webhook verification, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookConfig>,
    /// Default of the shared (upstream, credential) rate budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<crate::egress::budget::RateSpec>,
}

/// One method.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MethodInfo {
    /// Method name.
    pub name: String,
    /// Description.
    pub description: String,
    /// JSON Schema of the parameters.
    #[schema(value_type = Object)]
    pub params_schema: Value,
    /// JSON Schema of the result.
    #[schema(value_type = Object)]
    pub result_schema: Value,
}

/// A name and a template value.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemplateParam {
    /// Header or parameter name.
    pub name: String,
    /// Template over credential fields.
    pub value: String,
}

/// Where and how credentials are applied.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Auth {
    /// The scheme.
    pub scheme: AuthScheme,
    /// Host patterns that receive credentials.
    pub hosts: Vec<String>,
    /// Extra headers for those hosts.
    pub static_headers: Vec<TemplateParam>,
}

/// Authentication schemes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum AuthScheme {
    /// No authentication.
    None,
    /// Bearer token from a credential field.
    #[serde(rename_all = "camelCase")]
    Bearer {
        /// Credential field holding the token.
        token_field: String,
    },
    /// HTTP basic from templates.
    Basic {
        /// User name template.
        username: String,
        /// Password template.
        password: String,
    },
    /// API key headers.
    ApiKeyHeader {
        /// Header templates.
        headers: Vec<TemplateParam>,
    },
    /// API key query parameters.
    ApiKeyQuery {
        /// Parameter templates.
        params: Vec<TemplateParam>,
    },
    /// OAuth 2.0.
    Oauth2(OAuth2),
}

/// OAuth 2.0 provider description.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OAuth2 {
    /// `authorizationCode` or `clientCredentials`.
    pub grant: String,
    /// Authorization endpoint.
    pub authorization_url: String,
    /// Token endpoint.
    pub token_url: String,
    /// Refresh endpoint when different.
    pub refresh_url: Option<String>,
    /// Revocation endpoint.
    pub revocation_url: Option<String>,
    /// Scopes.
    pub scopes: Vec<String>,
    /// Scope separator.
    pub scope_delimiter: String,
    /// Extra authorization parameters.
    pub extra_authorization_params: Vec<TemplateParam>,
    /// `basicHeader` or `requestBody`.
    pub client_auth: String,
    /// PKCE on/off.
    pub pkce: bool,
}

/// Webhook verification settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookConfig {
    /// The scheme.
    pub scheme: WebhookScheme,
    /// Header with a unique delivery id.
    pub delivery_id_header: Option<String>,
}

/// Webhook signature schemes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum WebhookScheme {
    /// Generic HMAC-SHA256 over the body.
    #[serde(rename_all = "camelCase")]
    HmacSha256 {
        /// Signature header.
        header: String,
        /// `hex` or `base64`.
        encoding: String,
        /// Prefix before the signature.
        prefix: Option<String>,
        /// Credential field holding the secret.
        secret_field: String,
    },
    /// GitHub's `X-Hub-Signature-256`.
    #[serde(rename_all = "camelCase")]
    Github {
        /// Credential field holding the secret.
        secret_field: String,
    },
    /// Stripe's `Stripe-Signature`.
    #[serde(rename_all = "camelCase")]
    Stripe {
        /// Credential field holding the secret.
        secret_field: String,
        /// Replay window in seconds.
        tolerance_secs: u32,
    },
    /// Slack's `X-Slack-Signature`.
    #[serde(rename_all = "camelCase")]
    Slack {
        /// Credential field holding the secret.
        secret_field: String,
        /// Replay window in seconds.
        tolerance_secs: u32,
    },
    /// Shared secret in a header.
    #[serde(rename_all = "camelCase")]
    SharedSecret {
        /// Header carrying the secret.
        header: String,
        /// Credential field holding the expected value.
        secret_field: String,
    },
}

impl Manifest {
    /// A manifest with no methods, for tests and placeholders.
    pub fn minimal(name: &str, version: &str) -> Self {
        Self {
            name: name.into(),
            version: version.into(),
            description: String::new(),
            methods: Vec::new(),
            config_schema: serde_json::json!({"type": "object"}),
            credential_schema: serde_json::json!({"type": "object"}),
            auth: Auth {
                scheme: AuthScheme::None,
                hosts: Vec::new(),
                static_headers: Vec::new(),
            },
            hosts: Vec::new(),
            webhook: None,
            rate_limit: None,
        }
    }

    /// `name@version`.
    pub fn id(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }

    /// The method called `name`.
    pub fn method(&self, name: &str) -> Option<&MethodInfo> {
        self.methods.iter().find(|m| m.name == name)
    }

    /// `config` with every top-level property the config schema gives a
    /// `default` and the object lacks filled in with that default.
    ///
    /// Connectors default their API base URL this way (`api_base:
    /// "https://slack.com/api"`), and host patterns such as `{api_base}`
    /// resolve against the stored config, so the default must be stored,
    /// not only assumed by the guest. A string default may name other
    /// config keys in braces (`"https://{domain}.freshdesk.com"`): each is
    /// replaced by that key's string value, which may only hold letters,
    /// digits, `-` and `.` (so it cannot change more than a host label);
    /// if one is missing or holds anything else, the default is not
    /// applied and validation reports the missing key. Anything but an
    /// object is returned unchanged (validation refuses it later).
    pub fn config_with_defaults(&self, mut config: Value) -> Value {
        let Some(properties) = self
            .config_schema
            .get("properties")
            .and_then(Value::as_object)
        else {
            return config;
        };
        let given = config.clone();
        let Some(object) = config.as_object_mut() else {
            return config;
        };
        for (key, property) in properties {
            if object.contains_key(key) {
                continue;
            }
            let default = match property.get("default") {
                Some(Value::String(template)) => match render_default(template, &given) {
                    Some(text) => Value::String(text),
                    None => continue,
                },
                Some(other) => other.clone(),
                None => continue,
            };
            object.insert(key.clone(), default);
        }
        config
    }

    /// Checks everything the host relies on.
    pub fn validate(&self) -> Result<(), ManifestError> {
        if !is_identifier(&self.name, true) {
            return Err(invalid(
                "name",
                format!(
                    "{:?} must be 1-64 characters of lowercase letters, digits, '-' or '_', \
                     starting with a letter",
                    self.name
                ),
            ));
        }
        semver::Version::parse(&self.version).map_err(|e| {
            invalid(
                "version",
                format!("{:?} is not a semantic version: {e}", self.version),
            )
        })?;
        if let Some(rate) = &self.rate_limit {
            rate.validate()
                .map_err(|e| invalid("rateLimit", e.to_string()))?;
        }
        if let Some(WebhookConfig {
            scheme:
                WebhookScheme::Stripe { tolerance_secs, .. }
                | WebhookScheme::Slack { tolerance_secs, .. },
            ..
        }) = &self.webhook
            && !(1..=3600).contains(tolerance_secs)
        {
            return Err(invalid(
                "webhook.scheme.toleranceSecs",
                format!("{tolerance_secs} must be 1-3600 seconds (Stripe and Slack use 300)"),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, m) in self.methods.iter().enumerate() {
            if !is_identifier(&m.name, false) {
                return Err(invalid(
                    format!("methods[{i}].name"),
                    format!(
                        "{:?} must be 1-64 characters of lowercase letters, digits or '_', \
                         starting with a letter",
                        m.name
                    ),
                ));
            }
            if !seen.insert(m.name.as_str()) {
                return Err(invalid(
                    format!("methods[{i}].name"),
                    format!("duplicate method {:?}", m.name),
                ));
            }
            check_schema(&format!("methods[{i}].paramsSchema"), &m.params_schema)?;
            check_schema(&format!("methods[{i}].resultSchema"), &m.result_schema)?;
        }
        check_schema("configSchema", &self.config_schema)?;
        check_schema("credentialSchema", &self.credential_schema)?;
        for (i, h) in self.hosts.iter().enumerate() {
            HostPattern::parse(h).map_err(|e| invalid(format!("hosts[{i}]"), e.to_string()))?;
        }
        for (i, h) in self.auth.hosts.iter().enumerate() {
            HostPattern::parse(h)
                .map_err(|e| invalid(format!("auth.hosts[{i}]"), e.to_string()))?;
        }
        Ok(())
    }
}

/// Names: lowercase ASCII letter first, then letters, digits, `_` (and `-`
/// when `dash` is set), at most 64 characters. Kept strict so names are safe in
/// URLs, file names and log lines without escaping.
fn is_identifier(s: &str, dash: bool) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some('a'..='z'))
        && s.len() <= 64
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_') || (dash && c == '-'))
}

fn check_schema(field: &str, schema: &Value) -> Result<(), ManifestError> {
    jsonschema::validator_for(schema)
        .map(drop)
        .map_err(|e| invalid(field, format!("not a valid JSON Schema: {e}")))
}

#[cfg(test)]
mod tests {
    #[test]
    fn config_defaults_fill_absent_keys_only() {
        let mut m = Manifest::minimal("x", "1.0.0");
        m.config_schema = serde_json::json!({
            "type": "object",
            "properties": {
                "api_base": {"type": "string", "default": "https://slack.com/api"},
                "team": {"type": "string"},
            },
        });
        assert_eq!(
            m.config_with_defaults(serde_json::json!({})),
            serde_json::json!({"api_base": "https://slack.com/api"})
        );
        assert_eq!(
            m.config_with_defaults(serde_json::json!({"api_base": "http://127.0.0.1:9/api"})),
            serde_json::json!({"api_base": "http://127.0.0.1:9/api"})
        );
        assert_eq!(
            m.config_with_defaults(serde_json::json!("nope")),
            serde_json::json!("nope")
        );
    }

    #[test]
    fn config_defaults_may_name_other_keys() {
        let mut m = Manifest::minimal("x", "1.0.0");
        m.config_schema = serde_json::json!({
            "type": "object",
            "properties": {
                "domain": {"type": "string"},
                "api_base": {"type": "string", "default": "https://{domain}.freshdesk.com"},
                "braces": {"type": "string", "default": "{{literal}}"},
            },
        });
        let filled = m.config_with_defaults(serde_json::json!({"domain": "acme"}));
        assert_eq!(filled["api_base"], "https://acme.freshdesk.com");
        assert_eq!(filled["braces"], "{literal}");
        for bad in [
            serde_json::json!({}),
            serde_json::json!({"domain": "evil.com/x?"}),
            serde_json::json!({"domain": ""}),
            serde_json::json!({"domain": 7}),
        ] {
            let out = m.config_with_defaults(bad.clone());
            assert!(out.get("api_base").is_none(), "{bad} gave {out}");
        }
    }

    use super::*;
    use serde_json::json;

    fn with_method(name: &str, params: Value) -> Manifest {
        let mut m = Manifest::minimal("echo", "0.1.0");
        m.methods.push(MethodInfo {
            name: name.into(),
            description: String::new(),
            params_schema: params,
            result_schema: json!({}),
        });
        m
    }

    #[test]
    fn accepts_a_sane_manifest() {
        let mut m = with_method("send_message", json!({"type": "object"}));
        m.hosts.push("https://*.slack.com".into());
        m.hosts.push("{base_url}".into());
        m.validate().unwrap();
    }

    #[test]
    fn rejects_bad_names_versions_schemas_and_duplicates() {
        let bad_name = Manifest::minimal("Echo!", "0.1.0");
        assert_eq!(bad_name.validate().unwrap_err().field, "name");
        let bad_version = Manifest::minimal("echo", "one");
        assert_eq!(bad_version.validate().unwrap_err().field, "version");
        let bad_schema = with_method("m", json!({"type": 12}));
        assert_eq!(
            bad_schema.validate().unwrap_err().field,
            "methods[0].paramsSchema"
        );
        let mut dup = with_method("m", json!({}));
        dup.methods.push(dup.methods[0].clone());
        assert!(dup.validate().unwrap_err().message.contains("duplicate"));
        let mut bad_host = Manifest::minimal("echo", "0.1.0");
        bad_host.hosts.push("ftp://x".into());
        assert_eq!(bad_host.validate().unwrap_err().field, "hosts[0]");
    }
}

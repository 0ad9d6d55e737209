//! Turning uploaded bytes into a runnable component: format check, compile,
//! world check, and the conversion of the guest's manifest.
//!
//! Each failure has its own [`LoadError`] variant so the API can answer with a
//! precise code (`INVALID_COMPONENT`, `WORLD_MISMATCH`, `INVALID_MANIFEST`).

use std::collections::BTreeSet;

use wasmtime::Engine;
use wasmtime::component::Component;

use super::bindings::wit;
use crate::manifest::{self, Manifest, ManifestError};

/// Why bytes could not become a connector.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Not WebAssembly, or a core module where a component is required, or
    /// invalid per the validator.
    #[error("{0}")]
    InvalidComponent(String),
    /// A valid component of another world.
    #[error("{message}")]
    WorldMismatch {
        /// Human summary.
        message: String,
        /// Exports the connector world requires that the component lacks.
        missing: Vec<String>,
        /// Imports the host does not provide, or exports with wrong types.
        unexpected: Vec<String>,
    },
    /// `describe` returned a manifest the host refuses.
    #[error(transparent)]
    InvalidManifest(#[from] ManifestError),
    /// `describe` trapped or timed out.
    #[error("describe failed: {0}")]
    DescribeFailed(String),
    /// Something on the host side failed.
    #[error("internal error: {0}")]
    Internal(String),
}

/// The exports of the `connector` world.
pub const REQUIRED_EXPORTS: [&str; 4] = ["describe", "test-connection", "invoke", "handle-webhook"];

const WASM_MAGIC: &[u8; 4] = b"\0asm";
/// Version + layer fields of a core module (version 1, layer 0).
const CORE_MODULE_HEADER: [u8; 4] = [0x01, 0x00, 0x00, 0x00];
/// Version + layer fields of a component (version 0x0d, layer 1).
const COMPONENT_HEADER: [u8; 4] = [0x0d, 0x00, 0x01, 0x00];

/// Checks the header so the common mistakes get a precise message before the
/// validator's more cryptic one.
pub fn check_header(bytes: &[u8]) -> Result<(), LoadError> {
    if bytes.len() < 8 || &bytes[..4] != WASM_MAGIC {
        return Err(LoadError::InvalidComponent(
            "not a WebAssembly binary (missing the \\0asm header); upload the .wasm component file"
                .into(),
        ));
    }
    match <[u8; 4]>::try_from(&bytes[4..8]) {
        Ok(CORE_MODULE_HEADER) => Err(LoadError::InvalidComponent(
            "this is a core WebAssembly module, but a component is required: build for \
             wasm32-wasip2 (Rust) or wrap the module with `wasm-tools component new`"
                .into(),
        )),
        Ok(COMPONENT_HEADER) => Ok(()),
        _ => Err(LoadError::InvalidComponent(
            "unsupported WebAssembly version or layer; a component-model binary is required".into(),
        )),
    }
}

/// Compiles (and thereby validates) a component. CPU-heavy: call it from a
/// blocking thread.
pub fn compile(engine: &Engine, bytes: &[u8]) -> Result<Component, LoadError> {
    check_header(bytes)?;
    Component::new(engine, bytes)
        .map_err(|e| LoadError::InvalidComponent(format!("invalid component: {e:#}")))
}

/// Compares the component's exports and imports with the connector world.
pub fn check_world(engine: &Engine, component: &Component) -> Result<(), LoadError> {
    let ty = component.component_type();
    let exports: BTreeSet<&str> = ty.exports(engine).map(|(name, _)| name).collect();
    let missing: Vec<String> = REQUIRED_EXPORTS
        .iter()
        .filter(|e| !exports.contains(*e))
        .map(|e| e.to_string())
        .collect();
    let unexpected: Vec<String> = ty
        .imports(engine)
        .map(|(name, _)| name)
        .filter(|name| !is_provided_import(name))
        .map(|name| format!("import {name}"))
        .collect();
    if missing.is_empty() && unexpected.is_empty() {
        return Ok(());
    }
    let extra_exports: Vec<&str> = exports
        .iter()
        .copied()
        .filter(|e| !REQUIRED_EXPORTS.contains(e))
        .collect();
    let mut message = String::from(
        "the component does not implement the plugboard:connector/connector@0.1.0 world",
    );
    if !missing.is_empty() {
        message.push_str(&format!("; missing exports: {}", missing.join(", ")));
    }
    if !unexpected.is_empty() {
        message.push_str(&format!(
            "; imports the host does not provide: {}",
            unexpected.join(", ")
        ));
    }
    if !extra_exports.is_empty() {
        message.push_str(&format!(
            "; it exports instead: {}",
            extra_exports.join(", ")
        ));
    }
    Err(LoadError::WorldMismatch {
        message,
        missing,
        unexpected: unexpected
            .into_iter()
            .chain(extra_exports.iter().map(|e| format!("export {e}")))
            .collect(),
    })
}

/// Imports the linker satisfies: our host interface and WASI 0.2 (which is
/// linked but grants nothing beyond clocks, random and brokered HTTP).
fn is_provided_import(name: &str) -> bool {
    name.starts_with("plugboard:connector/host@0.1.")
        || name.starts_with("plugboard:connector/types@0.1.")
        || (name.starts_with("wasi:") && name.contains("@0.2."))
}

/// Converts the WIT manifest into the API form and validates it.
pub fn convert_manifest(m: wit::Manifest) -> Result<Manifest, ManifestError> {
    let json = |field: &str, text: &str| -> Result<serde_json::Value, ManifestError> {
        serde_json::from_str(text).map_err(|e| ManifestError {
            field: field.to_owned(),
            message: format!("not valid JSON: {e}"),
        })
    };
    let methods = m
        .methods
        .into_iter()
        .enumerate()
        .map(|(i, mi)| {
            Ok(manifest::MethodInfo {
                params_schema: json(&format!("methods[{i}].paramsSchema"), &mi.params_schema)?,
                result_schema: json(&format!("methods[{i}].resultSchema"), &mi.result_schema)?,
                name: mi.name,
                description: mi.description,
            })
        })
        .collect::<Result<_, ManifestError>>()?;
    let manifest = Manifest {
        config_schema: json("configSchema", &m.config_schema)?,
        credential_schema: json("credentialSchema", &m.credential_schema)?,
        name: m.name,
        version: m.version,
        description: m.description,
        methods,
        auth: convert_auth(m.auth),
        hosts: m.hosts,
        webhook: m.webhook.map(convert_webhook),
        rate_limit: m.rate_limit.map(|r| crate::egress::budget::RateSpec {
            requests: r.requests,
            per: std::time::Duration::from_millis(u64::from(r.per_ms)),
            burst: r.burst,
        }),
    };
    manifest.validate()?;
    Ok(manifest)
}

fn params(list: Vec<wit::TemplateParam>) -> Vec<manifest::TemplateParam> {
    list.into_iter()
        .map(|p| manifest::TemplateParam {
            name: p.name,
            value: p.value,
        })
        .collect()
}

fn convert_auth(a: wit::Auth) -> manifest::Auth {
    use manifest::AuthScheme as S;
    let scheme = match a.scheme {
        wit::AuthScheme::None => S::None,
        wit::AuthScheme::Bearer(field) => S::Bearer { token_field: field },
        wit::AuthScheme::Basic(b) => S::Basic {
            username: b.username,
            password: b.password,
        },
        wit::AuthScheme::ApiKeyHeader(h) => S::ApiKeyHeader { headers: params(h) },
        wit::AuthScheme::ApiKeyQuery(q) => S::ApiKeyQuery { params: params(q) },
        wit::AuthScheme::Oauth2(o) => S::Oauth2(manifest::OAuth2 {
            grant: match o.grant {
                wit::Oauth2Grant::AuthorizationCode => "authorizationCode",
                wit::Oauth2Grant::ClientCredentials => "clientCredentials",
            }
            .into(),
            authorization_url: o.authorization_url,
            token_url: o.token_url,
            refresh_url: o.refresh_url,
            revocation_url: o.revocation_url,
            scopes: o.scopes,
            scope_delimiter: o.scope_delimiter,
            extra_authorization_params: params(o.extra_authorization_params),
            client_auth: match o.client_auth {
                wit::Oauth2ClientAuth::BasicHeader => "basicHeader",
                wit::Oauth2ClientAuth::RequestBody => "requestBody",
            }
            .into(),
            pkce: o.pkce,
        }),
    };
    manifest::Auth {
        scheme,
        hosts: a.hosts,
        static_headers: params(a.static_headers),
    }
}

fn convert_webhook(w: wit::WebhookConfig) -> manifest::WebhookConfig {
    use manifest::WebhookScheme as S;
    let scheme = match w.scheme {
        wit::WebhookScheme::HmacSha256(h) => S::HmacSha256 {
            header: h.header,
            encoding: match h.encoding {
                wit::SignatureEncoding::Hex => "hex",
                wit::SignatureEncoding::Base64 => "base64",
            }
            .into(),
            prefix: h.prefix,
            secret_field: h.secret_field,
        },
        wit::WebhookScheme::Github(field) => S::Github {
            secret_field: field,
        },
        wit::WebhookScheme::Stripe(t) => S::Stripe {
            secret_field: t.secret_field,
            tolerance_secs: t.tolerance_secs,
        },
        wit::WebhookScheme::Slack(t) => S::Slack {
            secret_field: t.secret_field,
            tolerance_secs: t.tolerance_secs,
        },
        wit::WebhookScheme::SharedSecret(s) => S::SharedSecret {
            header: s.header,
            secret_field: s.secret_field,
        },
    };
    manifest::WebhookConfig {
        scheme,
        delivery_id_header: w.delivery_id_header,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_check_names_the_mistake() {
        let garbage = check_header(b"hello world").unwrap_err().to_string();
        assert!(garbage.contains("not a WebAssembly binary"), "{garbage}");
        let core = check_header(b"\0asm\x01\0\0\0").unwrap_err().to_string();
        assert!(core.contains("component is required"), "{core}");
        check_header(b"\0asm\x0d\0\x01\0").unwrap();
    }

    #[test]
    fn provided_imports() {
        assert!(is_provided_import("wasi:http/outgoing-handler@0.2.12"));
        assert!(is_provided_import("wasi:sockets/tcp@0.2.0"));
        assert!(is_provided_import("plugboard:connector/host@0.1.0"));
        assert!(!is_provided_import("wasi:http/handler@0.3.0"));
        assert!(!is_provided_import("acme:secrets/vault@1.0.0"));
    }
}

//! Instance credentials at the API edge: validation against the manifest's
//! credential schema (without ever echoing a value), sealing, the
//! names-only view, and opening them for a call.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::ApiError;
use crate::manifest::{AuthScheme, Manifest};
use crate::store::{CredentialsRecord, SealedField};
use crate::vault::{Credentials, Secret, Vault};

/// Largest credential value accepted (a long JWT or a PEM key fits).
const MAX_VALUE_BYTES: usize = 16 << 10;

/// Whether instances of this connector need credentials before they can run.
pub fn required(manifest: &Manifest) -> bool {
    !matches!(manifest.auth.scheme, AuthScheme::None)
        || manifest
            .credential_schema
            .get("required")
            .and_then(Value::as_array)
            .is_some_and(|r| !r.is_empty())
}

/// Checks `value` against the connector's credential schema. Messages name
/// the field and the rule that failed, never the value (jsonschema's own
/// messages quote the offending value, so they are not used).
pub fn validate(manifest: &Manifest, value: &Value) -> Result<(), ApiError> {
    let invalid = |message: String, details: Value| {
        ApiError::bad_request("INVALID_CREDENTIALS", message).with_details(details)
    };
    let Some(fields) = value.as_object() else {
        return Err(invalid(
            "`credentials` must be a JSON object of strings".into(),
            json!({}),
        ));
    };
    let validator =
        jsonschema::validator_for(&manifest.credential_schema).map_err(ApiError::internal)?;
    let errors: Vec<Value> = validator
        .iter_errors(value)
        .take(20)
        .map(|e| {
            let path = e.instance_path().to_string();
            let rule = e
                .schema_path()
                .to_string()
                .rsplit('/')
                .next()
                .unwrap_or("schema")
                .to_owned();
            json!({ "path": path, "rule": rule })
        })
        .collect();
    if let Some(first) = errors.first() {
        let at = match first["path"].as_str() {
            Some("") | None => "the credentials object".to_owned(),
            Some(p) => format!("credential {p}"),
        };
        return Err(invalid(
            format!(
                "invalid credentials: {at} fails the `{}` rule of the connector's credential schema",
                first["rule"].as_str().unwrap_or("schema")
            ),
            json!({ "errors": errors }),
        ));
    }
    for (name, v) in fields {
        match v.as_str() {
            None => {
                return Err(invalid(
                    format!("credential {name:?} must be a string"),
                    json!({ "field": name }),
                ));
            }
            Some(s) if s.len() > MAX_VALUE_BYTES => {
                return Err(invalid(
                    format!("credential {name:?} is longer than {MAX_VALUE_BYTES} bytes"),
                    json!({ "field": name }),
                ));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Parses an optional RFC 3339 expiry.
pub fn parse_expiry(value: Option<&str>) -> Result<Option<String>, ApiError> {
    let Some(v) = value else { return Ok(None) };
    time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339).map_err(
        |_| {
            ApiError::bad_request(
                "INVALID_REQUEST",
                format!("`expiresAt` must be an RFC 3339 time, not {v:?}"),
            )
        },
    )?;
    Ok(Some(v.to_owned()))
}

/// Seals validated credentials for `instance`.
pub fn seal(
    vault: &Vault,
    instance: &str,
    value: &Value,
    expires_at: Option<String>,
) -> CredentialsRecord {
    let now = super::now();
    let fields: BTreeMap<String, SealedField> = value
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(name, v)| {
            let plain = v.as_str()?;
            Some((
                name.clone(),
                SealedField {
                    sealed: vault.seal(instance, name, plain),
                    updated_at: now.clone(),
                },
            ))
        })
        .collect();
    CredentialsRecord { fields, expires_at }
}

/// The API view: field names, `set`, times; never a value.
pub fn view(record: Option<&CredentialsRecord>) -> Value {
    let Some(record) = record else {
        return json!({ "fields": {} });
    };
    let fields: serde_json::Map<String, Value> = record
        .fields
        .iter()
        .map(|(name, f)| {
            (
                name.clone(),
                json!({ "set": true, "updatedAt": f.updated_at }),
            )
        })
        .collect();
    let mut v = json!({ "fields": fields });
    if let Some(e) = &record.expires_at {
        v["expiresAt"] = json!(e);
    }
    v
}

/// Opens an instance's credentials for one call.
pub fn open(
    vault: &Vault,
    instance: &str,
    record: &CredentialsRecord,
) -> Result<Credentials, ApiError> {
    let mut fields = BTreeMap::new();
    for (name, f) in &record.fields {
        let secret: Secret = vault.open(instance, name, &f.sealed).map_err(|e| {
            tracing::error!(%instance, field = %name, error = %e, "stored credential does not open");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "CREDENTIALS_UNREADABLE",
                format!(
                    "credential {name:?} of instance {instance} cannot be opened: {e}; \
                     set the credentials again with PUT /v1/instances/{instance}/credentials"
                ),
            )
        })?;
        fields.insert(name.clone(), secret);
    }
    Ok(Credentials::new(fields))
}

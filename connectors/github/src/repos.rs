//! `create_repo`: `POST /user/repos`, or `POST /orgs/{org}/repos` for an
//! organization.

use plugboard_guest::http::Request;
use plugboard_guest::prelude::*;
use plugboard_guest::serde_json::Map;

use crate::api;

/// Parameters of `create_repo`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRepo {
    /// Repository name.
    #[schemars(pattern(r"^[A-Za-z0-9_.-]{1,100}$"))]
    pub name: String,
    /// Create it in this organization instead of the token's user.
    #[serde(default)]
    #[schemars(pattern(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$"))]
    pub org: Option<String>,
    /// Short description.
    #[serde(default)]
    pub description: Option<String>,
    /// Private repository (default: public).
    #[serde(default)]
    pub private: Option<bool>,
    /// Create an initial commit with a README.
    #[serde(default)]
    pub auto_init: Option<bool>,
}

/// A repository: the common fields typed, the rest passed through.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct Repository {
    /// Global id.
    pub id: u64,
    /// `owner/name`.
    pub full_name: String,
    /// Whether it is private.
    #[serde(default)]
    pub private: bool,
    /// Web URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html_url: Option<String>,
    /// Every other field GitHub returned.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// `create_repo`.
pub fn create_repo(p: CreateRepo) -> Result<Repository> {
    let path = match &p.org {
        Some(org) if org.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') => {
            format!("/orgs/{org}/repos")
        }
        Some(org) => {
            return Err(Error::invalid_input(format!(
                "`{org}` is not a GitHub organization name"
            )));
        }
        None => "/user/repos".to_owned(),
    };
    let mut body = Map::new();
    body.insert("name".into(), json!(p.name));
    for (key, value) in [
        ("description", p.description.map(Value::from)),
        ("private", p.private.map(Value::from)),
        ("auto_init", p.auto_init.map(Value::from)),
    ] {
        if let Some(v) = value {
            body.insert(key.into(), v);
        }
    }
    api::send(Request::post(api::url(&path)?).json(&body))?.json()
}

//! Credentials applied by the host: the manifest's auth scheme, rendered
//! once per invocation from the instance's opened credentials (and config),
//! added to every request towards the connector's auth hosts and to no
//! other request.
//!
//! Templates name fields in braces: `{api_key}`, `{email}/token`,
//! `Token token={api_key}`. A name is looked up among the credential fields
//! first, then among the config's string values (an email or a subdomain is
//! usually config, not secret). The guest never sees the rendered values:
//! it cannot read them back from the request it built, and if it sets a
//! header or query parameter the scheme owns, the host's value replaces it.

use http::{HeaderName, HeaderValue, Uri};
use serde_json::Value;

use super::{Allowlist, PatternError};
use crate::manifest::{Auth, AuthScheme, TemplateParam};
use crate::vault::{Credentials, Secret};

/// Why an instance's auth cannot be prepared (a configuration problem).
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// A template names something that is neither a credential field nor a
    /// config string.
    #[error(
        "auth template {template:?} needs {name:?}, which is neither a set credential field nor a config value"
    )]
    Missing {
        /// The template (no values in it).
        template: String,
        /// The missing name.
        name: String,
    },
    /// A template is malformed.
    #[error("auth template {0:?} is malformed (unbalanced braces or an empty name)")]
    Malformed(String),
    /// A rendered header name or value is not valid HTTP.
    #[error("auth header {0:?} is not a valid header name or value")]
    BadHeader(String),
    /// The auth host patterns do not resolve against the config.
    #[error("auth hosts: {0}")]
    Hosts(#[from] PatternError),
}

/// What the host adds to requests towards the auth hosts.
pub struct AuthPlan {
    hosts: Allowlist,
    headers: Vec<(HeaderName, HeaderValue)>,
    query: Vec<(String, Secret)>,
    /// Names of the credential fields the templates read (for the audit
    /// trail: which credential was used, never its value).
    fields: Vec<String>,
}

impl std::fmt::Debug for AuthPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthPlan")
            .field("hosts", &self.hosts.rules())
            .field(
                "headers",
                &self.headers.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .field(
                "query",
                &self.query.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl AuthPlan {
    /// Renders `auth` for one invocation; `None` when the manifest asks for
    /// nothing to be added.
    pub fn build(
        auth: &Auth,
        config: &Value,
        credentials: &Credentials,
    ) -> Result<Option<Self>, AuthError> {
        let render = |template: &str| render(template, config, credentials);
        let mut headers = Vec::new();
        let mut query = Vec::new();
        let mut header = |name: &str, value: Secret| -> Result<(), AuthError> {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| AuthError::BadHeader(name.to_owned()))?;
            let mut value = HeaderValue::from_str(value.expose())
                .map_err(|_| AuthError::BadHeader(name.to_string()))?;
            // Keeps hyper's HPACK from indexing it and `Debug` from showing it.
            value.set_sensitive(true);
            headers.push((name, value));
            Ok(())
        };
        match &auth.scheme {
            AuthScheme::None => {}
            AuthScheme::Bearer { token_field } => {
                let token = render(&format!("{{{token_field}}}"))?;
                header(
                    "authorization",
                    Secret::new(format!("Bearer {}", token.expose())),
                )?;
            }
            AuthScheme::Oauth2(_) => {
                // The OAuth flow (issue "OAuth") stores the access token in
                // the `access_token` field; it is sent as a bearer token.
                let token = render("{access_token}")?;
                header(
                    "authorization",
                    Secret::new(format!("Bearer {}", token.expose())),
                )?;
            }
            AuthScheme::Basic { username, password } => {
                use base64::Engine as _;
                let pair = format!(
                    "{}:{}",
                    render(username)?.expose(),
                    render(password)?.expose()
                );
                let encoded = base64::engine::general_purpose::STANDARD.encode(pair.as_bytes());
                drop(Secret::new(pair));
                header("authorization", Secret::new(format!("Basic {encoded}")))?;
            }
            AuthScheme::ApiKeyHeader { headers: list } => {
                for TemplateParam { name, value } in list {
                    header(name, render(value)?)?;
                }
            }
            AuthScheme::ApiKeyQuery { params } => {
                for TemplateParam { name, value } in params {
                    query.push((name.clone(), render(value)?));
                }
            }
        }
        for TemplateParam { name, value } in &auth.static_headers {
            header(name, render(value)?)?;
        }
        if headers.is_empty() && query.is_empty() {
            return Ok(None);
        }
        let hosts = Allowlist::resolve(&auth.hosts, config)?;
        Ok(Some(Self {
            hosts,
            headers,
            query,
            fields: credential_fields(auth, credentials),
        }))
    }

    /// Names of the credential fields the plan was rendered from, sorted.
    pub fn fields(&self) -> &[String] {
        &self.fields
    }

    /// Whether a request to `uri` gets the credentials.
    pub fn applies_to(&self, uri: &Uri) -> bool {
        self.hosts.allows(uri)
    }

    /// Adds the credentials to `request`, replacing any header or query
    /// parameter of the same name the guest set. Returns the names the
    /// guest had set (for a log line; never values).
    pub fn apply<B>(&self, request: &mut http::Request<B>) -> Vec<String> {
        let mut replaced = Vec::new();
        for (name, value) in &self.headers {
            if request.headers_mut().insert(name, value.clone()).is_some() {
                replaced.push(name.to_string());
            }
        }
        if !self.query.is_empty() {
            let (uri, names) = with_query(request.uri(), &self.query);
            replaced.extend(names);
            if let Some(uri) = uri {
                *request.uri_mut() = uri;
            }
        }
        replaced
    }
}

/// `uri` with `params` set in its query (guest values of the same names
/// dropped); `None` if the result does not parse (left unchanged, which the
/// upstream then refuses as unauthenticated).
fn with_query(uri: &Uri, params: &[(String, Secret)]) -> (Option<Uri>, Vec<String>) {
    let mut replaced = Vec::new();
    let mut pairs: Vec<String> = Vec::new();
    for pair in uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let name = pair.split('=').next().unwrap_or("");
        if params.iter().any(|(n, _)| encode(n) == name) {
            replaced.push(name.to_owned());
        } else {
            pairs.push(pair.to_owned());
        }
    }
    for (name, value) in params {
        pairs.push(format!("{}={}", encode(name), encode(value.expose())));
    }
    let path = uri.path();
    let mut parts = uri.clone().into_parts();
    let pq = format!("{path}?{}", pairs.join("&"));
    let uri = pq.parse().ok().and_then(|pq| {
        parts.path_and_query = Some(pq);
        Uri::from_parts(parts).ok()
    });
    (uri, replaced)
}

/// The credential fields `auth`'s templates name (config values and
/// unknown names left out), sorted and unique.
fn credential_fields(auth: &Auth, credentials: &Credentials) -> Vec<String> {
    let mut templates: Vec<String> = auth
        .static_headers
        .iter()
        .map(|p| p.value.clone())
        .collect();
    match &auth.scheme {
        AuthScheme::None => {}
        AuthScheme::Bearer { token_field } => templates.push(format!("{{{token_field}}}")),
        AuthScheme::Oauth2(_) => templates.push("{access_token}".into()),
        AuthScheme::Basic { username, password } => {
            templates.extend([username.clone(), password.clone()]);
        }
        AuthScheme::ApiKeyHeader { headers: list } | AuthScheme::ApiKeyQuery { params: list } => {
            templates.extend(list.iter().map(|p| p.value.clone()));
        }
    }
    let mut names: Vec<String> = templates
        .iter()
        .flat_map(|t| t.split('{').skip(1))
        .filter_map(|rest| rest.split_once('}').map(|(name, _)| name))
        .filter(|name| credentials.get(name).is_some())
        .map(str::to_owned)
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub(crate) fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Replaces each `{name}` with the credential field or config string
/// `name`.
pub(crate) fn render(
    template: &str,
    config: &Value,
    credentials: &Credentials,
) -> Result<Secret, AuthError> {
    let malformed = || AuthError::Malformed(template.to_owned());
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find(['{', '}']) {
        if rest.as_bytes()[open] == b'}' {
            return Err(malformed());
        }
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let close = after.find('}').ok_or_else(malformed)?;
        let name = &after[..close];
        if name.is_empty() || name.contains('{') {
            return Err(malformed());
        }
        match credentials.get(name) {
            Some(secret) => out.push_str(secret.expose()),
            None => match config.get(name).and_then(Value::as_str) {
                Some(value) => out.push_str(value),
                None => {
                    return Err(AuthError::Missing {
                        template: template.to_owned(),
                        name: name.to_owned(),
                    });
                }
            },
        }
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    Ok(Secret::new(out))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn creds(pairs: &[(&str, &str)]) -> Credentials {
        Credentials::new(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), Secret::new((*v).to_owned())))
                .collect(),
        )
    }

    fn auth(scheme: AuthScheme, statics: &[(&str, &str)]) -> Auth {
        Auth {
            scheme,
            hosts: vec!["https://api.example.com".into()],
            static_headers: statics
                .iter()
                .map(|(n, v)| TemplateParam {
                    name: (*n).into(),
                    value: (*v).into(),
                })
                .collect(),
        }
    }

    fn applied(
        plan: &AuthPlan,
        url: &str,
        guest: &[(&str, &str)],
    ) -> (http::Request<()>, Vec<String>) {
        let mut b = http::Request::builder().uri(url);
        for (k, v) in guest {
            b = b.header(*k, *v);
        }
        let mut req = b.body(()).unwrap();
        let replaced = plan.apply(&mut req);
        (req, replaced)
    }

    #[test]
    fn templates_use_credentials_then_config() {
        let c = creds(&[("api_token", "t0k")]);
        let config = json!({"email": "a@b.c", "n": 1});
        let r = |t: &str| render(t, &config, &c).map(|s| s.expose().to_owned());
        assert_eq!(r("{email}/token").unwrap(), "a@b.c/token");
        assert_eq!(r("Token token={api_token}").unwrap(), "Token token=t0k");
        assert_eq!(r("plain").unwrap(), "plain");
        assert!(
            matches!(r("{n}"), Err(AuthError::Missing { .. })),
            "numbers are not strings"
        );
        assert!(matches!(r("{nope}"), Err(AuthError::Missing { .. })));
        for bad in ["{", "}", "{}", "a{b", "{a{b}}"] {
            assert!(matches!(r(bad), Err(AuthError::Malformed(_))), "{bad}");
        }
        // Errors name the template and field, never a value.
        let e = r("{api_token}{nope}").unwrap_err().to_string();
        assert!(!e.contains("t0k"), "{e}");
    }

    #[test]
    fn each_scheme_renders_what_the_platform_expects() {
        let c = creds(&[("api_key", "KEY"), ("token", "TOK"), ("api_token", "AT")]);
        let config = json!({"email": "me@acme.test"});
        let plan = |scheme, statics: &[(&str, &str)]| {
            AuthPlan::build(&auth(scheme, statics), &config, &c)
                .unwrap()
                .unwrap()
        };
        let url = "https://api.example.com/v1/x?page=2";

        let bearer = plan(
            AuthScheme::Bearer {
                token_field: "token".into(),
            },
            &[("Notion-Version", "2022-06-28")],
        );
        assert_eq!(bearer.fields(), ["token"]);
        let (req, _) = applied(&bearer, url, &[]);
        assert_eq!(req.headers()["authorization"], "Bearer TOK");
        assert_eq!(req.headers()["notion-version"], "2022-06-28");
        assert!(req.headers()["authorization"].is_sensitive());

        let basic = plan(
            AuthScheme::Basic {
                username: "{email}/token".into(),
                password: "{api_token}".into(),
            },
            &[],
        );
        assert_eq!(basic.fields(), ["api_token"], "email is config");
        let (req, _) = applied(&basic, url, &[]);
        use base64::Engine as _;
        let want = base64::engine::general_purpose::STANDARD.encode("me@acme.test/token:AT");
        assert_eq!(
            req.headers()["authorization"],
            format!("Basic {want}").as_str()
        );

        let header = plan(
            AuthScheme::ApiKeyHeader {
                headers: vec![TemplateParam {
                    name: "Authorization".into(),
                    value: "Token token={api_key}".into(),
                }],
            },
            &[],
        );
        let (req, replaced) = applied(&header, url, &[("authorization", "guest")]);
        assert_eq!(req.headers()["authorization"], "Token token=KEY");
        assert_eq!(replaced, ["authorization"]);

        let query = plan(
            AuthScheme::ApiKeyQuery {
                params: vec![
                    TemplateParam {
                        name: "key".into(),
                        value: "{api_key}".into(),
                    },
                    TemplateParam {
                        name: "token".into(),
                        value: "{token}".into(),
                    },
                ],
            },
            &[],
        );
        assert_eq!(query.fields(), ["api_key", "token"]);
        let (req, replaced) = applied(
            &query,
            "https://api.example.com/1/boards?token=guess&fields=name",
            &[],
        );
        assert_eq!(req.uri().query(), Some("fields=name&key=KEY&token=TOK"));
        assert_eq!(replaced, ["token"]);
        assert!(query.applies_to(&"https://api.example.com/x".parse().unwrap()));
        assert!(!query.applies_to(&"https://other.example.com/x".parse().unwrap()));
        // Debug shows names only.
        assert!(!format!("{query:?}").contains("KEY"));
    }

    #[test]
    fn missing_credentials_and_no_scheme() {
        let none = AuthPlan::build(&auth(AuthScheme::None, &[]), &json!({}), &creds(&[])).unwrap();
        assert!(none.is_none());
        let missing = AuthPlan::build(
            &auth(
                AuthScheme::Bearer {
                    token_field: "token".into(),
                },
                &[],
            ),
            &json!({}),
            &creds(&[]),
        );
        assert!(matches!(missing, Err(AuthError::Missing { .. })));
    }
}

//! Host patterns (`https://*.example.com`, `{base_url}`,
//! `https://{domain}.freshdesk.com`) and the resolved per-instance allowlist.
//!
//! A pattern is parsed once at upload (syntax only), then resolved against an
//! instance's config when the instance is created and at invocation time.
//! Placeholder values are validated by position: a placeholder that is the
//! whole pattern must be an absolute http(s) URL; a placeholder inside a host
//! may only contain DNS label characters — otherwise a config value like
//! `evil.com/` could turn `https://{domain}.freshdesk.com` into a different
//! host.

use std::fmt;

/// A pattern or resolution error, with a message meant for operators.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PatternError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, PatternError> {
    Err(PatternError(msg.into()))
}

/// A host pattern as declared in a manifest, before config substitution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    raw: String,
}

/// How the host part of a resolved rule matches.
#[derive(Debug, Clone, PartialEq, Eq)]
enum HostMatch {
    /// Exactly this host (lowercase, no trailing dot).
    Exact(String),
    /// Any host with at least one more label in front of `.suffix`.
    Subdomains(String),
}

/// One resolved allowlist entry: scheme, host, port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRule {
    https: bool,
    host: HostMatch,
    port: u16,
}

impl fmt::Display for HostRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.https { "https" } else { "http" };
        match &self.host {
            HostMatch::Exact(h) => write!(f, "{scheme}://{h}:{}", self.port),
            HostMatch::Subdomains(s) => write!(f, "{scheme}://*.{s}:{}", self.port),
        }
    }
}

/// The hosts one instance may reach.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allowlist {
    rules: Vec<HostRule>,
    /// The operator's own list for the instance, if set: a request must
    /// match both (it can narrow what the manifest declares, never widen).
    narrow: Option<Vec<HostRule>>,
}

impl HostPattern {
    /// Checks the syntax of a pattern. Placeholders are checked by trying a
    /// resolution with dummy values that are valid in their position.
    pub fn parse(raw: &str) -> Result<Self, PatternError> {
        resolve_with(raw, &|_key, whole| {
            Some(
                if whole {
                    "https://placeholder.invalid"
                } else {
                    "placeholder"
                }
                .to_owned(),
            )
        })?;
        Ok(Self {
            raw: raw.to_owned(),
        })
    }

    /// Resolves placeholders from an instance config (string values only).
    pub fn resolve(&self, config: &serde_json::Value) -> Result<HostRule, PatternError> {
        resolve_from_config(&self.raw, config)
    }
}

fn resolve_from_config(raw: &str, config: &serde_json::Value) -> Result<HostRule, PatternError> {
    resolve_with(raw, &|key, _| config.get(key)?.as_str().map(str::to_owned))
}

fn resolve_with(
    raw: &str,
    lookup: &dyn Fn(&str, bool) -> Option<String>,
) -> Result<HostRule, PatternError> {
    let raw = raw.trim();
    if let Some(key) = whole_placeholder(raw) {
        let value = lookup(key, true).ok_or_else(|| {
            PatternError(format!(
                "host pattern {raw:?} needs config key {key:?} (a string URL)"
            ))
        })?;
        if !(value.starts_with("http://") || value.starts_with("https://")) {
            return err(format!(
                "config key {key:?} must be an absolute http(s) URL, got {value:?}"
            ));
        }
        // The value is a URL: scheme, authority, maybe a path we ignore.
        return parse_concrete(&value, true);
    }
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find('}')
            .ok_or_else(|| PatternError(format!("unclosed '{{' in host pattern {raw:?}")))?;
        let key = &rest[start + 1..start + end];
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return err(format!("bad placeholder {{{key}}} in host pattern {raw:?}"));
        }
        let value = lookup(key, false).ok_or_else(|| {
            PatternError(format!(
                "host pattern {raw:?} needs config key {key:?} (a string)"
            ))
        })?;
        if value.is_empty()
            || !value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        {
            return err(format!(
                "config key {key:?} may only contain letters, digits, '-' and '.', got {value:?}"
            ));
        }
        out.push_str(&value);
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    parse_concrete(&out, false)
}

fn whole_placeholder(raw: &str) -> Option<&str> {
    let inner = raw.strip_prefix('{')?.strip_suffix('}')?;
    (!inner.contains(['{', '}'])).then_some(inner)
}

/// Parses `scheme://host[:port][/path]` or `host[:port]` (https assumed).
/// With `ignore_path`, a path after the authority is allowed and ignored
/// (config URLs such as `https://api.example.com/v2`).
fn parse_concrete(s: &str, ignore_path: bool) -> Result<HostRule, PatternError> {
    let (https, rest) = match s.split_once("://") {
        Some(("https", rest)) => (true, rest),
        Some(("http", rest)) => (false, rest),
        Some((scheme, _)) => {
            return err(format!(
                "unsupported scheme {scheme:?} in {s:?} (http or https)"
            ));
        }
        None => (true, s),
    };
    let (authority, path) = match rest.find(['/', '?', '#']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if !(ignore_path || path.is_empty() || path == "/") {
        return err(format!("host pattern {s:?} must not contain a path"));
    }
    if authority.contains('@') {
        return err(format!("host pattern {s:?} must not contain user info"));
    }
    let (host, port) = split_host_port(authority)?;
    let port = match port {
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| PatternError(format!("bad port {p:?} in {s:?}")))?,
        None if https => 443,
        None => 80,
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let host = if let Some(suffix) = host.strip_prefix("*.") {
        check_hostname(suffix, s)?;
        if !suffix.contains('.') {
            return err(format!(
                "wildcard {s:?} is too broad; use at least *.example.com"
            ));
        }
        HostMatch::Subdomains(suffix.to_owned())
    } else if host == "*" {
        return err(format!(
            "{s:?} would allow every host; list the hosts the connector needs"
        ));
    } else {
        check_hostname(&host, s)?;
        HostMatch::Exact(host)
    };
    Ok(HostRule { https, host, port })
}

fn split_host_port(authority: &str) -> Result<(&str, Option<&str>), PatternError> {
    if let Some(rest) = authority.strip_prefix('[') {
        // IPv6 literal: keep the brackets off, as `http::Uri::host` does.
        let end = rest
            .find(']')
            .ok_or_else(|| PatternError(format!("unclosed '[' in {authority:?}")))?;
        let port = rest[end + 1..].strip_prefix(':');
        return Ok((&rest[..end], port));
    }
    Ok(match authority.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (authority, None),
    })
}

fn check_hostname(host: &str, whole: &str) -> Result<(), PatternError> {
    let ok = !host.is_empty()
        && host.len() <= 253
        && (host.parse::<std::net::Ipv6Addr>().is_ok()
            || host.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            }));
    if ok {
        Ok(())
    } else {
        err(format!("bad host {host:?} in {whole:?}"))
    }
}

impl HostRule {
    fn matches(&self, https: bool, host: &str, port: u16) -> bool {
        self.https == https
            && self.port == port
            && match &self.host {
                HostMatch::Exact(h) => h == host,
                HostMatch::Subdomains(suffix) => host
                    .strip_suffix(suffix.as_str())
                    .is_some_and(|front| front.len() > 1 && front.ends_with('.')),
            }
    }
}

impl Allowlist {
    /// Resolves manifest patterns against an instance config.
    pub fn resolve(patterns: &[String], config: &serde_json::Value) -> Result<Self, PatternError> {
        let rules = patterns
            .iter()
            .map(|p| resolve_from_config(p, config))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            rules,
            narrow: None,
        })
    }

    /// Narrows the list to the operator's patterns for one instance (same
    /// syntax as the manifest's, placeholders from the same config).
    pub fn narrowed(
        mut self,
        patterns: &[String],
        config: &serde_json::Value,
    ) -> Result<Self, PatternError> {
        let rules = patterns
            .iter()
            .map(|p| {
                HostPattern::parse(p)?;
                resolve_from_config(p, config)
            })
            .collect::<Result<_, _>>()?;
        self.narrow = Some(rules);
        Ok(self)
    }

    /// Whether a request to `uri` may leave. The URI's own authority is what
    /// is checked (and what the connection uses); headers play no part.
    pub fn allows(&self, uri: &http::Uri) -> bool {
        let Some((https, host, port)) = authority(uri) else {
            return false;
        };
        let hit = |rules: &[HostRule]| rules.iter().any(|r| r.matches(https, &host, port));
        hit(&self.rules) && self.narrow.as_deref().is_none_or(hit)
    }

    /// The rules the manifest declares, for error messages and the API.
    pub fn rules(&self) -> &[HostRule] {
        &self.rules
    }

    /// The operator's narrowing rules, if any.
    pub fn narrowing(&self) -> Option<&[HostRule]> {
        self.narrow.as_deref()
    }
}

/// Scheme, normalized host and port of an http(s) URI.
fn authority(uri: &http::Uri) -> Option<(bool, String, u16)> {
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return None,
    };
    let host = uri
        .host()?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    Some((https, host, port))
}

/// The upstream a request goes to, as `scheme://host:port` with the port
/// always spelled out: the key of circuit breakers, rate budgets and stats.
pub fn upstream_of(uri: &http::Uri) -> String {
    match authority(uri) {
        Some((https, host, port)) => {
            let scheme = if https { "https" } else { "http" };
            if host.contains(':') {
                format!("{scheme}://[{host}]:{port}")
            } else {
                format!("{scheme}://{host}:{port}")
            }
        }
        None => format!(
            "{}://{}",
            uri.scheme_str().unwrap_or("?"),
            uri.authority().map_or("?", |a| a.as_str())
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn allow(patterns: &[&str], config: serde_json::Value) -> Allowlist {
        let p: Vec<String> = patterns.iter().map(|s| s.to_string()).collect();
        Allowlist::resolve(&p, &config).unwrap()
    }

    fn ok(a: &Allowlist, url: &str) -> bool {
        a.allows(&url.parse().unwrap())
    }

    #[test]
    fn exact_hosts_match_scheme_host_and_port() {
        let a = allow(
            &["https://api.slack.com", "http://127.0.0.1:8080"],
            json!({}),
        );
        assert!(ok(&a, "https://api.slack.com/chat.postMessage"));
        assert!(ok(&a, "https://API.Slack.com./x"));
        assert!(ok(&a, "https://api.slack.com:443/x"));
        assert!(!ok(&a, "http://api.slack.com/x"));
        assert!(!ok(&a, "https://api.slack.com:8443/x"));
        assert!(!ok(&a, "https://api.slack.com.evil.com/x"));
        assert!(ok(&a, "http://127.0.0.1:8080/"));
        assert!(!ok(&a, "http://127.0.0.1:8081/"));
        assert!(!ok(&a, "https://user@evil.com/"));
    }

    #[test]
    fn wildcards_need_a_label_in_front() {
        let a = allow(&["https://*.freshdesk.com"], json!({}));
        assert!(ok(&a, "https://acme.freshdesk.com/api"));
        assert!(ok(&a, "https://a.b.freshdesk.com/api"));
        assert!(!ok(&a, "https://freshdesk.com/api"));
        assert!(!ok(&a, "https://evilfreshdesk.com/api"));
        assert!(HostPattern::parse("https://*.com").is_err());
        assert!(HostPattern::parse("*").is_err());
    }

    #[test]
    fn placeholders_resolve_from_config_and_cannot_inject() {
        let a = allow(
            &["https://{domain}.freshdesk.com"],
            json!({"domain": "acme"}),
        );
        assert!(ok(&a, "https://acme.freshdesk.com/api/v2/tickets"));
        assert!(!ok(&a, "https://other.freshdesk.com/"));
        let p = vec!["https://{domain}.freshdesk.com".to_string()];
        for evil in ["evil.com/", "evil.com:443@x", "a/b", "*", ""] {
            assert!(
                Allowlist::resolve(&p, &json!({ "domain": evil })).is_err(),
                "{evil}"
            );
        }
        assert!(Allowlist::resolve(&p, &json!({})).is_err());

        let a = allow(
            &["{base_url}"],
            json!({"base_url": "http://127.0.0.1:9000/api/v1"}),
        );
        assert!(ok(&a, "http://127.0.0.1:9000/api/v1/items"));
        assert!(!ok(&a, "http://127.0.0.1:9001/api/v1/items"));
        let p = vec!["{base_url}".to_string()];
        assert!(Allowlist::resolve(&p, &json!({"base_url": "ftp://x"})).is_err());
        assert!(Allowlist::resolve(&p, &json!({"base_url": 5})).is_err());
    }

    #[test]
    fn ipv6_literals() {
        let a = allow(&["http://[::1]:8080"], json!({}));
        assert!(ok(&a, "http://[::1]:8080/x"));
        assert!(!ok(&a, "http://[::2]:8080/x"));
    }

    #[test]
    fn an_instance_list_narrows_never_widens() {
        let config = json!({ "domain": "acme" });
        let a = allow(
            &["https://*.example.com", "https://{domain}.freshdesk.com"],
            config.clone(),
        )
        .narrowed(
            &["https://api.example.com".into(), "https://evil.com".into()],
            &config,
        )
        .unwrap();
        assert!(ok(&a, "https://api.example.com/v1"));
        assert!(!ok(&a, "https://www.example.com/"), "outside the narrowing");
        assert!(
            !ok(&a, "https://acme.freshdesk.com/"),
            "outside the narrowing"
        );
        assert!(!ok(&a, "https://evil.com/"), "not declared by the manifest");
        let bad =
            allow(&["https://*.example.com"], json!({})).narrowed(&["ftp://x".into()], &json!({}));
        assert!(bad.is_err());
    }

    #[test]
    fn upstream_keys_spell_out_the_port() {
        let u = |s: &str| upstream_of(&s.parse().unwrap());
        assert_eq!(
            u("https://API.example.com/x?y"),
            "https://api.example.com:443"
        );
        assert_eq!(u("http://127.0.0.1:8080/"), "http://127.0.0.1:8080");
        assert_eq!(u("http://[::1]/"), "http://[::1]:80");
    }
}

//! Just enough URL handling for outgoing requests, in plain Rust.
//!
//! `wasi:http` wants scheme, authority and path-with-query separately. A full
//! URL crate (IDNA tables and all) would add most of a connector's size for
//! splitting three fields, so this module splits, percent-encodes and checks
//! only what a request needs, and is unit-tested natively.

/// A URL split into the parts `wasi:http` takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    /// Lower-case scheme, e.g. `https`.
    pub scheme: String,
    /// `host[:port]`.
    pub authority: String,
    /// Path and query, always starting with `/`; the fragment is dropped.
    pub path_and_query: String,
}

impl Target {
    /// The URL without its query, for error messages: short, and free of
    /// anything a caller put in parameters.
    pub fn display_without_query(&self) -> String {
        let path = self
            .path_and_query
            .split_once('?')
            .map_or(self.path_and_query.as_str(), |(p, _)| p);
        format!("{}://{}{}", self.scheme, self.authority, path)
    }
}

/// Splits an absolute `scheme://authority/path?query#fragment` URL.
pub(crate) fn parse(url: &str) -> Result<Target, String> {
    if let Some(c) = url.chars().find(|c| c.is_control()) {
        return Err(format!("control character {c:?} in URL"));
    }
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| "URL must be absolute, like https://host/path".to_owned())?;
    let mut chars = scheme.chars();
    let valid_scheme = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !valid_scheme {
        return Err(format!("invalid URL scheme {scheme:?}"));
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    if authority.is_empty() {
        return Err("URL has no host".to_owned());
    }
    if authority.contains('@') {
        return Err("user info in URLs is not supported; the host applies credentials".to_owned());
    }
    if let Some(c) = authority
        .chars()
        .find(|c| !c.is_ascii() || c.is_ascii_whitespace())
    {
        return Err(format!(
            "invalid character {c:?} in URL host (internationalized names must be punycode)"
        ));
    }
    let tail = tail.split_once('#').map_or(tail, |(t, _)| t);
    let mut path_and_query = String::with_capacity(tail.len() + 1);
    if !tail.starts_with('/') {
        path_and_query.push('/');
    }
    encode_lenient(tail, &mut path_and_query);
    Ok(Target {
        scheme: scheme.to_ascii_lowercase(),
        authority: authority.to_owned(),
        path_and_query,
    })
}

/// Copies `s`, percent-encoding what may not appear raw in a request target
/// (spaces, non-ASCII, a few delimiters) and leaving existing escapes alone,
/// the way browsers treat a typed URL.
fn encode_lenient(s: &str, out: &mut String) {
    for b in s.bytes() {
        if b >= 0x80
            || matches!(
                b,
                b' ' | b'"' | b'<' | b'>' | b'`' | b'{' | b'}' | b'|' | b'\\' | b'^'
            )
        {
            push_escaped(b, out);
        } else {
            out.push(char::from(b));
        }
    }
}

fn push_escaped(b: u8, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push('%');
    out.push(char::from(HEX[usize::from(b >> 4)]));
    out.push(char::from(HEX[usize::from(b & 0xF)]));
}

/// Percent-encodes everything but RFC 3986 unreserved characters, so any
/// string is safe as a query name or value (space becomes `%20`).
pub fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            push_escaped(b, &mut out);
        }
    }
    out
}

/// Appends encoded `name=value` pairs to a path that may already carry a query.
pub(crate) fn append_query(path_and_query: &mut String, pairs: &[(String, String)]) {
    for (name, value) in pairs {
        if !path_and_query.contains('?') {
            path_and_query.push('?');
        } else if !path_and_query.ends_with(['?', '&']) {
            path_and_query.push('&');
        }
        path_and_query.push_str(&encode_component(name));
        path_and_query.push('=');
        path_and_query.push_str(&encode_component(value));
    }
}

/// Decodes `application/x-www-form-urlencoded` text (`+` is a space).
pub(crate) fn decode_component(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| core::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                if let Some(b) = hex {
                    out.push(b);
                    i += 2;
                } else {
                    out.push(b'%');
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `name=value&…` with every name and value percent-encoded, for query
/// strings and `application/x-www-form-urlencoded` bodies.
pub(crate) fn encode_form<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                encode_component(k.as_ref()),
                encode_component(v.as_ref())
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Splits a query string (without `?`) into decoded pairs.
pub(crate) fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode_component(k), decode_component(v))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(url: &str) -> Target {
        parse(url).expect("valid URL")
    }

    #[test]
    fn splits_urls() {
        let x = t("https://api.example.com:8443/v1/items?page=2#top");
        assert_eq!(x.scheme, "https");
        assert_eq!(x.authority, "api.example.com:8443");
        assert_eq!(x.path_and_query, "/v1/items?page=2");
        assert_eq!(
            x.display_without_query(),
            "https://api.example.com:8443/v1/items"
        );

        assert_eq!(t("HTTP://h").path_and_query, "/");
        assert_eq!(t("HTTP://h").scheme, "http");
        assert_eq!(t("http://h?x=1").path_and_query, "/?x=1");
        assert_eq!(
            t("http://127.0.0.1:1/a b/é").path_and_query,
            "/a%20b/%C3%A9"
        );
        assert_eq!(t("http://[::1]:8080/").authority, "[::1]:8080");
    }

    #[test]
    fn rejects_bad_urls() {
        for bad in [
            "/relative",
            "example.com/x",
            "https:///path",
            "https://user:pw@example.com/",
            "https://exa mple.com/",
            "https://example.com/\r\nHost: evil",
            "1http://x/",
            "https://bücher.example/",
        ] {
            assert!(parse(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn encodes_query_components() {
        assert_eq!(encode_component("a b&c=d/é~"), "a%20b%26c%3Dd%2F%C3%A9~");
        assert_eq!(encode_component("AZaz09-._~"), "AZaz09-._~");
        assert_eq!(encode_component("+%"), "%2B%25");
    }

    #[test]
    fn appends_query_pairs() {
        let pairs = vec![
            ("q".to_owned(), "a b".to_owned()),
            ("n".to_owned(), "1".to_owned()),
        ];
        let mut p = "/search".to_owned();
        append_query(&mut p, &pairs);
        assert_eq!(p, "/search?q=a%20b&n=1");

        let mut p = "/search?x=1".to_owned();
        append_query(&mut p, &pairs);
        assert_eq!(p, "/search?x=1&q=a%20b&n=1");

        let mut p = "/search?".to_owned();
        append_query(&mut p, &pairs[..1]);
        assert_eq!(p, "/search?q=a%20b");
    }

    #[test]
    fn decodes_queries() {
        assert_eq!(
            query_pairs("a=1&b=x%20y+z&&flag&bad=%zz%4"),
            vec![
                ("a".to_owned(), "1".to_owned()),
                ("b".to_owned(), "x y z".to_owned()),
                ("flag".to_owned(), String::new()),
                ("bad".to_owned(), "%zz%4".to_owned()),
            ]
        );
    }
}

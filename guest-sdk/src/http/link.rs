//! RFC 8288 `Link` headers, as GitHub, Freshdesk and many other APIs use
//! them for pagination: `<https://api.example.com/items?page=2>; rel="next",
//! <https://api.example.com/items?page=9>; rel="last"`.
//!
//! Plain Rust, unit-tested natively.

/// One link of a `Link` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// The target URL, as written between `<` and `>`.
    pub url: String,
    /// The relation types (`rel="next prev"` gives two), lower case.
    pub rels: Vec<String>,
}

impl Link {
    /// Whether the link has relation `rel` (case-insensitive).
    pub fn has_rel(&self, rel: &str) -> bool {
        self.rels.iter().any(|r| r.eq_ignore_ascii_case(rel))
    }
}

/// Parses one `Link` header value into its links, skipping malformed ones.
///
/// Commas inside `<…>` and inside quoted parameter values do not split
/// links.
pub fn parse_link_header(value: &str) -> Vec<Link> {
    split_links(value)
        .into_iter()
        .filter_map(|part| parse_one(&part))
        .collect()
}

/// Splits at commas outside `<…>` and quotes.
fn split_links(value: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let (mut in_url, mut in_quotes) = (false, false);
    for c in value.chars() {
        match c {
            '<' if !in_quotes => in_url = true,
            '>' if !in_quotes => in_url = false,
            '"' if !in_url => in_quotes = !in_quotes,
            ',' if !in_url && !in_quotes => {
                parts.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    parts.push(current);
    parts
}

fn parse_one(part: &str) -> Option<Link> {
    let part = part.trim();
    let rest = part.strip_prefix('<')?;
    let (url, params) = rest.split_once('>')?;
    let mut rels = Vec::new();
    for param in params.split(';') {
        let Some((name, value)) = param.split_once('=') else {
            continue;
        };
        if name.trim().eq_ignore_ascii_case("rel") {
            let value = value.trim().trim_matches('"');
            rels.extend(value.split_ascii_whitespace().map(str::to_ascii_lowercase));
        }
    }
    Some(Link {
        url: url.trim().to_owned(),
        rels,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_github_style_headers() {
        let links = parse_link_header(
            r#"<https://api.github.com/repositories/1/issues?page=2>; rel="next", <https://api.github.com/repositories/1/issues?page=5>; rel="last""#,
        );
        assert_eq!(links.len(), 2);
        assert_eq!(
            links[0].url,
            "https://api.github.com/repositories/1/issues?page=2"
        );
        assert!(links[0].has_rel("next"));
        assert!(links[1].has_rel("LAST"));
    }

    #[test]
    fn handles_commas_several_rels_and_junk() {
        let links = parse_link_header(
            r#"<https://x.test/a?tags=a,b>; rel="next prev"; title="one, two" , junk, <https://x.test/b>;rel=first"#,
        );
        assert_eq!(links.len(), 2, "{links:?}");
        assert_eq!(links[0].url, "https://x.test/a?tags=a,b");
        assert_eq!(links[0].rels, ["next", "prev"]);
        assert!(links[1].has_rel("first"));
        assert!(parse_link_header("").is_empty());
    }
}

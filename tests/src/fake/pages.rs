//! Paginated listings: one exchange per page, selected by a `page` query
//! parameter, optionally with RFC 8288 `Link` headers (`rel="next"`,
//! `rel="last"`) the way GitHub and Freshdesk paginate.

use serde_json::Value;

use super::exchange::{Exchange, Reply};

/// A paginated `GET` listing.
///
/// ```
/// use plugboard_tests::fake::Pages;
/// use serde_json::json;
///
/// let exchanges = Pages::new("/repos/o/r/issues", vec![json!([1, 2]), json!([3])])
///     .keep_query("per_page", "2")
///     .link_headers()
///     .exchanges();
/// assert_eq!(exchanges.len(), 3); // page=2, page=1, and page 1 without `page`
/// ```
#[derive(Debug, Clone)]
pub struct Pages {
    path: String,
    pages: Vec<Value>,
    keep_query: Vec<(String, String)>,
    link: bool,
}

impl Pages {
    /// Pages of `path`; `pages[0]` is page 1.
    pub fn new(path: impl Into<String>, pages: Vec<Value>) -> Self {
        Self {
            path: path.into(),
            pages,
            keep_query: Vec::new(),
            link: false,
        }
    }

    /// A query parameter the `Link` URLs carry along (e.g. `per_page`).
    pub fn keep_query(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.keep_query.push((name.into(), value.into()));
        self
    }

    /// Adds `Link` headers with `next` (all pages but the last), `prev`,
    /// `first` and `last`.
    pub fn link_headers(mut self) -> Self {
        self.link = true;
        self
    }

    /// The absolute URL of page `n`, with `{{base_url}}` for the fake.
    fn page_url(&self, n: usize) -> String {
        let mut url = format!("{{{{base_url}}}}{}?", self.path);
        for (k, v) in &self.keep_query {
            url.push_str(&form_urlencoded::byte_serialize(k.as_bytes()).collect::<String>());
            url.push('=');
            url.push_str(&form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>());
            url.push('&');
        }
        url.push_str(&format!("page={n}"));
        url
    }

    fn link_header(&self, n: usize) -> String {
        let last = self.pages.len();
        let mut links = Vec::new();
        if n < last {
            links.push(format!("<{}>; rel=\"next\"", self.page_url(n + 1)));
        }
        if n > 1 {
            links.push(format!("<{}>; rel=\"prev\"", self.page_url(n - 1)));
            links.push(format!("<{}>; rel=\"first\"", self.page_url(1)));
        }
        if n < last {
            links.push(format!("<{}>; rel=\"last\"", self.page_url(last)));
        }
        links.join(", ")
    }

    /// The exchanges: pages 2.. matched by `page=N`, then page 1 matched by
    /// `page=1`, then page 1 for a request without `page` (exchanges are
    /// tried in order, so the specific ones come first).
    pub fn exchanges(&self) -> Vec<Exchange> {
        let reply = |n: usize| {
            let mut r = Reply::json(200, self.pages[n - 1].clone());
            if self.link {
                let link = self.link_header(n);
                if !link.is_empty() {
                    r = r.header("link", link);
                }
            }
            r
        };
        let mut out: Vec<Exchange> = (2..=self.pages.len())
            .map(|n| {
                Exchange::get(&self.path)
                    .query("page", n.to_string())
                    .label_as(format!("GET {} page {n}", self.path))
                    .reply(reply(n))
            })
            .collect();
        if !self.pages.is_empty() {
            out.push(
                Exchange::get(&self.path)
                    .query("page", "1")
                    .label_as(format!("GET {} page 1", self.path))
                    .reply(reply(1)),
            );
            out.push(
                Exchange::get(&self.path)
                    .label_as(format!("GET {} page 1", self.path))
                    .reply(reply(1)),
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn link_headers_point_at_neighbours() {
        let p = Pages::new("/items", vec![json!([1]), json!([2]), json!([3])])
            .keep_query("per_page", "1")
            .link_headers();
        let ex = p.exchanges();
        assert_eq!(ex.len(), 4);
        let link = |i: usize| {
            ex[i]
                .reply
                .headers
                .iter()
                .find(|(n, _)| n == "link")
                .map(|(_, v)| v.clone())
        };
        // ex[0] is page 2: next, prev, first, last.
        assert_eq!(
            link(0).unwrap(),
            "<{{base_url}}/items?per_page=1&page=3>; rel=\"next\", \
             <{{base_url}}/items?per_page=1&page=1>; rel=\"prev\", \
             <{{base_url}}/items?per_page=1&page=1>; rel=\"first\", \
             <{{base_url}}/items?per_page=1&page=3>; rel=\"last\""
        );
        // ex[1] is page 3, the last: no next.
        assert!(!link(1).unwrap().contains("next"));
        assert_eq!(ex[2].reply.body, b"[1]");
        assert_eq!(ex[3].reply.body, b"[1]");
        assert!(
            Pages::new("/x", vec![json!([])]).exchanges()[0]
                .reply
                .headers
                .iter()
                .all(|(n, _)| n != "link")
        );
    }
}

//! Following `Link: <…>; rel="next"` pagination (GitHub, Freshdesk and
//! most REST APIs that paginate by page number).
//!
//! The sending is injected, so connectors keep their own headers and error
//! mapping, and the loop is unit-tested natively.

use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Request, Response, query_param};
use crate::Result;

/// Items gathered from one or more pages, and where to continue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Page<T> {
    /// The items, in the upstream's order.
    pub items: Vec<T>,
    /// The `page` parameter of the next page, when the upstream announced
    /// one that was not fetched.
    pub next_page: Option<u32>,
}

/// Sends `first` with `send`, parses each answer as a JSON array of `T`,
/// and follows `rel="next"` links for up to `max_pages` pages in all.
///
/// Links that do not start with `base` + `/` are not followed (the host's
/// egress policy would refuse them anyway, and a link to another host is
/// not a next page). `next_page` is read from the last link's `page`
/// query parameter.
pub fn follow_next_links<T, F>(
    first: Request,
    max_pages: u32,
    base: &str,
    mut send: F,
) -> Result<Page<T>>
where
    T: DeserializeOwned,
    F: FnMut(Request) -> Result<Response>,
{
    let prefix = format!("{}/", base.trim_end_matches('/'));
    let mut items = Vec::new();
    let mut request = Some(first);
    let mut next_page = None;
    let mut fetched = 0;
    while let Some(r) = request.take() {
        let response = send(r)?;
        fetched += 1;
        let mut page: Vec<T> = response.json()?;
        items.append(&mut page);
        next_page = None;
        if let Some(next) = response.link("next") {
            next_page = query_param(&next, "page").and_then(|p| p.parse().ok());
            if fetched < max_pages && next.starts_with(&prefix) {
                request = Some(Request::get(next));
            }
        }
    }
    Ok(Page { items, next_page })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(items: &str, next: Option<&str>) -> Response {
        let mut headers = vec![("content-type".to_owned(), "application/json".to_owned())];
        if let Some(n) = next {
            headers.push(("link".to_owned(), format!("<{n}>; rel=\"next\"")));
        }
        Response {
            status: 200,
            headers,
            body: items.as_bytes().to_vec(),
        }
    }

    #[test]
    fn follows_next_links_up_to_the_limit() {
        let mut asked = Vec::new();
        let got: Page<u32> = follow_next_links(
            Request::get("https://api.test/v1/items?page=1"),
            2,
            "https://api.test/v1",
            |r| {
                asked.push(r.url.clone());
                Ok(match asked.len() {
                    1 => page("[1,2]", Some("https://api.test/v1/items?page=2")),
                    _ => page("[3]", Some("https://api.test/v1/items?page=3")),
                })
            },
        )
        .unwrap();
        assert_eq!(got.items, [1, 2, 3]);
        assert_eq!(got.next_page, Some(3));
        assert_eq!(
            asked,
            [
                "https://api.test/v1/items?page=1",
                "https://api.test/v1/items?page=2"
            ]
        );
    }

    #[test]
    fn stops_at_the_last_page_and_at_foreign_links() {
        let last: Page<u32> = follow_next_links(
            Request::get("https://a.test/x"),
            5,
            "https://a.test",
            |_| Ok(page("[7]", None)),
        )
        .unwrap();
        assert_eq!(
            last,
            Page {
                items: vec![7],
                next_page: None
            }
        );

        let mut calls = 0;
        let foreign: Page<u32> = follow_next_links(
            Request::get("https://a.test/x"),
            5,
            "https://a.test",
            |_| {
                calls += 1;
                Ok(page("[1]", Some("https://evil.test/x?page=2")))
            },
        )
        .unwrap();
        assert_eq!(calls, 1);
        assert_eq!(foreign.next_page, Some(2));

        let bad = follow_next_links::<u32, _>(
            Request::get("https://a.test/x"),
            5,
            "https://a.test",
            |_| Ok(page("{\"not\":\"a list\"}", None)),
        );
        assert_eq!(bad.map_err(|e| e.kind()), Err("upstream"));
    }
}

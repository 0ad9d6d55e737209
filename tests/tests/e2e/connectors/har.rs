//! A HAR recording replayed through the harness drives the GitHub
//! connector: `tests/har/github-issues.har`, the hand-written example of
//! `docs/testing-connectors.md` (the test checks the document shows the
//! very same file). The recorded origin `https://api.github.com` is
//! rewritten to the fake, so GitHub's `Link` headers (which point at
//! `/repositories/{id}/…`) lead back to it.

use plugboard_tests::fake::{Har, HarOptions, Script, Upstream};
use serde_json::{Value, json};

use super::github::{self, github_headers};
use super::{call, since};
use crate::common::{Host, assert_error};

const HAR_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/har/github-issues.har");
const GUIDE: &str = include_str!("../../../../docs/testing-connectors.md");

/// The JSON block between `<!-- har:start -->` and `<!-- har:end -->`.
fn guide_har() -> Value {
    let start = GUIDE.find("<!-- har:start -->").expect("har start marker");
    let end = GUIDE.find("<!-- har:end -->").expect("har end marker");
    let block = &GUIDE[start..end];
    let code = block.find("```json\n").expect("json code block") + "```json\n".len();
    let close = block[code..].find("```").expect("closing fence");
    serde_json::from_str(&block[code..code + close]).expect("the guide's HAR is JSON")
}

#[test]
fn the_guide_shows_the_replayed_file() {
    let file: Value = serde_json::from_str(&std::fs::read_to_string(HAR_PATH).unwrap()).unwrap();
    assert_eq!(
        guide_har(),
        file,
        "docs/testing-connectors.md and {HAR_PATH} differ"
    );
}

#[tokio::test]
async fn a_recorded_session_replays_through_the_connector() {
    let har = Har::from_file(HAR_PATH).unwrap();
    assert_eq!(har.origins(), ["https://api.github.com"]);
    // Entries answer once each, in order; the two POSTs are told apart by
    // their recorded `title` as well.
    let up = Upstream::start(
        Script::new()
            .har(&har, &HarOptions::default().json_field("/title"))
            .unwrap(),
    )
    .await;
    let host = Host::start(&[]);
    let inst = github::github(&host, &up).await;

    let (status, body) = host
        .post(&format!("/instances/{inst}/test"), json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["message"], "authenticated as octo-ops");

    let page = call(
        &host,
        &inst,
        "list_issues",
        json!({"owner": "acme", "repo": "ops", "state": "open", "per_page": 2, "max_pages": 2}),
    )
    .await;
    let titles: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["title"].as_str().unwrap())
        .collect();
    assert_eq!(
        titles,
        ["Disk alarm flaps", "Rotate TLS certs", "Backups take 6 h"]
    );
    assert_eq!(page["next_page"], Value::Null);

    let created = call(
        &host,
        &inst,
        "create_issue",
        json!({"owner": "acme", "repo": "ops", "title": "Disk full on db-2", "labels": ["urgent"]}),
    )
    .await;
    assert_eq!(created["number"], 13);

    let refused = host
        .invoke(
            &inst,
            "create_issue",
            json!({"owner": "acme", "repo": "ops", "title": "Page the DBA", "assignees": ["nobody-here"]}),
        )
        .await;
    let e = assert_error(&refused, 422, "UPSTREAM_REJECTED");
    assert_eq!(e["message"], "Validation Failed: Issue.assignees invalid");

    // The session was replayed exactly: every entry used once, nothing
    // else asked, the token and GitHub's headers on every request.
    up.assert_done();
    let sent = since(&up, 0);
    assert_eq!(sent.len(), 5);
    assert_eq!(
        sent[2].line(),
        "GET /repositories/1296269/issues?state=open&per_page=2&page=2"
    );
    sent.iter().for_each(github_headers);
}

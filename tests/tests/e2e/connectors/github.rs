//! GitHub: every method's exact request (bearer token, GitHub's headers,
//! JSON bodies, Link-header pagination), validation errors, plain and
//! rate-limiting 403s, and signed webhooks.

use hmac::Mac as _;
use plugboard_tests::GITHUB_WASM;
use plugboard_tests::fake::{Exchange, Pages, Recorded, Reply, Script, Upstream};
use serde_json::{Value, json};

use super::{assert_request, call, instance, only_since, since};
use crate::common::{Host, assert_error};

pub const TOKEN: &str = "ghp_fakeToken0123456789abcdefABCDEF01";
pub const HOOK_SECRET: &str = "gh-hook-secret-Kq2";

/// An instance of the GitHub connector pointed at `up`.
pub async fn github(host: &Host, up: &Upstream) -> String {
    instance(
        host,
        GITHUB_WASM,
        json!({ "api_base": up.url() }),
        json!({ "token": TOKEN, "webhook_secret": HOOK_SECRET }),
    )
    .await
}

/// GitHub's request headers and the token.
#[track_caller]
pub fn github_headers(r: &Recorded) {
    assert_eq!(r.bearer(), Some(TOKEN), "{r:?}");
    assert_eq!(r.header("accept"), Some("application/vnd.github+json"));
    assert_eq!(r.header("x-github-api-version"), Some("2022-11-28"));
    assert!(r.header("user-agent").is_some_and(|ua| !ua.is_empty()));
}

/// An issue as GitHub returns it.
pub fn issue(number: u64, title: &str, state: &str) -> Value {
    json!({
        "id": 1_000_000 + number, "number": number, "title": title, "state": state,
        "html_url": format!("https://github.com/acme/ops/issues/{number}"),
        "user": {"login": "plugbot"}, "labels": [], "comments": 0
    })
}

#[tokio::test]
async fn every_method_sends_the_documented_request() {
    let host = Host::start(&[]);
    let up = Upstream::start(
        Script::new()
            .on(Exchange::get("/user").reply_json(200, json!({"login": "plugbot", "id": 7})))
            .on(Exchange::post("/orgs/acme/repos").reply_json(201, json!({
                "id": 555, "full_name": "acme/incidents", "private": true,
                "html_url": "https://github.com/acme/incidents", "default_branch": "main"})))
            .on(Exchange::post("/repos/acme/ops/issues").reply_json(201, issue(42, "Server down", "open")))
            .on(Exchange::patch("/repos/acme/ops/issues/42").reply_json(200, issue(42, "Server down", "closed")))
            .on(Exchange::post("/repos/acme/ops/issues/42/comments").reply_json(201, json!({
                "id": 9001, "body": "Fixed by rebooting", "html_url": "https://github.com/acme/ops/issues/42#issuecomment-9001"})))
            .on(Exchange::post("/repos/acme/ops/pulls").reply_json(201, json!({
                "id": 77, "number": 43, "state": "open", "html_url": "https://github.com/acme/ops/pull/43", "draft": true})))
            .extend(
                Pages::new(
                    "/repos/acme/ops/issues",
                    vec![
                        json!([issue(1, "a", "open"), issue(2, "b", "open")]),
                        json!([issue(3, "c", "open"), issue(4, "d", "open")]),
                        json!([issue(5, "e", "open")]),
                    ],
                )
                .keep_query("state", "all")
                .keep_query("per_page", "2")
                .link_headers()
                .exchanges(),
            ),
    )
    .await;
    let inst = github(&host, &up).await;

    let (status, body) = host
        .post(&format!("/instances/{inst}/test"), json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["message"], "authenticated as plugbot");
    let r = only_since(&up, 0);
    assert_request(&r, "GET /user", None);
    github_headers(&r);

    let mut n = 1;
    let mut step = async |method: &str, params: Value, line: &str, body: Value| {
        let data = call(&host, &inst, method, params).await;
        let r = only_since(&up, n);
        assert_request(&r, line, Some(body));
        github_headers(&r);
        n += 1;
        data
    };
    let repo = step(
        "create_repo",
        json!({"org": "acme", "name": "incidents", "private": true, "description": "Postmortems"}),
        "POST /orgs/acme/repos",
        json!({"name": "incidents", "private": true, "description": "Postmortems"}),
    )
    .await;
    assert_eq!(repo["full_name"], "acme/incidents");
    assert_eq!(repo["default_branch"], "main");
    let created = step(
        "create_issue",
        json!({"owner": "acme", "repo": "ops", "title": "Server down", "body": "Since 10:00",
               "labels": ["urgent"], "assignees": ["ada"]}),
        "POST /repos/acme/ops/issues",
        json!({"title": "Server down", "body": "Since 10:00", "labels": ["urgent"], "assignees": ["ada"]}),
    )
    .await;
    assert_eq!(created["number"], 42);
    let closed = step(
        "close_issue",
        json!({"owner": "acme", "repo": "ops", "number": 42, "reason": "not_planned"}),
        "PATCH /repos/acme/ops/issues/42",
        json!({"state": "closed", "state_reason": "not_planned"}),
    )
    .await;
    assert_eq!(closed["state"], "closed");
    step(
        "comment_issue",
        json!({"owner": "acme", "repo": "ops", "number": 42, "body": "Fixed by rebooting"}),
        "POST /repos/acme/ops/issues/42/comments",
        json!({"body": "Fixed by rebooting"}),
    )
    .await;
    let pr = step(
        "create_pull_request",
        json!({"owner": "acme", "repo": "ops", "title": "Raise disk alarm", "head": "ada:disk-alarm",
               "base": "main", "draft": true}),
        "POST /repos/acme/ops/pulls",
        json!({"title": "Raise disk alarm", "head": "ada:disk-alarm", "base": "main", "draft": true}),
    )
    .await;
    assert_eq!(pr["number"], 43);

    let page = call(
        &host,
        &inst,
        "list_issues",
        json!({"owner": "acme", "repo": "ops", "state": "all", "per_page": 2, "max_pages": 5}),
    )
    .await;
    let numbers: Vec<u64> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["number"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, [1, 2, 3, 4, 5]);
    assert_eq!(page["next_page"], Value::Null);
    let got = since(&up, n);
    let lines: Vec<String> = got.iter().map(Recorded::line).collect();
    assert_eq!(
        lines,
        [
            "GET /repos/acme/ops/issues?state=all&per_page=2&page=1",
            "GET /repos/acme/ops/issues?state=all&per_page=2&page=2",
            "GET /repos/acme/ops/issues?state=all&per_page=2&page=3",
        ]
    );
    got.iter().for_each(github_headers);
    assert!(up.unmatched().is_empty());
}

#[tokio::test]
async fn validation_errors_and_rate_limits() {
    let host = Host::start(&[]);
    let up = Upstream::start(
        Script::new()
            .on(Exchange::post("/repos/acme/ops/issues")
                .json_field("/title", json!("invalid assignee"))
                .reply_json(422, json!({
                    "message": "Validation Failed",
                    "errors": [{"resource": "Issue", "code": "invalid", "field": "assignees"}],
                    "documentation_url": "https://docs.github.com/rest/issues/issues#create-an-issue"})))
            .on(Exchange::post("/repos/acme/secret/issues").reply_json(404, json!({"message": "Not Found"})))
            .on(Exchange::post("/repos/acme/locked/issues").reply_json(403, json!({"message": "Resource not accessible by personal access token"})))
            .on(Exchange::post("/repos/acme/ops/issues")
                .json_field("/title", json!("one too many"))
                .reply(Reply::json(403, json!({"message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."}))
                    .header("retry-after", "60"))
                .once()),
    )
    .await;
    let inst = github(&host, &up).await;
    let issue_in = |repo: &str, title: &str| json!({"owner": "acme", "repo": repo, "title": title});

    let invalid = host
        .invoke(&inst, "create_issue", issue_in("ops", "invalid assignee"))
        .await;
    let e = assert_error(&invalid, 422, "UPSTREAM_REJECTED");
    assert_eq!(e["message"], "Validation Failed: Issue.assignees invalid");
    assert_eq!(e["details"]["upstreamStatus"], 422);
    assert_eq!(e["category"], "permanent");

    let missing = host
        .invoke(&inst, "create_issue", issue_in("secret", "x"))
        .await;
    assert_error(&missing, 404, "UPSTREAM_NOT_FOUND");
    let refused = host
        .invoke(&inst, "create_issue", issue_in("locked", "x"))
        .await;
    let e = assert_error(&refused, 401, "AUTH_REQUIRED");
    assert_eq!(e["category"], "configuration");

    // Names that are not GitHub names never reach GitHub.
    let before = up.requests().len();
    let sneaky = host
        .invoke(&inst, "create_issue", issue_in("../../user", "x"))
        .await;
    assert_error(&sneaky, 400, "INVALID_PARAMS");
    assert_eq!(up.requests().len(), before);

    // A secondary rate limit (403 + Retry-After) is a rate limit, not an
    // auth failure, and the broker holds GitHub's pause.
    let limited = host
        .invoke(&inst, "create_issue", issue_in("ops", "one too many"))
        .await;
    let e = assert_error(&limited, 429, "RATE_LIMIT_EXCEEDED");
    assert_eq!(e["details"]["retryAfterSecs"], 60);
    assert_eq!(e["category"], "rate_limited");
    let sent = up.requests().len();
    let held = host
        .invoke(&inst, "create_issue", issue_in("ops", "invalid assignee"))
        .await;
    let e = assert_error(&held, 429, "RATE_LIMIT_EXCEEDED");
    assert!(e["details"]["target"].is_string(), "{e}");
    assert_eq!(
        up.requests().len(),
        sent,
        "GitHub was called during its Retry-After"
    );
}

/// GitHub's signature: `sha256=` + HMAC-SHA256 of the body.
pub fn hub_signature(body: &str) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(HOOK_SECRET.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

async fn deliver(
    host: &Host,
    inst: &str,
    event: &str,
    delivery: &str,
    body: &str,
    sig: &str,
) -> (u16, Value) {
    let resp = host
        .client
        .post(format!("{}/v1/webhooks/{inst}", host.url))
        .header("content-type", "application/json")
        .header("x-github-event", event)
        .header("x-github-delivery", delivery)
        .header("x-hub-signature-256", sig)
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn signed_webhooks_become_events() {
    let host = Host::start(&[]);
    let up = Upstream::start(Script::new()).await;
    let inst = github(&host, &up).await;
    let opened = json!({"action": "opened", "issue": {"number": 42, "title": "Server down"},
                        "repository": {"full_name": "acme/ops"}, "sender": {"login": "ada"}})
    .to_string();
    let pr =
        json!({"action": "opened", "number": 43, "pull_request": {"title": "Raise disk alarm"}})
            .to_string();
    let push =
        json!({"ref": "refs/heads/main", "before": "a1", "after": "b2", "commits": [{"id": "b2"}]})
            .to_string();
    let ping = json!({"zen": "Keep it logically awesome.", "hook_id": 1}).to_string();

    let (status, body) = deliver(
        &host,
        &inst,
        "issues",
        "d-0",
        &opened,
        &hub_signature(&push),
    )
    .await;
    assert_eq!(status, 401, "{body}");
    let (status, _) = deliver(&host, &inst, "issues", "d-0", &opened, "sha1=00").await;
    assert_eq!(status, 401);

    for (event, delivery, body) in [
        ("ping", "d-ping", &ping),
        ("issues", "d-1", &opened),
        ("pull_request", "d-2", &pr),
        ("push", "d-3", &push),
    ] {
        let (status, answer) =
            deliver(&host, &inst, event, delivery, body, &hub_signature(body)).await;
        assert_eq!(status, 200, "{event}: {answer}");
    }
    let (status, again) = deliver(
        &host,
        &inst,
        "issues",
        "d-1",
        &opened,
        &hub_signature(&opened),
    )
    .await;
    assert_eq!((status, again["status"].as_str()), (200, Some("DUPLICATE")));

    let (_, events) = host.get(&format!("/events?instance={inst}")).await;
    let got: Vec<(&str, &str)> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["kind"].as_str().unwrap(), e["sourceId"].as_str().unwrap()))
        .collect();
    assert_eq!(
        got,
        [
            ("issues.opened", "d-1"),
            ("pull_request.opened", "d-2"),
            ("push", "d-3")
        ]
    );
    assert_eq!(events["items"][0]["payload"]["issue"]["number"], 42);
}

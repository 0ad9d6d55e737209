//! The flagship scenario, end to end: a Freshdesk ticket with priority 4
//! is created → Freshdesk's automation sends the webhook with the shared
//! secret → a rule posts "Urgent ticket: {{ticket.subject}}" to Slack
//! #urgent-tickets and opens a GitHub issue for it. At the fake Slack and
//! GitHub exactly one request each arrives, with the right token on each,
//! and nothing else is sent anywhere — also when Freshdesk redelivers, and
//! for a ticket of lower priority.

use std::time::{Duration, Instant};

use plugboard_tests::fake::{Exchange, Script, Upstream};
use serde_json::{Value, json};

use super::freshdesk::{self, SECRET};
use super::github::{self, github_headers, issue};
use super::slack::{self, TOKEN as SLACK_TOKEN};
use crate::common::Host;

/// Waits (bounded) until the event's jobs have all reached `state`.
async fn jobs_reach(host: &Host, event: &str, state: &str) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let (_, body) = host.get(&format!("/jobs?event={event}")).await;
        let jobs = body["items"].as_array().unwrap().clone();
        if !jobs.is_empty() && jobs.iter().all(|j| j["state"] == state) {
            return jobs;
        }
        assert!(
            jobs.iter().all(|j| j["state"] != "dead"),
            "a job died: {jobs:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "jobs never became {state}: {jobs:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn urgent_freshdesk_ticket_reaches_slack_and_github_once() {
    let host = Host::start(&[]);
    // Freshdesk's API is never called in this scenario: an empty script
    // answers anything with 501 and records it.
    let freshdesk_api = Upstream::start(Script::new()).await;
    let slack_api = Upstream::start(
        Script::new().on(
            Exchange::post("/api/chat.postMessage")
                .header("authorization", format!("Bearer {SLACK_TOKEN}"))
                .json_body(json!({"channel": "#urgent-tickets", "text": "Urgent ticket: Checkout is down"}))
                .reply_json(200, json!({"ok": true, "channel": "C0URGENT", "ts": "1700000000.000100",
                                        "message": {"type": "message", "text": "Urgent ticket: Checkout is down"}}))
                .once(),
        ),
    )
    .await;
    let github_api = Upstream::start(
        Script::new().on(Exchange::post("/repos/acme/ops/issues")
            .header("authorization", format!("Bearer {}", github::TOKEN))
            .json_body(json!({
                    "title": "Urgent ticket #4242: Checkout is down",
                    "body": "Freshdesk ticket 4242 (priority Urgent) from ops@example.com.",
                    "labels": ["urgent", "freshdesk"]}))
            .reply_json(
                201,
                issue(17, "Urgent ticket #4242: Checkout is down", "open"),
            )
            .once()),
    )
    .await;
    let desk = freshdesk::freshdesk(&host, &freshdesk_api).await;
    let chat = slack::slack(&host, &slack_api, "http://127.0.0.1:9").await;
    let code = github::github(&host, &github_api).await;

    let (status, rule) = host
        .post(
            "/rules",
            json!({
                "name": "urgent Freshdesk tickets to Slack and GitHub",
                "trigger": {"instance": desk, "kind": "ticket.created",
                            "conditions": [{"path": "ticket.priority", "op": "gte", "value": 4}]},
                "actions": [
                    {"instance": chat, "method": "send_message",
                     "parameters": {"channel": "#urgent-tickets", "text": "Urgent ticket: {{ ticket.subject }}"}},
                    {"instance": code, "method": "create_issue",
                     "parameters": {"owner": "acme", "repo": "ops",
                                    "title": "Urgent ticket #{{ ticket.id }}: {{ ticket.subject }}",
                                    "body": "Freshdesk ticket {{ ticket.id }} (priority {{ ticket.priority_name }}) from {{ ticket.requester_email }}.",
                                    "labels": ["urgent", "freshdesk"]}}
                ]
            }),
        )
        .await;
    assert_eq!(status, 201, "{rule}");

    // What the recommended Freshdesk automation template sends.
    let webhook = json!({
        "id": "ticket_created-4242",
        "event": "ticket_created",
        "ticket": {"id": "4242", "subject": "Checkout is down", "priority": "Urgent", "status": "Open",
                   "requester_email": "ops@example.com", "url": "https://acme.freshdesk.com/a/tickets/4242"}
    });
    let (status, accepted) = freshdesk::deliver(&host, &desk, "", &webhook, SECRET).await;
    assert_eq!(status, 200, "{accepted}");
    let event = accepted["events"][0].as_str().unwrap().to_owned();
    let jobs = jobs_reach(&host, &event, "succeeded").await;
    assert_eq!(jobs.len(), 2, "{jobs:?}");

    // Freshdesk retries the delivery, and a low-priority ticket arrives:
    // neither may act.
    let (status, again) = freshdesk::deliver(&host, &desk, "", &webhook, SECRET).await;
    assert_eq!(
        (status, again["status"].as_str()),
        (200, Some("DUPLICATE")),
        "{again}"
    );
    let low = json!({"id": "ticket_created-4243", "event": "ticket_created",
                     "ticket": {"id": 4243, "subject": "Typo on the about page", "priority": "Low"}});
    let (status, _) = freshdesk::deliver(&host, &desk, "", &low, SECRET).await;
    assert_eq!(status, 200);
    let (_, all_jobs) = host.get("/jobs").await;
    assert_eq!(all_jobs["items"].as_array().unwrap().len(), 2, "{all_jobs}");

    // Exactly one message and one issue, each with its own token, and
    // nothing else anywhere.
    slack_api.assert_done();
    github_api.assert_done();
    assert_eq!(slack_api.requests().len(), 1);
    assert_eq!(github_api.requests().len(), 1);
    let message = &slack_api.requests()[0];
    assert_eq!(message.bearer(), Some(SLACK_TOKEN));
    assert_eq!(
        message.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    github_headers(&github_api.requests()[0]);
    assert!(
        freshdesk_api.requests().is_empty(),
        "{:?}",
        freshdesk_api.requests()
    );

    // The job results carry what the platforms answered.
    let by_method = |m: &str| jobs.iter().find(|j| j["method"] == m).unwrap().clone();
    assert_eq!(
        by_method("send_message")["result"]["ts"],
        "1700000000.000100",
        "{jobs:?}"
    );
    assert_eq!(
        by_method("create_issue")["result"]["number"],
        17,
        "{jobs:?}"
    );
}

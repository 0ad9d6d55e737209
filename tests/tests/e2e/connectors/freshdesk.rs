//! Freshdesk: every method's exact request (basic auth `api_key:X`, JSON
//! bodies, pagination), error mapping (validation, 429 + `Retry-After`
//! respected by the broker), the config default for `api_base`, and
//! webhooks with the shared secret.

use plugboard_tests::FRESHDESK_WASM;
use plugboard_tests::fake::{Exchange, Pages, Reply, Script, Upstream};
use serde_json::{Value, json};

use super::{assert_request, call, instance, only_since};
use crate::common::{Host, assert_error};

pub const API_KEY: &str = "fd-key-Zq81xT";
pub const SECRET: &str = "fd-hook-secret-77aB";

/// A Freshdesk ticket as the API returns it.
fn ticket(id: u64, subject: &str, priority: u64) -> Value {
    json!({
        "id": id, "subject": subject, "priority": priority, "status": 2, "requester_id": 501,
        "responder_id": null, "group_id": null, "tags": [], "created_at": "2026-03-01T10:00:00Z",
        "updated_at": "2026-03-01T10:00:00Z", "description_text": "x"
    })
}

/// An instance of the Freshdesk connector pointed at `up`.
pub async fn freshdesk(host: &Host, up: &Upstream) -> String {
    instance(
        host,
        FRESHDESK_WASM,
        json!({ "domain": "acme", "api_base": up.url() }),
        json!({ "api_key": API_KEY, "webhook_secret": SECRET }),
    )
    .await
}

#[tokio::test]
async fn every_method_sends_the_documented_request() {
    let host = Host::start(&[]);
    let up = Upstream::start(
        Script::new()
            .on(Exchange::get("/api/v2/agents/me").reply_json(
                200,
                json!({"id": 9, "contact": {"name": "Ada Agent", "email": "ada@acme.test"}}),
            ))
            .on(Exchange::post("/api/v2/tickets").reply_json(201, ticket(42, "Server down", 4)))
            .on(Exchange::put("/api/v2/tickets/42").reply_json(200, ticket(42, "Server down", 3)))
            .on(Exchange::post("/api/v2/tickets/42/notes").reply_json(
                201,
                json!({"id": 7001, "ticket_id": 42, "body": "<p>Looking</p>", "private": true, "user_id": 9}),
            ))
            .on(Exchange::post("/api/v2/tickets/42/reply").reply_json(
                201,
                json!({"id": 7002, "ticket_id": 42, "body": "<p>On it</p>", "from_email": "help@acme.test"}),
            ))
            .on(Exchange::post("/api/v2/tickets/42/time_entries").reply_json(
                201,
                json!({"id": 88, "time_spent": "01:30", "billable": true, "agent_id": 9}),
            ))
            .on(Exchange::post("/api/v2/contacts").reply_json(
                201,
                json!({"id": 601, "name": "Grace", "email": "grace@example.com", "active": false}),
            ))
            .extend(
                Pages::new(
                    "/api/v2/tickets",
                    vec![
                        json!([ticket(1, "a", 1), ticket(2, "b", 2)]),
                        json!([ticket(3, "c", 3), ticket(4, "d", 4)]),
                        json!([ticket(5, "e", 1)]),
                    ],
                )
                .keep_query("per_page", "2")
                .link_headers()
                .exchanges(),
            )
            .on(Exchange::get("/api/v2/search/tickets")
                .query("query", "\"priority:4 AND status:2\"")
                .reply_json(200, json!({"results": [ticket(42, "Server down", 4)], "total": 31}))),
    )
    .await;
    let inst = freshdesk(&host, &up).await;
    let auth = |r: &plugboard_tests::fake::Recorded| {
        assert_eq!(
            r.basic(),
            Some((API_KEY.to_owned(), "X".to_owned())),
            "{r:?}"
        );
        assert_eq!(r.header("accept"), Some("application/json"));
    };

    // test-connection: GET /api/v2/agents/me.
    let (status, body) = host
        .post(&format!("/instances/{inst}/test"), json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["data"]["message"],
        "connected as Ada Agent <ada@acme.test>"
    );
    let r = only_since(&up, 0);
    assert_request(&r, "GET /api/v2/agents/me", None);
    auth(&r);

    let mut n = up.requests().len();
    let mut step = async |method: &str, params: Value, line: &str, body: Option<Value>| {
        let data = call(&host, &inst, method, params).await;
        let r = only_since(&up, n);
        assert_request(&r, line, body);
        auth(&r);
        n += 1;
        data
    };

    let created = step(
        "create_ticket",
        json!({"subject": "Server down", "description": "<p>All of it</p>", "email": "ops@example.com",
               "priority": 4, "status": 2, "tags": ["outage"], "custom_fields": {"cf_site": "eu-1"}}),
        "POST /api/v2/tickets",
        Some(json!({"subject": "Server down", "description": "<p>All of it</p>", "email": "ops@example.com",
                    "priority": 4, "status": 2, "tags": ["outage"], "custom_fields": {"cf_site": "eu-1"}})),
    )
    .await;
    assert_eq!(created["id"], 42);
    assert_eq!(created["priority"], 4);
    assert_eq!(created["created_at"], "2026-03-01T10:00:00Z");

    step(
        "update_ticket",
        json!({"id": 42, "priority": 3, "type": "Incident", "due_by": "2026-03-02T10:00:00Z"}),
        "PUT /api/v2/tickets/42",
        Some(json!({"priority": 3, "type": "Incident", "due_by": "2026-03-02T10:00:00Z"})),
    )
    .await;
    step(
        "assign_ticket",
        json!({"id": 42, "responder_id": 9, "group_id": 3}),
        "PUT /api/v2/tickets/42",
        Some(json!({"responder_id": 9, "group_id": 3})),
    )
    .await;
    step(
        "change_status",
        json!({"id": 42, "status": 4}),
        "PUT /api/v2/tickets/42",
        Some(json!({"status": 4})),
    )
    .await;
    let note = step(
        "add_note",
        json!({"id": 42, "body": "<p>Looking</p>"}),
        "POST /api/v2/tickets/42/notes",
        Some(json!({"body": "<p>Looking</p>", "private": true})),
    )
    .await;
    assert_eq!(note["id"], 7001);
    step(
        "add_reply",
        json!({"id": 42, "body": "<p>On it</p>", "cc_emails": ["boss@example.com"]}),
        "POST /api/v2/tickets/42/reply",
        Some(json!({"body": "<p>On it</p>", "cc_emails": ["boss@example.com"]})),
    )
    .await;
    let entry = step(
        "add_time_entry",
        json!({"id": 42, "time_spent": "01:30", "note": "Rebooted", "billable": true}),
        "POST /api/v2/tickets/42/time_entries",
        Some(json!({"time_spent": "01:30", "note": "Rebooted", "billable": true})),
    )
    .await;
    assert_eq!(entry["time_spent"], "01:30");
    let contact = step(
        "create_contact",
        json!({"name": "Grace", "email": "grace@example.com", "tags": ["vip"]}),
        "POST /api/v2/contacts",
        Some(json!({"name": "Grace", "email": "grace@example.com", "tags": ["vip"]})),
    )
    .await;
    assert_eq!(contact["id"], 601);

    // Pagination: two pages followed through the Link header, the third
    // left for later.
    let page = call(
        &host,
        &inst,
        "list_tickets",
        json!({"per_page": 2, "max_pages": 2}),
    )
    .await;
    let ids: Vec<u64> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [1, 2, 3, 4]);
    assert_eq!(page["next_page"], 3);
    let lines: Vec<String> = super::since(&up, n).iter().map(|r| r.line()).collect();
    assert_eq!(
        lines,
        [
            "GET /api/v2/tickets?per_page=2&page=1",
            "GET /api/v2/tickets?per_page=2&page=2"
        ]
    );
    n += 2;

    let found = call(
        &host,
        &inst,
        "search_tickets",
        json!({"query": "priority:4 AND status:2"}),
    )
    .await;
    assert_eq!(found["total"], 31);
    assert_eq!(found["next_page"], 2);
    assert_eq!(found["items"][0]["id"], 42);
    let r = only_since(&up, n);
    assert_request(
        &r,
        "GET /api/v2/search/tickets?query=%22priority%3A4%20AND%20status%3A2%22&page=1",
        None,
    );
    auth(&r);
    assert!(up.unmatched().is_empty(), "{:?}", up.unmatched());
}

#[tokio::test]
async fn the_api_base_defaults_to_the_customer_domain() {
    let host = Host::start(&[]);
    let (status, body) = host.upload(FRESHDESK_WASM).await;
    assert!(status.is_success(), "{body}");
    let (status, body) = host
        .post(
            "/instances",
            json!({"connector": "freshdesk", "name": "acme", "config": {"domain": "acme"},
                   "credentials": {"api_key": API_KEY}}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["config"]["api_base"], "https://acme.freshdesk.com");
    assert_eq!(
        body["allowedHosts"],
        json!(["https://acme.freshdesk.com:443"])
    );
    // Neither a domain nor a base URL: refused, naming the problem.
    let refused = host
        .post(
            "/instances",
            json!({"connector": "freshdesk", "name": "x", "config": {}}),
        )
        .await;
    assert_error(&refused, 400, "INVALID_CONFIG");
    let refused = host
        .post(
            "/instances",
            json!({"connector": "freshdesk", "name": "x", "config": {"domain": "evil.com/"}}),
        )
        .await;
    assert_error(&refused, 400, "INVALID_CONFIG");
}

#[tokio::test]
async fn errors_map_to_codes_and_a_429_pauses_the_upstream() {
    let host = Host::start(&[]);
    let up = Upstream::start(
        Script::new()
            .on(Exchange::post("/api/v2/tickets")
                .json_field("/email", json!("not-an-email"))
                .reply_json(
                    400,
                    json!({"description": "Validation failed", "errors": [
                        {"field": "email", "message": "It should be a valid email address", "code": "invalid_value"}
                    ]}),
                ))
            .on(Exchange::post("/api/v2/contacts")
                .reply(Reply::rate_limited(120).header("x-ratelimit-total", "100").header("x-ratelimit-remaining", "0"))
                .once())
            .on(Exchange::put("/api/v2/tickets/404").reply_json(
                404,
                json!({"code": "access_denied", "message": "no such ticket"}),
            )),
    )
    .await;
    let inst = freshdesk(&host, &up).await;

    // Refused by the schema before the guest runs: nothing is sent.
    let bad = host
        .invoke(
            &inst,
            "create_ticket",
            json!({"subject": "s", "description": "d", "email": "a@b.c", "priority": 5}),
        )
        .await;
    assert_error(&bad, 400, "INVALID_PARAMS");
    let typo = host
        .invoke(
            &inst,
            "change_status",
            json!({"id": 1, "status": 4, "stauts": 5}),
        )
        .await;
    assert_error(&typo, 400, "INVALID_PARAMS");
    // Refused by the connector: no requester.
    let no_requester = host
        .invoke(
            &inst,
            "create_ticket",
            json!({"subject": "s", "description": "d"}),
        )
        .await;
    let e = assert_error(&no_requester, 400, "INVALID_PARAMS");
    assert!(
        e["message"].as_str().unwrap().contains("requester_id"),
        "{e}"
    );
    assert!(up.requests().is_empty(), "{:?}", up.requests());

    // Freshdesk's validation error: the field errors reach the caller.
    let invalid = host
        .invoke(
            &inst,
            "create_ticket",
            json!({"subject": "s", "description": "d", "email": "not-an-email"}),
        )
        .await;
    let e = assert_error(&invalid, 422, "UPSTREAM_REJECTED");
    assert_eq!(e["category"], "permanent");
    assert_eq!(e["details"]["upstreamStatus"], 400);
    assert_eq!(
        e["message"],
        "Validation failed: email: It should be a valid email address (invalid_value)"
    );
    let missing = host
        .invoke(&inst, "change_status", json!({"id": 404, "status": 4}))
        .await;
    let e = assert_error(&missing, 404, "UPSTREAM_NOT_FOUND");
    assert_eq!(e["category"], "permanent");

    // 429 with Retry-After: rate limited, retryable, with the wait.
    let before = up.requests().len();
    let limited = host
        .invoke(
            &inst,
            "create_contact",
            json!({"name": "Bo", "email": "bo@example.com"}),
        )
        .await;
    let e = assert_error(&limited, 429, "RATE_LIMIT_EXCEEDED");
    assert_eq!(e["category"], "rate_limited");
    assert_eq!(e["retryable"], true);
    assert_eq!(e["details"]["retryAfterSecs"], 120);
    assert_eq!(up.requests().len(), before + 1);

    // The broker learned the pause: the next call to Freshdesk is refused
    // without reaching it (it could not be admitted before its deadline).
    let held = host
        .invoke(
            &inst,
            "create_contact",
            json!({"name": "Bo", "email": "bo@example.com"}),
        )
        .await;
    let e = assert_error(&held, 429, "RATE_LIMIT_EXCEEDED");
    assert_eq!(e["category"], "rate_limited");
    assert!(
        e["details"]["target"]
            .as_str()
            .unwrap()
            .contains("127.0.0.1"),
        "{e}"
    );
    assert_eq!(
        up.requests().len(),
        before + 1,
        "the paused upstream was called"
    );
    let (_, health) = host.get(&format!("/instances/{inst}/health")).await;
    let budget = &health["upstreams"][0]["budget"];
    assert!(budget["pausedUntil"].is_string(), "{health}");
    assert_eq!(
        budget["rateLimit"]["requests"], 100,
        "the manifest's rate: {health}"
    );
}

/// Delivers a Freshdesk webhook with `secret` in the secret header.
pub async fn deliver(
    host: &Host,
    inst: &str,
    query: &str,
    body: &Value,
    secret: &str,
) -> (u16, Value) {
    let resp = host
        .client
        .post(format!("{}/v1/webhooks/{inst}{query}", host.url))
        .header("content-type", "application/json")
        .header("x-webhook-secret", secret)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn webhooks_need_the_secret_and_become_events() {
    let host = Host::start(&[]);
    let up = Upstream::start(Script::new()).await;
    let inst = freshdesk(&host, &up).await;
    let created = json!({"id": "ticket_created-42", "event": "ticket_created",
                         "ticket": {"id": "42", "subject": "Server down", "priority": "Urgent", "status": "Open"}});

    for wrong in ["", "fd-hook-secret-77aC", "FD-HOOK-SECRET-77AB"] {
        let (status, body) = deliver(&host, &inst, "", &created, wrong).await;
        assert_eq!(status, 401, "{body}");
        assert_eq!(body["error"]["code"], "WEBHOOK_SIGNATURE_INVALID");
    }
    assert_eq!(host.get("/events").await.1["items"], json!([]));

    let (status, body) = deliver(&host, &inst, "", &created, SECRET).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("ACCEPTED")),
        "{body}"
    );
    // Redelivered (same top-level id): a no-op.
    let (status, body) = deliver(&host, &inst, "", &created, SECRET).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("DUPLICATE")),
        "{body}"
    );

    // The simple format, event named in the URL; a note; a contact.
    let resolved = json!({"freshdesk_webhook": {"ticket_id": 42, "ticket_subject": "Server down",
                          "ticket_status": "Resolved", "ticket_priority": 4}});
    let (status, body) = deliver(&host, &inst, "?event=ticket_resolved", &resolved, SECRET).await;
    assert_eq!(status, 200, "{body}");
    let note = json!({"event": "note_created", "ticket": {"id": 42}, "note": {"id": 7001, "body": "hi", "private": true}});
    assert_eq!(deliver(&host, &inst, "", &note, SECRET).await.0, 200);
    let contact = json!({"event": "contact_updated", "contact": {"id": "601", "name": "Grace", "updated_at": "2026-03-01T11:00:00Z"}});
    assert_eq!(deliver(&host, &inst, "", &contact, SECRET).await.0, 200);
    // No event name anywhere: refused, and nothing recorded.
    let (status, body) = deliver(&host, &inst, "", &json!({"ticket": {"id": 1}}), SECRET).await;
    assert_eq!(status, 400, "{body}");

    let (_, events) = host.get(&format!("/events?instance={inst}")).await;
    let items = events["items"].as_array().unwrap();
    let kinds: Vec<&str> = items.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "ticket.created",
            "ticket.resolved",
            "note.created",
            "contact.updated"
        ]
    );
    assert_eq!(items[0]["sourceId"], "ticket_created:42");
    assert_eq!(
        items[0]["payload"]["ticket"],
        json!({"id": 42, "subject": "Server down", "priority": 4, "priority_name": "Urgent",
               "status": 2, "status_name": "Open"})
    );
    assert_eq!(items[1]["payload"]["ticket"]["status"], 4);
    assert_eq!(items[2]["payload"]["note"]["id"], 7001);
    assert_eq!(
        items[3]["sourceId"],
        "contact_updated:601:2026-03-01T11:00:00Z"
    );
    assert!(up.requests().is_empty(), "webhooks made outbound calls");
}

#[tokio::test]
async fn server_errors_are_retried_and_slow_answers_time_out() {
    let host = Host::start(&[
        "--egress-first-byte-timeout-ms",
        "300",
        "--egress-retry-attempts",
        "2",
    ]);
    let up = Upstream::start(
        Script::new()
            .on(Exchange::get("/api/v2/tickets")
                .reply_json(503, json!({"message": "maintenance"}))
                .once())
            .on(Exchange::get("/api/v2/tickets").reply_json(200, json!([ticket(1, "a", 1)])))
            .on(Exchange::get("/api/v2/search/tickets").reply(
                Reply::json(200, json!({"results": [], "total": 0}))
                    .delay(std::time::Duration::from_secs(30)),
            )),
    )
    .await;
    let inst = freshdesk(&host, &up).await;

    // A GET answered 503 is repeated by the host; the connector sees the 200.
    let page = call(&host, &inst, "list_tickets", json!({})).await;
    assert_eq!(page["items"][0]["id"], 1);
    let tickets = up.requests_to("GET", "/api/v2/tickets");
    assert_eq!(tickets.len(), 2, "{tickets:?}");
    assert!(
        tickets
            .iter()
            .all(|t| t.matched.as_deref() == Some("GET /api/v2/tickets")),
        "{tickets:?}"
    );

    // An answer that does not come in time: a timeout, after the retries.
    let slow = host
        .invoke(&inst, "search_tickets", json!({"query": "status:2"}))
        .await;
    let e = assert_error(&slow, 504, "UPSTREAM_TIMEOUT");
    assert_eq!(e["category"], "temporary");
    assert_eq!(up.requests_to("GET", "/api/v2/search/tickets").len(), 2);
}

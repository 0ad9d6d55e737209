//! Webhooks, events, rules and jobs end to end: verified ingress (the guest
//! provably not run on a bad signature), de-duplication, a rule turning a
//! signed "ticket created" webhook into exactly one message at a second
//! instance's upstream — also across a crash — retries, dead letters and
//! replay, rule validation, and idempotency keys on invocations.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hmac::Mac as _;
use plugboard_tests::{DESK_WASM, PAYHOOKS_WASM};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{Host, assert_error, serve_loopback};

const SECRET: &str = "whsec-desk-Pq4Rs7";

/// A chat API: `POST /messages` records the message and answers 201, or
/// 503 while `down`.
struct Chat {
    url: String,
    messages: Arc<Mutex<Vec<Value>>>,
    attempts: Arc<Mutex<u32>>,
    down: Arc<Mutex<bool>>,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl Chat {
    async fn start() -> Chat {
        use axum::response::IntoResponse;
        let messages: Arc<Mutex<Vec<Value>>> = Arc::default();
        let attempts: Arc<Mutex<u32>> = Arc::default();
        let down: Arc<Mutex<bool>> = Arc::default();
        let (m, a, d) = (messages.clone(), attempts.clone(), down.clone());
        let app = axum::Router::new().route(
            "/messages",
            axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
                let (m, a, d) = (m.clone(), a.clone(), d.clone());
                async move {
                    *a.lock().unwrap() += 1;
                    if *d.lock().unwrap() {
                        return (
                            StatusCode::SERVICE_UNAVAILABLE,
                            axum::Json(json!({"error": "maintenance"})),
                        )
                            .into_response();
                    }
                    m.lock().unwrap().push(body);
                    (StatusCode::CREATED, axum::Json(json!({"ok": true}))).into_response()
                }
            }),
        );
        let (url, tx) = serve_loopback(app).await;
        Chat {
            url,
            messages,
            attempts,
            down,
            _shutdown: tx,
        }
    }

    fn messages(&self) -> Vec<Value> {
        self.messages.lock().unwrap().clone()
    }
}

/// Uploads desk and creates the source and target instances.
async fn setup(host: &Host, chat: &Chat) -> (String, String) {
    let (status, body) = host.upload(DESK_WASM).await;
    assert!(status.is_success(), "{body}");
    let mut ids = Vec::new();
    for name in ["source", "target"] {
        let (status, body) = host
            .post(
                "/instances",
                json!({
                    "connector": "desk", "name": name,
                    "config": { "base_url": chat.url },
                    "credentials": { "webhook_secret": SECRET },
                }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        ids.push(body["id"].as_str().unwrap().to_owned());
    }
    (ids[0].clone(), ids[1].clone())
}

async fn add_rule(host: &Host, source: &str, target: &str) -> String {
    let (status, body) = host
        .post(
            "/rules",
            json!({
                "name": "urgent tickets to chat",
                "trigger": {
                    "instance": source, "kind": "ticket.created",
                    "conditions": [{ "path": "ticket.priority", "op": "gte", "value": 4 }],
                },
                "actions": [{
                    "instance": target, "method": "post_message",
                    "parameters": { "channel": "#urgent-tickets", "text": "Urgent ticket: {{ ticket.subject }}" },
                }],
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

fn sign(body: &str) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

async fn deliver(
    host: &Host,
    instance: &str,
    body: &str,
    signature: &str,
    delivery: &str,
) -> (StatusCode, String) {
    let resp = host
        .client
        .post(format!("{}/v1/webhooks/{instance}", host.url))
        .header("content-type", "application/json")
        .header("x-desk-signature", signature)
        .header("x-desk-delivery", delivery)
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    (resp.status(), resp.text().await.unwrap())
}

fn ticket(id: u32, priority: u32, subject: &str) -> String {
    json!({ "type": "ticket.created", "ticket": { "id": id, "priority": priority, "subject": subject } }).to_string()
}

/// Waits (bounded) until the event's jobs are all in `state`.
async fn jobs_reach(host: &Host, event: &str, state: &str) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let (_, body) = host.get(&format!("/jobs?event={event}")).await;
        let jobs = body["items"].as_array().unwrap().clone();
        if !jobs.is_empty() && jobs.iter().all(|j| j["state"] == state) {
            return jobs;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "jobs never became {state}: {jobs:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn invocations(host: &Host, instance: &str) -> u64 {
    host.get(&format!("/instances/{instance}/stats")).await.1["invocations"]["count"]
        .as_u64()
        .unwrap()
}

#[tokio::test]
async fn a_signed_webhook_runs_the_rule_once() {
    let host = Host::start(&[]);
    let chat = Chat::start().await;
    let (source, target) = setup(&host, &chat).await;
    add_rule(&host, &source, &target).await;
    let body = ticket(42, 4, "Server down");

    // Bad signatures are refused before any guest code runs.
    let flipped_body = body.replacen("42", "43", 1);
    let mut bad_sig = sign(&body);
    let last = bad_sig.pop().unwrap();
    bad_sig.push(if last == '0' { '1' } else { '0' });
    for (b, s) in [
        (flipped_body.as_str(), sign(&body)),
        (body.as_str(), bad_sig),
        (body.as_str(), String::new()),
    ] {
        let (status, text) = deliver(&host, &source, b, &s, "d-0").await;
        assert_eq!(status, 401, "{text}");
        assert!(text.contains("WEBHOOK_SIGNATURE_INVALID"), "{text}");
    }
    assert_eq!(
        invocations(&host, &source).await,
        0,
        "the guest ran on a bad signature"
    );
    assert_eq!(host.get("/events").await.1["items"], json!([]));

    // A good one: event stored, rule matched, action ran exactly once.
    let (status, text) = deliver(&host, &source, &body, &sign(&body), "d-1").await;
    assert_eq!(status, 200, "{text}");
    let accepted: Value = serde_json::from_str(&text).unwrap();
    let event = accepted["events"][0].as_str().unwrap().to_owned();
    let jobs = jobs_reach(&host, &event, "succeeded").await;
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0]["parameters"]["text"], "Urgent ticket: Server down");
    assert_eq!(
        chat.messages(),
        [json!({ "channel": "#urgent-tickets", "text": "Urgent ticket: Server down" })]
    );

    // The same delivery again: success, no side effects.
    let (status, text) = deliver(&host, &source, &body, &sign(&body), "d-1").await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("DUPLICATE"), "{text}");
    // A low-priority ticket is stored but matches no rule.
    let low = ticket(43, 2, "Typo");
    let (status, _) = deliver(&host, &source, &low, &sign(&low), "d-2").await;
    assert_eq!(status, 200);
    let (_, events) = host
        .get(&format!("/events?instance={source}&kind=ticket.created"))
        .await;
    assert_eq!(events["items"].as_array().unwrap().len(), 2, "{events}");
    assert_eq!(
        events["items"][0]["payload"]["ticket"]["subject"],
        "Server down"
    );
    assert_eq!(chat.messages().len(), 1);
    assert_eq!(
        host.get("/jobs").await.1["items"].as_array().unwrap().len(),
        1
    );

    // A handshake is answered with the connector's response.
    let hello = json!({ "challenge": "ch-123" }).to_string();
    let (status, text) = deliver(&host, &source, &hello, &sign(&hello), "d-3").await;
    assert_eq!((status.as_u16(), text.as_str()), (200, "ch-123"));
}

#[tokio::test]
async fn an_accepted_event_survives_a_crash_and_acts_once() {
    let root = Arc::new(tempfile::tempdir().unwrap());
    let mut host = Host::start_in(root.clone(), &["--jobs-paused"]);
    let chat = Chat::start().await;
    let (source, target) = setup(&host, &chat).await;
    add_rule(&host, &source, &target).await;
    let body = ticket(7, 5, "Payments failing");
    let (status, text) = deliver(&host, &source, &body, &sign(&body), "d-7").await;
    assert_eq!(status, 200, "{text}");
    let event = serde_json::from_str::<Value>(&text).unwrap()["events"][0]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, jobs) = host.get(&format!("/jobs?event={event}")).await;
    assert_eq!(jobs["items"][0]["state"], "pending", "{jobs}");
    host.kill();
    assert!(chat.messages().is_empty());

    let host = Host::start_in(root.clone(), &[]);
    jobs_reach(&host, &event, "succeeded").await;
    assert_eq!(chat.messages().len(), 1, "{:?}", chat.messages());
}

#[tokio::test]
async fn failing_actions_retry_then_dead_letter_and_replay() {
    let host = Host::start(&[
        "--jobs-max-attempts",
        "3",
        "--jobs-backoff-ms",
        "50",
        "--egress-retry-attempts",
        "1",
    ]);
    let chat = Chat::start().await;
    let (source, target) = setup(&host, &chat).await;
    add_rule(&host, &source, &target).await;
    *chat.down.lock().unwrap() = true;
    let body = ticket(9, 4, "Disk full");
    let (_, text) = deliver(&host, &source, &body, &sign(&body), "d-9").await;
    let event = serde_json::from_str::<Value>(&text).unwrap()["events"][0]
        .as_str()
        .unwrap()
        .to_owned();
    let jobs = jobs_reach(&host, &event, "dead").await;
    assert_eq!(jobs[0]["attempts"], 3);
    assert_eq!(jobs[0]["lastError"]["code"], "UPSTREAM_ERROR", "{jobs:?}");
    assert_eq!(*chat.attempts.lock().unwrap(), 3);
    let (_, dead) = host.get("/jobs?state=dead").await;
    assert_eq!(dead["items"].as_array().unwrap().len(), 1);

    *chat.down.lock().unwrap() = false;
    let job = jobs[0]["id"].as_str().unwrap();
    let (status, body) = host.post(&format!("/jobs/{job}/replay"), json!({})).await;
    assert_eq!(status, 200, "{body}");
    jobs_reach(&host, &event, "succeeded").await;
    assert_eq!(chat.messages().len(), 1);
    let again = host.post(&format!("/jobs/{job}/replay"), json!({})).await;
    assert_error(&again, 409, "CONFLICT");
}

#[tokio::test]
async fn invalid_rules_are_refused_when_saved() {
    let host = Host::start(&[]);
    let chat = Chat::start().await;
    let (source, target) = setup(&host, &chat).await;
    let rule = |trigger: Value, action: Value| json!({ "name": "r", "trigger": trigger, "actions": [action] });
    let trigger = json!({ "instance": source, "kind": "ticket.created" });
    let action = |method: &str, text: &str| json!({ "instance": target, "method": method, "parameters": { "channel": "c", "text": text } });
    let cases = [
        (
            rule(trigger.clone(), action("no_such_method", "x")),
            "no method",
        ),
        (
            rule(
                trigger.clone(),
                action("post_message", "{{ ticket.subject "),
            ),
            "template",
        ),
        (
            rule(
                json!({ "kind": "k", "conditions": [{ "path": "ticket..id", "op": "eq", "value": 1 }] }),
                action("post_message", "x"),
            ),
            "path",
        ),
        (
            rule(
                json!({ "kind": "k", "conditions": [{ "path": "a", "op": "in", "value": 1 }] }),
                action("post_message", "x"),
            ),
            "array",
        ),
        (
            rule(
                trigger.clone(),
                json!({ "instance": "inst_nope", "method": "post_message" }),
            ),
            "does not exist",
        ),
        (
            rule(
                json!({ "kind": "k", "conditions": [{ "path": "a", "op": "like", "value": 1 }] }),
                action("post_message", "x"),
            ),
            "unknown variant",
        ),
    ];
    for (body, reason) in cases {
        let answer = host.post("/rules", body).await;
        let code = answer.1["error"]["code"].as_str().unwrap_or("").to_owned();
        assert!(
            answer.0 == 400 && (code == "INVALID_RULE" || code == "INVALID_REQUEST"),
            "{answer:?}"
        );
        assert!(
            answer.1["error"]["message"]
                .as_str()
                .unwrap()
                .contains(reason),
            "{reason}: {answer:?}"
        );
    }
    assert_eq!(host.get("/rules").await.1["items"], json!([]));
}

#[tokio::test]
async fn idempotency_keys_return_the_first_result() {
    let host = Host::start(&[]);
    let chat = Chat::start().await;
    let (_, target) = setup(&host, &chat).await;
    let call = |text: &str, key: &str| {
        host.client
            .post(host.v1(&format!("/instances/{target}/methods/post_message")))
            .bearer_auth(&host.token)
            .header("idempotency-key", key)
            .json(&json!({ "parameters": { "channel": "c", "text": text } }))
            .send()
    };
    let first: Value = call("hello", "k-1").await.unwrap().json().await.unwrap();
    let second: Value = call("hello", "k-1").await.unwrap().json().await.unwrap();
    assert_eq!(first["data"], second["data"]);
    assert_eq!(first["invocationId"], second["invocationId"]);
    assert_eq!(second["replayed"], true);
    assert_eq!(chat.messages().len(), 1);
    let conflict = call("other", "k-1").await.unwrap();
    assert_eq!(conflict.status(), 409);
    let body: Value = conflict.json().await.unwrap();
    assert_eq!(body["error"]["code"], "IDEMPOTENCY_CONFLICT");
    call("hello", "k-2").await.unwrap();
    assert_eq!(chat.messages().len(), 2);
}

#[tokio::test]
async fn stripe_style_deliveries_are_timed_and_deduplicated() {
    let host = Host::start(&[]);
    let (status, body) = host.upload(PAYHOOKS_WASM).await;
    assert!(status.is_success(), "{body}");
    let (status, body) = host
        .post(
            "/instances",
            json!({ "connector": "payhooks", "name": "pay", "credentials": { "signing_secret": "whsec_e2e_Kd9" } }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let inst = body["id"].as_str().unwrap().to_owned();
    let payload = json!({ "id": "evt_1Abc", "type": "payment_intent.succeeded",
                          "data": { "object": { "id": "pi_1", "amount": 2000 } } })
    .to_string();
    let header = |t: i64, body: &str| {
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"whsec_e2e_Kd9").unwrap();
        mac.update(format!("{t}.{body}").as_bytes());
        format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
    };
    let send = |sig: String| {
        host.client
            .post(format!("{}/v1/webhooks/{inst}", host.url))
            .header("stripe-signature", sig)
            .body(payload.clone())
            .send()
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;

    // Older than the tolerance, or a timestamp that does not match the
    // signature: refused, and the guest never ran.
    assert_eq!(
        send(header(now - 301, &payload)).await.unwrap().status(),
        401
    );
    let forged = header(now, &payload).replacen(&format!("t={now}"), &format!("t={}", now - 1), 1);
    assert_eq!(send(forged).await.unwrap().status(), 401);
    assert_eq!(invocations(&host, &inst).await, 0);

    // Fresh: accepted once; the same delivery id again is a no-op success.
    let first = send(header(now, &payload)).await.unwrap();
    assert_eq!(first.status(), 200);
    let again = send(header(now, &payload)).await.unwrap();
    assert_eq!(again.status(), 200);
    assert!(again.text().await.unwrap().contains("DUPLICATE"));
    assert_eq!(invocations(&host, &inst).await, 1);
    let (_, events) = host.get(&format!("/events?instance={inst}")).await;
    let items = events["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{events}");
    assert_eq!(items[0]["kind"], "payment_intent.succeeded");
    assert_eq!(items[0]["deliveryId"], "evt_1Abc");
    assert_eq!(items[0]["payload"]["amount"], 2000);
}

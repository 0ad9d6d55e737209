//! Slack: every method's exact request (bearer bot token on the Web API
//! only, JSON and form bodies, the three-step external upload), `ok: false`
//! bodies and 429s mapped to error codes, and signed Events API and
//! interactivity deliveries.

use hmac::Mac as _;
use plugboard_tests::SLACK_WASM;
use plugboard_tests::fake::{Exchange, Recorded, Reply, Script, Upstream};
use serde_json::{Value, json};

use super::{assert_request, call, instance, only_since, since};
use crate::common::{Host, assert_error};

pub const TOKEN: &str = "xoxb-1111-2222-fakeBotToken";
pub const SIGNING_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";

/// An instance of the Slack connector whose Web API is `up` (under
/// `/api`) and whose upload host is `files` (another origin, like
/// `files.slack.com`: the token must not reach it).
pub async fn slack(host: &Host, up: &Upstream, files: &str) -> String {
    instance(
        host,
        SLACK_WASM,
        json!({ "api_base": format!("{}/api", up.url()), "upload_base": files }),
        json!({ "bot_token": TOKEN, "signing_secret": SIGNING_SECRET }),
    )
    .await
}

/// `POST /api/{method}` answering `{"ok": true, …}`.
pub fn ok(method: &str, body: Value) -> Exchange {
    let mut answer = json!({ "ok": true });
    if let (Some(a), Some(b)) = (answer.as_object_mut(), body.as_object()) {
        a.extend(b.clone());
    }
    Exchange::post(&format!("/api/{method}")).reply_json(200, answer)
}

#[track_caller]
fn bearer(r: &Recorded) {
    assert_eq!(r.bearer(), Some(TOKEN), "{r:?}");
}

#[tokio::test]
async fn every_method_sends_the_documented_request() {
    let host = Host::start(&[]);
    let message = |ts: &str, text: &str| json!({"type": "message", "user": "U0BOT", "text": text, "ts": ts, "bot_id": "B1"});
    let files = Upstream::start(
        Script::new().on(Exchange::post("/upload/v1/CwABAAAAXwo")
            .reply(Reply::text(200, "OK - 13"))
            .once()),
    )
    .await;
    let up = Upstream::start(
        Script::new()
            .on(ok("auth.test", json!({"url": "https://acme.slack.com/", "team": "Acme", "user": "plugbot",
                                        "team_id": "T1", "user_id": "U0BOT", "bot_id": "B1"})))
            .on(ok("chat.postMessage", json!({"channel": "C0URGENT", "ts": "1700000000.000100",
                                               "message": message("1700000000.000100", "Server down")})))
            .on(ok("chat.update", json!({"channel": "C0URGENT", "ts": "1700000000.000100", "text": "Server back",
                                          "message": message("1700000000.000100", "Server back")})))
            .on(ok("conversations.create", json!({"channel": {"id": "C0INC42", "name": "incident-42", "is_private": true, "created": 1700000000}})))
            .on(ok("conversations.invite", json!({"channel": {"id": "C0INC42", "name": "incident-42"}})))
            .on(ok("files.getUploadURLExternal", json!({
                "upload_url": format!("{}/upload/v1/CwABAAAAXwo", files.url()), "file_id": "F0UPLOAD"})))
            .on(ok("files.completeUploadExternal", json!({"files": [{"id": "F0UPLOAD", "title": "Disk report"}]})))
            .on(ok("users.profile.set", json!({"profile": {"status_text": "On call", "status_emoji": ":pager:",
                                                            "status_expiration": 1700003600, "real_name": "Ada"}}))),
    )
    .await;
    let inst = slack(&host, &up, files.url()).await;

    let (status, body) = host
        .post(&format!("/instances/{inst}/test"), json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["message"], "connected to Acme as plugbot");
    let r = only_since(&up, 0);
    assert_request(&r, "POST /api/auth.test", Some(json!({})));
    bearer(&r);
    let mut n = 1;

    // Text.
    let posted = call(
        &host,
        &inst,
        "send_message",
        json!({"channel": "C0URGENT", "text": "Server down"}),
    )
    .await;
    assert_eq!(posted["ts"], "1700000000.000100");
    assert_eq!(posted["channel"], "C0URGENT");
    let r = only_since(&up, n);
    assert_request(
        &r,
        "POST /api/chat.postMessage",
        Some(json!({"channel": "C0URGENT", "text": "Server down"})),
    );
    assert_eq!(
        r.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    bearer(&r);
    n += 1;

    // Block Kit, as a thread reply broadcast to the channel.
    let blocks = json!([
        {"type": "section", "text": {"type": "mrkdwn", "text": "*Ticket 42* is urgent"}},
        {"type": "actions", "elements": [{"type": "button", "action_id": "ack",
            "text": {"type": "plain_text", "text": "Acknowledge"}, "value": "42"}]}
    ]);
    call(
        &host,
        &inst,
        "send_message",
        json!({"channel": "C0URGENT", "text": "Ticket 42 is urgent", "blocks": blocks,
               "thread_ts": "1699999999.000001", "reply_broadcast": true}),
    )
    .await;
    let r = only_since(&up, n);
    assert_request(
        &r,
        "POST /api/chat.postMessage",
        Some(
            json!({"channel": "C0URGENT", "text": "Ticket 42 is urgent", "blocks": blocks,
                    "thread_ts": "1699999999.000001", "reply_broadcast": true}),
        ),
    );
    bearer(&r);
    n += 1;

    let updated = call(
        &host,
        &inst,
        "update_message",
        json!({"channel": "C0URGENT", "ts": "1700000000.000100", "text": "Server back"}),
    )
    .await;
    assert_eq!(updated["message"]["text"], "Server back");
    let r = only_since(&up, n);
    assert_request(
        &r,
        "POST /api/chat.update",
        Some(json!({"channel": "C0URGENT", "ts": "1700000000.000100", "text": "Server back"})),
    );
    bearer(&r);
    n += 1;

    let channel = call(
        &host,
        &inst,
        "create_channel",
        json!({"name": "incident-42", "is_private": true}),
    )
    .await;
    assert_eq!(channel["id"], "C0INC42");
    assert_eq!(channel["created"], 1700000000);
    let r = only_since(&up, n);
    assert_request(
        &r,
        "POST /api/conversations.create",
        Some(json!({"name": "incident-42", "is_private": true})),
    );
    bearer(&r);
    n += 1;

    call(
        &host,
        &inst,
        "invite_user",
        json!({"channel": "C0INC42", "users": ["U01", "U02"]}),
    )
    .await;
    let r = only_since(&up, n);
    assert_request(
        &r,
        "POST /api/conversations.invite",
        Some(json!({"channel": "C0INC42", "users": "U01,U02"})),
    );
    bearer(&r);
    n += 1;

    // The external upload: URL, bytes (no token), completion.
    let uploaded = call(
        &host,
        &inst,
        "upload_file",
        json!({"filename": "disk.txt", "content_base64": "ZGlzayA5OSUgZnVsbA==", "title": "Disk report",
               "channel": "C0INC42", "initial_comment": "Latest numbers", "thread_ts": "1700000000.000100"}),
    )
    .await;
    assert_eq!(uploaded["file_id"], "F0UPLOAD");
    assert_eq!(uploaded["files"][0]["title"], "Disk report");
    let got = since(&up, n);
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0].line(), "POST /api/files.getUploadURLExternal");
    assert_eq!(
        got[0].header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(got[0].text(), "filename=disk.txt&length=13");
    bearer(&got[0]);
    let put = only_since(&files, 0);
    assert_eq!(put.line(), "POST /upload/v1/CwABAAAAXwo");
    assert_eq!(put.body, b"disk 99% full");
    assert_eq!(put.header("content-type"), Some("application/octet-stream"));
    assert_eq!(
        put.header("authorization"),
        None,
        "the token went to the upload host"
    );
    assert_request(
        &got[1],
        "POST /api/files.completeUploadExternal",
        Some(
            json!({"files": [{"id": "F0UPLOAD", "title": "Disk report"}], "channel_id": "C0INC42",
                    "initial_comment": "Latest numbers", "thread_ts": "1700000000.000100"}),
        ),
    );
    bearer(&got[1]);
    n += 2;

    let status_set = call(&host, &inst, "set_status",
        json!({"status_text": "On call", "status_emoji": ":pager:", "status_expiration": 1700003600})).await;
    assert_eq!(
        status_set,
        json!({"status_text": "On call", "status_emoji": ":pager:", "status_expiration": 1700003600})
    );
    let r = only_since(&up, n);
    assert_request(
        &r,
        "POST /api/users.profile.set",
        Some(json!({"profile":
        {"status_text": "On call", "status_emoji": ":pager:", "status_expiration": 1700003600}})),
    );
    bearer(&r);
    up.assert_done();
    files.assert_done();
}

#[tokio::test]
async fn ok_false_and_429_become_error_codes() {
    let host = Host::start(&[]);
    let up = Upstream::start(
        Script::new()
            .on(Exchange::post("/api/chat.postMessage")
                .json_field("/channel", json!("C0GONE"))
                .reply_json(200, json!({"ok": false, "error": "channel_not_found"})))
            .on(Exchange::post("/api/chat.postMessage")
                .json_field("/channel", json!("C0BUSY"))
                .reply(Reply::json(429, json!({"ok": false, "error": "ratelimited"})).header("retry-after", "90"))
                .once())
            .on(Exchange::post("/api/conversations.create")
                .reply_json(200, json!({"ok": false, "error": "name_taken"})))
            .on(Exchange::post("/api/auth.test")
                .reply_json(200, json!({"ok": false, "error": "invalid_auth"})))
            .on(Exchange::post("/api/chat.update")
                .reply_json(200, json!({"ok": false, "error": "invalid_blocks",
                    "response_metadata": {"messages": ["[ERROR] must provide an object [json-pointer:/blocks/0]"]}}))),
    )
    .await;
    let inst = slack(&host, &up, "http://127.0.0.1:9").await;

    let gone = host
        .invoke(
            &inst,
            "send_message",
            json!({"channel": "C0GONE", "text": "hi"}),
        )
        .await;
    let e = assert_error(&gone, 404, "UPSTREAM_NOT_FOUND");
    assert_eq!(
        e["message"],
        "Slack chat.postMessage failed: channel_not_found"
    );
    assert_eq!(e["category"], "permanent");
    assert_eq!(e["retryable"], false);

    let taken = host
        .invoke(&inst, "create_channel", json!({"name": "general"}))
        .await;
    let e = assert_error(&taken, 422, "PERMANENT_ERROR");
    assert_eq!(
        e["message"],
        "Slack conversations.create failed: name_taken"
    );

    let bad_blocks = host
        .invoke(
            &inst,
            "update_message",
            json!({"channel": "C1", "ts": "1.1", "blocks": [{"type": "x"}]}),
        )
        .await;
    let e = assert_error(&bad_blocks, 400, "INVALID_PARAMS");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("json-pointer:/blocks/0"),
        "{e}"
    );

    let (status, body) = host
        .post(&format!("/instances/{inst}/test"), json!({}))
        .await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], "AUTH_REQUIRED");
    assert_eq!(body["error"]["category"], "configuration");
    let (_, shown) = host.get(&format!("/instances/{inst}")).await;
    assert_eq!(
        shown["status"], "ERROR",
        "a failed connection test marks the instance: {shown}"
    );

    // Neither text nor blocks: refused by the connector, nothing sent.
    let before = up.requests().len();
    let empty = host
        .invoke(&inst, "send_message", json!({"channel": "C1"}))
        .await;
    assert_error(&empty, 400, "INVALID_PARAMS");
    assert_eq!(up.requests().len(), before);

    // HTTP 429: rate limited with Slack's Retry-After; the next call waits
    // for the pause instead of hitting Slack again (and gives up here, as
    // the pause outlasts the call's deadline).
    let busy = host
        .invoke(
            &inst,
            "send_message",
            json!({"channel": "C0BUSY", "text": "hi"}),
        )
        .await;
    let e = assert_error(&busy, 429, "RATE_LIMIT_EXCEEDED");
    assert_eq!(e["details"]["retryAfterSecs"], 90);
    assert_eq!(e["category"], "rate_limited");
    let sent = up.requests().len();
    let held = host
        .invoke(
            &inst,
            "send_message",
            json!({"channel": "C0GONE", "text": "hi"}),
        )
        .await;
    assert_error(&held, 429, "RATE_LIMIT_EXCEEDED");
    assert_eq!(
        up.requests().len(),
        sent,
        "Slack was called during its Retry-After"
    );
}

/// Signs like Slack: `v0=` + HMAC-SHA256 of `v0:{ts}:{body}`.
pub fn slack_signature(ts: i64, body: &str) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SIGNING_SECRET.as_bytes()).unwrap();
    mac.update(format!("v0:{ts}:{body}").as_bytes());
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

async fn deliver(
    host: &Host,
    inst: &str,
    content_type: &str,
    body: &str,
    ts: i64,
    sig: &str,
) -> reqwest::Response {
    host.client
        .post(format!("{}/v1/webhooks/{inst}", host.url))
        .header("content-type", content_type)
        .header("x-slack-request-timestamp", ts.to_string())
        .header("x-slack-signature", sig)
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn events_api_and_interactivity_webhooks() {
    let host = Host::start(&[]);
    let up = Upstream::start(Script::new()).await;
    let inst = slack(&host, &up, "http://127.0.0.1:9").await;
    let json_ct = "application/json";

    // The URL verification handshake is answered with the challenge.
    let hello = json!({"token": "Jhj5dZrVaK7ZwHHjRyZWjbDl", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",
                       "type": "url_verification"}).to_string();
    let t = now();
    let resp = deliver(
        &host,
        &inst,
        json_ct,
        &hello,
        t,
        &slack_signature(t, &hello),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.text().await.unwrap(),
        "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
    );

    // Forged or stale deliveries are refused before the connector runs.
    let message = json!({"token": "Jhj5dZrVaK7ZwHHjRyZWjbDl", "team_id": "T1", "api_app_id": "A1",
        "type": "event_callback", "event_id": "Ev0PV52K21", "event_time": 1700000000,
        "event": {"type": "message", "channel": "C0URGENT", "user": "U01", "text": "is the printer on fire?",
                  "ts": "1700000000.000200", "event_ts": "1700000000.000200", "channel_type": "channel"}}).to_string();
    let stale = t - 301;
    for (ts, sig) in [
        (t, slack_signature(t + 1, &message)),
        (stale, slack_signature(stale, &message)),
        (t, "v0=00".to_owned()),
    ] {
        let resp = deliver(&host, &inst, json_ct, &message, ts, &sig).await;
        assert_eq!(resp.status(), 401);
    }
    assert_eq!(host.get("/events").await.1["items"], json!([]));

    let resp = deliver(
        &host,
        &inst,
        json_ct,
        &message,
        t,
        &slack_signature(t, &message),
    )
    .await;
    assert_eq!(resp.status(), 200);

    // A button click: form-encoded `payload=`, answered with an empty 200.
    let click = json!({"type": "block_actions", "token": "Jhj5dZrVaK7ZwHHjRyZWjbDl", "trigger_id": "13345224609.738474920.8088930838d88f008e0",
        "user": {"id": "U01", "username": "ada"}, "channel": {"id": "C0URGENT"},
        "actions": [{"type": "button", "action_id": "ack", "value": "42", "action_ts": "1700000001.000300"}]});
    let form = format!("payload={}", url_encode(&click.to_string()));
    let resp = deliver(
        &host,
        &inst,
        "application/x-www-form-urlencoded",
        &form,
        t,
        &slack_signature(t, &form),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "");

    let (_, events) = host.get(&format!("/events?instance={inst}")).await;
    let items = events["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{events}");
    assert_eq!(items[0]["kind"], "message.posted");
    assert_eq!(items[0]["sourceId"], "Ev0PV52K21");
    assert_eq!(items[0]["payload"]["text"], "is the printer on fire?");
    assert_eq!(items[0]["payload"]["team_id"], "T1");
    assert_eq!(items[1]["kind"], "interaction.block_actions");
    assert_eq!(items[1]["payload"]["actions"][0]["value"], "42");
    assert!(
        !events.to_string().contains("Jhj5dZrVaK7ZwHHjRyZWjbDl"),
        "Slack's verification token was stored"
    );
    assert!(up.requests().is_empty());
}

/// Percent-encodes for a form body.
fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

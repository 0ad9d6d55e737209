//! The audit trail end to end: a scripted scenario (upload, an instance
//! with a bearer credential, calls that reach a fake upstream — some
//! failing, one refused by an open circuit —, a credential replacement, an
//! invoke-scoped token refused outside its scope, rule changes, token
//! rotations) and then `GET /v1/audit`: exactly the expected records, in
//! order; filters and paging; credential uses that match what the upstream
//! received; no secret anywhere; records kept across a restart; the
//! retention sweep deleting only records past retention.

use std::sync::{Arc, Mutex};

use plugboard::audit::parse_rfc3339_ms;
use plugboard_tests::AUTH_BEARER_WASM;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{Host, Received, assert_error, mode};

const SECRET_A: &str = "sk-audit-A-7Yq2Lr9Vx4Kp";
const SECRET_B: &str = "sk-audit-B-3Nw8Tz5Hc1Qm";

/// A fake API: `/ok` answers 200, `/fail` 500; records every request.
struct Upstream {
    url: String,
    received: Arc<Mutex<Vec<Received>>>,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl Upstream {
    async fn start() -> Upstream {
        use axum::extract::Request;
        use axum::response::IntoResponse;

        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let log = received.clone();
        let app = axum::Router::new().fallback(move |req: Request| {
            let log = log.clone();
            async move {
                let (parts, _) = req.into_parts();
                let fail = parts.uri.path() == "/fail";
                log.lock().unwrap().push(Received::new(&parts, Vec::new()));
                if fail {
                    (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        axum::Json(json!({ "message": "boom" })),
                    )
                        .into_response()
                } else {
                    axum::Json(json!({ "ok": true })).into_response()
                }
            }
        });
        let (url, tx) = crate::common::serve_loopback(app).await;
        Upstream {
            url,
            received,
            _shutdown: tx,
        }
    }

    fn requests(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

fn bearer(r: &Received) -> Option<&str> {
    r.headers
        .iter()
        .find(|(k, _)| k == "authorization")
        .map(|(_, v)| v.as_str())
}

async fn fetch(host: &Host, inst: &str, url: String) -> (StatusCode, Value) {
    host.invoke(inst, "fetch", json!({ "url": url })).await
}

/// Follows `nextCursor` from the first page of `query` with pages of
/// `limit`; returns every item and the raw text of every page.
async fn walk(host: &Host, query: &str, limit: usize) -> (Vec<Value>, String) {
    let mut items = Vec::new();
    let mut text = String::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/audit?limit={limit}");
        if !query.is_empty() {
            path.push('&');
            path.push_str(query);
        }
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let (status, page) = host.get(&path).await;
        assert_eq!(status, 200, "{path}: {page}");
        text.push_str(&page.to_string());
        let got = page["items"].as_array().unwrap();
        assert!(got.len() <= limit, "{path}: {} items", got.len());
        items.extend(got.iter().cloned());
        match page["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => {
                assert!(page["nextCursor"].is_null(), "{page}");
                break;
            }
        }
    }
    (items, text)
}

/// One page of everything (the trail here is far below 1000 records).
async fn all(host: &Host, query: &str) -> Vec<Value> {
    let (status, page) = host.get(&format!("/audit?limit=1000&{query}")).await;
    assert_eq!(status, 200, "{page}");
    assert!(page["nextCursor"].is_null(), "{page}");
    page["items"].as_array().unwrap().clone()
}

fn ids(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

fn actions_oldest_first(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .rev()
        .map(|r| r["action"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn the_trail_matches_the_scenario_and_the_upstream() {
    // Two consecutive 5xx open the upstream's circuit, for long enough.
    let mut host = Host::start(&[
        "--egress-breaker-threshold",
        "2",
        "--egress-breaker-open-ms",
        "600000",
    ]);
    let admin_v1 = host.token.clone();
    let (_, tokens) = host.get("/tokens").await;
    let admin_v1_id = tokens["items"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(tokens["items"][0]["name"], "bootstrap admin");
    let a = Upstream::start().await;
    let b = Upstream::start().await;

    // Upload and an instance whose `allowed` host gets the bearer token.
    let (status, connector) = host.upload(AUTH_BEARER_WASM).await;
    assert_eq!(status, StatusCode::CREATED, "{connector}");
    let connector_id = connector["id"].as_str().unwrap().to_owned();
    let (status, created) = host
        .post(
            "/instances",
            json!({
                "connector": connector_id,
                "name": "acct",
                "config": { "allowed": a.url, "second": b.url },
                "credentials": { "token": SECRET_A },
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let inst = created["id"].as_str().unwrap().to_owned();

    // Three calls with the first token; one to the second host (no
    // credential, so no credential use); one to an undeclared host
    // (refused before any credential would apply).
    for _ in 0..3 {
        let (status, body) = fetch(&host, &inst, format!("{}/ok", a.url)).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["data"]["status"], 200, "{body}");
    }
    let (status, body) = fetch(&host, &inst, format!("{}/ok", b.url)).await;
    assert_eq!(status, 200, "{body}");
    let closed = crate::common::closed_port();
    let denied = fetch(&host, &inst, format!("http://127.0.0.1:{closed}/x")).await;
    assert_error(&denied, 403, "HOST_DENIED");

    // Replace the credential; two calls with the new one.
    let (status, body) = host
        .put(
            &format!("/instances/{inst}/credentials"),
            json!({ "credentials": { "token": SECRET_B } }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    for _ in 0..2 {
        let (status, body) = fetch(&host, &inst, format!("{}/ok", a.url)).await;
        assert_eq!(status, 200, "{body}");
    }

    // An invoke-scoped token: calls its instance, is refused the trail.
    let bot = host.invoke_token("ci bot", &inst).await;
    let bot_v1 = bot["token"].as_str().unwrap().to_owned();
    let bot_v1_id = bot["id"].as_str().unwrap().to_owned();
    let (status, body) = host
        .as_token(
            &bot_v1,
            Method::POST,
            &format!("/instances/{inst}/methods/fetch"),
            Some(json!({ "parameters": { "url": format!("{}/ok", a.url) } })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let refused = host.as_token(&bot_v1, Method::GET, "/audit", None).await;
    assert_error(&refused, 403, "FORBIDDEN");

    // Rule changes: one created, one refused, the first deleted.
    let rule = |name: &str, method: &str| {
        json!({
            "name": name,
            "trigger": { "kind": "ticket.created" },
            "actions": [{ "instance": inst, "method": method, "parameters": { "url": "{{ url }}" } }],
        })
    };
    let (status, created_rule) = host.post("/rules", rule("relay", "fetch")).await;
    assert_eq!(status, StatusCode::CREATED, "{created_rule}");
    let rule_id = created_rule["id"].as_str().unwrap().to_owned();
    assert_error(
        &host.post("/rules", rule("broken", "nope")).await,
        400,
        "INVALID_RULE",
    );
    let (status, _) = host.delete(&format!("/rules/{rule_id}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    // Failures: two 500s open the circuit; the third call is refused by
    // the broker and never reaches the upstream.
    for _ in 0..2 {
        let (status, body) = fetch(&host, &inst, format!("{}/fail", a.url)).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["data"]["status"], 500, "{body}");
    }
    let (status, body) = fetch(&host, &inst, format!("{}/fail", a.url)).await;
    assert!(status.is_server_error(), "{status} {body}");

    // Rotations: the bot's token, then the bootstrap admin token. Old
    // tokens are refused at once, new ones work.
    let (status, rotated) = host
        .post(&format!("/tokens/{bot_v1_id}/rotate"), json!({}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{rotated}");
    let bot_v2 = rotated["token"].as_str().unwrap().to_owned();
    let bot_v2_id = rotated["id"].as_str().unwrap().to_owned();
    assert_ne!(bot_v2_id, bot_v1_id);
    assert_eq!(rotated["name"], "ci bot");
    assert_eq!(rotated["scope"], "invoke");
    assert_eq!(rotated["instances"], json!([inst]));
    let old = host
        .as_token(&bot_v1, Method::GET, &format!("/instances/{inst}"), None)
        .await;
    assert_error(&old, 401, "UNAUTHORIZED");
    let (status, _) = host
        .as_token(&bot_v2, Method::GET, &format!("/instances/{inst}"), None)
        .await;
    assert_eq!(status, 200);

    let token_file = host.data_dir.join("admin.token");
    let (status, rotated) = host
        .post(&format!("/tokens/{admin_v1_id}/rotate"), json!({}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{rotated}");
    let admin_v2 = rotated["token"].as_str().unwrap().to_owned();
    let admin_v2_id = rotated["id"].as_str().unwrap().to_owned();
    assert_eq!(rotated["scope"], "admin");
    assert_eq!(rotated["name"], "bootstrap admin");
    assert_eq!(
        std::fs::read_to_string(&token_file).unwrap().trim(),
        admin_v2,
        "the admin token file holds the new token"
    );
    assert_eq!(mode(&token_file), 0o600);
    let stale: Vec<_> = std::fs::read_dir(&host.data_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(stale.is_empty(), "{stale:?}");
    let old = host
        .as_token(&admin_v1, Method::GET, "/connectors", None)
        .await;
    assert_error(&old, 401, "UNAUTHORIZED");
    host.token = admin_v2.clone();
    let (status, tokens) = host.get("/tokens").await;
    assert_eq!(status, 200);
    let listed: Vec<&str> = tokens["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert!(listed.contains(&admin_v2_id.as_str()) && listed.contains(&bot_v2_id.as_str()));
    assert!(!listed.contains(&admin_v1_id.as_str()) && !listed.contains(&bot_v1_id.as_str()));
    let me = &tokens["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == admin_v2_id.as_str())
        .unwrap();
    assert!(me["lastUsedAt"].is_string(), "last use recorded: {me}");

    // ---- The trail ----
    let items = all(&host, "").await;
    let expected = [
        "connector.upload",
        "instance.create",
        "credential.use",
        "credential.use",
        "credential.use",
        "instance.credentials",
        "credential.use",
        "credential.use",
        "token.create",
        "credential.use",
        "auth.denied",
        "rule.create",
        "rule.create",
        "rule.delete",
        "credential.use",
        "credential.use",
        "credential.use",
        "token.rotate",
        "auth.denied",
        "token.rotate",
        "auth.denied",
    ];
    assert_eq!(actions_oldest_first(&items), expected, "{items:#?}");
    let oldest_first: Vec<&Value> = items.iter().rev().collect();
    let keys: Vec<&str> = items.iter().map(|r| r["id"].as_str().unwrap()).collect();
    let mut sorted = keys.clone();
    sorted.sort_unstable_by(|x, y| y.cmp(x));
    assert_eq!(keys, sorted, "newest first");
    for r in &items {
        assert!(parse_rfc3339_ms(r["at"].as_str().unwrap()).is_some(), "{r}");
    }

    // Admin actions: actor, resource, outcome.
    let admin_actor = json!({ "kind": "token", "id": admin_v1_id, "name": "bootstrap admin" });
    let upload = oldest_first[0];
    assert_eq!(upload["actor"], admin_actor);
    assert_eq!(
        upload["resource"],
        json!({ "type": "connector", "id": connector_id })
    );
    assert_eq!(
        upload["outcome"],
        json!({ "result": "success", "status": 201 })
    );
    assert_eq!(upload["detail"]["created"], true);
    assert_eq!(upload["detail"]["digest"], connector["digest"]);
    let create = oldest_first[1];
    assert_eq!(
        create["resource"],
        json!({ "type": "instance", "id": inst })
    );
    assert_eq!(create["detail"]["credentialFields"], json!(["token"]));
    let replaced = oldest_first[5];
    assert_eq!(
        replaced["resource"],
        json!({ "type": "instance", "id": inst })
    );
    assert_eq!(replaced["outcome"]["result"], "success");
    assert_eq!(replaced["detail"]["credentialFields"], json!(["token"]));
    let token_create = oldest_first[8];
    assert_eq!(
        token_create["resource"],
        json!({ "type": "token", "id": bot_v1_id })
    );
    assert_eq!(token_create["detail"]["scope"], "invoke");
    let scope_denied = oldest_first[10];
    assert_eq!(
        scope_denied["actor"],
        json!({ "kind": "token", "id": bot_v1_id, "name": "ci bot" })
    );
    assert_eq!(scope_denied["resource"], json!({ "type": "audit" }));
    assert_eq!(
        scope_denied["outcome"],
        json!({ "result": "denied", "status": 403, "code": "FORBIDDEN" })
    );
    assert_eq!(
        oldest_first[11]["resource"],
        json!({ "type": "rule", "id": rule_id })
    );
    assert_eq!(
        oldest_first[12]["outcome"],
        json!({ "result": "failure", "status": 400, "code": "INVALID_RULE" })
    );
    assert_eq!(oldest_first[12]["resource"], json!({ "type": "rule" }));
    assert_eq!(
        oldest_first[13]["resource"],
        json!({ "type": "rule", "id": rule_id })
    );
    let bot_rotate = oldest_first[17];
    assert_eq!(
        bot_rotate["resource"],
        json!({ "type": "token", "id": bot_v1_id })
    );
    assert_eq!(bot_rotate["detail"]["replacedBy"], bot_v2_id.as_str());
    assert_eq!(bot_rotate["detail"]["adminTokenFile"], false);
    let old_bot = oldest_first[18];
    assert_eq!(old_bot["actor"], json!({ "kind": "token" }), "unidentified");
    assert_eq!(
        old_bot["outcome"],
        json!({ "result": "denied", "status": 401, "code": "UNAUTHORIZED" })
    );
    assert_eq!(old_bot["detail"]["reason"], "invalid token");
    assert_eq!(
        old_bot["resource"],
        json!({ "type": "instance", "id": inst })
    );
    let admin_rotate = oldest_first[19];
    assert_eq!(admin_rotate["actor"], admin_actor, "rotated by itself");
    assert_eq!(admin_rotate["detail"]["replacedBy"], admin_v2_id.as_str());
    assert_eq!(admin_rotate["detail"]["adminTokenFile"], true);

    // Credential uses: one per attempt that carried the credential, and the
    // one the open circuit refused; the upstream saw exactly the others.
    let uses = all(&host, "action=credential.use").await;
    assert_eq!(uses.len(), 9);
    let sent: Vec<&Value> = uses
        .iter()
        .filter(|r| r["outcome"]["result"] != "denied")
        .collect();
    let received = a.requests();
    assert_eq!(sent.len(), received.len(), "{uses:#?}");
    assert_eq!(b.requests().len(), 1, "the second host got its call");
    assert!(b.requests().iter().all(|r| bearer(r).is_none()));
    let uses: Vec<&Value> = uses.iter().rev().collect();
    let with = |n: usize| bearer(&received[n]).unwrap().to_owned();
    for (n, r) in uses.iter().enumerate() {
        assert_eq!(
            r["resource"],
            json!({ "type": "instance", "id": inst }),
            "{r}"
        );
        assert_eq!(r["detail"]["destination"], a.url.as_str(), "{r}");
        assert_eq!(r["detail"]["connector"], connector_id.as_str(), "{r}");
        assert_eq!(r["detail"]["method"], "GET", "{r}");
        assert_eq!(r["detail"]["credential"]["fields"], json!(["token"]), "{r}");
        assert!(
            r["detail"]["invocation"]
                .as_str()
                .unwrap()
                .starts_with("inv_")
        );
        if n < 8 {
            assert!(with(n).ends_with(if n < 3 { SECRET_A } else { SECRET_B }));
        }
    }
    let cred = |n: usize| {
        uses[n]["detail"]["credential"]["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert!(cred(0).starts_with("cred_"));
    assert_eq!(cred(0), cred(2));
    assert_ne!(cred(2), cred(3), "the replaced credential has a new id");
    assert!((3..9).all(|n| cred(n) == cred(3)));
    for n in [0, 1, 2, 3, 4, 6, 7] {
        assert_eq!(uses[n]["actor"], admin_actor, "{n}");
    }
    assert_eq!(
        uses[5]["actor"],
        json!({ "kind": "token", "id": bot_v1_id, "name": "ci bot" }),
        "the call made with the bot's token"
    );
    for r in &uses[..6] {
        assert_eq!(r["outcome"], json!({ "result": "success", "status": 200 }));
        assert_eq!(r["detail"]["decision"], "allowed");
    }
    for r in &uses[6..8] {
        assert_eq!(r["outcome"], json!({ "result": "failure", "status": 500 }));
    }
    assert_eq!(uses[8]["outcome"], json!({ "result": "denied" }));
    assert_eq!(uses[8]["detail"]["decision"], "short_circuited");
    assert_eq!(uses[8]["detail"]["error"], "unavailable");

    // Filters.
    let by_bot = all(&host, &format!("actor={bot_v1_id}")).await;
    assert_eq!(
        actions_oldest_first(&by_bot),
        ["credential.use", "auth.denied"]
    );
    let on_bot = all(&host, &format!("resource=token:{bot_v1_id}")).await;
    assert_eq!(
        actions_oldest_first(&on_bot),
        ["token.create", "token.rotate"]
    );
    let on_inst = all(&host, &format!("resource=instance:{inst}")).await;
    assert_eq!(
        on_inst.len(),
        12,
        "create, credentials, 9 uses, the bot's 401"
    );
    assert_eq!(all(&host, "resource=rule").await.len(), 3);
    assert_eq!(
        actions_oldest_first(&all(&host, "action=token.*").await),
        ["token.create", "token.rotate", "token.rotate"]
    );
    let refusals = all(&host, "action=auth.denied").await;
    assert_eq!(refusals.len(), 3);
    assert!(
        all(&host, &format!("actor={admin_v1_id}&action=auth.denied"))
            .await
            .is_empty()
    );
    // A time range: from the credential replacement up to (not including)
    // the first failure's millisecond.
    let since = oldest_first[5]["at"].as_str().unwrap();
    let until = oldest_first[14]["at"].as_str().unwrap();
    let (lo, hi) = (
        parse_rfc3339_ms(since).unwrap(),
        parse_rfc3339_ms(until).unwrap(),
    );
    let want: Vec<String> = items
        .iter()
        .filter(|r| (lo..hi).contains(&parse_rfc3339_ms(r["at"].as_str().unwrap()).unwrap()))
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    let first_in = oldest_first[5]["id"].as_str().unwrap().to_owned();
    let first_out = oldest_first[14]["id"].as_str().unwrap().to_owned();
    assert!(want.contains(&first_in), "since is inclusive");
    assert!(!want.contains(&first_out), "until is exclusive");
    let ranged = all(&host, &format!("since={since}&until={until}")).await;
    assert_eq!(ids(&ranged), want);

    // Paging: a cursor walk returns every record once, in order.
    for limit in [1, 4, 7] {
        let (walked, _) = walk(&host, "", limit).await;
        assert_eq!(ids(&walked), ids(&items), "limit {limit}");
    }
    let (walked, _) = walk(&host, "action=credential.use", 2).await;
    assert_eq!(walked.len(), 9);

    // Bad filters.
    for q in [
        "limit=0",
        "limit=1001",
        "action=instance.crate",
        "action=nope.*",
        "since=yesterday",
        "until=2026-01-01",
        "resource=:x",
        "cursor=not-a-cursor",
        "actr=tok_x",
    ] {
        let e = assert_error(
            &host.get(&format!("/audit?{q}")).await,
            400,
            "INVALID_REQUEST",
        );
        assert!(!e["message"].as_str().unwrap().is_empty());
    }

    // No secret anywhere: not in the trail, not in the log.
    let (_, text) = walk(&host, "", 5).await;
    for secret in [SECRET_A, SECRET_B, &admin_v1, &admin_v2, &bot_v1, &bot_v2] {
        assert!(!text.contains(secret), "a secret is in the trail");
        assert!(!host.log().contains(secret), "a secret is in the log");
    }

    // A restart keeps every record (the harness reads the rewritten
    // admin token file).
    let root = host.root();
    host.stop();
    let host = Host::start_in(root, &[]);
    assert_eq!(host.token, admin_v2);
    let again = all(&host, "").await;
    assert_eq!(ids(&again), ids(&items));
}

/// Ages in days of the records the backdating helper writes.
const BACKDATED_DAYS: [u64; 4] = [400, 120, 31, 10];

#[tokio::test]
async fn retention_deletes_only_records_past_it() {
    let mut host = Host::start(&[]);
    let (status, _) = host
        .post("/tokens", json!({ "name": "kept", "scope": "admin" }))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let before = all(&host, "").await;
    assert_eq!(actions_oldest_first(&before), ["token.create"]);
    let root = host.root();
    host.stop();

    // Another process writes them (see the helper's docs): its exit
    // releases the store's lock before the host opens it again.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_plugboard-e2e-backdate"))
        .arg(host.data_dir.join("store"))
        .args(BACKDATED_DAYS.map(|d| d.to_string()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Records past 30 days go at start-up; the sweep is recorded.
    let host = Host::start_in(root.clone(), &["--audit-retention-days", "30"]);
    let items = all(&host, "").await;
    let backdated: Vec<&str> = items
        .iter()
        .filter(|r| r["actor"]["name"] == "backdated by the test")
        .map(|r| r["resource"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        backdated,
        ["rule_10d"],
        "only the 10-day-old record is left"
    );
    assert_eq!(
        actions_oldest_first(&items),
        ["rule.delete", "token.create", "audit.sweep"]
    );
    let sweep = &items[0];
    assert_eq!(
        sweep["actor"],
        json!({ "kind": "system", "name": "retention sweep" })
    );
    assert_eq!(sweep["detail"]["count"], 3);
    assert_eq!(sweep["detail"]["retentionDays"], 30);
    assert_eq!(ids(&items[1..2]), ids(&before), "the recent record is kept");

    // With retention 0 nothing is ever deleted.
    let mut host = host;
    host.stop();
    let host = Host::start_in(root, &["--audit-retention-days", "0"]);
    assert_eq!(ids(&all(&host, "").await), ids(&items));
}

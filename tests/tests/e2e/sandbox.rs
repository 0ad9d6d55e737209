//! Hostile guests: each failure ends only its own invocation, with a clear
//! code, and the host keeps serving.

use std::time::{Duration, Instant};

use plugboard_tests::{ECHO_WASM, HOSTILE_WASM};
use serde_json::json;

use crate::common::{FakeUpstream, Host, assert_error};

/// Proves the host still works: a normal invocation on another instance.
async fn still_serving(host: &Host, echo: &str) {
    let (status, body) = host
        .invoke(echo, "echo", json!({"message": "still here"}))
        .await;
    assert_eq!(status, 200, "host degraded after a hostile call: {body}");
    assert_eq!(body["data"]["message"], "still here");
}

#[tokio::test]
async fn infinite_loop_hits_the_deadline() {
    let host = Host::start(&["--invoke-timeout-ms", "1500"]);
    let upstream = FakeUpstream::start().await;
    let echo = host.instance(ECHO_WASM, json!({})).await;
    let hostile = host
        .instance(HOSTILE_WASM, json!({"allowed": upstream.url}))
        .await;
    let started = Instant::now();
    let e = assert_error(
        &host.invoke(&hostile, "spin", json!({})).await,
        504,
        "TIMEOUT_ERROR",
    );
    let elapsed = started.elapsed();
    assert_eq!(e["details"]["timeoutMs"], 1500, "{e}");
    // Ends at the deadline: not before it, and not long after it (the epoch
    // tick is 10 ms; the bound leaves room for a loaded CI machine).
    assert!(elapsed >= Duration::from_millis(1500), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
    still_serving(&host, &echo).await;
}

#[tokio::test]
async fn instance_limits_narrow_the_deadline() {
    let host = Host::start(&["--invoke-timeout-ms", "20000"]);
    assert_eq!(host.upload(HOSTILE_WASM).await.0, 201);
    let (status, inst) = host
        .post(
            "/instances",
            json!({"connector": "hostile", "name": "tight", "config": {"allowed": "http://127.0.0.1:9"}, "limits": {"timeoutMs": 300}}),
        )
        .await;
    assert_eq!(status, 201, "{inst}");
    let e = assert_error(
        &host
            .invoke(inst["id"].as_str().unwrap(), "spin", json!({}))
            .await,
        504,
        "TIMEOUT_ERROR",
    );
    assert_eq!(e["details"]["timeoutMs"], 300, "{e}");
}

#[tokio::test]
async fn memory_bomb_hits_the_memory_cap() {
    let host = Host::start(&["--max-memory-mib", "64"]);
    let echo = host.instance(ECHO_WASM, json!({})).await;
    let hostile = host
        .instance(HOSTILE_WASM, json!({"allowed": "http://127.0.0.1:9"}))
        .await;
    // Within the cap: fine.
    let (status, body) = host.invoke(&hostile, "allocate", json!({"mib": 16})).await;
    assert_eq!(status, 200, "{body}");
    // Beyond it: MEMORY_LIMIT, not a crash.
    let e = assert_error(
        &host.invoke(&hostile, "allocate", json!({"mib": 512})).await,
        500,
        "MEMORY_LIMIT",
    );
    assert!(
        e["message"].as_str().unwrap().contains("memory limit"),
        "{e}"
    );
    still_serving(&host, &echo).await;
    // The next call on the same instance gets a fresh sandbox.
    let (status, body) = host.invoke(&hostile, "allocate", json!({"mib": 16})).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn panics_and_aborts_are_reported_with_the_guest_message() {
    let host = Host::start(&[]);
    let echo = host.instance(ECHO_WASM, json!({})).await;
    let hostile = host
        .instance(HOSTILE_WASM, json!({"allowed": "http://127.0.0.1:9"}))
        .await;
    let marker = "kaboom-7f3a";
    let e = assert_error(
        &host
            .invoke(&hostile, "panic", json!({"message": marker}))
            .await,
        500,
        "CONNECTOR_TRAPPED",
    );
    assert!(
        e["message"].as_str().unwrap().contains(marker),
        "guest message missing: {e}"
    );
    still_serving(&host, &echo).await;
    assert_error(
        &host.invoke(&hostile, "abort", json!({})).await,
        500,
        "CONNECTOR_TRAPPED",
    );
    still_serving(&host, &echo).await;
}

#[tokio::test]
async fn undeclared_hosts_are_denied() {
    let host = Host::start(&[]);
    let allowed = FakeUpstream::start().await;
    let other = FakeUpstream::start().await;
    let echo = host.instance(ECHO_WASM, json!({})).await;
    let hostile = host
        .instance(HOSTILE_WASM, json!({"allowed": allowed.url}))
        .await;

    // The declared host works...
    let (status, body) = host
        .invoke(
            &hostile,
            "fetch",
            json!({"url": format!("{}/api/items", allowed.url)}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(allowed.requests().len(), 1);

    // ...another port on the same machine does not, and nothing arrives there.
    let e = assert_error(
        &host
            .invoke(
                &hostile,
                "fetch",
                json!({"url": format!("{}/api/items", other.url)}),
            )
            .await,
        403,
        "HOST_DENIED",
    );
    assert!(
        e["details"]["target"]
            .as_str()
            .unwrap()
            .contains(other.url.trim_start_matches("http://")),
        "{e}"
    );
    assert!(
        other.requests().is_empty(),
        "a denied request reached the upstream"
    );
    let log = host.log();
    assert!(log.contains("outbound request denied"), "denial not logged");
    // The broker's refusal line names the call it belongs to: the same
    // invocation id as that call's outbound summary line.
    let refused = log
        .lines()
        .find(|l| l.contains("outbound request refused"))
        .unwrap_or_else(|| panic!("no refusal line:\n{log}"));
    let id = refused
        .split("invocation=")
        .nth(1)
        .and_then(|rest| rest.split([' ', ',']).next())
        .filter(|id| id.starts_with("inv_"))
        .unwrap_or_else(|| panic!("the refusal line names no invocation: {refused}"));
    assert!(
        log.lines()
            .any(|l| l.contains("plugboard::outbound") && l.contains(id)),
        "no outbound summary line for {id}:\n{log}"
    );
    still_serving(&host, &echo).await;
}

#[tokio::test]
async fn a_full_instance_pool_answers_503_and_recovers() {
    let host = std::sync::Arc::new(Host::start(&[
        "--max-instances",
        "1",
        "--invoke-timeout-ms",
        "3000",
    ]));
    let echo = host.instance(ECHO_WASM, json!({})).await;
    let hostile = host
        .instance(HOSTILE_WASM, json!({"allowed": "http://127.0.0.1:9"}))
        .await;

    // Occupy the only slot with a guest that spins until its deadline. The
    // poller below may hold the slot for a moment; then the spin is refused
    // with 503 and simply tries again.
    let busy = {
        let host = host.clone();
        tokio::spawn(async move {
            for _ in 0..100 {
                let answer = host.invoke(&hostile, "spin", json!({})).await;
                if answer.0 != 503 {
                    return answer;
                }
            }
            panic!("the spin never got the slot");
        })
    };
    // Poll until the spin holds the slot: only the spin can make echo 503.
    let mut refused = None;
    let until = Instant::now() + Duration::from_secs(20);
    while Instant::now() < until {
        let answer = host.invoke(&echo, "echo", json!({"message": "x"})).await;
        if answer.0 == 503 {
            refused = Some(answer);
            break;
        }
    }
    let refused = refused.expect("the pool never filled up");
    let e = assert_error(&refused, 503, "CAPACITY_EXCEEDED");
    assert!(e["message"].as_str().unwrap().contains("busy"), "{e}");

    assert_error(&busy.await.unwrap(), 504, "TIMEOUT_ERROR");
    still_serving(&host, &echo).await;
}

/// Calls `residue` and returns its report.
async fn residue(host: &Host, instance: &str) -> serde_json::Value {
    let (status, body) = host.invoke(instance, "residue", json!({})).await;
    assert_eq!(status, 200, "{body}");
    body["data"].clone()
}

/// Two instances of the hostile connector with the same config.
async fn two_hostile_instances(host: &Host) -> (String, String) {
    let config = json!({"allowed": "http://127.0.0.1:9"});
    let a = host.instance(HOSTILE_WASM, config.clone()).await;
    let b = host.instance_with("hostile", config, json!({})).await;
    (a, b)
}

/// What a guest that nothing ran in before must report.
fn assert_clean(report: &serde_json::Value, context: &str) {
    assert_eq!(report["calls"], 0, "{context}: {report}");
    assert_eq!(report["imageIntact"], true, "{context}: {report}");
    assert_eq!(report["grownZero"], true, "{context}: {report}");
}

/// A new guest instance starts from the component's own memory, whatever ran
/// in its pool slot before, with either way of resetting a slot: in place
/// (only the pages a guest wrote, where the kernel can list them; the
/// default) or by releasing the pages (`--pool-keep-resident-kib 0`), and
/// with either way of initializing one: its memory image mapped
/// copy-on-write (the default) or copied in (`--eager-instance-init`).
#[tokio::test]
async fn a_new_guest_instance_sees_nothing_an_earlier_one_left() {
    for (keep_kib, init) in [
        ("1024", None),
        ("0", None),
        ("1024", Some("--eager-instance-init")),
    ] {
        // No warm instances: every call instantiates. With one guest
        // instance the pool has two linear memory slots (`runtime::engine`
        // sizes it at two per instance), so of the four `residue` calls
        // below at least two run in a slot an earlier `residue` wrote in.
        let mut flags = vec![
            "--warm-instances",
            "0",
            "--max-instances",
            "1",
            "--pool-keep-resident-kib",
            keep_kib,
        ];
        flags.extend(init);
        let host = Host::start(&flags);
        let (a, b) = two_hostile_instances(&host).await;
        let first = residue(&host, &a).await;
        for instance in [&a, &b, &a] {
            let report = residue(&host, instance).await;
            assert_clean(&report, &format!("keep {keep_kib} KiB, {init:?}"));
            // The page was grown at the same address: the check looked where
            // the call before had written.
            assert_eq!(report["grownAt"], first["grownAt"], "{report}");
        }
    }
}

/// `--eager-instance-init` reaches the engine: wasmtime checks both settings
/// it changes when it loads a compiled artifact, so artifacts stored without
/// it no longer fit. The first call after switching recompiles once and
/// succeeds; the next start with the same setting loads the new artifact.
#[tokio::test]
async fn switching_eager_instance_init_recompiles_stored_connectors_once() {
    let mut host = Host::start(&[]);
    let echo = host.instance(ECHO_WASM, json!({})).await;
    let root = host.root();
    host.stop();
    for (round, rejected, compiled, deserialized) in [(1, 1, 1, 0), (2, 0, 0, 1)] {
        let mut host = Host::start_in(root.clone(), &["--eager-instance-init"]);
        let (status, body) = host.invoke(&echo, "echo", json!({"message": "hi"})).await;
        assert_eq!(status, 200, "start {round}: {body}");
        let health = host.healthz().await;
        let runtime = &health["runtime"];
        assert_eq!(
            runtime["artifactRejected"], rejected,
            "start {round}: {health}"
        );
        assert_eq!(runtime["compiled"], compiled, "start {round}: {health}");
        assert_eq!(
            runtime["deserialized"], deserialized,
            "start {round}: {health}"
        );
        host.stop();
    }
}

/// The other side of the check above: a warm instance (the same instance
/// and config, one call after another) keeps its memory, and `residue` sees
/// it, which is what makes a clean report above mean something. Another
/// instance of the same connector never gets that warm guest.
#[tokio::test]
async fn a_warm_guest_keeps_its_memory_for_its_own_instance_only() {
    let host = Host::start(&[]);
    let (a, b) = two_hostile_instances(&host).await;
    assert_clean(&residue(&host, &a).await, "first call");
    let second = residue(&host, &a).await;
    assert_eq!(second["calls"], 1, "{second}");
    assert_eq!(second["imageIntact"], false, "{second}");
    assert_eq!(second["grownZero"], false, "{second}");
    // `a`'s guest is idle and warm now; `b` must get a clean one.
    assert_clean(&residue(&host, &b).await, "another instance");
}

//! Who still calls: every legacy call knows its caller in every mode (the access line and the
//! replica's caller table carry the subject, never a credential), and `report` turns the logs
//! of the real binary and its admin table into one answer.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{raw_request, Proxy, P};
use onezone_standin::{demo::*, StandIn, World};
use serde_json::Value;

const MODES: &str = r#"
[log]
format = "json"
[deprecation]
mode = "passthrough"
[routes.create_user_group_invite_token]
mode = "rewrite"
[routes.create_space_user_invite_token]
mode = "verify"
[routes.create_client_token]
mode = "reject"
"#;

fn call(proxy: &Proxy, method: &str, path: &str, token: &str) -> u16 {
    let head = format!(
        "{method} {P}{path} HTTP/1.1\r\nHost: zone\r\nX-Auth-Token: {token}\r\nUser-Agent: onedatafs/21.02.7\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    raw_request(proxy.addr, head.as_bytes()).status
}

/// The JSON access lines of deprecated operations (route is not `passthrough`).
fn legacy_lines(log: &str) -> Vec<Value> {
    log.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["target"] == "access" && v["fields"]["route"] != "passthrough")
        .filter(|v| v["fields"]["message"].is_null())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mode_knows_its_caller_and_the_report_names_it() {
    let mut world = World::demo();
    world.serve_legacy(true);
    let zone = StandIn::start(world).await.unwrap();
    let proxy = Proxy::builder(&format!("http://{}", zone.addr()))
        .extra(MODES)
        .start();
    let calls = [
        (
            "POST",
            format!("/groups/{GROUP_ID}/users/token"),
            "rewrite",
            200,
        ),
        (
            "POST",
            format!("/spaces/{SPACE_ID}/users/token"),
            "verify",
            200,
        ),
        ("GET", "/user/client_tokens".to_string(), "passthrough", 200),
        ("POST", "/user/client_tokens".to_string(), "reject", 410),
        (
            "GET",
            format!("/user/spaces/{SPACE_ID}/alias"),
            "annotate",
            404,
        ),
    ];
    for (method, path, _, status) in &calls {
        assert_eq!(
            call(&proxy, method, path, ALICE_TOKEN),
            *status,
            "{method} {path}"
        );
    }
    // Bob, twice, through passthrough: one look-up, then the cache.
    for _ in 0..2 {
        assert_eq!(call(&proxy, "GET", "/user/client_tokens", BOB_TOKEN), 200);
    }
    // Lines of background look-ups are written once the subject is known.
    let deadline = Instant::now() + Duration::from_secs(10);
    let lines = loop {
        let lines = legacy_lines(&proxy.log());
        if lines.len() >= calls.len() + 2 {
            break lines;
        }
        assert!(Instant::now() < deadline, "access lines: {lines:?}");
        std::thread::sleep(Duration::from_millis(50));
    };
    for (_, _, mode, _) in &calls {
        let line = lines
            .iter()
            .find(|l| l["fields"]["mode"] == *mode)
            .unwrap_or_else(|| panic!("a {mode} line in {lines:?}"));
        assert_eq!(line["fields"]["subject"], ALICE_ID, "{mode}: {line}");
        assert_eq!(line["fields"]["subject_kind"], "user");
        assert_eq!(line["fields"]["client_product"], "onedatafs");
    }
    let bob = lines
        .iter()
        .filter(|l| l["fields"]["subject"] == BOB_ID)
        .count();
    assert_eq!(bob, 2);

    // The replica's table.
    let table = raw_request(
        proxy.metrics,
        b"GET /legacy/callers HTTP/1.1\r\nHost: m\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(table.status, 200);
    let table = table.json();
    let alice: Vec<&Value> = table["callers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["subject"] == ALICE_ID)
        .collect();
    assert_eq!(alice.len(), calls.len(), "{table}");
    for (_, _, mode, _) in &calls {
        let entry = alice.iter().find(|c| c["mode"] == *mode).unwrap();
        assert_eq!(entry["calls"], 1);
        assert_eq!(entry["client"], "onedatafs");
        assert_eq!(entry["kind"], "user");
    }

    // The report, from the log file and from the running replica: the same figures.
    let log_file = proxy.dir.join("proxy.log");
    let report = |args: &[&str]| -> Value {
        let out = Command::new(common::bin())
            .arg("report")
            .args(args)
            .args(["--format", "json", "--quiet-since", "14d"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        for secret in [ALICE_TOKEN, BOB_TOKEN] {
            assert!(!text.contains(secret));
        }
        serde_json::from_str(&text).unwrap()
    };
    let from_log = report(&[log_file.to_str().unwrap()]);
    let from_replica = report(&["--from", &format!("http://{}", proxy.metrics)]);
    for r in [&from_log, &from_replica] {
        assert_eq!(r["totals"]["calls"], calls.len() as u64 + 2, "{r}");
        assert_eq!(r["totals"]["callers"], 2);
        let op = |name: &str| {
            r["operations"]
                .as_array()
                .unwrap()
                .iter()
                .find(|o| o["operation"] == name)
                .unwrap()
                .clone()
        };
        assert_eq!(op("list_client_tokens")["calls"], 3);
        assert_eq!(op("list_client_tokens")["callers"], 2);
        assert_eq!(op("create_client_token")["calls"], 1);
        assert_eq!(op("create_child_group_token")["calls"], 0);
        let quiet: Vec<&str> = r["quiet_operations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|q| q["operation"].as_str().unwrap())
            .collect();
        assert!(quiet.contains(&"create_child_group_token"));
        assert!(!quiet.contains(&"list_client_tokens"));
        let alice = r["callers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["subject"] == ALICE_ID)
            .unwrap();
        assert_eq!(alice["calls"], calls.len() as u64);
        assert_eq!(alice["clients"], serde_json::json!(["onedatafs"]));
    }
}

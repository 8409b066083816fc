//! `mode = "verify"` end to end: a stand-in that serves the legacy endpoints itself (Onezone's
//! own legacy semantics, `World::serve_legacy`) behind the real proxy binary, over real sockets.
//! The client gets Onezone's answer; the background check must count `match` for every legacy
//! operation and the error cases the proxy decides alone, and `mismatch` on exactly the field a
//! deliberately altered rewrite changes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{raw_request, Proxy, RawResponse, Scrape, P};
use onezone_migration_proxy::routes::{Rewrite, ROUTES};
use onezone_standin::{demo::*, StandIn, World};

const VERIFY: &str = "[deprecation]\nmode = \"verify\"";

async fn onezone() -> StandIn {
    let mut world = World::demo();
    world.serve_legacy(true);
    StandIn::start(world).await.unwrap()
}

fn verifying(zone: &StandIn, extra: &str, env: Option<(&str, &str)>) -> Proxy {
    let mut b = Proxy::builder(&format!("http://{}", zone.addr())).extra(VERIFY);
    if !extra.is_empty() {
        b = b.extra(extra);
    }
    if let Some((k, v)) = env {
        b = b.env(k, v);
    }
    b.start()
}

fn call(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> RawResponse {
    let mut head = format!("{method} {P}{path} HTTP/1.1\r\nHost: zone\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if method == "POST" || !body.is_empty() {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    raw_request(addr, &bytes)
}

/// Waits until every submitted check has ended and `total` checks are counted.
fn settled(proxy: &Proxy, total: f64) -> Scrape {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = Scrape::take(proxy);
        let counted = s.sum("migproxy_verify_total", &[]);
        if counted >= total && s.value("migproxy_verify_pending", &[]) == 0.0 {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "checks did not settle: {}",
            s.text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The path of an invite route, with the id of the demo entity it targets.
fn invite_path(template: &str, target_key: &str) -> String {
    let id = match target_key {
        "groupId" => GROUP_ID,
        "spaceId" => SPACE_ID,
        "harvesterId" => HARVESTER_ID,
        "clusterId" => CLUSTER_ID,
        _ => ALICE_ID,
    };
    template.replace("{id}", id)
}

const ALICE: (&str, &str) = ("x-auth-token", ALICE_TOKEN);

/// A method, a path, headers and a body.
type Sent<'a> = (&'a str, String, Vec<(&'a str, &'a str)>, &'a [u8]);
/// The same, with the status Onezone answers.
type Case<'a> = (&'a str, String, Vec<(&'a str, &'a str)>, &'a [u8], u16);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_legacy_operation_and_the_local_error_cases_match() {
    let zone = onezone().await;
    let proxy = verifying(&zone, "", None);
    let mut expected_match = 0.0;
    // The twelve invite, support and registration operations.
    for r in ROUTES {
        let Some(Rewrite::Invite(inv)) = r.rewrite else {
            continue;
        };
        let got = call(
            proxy.addr,
            "POST",
            &invite_path(r.template, inv.target_key),
            &[ALICE],
            b"",
        );
        assert_eq!(got.status, 200, "{}", r.operation);
        assert!(got.json()["token"].is_string());
        expected_match += 1.0;
    }
    // Client tokens: create, list, delete.
    let created = call(proxy.addr, "POST", "/user/client_tokens", &[ALICE], b"");
    assert_eq!(created.status, 200);
    let token = created.json()["token"].as_str().unwrap().to_string();
    let listed = call(proxy.addr, "GET", "/user/client_tokens", &[ALICE], b"");
    assert_eq!(listed.status, 200);
    // The list is checked against the tokens as they are when the check runs: let it run
    // before the delete changes them (a caller's own change in between shows as `list`).
    settled(&proxy, expected_match + 2.0);
    let deleted = call(
        proxy.addr,
        "DELETE",
        &format!("/user/client_tokens/{token}"),
        &[ALICE],
        b"",
    );
    assert_eq!(deleted.status, 204);
    expected_match += 3.0;
    // Error answers the proxy's own checks decide: credential, id, negotiation, body.
    let invite = format!("/groups/{GROUP_ID}/users/token");
    let json = ("content-type", "application/json");
    let cases: Vec<Case> = vec![
        (
            "POST",
            invite.clone(),
            vec![("x-auth-token", "MDAxnotarealtoken")],
            b"",
            401,
        ),
        ("POST", invite.clone(), vec![], b"", 401),
        (
            "POST",
            "/groups/a.b/users/token".into(),
            vec![ALICE],
            b"",
            404,
        ),
        (
            "POST",
            invite.clone(),
            vec![ALICE, ("accept", "text/html")],
            b"",
            406,
        ),
        (
            "POST",
            invite.clone(),
            vec![ALICE, ("content-type", "text/plain")],
            b"{}",
            415,
        ),
        ("POST", invite.clone(), vec![ALICE, json], b"[1]", 400),
        (
            "DELETE",
            "/user/client_tokens/notatoken".into(),
            vec![ALICE],
            b"",
            404,
        ),
        ("GET", "/user/client_tokens".into(), vec![], b"", 401),
        (
            "GET",
            "/user/client_tokens".into(),
            vec![("x-auth-token", PROVIDER_TOKEN)],
            b"",
            404,
        ),
        (
            "POST",
            "/user/client_tokens".into(),
            vec![("x-auth-token", PROVIDER_TOKEN)],
            b"",
            404,
        ),
    ];
    for (method, path, headers, body, status) in &cases {
        let got = call(proxy.addr, method, path, headers, body);
        assert_eq!(got.status, *status, "{method} {path} {headers:?}");
        expected_match += 1.0;
    }
    // Bob may not invite to the group: Onezone says 403, which only creating a token would
    // have told the rewrite: not verifiable, and no token is created to find out.
    let tokens_before = zone.token_count();
    let bob = call(
        proxy.addr,
        "POST",
        &invite,
        &[("x-auth-token", BOB_TOKEN)],
        b"",
    );
    assert_eq!(bob.status, 403);
    let s = settled(&proxy, expected_match + 1.0);
    assert_eq!(
        zone.token_count(),
        tokens_before,
        "verification created no token"
    );
    assert_eq!(
        s.sum("migproxy_verify_total", &[("result", "match")]),
        expected_match,
        "{}",
        s.text()
    );
    assert_eq!(
        s.sum("migproxy_verify_total", &[("result", "unverifiable")]),
        1.0
    );
    assert_eq!(
        s.sum("migproxy_verify_total", &[("result", "mismatch")]),
        0.0
    );
    assert_eq!(s.sum("migproxy_verify_total", &[("result", "error")]), 0.0);
    for r in ROUTES.iter().filter(|r| r.rewrite.is_some()) {
        assert!(
            s.value(
                "migproxy_verify_total",
                &[
                    ("route", r.operation),
                    ("result", "match"),
                    ("field", "none")
                ]
            ) >= 1.0,
            "{} was verified",
            r.operation
        );
    }
    // The access lines say verify.
    assert!(
        proxy.log().contains("\"mode\":\"verify\"")
            || proxy.log().contains("mode=\"verify\"")
            || proxy.log().contains("mode=verify")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_altered_rewrite_is_a_mismatch_on_exactly_that_field() {
    let zone = onezone().await;
    let proxy = verifying(&zone, "", Some(("OMP_TEST_ALTER_REWRITE", "usage_limit")));
    let got = call(
        proxy.addr,
        "POST",
        &format!("/spaces/{SPACE_ID}/users/token"),
        &[ALICE],
        b"",
    );
    assert_eq!(got.status, 200);
    let issued = got.json()["token"].as_str().unwrap().to_string();
    // A client token has no usage limit: unaffected.
    assert_eq!(
        call(proxy.addr, "POST", "/user/client_tokens", &[ALICE], b"").status,
        200
    );
    let s = settled(&proxy, 2.0);
    assert_eq!(
        s.value(
            "migproxy_verify_total",
            &[
                ("route", "create_space_user_invite_token"),
                ("result", "mismatch"),
                ("field", "usage_limit")
            ]
        ),
        1.0,
        "{}",
        s.text()
    );
    assert_eq!(
        s.sum("migproxy_verify_total", &[("result", "mismatch")]),
        1.0
    );
    assert_eq!(
        s.value(
            "migproxy_verify_total",
            &[
                ("route", "create_client_token"),
                ("result", "match"),
                ("field", "none")
            ]
        ),
        1.0
    );
    // Logged once, with both values and the subject, never the token or the credential.
    let log = proxy.log();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("answered differently"))
        .collect();
    assert_eq!(lines.len(), 1, "{log}");
    let line = lines[0];
    for want in [
        "usage_limit",
        "create_space_user_invite_token",
        ALICE_ID,
        "expected=2",
        "actual=1",
    ] {
        assert!(line.contains(want), "{want} in {line}");
    }
    assert!(!log.contains(&issued) && !log.contains(ALICE_TOKEN));
}

/// The client's answer is Onezone's, byte for byte as in passthrough (but the `Date` line).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verification_never_changes_the_answer() {
    let zone = onezone().await;
    let verify = verifying(&zone, "", Some(("OMP_TEST_ALTER_REWRITE", "usage_limit")));
    let pass = Proxy::builder(&format!("http://{}", zone.addr()))
        .extra("[deprecation]\nmode = \"passthrough\"")
        .start();
    let without_date = |r: &RawResponse| {
        let head: Vec<&str> = r
            .head
            .lines()
            .filter(|l| !l.to_ascii_lowercase().starts_with("date:"))
            .collect();
        (head.join("\n"), r.body.clone())
    };
    let invite = format!("/groups/{GROUP_ID}/users/token");
    let cases: Vec<Sent> = vec![
        ("GET", "/user/client_tokens".into(), vec![ALICE], b""),
        (
            "POST",
            invite.clone(),
            vec![("x-auth-token", BOB_TOKEN)],
            b"",
        ),
        (
            "POST",
            invite.clone(),
            vec![ALICE, ("accept", "text/html")],
            b"",
        ),
        (
            "POST",
            invite.clone(),
            vec![ALICE, ("content-type", "application/json")],
            b"[1]",
        ),
        (
            "DELETE",
            "/user/client_tokens/notatoken".into(),
            vec![ALICE],
            b"",
        ),
        ("POST", "/groups/a.b/users/token".into(), vec![], b""),
    ];
    for (method, path, headers, body) in &cases {
        let a = call(verify.addr, method, path, headers, body);
        let b = call(pass.addr, method, path, headers, body);
        assert_eq!(without_date(&a), without_date(&b), "{method} {path}");
    }
    settled(&verify, cases.len() as f64);
}

/// A slow check never delays the client's answer, a failing one never fails it, and a full
/// queue drops and counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_or_failing_checks_and_a_full_queue_leave_the_client_alone() {
    let zone = onezone().await;
    let slow = verifying(&zone, "", None);
    let failing = verifying(&zone, "[verify]\ntimeout = \"1ms\"", None);
    // Every call to "Onezone" now takes 150 ms: the client's one call, and each of the check's.
    let delay = Duration::from_millis(150);
    zone.set_delay(delay);
    let started = Instant::now();
    let got = call(slow.addr, "GET", "/user/client_tokens", &[ALICE], b"");
    let took = started.elapsed();
    assert_eq!(got.status, 200);
    // The check (caller, list, each token: at least two more calls) is still running.
    assert_eq!(
        Scrape::take(&slow).value("migproxy_verify_pending", &[]),
        1.0
    );
    assert!(
        took < delay * 2,
        "the client waited {took:?}: not for the check"
    );
    let s = settled(&slow, 1.0);
    assert_eq!(
        s.sum("migproxy_verify_total", &[("result", "match")]),
        1.0,
        "{}",
        s.text()
    );
    // Every check times out: every client is served all the same.
    for _ in 0..3 {
        assert_eq!(
            call(failing.addr, "GET", "/user/client_tokens", &[ALICE], b"").status,
            200
        );
    }
    let s = settled(&failing, 3.0);
    assert_eq!(
        s.sum("migproxy_verify_total", &[("result", "error")]),
        3.0,
        "{}",
        s.text()
    );
    zone.set_delay(Duration::ZERO);
    // One check at a time and none waiting: a burst is mostly dropped, every client served.
    let narrow = verifying(&zone, "[verify]\nconcurrency = 1\nqueue = 0", None);
    let addr = narrow.addr;
    let handles: Vec<_> = (0..40)
        .map(|_| {
            std::thread::spawn(move || {
                call(addr, "GET", "/user/client_tokens", &[ALICE], b"").status
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), 200);
    }
    let s = settled(&narrow, 40.0);
    let dropped = s.sum("migproxy_verify_total", &[("result", "dropped")]);
    let matched = s.sum("migproxy_verify_total", &[("result", "match")]);
    assert_eq!(dropped + matched, 40.0, "{}", s.text());
    assert!(
        dropped >= 1.0,
        "a burst of 40 overflows one slot: {}",
        s.text()
    );
}

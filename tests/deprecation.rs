//! Deprecation signalling and migration controls over real sockets: the RFC 9745 / 8594 / 8288
//! headers, each mode, brownouts, sunset, rollout, and live reload.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::upstream::TestUpstream;
use common::{client, Proxy};
use onezone_standin::{demo::*, StandIn, World};
use reqwest::header::HeaderMap;

use common::P;

const POLICY: &str = r#"
[deprecation]
date = "2020-03-01T00:00:00Z"
sunset = "2099-12-31T23:59:59Z"
docs_url = "https://docs.example/tokens-migration"
sunset_policy_url = "https://docs.example/sunset-policy"
"#;

fn all(h: &HeaderMap, name: &str) -> Vec<String> {
    h.get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect()
}

/// Exactly one `Deprecation: @<secs>`, an IMF-fixdate `Sunset` in GMT, and the three relations.
fn assert_deprecation_headers(h: &HeaderMap, successor: Option<&str>) {
    assert_eq!(
        all(h, "deprecation"),
        vec!["@1583020800"],
        "one Structured Field date"
    );
    assert_eq!(all(h, "sunset"), vec!["Thu, 31 Dec 2099 23:59:59 GMT"]);
    let links = all(h, "link").join(", ");
    assert!(
        links.contains(
            r#"<https://docs.example/tokens-migration>; rel="deprecation"; type="text/html""#
        ),
        "{links}"
    );
    assert!(
        links.contains(r#"<https://docs.example/sunset-policy>; rel="sunset""#),
        "{links}"
    );
    if let Some(s) = successor {
        assert!(
            links.contains(&format!(r#"<{s}>; rel="successor-version""#)),
            "{links}"
        );
    }
}

fn assert_no_deprecation_headers(h: &HeaderMap) {
    for name in ["deprecation", "sunset"] {
        assert!(h.get(name).is_none(), "{name} on an ordinary call");
    }
    assert!(!all(h, "link").join(",").contains("rel=\"deprecation\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewritten_answers_carry_the_headers_on_success_and_error() {
    let zone = StandIn::start(World::demo()).await.unwrap();
    let proxy = Proxy::builder(&format!("http://{}", zone.addr()))
        .extra(POLICY)
        .start();
    let c = client();
    let successor = format!("http://zone.example{P}/user/tokens/named");
    for (token, status) in [(ALICE_TOKEN, 200), (BOB_TOKEN, 403)] {
        let r = c
            .post(proxy.url(&format!("{P}/groups/{GROUP_ID}/users/token")))
            .header("host", "zone.example")
            .header("x-auth-token", token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), status);
        assert_deprecation_headers(r.headers(), Some(&successor));
    }
    // A 404 for an id Onezone cannot have, answered without an upstream call, too.
    let r = c
        .post(proxy.url(&format!("{P}/groups/a%20b/users/token")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_deprecation_headers(r.headers(), None);
    // And none on the tokens API itself.
    let r = c
        .get(proxy.url(&format!("{P}/user/tokens/named")))
        .header("x-auth-token", ALICE_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_no_deprecation_headers(r.headers());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn annotate_only_operations_pass_through_with_headers_merged() {
    let up = TestUpstream::start().await;
    let proxy = Proxy::builder(&up.url())
        .extra(&POLICY.replace(
            "[deprecation]",
            "[deprecation]\npublic_url = \"https://onezone.example.org\"",
        ))
        .start();
    let c = client();
    let body = r#"{"providerId":"p1","token":"t"}"#;
    let r = c
        .post(proxy.url(&format!("{P}/provider/public/verify_provider_identity")))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let h = r.headers().clone();
    assert_deprecation_headers(
        &h,
        Some(&format!(
            "https://onezone.example.org{P}/tokens/verify_identity_token"
        )),
    );
    assert!(
        all(&h, "link").contains(&r#"<https://upstream.example/help>; rel="help""#.to_string()),
        "the upstream's Link is kept: {:?}",
        all(&h, "link")
    );
    assert_eq!(r.text().await.unwrap(), "hello");
    let seen = up.last();
    assert_eq!(
        seen.target,
        format!("{P}/provider/public/verify_provider_identity")
    );
    assert_eq!(seen.body, body.as_bytes(), "passed through untouched");

    // Space aliases: deprecated, no successor, still annotated.
    let r = c
        .get(proxy.url(&format!("{P}/user/spaces/s1/alias")))
        .send()
        .await
        .unwrap();
    assert_deprecation_headers(r.headers(), None);

    // Ordinary pass-through: no headers, the upstream's Link alone.
    let r = c
        .get(proxy.url(&format!("{P}/spaces/s1")))
        .send()
        .await
        .unwrap();
    assert_no_deprecation_headers(r.headers());
    assert_eq!(
        all(r.headers(), "link"),
        vec![r#"<https://upstream.example/help>; rel="help""#]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passthrough_mode_forwards_the_legacy_call_unchanged() {
    let up = TestUpstream::start().await;
    let proxy = Proxy::builder(&up.url())
        .extra(&format!(
            "{POLICY}\n[routes.create_user_group_invite_token]\nmode = \"passthrough\"\n"
        ))
        .start();
    let r = client()
        .post(proxy.url(&format!("{P}/groups/g1/users/token")))
        .header("x-auth-token", "tok")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_deprecation_headers(r.headers(), None);
    // The forwarded call; the caller's look-up (`/tokens/examine`) may follow it at any time.
    let seen = up
        .seen()
        .into_iter()
        .find(|s| s.target != format!("{P}/tokens/examine"))
        .unwrap();
    assert_eq!(
        (seen.method.as_str(), seen.target.as_str()),
        ("POST", "/api/v3/onezone/groups/g1/users/token")
    );
    assert_eq!(seen.header("x-auth-token"), Some("tok"));
    assert_eq!(seen.body, b"{}");
    // Other routes keep the default (rewrite): the stand-in-less upstream is not asked to create.
    let before = up.seen().len();
    let r = client()
        .post(proxy.url(&format!("{P}/spaces/s1/users/token")))
        .header("x-auth-token", "tok")
        .send()
        .await
        .unwrap();
    assert_ne!(r.status(), 200);
    assert!(up.seen()[before..]
        .iter()
        .all(|s| !s.target.contains("/spaces/s1/users/token")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reject_brownout_and_sunset_answer_410_without_calling_onezone() {
    let up = TestUpstream::start().await;
    let policy = format!(
        "{POLICY}
[routes.create_user_group_invite_token]
mode = \"reject\"
[routes.create_space_user_invite_token]
brownouts = [{{ start = \"2000-01-01T00:00:00Z\", end = \"2099-01-01T00:00:00Z\" }}]
[routes.create_client_token]
sunset = \"2021-01-01T00:00:00Z\"
after_sunset = \"reject\"
[routes.list_client_tokens]
sunset = \"2021-01-01T00:00:00Z\"
after_sunset = \"keep\"
mode = \"passthrough\"
"
    );
    let proxy = Proxy::builder(&up.url()).extra(&policy).start();
    let c = client();
    for (method, path, reason) in [
        ("POST", "/groups/g1/users/token", "retired"),
        ("POST", "/spaces/s1/users/token", "brownout"),
        ("POST", "/user/client_tokens", "sunset"),
    ] {
        let r = c
            .request(method.parse().unwrap(), proxy.url(&format!("{P}{path}")))
            .header("host", "zone.example")
            .header("x-auth-token", "tok")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 410, "{path}");
        assert!(r.headers().get("deprecation").is_some(), "{path}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"]["id"], "gone", "{path}");
        let successor = format!("http://zone.example{P}/user/tokens/named");
        assert_eq!(
            body["error"]["details"]["successor"],
            successor.as_str(),
            "{path}"
        );
        let text = body["error"]["description"].as_str().unwrap();
        assert!(
            text.contains(reason) || (reason == "retired" && text.contains("retired")),
            "{path}: {text}"
        );
    }
    // Nothing reached Onezone for the answers; what may follow them is the look-up of who
    // called (`POST /tokens/examine`, after the 410 was sent: every legacy call knows its
    // caller, in every mode).
    let examine = format!("{P}/tokens/examine");
    let seen = up.seen();
    assert!(
        seen.iter().all(|s| s.target == examine),
        "no upstream call but the caller look-up: {seen:?}"
    );
    // Past the sunset with `keep`: still served (here passed through), with the past date.
    let r = c
        .get(proxy.url(&format!("{P}/user/client_tokens")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["sunset"], "Fri, 01 Jan 2021 00:00:00 GMT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollout_sends_the_configured_share_through_the_rewrite() {
    // 0%: everyone passes through; 100%: everyone is rewritten (per-caller share and stickiness
    // are unit-tested in migration.rs with 10,000 callers).
    let up = TestUpstream::start().await;
    let proxy = Proxy::builder(&up.url())
        .extra("[deprecation]\nrewrite_percent = 0")
        .start();
    for i in 0..20 {
        let r = client()
            .post(proxy.url(&format!("{P}/groups/g1/users/token")))
            .header("x-auth-token", format!("caller-{i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    // Every call passed through as it was; besides them only the look-ups of who called
    // (one per credential, after each answer).
    let seen = up.seen();
    let forwarded = seen
        .iter()
        .filter(|s| s.target == format!("{P}/groups/g1/users/token"))
        .count();
    assert_eq!(forwarded, 20);
    assert!(seen
        .iter()
        .all(|s| s.target == format!("{P}/groups/g1/users/token")
            || s.target == format!("{P}/tokens/examine")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sunset_before_deprecation_is_refused() {
    let dir = common::scratch_dir("dep");
    let path = dir.join("c.toml");
    std::fs::write(
        &path,
        "[deprecation]\ndate = \"2026-01-01T00:00:00Z\"\n[routes.list_client_tokens]\nsunset = \"2025-01-01T00:00:00Z\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(common::BIN)
        .args(["check-config", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("routes.list_client_tokens.sunset"), "{err}");
    assert!(err.contains("earlier than the deprecation date"), "{err}");
}

/// A client keeps calling while the config is swapped (valid, then invalid): no request fails,
/// the new mode is seen, the invalid file is refused and the old config stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_swaps_policies_without_dropping_requests() {
    let zone = StandIn::start(World::demo()).await.unwrap();
    let proxy = Arc::new(
        Proxy::builder(&format!("http://{}", zone.addr()))
            .extra(POLICY)
            .start(),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let gone = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let url = proxy.url(&format!("{P}/groups/{GROUP_ID}/users/token"));
    let mut workers = Vec::new();
    for _ in 0..2 {
        let (stop, ok, gone, failed, url) = (
            stop.clone(),
            ok.clone(),
            gone.clone(),
            failed.clone(),
            url.clone(),
        );
        workers.push(tokio::spawn(async move {
            let c = client();
            let deadline = Instant::now() + Duration::from_secs(20);
            while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                match c
                    .post(&url)
                    .header("x-auth-token", ALICE_TOKEN)
                    .send()
                    .await
                {
                    Ok(r) if r.status() == 200 => ok.fetch_add(1, Ordering::SeqCst),
                    Ok(r) if r.status() == 410 => gone.fetch_add(1, Ordering::SeqCst),
                    _ => failed.fetch_add(1, Ordering::SeqCst),
                };
            }
        }));
    }
    let wait_for = |counter: &Arc<AtomicUsize>, n: usize| {
        let counter = counter.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(10);
            while counter.load(Ordering::SeqCst) < n && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            counter.load(Ordering::SeqCst)
        }
    };
    assert!(wait_for(&ok, 20).await >= 20, "served before the reload");

    proxy.write_config(&format!("{POLICY}\nmode = \"reject\"\n"));
    proxy.signal("HUP");
    assert!(wait_for(&gone, 20).await >= 20, "the new mode is observed");
    let ok_after_swap = ok.load(Ordering::SeqCst);

    proxy.write_config("[deprecation]\nrewrite_percent = 500\n");
    proxy.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while proxy.sample("migproxy_config_reloads_total", &[("result", "failure")]) != 1.0 {
        assert!(Instant::now() < deadline, "the refusal is counted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let gone_before = gone.load(Ordering::SeqCst);
    assert!(
        wait_for(&gone, gone_before + 20).await >= gone_before + 20,
        "old config still active"
    );

    stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.await.unwrap();
    }
    assert_eq!(
        failed.load(Ordering::SeqCst),
        0,
        "no request failed across reloads"
    );
    assert!(
        ok.load(Ordering::SeqCst) <= ok_after_swap + 2,
        "no rewrite after the swap settled"
    );
    assert_eq!(
        proxy.sample("migproxy_config_reloads_total", &[("result", "success")]),
        1.0
    );
    let log = proxy.log();
    assert!(log.contains("config reload refused"), "{log}");
    assert!(
        log.contains("deprecation.rewrite_percent"),
        "the log names the key"
    );
}

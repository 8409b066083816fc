//! Metrics, logs, health and shutdown, observed from outside the real proxy process.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::upstream::TestUpstream;
use common::{client, raw_request, Proxy, Scrape, P};
use onezone_standin::{demo::*, StandIn, World};

fn legacy(
    route: &str,
    mode: &str,
    outcome: &str,
    class: &str,
    client: &str,
) -> [(&'static str, String); 5] {
    [
        ("client", client.to_string()),
        ("mode", mode.to_string()),
        ("outcome", outcome.to_string()),
        ("route", route.to_string()),
        ("status_class", class.to_string()),
    ]
}

fn as_refs<'a>(l: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    l.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_a_scripted_mix_exactly() {
    let zone = StandIn::start(World::demo()).await.unwrap();
    let proxy = Proxy::start(zone.addr());
    let c = client();
    let invite = proxy.url(&format!("{P}/groups/{GROUP_ID}/users/token"));
    for _ in 0..3 {
        let r = c
            .post(&invite)
            .header("x-auth-token", ALICE_TOKEN)
            .header("user-agent", "curl/8.1.2")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    for _ in 0..2 {
        let r = c
            .post(&invite)
            .header("x-auth-token", BOB_TOKEN)
            .header("user-agent", "onezone-rest-cli/21.02")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403);
    }
    let r = c
        .post(&invite)
        .header("user-agent", "secret-agent/7")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    for _ in 0..4 {
        let r = c
            .get(proxy.url(&format!("{P}/configuration")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let r = c
        .get(proxy.url(&format!("{P}/user/spaces/{SPACE_ID}/alias")))
        .header("x-auth-token", ALICE_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "the stand-in does not serve aliases");

    // The last answer is on the wire before its request is logged: wait for the log phase.
    let deadline = Instant::now() + Duration::from_secs(5);
    let s = loop {
        let s = Scrape::take(&proxy);
        if s.value("migproxy_in_flight_requests", &[]) == 0.0 || Instant::now() > deadline {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let route = "create_user_group_invite_token";
    let cases = [
        (legacy(route, "rewrite", "success", "2xx", "curl"), 3.0),
        (
            legacy(route, "rewrite", "client_error", "4xx", "onezone-rest-cli"),
            2.0,
        ),
        (
            legacy(route, "rewrite", "client_error", "4xx", "other"),
            1.0,
        ),
        (
            legacy(
                "get_user_space_alias",
                "annotate",
                "client_error",
                "4xx",
                "other",
            ),
            1.0,
        ),
    ];
    for (labels, want) in &cases {
        assert_eq!(
            s.value("migproxy_legacy_requests_total", &as_refs(labels)),
            *want,
            "{labels:?}\n{}",
            s.text()
        );
    }
    assert_eq!(
        s.value(
            "migproxy_passthrough_requests_total",
            &[("method", "GET"), ("status_class", "2xx")]
        ),
        4.0
    );
    // Alice and Bob are each resolved once, then served from the cache; no credential, no lookup.
    assert_eq!(
        s.value("migproxy_caller_cache_total", &[("result", "miss")]),
        2.0
    );
    assert_eq!(
        s.value("migproxy_caller_cache_total", &[("result", "hit")]),
        3.0
    );
    assert_eq!(
        s.value(
            "migproxy_upstream_call_duration_seconds_count",
            &[("call", "examine")]
        ),
        2.0
    );
    assert_eq!(
        s.value(
            "migproxy_upstream_call_duration_seconds_count",
            &[("call", "create_named")]
        ),
        6.0
    );
    assert_eq!(
        s.value(
            "http_server_request_duration_seconds_count",
            &[("http_request_method", "POST"), ("http_route", route)]
        ),
        6.0
    );
    assert_eq!(
        s.value(
            "http_server_request_duration_seconds_count",
            &[
                ("http_request_method", "GET"),
                ("http_route", "passthrough")
            ]
        ),
        4.0
    );
    assert_eq!(
        s.value(
            "migproxy_legacy_request_duration_seconds_count",
            &[("mode", "rewrite"), ("route", route)]
        ),
        6.0
    );
    assert_eq!(
        s.value(
            "migproxy_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );
    assert_eq!(s.value("migproxy_in_flight_requests", &[]), 0.0);
}

/// 10,000 distinct paths, ids and user agents do not make 10,000 series.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn series_stay_bounded_under_distinct_paths_and_agents() {
    let up = TestUpstream::start().await;
    let proxy = Proxy::start(up.addr);
    let c = client();
    let mut after_warmup = 0;
    let total = 10_000usize;
    let mut i = 0;
    while i < total {
        let batch: Vec<_> = (i..(i + 50).min(total))
            .map(|n| {
                let c = c.clone();
                let (path, method) = match n % 3 {
                    0 => (format!("{P}/spaces/{n:032x}"), reqwest::Method::GET),
                    1 => (
                        format!("{P}/groups/{n:032x}/users/token"),
                        reqwest::Method::POST,
                    ),
                    _ => (
                        format!("{P}/user/client_tokens/tok{n}"),
                        reqwest::Method::DELETE,
                    ),
                };
                let url = proxy.url(&path);
                tokio::spawn(async move {
                    c.request(method, url)
                        .header("user-agent", format!("agent-{n}/1.0"))
                        .header("x-auth-token", format!("token-{n}"))
                        .send()
                        .await
                        .map(|r| r.status().as_u16())
                })
            })
            .collect();
        for b in batch {
            assert!(b.await.unwrap().is_ok(), "every request answered");
        }
        i += 50;
        if i == 300 {
            after_warmup = Scrape::take(&proxy).series();
        }
    }
    let s = Scrape::take(&proxy);
    println!(
        "series after 300 requests: {after_warmup}, after {total}: {}",
        s.series()
    );
    assert_eq!(
        s.series(),
        after_warmup,
        "no new series from new paths, ids or agents"
    );
    assert!(s.series() < 400, "{}", s.series());
    for (name, labels) in s.0.keys() {
        for v in labels.values() {
            assert!(
                !v.contains("agent-") && !v.contains("token-") && !v.contains("0000000"),
                "a raw value in a label: {name} {labels:?}"
            );
        }
    }
}

/// Canary secrets sent through every path never show up in logs or metrics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_never_logged() {
    let zone = StandIn::start(World::demo()).await.unwrap();
    let proxy = Proxy::builder(&format!("http://{}", zone.addr()))
        .env("RUST_LOG", "debug")
        .start();
    let dead = Proxy::builder(&format!("http://127.0.0.1:{}", common::free_port()))
        .extra("[routes.remove_client_token]\nmode = \"passthrough\"")
        .env("RUST_LOG", "debug")
        .start();
    // `verify` in front of a Onezone with its legacy code, its rewrite altered so that the
    // mismatch lines (which carry values) are written too.
    let mut legacy_world = World::demo();
    legacy_world.serve_legacy(true);
    let legacy_zone = StandIn::start(legacy_world).await.unwrap();
    let verifying = Proxy::builder(&format!("http://{}", legacy_zone.addr()))
        .extra("[deprecation]\nmode = \"verify\"")
        .env("RUST_LOG", "debug")
        .env("OMP_TEST_ALTER_REWRITE", "usage_limit")
        .start();
    let canaries = [
        ("x-onedata-consumer-token", "CANARYconsumer1"),
        ("x-onedata-service-token", "CANARYservice2"),
        ("macaroon", "CANARYmacaroon3"),
    ];
    let c = client();
    let mut returned = Vec::new();
    for p in [&proxy, &dead, &verifying] {
        let calls: Vec<Scripted> = vec![
            (
                reqwest::Method::POST,
                format!("{P}/groups/{GROUP_ID}/users/token"),
                vec![("x-auth-token", ALICE_TOKEN.to_string())],
            ),
            (
                reqwest::Method::POST,
                format!("{P}/groups/{GROUP_ID}/users/token"),
                vec![("authorization", "Bearer CANARYbearer4".into())],
            ),
            (
                reqwest::Method::POST,
                format!("{P}/user/client_tokens"),
                vec![("authorization", format!("Basic {}", b64("alice:password")))],
            ),
            (
                reqwest::Method::GET,
                format!("{P}/user/client_tokens"),
                vec![("x-auth-token", ALICE_TOKEN.to_string())],
            ),
            (
                reqwest::Method::DELETE,
                format!("{P}/user/client_tokens/CANARYtid5"),
                vec![("x-auth-token", "CANARYauth6".into())],
            ),
            (
                reqwest::Method::GET,
                format!("{P}/user"),
                vec![(
                    "authorization",
                    format!("Basic {}", b64("alice:CANARYpassword7")),
                )],
            ),
        ];
        for (method, path, headers) in calls {
            let mut req = c.request(method, p.url(&path));
            for (k, v) in &headers {
                req = req.header(*k, v.as_str());
            }
            for (k, v) in canaries {
                req = req.header(k, v);
            }
            let r = req.send().await.unwrap();
            let text = r.text().await.unwrap();
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
                if let Some(t) = v["token"].as_str() {
                    returned.push(t.to_string());
                }
                for t in v["tokens"].as_array().into_iter().flatten() {
                    returned.push(t.as_str().unwrap().to_string());
                }
            }
        }
    }
    assert!(!returned.is_empty(), "tokens came back in bodies");
    let mut secrets: Vec<String> = canaries.iter().map(|(_, v)| v.to_string()).collect();
    secrets.extend(
        [
            "CANARYbearer4",
            "CANARYtid5",
            "CANARYauth6",
            "CANARYpassword7",
            ALICE_TOKEN,
            &b64("alice:password"),
            &b64("alice:CANARYpassword7"),
        ]
        .map(String::from),
    );
    secrets.extend(returned);
    let deadline = Instant::now() + Duration::from_secs(20);
    while Scrape::take(&verifying).value("migproxy_verify_pending", &[]) > 0.0 {
        assert!(Instant::now() < deadline, "the checks end");
        std::thread::sleep(Duration::from_millis(50));
    }
    let checked = Scrape::take(&verifying);
    assert!(
        checked.value(
            "migproxy_verify_total",
            &[
                ("route", "create_user_group_invite_token"),
                ("result", "mismatch"),
                ("field", "usage_limit")
            ]
        ) >= 1.0,
        "a mismatch was logged: {}",
        checked.text()
    );
    for p in [&proxy, &dead, &verifying] {
        let log = p.log();
        assert!(log.contains("access"), "the proxy logged its requests");
        let metrics = Scrape::take(p).text();
        for s in &secrets {
            assert!(!log.contains(s.as_str()), "{s} leaked into the log:\n{log}");
            assert!(!metrics.contains(s.as_str()), "{s} leaked into /metrics");
        }
    }
}

/// A method, a path and the credential headers to send.
type Scripted = (reqwest::Method, String, Vec<(&'static str, String)>);

fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_the_upstream() {
    let zone = StandIn::start(World::demo()).await.unwrap();
    let proxy = Proxy::start(zone.addr());
    let get = |path: &str| {
        raw_request(
            proxy.metrics,
            format!("GET {path} HTTP/1.1\r\nHost: m\r\nConnection: close\r\n\r\n").as_bytes(),
        )
    };
    assert_eq!(get("/healthz").status, 200);
    assert_eq!(get("/readyz").status, 200);
    zone.shutdown().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while get("/readyz").status != 503 {
        assert!(
            Instant::now() < deadline,
            "/readyz turns 503 when Onezone is gone"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(get("/healthz").status, 200, "still alive");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_an_in_flight_request_then_exits_zero() {
    let up = TestUpstream::start().await;
    let mut proxy = Proxy::start(up.addr);
    let url = proxy.url(&format!("{P}/slow/800"));
    let slow =
        tokio::spawn(async move { client().get(url).send().await.map(|r| r.status().as_u16()) });
    // Let the request reach the upstream before the signal.
    let deadline = Instant::now() + Duration::from_secs(5);
    while up.seen().is_empty() {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let signalled = Instant::now();
    proxy.signal("TERM");
    assert_eq!(
        slow.await.unwrap().expect("answered"),
        200,
        "the in-flight request finished"
    );
    let status = proxy
        .wait_exit(Duration::from_secs(10))
        .expect("exits within the bound");
    assert!(status.success(), "{status:?}");
    println!("exited {:?} after SIGTERM", signalled.elapsed());
}

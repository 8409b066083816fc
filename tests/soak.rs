//! Soak: a long run of mixed requests with every answer checked and the proxies' memory watched.
//!
//! `SOAK_REQUESTS` sets the number of requests (default 4,000, a short pass for the default test
//! run; the full soak is `SOAK_REQUESTS=250000 cargo test --release --test soak -- --nocapture`).
//! Every request arms read timeouts (Pingora's timer buckets), so with the 60 s defaults RSS
//! climbs for the first minute before it is steady; the soak runs the proxies with 5 s ones.
//! Two proxies run: one in front of a recording upstream for pass-through bodies of several
//! sizes (checksummed both ways), one in front of the Onezone stand-in for every legacy
//! endpoint and their error paths. Eight workers keep a steady closed-loop load.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use common::upstream::{hex, TestUpstream};
use common::{client, pattern_byte, Proxy};
use onezone_standin::{demo::*, StandIn, World};
use sha2::{Digest, Sha256};

use common::P;
const WORKERS: usize = 8;

/// One request of the mix; returns an error text when the answer is not the expected one.
async fn one(c: &reqwest::Client, n: usize, pass: &str, legacy: &str) -> Result<(), String> {
    let check = |what: &str, got: u16, want: u16| {
        if got == want {
            Ok(())
        } else {
            Err(format!("{what}: {got}, expected {want}"))
        }
    };
    let send =
        |r: reqwest::RequestBuilder| async move { r.send().await.map_err(|e| e.to_string()) };
    match n % 10 {
        0..=2 => {
            let size = [1024usize, 64 * 1024, 1024 * 1024][n % 3];
            let body: Vec<u8> = (0..size)
                .map(|i| (i as u8).wrapping_mul(31).wrapping_add(n as u8))
                .collect();
            let want = hex(&Sha256::digest(&body));
            let r = send(c.post(format!("{pass}{P}/upload")).body(body)).await?;
            check("upload", r.status().as_u16(), 200)?;
            let v: serde_json::Value = r.json().await.map_err(|e| e.to_string())?;
            if v["sha256"] != want.as_str() {
                return Err(format!("upload checksum {v}"));
            }
        }
        3 | 4 => {
            let size = [0u64, 1000, 300_000][n % 3];
            let chunked = if n.is_multiple_of(2) { "?chunked" } else { "" };
            let r = send(c.get(format!("{pass}{P}/download/{size}{chunked}"))).await?;
            check("download", r.status().as_u16(), 200)?;
            let body = r.bytes().await.map_err(|e| e.to_string())?;
            if body.len() as u64 != size
                || !body
                    .iter()
                    .enumerate()
                    .all(|(i, b)| *b == pattern_byte(i as u64))
            {
                return Err(format!(
                    "download of {size} bytes corrupted ({} received)",
                    body.len()
                ));
            }
        }
        5 => {
            let r = send(
                c.post(format!("{legacy}{P}/groups/{GROUP_ID}/users/token"))
                    .header("x-auth-token", ALICE_TOKEN),
            )
            .await?;
            check("invite", r.status().as_u16(), 200)?;
        }
        6 => {
            let (token, id, want) = match n % 4 {
                0 => (BOB_TOKEN, SPACE_ID, 403),
                1 => (ALICE_TOKEN, "0000000000000000000000000000dead", 404),
                2 => (PROVIDER_TOKEN, CLUSTER_ID, 200),
                _ => ("", SPACE_ID, 401),
            };
            let path = if id == CLUSTER_ID {
                format!("/clusters/{id}/users/token")
            } else {
                format!("/spaces/{id}/users/token")
            };
            let mut r = c.post(format!("{legacy}{P}{path}"));
            if !token.is_empty() {
                r = r.header("x-auth-token", token);
            }
            check("invite error paths", send(r).await?.status().as_u16(), want)?;
        }
        7 => {
            let r = send(
                c.post(format!("{legacy}{P}/user/client_tokens"))
                    .basic_auth(ALICE_BASIC.0, Some(ALICE_BASIC.1)),
            )
            .await?;
            check("client token", r.status().as_u16(), 200)?;
            let v: serde_json::Value = r.json().await.map_err(|e| e.to_string())?;
            let t = v["token"].as_str().ok_or("no token")?.to_string();
            let r = send(
                c.delete(format!("{legacy}{P}/user/client_tokens/{t}"))
                    .header("x-auth-token", ALICE_TOKEN),
            )
            .await?;
            check("client token delete", r.status().as_u16(), 204)?;
        }
        8 => {
            let r = send(
                c.post(format!(
                    "{legacy}{P}/user/clusters/provider_registration_token"
                ))
                .header("x-auth-token", ALICE_TOKEN)
                // Declared JSON, so that it is the decoding that refuses it (400); without the
                // content type Onezone answers 415 (rest_handler.erl:112-116).
                .header("content-type", "application/json")
                .body("not json"),
            )
            .await?;
            check("bad body", r.status().as_u16(), 400)?;
        }
        _ => {
            let r = send(c.get(format!("{legacy}{P}/configuration"))).await?;
            check("pass-through to Onezone", r.status().as_u16(), 200)?;
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_mixed_requests_with_every_answer_checked() {
    let total: usize = std::env::var("SOAK_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4_000);
    let up = TestUpstream::start().await;
    let zone = StandIn::start(World::demo()).await.unwrap();
    // Short timeouts, so the timers every request arms drain within seconds and the RSS seen
    // after the first tenth is already the steady state (with the 60 s defaults it climbs for
    // a minute first; see the module doc).
    let start = |url: String| {
        Proxy::builder(&url)
            .upstream_keys("read_timeout = \"5s\"\nidle_timeout = \"5s\"")
            .extra("[limits]\nclient_timeout = \"5s\"")
            .start()
    };
    let pass = start(up.url());
    let legacy = start(format!("http://{}", zone.addr()));
    let (pass_url, legacy_url) = (pass.url(""), legacy.url(""));
    let next = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let window = total / 10;
    let rss_first = Arc::new(std::sync::Mutex::new(None::<(u64, u64)>));
    let started = Instant::now();
    let pids = (pass.pid(), legacy.pid());
    let rss = move |pid: u32| common::rss_kib(pid);
    let mut tasks = Vec::new();
    for _ in 0..WORKERS {
        let (next, errors, rss_first) = (next.clone(), errors.clone(), rss_first.clone());
        let (pass_url, legacy_url) = (pass_url.clone(), legacy_url.clone());
        tasks.push(tokio::spawn(async move {
            let c = client();
            loop {
                let n = next.fetch_add(1, Ordering::SeqCst);
                if n >= total {
                    return;
                }
                if n == window {
                    *rss_first.lock().unwrap() = Some((rss(pids.0), rss(pids.1)));
                }
                if window > 0 && n.is_multiple_of(window) {
                    println!(
                        "soak: after {n} requests RSS {} / {} KiB",
                        rss(pids.0),
                        rss(pids.1)
                    );
                }
                if let Err(e) = one(&c, n, &pass_url, &legacy_url).await {
                    errors.lock().unwrap().push(format!("request {n}: {e}"));
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = started.elapsed();
    let errors = errors.lock().unwrap().clone();
    let (first_pass, first_legacy) = rss_first
        .lock()
        .unwrap()
        .expect("sampled after the first tenth");
    let (last_pass, last_legacy) = (rss(pids.0), rss(pids.1));
    println!(
        "soak: {total} requests in {:.1} s ({:.0}/s), {} errors; RSS pass-through proxy {first_pass} -> {last_pass} KiB, legacy proxy {first_legacy} -> {last_legacy} KiB",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64(),
        errors.len()
    );
    assert!(
        errors.is_empty(),
        "{} unexplained errors, first: {:?}",
        errors.len(),
        &errors[..errors.len().min(5)]
    );
    for (name, first, last) in [
        ("pass-through", first_pass, last_pass),
        ("legacy", first_legacy, last_legacy),
    ] {
        assert!(
            last as f64 <= first as f64 * 1.10,
            "{name} proxy RSS grew more than 10%: {first} -> {last} KiB"
        );
    }
}

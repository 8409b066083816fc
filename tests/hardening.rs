//! Adversarial input and upstream faults, over real sockets: nothing smuggled, nothing mangled,
//! no panic, no hang.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::faults::{Fault, FaultServer};
use common::upstream::TestUpstream;
use common::{client, raw_request, Proxy};
use onezone_standin::{demo::*, StandIn, World};

use common::P;

/// Each smuggling vector is refused with 400 before anything reaches the upstream, and the
/// connection is closed (nothing after the refusal is read as a request).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smuggling_vectors_are_refused_and_the_connection_closed() {
    let up = TestUpstream::start().await;
    let proxy = Proxy::start(up.addr);
    let vectors = [
        "POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 13\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n",
        "POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n5c\r\nGET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n0\r\n\r\n",
        "POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 47\r\nContent-Length: 0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n",
        "POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: blahblahblah\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
        "POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
        "POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "POST /a HTTP/1.0\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ];
    for v in vectors {
        let started = Instant::now();
        let r = raw_request(proxy.addr, v.as_bytes());
        assert_eq!(r.status, 400, "{v:?}\n{}", r.head);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "closed at once: {v:?}"
        );
        assert!(
            !String::from_utf8_lossy(&r.body).contains("HTTP/1.1"),
            "one answer only: {v:?}"
        );
    }
    assert!(
        up.seen().is_empty(),
        "nothing reached the upstream: {:?}",
        up.seen()
    );
    // A case-different but valid chunked request is fine.
    let r = raw_request(
        proxy.addr,
        b"POST /upload HTTP/1.1\r\nHost: h\r\ntRANSFER-ENCODING: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    assert_eq!(up.last().body, b"abc");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_heads_get_414_and_431() {
    let up = TestUpstream::start().await;
    let proxy = Proxy::start(up.addr);
    let long_line = format!(
        "GET /{} HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
        "a".repeat(9000)
    );
    assert_eq!(raw_request(proxy.addr, long_line.as_bytes()).status, 414);
    let big_header = format!(
        "GET / HTTP/1.1\r\nHost: h\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(70_000)
    );
    assert_eq!(raw_request(proxy.addr, big_header.as_bytes()).status, 431);
    let many = format!(
        "GET / HTTP/1.1\r\nHost: h\r\n{}Connection: close\r\n\r\n",
        "X-H: 1\r\n".repeat(101)
    );
    let r = raw_request(proxy.addr, many.as_bytes());
    assert_eq!(r.status, 431);
    assert_eq!(r.json()["error"]["id"], "requestHeaderFieldsTooLarge");
    assert!(up.seen().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buffered_bodies_are_limited_and_pass_through_bodies_stream() {
    let up = TestUpstream::start().await;
    let proxy = Proxy::builder(&up.url())
        .upstream_keys("max_body_bytes = 1024")
        .start();
    let chunk = "a".repeat(4000);
    let chunked = format!(
        "POST {P}/groups/g1/users/token HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n",
        chunk.len()
    );
    let r = raw_request(proxy.addr, chunked.as_bytes());
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["error"]["id"], "payloadTooLarge");
    assert!(up.seen().is_empty());
    let r = client()
        .post(proxy.url(&format!("{P}/upload")))
        .body(chunk.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "pass-through is not limited");
    assert_eq!(up.last().body_len, 4000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_time_out_without_slowing_others() {
    let up = TestUpstream::start().await;
    let proxy = Proxy::builder(&up.url())
        .extra("[limits]\nclient_timeout = \"1s\"")
        .start();
    // Twenty slowloris connections dribbling their headers.
    let addr = proxy.addr;
    let drips: Vec<_> = (0..20)
        .map(|_| {
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(addr).unwrap();
                for b in b"GET /slow HTTP/1.1\r\nHost: h\r\nX-A: " {
                    if s.write_all(&[*b]).is_err() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            })
        })
        .collect();
    let c = client();
    for _ in 0..20 {
        let started = Instant::now();
        let r = c.get(proxy.url("/quick")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "others are not slowed down"
        );
    }
    for d in drips {
        d.join().unwrap();
    }
    // A body that stalls is cut off after client_timeout with 408.
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(
        format!(
            "POST {P}/groups/g1/users/token HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n{{}}"
        )
        .as_bytes(),
    )
    .unwrap();
    let started = Instant::now();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let r = common::parse_raw(&buf);
    assert_eq!(r.status, 408);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(r.json()["error"]["id"], "requestTimeout");
}

/// The routing decision for legacy paths equals Onezone's: dot segments resolve, `%2F` stays
/// inside an id, the prefix is case-sensitive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_tricks_route_as_onezone_would() {
    let zone = StandIn::start(World::demo()).await.unwrap();
    let proxy = Proxy::start(zone.addr());
    let post = |path: String| {
        raw_request(
            proxy.addr,
            format!("POST {path} HTTP/1.1\r\nHost: h\r\nX-Auth-Token: {ALICE_TOKEN}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").as_bytes(),
        )
    };
    for legacy in [
        format!("{P}/user/../groups/{GROUP_ID}/users/token"),
        format!("{P}/user/%2e%2e/groups/{GROUP_ID}/users/token"),
        format!("{P}/./groups/{GROUP_ID}/./users/token"),
        format!("{P}/groups/{GROUP_ID}/users/token/"),
    ] {
        zone.clear_requests();
        let r = post(legacy.clone());
        assert_eq!(
            r.status,
            200,
            "{legacy}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert!(r.json()["token"].is_string());
        assert!(
            zone.requests()
                .iter()
                .all(|q| !q.path.contains("users/token")),
            "{legacy}: rewritten, not forwarded"
        );
    }
    for not_an_id in [
        format!("{P}/groups/a%2Fb/users/token"),
        format!("{P}/groups//users/token"),
    ] {
        zone.clear_requests();
        let r = post(not_an_id.clone());
        assert_eq!(r.status, 404, "{not_an_id}");
        assert!(zone.requests().is_empty(), "{not_an_id}: no upstream call");
    }
    // `%2e%2e` in the id position is a dot segment for Onezone too: the path then names no
    // legacy route, so it is forwarded untouched and Onezone answers it.
    zone.clear_requests();
    let dotted = format!("{P}/groups/%2e%2e/users/token");
    assert_eq!(post(dotted.clone()).status, 404);
    assert_eq!(zone.requests().len(), 1);
    assert_eq!(zone.requests()[0].path, dotted);
    // Not Onezone's route (case differs): forwarded as it is, and Onezone says 404.
    zone.clear_requests();
    let mixed = format!("/API/v3/onezone/groups/{GROUP_ID}/users/token");
    let r = post(mixed.clone());
    assert_eq!(r.status, 404);
    assert_eq!(zone.requests().len(), 1);
    assert_eq!(zone.requests()[0].path, mixed);
}

/// An Upgrade on a legacy endpoint never opens a tunnel: the proxy answers it itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn premature_upgrade_on_api_routes_opens_no_tunnel() {
    let zone = StandIn::start(World::demo()).await.unwrap();
    let proxy = Proxy::start(zone.addr());
    let r = raw_request(
        proxy.addr,
        format!(
            "POST {P}/groups/{GROUP_ID}/users/token HTTP/1.1\r\nHost: h\r\nX-Auth-Token: {ALICE_TOKEN}\r\n\
             Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\nContent-Length: 0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    );
    assert_eq!(r.status, 200, "answered, not upgraded");
    assert!(zone
        .requests()
        .iter()
        .all(|q| q.header("upgrade").is_none()));
    assert!(
        zone.requests().iter().all(|q| !q.path.contains("smuggled"))
            || zone.requests().iter().any(|q| q.path == "/smuggled"),
        "a pipelined request is a request, never tunnel bytes"
    );
    // Through to an upstream that does not switch protocols, the answer is a plain answer.
    let up = TestUpstream::start().await;
    let proxy = Proxy::start(up.addr);
    let r = common::raw_request_within(
        proxy.addr,
        Duration::from_secs(2),
        b"GET /api/v3/onezone/user HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n",
    );
    assert_eq!(r.status, 200, "a plain answer");
    assert!(
        !r.head.to_ascii_lowercase().contains("upgrade: websocket"),
        "{}",
        r.head
    );
}

async fn legacy_call_against(
    fault: Fault,
) -> (u16, serde_json::Value, Vec<String>, Proxy, FaultServer) {
    let server = FaultServer::start(fault).await;
    let proxy = Proxy::builder(&server.url())
        .upstream_keys("read_timeout = \"1s\"")
        .start();
    let r = client()
        .post(proxy.url(&format!("{P}/groups/g1/users/token")))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let body = r.json().await.unwrap_or(serde_json::Value::Null);
    let lines = server.request_lines();
    (status, body, lines, proxy, server)
}

/// Every kind of broken answer to a legacy call gives an Onezone-shaped 502 or 504 within the
/// timeout, exactly one token creation (never retried), and a proxy that carries on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_faults_on_legacy_calls_are_gateway_errors() {
    for (fault, want) in [
        (Fault::Garbage, 502),
        (Fault::ResetMidBody, 502),
        (Fault::TruncatedJson, 502),
        (Fault::Gzip, 502),
        (Fault::WrongContentType, 502),
        (Fault::SlowBody(3000), 504),
        (Fault::CreatedWithoutToken, 502),
        (Fault::Unavailable, 503),
    ] {
        let started = Instant::now();
        let (status, body, calls, proxy, _server) = legacy_call_against(fault).await;
        assert_eq!(status, want, "{fault:?}: {body}");
        assert!(
            body["error"]["id"].is_string(),
            "{fault:?}: Onezone's error shape: {body}"
        );
        // Counted by what was asked: a request from elsewhere that reached this upstream
        // (one full run saw a second request once, never reproduced) is named, not miscounted.
        let creations = calls
            .iter()
            .filter(|l| l.starts_with("post ") && l.contains("/tokens/named"))
            .count();
        assert!(
            creations == 1,
            "{fault:?}: one token creation, not retried; the upstream received {calls:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(6),
            "{fault:?}: answered in time"
        );
        let r = client().get(proxy.url("/healthz")).send().await;
        assert!(r.is_ok(), "{fault:?}: the proxy is still up");
        if let Fault::CreatedWithoutToken = fault {
            let log = proxy.log();
            assert!(
                log.contains("id-of-created-token"),
                "the created token's id is logged"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5xx_storm_passes_through_and_the_proxy_stays_healthy() {
    let server = FaultServer::start(Fault::Unavailable).await;
    let proxy = Proxy::start(server.addr);
    let c = client();
    let mut tasks = Vec::new();
    for i in 0..500 {
        let c = c.clone();
        let url = proxy.url(&format!("{P}/spaces/s{i}"));
        tasks.push(tokio::spawn(async move {
            c.get(url).send().await.map(|r| r.status().as_u16())
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), 503);
    }
    assert_eq!(
        server.requests(),
        500,
        "one upstream call per request, none retried"
    );
}

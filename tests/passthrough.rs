//! Pass-through fidelity: every call that is not a legacy endpoint reaches Onezone as the client
//! sent it, and Onezone's answer comes back unchanged, streamed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::upstream::{hex, TestUpstream};
use common::{client, pattern_byte, raw_request, Proxy};
use futures_util::{SinkExt, StreamExt};
use sha2::{Digest, Sha256};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwards_method_path_query_headers_and_body_byte_for_byte() {
    let up = TestUpstream::start().await;
    let proxy = Proxy::start(up.addr);
    let body = br#"{"name":"x","privileges":["cluster_view"]}"#;
    let target = "/api/v3/onezone/clusters/c1/users/u%2F1/../x?b=2&a=%20&&c";
    let req = format!(
        "PUT {target} HTTP/1.1\r\nHost: onezone.example.org\r\nX-Auth-Token: tok-a\r\n\
         Authorization: Bearer tok-b\r\nMacaroon: tok-c\r\nX-Onedata-Consumer-Token: tok-d\r\n\
         X-Onedata-Service-Token: tok-e\r\nX-Custom: one\r\nX-Custom: two\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    let resp = raw_request(proxy.addr, &bytes);

    let seen = up.last();
    assert_eq!(seen.method, "PUT");
    assert_eq!(
        seen.target, target,
        "path and query unchanged, no normalisation"
    );
    assert_eq!(seen.body, body);
    assert_eq!(seen.header("host"), Some("onezone.example.org"));
    for (name, value) in [
        ("x-auth-token", "tok-a"),
        ("authorization", "Bearer tok-b"),
        ("macaroon", "tok-c"),
        ("x-onedata-consumer-token", "tok-d"),
        ("x-onedata-service-token", "tok-e"),
        ("content-type", "application/json"),
    ] {
        assert_eq!(seen.all(name), vec![value], "{name}");
    }
    assert_eq!(seen.all("x-custom"), vec!["one", "two"]);

    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, b"hello");
    assert_eq!(resp.header("x-upstream").as_deref(), Some("1"));
    assert!(
        resp.head.contains("a=1") && resp.head.contains("b=2"),
        "both set-cookie lines: {}",
        resp.head
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_errors_come_back_unchanged() {
    let up = TestUpstream::start().await;
    let proxy = Proxy::start(up.addr);
    let c = client();
    for code in [400u16, 401, 404, 409, 500, 503] {
        let r = c
            .get(proxy.url(&format!("/api/v3/onezone/status/{code}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), code);
        assert_eq!(r.headers()["x-upstream-header"], "kept");
        let body = r.text().await.unwrap();
        assert_eq!(
            body,
            format!(r#"{{"error":{{"id":"upstream{code}","description":"from the upstream"}}}}"#)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_by_hop_headers_are_stripped() {
    let up = TestUpstream::start().await;
    let proxy = Proxy::start(up.addr);
    let resp = raw_request(
        proxy.addr,
        b"GET /api/v3/onezone/user HTTP/1.1\r\nHost: h\r\nConnection: close, X-Foo\r\nX-Foo: 1\r\n\
          Keep-Alive: timeout=5\r\nTE: trailers\r\nProxy-Connection: keep-alive\r\nX-Bar: stays\r\n\r\n",
    );
    assert_eq!(resp.status, 200);
    let seen = up.last();
    for gone in ["x-foo", "keep-alive", "te", "proxy-connection"] {
        assert_eq!(
            seen.header(gone),
            None,
            "{gone} must not reach the upstream"
        );
    }
    assert_ne!(seen.header("connection"), Some("close, X-Foo"));
    assert_eq!(seen.header("x-bar"), Some("stays"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_headers_follow_the_trusted_proxy_list() {
    let up = TestUpstream::start().await;
    let untrusted = Proxy::start(up.addr);
    let c = client();
    c.get(untrusted.url("/x"))
        .header("x-forwarded-for", "1.2.3.4")
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap();
    let seen = up.last();
    assert_eq!(
        seen.all("x-forwarded-for"),
        vec!["127.0.0.1"],
        "a forged chain is replaced"
    );
    assert_eq!(seen.header("x-forwarded-proto"), Some("http"));
    drop(untrusted);

    let trusted = Proxy::builder(&up.url())
        .extra("[forwarding]\ntrusted_proxies = [\"127.0.0.0/8\"]")
        .start();
    c.get(trusted.url("/x"))
        .header("x-forwarded-for", "1.2.3.4")
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap();
    let seen = up.last();
    assert_eq!(seen.all("x-forwarded-for"), vec!["1.2.3.4, 127.0.0.1"]);
    assert_eq!(seen.header("x-forwarded-proto"), Some("https"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_policy_is_configurable() {
    let up = TestUpstream::start().await;
    let keep = Proxy::start(up.addr);
    client()
        .get(keep.url("/x"))
        .header("host", "zone.example")
        .send()
        .await
        .unwrap();
    assert_eq!(up.last().header("host"), Some("zone.example"));
    drop(keep);
    let rewrite = Proxy::builder(&up.url())
        .upstream_keys("host_header = \"upstream\"")
        .start();
    client()
        .get(rewrite.url("/x"))
        .header("host", "zone.example")
        .send()
        .await
        .unwrap();
    assert_eq!(up.last().header("host"), Some(up.addr.to_string().as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_and_chunked_bodies_pass() {
    let up = TestUpstream::start().await;
    let proxy = Proxy::start(up.addr);
    let r = raw_request(
        proxy.addr,
        b"POST /api/v3/onezone/upload HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    assert_eq!(up.last().body_len, 0);

    let r = raw_request(
        proxy.addr,
        b"POST /api/v3/onezone/upload HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
          5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    assert_eq!(up.last().body, b"hello world");

    // A chunked download comes back whole.
    let r = client()
        .get(proxy.url("/download/300000?chunked"))
        .send()
        .await
        .unwrap();
    let body = r.bytes().await.unwrap();
    assert_eq!(body.len(), 300_000);
    assert!(body
        .iter()
        .enumerate()
        .all(|(i, b)| *b == pattern_byte(i as u64)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_1_0_clients_are_answered() {
    let up = TestUpstream::start().await;
    let proxy = Proxy::start(up.addr);
    let r = raw_request(
        proxy.addr,
        b"GET /api/v3/onezone/configuration HTTP/1.0\r\nHost: h\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    assert!(r.head.starts_with("HTTP/1."), "{}", r.head);
    assert_eq!(r.body, b"hello");
}

const BIG: u64 = 100 * 1024 * 1024;

/// 100 MiB up and 100 MiB down through the proxy: checksums match and the proxy's peak RSS
/// stays flat (the bodies are streamed, never held whole).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_mib_bodies_stream_with_flat_memory() {
    let up = TestUpstream::start().await;
    let proxy = Proxy::start(up.addr);
    let c = client();
    let before = proxy.memory_kib("VmRSS");

    // Upload, content-length framed.
    let chunk = |c: u64| -> Vec<u8> { (c * 65536..(c + 1) * 65536).map(pattern_byte).collect() };
    let mut expected = Sha256::new();
    for c in 0..BIG / 65536 {
        expected.update(chunk(c));
    }
    let expected = hex(&expected.finalize());
    let chunks = futures_util::stream::iter(
        (0..BIG / 65536).map(move |c| Ok::<_, std::io::Error>(bytes::Bytes::from(chunk(c)))),
    );
    let r = c
        .post(proxy.url("/api/v3/onezone/upload"))
        .header("content-length", BIG)
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let answer: serde_json::Value = r.json().await.unwrap();
    assert_eq!(answer["len"], BIG);
    assert_eq!(answer["sha256"], expected.as_str());

    // Download, read as a stream.
    let r = c
        .get(proxy.url("/api/v3/onezone/download/104857600"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut stream = r.bytes_stream();
    let mut got = Sha256::new();
    let mut n = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        n += chunk.len() as u64;
        got.update(&chunk);
    }
    assert_eq!(n, BIG);
    assert_eq!(hex(&got.finalize()), expected);

    let peak = proxy.memory_kib("VmHWM");
    println!("proxy RSS before {before} KiB, peak {peak} KiB after 2 x 100 MiB");
    assert!(peak < 64 * 1024, "peak RSS {peak} KiB is not under 64 MiB");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_listener_speaks_h2_and_http_1_1() {
    let up = TestUpstream::start().await;
    let proxy = Proxy::builder(&up.url()).tls().start();
    let tls = proxy.tls.unwrap();
    let h2 = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let r = h2
        .get(format!("https://{tls}/api/v3/onezone/configuration"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "hello");
    assert_eq!(up.last().header("x-forwarded-proto"), Some("https"));

    let h1 = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .http1_only()
        .build()
        .unwrap();
    let r = h1
        .post(format!("https://{tls}/api/v3/onezone/upload"))
        .body("over tls")
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_11);
    assert_eq!(up.last().body, b"over tls");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_upgrades_pass_through() {
    let up = TestUpstream::start().await;
    let proxy = Proxy::start(up.addr);
    let (mut ws, resp) =
        tokio_tungstenite::connect_async(format!("ws://{}/graphsync/ws", proxy.addr))
            .await
            .expect("websocket handshake through the proxy");
    assert_eq!(resp.status().as_u16(), 101);
    for text in ["one", "two"] {
        ws.send(text.into()).await.unwrap();
        let echo = ws.next().await.unwrap().unwrap();
        assert_eq!(echo.into_text().unwrap().as_str(), text);
    }
    ws.close(None).await.unwrap();
    assert_eq!(up.last().header("upgrade"), Some("websocket"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_down_is_502_and_slow_is_504() {
    let dead = format!("http://127.0.0.1:{}", common::free_port());
    let proxy = Proxy::builder(&dead).start();
    let r = client()
        .get(proxy.url("/api/v3/onezone/user"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    assert_eq!(r.headers()["content-type"], "application/json");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["id"], "badGateway");
    assert!(body["error"]["description"].is_string());
    drop(proxy);

    let up = TestUpstream::start().await;
    let proxy = Proxy::builder(&up.url())
        .upstream_keys("read_timeout = \"1s\"")
        .start();
    let started = Instant::now();
    let r = client()
        .get(proxy.url("/api/v3/onezone/slow/5000"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 504);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "answered within the timeout"
    );
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["id"], "gatewayTimeout");
}

/// An HTTPS upstream: one proxy with a TLS listener stands in for an HTTPS Onezone in front of
/// the test upstream, and a second proxy talks to it with each TLS verification setting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_upstream_is_verified_as_configured() {
    let up = TestUpstream::start().await;
    let tls_front = Proxy::builder(&up.url()).tls().start();
    let https = format!("https://localhost:{}", tls_front.tls.unwrap().port());
    let ca = common::fixture("test-ca.pem");

    let with_ca = Proxy::builder(&https)
        .upstream_keys(&format!("ca_file = \"{}\"", ca.display()))
        .start();
    let r = client()
        .get(with_ca.url("/api/v3/onezone/configuration"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the private CA verifies the upstream");
    assert_eq!(r.text().await.unwrap(), "hello");

    let system_roots = Proxy::builder(&https).start();
    let r = client()
        .get(system_roots.url("/api/v3/onezone/configuration"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502, "an unknown issuer is refused");

    let wrong_name = Proxy::builder(&https)
        .upstream_keys(&format!(
            "ca_file = \"{}\"\nsni = \"zone.example.org\"",
            ca.display()
        ))
        .start();
    let r = client()
        .get(wrong_name.url("/api/v3/onezone/configuration"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502, "a certificate for another name is refused");

    let unverified = Proxy::builder(&https)
        .upstream_keys("verify_tls = false")
        .start();
    let r = client()
        .get(unverified.url("/api/v3/onezone/configuration"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "verification off accepts it");
}

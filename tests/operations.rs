//! Operating the proxy in front of all of Onezone: long-lived tunnels, start-up that fails
//! loudly, a drain that loses nothing, bounded resources, and logs that say what happened.
//! Every test runs the real binary on loopback and ends by itself within seconds.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::upstream::TestUpstream;
use common::{client, fixture, free_port, raw_request, scratch_dir, Proxy};
use futures_util::{SinkExt, StreamExt};
use onezone_standin::{demo::*, StandIn, World};

use common::P;

// === 1. Long-lived connections ===

/// A WebSocket that stays silent for longer than every request timeout still echoes; the
/// tunnel's own idle limit ends it, logged at info with the bytes each way, not as an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_websocket_outlives_the_request_timeouts_and_ends_at_its_own_limit() {
    let up = TestUpstream::start().await;
    let proxy = Proxy::builder(&up.url())
        .upstream_keys("read_timeout = \"1s\"")
        .extra("[limits]\nclient_timeout = \"1s\"\ntunnel_idle_timeout = \"4s\"")
        .start();
    let (mut ws, resp) =
        tokio_tungstenite::connect_async(format!("ws://{}/graphsync/ws", proxy.addr))
            .await
            .expect("websocket handshake through the proxy");
    assert_eq!(resp.status().as_u16(), 101);
    ws.send("before".into()).await.unwrap();
    assert_eq!(
        ws.next()
            .await
            .unwrap()
            .unwrap()
            .into_text()
            .unwrap()
            .as_str(),
        "before"
    );
    // Silent for 2.5 s: more than both request timeouts (1 s), less than the tunnel's (4 s).
    tokio::time::sleep(Duration::from_millis(2500)).await;
    ws.send("after".into()).await.unwrap();
    let echo = tokio::time::timeout(Duration::from_secs(2), ws.next())
        .await
        .expect("an answer")
        .expect("the tunnel is open")
        .expect("a message");
    assert_eq!(echo.into_text().unwrap().as_str(), "after");

    // Now silent past the tunnel's limit: it is closed.
    let started = Instant::now();
    let end = tokio::time::timeout(Duration::from_secs(8), ws.next()).await;
    let waited = started.elapsed();
    assert!(
        matches!(end, Ok(None) | Ok(Some(Err(_)))),
        "the tunnel ended: {end:?}"
    );
    assert!(
        waited >= Duration::from_millis(3500) && waited < Duration::from_secs(7),
        "closed by the 4 s idle limit, after {waited:?}"
    );
    let log = wait_for_log(&proxy, "tunnel closed");
    let line = log.lines().find(|l| l.contains("tunnel closed")).unwrap();
    assert!(line.contains("end=\"idle_timeout\""), "{line}");
    assert!(line.contains("bytes_to_client="), "{line}");
    assert!(
        !log.contains("ERROR"),
        "no error line for a tunnel's end:\n{log}"
    );
    println!("idle WebSocket: echoed after 2.5 s silence (request timeouts 1 s); closed after {waited:?} (limit 4 s)");
}

// === 2. A process that cannot serve must not look healthy ===

fn start_failure(config: &str) -> (std::process::ExitStatus, String, Duration) {
    let dir = scratch_dir("startfail");
    let path = dir.join("config.toml");
    std::fs::write(&path, config).unwrap();
    let started = Instant::now();
    let mut child = Command::new(common::bin())
        .arg("--config")
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the proxy kept running with a listener it cannot build");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (status, err, started.elapsed())
}

#[test]
fn a_listener_that_cannot_be_built_ends_the_process_with_one_line() {
    let dir = scratch_dir("certdir");
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_addr = taken.local_addr().unwrap();
    let tls = |cert: &str, key: &str| {
        format!(
            "[listen]\nhttp = [\"127.0.0.1:{}\"]\nmetrics = \"127.0.0.1:{}\"\n[[listen.tls]]\naddress = \"127.0.0.1:{}\"\ncert = \"{cert}\"\nkey = \"{key}\"\n[upstream]\nurl = \"http://127.0.0.1:9\"\n",
            free_port(),
            free_port(),
            free_port()
        )
    };
    let f = |n: &str| fixture(n).display().to_string();
    let cases = [
        ("cert is not a certificate", tls(&f("README.md"), &f("test-key.pem")), "listen.tls[0].cert"),
        ("cert is a directory", tls(&dir.display().to_string(), &f("test-key.pem")), "listen.tls[0].cert"),
        ("key does not match", tls(&f("test-cert.pem"), &f("other-key.pem")), "listen.tls[0].key"),
        (
            "address in use",
            format!(
                "[listen]\nhttp = [\"{taken_addr}\"]\nmetrics = \"127.0.0.1:{}\"\n[upstream]\nurl = \"http://127.0.0.1:9\"\n",
                free_port()
            ),
            "listen.http[0]",
        ),
    ];
    for (what, config, key) in cases {
        let (status, err, took) = start_failure(&config);
        assert!(!status.success(), "{what}: exit code {status:?}");
        let lines: Vec<_> = err.lines().collect();
        assert_eq!(lines.len(), 1, "{what}: one line, got:\n{err}");
        assert!(
            lines[0].starts_with("error: ") && lines[0].contains(key),
            "{what}: {err}"
        );
        assert!(
            !err.contains("panicked") && !err.contains("backtrace"),
            "{what}: {err}"
        );
        println!(
            "{what}: exit {:?} after {took:?}: {}",
            status.code(),
            lines[0]
        );
    }
    drop(taken);
}

/// `/healthz` says 200 only once the proxy's own listener accepts connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_follows_the_proxy_listener() {
    let up = TestUpstream::start().await;
    let proxy = Proxy::start(up.addr);
    let r = raw_request(
        proxy.metrics,
        b"GET /healthz HTTP/1.1\r\nHost: m\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    assert!(proxy.log().contains("listening"), "{}", proxy.log());
}

/// rustls refuses a CA certificate as a server's own; the error line says what to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_self_signed_ca_upstream_certificate_gets_an_actionable_error() {
    let up = TestUpstream::start().await;
    let front = Proxy::builder(&up.url())
        .extra(&format!(
            "[[listen.tls]]\naddress = \"127.0.0.1:{}\"\ncert = \"{}\"\nkey = \"{}\"\n",
            free_port(),
            fixture("self-signed-cert.pem").display(),
            fixture("self-signed-key.pem").display()
        ))
        .start();
    // The TLS address is in the generated config; read it back from the file.
    let config = std::fs::read_to_string(front.dir.join("config.toml")).unwrap();
    let address = config
        .lines()
        .skip_while(|l| !l.starts_with("[[listen.tls]]"))
        .find_map(|l| l.strip_prefix("address = \""))
        .and_then(|a| a.strip_suffix('"'))
        .unwrap()
        .to_string();
    let port: u16 = address.rsplit(':').next().unwrap().parse().unwrap();
    let proxy = Proxy::builder(&format!("https://localhost:{port}"))
        .upstream_keys(&format!(
            "ca_file = \"{}\"",
            fixture("self-signed-cert.pem").display()
        ))
        .start();
    let r = client()
        .get(proxy.url(&format!("{P}/user")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["id"], "badGateway");
    let log = wait_for_log(&proxy, "basicConstraints");
    assert!(log.contains("CA:FALSE"), "{log}");
    // One fault, one label and one message on every path: a legacy call meets it too.
    let legacy = client()
        .post(proxy.url(&format!("{P}/groups/{GROUP_ID}/users/token")))
        .header("x-auth-token", ALICE_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(legacy.status(), 502);
    let legacy_body: serde_json::Value = legacy.json().await.unwrap();
    assert_eq!(legacy_body, body, "the same answer on both paths");
    let log = wait_for_log(&proxy, "create_user_group_invite_token");
    let labels: Vec<_> = log
        .lines()
        .filter(|l| l.contains(" access:"))
        .map(|l| l.rsplit("error=").next().unwrap_or("").to_string())
        .collect();
    assert_eq!(labels, ["\"tls\"", "\"tls\""], "{log}");
    assert_eq!(
        proxy.sample("migproxy_upstream_failures_total", &[("reason", "tls")]),
        2.0
    );
}

// === 3. Rolling restarts lose nothing ===

/// What happened to each request a client sent during the drain.
#[derive(Default)]
struct DrainCounts {
    answered: AtomicUsize,
    told_to_close: AtomicUsize,
    /// Sent on a kept-alive connection, then reset or closed without an answer: lost.
    lost: AtomicUsize,
    /// A new connection refused (nothing was sent, so a client retries it safely).
    refused: AtomicUsize,
    /// A new connection that the kernel had completed into the listen backlog when the
    /// listeners closed, reset with its request unread. Measured: these happen at the moment the
    /// listeners close (the drain delay after SIGTERM), never at the exit; Pingora closes its
    /// listeners as every server does, and the drain delay is there so that the load balancer
    /// stops sending new connections first. At most one per client (one connection each).
    reset_at_close: AtomicUsize,
}

/// Keeps a kept-alive connection busy with POSTs until `until`, reconnecting whenever an
/// answer says `Connection: close`.
fn keep_posting(addr: SocketAddr, until: Instant, counts: &DrainCounts) {
    let mut conn: Option<TcpStream> = None;
    while Instant::now() < until {
        let kept_alive = conn.is_some();
        let mut stream = match conn.take() {
            Some(s) => s,
            None => match TcpStream::connect(addr) {
                Ok(s) => s,
                Err(_) => {
                    counts.refused.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
            },
        };
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let body = b"{\"n\": 1}";
        let request = format!(
            "POST {P}/groups/g/spaces HTTP/1.1\r\nHost: zone\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        if stream
            .write_all(request.as_bytes())
            .and_then(|_| stream.write_all(body))
            .is_err()
        {
            counts.lost.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        match read_one_answer(&mut stream) {
            Some(head) => {
                counts.answered.fetch_add(1, Ordering::Relaxed);
                if head.to_ascii_lowercase().contains("connection: close") {
                    counts.told_to_close.fetch_add(1, Ordering::Relaxed);
                } else {
                    conn = Some(stream);
                }
            }
            None if kept_alive => {
                counts.lost.fetch_add(1, Ordering::Relaxed);
            }
            None => {
                counts.reset_at_close.fetch_add(1, Ordering::Relaxed);
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Reads one answer with a Content-Length body; `None` on EOF or reset before it is whole.
fn read_one_answer(stream: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            while buf.len() < end + 4 + length {
                match stream.read(&mut chunk) {
                    Ok(0) | Err(_) => return None,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            return Some(head);
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// SIGTERM under load on kept-alive connections: `/readyz` turns 503 at once, answers say
/// `Connection: close`, a long request in flight finishes, no request sent on a kept-alive
/// connection is lost (new connections still in the listen backlog when the listeners close
/// are reset, at most one per client), and the process
/// exits as soon as nothing is left, well before the grace period ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_under_load_loses_no_request() {
    let up = TestUpstream::start().await;
    let mut proxy = Proxy::builder(&up.url())
        .server_keys("drain_delay = \"1s\"")
        .start();
    let counts = Arc::new(DrainCounts::default());
    let addr = proxy.addr;
    let until = Instant::now() + Duration::from_secs(4);
    const WORKERS: usize = 6;
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let counts = counts.clone();
            std::thread::spawn(move || keep_posting(addr, until, &counts))
        })
        .collect();
    let slow_url = proxy.url(&format!("{P}/slow/900"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before_signal = counts.answered.load(Ordering::Relaxed);
    // A request in flight when the listeners close (0.9 s after it starts, 1 s drain delay).
    let slow = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(600)).await;
        client()
            .get(slow_url)
            .send()
            .await
            .map(|r| r.status().as_u16())
    });
    let signalled = Instant::now();
    proxy.signal("TERM");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let ready = raw_request(
        proxy.metrics,
        b"GET /readyz HTTP/1.1\r\nHost: m\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(ready.status, 503, "not ready from the signal on");
    assert_eq!(ready.json()["status"], "draining");
    assert_eq!(
        slow.await.unwrap().expect("answered"),
        200,
        "the in-flight request finished"
    );
    let status = proxy.wait_exit(Duration::from_secs(10)).expect("exits");
    let exited = signalled.elapsed();
    assert!(status.success(), "{status:?}");
    for w in workers {
        w.join().unwrap();
    }
    let (answered, closed, lost, refused, reset) = (
        counts.answered.load(Ordering::Relaxed),
        counts.told_to_close.load(Ordering::Relaxed),
        counts.lost.load(Ordering::Relaxed),
        counts.refused.load(Ordering::Relaxed),
        counts.reset_at_close.load(Ordering::Relaxed),
    );
    println!(
        "drain: {answered} answered ({before_signal} before SIGTERM), {closed} with Connection: close, {lost} lost, {refused} refused new connections, {reset} new connections reset as the listeners closed; exited {exited:?} after SIGTERM"
    );
    assert_eq!(
        lost, 0,
        "no request sent on a kept-alive connection was lost"
    );
    assert!(
        reset <= WORKERS,
        "at most one new connection per client is reset by the listeners' close: {reset}"
    );
    assert!(
        closed > 0,
        "answers during the drain said Connection: close"
    );
    assert!(
        answered > before_signal,
        "requests were served during the drain delay"
    );
    assert!(
        exited < Duration::from_millis(2500),
        "exited once nothing was in flight, not after the whole grace period: {exited:?}"
    );
}

// === 4. Resources stay bounded ===

/// An idle kept-alive connection is closed after `limits.keepalive_timeout`; a busy one is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_kept_alive_connections_are_closed_after_the_keepalive_timeout() {
    let up = TestUpstream::start().await;
    let proxy = Proxy::builder(&up.url())
        .extra("[limits]\nkeepalive_timeout = \"2s\"")
        .start();
    let idle_rss = proxy.memory_kib("VmRSS");
    let request = format!("GET {P}/configuration HTTP/1.1\r\nHost: zone\r\n\r\n");
    let mut clients = Vec::new();
    for _ in 0..1000 {
        let mut s = TcpStream::connect(proxy.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(request.as_bytes()).unwrap();
        assert!(read_one_answer(&mut s).is_some());
        clients.push(s);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let held_rss = proxy.memory_kib("VmRSS");
    let per_client = (held_rss.saturating_sub(idle_rss)) as f64 / 1000.0;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let mut closed = 0;
    for s in &mut clients {
        let mut b = [0u8; 1];
        if matches!(s.read(&mut b), Ok(0)) {
            closed += 1;
        }
    }
    let after_rss = proxy.memory_kib("VmRSS");
    println!(
        "1,000 idle kept-alive clients: RSS {idle_rss} KiB idle, {held_rss} KiB holding them ({per_client:.1} KiB each), {after_rss} KiB after the 2 s keep-alive timeout; {closed} closed"
    );
    assert_eq!(closed, 1000, "every idle connection was closed");
    let m = proxy.sample(
        "migproxy_connections_closed_total",
        &[("reason", "keepalive_timeout")],
    );
    assert_eq!(m, 1000.0);
}

/// A request head that trickles in is cut at `limits.header_timeout`, however steady the
/// trickle; clients beside it are served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickling_request_head_is_cut_at_the_header_deadline() {
    let up = TestUpstream::start().await;
    let proxy = Proxy::builder(&up.url())
        .extra("[limits]\nheader_timeout = \"1500ms\"\nclient_timeout = \"10s\"\nkeepalive_timeout = \"10s\"")
        .start();
    let mut s = TcpStream::connect(proxy.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let head = format!("GET {P}/configuration HTTP/1.1\r\nHost: zone\r\nX-Slow: ");
    let started = Instant::now();
    let mut cut = None;
    for byte in head.bytes().chain(std::iter::repeat(b'a')) {
        if started.elapsed() > Duration::from_secs(6) {
            break;
        }
        if s.write_all(&[byte]).is_err() {
            cut = Some(started.elapsed());
            break;
        }
        let mut b = [0u8; 1];
        if let Ok(0) = s.read(&mut b) {
            cut = Some(started.elapsed());
            break;
        }
        // One byte every 100 ms: each read is quick, the head never ends.
        std::thread::sleep(Duration::from_millis(50));
        // Beside it, an ordinary client is served.
        if started.elapsed() > Duration::from_millis(700)
            && started.elapsed() < Duration::from_millis(850)
        {
            let r = raw_request(
                proxy.addr,
                format!(
                    "GET {P}/configuration HTTP/1.1\r\nHost: zone\r\nConnection: close\r\n\r\n"
                )
                .as_bytes(),
            );
            assert_eq!(r.status, 200);
        }
    }
    let cut = cut.expect("the trickling head was cut");
    println!("a head sent at ~10 bytes/s was cut after {cut:?} (deadline 1.5 s)");
    assert!(
        cut >= Duration::from_millis(1400) && cut < Duration::from_secs(3),
        "{cut:?}"
    );
    assert_eq!(
        proxy.sample(
            "migproxy_connections_closed_total",
            &[("reason", "header_timeout")]
        ),
        1.0
    );
}

/// The open-files soft limit is raised to the hard limit at start, and both are logged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_open_files_limit_is_raised() {
    let up = TestUpstream::start().await;
    let dir = scratch_dir("nofile");
    let (port, metrics) = (free_port(), free_port());
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[listen]\nhttp = [\"127.0.0.1:{port}\"]\nmetrics = \"127.0.0.1:{metrics}\"\n[upstream]\nurl = \"{}\"\n",
            up.url()
        ),
    )
    .unwrap();
    let log = dir.join("log");
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -Sn 256 && exec {} --config {}",
            common::bin(),
            config.display()
        ))
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut text = String::new();
    while Instant::now() < deadline && !text.contains("open files limit") {
        std::thread::sleep(Duration::from_millis(50));
        text = std::fs::read_to_string(&log).unwrap_or_default();
    }
    let limits =
        std::fs::read_to_string(format!("/proc/{}/limits", child.id())).unwrap_or_default();
    let _ = child.kill();
    let _ = child.wait();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap_or("");
    let fields: Vec<_> = line.split_whitespace().collect();
    println!(
        "{line}\n{}",
        text.lines()
            .find(|l| l.contains("open files"))
            .unwrap_or("")
    );
    assert!(
        text.contains("open files limit raised") && text.contains("was=256"),
        "{text}"
    );
    assert_eq!(fields.get(3), fields.get(4), "soft = hard: {line}");
}

/// 500 concurrent invites with one credential against a Onezone with a listen backlog of 64:
/// every one succeeds, through a bounded pool, and the credential is resolved once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_invites_shares_a_bounded_pool_and_one_caller_look_up() {
    let zone = StandIn::start_with_backlog(World::demo(), 64)
        .await
        .unwrap();
    let proxy = Proxy::builder(&format!("http://{}", zone.addr()))
        .upstream_keys("max_connections = 16")
        .start();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let url = proxy.url(&format!("{P}/groups/{GROUP_ID}/users/token"));
    let started = Instant::now();
    let calls: Vec<_> = (0..500)
        .map(|_| {
            let (http, url) = (http.clone(), url.clone());
            tokio::spawn(async move {
                http.post(url)
                    .header("x-auth-token", ALICE_TOKEN)
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
            })
        })
        .collect();
    let mut ok = 0;
    let mut other = std::collections::BTreeMap::new();
    for c in calls {
        match c.await.unwrap() {
            Ok(200) => ok += 1,
            Ok(s) => *other.entry(s.to_string()).or_insert(0) += 1,
            Err(e) => *other.entry(format!("{e}")).or_insert(0) += 1,
        }
    }
    let look_ups = zone
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/tokens/examine"))
        .count();
    println!(
        "500 concurrent invites, backlog 64, max_connections 16: {ok} succeeded in {:?}, others {other:?}; {look_ups} caller look-ups",
        started.elapsed()
    );
    assert_eq!(ok, 500, "{other:?}");
    assert_eq!(look_ups, 1, "one look-up for one credential");
}

// === 5. Say what happened ===

/// A client that hangs up while Onezone creates its invite: the access line says 499
/// `client_closed` with the token's id, the metric counts `client_closed`, and the token that
/// nobody received is deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_hangs_up_is_client_closed_and_its_token_is_deleted() {
    let zone = StandIn::start(World::demo()).await.unwrap();
    let proxy = Proxy::start(zone.addr());
    let tokens_before = zone.token_count();
    zone.set_delay(Duration::from_millis(600));
    let mut s = TcpStream::connect(proxy.addr).unwrap();
    let request = format!(
        "POST {P}/groups/{GROUP_ID}/users/token HTTP/1.1\r\nHost: zone\r\nX-Auth-Token: {ALICE_TOKEN}\r\nContent-Length: 0\r\n\r\n"
    );
    s.write_all(request.as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    drop(s);
    let log = wait_for_log(&proxy, "undelivered token deleted");
    zone.set_delay(Duration::ZERO);
    let access = log
        .lines()
        .find(|l| l.contains("access") && l.contains("create_user_group_invite_token"))
        .unwrap_or_else(|| panic!("an access line:\n{log}"));
    assert!(access.contains("status=499"), "{access}");
    assert!(
        log.contains("the client left before its token was written"),
        "{log}"
    );
    assert_eq!(
        zone.token_count(),
        tokens_before,
        "the undelivered token is gone"
    );
    let closed = proxy.sample(
        "migproxy_legacy_requests_total",
        &[
            ("route", "create_user_group_invite_token"),
            ("mode", "rewrite"),
            ("outcome", "client_closed"),
            ("status_class", "4xx"),
            ("client", "other"),
        ],
    );
    assert_eq!(closed, 1.0, "{}", proxy.log());
    assert!(!log.contains("ERROR"), "{log}");
}

/// An upstream outage under load: every request keeps its access line, while Pingora's error
/// lines are limited per window with a count of the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_writes_access_lines_and_a_bounded_number_of_error_lines() {
    let dead = format!("http://127.0.0.1:{}", free_port());
    let proxy = Proxy::builder(&dead).start();
    let http = client();
    let started = Instant::now();
    let mut sent = 0;
    while started.elapsed() < Duration::from_secs(3) {
        let batch: Vec<_> = (0..20)
            .map(|_| http.get(proxy.url(&format!("{P}/user"))).send())
            .collect();
        for r in futures_util::future::join_all(batch).await {
            assert_eq!(r.unwrap().status(), 502);
            sent += 1;
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let log = proxy.log();
    let access = log.lines().filter(|l| l.contains(" access:")).count();
    let errors = log.lines().filter(|l| l.contains("ERROR")).count();
    println!(
        "outage, {sent} requests in 3 s: {access} access lines, {errors} error lines, {} bytes of log",
        log.len()
    );
    assert_eq!(access, sent, "one access line per request");
    assert!(
        errors <= 10,
        "error lines limited per 10 s window: {errors}"
    );
}

fn wait_for_log(proxy: &Proxy, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = proxy.log();
        if log.contains(needle) || Instant::now() > deadline {
            return log;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One fault, one label: a reset and a garbled answer give the same `reason` through
/// pass-through and through a legacy call (the TLS case is above).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_has_one_label_on_both_paths() {
    use common::faults::{Fault, FaultServer};
    for (fault, label) in [(Fault::ResetMidBody, "reset"), (Fault::Garbage, "bad_body")] {
        let server = FaultServer::start(fault).await;
        let proxy = Proxy::builder(&server.url()).start();
        let _ = client()
            .get(proxy.url(&format!("{P}/user")))
            .send()
            .await
            .map(|r| r.bytes());
        let legacy = client()
            .post(proxy.url(&format!("{P}/groups/g1/users/token")))
            .send()
            .await
            .unwrap();
        assert_eq!(legacy.status(), 502, "{fault:?}");
        let log = wait_for_log(&proxy, "create_user_group_invite_token");
        let labels: Vec<_> = log
            .lines()
            .filter(|l| l.contains(" access:"))
            .map(|l| {
                l.rsplit("error=")
                    .next()
                    .unwrap_or("")
                    .trim_matches('"')
                    .to_string()
            })
            .collect();
        assert_eq!(labels, [label, label], "{fault:?}: {log}");
        assert_eq!(
            proxy.sample("migproxy_upstream_failures_total", &[("reason", label)]),
            2.0,
            "{fault:?}"
        );
    }
}

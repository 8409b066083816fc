//! The fast upstream of the benchmark harness (`benches/run.py`), and its idle-client helper.
//!
//! ```text
//! bench_upstream [ADDR] [--threads N] [--standin [ADDR]] [--standin-reset-ms MS]
//! bench_upstream --fixture
//! bench_upstream --idle-clients N --target ADDR [--path PATH] [--hold SECS]
//! ```
//!
//! Server mode (the default) serves HTTP/1.1 with keep-alive on `ADDR` (default
//! `127.0.0.1:0`) and prints the bound address as the first line of stdout:
//!
//! - `GET /tiny` and anything else: 200 with a 10-byte body;
//! - `GET /1mib`: 200 with a 1 MiB body (one precomputed buffer, never copied).
//!
//! With `--standin` it also serves the Onezone stand-in (`World::demo()`, the demo fixture, with
//! its legacy endpoints on) on
//! another port and prints `standin ADDR` as the second line. The stand-in keeps every token it
//! creates and checks a new token's name against all of them, and it records every request; to
//! keep a long benchmark from measuring that growth, the world is reset to the fixture every
//! `--standin-reset-ms` (default 200 ms) and the recorded requests are dropped. The fixture's
//! credentials (`ALICE_TOKEN`, ...) survive a reset.
//!
//! `--fixture` prints the stand-in's demo fixture (its API prefix, credentials and ids) as one
//! JSON object and exits: the benchmark scripts read it from here, not from source code.
//!
//! Idle-client mode opens N keep-alive connections to `--target` one after the other, sends one
//! `GET PATH` on each and reads the answer, prints `ready N`, keeps them all open and idle for
//! `--hold` seconds (default 10), then prints `closed K` (connections the server closed in the
//! meantime) and `errors E` (non-2xx answers or failed connections); it exits 1 if E > 0.
//!
//! No logging, nothing per request but the answer: the benchmark measures what is in front of
//! this server, not the server.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use onezone_standin::{StandIn, World};

const TINY: &[u8] = b"0123456789";
const ONE_MIB: usize = 1 << 20;

fn usage() -> ExitCode {
    eprintln!(
        "usage: bench_upstream [ADDR] [--threads N] [--standin [ADDR]] [--standin-reset-ms MS]\n       \
         bench_upstream --idle-clients N --target ADDR [--path PATH] [--hold SECS]"
    );
    ExitCode::from(2)
}

#[derive(Default)]
struct Args {
    addr: Option<SocketAddr>,
    threads: Option<usize>,
    standin: Option<SocketAddr>,
    standin_reset_ms: u64,
    idle_clients: Option<usize>,
    target: Option<SocketAddr>,
    path: String,
    hold_secs: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        standin_reset_ms: 200,
        path: "/tiny".into(),
        hold_secs: 10,
        ..Args::default()
    };
    let any: SocketAddr = "127.0.0.1:0".parse().map_err(|e| format!("{e}"))?;
    let mut it = std::env::args().skip(1).peekable();
    fn value<T: std::str::FromStr>(flag: &str, v: Option<String>) -> Result<T, String> {
        let v = v.ok_or_else(|| format!("{flag} needs a value"))?;
        v.parse().map_err(|_| format!("{flag}: bad value {v:?}"))
    }
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--threads" => args.threads = Some(value("--threads", it.next())?),
            "--standin" => {
                args.standin = Some(match it.peek() {
                    Some(next) if !next.starts_with("--") => value("--standin", it.next())?,
                    _ => any,
                })
            }
            "--standin-reset-ms" => args.standin_reset_ms = value("--standin-reset-ms", it.next())?,
            "--idle-clients" => args.idle_clients = Some(value("--idle-clients", it.next())?),
            "--target" => args.target = Some(value("--target", it.next())?),
            "--path" => args.path = value("--path", it.next())?,
            "--hold" => args.hold_secs = value("--hold", it.next())?,
            "-h" | "--help" => return Err(String::new()),
            other if !other.starts_with("--") && args.addr.is_none() => {
                args.addr = Some(value("ADDR", Some(other.to_string()))?)
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some("--fixture") {
        println!("{}", onezone_standin::demo::fixture_json());
        return ExitCode::SUCCESS;
    }
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("bench_upstream: {e}");
            }
            return usage();
        }
    };
    if let Some(n) = args.idle_clients {
        let Some(target) = args.target else {
            eprintln!("bench_upstream: --idle-clients needs --target");
            return usage();
        };
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                eprintln!("bench_upstream: {e}");
                return ExitCode::FAILURE;
            }
        };
        return rt.block_on(idle_clients(n, target, &args.path, args.hold_secs));
    }

    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = args.threads {
        builder.worker_threads(threads.max(1));
    }
    let rt = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bench_upstream: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(serve(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench_upstream: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The demo fixture, serving the legacy endpoints itself too (as Onezone 21.02 does), so the
/// legacy rows can compare `rewrite` with `passthrough` and `verify` against the same Onezone.
fn legacy_world() -> World {
    let mut world = World::demo();
    world.serve_legacy(true);
    world
}

async fn serve(args: Args) -> std::io::Result<()> {
    let listener = TcpListener::bind(args.addr.unwrap_or(([127, 0, 0, 1], 0).into())).await?;
    println!("{}", listener.local_addr()?);

    // Keep the stand-in alive for the life of the process (dropping it stops it).
    let _standin = match args.standin {
        Some(addr) => {
            let standin = std::sync::Arc::new(StandIn::start_on(addr, legacy_world()).await?);
            println!("standin {}", standin.addr());
            if args.standin_reset_ms > 0 {
                let standin = std::sync::Arc::clone(&standin);
                let every = Duration::from_millis(args.standin_reset_ms);
                tokio::spawn(async move {
                    let mut tick = tokio::time::interval(every);
                    loop {
                        tick.tick().await;
                        // Drop the old world outside the stand-in's lock.
                        let old = standin.with_world(|w| std::mem::replace(w, legacy_world()));
                        drop(old);
                        standin.clear_requests();
                    }
                });
            }
            Some(standin)
        }
        None => None,
    };
    use std::io::Write;
    std::io::stdout().flush()?;

    let tiny = Bytes::from_static(TINY);
    let big = Bytes::from(vec![b'x'; ONE_MIB]);
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(_) => {
                // Out of file descriptors or similar: back off rather than spin.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let (tiny, big) = (tiny.clone(), big.clone());
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let body = if req.uri().path() == "/1mib" {
                    big.clone()
                } else {
                    tiny.clone()
                };
                async move {
                    // Read any request body so the connection stays reusable.
                    let _ = req.into_body().collect().await;
                    Ok::<_, Infallible>(Response::new(Full::new(body)))
                }
            });
            let _ = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Reads one response with a `content-length` (or an empty 204/304) and returns its status.
async fn read_response(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<u16> {
    buf.clear();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or(std::io::ErrorKind::InvalidData)?;
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let mut have = buf.len() - head_end;
    while have < length {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        have += n;
    }
    Ok(status)
}

async fn idle_clients(n: usize, target: SocketAddr, path: &str, hold_secs: u64) -> ExitCode {
    let request = format!("GET {path} HTTP/1.1\r\nHost: bench\r\nUser-Agent: bench-idle\r\n\r\n");
    let mut open = Vec::with_capacity(n);
    let mut errors = 0usize;
    let mut buf = Vec::with_capacity(8192);
    for _ in 0..n {
        let mut stream = match TcpStream::connect(target).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("bench_upstream: connect {target}: {e}");
                errors += 1;
                continue;
            }
        };
        let answered = async {
            stream.write_all(request.as_bytes()).await?;
            read_response(&mut stream, &mut buf).await
        };
        match tokio::time::timeout(Duration::from_secs(10), answered).await {
            Ok(Ok(status)) if (200..300).contains(&status) => open.push(stream),
            Ok(Ok(status)) => {
                eprintln!("bench_upstream: {target}{path}: status {status}");
                errors += 1;
            }
            Ok(Err(e)) => {
                eprintln!("bench_upstream: {target}{path}: {e}");
                errors += 1;
            }
            Err(_) => {
                eprintln!("bench_upstream: {target}{path}: no answer in 10 s");
                errors += 1;
            }
        }
    }
    println!("ready {}", open.len());
    use std::io::Write;
    let _ = std::io::stdout().flush();
    tokio::time::sleep(Duration::from_secs(hold_secs)).await;
    let mut closed = 0usize;
    let mut probe = [0u8; 1];
    for stream in &open {
        match stream.try_read(&mut probe) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            _ => closed += 1,
        }
    }
    println!("closed {closed}");
    println!("errors {errors}");
    let _ = std::io::stdout().flush();
    if errors > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

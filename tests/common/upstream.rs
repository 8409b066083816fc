//! A recording test upstream for pass-through tests: it remembers exactly what reached it and
//! can stream large bodies, answer any status, be slow, or echo WebSocket messages.
//!
//! Paths (any prefix): `/upload` hashes the body; `/download/<n>` streams n pattern bytes
//! (`?chunked` without a length); `/status/<code>`; `/slow/<ms>`; `/ws` echoes WebSocket
//! messages; anything else answers 200 "hello".

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;

use super::pattern_byte;

type Body = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

/// One request as the upstream received it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    /// Path and query exactly as received.
    pub target: String,
    pub version: String,
    /// Header names lowercase, in arrival order.
    pub headers: Vec<(String, String)>,
    /// The first 64 KiB or so of the body (long runs must not keep every upload).
    pub body: Vec<u8>,
    pub body_len: u64,
    pub body_sha256: String,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

pub struct TestUpstream {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestUpstream {
    pub async fn start() -> TestUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let shared = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let seen = shared.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| handle(req, seen.clone()));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .with_upgrades()
                        .await;
                });
            }
        });
        TestUpstream { addr, seen, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn last(&self) -> Seen {
        self.seen().pop().expect("the upstream saw a request")
    }
}

fn full(status: u16, headers: &[(&str, &str)], body: impl Into<Bytes>) -> Response<Body> {
    let mut b = Response::builder().status(status);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(
        Full::new(body.into())
            .map_err(|e: Infallible| match e {})
            .boxed(),
    )
    .unwrap()
}

async fn handle(
    mut req: Request<Incoming>,
    seen: Arc<Mutex<Vec<Seen>>>,
) -> Result<Response<Body>, Infallible> {
    let target = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let path = req.uri().path().to_string();
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let mut record = Seen {
        method: req.method().to_string(),
        target: target.clone(),
        version: format!("{:?}", req.version()),
        headers,
        body: Vec::new(),
        body_len: 0,
        body_sha256: String::new(),
    };

    if path.ends_with("/ws") {
        seen.lock().unwrap().push(record);
        return Ok(websocket(req));
    }

    // Read the body as a stream, keeping only small bodies whole.
    let mut hasher = Sha256::new();
    let body = req.body_mut();
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { break };
        if let Some(data) = frame.data_ref() {
            hasher.update(data);
            record.body_len += data.len() as u64;
            if record.body.len() < 64 * 1024 {
                record.body.extend_from_slice(data);
            }
        }
    }
    record.body_sha256 = hex(&hasher.finalize());
    let answer = serde_json::json!({"len": record.body_len, "sha256": record.body_sha256});
    seen.lock().unwrap().push(record);

    let tail = |p: &str| path.rsplit_once(p).map(|(_, t)| t.to_string());
    if path.ends_with("/upload") {
        return Ok(full(
            200,
            &[("content-type", "application/json")],
            answer.to_string(),
        ));
    }
    if let Some(n) = tail("/download/").and_then(|n| n.parse::<u64>().ok()) {
        let chunked = target.contains("chunked");
        return Ok(download(n, chunked));
    }
    if let Some(code) = tail("/status/").and_then(|c| c.parse::<u16>().ok()) {
        let body =
            format!(r#"{{"error":{{"id":"upstream{code}","description":"from the upstream"}}}}"#);
        return Ok(full(
            code,
            &[
                ("content-type", "application/json"),
                ("x-upstream-header", "kept"),
            ],
            body,
        ));
    }
    if let Some(ms) = tail("/slow/").and_then(|m| m.parse::<u64>().ok()) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        return Ok(full(200, &[], "slow"));
    }
    Ok(full(
        200,
        &[
            ("content-type", "text/plain"),
            ("x-upstream", "1"),
            ("set-cookie", "a=1"),
            ("set-cookie", "b=2"),
            ("link", "<https://upstream.example/help>; rel=\"help\""),
        ],
        "hello",
    ))
}

fn download(n: u64, chunked: bool) -> Response<Body> {
    const CHUNK: u64 = 64 * 1024;
    let chunks = futures_util::stream::iter((0..n.div_ceil(CHUNK)).map(move |c| {
        let start = c * CHUNK;
        let end = (start + CHUNK).min(n);
        let data: Vec<u8> = (start..end).map(pattern_byte).collect();
        Ok::<_, std::io::Error>(Frame::data(Bytes::from(data)))
    }));
    let mut b = Response::builder()
        .status(200)
        .header("content-type", "application/octet-stream");
    if !chunked {
        b = b.header("content-length", n);
    }
    b.body(BodyExt::boxed(StreamBody::new(chunks))).unwrap()
}

fn websocket(mut req: Request<Incoming>) -> Response<Body> {
    let key = req
        .headers()
        .get("sec-websocket-key")
        .map(|k| tokio_tungstenite::tungstenite::handshake::derive_accept_key(k.as_bytes()));
    let Some(accept) = key else {
        return full(400, &[], "not a websocket request");
    };
    tokio::spawn(async move {
        let Ok(upgraded) = hyper::upgrade::on(&mut req).await else {
            return;
        };
        let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
            TokioIo::new(upgraded),
            tokio_tungstenite::tungstenite::protocol::Role::Server,
            None,
        )
        .await;
        while let Some(Ok(msg)) = ws.next().await {
            if msg.is_close() {
                break;
            }
            if msg.is_text() || msg.is_binary() {
                let _ = ws.send(msg).await;
            }
        }
    });
    full(
        101,
        &[
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-accept", accept.as_str()),
        ],
        Bytes::new(),
    )
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

//! A stand-in for Onezone 21.02, for the `demo` command and the integration tests.
//!
//! It is a small HTTP/1.1 server on loopback that answers the calls the proxy makes — the
//! tokens API (`/user/tokens/...`, `/provider/tokens/...`, `/tokens/named/{id}`,
//! `/tokens/examine`), `GET /user`, `GET /configuration`, `PUT /clusters/{id}/users/{uid}` and
//! the reads that give display names (`GET /groups|spaces|harvesters|clusters|providers/{id}`)
//! — and enforces the tokens API's published rules, so a proxy that sends a wrong body fails
//! its tests. Its REST layer checks requests in Onezone's order (route, method, credentials,
//! `Accept`, content type, JSON, then existence, authorization and values; see `api`).
//!
//! By default the deprecated token endpoints are not served: their paths answer as on a
//! Onezone that has removed them (404, or whatever other route they match).
//! [`World::serve_legacy`] (or [`StandIn::serve_legacy`] while running) makes the stand-in
//! serve those 15 operations itself, with Onezone 21.02's own semantics (see `legacy`), so
//! tests can compare the proxy's answers with Onezone's. Each request is recorded before it is
//! answered, so tests can assert exactly what reached "Onezone".
//!
//! Where Onezone would silently ignore a body key (e.g. `usageLimit` on an access token), the
//! stand-in answers 400 `badData` instead: a proxy should never send one.

mod api;
pub mod demo;
mod errors;
mod legacy;
mod rules;
mod world;

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCESS_CONTROL_ALLOW_ORIGIN, ALLOW, CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};

pub use world::World;

/// Onezone's REST prefix.
pub const API_PREFIX: &str = "/api/v3/onezone";

/// Request bodies larger than this are refused (413); nothing the proxy sends comes close.
const MAX_BODY: usize = 8 * 1024 * 1024;

/// One request as the stand-in received it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    /// The raw path and query, as received.
    pub path: String,
    /// Header names are lowercase; repeated headers appear once per value.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    /// The body as JSON, if it is JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A running stand-in. Dropping it stops the server and closes its connections.
pub struct StandIn {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

struct Shared {
    world: Mutex<World>,
    requests: Mutex<Vec<Recorded>>,
    /// How long every answer is held back (a slow Onezone), set by tests.
    delay: Mutex<Duration>,
}

impl Shared {
    fn world(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn requests(&self) -> MutexGuard<'_, Vec<Recorded>> {
        self.requests.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl StandIn {
    /// Serves `world` on an ephemeral port of 127.0.0.1.
    pub async fn start(world: World) -> std::io::Result<StandIn> {
        StandIn::start_on(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), world).await
    }

    pub async fn start_on(addr: SocketAddr, world: World) -> std::io::Result<StandIn> {
        StandIn::serve_on(TcpListener::bind(addr).await?, world)
    }

    /// Serves on 127.0.0.1 with a listen backlog of `backlog`: a small Onezone's accept queue.
    pub async fn start_with_backlog(world: World, backlog: u32) -> std::io::Result<StandIn> {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))?;
        StandIn::serve_on(socket.listen(backlog)?, world)
    }

    fn serve_on(listener: TcpListener, world: World) -> std::io::Result<StandIn> {
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            world: Mutex::new(world),
            requests: Mutex::new(Vec::new()),
            delay: Mutex::new(Duration::ZERO),
        });
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(serve(listener, Arc::clone(&shared), stopped));
        tracing::debug!(%addr, "Onezone stand-in listening");
        Ok(StandIn {
            addr,
            shared,
            stop: Some(stop),
            task: Some(task),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests().clone()
    }

    /// Holds every answer back by `delay` (after the request is recorded and applied).
    pub fn set_delay(&self, delay: Duration) {
        *self
            .shared
            .delay
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = delay;
    }

    pub fn clear_requests(&self) {
        self.shared.requests().clear();
    }

    /// How many named tokens are stored now (the fixtures' access tokens included).
    pub fn token_count(&self) -> usize {
        self.shared.world().named_count()
    }

    /// The named token `token_id` as `GET /tokens/named/{id}` returns it.
    pub fn named_token(&self, token_id: &str) -> Option<serde_json::Value> {
        self.shared
            .world()
            .named_token(token_id)
            .map(|t| t.to_json())
    }

    /// Turns the deprecated token endpoints on or off while the stand-in runs
    /// ([`World::serve_legacy`]).
    pub fn serve_legacy(&self, on: bool) {
        self.shared.world().serve_legacy(on);
    }

    /// Changes the world while the stand-in runs, e.g. to grant a privilege mid-test
    /// (`with_world(|w| { w.grant(..); })`: the closure may not return the world itself).
    pub fn with_world<R>(&self, change: impl FnOnce(&mut World) -> R) -> R {
        change(&mut self.shared.world())
    }

    /// Stops accepting connections and closes the open ones.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Accepts connections until told to stop. Connections live in a set owned by this task, so
/// stopping (or aborting) it closes them too.
async fn serve(listener: TcpListener, shared: Arc<Shared>, mut stopped: oneshot::Receiver<()>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve_connection(stream, Arc::clone(&shared)));
                }
                Err(e) => {
                    // E.g. out of file descriptors: wait a little rather than spin.
                    tracing::warn!(error = %e, "Onezone stand-in: accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
            // Reap finished connections so the set does not grow.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn serve_connection(stream: TcpStream, shared: Arc<Shared>) {
    let service = service_fn(move |request| {
        let shared = Arc::clone(&shared);
        async move { Ok::<_, Infallible>(respond(&shared, request).await) }
    });
    if let Err(e) = http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service)
        .await
    {
        tracing::debug!(error = %e, "Onezone stand-in: connection ended");
    }
}

async fn respond(shared: &Shared, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let (body, too_large) = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => (collected.to_bytes(), false),
        Err(_) => (Bytes::new(), true),
    };
    shared.requests().push(Recorded {
        method: parts.method.to_string(),
        path: parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or_else(|| parts.uri.path())
            .to_string(),
        headers: parts
            .headers
            .iter()
            .map(|(name, value)| {
                let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                (name.as_str().to_string(), value)
            })
            .collect(),
        body: body.to_vec(),
    });
    if too_large {
        return response(api::Reply::empty(413));
    }
    let reply = api::handle(
        &mut shared.world(),
        &parts.method,
        parts.uri.path(),
        &parts.headers,
        &body,
    );
    let delay = *shared.delay.lock().unwrap_or_else(PoisonError::into_inner);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    response(reply)
}

/// JSON bodies with an exact `content-length`. Every answer allows any origin
/// (`rest_handler:init/2`); a 204 has the JSON content type cowboy_rest set while negotiating.
fn response(reply: api::Reply) -> Response<Full<Bytes>> {
    let mut builder = Response::builder()
        .status(reply.status)
        .header(ACCESS_CONTROL_ALLOW_ORIGIN, "*");
    if let Some(location) = &reply.location {
        builder = builder.header(LOCATION, location);
    }
    if let Some(allow) = &reply.allow {
        builder = builder.header(ALLOW, allow);
    }
    let body = match &reply.body {
        Some(json) => {
            builder = builder.header(CONTENT_TYPE, "application/json");
            Bytes::from(json.to_string())
        }
        None if reply.status == 204 => {
            builder = builder.header(CONTENT_TYPE, "application/json");
            Bytes::new()
        }
        None => Bytes::new(),
    };
    if reply.status != 204 {
        builder = builder.header(CONTENT_LENGTH, body.len());
    }
    builder.body(Full::new(body)).unwrap_or_else(|e| {
        // Only a header value built from a strange domain name can get here.
        tracing::error!(error = %e, "Onezone stand-in: cannot build the response");
        let mut fallback = Response::new(Full::new(Bytes::new()));
        *fallback.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        fallback
    })
}

#[cfg(test)]
mod tests {
    use super::demo::*;
    use super::*;
    use serde_json::json;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn demo_ids_and_tokens_look_like_onezone_ones() {
        for id in [
            ALICE_ID,
            BOB_ID,
            PROVIDER_ID,
            GROUP_ID,
            SPACE_ID,
            HARVESTER_ID,
        ] {
            assert_eq!(id.len(), 32, "{id}");
            assert!(
                id.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')),
                "{id}"
            );
        }
        for token in [ALICE_TOKEN, BOB_TOKEN, PROVIDER_TOKEN] {
            assert!(token.starts_with("MDAx") && token.len() == 64, "{token}");
            assert!(token.chars().all(|c| c.is_ascii_alphanumeric()), "{token}");
        }
        let world = World::demo();
        assert_eq!(world.entity_name(GROUP_ID), Some(GROUP_NAME));
        assert_eq!(world.entity_name(CLUSTER_ID), Some(PROVIDER_NAME));
        assert_eq!(world.entity_name(ONEZONE_CLUSTER_ID), Some("Onezone"));
        assert_eq!(world.entity_name(ALICE_ID), Some(ALICE_NAME));
    }

    #[tokio::test]
    async fn create_examine_get_delete_over_http() {
        let standin = StandIn::start(World::demo()).await.unwrap();
        let base = format!("http://{}{API_PREFIX}", standin.addr());
        let http = reqwest::Client::new();
        let fixtures = standin.token_count();

        let invite = json!({
            "name": "user invite to group - Demo Group 0a1b2c",
            "type": { "inviteToken": { "inviteType": "userJoinGroup", "groupId": GROUP_ID } },
            "usageLimit": 1,
        });
        let created = http
            .post(format!("{base}/user/tokens/named"))
            .header("x-auth-token", ALICE_TOKEN)
            .json(&invite)
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), 201);
        assert_eq!(created.headers()["content-type"], "application/json");
        let location = created.headers()["location"].to_str().unwrap().to_string();
        let created: serde_json::Value = created.json().await.unwrap();
        let id = created["tokenId"].as_str().unwrap();
        let token = created["token"].as_str().unwrap();
        assert_eq!(
            location,
            format!("https://onezone.local{API_PREFIX}/tokens/named/{id}")
        );
        assert_eq!(standin.token_count(), fixtures + 1);

        let examined: serde_json::Value = http
            .post(format!("{base}/tokens/examine"))
            .json(&json!({ "token": token }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(examined["id"], id);
        assert_eq!(examined["persistence"], "named");
        assert_eq!(
            examined["subject"],
            json!({ "type": "user", "id": ALICE_ID })
        );
        assert_eq!(examined["type"], invite["type"]);

        let got = http
            .get(format!("{base}/tokens/named/{id}"))
            .bearer_auth(ALICE_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(got.status(), 200);
        let got: serde_json::Value = got.json().await.unwrap();
        assert_eq!(got["metadata"]["usageLimit"], 1);
        assert_eq!(Some(got), standin.named_token(id));

        let deleted = http
            .delete(format!("{base}/tokens/named/{id}"))
            .basic_auth(ALICE_BASIC.0, Some(ALICE_BASIC.1))
            .send()
            .await
            .unwrap();
        assert_eq!(deleted.status(), 204);
        assert_eq!(standin.token_count(), fixtures);
        let gone = http
            .get(format!("{base}/tokens/named/{id}"))
            .header("x-auth-token", ALICE_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(gone.status(), 404);

        let requests = standin.requests();
        let summary: Vec<(&str, &str)> = requests
            .iter()
            .map(|r| (r.method.as_str(), r.path.as_str()))
            .collect();
        let named = format!("{API_PREFIX}/tokens/named/{id}");
        assert_eq!(
            summary,
            [
                ("POST", format!("{API_PREFIX}/user/tokens/named").as_str()),
                ("POST", format!("{API_PREFIX}/tokens/examine").as_str()),
                ("GET", named.as_str()),
                ("DELETE", named.as_str()),
                ("GET", named.as_str()),
            ]
        );
        assert_eq!(requests[0].json(), Some(invite));
        assert_eq!(requests[0].header("X-Auth-Token"), Some(ALICE_TOKEN));
        assert!(requests[3]
            .header("authorization")
            .is_some_and(|a| a.starts_with("Basic ")));
        standin.clear_requests();
        assert!(standin.requests().is_empty());
        standin.shutdown().await;
    }

    /// Reads one HTTP/1.1 response with a content-length from `stream`.
    async fn read_response(stream: &mut TcpStream) -> (String, String) {
        let mut buf = Vec::new();
        let mut byte = [0u8; 1];
        while !buf.ends_with(b"\r\n\r\n") {
            assert_eq!(
                stream.read(&mut byte).await.unwrap(),
                1,
                "connection closed early"
            );
            buf.push(byte[0]);
        }
        let head = String::from_utf8(buf).unwrap();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .and_then(|v| v.trim().parse().ok())
            .expect("a content-length");
        let mut body = vec![0u8; length];
        stream.read_exact(&mut body).await.unwrap();
        (head, String::from_utf8(body).unwrap())
    }

    #[tokio::test]
    async fn keeps_connections_alive_and_records_raw_paths() {
        let standin = StandIn::start(World::demo()).await.unwrap();
        let mut stream = TcpStream::connect(standin.addr()).await.unwrap();

        let legacy = format!("POST {API_PREFIX}/groups/{GROUP_ID}/users/token?x=%2F HTTP/1.1\r\nHost: oz\r\nX-Auth-Token: {ALICE_TOKEN}\r\nContent-Length: 0\r\n\r\n");
        stream.write_all(legacy.as_bytes()).await.unwrap();
        let (head, body) = read_response(&mut stream).await;
        assert!(head.starts_with("HTTP/1.1 404"), "{head}");
        assert!(head.contains("content-type: application/json"), "{head}");
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&body).unwrap()["error"]["id"],
            "notFound"
        );

        let config = format!("GET {API_PREFIX}/configuration HTTP/1.1\r\nHost: oz\r\n\r\n");
        stream.write_all(config.as_bytes()).await.unwrap();
        let (head, body) = read_response(&mut stream).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&body).unwrap()["domain"],
            DOMAIN
        );

        let requests = standin.requests();
        assert_eq!(requests.len(), 2);
        assert_eq!(
            requests[0].path,
            format!("{API_PREFIX}/groups/{GROUP_ID}/users/token?x=%2F")
        );
        assert_eq!(requests[0].header("host"), Some("oz"));
        assert_eq!(requests[1].method, "GET");
    }

    #[tokio::test]
    async fn every_answer_allows_any_origin_and_405_says_what_is_allowed() {
        let standin = StandIn::start(World::demo()).await.unwrap();
        let base = format!("http://{}{API_PREFIX}", standin.addr());
        let http = reqwest::Client::new();
        let named = format!("{base}/user/tokens/named");
        let created: serde_json::Value = http
            .post(&named)
            .header("x-auth-token", BOB_TOKEN)
            .json(&json!({ "name": "t1" }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let by_id = format!(
            "{base}/tokens/named/{}",
            created["tokenId"].as_str().unwrap()
        );
        let requests = [
            (
                http.get(format!("{base}/user")).bearer_auth(ALICE_TOKEN),
                200,
            ),
            (
                http.post(&named)
                    .bearer_auth(ALICE_TOKEN)
                    .json(&json!({ "name": "t2" })),
                201,
            ),
            (
                http.post(&named)
                    .bearer_auth(ALICE_TOKEN)
                    .header("content-type", "application/json")
                    .body(" "),
                400,
            ),
            (
                http.get(format!("{base}/user")).bearer_auth("MDAxnope"),
                401,
            ),
            (
                http.get(format!("{base}/groups/{GROUP_ID}"))
                    .bearer_auth(BOB_TOKEN),
                403,
            ),
            (http.get(format!("{base}/nothing")), 404),
            (http.put(&named).bearer_auth("MDAxnope"), 405),
            (http.head(&named), 405),
            (
                http.get(format!("{base}/user"))
                    .bearer_auth(ALICE_TOKEN)
                    .header("accept", "text/html"),
                406,
            ),
            (
                http.post(&named)
                    .bearer_auth(ALICE_TOKEN)
                    .header("content-type", "text/plain")
                    .body("x"),
                415,
            ),
            (http.get(format!("{base}/%zz")), 400),
            (http.delete(&by_id).bearer_auth(BOB_TOKEN), 204),
        ];
        for (request, status) in requests {
            let r = request.send().await.unwrap();
            assert_eq!(r.status(), status);
            let headers = r.headers().clone();
            assert_eq!(headers["access-control-allow-origin"], "*", "{status}");
            match status {
                405 => {
                    assert_eq!(headers["allow"], "GET, POST");
                    assert_eq!(headers["content-length"], "0");
                    assert!(headers.get("content-type").is_none());
                }
                204 => {
                    assert_eq!(headers["content-type"], "application/json");
                    assert!(headers.get("content-length").is_none());
                }
                _ => assert!(headers.get("allow").is_none(), "{status}"),
            }
            let body = r.bytes().await.unwrap();
            if matches!(status, 204 | 405 | 406 | 415) || (status == 400 && body.is_empty()) {
                assert!(body.is_empty(), "{status}");
            } else {
                assert_eq!(headers["content-type"], "application/json", "{status}");
                assert_eq!(headers["content-length"], body.len().to_string().as_str());
                assert!(serde_json::from_slice::<serde_json::Value>(&body).is_ok());
            }
        }
    }

    #[tokio::test]
    async fn the_legacy_endpoints_can_be_switched_on_while_running() {
        let standin = StandIn::start(World::demo()).await.unwrap();
        let url = format!(
            "http://{}{API_PREFIX}/groups/{GROUP_ID}/users/token",
            standin.addr()
        );
        let http = reqwest::Client::new();
        let post = || http.post(&url).header("x-auth-token", ALICE_TOKEN).send();
        assert_eq!(post().await.unwrap().status(), 404);
        standin.serve_legacy(true);
        let r = post().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "application/json");
        assert_eq!(r.headers()["access-control-allow-origin"], "*");
        let body: serde_json::Value = r.json().await.unwrap();
        assert!(body["token"]
            .as_str()
            .is_some_and(|t| t.starts_with("MDAx")));
        standin.with_world(|w| {
            w.serve_legacy(false);
        });
        assert_eq!(post().await.unwrap().status(), 404);
    }

    #[tokio::test]
    async fn stops_listening_on_shutdown_and_drop() {
        let standin = StandIn::start(World::demo()).await.unwrap();
        let addr = standin.addr();
        standin.shutdown().await;
        assert!(TcpStream::connect(addr).await.is_err());

        let standin = StandIn::start(World::demo()).await.unwrap();
        let addr = standin.addr();
        drop(standin);
        let mut refused = false;
        for _ in 0..100 {
            if TcpStream::connect(addr).await.is_err() {
                refused = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(
            refused,
            "the listener closes soon after the stand-in is dropped"
        );
    }
}

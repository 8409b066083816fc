//! A legacy client cannot tell the proxy from Onezone. Each case is sent twice over real
//! sockets: to the proxy (rewriting, in front of a stand-in that has no legacy endpoints), and
//! straight to a stand-in that serves the legacy endpoints itself with Onezone's own legacy
//! semantics (`World::serve_legacy`). The two answers must agree: status, error body, and the
//! headers a client reads (`allow`, `access-control-allow-origin`, `content-type`).
//!
//! The stand-in is an independent model of Onezone (it shares no code with the proxy); the
//! rules are cited there and in the proxy where each is implemented.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::Proxy;
use onezone_standin::{demo::*, StandIn, World};
use serde_json::Value;

use common::P;

struct Pair {
    /// Onezone with its legacy code: the reference.
    onezone: StandIn,
    /// Onezone without legacy endpoints, behind the proxy.
    behind: StandIn,
    proxy: Proxy,
}

#[derive(Debug, Clone, PartialEq)]
struct Seen {
    status: u16,
    /// Lower-case names of the headers compared, with their values.
    headers: Vec<(String, Option<String>)>,
    body: Option<Value>,
    raw_len: usize,
}

const COMPARED: [&str; 3] = ["allow", "access-control-allow-origin", "content-type"];

impl Pair {
    async fn new() -> Pair {
        let mut reference = World::demo();
        reference.serve_legacy(true);
        let onezone = StandIn::start(reference).await.unwrap();
        let behind = StandIn::start(World::demo()).await.unwrap();
        let proxy = Proxy::start(behind.addr());
        Pair {
            onezone,
            behind,
            proxy,
        }
    }

    /// The same raw request to both; the answers, each with its status, compared headers and
    /// JSON body.
    fn both(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (Seen, Seen) {
        let send = |addr| {
            let mut head =
                format!("{method} {P}{path} HTTP/1.1\r\nHost: zone\r\nConnection: close\r\n");
            for (k, v) in headers {
                head.push_str(&format!("{k}: {v}\r\n"));
            }
            if !body.is_empty() || method == "POST" {
                head.push_str(&format!("Content-Length: {}\r\n", body.len()));
            }
            head.push_str("\r\n");
            let mut bytes = head.into_bytes();
            bytes.extend_from_slice(body);
            let r = common::raw_request_within(addr, Duration::from_secs(10), &bytes);
            Seen {
                status: r.status,
                headers: COMPARED
                    .iter()
                    .map(|h| (h.to_string(), r.header(h).map(|v| v.to_ascii_lowercase())))
                    .collect(),
                body: serde_json::from_slice(&r.body).ok(),
                raw_len: r.body.len(),
            }
        };
        (send(self.proxy.addr), send(self.onezone.addr()))
    }

    /// Both answers agree; an answer with a token agrees in shape, not in the token itself.
    fn agree(
        &self,
        case: &str,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Seen {
        let (mut proxy, mut onezone) = self.both(method, path, headers, body);
        for seen in [&mut proxy, &mut onezone] {
            if let Some(Value::Object(o)) = &mut seen.body {
                if let Some(t) = o.get_mut("token") {
                    *t = Value::String("<token>".into());
                }
                if let Some(Value::Array(list)) = o.get_mut("tokens") {
                    list.iter_mut()
                        .for_each(|t| *t = Value::String("<token>".into()));
                }
            }
            if seen.body.is_some() {
                seen.raw_len = 0;
            }
        }
        assert_eq!(
            proxy, onezone,
            "{case}: {method} {path}: the proxy (left) answers as Onezone (right)"
        );
        proxy
    }
}

fn error_id(seen: &Seen) -> Option<&str> {
    seen.body.as_ref()?.get("error")?.get("id")?.as_str()
}

const ALICE: (&str, &str) = ("x-auth-token", ALICE_TOKEN);
const JSON: (&str, &str) = ("content-type", "application/json");

/// Cases 1-4: the order of checks, and the client-token edge cases.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_come_in_onezones_order() {
    let pair = Pair::new().await;
    let invite = format!("/groups/{GROUP_ID}/users/token");
    let bad = ("x-auth-token", "MDAxnotarealtoken");
    // 1. The credential before the id, and before the body.
    let s = pair.agree(
        "invalid token, bad id",
        "POST",
        "/groups/a.b/users/token",
        &[bad],
        b"",
    );
    assert_eq!(s.status, 401);
    let s = pair.agree(
        "invalid token, bad body",
        "POST",
        &invite,
        &[bad, JSON],
        b"{",
    );
    assert_eq!(s.status, 401);
    let s = pair.agree(
        "good token, bad id",
        "POST",
        "/groups/a.b/users/token",
        &[ALICE],
        b"",
    );
    assert_eq!((s.status, error_id(&s)), (404, Some("notFound")));
    // 2. A tid that is not a token.
    let s = pair.agree(
        "not a token",
        "DELETE",
        "/user/client_tokens/notatoken",
        &[ALICE],
        b"",
    );
    assert_eq!((s.status, error_id(&s)), (404, Some("notFound")));
    // 4. A Oneprovider has no user behind /user/client_tokens.
    let provider = ("x-auth-token", PROVIDER_TOKEN);
    for (m, p) in [
        ("POST", "/user/client_tokens"),
        ("GET", "/user/client_tokens"),
        ("DELETE", "/user/client_tokens/MDAxsomething"),
    ] {
        let s = pair.agree("a Oneprovider", m, p, &[provider], b"");
        assert_eq!((s.status, error_id(&s)), (404, Some("notFound")), "{m} {p}");
    }
    // Nobody.
    for (m, p) in [
        ("POST", "/user/client_tokens"),
        ("GET", "/user/client_tokens"),
        ("DELETE", "/user/client_tokens/MDAxsomething"),
    ] {
        let s = pair.agree("nobody", m, p, &[], b"");
        assert_eq!(s.status, 401, "{m} {p}");
    }
}

/// Case 3: deleting someone else's client token is 403 on both, and the token stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_subjects_client_token_is_forbidden() {
    let pair = Pair::new().await;
    // One client token of Alice on each side.
    let (proxy_made, onezone_made) = pair.both("POST", "/user/client_tokens", &[ALICE], b"");
    let tokens =
        [proxy_made, onezone_made].map(|s| s.body.unwrap()["token"].as_str().unwrap().to_string());
    let bob = ("x-auth-token", BOB_TOKEN);
    let path = |t: &str| format!("/user/client_tokens/{t}");
    let proxy = common::raw_request(
        pair.proxy.addr,
        format!(
            "DELETE {P}{} HTTP/1.1\r\nHost: zone\r\nX-Auth-Token: {}\r\nConnection: close\r\n\r\n",
            path(&tokens[0]),
            bob.1
        )
        .as_bytes(),
    );
    let onezone = common::raw_request(
        pair.onezone.addr(),
        format!(
            "DELETE {P}{} HTTP/1.1\r\nHost: zone\r\nX-Auth-Token: {}\r\nConnection: close\r\n\r\n",
            path(&tokens[1]),
            bob.1
        )
        .as_bytes(),
    );
    assert_eq!((proxy.status, onezone.status), (403, 403));
    assert_eq!(proxy.json(), onezone.json());
    assert_eq!(proxy.json()["error"]["id"], "forbidden");
    // Alice still lists it, on both sides.
    pair.agree(
        "the token stays",
        "GET",
        "/user/client_tokens",
        &[ALICE],
        b"",
    );
    let r = common::raw_request(
        pair.proxy.addr,
        format!("GET {P}/user/client_tokens HTTP/1.1\r\nHost: zone\r\nX-Auth-Token: {ALICE_TOKEN}\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    assert!(r.json()["tokens"]
        .as_array()
        .unwrap()
        .contains(&Value::String(tokens[0].clone())));
}

/// Cases 5-8: content negotiation and bodies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_negotiation_and_bodies_follow_cowboy_rest() {
    let pair = Pair::new().await;
    let invite = format!("/groups/{GROUP_ID}/users/token");
    // 5. 415 for a body without exactly application/json.
    for ct in [
        &[("content-type", "application/json; charset=utf-8")][..],
        &[][..],
        &[("content-type", "text/plain")][..],
    ] {
        let mut h = vec![ALICE];
        h.extend_from_slice(ct);
        let s = pair.agree("415", "POST", &invite, &h, b"{}");
        assert_eq!(
            (s.status, s.body.clone(), s.raw_len),
            (415, None, 0),
            "{ct:?}"
        );
    }
    // An empty body accepts any content type.
    let s = pair.agree(
        "empty body",
        "POST",
        &invite,
        &[ALICE, ("content-type", "text/plain")],
        b"",
    );
    assert_eq!(s.status, 200);
    // 6. 406 for an Accept without JSON.
    let s = pair.agree(
        "406",
        "POST",
        &invite,
        &[ALICE, ("accept", "text/html")],
        b"",
    );
    assert_eq!((s.status, s.raw_len), (406, 0));
    // 7. JSON that is not an object, and whitespace.
    for body in [&b"null"[..], b"[1]", b"\"x\"", b"1", b" ", b"\r\n"] {
        let s = pair.agree("400", "POST", &invite, &[ALICE, JSON], body);
        assert_eq!(
            (s.status, error_id(&s)),
            (400, Some("malformedData")),
            "{body:?}"
        );
    }
    // Not an object, but the entity comes first.
    let s = pair.agree(
        "404 before 400",
        "POST",
        "/groups/0000000000000000000000000000dead/users/token",
        &[ALICE, JSON],
        b"null",
    );
    assert_eq!(s.status, 404);
    // 8. GET and DELETE do not read the body.
    let s = pair.agree(
        "GET ignores its body",
        "GET",
        "/user/client_tokens",
        &[ALICE, ("content-type", "text/plain")],
        b"not json",
    );
    assert_eq!(s.status, 200);
    let s = pair.agree(
        "DELETE ignores its body",
        "DELETE",
        "/user/client_tokens/notatoken",
        &[ALICE],
        b"{",
    );
    assert_eq!(s.status, 404);
}

/// Cases 11-12: methods a legacy route does not have, CORS and the 204's content type.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn methods_and_headers_match() {
    let pair = Pair::new().await;
    let invite = format!("/groups/{GROUP_ID}/users/token");
    for (m, p, allow) in [
        ("GET", invite.as_str(), "post"),
        ("PUT", "/user/client_tokens", "get, post"),
        ("POST", "/user/client_tokens/MDAxsomething", "delete"),
        ("HEAD", invite.as_str(), "post"),
        ("OPTIONS", invite.as_str(), "post"),
        ("post", invite.as_str(), "post"),
    ] {
        pair.behind.clear_requests();
        let s = pair.agree("405", m, p, &[ALICE], b"");
        assert_eq!(s.status, 405, "{m} {p}");
        let got = s
            .headers
            .iter()
            .find(|(h, _)| h == "allow")
            .and_then(|(_, v)| v.clone());
        assert_eq!(got.as_deref(), Some(allow), "{m} {p}");
        assert!(
            pair.behind.requests().is_empty(),
            "{m} {p}: never forwarded"
        );
    }
    // Every answer carries CORS; a 204 carries content-type.
    let made = pair.agree("create", "POST", "/user/client_tokens", &[ALICE], b"");
    assert_eq!(made.headers[1].1.as_deref(), Some("*"));
    let (p, o) = pair.both("POST", "/user/client_tokens", &[ALICE], b"");
    let (pt, ot) = (
        p.body.unwrap()["token"].as_str().unwrap().to_string(),
        o.body.unwrap()["token"].as_str().unwrap().to_string(),
    );
    let del = |addr, t: &str| {
        common::raw_request(addr, format!("DELETE {P}/user/client_tokens/{t} HTTP/1.1\r\nHost: zone\r\nX-Auth-Token: {ALICE_TOKEN}\r\nConnection: close\r\n\r\n").as_bytes())
    };
    let (pd, od) = (del(pair.proxy.addr, &pt), del(pair.onezone.addr(), &ot));
    assert_eq!((pd.status, od.status), (204, 204));
    for h in COMPARED {
        assert_eq!(pd.header(h), od.header(h), "{h}");
    }
    assert_eq!(
        pd.header("content-type").as_deref(),
        Some("application/json")
    );
}

/// Case 9: session-bound access tokens are client tokens too; case 10: a long list keeps
/// Onezone's order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_token_lists_match() {
    let pair = Pair::new().await;
    for zone in [&pair.onezone, &pair.behind] {
        zone.with_world(|w| {
            w.add_session_access_token(ALICE_ID, "session-1", "gui session token");
        });
    }
    for _ in 0..20 {
        let _ = pair.both("POST", "/user/client_tokens", &[ALICE], b"");
    }
    let s = pair.agree("list", "GET", "/user/client_tokens", &[ALICE], b"");
    let listed = s.body.unwrap()["tokens"].as_array().unwrap().len();
    // Alice's fixture access token, the session one, and the 20 new ones.
    assert!(listed >= 21, "{listed}");
    // The proxy reads each token of the list (8 at a time) and keeps Onezone's order: the ids
    // in the order the tokens API lists them.
    let listed_ids = pair
        .behind
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path.contains("/tokens/named/"))
        .count();
    assert!(
        listed_ids >= listed,
        "{listed_ids} reads for {listed} tokens"
    );
}

/// Case 13: invite tokens are named with the target's display name, as Onezone's are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invite_token_names_use_display_names() {
    let pair = Pair::new().await;
    let invite = format!("/groups/{GROUP_ID}/users/token");
    let (p, o) = pair.both("POST", &invite, &[ALICE], b"");
    let names: Vec<String> = [(&pair.behind, p), (&pair.onezone, o)]
        .into_iter()
        .map(|(zone, seen)| {
            let token = seen.body.unwrap()["token"].as_str().unwrap().to_string();
            let examined = common::raw_request(
                zone.addr(),
                format!(
                    "POST {P}/tokens/examine HTTP/1.1\r\nHost: zone\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{{\"token\": \"{token}\"}}",
                    token.len() + 13
                )
                .as_bytes(),
            );
            let id = examined.json()["id"].as_str().unwrap().to_string();
            zone.named_token(&id).unwrap()["name"].as_str().unwrap().to_string()
        })
        .collect();
    let strip = |n: &str| n.rsplit_once(' ').unwrap().0.to_string();
    assert_eq!(strip(&names[0]), strip(&names[1]), "{names:?}");
    assert_eq!(
        strip(&names[0]),
        format!("user invite to group - {GROUP_NAME}")
    );
}

/// Case 10: a token deleted between the list and its read is left out (Onezone's list is one
/// read; the proxy's is 1 + N calls, and must still answer a consistent list).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_deleted_while_the_list_is_read_is_left_out() {
    let pair = Pair::new().await;
    let mut made = Vec::new();
    for _ in 0..10 {
        let (p, _) = pair.both("POST", "/user/client_tokens", &[ALICE], b"");
        made.push(p.body.unwrap()["token"].as_str().unwrap().to_string());
    }
    let gone = &made[3];
    let examined = common::raw_request(
        pair.behind.addr(),
        format!(
            "POST {P}/tokens/examine HTTP/1.1\r\nHost: zone\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{{\"token\": \"{gone}\"}}",
            gone.len() + 13
        )
        .as_bytes(),
    );
    let id = examined.json()["id"].as_str().unwrap().to_string();
    pair.behind.set_delay(Duration::from_millis(300));
    let url = pair.proxy.url(&format!("{P}/user/client_tokens"));
    let list = tokio::spawn(async move {
        common::client()
            .get(url)
            .header("x-auth-token", ALICE_TOKEN)
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    });
    // The list call is answered at 300 ms; the reads of each token come after it.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let addr = pair.behind.addr();
    let delete = tokio::task::spawn_blocking(move || {
        common::raw_request(
            addr,
            format!("DELETE {P}/tokens/named/{id} HTTP/1.1\r\nHost: zone\r\nX-Auth-Token: {ALICE_TOKEN}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .status
    });
    let listed = list.await.unwrap();
    assert_eq!(delete.await.unwrap(), 204);
    let tokens = listed["tokens"].as_array().unwrap();
    assert!(!tokens.contains(&Value::String(gone.clone())), "{listed}");
    for t in made.iter().filter(|t| *t != gone) {
        assert!(tokens.contains(&Value::String(t.clone())), "{t} is listed");
    }
}

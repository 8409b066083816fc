//! The deprecated token endpoints end to end: a real client, the real proxy binary, and the
//! Onezone stand-in (which serves only the tokens API and enforces its rules). Each test checks
//! the legacy answer and the exact calls Onezone received.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::Proxy;
use onezone_standin::{demo::*, StandIn, World};
use serde_json::{json, Value};

use common::P;

struct Env {
    zone: StandIn,
    proxy: Proxy,
    http: reqwest::Client,
}

struct Resp {
    status: u16,
    headers: reqwest::header::HeaderMap,
    text: String,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text))
    }

    fn token(&self) -> String {
        assert_eq!(self.status, 200, "{}", self.text);
        let body = self.json();
        assert_eq!(
            body.as_object().map(|o| o.len()),
            Some(1),
            "only a token: {body}"
        );
        body["token"]
            .as_str()
            .expect("token is a string")
            .to_string()
    }
}

impl Env {
    async fn new() -> Env {
        let zone = StandIn::start(World::demo())
            .await
            .expect("stand-in starts");
        let proxy = Proxy::start(zone.addr());
        Env {
            zone,
            proxy,
            http: common::client(),
        }
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Resp {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self
            .http
            .request(method, self.proxy.url(&format!("{P}{path}")));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.body(b.to_string());
        }
        let r = req.send().await.expect("proxy answers");
        Resp {
            status: r.status().as_u16(),
            headers: r.headers().clone(),
            text: r.text().await.unwrap(),
        }
    }

    async fn post(&self, path: &str, token: Option<&str>) -> Resp {
        match token {
            Some(t) => self.call("POST", path, &[("x-auth-token", t)], None).await,
            None => self.call("POST", path, &[], None).await,
        }
    }

    /// The calls Onezone received since the last `clear`, as (method, path below the prefix).
    fn calls(&self) -> Vec<(String, String)> {
        self.zone
            .requests()
            .iter()
            .map(|r| (r.method.clone(), r.path.trim_start_matches(P).to_string()))
            .collect()
    }

    fn clear(&self) {
        self.zone.clear_requests();
    }

    /// Examines a token on the stand-in directly (not through the proxy).
    async fn examine(&self, token: &str) -> Value {
        self.http
            .post(format!("http://{}{P}/tokens/examine", self.zone.addr()))
            .json(&json!({ "token": token }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

fn calls(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect()
}

fn not_found() -> Value {
    json!({"error": {"id": "notFound", "description": "The resource could not be found."}})
}

fn forbidden() -> Value {
    json!({"error": {"id": "forbidden", "description": "You are not authorized to perform this operation."}})
}

/// (template, invite type, target key, target id) of the invites addressed by a path id.
fn invite_rows() -> Vec<(&'static str, &'static str, &'static str, &'static str)> {
    vec![
        (
            "/groups/{id}/users/token",
            "userJoinGroup",
            "groupId",
            GROUP_ID,
        ),
        (
            "/groups/{id}/children/token",
            "groupJoinGroup",
            "groupId",
            GROUP_ID,
        ),
        (
            "/spaces/{id}/users/token",
            "userJoinSpace",
            "spaceId",
            SPACE_ID,
        ),
        (
            "/spaces/{id}/groups/token",
            "groupJoinSpace",
            "spaceId",
            SPACE_ID,
        ),
        (
            "/spaces/{id}/providers/token",
            "supportSpace",
            "spaceId",
            SPACE_ID,
        ),
        (
            "/harvesters/{id}/users/token",
            "userJoinHarvester",
            "harvesterId",
            HARVESTER_ID,
        ),
        (
            "/harvesters/{id}/groups/token",
            "groupJoinHarvester",
            "harvesterId",
            HARVESTER_ID,
        ),
        (
            "/harvesters/{id}/spaces/token",
            "spaceJoinHarvester",
            "harvesterId",
            HARVESTER_ID,
        ),
        (
            "/clusters/{id}/users/token",
            "userJoinCluster",
            "clusterId",
            CLUSTER_ID,
        ),
        (
            "/clusters/{id}/groups/token",
            "groupJoinCluster",
            "clusterId",
            CLUSTER_ID,
        ),
    ]
}

/// The create body Onezone's legacy code would send: a name, the invite, single use, no more.
fn assert_invite_body(body: &Value, invite_type: &str, key: &str, id: &str) {
    let obj = body.as_object().expect("object");
    let mut keys: Vec<_> = obj.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["name", "type", "usageLimit"], "{body}");
    assert_eq!(body["usageLimit"], 1);
    assert_eq!(
        body["type"],
        json!({"inviteToken": {"inviteType": invite_type, key: id}})
    );
    let name = body["name"].as_str().unwrap();
    assert!(name.len() <= 50, "{name}");
    let (head, suffix) = name.rsplit_once(' ').unwrap();
    assert!(
        suffix.len() == 6 && suffix.bytes().all(|b| b.is_ascii_hexdigit()),
        "{name}"
    );
    assert!(head.contains(" - "), "{name}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invites_are_created_as_single_use_named_tokens_of_the_caller() {
    let env = Env::new().await;
    for (template, invite_type, key, id) in invite_rows() {
        env.clear();
        let path = template.replace("{id}", id);
        let r = env.post(&path, Some(ALICE_TOKEN)).await;
        let token = r.token();
        assert_eq!(r.headers["content-type"], "application/json", "{template}");
        assert!(
            r.headers.get("location").is_none(),
            "{template}: no Location"
        );

        let seen = env.zone.requests();
        let creates: Vec<_> = seen
            .iter()
            .filter(|c| c.path.ends_with("/tokens/named"))
            .collect();
        assert_eq!(creates.len(), 1, "{template}: one create");
        assert_eq!(creates[0].path, format!("{P}/user/tokens/named"));
        assert_eq!(
            creates[0].header("x-auth-token"),
            Some(ALICE_TOKEN),
            "credential forwarded unchanged"
        );
        assert_eq!(creates[0].header("content-type"), Some("application/json"));
        assert_invite_body(&creates[0].json().unwrap(), invite_type, key, id);

        let examined = env.examine(&token).await;
        assert_eq!(
            examined["subject"],
            json!({"type": "user", "id": ALICE_ID}),
            "{template}"
        );
        assert_eq!(examined["type"]["inviteToken"]["inviteType"], invite_type);
        assert_eq!(examined["type"]["inviteToken"][key], id);
        assert_eq!(examined["caveats"], json!([]));
    }
    // The caller was examined once, then served from the cache.
    env.clear();
    env.post(
        &format!("/groups/{GROUP_ID}/users/token"),
        Some(ALICE_TOKEN),
    )
    .await
    .token();
    assert_eq!(env.calls(), calls(&[("POST", "/user/tokens/named")]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_call_examines_the_caller_then_creates() {
    let env = Env::new().await;
    env.post(
        &format!("/spaces/{SPACE_ID}/users/token"),
        Some(ALICE_TOKEN),
    )
    .await
    .token();
    // The target's display name is read for the token's name, as Onezone names legacy invites
    // `<description> - <display name> <hex>` (token_logic.erl, format_invite_token_name/2).
    let read = format!("/spaces/{SPACE_ID}");
    assert_eq!(
        env.calls(),
        calls(&[
            ("POST", "/tokens/examine"),
            ("GET", &read),
            ("POST", "/user/tokens/named")
        ])
    );
    let examine = &env.zone.requests()[0];
    assert_eq!(examine.json().unwrap(), json!({"token": ALICE_TOKEN}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_targets_are_404_and_missing_privileges_403() {
    let env = Env::new().await;
    for (template, ..) in invite_rows() {
        let missing = template.replace("{id}", "0000000000000000000000000000dead");
        let r = env.post(&missing, Some(ALICE_TOKEN)).await;
        assert_eq!((r.status, r.json()), (404, not_found()), "{template}");

        let real = template.replace(
            "{id}",
            match template {
                t if t.starts_with("/groups") => GROUP_ID,
                t if t.starts_with("/spaces") => SPACE_ID,
                t if t.starts_with("/harvesters") => HARVESTER_ID,
                _ => CLUSTER_ID,
            },
        );
        let r = env.post(&real, Some(BOB_TOKEN)).await;
        assert_eq!((r.status, r.json()), (403, forbidden()), "{template}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_credential_is_401_and_a_bad_one_keeps_onezones_details() {
    let env = Env::new().await;
    let path = format!("/groups/{GROUP_ID}/users/token");
    let r = env.post(&path, None).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"]["id"], "unauthorized");

    let r = env.post(&path, Some("MDAxnotarealtoken")).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"]["id"], "unauthorized");
    assert!(
        r.json()["error"]["details"]["authError"]["id"].is_string(),
        "{}",
        r.text
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_that_cannot_be_onezone_ids_are_404_without_calling_onezone() {
    let env = Env::new().await;
    // Onezone authenticates the caller before it looks at the path id (rest_handler's
    // is_authorized runs first): the proxy resolves the caller first, once, then answers 404
    // itself without any further call.
    env.post(
        &format!("/groups/{GROUP_ID}/users/token"),
        Some(ALICE_TOKEN),
    )
    .await
    .token();
    for bad in ["a%20b", "a%2Fb", "%00", "a.b", "%2e%2e%2fx"] {
        env.clear();
        let r = env
            .post(&format!("/groups/{bad}/users/token"), Some(ALICE_TOKEN))
            .await;
        assert_eq!((r.status, r.json()), (404, not_found()), "{bad}");
        assert_eq!(env.calls(), vec![], "{bad}: no upstream call");
    }
    // An invalid credential is 401 with Onezone's authError before the id is looked at.
    let r = env
        .post("/groups/a.b/users/token", Some("MDAxnotarealtoken"))
        .await;
    assert_eq!(r.status, 401, "{}", r.text);
    assert!(
        r.json()["error"]["details"]["authError"]["id"].is_string(),
        "{}",
        r.text
    );
    // An empty id segment too.
    let r = common::raw_request(
        env.proxy.addr,
        format!("POST {P}/groups//users/token HTTP/1.1\r\nHost: h\r\nX-Auth-Token: {ALICE_TOKEN}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    assert_eq!((r.status, r.json()), (404, not_found()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oneproviders_invite_to_their_own_cluster_with_provider_tokens() {
    let env = Env::new().await;
    for template in ["/clusters/{id}/users/token", "/clusters/{id}/groups/token"] {
        env.clear();
        let token = env
            .post(&template.replace("{id}", CLUSTER_ID), Some(PROVIDER_TOKEN))
            .await
            .token();
        let creates: Vec<_> = env
            .calls()
            .into_iter()
            .filter(|(_, p)| p.contains("/tokens/named"))
            .collect();
        assert_eq!(
            creates,
            calls(&[("POST", "/provider/tokens/named")]),
            "{template}"
        );
        let examined = env.examine(&token).await;
        assert_eq!(
            examined["subject"],
            json!({"type": "oneprovider", "id": PROVIDER_ID})
        );
    }
    // A Oneprovider has no say over a group: Onezone refuses, the legacy answer is 403.
    let r = env
        .post(
            &format!("/groups/{GROUP_ID}/users/token"),
            Some(PROVIDER_TOKEN),
        )
        .await;
    assert_eq!((r.status, r.json()), (403, forbidden()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_tokens_name_the_admin_user_but_belong_to_the_caller() {
    let env = Env::new().await;
    // For the current user, by token.
    let token = env
        .post(
            "/user/clusters/provider_registration_token",
            Some(ALICE_TOKEN),
        )
        .await
        .token();
    // The admin user's full name is read for the token's name (token_logic.erl,
    // gen_invite_token_name/2 uses the user's full name for registerOneprovider).
    assert_eq!(
        env.calls(),
        calls(&[
            ("POST", "/tokens/examine"),
            ("GET", "/user"),
            ("POST", "/user/tokens/named")
        ])
    );
    let create = env.zone.requests()[2].json().unwrap();
    assert_invite_body(&create, "registerOneprovider", "adminUserId", ALICE_ID);
    assert_eq!(env.examine(&token).await["subject"]["id"], ALICE_ID);

    // For the current user, by Basic auth: GET /user says who it is.
    env.clear();
    let basic = format!(
        "Basic {}",
        base64_encode(&format!("{}:{}", ALICE_BASIC.0, ALICE_BASIC.1))
    );
    let r = env
        .call(
            "POST",
            "/user/clusters/provider_registration_token",
            &[("authorization", &basic)],
            None,
        )
        .await;
    r.token();
    assert_eq!(
        env.calls(),
        calls(&[("GET", "/user"), ("POST", "/user/tokens/named")])
    );
    assert_eq!(
        env.zone.requests()[1].header("authorization"),
        Some(basic.as_str())
    );

    // For a named user: the caller still owns the token; /users/{id}/tokens/named is not used.
    env.clear();
    let token = env
        .post(
            &format!("/users/{ALICE_ID}/clusters/provider_registration_token"),
            Some(ALICE_TOKEN),
        )
        .await
        .token();
    assert_eq!(env.calls(), calls(&[("POST", "/user/tokens/named")]));
    assert_eq!(
        env.examine(&token).await["type"]["inviteToken"]["adminUserId"],
        ALICE_ID
    );

    // Someone else's registration token needs an admin privilege.
    let r = env
        .post(
            &format!("/users/{BOB_ID}/clusters/provider_registration_token"),
            Some(ALICE_TOKEN),
        )
        .await;
    assert_eq!((r.status, r.json()), (403, forbidden()));

    // No credential.
    let r = env
        .post("/user/clusters/provider_registration_token", None)
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"]["id"], "unauthorized");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_tokens_create_list_delete() {
    let env = Env::new().await;
    let before = env.zone.token_count();
    let auth = [("x-auth-token", ALICE_TOKEN)];

    let token = env
        .call("POST", "/user/client_tokens", &auth, None)
        .await
        .token();
    let create = env
        .zone
        .requests()
        .into_iter()
        .find(|r| r.path == format!("{P}/user/tokens/named"))
        .expect("created through the tokens API");
    let body = create.json().unwrap();
    assert_eq!(body["type"], json!({"accessToken": {}}));
    assert!(
        body["name"].as_str().unwrap().starts_with("access token "),
        "{body}"
    );
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let valid_until = body["caveats"][0]["validUntil"].as_i64().unwrap();
    assert!(
        (valid_until - (now + 31_536_000)).abs() < 60,
        "one year: {body}"
    );
    assert_eq!(body["caveats"].as_array().unwrap().len(), 1);
    assert_eq!(env.zone.token_count(), before + 1);
    let examined = env.examine(&token).await;
    assert_eq!(examined["type"], json!({"accessToken": {}}));

    // Listed, serialized, access tokens only (the invite made here is not listed).
    env.post(
        &format!("/groups/{GROUP_ID}/users/token"),
        Some(ALICE_TOKEN),
    )
    .await
    .token();
    env.clear();
    let r = env.call("GET", "/user/client_tokens", &auth, None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let list: Vec<String> = serde_json::from_value(r.json()["tokens"].clone()).unwrap();
    assert!(list.contains(&token), "{list:?}");
    let seen = env.calls();
    assert_eq!(seen[0], ("GET".into(), "/user/tokens/named".into()));
    assert!(
        seen[1..]
            .iter()
            .all(|(m, p)| m == "GET" && p.starts_with("/tokens/named/")),
        "{seen:?}"
    );

    for t in &list {
        assert_eq!(env.examine(t).await["type"], json!({"accessToken": {}}));
    }

    // Deleted by its serialized form.
    env.clear();
    let r = env
        .call(
            "DELETE",
            &format!("/user/client_tokens/{token}"),
            &auth,
            None,
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(r.text, "");
    let seen = env.calls();
    assert_eq!(seen[0], ("POST".into(), "/tokens/examine".into()));
    assert_eq!(seen[1].0, "DELETE");
    assert!(seen[1].1.starts_with("/tokens/named/"));
    assert_eq!(
        env.zone.token_count(),
        before + 1,
        "the client token is gone, the invite stays"
    );
    let r = env.call("GET", "/user/client_tokens", &auth, None).await;
    assert!(!r.json()["tokens"]
        .as_array()
        .unwrap()
        .contains(&json!(token)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_token_errors() {
    let env = Env::new().await;
    let alice = [("x-auth-token", ALICE_TOKEN)];
    let token = env
        .call("POST", "/user/client_tokens", &alice, None)
        .await
        .token();

    // Not the caller's token: the owner check fails (token_logic_plugin.erl:403-410) and
    // entity_logic:report_unauthorized answers 403.
    let bob = [("x-auth-token", BOB_TOKEN)];
    let r = env
        .call(
            "DELETE",
            &format!("/user/client_tokens/{token}"),
            &bob,
            None,
        )
        .await;
    assert_eq!((r.status, r.json()), (403, forbidden()));

    // Not something a token can look like: no call at all.
    env.clear();
    let r = env
        .call("DELETE", "/user/client_tokens/a.b", &alice, None)
        .await;
    assert_eq!((r.status, r.json()), (404, not_found()));
    assert_eq!(env.calls(), vec![]);

    // No credential.
    for (m, p) in [
        ("POST", "/user/client_tokens"),
        ("GET", "/user/client_tokens"),
    ] {
        let r = env.call(m, p, &[], None).await;
        assert_eq!(r.status, 401, "{m} {p}");
        assert_eq!(r.json()["error"]["id"], "unauthorized");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_bodies_are_ignored_when_json_and_refused_otherwise() {
    let env = Env::new().await;
    let path = format!("/groups/{GROUP_ID}/users/token");
    let auth = [
        ("x-auth-token", ALICE_TOKEN),
        ("content-type", "application/json"),
    ];
    let r = env
        .call(
            "POST",
            &path,
            &auth,
            Some(r#"{"usageLimit": 99, "privileges": ["x"]}"#),
        )
        .await;
    r.token();
    let create = env.zone.requests().pop().unwrap().json().unwrap();
    assert_eq!(
        create["usageLimit"], 1,
        "the client's body does not reach Onezone"
    );

    env.clear();
    let r = env.call("POST", &path, &auth, Some("usageLimit=99")).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["id"], "malformedData");
    assert_eq!(env.calls(), vec![]);

    let big = format!("[{}0]", "0,".repeat(600_000));
    let r = env.call("POST", &path, &auth, Some(&big)).await;
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["error"]["id"], "payloadTooLarge");
    assert_eq!(env.calls(), vec![]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_calls_pass_through_to_onezone() {
    let env = Env::new().await;
    // Not deprecated: passes through and Onezone answers it.
    let r = env
        .call(
            "PUT",
            &format!("/clusters/{CLUSTER_ID}/users/{BOB_ID}"),
            &[
                ("x-auth-token", PROVIDER_TOKEN),
                ("content-type", "application/json"),
            ],
            Some(r#"{"privileges": ["cluster_view"]}"#),
        )
        .await;
    assert!(r.status < 300, "{} {}", r.status, r.text);
    assert_eq!(
        env.calls(),
        calls(&[("PUT", &format!("/clusters/{CLUSTER_ID}/users/{BOB_ID}"))])
    );
    // Mixed case is not Onezone's legacy route: it goes to Onezone, which does not know it.
    env.clear();
    let r = env
        .post(
            &format!("/Groups/{GROUP_ID}/users/token"),
            Some(ALICE_TOKEN),
        )
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(env.calls().len(), 1);
}

fn base64_encode(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

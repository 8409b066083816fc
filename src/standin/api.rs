//! Routing and handlers: one request in, one [`Reply`] out, computed against the [`World`]
//! without any I/O, in the order Onezone's REST handler works:
//!
//! 1. the route (an unknown path or method is 404 `notFound`, whatever the credentials);
//! 2. authentication (a credential that is present but not valid is 401, even on public
//!    endpoints);
//! 3. the body: JSON with `content-type: application/json` (else 415), an object (else 400
//!    `malformedData`), an empty body counting as `{}`;
//! 4. the resource's existence, the client's authorization, then the body's values.

use http::{HeaderMap, Method};
use serde_json::{json, Map, Value};

use super::errors::{auth, ApiError};
use super::rules;
use super::world::{now, Kind, Subject, World};
use super::API_PREFIX;

/// An answer: status, optional `Location`, optional JSON body.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Reply {
    pub status: u16,
    pub location: Option<String>,
    pub body: Option<Value>,
}

impl Reply {
    fn json(status: u16, body: Value) -> Reply {
        Reply {
            status,
            location: None,
            body: Some(body),
        }
    }

    fn empty(status: u16) -> Reply {
        Reply {
            status,
            location: None,
            body: None,
        }
    }
}

impl From<ApiError> for Reply {
    fn from(e: ApiError) -> Reply {
        Reply::json(e.status, e.body)
    }
}

/// Whose tokens a `/user/...` or `/provider/...` tokens path is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    User,
    Provider,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route<'a> {
    /// `GET /configuration` outside the API prefix: no authentication at all.
    RootConfiguration,
    Configuration,
    CurrentUser,
    CreateNamed(Owner),
    CreateTemporary(Owner),
    ListNamed(Owner),
    GetNamed(&'a str),
    ModifyNamed(&'a str),
    DeleteNamed(&'a str),
    Examine,
    AddClusterUser {
        cluster: &'a str,
        user: &'a str,
    },
}

impl Route<'_> {
    fn takes_body(&self) -> bool {
        matches!(
            self,
            Route::CreateNamed(_)
                | Route::CreateTemporary(_)
                | Route::ModifyNamed(_)
                | Route::Examine
                | Route::AddClusterUser { .. }
        )
    }
}

/// The operations the stand-in serves. Everything else, the deprecated token endpoints
/// included, is not here and so answers 404.
fn route<'a>(method: &Method, path: &'a str) -> Option<Route<'a>> {
    if path == "/configuration" {
        return (method == Method::GET).then_some(Route::RootConfiguration);
    }
    let rest = path.strip_prefix(API_PREFIX)?.strip_prefix('/')?;
    let segments: Vec<&str> = rest.split('/').collect();
    if segments.iter().any(|s| s.is_empty()) {
        return None;
    }
    let owner = |s: &str| match s {
        "user" => Some(Owner::User),
        "provider" => Some(Owner::Provider),
        _ => None,
    };
    let route = match (method.as_str(), segments.as_slice()) {
        ("GET", ["configuration"]) => Route::Configuration,
        ("GET", ["user"]) => Route::CurrentUser,
        ("POST", [who, "tokens", "named"]) => Route::CreateNamed(owner(who)?),
        ("GET", [who, "tokens", "named"]) => Route::ListNamed(owner(who)?),
        ("POST", [who, "tokens", "temporary"]) => Route::CreateTemporary(owner(who)?),
        ("GET", ["tokens", "named", id]) => Route::GetNamed(id),
        ("PATCH", ["tokens", "named", id]) => Route::ModifyNamed(id),
        ("DELETE", ["tokens", "named", id]) => Route::DeleteNamed(id),
        ("POST", ["tokens", "examine"]) => Route::Examine,
        ("PUT", ["clusters", cluster, "users", user]) => Route::AddClusterUser { cluster, user },
        _ => return None,
    };
    Some(route)
}

/// Answers one request. `path` is the path without the query string.
pub(crate) fn handle(
    world: &mut World,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Reply {
    let Some(route) = route(method, path) else {
        return ApiError::not_found().into();
    };
    if route == Route::RootConfiguration {
        return Reply::json(200, configuration(world));
    }
    let client = match authenticate(world, headers) {
        Ok(client) => client,
        Err(e) => return e.into(),
    };
    let data = if route.takes_body() {
        match request_data(headers, body) {
            Ok(data) => data,
            Err(reply) => return reply,
        }
    } else {
        Map::new()
    };
    let result = match route {
        Route::RootConfiguration | Route::Configuration => {
            Ok(Reply::json(200, configuration(world)))
        }
        Route::CurrentUser => current_user(world, client.as_ref()),
        Route::CreateNamed(owner) => create_named(world, client.as_ref(), owner, &data),
        Route::CreateTemporary(owner) => create_temporary(world, client.as_ref(), owner, &data),
        Route::ListNamed(owner) => own_subject(client.as_ref(), owner)
            .map(|s| Reply::json(200, json!({ "tokens": world.named_ids(&s) }))),
        Route::GetNamed(id) => {
            manageable(world, client.as_ref(), id).map(|token| Reply::json(200, token))
        }
        Route::ModifyNamed(id) => modify_named(world, client.as_ref(), id, &data),
        Route::DeleteNamed(id) => manageable(world, client.as_ref(), id).map(|_| {
            world.delete_named(id);
            Reply::empty(204)
        }),
        Route::Examine => examine(world, &data),
        Route::AddClusterUser { cluster, user } => {
            add_cluster_user(world, client.as_ref(), cluster, user, &data)
        }
    };
    result.unwrap_or_else(Reply::from)
}

/// The client, in Onezone's order: `x-auth-token`, `authorization: Bearer`, `macaroon`, then
/// `authorization: Basic`; `None` (nobody) when there is no credential.
fn authenticate(world: &World, headers: &HeaderMap) -> Result<Option<Subject>, ApiError> {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let authorization = |scheme: &str| {
        let (given, rest) = text("authorization")?.split_once(' ')?;
        given.eq_ignore_ascii_case(scheme).then(|| rest.trim())
    };
    let token = text("x-auth-token")
        .or_else(|| authorization("bearer"))
        .or_else(|| text("macaroon"));
    let result = match (token, authorization("basic")) {
        (Some(token), _) => world.authenticate_token(token, now()),
        (None, Some(credentials)) => world.authenticate_basic(credentials),
        (None, None) => return Ok(None),
    };
    result.map(Some).map_err(ApiError::unauthorized_because)
}

/// The request body as a JSON object.
fn request_data(headers: &HeaderMap, body: &[u8]) -> Result<Map<String, Value>, Reply> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    let json_type = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"));
    if !json_type {
        // cowboy_rest's answer: no body.
        return Err(Reply::empty(415));
    }
    match serde_json::from_slice(body) {
        Ok(Value::Object(data)) => Ok(data),
        _ => Err(ApiError::malformed_data().into()),
    }
}

fn configuration(world: &World) -> Value {
    json!({
        "name": "Onezone stand-in",
        "domain": world.domain(),
        "version": "21.02.7",
        "build": "stand-in",
        "subdomainDelegationSupported": false,
        "compatibleOneproviderVersions": ["21.02.7"],
        "compatibilityRegistryRevision": 2024091700,
        "supportedIdPs": [],
        "availableSpaceTags": {},
    })
}

/// Nobody gets 401; anyone else who is not allowed gets 403.
fn denied(client: Option<&Subject>) -> ApiError {
    match client {
        None => ApiError::unauthorized(),
        Some(_) => ApiError::forbidden(),
    }
}

/// The subject a `/user/...` or `/provider/...` path acts for: the client itself, which
/// must be of that type. (Onezone reads these paths as the client's own id; a Oneprovider
/// asking for `/user/...` tokens is then refused as unauthorized for them: 403.)
fn own_subject(client: Option<&Subject>, owner: Owner) -> Result<Subject, ApiError> {
    match (client, owner) {
        (Some(s @ Subject::User(_)), Owner::User) => Ok(s.clone()),
        (Some(s @ Subject::Provider(_)), Owner::Provider) => Ok(s.clone()),
        (client, _) => Err(denied(client)),
    }
}

fn current_user(world: &World, client: Option<&Subject>) -> Result<Reply, ApiError> {
    match client {
        None => Err(ApiError::unauthorized()),
        Some(Subject::User(id)) => world
            .user_json(id)
            .map(|user| Reply::json(200, user))
            .ok_or_else(ApiError::not_found),
        // Onezone looks up a user with the Oneprovider's id, and there is none.
        Some(Subject::Provider(_)) => Err(ApiError::not_found()),
    }
}

fn create_named(
    world: &mut World,
    client: Option<&Subject>,
    owner: Owner,
    data: &Map<String, Value>,
) -> Result<Reply, ApiError> {
    let subject = own_subject(client, owner)?;
    let request = rules::named_request(world, &subject, data)?;
    let (id, token) = world.create_named(subject, request)?;
    Ok(Reply {
        status: 201,
        location: Some(format!(
            "https://{}{API_PREFIX}/tokens/named/{id}",
            world.domain()
        )),
        body: Some(json!({ "tokenId": id, "token": token })),
    })
}

fn create_temporary(
    world: &mut World,
    client: Option<&Subject>,
    owner: Owner,
    data: &Map<String, Value>,
) -> Result<Reply, ApiError> {
    let subject = own_subject(client, owner)?;
    let request = rules::temporary_request(world, &subject, data, now())?;
    let token = world.create_temporary(subject, request);
    Ok(Reply::json(201, json!({ "token": token })))
}

/// The named token `id` as JSON, when the client may manage it: 404 when there is no such
/// token (checked first, as Onezone fetches the token before authorizing), then 401 / 403.
fn manageable(world: &World, client: Option<&Subject>, id: &str) -> Result<Value, ApiError> {
    let token = world.named_token(id).ok_or_else(ApiError::not_found)?;
    match client {
        Some(client) if world.may_manage_token(client, &token.info.subject) => Ok(token.to_json()),
        client => Err(denied(client)),
    }
}

fn modify_named(
    world: &mut World,
    client: Option<&Subject>,
    id: &str,
    data: &Map<String, Value>,
) -> Result<Reply, ApiError> {
    manageable(world, client, id)?;
    let update = rules::token_update(data)?;
    world.modify_named(id, update)?;
    Ok(Reply::empty(204))
}

fn examine(world: &World, data: &Map<String, Value>) -> Result<Reply, ApiError> {
    let token = data
        .get("token")
        .ok_or_else(|| ApiError::missing_required_value("token"))?;
    // A string the stand-in never issued cannot be decoded, as a garbled token in Onezone.
    token
        .as_str()
        .and_then(|t| world.examine(t))
        .map(|examined| Reply::json(200, examined))
        .ok_or_else(|| ApiError::bad_value_token("token", auth::bad_token()))
}

/// `PUT /clusters/{id}/users/{uid}` (oz-worker's `cluster_logic_plugin`): a user adds only
/// themselves (with `cluster_add_user`), an admin adds anyone (`oz_clusters_add_relationships`
/// and `oz_users_add_relationships`), the Oneprovider adds anyone to its own cluster. Custom
/// privileges also need `cluster_set_privileges` (admins: `oz_clusters_set_privileges`).
/// A missing cluster is 404; a missing user is a bad value (400 `badValueIdNotFound`).
fn add_cluster_user(
    world: &mut World,
    client: Option<&Subject>,
    cluster: &str,
    user: &str,
    data: &Map<String, Value>,
) -> Result<Reply, ApiError> {
    if !world.cluster_exists(cluster) {
        return Err(ApiError::not_found());
    }
    let custom = data.contains_key("privileges");
    let allowed = match client {
        Some(Subject::User(me)) => {
            let as_self = me == user
                && world.has_privilege(Kind::Cluster, cluster, me, "cluster_add_user")
                && (!custom
                    || world.has_privilege(Kind::Cluster, cluster, me, "cluster_set_privileges"));
            let as_admin = world.has_admin_privilege(me, "oz_clusters_add_relationships")
                && world.has_admin_privilege(me, "oz_users_add_relationships")
                && (!custom || world.has_admin_privilege(me, "oz_clusters_set_privileges"));
            as_self || as_admin
        }
        Some(Subject::Provider(provider)) => provider == cluster,
        None => false,
    };
    if !allowed {
        return Err(denied(client));
    }
    if let Some(key) = data.keys().find(|k| k.as_str() != "privileges") {
        return Err(ApiError::unexpected_key(
            key,
            "the only property is \"privileges\"",
        ));
    }
    if !world.user_exists(user) {
        return Err(ApiError::bad_value_id_not_found("userId"));
    }
    let privileges = match data.get("privileges") {
        Some(requested) => rules::privileges(requested, Kind::Cluster)?,
        None => vec!["cluster_view".to_string()],
    };
    if world.is_member(Kind::Cluster, cluster, user) {
        return Err(ApiError::relation_already_exists(
            "user", user, "cluster", cluster,
        ));
    }
    world.add_cluster_member(cluster, user, privileges);
    Ok(Reply {
        status: 201,
        location: Some(format!(
            "https://{}{API_PREFIX}/clusters/{cluster}/users/{user}",
            world.domain()
        )),
        body: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::standin::demo::*;
    use http::{HeaderName, HeaderValue};

    fn call(
        world: &mut World,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Reply {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            let name = HeaderName::from_bytes(name.as_bytes()).unwrap();
            map.append(name, HeaderValue::from_str(value).unwrap());
        }
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        handle(world, &method, path, &map, body.as_bytes())
    }

    fn api(path: &str) -> String {
        format!("{API_PREFIX}{path}")
    }

    fn error_id(reply: &Reply) -> &str {
        reply
            .body
            .as_ref()
            .and_then(|b| b["error"]["id"].as_str())
            .unwrap_or("")
    }

    const ALICE: (&str, &str) = ("x-auth-token", ALICE_TOKEN);
    const BOB: (&str, &str) = ("x-auth-token", BOB_TOKEN);
    const PROVIDER: (&str, &str) = ("x-auth-token", PROVIDER_TOKEN);
    const JSON: (&str, &str) = ("content-type", "application/json");

    #[test]
    fn deprecated_endpoints_are_gone() {
        let mut world = World::demo();
        let gone = [
            ("POST", format!("/groups/{GROUP_ID}/users/token")),
            ("POST", format!("/clusters/{CLUSTER_ID}/users/token")),
            (
                "POST",
                "/user/clusters/provider_registration_token".to_string(),
            ),
            ("POST", "/user/client_tokens".to_string()),
            ("GET", "/user/client_tokens".to_string()),
            ("DELETE", format!("/user/client_tokens/{ALICE_TOKEN}")),
            ("PUT", "/user/tokens/named".to_string()),
            ("GET", "/tokens/named/".to_string()),
        ];
        for (method, path) in gone {
            let reply = call(&mut world, method, &api(&path), &[ALICE], "");
            assert_eq!(
                (reply.status, error_id(&reply)),
                (404, "notFound"),
                "{method} {path}"
            );
        }
        // Outside the prefix, only /configuration exists.
        let reply = call(&mut world, "GET", "/user", &[ALICE], "");
        assert_eq!(reply.status, 404);
    }

    #[test]
    fn credentials_are_read_in_onezone_order() {
        let mut world = World::demo();
        let who = |world: &mut World, headers: &[(&str, &str)]| {
            let reply = call(world, "GET", &api("/user"), headers, "");
            reply.body.map(|b| b["userId"].clone()).unwrap_or_default()
        };
        let bearer_alice = (
            "authorization",
            "Bearer MDAx74tdp0rAQL30MYuLWFMSqLsuXMHsSXd5AT5dMAzEfx1WZnTmYaQBpWhPFHqV",
        );
        assert_eq!(who(&mut world, &[BOB, bearer_alice]), BOB_ID);
        assert_eq!(
            who(&mut world, &[bearer_alice, ("macaroon", BOB_TOKEN)]),
            ALICE_ID
        );
        assert_eq!(who(&mut world, &[("macaroon", BOB_TOKEN)]), BOB_ID);
        assert_eq!(
            who(
                &mut world,
                &[("authorization", "Basic YWxpY2U6cGFzc3dvcmQ=")]
            ),
            ALICE_ID
        );

        let nobody = call(&mut world, "GET", &api("/user"), &[], "");
        assert_eq!((nobody.status, error_id(&nobody)), (401, "unauthorized"));
        assert!(nobody.body.unwrap()["error"].get("details").is_none());

        let bad = call(
            &mut world,
            "GET",
            &api("/user"),
            &[("x-auth-token", "MDAxnope")],
            "",
        );
        assert_eq!((bad.status, error_id(&bad)), (401, "unauthorized"));
        assert_eq!(
            bad.body.unwrap()["error"]["details"]["authError"]["id"],
            "tokenInvalid"
        );

        let basic = call(
            &mut world,
            "GET",
            &api("/user"),
            &[("authorization", "Basic YWxpY2U6eA==")],
            "",
        );
        assert_eq!(
            basic.body.unwrap()["error"]["details"]["authError"]["id"],
            "badBasicCredentials"
        );
    }

    #[test]
    fn a_bad_credential_fails_even_public_calls() {
        let mut world = World::demo();
        let body = format!(r#"{{"token":"{BOB_TOKEN}"}}"#);
        let reply = call(
            &mut world,
            "POST",
            &api("/tokens/examine"),
            &[("x-auth-token", "junk"), JSON],
            &body,
        );
        assert_eq!(reply.status, 401);
        let reply = call(&mut world, "POST", &api("/tokens/examine"), &[JSON], &body);
        assert_eq!(reply.status, 200);
        // Except the root configuration page, which does not authenticate at all.
        let reply = call(
            &mut world,
            "GET",
            "/configuration",
            &[("x-auth-token", "junk")],
            "",
        );
        assert_eq!(reply.status, 200);
        assert_eq!(reply.body.unwrap()["version"], "21.02.7");
    }

    #[test]
    fn bodies_must_be_json_objects() {
        let mut world = World::demo();
        let path = api("/user/tokens/named");
        let reply = call(
            &mut world,
            "POST",
            &path,
            &[ALICE, ("content-type", "text/plain")],
            r#"{"name":"t1"}"#,
        );
        assert_eq!((reply.status, reply.body), (415, None));
        let reply = call(&mut world, "POST", &path, &[ALICE], r#"{"name":"t1"}"#);
        assert_eq!(reply.status, 415, "a body without a content type");
        for body in ["[1]", "\"x\"", "{", "name=t1"] {
            let reply = call(&mut world, "POST", &path, &[ALICE, JSON], body);
            assert_eq!(
                (reply.status, error_id(&reply)),
                (400, "malformedData"),
                "{body}"
            );
        }
        let reply = call(&mut world, "POST", &path, &[ALICE], "");
        assert_eq!(
            error_id(&reply),
            "missingRequiredValue",
            "an empty body is {{}}"
        );
        let reply = call(
            &mut world,
            "POST",
            &path,
            &[ALICE, ("content-type", "application/json; charset=utf-8")],
            r#"{"name":"t1"}"#,
        );
        assert_eq!(reply.status, 201);
    }

    #[test]
    fn token_paths_belong_to_the_client_type() {
        let mut world = World::demo();
        let body = r#"{"name":"t1"}"#;
        for (path, allowed) in [
            ("/user/tokens/named", ALICE),
            ("/provider/tokens/named", PROVIDER),
        ] {
            let other = if allowed == ALICE { PROVIDER } else { ALICE };
            let reply = call(&mut world, "POST", &api(path), &[other, JSON], body);
            assert_eq!(
                (reply.status, error_id(&reply)),
                (403, "forbidden"),
                "{path}"
            );
            let reply = call(&mut world, "POST", &api(path), &[JSON], body);
            assert_eq!(
                (reply.status, error_id(&reply)),
                (401, "unauthorized"),
                "{path}"
            );
            let reply = call(&mut world, "GET", &api(path), &[other], "");
            assert_eq!(reply.status, 403, "{path}");
            let reply = call(&mut world, "POST", &api(path), &[allowed, JSON], body);
            assert_eq!(reply.status, 201, "{path}");
        }
    }

    #[test]
    fn created_named_tokens_have_an_absolute_location() {
        let mut world = World::demo();
        let reply = call(
            &mut world,
            "POST",
            &api("/user/tokens/named"),
            &[BOB, JSON],
            r#"{"name":"t1"}"#,
        );
        assert_eq!(reply.status, 201);
        let body = reply.body.unwrap();
        let id = body["tokenId"].as_str().unwrap();
        assert_eq!(
            reply.location.as_deref(),
            Some(format!("https://onezone.local/api/v3/onezone/tokens/named/{id}").as_str())
        );
        assert_eq!(body.as_object().unwrap().len(), 2);

        let list = call(&mut world, "GET", &api("/user/tokens/named"), &[BOB], "");
        let ids = list.body.unwrap()["tokens"].clone();
        assert!(ids.as_array().unwrap().contains(&json!(id)));

        let temporary = format!(
            r#"{{"caveats":[{{"type":"time","validUntil":{}}}]}}"#,
            now() + 600
        );
        let reply = call(
            &mut world,
            "POST",
            &api("/user/tokens/temporary"),
            &[BOB, JSON],
            &temporary,
        );
        assert_eq!((reply.status, reply.location), (201, None));
        let token = reply.body.unwrap()["token"].as_str().unwrap().to_string();
        let examined = call(
            &mut world,
            "POST",
            &api("/tokens/examine"),
            &[JSON],
            &format!(r#"{{"token":"{token}"}}"#),
        );
        assert_eq!(examined.body.unwrap()["persistence"], "temporary");
    }

    #[test]
    fn named_tokens_by_id_are_for_their_owner() {
        let mut world = World::demo();
        let created = call(
            &mut world,
            "POST",
            &api("/user/tokens/named"),
            &[BOB, JSON],
            r#"{"name":"t1"}"#,
        );
        let id = created.body.unwrap()["tokenId"]
            .as_str()
            .unwrap()
            .to_string();
        let path = api(&format!("/tokens/named/{id}"));
        let missing = api("/tokens/named/0123456789abcdef0123456789abcdef");

        assert_eq!(
            call(&mut world, "GET", &missing, &[], "").status,
            404,
            "existence first"
        );
        assert_eq!(call(&mut world, "GET", &path, &[], "").status, 401);
        assert_eq!(call(&mut world, "GET", &path, &[ALICE], "").status, 403);
        assert_eq!(call(&mut world, "DELETE", &path, &[ALICE], "").status, 403);
        let got = call(&mut world, "GET", &path, &[BOB], "");
        assert_eq!(got.status, 200);
        assert_eq!(got.body.unwrap()["name"], "t1");

        let patch = call(
            &mut world,
            "PATCH",
            &path,
            &[BOB, JSON],
            r#"{"revoked":true}"#,
        );
        assert_eq!(patch.status, 204);
        assert_eq!(world.named_token(&id).map(|t| t.revoked), Some(true));

        let deleted = call(&mut world, "DELETE", &path, &[BOB], "");
        assert_eq!((deleted.status, deleted.body), (204, None));
        assert_eq!(call(&mut world, "GET", &path, &[BOB], "").status, 404);
    }

    #[test]
    fn examine_reads_only_tokens_it_issued() {
        let mut world = World::demo();
        let reply = call(
            &mut world,
            "POST",
            &api("/tokens/examine"),
            &[JSON],
            &format!(r#"{{"token":"{PROVIDER_TOKEN}"}}"#),
        );
        let examined = reply.body.unwrap();
        assert_eq!(
            examined["subject"],
            json!({ "type": "oneprovider", "id": PROVIDER_ID })
        );
        assert_eq!(examined["type"], json!({ "accessToken": {} }));
        assert_eq!(examined["onezoneDomain"], "onezone.local");

        let reply = call(
            &mut world,
            "POST",
            &api("/tokens/examine"),
            &[JSON],
            r#"{"token":"garbage"}"#,
        );
        assert_eq!((reply.status, error_id(&reply)), (400, "badValueToken"));
        assert_eq!(
            reply.body.unwrap()["error"]["details"]["tokenError"]["id"],
            "badToken"
        );
        let reply = call(&mut world, "POST", &api("/tokens/examine"), &[JSON], "{}");
        assert_eq!(error_id(&reply), "missingRequiredValue");
    }

    #[test]
    fn current_user_is_for_users() {
        let mut world = World::demo();
        let alice = call(&mut world, "GET", &api("/user"), &[ALICE], "")
            .body
            .unwrap();
        assert_eq!(alice["userId"], ALICE_ID);
        assert_eq!(alice["fullName"], "Alice Admin");
        assert_eq!(alice["basicAuthEnabled"], true);
        let reply = call(&mut world, "GET", &api("/user"), &[PROVIDER], "");
        assert_eq!((reply.status, error_id(&reply)), (404, "notFound"));
    }

    #[test]
    fn adding_a_user_to_a_cluster() {
        let mut world = World::demo();
        let bob_in = api(&format!("/clusters/{CLUSTER_ID}/users/{BOB_ID}"));
        let not_a_cluster = api(&format!("/clusters/{GROUP_ID}/users/{BOB_ID}"));
        let reply = call(&mut world, "PUT", &not_a_cluster, &[PROVIDER], "");
        assert_eq!(reply.status, 404);
        assert_eq!(call(&mut world, "PUT", &bob_in, &[], "").status, 401);
        // alice may add only herself (and she is a member already).
        assert_eq!(call(&mut world, "PUT", &bob_in, &[ALICE], "").status, 403);
        let again = call(
            &mut world,
            "PUT",
            &api(&format!("/clusters/{CLUSTER_ID}/users/{ALICE_ID}")),
            &[ALICE],
            "",
        );
        assert_eq!(
            (again.status, error_id(&again)),
            (409, "relationAlreadyExists")
        );

        let bad = call(
            &mut world,
            "PUT",
            &bob_in,
            &[PROVIDER, JSON],
            r#"{"privileges":["space_view"]}"#,
        );
        assert_eq!(error_id(&bad), "badValueListNotAllowed");
        let unknown_user = api(&format!(
            "/clusters/{CLUSTER_ID}/users/0123456789abcdef0123456789abcdef"
        ));
        let reply = call(&mut world, "PUT", &unknown_user, &[PROVIDER], "");
        assert_eq!(
            (reply.status, error_id(&reply)),
            (400, "badValueIdNotFound")
        );

        let added = call(
            &mut world,
            "PUT",
            &bob_in,
            &[PROVIDER, JSON],
            r#"{"privileges":["cluster_view","cluster_add_user"]}"#,
        );
        assert_eq!((added.status, added.body), (201, None));
        assert_eq!(
            added.location.as_deref(),
            Some(
                format!(
                    "https://onezone.local/api/v3/onezone/clusters/{CLUSTER_ID}/users/{BOB_ID}"
                )
                .as_str()
            )
        );
        assert!(world.has_privilege(Kind::Cluster, CLUSTER_ID, BOB_ID, "cluster_add_user"));
        assert_eq!(
            call(&mut world, "PUT", &bob_in, &[PROVIDER], "").status,
            409
        );
    }
}

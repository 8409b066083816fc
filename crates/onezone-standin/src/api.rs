//! Routing and handlers: one request in, one [`Reply`] out, computed against the [`World`]
//! without any I/O, in the order Onezone's REST layer works (cowboy 2.9's `cowboy_rest` state
//! machine calling oz-worker's `rest_handler`, then `entity_logic`):
//!
//! 1. every answer carries `access-control-allow-origin: *` (`rest_handler:init/2` calls
//!    `http_cors:allow_origin(<<"*">>)`); a 204 carries `content-type: application/json`
//!    (both are written by `mod.rs`);
//! 2. the route, by path first (`cowboy_router`: segments percent-decoded, dot segments
//!    resolved; an unknown path is 404 `notFound`), then by method: a method the path does
//!    not list, compared case-sensitively, is 405 with `allow` and no body, before any
//!    authentication (`cowboy_rest.erl:355-361`). HEAD, OPTIONS and lowercase methods are 405
//!    too (Onezone answers them with an empty 500, a crash in `binary_to_method/1`, which is
//!    not modeled);
//! 3. authentication (`rest_handler:is_authorized/2`, lines 149-180): a credential that is
//!    present but not valid is 401 with `authError`, even on public endpoints; none at all
//!    is nobody;
//! 4. `Accept`: when present, it must accept `application/json` (else 406, no body;
//!    `cowboy_rest.erl:582-602`);
//! 5. for POST, PUT and PATCH only, a non-empty body needs `content-type: application/json`
//!    exactly, without parameters (else 415, no body; `rest_handler.erl:112-116`,
//!    `cowboy_rest.erl:1079-1092`); GET and DELETE never read the body;
//! 6. for POST, PUT and PATCH, the body is parsed: empty is `{}`, anything that is not JSON
//!    (whitespace only included) is 400 `malformedData` (`rest_handler:get_data/1`);
//! 7. the entity logic: the resource's existence (404, also for nobody), the client's
//!    authorization (nobody 401, others 403), then the data: JSON that is not an object is
//!    400 `malformedData` here (`entity_logic_sanitizer.erl:169-173`), then the values.

use std::sync::OnceLock;

use http::{HeaderMap, Method};
use serde_json::{json, Map, Value};

use super::errors::{auth, ApiError};
use super::legacy::{self, Invite};
use super::rules::{self, Target};
use super::world::{now, Kind, Subject, World, ONEZONE_CLUSTER};
use super::API_PREFIX;

/// An answer: status, optional `Location`, optional `Allow` (405), optional JSON body.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Reply {
    pub status: u16,
    pub location: Option<String>,
    pub allow: Option<String>,
    pub body: Option<Value>,
}

impl Reply {
    pub(crate) fn json(status: u16, body: Value) -> Reply {
        Reply {
            status,
            location: None,
            allow: None,
            body: Some(body),
        }
    }

    pub(crate) fn empty(status: u16) -> Reply {
        Reply {
            status,
            location: None,
            allow: None,
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

/// What a route does for one method. Path parameters come in template order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Configuration,
    CurrentUser,
    CreateNamed(Owner),
    CreateTemporary(Owner),
    ListNamed(Owner),
    GetNamed,
    ModifyNamed,
    DeleteNamed,
    Examine,
    AddClusterUser,
    GetGroup,
    GetSpace,
    GetHarvester,
    GetCluster,
    GetProvider,
    Invite(&'static Invite),
    CreateClientToken,
    ListClientTokens,
    DeleteClientToken,
}

/// One path template and the methods it serves, sorted as Onezone lists them in `allow`
/// (the keys of an Erlang map of method atoms: alphabetical).
struct Route {
    /// Literal segments, `None` for a `{param}`.
    segments: Vec<Option<&'static str>>,
    /// Served only while [`World::serve_legacy`] is on.
    legacy: bool,
    methods: Vec<(&'static str, Op)>,
}

impl Route {
    fn new(template: &'static str, legacy: bool, mut methods: Vec<(&'static str, Op)>) -> Route {
        methods.sort_by_key(|(method, _)| *method);
        let segments = template
            .trim_start_matches('/')
            .split('/')
            .map(|s| (!s.starts_with('{')).then_some(s))
            .collect();
        Route {
            segments,
            legacy,
            methods,
        }
    }

    /// The path parameters, if `path` (decoded segments below the prefix) is this route's.
    fn matches<'p>(&self, path: &'p [String]) -> Option<Vec<&'p str>> {
        if path.len() != self.segments.len() {
            return None;
        }
        let mut params = Vec::new();
        for (template, segment) in self.segments.iter().zip(path) {
            match template {
                None => params.push(segment.as_str()),
                Some(literal) if literal == segment => {}
                Some(_) => return None,
            }
        }
        Some(params)
    }

    fn allow(&self) -> String {
        let methods: Vec<&str> = self.methods.iter().map(|(m, _)| *m).collect();
        methods.join(", ")
    }
}

/// The routes the stand-in serves below the API prefix, first match wins (as in cowboy's
/// router). The legacy routes come first: in Onezone `/clusters/:id/users/token` is listed
/// before `/clusters/:id/users/:uid` (`cluster_routes.erl:74,86`). With the legacy routes
/// off their paths fall through to whatever else matches, as on a Onezone without them.
fn routes() -> &'static [Route] {
    static ROUTES: OnceLock<Vec<Route>> = OnceLock::new();
    ROUTES.get_or_init(|| {
        use Op::*;
        let mut routes: Vec<Route> = legacy::INVITES
            .iter()
            .map(|invite| Route::new(invite.template, true, vec![("POST", Invite(invite))]))
            .collect();
        routes.extend([
            Route::new(
                legacy::CLIENT_TOKENS,
                true,
                vec![("POST", CreateClientToken), ("GET", ListClientTokens)],
            ),
            Route::new(
                legacy::CLIENT_TOKEN,
                true,
                vec![("DELETE", DeleteClientToken)],
            ),
            Route::new("/configuration", false, vec![("GET", Configuration)]),
            Route::new("/user", false, vec![("GET", CurrentUser)]),
        ]);
        for (who, owner) in [("user", Owner::User), ("provider", Owner::Provider)] {
            let (named, temporary) = match who {
                "user" => ("/user/tokens/named", "/user/tokens/temporary"),
                _ => ("/provider/tokens/named", "/provider/tokens/temporary"),
            };
            routes.push(Route::new(
                named,
                false,
                vec![("POST", CreateNamed(owner)), ("GET", ListNamed(owner))],
            ));
            routes.push(Route::new(
                temporary,
                false,
                vec![("POST", CreateTemporary(owner))],
            ));
        }
        routes.extend([
            Route::new(
                "/tokens/named/{id}",
                false,
                vec![
                    ("GET", GetNamed),
                    ("PATCH", ModifyNamed),
                    ("DELETE", DeleteNamed),
                ],
            ),
            Route::new("/tokens/examine", false, vec![("POST", Examine)]),
            Route::new("/groups/{id}", false, vec![("GET", GetGroup)]),
            Route::new("/spaces/{id}", false, vec![("GET", GetSpace)]),
            Route::new("/harvesters/{id}", false, vec![("GET", GetHarvester)]),
            Route::new("/clusters/{id}", false, vec![("GET", GetCluster)]),
            Route::new(
                "/clusters/{id}/users/{uid}",
                false,
                vec![("PUT", AddClusterUser)],
            ),
            Route::new("/providers/{id}", false, vec![("GET", GetProvider)]),
        ]);
        routes
    })
}

/// Splits a path into segments as `cowboy_router:split_path/1` does: percent-decoded, `.`
/// dropped, `..` removing the segment before it, one trailing `/` ignored. `None` for a path
/// cowboy refuses (400): not starting with `/`, or a malformed `%` escape.
fn split_path(path: &str) -> Option<Vec<String>> {
    let rest = path.strip_prefix('/')?;
    let mut out: Vec<String> = Vec::new();
    if rest.is_empty() {
        return Some(out);
    }
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    for raw in rest.split('/') {
        let segment = percent_decode(raw)?;
        match segment.as_str() {
            "." => {}
            ".." => {
                out.pop();
            }
            _ => out.push(segment),
        }
    }
    Some(out)
}

fn percent_decode(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    // An id that is not UTF-8 names nothing in the world either way.
    Some(String::from_utf8_lossy(&out).into_owned())
}

/// Answers one request. `path` is the path without the query string.
pub(crate) fn handle(
    world: &mut World,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Reply {
    let Some(segments) = split_path(path) else {
        // cowboy_router's `badrequest`: an empty 400.
        return Reply::empty(400);
    };
    // `GET /configuration` outside the prefix is not a REST route: no authentication at all.
    if segments == ["configuration"] {
        return match method.as_str() {
            "GET" => Reply::json(200, configuration(world)),
            _ => ApiError::not_found().into(),
        };
    }
    let prefix = API_PREFIX.split('/').filter(|s| !s.is_empty());
    let prefix_len = prefix.clone().count();
    let in_prefix = segments.len() >= prefix_len && prefix.zip(&segments).all(|(p, s)| p == s);
    let found = in_prefix.then(|| &segments[prefix_len..]).and_then(|rest| {
        routes()
            .iter()
            .filter(|r| !r.legacy || world.serves_legacy())
            .find_map(|r| r.matches(rest).map(|params| (r, params)))
    });
    let Some((route, params)) = found else {
        return ApiError::not_found().into();
    };
    // cowboy_rest.erl:355-361: 405 with the route's methods, before authentication.
    let Some(&(_, op)) = route.methods.iter().find(|(m, _)| *m == method.as_str()) else {
        return Reply {
            allow: Some(route.allow()),
            ..Reply::empty(405)
        };
    };
    // rest_handler.erl:149-180: a credential present but not valid is 401 here.
    let client = match authenticate(world, headers) {
        Ok(client) => client,
        Err(e) => return e.into(),
    };
    // cowboy_rest.erl:582-602: the answer is JSON, so Accept must allow it.
    if !accepts_json(headers) {
        return Reply::empty(406);
    }
    // cowboy_rest calls content_types_accepted and the handler reads the body only for
    // POST, PUT and PATCH; for GET and DELETE the body is never looked at.
    let data = if matches!(method.as_str(), "POST" | "PUT" | "PATCH") {
        match request_data(headers, body) {
            Ok(data) => data,
            Err(bad) => return bad.into(),
        }
    } else {
        json!({})
    };
    let client = client.as_ref();
    let param = |i: usize| params.get(i).copied().unwrap_or_default();
    let result = match op {
        Op::Configuration => Ok(Reply::json(200, configuration(world))),
        Op::CurrentUser => current_user(world, client),
        Op::CreateNamed(owner) => create_named(world, client, owner, &data),
        Op::CreateTemporary(owner) => create_temporary(world, client, owner, &data),
        Op::ListNamed(owner) => own_subject(client, owner)
            .map(|s| Reply::json(200, json!({ "tokens": world.named_ids(&s) }))),
        Op::GetNamed => manageable(world, client, param(0)).map(|token| Reply::json(200, token)),
        Op::ModifyNamed => modify_named(world, client, param(0), &data),
        Op::DeleteNamed => manageable(world, client, param(0)).map(|_| {
            world.delete_named(param(0));
            Reply::empty(204)
        }),
        Op::Examine => examine(world, &data),
        Op::AddClusterUser => add_cluster_user(world, client, param(0), param(1), &data),
        Op::GetGroup => read_entity(world, client, Kind::Group, param(0)),
        Op::GetSpace => read_entity(world, client, Kind::Space, param(0)),
        Op::GetHarvester => read_entity(world, client, Kind::Harvester, param(0)),
        Op::GetCluster => read_entity(world, client, Kind::Cluster, param(0)),
        Op::GetProvider => read_provider(world, client, param(0)),
        Op::Invite(invite) => {
            legacy::create_invite(world, client, invite, params.first().copied(), &data)
        }
        Op::CreateClientToken => legacy::create_client_token(world, client, &data),
        Op::ListClientTokens => legacy::list_client_tokens(world, client),
        Op::DeleteClientToken => legacy::delete_client_token(world, client, param(0)),
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

/// Whether the `Accept` headers (if any) admit `application/json`: some media range is
/// `application/json`, `application/*` or `*/*` without `q=0`. Other parameters are ignored.
fn accepts_json(headers: &HeaderMap) -> bool {
    let mut values = headers.get_all(http::header::ACCEPT).iter().peekable();
    if values.peek().is_none() {
        return true;
    }
    values
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|range| {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or_default().to_ascii_lowercase();
            let excluded = parts.any(|p| {
                p.split_once('=').is_some_and(|(k, v)| {
                    k.trim().eq_ignore_ascii_case("q")
                        && v.trim().parse::<f64>().is_ok_and(|q| q <= 0.0)
                })
            });
            matches!(media.as_str(), "application/json" | "application/*" | "*/*") && !excluded
        })
}

/// The request body as JSON (any JSON: whether it is an object is checked later, by the
/// operation, see [`object`]).
fn request_data(headers: &HeaderMap, body: &[u8]) -> Result<Value, BadBody> {
    // An empty body accepts any content type and is `{}` (rest_handler.erl:112-116, 439).
    if body.is_empty() {
        return Ok(json!({}));
    }
    // With a body, only the binary <<"application/json">> is accepted: that type exactly,
    // no parameters; a missing content-type does not match (cowboy_rest.erl:1079-1092).
    let json_type = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"));
    if !json_type {
        return Err(BadBody::UnsupportedType);
    }
    // jiffy refuses anything that is not one JSON value, whitespace only included.
    serde_json::from_slice(body).map_err(|_| BadBody::Malformed)
}

/// Why a body was refused before the entity logic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BadBody {
    /// 415, cowboy_rest's answer: no body.
    UnsupportedType,
    /// 400 `malformedData`.
    Malformed,
}

impl From<BadBody> for Reply {
    fn from(bad: BadBody) -> Reply {
        match bad {
            BadBody::UnsupportedType => Reply::empty(415),
            BadBody::Malformed => ApiError::malformed_data().into(),
        }
    }
}

/// The request data as an object, checked when an operation validates its data, that is
/// after the entity's existence and the client's authorization
/// (`entity_logic_sanitizer.erl:169-173`).
pub(super) fn object(data: &Value) -> Result<&Map<String, Value>, ApiError> {
    data.as_object().ok_or_else(ApiError::malformed_data)
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

/// Nobody gets 401; anyone else who is not allowed gets 403 (entity_logic.erl:475-480).
pub(super) fn denied(client: Option<&Subject>) -> ApiError {
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
    data: &Value,
) -> Result<Reply, ApiError> {
    let subject = own_subject(client, owner)?;
    let request = rules::named_request(world, &subject, object(data)?)?;
    let (id, token) = world.create_named(subject, request)?;
    Ok(Reply {
        status: 201,
        location: Some(format!(
            "https://{}{API_PREFIX}/tokens/named/{id}",
            world.domain()
        )),
        ..Reply::json(201, json!({ "tokenId": id, "token": token }))
    })
}

fn create_temporary(
    world: &mut World,
    client: Option<&Subject>,
    owner: Owner,
    data: &Value,
) -> Result<Reply, ApiError> {
    let subject = own_subject(client, owner)?;
    let request = rules::temporary_request(world, &subject, object(data)?, now())?;
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
    data: &Value,
) -> Result<Reply, ApiError> {
    manageable(world, client, id)?;
    let update = rules::token_update(object(data)?)?;
    world.modify_named(id, update)?;
    Ok(Reply::empty(204))
}

/// `POST /tokens/examine`: public, no entity to fetch, so the data comes first.
fn examine(world: &World, data: &Value) -> Result<Reply, ApiError> {
    let token = object(data)?
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
    data: &Value,
) -> Result<Reply, ApiError> {
    if !world.cluster_exists(cluster) {
        return Err(ApiError::not_found());
    }
    // Onezone's authorize clauses match `data = #{<<"privileges">> := _}` or `data = _`, so
    // data that is not an object authorizes as one without privileges
    // (cluster_logic_plugin.erl:402-405, 534-537) and fails validation after.
    let custom = data.get("privileges").is_some();
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
    let data = object(data)?;
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
        location: Some(format!(
            "https://{}{API_PREFIX}/clusters/{cluster}/users/{user}",
            world.domain()
        )),
        ..Reply::empty(201)
    })
}

/// The admin privilege that lets anyone read an entity of `kind`.
fn admin_view(kind: Kind) -> &'static str {
    match kind {
        Kind::Group => "oz_groups_view",
        Kind::Space => "oz_spaces_view",
        Kind::Cluster => "oz_clusters_view",
        Kind::Harvester => "oz_harvesters_view",
    }
}

/// `GET /groups|spaces|harvesters|clusters/{id}`, the protected data Onezone shows members:
/// the entity must exist (404), then the client must be a member (any privileges), an admin
/// with `oz_<kind>s_view`, or, for a cluster, its own Oneprovider (e.g.
/// cluster_logic_plugin.erl:424-425, 439-458, 550-551); nobody is 401, others 403. Only
/// direct membership counts (the world has no other).
fn read_entity(
    world: &World,
    client: Option<&Subject>,
    kind: Kind,
    id: &str,
) -> Result<Reply, ApiError> {
    if !world.target_exists(Target::Entity(kind), id) {
        return Err(ApiError::not_found());
    }
    let allowed = match client {
        Some(Subject::User(user)) => {
            world.is_member(kind, id, user) || world.has_admin_privilege(user, admin_view(kind))
        }
        Some(Subject::Provider(provider)) => kind == Kind::Cluster && provider == id,
        None => false,
    };
    if !allowed {
        return Err(denied(client));
    }
    let name = world.name_of(kind, id).unwrap_or_default();
    let body = match kind {
        Kind::Group => json!({ "groupId": id, "name": name, "type": "team" }),
        Kind::Space => json!({ "spaceId": id, "name": name }),
        Kind::Harvester => json!({ "harvesterId": id, "name": name }),
        // Onezone's clusters have no name: a Oneprovider's cluster is named by its provider.
        Kind::Cluster if id == ONEZONE_CLUSTER => {
            json!({ "clusterId": id, "type": "onezone", "serviceId": id })
        }
        Kind::Cluster => json!({ "clusterId": id, "type": "oneprovider", "serviceId": id }),
    };
    Ok(Reply::json(200, body))
}

/// `GET /providers/{id}`, kept simple: the Oneprovider itself, a member of its cluster, or an
/// admin with `oz_providers_view` may read its id and name; nobody is 401, others 403.
fn read_provider(world: &World, client: Option<&Subject>, id: &str) -> Result<Reply, ApiError> {
    if !world.provider_exists(id) {
        return Err(ApiError::not_found());
    }
    let allowed = match client {
        Some(Subject::Provider(provider)) => provider == id,
        Some(Subject::User(user)) => {
            world.is_member(Kind::Cluster, id, user)
                || world.has_admin_privilege(user, "oz_providers_view")
        }
        None => false,
    };
    if !allowed {
        return Err(denied(client));
    }
    let name = world.name_of(Kind::Cluster, id).unwrap_or_default();
    Ok(Reply::json(200, json!({ "providerId": id, "name": name })))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::demo::*;
    use http::{HeaderName, HeaderValue};

    pub(crate) fn call(
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

    pub(crate) fn api(path: &str) -> String {
        format!("{API_PREFIX}{path}")
    }

    pub(crate) fn error_id(reply: &Reply) -> &str {
        reply
            .body
            .as_ref()
            .and_then(|b| b["error"]["id"].as_str())
            .unwrap_or("")
    }

    pub(crate) const ALICE: (&str, &str) = ("x-auth-token", ALICE_TOKEN);
    pub(crate) const BOB: (&str, &str) = ("x-auth-token", BOB_TOKEN);
    pub(crate) const PROVIDER: (&str, &str) = ("x-auth-token", PROVIDER_TOKEN);
    pub(crate) const JSON: (&str, &str) = ("content-type", "application/json");
    const BAD: (&str, &str) = ("x-auth-token", "MDAxnope");

    #[test]
    fn deprecated_endpoints_are_gone_by_default() {
        let mut world = World::demo();
        let gone = [
            ("POST", format!("/groups/{GROUP_ID}/users/token")),
            (
                "POST",
                "/user/clusters/provider_registration_token".to_string(),
            ),
            ("POST", "/user/client_tokens".to_string()),
            ("GET", "/user/client_tokens".to_string()),
            ("DELETE", format!("/user/client_tokens/{ALICE_TOKEN}")),
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
        // Without its legacy route, this path is `/clusters/{id}/users/{uid}` with the user
        // "token", which takes only PUT.
        let reply = call(
            &mut world,
            "POST",
            &api(&format!("/clusters/{CLUSTER_ID}/users/token")),
            &[ALICE],
            "",
        );
        assert_eq!((reply.status, reply.allow.as_deref()), (405, Some("PUT")));
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
        // Only the exact type: parameters make it another one for cowboy_rest.
        let reply = call(
            &mut world,
            "POST",
            &path,
            &[ALICE, ("content-type", "application/json; charset=utf-8")],
            r#"{"name":"t1"}"#,
        );
        assert_eq!((reply.status, reply.body), (415, None));
        let reply = call(
            &mut world,
            "POST",
            &path,
            &[ALICE, ("content-type", "Application/JSON")],
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

    /// A named token of bob's; returns its id.
    fn bobs_token(world: &mut World, name: &str) -> String {
        let created = call(
            world,
            "POST",
            &api("/user/tokens/named"),
            &[BOB, JSON],
            &format!(r#"{{"name":"{name}"}}"#),
        );
        created.body.unwrap()["tokenId"]
            .as_str()
            .unwrap()
            .to_string()
    }

    #[test]
    fn other_methods_are_405_with_allow_before_authentication() {
        let mut world = World::demo();
        let named = api("/tokens/named/0123456789abcdef0123456789abcdef");
        let cases = [
            ("POST", api("/user"), "GET"),
            ("PUT", api("/user/tokens/named"), "GET, POST"),
            ("post", api("/user/tokens/named"), "GET, POST"),
            ("Get", api("/user"), "GET"),
            ("HEAD", api("/user"), "GET"),
            ("OPTIONS", named.clone(), "DELETE, GET, PATCH"),
            ("PUT", named.clone(), "DELETE, GET, PATCH"),
            ("GET", api("/tokens/examine"), "POST"),
            ("DELETE", api(&format!("/groups/{GROUP_ID}")), "GET"),
        ];
        for (method, path, allow) in cases {
            for headers in [&[][..], &[BAD][..], &[ALICE][..]] {
                let reply = call(&mut world, method, &path, headers, "{");
                assert_eq!(
                    (reply.status, reply.allow.as_deref(), &reply.body),
                    (405, Some(allow), &None),
                    "{method} {path} {headers:?}"
                );
            }
        }
        // An unknown path is 404 whatever the method and credentials.
        let reply = call(&mut world, "PUT", &api("/nothing/here"), &[BAD], "");
        assert_eq!((reply.status, error_id(&reply)), (404, "notFound"));
        assert_eq!(reply.allow, None);
    }

    #[test]
    fn a_bad_credential_is_401_before_404_406_415_and_400() {
        let mut world = World::demo();
        let missing = api("/tokens/named/0123456789abcdef0123456789abcdef");
        let cases = [
            ("GET", missing.clone(), vec![BAD], ""),
            ("PATCH", missing.clone(), vec![BAD, JSON], "{"),
            ("GET", api("/user"), vec![BAD, ("accept", "text/html")], ""),
            (
                "POST",
                api("/user/tokens/named"),
                vec![BAD, ("content-type", "text/plain")],
                "x",
            ),
            ("POST", api("/user/tokens/named"), vec![BAD, JSON], " "),
            (
                "GET",
                api("/groups/0123456789abcdef0123456789abcdef"),
                vec![BAD],
                "",
            ),
        ];
        for (method, path, headers, body) in cases {
            let reply = call(&mut world, method, &path, &headers, body);
            assert_eq!(reply.status, 401, "{method} {path} {headers:?}");
            assert_eq!(
                reply.body.unwrap()["error"]["details"]["authError"]["id"],
                "tokenInvalid"
            );
        }
    }

    #[test]
    fn accept_must_admit_json() {
        let mut world = World::demo();
        let user = api("/user");
        for ok in [
            "application/json",
            "*/*",
            "application/*",
            "APPLICATION/JSON",
            "text/html, application/json;q=0.5",
            "application/json; charset=utf-8",
            "text/html;q=0, */*;q=0.1",
        ] {
            let reply = call(&mut world, "GET", &user, &[ALICE, ("accept", ok)], "");
            assert_eq!(reply.status, 200, "{ok}");
        }
        for refused in [
            "text/html",
            "application/xml, text/*",
            "application/json;q=0",
            "application/json; q=0.0, text/plain",
            "",
        ] {
            let reply = call(&mut world, "GET", &user, &[ALICE, ("accept", refused)], "");
            assert_eq!((reply.status, &reply.body), (406, &None), "{refused:?}");
        }
        // 406 comes before the body's content type and before the entity logic.
        let reply = call(
            &mut world,
            "POST",
            &api("/user/tokens/named"),
            &[("accept", "text/html"), ("content-type", "text/plain")],
            "x",
        );
        assert_eq!(reply.status, 406);
        let reply = call(
            &mut world,
            "GET",
            &api("/groups/0123456789abcdef0123456789abcdef"),
            &[("accept", "text/html")],
            "",
        );
        assert_eq!(reply.status, 406);
    }

    #[test]
    fn content_type_is_checked_only_for_bodies_of_post_put_patch() {
        let mut world = World::demo();
        let path = api("/user/tokens/named");
        for content_type in [
            "application/json;charset=utf-8",
            "application/json ; x=y",
            "text/json",
            "application/jsonx",
        ] {
            let reply = call(
                &mut world,
                "POST",
                &path,
                &[ALICE, ("content-type", content_type)],
                r#"{"name":"t1"}"#,
            );
            assert_eq!((reply.status, &reply.body), (415, &None), "{content_type}");
        }
        // With no body any content type goes (and the body is `{}`).
        let reply = call(
            &mut world,
            "POST",
            &path,
            &[ALICE, ("content-type", "text/plain")],
            "",
        );
        assert_eq!(error_id(&reply), "missingRequiredValue");
        // 415 comes before the entity logic: even a missing token is 415 first.
        let reply = call(
            &mut world,
            "PATCH",
            &api("/tokens/named/0123456789abcdef0123456789abcdef"),
            &[],
            "{}",
        );
        assert_eq!(reply.status, 415);
        let id = bobs_token(&mut world, "t2");
        let reply = call(
            &mut world,
            "PATCH",
            &api(&format!("/tokens/named/{id}")),
            &[BOB, ("content-type", "application/x-www-form-urlencoded")],
            "revoked=true",
        );
        assert_eq!(reply.status, 415);
    }

    #[test]
    fn whitespace_bodies_are_malformed_but_padding_is_fine() {
        let mut world = World::demo();
        let path = api("/user/tokens/named");
        for body in [" ", "\n", "\r\n\t "] {
            let reply = call(&mut world, "POST", &path, &[ALICE, JSON], body);
            assert_eq!(
                (reply.status, error_id(&reply)),
                (400, "malformedData"),
                "{body:?}"
            );
        }
        // A whitespace body is not an empty body: it needs the JSON content type too.
        let reply = call(&mut world, "POST", &path, &[ALICE], " ");
        assert_eq!(reply.status, 415);
        let reply = call(
            &mut world,
            "POST",
            &path,
            &[ALICE, JSON],
            " {\"name\":\"t1\"}\n",
        );
        assert_eq!(reply.status, 201);
    }

    #[test]
    fn non_object_json_is_malformed_only_after_existence_and_authorization() {
        let mut world = World::demo();
        let id = bobs_token(&mut world, "t1");
        let bobs = api(&format!("/tokens/named/{id}"));
        let missing = api("/tokens/named/0123456789abcdef0123456789abcdef");
        for body in ["null", "[1]", "\"x\"", "1", "true"] {
            let patch = |world: &mut World, path: &str, who: &[(&str, &str)]| {
                let mut headers = who.to_vec();
                headers.push(JSON);
                let reply = call(world, "PATCH", path, &headers, body);
                (reply.status, error_id(&reply).to_string())
            };
            assert_eq!(patch(&mut world, &missing, &[]).0, 404, "{body}");
            assert_eq!(patch(&mut world, &missing, &[BOB]).0, 404, "{body}");
            assert_eq!(patch(&mut world, &bobs, &[]).0, 401, "{body}");
            assert_eq!(patch(&mut world, &bobs, &[ALICE]).0, 403, "{body}");
            assert_eq!(
                patch(&mut world, &bobs, &[BOB]),
                (400, "malformedData".to_string()),
                "{body}"
            );

            let named = api("/user/tokens/named");
            let reply = call(&mut world, "POST", &named, &[PROVIDER, JSON], body);
            assert_eq!(reply.status, 403, "{body}");
            let reply = call(&mut world, "POST", &named, &[JSON], body);
            assert_eq!(reply.status, 401, "{body}");
            let reply = call(&mut world, "POST", &named, &[ALICE, JSON], body);
            assert_eq!(error_id(&reply), "malformedData", "{body}");

            let not_a_cluster = api(&format!("/clusters/{GROUP_ID}/users/{BOB_ID}"));
            let bob_in = api(&format!("/clusters/{CLUSTER_ID}/users/{BOB_ID}"));
            let put = |world: &mut World, path: &str, who: (&str, &str)| {
                call(world, "PUT", path, &[who, JSON], body).status
            };
            assert_eq!(put(&mut world, &not_a_cluster, PROVIDER), 404, "{body}");
            assert_eq!(put(&mut world, &bob_in, BOB), 403, "{body}");
            assert_eq!(put(&mut world, &bob_in, PROVIDER), 400, "{body}");

            // A public operation has nothing to fetch or authorize.
            let reply = call(&mut world, "POST", &api("/tokens/examine"), &[JSON], body);
            assert_eq!(error_id(&reply), "malformedData", "{body}");
        }
        assert!(!world.is_member(Kind::Cluster, CLUSTER_ID, BOB_ID));
    }

    #[test]
    fn get_and_delete_never_read_the_body() {
        let mut world = World::demo();
        let garbage = [("content-type", "text/plain")];
        let mut headers = vec![ALICE];
        headers.extend(garbage);
        let reply = call(&mut world, "GET", &api("/user"), &headers, "{not json");
        assert_eq!(reply.status, 200);
        let reply = call(&mut world, "GET", &api("/user"), &[ALICE], " ");
        assert_eq!(reply.status, 200);
        let id = bobs_token(&mut world, "t1");
        let path = api(&format!("/tokens/named/{id}"));
        let reply = call(&mut world, "GET", &path, &[BOB, JSON], "[1]");
        assert_eq!(reply.status, 200);
        let reply = call(&mut world, "DELETE", &path, &[BOB, garbage[0]], "\u{1}");
        assert_eq!((reply.status, reply.body), (204, None));
        assert!(world.named_token(&id).is_none());
    }

    #[test]
    fn paths_are_split_as_cowboy_does() {
        let mut world = World::demo();
        for path in [
            "/api/v3/onezone/user/",
            "/api/v3/onezone/./user",
            "/api/v3/onezone/groups/../user",
            "/api/v3/onezone/%75ser",
            "/api/v3/../v3/onezone/user",
        ] {
            let reply = call(&mut world, "GET", path, &[ALICE], "");
            assert_eq!(reply.status, 200, "{path}");
        }
        for path in [
            "/api/v3/onezone/user//",
            "/api/v3/onezone//user",
            "/api/v3/onezone/USER",
            "/api/v3/onezone/tokens/named/",
            "/api/v3/user",
        ] {
            let reply = call(&mut world, "GET", path, &[ALICE], "");
            assert_eq!(
                (reply.status, error_id(&reply)),
                (404, "notFound"),
                "{path}"
            );
        }
        // cowboy_router refuses a malformed escape: an empty 400.
        let reply = call(&mut world, "GET", "/api/v3/onezone/%zz", &[ALICE], "");
        assert_eq!((reply.status, reply.body), (400, None));
    }

    #[test]
    fn entities_can_be_read_by_their_members() {
        let mut world = World::demo();
        let cases = [
            (
                format!("/groups/{GROUP_ID}"),
                json!({ "groupId": GROUP_ID, "name": GROUP_NAME, "type": "team" }),
            ),
            (
                format!("/spaces/{SPACE_ID}"),
                json!({ "spaceId": SPACE_ID, "name": SPACE_NAME }),
            ),
            (
                format!("/harvesters/{HARVESTER_ID}"),
                json!({ "harvesterId": HARVESTER_ID, "name": HARVESTER_NAME }),
            ),
            (
                format!("/clusters/{CLUSTER_ID}"),
                json!({ "clusterId": CLUSTER_ID, "type": "oneprovider", "serviceId": PROVIDER_ID }),
            ),
            (
                format!("/providers/{PROVIDER_ID}"),
                json!({ "providerId": PROVIDER_ID, "name": PROVIDER_NAME }),
            ),
        ];
        for (path, expected) in &cases {
            let reply = call(&mut world, "GET", &api(path), &[ALICE], "");
            assert_eq!(
                (reply.status, reply.body.as_ref()),
                (200, Some(expected)),
                "{path}"
            );
            let reply = call(&mut world, "GET", &api(path), &[BOB], "");
            assert_eq!(
                (reply.status, error_id(&reply)),
                (403, "forbidden"),
                "{path}"
            );
            let reply = call(&mut world, "GET", &api(path), &[], "");
            assert_eq!(
                (reply.status, error_id(&reply)),
                (401, "unauthorized"),
                "{path}"
            );
            let kind = path.split('/').nth(1).unwrap();
            let missing = api(&format!("/{kind}/0123456789abcdef0123456789abcdef"));
            for who in [&[][..], &[ALICE][..]] {
                let reply = call(&mut world, "GET", &missing, who, "");
                assert_eq!(
                    (reply.status, error_id(&reply)),
                    (404, "notFound"),
                    "{missing}"
                );
            }
        }
        // Admins with the view privilege of the kind read anything of it.
        world.grant_admin(
            BOB_ID,
            &[
                "oz_groups_view",
                "oz_spaces_view",
                "oz_harvesters_view",
                "oz_clusters_view",
                "oz_providers_view",
            ],
        );
        for (path, expected) in &cases {
            let reply = call(&mut world, "GET", &api(path), &[BOB], "");
            assert_eq!(reply.body.as_ref(), Some(expected), "{path}");
        }
        let reply = call(&mut world, "GET", &api("/clusters/onezone"), &[BOB], "");
        assert_eq!(
            reply.body,
            Some(json!({ "clusterId": "onezone", "type": "onezone", "serviceId": "onezone" }))
        );
        // The onezone cluster is no Oneprovider.
        let reply = call(&mut world, "GET", &api("/providers/onezone"), &[BOB], "");
        assert_eq!(reply.status, 404);
        // A Oneprovider reads its own cluster and itself, nothing else.
        for (path, status) in [
            (format!("/clusters/{CLUSTER_ID}"), 200),
            (format!("/providers/{PROVIDER_ID}"), 200),
            ("/clusters/onezone".to_string(), 403),
            (format!("/groups/{GROUP_ID}"), 403),
            (format!("/spaces/{SPACE_ID}"), 403),
        ] {
            let reply = call(&mut world, "GET", &api(&path), &[PROVIDER], "");
            assert_eq!(reply.status, status, "{path}");
        }
        // Membership without privileges is enough.
        world.add_user("u3", "Carol").grant(GROUP_ID, "u3", &[]);
        let token = "MDAxcarolcarolcarolcarolcarolcarolcarolcarolcarolcarolcarolcaro";
        world.user_access_token("u3", token);
        let reply = call(
            &mut world,
            "GET",
            &api(&format!("/groups/{GROUP_ID}")),
            &[("x-auth-token", token)],
            "",
        );
        assert_eq!(reply.status, 200);
    }
}

//! The 15 deprecated token endpoints, served as Onezone 21.02 serves them, when
//! [`World::serve_legacy`] is on (oz-worker 74a761f; the reference's sections 3.1, 3.3, 8).
//!
//! - 12 invite, support and registration endpoints (`POST .../token`,
//!   `POST .../provider_registration_token`). Onezone's entity logic runs on the legacy
//!   resource first: the target must exist (404, even for nobody), the caller must be allowed
//!   to invite (nobody 401, others 403; the privileges are those of the same invite type in
//!   the tokens API, `invite_tokens.erl:189-300`), then the body is validated (only: an
//!   object). Then `token_logic:create_legacy_invite_token/2` (`token_logic.erl:359-381`)
//!   creates a named invite token owned by the caller, a user or (for its own cluster) a
//!   Oneprovider, with `usageLimit: 1`, no caveats and default privileges, through the same
//!   validation as `POST /user/tokens/named`, and the answer is 200 `{"token"}`.
//! - `POST|GET /user/client_tokens` and `DELETE /user/client_tokens/{tid}`, for users only.
//!
//! Routing, authentication, content negotiation and body parsing are the REST layer's
//! (see `api`); the functions here start at the entity logic.

use serde_json::{json, Map, Value};

use super::api::{denied, object, Reply};
use super::errors::ApiError;
use super::rules::{self, Target, INVITE_TYPES};
use super::world::{hex, now, Subject, World, ONEZONE_CLUSTER};

/// Where an invite's target id comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TargetId {
    /// The path's `{id}`.
    Path,
    /// The caller's own id (`/user/clusters/provider_registration_token`: Onezone's
    /// `?CLIENT_ID` binding, `user_logic_plugin.erl:241-243`).
    Caller,
}

/// One deprecated invite, support or registration endpoint (always `POST`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Invite {
    /// Path template below the API prefix; `{id}` is one segment.
    pub template: &'static str,
    /// Onezone's operationId.
    pub operation: &'static str,
    pub invite_type: &'static str,
    pub target_id: TargetId,
    /// What the generated token name starts with (`token_logic.erl:411-455`).
    pub description: &'static str,
}

const fn invite(
    template: &'static str,
    operation: &'static str,
    invite_type: &'static str,
    description: &'static str,
) -> Invite {
    Invite {
        template,
        operation,
        invite_type,
        target_id: TargetId::Path,
        description,
    }
}

/// The invite endpoints, in the order of Onezone's route modules (routes.rs of the proxy
/// lists the same 12; this table is the stand-in's own).
#[rustfmt::skip]
pub(super) static INVITES: [Invite; 12] = [
    invite("/groups/{id}/users/token",      "create_user_group_invite_token",     "userJoinGroup",      "user invite to group"),
    invite("/groups/{id}/children/token",   "create_child_group_token",           "groupJoinGroup",     "group invite to group"),
    invite("/spaces/{id}/users/token",      "create_space_user_invite_token",     "userJoinSpace",      "user invite to space"),
    invite("/spaces/{id}/groups/token",     "create_space_group_token",           "groupJoinSpace",     "group invite to space"),
    invite("/spaces/{id}/providers/token",  "create_space_support_token",         "supportSpace",       "support request for space"),
    invite("/harvesters/{id}/users/token",  "create_harvester_user_invite_token", "userJoinHarvester",  "user invite to harvester"),
    invite("/harvesters/{id}/groups/token", "create_harvester_group_token",       "groupJoinHarvester", "group invite to harvester"),
    invite("/harvesters/{id}/spaces/token", "create_harvester_invite_space_token", "spaceJoinHarvester", "space invite to harvester"),
    invite("/clusters/{id}/users/token",    "create_cluster_user_invite_token",   "userJoinCluster",    "user invite to cluster"),
    invite("/clusters/{id}/groups/token",   "create_cluster_group_invite_token",  "groupJoinCluster",   "group invite to cluster"),
    invite("/users/{id}/clusters/provider_registration_token",
                                            "create_provider_registration_token_for_user",
                                                                                  "registerOneprovider", "Oneprovider rgstr. token for"),
    Invite {
        template: "/user/clusters/provider_registration_token",
        operation: "create_provider_registration_token_for_current_user",
        invite_type: "registerOneprovider",
        target_id: TargetId::Caller,
        description: "Oneprovider rgstr. token for",
    },
];

/// `POST|GET /user/client_tokens` (`create_client_token`, `list_client_tokens`).
pub(super) const CLIENT_TOKENS: &str = "/user/client_tokens";
/// `DELETE /user/client_tokens/{tid}` (`remove_client_token`); `tid` is a serialized token.
pub(super) const CLIENT_TOKEN: &str = "/user/client_tokens/{tid}";

/// Legacy token names are at most this many bytes (`format_invite_token_name/2`).
const MAX_NAME_BYTES: usize = 50;

/// Client tokens are valid for a year (`token_logic.erl:383-402`).
const CLIENT_TOKEN_TTL: u64 = 31_536_000;

/// A legacy invite endpoint. `path_id` is the path's `{id}` (for [`TargetId::Path`]).
pub(super) fn create_invite(
    world: &mut World,
    client: Option<&Subject>,
    endpoint: &Invite,
    path_id: Option<&str>,
    data: &Value,
) -> Result<Reply, ApiError> {
    let invite = INVITE_TYPES
        .iter()
        .find(|t| t.name == endpoint.invite_type)
        .ok_or_else(ApiError::not_found)?;
    // The id: the path's, or the client's own (a Oneprovider's id names no user: 404).
    let target = match endpoint.target_id {
        TargetId::Path => path_id,
        TargetId::Caller => match client {
            Some(Subject::User(id) | Subject::Provider(id)) => Some(id.as_str()),
            None => None,
        },
    };
    // entity_logic: fetch the entity first (404, nobody included). With no client,
    // `?CLIENT_ID` is undefined and the existence check is skipped (entity_logic.erl:368-385).
    if let Some(target) = target {
        if !world.target_exists(invite.target, target) {
            return Err(ApiError::not_found());
        }
    }
    // Then authorize: the same rule as the tokens API's for this invite type (the legacy
    // plugins' authorize/required_admin_privileges, e.g. cluster_logic_plugin.erl:424-431,
    // 523-526, user_logic_plugin.erl:620-628, 758-759); nobody 401, others 403
    // (entity_logic.erl:475-480).
    let (subject, target) = match (client, target) {
        (Some(subject), Some(target)) if world.may_invite(subject, invite, target) => {
            (subject.clone(), target.to_string())
        }
        _ => return Err(denied(client)),
    };
    // Then validate: the legacy aspects take no values, but the data must be an object
    // (entity_logic_sanitizer.erl:169-173).
    object(data)?;
    let display = match invite.target {
        Target::User => world.full_name(&target),
        Target::Entity(_) if target == ONEZONE_CLUSTER => Some("Onezone"),
        Target::Entity(kind) => world.name_of(kind, &target),
    }
    .unwrap_or_default();
    let name = invite_token_name(endpoint.description, display, &suffix(world));
    // create_legacy_invite_token: a named token of the caller, through the tokens API's own
    // validation (a name that breaks the name rule is 400 badValueName) and storage (a name
    // taken is 400 badValueIdentifierOccupied; Onezone does not retry).
    let body = json!({
        "name": name,
        "type": { "inviteToken": { "inviteType": invite.name, invite.target_key: target } },
        "usageLimit": 1,
    });
    let request = rules::named_request(world, &subject, &map(body))?;
    let (_, token) = world.create_named(subject, request)?;
    Ok(Reply::json(200, json!({ "token": token })))
}

/// `POST /user/client_tokens`: a named access token of the user, valid for a year
/// (`user_logic_plugin.erl:213-220`, `token_logic.erl:383-402`).
pub(super) fn create_client_token(
    world: &mut World,
    client: Option<&Subject>,
    data: &Value,
) -> Result<Reply, ApiError> {
    let user = client_user(world, client)?;
    object(data)?;
    let now = now();
    let body = json!({
        "name": client_token_name(now, &suffix(world)),
        "type": { "accessToken": {} },
        "caveats": [{ "type": "time", "validUntil": now + CLIENT_TOKEN_TTL }],
    });
    let subject = Subject::User(user);
    let request = rules::named_request(world, &subject, &map(body))?;
    let (_, token) = world.create_named(subject, request)?;
    Ok(Reply::json(200, json!({ "token": token })))
}

/// `GET /user/client_tokens`: every named access token of the user, serialized, revoked and
/// session-bound ones included (`user_logic_plugin.erl:286-302`; `?ACCESS_TOKEN` matches any
/// session, `:294`).
pub(super) fn list_client_tokens(
    world: &World,
    client: Option<&Subject>,
) -> Result<Reply, ApiError> {
    let user = client_user(world, client)?;
    let tokens: Vec<&str> = world
        .named_ids(&Subject::User(user))
        .iter()
        .filter_map(|id| world.named_token(id))
        .filter(|t| t.info.token_type.is_access())
        .map(|t| t.serialized.as_str())
        .collect();
    Ok(Reply::json(200, json!({ "tokens": tokens })))
}

/// `DELETE /user/client_tokens/{tid}`: deletes the named token `tid` (a serialized token).
pub(super) fn delete_client_token(
    world: &mut World,
    client: Option<&Subject>,
    tid: &str,
) -> Result<Reply, ApiError> {
    let user = client_user(world, client)?;
    // `exists` deserializes the token with a bare match; a crash there is 404
    // (user_logic_plugin.erl:576-578, entity_logic.erl:368-385). A temporary token, or a
    // named one already deleted, does not exist either.
    let id = match world.decode(tid) {
        Some(info) if info.named => info.id.clone(),
        _ => return Err(ApiError::not_found()),
    };
    let owner = match world.named_token(&id) {
        Some(token) => token.info.subject.clone(),
        None => return Err(ApiError::not_found()),
    };
    // The nested delete_named_token checks the owner as DELETE /tokens/named/{id} does
    // (token_logic_plugin.erl:403-410): another subject's token is 403.
    let client = Subject::User(user);
    if !world.may_manage_token(&client, &owner) {
        return Err(ApiError::forbidden());
    }
    world.delete_named(&id);
    Ok(Reply::empty(204))
}

/// The user a `/user/client_tokens` call is for: nobody is 401 (no `?CLIENT_ID`, nothing to
/// fetch); a Oneprovider's id names no user, so its call is 404 (`user_logic_plugin.erl:48-55`).
fn client_user(world: &World, client: Option<&Subject>) -> Result<String, ApiError> {
    match client {
        None => Err(ApiError::unauthorized()),
        Some(Subject::User(id)) if world.user_exists(id) => Ok(id.clone()),
        Some(_) => Err(ApiError::not_found()),
    }
}

/// `"<description> - <display name> <suffix>"`, the display name cut (on a character
/// boundary) and ended with `...` when the whole would exceed 50 bytes
/// (`format_invite_token_name/2`, `token_logic.erl:460-470`, which cuts bytes).
pub(super) fn invite_token_name(description: &str, display: &str, suffix: &str) -> String {
    let name = format!("{description} - {display} {suffix}");
    if name.len() <= MAX_NAME_BYTES {
        return name;
    }
    let mut keep = display
        .len()
        .saturating_sub(name.len() - (MAX_NAME_BYTES - 3));
    while !display.is_char_boundary(keep) {
        keep -= 1;
    }
    format!("{description} - {}... {suffix}", &display[..keep])
}

/// `"access token <UTC time, ':' as '.'> <suffix>"`, e.g.
/// `access token 2024-10-21T08.13.49Z 0a1b2c`.
fn client_token_name(now: u64, suffix: &str) -> String {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(now);
    let time = humantime::format_rfc3339_seconds(time)
        .to_string()
        .replace(':', ".");
    format!("access token {time} {suffix}")
}

/// 6 lowercase hex digits (ctool's `str_utils:rand_hex(3)`), unless the world fixes them.
fn suffix(world: &World) -> String {
    match world.legacy_suffix() {
        Some(fixed) => fixed.to_string(),
        None => hex(&rand::random::<[u8; 3]>()),
    }
}

fn map(body: Value) -> Map<String, Value> {
    match body {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::tests::{api, call, error_id, ALICE, BOB, JSON, PROVIDER};
    use crate::demo::*;

    fn legacy_world() -> World {
        let mut world = World::demo();
        world.serve_legacy(true);
        world
    }

    /// Every legacy operation: (method, path below the prefix) for the demo world.
    fn all_operations() -> Vec<(&'static str, String)> {
        let mut ops: Vec<(&str, String)> = INVITES
            .iter()
            .map(|i| {
                let id = invite_target(i);
                ("POST", i.template.replace("{id}", id))
            })
            .collect();
        ops.push(("POST", CLIENT_TOKENS.to_string()));
        ops.push(("GET", CLIENT_TOKENS.to_string()));
        ops.push(("DELETE", CLIENT_TOKEN.replace("{tid}", ALICE_TOKEN)));
        ops
    }

    /// The demo id each invite endpoint's `{id}` takes.
    fn invite_target(invite: &Invite) -> &'static str {
        match invite.template.split('/').nth(1) {
            Some("groups") => GROUP_ID,
            Some("spaces") => SPACE_ID,
            Some("harvesters") => HARVESTER_ID,
            Some("clusters") => CLUSTER_ID,
            _ => ALICE_ID,
        }
    }

    fn token_of(reply: &crate::api::Reply) -> String {
        let body = reply.body.as_ref().expect("a body");
        assert_eq!(body.as_object().map(|o| o.len()), Some(1), "{body}");
        body["token"].as_str().expect("a token").to_string()
    }

    /// The stored named token a serialized token stands for.
    fn stored(world: &World, token: &str) -> Value {
        let id = world.decode(token).expect("issued").id.clone();
        world.named_token(&id).expect("named").to_json()
    }

    fn ends_with_hex_suffix(name: &str) -> bool {
        let (rest, suffix) = name.rsplit_once(' ').unwrap_or_default();
        !rest.is_empty()
            && suffix.len() == 6
            && suffix
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
    }

    #[test]
    fn the_table_has_the_fifteen_operations() {
        assert_eq!(all_operations().len(), 15);
        for invite in &INVITES {
            assert!(
                INVITE_TYPES.iter().any(|t| t.name == invite.invite_type),
                "{}",
                invite.invite_type
            );
        }
        for field in [|i: &Invite| i.template, |i: &Invite| i.operation] {
            let mut values: Vec<&str> = INVITES.iter().map(field).collect();
            values.sort();
            values.dedup();
            assert_eq!(values.len(), 12, "no duplicates");
        }
    }

    #[test]
    fn every_invite_endpoint_creates_a_single_use_named_token_of_the_caller() {
        let mut world = legacy_world();
        for invite in &INVITES {
            let target = invite_target(invite);
            let path = api(&invite.template.replace("{id}", target));
            let reply = call(&mut world, "POST", &path, &[ALICE], "");
            assert_eq!(reply.status, 200, "{path}: {:?}", reply.body);
            assert_eq!(reply.location, None);
            let token = stored(&world, &token_of(&reply));
            let kind = INVITE_TYPES
                .iter()
                .find(|t| t.name == invite.invite_type)
                .unwrap();
            assert_eq!(
                token["type"],
                json!({ "inviteToken": { "inviteType": invite.invite_type, kind.target_key: target } }),
                "{path}"
            );
            assert_eq!(token["subject"], json!({ "type": "user", "id": ALICE_ID }));
            assert_eq!(token["caveats"], json!([]));
            assert_eq!(token["revoked"], false);
            assert_eq!(token["metadata"]["usageLimit"], 1);
            assert_eq!(token["metadata"]["usageCount"], 0);
            // No custom privileges: the invite type's defaults (or none).
            let defaults = kind.default_privileges.map(|d| {
                let mut d = d.to_vec();
                d.sort();
                d
            });
            assert_eq!(token["metadata"]["privileges"], json!(defaults), "{path}");
            let display = match target {
                ALICE_ID => ALICE_NAME,
                CLUSTER_ID => PROVIDER_NAME,
                id => world.entity_name(id).unwrap(),
            };
            let name = token["name"].as_str().unwrap();
            assert!(
                name.starts_with(&format!("{} - {display} ", invite.description)),
                "{name}"
            );
            assert!(ends_with_hex_suffix(name), "{name}");
            assert!(name.len() <= 50, "{name}");
        }
    }

    #[test]
    fn a_oneprovider_invites_to_its_own_cluster_only() {
        let mut world = legacy_world();
        for what in ["users", "groups"] {
            let path = api(&format!("/clusters/{CLUSTER_ID}/{what}/token"));
            let reply = call(&mut world, "POST", &path, &[PROVIDER], "");
            assert_eq!(reply.status, 200, "{path}");
            let token = stored(&world, &token_of(&reply));
            assert_eq!(
                token["subject"],
                json!({ "type": "oneprovider", "id": PROVIDER_ID })
            );
            let who = what.trim_end_matches('s');
            let name = token["name"].as_str().unwrap();
            assert!(
                name.starts_with(&format!("{who} invite to cluster - {PROVIDER_NAME} ")),
                "{name}"
            );
            let onezone = api(&format!("/clusters/onezone/{what}/token"));
            let reply = call(&mut world, "POST", &onezone, &[PROVIDER], "");
            assert_eq!((reply.status, error_id(&reply)), (403, "forbidden"));
        }
        let reply = call(
            &mut world,
            "POST",
            &api(&format!("/groups/{GROUP_ID}/users/token")),
            &[PROVIDER],
            "",
        );
        assert_eq!(reply.status, 403);
        // An admin invites to the Onezone cluster, whose name is "Onezone".
        world.grant_admin(BOB_ID, &["oz_clusters_add_relationships"]);
        let reply = call(
            &mut world,
            "POST",
            &api("/clusters/onezone/users/token"),
            &[BOB],
            "",
        );
        let token = stored(&world, &token_of(&reply));
        assert!(token["name"]
            .as_str()
            .unwrap()
            .starts_with("user invite to cluster - Onezone "));
    }

    #[test]
    fn existence_then_authorization_then_data() {
        let mut world = legacy_world();
        let missing = "0123456789abcdef0123456789abcdef";
        for invite in INVITES.iter().filter(|i| i.target_id == TargetId::Path) {
            let path = api(&invite.template.replace("{id}", missing));
            let existing = api(&invite.template.replace("{id}", invite_target(invite)));
            for who in [&[][..], &[ALICE][..], &[BOB][..]] {
                let reply = call(&mut world, "POST", &path, who, "[1]");
                let mut headers = who.to_vec();
                headers.push(JSON);
                let with_json = call(&mut world, "POST", &path, &headers, "[1]");
                // Without the JSON content type a body is 415 before the entity logic.
                assert_eq!(reply.status, 415, "{path}");
                assert_eq!(
                    (with_json.status, error_id(&with_json)),
                    (404, "notFound"),
                    "{path} {who:?}"
                );
            }
            let reply = call(&mut world, "POST", &existing, &[JSON], "[1]");
            assert_eq!(
                (reply.status, error_id(&reply)),
                (401, "unauthorized"),
                "{existing}"
            );
            // bob has no privileges (and may not register a Oneprovider for alice).
            let reply = call(&mut world, "POST", &existing, &[BOB, JSON], "[1]");
            assert_eq!(
                (reply.status, error_id(&reply)),
                (403, "forbidden"),
                "{existing}"
            );
            for body in ["[1]", "null", "\"x\"", "7"] {
                let reply = call(&mut world, "POST", &existing, &[ALICE, JSON], body);
                assert_eq!(
                    (reply.status, error_id(&reply)),
                    (400, "malformedData"),
                    "{existing} {body}"
                );
            }
            // An object is accepted and ignored; so is an empty body of any type.
            let reply = call(
                &mut world,
                "POST",
                &existing,
                &[ALICE, JSON],
                r#"{"usageLimit":5,"name":"x"}"#,
            );
            assert_eq!(reply.status, 200, "{existing}");
            let token = stored(&world, &token_of(&reply));
            assert_eq!(token["metadata"]["usageLimit"], 1);
            let reply = call(
                &mut world,
                "POST",
                &existing,
                &[ALICE, ("content-type", "text/plain")],
                "",
            );
            assert_eq!(reply.status, 200, "{existing}");
            // A bad credential is 401 before anything else.
            let reply = call(
                &mut world,
                "POST",
                &path,
                &[("x-auth-token", "MDAxnope"), JSON],
                "[1]",
            );
            assert_eq!(reply.status, 401);
            assert!(reply.body.unwrap()["error"]["details"]["authError"].is_object());
        }
    }

    #[test]
    fn registration_tokens_are_named_after_the_admin_user() {
        let mut world = legacy_world();
        let current = api("/user/clusters/provider_registration_token");
        let for_bob = api(&format!(
            "/users/{BOB_ID}/clusters/provider_registration_token"
        ));
        for path in [&current, &for_bob] {
            let reply = call(&mut world, "POST", path, &[BOB], "");
            assert_eq!(reply.status, 200, "{path}");
            let token = stored(&world, &token_of(&reply));
            assert_eq!(
                token["type"]["inviteToken"],
                json!({ "inviteType": "registerOneprovider", "adminUserId": BOB_ID })
            );
            let name = token["name"].as_str().unwrap();
            assert!(
                name.starts_with("Oneprovider rgstr. token for - Bob Plain "),
                "{name}"
            );
            assert!(ends_with_hex_suffix(name));
        }
        // The caller's own id: nobody has none (401), a Oneprovider's names no user (404).
        let reply = call(&mut world, "POST", &current, &[], "");
        assert_eq!((reply.status, error_id(&reply)), (401, "unauthorized"));
        let reply = call(&mut world, "POST", &current, &[PROVIDER], "");
        assert_eq!((reply.status, error_id(&reply)), (404, "notFound"));
        let reply = call(&mut world, "POST", &for_bob, &[PROVIDER], "");
        assert_eq!(reply.status, 403);
        // For someone else, or under a restricted policy, it takes oz_providers_invite; the
        // token is still the caller's.
        let for_alice = api(&format!(
            "/users/{ALICE_ID}/clusters/provider_registration_token"
        ));
        assert_eq!(call(&mut world, "POST", &for_alice, &[BOB], "").status, 403);
        world.set_registration_policy(false);
        assert_eq!(call(&mut world, "POST", &current, &[BOB], "").status, 403);
        world.grant_admin(BOB_ID, &["oz_providers_invite"]);
        let reply = call(&mut world, "POST", &for_alice, &[BOB], "");
        let token = stored(&world, &token_of(&reply));
        assert_eq!(token["subject"], json!({ "type": "user", "id": BOB_ID }));
        assert!(token["name"]
            .as_str()
            .unwrap()
            .starts_with("Oneprovider rgstr. token for - Alice Admin "));
    }

    #[test]
    fn a_full_name_the_name_rule_forbids_is_bad_value_name() {
        let mut world = legacy_world();
        world
            .add_user("u-obrien", "Seán O'Brien, Jr")
            .user_access_token(
                "u-obrien",
                "MDAxobrienobrienobrienobrienobrienobrienobrienobrienobrienobrie",
            );
        let reply = call(
            &mut world,
            "POST",
            &api("/user/clusters/provider_registration_token"),
            &[(
                "x-auth-token",
                "MDAxobrienobrienobrienobrienobrienobrienobrienobrienobrienobrie",
            )],
            "",
        );
        assert_eq!((reply.status, error_id(&reply)), (400, "badValueName"));
    }

    #[test]
    fn long_display_names_are_cut_to_fifty_bytes() {
        let mut world = legacy_world();
        let long = "A group with a really very long name indeed, longer than fifty";
        let long = long.replace(',', "");
        world
            .add_group("g-long", &long)
            .grant("g-long", ALICE_ID, &["group_add_user"]);
        world
            .add_space("s-long", "Zażółć gęślą jaźń — przestrzeń na dane")
            .grant("s-long", ALICE_ID, &["space_add_user"]);
        world.legacy_name_suffix(Some("0a1b2c"));
        let reply = call(
            &mut world,
            "POST",
            &api("/groups/g-long/users/token"),
            &[ALICE],
            "",
        );
        let name = stored(&world, &token_of(&reply))["name"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(name, "user invite to group - A group with a re... 0a1b2c");
        assert_eq!(name.len(), 50);

        // Cut on a character boundary, so at most 50 bytes; '—' is not allowed in names,
        // but the cut removes it here.
        let reply = call(
            &mut world,
            "POST",
            &api("/spaces/s-long/users/token"),
            &[ALICE],
            "",
        );
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        let name = stored(&world, &token_of(&reply))["name"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(name.len() <= 50, "{name}");
        assert!(name.starts_with("user invite to space - Zażółć "), "{name}");
        assert!(name.ends_with("... 0a1b2c"), "{name}");
    }

    #[test]
    fn invite_token_names() {
        assert_eq!(
            invite_token_name("user invite to group", "Demo Group", "abcdef"),
            "user invite to group - Demo Group abcdef"
        );
        let exact = invite_token_name("d", &"x".repeat(39), "abcdef");
        assert_eq!(exact.len(), 50);
        assert!(!exact.contains("..."));
        let cut = invite_token_name("d", &"x".repeat(40), "abcdef");
        assert_eq!(cut, format!("d - {}... abcdef", "x".repeat(36)));
        assert_eq!(cut.len(), 50);
        // 'ż' is two bytes: the cut may stop one byte short.
        let cut = invite_token_name("d", &format!("x{}", "ż".repeat(30)), "abcdef");
        assert_eq!(cut, format!("d - x{}... abcdef", "ż".repeat(17)));
        assert_eq!(cut.len(), 49);
        assert_eq!(
            client_token_name(1_729_498_429, "a1b2c3"),
            "access token 2024-10-21T08.13.49Z a1b2c3"
        );
    }

    #[test]
    fn a_name_clash_is_an_error_without_retry() {
        let mut world = legacy_world();
        world.legacy_name_suffix(Some("0a1b2c"));
        let path = api(&format!("/groups/{GROUP_ID}/users/token"));
        let first = call(&mut world, "POST", &path, &[ALICE], "");
        assert_eq!(first.status, 200);
        let count = world.named_count();
        let again = call(&mut world, "POST", &path, &[ALICE], "");
        assert_eq!(
            (again.status, error_id(&again)),
            (400, "badValueIdentifierOccupied")
        );
        assert_eq!(world.named_count(), count);
        world.legacy_name_suffix(None);
        assert_eq!(call(&mut world, "POST", &path, &[ALICE], "").status, 200);
    }

    #[test]
    fn other_methods_on_legacy_paths_are_405() {
        let mut world = legacy_world();
        let cases = [
            ("GET", format!("/groups/{GROUP_ID}/users/token"), "POST"),
            ("PUT", format!("/clusters/{CLUSTER_ID}/users/token"), "POST"),
            (
                "DELETE",
                "/user/clusters/provider_registration_token".to_string(),
                "POST",
            ),
            ("PUT", CLIENT_TOKENS.to_string(), "GET, POST"),
            ("DELETE", CLIENT_TOKENS.to_string(), "GET, POST"),
            ("POST", CLIENT_TOKEN.replace("{tid}", ALICE_TOKEN), "DELETE"),
            ("HEAD", CLIENT_TOKENS.to_string(), "GET, POST"),
        ];
        for (method, path, allow) in cases {
            let reply = call(&mut world, method, &api(&path), &[], "");
            assert_eq!(
                (reply.status, reply.allow.as_deref(), reply.body),
                (405, Some(allow), None),
                "{method} {path}"
            );
        }
        // The cluster path with another user id is still the PUT route.
        let reply = call(
            &mut world,
            "PUT",
            &api(&format!("/clusters/{CLUSTER_ID}/users/{BOB_ID}")),
            &[PROVIDER],
            "",
        );
        assert_eq!(reply.status, 201);
    }

    #[test]
    fn with_the_switch_off_no_legacy_operation_serves_tokens() {
        let mut world = World::demo();
        let count = world.named_count();
        for (method, path) in all_operations() {
            let reply = call(&mut world, method, &api(&path), &[ALICE], "");
            assert!(
                reply.status == 404 || reply.status == 405,
                "{method} {path}: {}",
                reply.status
            );
            assert!(
                reply
                    .body
                    .as_ref()
                    .is_none_or(|b| b.get("token").is_none() && b.get("tokens").is_none()),
                "{method} {path}"
            );
        }
        assert_eq!(world.named_count(), count);
        assert!(world
            .named_token(&world.decode(ALICE_TOKEN).unwrap().id.clone())
            .is_some());
        world.serve_legacy(true);
        let reply = call(&mut world, "GET", &api(CLIENT_TOKENS), &[ALICE], "");
        assert_eq!(reply.status, 200);
    }

    #[test]
    fn client_tokens_are_year_long_named_access_tokens() {
        let mut world = legacy_world();
        let before = now();
        let reply = call(&mut world, "POST", &api(CLIENT_TOKENS), &[BOB], "");
        assert_eq!(reply.status, 200);
        let serialized = token_of(&reply);
        let token = stored(&world, &serialized);
        assert_eq!(token["subject"], json!({ "type": "user", "id": BOB_ID }));
        assert_eq!(token["type"], json!({ "accessToken": {} }));
        let valid_until = token["caveats"][0]["validUntil"].as_u64().unwrap();
        assert!((before + CLIENT_TOKEN_TTL..=now() + CLIENT_TOKEN_TTL).contains(&valid_until));
        assert_eq!(token["caveats"].as_array().unwrap().len(), 1);
        assert_eq!(token["caveats"][0]["type"], "time");
        let name = token["name"].as_str().unwrap();
        let time = name
            .strip_prefix("access token ")
            .and_then(|rest| rest.split(' ').next())
            .unwrap();
        assert_eq!(time.len(), 20, "{name}");
        assert!(time.ends_with('Z') && !time.contains(':'), "{name}");
        assert_eq!(&time[13..14], ".", "{name}");
        assert!(ends_with_hex_suffix(name), "{name}");
        // It authenticates bob.
        let me = call(
            &mut world,
            "GET",
            &api("/user"),
            &[("x-auth-token", &serialized)],
            "",
        );
        assert_eq!(me.body.unwrap()["userId"], BOB_ID);
        // Users only.
        let reply = call(&mut world, "POST", &api(CLIENT_TOKENS), &[PROVIDER], "");
        assert_eq!((reply.status, error_id(&reply)), (404, "notFound"));
        let reply = call(&mut world, "POST", &api(CLIENT_TOKENS), &[], "");
        assert_eq!((reply.status, error_id(&reply)), (401, "unauthorized"));
        let reply = call(&mut world, "POST", &api(CLIENT_TOKENS), &[BOB, JSON], "[]");
        assert_eq!((reply.status, error_id(&reply)), (400, "malformedData"));
        let reply = call(
            &mut world,
            "POST",
            &api(CLIENT_TOKENS),
            &[PROVIDER, JSON],
            "[]",
        );
        assert_eq!(reply.status, 404);
    }

    #[test]
    fn listing_shows_every_named_access_token_of_the_user() {
        let mut world = legacy_world();
        let created = token_of(&call(&mut world, "POST", &api(CLIENT_TOKENS), &[BOB], ""));
        let (_, session) = world.add_session_access_token(BOB_ID, "sess-1", "gui session");
        let revoked = call(
            &mut world,
            "POST",
            &api("/user/tokens/named"),
            &[BOB, JSON],
            r#"{"name":"revoked one","revoked":true}"#,
        );
        let revoked = revoked.body.unwrap()["token"].as_str().unwrap().to_string();
        // Not access tokens: not listed.
        world.grant(GROUP_ID, BOB_ID, &["group_add_user"]);
        let invite = token_of(&call(
            &mut world,
            "POST",
            &api(&format!("/groups/{GROUP_ID}/users/token")),
            &[BOB],
            "",
        ));
        call(
            &mut world,
            "POST",
            &api("/user/tokens/named"),
            &[BOB, JSON],
            r#"{"name":"who am i","type":{"identityToken":{}}}"#,
        );

        let reply = call(
            &mut world,
            "GET",
            &api(CLIENT_TOKENS),
            &[BOB, JSON],
            "[ignored",
        );
        assert_eq!(reply.status, 200);
        let listed: Vec<String> =
            serde_json::from_value(reply.body.unwrap()["tokens"].clone()).unwrap();
        let expected: Vec<String> = world
            .named_ids(&Subject::User(BOB_ID.to_string()))
            .iter()
            .map(|id| world.named_token(id).unwrap())
            .filter(|t| t.info.token_type.is_access())
            .map(|t| t.serialized.clone())
            .collect();
        assert_eq!(listed, expected);
        assert_eq!(listed.len(), 4, "{listed:?}");
        for token in [BOB_TOKEN, &created, &session, &revoked] {
            assert!(listed.iter().any(|t| t == token));
        }
        assert!(!listed.contains(&invite));
        assert_eq!(
            stored(&world, &session)["type"],
            json!({ "accessToken": { "sessionId": "sess-1" } })
        );
        // Users only.
        let reply = call(&mut world, "GET", &api(CLIENT_TOKENS), &[PROVIDER], "");
        assert_eq!((reply.status, error_id(&reply)), (404, "notFound"));
        let reply = call(&mut world, "GET", &api(CLIENT_TOKENS), &[], "");
        assert_eq!((reply.status, error_id(&reply)), (401, "unauthorized"));
    }

    #[test]
    fn deleting_a_client_token() {
        let mut world = legacy_world();
        let bobs = token_of(&call(&mut world, "POST", &api(CLIENT_TOKENS), &[BOB], ""));
        let path = |tid: &str| api(&CLIENT_TOKEN.replace("{tid}", tid));
        let delete = |world: &mut World, tid: &str, who: &[(&str, &str)]| {
            let reply = call(world, "DELETE", &path(tid), who, "{garbage");
            (
                reply.status,
                error_id(&reply).to_string(),
                reply.body.is_none(),
            )
        };
        let not_found = (404, "notFound".to_string(), false);
        assert_eq!(delete(&mut world, "garbage", &[ALICE]), not_found);
        assert_eq!(delete(&mut world, "MDAxnope", &[ALICE]), not_found);
        assert_eq!(
            delete(&mut world, &bobs, &[ALICE]),
            (403, "forbidden".to_string(), false)
        );
        assert_eq!(delete(&mut world, &bobs, &[PROVIDER]), not_found);
        assert_eq!(
            delete(&mut world, &bobs, &[]),
            (401, "unauthorized".to_string(), false)
        );
        assert_eq!(
            delete(&mut world, "garbage", &[]),
            (401, "unauthorized".to_string(), false)
        );
        // A temporary token is no named token.
        let temporary = call(
            &mut world,
            "POST",
            &api("/user/tokens/temporary"),
            &[BOB, JSON],
            &format!(
                r#"{{"caveats":[{{"type":"time","validUntil":{}}}]}}"#,
                now() + 600
            ),
        );
        let temporary = temporary.body.unwrap()["token"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(delete(&mut world, &temporary, &[BOB]), not_found);

        let count = world.named_count();
        assert_eq!(
            delete(&mut world, &bobs, &[BOB]),
            (204, String::new(), true)
        );
        assert_eq!(world.named_count(), count - 1);
        assert_eq!(delete(&mut world, &bobs, &[BOB]), not_found);
        // Any named token of the user goes, not only client tokens.
        let (_, session) = world.add_session_access_token(BOB_ID, "s", "gui");
        assert_eq!(delete(&mut world, &session, &[BOB]).0, 204);
        // As with DELETE /tokens/named/{id}, an admin may delete anyone's.
        world.grant_admin(BOB_ID, &["oz_tokens_manage"]);
        assert_eq!(delete(&mut world, ALICE_TOKEN, &[BOB]).0, 204);
        assert_eq!(
            world.authenticate_token(ALICE_TOKEN, now()).unwrap_err()["id"],
            "tokenInvalid"
        );
    }
}

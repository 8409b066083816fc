//! The tokens API's rules for request bodies: token types and invite targets, the name rule,
//! caveats, usage limits and invite privileges (oz-worker's `token_logic_plugin`,
//! `invite_tokens` and `token_metadata`, ctool's `token_type` and `caveats`).
//!
//! Onezone validates the required key first, then the optional ones in key order, then creates
//! the token (which is when a duplicate name shows); the functions here keep that order, so
//! the first error a body has is the one Onezone would report.

use std::collections::BTreeSet;

use serde_json::{json, Map, Value};

use super::errors::ApiError;
use super::world::{Kind, Subject, World};

/// Longest TTL a temporary token may have (`max_temporary_token_ttl` in Onezone's shipped
/// configuration).
pub(crate) const MAX_TEMPORARY_TTL: u64 = 2_592_000;

/// What an invite token targets, and who may issue it.
#[derive(Debug, PartialEq)]
pub(crate) struct InviteType {
    pub name: &'static str,
    /// The key of the target's id inside `{"inviteToken": {...}}`.
    pub target_key: &'static str,
    pub target: Target,
    /// The privilege in the target that lets a member issue the invite; `None` for
    /// `registerOneprovider`, which users issue for themselves (see [`World::may_invite`]).
    pub privilege: Option<&'static str>,
    /// The Onezone admin privilege that lets anyone issue it.
    pub admin_privilege: &'static str,
    /// For invites that make their consumer a member: the privileges the member gets unless
    /// the token says otherwise.
    pub default_privileges: Option<&'static [&'static str]>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    Entity(Kind),
    User,
}

impl InviteType {
    /// The kind whose member privileges this invite carries, if it carries any.
    pub(crate) fn carried_privileges(&self) -> Option<Kind> {
        match (self.target, self.default_privileges) {
            (Target::Entity(kind), Some(_)) => Some(kind),
            _ => None,
        }
    }
}

const GROUP_MEMBER: &[&str] = &["group_view"];
const SPACE_MEMBER: &[&str] = &[
    "space_read_data",
    "space_view",
    "space_view_transfers",
    "space_write_data",
];
const CLUSTER_MEMBER: &[&str] = &["cluster_view"];
const HARVESTER_MEMBER: &[&str] = &["harvester_view"];

/// Every invite type of Onezone 21.02's REST API (the swagger's `InviteToken` subclasses).
pub(crate) const INVITE_TYPES: &[InviteType] = &[
    InviteType {
        name: "userJoinGroup",
        target_key: "groupId",
        target: Target::Entity(Kind::Group),
        privilege: Some("group_add_user"),
        admin_privilege: "oz_groups_add_relationships",
        default_privileges: Some(GROUP_MEMBER),
    },
    InviteType {
        name: "groupJoinGroup",
        target_key: "groupId",
        target: Target::Entity(Kind::Group),
        privilege: Some("group_add_child"),
        admin_privilege: "oz_groups_add_relationships",
        default_privileges: Some(GROUP_MEMBER),
    },
    InviteType {
        name: "userJoinSpace",
        target_key: "spaceId",
        target: Target::Entity(Kind::Space),
        privilege: Some("space_add_user"),
        admin_privilege: "oz_spaces_add_relationships",
        default_privileges: Some(SPACE_MEMBER),
    },
    InviteType {
        name: "groupJoinSpace",
        target_key: "spaceId",
        target: Target::Entity(Kind::Space),
        privilege: Some("space_add_group"),
        admin_privilege: "oz_spaces_add_relationships",
        default_privileges: Some(SPACE_MEMBER),
    },
    InviteType {
        name: "supportSpace",
        target_key: "spaceId",
        target: Target::Entity(Kind::Space),
        privilege: Some("space_add_support"),
        admin_privilege: "oz_spaces_add_relationships",
        default_privileges: None,
    },
    InviteType {
        name: "harvesterJoinSpace",
        target_key: "spaceId",
        target: Target::Entity(Kind::Space),
        privilege: Some("space_add_harvester"),
        admin_privilege: "oz_spaces_add_relationships",
        default_privileges: None,
    },
    InviteType {
        name: "registerOneprovider",
        target_key: "adminUserId",
        target: Target::User,
        privilege: None,
        admin_privilege: "oz_providers_invite",
        default_privileges: None,
    },
    InviteType {
        name: "userJoinCluster",
        target_key: "clusterId",
        target: Target::Entity(Kind::Cluster),
        privilege: Some("cluster_add_user"),
        admin_privilege: "oz_clusters_add_relationships",
        // Onezone really does make invited users cluster admins by default.
        default_privileges: Some(Kind::Cluster.privileges()),
    },
    InviteType {
        name: "groupJoinCluster",
        target_key: "clusterId",
        target: Target::Entity(Kind::Cluster),
        privilege: Some("cluster_add_group"),
        admin_privilege: "oz_clusters_add_relationships",
        default_privileges: Some(CLUSTER_MEMBER),
    },
    InviteType {
        name: "userJoinHarvester",
        target_key: "harvesterId",
        target: Target::Entity(Kind::Harvester),
        privilege: Some("harvester_add_user"),
        admin_privilege: "oz_harvesters_add_relationships",
        default_privileges: Some(HARVESTER_MEMBER),
    },
    InviteType {
        name: "groupJoinHarvester",
        target_key: "harvesterId",
        target: Target::Entity(Kind::Harvester),
        privilege: Some("harvester_add_group"),
        admin_privilege: "oz_harvesters_add_relationships",
        default_privileges: Some(HARVESTER_MEMBER),
    },
    InviteType {
        name: "spaceJoinHarvester",
        target_key: "harvesterId",
        target: Target::Entity(Kind::Harvester),
        privilege: Some("harvester_add_space"),
        admin_privilege: "oz_harvesters_add_relationships",
        default_privileges: None,
    },
];

/// A token's type, as `{"accessToken": {}}`, `{"identityToken": {}}` or
/// `{"inviteToken": {"inviteType": ..., "<targetKey>": ...}}`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TokenType {
    Access,
    /// An access token bound to a (GUI) session: `{"accessToken": {"sessionId": ...}}`. Only
    /// [`World::add_session_access_token`] makes one; request bodies never may.
    SessionAccess(String),
    Identity,
    Invite {
        invite: &'static InviteType,
        target: String,
    },
}

impl TokenType {
    /// Parses a token type; `None` when it is not exactly one of the three shapes. Keys
    /// Onezone would ignore are refused, except `parameters`, which `supportSpace` documents.
    pub(crate) fn from_json(value: &Value) -> Option<TokenType> {
        let outer = value.as_object()?;
        if outer.len() != 1 {
            return None;
        }
        let (kind, inner) = outer.iter().next()?;
        let inner = inner.as_object()?;
        match kind.as_str() {
            "accessToken" if inner.is_empty() => Some(TokenType::Access),
            "identityToken" if inner.is_empty() => Some(TokenType::Identity),
            "inviteToken" => {
                let name = inner.get("inviteType")?.as_str()?;
                let invite = INVITE_TYPES.iter().find(|t| t.name == name)?;
                let target = inner.get(invite.target_key)?.as_str()?;
                let known = |key: &str| {
                    key == "inviteType"
                        || key == invite.target_key
                        || (key == "parameters" && invite.name == "supportSpace")
                };
                if !inner.keys().all(|k| known(k)) {
                    return None;
                }
                if inner.get("parameters").is_some_and(|p| !p.is_object()) {
                    return None;
                }
                Some(TokenType::Invite {
                    invite,
                    target: target.to_string(),
                })
            }
            _ => None,
        }
    }

    pub(crate) fn to_json(&self) -> Value {
        match self {
            TokenType::Access => json!({ "accessToken": {} }),
            TokenType::SessionAccess(session) => json!({ "accessToken": { "sessionId": session } }),
            TokenType::Identity => json!({ "identityToken": {} }),
            TokenType::Invite { invite, target } => json!({
                "inviteToken": { "inviteType": invite.name, invite.target_key: target }
            }),
        }
    }

    /// An access token, session-bound or not (Onezone's `?ACCESS_TOKEN` record pattern).
    pub(crate) fn is_access(&self) -> bool {
        matches!(self, TokenType::Access | TokenType::SessionAccess(_))
    }

    fn invite(&self) -> Option<&'static InviteType> {
        match self {
            TokenType::Invite { invite, .. } => Some(invite),
            _ => None,
        }
    }
}

/// Onezone's name rule: 2-128 characters; letters, digits, brackets and underscores anywhere;
/// spaces, dots and dashes only in the middle.
pub(crate) fn is_valid_name(name: &str) -> bool {
    let edge = |c: char| c.is_alphanumeric() || matches!(c, '(' | ')' | '_');
    let middle = |c: char| edge(c) || matches!(c, ' ' | '.' | '-');
    let count = name.chars().count();
    (2..=128).contains(&count)
        && name.chars().next().is_some_and(edge)
        && name.chars().last().is_some_and(edge)
        && name.chars().all(middle)
}

/// A validated `POST .../tokens/named` body.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct NamedRequest {
    pub name: String,
    pub token_type: TokenType,
    pub caveats: Vec<Value>,
    pub custom_metadata: Value,
    pub revoked: bool,
    /// A positive integer or `"infinity"` (the default); kept for invite tokens only.
    pub usage_limit: Value,
    /// Custom privileges for an invite that carries member privileges, sorted.
    pub privileges: Option<Vec<String>>,
}

/// A validated `POST .../tokens/temporary` body.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TemporaryRequest {
    pub token_type: TokenType,
    pub caveats: Vec<Value>,
}

/// A validated `PATCH /tokens/named/{id}` body.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct TokenUpdate {
    pub name: Option<String>,
    pub custom_metadata: Option<Value>,
    pub revoked: Option<bool>,
}

/// Validates a named token request from `subject`; the name's uniqueness is checked when the
/// token is stored ([`World::create_named`]).
pub(crate) fn named_request(
    world: &World,
    subject: &Subject,
    body: &Map<String, Value>,
) -> Result<NamedRequest, ApiError> {
    let name = match body.get("name") {
        None => return Err(ApiError::missing_required_value("name")),
        Some(Value::String(name)) => name,
        Some(_) => return Err(ApiError::bad_value_string("name")),
    };
    if !is_valid_name(name) {
        return Err(ApiError::bad_value_name());
    }
    let token_type = token_type(body.get("type"))?;
    let invite = token_type.invite();
    for key in body.keys() {
        match key.as_str() {
            "name" | "type" | "caveats" | "customMetadata" | "revoked" => {}
            "usageLimit" if invite.is_some() => {}
            "privileges" if invite.and_then(InviteType::carried_privileges).is_some() => {}
            "usageLimit" => {
                return Err(ApiError::unexpected_key(key, "only invite tokens have one"))
            }
            "privileges" => {
                return Err(ApiError::unexpected_key(
                    key,
                    "only invite tokens that make their consumer a member carry privileges",
                ))
            }
            _ => return Err(ApiError::unexpected_key(key, "not a named token property")),
        }
    }
    let caveats = caveats(body.get("caveats"))?;
    let custom_metadata = custom_metadata(body.get("customMetadata"))?.unwrap_or(json!({}));
    let privileges = match (
        body.get("privileges"),
        invite.and_then(InviteType::carried_privileges),
    ) {
        (Some(requested), Some(kind)) => Some(privileges(requested, kind)?),
        _ => None,
    };
    let revoked = revoked(body.get("revoked"))?.unwrap_or(false);
    check_invitation(world, subject, &token_type, privileges.is_some())?;
    let usage_limit = match body.get("usageLimit") {
        Some(limit) => usage_limit(limit)?,
        None => json!("infinity"),
    };
    Ok(NamedRequest {
        name: name.clone(),
        token_type,
        caveats,
        custom_metadata,
        revoked,
        usage_limit,
        privileges,
    })
}

/// Validates a temporary token request from `subject`, at `now` (UNIX seconds).
pub(crate) fn temporary_request(
    world: &World,
    subject: &Subject,
    body: &Map<String, Value>,
    now: u64,
) -> Result<TemporaryRequest, ApiError> {
    let token_type = token_type(body.get("type"))?;
    if let Some(key) = body
        .keys()
        .find(|k| !matches!(k.as_str(), "type" | "caveats"))
    {
        return Err(ApiError::unexpected_key(
            key,
            "temporary tokens take only \"type\" and \"caveats\"",
        ));
    }
    let caveats = caveats(body.get("caveats"))?;
    // Temporary tokens never carry custom privileges.
    check_invitation(world, subject, &token_type, false)?;
    let ttl = caveats
        .iter()
        .filter(|c| c["type"] == "time")
        .filter_map(|c| c["validUntil"].as_u64())
        .min()
        .map(|valid_until| i128::from(valid_until) - i128::from(now));
    match ttl {
        Some(ttl) if ttl <= i128::from(MAX_TEMPORARY_TTL) => Ok(TemporaryRequest {
            token_type,
            caveats,
        }),
        _ => Err(ApiError::token_time_caveat_required(MAX_TEMPORARY_TTL)),
    }
}

/// Validates a named token update: at least one of `name`, `customMetadata`, `revoked`.
pub(crate) fn token_update(body: &Map<String, Value>) -> Result<TokenUpdate, ApiError> {
    const KEYS: [&str; 3] = ["name", "customMetadata", "revoked"];
    if let Some(key) = body.keys().find(|k| !KEYS.contains(&k.as_str())) {
        return Err(ApiError::unexpected_key(
            key,
            "not a modifiable token property",
        ));
    }
    if body.is_empty() {
        return Err(ApiError::missing_at_least_one_value(&KEYS));
    }
    let name = match body.get("name") {
        None => None,
        Some(Value::String(name)) if is_valid_name(name) => Some(name.clone()),
        Some(Value::String(_)) => return Err(ApiError::bad_value_name()),
        Some(_) => return Err(ApiError::bad_value_string("name")),
    };
    Ok(TokenUpdate {
        name,
        custom_metadata: custom_metadata(body.get("customMetadata"))?,
        revoked: revoked(body.get("revoked"))?,
    })
}

/// Validates a list of `kind` privileges under the key `privileges`; returns it sorted,
/// without duplicates, as Onezone stores privileges.
pub(crate) fn privileges(value: &Value, kind: Kind) -> Result<Vec<String>, ApiError> {
    let items = value
        .as_array()
        .filter(|items| items.iter().all(Value::is_string))
        .ok_or_else(|| ApiError::bad_value_list_of_strings("privileges"))?;
    let allowed = kind.privileges();
    let mut out = BTreeSet::new();
    for item in items.iter().filter_map(Value::as_str) {
        if !allowed.contains(&item) {
            return Err(ApiError::bad_value_list_not_allowed("privileges", allowed));
        }
        out.insert(item.to_string());
    }
    Ok(out.into_iter().collect())
}

fn token_type(value: Option<&Value>) -> Result<TokenType, ApiError> {
    match value {
        None => Ok(TokenType::Access),
        Some(value) => {
            TokenType::from_json(value).ok_or_else(|| ApiError::bad_value_token_type("type"))
        }
    }
}

fn caveats(value: Option<&Value>) -> Result<Vec<Value>, ApiError> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    let list = value
        .as_array()
        .ok_or_else(|| ApiError::bad_data("caveats"))?;
    match list.iter().find(|c| !is_valid_caveat(c)) {
        Some(bad) => Err(ApiError::bad_value_caveat(bad)),
        None => Ok(list.clone()),
    }
}

/// The caveat types of Onezone 21.02 and their required fields.
fn is_valid_caveat(caveat: &Value) -> bool {
    let Some(caveat) = caveat.as_object() else {
        return false;
    };
    let list_of = |key: &str, item: fn(&Value) -> bool| {
        caveat
            .get(key)
            .and_then(Value::as_array)
            .is_some_and(|items| items.iter().all(item))
    };
    let one_of = |key: &str, allowed: &[&str]| {
        caveat
            .get(key)
            .and_then(Value::as_str)
            .is_some_and(|v| allowed.contains(&v))
    };
    match caveat.get("type").and_then(Value::as_str) {
        Some("time") => caveat
            .get("validUntil")
            .is_some_and(|v| v.as_u64().is_some()),
        Some("ip" | "service" | "consumer" | "api" | "data.path" | "data.objectid") => {
            list_of("whitelist", Value::is_string)
        }
        Some("asn") => list_of("whitelist", |v| v.as_u64().is_some()),
        Some("geo.country" | "geo.region") => {
            one_of("filter", &["whitelist", "blacklist"]) && list_of("list", Value::is_string)
        }
        Some("interface") => one_of("interface", &["rest", "oneclient", "graphsync"]),
        Some("data.readonly") => true,
        _ => false,
    }
}

fn custom_metadata(value: Option<&Value>) -> Result<Option<Value>, ApiError> {
    match value {
        None => Ok(None),
        Some(v @ Value::Object(_)) => Ok(Some(v.clone())),
        Some(_) => Err(ApiError::bad_value_json("customMetadata")),
    }
}

fn revoked(value: Option<&Value>) -> Result<Option<bool>, ApiError> {
    match value {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(ApiError::bad_value_boolean("revoked")),
    }
}

fn usage_limit(value: &Value) -> Result<Value, ApiError> {
    const KEY: &str = "usageLimit";
    match value {
        Value::String(s) if s == "infinity" => Ok(value.clone()),
        Value::Number(n) if n.as_u64().is_some_and(|n| n >= 1) => Ok(value.clone()),
        Value::Number(n) if n.as_i64().is_some() => Err(ApiError::bad_value_too_low(KEY, 1)),
        _ => Err(ApiError::bad_value_integer(KEY)),
    }
}

/// For an invite token: the target must exist and `subject` must be allowed to invite to it
/// (and to set privileges, when the token carries custom ones).
fn check_invitation(
    world: &World,
    subject: &Subject,
    token_type: &TokenType,
    custom_privileges: bool,
) -> Result<(), ApiError> {
    let TokenType::Invite { invite, target } = token_type else {
        return Ok(());
    };
    if !world.target_exists(invite.target, target) {
        return Err(ApiError::invite_token_target_id_invalid(target));
    }
    if !world.may_invite(subject, invite, target) {
        return Err(ApiError::invite_token_subject_not_authorized());
    }
    if custom_privileges {
        if let Some(kind) = invite.carried_privileges() {
            if !world.may_set_privileges(subject, kind, target) {
                return Err(ApiError::invite_token_subject_not_authorized());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::*;

    fn alice() -> Subject {
        Subject::User(ALICE_ID.to_string())
    }

    fn bob() -> Subject {
        Subject::User(BOB_ID.to_string())
    }

    fn provider() -> Subject {
        Subject::Provider(PROVIDER_ID.to_string())
    }

    fn object(body: Value) -> Map<String, Value> {
        match body {
            Value::Object(map) => map,
            other => panic!("not an object: {other}"),
        }
    }

    fn named_in(world: &World, subject: &Subject, body: Value) -> Result<NamedRequest, ApiError> {
        named_request(world, subject, &object(body))
    }

    fn named(subject: &Subject, body: Value) -> Result<NamedRequest, ApiError> {
        named_in(&World::demo(), subject, body)
    }

    fn error<T: std::fmt::Debug>(result: Result<T, ApiError>) -> ApiError {
        result.expect_err("an error")
    }

    fn invite(invite_type: &str, key: &str, target: &str) -> Value {
        json!({ "inviteToken": { "inviteType": invite_type, key: target } })
    }

    #[test]
    fn name_rule() {
        let longest = "a".repeat(128);
        for ok in [
            "ab",
            "New Token",
            "a.b-c d",
            "(x)",
            "__",
            "Zażółć 1",
            longest.as_str(),
        ] {
            assert!(is_valid_name(ok), "{ok:?} should be valid");
        }
        let too_long = "a".repeat(129);
        for bad in [
            "",
            "a",
            " ab",
            "ab ",
            ".ab",
            "ab.",
            "-ab",
            "ab-",
            "a/b",
            "a'b",
            "a,b",
            too_long.as_str(),
        ] {
            assert!(!is_valid_name(bad), "{bad:?} should be invalid");
        }
    }

    #[test]
    fn every_invite_type_takes_exactly_its_target_key() {
        assert_eq!(INVITE_TYPES.len(), 12);
        for t in INVITE_TYPES {
            let good = invite(t.name, t.target_key, "x1");
            let parsed = TokenType::from_json(&good).expect(t.name);
            assert_eq!(parsed.to_json(), good, "{} round-trips", t.name);
            for other in INVITE_TYPES.iter().filter(|o| o.target_key != t.target_key) {
                let wrong = invite(t.name, other.target_key, "x1");
                assert_eq!(
                    TokenType::from_json(&wrong),
                    None,
                    "{} with {}",
                    t.name,
                    other.target_key
                );
            }
        }
    }

    #[test]
    fn malformed_token_types_are_refused() {
        let bad = [
            json!("accessToken"),
            json!({}),
            json!({ "accessToken": {}, "identityToken": {} }),
            json!({ "accessToken": { "x": 1 } }),
            json!({ "accessToken": null }),
            json!({ "refreshToken": {} }),
            json!({ "inviteToken": { "inviteType": "userJoinGroup" } }),
            json!({ "inviteToken": { "inviteType": "userJoinGroup", "groupId": 7 } }),
            json!({ "inviteToken": { "inviteType": "userJoinGroup", "groupId": "g", "extra": 1 } }),
            json!({ "inviteToken": { "inviteType": "userJoinGroup", "groupId": "g", "parameters": {} } }),
            json!({ "inviteToken": { "inviteType": "userJoinAtmInventory", "atmInventoryId": "a" } }),
            json!({ "inviteToken": { "inviteType": "supportSpace", "spaceId": "s", "parameters": 1 } }),
        ];
        for value in bad {
            assert_eq!(TokenType::from_json(&value), None, "{value}");
        }
        assert_eq!(
            TokenType::from_json(&json!({ "identityToken": {} })),
            Some(TokenType::Identity)
        );
        let support = json!({ "inviteToken": {
            "inviteType": "supportSpace", "spaceId": "s", "parameters": { "dataWrite": "global" }
        }});
        assert!(TokenType::from_json(&support).is_some());
    }

    #[test]
    fn a_bare_name_makes_an_access_token() {
        let request = named(&bob(), json!({ "name": "new-token-1" })).unwrap();
        assert_eq!(request.token_type, TokenType::Access);
        assert_eq!(request.usage_limit, json!("infinity"));
        assert!(!request.revoked);
        assert_eq!(request.custom_metadata, json!({}));
        assert_eq!(request.caveats, Vec::<Value>::new());
    }

    #[test]
    fn the_name_is_required_and_checked() {
        let e = error(named(&bob(), json!({})));
        assert_eq!((e.status, e.id()), (400, "missingRequiredValue"));
        assert_eq!(e.body["error"]["details"]["key"], "name");
        assert_eq!(
            error(named(&bob(), json!({ "name": 5 }))).id(),
            "badValueString"
        );
        assert_eq!(
            error(named(&bob(), json!({ "name": " x " }))).id(),
            "badValueName"
        );
        // The name is checked before anything else in the body.
        let e = error(named(&bob(), json!({ "name": "a", "type": "nonsense" })));
        assert_eq!(e.id(), "badValueName");
    }

    #[test]
    fn a_bad_type_is_bad_value_token_type() {
        let e = error(named(
            &alice(),
            json!({ "name": "t1", "type": invite("userJoinGroup", "spaceId", GROUP_ID) }),
        ));
        assert_eq!((e.status, e.id()), (400, "badValueTokenType"));
        assert_eq!(e.body["error"]["details"]["key"], "type");
    }

    #[test]
    fn usage_limit_is_for_invites_and_at_least_one() {
        let group = invite("userJoinGroup", "groupId", GROUP_ID);
        for ok in [json!(1), json!(15), json!("infinity")] {
            let r = named(
                &alice(),
                json!({ "name": "t1", "type": group, "usageLimit": ok }),
            )
            .unwrap();
            assert_eq!(r.usage_limit, ok);
        }
        for low in [json!(0), json!(-3)] {
            let e = error(named(
                &alice(),
                json!({ "name": "t1", "type": group, "usageLimit": low }),
            ));
            assert_eq!(e.id(), "badValueTooLow");
            assert_eq!(
                e.body["error"]["details"],
                json!({ "key": "usageLimit", "limit": 1 })
            );
        }
        for bad in [json!(1.5), json!("5"), json!(null), json!([1])] {
            let e = error(named(
                &alice(),
                json!({ "name": "t1", "type": group, "usageLimit": bad }),
            ));
            assert_eq!(e.id(), "badValueInteger", "{bad}");
        }
        let e = error(named(&alice(), json!({ "name": "t1", "usageLimit": 1 })));
        assert_eq!(
            (e.id(), &e.body["error"]["details"]["key"]),
            ("badData", &json!("usageLimit"))
        );
    }

    #[test]
    fn privileges_are_for_member_invites_and_must_be_known() {
        let group = invite("userJoinGroup", "groupId", GROUP_ID);
        let r = named(
            &alice(),
            json!({ "name": "t1", "type": group, "privileges": ["group_view", "group_add_user", "group_view"] }),
        )
        .unwrap();
        assert_eq!(
            r.privileges,
            Some(vec!["group_add_user".to_string(), "group_view".to_string()])
        );

        let e = error(named(
            &alice(),
            json!({ "name": "t1", "type": group, "privileges": ["space_view"] }),
        ));
        assert_eq!(e.id(), "badValueListNotAllowed");
        assert_eq!(
            e.body["error"]["details"]["allowed"],
            json!(Kind::Group.privileges())
        );
        let e = error(named(
            &alice(),
            json!({ "name": "t1", "type": group, "privileges": "group_view" }),
        ));
        assert_eq!(e.id(), "badValueListOfStrings");

        let support = invite("supportSpace", "spaceId", SPACE_ID);
        let e = error(named(
            &alice(),
            json!({ "name": "t1", "type": support, "privileges": [] }),
        ));
        assert_eq!(e.id(), "badData");
        let e = error(named(&alice(), json!({ "name": "t1", "privileges": [] })));
        assert_eq!(e.id(), "badData");
    }

    #[test]
    fn custom_privileges_need_the_set_privileges_privilege() {
        let mut world = World::demo();
        world.grant(GROUP_ID, BOB_ID, &["group_add_user"]);
        let group = invite("userJoinGroup", "groupId", GROUP_ID);
        assert!(named_in(&world, &bob(), json!({ "name": "t1", "type": group })).is_ok());
        let custom = json!({ "name": "t1", "type": group, "privileges": ["group_view"] });
        let e = error(named_in(&world, &bob(), custom.clone()));
        assert_eq!(e.id(), "inviteTokenSubjectNotAuthorized");
        world.grant_admin(BOB_ID, &["oz_groups_set_privileges"]);
        assert!(named_in(&world, &bob(), custom).is_ok());
    }

    #[test]
    fn invite_targets_must_exist() {
        let missing = "00000000000000000000000000000000";
        for t in INVITE_TYPES {
            let body = json!({ "name": "t1", "type": invite(t.name, t.target_key, missing) });
            let e = error(named(&alice(), body));
            assert_eq!(
                (e.status, e.id()),
                (400, "inviteTokenTargetIdInvalid"),
                "{}",
                t.name
            );
            assert_eq!(e.body["error"]["details"]["id"], missing);
        }
    }

    #[test]
    fn only_allowed_subjects_may_invite() {
        let targets = [
            ("userJoinGroup", "groupId", GROUP_ID),
            ("groupJoinGroup", "groupId", GROUP_ID),
            ("userJoinSpace", "spaceId", SPACE_ID),
            ("groupJoinSpace", "spaceId", SPACE_ID),
            ("supportSpace", "spaceId", SPACE_ID),
            ("harvesterJoinSpace", "spaceId", SPACE_ID),
            ("userJoinCluster", "clusterId", CLUSTER_ID),
            ("groupJoinCluster", "clusterId", CLUSTER_ID),
            ("userJoinHarvester", "harvesterId", HARVESTER_ID),
            ("groupJoinHarvester", "harvesterId", HARVESTER_ID),
            ("spaceJoinHarvester", "harvesterId", HARVESTER_ID),
        ];
        for (name, key, target) in targets {
            let body = json!({ "name": "t1", "type": invite(name, key, target) });
            assert!(named(&alice(), body.clone()).is_ok(), "alice: {name}");
            let e = error(named(&bob(), body.clone()));
            assert_eq!(e.id(), "inviteTokenSubjectNotAuthorized", "bob: {name}");
            let by_provider = named(&provider(), body);
            assert_eq!(by_provider.is_ok(), key == "clusterId", "provider: {name}");
        }
        // A Oneprovider may invite only to its own cluster.
        let onezone = json!({ "name": "t1", "type": invite("userJoinCluster", "clusterId", ONEZONE_CLUSTER_ID) });
        assert_eq!(
            error(named(&provider(), onezone.clone())).id(),
            "inviteTokenSubjectNotAuthorized"
        );
        assert_eq!(
            error(named(&alice(), onezone.clone())).id(),
            "inviteTokenSubjectNotAuthorized"
        );
        // An admin privilege stands in for membership.
        let mut world = World::demo();
        world.grant_admin(BOB_ID, &["oz_clusters_add_relationships"]);
        assert!(named_in(&world, &bob(), onezone).is_ok());
    }

    #[test]
    fn registration_tokens_are_for_oneself_while_the_policy_is_open() {
        let for_user = |id: &str| json!({ "name": "t1", "type": invite("registerOneprovider", "adminUserId", id) });
        let mut world = World::demo();
        assert!(named_in(&world, &bob(), for_user(BOB_ID)).is_ok());
        let e = error(named_in(&world, &bob(), for_user(ALICE_ID)));
        assert_eq!(e.id(), "inviteTokenSubjectNotAuthorized");
        assert!(named_in(&world, &provider(), for_user(BOB_ID)).is_err());

        world.set_registration_policy(false);
        assert!(named_in(&world, &bob(), for_user(BOB_ID)).is_err());
        world.grant_admin(BOB_ID, &["oz_providers_invite"]);
        assert!(named_in(&world, &bob(), for_user(BOB_ID)).is_ok());
        assert!(named_in(&world, &bob(), for_user(ALICE_ID)).is_ok());
    }

    #[test]
    fn caveats_must_be_known_and_well_formed() {
        let ok = json!([
            { "type": "time", "validUntil": 1571147494 },
            { "type": "ip", "whitelist": ["189.34.15.0/8"] },
            { "type": "asn", "whitelist": [631] },
            { "type": "geo.region", "filter": "blacklist", "list": ["Asia"] },
            { "type": "interface", "interface": "rest" },
            { "type": "data.readonly" },
        ]);
        let r = named(&bob(), json!({ "name": "t1", "caveats": ok })).unwrap();
        assert_eq!(json!(r.caveats), ok);
        for bad in [
            json!({ "type": "time", "validUntil": "tomorrow" }),
            json!({ "type": "time" }),
            json!({ "type": "lunar" }),
            json!({ "type": "interface", "interface": "ftp" }),
            json!("time"),
        ] {
            let e = error(named(&bob(), json!({ "name": "t1", "caveats": [bad] })));
            assert_eq!(e.id(), "badValueCaveat");
            assert_eq!(e.body["error"]["details"]["caveat"], bad);
        }
        assert_eq!(
            error(named(&bob(), json!({ "name": "t1", "caveats": {} }))).id(),
            "badData"
        );
    }

    #[test]
    fn other_values_have_their_types() {
        let e = error(named(&bob(), json!({ "name": "t1", "customMetadata": [] })));
        assert_eq!(e.id(), "badValueJSON");
        let e = error(named(&bob(), json!({ "name": "t1", "revoked": "yes" })));
        assert_eq!(e.id(), "badValueBoolean");
        let e = error(named(&bob(), json!({ "name": "t1", "ttl": 60 })));
        assert_eq!(
            (e.id(), &e.body["error"]["details"]["key"]),
            ("badData", &json!("ttl"))
        );
    }

    #[test]
    fn temporary_tokens_need_a_short_time_caveat() {
        let world = World::demo();
        let now = 1_700_000_000;
        let temporary = |body: Value| temporary_request(&world, &bob(), &object(body), now);
        let within =
            json!({ "caveats": [{ "type": "time", "validUntil": now + MAX_TEMPORARY_TTL }] });
        assert_eq!(temporary(within).unwrap().token_type, TokenType::Access);
        for body in [
            json!({}),
            json!({ "caveats": [{ "type": "time", "validUntil": now + MAX_TEMPORARY_TTL + 1 }] }),
            json!({ "caveats": [{ "type": "ip", "whitelist": [] }] }),
        ] {
            let e = error(temporary(body));
            assert_eq!((e.status, e.id()), (400, "tokenTimeCaveatRequired"));
            assert_eq!(e.body["error"]["details"]["maxTtl"], MAX_TEMPORARY_TTL);
        }
        let caveat = json!([{ "type": "time", "validUntil": now + 60 }]);
        for key in ["usageLimit", "privileges", "name"] {
            let e = error(temporary(json!({ "caveats": caveat, key: 1 })));
            assert_eq!(e.id(), "badData", "{key}");
        }
        // Invite checks apply to temporary tokens too.
        let group = invite("userJoinGroup", "groupId", GROUP_ID);
        let e = error(temporary(json!({ "type": group, "caveats": caveat })));
        assert_eq!(e.id(), "inviteTokenSubjectNotAuthorized");
    }

    #[test]
    fn updates_need_at_least_one_known_key() {
        let e = error(token_update(&Map::new()));
        assert_eq!(e.id(), "missingAtLeastOneValue");
        assert_eq!(
            error(token_update(&object(json!({ "usageLimit": 2 })))).id(),
            "badData"
        );
        assert_eq!(
            error(token_update(&object(json!({ "name": "-x" })))).id(),
            "badValueName"
        );
        let update = token_update(&object(json!({ "revoked": true }))).unwrap();
        assert_eq!(update.revoked, Some(true));
    }
}

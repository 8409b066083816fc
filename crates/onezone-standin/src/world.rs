//! The seeded model of a Onezone: users, Oneproviders, groups, spaces, clusters, harvesters,
//! the privileges of their members, and every token issued so far.
//!
//! Membership is direct only (no privileges inherited through groups), which is all the
//! proxy's tests need.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use rand::distributions::Alphanumeric;
use rand::Rng;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::errors::{auth, ApiError};
use super::rules::{InviteType, NamedRequest, Target, TemporaryRequest, TokenType, TokenUpdate};

/// The id of Onezone's own cluster, present in every world.
pub(crate) const ONEZONE_CLUSTER: &str = "onezone";

/// The entities users are members of, each with its own privileges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Kind {
    Group,
    Space,
    Cluster,
    Harvester,
}

impl Kind {
    /// Every member privilege of this kind (the swagger's `*Privileges` enums).
    pub(crate) const fn privileges(self) -> &'static [&'static str] {
        match self {
            Kind::Group => &[
                "group_view",
                "group_update",
                "group_delete",
                "group_view_privileges",
                "group_set_privileges",
                "group_add_parent",
                "group_leave_parent",
                "group_add_child",
                "group_remove_child",
                "group_add_user",
                "group_remove_user",
                "group_add_space",
                "group_leave_space",
                "group_create_handle_service",
                "group_leave_handle_service",
                "group_create_handle",
                "group_leave_handle",
                "group_add_harvester",
                "group_remove_harvester",
            ],
            Kind::Space => &[
                "space_view",
                "space_update",
                "space_delete",
                "space_view_privileges",
                "space_set_privileges",
                "space_read_data",
                "space_write_data",
                "space_register_files",
                "space_manage_shares",
                "space_view_views",
                "space_manage_views",
                "space_query_views",
                "space_view_statistics",
                "space_view_changes_stream",
                "space_view_transfers",
                "space_schedule_replication",
                "space_cancel_replication",
                "space_schedule_eviction",
                "space_cancel_eviction",
                "space_view_qos",
                "space_manage_qos",
                "space_add_user",
                "space_remove_user",
                "space_add_group",
                "space_remove_group",
                "space_add_support",
                "space_remove_support",
                "space_add_harvester",
                "space_remove_harvester",
            ],
            Kind::Cluster => &[
                "cluster_view",
                "cluster_update",
                "cluster_delete",
                "cluster_view_privileges",
                "cluster_set_privileges",
                "cluster_add_user",
                "cluster_remove_user",
                "cluster_add_group",
                "cluster_remove_group",
            ],
            Kind::Harvester => &[
                "harvester_view",
                "harvester_update",
                "harvester_delete",
                "harvester_view_privileges",
                "harvester_set_privileges",
                "harvester_add_user",
                "harvester_remove_user",
                "harvester_add_group",
                "harvester_remove_group",
                "harvester_add_space",
                "harvester_remove_space",
            ],
        }
    }

    /// The member privilege needed to hand out custom privileges in an invite.
    fn set_privileges(self) -> &'static str {
        match self {
            Kind::Group => "group_set_privileges",
            Kind::Space => "space_set_privileges",
            Kind::Cluster => "cluster_set_privileges",
            Kind::Harvester => "harvester_set_privileges",
        }
    }

    /// The admin privilege that does the same for any entity of this kind.
    fn admin_set_privileges(self) -> &'static str {
        match self {
            Kind::Group => "oz_groups_set_privileges",
            Kind::Space => "oz_spaces_set_privileges",
            Kind::Cluster => "oz_clusters_set_privileges",
            Kind::Harvester => "oz_harvesters_set_privileges",
        }
    }
}

/// Whom a token (or a request) acts for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Subject {
    User(String),
    Provider(String),
}

impl Subject {
    pub(crate) fn to_json(&self) -> Value {
        match self {
            Subject::User(id) => json!({ "type": "user", "id": id }),
            Subject::Provider(id) => json!({ "type": "oneprovider", "id": id }),
        }
    }
}

/// What a serialized token says about itself; Onezone's tokens are self-describing, so
/// `POST /tokens/examine` can read this even after a named token is deleted.
#[derive(Debug, Clone)]
pub(crate) struct TokenInfo {
    pub id: String,
    pub subject: Subject,
    pub named: bool,
    pub token_type: TokenType,
    pub caveats: Vec<Value>,
}

/// A stored named token.
#[derive(Debug, Clone)]
pub(crate) struct NamedToken {
    pub info: TokenInfo,
    pub name: String,
    pub metadata: Value,
    pub revoked: bool,
    pub serialized: String,
}

impl NamedToken {
    /// The token as `GET /tokens/named/{id}` returns it.
    pub(crate) fn to_json(&self) -> Value {
        json!({
            "id": self.info.id,
            "name": self.name,
            "subject": self.info.subject.to_json(),
            "type": self.info.token_type.to_json(),
            "caveats": self.info.caveats,
            "metadata": self.metadata,
            "revoked": self.revoked,
            "token": self.serialized,
        })
    }
}

#[derive(Debug, Clone)]
struct User {
    full_name: String,
    /// Basic auth login and password, when enabled for the user.
    basic: Option<(String, String)>,
    oz_privileges: BTreeSet<String>,
    creation_time: u64,
}

#[derive(Debug, Clone)]
struct Entity {
    name: String,
    /// Member user id → that member's privileges.
    members: BTreeMap<String, BTreeSet<String>>,
}

/// The seeded Onezone the stand-in serves. Build one with [`World::new`] or [`World::demo`]
/// and the builder methods, then hand it to [`StandIn::start`](super::StandIn::start).
///
/// The builder methods panic on ids that do not exist: they describe test fixtures, where
/// a typo should fail loudly.
#[derive(Debug, Clone)]
pub struct World {
    domain: String,
    registration_open: bool,
    users: BTreeMap<String, User>,
    /// Groups, spaces, clusters and harvesters. A Oneprovider is known by its cluster, which
    /// has its id and name, and by its access token.
    entities: BTreeMap<(Kind, String), Entity>,
    /// Named tokens by token id.
    named: BTreeMap<String, NamedToken>,
    /// Every token issued, named or temporary, by its serialized form.
    issued: HashMap<String, TokenInfo>,
    /// The Oneproviders (each also known as the cluster with its id).
    providers: BTreeSet<String>,
    /// Whether the deprecated token endpoints are served ([`World::serve_legacy`]).
    legacy: bool,
    /// What legacy token names end with instead of 6 random hex digits, when set.
    legacy_suffix: Option<String>,
}

impl World {
    /// An empty Onezone at `domain` (e.g. `onezone.local`): no users, an open Oneprovider
    /// registration policy (Onezone's default), and only the special cluster `onezone`.
    pub fn new(domain: &str) -> World {
        let mut world = World {
            domain: domain.to_string(),
            registration_open: true,
            users: BTreeMap::new(),
            entities: BTreeMap::new(),
            named: BTreeMap::new(),
            issued: HashMap::new(),
            providers: BTreeSet::new(),
            legacy: false,
            legacy_suffix: None,
        };
        world.add_entity(Kind::Cluster, ONEZONE_CLUSTER, "Onezone");
        world
    }

    pub fn add_user(&mut self, id: &str, full_name: &str) -> &mut Self {
        self.users.insert(
            id.to_string(),
            User {
                full_name: full_name.to_string(),
                basic: None,
                oz_privileges: BTreeSet::new(),
                creation_time: now(),
            },
        );
        self
    }

    /// Registers a named access token of the user whose serialized form is `token`.
    pub fn user_access_token(&mut self, user_id: &str, token: &str) -> &mut Self {
        self.user(user_id);
        self.fixture_token(Subject::User(user_id.to_string()), token);
        self
    }

    /// Enables Basic auth for the user; `login` is also the user's username.
    pub fn user_basic_auth(&mut self, user_id: &str, login: &str, password: &str) -> &mut Self {
        self.user(user_id).basic = Some((login.to_string(), password.to_string()));
        self
    }

    /// Adds a Oneprovider with a named access token `token`, and the cluster it owns, which
    /// has the provider's id (as in Onezone).
    pub fn add_provider(&mut self, id: &str, name: &str, token: &str) -> &mut Self {
        self.add_entity(Kind::Cluster, id, name);
        self.providers.insert(id.to_string());
        self.fixture_token(Subject::Provider(id.to_string()), token);
        self
    }

    pub fn add_group(&mut self, id: &str, name: &str) -> &mut Self {
        self.add_entity(Kind::Group, id, name)
    }

    pub fn add_space(&mut self, id: &str, name: &str) -> &mut Self {
        self.add_entity(Kind::Space, id, name)
    }

    pub fn add_harvester(&mut self, id: &str, name: &str) -> &mut Self {
        self.add_entity(Kind::Harvester, id, name)
    }

    /// Makes the user a member of the group, space, cluster or harvester `entity_id` (every
    /// one with that id) and adds `privileges` to the member's privileges there.
    pub fn grant(&mut self, entity_id: &str, user_id: &str, privileges: &[&str]) -> &mut Self {
        self.user(user_id);
        let mut found = false;
        for ((_, id), entity) in self.entities.iter_mut() {
            if id == entity_id {
                found = true;
                entity
                    .members
                    .entry(user_id.to_string())
                    .or_default()
                    .extend(privileges.iter().map(|p| p.to_string()));
            }
        }
        assert!(
            found,
            "stand-in world: no group, space, cluster or harvester {entity_id}"
        );
        self
    }

    /// Gives the user Onezone admin privileges, e.g. `oz_tokens_manage`.
    pub fn grant_admin(&mut self, user_id: &str, oz_privileges: &[&str]) -> &mut Self {
        let user = self.user(user_id);
        user.oz_privileges
            .extend(oz_privileges.iter().map(|p| p.to_string()));
        self
    }

    /// The name of the group, space, cluster or harvester `id`, or the full name of the user
    /// `id` (what Onezone's legacy code puts in invite token names).
    pub fn entity_name(&self, id: &str) -> Option<&str> {
        self.entities
            .iter()
            .find(|((_, entity_id), _)| entity_id == id)
            .map(|(_, e)| e.name.as_str())
            .or_else(|| self.users.get(id).map(|u| u.full_name.as_str()))
    }

    /// Serves the 15 deprecated token endpoints of Onezone 21.02 (off by default: the
    /// stand-in is then a Onezone that has removed them). See the `legacy` module for what
    /// they do.
    pub fn serve_legacy(&mut self, on: bool) -> &mut Self {
        self.legacy = on;
        self
    }

    /// Makes every generated legacy token name end with `suffix` instead of 6 random hex
    /// digits (`None`: random again), so tests can predict names or force a name clash.
    pub fn legacy_name_suffix(&mut self, suffix: Option<&str>) -> &mut Self {
        self.legacy_suffix = suffix.map(str::to_string);
        self
    }

    /// Stores a named access token of the user bound to the session `session_id` (type
    /// `{"accessToken": {"sessionId": ...}}`, as Onezone's GUI creates them); returns its id
    /// and serialized form. Such a token does not authenticate REST calls here (the stand-in
    /// has no sessions). Panics if the user does not exist or already has a token `name`.
    pub fn add_session_access_token(
        &mut self,
        user_id: &str,
        session_id: &str,
        name: &str,
    ) -> (String, String) {
        self.user(user_id);
        let request = NamedRequest {
            name: name.to_string(),
            token_type: TokenType::SessionAccess(session_id.to_string()),
            caveats: Vec::new(),
            custom_metadata: json!({}),
            revoked: false,
            usage_limit: json!("infinity"),
            privileges: None,
        };
        match self.create_named(Subject::User(user_id.to_string()), request) {
            Ok(created) => created,
            Err(_) => panic!("stand-in world: user {user_id} already has a token {name:?}"),
        }
    }

    /// `open` (the default) lets every user issue a Oneprovider registration token for
    /// themselves; `restricted` requires `oz_providers_invite`.
    pub fn set_registration_policy(&mut self, open: bool) -> &mut Self {
        self.registration_open = open;
        self
    }

    fn add_entity(&mut self, kind: Kind, id: &str, name: &str) -> &mut Self {
        self.entities.insert(
            (kind, id.to_string()),
            Entity {
                name: name.to_string(),
                members: BTreeMap::new(),
            },
        );
        self
    }

    fn user(&mut self, id: &str) -> &mut User {
        match self.users.get_mut(id) {
            Some(user) => user,
            None => panic!("stand-in world: no user {id}"),
        }
    }

    /// Stores a fixture's access token under a fixed id derived from it.
    fn fixture_token(&mut self, subject: Subject, token: &str) {
        let digest = Sha256::digest(token.as_bytes());
        let id = hex(&digest[..16]);
        let taken = |name: &str| {
            self.named
                .values()
                .any(|t| t.info.subject == subject && t.name == name)
        };
        let mut name = "fixture access token".to_string();
        let mut n = 1;
        while taken(&name) {
            n += 1;
            name = format!("fixture access token {n}");
        }
        self.store_named(NamedToken {
            info: TokenInfo {
                id,
                subject,
                named: true,
                token_type: TokenType::Access,
                caveats: Vec::new(),
            },
            name,
            metadata: json!({ "creationTime": now(), "custom": {} }),
            revoked: false,
            serialized: token.to_string(),
        });
    }

    fn store_named(&mut self, token: NamedToken) {
        self.issued
            .insert(token.serialized.clone(), token.info.clone());
        self.named.insert(token.info.id.clone(), token);
    }
}

/// Queries and operations used by the HTTP handlers.
impl World {
    pub(crate) fn domain(&self) -> &str {
        &self.domain
    }

    pub(crate) fn cluster_exists(&self, id: &str) -> bool {
        self.entities.contains_key(&(Kind::Cluster, id.to_string()))
    }

    pub(crate) fn user_exists(&self, id: &str) -> bool {
        self.users.contains_key(id)
    }

    pub(crate) fn provider_exists(&self, id: &str) -> bool {
        self.providers.contains(id)
    }

    pub(crate) fn serves_legacy(&self) -> bool {
        self.legacy
    }

    pub(crate) fn legacy_suffix(&self) -> Option<&str> {
        self.legacy_suffix.as_deref()
    }

    /// The name of the group, space, cluster or harvester `id` of `kind`.
    pub(crate) fn name_of(&self, kind: Kind, id: &str) -> Option<&str> {
        self.entities
            .get(&(kind, id.to_string()))
            .map(|e| e.name.as_str())
    }

    pub(crate) fn full_name(&self, user: &str) -> Option<&str> {
        self.users.get(user).map(|u| u.full_name.as_str())
    }

    /// What a serialized token says about itself, if the stand-in issued it.
    pub(crate) fn decode(&self, serialized: &str) -> Option<&TokenInfo> {
        self.issued.get(serialized)
    }

    pub(crate) fn target_exists(&self, target: Target, id: &str) -> bool {
        match target {
            Target::User => self.user_exists(id),
            Target::Entity(kind) => self.entities.contains_key(&(kind, id.to_string())),
        }
    }

    pub(crate) fn has_privilege(
        &self,
        kind: Kind,
        entity: &str,
        user: &str,
        privilege: &str,
    ) -> bool {
        self.entities
            .get(&(kind, entity.to_string()))
            .and_then(|e| e.members.get(user))
            .is_some_and(|privileges| privileges.contains(privilege))
    }

    pub(crate) fn is_member(&self, kind: Kind, entity: &str, user: &str) -> bool {
        self.entities
            .get(&(kind, entity.to_string()))
            .is_some_and(|e| e.members.contains_key(user))
    }

    pub(crate) fn has_admin_privilege(&self, user: &str, privilege: &str) -> bool {
        self.users
            .get(user)
            .is_some_and(|u| u.oz_privileges.contains(privilege))
    }

    /// Whether `subject` may issue `invite` tokens for `target` (oz-worker's
    /// `invite_tokens:is_authorized_to_invite`).
    pub(crate) fn may_invite(&self, subject: &Subject, invite: &InviteType, target: &str) -> bool {
        match (subject, invite.target, invite.privilege) {
            (Subject::User(user), Target::Entity(kind), Some(privilege)) => {
                self.has_privilege(kind, target, user, privilege)
                    || self.has_admin_privilege(user, invite.admin_privilege)
            }
            // registerOneprovider: users may invite themselves while the policy is open.
            (Subject::User(user), _, _) => {
                (self.registration_open && user == target)
                    || self.has_admin_privilege(user, invite.admin_privilege)
            }
            // A Oneprovider may invite to its own cluster, and to nothing else.
            (Subject::Provider(provider), Target::Entity(Kind::Cluster), _) => provider == target,
            (Subject::Provider(_), _, _) => false,
        }
    }

    /// Whether `subject` may choose the privileges an invite to `target` grants.
    pub(crate) fn may_set_privileges(&self, subject: &Subject, kind: Kind, target: &str) -> bool {
        match subject {
            Subject::User(user) => {
                self.has_privilege(kind, target, user, kind.set_privileges())
                    || self.has_admin_privilege(user, kind.admin_set_privileges())
            }
            Subject::Provider(provider) => kind == Kind::Cluster && provider == target,
        }
    }

    /// Whether `client` may read, modify or delete a named token owned by `owner`: its own,
    /// a Oneprovider's for a user with `cluster_update` in its cluster, or any with
    /// `oz_tokens_manage`.
    pub(crate) fn may_manage_token(&self, client: &Subject, owner: &Subject) -> bool {
        if client == owner {
            return true;
        }
        match (client, owner) {
            (Subject::User(user), Subject::Provider(provider)) => {
                self.has_privilege(Kind::Cluster, provider, user, "cluster_update")
                    || self.has_admin_privilege(user, "oz_tokens_manage")
            }
            (Subject::User(user), _) => self.has_admin_privilege(user, "oz_tokens_manage"),
            (Subject::Provider(_), _) => false,
        }
    }

    /// The subject an access token authenticates, or the reason it does not (an auth error
    /// for `details.authError`).
    pub(crate) fn authenticate_token(&self, token: &str, now: u64) -> Result<Subject, Value> {
        let info = self.issued.get(token).ok_or_else(auth::token_invalid)?;
        if info.named {
            match self.named.get(&info.id) {
                None => return Err(auth::token_invalid()),
                Some(named) if named.revoked => return Err(auth::token_revoked()),
                Some(_) => {}
            }
        }
        match &info.token_type {
            TokenType::Access => {}
            // Onezone accepts one only while its session lives; the stand-in has none.
            TokenType::SessionAccess(_) => return Err(auth::token_session_invalid()),
            other => return Err(auth::not_an_access_token(other.to_json())),
        }
        // Only time caveats are checked; the stand-in cannot judge the others.
        let expired = info
            .caveats
            .iter()
            .find(|c| c["type"] == "time" && c["validUntil"].as_u64().is_some_and(|t| t < now));
        if let Some(caveat) = expired {
            return Err(auth::token_caveat_unverified(caveat));
        }
        Ok(info.subject.clone())
    }

    /// The user `Authorization: Basic <credentials>` authenticates.
    pub(crate) fn authenticate_basic(&self, credentials: &str) -> Result<Subject, Value> {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(credentials.trim())
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(auth::bad_basic_credentials)?;
        let (login, password) = decoded
            .split_once(':')
            .ok_or_else(auth::bad_basic_credentials)?;
        self.users
            .iter()
            .find(|(_, u)| {
                u.basic
                    .as_ref()
                    .is_some_and(|(l, p)| l == login && p == password)
            })
            .map(|(id, _)| Subject::User(id.clone()))
            .ok_or_else(auth::bad_basic_credentials)
    }

    /// Stores a validated named token of `subject`, whose name must be free for the subject;
    /// returns its id and serialized form.
    pub(crate) fn create_named(
        &mut self,
        subject: Subject,
        request: NamedRequest,
    ) -> Result<(String, String), ApiError> {
        let taken = self
            .named
            .values()
            .any(|t| t.info.subject == subject && t.name == request.name);
        if taken {
            return Err(ApiError::bad_value_identifier_occupied("name"));
        }
        let mut metadata = json!({ "creationTime": now(), "custom": request.custom_metadata });
        if let TokenType::Invite { invite, .. } = &request.token_type {
            let privileges = match (request.privileges, invite.default_privileges) {
                (Some(custom), _) => json!(custom),
                (None, Some(defaults)) => {
                    let sorted: BTreeSet<&str> = defaults.iter().copied().collect();
                    json!(sorted)
                }
                (None, None) => Value::Null,
            };
            metadata["usageLimit"] = request.usage_limit;
            metadata["usageCount"] = json!(0);
            metadata["privileges"] = privileges;
        }
        let id = random_id();
        let serialized = self.new_serialized_token();
        self.store_named(NamedToken {
            info: TokenInfo {
                id: id.clone(),
                subject,
                named: true,
                token_type: request.token_type,
                caveats: request.caveats,
            },
            name: request.name,
            metadata,
            revoked: request.revoked,
            serialized: serialized.clone(),
        });
        Ok((id, serialized))
    }

    /// Issues a temporary token; returns its serialized form.
    pub(crate) fn create_temporary(
        &mut self,
        subject: Subject,
        request: TemporaryRequest,
    ) -> String {
        let serialized = self.new_serialized_token();
        self.issued.insert(
            serialized.clone(),
            TokenInfo {
                id: random_id(),
                subject,
                named: false,
                token_type: request.token_type,
                caveats: request.caveats,
            },
        );
        serialized
    }

    /// The ids of `subject`'s named tokens, in name order (as Onezone lists them).
    pub(crate) fn named_ids(&self, subject: &Subject) -> Vec<String> {
        let mut tokens: Vec<&NamedToken> = self
            .named
            .values()
            .filter(|t| &t.info.subject == subject)
            .collect();
        tokens.sort_by(|a, b| a.name.cmp(&b.name));
        tokens.into_iter().map(|t| t.info.id.clone()).collect()
    }

    pub(crate) fn named_token(&self, id: &str) -> Option<&NamedToken> {
        self.named.get(id)
    }

    pub(crate) fn named_count(&self) -> usize {
        self.named.len()
    }

    pub(crate) fn delete_named(&mut self, id: &str) {
        self.named.remove(id);
    }

    pub(crate) fn modify_named(&mut self, id: &str, update: TokenUpdate) -> Result<(), ApiError> {
        let Some(token) = self.named.get(id) else {
            return Err(ApiError::not_found());
        };
        if let Some(name) = &update.name {
            let subject = &token.info.subject;
            let taken = self
                .named
                .values()
                .any(|t| &t.info.subject == subject && &t.name == name && t.info.id != id);
            if taken {
                return Err(ApiError::bad_value_identifier_occupied("name"));
            }
        }
        if let Some(token) = self.named.get_mut(id) {
            if let Some(name) = update.name {
                token.name = name;
            }
            if let Some(custom) = update.custom_metadata {
                token.metadata["custom"] = custom;
            }
            if let Some(revoked) = update.revoked {
                token.revoked = revoked;
            }
        }
        Ok(())
    }

    /// What `POST /tokens/examine` tells about a serialized token, if it is one of ours.
    pub(crate) fn examine(&self, serialized: &str) -> Option<Value> {
        let info = self.issued.get(serialized)?;
        Some(json!({
            "onezoneDomain": self.domain,
            "id": info.id,
            "persistence": if info.named { "named" } else { "temporary" },
            "subject": info.subject.to_json(),
            "type": info.token_type.to_json(),
            "caveats": info.caveats,
        }))
    }

    /// The user as `GET /user` returns it.
    pub(crate) fn user_json(&self, id: &str) -> Option<Value> {
        let user = self.users.get(id)?;
        Some(json!({
            "userId": id,
            "fullName": user.full_name,
            "username": user.basic.as_ref().map(|(login, _)| login),
            "linkedAccounts": [],
            "emails": [],
            "basicAuthEnabled": user.basic.is_some(),
            "blocked": false,
            "creationTime": user.creation_time,
        }))
    }

    /// Makes `user` a member of `cluster` with `privileges`.
    pub(crate) fn add_cluster_member(
        &mut self,
        cluster: &str,
        user: &str,
        privileges: Vec<String>,
    ) {
        if let Some(entity) = self.entities.get_mut(&(Kind::Cluster, cluster.to_string())) {
            entity
                .members
                .insert(user.to_string(), privileges.into_iter().collect());
        }
    }

    /// An opaque serialized token: "MDAx" and 60 letters and digits, safe in a URL path.
    fn new_serialized_token(&self) -> String {
        loop {
            let tail: String = rand::thread_rng()
                .sample_iter(&Alphanumeric)
                .take(60)
                .map(char::from)
                .collect();
            let token = format!("MDAx{tail}");
            if !self.issued.contains_key(&token) {
                return token;
            }
        }
    }
}

/// Seconds since the UNIX epoch.
pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A new Onezone-style id: 32 lowercase hex characters.
fn random_id() -> String {
    hex(&rand::random::<[u8; 16]>())
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::*;
    use crate::rules::{named_request, temporary_request};
    use serde_json::Map;

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

    /// Validates and stores a named token; returns (id, serialized).
    fn create(
        world: &mut World,
        subject: &Subject,
        body: Value,
    ) -> Result<(String, String), ApiError> {
        let request = named_request(world, subject, &object(body))?;
        world.create_named(subject.clone(), request)
    }

    #[test]
    fn names_are_unique_per_subject() {
        let mut world = World::demo();
        create(&mut world, &alice(), json!({ "name": "laptop" })).unwrap();
        let e = create(&mut world, &alice(), json!({ "name": "laptop" })).unwrap_err();
        assert_eq!((e.status, e.id()), (400, "badValueIdentifierOccupied"));
        assert_eq!(e.body["error"]["details"]["key"], "name");
        create(&mut world, &bob(), json!({ "name": "laptop" })).unwrap();
        create(&mut world, &provider(), json!({ "name": "laptop" })).unwrap();
        // The fixtures' own tokens take names too.
        let e = create(
            &mut world,
            &alice(),
            json!({ "name": "fixture access token" }),
        )
        .unwrap_err();
        assert_eq!(e.id(), "badValueIdentifierOccupied");
    }

    #[test]
    fn stored_tokens_carry_onezone_metadata() {
        let mut world = World::demo();
        let cluster =
            json!({ "inviteToken": { "inviteType": "userJoinCluster", "clusterId": CLUSTER_ID } });
        let (id, serialized) = create(
            &mut world,
            &alice(),
            json!({ "name": "invite", "type": cluster, "usageLimit": 1, "customMetadata": { "k": "v" } }),
        )
        .unwrap();
        assert_eq!(id.len(), 32);
        assert!(id
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert!(serialized.starts_with("MDAx") && serialized.len() == 64);
        assert!(serialized.chars().all(|c| c.is_ascii_alphanumeric()));

        let token = world.named_token(&id).unwrap().to_json();
        assert_eq!(token["id"], id.as_str());
        assert_eq!(token["name"], "invite");
        assert_eq!(token["subject"], json!({ "type": "user", "id": ALICE_ID }));
        assert_eq!(token["type"], cluster);
        assert_eq!(token["caveats"], json!([]));
        assert_eq!(token["revoked"], false);
        assert_eq!(token["token"], serialized.as_str());
        let metadata = &token["metadata"];
        assert_eq!(metadata["usageLimit"], 1);
        assert_eq!(metadata["usageCount"], 0);
        assert_eq!(metadata["custom"], json!({ "k": "v" }));
        assert!(metadata["creationTime"]
            .as_u64()
            .is_some_and(|t| t > 1_600_000_000));
        // A user invited to a cluster becomes its admin unless the token says otherwise.
        let mut all: Vec<&str> = Kind::Cluster.privileges().to_vec();
        all.sort();
        assert_eq!(metadata["privileges"], json!(all));

        let support =
            json!({ "inviteToken": { "inviteType": "supportSpace", "spaceId": SPACE_ID } });
        let (id, _) = create(
            &mut world,
            &alice(),
            json!({ "name": "support", "type": support }),
        )
        .unwrap();
        let metadata = world.named_token(&id).unwrap().to_json()["metadata"].clone();
        assert_eq!(metadata["privileges"], Value::Null);
        assert_eq!(metadata["usageLimit"], "infinity");

        let (id, _) = create(&mut world, &alice(), json!({ "name": "plain" })).unwrap();
        let metadata = world.named_token(&id).unwrap().to_json()["metadata"].clone();
        assert_eq!(metadata.as_object().unwrap().len(), 2, "{metadata}");
    }

    #[test]
    fn access_tokens_authenticate_their_subject() {
        let mut world = World::demo();
        let now = now();
        assert_eq!(world.authenticate_token(ALICE_TOKEN, now), Ok(alice()));
        assert_eq!(
            world.authenticate_token(PROVIDER_TOKEN, now),
            Ok(provider())
        );
        assert_eq!(
            world.authenticate_token("MDAxunknown", now).unwrap_err()["id"],
            "tokenInvalid"
        );

        let (revoked_id, revoked) =
            create(&mut world, &bob(), json!({ "name": "r1", "revoked": true })).unwrap();
        assert_eq!(
            world.authenticate_token(&revoked, now).unwrap_err()["id"],
            "tokenRevoked"
        );
        world.delete_named(&revoked_id);
        assert_eq!(
            world.authenticate_token(&revoked, now).unwrap_err()["id"],
            "tokenInvalid"
        );

        let group =
            json!({ "inviteToken": { "inviteType": "userJoinGroup", "groupId": GROUP_ID } });
        let (_, invite) =
            create(&mut world, &alice(), json!({ "name": "i1", "type": group })).unwrap();
        let e = world.authenticate_token(&invite, now).unwrap_err();
        assert_eq!(e["id"], "notAnAccessToken");
        assert_eq!(e["details"]["received"], group);

        let expired =
            json!({ "name": "old", "caveats": [{ "type": "time", "validUntil": now - 1 }] });
        let (_, old) = create(&mut world, &bob(), expired).unwrap();
        assert_eq!(
            world.authenticate_token(&old, now).unwrap_err()["id"],
            "tokenCaveatUnverified"
        );

        let caveats = json!({ "caveats": [{ "type": "time", "validUntil": now + 60 }] });
        let request = temporary_request(&world, &bob(), &object(caveats), now).unwrap();
        let temporary = world.create_temporary(bob(), request);
        assert_eq!(world.authenticate_token(&temporary, now), Ok(bob()));
    }

    #[test]
    fn session_bound_access_tokens_are_named_access_tokens() {
        let mut world = World::demo();
        let (id, serialized) = world.add_session_access_token(BOB_ID, "sess-1", "gui session");
        let token = world.named_token(&id).unwrap().to_json();
        assert_eq!(
            token["type"],
            json!({ "accessToken": { "sessionId": "sess-1" } })
        );
        assert_eq!(token["subject"], bob().to_json());
        assert!(world.named_ids(&bob()).contains(&id));
        assert_eq!(world.examine(&serialized).unwrap()["type"], token["type"]);
        // There are no sessions here, so it does not authenticate REST calls.
        assert_eq!(
            world.authenticate_token(&serialized, now()).unwrap_err()["id"],
            "tokenSessionInvalid"
        );
    }

    #[test]
    #[should_panic(expected = "already has a token")]
    fn session_token_names_are_unique_too() {
        let mut world = World::demo();
        world.add_session_access_token(BOB_ID, "s", "fixture access token");
    }

    #[test]
    fn basic_auth_checks_login_and_password() {
        let world = World::demo();
        let encode = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        assert_eq!(
            world.authenticate_basic(&encode("alice:password")),
            Ok(alice())
        );
        for bad in [
            encode("alice:wrong"),
            encode("bob:password"),
            encode("alice"),
            "%%%".to_string(),
        ] {
            assert_eq!(
                world.authenticate_basic(&bad).unwrap_err()["id"],
                "badBasicCredentials"
            );
        }
        assert_eq!(world.user_json(ALICE_ID).unwrap()["username"], "alice");
        assert_eq!(world.user_json(BOB_ID).unwrap()["username"], Value::Null);
    }

    #[test]
    fn who_may_manage_a_token() {
        let mut world = World::demo();
        assert!(world.may_manage_token(&alice(), &alice()));
        assert!(!world.may_manage_token(&bob(), &alice()));
        assert!(!world.may_manage_token(&provider(), &alice()));
        // alice has cluster_update in the provider's cluster.
        assert!(world.may_manage_token(&alice(), &provider()));
        assert!(!world.may_manage_token(&bob(), &provider()));
        world.grant_admin(BOB_ID, &["oz_tokens_manage"]);
        assert!(world.may_manage_token(&bob(), &alice()));
    }

    #[test]
    fn deleted_tokens_can_still_be_examined() {
        let mut world = World::demo();
        let (id, serialized) = create(&mut world, &alice(), json!({ "name": "gone" })).unwrap();
        world.delete_named(&id);
        assert!(world.named_token(&id).is_none());
        let examined = world.examine(&serialized).unwrap();
        assert_eq!(examined["id"], id.as_str());
        assert_eq!(examined["persistence"], "named");
        assert_eq!(examined["onezoneDomain"], DOMAIN);
    }

    #[test]
    fn tokens_are_listed_in_name_order() {
        let mut world = World::demo();
        let (b, _) = create(&mut world, &bob(), json!({ "name": "b token" })).unwrap();
        let (a, _) = create(&mut world, &bob(), json!({ "name": "a token" })).unwrap();
        let ids = world.named_ids(&bob());
        assert_eq!(ids.len(), 3, "the fixture token and two more");
        assert_eq!(&ids[..2], &[a, b]);
    }

    #[test]
    #[should_panic(expected = "no user")]
    fn fixtures_with_unknown_ids_fail_loudly() {
        World::new("z.example").grant("onezone", "nobody", &[]);
    }
}

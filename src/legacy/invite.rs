//! Invite, support and registration tokens (rows 1-12 of the route table).
//!
//! Onezone's legacy code creates a named token owned by the caller (a user, or a Oneprovider),
//! single use (`usageLimit: 1`), with no caveats and no `privileges`, and answers
//! `200 {"token"}`.

use serde_json::{json, Value};

use super::names::{invite_token_name, random_suffix};
use super::negotiation::Body;
use super::{legacy_error, Answer, Caller, Effect, Legacy, Planned, Subject};
use crate::onezone::client::{Call, CallError, Reply};
use crate::onezone::error::OnezoneError;
use crate::routes::{entity_id, Invite, Target};

/// Attempts at a free token name; Onezone's own suffix has the same 2^24 space.
const NAME_ATTEMPTS: usize = 3;

/// The `POST .../tokens/named` body for a legacy invite; `name` is the target's display name
/// when the caller could read it, else its id.
pub(super) fn request_body(
    inv: &Invite,
    target_id: &str,
    name: Option<&str>,
    suffix: &str,
) -> Value {
    let mut invite = json!({ "inviteType": inv.invite_type });
    invite[inv.target_key] = json!(target_id);
    json!({
        "name": invite_token_name(inv.description, name.unwrap_or(target_id), suffix),
        "type": { "inviteToken": invite },
        "usageLimit": super::altered::usage_limit(),
    })
}

/// Where a subject creates its own named tokens.
pub(super) fn create_path(subject: &Subject) -> &'static str {
    match subject {
        Subject::Provider(_) => "/provider/tokens/named",
        Subject::User(_) | Subject::Unknown => "/user/tokens/named",
    }
}

/// What a token-creation answer means for the legacy caller.
#[derive(Debug, PartialEq)]
pub(super) enum Created {
    Token(String),
    /// `badValueIdentifierOccupied`: another token has that name; try another suffix.
    NameTaken,
    Failed(Answer),
}

pub(super) fn created(reply: &Reply) -> Result<Created, CallError> {
    if reply.is_success() {
        return match reply.body["token"].as_str() {
            Some(t) => Ok(Created::Token(t.to_string())),
            None => {
                // Onezone may have created it: say which one (its id, never a token).
                let token_id = reply.body["tokenId"].as_str().unwrap_or("");
                tracing::warn!(
                    token_id,
                    "token created but Onezone's answer has no token; answering an error"
                );
                Err(CallError::BadBody)
            }
        };
    }
    if reply.error_id() == Some("badValueIdentifierOccupied") {
        return Ok(Created::NameTaken);
    }
    Ok(Created::Failed(legacy_error(reply)))
}

/// Creates a named token with fresh name suffixes until one is free.
pub(super) async fn create_named(
    lg: &Legacy,
    caller: &Caller,
    path: &'static str,
    body: impl Fn(&str) -> Value,
    effect: Effect,
) -> Result<Answer, CallError> {
    if effect == Effect::DryRun {
        return Ok(Answer {
            planned: Some(Box::new(Planned::Create {
                path,
                body: body(&random_suffix()),
            })),
            ..Answer::empty(200)
        });
    }
    let mut last = None;
    for _ in 0..NAME_ATTEMPTS {
        let reply = lg
            .client
            .call(
                &Call::post("create_named", path, body(&random_suffix())),
                &caller.forwarded,
            )
            .await?;
        match created(&reply)? {
            Created::Token(t) => {
                let mut answer = Answer::token(t);
                answer.created = reply.body["tokenId"]
                    .as_str()
                    .map(|id| super::CreatedToken {
                        id: id.to_string(),
                        forwarded: caller.forwarded.clone(),
                    });
                return Ok(answer);
            }
            Created::Failed(a) => return Ok(a),
            Created::NameTaken => last = Some(reply),
        }
    }
    Ok(last.map_or_else(
        || Answer::error(OnezoneError::internal()),
        |r| legacy_error(&r),
    ))
}

pub(super) async fn create(
    lg: &Legacy,
    inv: &Invite,
    param: Option<&[u8]>,
    body: Body,
    caller: &Caller,
    effect: Effect,
) -> Result<Answer, CallError> {
    // An id Onezone cannot have names no entity: its own answer would be 404 (once the
    // credential is accepted).
    let path_id = match inv.target {
        Target::PathId => match param.and_then(entity_id) {
            Some(id) => Some(id.to_string()),
            None => {
                return lg
                    .unless_unauthenticated(caller, Answer::error(OnezoneError::not_found()))
                    .await
            }
        },
        Target::CallerUserId => None,
    };
    let target = match path_id {
        Some(id) => id,
        None => match lg.own_user_id(caller).await? {
            Ok(id) => id,
            Err(answer) => return Ok(answer),
        },
    };
    if body == Body::NotObject {
        return entity_checks_then_malformed(lg, inv, &target, caller).await;
    }
    let name = lg.names.display_name(lg, caller, inv, &target).await;
    let path = create_path(&caller.subject);
    let body = |suffix: &str| request_body(inv, &target, name.as_deref(), suffix);
    create_named(lg, caller, path, body, effect).await
}

/// JSON that is not an object is refused only after Onezone fetched the entity (404) and
/// authorized the client (401 / 403) (`entity_logic_sanitizer.erl:169-173`). The proxy cannot
/// ask for the invite privilege without creating a token, so it reads the entity: a client
/// that may read it but not invite to it gets 400 here where Onezone says 403.
async fn entity_checks_then_malformed(
    lg: &Legacy,
    inv: &Invite,
    target: &str,
    caller: &Caller,
) -> Result<Answer, CallError> {
    let reply = lg
        .client
        .call(
            &Call::get("get_entity", entity_path(inv, target)),
            &caller.forwarded,
        )
        .await?;
    Ok(match reply.status {
        200..=299 => Answer::error(OnezoneError::malformed_data()),
        _ => legacy_error(&reply),
    })
}

/// Where the invite's target is read (its display name, its existence).
pub(super) fn entity_path(inv: &Invite, target: &str) -> String {
    match (inv.target, inv.target_key) {
        (Target::CallerUserId, _) => "/user".to_string(),
        (_, "groupId") => format!("/groups/{target}"),
        (_, "spaceId") => format!("/spaces/{target}"),
        (_, "harvesterId") => format!("/harvesters/{target}"),
        (_, "clusterId") => format!("/clusters/{target}"),
        (_, _) => format!("/users/{target}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::{Rewrite, ROUTES};

    fn invite_of(template: &str) -> Invite {
        ROUTES
            .iter()
            .find(|r| r.template == template)
            .and_then(|r| match r.rewrite {
                Some(Rewrite::Invite(i)) => Some(i),
                _ => None,
            })
            .expect("route exists")
    }

    /// The body Onezone's legacy code builds: name, invite type + target, single use, nothing else.
    #[test]
    fn body_is_a_single_use_invite_without_privileges_or_caveats() {
        let b = request_body(
            &invite_of("/clusters/{id}/users/token"),
            "c1",
            None,
            "abcdef",
        );
        assert_eq!(
            b,
            json!({
                "name": "user invite to cluster - c1 abcdef",
                "type": {"inviteToken": {"inviteType": "userJoinCluster", "clusterId": "c1"}},
                "usageLimit": 1
            })
        );
        let r = request_body(
            &invite_of("/user/clusters/provider_registration_token"),
            "u1",
            Some("Alice Smith"),
            "abcdef",
        );
        assert_eq!(
            r["name"],
            "Oneprovider rgstr. token for - Alice Smith abcdef"
        );
        assert_eq!(
            r["type"]["inviteToken"],
            json!({"inviteType": "registerOneprovider", "adminUserId": "u1"})
        );
        assert!(r.get("privileges").is_none() && r.get("caveats").is_none());
    }

    #[test]
    fn provider_callers_create_provider_tokens() {
        assert_eq!(
            create_path(&Subject::Provider("p".into())),
            "/provider/tokens/named"
        );
        assert_eq!(
            create_path(&Subject::User("u".into())),
            "/user/tokens/named"
        );
        assert_eq!(create_path(&Subject::Unknown), "/user/tokens/named");
    }

    #[test]
    fn created_answers() {
        let ok = Reply {
            status: 201,
            body: json!({"tokenId": "i", "token": "T"}),
        };
        assert_eq!(created(&ok), Ok(Created::Token("T".into())));
        let clash = Reply {
            status: 400,
            body: json!({"error": {"id": "badValueIdentifierOccupied", "description": "", "details": {"key": "name"}}}),
        };
        assert_eq!(created(&clash), Ok(Created::NameTaken));
        let weird = Reply {
            status: 201,
            body: json!({"tokenId": "i"}),
        };
        assert_eq!(created(&weird), Err(CallError::BadBody));
        let denied = Reply {
            status: 400,
            body: json!({"error": {"id": "inviteTokenSubjectNotAuthorized"}}),
        };
        match created(&denied) {
            Ok(Created::Failed(a)) => assert_eq!(a.status, 403),
            other => panic!("{other:?}"),
        }
    }
}

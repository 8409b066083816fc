//! Client tokens (rows 13-15): Onezone's pre-20.02 names for a user's named access tokens.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use futures_util::StreamExt;

use super::invite::create_named;
use super::names::client_token_name;
use super::negotiation::Body;
use super::{legacy_error, Answer, Caller, Credential, Effect, Legacy, Planned, Subject};
use crate::onezone::client::{Call, CallError};
use crate::onezone::error::OnezoneError;
use crate::routes::serialized_token;

/// Client tokens are valid for one year, as Onezone's legacy code makes them.
pub(super) const CLIENT_TOKEN_TTL_SECS: u64 = 31_536_000;

/// The `POST /user/tokens/named` body for a legacy client token.
pub(super) fn request_body(now: SystemTime, suffix: &str) -> Value {
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    json!({
        "name": client_token_name(now, suffix),
        "type": { "accessToken": {} },
        "caveats": [{ "type": "time", "validUntil": secs + CLIENT_TOKEN_TTL_SECS }],
    })
}

/// Whether a NamedToken is one the legacy list shows: an access token, session-bound ones too
/// (`?ACCESS_TOKEN` as a record pattern matches any session: `user_logic_plugin.erl:294`,
/// ctool `aai.hrl:79-82,110`).
pub(super) fn is_client_token(named: &Value) -> bool {
    named["type"]["accessToken"].is_object()
}

/// How many `GET /tokens/named/{id}` calls of one list run at once.
const LIST_CONCURRENCY: usize = 8;

/// A Oneprovider has no user behind `?CLIENT_ID`: `user_logic_plugin:fetch_entity` gives 404
/// (`user_logic_plugin.erl:48-55`), where the tokens API would say 403.
fn provider_has_no_user(caller: &Caller) -> Option<Answer> {
    matches!(caller.subject, Subject::Provider(_)).then(|| Answer::error(OnezoneError::not_found()))
}

pub(super) async fn create(
    lg: &Legacy,
    body: Body,
    caller: &Caller,
    effect: Effect,
) -> Result<Answer, CallError> {
    if let Some(answer) = provider_has_no_user(caller) {
        return Ok(answer);
    }
    if body == Body::NotObject {
        // Validation comes after authorization: nobody is 401 first.
        let answer = match caller.credential {
            Credential::None => Answer::error(OnezoneError::unauthorized()),
            _ => Answer::error(OnezoneError::malformed_data()),
        };
        return lg.unless_unauthenticated(caller, answer).await;
    }
    let now = SystemTime::now();
    let body = |suffix: &str| request_body(now, suffix);
    create_named(lg, caller, "/user/tokens/named", body, effect).await
}

pub(super) async fn list(lg: &Legacy, caller: &Caller) -> Result<Answer, CallError> {
    if let Some(answer) = provider_has_no_user(caller) {
        return Ok(answer);
    }
    let ids = lg
        .client
        .call(
            &Call::get("list_named", "/user/tokens/named"),
            &caller.forwarded,
        )
        .await?;
    if !ids.is_success() {
        return Ok(legacy_error(&ids));
    }
    let Some(ids) = ids.body["tokens"].as_array() else {
        return Err(CallError::BadBody);
    };
    let ids = ids
        .iter()
        .map(|id| {
            id.as_str()
                .and_then(|id| crate::routes::entity_id(id.as_bytes()))
        })
        .collect::<Option<Vec<&str>>>()
        .ok_or(CallError::BadBody)?;
    // Onezone reads the list in one go; here each token is one call, so they run a few at a
    // time, and `buffered` keeps Onezone's order.
    // (The futures are built first: a stream's `map` closure over borrowed values would not be
    // `Send` for the compiler, which Pingora's request future must be.)
    let calls: Vec<_> = ids
        .into_iter()
        .map(|id| Call::get("get_named", format!("/tokens/named/{id}")))
        .collect();
    let pending: Vec<_> = calls
        .iter()
        .map(|call| lg.client.call(call, &caller.forwarded))
        .collect();
    let reads: Vec<_> = futures_util::stream::iter(pending)
        .buffered(LIST_CONCURRENCY)
        .collect()
        .await;
    let mut tokens = Vec::new();
    for named in reads {
        let named = named?;
        match named.status {
            200 if is_client_token(&named.body) => match named.body["token"].as_str() {
                Some(t) => tokens.push(t.to_string()),
                None => return Err(CallError::BadBody),
            },
            200 => {}
            // Deleted between the list and the read: it is no longer the user's token.
            404 => {}
            _ => return Ok(legacy_error(&named)),
        }
    }
    Ok(Answer::ok(json!({ "tokens": tokens })))
}

pub(super) async fn delete(
    lg: &Legacy,
    param: Option<&[u8]>,
    caller: &Caller,
    effect: Effect,
) -> Result<Answer, CallError> {
    // With no credential `?CLIENT_ID` is undefined and the existence check is skipped: 401.
    if caller.credential == Credential::None {
        return Ok(Answer::error(OnezoneError::unauthorized()));
    }
    if let Some(answer) = provider_has_no_user(caller) {
        return Ok(answer);
    }
    // A tid that is not a token crashes the bare `{ok, #token{}} = tokens:deserialize(..)` match
    // in `exists` (`user_logic_plugin.erl:576-578`), which `entity_logic.erl:368-385` turns into
    // 404; so does a temporary token, or one already deleted.
    let not_found = || lg.unless_unauthenticated(caller, Answer::error(OnezoneError::not_found()));
    let Some(token) = param.and_then(serialized_token) else {
        return not_found().await;
    };
    let examined = lg
        .client
        .call(
            &Call::post("examine", "/tokens/examine", json!({ "token": token })),
            &caller.forwarded,
        )
        .await?;
    let named_id = match (
        examined.is_success(),
        examined.body["persistence"].as_str(),
        examined.body["id"].as_str(),
    ) {
        (true, Some("named"), Some(id)) => match crate::routes::entity_id(id.as_bytes()) {
            Some(id) => id.to_string(),
            None => return Err(CallError::BadBody),
        },
        _ => return not_found().await,
    };
    // A dry run reads the token instead of deleting it, and predicts the delete's answer.
    let call = match effect {
        Effect::Apply => Call::delete("delete_named", format!("/tokens/named/{named_id}")),
        Effect::DryRun => Call::get("get_named", format!("/tokens/named/{named_id}")),
    };
    let reply = lg.client.call(&call, &caller.forwarded).await?;
    if effect == Effect::DryRun {
        return Ok(predict_delete(&reply, caller));
    }
    Ok(match reply.status {
        200..=299 => Answer::no_content(),
        // Someone else's token: the owner check fails (`token_logic_plugin.erl:403-410`) and
        // `entity_logic:report_unauthorized` answers 403.
        403 => Answer::error(OnezoneError::forbidden()),
        _ => legacy_error(&reply),
    })
}

/// A dry run's delete: what `DELETE /tokens/named/{id}` would answer, from the token's read.
fn predict_delete(read: &crate::onezone::client::Reply, caller: &Caller) -> Answer {
    let own = match &caller.subject {
        Subject::User(me) => read.body["subject"]["id"].as_str() == Some(me.as_str()),
        _ => false,
    };
    match read.status {
        200..=299 if own => Answer::no_content(),
        // Another subject's token that the caller may read (an admin): only deleting it tells.
        200..=299 => Answer {
            planned: Some(Box::new(Planned::UnknownDelete)),
            ..Answer::empty(200)
        },
        403 => Answer::error(OnezoneError::forbidden()),
        _ => legacy_error(read),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn client_token_body_has_a_one_year_time_caveat() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let b = request_body(now, "abcdef");
        assert_eq!(b["type"], json!({"accessToken": {}}));
        assert_eq!(
            b["caveats"],
            json!([{"type": "time", "validUntil": 1_700_000_000u64 + 31_536_000}])
        );
        assert_eq!(b["name"], "access token 2023-11-14T22.13.20Z abcdef");
        assert!(b.get("usageLimit").is_none());
    }

    #[test]
    fn access_tokens_are_client_tokens_with_or_without_a_session() {
        assert!(is_client_token(&json!({"type": {"accessToken": {}}})));
        assert!(is_client_token(
            &json!({"type": {"accessToken": {"sessionId": "s"}}})
        ));
        assert!(!is_client_token(&json!({"type": {"identityToken": {}}})));
        assert!(!is_client_token(
            &json!({"type": {"inviteToken": {"inviteType": "userJoinGroup"}}})
        ));
    }
}

//! Client tokens (rows 13-15): Onezone's pre-20.02 names for a user's named access tokens.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use super::invite::create_named;
use super::names::client_token_name;
use super::{legacy_error, Answer, Caller, Legacy};
use crate::onezone::client::{Call, CallError};
use crate::onezone::error::OnezoneError;
use crate::routes::serialized_token;

/// Client tokens are valid for one year, as Onezone's legacy code makes them.
pub const CLIENT_TOKEN_TTL_SECS: u64 = 31_536_000;

/// The `POST /user/tokens/named` body for a legacy client token.
pub fn request_body(now: SystemTime, suffix: &str) -> Value {
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    json!({
        "name": client_token_name(now, suffix),
        "type": { "accessToken": {} },
        "caveats": [{ "type": "time", "validUntil": secs + CLIENT_TOKEN_TTL_SECS }],
    })
}

/// Whether a NamedToken is one the legacy list shows: exactly a session-less access token.
pub fn is_client_token(named: &Value) -> bool {
    named["type"] == json!({ "accessToken": {} })
}

pub(super) async fn create(lg: &Legacy, caller: Caller) -> Result<Answer, CallError> {
    let caller = lg.resolve(caller).await?;
    let now = SystemTime::now();
    let answer = create_named(lg, &caller, "/user/tokens/named", |suffix| {
        request_body(now, suffix)
    })
    .await?;
    Ok(answer.for_subject(&caller))
}

pub(super) async fn list(lg: &Legacy, caller: Caller) -> Result<Answer, CallError> {
    let caller = lg.resolve(caller).await?;
    let ids = lg
        .client
        .call(
            &Call::get("list_named", "/user/tokens/named"),
            &caller.forwarded,
        )
        .await?;
    if !ids.is_success() {
        return Ok(legacy_error(&ids).for_subject(&caller));
    }
    let Some(ids) = ids.body["tokens"].as_array() else {
        return Err(CallError::BadBody);
    };
    let mut tokens = Vec::new();
    for id in ids {
        let Some(id) = id
            .as_str()
            .and_then(|id| crate::routes::entity_id(id.as_bytes()))
        else {
            return Err(CallError::BadBody);
        };
        let named = lg
            .client
            .call(
                &Call::get("get_named", format!("/tokens/named/{id}")),
                &caller.forwarded,
            )
            .await?;
        match named.status {
            200 if is_client_token(&named.body) => match named.body["token"].as_str() {
                Some(t) => tokens.push(t.to_string()),
                None => return Err(CallError::BadBody),
            },
            200 => {}
            // Deleted between the list and the read: it is no longer the user's token.
            404 => {}
            _ => return Ok(legacy_error(&named).for_subject(&caller)),
        }
    }
    Ok(Answer::ok(json!({ "tokens": tokens })).for_subject(&caller))
}

pub(super) async fn delete(
    lg: &Legacy,
    param: Option<&[u8]>,
    caller: Caller,
) -> Result<Answer, CallError> {
    let Some(token) = param.and_then(serialized_token) else {
        return Ok(Answer::error(OnezoneError::not_found()));
    };
    let caller = lg.resolve(caller).await?;
    let examined = lg
        .client
        .call(
            &Call::post("examine", "/tokens/examine", json!({ "token": token })),
            &caller.forwarded,
        )
        .await?;
    if !examined.is_success() {
        // A token that does not parse: Onezone's examine error says so.
        return Ok(legacy_error(&examined).for_subject(&caller));
    }
    // Only named tokens are client tokens; a temporary one is not among them.
    let id = match (
        examined.body["persistence"].as_str(),
        examined.body["id"].as_str(),
    ) {
        (Some("named"), Some(id)) => match crate::routes::entity_id(id.as_bytes()) {
            Some(id) => id.to_string(),
            None => return Err(CallError::BadBody),
        },
        _ => return Ok(Answer::error(OnezoneError::not_found()).for_subject(&caller)),
    };
    let deleted = lg
        .client
        .call(
            &Call::delete("delete_named", format!("/tokens/named/{id}")),
            &caller.forwarded,
        )
        .await?;
    let answer = match deleted.status {
        200..=299 => Answer::no_content(),
        // Someone else's token is not among the caller's client tokens.
        403 => Answer::error(OnezoneError::not_found()),
        _ => legacy_error(&deleted),
    };
    Ok(answer.for_subject(&caller))
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
    fn only_plain_access_tokens_are_client_tokens() {
        assert!(is_client_token(&json!({"type": {"accessToken": {}}})));
        assert!(!is_client_token(
            &json!({"type": {"accessToken": {"sessionId": "s"}}})
        ));
        assert!(!is_client_token(&json!({"type": {"identityToken": {}}})));
        assert!(!is_client_token(
            &json!({"type": {"inviteToken": {"inviteType": "userJoinGroup"}}})
        ));
    }
}

//! Onezone's error answers: `{"error": {"id", "description", "details"?}}` with the HTTP status
//! Onezone gives each id (ctool's `errors:to_json/1` and `errors:to_http_code/1`).

use serde_json::{json, Value};

/// An error answer: the HTTP status and the `{"error": ...}` body.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ApiError {
    pub status: u16,
    pub body: Value,
}

impl ApiError {
    fn new(status: u16, error: Value) -> ApiError {
        ApiError {
            status,
            body: json!({ "error": error }),
        }
    }

    /// The error id, for tests and logs.
    #[cfg(test)]
    pub(crate) fn id(&self) -> &str {
        self.body["error"]["id"].as_str().unwrap_or_default()
    }

    /// A client with no credentials called an endpoint that needs one.
    pub(crate) fn unauthorized() -> ApiError {
        ApiError::new(
            401,
            error(
                "unauthorized",
                "You must authenticate yourself to perform this operation.",
            ),
        )
    }

    /// The credentials were present but not accepted; `auth_error` says why (see [`auth`]).
    pub(crate) fn unauthorized_because(auth_error: Value) -> ApiError {
        let mut e = error(
            "unauthorized",
            "Provided authentication is not valid (see details).",
        );
        e["details"] = json!({ "authError": auth_error });
        ApiError::new(401, e)
    }

    pub(crate) fn forbidden() -> ApiError {
        ApiError::new(
            403,
            error(
                "forbidden",
                "You are not authorized to perform this operation.",
            ),
        )
    }

    pub(crate) fn not_found() -> ApiError {
        ApiError::new(404, error("notFound", "The resource could not be found."))
    }

    pub(crate) fn malformed_data() -> ApiError {
        bad_request(error(
            "malformedData",
            "Provided data could not be understood by the server.",
        ))
    }

    pub(crate) fn missing_required_value(key: &str) -> ApiError {
        bad_request(keyed(
            "missingRequiredValue",
            key,
            format!("Missing required value: {key}."),
        ))
    }

    pub(crate) fn missing_at_least_one_value(keys: &[&str]) -> ApiError {
        let mut e = error(
            "missingAtLeastOneValue",
            &format!(
                "Missing data, provide at least one of: {}.",
                keys.join(", ")
            ),
        );
        e["details"] = json!({ "keys": keys });
        bad_request(e)
    }

    /// A key Onezone would silently ignore here. The stand-in refuses it instead, so a proxy
    /// that sends a body Onezone would not act on fails its tests.
    pub(crate) fn unexpected_key(key: &str, hint: &str) -> ApiError {
        let mut e = keyed(
            "badData",
            key,
            format!("Bad value provided for \"{key}\": {hint}."),
        );
        e["details"]["hint"] = json!(hint);
        bad_request(e)
    }

    pub(crate) fn bad_data(key: &str) -> ApiError {
        bad_request(keyed(
            "badData",
            key,
            format!("Bad value: \"{key}\" has an invalid format or makes no sense here."),
        ))
    }

    pub(crate) fn bad_value_string(key: &str) -> ApiError {
        bad_request(keyed(
            "badValueString",
            key,
            format!("Bad value: \"{key}\" must be a string."),
        ))
    }

    pub(crate) fn bad_value_boolean(key: &str) -> ApiError {
        bad_request(keyed(
            "badValueBoolean",
            key,
            format!("Bad value: \"{key}\" must be a boolean."),
        ))
    }

    pub(crate) fn bad_value_integer(key: &str) -> ApiError {
        bad_request(keyed(
            "badValueInteger",
            key,
            format!("Bad value: \"{key}\" must be an integer."),
        ))
    }

    pub(crate) fn bad_value_json(key: &str) -> ApiError {
        bad_request(keyed(
            "badValueJSON",
            key,
            format!("Bad value: \"{key}\" must be a JSON object."),
        ))
    }

    pub(crate) fn bad_value_list_of_strings(key: &str) -> ApiError {
        bad_request(keyed(
            "badValueListOfStrings",
            key,
            format!("Bad value: \"{key}\" must be a list of strings."),
        ))
    }

    pub(crate) fn bad_value_list_not_allowed(key: &str, allowed: &[&str]) -> ApiError {
        let mut e = keyed(
            "badValueListNotAllowed",
            key,
            format!(
                "Bad value: \"{key}\" may only contain these values: {}.",
                allowed.join(", ")
            ),
        );
        e["details"]["allowed"] = json!(allowed);
        bad_request(e)
    }

    pub(crate) fn bad_value_too_low(key: &str, limit: u64) -> ApiError {
        let mut e = keyed(
            "badValueTooLow",
            key,
            format!("Bad value: \"{key}\" must be at least {limit}."),
        );
        e["details"]["limit"] = json!(limit);
        bad_request(e)
    }

    pub(crate) fn bad_value_id_not_found(key: &str) -> ApiError {
        bad_request(keyed(
            "badValueIdNotFound",
            key,
            format!("Bad value: the ID given as \"{key}\" does not exist."),
        ))
    }

    pub(crate) fn bad_value_name() -> ApiError {
        bad_request(error(
            "badValueName",
            "Bad value: a name is 2-128 characters long: letters, digits, brackets and \
             underscores, with spaces, dots and dashes allowed except first and last.",
        ))
    }

    pub(crate) fn bad_value_identifier_occupied(key: &str) -> ApiError {
        bad_request(keyed(
            "badValueIdentifierOccupied",
            key,
            format!("Bad value: the \"{key}\" given is already taken."),
        ))
    }

    pub(crate) fn bad_value_token_type(key: &str) -> ApiError {
        bad_request(keyed(
            "badValueTokenType",
            key,
            format!("Bad value: \"{key}\" is not a valid token type."),
        ))
    }

    pub(crate) fn bad_value_caveat(caveat: &Value) -> ApiError {
        let mut e = error(
            "badValueCaveat",
            &format!("Provided caveat is invalid: '{caveat}'."),
        );
        e["details"] = json!({ "caveat": caveat });
        bad_request(e)
    }

    /// `token_error` is one of the [`auth`] errors, e.g. [`auth::bad_token`].
    pub(crate) fn bad_value_token(key: &str, token_error: Value) -> ApiError {
        let mut e = keyed(
            "badValueToken",
            key,
            format!("Bad value: \"{key}\" is not a valid token (see details)."),
        );
        e["details"]["tokenError"] = token_error;
        bad_request(e)
    }

    pub(crate) fn invite_token_target_id_invalid(id: &str) -> ApiError {
        let mut e = error(
            "inviteTokenTargetIdInvalid",
            &format!("The target id '{id}' is invalid for this type of invite token."),
        );
        e["details"] = json!({ "id": id });
        bad_request(e)
    }

    pub(crate) fn invite_token_subject_not_authorized() -> ApiError {
        bad_request(error(
            "inviteTokenSubjectNotAuthorized",
            "The subject of this token is not (or no longer) authorized to issue such \
             invitations.",
        ))
    }

    pub(crate) fn token_time_caveat_required(max_ttl: u64) -> ApiError {
        let mut e = error(
            "tokenTimeCaveatRequired",
            &format!("A time caveat with a TTL of at most {max_ttl} seconds is required."),
        );
        e["details"] = json!({ "maxTtl": max_ttl });
        bad_request(e)
    }

    pub(crate) fn relation_already_exists(
        child_type: &str,
        child_id: &str,
        parent_type: &str,
        parent_id: &str,
    ) -> ApiError {
        let mut e = error(
            "relationAlreadyExists",
            &format!(
                "Bad value: {child_type}:{child_id} is already a member of \
                 {parent_type}:{parent_id}."
            ),
        );
        e["details"] = json!({
            "childType": child_type,
            "childId": child_id,
            "parentType": parent_type,
            "parentId": parent_id,
        });
        ApiError::new(409, e)
    }
}

/// The nested errors that explain an `unauthorized` answer or a bad token value.
pub(crate) mod auth {
    use super::error;
    use serde_json::{json, Value};

    pub(crate) fn token_invalid() -> Value {
        error("tokenInvalid", "Provided token is not valid.")
    }

    pub(crate) fn token_revoked() -> Value {
        error("tokenRevoked", "Provided token has been revoked.")
    }

    pub(crate) fn bad_token() -> Value {
        error(
            "badToken",
            "Provided token could not be understood by the server.",
        )
    }

    pub(crate) fn token_session_invalid() -> Value {
        error(
            "tokenSessionInvalid",
            "This token was issued for a session that no longer exists.",
        )
    }

    pub(crate) fn bad_basic_credentials() -> Value {
        error("badBasicCredentials", "Invalid username or password.")
    }

    pub(crate) fn not_an_access_token(received: Value) -> Value {
        let mut e = error(
            "notAnAccessToken",
            "Expected an access token, but received another type of token.",
        );
        e["details"] = json!({ "received": received });
        e
    }

    pub(crate) fn token_caveat_unverified(caveat: &Value) -> Value {
        let mut e = error(
            "tokenCaveatUnverified",
            "Provided token is not valid - a caveat is not satisfied.",
        );
        e["details"] = json!({ "caveat": caveat });
        e
    }
}

fn error(id: &str, description: &str) -> Value {
    json!({ "id": id, "description": description })
}

fn keyed(id: &str, key: &str, description: String) -> Value {
    json!({ "id": id, "description": description, "details": { "key": key } })
}

fn bad_request(error: Value) -> ApiError {
    ApiError::new(400, error)
}

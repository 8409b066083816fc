//! Serving Onezone's deprecated token endpoints through the tokens API, answering as Onezone's
//! own legacy code does (status, body, error ids).
//!
//! [`Legacy::handle`] takes a matched [`Route`] and the client's request and returns the legacy
//! [`Answer`]; it never touches the downstream connection, so everything here is testable
//! without Pingora. The mapping steps are pure functions with unit tests beside them.

pub mod altered;
mod cache;
mod caller;
mod client_tokens;
mod invite;
pub mod names;
pub mod negotiation;

use bytes::Bytes;
use http::HeaderMap;
use serde_json::{json, Value};

pub use caller::{Caller, CallerCache, Credential, Subject};

use crate::onezone::client::{Call, CallError, Forwarded, OnezoneClient, Reply};
use crate::onezone::error::OnezoneError;
use crate::routes::{Rewrite, Route};

/// The headers Onezone reads credentials from; copied unchanged onto every upstream call.
pub const CREDENTIAL_HEADERS: [&str; 5] = [
    "x-auth-token",
    "authorization",
    "macaroon",
    "x-onedata-consumer-token",
    "x-onedata-service-token",
];

/// A legacy call as the proxy received it.
#[derive(Debug, Clone)]
pub struct LegacyRequest {
    pub route: &'static Route,
    /// The route's rewrite (only routes with one are served here).
    pub rewrite: Rewrite,
    /// The decoded `{id}` / `{tid}` path segment, not yet validated.
    pub param: Option<Vec<u8>>,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// Who calls, with the headers its upstream calls carry (subject not yet resolved).
    pub caller: Caller,
}

/// The legacy answer: status and JSON body (`None` for 204).
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub status: u16,
    pub body: Option<Value>,
    /// The caller's subject when it was resolved, for the access log and the caller table.
    pub subject: Option<Subject>,
    /// Why a call to Onezone failed, when that is what this answer reports.
    pub failure: Option<&'static str>,
    /// The token this answer hands out, so that it can be deleted if the answer never arrives.
    pub created: Option<CreatedToken>,
    /// `allow` of a 405: the methods of the route.
    pub allow: Option<String>,
    /// In a dry run ([`Effect::DryRun`]): the change the rewrite would have made instead of
    /// this answer.
    pub planned: Option<Box<Planned>>,
}

/// Whether serving a legacy call may change Onezone. `verify` runs the rewrite as a dry run:
/// every read happens as in `rewrite`, and the one call that would change something (creating
/// or deleting the token) is left out and described instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Apply,
    DryRun,
}

/// What a dry run would have changed.
#[derive(Debug, Clone, PartialEq)]
pub enum Planned {
    /// `POST {path}` with `body`, as `subject`: the token the answer would have carried.
    Create { path: &'static str, body: Value },
    /// The outcome of the delete cannot be told without doing it (the token is another
    /// subject's, and the caller may read it).
    UnknownDelete,
}

/// A named token created for a legacy answer: its id, and the caller's headers to delete it with.
#[derive(Clone)]
pub struct CreatedToken {
    pub id: String,
    pub forwarded: Forwarded,
}

impl PartialEq for CreatedToken {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

// The forwarded headers hold the caller's credential: never print them.
impl std::fmt::Debug for CreatedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedToken")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Answer {
    pub fn ok(body: Value) -> Answer {
        Answer {
            status: 200,
            body: Some(body),
            subject: None,
            failure: None,
            created: None,
            allow: None,
            planned: None,
        }
    }

    /// An answer with no body, as cowboy_rest gives for 405, 406 and 415.
    pub fn empty(status: u16) -> Answer {
        Answer {
            status,
            body: None,
            subject: None,
            failure: None,
            created: None,
            allow: None,
            planned: None,
        }
    }

    /// 405 for a method the legacy route does not have, with its methods in `allow` and no
    /// body (`cowboy_rest.erl:355-361`), before anything else is looked at. (Onezone's own
    /// answer to HEAD and OPTIONS there is an empty 500 from a missing clause, a bug not copied.)
    pub fn method_not_allowed(allow: String) -> Answer {
        Answer {
            allow: Some(allow),
            ..Answer::empty(405)
        }
    }

    pub fn no_content() -> Answer {
        Answer {
            status: 204,
            body: None,
            subject: None,
            failure: None,
            created: None,
            allow: None,
            planned: None,
        }
    }

    pub fn error(e: OnezoneError) -> Answer {
        Answer {
            status: e.status,
            body: Some(e.to_json()),
            subject: None,
            failure: None,
            created: None,
            allow: None,
            planned: None,
        }
    }

    /// A call to Onezone failed: 504 for a timeout, 502 otherwise.
    pub fn call_failed(e: CallError) -> Answer {
        Answer {
            failure: Some(e.reason()),
            ..Answer::error(OnezoneError::upstream_failed(e))
        }
    }

    /// A token answer, `200 {"token": ...}`.
    pub fn token(token: String) -> Answer {
        Answer::ok(json!({ "token": token }))
    }

    fn for_subject(mut self, caller: &Caller) -> Answer {
        self.subject = (caller.subject != Subject::Unknown).then(|| caller.subject.clone());
        self
    }
}

/// Maps an error answer from the tokens API to what the legacy endpoint answers.
///
/// Onezone's legacy path checks the target and the caller's privileges before it creates the
/// token, answering 404 and 403; the tokens API reports the same two conditions as 400s.
pub fn legacy_error(reply: &Reply) -> Answer {
    match reply.error_id() {
        Some("inviteTokenTargetIdInvalid") => Answer::error(OnezoneError::not_found()),
        Some("inviteTokenSubjectNotAuthorized") => Answer::error(OnezoneError::forbidden()),
        Some(_) => Answer {
            status: reply.status,
            body: Some(reply.body.clone()),
            subject: None,
            failure: None,
            created: None,
            allow: None,
            planned: None,
        },
        // Not Onezone's error shape (e.g. a load balancer's page): keep the status, give the shape.
        None => Answer::error(generic_error(reply.status)),
    }
}

fn generic_error(status: u16) -> OnezoneError {
    match status {
        401 => OnezoneError::unauthorized(),
        403 => OnezoneError::forbidden(),
        404 => OnezoneError::not_found(),
        502..=504 => OnezoneError::bad_gateway(&format!("status {status}")),
        _ => OnezoneError {
            status,
            ..OnezoneError::internal()
        },
    }
}

/// The legacy endpoints' service: the Onezone client, the caller cache and the cache of
/// target display names (for token names).
pub struct Legacy {
    pub client: OnezoneClient,
    pub callers: CallerCache,
    pub(crate) names: names::DisplayNames,
}

impl Legacy {
    pub fn new(client: OnezoneClient, callers: CallerCache) -> Legacy {
        Legacy {
            client,
            callers,
            names: names::DisplayNames::new(),
        }
    }

    /// A local answer, unless Onezone refuses the caller's credential: Onezone authenticates
    /// before it looks at anything else (rest_handler's `is_authorized` runs before content
    /// negotiation, the entity and the body), so an invalid credential gets Onezone's own 401
    /// with `authError`. A resolved subject has already been accepted by Onezone.
    pub(crate) async fn unless_unauthenticated(
        &self,
        caller: &Caller,
        answer: Answer,
    ) -> Result<Answer, CallError> {
        if caller.credential == Credential::None || caller.subject != Subject::Unknown {
            return Ok(answer);
        }
        let reply = self
            .client
            .call(&Call::get("get_user", "/user"), &caller.forwarded)
            .await?;
        Ok(match reply.status {
            401 => legacy_error(&reply),
            _ => answer,
        })
    }

    /// Deletes a token whose answer could not be delivered, so that no invite is left that
    /// nobody can use (best effort: the outcome is logged).
    pub async fn delete_undelivered(&self, created: CreatedToken) {
        let call = Call::delete("delete_named", format!("/tokens/named/{}", created.id));
        match self.client.call(&call, &created.forwarded).await {
            Ok(r) if r.is_success() => {
                tracing::info!(token_id = %created.id, "undelivered token deleted")
            }
            Ok(r) => tracing::warn!(
                token_id = %created.id,
                status = r.status,
                "cannot delete the undelivered token"
            ),
            Err(e) => tracing::warn!(
                token_id = %created.id,
                error = e.reason(),
                "cannot delete the undelivered token"
            ),
        }
    }

    /// Serves one legacy call, in Onezone's order: the credential (401), content negotiation and
    /// the body (406, 415, 400), then the operation (its entity, authorization and values).
    pub async fn handle(&self, req: LegacyRequest) -> Answer {
        self.serve(req, Effect::Apply)
            .await
            .unwrap_or_else(Answer::call_failed)
    }

    /// What [`Legacy::handle`] would answer, changing nothing in Onezone (see [`Effect`]).
    pub async fn dry_run(&self, req: LegacyRequest) -> Answer {
        self.serve(req, Effect::DryRun)
            .await
            .unwrap_or_else(Answer::call_failed)
    }

    async fn serve(&self, req: LegacyRequest, effect: Effect) -> Result<Answer, CallError> {
        let LegacyRequest {
            route,
            rewrite,
            param,
            headers,
            body,
            caller,
        } = req;
        let caller = self.resolve(caller).await?;
        let body = match negotiation::negotiate(route.method, &headers, &body) {
            Ok(body) => body,
            Err(refusal) => {
                let answer = match refusal {
                    negotiation::Refusal::NotAcceptable => Answer::empty(406),
                    negotiation::Refusal::UnsupportedMediaType => Answer::empty(415),
                    negotiation::Refusal::Malformed(e) => Answer::error(e),
                };
                let answer = self.unless_unauthenticated(&caller, answer).await?;
                return Ok(answer.for_subject(&caller));
            }
        };
        let param = param.as_deref();
        let answer = match rewrite {
            Rewrite::Invite(inv) => {
                invite::create(self, &inv, param, body, &caller, effect).await?
            }
            Rewrite::CreateClientToken => {
                client_tokens::create(self, body, &caller, effect).await?
            }
            Rewrite::ListClientTokens => client_tokens::list(self, &caller).await?,
            Rewrite::DeleteClientToken => {
                client_tokens::delete(self, param, &caller, effect).await?
            }
        };
        Ok(answer.for_subject(&caller))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(status: u16, body: Value) -> Reply {
        Reply { status, body }
    }

    #[test]
    fn invite_errors_become_legacy_errors() {
        let target = reply(
            400,
            json!({"error": {"id": "inviteTokenTargetIdInvalid", "description": "x", "details": {"id": "g"}}}),
        );
        let a = legacy_error(&target);
        assert_eq!(a.status, 404);
        assert_eq!(a.body.unwrap()["error"]["id"], "notFound");

        let subject = reply(
            400,
            json!({"error": {"id": "inviteTokenSubjectNotAuthorized", "description": "x"}}),
        );
        let a = legacy_error(&subject);
        assert_eq!(a.status, 403);
        assert_eq!(
            a.body.unwrap(),
            json!({"error": {"id": "forbidden", "description": "You are not authorized to perform this operation."}})
        );
    }

    #[test]
    fn other_errors_keep_status_and_body() {
        let body = json!({"error": {"id": "unauthorized", "description": "d", "details": {"authError": {"id": "tokenInvalid"}}}});
        let a = legacy_error(&reply(401, body.clone()));
        assert_eq!((a.status, a.body), (401, Some(body)));
        let a = legacy_error(&reply(503, Value::Null));
        assert_eq!(a.status, 502);
        assert_eq!(a.body.unwrap()["error"]["id"], "badGateway");
        let a = legacy_error(&reply(500, Value::Null));
        assert_eq!(a.status, 500);
        assert_eq!(a.body.unwrap()["error"]["id"], "internalServerError");
    }

    #[test]
    fn call_failures_are_gateway_errors() {
        let a = Answer::call_failed(CallError::Timeout);
        assert_eq!(a.status, 504);
        assert_eq!(a.failure, Some("timeout"));
        let a = Answer::call_failed(CallError::Connect);
        assert_eq!(a.status, 502);
        assert_eq!(a.body.unwrap()["error"]["id"], "badGateway");
    }
}

//! `mode = "verify"`: the client's call goes to Onezone unchanged and the client gets Onezone's
//! own answer; afterwards, in the background, the rewrite is run as a dry run
//! ([`Legacy::dry_run`]: every read as in `rewrite`, the creating or deleting call left out) and
//! what it would have answered is compared with what Onezone answered. Only calls that change
//! nothing in Onezone are made: the caller's resolution, `POST /tokens/examine` and
//! `GET /tokens/named/{id}` of a token Onezone issued, and the reads the rewrite itself makes.
//!
//! Each check ends in one result, counted by route (`migproxy_verify_total`):
//! - `match`: every compared field agrees;
//! - `mismatch`: the first field that differs (one of [`FIELDS`]), logged once with both values
//!   and the caller's subject id, never a token or a credential;
//! - `unverifiable`: only a call that changes Onezone could tell (the rewrite would create a
//!   token where Onezone refused the call: 403 or 404 from a privilege or target check), or the
//!   answer could not be kept (too large, compressed, the client left);
//! - `error`: a call of the check failed or the check timed out;
//! - `dropped`: the queue was full.
//!
//! Checks run with bounded concurrency (`verify.concurrency`) and a bounded queue
//! (`verify.queue`); each has its own timeout (`verify.timeout`). A check never delays the
//! client's answer: it starts after the answer has been sent. The exception is
//! `DELETE /user/client_tokens/{tid}`, whose prediction is read before the call is forwarded
//! (afterwards the token is gone); it is bounded by the same timeout.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use tokio::sync::Semaphore;

use crate::config::Verify as Settings;
use crate::legacy::names::is_valid_name;
use crate::legacy::{Answer, Legacy, LegacyRequest, Planned};
use crate::metrics::metrics;
use crate::onezone::client::{Call, Forwarded};
use crate::routes::{Rewrite, Route};

/// Every value of the `field` label: bounded.
pub(crate) const FIELDS: [&str; 15] = [
    "none",
    "status",
    "error_id",
    "body",
    "list",
    "persistence",
    "owner",
    "type",
    "invite_type",
    "target",
    "usage_limit",
    "privileges",
    "caveats",
    "valid_until",
    "name",
];

/// The largest Onezone answer a check keeps; legacy answers are a few hundred bytes.
pub(crate) const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// What Onezone answered the client.
#[derive(Debug, Clone)]
pub(crate) struct Observed {
    pub status: u16,
    /// The JSON body; `None` when there was none (or it was not JSON).
    pub body: Option<Value>,
}

/// One call to check.
pub(crate) struct Check {
    pub req: LegacyRequest,
    pub observed: Observed,
    /// For a delete: the dry run made before the call was forwarded.
    pub predicted: Option<Answer>,
}

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Verdict {
    Match,
    Mismatch {
        field: &'static str,
        expected: String,
        actual: String,
    },
    Unverifiable(&'static str),
    Error(&'static str),
}

impl Verdict {
    fn mismatch(field: &'static str, expected: impl ToString, actual: impl ToString) -> Verdict {
        Verdict::Mismatch {
            field,
            expected: expected.to_string(),
            actual: actual.to_string(),
        }
    }

    fn labels(&self) -> (&'static str, &'static str) {
        match self {
            Verdict::Match => ("match", "none"),
            Verdict::Mismatch { field, .. } => ("mismatch", field),
            Verdict::Unverifiable(_) => ("unverifiable", "none"),
            Verdict::Error(_) => ("error", "none"),
        }
    }
}

/// Counts a check that did not run (`unverifiable`, `dropped`).
pub(crate) fn count(route: &Route, result: &'static str) {
    metrics()
        .verify_checks
        .with_label_values(&[route.operation, result, "none"])
        .inc();
}

/// Runs the checks in the background, bounded.
pub(crate) struct Verifier {
    legacy: Arc<Legacy>,
    permits: Arc<Semaphore>,
    /// Checks queued or running; at most `capacity`.
    pending: AtomicUsize,
    capacity: usize,
    timeout: Duration,
    tolerance: Duration,
}

impl Verifier {
    pub(crate) fn new(legacy: Arc<Legacy>, s: &Settings) -> Arc<Verifier> {
        Arc::new(Verifier {
            legacy,
            permits: Arc::new(Semaphore::new(s.concurrency)),
            pending: AtomicUsize::new(0),
            capacity: s.concurrency + s.queue,
            timeout: s.timeout,
            tolerance: s.time_tolerance,
        })
    }

    /// Queues a check, or drops and counts it when the queue is full. Never waits.
    pub(crate) fn submit(self: &Arc<Self>, check: Check) {
        let route = check.req.route;
        let taken = self
            .pending
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.capacity).then_some(n + 1)
            });
        if taken.is_err() {
            count(route, "dropped");
            return;
        }
        metrics().verify_pending.inc();
        let me = self.clone();
        tokio::spawn(async move {
            let verdict = match me.permits.clone().acquire_owned().await {
                Ok(_permit) => {
                    let subject = check.req.caller.subject.id().map(str::to_string);
                    match tokio::time::timeout(me.timeout, me.verdict(check)).await {
                        Ok((verdict, resolved)) => (verdict, resolved.or(subject)),
                        Err(_) => (Verdict::Error("timeout"), subject),
                    }
                }
                Err(_) => (Verdict::Error("closed"), None),
            };
            me.pending.fetch_sub(1, Ordering::AcqRel);
            metrics().verify_pending.dec();
            record(route, &verdict.0, verdict.1.as_deref());
        });
    }

    /// The dry run of a delete, made before the call is forwarded (bounded by the timeout).
    pub(crate) async fn predict(&self, req: LegacyRequest) -> Option<Answer> {
        tokio::time::timeout(self.timeout, self.legacy.dry_run(req))
            .await
            .ok()
    }

    /// The check itself, and the caller's subject id when the dry run resolved it.
    async fn verdict(&self, check: Check) -> (Verdict, Option<String>) {
        let rewrite = check.req.rewrite;
        let forwarded = check.req.caller.forwarded.clone();
        let dry = match check.predicted {
            Some(answer) => answer,
            None => self.legacy.dry_run(check.req).await,
        };
        let subject = dry
            .subject
            .as_ref()
            .and_then(|s| s.id())
            .map(str::to_string);
        let verdict = match (&dry.failure, dry.planned.as_deref()) {
            (Some(reason), _) => Verdict::Error(reason),
            (None, Some(Planned::UnknownDelete)) => {
                Verdict::Unverifiable("another subject's token: only deleting it tells")
            }
            (None, Some(Planned::Create { path, body })) => {
                let token = check
                    .observed
                    .body
                    .as_ref()
                    .and_then(|b| b["token"].as_str());
                match (check.observed.status, token) {
                    (200, Some(token)) => {
                        let expected = Expected {
                            rewrite,
                            owner: owner(path, subject.as_deref()),
                            body,
                            tolerance: self.tolerance,
                        };
                        self.compare_token(&expected, token, &forwarded).await
                    }
                    (200, None) => Verdict::mismatch("body", "a token", "no token"),
                    // Onezone authenticates before anything else (rest_handler's
                    // `is_authorized`), so the rewrite's creating call would get the same 401
                    // exactly when the credential is refused: a read tells.
                    (401, _) => {
                        self.compare_unauthenticated(&check.observed, &forwarded)
                            .await
                    }
                    // The rewrite would have asked Onezone to create the token; only that call
                    // could tell whether it would have been refused the same way.
                    _ => Verdict::Unverifiable("only creating the token could tell"),
                }
            }
            (None, None) => compare_answers(&dry, &check.observed),
        };
        (verdict, subject)
    }

    /// Onezone refused the credential: the read-only `GET /user` with it must be refused alike.
    async fn compare_unauthenticated(&self, observed: &Observed, fwd: &Forwarded) -> Verdict {
        let call = Call::get("verify_get_user", "/user");
        match self.legacy.client.call(&call, fwd).await {
            Ok(r) if r.status == 401 => {
                let dry = Answer {
                    status: 401,
                    body: Some(r.body),
                    ..Answer::empty(401)
                };
                compare_answers(&dry, observed)
            }
            Ok(r) => Verdict::mismatch(
                "status",
                format!("the credential accepted (GET /user: {})", r.status),
                observed.status,
            ),
            Err(e) => Verdict::Error(e.reason()),
        }
    }

    /// Reads the token Onezone issued and compares it with what the rewrite would have created.
    async fn compare_token(&self, e: &Expected<'_>, token: &str, fwd: &Forwarded) -> Verdict {
        let client = &self.legacy.client;
        let examine = Call::post(
            "verify_examine",
            "/tokens/examine",
            json!({ "token": token }),
        );
        let examined = match client.call(&examine, fwd).await {
            Ok(r) if r.is_success() => r.body,
            Ok(_) => return Verdict::Error("examine refused"),
            Err(e) => return Verdict::Error(e.reason()),
        };
        if examined["persistence"] != "named" {
            return Verdict::mismatch("persistence", "named", &examined["persistence"]);
        }
        let Some(id) = examined["id"]
            .as_str()
            .and_then(|id| crate::routes::entity_id(id.as_bytes()))
        else {
            return Verdict::Error("examine gave no id");
        };
        let read = Call::get("verify_get_named", format!("/tokens/named/{id}"));
        let record = match client.call(&read, fwd).await {
            Ok(r) if r.is_success() => r.body,
            Ok(_) => return Verdict::Error("token read refused"),
            Err(e) => return Verdict::Error(e.reason()),
        };
        compare_token(e, &examined, &record, SystemTime::now())
    }
}

/// Counts a verdict and logs a mismatch (values of token fields only, never a token).
fn record(route: &Route, verdict: &Verdict, subject: Option<&str>) {
    let (result, field) = verdict.labels();
    debug_assert!(FIELDS.contains(&field), "{field} is not in FIELDS");
    metrics()
        .verify_checks
        .with_label_values(&[route.operation, result, field])
        .inc();
    let subject = subject.unwrap_or("");
    match verdict {
        Verdict::Mismatch {
            field,
            expected,
            actual,
        } => tracing::warn!(
            target: "verify",
            route = route.operation,
            field,
            expected = %expected,
            actual = %actual,
            subject,
            "the rewrite would have answered differently from Onezone"
        ),
        Verdict::Error(reason) => tracing::debug!(
            target: "verify",
            route = route.operation,
            reason,
            "verification failed"
        ),
        Verdict::Unverifiable(why) => tracing::debug!(
            target: "verify",
            route = route.operation,
            why,
            "not verifiable"
        ),
        Verdict::Match => {}
    }
}

/// What the rewrite would have created.
struct Expected<'a> {
    rewrite: Rewrite,
    /// `{type, id}` of the subject that would own the token.
    owner: Value,
    /// The `POST .../tokens/named` body of the dry run.
    body: &'a Value,
    tolerance: Duration,
}

fn owner(path: &str, subject: Option<&str>) -> Value {
    let kind = match path.starts_with("/provider/") {
        true => "oneprovider",
        false => "user",
    };
    json!({ "type": kind, "id": subject })
}

/// Compares an issued token (its examine answer and its named record) with the dry run's
/// creation, field by field, in the order a client depends on them.
fn compare_token(e: &Expected, examined: &Value, record: &Value, now: SystemTime) -> Verdict {
    if examined["subject"] != e.owner {
        return Verdict::mismatch("owner", &e.owner, &examined["subject"]);
    }
    let planned_type = &e.body["type"];
    if let Rewrite::Invite(inv) = e.rewrite {
        let got = &examined["type"]["inviteToken"];
        if !got.is_object() {
            return Verdict::mismatch("type", "inviteToken", &examined["type"]);
        }
        let want = &planned_type["inviteToken"];
        if got["inviteType"] != want["inviteType"] {
            return Verdict::mismatch("invite_type", &want["inviteType"], &got["inviteType"]);
        }
        if got[inv.target_key] != want[inv.target_key] {
            return Verdict::mismatch("target", &want[inv.target_key], &got[inv.target_key]);
        }
        let limit = &record["metadata"]["usageLimit"];
        if *limit != e.body["usageLimit"] {
            return Verdict::mismatch("usage_limit", &e.body["usageLimit"], limit);
        }
        // The rewrite sends no privileges, so Onezone applies the invite type's defaults (or
        // none); which ones is Onezone's own table. What is checked: no custom form slipped in.
        let privileges = &record["metadata"]["privileges"];
        let default_form = privileges.is_null()
            || privileges
                .as_array()
                .is_some_and(|p| p.iter().all(Value::is_string));
        if e.body.get("privileges").is_none() && !default_form {
            return Verdict::mismatch("privileges", "the defaults", privileges);
        }
        let caveats = examined["caveats"].as_array().map_or(0, Vec::len);
        if caveats != 0 {
            return Verdict::mismatch("caveats", "[]", &examined["caveats"]);
        }
        if !invite_name_follows(&e.body["name"], &record["name"]) {
            return Verdict::mismatch("name", &e.body["name"], &record["name"]);
        }
        return Verdict::Match;
    }
    if examined["type"] != *planned_type {
        return Verdict::mismatch("type", planned_type, &examined["type"]);
    }
    let caveats = examined["caveats"].as_array();
    let one_time = caveats.filter(|c| c.len() == 1).map(|c| &c[0]);
    let Some(time) = one_time.filter(|c| c["type"] == "time") else {
        return Verdict::mismatch("caveats", &e.body["caveats"], &examined["caveats"]);
    };
    let want = e.body["caveats"][0]["validUntil"].as_u64().unwrap_or(0);
    let got = time["validUntil"].as_u64().unwrap_or(0);
    if want.abs_diff(got) > e.tolerance.as_secs() {
        return Verdict::mismatch("valid_until", want, got);
    }
    if !client_name_follows(&record["name"], now) {
        return Verdict::mismatch("name", &e.body["name"], &record["name"]);
    }
    Verdict::Match
}

/// `<description> - <target> <six hex digits>`: the description as the rewrite's, the rest
/// by pattern (the target's display name is read by each side at its own moment).
fn invite_name_follows(planned: &Value, got: &Value) -> bool {
    let (Some(planned), Some(got)) = (planned.as_str(), got.as_str()) else {
        return false;
    };
    let Some((description, _)) = planned.split_once(" - ") else {
        return false;
    };
    let Some(rest) = got
        .strip_prefix(description)
        .and_then(|r| r.strip_prefix(" - "))
    else {
        return false;
    };
    is_valid_name(got) && ends_with_suffix(rest)
}

/// `access token <UTC time with dots> <six hex digits>`, the time within a day of `now`.
fn client_name_follows(got: &Value, now: SystemTime) -> bool {
    let Some(got) = got.as_str() else {
        return false;
    };
    let Some(rest) = got.strip_prefix("access token ") else {
        return false;
    };
    let Some((time, _)) = rest.split_once(' ') else {
        return false;
    };
    let when = humantime::parse_rfc3339(&time.replace('.', ":")).ok();
    let near = when.is_some_and(|t| {
        let secs = |t: SystemTime| t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        secs(t).abs_diff(secs(now)) <= 86_400
    });
    near && ends_with_suffix(rest)
}

fn ends_with_suffix(name: &str) -> bool {
    name.rsplit_once(' ')
        .is_some_and(|(_, s)| s.len() == 6 && s.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A dry run that answered in full (an error of its own checks, a list, a delete's outcome)
/// against Onezone's answer.
fn compare_answers(dry: &Answer, observed: &Observed) -> Verdict {
    if dry.status != observed.status {
        return Verdict::mismatch("status", dry.status, observed.status);
    }
    let error_id = |b: Option<&Value>| b.map(|b| b["error"]["id"].clone()).unwrap_or_default();
    if dry.status >= 400 {
        let (want, got) = (
            error_id(dry.body.as_ref()),
            error_id(observed.body.as_ref()),
        );
        return match want == got {
            true => Verdict::Match,
            false => Verdict::mismatch("error_id", want, got),
        };
    }
    let tokens = |b: Option<&Value>| b.and_then(|b| b["tokens"].as_array().cloned());
    match (tokens(dry.body.as_ref()), tokens(observed.body.as_ref())) {
        // Client tokens are credentials: a difference is told by counts and position only.
        (Some(want), Some(got)) if want != got => {
            let at = want.iter().zip(&got).position(|(a, b)| a != b);
            let actual = match at {
                Some(i) => format!("{} tokens, first difference at position {i}", got.len()),
                None => format!("{} tokens", got.len()),
            };
            Verdict::mismatch("list", format!("{} tokens", want.len()), actual)
        }
        (Some(_), Some(_)) => Verdict::Match,
        _ if dry.body == observed.body => Verdict::Match,
        _ => Verdict::mismatch("body", "the rewrite's body", "another body"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::ROUTES;

    /// Onezone's one year of a legacy client token.
    const CLIENT_TOKEN_TTL_SECS: u64 = 31_536_000;

    fn invite_rewrite() -> Rewrite {
        ROUTES
            .iter()
            .find(|r| r.operation == "create_user_group_invite_token")
            .and_then(|r| r.rewrite)
            .unwrap()
    }

    fn planned() -> Value {
        json!({
            "name": "user invite to group - Team 0a1b2c",
            "type": {"inviteToken": {"inviteType": "userJoinGroup", "groupId": "g1"}},
            "usageLimit": 1,
        })
    }

    fn issued() -> (Value, Value) {
        let examined = json!({
            "id": "t1", "persistence": "named",
            "subject": {"type": "user", "id": "u1"},
            "type": {"inviteToken": {"inviteType": "userJoinGroup", "groupId": "g1"}},
            "caveats": [],
        });
        let record = json!({
            "name": "user invite to group - Team ff00aa",
            "metadata": {"usageLimit": 1, "usageCount": 0, "privileges": ["group_view"]},
        });
        (examined, record)
    }

    fn expected(body: &Value) -> Expected<'_> {
        Expected {
            rewrite: invite_rewrite(),
            owner: owner("/user/tokens/named", Some("u1")),
            body,
            tolerance: Duration::from_secs(300),
        }
    }

    #[test]
    fn an_invite_matches_field_by_field_and_names_the_first_difference() {
        let body = planned();
        let (examined, record) = issued();
        let now = SystemTime::now();
        assert_eq!(
            compare_token(&expected(&body), &examined, &record, now),
            Verdict::Match
        );
        let mut other = record.clone();
        other["metadata"]["usageLimit"] = json!(2);
        let v = compare_token(&expected(&body), &examined, &other, now);
        assert_eq!(v.labels(), ("mismatch", "usage_limit"));
        let mut other = examined.clone();
        other["type"]["inviteToken"]["groupId"] = json!("g2");
        let v = compare_token(&expected(&body), &other, &record, now);
        assert_eq!(v, Verdict::mismatch("target", "\"g1\"", "\"g2\""));
        let mut other = examined.clone();
        other["subject"]["id"] = json!("u2");
        assert_eq!(
            compare_token(&expected(&body), &other, &record, now).labels(),
            ("mismatch", "owner")
        );
        let mut other = record.clone();
        other["name"] = json!("invite 1234");
        assert_eq!(
            compare_token(&expected(&body), &examined, &other, now).labels(),
            ("mismatch", "name")
        );
        let mut other = examined;
        other["caveats"] = json!([{"type": "time", "validUntil": 1}]);
        assert_eq!(
            compare_token(&expected(&body), &other, &record, now).labels(),
            ("mismatch", "caveats")
        );
    }

    #[test]
    fn a_client_token_allows_clock_skew_on_its_expiry() {
        let now = SystemTime::now();
        let secs = now.duration_since(UNIX_EPOCH).unwrap().as_secs();
        let body = json!({
            "name": "access token 2026-12-01T22.00.00Z 0a1b2c",
            "type": {"accessToken": {}},
            "caveats": [{"type": "time", "validUntil": secs + CLIENT_TOKEN_TTL_SECS}],
        });
        let e = Expected {
            rewrite: Rewrite::CreateClientToken,
            owner: owner("/user/tokens/named", Some("u1")),
            body: &body,
            tolerance: Duration::from_secs(300),
        };
        let name = crate::legacy::names::client_token_name(now, "a1b2c3");
        let record = json!({ "name": name });
        let examined = |until: u64| {
            json!({
                "id": "t", "persistence": "named", "subject": {"type": "user", "id": "u1"},
                "type": {"accessToken": {}},
                "caveats": [{"type": "time", "validUntil": until}],
            })
        };
        let until = secs + CLIENT_TOKEN_TTL_SECS;
        assert_eq!(
            compare_token(&e, &examined(until - 2), &record, now),
            Verdict::Match
        );
        assert_eq!(
            compare_token(&e, &examined(until - 3_600), &record, now).labels(),
            ("mismatch", "valid_until")
        );
    }

    #[test]
    fn answers_compare_status_then_error_id_and_lists_without_their_tokens() {
        let dry = Answer::error(crate::onezone::error::OnezoneError::not_found());
        let same = Observed {
            status: 404,
            body: dry.body.clone(),
        };
        assert_eq!(compare_answers(&dry, &same), Verdict::Match);
        let other = Observed {
            status: 403,
            body: None,
        };
        assert_eq!(
            compare_answers(&dry, &other).labels(),
            ("mismatch", "status")
        );
        let list = Answer::ok(json!({"tokens": ["secret-a", "secret-b"]}));
        let got = Observed {
            status: 200,
            body: Some(json!({"tokens": ["secret-b", "secret-a"]})),
        };
        let v = compare_answers(&list, &got);
        let Verdict::Mismatch {
            field,
            expected,
            actual,
        } = v
        else {
            panic!("{v:?}")
        };
        assert_eq!(field, "list");
        assert!(!expected.contains("secret") && !actual.contains("secret"));
        assert_eq!(actual, "2 tokens, first difference at position 0");
    }
}

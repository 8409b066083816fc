//! Who is calling: a user or a Oneprovider, and its id.
//!
//! Onezone's legacy code creates the token as the calling subject, so the proxy must know it:
//! `POST /tokens/examine` for a token, `GET /user` for Basic auth. Answers are cached per replica
//! for a short time, keyed by a SHA-256 digest of the credential (never the credential itself).
//! The cache only picks the endpoint and names; Onezone still authenticates every call.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use std::net::IpAddr;

use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::cache::TtlMap;
use super::{legacy_error, Answer, Legacy, CREDENTIAL_HEADERS};
use crate::forwarding::{ForwardingHeaders, X_FORWARDED_FOR, X_FORWARDED_PROTO};
use crate::onezone::client::{Call, CallError, Forwarded};

/// The credential Onezone would authenticate the request with, in Onezone's order.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    Token(String),
    Basic(String),
    None,
}

// Never print a credential, not even in debug output.
impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Credential::Token(_) => "Token(..)",
            Credential::Basic(_) => "Basic(..)",
            Credential::None => "None",
        })
    }
}

impl Credential {
    /// `X-Auth-Token`, then `Authorization: Bearer`, then `Macaroon`, then Basic auth.
    pub fn from_headers(headers: &HeaderMap) -> Credential {
        let text = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|v| !v.is_empty())
        };
        let authorization = text("authorization");
        let scheme = |prefix: &str| {
            authorization.and_then(|a| {
                let (s, rest) = a.split_once(' ')?;
                s.eq_ignore_ascii_case(prefix).then(|| rest.trim())
            })
        };
        if let Some(t) = text("x-auth-token") {
            return Credential::Token(t.to_string());
        }
        if let Some(t) = scheme("bearer") {
            return Credential::Token(t.to_string());
        }
        if let Some(t) = text("macaroon") {
            return Credential::Token(t.to_string());
        }
        if let Some(b) = scheme("basic") {
            return Credential::Basic(b.to_string());
        }
        Credential::None
    }

    /// The cache key: a digest, so the raw credential is never kept.
    pub fn digest(&self) -> Option<[u8; 32]> {
        let (kind, value) = match self {
            Credential::Token(t) => ("token", t),
            Credential::Basic(b) => ("basic", b),
            Credential::None => return None,
        };
        let mut h = Sha256::new();
        h.update(kind.as_bytes());
        h.update([0]);
        h.update(value.as_bytes());
        Some(h.finalize().into())
    }
}

/// The subject Onezone sees for a credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    User(String),
    Provider(String),
    /// Not resolved (no credential, or Onezone would not tell): calls go to the user endpoints and
    /// Onezone answers the authentication error itself.
    Unknown,
}

impl Subject {
    /// `user`, `provider`, or `""` when unknown (the access line's `subject_kind`).
    pub fn kind(&self) -> &'static str {
        match self {
            Subject::User(_) => "user",
            Subject::Provider(_) => "provider",
            Subject::Unknown => "",
        }
    }

    pub fn id(&self) -> Option<&str> {
        match self {
            Subject::User(id) | Subject::Provider(id) => Some(id),
            Subject::Unknown => None,
        }
    }
}

/// One legacy caller: its forwarded headers, credential and (once resolved) subject. Built
/// once per request, in `request_filter`; the rollout bucket and the legacy handler share it.
#[derive(Debug, Clone)]
pub struct Caller {
    pub forwarded: Forwarded,
    pub credential: Credential,
    pub subject: Subject,
}

impl Caller {
    /// The caller of a request: the credential headers Onezone reads, copied unchanged for the
    /// calls made on its behalf, and the forwarding headers the proxy computed for it.
    pub(crate) fn new(headers: &HeaderMap, forwarding: &ForwardingHeaders) -> Caller {
        let mut forwarded = Forwarded::default();
        for name in CREDENTIAL_HEADERS {
            for value in headers.get_all(name) {
                forwarded
                    .headers
                    .push((HeaderName::from_static(name), value.clone()));
            }
        }
        let pairs = [
            (X_FORWARDED_FOR, forwarding.forwarded_for.as_str()),
            (X_FORWARDED_PROTO, forwarding.forwarded_proto),
        ];
        for (name, value) in pairs.into_iter().filter(|(_, v)| !v.is_empty()) {
            if let Ok(value) = HeaderValue::from_str(value) {
                forwarded
                    .headers
                    .push((HeaderName::from_static(name), value));
            }
        }
        Caller {
            forwarded,
            credential: Credential::from_headers(headers),
            subject: Subject::Unknown,
        }
    }

    /// What the sticky rollout buckets on: the credential's digest, or the client address's
    /// when it sent none (never the credential itself).
    pub(crate) fn rollout_digest(&self, peer: Option<IpAddr>) -> [u8; 32] {
        self.credential.digest().unwrap_or_else(|| {
            let mut h = Sha256::new();
            h.update(b"address\0");
            h.update(peer.map(|ip| ip.to_string()).unwrap_or_default());
            h.finalize().into()
        })
    }
}

/// The outcome of one look-up, shared by every caller that waited for it.
type Lookup = Arc<tokio::sync::OnceCell<Result<Subject, CallError>>>;

/// A small TTL cache of resolved subjects, bounded in size, with the look-ups in flight: a
/// credential is resolved once while its resolution is under way (single flight).
pub struct CallerCache {
    subjects: TtlMap<[u8; 32], Subject>,
    in_flight: Mutex<HashMap<[u8; 32], Lookup>>,
}

impl CallerCache {
    pub fn new(ttl: Duration, capacity: usize) -> CallerCache {
        CallerCache {
            subjects: TtlMap::new(ttl, capacity),
            in_flight: Mutex::new(HashMap::new()),
        }
    }

    pub fn get(&self, key: &[u8; 32], now: Instant) -> Option<Subject> {
        self.subjects.get(key, now)
    }

    pub fn put(&self, key: [u8; 32], subject: Subject, now: Instant) {
        self.subjects.put(key, subject, now);
    }

    pub fn len(&self) -> usize {
        self.subjects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.subjects.is_empty()
    }

    /// The look-up for `key` in flight, or a new one.
    fn lookup(&self, key: &[u8; 32]) -> Lookup {
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        in_flight.entry(*key).or_default().clone()
    }

    fn finish_lookup(&self, key: &[u8; 32], lookup: &Lookup) {
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        if in_flight.get(key).is_some_and(|l| Arc::ptr_eq(l, lookup)) {
            in_flight.remove(key);
        }
    }
}

/// Reads the subject from a `POST /tokens/examine` answer.
pub(super) fn subject_from_examine(body: &serde_json::Value) -> Subject {
    let subject = &body["subject"];
    match (subject["type"].as_str(), subject["id"].as_str()) {
        (Some("user"), Some(id)) => Subject::User(id.to_string()),
        (Some("oneprovider"), Some(id)) => Subject::Provider(id.to_string()),
        _ => Subject::Unknown,
    }
}

impl Legacy {
    /// Resolves the caller's subject (cached by credential digest).
    pub(crate) async fn resolve(&self, mut caller: Caller) -> Result<Caller, CallError> {
        let Some(key) = caller.credential.digest() else {
            return Ok(caller);
        };
        let cache = &crate::metrics::metrics().caller_cache;
        if let Some(subject) = self.callers.get(&key, Instant::now()) {
            cache.with_label_values(&["hit"]).inc();
            caller.subject = subject;
            return Ok(caller);
        }
        let lookup = self.callers.lookup(&key);
        let asked = std::sync::atomic::AtomicBool::new(false);
        let outcome = lookup
            .get_or_init(|| async {
                // A look-up that finished between the cache miss and this one left its answer.
                if let Some(subject) = self.callers.get(&key, Instant::now()) {
                    return Ok(subject);
                }
                asked.store(true, std::sync::atomic::Ordering::Relaxed);
                self.ask_subject(&caller).await
            })
            .await
            .clone();
        let asked = asked.into_inner();
        // Cached before the look-up is retired, so that a caller arriving in between finds it.
        match &outcome {
            Ok(subject) if asked && *subject != Subject::Unknown => {
                self.callers.put(key, subject.clone(), Instant::now())
            }
            _ => {}
        }
        self.callers.finish_lookup(&key, &lookup);
        cache
            .with_label_values(&[if asked { "miss" } else { "shared" }])
            .inc();
        caller.subject = outcome?;
        Ok(caller)
    }

    /// Asks Onezone who the credential belongs to.
    async fn ask_subject(&self, caller: &Caller) -> Result<Subject, CallError> {
        Ok(match &caller.credential {
            Credential::Token(token) => {
                let call = Call::post("examine", "/tokens/examine", json!({ "token": token }));
                let reply = self.client.call(&call, &caller.forwarded).await?;
                if reply.is_success() {
                    subject_from_examine(&reply.body)
                } else {
                    Subject::Unknown
                }
            }
            Credential::Basic(_) => {
                let reply = self
                    .client
                    .call(&Call::get("get_user", "/user"), &caller.forwarded)
                    .await?;
                match reply.body["userId"].as_str() {
                    Some(id) if reply.is_success() => {
                        self.names.remember_user(caller, id, &reply.body);
                        Subject::User(id.to_string())
                    }
                    _ => Subject::Unknown,
                }
            }
            Credential::None => Subject::Unknown,
        })
    }

    /// The calling user's own id; when it is not a user Onezone's `GET /user` answer says why.
    pub(super) async fn own_user_id(
        &self,
        caller: &Caller,
    ) -> Result<Result<String, Answer>, CallError> {
        if let Subject::User(id) = &caller.subject {
            return Ok(Ok(id.clone()));
        }
        let reply = self
            .client
            .call(&Call::get("get_user", "/user"), &caller.forwarded)
            .await?;
        Ok(match reply.body["userId"].as_str() {
            Some(id) if reply.is_success() => Ok(id.to_string()),
            _ if reply.is_success() => Err(Answer::call_failed(CallError::BadBody)),
            _ => Err(legacy_error(&reply)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn credential_order_follows_onezone() {
        let all = headers(&[
            ("authorization", "Bearer b"),
            ("macaroon", "m"),
            ("x-auth-token", "x"),
        ]);
        assert_eq!(
            Credential::from_headers(&all),
            Credential::Token("x".into())
        );
        let bm = headers(&[("macaroon", "m"), ("authorization", "bearer b")]);
        assert_eq!(Credential::from_headers(&bm), Credential::Token("b".into()));
        let m = headers(&[("macaroon", "m"), ("authorization", "Basic YTpi")]);
        assert_eq!(Credential::from_headers(&m), Credential::Token("m".into()));
        let b = headers(&[("authorization", "Basic YTpi")]);
        assert_eq!(
            Credential::from_headers(&b),
            Credential::Basic("YTpi".into())
        );
        assert_eq!(Credential::from_headers(&headers(&[])), Credential::None);
        assert_eq!(
            Credential::from_headers(&headers(&[("x-auth-token", " ")])),
            Credential::None
        );
    }

    #[test]
    fn digest_separates_kinds_and_hides_the_value() {
        let t = Credential::Token("abc".into()).digest().unwrap();
        let b = Credential::Basic("abc".into()).digest().unwrap();
        assert_ne!(t, b);
        assert_eq!(Credential::None.digest(), None);
        assert_eq!(
            format!("{:?}", Credential::Token("secret".into())),
            "Token(..)"
        );
    }

    #[test]
    fn cache_expires_and_stays_bounded() {
        let c = CallerCache::new(Duration::from_secs(10), 2);
        let t0 = Instant::now();
        c.put([1; 32], Subject::User("u".into()), t0);
        assert_eq!(
            c.get(&[1; 32], t0 + Duration::from_secs(9)),
            Some(Subject::User("u".into()))
        );
        assert_eq!(c.get(&[1; 32], t0 + Duration::from_secs(10)), None);
        c.put([2; 32], Subject::Provider("p".into()), t0);
        c.put([3; 32], Subject::Provider("q".into()), t0);
        assert!(c.len() <= 2);
        assert_eq!(c.get(&[3; 32], t0), Some(Subject::Provider("q".into())));
    }

    #[test]
    fn examine_subjects() {
        let u = json!({"subject": {"type": "user", "id": "u1"}});
        assert_eq!(subject_from_examine(&u), Subject::User("u1".into()));
        let p = json!({"subject": {"type": "oneprovider", "id": "p1"}});
        assert_eq!(subject_from_examine(&p), Subject::Provider("p1".into()));
        assert_eq!(
            subject_from_examine(&json!({"subject": {"type": "nobody"}})),
            Subject::Unknown
        );
    }
}

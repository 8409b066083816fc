//! Migration controls: per-route mode, brownouts, sunset and percentage rollout, and the live
//! (reloadable) set of policies.
//!
//! [`decide`] is pure: the clock and the caller's rollout bucket are arguments, so every rule is
//! unit-tested without sleeping.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// What a legacy route does while it is not browned out or retired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Serve it through the tokens API (annotate-only routes pass through).
    Rewrite,
    /// Forward the legacy call unchanged to a Onezone that still serves it, with the headers.
    Passthrough,
    /// Answer 410 Gone, naming the successor; no upstream call.
    Reject,
    /// Forward unchanged, like `passthrough`, and afterwards check in the background what the
    /// rewrite would have answered against Onezone's answer (`verify`), changing nothing.
    Verify,
}

/// What happens once the sunset has passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AfterSunset {
    Keep,
    Reject,
}

/// A UTC window during which the route answers as `reject`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: SystemTime,
    pub end: SystemTime,
}

impl Window {
    pub fn contains(&self, t: SystemTime) -> bool {
        self.start <= t && t < self.end
    }
}

/// The effective policy of one route.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub deprecation: SystemTime,
    pub sunset: Option<SystemTime>,
    /// Human documentation of the deprecation (`Link rel="deprecation"`).
    pub docs_url: String,
    /// Retirement policy page (`Link rel="sunset"`).
    pub sunset_policy_url: Option<String>,
    pub mode: Mode,
    pub after_sunset: AfterSunset,
    /// Share of callers (0-100) served by `rewrite`; the others get `passthrough`.
    pub rewrite_percent: u8,
    /// Share of callers (0-100) whose calls `verify` checks; the others pass through unchecked.
    pub verify_percent: u8,
    pub brownouts: Vec<Window>,
}

/// Every route's policy, and the public URL successor links point at.
#[derive(Debug, Clone, PartialEq)]
pub struct Policies {
    pub default: Policy,
    pub by_operation: HashMap<String, Policy>,
    /// Public Onezone URL for absolute successor links; `None`: the request's own scheme and Host.
    pub public_url: Option<String>,
}

impl Policies {
    pub fn for_operation(&self, operation: &str) -> &Policy {
        self.by_operation.get(operation).unwrap_or(&self.default)
    }
}

/// Why a legacy call is answered 410.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rejection {
    /// `mode = "reject"`.
    Retired,
    /// Inside a brownout window.
    Brownout,
    /// Past the sunset with `after_sunset = "reject"`.
    Sunset,
}

/// What the proxy does with one legacy call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    Rewrite,
    Passthrough,
    /// Forwarded as `Passthrough`, then checked against the rewrite.
    Verify,
    Reject(Rejection),
}

impl Action {
    /// A short label for logs and metrics.
    pub(crate) fn label(&self) -> &'static str {
        match self {
            Action::Rewrite => "rewrite",
            Action::Passthrough => "passthrough",
            Action::Verify => "verify",
            Action::Reject(Rejection::Retired) => "reject",
            Action::Reject(Rejection::Brownout) => "brownout",
            Action::Reject(Rejection::Sunset) => "sunset",
        }
    }
}

/// The caller's rollout bucket, 0-99, from a digest of its credential (never the credential),
/// so one client always lands on the same side.
pub(crate) fn bucket(digest: &[u8; 32]) -> u8 {
    let n = u64::from_be_bytes([
        digest[0], digest[1], digest[2], digest[3], digest[4], digest[5], digest[6], digest[7],
    ]);
    (n % 100) as u8
}

/// Decides what to do with a legacy call at `now` for a caller in `bucket`.
/// `rewritable`: the route has a rewrite (annotate-only routes do not).
pub(crate) fn decide(policy: &Policy, rewritable: bool, now: SystemTime, bucket: u8) -> Action {
    let past_sunset = policy.sunset.is_some_and(|s| now >= s);
    if past_sunset && policy.after_sunset == AfterSunset::Reject {
        return Action::Reject(Rejection::Sunset);
    }
    if policy.brownouts.iter().any(|w| w.contains(now)) {
        return Action::Reject(Rejection::Brownout);
    }
    match policy.mode {
        Mode::Reject => Action::Reject(Rejection::Retired),
        Mode::Passthrough => Action::Passthrough,
        Mode::Rewrite if !rewritable => Action::Passthrough,
        Mode::Rewrite if bucket < policy.rewrite_percent => Action::Rewrite,
        Mode::Rewrite => Action::Passthrough,
        Mode::Verify if rewritable && bucket < policy.verify_percent => Action::Verify,
        Mode::Verify => Action::Passthrough,
    }
}

/// The live policies: swapped whole on reload; a request keeps the `Arc` it started with.
pub(crate) struct Live {
    current: RwLock<Arc<Policies>>,
}

impl Live {
    pub(crate) fn new(policies: Policies) -> Live {
        Live {
            current: RwLock::new(Arc::new(policies)),
        }
    }

    pub(crate) fn current(&self) -> Arc<Policies> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(crate) fn replace(&self, policies: Policies) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(policies);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};
    use std::time::{Duration, UNIX_EPOCH};

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn policy() -> Policy {
        Policy {
            deprecation: at(1_000),
            sunset: Some(at(10_000)),
            docs_url: "https://docs.example/migrate".into(),
            sunset_policy_url: None,
            mode: Mode::Rewrite,
            after_sunset: AfterSunset::Keep,
            rewrite_percent: 100,
            verify_percent: 100,
            brownouts: vec![],
        }
    }

    #[test]
    fn modes() {
        let mut p = policy();
        assert_eq!(decide(&p, true, at(5_000), 50), Action::Rewrite);
        assert_eq!(
            decide(&p, false, at(5_000), 50),
            Action::Passthrough,
            "annotate-only"
        );
        p.mode = Mode::Passthrough;
        assert_eq!(decide(&p, true, at(5_000), 50), Action::Passthrough);
        p.mode = Mode::Reject;
        assert_eq!(
            decide(&p, true, at(5_000), 50),
            Action::Reject(Rejection::Retired)
        );
        assert_eq!(
            decide(&p, false, at(5_000), 50),
            Action::Reject(Rejection::Retired)
        );
    }

    #[test]
    fn brownout_windows_reject_only_inside() {
        let mut p = policy();
        p.brownouts = vec![Window {
            start: at(2_000),
            end: at(2_060),
        }];
        assert_eq!(decide(&p, true, at(1_999), 0), Action::Rewrite);
        assert_eq!(
            decide(&p, true, at(2_000), 0),
            Action::Reject(Rejection::Brownout)
        );
        assert_eq!(
            decide(&p, true, at(2_059), 0),
            Action::Reject(Rejection::Brownout)
        );
        assert_eq!(decide(&p, true, at(2_060), 0), Action::Rewrite);
        p.mode = Mode::Passthrough;
        assert_eq!(
            decide(&p, true, at(2_030), 0),
            Action::Reject(Rejection::Brownout)
        );
    }

    #[test]
    fn after_sunset() {
        let mut p = policy();
        assert_eq!(decide(&p, true, at(10_000), 0), Action::Rewrite, "keep");
        p.after_sunset = AfterSunset::Reject;
        assert_eq!(decide(&p, true, at(9_999), 0), Action::Rewrite);
        assert_eq!(
            decide(&p, true, at(10_000), 0),
            Action::Reject(Rejection::Sunset)
        );
        p.sunset = None;
        assert_eq!(
            decide(&p, true, at(99_999), 0),
            Action::Rewrite,
            "no sunset, nothing to pass"
        );
    }

    #[test]
    fn rollout_share_is_close_to_the_setting_and_sticky() {
        let mut p = policy();
        p.rewrite_percent = 30;
        let callers = 10_000;
        let rewritten = (0..callers)
            .filter(|i| {
                let digest: [u8; 32] = Sha256::digest(format!("token-{i}")).into();
                decide(&p, true, at(5_000), bucket(&digest)) == Action::Rewrite
            })
            .count();
        let share = rewritten as f64 / callers as f64;
        assert!((0.27..=0.33).contains(&share), "share {share}");
        // Sticky: the same caller gets the same answer every time.
        let d: [u8; 32] = Sha256::digest(b"one caller").into();
        let first = decide(&p, true, at(5_000), bucket(&d));
        assert!((0..100).all(|_| decide(&p, true, at(5_000), bucket(&d)) == first));
        p.rewrite_percent = 0;
        assert_eq!(decide(&p, true, at(5_000), 0), Action::Passthrough);
        p.rewrite_percent = 100;
        assert_eq!(decide(&p, true, at(5_000), 99), Action::Rewrite);
    }

    #[test]
    fn live_swaps_whole_and_keeps_old_readers() {
        let p = Policies {
            default: policy(),
            by_operation: HashMap::new(),
            public_url: None,
        };
        let live = Live::new(p.clone());
        let before = live.current();
        let mut q = p.clone();
        q.default.mode = Mode::Reject;
        live.replace(q);
        assert_eq!(
            before.default.mode,
            Mode::Rewrite,
            "a request in flight keeps its policy"
        );
        assert_eq!(live.current().default.mode, Mode::Reject);
    }
}

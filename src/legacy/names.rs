//! Token names in Onezone's legacy pattern. Names are never returned to legacy clients; they show
//! up in token listings, where they should look like the ones Onezone's legacy code made.

use std::time::{Duration, Instant, SystemTime};

use super::cache::TtlMap;
use super::invite::entity_path;
use super::{Caller, Legacy};
use crate::onezone::client::Call;
use crate::routes::Invite;

/// Onezone's legacy names are at most 50 bytes.
pub const MAX_NAME_BYTES: usize = 50;

/// Six random lowercase hex digits, as Onezone's `rand_hex(3)`.
pub fn random_suffix() -> String {
    let bytes: [u8; 3] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `<description> - <target> <suffix>`, the target cut and marked with `...` to stay within
/// [`MAX_NAME_BYTES`] (`token_logic.erl`, `format_invite_token_name/2`). `target` is the
/// target's display name where the caller could read it ([`DisplayNames`]), else its id.
pub fn invite_token_name(description: &str, target: &str, suffix: &str) -> String {
    let fixed = description.len() + " - ".len() + " ".len() + suffix.len();
    let room = MAX_NAME_BYTES.saturating_sub(fixed);
    let target = if target.len() <= room {
        target.to_string()
    } else {
        let mut cut = room.saturating_sub(3);
        while !target.is_char_boundary(cut) {
            cut -= 1;
        }
        format!("{}...", &target[..cut])
    };
    format!("{description} - {target} {suffix}")
}

/// A display name made fit for Onezone's token-name rule ([`is_valid_name`]): a group or user
/// name may hold characters the rule forbids (`'`, `,`: `validation.hrl:44` against `:34`),
/// with which Onezone's own legacy call fails with 400 `badValueName`. The proxy drops them
/// rather than copy that failure; `None` when nothing usable is left.
pub fn sanitize(display: &str) -> Option<String> {
    let kept: String = display
        .chars()
        .filter(|&c| c.is_alphanumeric() || matches!(c, '(' | ')' | '_' | ' ' | '.' | '-'))
        .collect();
    let words: Vec<&str> = kept.split_whitespace().collect();
    let joined = words.join(" ");
    let trimmed = joined.trim_matches(|c: char| matches!(c, '.' | '-' | ' '));
    (!trimmed.is_empty()).then(|| trimmed.to_string())
}

/// Display names of invite targets as each caller may read them, cached per caller (a name is
/// only used in tokens of callers who could read it) and target for a short time: at most one
/// call per caller and target per [`NAME_TTL`]. Clusters have no name of their own (Onezone
/// uses the Oneprovider's, a second call away), so they keep their id, `onezone` excepted.
pub struct DisplayNames {
    names: TtlMap<([u8; 32], String), Option<String>>,
}

pub const NAME_TTL: Duration = Duration::from_secs(60);

impl DisplayNames {
    pub fn new() -> Self {
        DisplayNames {
            names: TtlMap::new(NAME_TTL, 10_000),
        }
    }

    pub(super) async fn display_name(
        &self,
        lg: &Legacy,
        caller: &Caller,
        inv: &Invite,
        target: &str,
    ) -> Option<String> {
        if inv.target_key == "clusterId" {
            return (target == "onezone").then(|| "Onezone".to_string());
        }
        // Nobody can read a name (and will not get a token either).
        let digest = caller.credential.digest()?;
        let key = (digest, format!("{}/{target}", inv.target_key));
        let now = Instant::now();
        if let Some(name) = self.names.get(&key, now) {
            return name;
        }
        let call = Call::get("get_entity", entity_path(inv, target));
        // A failed read costs the name, never the invite.
        let reply = lg.client.call(&call, &caller.forwarded).await.ok()?;
        let field = if inv.target_key == "adminUserId" {
            "fullName"
        } else {
            "name"
        };
        let name = reply
            .is_success()
            .then(|| reply.body[field].as_str().and_then(sanitize))
            .flatten();
        self.names.put(key, name.clone(), now);
        name
    }
}

impl DisplayNames {
    /// A user's full name that a `GET /user` for the caller already told.
    pub(super) fn remember_user(&self, caller: &Caller, user_id: &str, reply: &serde_json::Value) {
        if let (Some(digest), Some(name)) = (caller.credential.digest(), reply["fullName"].as_str())
        {
            let key = (digest, format!("adminUserId/{user_id}"));
            self.names.put(key, sanitize(name), Instant::now());
        }
    }
}

impl Default for DisplayNames {
    fn default() -> Self {
        DisplayNames::new()
    }
}

/// `access token <ISO 8601 time with '.' for ':'> <suffix>`, as Onezone names client tokens.
pub fn client_token_name(now: SystemTime, suffix: &str) -> String {
    let time = humantime::format_rfc3339_seconds(now)
        .to_string()
        .replace(':', ".");
    format!("access token {time} {suffix}")
}

/// Onezone's name rule: 2-128 characters; letters, digits, `(`, `)`, `_` anywhere; space, `.`
/// and `-` only inside.
pub fn is_valid_name(name: &str) -> bool {
    let chars: Vec<char> = name.chars().collect();
    let anywhere = |c: char| c.is_alphanumeric() || matches!(c, '(' | ')' | '_');
    let inside = |c: char| anywhere(c) || matches!(c, ' ' | '.' | '-');
    (2..=128).contains(&chars.len())
        && chars.first().copied().is_some_and(anywhere)
        && chars.last().copied().is_some_and(anywhere)
        && chars.iter().all(|&c| inside(c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn display_names_are_made_fit_for_the_name_rule() {
        assert_eq!(sanitize("Alice Smith").as_deref(), Some("Alice Smith"));
        assert_eq!(sanitize("O'Brien, Pat").as_deref(), Some("OBrien Pat"));
        assert_eq!(sanitize("  -Lab.  ").as_deref(), Some("Lab"));
        assert_eq!(
            sanitize("Zespół badawczy").as_deref(),
            Some("Zespół badawczy")
        );
        assert_eq!(sanitize("',,'"), None);
        let name = invite_token_name(
            "user invite to group",
            &sanitize("O'Brien, Pat").unwrap(),
            "0a1b2c",
        );
        assert!(is_valid_name(&name), "{name}");
    }

    #[test]
    fn invite_names_fit_and_follow_the_rule() {
        let short = invite_token_name("user invite to group", "g1", "0a1b2c");
        assert_eq!(short, "user invite to group - g1 0a1b2c");
        let long = invite_token_name(
            "Oneprovider rgstr. token for",
            "0123456789abcdef0123456789abcdef",
            "0a1b2c",
        );
        assert_eq!(long.len(), MAX_NAME_BYTES);
        assert!(
            long.starts_with("Oneprovider rgstr. token for - 0123"),
            "{long}"
        );
        assert!(long.ends_with("... 0a1b2c"), "{long}");
        for name in [short, long] {
            assert!(is_valid_name(&name), "{name}");
        }
    }

    #[test]
    fn every_description_leaves_room_for_a_target() {
        for r in crate::routes::ROUTES {
            if let Some(crate::routes::Rewrite::Invite(inv)) = r.rewrite {
                let n = invite_token_name(inv.description, &"f".repeat(32), "abcdef");
                assert!(n.len() <= MAX_NAME_BYTES && is_valid_name(&n), "{n}");
            }
        }
    }

    #[test]
    fn client_token_name_matches_onezone() {
        let t = UNIX_EPOCH + Duration::from_secs(1_729_498_429);
        assert_eq!(
            client_token_name(t, "a1b2c3"),
            "access token 2024-10-21T08.13.49Z a1b2c3"
        );
        assert!(is_valid_name(&client_token_name(t, "a1b2c3")));
    }

    #[test]
    fn suffix_is_six_hex_digits() {
        let s = random_suffix();
        assert_eq!(s.len(), 6);
        assert!(s
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    }

    #[test]
    fn name_rule() {
        assert!(!is_valid_name("a"));
        assert!(!is_valid_name(" ab"));
        assert!(!is_valid_name("ab-"));
        assert!(!is_valid_name("a,b"));
        assert!(is_valid_name("a.b (c)_"));
    }
}

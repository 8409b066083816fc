//! Token names in Onezone's legacy pattern. Names are never returned to legacy clients; they show
//! up in token listings, where they should look like the ones Onezone's legacy code made.

use std::time::SystemTime;

/// Onezone's legacy names are at most 50 bytes.
pub const MAX_NAME_BYTES: usize = 50;

/// Six random lowercase hex digits, as Onezone's `rand_hex(3)`.
pub fn random_suffix() -> String {
    let bytes: [u8; 3] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `<description> - <target> <suffix>`, the target cut and marked with `...` to stay within
/// [`MAX_NAME_BYTES`].
///
/// Onezone puts the target's display name here; the proxy uses the target id, which needs no
/// extra call and no view privilege on the target (the name is cosmetic).
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
            if let crate::routes::Handler::Invite(inv) = r.handler {
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

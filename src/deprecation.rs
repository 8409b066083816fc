//! The standard deprecation headers on every answer of a deprecated operation:
//! RFC 9745 `Deprecation`, RFC 8594 `Sunset` and RFC 8288 `Link` relations.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::migration::Policy;

pub(crate) const DEPRECATION: &str = "deprecation";
pub(crate) const SUNSET: &str = "sunset";
pub(crate) const LINK: &str = "link";

/// The header values for one answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Headers {
    /// A Structured Field date, `@<unix seconds>`.
    pub deprecation: String,
    /// An IMF-fixdate in GMT.
    pub sunset: Option<String>,
    /// One field value with every relation, comma-separated.
    pub link: String,
}

fn unix_seconds(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

/// `successor`: the absolute URL of the replacement operation, when there is one.
pub(crate) fn headers(policy: &Policy, successor: Option<&str>) -> Headers {
    let mut links = vec![format!(
        "<{}>; rel=\"deprecation\"; type=\"text/html\"",
        policy.docs_url
    )];
    if let Some(s) = successor {
        links.push(format!("<{s}>; rel=\"successor-version\""));
    }
    if let Some(p) = &policy.sunset_policy_url {
        links.push(format!("<{p}>; rel=\"sunset\""));
    }
    Headers {
        deprecation: format!("@{}", unix_seconds(policy.deprecation)),
        sunset: policy.sunset.map(httpdate::fmt_http_date),
        link: links.join(", "),
    }
}

/// The absolute URL of a successor path: `base` is the public Onezone URL (no trailing `/`).
pub(crate) fn successor_url(base: &str, prefix: &str, path: &str) -> String {
    format!("{}{prefix}{path}", base.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migration::{AfterSunset, Mode};
    use std::time::Duration;

    fn policy() -> Policy {
        Policy {
            deprecation: UNIX_EPOCH + Duration::from_secs(1_688_169_599),
            sunset: Some(UNIX_EPOCH + Duration::from_secs(1_719_791_999)),
            docs_url: "https://docs.example/deprecation".into(),
            sunset_policy_url: Some("https://docs.example/sunset-policy".into()),
            mode: Mode::Rewrite,
            after_sunset: AfterSunset::Keep,
            rewrite_percent: 100,
            verify_percent: 100,
            brownouts: vec![],
        }
    }

    /// The RFC 9745 and RFC 8594 examples, with GMT as RFC 9110 requires.
    #[test]
    fn header_syntax() {
        let h = headers(
            &policy(),
            Some("https://zone.example/api/v3/onezone/user/tokens/named"),
        );
        assert_eq!(h.deprecation, "@1688169599");
        assert_eq!(h.sunset.as_deref(), Some("Sun, 30 Jun 2024 23:59:59 GMT"));
        assert_eq!(
            h.link,
            "<https://docs.example/deprecation>; rel=\"deprecation\"; type=\"text/html\", \
             <https://zone.example/api/v3/onezone/user/tokens/named>; rel=\"successor-version\", \
             <https://docs.example/sunset-policy>; rel=\"sunset\""
        );
    }

    #[test]
    fn optional_parts_are_left_out() {
        let mut p = policy();
        p.sunset = None;
        p.sunset_policy_url = None;
        let h = headers(&p, None);
        assert_eq!(h.sunset, None);
        assert_eq!(
            h.link,
            "<https://docs.example/deprecation>; rel=\"deprecation\"; type=\"text/html\""
        );
    }

    #[test]
    fn successor_urls_are_absolute() {
        assert_eq!(
            successor_url(
                "https://zone.example/",
                "/api/v3/onezone",
                "/user/tokens/named"
            ),
            "https://zone.example/api/v3/onezone/user/tokens/named"
        );
    }
}

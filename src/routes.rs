//! The deprecated Onezone token endpoints the proxy serves itself, and the matcher that finds them.
//!
//! One row per endpoint, as in Onezone's REST reference (paths below `onezone.api_prefix`).
//! Every other request passes through untouched.
//!
//! The matcher reads the raw request path the way Onezone's HTTP server (cowboy) routes it:
//! split on `/`, percent-decode each segment (so `%2F` stays inside its segment), drop `.`
//! segments, let `..` remove the segment before it, ignore one trailing `/`. So a request is
//! served as a legacy endpoint exactly when Onezone itself would have routed it to one; the path
//! sent upstream for pass-through is never changed.

use std::borrow::Cow;

/// How the proxy serves a deprecated endpoint itself, through the tokens API. Deprecated
/// operations without one (annotate-only) have `rewrite: None`: they always pass through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rewrite {
    /// Create a single-use named invite token (`POST /user|provider/tokens/named`).
    Invite(Invite),
    /// `POST /user/client_tokens`: a named access token valid for one year.
    CreateClientToken,
    /// `GET /user/client_tokens`: the caller's named access tokens, serialized.
    ListClientTokens,
    /// `DELETE /user/client_tokens/{tid}`: examine the token, delete it by id.
    DeleteClientToken,
}

/// The invite token a legacy endpoint stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Invite {
    pub invite_type: &'static str,
    /// The key of the target id inside `inviteToken`, e.g. `groupId`.
    pub target_key: &'static str,
    pub target: Target,
    /// Onezone's description in the legacy token name, e.g. "user invite to group".
    pub description: &'static str,
}

/// Where the invite's target id comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The `{id}` of the path.
    PathId,
    /// The calling user's own id (`/user/clusters/provider_registration_token`).
    CallerUserId,
}

#[derive(Debug, PartialEq, Eq)]
pub struct Route {
    pub method: &'static str,
    /// Path template below the API prefix; `{name}` matches one segment.
    pub template: &'static str,
    /// Onezone's operationId, used in logs and metrics.
    pub operation: &'static str,
    /// `None`: deprecated without a rewrite; passes through with the deprecation headers.
    pub rewrite: Option<Rewrite>,
    /// The replacement operation's path below the prefix (`Link rel="successor-version"`).
    pub successor: Option<&'static str>,
}

/// Where the deprecated token operations point their clients.
pub const TOKENS_API: &str = "/user/tokens/named";

const fn invite(
    template: &'static str,
    operation: &'static str,
    invite_type: &'static str,
    target_key: &'static str,
    description: &'static str,
) -> Route {
    Route {
        method: "POST",
        template,
        operation,
        rewrite: Some(Rewrite::Invite(Invite {
            invite_type,
            target_key,
            target: Target::PathId,
            description,
        })),
        successor: Some(TOKENS_API),
    }
}

const fn route(
    method: &'static str,
    template: &'static str,
    operation: &'static str,
    rewrite: Option<Rewrite>,
    successor: Option<&'static str>,
) -> Route {
    Route {
        method,
        template,
        operation,
        rewrite,
        successor,
    }
}

/// The deprecated operations of Onezone 21.02: the token endpoints, served through the tokens
/// API, and the others, annotated only.
#[rustfmt::skip]
pub static ROUTES: &[Route] = &[
    //      path template                      operationId                             invite type            target key     name description
    invite("/groups/{id}/users/token",         "create_user_group_invite_token",       "userJoinGroup",       "groupId",     "user invite to group"),
    invite("/groups/{id}/children/token",      "create_child_group_token",             "groupJoinGroup",      "groupId",     "group invite to group"),
    invite("/spaces/{id}/users/token",         "create_space_user_invite_token",       "userJoinSpace",       "spaceId",     "user invite to space"),
    invite("/spaces/{id}/groups/token",        "create_space_group_token",             "groupJoinSpace",      "spaceId",     "group invite to space"),
    invite("/spaces/{id}/providers/token",     "create_space_support_token",           "supportSpace",        "spaceId",     "support request for space"),
    invite("/harvesters/{id}/users/token",     "create_harvester_user_invite_token",   "userJoinHarvester",   "harvesterId", "user invite to harvester"),
    invite("/harvesters/{id}/groups/token",    "create_harvester_group_token",         "groupJoinHarvester",  "harvesterId", "group invite to harvester"),
    invite("/harvesters/{id}/spaces/token",    "create_harvester_invite_space_token",  "spaceJoinHarvester",  "harvesterId", "space invite to harvester"),
    invite("/clusters/{id}/users/token",       "create_cluster_user_invite_token",     "userJoinCluster",     "clusterId",   "user invite to cluster"),
    invite("/clusters/{id}/groups/token",      "create_cluster_group_invite_token",    "groupJoinCluster",    "clusterId",   "group invite to cluster"),
    invite("/users/{id}/clusters/provider_registration_token",
                                               "create_provider_registration_token_for_user",
                                                                                       "registerOneprovider", "adminUserId", "Oneprovider rgstr. token for"),
    Route {
        method: "POST",
        template: "/user/clusters/provider_registration_token",
        operation: "create_provider_registration_token_for_current_user",
        rewrite: Some(Rewrite::Invite(Invite {
            invite_type: "registerOneprovider",
            target_key: "adminUserId",
            target: Target::CallerUserId,
            description: "Oneprovider rgstr. token for",
        })),
        successor: Some(TOKENS_API),
    },
    //     method    path template                                 operationId                  rewrite                     successor
    route("POST",   "/user/client_tokens",                         "create_client_token",       Some(Rewrite::CreateClientToken), Some(TOKENS_API)),
    route("GET",    "/user/client_tokens",                         "list_client_tokens",        Some(Rewrite::ListClientTokens),  Some(TOKENS_API)),
    route("DELETE", "/user/client_tokens/{tid}",                   "remove_client_token",       Some(Rewrite::DeleteClientToken), Some(TOKENS_API)),
    // Deprecated operations without a rewrite: passed through with the deprecation headers.
    route("PATCH",  "/provider/spaces/{sid}",                      "modify_supported_space",    None,             None),
    route("DELETE", "/provider/spaces/{sid}",                      "remove_space_support",      None,             None),
    route("GET",    "/user/spaces/{sid}/alias",                    "get_user_space_alias",      None,             None),
    route("PUT",    "/user/spaces/{sid}/alias",                    "set_user_space_alias",      None,             None),
    route("DELETE", "/user/spaces/{sid}/alias",                    "remove_user_space_alias",   None,             None),
    route("POST",   "/provider/public/verify_provider_identity",   "verify_provider_identity",  None,             Some("/tokens/verify_identity_token")),
];

/// A matched legacy endpoint and the value of its `{param}`, if it has one.
#[derive(Debug, PartialEq, Eq)]
pub struct Match {
    pub route: &'static Route,
    /// The decoded path parameter, as raw bytes (validated by the handler).
    pub param: Option<Vec<u8>>,
}

/// Prepared matcher for one API prefix: the templates are split once, at start-up, because
/// every request (pass-through included) goes through `find`.
#[derive(Debug, Clone)]
pub struct Matcher {
    prefix: Vec<Vec<u8>>,
    /// Each route with its template's segments; `None` is a `{param}`.
    templates: Vec<(&'static Route, Vec<Option<&'static [u8]>>)>,
}

impl Matcher {
    pub fn new(prefix: &str) -> Matcher {
        let prefix = segments(prefix.as_bytes())
            .unwrap_or_default()
            .into_iter()
            .map(Cow::into_owned)
            .collect();
        let templates = ROUTES
            .iter()
            .map(|route| {
                let segs = route.template.trim_start_matches('/').split('/');
                let segs = segs.map(|t| (!t.starts_with('{')).then_some(t.as_bytes()));
                (route, segs.collect())
            })
            .collect();
        Matcher { prefix, templates }
    }

    /// Finds the legacy endpoint for a request, or `None` to pass it through.
    pub fn find(&self, method: &str, raw_path: &[u8]) -> Option<Match> {
        self.lookup(method, raw_path)?.ok()
    }

    /// Like [`Matcher::find`], and for a path of a served endpoint with another method,
    /// `Err(allow)`: the methods Onezone's legacy route has there, e.g. `"GET, POST"`.
    /// (cowboy_rest answers such a request 405 with that `allow` before anything else,
    /// cowboy_rest.erl:355-361; annotate-only rows are Onezone's to answer.)
    pub fn lookup(&self, method: &str, raw_path: &[u8]) -> Option<Result<Match, String>> {
        let path = match raw_path.iter().position(|&b| b == b'?') {
            Some(q) => &raw_path[..q],
            None => raw_path,
        };
        let segs = segments(path)?;
        let rest = segs.get(self.prefix.len()..)?;
        if !self.prefix.iter().zip(&segs).all(|(p, s)| p[..] == s[..]) {
            return None;
        }
        let param_of = |template: &[Option<&[u8]>]| {
            let mut param = None;
            for (t, s) in template.iter().zip(rest) {
                match t {
                    None => param = Some(s.to_vec()),
                    Some(literal) if *literal == &s[..] => {}
                    Some(_) => return None,
                }
            }
            Some(param)
        };
        let mut allowed: Vec<&str> = Vec::new();
        for (route, template) in self.templates.iter().filter(|(_, t)| t.len() == rest.len()) {
            let Some(param) = param_of(template) else {
                continue;
            };
            if route.method == method {
                return Some(Ok(Match { route, param }));
            }
            if route.rewrite.is_some() && !allowed.contains(&route.method) {
                allowed.push(route.method);
            }
        }
        if allowed.is_empty() {
            return None;
        }
        allowed.sort_unstable();
        Some(Err(allowed.join(", ")))
    }
}

/// Splits a path into decoded segments as cowboy's router does; `None` when it would refuse it.
/// A segment without escapes is borrowed, so the common path allocates once.
pub fn segments(path: &[u8]) -> Option<Vec<Cow<'_, [u8]>>> {
    let rest = path.strip_prefix(b"/")?;
    let mut out: Vec<Cow<'_, [u8]>> = Vec::with_capacity(8);
    if rest.is_empty() {
        return Some(out);
    }
    // One trailing slash does not make a segment ("/a/" is ["a"], "//" is [""]).
    let rest = rest.strip_suffix(b"/").unwrap_or(rest);
    for s in rest.split(|&b| b == b'/') {
        let seg = if s.contains(&b'%') {
            Cow::Owned(percent_decode(s)?)
        } else {
            Cow::Borrowed(s)
        };
        match &seg[..] {
            b"." => {}
            b".." => {
                out.pop();
            }
            _ => out.push(seg),
        }
    }
    Some(out)
}

/// Strict percent-decoding; a malformed escape makes the whole path invalid.
fn percent_decode(s: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    Some(out)
}

/// A path id that can be a Onezone entity id: 1 to 128 of `[A-Za-z0-9_-]`.
pub fn entity_id(raw: &[u8]) -> Option<&str> {
    let ok = (1..=128).contains(&raw.len())
        && raw
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-');
    ok.then(|| std::str::from_utf8(raw).ok()).flatten()
}

/// A path segment that can be a serialized Onezone token.
pub fn serialized_token(raw: &[u8]) -> Option<&str> {
    let ok = (1..=8192).contains(&raw.len())
        && raw
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'='));
    ok.then(|| std::str::from_utf8(raw).ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find(method: &str, path: &str) -> Option<(&'static str, Option<String>)> {
        Matcher::new("/api/v3/onezone")
            .find(method, path.as_bytes())
            .map(|m| {
                (
                    m.route.operation,
                    m.param.map(|p| String::from_utf8_lossy(&p).into_owned()),
                )
            })
    }

    #[test]
    fn every_row_matches_its_own_template() {
        for r in ROUTES {
            let path = format!(
                "/api/v3/onezone{}",
                r.template.replace("{id}", "abc").replace("{tid}", "tok")
            );
            let m = Matcher::new("/api/v3/onezone").find(r.method, path.as_bytes());
            assert_eq!(m.map(|m| m.route.operation), Some(r.operation), "{path}");
        }
    }

    #[test]
    fn table_has_the_twenty_one_deprecated_operations() {
        assert_eq!(ROUTES.len(), 21);
        let rewritten = ROUTES.iter().filter(|r| r.rewrite.is_some()).count();
        assert_eq!(rewritten, 15);
        let mut ops: Vec<_> = ROUTES.iter().map(|r| (r.method, r.template)).collect();
        ops.sort();
        ops.dedup();
        assert_eq!(ops.len(), 21, "no duplicate method + template");
    }

    #[test]
    fn ordinary_calls_pass_through() {
        assert_eq!(find("POST", "/api/v3/onezone/user/tokens/named"), None);
        assert_eq!(find("PUT", "/api/v3/onezone/clusters/c1/users/u1"), None);
        assert_eq!(find("GET", "/api/v3/onezone/groups/g1/users/token"), None);
        assert_eq!(
            find("POST", "/api/v3/onezone/groups/g1/users/token/x"),
            None
        );
        assert_eq!(find("POST", "/groups/g1/users/token"), None);
        assert_eq!(find("POST", "/api/v3/onezoneX/groups/g1/users/token"), None);
    }

    #[test]
    fn query_is_not_part_of_the_route() {
        assert_eq!(
            find("POST", "/api/v3/onezone/groups/g1/users/token?x=1"),
            Some(("create_user_group_invite_token", Some("g1".into())))
        );
    }

    #[test]
    fn paths_resolve_as_onezone_routes_them() {
        // Dot segments are resolved before routing, so these are the legacy endpoint for Onezone too.
        for p in [
            "/api/v3/onezone/user/../groups/g1/users/token",
            "/api/v3/onezone/user/%2e%2e/groups/g1/users/token",
            "/api/v3/onezone/./groups/g1/./users/token",
            "/api/v3/onezone/groups/g1/users/token/",
        ] {
            assert_eq!(
                find("POST", p),
                Some(("create_user_group_invite_token", Some("g1".into()))),
                "{p}"
            );
        }
        // Case differs: Onezone's router is case-sensitive, so this is not a legacy endpoint.
        assert_eq!(find("POST", "/API/v3/onezone/groups/g1/users/token"), None);
        // An encoded slash stays inside the id segment.
        assert_eq!(
            find("POST", "/api/v3/onezone/groups/a%2Fb/users/token"),
            Some(("create_user_group_invite_token", Some("a/b".into())))
        );
        // An empty segment is an (invalid) id, not a different route.
        assert_eq!(
            find("POST", "/api/v3/onezone/groups//users/token"),
            Some(("create_user_group_invite_token", Some("".into())))
        );
        // A malformed escape is refused by Onezone's router: pass it through.
        assert_eq!(find("POST", "/api/v3/onezone/groups/%zz/users/token"), None);
        // Climbing out of the prefix and back in is still the endpoint; staying out is not.
        assert!(find(
            "POST",
            "/api/v3/onezone/../../v3/onezone/groups/g/users/token"
        )
        .is_some());
        assert!(find("POST", "/../api/v3/onezone/groups/g/users/token").is_some());
        assert_eq!(
            find("POST", "/api/v3/../onezone/groups/g/users/token"),
            None
        );
    }

    #[test]
    fn ids_are_validated() {
        assert_eq!(entity_id(b"0123abcdef_-X"), Some("0123abcdef_-X"));
        for bad in [
            &b""[..],
            b"..",
            b"a/b",
            b"a b",
            b"a\x00",
            b"\xff",
            &[b'a'; 129],
        ] {
            assert_eq!(entity_id(bad), None, "{bad:?}");
        }
        assert!(serialized_token(b"MDAxY2xvY2F0aW9u").is_some());
        assert!(serialized_token(b"a.b").is_none());
    }
}

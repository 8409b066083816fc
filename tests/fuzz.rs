//! Property tests (fuzzing) of the code that reads what clients and Onezone send: the route
//! matcher, id validation, the head checks, config parsing and the response mapping. None may
//! panic, and each keeps its invariants.
//!
//! The default run tries proptest's default number of cases; CI runs a longer bounded pass with
//! `PROPTEST_CASES` set (see `.ci/run`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use onezone_migration_proxy::config::FileConfig;
use onezone_migration_proxy::hardening::{check_head, Limits};
use onezone_migration_proxy::legacy::legacy_error;
use onezone_migration_proxy::legacy::negotiation::{negotiate, Body};
use onezone_migration_proxy::onezone::client::Reply;
use onezone_migration_proxy::routes::{entity_id, segments, serialized_token, Matcher, ROUTES};
use proptest::prelude::*;
use serde_json::{json, Value};

fn path_bytes() -> impl Strategy<Value = Vec<u8>> {
    // Mostly path-like input, with the characters that matter for routing over-represented.
    let piece = prop_oneof![
        Just(b"/".to_vec()),
        Just(b"..".to_vec()),
        Just(b".".to_vec()),
        Just(b"%2e".to_vec()),
        Just(b"%2F".to_vec()),
        Just(b"%".to_vec()),
        Just(b"?".to_vec()),
        Just(b"api/v3/onezone".to_vec()),
        Just(b"groups".to_vec()),
        Just(b"users".to_vec()),
        Just(b"token".to_vec()),
        Just(b"user/client_tokens".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..8),
    ];
    proptest::collection::vec(piece, 0..16).prop_map(|v| v.concat())
}

/// A legacy route's path, bent the ways routing can be fooled: dot segments, escapes, empty
/// segments, trailing slashes, a query.
fn route_like_path() -> impl Strategy<Value = Vec<u8>> {
    let extra = prop_oneof![
        4 => Just(""),
        1 => Just("."),
        1 => Just(".."),
        1 => Just("x/.."),
        1 => Just("%2e"),
        1 => Just("%2E%2e"),
        1 => Just("//"),
    ];
    (
        0..ROUTES.len(),
        "[a-zA-Z0-9_%/.-]{0,6}",
        proptest::collection::vec(extra, 8),
        any::<proptest::sample::Index>(),
        prop_oneof![Just(""), Just("/"), Just("//"), Just("?a=/b"), Just("/?x")],
    )
        .prop_map(|(r, id, extras, escape, tail)| {
            let template = ROUTES[r]
                .template
                .replace("{id}", &id)
                .replace("{tid}", &id);
            let mut segs: Vec<String> = "api/v3/onezone".split('/').map(String::from).collect();
            segs.extend(template[1..].split('/').map(String::from));
            // Percent-encode one character of one segment: the router must decode it.
            let i = escape.index(segs.len());
            if let Some(c) = segs[i].chars().next() {
                segs[i] = format!("%{:02X}{}", c as u32, &segs[i][c.len_utf8()..]);
            }
            let mut out = String::new();
            for (seg, extra) in segs.iter().zip(extras.iter().chain(std::iter::repeat(&""))) {
                if !extra.is_empty() {
                    out.push('/');
                    out.push_str(extra);
                }
                out.push('/');
                out.push_str(seg);
            }
            out.push_str(tail);
            out.into_bytes()
        })
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        "[a-zA-Z]{0,12}".prop_map(Value::from),
        Just(json!("inviteTokenTargetIdInvalid")),
        Just(json!("badValueIdentifierOccupied")),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            proptest::collection::btree_map("error|id|token|tokens|[a-z]{1,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn matcher_never_panics_and_matches_only_its_routes(method in "GET|POST|PUT|DELETE|PATCH|[A-Z]{1,7}", path in path_bytes()) {
        let m = Matcher::new("/api/v3/onezone");
        if let Some(found) = m.find(&method, &path) {
            prop_assert_eq!(found.route.method, method.as_str());
            prop_assert!(ROUTES.iter().any(|r| std::ptr::eq(r, found.route)));
            // A match means the path resolves, like Onezone's router, to the prefix + template.
            let path_only = path.split(|&b| b == b'?').next().unwrap_or_default();
            let segs = segments(path_only).expect("a matched path has segments");
            prop_assert_eq!(segs.len(), 3 + found.route.template.matches('/').count());
        }
    }

    #[test]
    fn matcher_agrees_with_a_naive_router(method in "GET|POST|PUT|DELETE|PATCH", path in prop_oneof![route_like_path(), path_bytes()]) {
        let m = Matcher::new("/api/v3/onezone");
        let fast = m.find(&method, &path).map(|f| (f.route.operation, f.param));
        prop_assert_eq!(&fast, &naive_find(&method, &path));
        // `lookup` says 405 exactly where another method of a served (not annotate-only)
        // route matches the path, and names every such method.
        let allowed: Vec<&str> = ["DELETE", "GET", "PATCH", "POST", "PUT"]
            .into_iter()
            .filter(|other| {
                naive_find(other, &path).is_some_and(|(op, _)| {
                    ROUTES.iter().any(|r| r.operation == op && r.rewrite.is_some())
                })
            })
            .collect();
        let expected = match fast {
            Some(_) => Some(Ok(())),
            None if allowed.is_empty() => None,
            None => Some(Err(allowed.join(", "))),
        };
        prop_assert_eq!(m.lookup(&method, &path).map(|r| r.map(|_| ())), expected);
    }

    #[test]
    fn id_validation_accepts_only_id_characters(raw in proptest::collection::vec(any::<u8>(), 0..200)) {
        if let Some(id) = entity_id(&raw) {
            prop_assert!(!id.is_empty() && id.len() <= 128);
            prop_assert!(id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'));
        }
        if let Some(t) = serialized_token(&raw) {
            prop_assert!(!t.contains('/') && !t.contains('.'));
        }
    }

    #[test]
    fn head_checks_never_panic(raw in proptest::collection::vec(any::<u8>(), 0..600)) {
        let limits = Limits { max_request_line: 100, max_header_bytes: 400, max_headers: 10 };
        let _ = check_head(&raw, &limits);
    }

    #[test]
    fn head_checks_refuse_every_cl_te_pair(cl in "[0-9]{1,6}", te_case in "[tT][rR][aA][nN][sS][fF][eE][rR]-[eE][nN][cC][oO][dD][iI][nN][gG]", first in any::<bool>()) {
        let (a, b) = (format!("Content-Length: {cl}"), format!("{te_case}: chunked"));
        let (x, y) = if first { (a, b) } else { (b, a) };
        let head = format!("POST / HTTP/1.1\r\nHost: h\r\n{x}\r\n{y}\r\n\r\n");
        let limits = Limits { max_request_line: 8192, max_header_bytes: 65536, max_headers: 100 };
        prop_assert!(check_head(head.as_bytes(), &limits).is_err());
    }

    #[test]
    fn response_mapping_never_panics_and_keeps_onezone_shape(status in 100u16..600, body in json_value()) {
        let a = legacy_error(&Reply { status, body });
        prop_assert!(a.status >= 100);
        let b = a.body.expect("an error has a body");
        prop_assert!(b["error"]["id"].is_string() || b.get("error").is_some());
    }

    #[test]
    fn body_check_never_panics(raw in proptest::collection::vec(any::<u8>(), 0..300)) {
        // As rest_handler decodes a POST body: empty is {}, else it must be JSON (jiffy refuses
        // whitespace only); JSON that is not an object is refused later.
        let mut headers = http::HeaderMap::new();
        headers.insert("content-type", http::HeaderValue::from_static("application/json"));
        let got = negotiate("POST", &headers, &raw);
        let parsed = serde_json::from_slice::<Value>(&raw).ok();
        match (raw.is_empty(), parsed) {
            (true, _) => prop_assert_eq!(got, Ok(Body::Ignored)),
            (false, Some(Value::Object(_))) => prop_assert_eq!(got, Ok(Body::Ignored)),
            (false, Some(_)) => prop_assert_eq!(got, Ok(Body::NotObject)),
            (false, None) => prop_assert!(got.is_err()),
        }
        prop_assert_eq!(negotiate("GET", &headers, &raw), Ok(Body::Ignored));
    }

    #[test]
    fn config_parsing_never_panics(text in "[\\[\\]a-z_.=\"0-9 \n{},]{0,200}") {
        if let Ok(f) = FileConfig::parse(&text, "fuzz") {
            let _ = f.validate("fuzz");
        }
    }
}

/// The matcher's contract written the slow, obvious way (decoded owned segments, each route's
/// template split on every call): the optimized `Matcher::find` must agree with it.
fn naive_find(method: &str, raw: &[u8]) -> Option<(&'static str, Option<Vec<u8>>)> {
    let path = raw.split(|&b| b == b'?').next()?;
    let rest = path.strip_prefix(b"/")?;
    let mut pieces: Vec<&[u8]> = rest.split(|&b| b == b'/').collect();
    if pieces.last() == Some(&&b""[..]) {
        pieces.pop();
    }
    let mut segs: Vec<Vec<u8>> = Vec::new();
    for p in pieces {
        let mut seg = Vec::new();
        let mut i = 0;
        while i < p.len() {
            if p[i] == b'%' {
                let hex = std::str::from_utf8(p.get(i + 1..i + 3)?).ok()?;
                seg.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            } else {
                seg.push(p[i]);
                i += 1;
            }
        }
        match seg.as_slice() {
            b"." => {}
            b".." => {
                segs.pop();
            }
            _ => segs.push(seg),
        }
    }
    let prefix: [&[u8]; 3] = [b"api", b"v3", b"onezone"];
    if segs.len() < 3 || segs[..3].iter().zip(prefix).any(|(s, p)| s.as_slice() != p) {
        return None;
    }
    let rest = &segs[3..];
    ROUTES.iter().filter(|r| r.method == method).find_map(|r| {
        let template: Vec<&str> = r.template[1..].split('/').collect();
        if template.len() != rest.len() {
            return None;
        }
        let mut param = None;
        for (t, s) in template.iter().zip(rest) {
            if t.starts_with('{') {
                param = Some(s.clone());
            } else if t.as_bytes() != s.as_slice() {
                return None;
            }
        }
        Some((r.operation, param))
    })
}

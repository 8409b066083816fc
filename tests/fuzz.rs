//! Property tests (fuzzing) of the code that reads what clients and Onezone send: the route
//! matcher, id validation, the head checks, config parsing and the response mapping. None may
//! panic, and each keeps its invariants.
//!
//! The default run tries proptest's default number of cases; CI runs a longer bounded pass with
//! `PROPTEST_CASES` set (see `.ci/run`).

use onezone_migration_proxy::config::FileConfig;
use onezone_migration_proxy::hardening::{check_head, Limits};
use onezone_migration_proxy::legacy::{check_body, legacy_error};
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
        let ok = check_body(&raw).is_ok();
        let is_json = serde_json::from_slice::<Value>(&raw).is_ok() || raw.iter().all(u8::is_ascii_whitespace);
        prop_assert_eq!(ok, is_json);
    }

    #[test]
    fn config_parsing_never_panics(text in "[\\[\\]a-z_.=\"0-9 \n{},]{0,200}") {
        if let Ok(f) = FileConfig::parse(&text, "fuzz") {
            let _ = f.validate("fuzz");
        }
    }
}

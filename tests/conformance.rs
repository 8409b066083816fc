//! Conformance with Onezone's published specs (`../shared/onezone-api/`, present in CI):
//! - the route table is exactly the deprecated token operations of 21.02.7;
//! - every tokens-API request body the proxy sends validates against the 21.02.7 schema;
//! - every legacy 200 answer validates against the 19.02.5 schema legacy clients were written for.
//!
//! Without the specs these tests print a SKIPPED line and pass; set `ONEZONE_API_SPECS` to the
//! directory holding `onezone-21.02.7.json` and `onezone-19.02.5.json` to use another copy.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::path::PathBuf;

use common::Proxy;
use onezone_migration_proxy::routes::ROUTES;
use onezone_standin::{demo::*, StandIn, World};
use serde_json::{json, Value};

use common::P;

fn spec(version: &str) -> Option<Value> {
    let dir = std::env::var_os("ONEZONE_API_SPECS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/onezone-api"));
    let path = dir.join(format!("onezone-{version}.json"));
    match std::fs::read(&path) {
        Ok(bytes) => Some(serde_json::from_slice(&bytes).expect("spec is JSON")),
        Err(_) => {
            println!(
                "SKIPPED: conformance check needs {} (not present)",
                path.display()
            );
            eprintln!(
                "SKIPPED: conformance check needs {} (not present)",
                path.display()
            );
            None
        }
    }
}

/// A Swagger 2.0 schema check for the subset Onezone's token definitions use: `$ref`, `type`,
/// `required`, `properties` (no other keys allowed where properties are listed), `items`,
/// `allOf`, `enum`, and `discriminator` with `x-onedata-subclasses` naming the definitions.
struct Validator<'a> {
    definitions: &'a Value,
    /// Subclasses being checked: a subclass's `allOf` names its base, whose discriminator
    /// would otherwise lead back to the same subclass.
    active: RefCell<BTreeSet<String>>,
}

impl<'a> Validator<'a> {
    fn new(definitions: &'a Value) -> Self {
        Validator {
            definitions,
            active: RefCell::default(),
        }
    }

    fn resolve<'s>(&'s self, schema: &'s Value) -> &'s Value {
        match schema["$ref"].as_str() {
            Some(r) => self.resolve(&self.definitions[r.trim_start_matches("#/definitions/")]),
            None => schema,
        }
    }

    /// Runs `f` on the subclass the discriminator names, unless it is already being checked.
    /// `None` when there is no discriminator; `Some(None)` when the value names no subclass.
    fn with_subclass<R>(
        &self,
        schema: &Value,
        value: &Value,
        f: impl FnOnce(&Value) -> R,
    ) -> Option<Option<R>> {
        let field = schema["discriminator"].as_str()?;
        let name = value[field].as_str().unwrap_or_default().to_string();
        if self.active.borrow().contains(&name) {
            return None;
        }
        let known = schema["x-onedata-subclasses"]
            .as_array()
            .is_some_and(|a| a.iter().any(|s| *s == name));
        let sub = &self.definitions[name.as_str()];
        if !known || sub.is_null() {
            return Some(None);
        }
        self.active.borrow_mut().insert(name.clone());
        let r = f(sub);
        self.active.borrow_mut().remove(&name);
        Some(Some(r))
    }

    /// Every property name the schema (with its allOf parts and subclass) declares.
    fn known_keys(&self, schema: &Value, value: &Value, keys: &mut BTreeSet<String>) {
        let schema = self.resolve(schema);
        if let Some(props) = schema["properties"].as_object() {
            keys.extend(props.keys().cloned());
        }
        for part in schema["allOf"].as_array().into_iter().flatten() {
            self.known_keys(part, value, keys);
        }
        self.with_subclass(schema, value, |sub| self.known_keys(sub, value, keys));
    }

    /// `whole`: this schema describes the whole value (not one `allOf` part of it), so keys it
    /// does not declare anywhere are errors.
    fn check(
        &self,
        schema: &Value,
        value: &Value,
        at: &str,
        whole: bool,
        errors: &mut Vec<String>,
    ) {
        let schema = self.resolve(schema);
        let ty = schema["type"].as_str();
        let type_ok = match ty {
            Some("object") => value.is_object(),
            Some("array") => value.is_array(),
            Some("string") => value.is_string(),
            Some("integer") => value.is_i64() || value.is_u64(),
            Some("number") => value.is_number(),
            Some("boolean") => value.is_boolean(),
            _ => true,
        };
        if !type_ok {
            errors.push(format!("{at}: expected {ty:?}, got {value}"));
            return;
        }
        if let Some(options) = schema["enum"].as_array() {
            // TokenPropertyTokenType puts a descriptive string enum on an object: for objects
            // it means "exactly one of the listed properties".
            if value.is_object() {
                if value.as_object().map(|o| o.len()) != Some(1) {
                    errors.push(format!("{at}: expected exactly one key, got {value}"));
                }
            } else if !options.contains(value) {
                errors.push(format!("{at}: {value} is not one of {options:?}"));
            }
        }
        for part in schema["allOf"].as_array().into_iter().flatten() {
            self.check(part, value, at, false, errors);
        }
        if let Some(obj) = value.as_object() {
            for req in schema["required"].as_array().into_iter().flatten() {
                if let Some(k) = req.as_str().filter(|k| !obj.contains_key(*k)) {
                    errors.push(format!("{at}: missing required {k}"));
                }
            }
            if let Some(props) = schema["properties"].as_object() {
                for (k, v) in obj {
                    if let Some(p) = props.get(k) {
                        self.check(p, v, &format!("{at}.{k}"), true, errors);
                    }
                }
            }
            if whole {
                let mut known = BTreeSet::new();
                self.known_keys(schema, value, &mut known);
                // An object schema that lists no properties at all is a free-form map (the
                // `details` of an error): any key is allowed there.
                let listed = !known.is_empty();
                for k in obj.keys().filter(|k| listed && !known.contains(*k)) {
                    errors.push(format!("{at}: unknown property {k}"));
                }
            }
            let mut sub_errors = Vec::new();
            let checked = self.with_subclass(schema, value, |sub| {
                self.check(sub, value, at, false, &mut sub_errors)
            });
            errors.extend(sub_errors);
            if checked == Some(None) {
                errors.push(format!("{at}: not a known subclass: {value}"));
            }
        }
        if let (Some(items), Some(arr)) = (schema.get("items"), value.as_array()) {
            for (i, v) in arr.iter().enumerate() {
                self.check(items, v, &format!("{at}[{i}]"), true, errors);
            }
        }
    }

    fn validate(&self, schema: &Value, value: &Value) -> Vec<String> {
        let mut errors = Vec::new();
        self.check(schema, value, "$", true, &mut errors);
        errors
    }
}

fn operation<'a>(spec: &'a Value, method: &str, template: &str) -> &'a Value {
    &spec["paths"][template][method.to_ascii_lowercase()]
}

fn body_schema(op: &Value) -> Option<&Value> {
    op["parameters"]
        .as_array()?
        .iter()
        .find(|p| p["in"] == "body")
        .map(|p| &p["schema"])
}

#[test]
fn route_table_is_exactly_the_deprecated_operations() {
    let Some(current) = spec("21.02.7") else {
        return;
    };
    let mut deprecated = BTreeSet::new();
    for (path, ops) in current["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            if op["deprecated"] == true {
                deprecated.insert((method.to_ascii_uppercase(), path.clone()));
            }
        }
    }
    let ours: BTreeSet<_> = ROUTES
        .iter()
        .map(|r| (r.method.to_string(), r.template.to_string()))
        .collect();
    assert_eq!(ours, deprecated, "one row per deprecated operation");
    for r in ROUTES {
        let op = operation(&current, r.method, r.template);
        assert_eq!(
            op["operationId"], r.operation,
            "{} {}",
            r.method, r.template
        );
        // Rewritten rows are exactly the token operations (verify_provider_identity creates none).
        let token_op = r.template.contains("token") && r.operation != "verify_provider_identity";
        assert_eq!(r.rewrite.is_some(), token_op, "{}", r.operation);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_and_legacy_answers_match_the_published_schemas() {
    let (Some(current), Some(legacy)) = (spec("21.02.7"), spec("19.02.5")) else {
        return;
    };
    let new_api = Validator::new(&current["definitions"]);
    let old_api = Validator::new(&legacy["definitions"]);

    let zone = StandIn::start(World::demo()).await.unwrap();
    let proxy = Proxy::start(zone.addr());
    let http = common::client();
    let mut answers = Vec::new();
    let mut client_token: Option<String> = None;
    for r in ROUTES.iter().filter(|r| r.rewrite.is_some()) {
        let (id, token) = match r.template {
            t if t.starts_with("/groups") => (GROUP_ID, ALICE_TOKEN),
            t if t.starts_with("/spaces") => (SPACE_ID, ALICE_TOKEN),
            t if t.starts_with("/harvesters") => (HARVESTER_ID, ALICE_TOKEN),
            t if t.starts_with("/clusters") => (CLUSTER_ID, PROVIDER_TOKEN),
            t if t.starts_with("/users") => (ALICE_ID, ALICE_TOKEN),
            _ => ("", ALICE_TOKEN),
        };
        let tid = client_token.clone().unwrap_or_default();
        let path = r.template.replace("{id}", id).replace("{tid}", &tid);
        let method = reqwest::Method::from_bytes(r.method.as_bytes()).unwrap();
        let resp = http
            .request(method, proxy.url(&format!("{P}{path}")))
            .header("x-auth-token", token)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        assert!(
            status == 200 || status == 204,
            "{} {path}: {status} {text}",
            r.method
        );
        if status == 200 {
            let body: Value = serde_json::from_str(&text).unwrap();
            if r.operation == "create_client_token" {
                client_token = body["token"].as_str().map(str::to_string);
            }
            answers.push((r, body));
        } else {
            let declared = &operation(&legacy, r.method, r.template)["responses"]["204"];
            assert!(
                declared.is_object(),
                "19.02.5 declares 204 for {}",
                r.template
            );
        }
    }

    // Legacy answers against the 19.02.5 response schemas.
    for (r, body) in &answers {
        let schema = &operation(&legacy, r.method, r.template)["responses"]["200"]["schema"];
        assert!(
            schema.is_object(),
            "19.02.5 has a 200 schema for {} {}",
            r.method,
            r.template
        );
        let errors = old_api.validate(schema, body);
        assert!(errors.is_empty(), "{} {}: {errors:?}", r.method, r.template);
    }

    // Every request body Onezone received against the 21.02.7 request schemas.
    let mut checked = 0;
    for req in zone.requests() {
        let Some(body) = req.json() else { continue };
        let template = req
            .path
            .trim_start_matches(P)
            .split('?')
            .next()
            .unwrap()
            .to_string();
        let op = operation(&current, &req.method, &template);
        let schema = body_schema(op)
            .unwrap_or_else(|| panic!("21.02.7 has a body for {} {template}", req.method));
        let errors = new_api.validate(schema, &body);
        assert!(
            errors.is_empty(),
            "{} {template} {body}: {errors:?}",
            req.method
        );
        checked += 1;
    }
    println!(
        "validated {} legacy answers and {checked} tokens-API request bodies",
        answers.len()
    );
    assert!(
        checked >= 15,
        "every endpoint sent at least one body ({checked})"
    );
}

/// The validator itself must catch what it is there to catch.
#[test]
fn the_validator_refuses_wrong_bodies() {
    let Some(current) = spec("21.02.7") else {
        return;
    };
    let v = Validator::new(&current["definitions"]);
    let schema = body_schema(operation(&current, "POST", "/user/tokens/named")).unwrap();
    let good = json!({"name": "n1", "type": {"inviteToken": {"inviteType": "userJoinGroup", "groupId": "g"}}, "usageLimit": 1});
    assert_eq!(v.validate(schema, &good), Vec::<String>::new());
    for bad in [
        json!({"type": {"accessToken": {}}}),
        json!({"name": "n", "usageLimit": "1"}),
        json!({"name": "n", "type": {"inviteToken": {"inviteType": "userJoinGroup", "spaceId": "g"}}}),
        json!({"name": "n", "type": {"inviteToken": {"inviteType": "joinEverything"}}}),
        json!({"name": "n", "type": {"accessToken": {}, "identityToken": {}}}),
        json!({"name": "n", "caveats": [{"type": "time"}]}),
        json!({"name": "n", "extra": true}),
    ] {
        assert!(!v.validate(schema, &bad).is_empty(), "should refuse {bad}");
    }
}

/// A legacy client built at run time from the 19.02.5 spec (the version legacy clients were
/// written against): for every deprecated token operation it reads, from the spec alone, the
/// method, the path with its parameters, the security scheme (`X-Auth-Token`) and the declared
/// responses, and calls the proxy as a good caller, a caller without privileges, an invalid
/// token, nobody, and with a target that does not exist. Every answer must be one the spec
/// declares for that operation; 2xx bodies validate against the 19.02.5 schema, error bodies
/// against 21.02.7's `Error` (Onezone changed the error shape in 20.02, and its own legacy code
/// answers with the new one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_built_from_the_19_02_5_spec_accepts_every_answer() {
    let (Some(current), Some(legacy)) = (spec("21.02.7"), spec("19.02.5")) else {
        return;
    };
    let old_api = Validator::new(&legacy["definitions"]);
    let new_api = Validator::new(&current["definitions"]);
    let error_schema = json!({"$ref": "#/definitions/Error"});
    let base = legacy["basePath"].as_str().unwrap_or(P);
    let key_header = legacy["securityDefinitions"]["api_key1"]["name"]
        .as_str()
        .expect("19.02.5 names its token header");

    let zone = StandIn::start(World::demo()).await.unwrap();
    let proxy = Proxy::start(zone.addr());
    let http = common::client();
    let served: BTreeSet<&str> = ROUTES
        .iter()
        .filter(|r| r.rewrite.is_some())
        .map(|r| r.operation)
        .collect();
    // Client tokens first, so that the delete has a real token to delete.
    let mut operations: Vec<(String, String, &Value)> = Vec::new();
    for (path, ops) in legacy["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            if op["operationId"]
                .as_str()
                .is_some_and(|id| served.contains(id))
            {
                operations.push((method.to_ascii_uppercase(), path.clone(), op));
            }
        }
    }
    operations.sort_by_key(|(m, p, _)| (!p.contains("client_tokens"), m == "DELETE", p.clone()));
    assert_eq!(
        operations.len(),
        served.len(),
        "19.02.5 has every operation the proxy serves"
    );

    let mut client_token = String::new();
    let mut checked = 0;
    for (method, template, op) in &operations {
        let declared: BTreeSet<u16> = op["responses"]
            .as_object()
            .unwrap()
            .keys()
            .filter_map(|k| k.parse().ok())
            .collect();
        let (good_id, good_token) = match template.as_str() {
            t if t.starts_with("/groups") => (GROUP_ID, ALICE_TOKEN),
            t if t.starts_with("/spaces") => (SPACE_ID, ALICE_TOKEN),
            t if t.starts_with("/harvesters") => (HARVESTER_ID, ALICE_TOKEN),
            t if t.starts_with("/clusters") => (CLUSTER_ID, PROVIDER_TOKEN),
            _ => (ALICE_ID, ALICE_TOKEN),
        };
        let mut cases = vec![
            ("good caller", good_id, Some(good_token)),
            ("no privileges", good_id, Some(BOB_TOKEN)),
            ("invalid token", good_id, Some("MDAxnotarealtoken")),
            ("nobody", good_id, None),
        ];
        if template.contains("{id}") {
            cases.push((
                "missing target",
                "0000000000000000000000000000dead",
                Some(good_token),
            ));
        }
        if template.contains("{tid}") {
            cases.push(("not a token", "", Some(ALICE_TOKEN)));
        }
        for (case, id, token) in cases {
            let mut path = template.clone();
            for p in op["parameters"].as_array().into_iter().flatten() {
                if p["in"] == "path" {
                    let name = p["name"].as_str().unwrap();
                    let value = match name {
                        "tid" if case == "not a token" => "notatoken".to_string(),
                        "tid" => client_token.clone(),
                        _ => id.to_string(),
                    };
                    path = path.replace(&format!("{{{name}}}"), &value);
                }
            }
            let mut req = http.request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                proxy.url(&format!("{base}{path}")),
            );
            if let Some(t) = token {
                req = req.header(key_header, t);
            }
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            let text = resp.text().await.unwrap();
            let what = format!("{method} {template} ({case}): {status} {text}");
            assert!(
                declared.contains(&status),
                "the spec declares the status: {what}"
            );
            if (200..300).contains(&status) {
                if let Some(schema) = op["responses"][status.to_string()]["schema"].as_object() {
                    let body: Value = serde_json::from_str(&text).expect("JSON");
                    let errors = old_api.validate(&Value::Object(schema.clone()), &body);
                    assert!(errors.is_empty(), "{what}: {errors:?}");
                    if op["operationId"] == "create_client_token" && case == "good caller" {
                        client_token = body["token"].as_str().unwrap().to_string();
                    }
                }
            } else {
                let body: Value = serde_json::from_str(&text).expect("an error body");
                let errors = new_api.validate(&error_schema, &body);
                assert!(errors.is_empty(), "{what}: {errors:?}");
            }
            checked += 1;
        }
    }
    println!(
        "a 19.02.5 client made {checked} calls to {} operations; every answer was declared",
        operations.len()
    );
}

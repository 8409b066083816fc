//! What Onezone's REST layer decides about a request before its logic runs: cowboy_rest's
//! content negotiation and rest_handler's body decoding, in their order (cowboy 2.9.0 as
//! pinned by oz-worker 74a761f; `src/http/handlers/rest_handler.erl`).
//!
//! 1. `Accept` must admit `application/json`, else 406 with no body (`cowboy_rest.erl:582-602`);
//! 2. a non-empty body must say `content-type: application/json` exactly, without parameters,
//!    else 415 with no body (`rest_handler.erl:112-116`, `cowboy_rest.erl:1079-1092`);
//! 3. POST, PUT and PATCH read the body: a truly empty body is `{}`, anything jiffy refuses
//!    (whitespace only included) is 400 `malformedData` (`rest_handler.erl:435-445`); GET and
//!    DELETE never read it, so any body is ignored there.
//!
//! JSON that is not an object passes here and is refused later, after the entity was fetched
//! and the client authorized (`entity_logic_sanitizer.erl:169-173`): see [`Body::NotObject`].

use http::HeaderMap;

use crate::onezone::error::OnezoneError;

/// A request body as Onezone's logic receives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// None, or not read (GET, DELETE), or a JSON object: the legacy endpoints ignore it.
    Ignored,
    /// JSON that is not an object: 400 `malformedData` once the entity and the client's
    /// authorization have been checked.
    NotObject,
}

/// Why the REST layer refuses a request before Onezone's logic sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// 406, no body.
    NotAcceptable,
    /// 415, no body.
    UnsupportedMediaType,
    /// 400 `malformedData`.
    Malformed(OnezoneError),
}

/// Checks a legacy request in cowboy_rest's order.
pub fn negotiate(method: &str, headers: &HeaderMap, body: &[u8]) -> Result<Body, Refusal> {
    if !accepts_json(headers) {
        return Err(Refusal::NotAcceptable);
    }
    if !matches!(method, "POST" | "PUT" | "PATCH") {
        return Ok(Body::Ignored);
    }
    if body.is_empty() {
        return Ok(Body::Ignored);
    }
    if !is_exactly_json(headers) {
        return Err(Refusal::UnsupportedMediaType);
    }
    // JSON is UTF-8 (RFC 8259); jiffy refuses invalid UTF-8 in strings too.
    let parsed = std::str::from_utf8(body)
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(text).ok());
    match parsed {
        Some(serde_json::Value::Object(_)) => Ok(Body::Ignored),
        Some(_) => Ok(Body::NotObject),
        None => Err(Refusal::Malformed(OnezoneError::malformed_data())),
    }
}

/// `content-type` is `application/json` with no parameters (type and subtype compared without
/// case, as cowboy lower-cases them when it parses the header).
fn is_exactly_json(headers: &HeaderMap) -> bool {
    let mut values = headers.get_all(http::header::CONTENT_TYPE).iter();
    match (values.next(), values.next()) {
        (Some(v), None) => v
            .to_str()
            .is_ok_and(|v| v.trim().eq_ignore_ascii_case("application/json")),
        _ => false,
    }
}

/// Whether `Accept` (absent, or every line of it) admits `application/json`.
fn accepts_json(headers: &HeaderMap) -> bool {
    let mut lines = headers.get_all(http::header::ACCEPT).iter().peekable();
    if lines.peek().is_none() {
        return true;
    }
    let mut ranges = lines
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .peekable();
    // An `Accept` with no media range at all is treated as absent.
    if ranges.peek().is_none() {
        return true;
    }
    ranges.any(|range| {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or("").to_ascii_lowercase();
        let refused = parts.any(|p| {
            p.split_once('=').is_some_and(|(k, v)| {
                k.trim().eq_ignore_ascii_case("q")
                    && v.trim().parse::<f32>().is_ok_and(|q| q == 0.0)
            })
        });
        !refused && matches!(media.as_str(), "application/json" | "application/*" | "*/*")
    })
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

    const JSON: (&str, &str) = ("content-type", "application/json");

    #[test]
    fn accept_must_admit_json() {
        for ok in [
            "application/json",
            "*/*",
            "application/*",
            "text/html, application/json;q=0.5",
            "APPLICATION/JSON",
        ] {
            assert!(accepts_json(&headers(&[("accept", ok)])), "{ok}");
        }
        assert!(accepts_json(&headers(&[])));
        for refused in [
            "text/html",
            "application/xml",
            "application/json;q=0",
            "text/*",
        ] {
            assert_eq!(
                negotiate("GET", &headers(&[("accept", refused)]), b""),
                Err(Refusal::NotAcceptable),
                "{refused}"
            );
        }
    }

    #[test]
    fn a_body_needs_exactly_application_json() {
        for bad in [
            &[][..],
            &[("content-type", "application/json; charset=utf-8")][..],
            &[("content-type", "text/plain")][..],
        ] {
            assert_eq!(
                negotiate("POST", &headers(bad), b"{}"),
                Err(Refusal::UnsupportedMediaType),
                "{bad:?}"
            );
        }
        // An empty body accepts any content type.
        assert_eq!(
            negotiate("POST", &headers(&[("content-type", "text/plain")]), b""),
            Ok(Body::Ignored)
        );
        assert_eq!(
            negotiate("POST", &headers(&[JSON]), b"{\"a\": 1}"),
            Ok(Body::Ignored)
        );
    }

    #[test]
    fn bodies_are_json_objects_or_refused_later() {
        let h = headers(&[JSON]);
        for not_object in ["null", "[1]", "\"x\"", "1"] {
            assert_eq!(
                negotiate("POST", &h, not_object.as_bytes()),
                Ok(Body::NotObject),
                "{not_object}"
            );
        }
        for malformed in [&b" "[..], b"\r\n", b"{", b"token=1", b"\"\x80\""] {
            assert!(
                matches!(negotiate("POST", &h, malformed), Err(Refusal::Malformed(e)) if e.id == "malformedData"),
                "{malformed:?}"
            );
        }
    }

    #[test]
    fn get_and_delete_do_not_read_the_body() {
        for method in ["GET", "DELETE"] {
            assert_eq!(
                negotiate(method, &headers(&[]), b"not json at all"),
                Ok(Body::Ignored)
            );
        }
    }
}

//! Onezone's error shape, `{"error": {"id", "description", "details"?}}`, and the ids the proxy
//! itself answers with. Descriptions of Onezone's own ids are Onezone's texts, so a legacy client
//! parsing them sees what Onezone would have sent.

use serde_json::{json, Value};

/// An error answer in Onezone's shape.
#[derive(Debug, Clone, PartialEq)]
pub struct OnezoneError {
    pub status: u16,
    pub id: &'static str,
    pub description: String,
    pub details: Option<Value>,
}

impl OnezoneError {
    fn new(status: u16, id: &'static str, description: impl Into<String>) -> Self {
        OnezoneError {
            status,
            id,
            description: description.into(),
            details: None,
        }
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// 404, as Onezone answers for a missing resource (or a path it does not serve).
    pub fn not_found() -> Self {
        Self::new(404, "notFound", "The resource could not be found.")
    }

    pub fn forbidden() -> Self {
        Self::new(
            403,
            "forbidden",
            "You are not authorized to perform this operation.",
        )
    }

    pub fn unauthorized() -> Self {
        Self::new(
            401,
            "unauthorized",
            "You must authenticate yourself to perform this operation.",
        )
    }

    /// 400 for a request body that is not valid JSON.
    pub fn malformed_data() -> Self {
        Self::new(
            400,
            "malformedData",
            "Provided data could not be understood by the server.",
        )
    }

    /// 413: the proxy buffers this body and it is over `upstream.max_body_bytes`.
    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            413,
            "payloadTooLarge",
            format!("The request body exceeds the proxy's limit of {limit} bytes."),
        )
        .with_details(json!({ "limit": limit }))
    }

    /// 502: Onezone could not be reached or gave an answer the proxy cannot use.
    pub fn bad_gateway(reason: &str) -> Self {
        Self::new(
            502,
            "badGateway",
            format!("The proxy could not get a valid answer from Onezone ({reason})."),
        )
    }

    /// The answer for a failed call to Onezone, on every path: 504 for a timeout, else 502.
    pub fn upstream_failed(e: super::client::CallError) -> Self {
        match e.status() {
            504 => Self::gateway_timeout(),
            _ => Self::bad_gateway(&e.to_string()),
        }
    }

    /// 504: Onezone did not answer in time.
    pub fn gateway_timeout() -> Self {
        Self::new(504, "gatewayTimeout", "Onezone did not answer in time.")
    }

    /// 410 for a deprecated operation the migration policy no longer serves; names the successor.
    pub fn gone(description: &str, successor: Option<&str>) -> Self {
        let mut e = Self::new(410, "gone", description);
        if let Some(s) = successor {
            e.description = format!("{description} Use {s} instead.");
            e.details = Some(json!({ "successor": s }));
        }
        e
    }

    /// 400 for a request the proxy will not forward (ambiguous framing).
    pub fn bad_request(why: &str) -> Self {
        Self::new(
            400,
            "badRequest",
            format!("The request is malformed: {why}."),
        )
    }

    pub fn uri_too_long() -> Self {
        Self::new(
            414,
            "uriTooLong",
            "The request line is longer than the proxy accepts.",
        )
    }

    pub fn headers_too_large() -> Self {
        Self::new(
            431,
            "requestHeaderFieldsTooLarge",
            "The request headers are larger than the proxy accepts.",
        )
    }

    /// 408: the client was too slow sending its request.
    pub fn request_timeout() -> Self {
        Self::new(
            408,
            "requestTimeout",
            "The request was not received in time.",
        )
    }

    pub fn internal() -> Self {
        Self::new(
            500,
            "internalServerError",
            "The server has encountered an error while processing this request.",
        )
    }

    pub fn to_json(&self) -> Value {
        let mut error = json!({ "id": self.id, "description": self.description });
        if let Some(details) = &self.details {
            error["details"] = details.clone();
        }
        json!({ "error": error })
    }
}

/// The `error.id` of a Onezone error body, if the body is one.
pub fn error_id(body: &Value) -> Option<&str> {
    body.get("error")?.get("id")?.as_str()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_matches_onezone() {
        let v = OnezoneError::not_found().to_json();
        assert_eq!(
            v,
            json!({"error": {"id": "notFound", "description": "The resource could not be found."}})
        );
        assert_eq!(error_id(&v), Some("notFound"));
        let d = OnezoneError::payload_too_large(10).to_json();
        assert_eq!(d["error"]["details"]["limit"], 10);
    }

    #[test]
    fn error_id_ignores_other_shapes() {
        assert_eq!(error_id(&json!({"error": "text"})), None);
        assert_eq!(error_id(&json!([1])), None);
    }
}

//! The Pingora glue: which of our modules runs in which phase of a request.
//!
//! ```text
//! request_filter           legacy endpoint? (routes) -> read the body (bounded), legacy::handle,
//!                          write the legacy answer; the request ends here
//! upstream_peer            everything else: the Onezone peer (upstream.rs)
//! upstream_request_filter  X-Forwarded-For / -Proto (forwarding.rs), Host policy;
//!                          Pingora itself strips hop-by-hop headers
//! fail_to_proxy            upstream errors as Onezone-shaped 502 / 504
//! logging                  one access line per request
//! ```

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use http::{HeaderName, HeaderValue};
use pingora::http::ResponseHeader;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorSource, ErrorType, Result};

use crate::config::Settings;
use crate::forwarding::{
    forwarding_headers, ForwardingHeaders, X_FORWARDED_FOR, X_FORWARDED_PROTO,
};
use crate::legacy::{Answer, Legacy, LegacyRequest};
use crate::onezone::client::CallError;
use crate::onezone::error::OnezoneError;
use crate::routes::{Match, Matcher};

pub struct MigrationProxy {
    settings: Arc<Settings>,
    peer: HttpPeer,
    matcher: Matcher,
    legacy: Arc<Legacy>,
}

/// The record of one request, filled in as it goes through the phases.
pub struct Ctx {
    start: Instant,
    /// The legacy operation served, or `None` for pass-through.
    operation: Option<&'static str>,
    subject: Option<String>,
    failure: Option<&'static str>,
}

impl MigrationProxy {
    pub fn new(settings: Arc<Settings>, peer: HttpPeer, legacy: Arc<Legacy>) -> Self {
        let matcher = Matcher::new(&settings.api_prefix);
        MigrationProxy {
            settings,
            peer,
            matcher,
            legacy,
        }
    }

    fn forwarding(&self, session: &Session) -> ForwardingHeaders {
        let req = session.req_header();
        let joined = |name: &str| {
            let values: Vec<&str> = req
                .headers
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            (!values.is_empty()).then(|| values.join(", "))
        };
        forwarding_headers(
            client_ip(session),
            is_tls(session),
            joined(X_FORWARDED_FOR).as_deref(),
            joined(X_FORWARDED_PROTO).as_deref(),
            &self.settings.trusted_proxies,
        )
    }

    /// Answers a legacy endpoint from the proxy itself.
    async fn serve_legacy(&self, session: &mut Session, m: Match, ctx: &mut Ctx) -> Result<()> {
        ctx.operation = Some(m.route.operation);
        let limit = self.settings.upstream.max_body_bytes;
        let answer = match read_body(session, limit).await? {
            None => Answer::error(OnezoneError::payload_too_large(limit)),
            Some(body) => {
                let fwd = self.forwarding(session);
                let mut forwarding = Vec::new();
                if !fwd.forwarded_for.is_empty() {
                    forwarding.push(header(X_FORWARDED_FOR, &fwd.forwarded_for));
                }
                forwarding.push(header(X_FORWARDED_PROTO, &fwd.forwarded_proto));
                let req = LegacyRequest {
                    route: m.route,
                    param: m.param,
                    headers: session.req_header().headers.clone(),
                    forwarding: forwarding.into_iter().flatten().collect(),
                    body,
                };
                let deadline = self.settings.upstream.total_timeout;
                tokio::time::timeout(deadline, self.legacy.handle(req))
                    .await
                    .unwrap_or_else(|_| Answer::call_failed(CallError::Timeout))
            }
        };
        ctx.subject = answer.subject.clone();
        ctx.failure = answer.failure;
        write_answer(session, &answer).await
    }
}

#[async_trait]
impl ProxyHttp for MigrationProxy {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx {
            start: Instant::now(),
            operation: None,
            subject: None,
            failure: None,
        }
    }

    /// `Ok(true)`: the request was a legacy endpoint and has been answered.
    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        let req = session.req_header();
        let Some(m) = self.matcher.find(req.method.as_str(), req.raw_path()) else {
            return Ok(false);
        };
        self.serve_legacy(session, m, ctx).await?;
        Ok(true)
    }

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        Ok(Box::new(self.peer.clone()))
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        up: &mut pingora::http::RequestHeader,
        _ctx: &mut Ctx,
    ) -> Result<()> {
        let fwd = self.forwarding(session);
        up.remove_header(X_FORWARDED_FOR);
        if !fwd.forwarded_for.is_empty() {
            up.insert_header(X_FORWARDED_FOR, fwd.forwarded_for)?;
        }
        up.insert_header(X_FORWARDED_PROTO, fwd.forwarded_proto)?;
        if let Some(host) = crate::upstream::host_override(&self.settings.upstream) {
            up.insert_header(http::header::HOST, host)?;
        }
        Ok(())
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut Ctx) -> FailToProxy {
        let (code, error) = match e.etype() {
            ErrorType::HTTPStatus(code) => (*code, None),
            ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout
                if e.esource() == &ErrorSource::Upstream =>
            {
                (504, Some(OnezoneError::gateway_timeout()))
            }
            _ if e.esource() == &ErrorSource::Upstream => {
                (502, Some(OnezoneError::bad_gateway(e.etype().as_str())))
            }
            ErrorType::ReadError | ErrorType::WriteError | ErrorType::ConnectionClosed => (0, None),
            _ if e.esource() == &ErrorSource::Downstream => (400, None),
            _ => (500, Some(OnezoneError::internal())),
        };
        if error.is_some() {
            ctx.failure = Some(e.etype().as_str());
        }
        // Nothing can be said once the upstream's answer has started.
        if code > 0 && session.response_written().is_none() {
            let err = error.unwrap_or_else(|| OnezoneError {
                status: code,
                ..OnezoneError::internal()
            });
            let answer = Answer::error(OnezoneError {
                status: code,
                ..err
            });
            if let Err(we) = write_answer(session, &answer).await {
                tracing::debug!(error = %we, "could not send the error answer");
            }
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut Ctx) {
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        let req = session.req_header();
        let user_agent = req
            .headers
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        // The path is not logged: legacy paths carry serialized tokens (client_tokens/{tid}).
        tracing::info!(
            target: "access",
            route = ctx.operation.unwrap_or("passthrough"),
            method = %req.method,
            status,
            latency_ms = ctx.start.elapsed().as_secs_f64() * 1000.0,
            client = %client_ip(session).map(|ip| ip.to_string()).unwrap_or_default(),
            user_agent,
            subject = ctx.subject.as_deref().unwrap_or(""),
            error = ctx.failure.or(e.map(|e| e.etype().as_str())).unwrap_or(""),
        );
    }
}

fn header(name: &'static str, value: &str) -> Option<(HeaderName, HeaderValue)> {
    Some((
        HeaderName::from_static(name),
        HeaderValue::from_str(value).ok()?,
    ))
}

fn client_ip(session: &Session) -> Option<IpAddr> {
    session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip())
}

fn is_tls(session: &Session) -> bool {
    session.digest().is_some_and(|d| d.ssl_digest.is_some())
}

/// Reads the whole request body, or `None` as soon as it is over `limit` bytes.
async fn read_body(session: &mut Session, limit: usize) -> Result<Option<Bytes>> {
    let declared = session
        .req_header()
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Ok(None);
    }
    let expects_continue = session
        .req_header()
        .headers
        .get(http::header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if expects_continue {
        session.write_continue_response().await?;
    }
    let mut buf = BytesMut::new();
    while let Some(chunk) = session.read_request_body().await? {
        if buf.len() + chunk.len() > limit {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Some(buf.freeze()))
}

/// Writes a complete answer with an exact `Content-Length` (none for 204).
async fn write_answer(session: &mut Session, answer: &Answer) -> Result<()> {
    let body = answer.body.as_ref().map(|b| Bytes::from(b.to_string()));
    let mut resp = ResponseHeader::build(answer.status, Some(2))?;
    if let Some(body) = &body {
        resp.insert_header(http::header::CONTENT_TYPE, "application/json")?;
        resp.set_content_length(body.len())?;
    }
    session
        .write_response_header(Box::new(resp), body.is_none())
        .await?;
    if let Some(body) = body {
        session.write_response_body(Some(body), true).await?;
    }
    Ok(())
}

//! The Pingora glue: which of our modules runs in which phase of a request. Every answer the
//! proxy writes itself is decided and written by `answers`.
//!
//! ```text
//! (connection.rs)          the connection loop hands one request at a time to Pingora
//! early_request_filter     the head is complete: its deadline no longer applies
//! request_filter           smuggling and size checks (hardening); a legacy path with another
//!                          method: 405 (routes::Matcher::lookup); a deprecated operation: its
//!                          policy decides (migration): rewrite: read the body (bounded),
//!                          legacy::handle, write the legacy answer; reject / brownout: 410;
//!                          passthrough: on to the upstream. Deprecation headers (deprecation)
//!                          go on every such answer
//! upstream_peer            everything else: the Onezone peer (upstream.rs); upgrade requests
//!                          get the tunnel's idle limit as their read timeout
//! upstream_request_filter  X-Forwarded-For / -Proto (forwarding.rs), Host policy;
//!                          Pingora itself strips hop-by-hop headers
//! response_filter          a 101 makes a tunnel; deprecation headers on passed-through
//!                          deprecated operations; Connection: close during a drain
//! fail_to_proxy            upstream errors as Onezone-shaped 502 / 504 (answers::for_error)
//! logging                  one access line per request (and a line when a tunnel ends)
//! ```

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use async_trait::async_trait;
use pingora::http::ResponseHeader;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorSource, ErrorType, Result};
use tokio::sync::Semaphore;

use crate::answers::{self, add_deprecation_headers, client_gone, read_body, write_answer};
use crate::callers::{CallKey, CallerTable};
use crate::config::Settings;
use crate::deprecation::{self, Headers};
use crate::forwarding::{
    forwarding_headers, is_trusted, ForwardingHeaders, X_FORWARDED_FOR, X_FORWARDED_PROTO,
};
use crate::hardening::check_head;
use crate::legacy::{Answer, Caller, Credential, Legacy, LegacyRequest, Subject};
use crate::lifecycle::Lifecycle;
use crate::metrics::{self, metrics};
use crate::migration::{self, Action, Live};
use crate::onezone::client::CallError;
use crate::onezone::error::OnezoneError;
use crate::routes::{Match, Matcher, Rewrite, Route};
use crate::verify::{self, Check, Observed, Verifier};

/// How long an oversized body is read and discarded after its 413.
const LINGER: std::time::Duration = std::time::Duration::from_secs(2);

pub(crate) struct MigrationProxy {
    settings: Arc<Settings>,
    peer: HttpPeer,
    /// The peer for upgrade requests (WebSocket): its reads wait `limits.tunnel_idle_timeout`.
    tunnel_peer: HttpPeer,
    matcher: Matcher,
    legacy: Arc<Legacy>,
    live: Arc<Live>,
    life: Arc<Lifecycle>,
    verifier: Arc<Verifier>,
    /// Who still calls: this replica's table of legacy callers (`GET /legacy/callers`).
    callers: Arc<CallerTable>,
    /// Background caller look-ups in flight (for modes that do not resolve the caller).
    lookups: Arc<Semaphore>,
}

/// The record of one request, filled in as it goes through the phases.
pub(crate) struct Ctx {
    start: Instant,
    /// `None` for pass-through.
    deprecated: Option<Deprecated>,
    failure: Option<&'static str>,
    /// The status Onezone answered a passed-through call with.
    upstream_status: Option<u16>,
    in_flight: bool,
    /// When the connection was upgraded (101): it is a tunnel from then on.
    tunnel: Option<Instant>,
    /// Why the tunnel ended, when it did not end by a side closing it.
    tunnel_end: Option<&'static str>,
    /// The client went away before its answer was written (logged as nginx's 499).
    client_closed: bool,
}

/// The part of a request's record that only a deprecated operation has.
struct Deprecated {
    route: &'static Route,
    /// What the migration policy decided.
    action: Action,
    /// The deprecation headers every answer to this request carries.
    headers: Headers,
    /// Who calls (credential, forwarded headers), built once.
    caller: Caller,
    /// The caller's subject, when it was resolved.
    subject: Option<Subject>,
    /// `verify`: what the background check needs, gathered while the call passes through.
    verifying: Option<Box<Verifying>>,
}

/// A call under `verify`: the request as the rewrite would have read it, and Onezone's answer
/// as the client received it (copies of the streamed bytes, bounded; nothing is held back).
struct Verifying {
    req: LegacyRequest,
    /// A delete's dry run, made before the call was forwarded.
    predicted: Option<Answer>,
    answer: bytes::BytesMut,
    /// Something could not be kept (a body over its bound, a compressed answer).
    incomplete: bool,
}

impl Ctx {
    fn verifying(&mut self) -> Option<&mut Verifying> {
        self.deprecated.as_mut()?.verifying.as_deref_mut()
    }

    fn deprecation_headers(&self) -> Option<&Headers> {
        self.deprecated.as_ref().map(|d| &d.headers)
    }

    /// The operation id for logs and metrics; `passthrough` for every other request.
    fn route_label(&self) -> &'static str {
        self.deprecated
            .as_ref()
            .map_or("passthrough", |d| d.route.operation)
    }
}

impl MigrationProxy {
    pub(crate) fn new(
        settings: Arc<Settings>,
        peer: HttpPeer,
        legacy: Arc<Legacy>,
        live: Arc<Live>,
        life: Arc<Lifecycle>,
        verifier: Arc<Verifier>,
        callers: Arc<CallerTable>,
    ) -> Self {
        let matcher = Matcher::new(&settings.onezone.api_prefix);
        let mut tunnel_peer = peer.clone();
        // Pingora gives an upgraded connection's upstream side the peer's read timeout; an
        // upgrade request therefore also waits this long for its 101.
        tunnel_peer.options.read_timeout = settings.limits.tunnel_idle_timeout;
        MigrationProxy {
            settings,
            peer,
            tunnel_peer,
            matcher,
            legacy,
            live,
            life,
            verifier,
            callers,
            lookups: Arc::new(Semaphore::new(BACKGROUND_LOOKUPS)),
        }
    }

    /// Writes an answer the proxy makes itself; during a drain it says `Connection: close`.
    async fn write(&self, session: &mut Session, answer: &Answer, ctx: &Ctx) -> Result<()> {
        if self.life.is_draining() {
            session.set_keepalive(None);
        }
        write_answer(session, answer, ctx.deprecation_headers()).await
    }

    /// The public Onezone URL: configured, or the scheme and `Host` this request came with.
    fn public_base(&self, session: &Session, configured: Option<&str>) -> Option<String> {
        if let Some(url) = configured {
            return Some(url.to_string());
        }
        let req = session.req_header();
        let host = req
            .headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_string)
            .or_else(|| req.uri.authority().map(|a| a.to_string()))?;
        let scheme = self.forwarding(session).forwarded_proto;
        Some(format!("{scheme}://{host}"))
    }

    /// Applies the migration policy to a deprecated operation; `Ok(true)` when answered here.
    async fn migrate(&self, session: &mut Session, m: Match, ctx: &mut Ctx) -> Result<bool> {
        let route = m.route;
        let policies = self.live.current();
        let policy = policies.for_operation(route.operation);
        let successor = route.successor.and_then(|path| {
            let base = self.public_base(session, policies.public_url.as_deref())?;
            Some(deprecation::successor_url(
                &base,
                &self.settings.onezone.api_prefix,
                path,
            ))
        });
        let caller = Caller::new(&session.req_header().headers, &self.forwarding(session));
        // Sticky rollout; only a partial rollout needs the bucket (it costs a SHA-256).
        let bucket = match policy.rewrite_percent < 100 {
            true => migration::bucket(&caller.rollout_digest(client_ip(session))),
            false => 0,
        };
        let action = migration::decide(policy, route.rewrite.is_some(), SystemTime::now(), bucket);
        ctx.deprecated = Some(Deprecated {
            route,
            action,
            headers: deprecation::headers(policy, successor.as_deref()),
            caller: caller.clone(),
            subject: None,
            verifying: None,
        });
        match (action, route.rewrite) {
            (Action::Verify, Some(rewrite)) => {
                let verifying = self.start_verifying(session, m, rewrite, caller).await;
                if let Some(d) = &mut ctx.deprecated {
                    d.verifying = Some(verifying);
                }
                Ok(false)
            }
            (Action::Rewrite, Some(rewrite)) => {
                self.serve_legacy(session, m, rewrite, caller, ctx).await?;
                Ok(true)
            }
            (Action::Reject(why), _) => {
                let answer = answers::rejected(why, successor.as_deref());
                self.write(session, &answer, ctx).await?;
                Ok(true)
            }
            // `decide` never rewrites a route without a rewrite (annotate-only).
            (Action::Passthrough | Action::Rewrite | Action::Verify, _) => Ok(false),
        }
    }

    fn forwarding(&self, session: &Session) -> ForwardingHeaders {
        let req = session.req_header();
        let peer = client_ip(session);
        // An untrusted peer's own forwarding headers are ignored, so they are not even read.
        let trusted =
            peer.is_some_and(|ip| is_trusted(ip, &self.settings.forwarding.trusted_proxies));
        let joined = |name: &str| {
            let values: Vec<&str> = req
                .headers
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            (!values.is_empty()).then(|| values.join(", "))
        };
        let (existing_for, existing_proto) = match trusted {
            true => (joined(X_FORWARDED_FOR), joined(X_FORWARDED_PROTO)),
            false => (None, None),
        };
        forwarding_headers(
            peer,
            is_tls(session),
            existing_for.as_deref(),
            existing_proto.as_deref(),
            &self.settings.forwarding.trusted_proxies,
        )
    }

    /// Gathers what a `verify` check needs; a delete's prediction is read now, before Onezone
    /// deletes the token.
    async fn start_verifying(
        &self,
        session: &Session,
        m: Match,
        rewrite: Rewrite,
        caller: Caller,
    ) -> Box<Verifying> {
        let req = LegacyRequest {
            route: m.route,
            rewrite,
            param: m.param,
            headers: session.req_header().headers.clone(),
            body: bytes::Bytes::new(),
            caller,
        };
        let predicted = match rewrite {
            Rewrite::DeleteClientToken => self.verifier.predict(req.clone()).await,
            _ => None,
        };
        let incomplete = rewrite == Rewrite::DeleteClientToken && predicted.is_none();
        Box::new(Verifying {
            req,
            predicted,
            answer: bytes::BytesMut::new(),
            incomplete,
        })
    }

    /// Hands a finished `verify` call to the background check, or counts why it cannot be.
    fn finish_verifying(&self, v: Box<Verifying>, status: Option<u16>, ok: bool) {
        let Verifying {
            req,
            predicted,
            answer,
            incomplete,
        } = *v;
        let Some(status) = status.filter(|_| ok && !incomplete) else {
            verify::count(req.route, "unverifiable");
            return;
        };
        let body = serde_json::from_slice(&answer).ok();
        self.verifier.submit(Check {
            req,
            observed: Observed { status, body },
            predicted,
        });
    }

    /// Answers a legacy endpoint from the proxy itself.
    async fn serve_legacy(
        &self,
        session: &mut Session,
        m: Match,
        rewrite: Rewrite,
        caller: Caller,
        ctx: &mut Ctx,
    ) -> Result<()> {
        let limit = self.settings.upstream.max_body_bytes;
        let answer = match read_body(session, limit).await? {
            None => Answer::error(OnezoneError::payload_too_large(limit)),
            Some(body) => {
                let req = LegacyRequest {
                    route: m.route,
                    rewrite,
                    param: m.param,
                    headers: session.req_header().headers.clone(),
                    body,
                    caller,
                };
                let deadline = self.settings.upstream.total_timeout;
                let handled = tokio::time::timeout(deadline, self.legacy.handle(req));
                tokio::pin!(handled);
                // A client that hangs up is noticed while Onezone works; the work is finished
                // all the same (cancelling it could leave a token half made), then undone.
                let handled = tokio::select! {
                    h = &mut handled => h,
                    () = client_gone(session) => {
                        ctx.client_closed = true;
                        handled.await
                    }
                };
                handled.unwrap_or_else(|_| {
                    // The call in flight was dropped, so the client did not count it.
                    Answer::call_failed(CallError::Timeout.counted())
                })
            }
        };
        if let Some(d) = &mut ctx.deprecated {
            d.subject = answer.subject.clone();
        }
        ctx.failure = answer.failure;
        let written = match ctx.client_closed {
            true => Err(Error::explain(
                ErrorType::ConnectionClosed,
                "the client closed the connection before its answer",
            )),
            false => self.write(session, &answer, ctx).await,
        };
        if let Err(e) = written {
            ctx.client_closed = true;
            if let Some(created) = answer.created {
                tracing::info!(
                    token_id = %created.id,
                    "the client left before its token was written; deleting the token"
                );
                let legacy = self.legacy.clone();
                tokio::spawn(async move { legacy.delete_undelivered(created).await });
            }
            return Err(e);
        }
        if answer.status == 413 {
            // Lingering close: read and discard the rest for a moment, so the client is not
            // reset while still sending and can read the 413 (nothing is kept).
            let _ = tokio::time::timeout(LINGER, session.drain_request_body()).await;
        }
        Ok(())
    }
}

#[async_trait]
impl ProxyHttp for MigrationProxy {
    type CTX = Ctx;

    /// No downstream modules. Pingora's default adds its response compression, disabled, and
    /// still builds its state and runs its filters on every request; the proxy never
    /// compresses (Onezone's encoding passes through as it is).
    fn init_downstream_modules(&self, _modules: &mut pingora::modules::http::HttpModules) {}

    fn new_ctx(&self) -> Ctx {
        Ctx {
            start: Instant::now(),
            deprecated: None,
            failure: None,
            upstream_status: None,
            in_flight: false,
            tunnel: None,
            tunnel_end: None,
            client_closed: false,
        }
    }

    async fn early_request_filter(&self, _session: &mut Session, _ctx: &mut Ctx) -> Result<()> {
        // The head is complete: the connection loop's head deadline no longer applies.
        crate::connection::head_read();
        Ok(())
    }

    /// `Ok(true)`: a deprecated operation answered here (rewritten or rejected).
    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        metrics().in_flight.inc();
        ctx.in_flight = true;
        // Refuse smuggling shapes and oversized heads before anything is forwarded.
        let raw_head = session
            .as_downstream()
            .as_http1()
            .map(|h1| h1.get_headers_raw_bytes());
        if let Some(Err(refusal)) = raw_head.map(|raw| check_head(&raw, &self.settings.limits.head))
        {
            session.set_keepalive(None);
            ctx.failure = None;
            self.write(session, &Answer::error(refusal.error()), ctx)
                .await?;
            return Ok(true);
        }
        session.set_read_timeout(Some(self.settings.limits.client_timeout));
        let req = session.req_header();
        let m = match self.matcher.lookup(req.method.as_str(), req.raw_path()) {
            None => return Ok(false),
            Some(Ok(m)) => m,
            // Never forwarded: a Onezone without the legacy routes would route it elsewhere
            // (`GET /groups/{id}/users/token` is `/groups/{id}/users/{uid}` there).
            Some(Err(allow)) => {
                self.write(session, &Answer::method_not_allowed(allow), ctx)
                    .await?;
                return Ok(true);
            }
        };
        // Boxed: the legacy path's future is large, and every pass-through request would
        // otherwise carry it.
        Box::pin(self.migrate(session, m, ctx)).await
    }

    /// Under `verify`, a copy of the request body for the check (the body itself goes on).
    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<bytes::Bytes>,
        _end_of_stream: bool,
        ctx: &mut Ctx,
    ) -> Result<()> {
        let limit = self.settings.upstream.max_body_bytes;
        if let (Some(v), Some(chunk)) = (ctx.verifying(), body.as_ref()) {
            if v.req.body.len() + chunk.len() > limit {
                v.incomplete = true;
            } else if v.req.body.is_empty() {
                v.req.body = chunk.clone();
            } else {
                let mut joined = bytes::BytesMut::from(&v.req.body[..]);
                joined.extend_from_slice(chunk);
                v.req.body = joined.freeze();
            }
        }
        Ok(())
    }

    /// Under `verify`, a copy of Onezone's answer for the check, as it streams to the client.
    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<bytes::Bytes>,
        _end_of_stream: bool,
        ctx: &mut Ctx,
    ) -> Result<Option<std::time::Duration>> {
        if let (Some(v), Some(chunk)) = (ctx.verifying(), body.as_ref()) {
            if v.answer.len() + chunk.len() > verify::MAX_ANSWER_BYTES {
                v.incomplete = true;
            } else {
                v.answer.extend_from_slice(chunk);
            }
        }
        Ok(None)
    }

    async fn upstream_peer(&self, session: &mut Session, _ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        let peer = match session.is_upgrade_req() {
            true => &self.tunnel_peer,
            false => &self.peer,
        };
        Ok(Box::new(peer.clone()))
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        up: &mut pingora::http::RequestHeader,
        _ctx: &mut Ctx,
    ) -> Result<()> {
        let fwd = self.forwarding(session);
        // `insert_header` replaces every line the client sent.
        if fwd.forwarded_for.is_empty() {
            up.remove_header(X_FORWARDED_FOR);
        } else {
            up.insert_header(X_FORWARDED_FOR, fwd.forwarded_for)?;
        }
        up.insert_header(X_FORWARDED_PROTO, fwd.forwarded_proto)?;
        if let Some(host) = crate::upstream::host_override(&self.settings.upstream) {
            up.insert_header(http::header::HOST, host)?;
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        ctx.upstream_status = Some(resp.status.as_u16());
        if resp.status == http::StatusCode::SWITCHING_PROTOCOLS {
            // A tunnel now: the client side's reads wait the tunnel's idle limit, not the
            // request body's.
            ctx.tunnel = Some(Instant::now());
            session.set_read_timeout(self.settings.limits.tunnel_idle_timeout);
        } else if self.life.is_draining() {
            session.set_keepalive(None);
        }
        if let Some(v) = ctx.verifying() {
            // A compressed answer is not compared.
            v.incomplete |= resp.headers.contains_key(http::header::CONTENT_ENCODING);
        }
        if let Some(h) = ctx.deprecation_headers() {
            add_deprecation_headers(resp, h)?;
        }
        Ok(())
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut Ctx) -> FailToProxy {
        if ctx.tunnel.is_some() {
            // A tunnel ends by a read timing out or a side going away: nothing to answer.
            ctx.tunnel_end = Some(match e.etype() {
                ErrorType::ReadTimedout | ErrorType::WriteTimedout => "idle_timeout",
                _ => "error",
            });
            return FailToProxy {
                error_code: 0,
                can_reuse_downstream: false,
            };
        }
        let upstream = e.esource() == &ErrorSource::Upstream;
        let failure = upstream.then(|| CallError::from_pingora(e).counted());
        if let Some(f) = failure {
            ctx.failure = Some(f.reason());
        }
        let answer = answers::for_error(e, failure);
        let code = answer.as_ref().map_or(0, |a| a.status);
        // Nothing can be said once the answer has started, or to a client that has gone.
        if let Some(answer) =
            answer.filter(|_| session.response_written().is_none() && !ctx.client_closed)
        {
            // The connection is not reused: say so, or a client may send the next request on it.
            session.set_keepalive(None);
            if let Err(we) = write_answer(session, &answer, ctx.deprecation_headers()).await {
                tracing::debug!(error = %we, "could not send the error answer");
            }
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    /// Pingora writes an error line for every failed request besides our access line: keep the
    /// first ones of each window and count the rest (logs.rs). A tunnel's end and a client that
    /// left are not errors; their access lines say what happened.
    fn suppress_error_log(&self, _session: &Session, ctx: &Ctx, _e: &Error) -> bool {
        if ctx.tunnel.is_some() || ctx.client_closed {
            return true;
        }
        !crate::logs::error_lines().allow(Instant::now())
    }

    /// What Pingora's own error lines say about a request: method and route, never the path
    /// (`/user/client_tokens/{tid}` carries a serialized token) or any header.
    fn request_summary(&self, session: &Session, ctx: &Ctx) -> String {
        format!(
            "{} {}",
            metrics::method_label(session.req_header().method.as_str()),
            ctx.route_label()
        )
    }

    /// One access line and the request's metrics; the only place either is recorded.
    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut Ctx) {
        let m = metrics();
        if ctx.in_flight {
            m.in_flight.dec();
        }
        let status = match ctx.client_closed {
            true => 499,
            false => session.response_written().map_or(0, |r| r.status.as_u16()),
        };
        let elapsed = ctx.start.elapsed().as_secs_f64();
        let req = session.req_header();
        let header = |name: &http::HeaderName| req.headers.get(name).and_then(|v| v.to_str().ok());
        let method = metrics::method_label(req.method.as_str());
        let route = ctx.route_label();
        let mode = match &ctx.deprecated {
            Some(d) if d.route.rewrite.is_none() => "annotate",
            Some(d) => d.action.label(),
            None => "",
        };
        let failure = ctx.failure.or_else(|| match e {
            _ if ctx.tunnel.is_some() || ctx.client_closed => None,
            Some(e) if e.esource() == &ErrorSource::Upstream => {
                Some(CallError::from_pingora(e).reason())
            }
            Some(_) => Some("client"),
            None => None,
        });
        m.server_duration
            .with_label_values(&[method, route])
            .observe(elapsed);
        let class = metrics::status_class(status);
        // A pass-through request with access lines off (`log.level = "warn"`) ends here, after
        // its metrics: nothing below is built for it (measured: the eager line cost about 10% of
        // pass-through throughput).
        let line_wanted =
            ctx.deprecated.is_some() || tracing::enabled!(target: "access", tracing::Level::INFO);
        let client_product = match line_wanted {
            true => metrics::client_label(
                header(&self.settings.metrics.client_header),
                &self.settings.metrics.clients,
            ),
            false => "",
        };
        if let Some(d) = &ctx.deprecated {
            let outcome = match (d.action, ctx.failure, status) {
                _ if ctx.client_closed => "client_closed",
                (Action::Reject(_), _, _) => "rejected",
                (_, Some(_), _) => "upstream_failure",
                (_, _, 500..) | (_, _, 0) => "server_error",
                (_, _, 400..) => "client_error",
                _ => "success",
            };
            m.legacy_requests
                .with_label_values(&[route, mode, outcome, class, client_product])
                .inc();
            m.legacy_duration
                .with_label_values(&[route, mode])
                .observe(elapsed);
        } else {
            m.passthrough_requests
                .with_label_values(&[method, class])
                .inc();
        }
        if let Some(v) = ctx.deprecated.as_mut().and_then(|d| d.verifying.take()) {
            let answered = e.is_none() && !ctx.client_closed;
            self.finish_verifying(v, ctx.upstream_status, answered);
        }
        if let Some(opened) = ctx.tunnel {
            tracing::info!(
                target: "access",
                route,
                duration_s = opened.elapsed().as_secs_f64(),
                bytes_to_client = session.body_bytes_sent(),
                bytes_from_client = session.upstream_body_bytes_sent().unwrap_or(0),
                end = ctx.tunnel_end.unwrap_or("closed"),
                "tunnel closed"
            );
        }
        if !line_wanted {
            return;
        }
        let line = AccessLine {
            route,
            mode,
            method: Cow::Borrowed(req.method.as_str()),
            status,
            upstream_status: ctx.upstream_status.unwrap_or(0),
            latency_ms: elapsed * 1000.0,
            client: client_ip(session)
                .map(|ip| ip.to_string())
                .unwrap_or_default(),
            user_agent: Cow::Borrowed(header(&http::header::USER_AGENT).unwrap_or("")),
            client_product: Cow::Borrowed(client_product),
            error: failure.unwrap_or(""),
        };
        match ctx.deprecated.take() {
            Some(d) => self.record_caller(line, d),
            None => line.write(None),
        }
    }
}

/// Background caller look-ups that may run at once per replica; past that a call is logged
/// without its subject and counted (`migproxy_caller_cache_total{result="skipped"}`).
const BACKGROUND_LOOKUPS: usize = 16;

impl MigrationProxy {
    /// Every legacy call knows its caller: resolved already (rewrite), from the cache, or
    /// looked up in the background after the answer, bounded; then the access line and the
    /// caller table.
    fn record_caller(&self, line: AccessLine<'_>, d: Deprecated) {
        let known = d.subject.or_else(|| {
            let key = d.caller.credential.digest()?;
            self.legacy.callers.get(&key, Instant::now())
        });
        // `rewrite` has asked already: a credential it could not resolve is not asked again.
        let wanted = known.is_none()
            && d.caller.credential != Credential::None
            && d.action != Action::Rewrite;
        let permit = match wanted {
            true => self.lookups.clone().try_acquire_owned().ok(),
            false => None,
        };
        if wanted && permit.is_none() {
            metrics().caller_cache.with_label_values(&["skipped"]).inc();
        }
        let Some(permit) = permit else {
            self.remember(&line, known.as_ref());
            line.write(known.as_ref());
            return;
        };
        let legacy = self.legacy.clone();
        let table = self.callers.clone();
        let line = line.into_owned();
        tokio::spawn(async move {
            let resolved = legacy.resolve(d.caller).await.ok().map(|c| c.subject);
            drop(permit);
            let subject = resolved.filter(|s| *s != Subject::Unknown);
            table.record(line.call_key(subject.as_ref()), SystemTime::now());
            line.write(subject.as_ref());
        });
    }

    fn remember(&self, line: &AccessLine<'_>, subject: Option<&Subject>) {
        self.callers
            .record(line.call_key(subject), SystemTime::now());
    }
}

/// One access line; written when the request ends, or once its caller is known (it then
/// owns its values).
struct AccessLine<'a> {
    route: &'static str,
    mode: &'static str,
    method: Cow<'a, str>,
    status: u16,
    upstream_status: u16,
    latency_ms: f64,
    client: String,
    user_agent: Cow<'a, str>,
    /// The bounded client label of the metrics (`metrics.clients`).
    client_product: Cow<'a, str>,
    error: &'static str,
}

impl AccessLine<'_> {
    fn into_owned(self) -> AccessLine<'static> {
        AccessLine {
            route: self.route,
            mode: self.mode,
            method: Cow::Owned(self.method.into_owned()),
            status: self.status,
            upstream_status: self.upstream_status,
            latency_ms: self.latency_ms,
            client: self.client,
            user_agent: Cow::Owned(self.user_agent.into_owned()),
            client_product: Cow::Owned(self.client_product.into_owned()),
            error: self.error,
        }
    }

    fn call_key(&self, subject: Option<&Subject>) -> CallKey {
        CallKey {
            subject: subject.and_then(Subject::id).unwrap_or("").to_string(),
            kind: subject.map_or("", Subject::kind),
            route: self.route,
            client: self.client_product.to_string(),
            mode: self.mode,
        }
    }

    // The path is not logged: legacy paths carry serialized tokens (client_tokens/{tid}); nor
    // any credential: the subject is an id.
    fn write(&self, subject: Option<&Subject>) {
        tracing::info!(
            target: "access",
            route = self.route,
            mode = self.mode,
            method = %self.method,
            status = self.status,
            upstream_status = self.upstream_status,
            latency_ms = self.latency_ms,
            client = %self.client,
            user_agent = %self.user_agent,
            subject = subject.and_then(Subject::id).unwrap_or(""),
            subject_kind = subject.map_or("", Subject::kind),
            client_product = %self.client_product,
            error = self.error,
        );
    }
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

//! The client the proxy uses to call Onezone's tokens API on behalf of a legacy caller.
//!
//! It is Pingora's own connector, pooled, with the same peer (address, TLS, timeouts) as the
//! pass-through path. Bodies are JSON and buffered up to `upstream.max_body_bytes`.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderName, HeaderValue, Method};
use pingora::connectors::http::Connector;
use pingora::connectors::ConnectorOptions;
use pingora::http::RequestHeader;
use pingora::server::configuration::ServerConf;
use pingora::upstreams::peer::HttpPeer;
use serde_json::Value;
use tokio::sync::Semaphore;

use super::error::error_id;
use crate::config::Upstream;

/// What went wrong talking to Onezone (not an error answer from it: those are [`Reply`]s).
///
/// One classification for every path: a pass-through request and a tokens-API call that meet
/// the same fault get the same label, status and message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error("cannot connect to Onezone")]
    Connect,
    #[error("the TLS handshake with Onezone failed")]
    Tls,
    #[error("Onezone did not answer in time")]
    Timeout,
    #[error("the connection to Onezone failed")]
    Io,
    #[error("Onezone's answer is larger than the proxy's limit")]
    TooLarge,
    #[error("Onezone's answer could not be read")]
    BadBody,
    #[error("the call to Onezone failed")]
    Other,
}

impl CallError {
    /// The `reason` label of `migproxy_upstream_failures_total` and the access log's `error`.
    pub fn reason(&self) -> &'static str {
        match self {
            CallError::Connect => "connect",
            CallError::Tls => "tls",
            CallError::Timeout => "timeout",
            CallError::Io => "reset",
            CallError::TooLarge => "too_large",
            CallError::BadBody => "bad_body",
            CallError::Other => "other",
        }
    }

    /// Counts the failure in `migproxy_upstream_failures_total`: called once where a failure
    /// is classified (a tokens-API call, a pass-through request in `fail_to_proxy`, a legacy
    /// call past its deadline), so that each is counted once.
    pub(crate) fn counted(self) -> CallError {
        crate::metrics::metrics()
            .upstream_failures
            .with_label_values(&[self.reason()])
            .inc();
        self
    }

    /// The status the proxy answers with: 504 for a timeout, 502 otherwise.
    pub fn status(&self) -> u16 {
        match self {
            CallError::Timeout => 504,
            _ => 502,
        }
    }

    /// Classifies a Pingora error on the upstream side.
    pub fn from_pingora(e: &pingora::Error) -> CallError {
        use pingora::ErrorType::*;
        match e.etype() {
            ConnectTimedout | ReadTimedout | WriteTimedout | TLSHandshakeTimedout => {
                CallError::Timeout
            }
            TLSHandshakeFailure | InvalidCert | HandshakeError | TLSWantX509Lookup => {
                CallError::Tls
            }
            ConnectRefused | ConnectNoRoute | ConnectError | BindError | SocketError
            | ConnectProxyFailure => CallError::Connect,
            // Pingora's `PREMATURE_BODY_END` (protocols/http/v1/body.rs): the body was cut.
            ConnectionClosed
            | ReadError
            | WriteError
            | H1Error
            | H2Error
            | InvalidH2
            | Custom("PrematureBodyEnd") => CallError::Io,
            InvalidHTTPHeader | H2Downgrade => CallError::BadBody,
            _ => CallError::Other,
        }
        .with_hint(e)
    }

    /// A TLS failure whose cause has a known fix gets a warning that says what to do.
    fn with_hint(self, e: &pingora::Error) -> CallError {
        if self == CallError::Tls {
            if let Some(hint) = crate::tls::upstream_hint(&e.to_string()) {
                crate::logs::warn_rarely("upstream_tls_hint", hint);
            }
        }
        self
    }
}

/// One call to the tokens API.
#[derive(Debug, Clone)]
pub struct Call {
    /// A bounded name for metrics, e.g. `examine`.
    pub name: &'static str,
    pub method: Method,
    /// Path below the API prefix, e.g. `/user/tokens/named`.
    pub path: String,
    pub body: Option<Value>,
}

impl Call {
    pub fn get(name: &'static str, path: impl Into<String>) -> Call {
        Call {
            name,
            method: Method::GET,
            path: path.into(),
            body: None,
        }
    }

    pub fn post(name: &'static str, path: impl Into<String>, body: Value) -> Call {
        Call {
            name,
            method: Method::POST,
            path: path.into(),
            body: Some(body),
        }
    }

    pub fn delete(name: &'static str, path: impl Into<String>) -> Call {
        Call {
            name,
            method: Method::DELETE,
            path: path.into(),
            body: None,
        }
    }
}

/// Onezone's answer: its status and JSON body (`Null` when empty).
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

impl Reply {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    pub fn error_id(&self) -> Option<&str> {
        error_id(&self.body)
    }
}

/// Headers copied from the client onto every call made for it: credentials and forwarding.
#[derive(Debug, Clone, Default)]
pub struct Forwarded {
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

pub struct OnezoneClient {
    connector: Connector,
    peer: HttpPeer,
    prefix: String,
    /// `Host` sent upstream when the policy overrides the client's.
    host: String,
    max_body: usize,
    idle_timeout: Duration,
    read_timeout: Duration,
    /// One permit per upstream connection these calls may use at once (`upstream.max_connections`).
    /// A call waits for a permit (within the legacy call's deadline) rather than open one more
    /// connection: a burst of legacy calls must not overrun Onezone's listen backlog.
    connections: Semaphore,
}

impl OnezoneClient {
    /// A client of the upstream `up` through `peer` (the pass-through path's peer template),
    /// for the API below `prefix`.
    pub fn new(conf: &ServerConf, peer: HttpPeer, prefix: &str, up: &Upstream) -> Self {
        let mut options = ConnectorOptions::from_server_conf(conf);
        // Pooled idle connections: as many as may be open.
        options.keepalive_pool_size = up.max_connections;
        OnezoneClient {
            connector: Connector::new(Some(options)),
            peer,
            prefix: prefix.to_string(),
            // The calls are the proxy's own: they name the upstream whatever the Host policy.
            host: up.authority.clone(),
            max_body: up.max_body_bytes,
            idle_timeout: up.idle_timeout,
            read_timeout: up.read_timeout,
            connections: Semaphore::new(up.max_connections),
        }
    }

    /// Sends one call; `client` carries the caller's credentials, unchanged.
    ///
    /// Retried once only when Pingora says a pooled connection was closed before it took the
    /// request (so it cannot have been processed); token creation is never retried otherwise.
    pub async fn call(&self, call: &Call, client: &Forwarded) -> Result<Reply, CallError> {
        let started = std::time::Instant::now();
        // The semaphore is never closed, so acquiring cannot fail.
        let Ok(_connection) = self.connections.acquire().await else {
            return Err(CallError::Other);
        };
        let result = self.call_once_or_twice(call, client).await;
        let m = crate::metrics::metrics();
        m.upstream_call_duration
            .with_label_values(&[call.name])
            .observe(started.elapsed().as_secs_f64());
        result.map_err(CallError::counted)
    }

    async fn call_once_or_twice(
        &self,
        call: &Call,
        client: &Forwarded,
    ) -> Result<Reply, CallError> {
        let body = match &call.body {
            Some(v) => Bytes::from(serde_json::to_vec(v).unwrap_or_default()),
            None => Bytes::new(),
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (mut session, reused) = self
                .connector
                .get_http_session(&self.peer)
                .await
                .map_err(|e| classify(&e, true))?;
            let header = self
                .header(call, client, body.len())
                .map_err(|_| CallError::Io)?;
            match self.exchange(&mut session, header, body.clone()).await {
                Ok((status, bytes, reusable)) => {
                    if reusable {
                        self.connector
                            .release_http_session(session, &self.peer, Some(self.idle_timeout))
                            .await;
                    }
                    let body = match serde_json::from_slice(&bytes) {
                        Ok(v) => v,
                        Err(_) if bytes.is_empty() => Value::Null,
                        // An error page that is not JSON still tells its status.
                        Err(_) if status >= 400 => Value::Null,
                        Err(_) => return Err(CallError::BadBody),
                    };
                    return Ok(Reply { status, body });
                }
                Err(e) if attempt == 1 && reused && e.may_retry(reused) => continue,
                Err(e) => return Err(e.into_call_error()),
            }
        }
    }

    fn header(
        &self,
        call: &Call,
        client: &Forwarded,
        body_len: usize,
    ) -> pingora::Result<RequestHeader> {
        let path = format!("{}{}", self.prefix, call.path);
        // No case map: header names go out in lower case, which HTTP/1.1 allows and which
        // halves the cost of building the header.
        let size = client.headers.len() + 5;
        let mut req =
            RequestHeader::build_no_case(call.method.clone(), path.as_bytes(), Some(size))?;
        req.insert_header(http::header::HOST, &self.host)?;
        for (name, value) in &client.headers {
            req.append_header(name.clone(), value.clone())?;
        }
        if call.body.is_some() {
            req.insert_header(http::header::CONTENT_TYPE, "application/json")?;
        }
        if call.body.is_some() || call.method == Method::POST {
            req.insert_header(http::header::CONTENT_LENGTH, body_len.to_string())?;
        }
        req.insert_header(http::header::ACCEPT, "application/json")?;
        Ok(req)
    }

    async fn exchange(
        &self,
        session: &mut pingora::protocols::http::client::HttpSession,
        header: RequestHeader,
        body: Bytes,
    ) -> Result<(u16, Bytes, bool), Failure> {
        // Each read (header, every body chunk) waits at most upstream.read_timeout.
        session.set_read_timeout(Some(self.read_timeout));
        session.set_write_timeout(Some(self.read_timeout));
        session.write_request_header(Box::new(header)).await?;
        if !body.is_empty() {
            session.write_request_body(body, true).await?;
        }
        session.finish_request_body().await?;
        session.read_response_header().await?;
        let status = session
            .response_header()
            .map(|h| h.status.as_u16())
            .unwrap_or(0);
        let encoded = session
            .response_header()
            .and_then(|h| h.headers.get(http::header::CONTENT_ENCODING))
            .is_some_and(|v| v.as_bytes() != b"identity");
        let mut buf = BytesMut::new();
        while let Some(chunk) = session.read_response_body().await? {
            if buf.len() + chunk.len() > self.max_body {
                return Err(Failure::local(CallError::TooLarge));
            }
            buf.extend_from_slice(&chunk);
        }
        if encoded {
            // We never ask for compression; a compressed answer is not one we can read.
            return Err(Failure::local(CallError::BadBody));
        }
        let reusable = session.response_done();
        Ok((status, buf.freeze(), reusable))
    }
}

/// An error from one exchange, remembering whether Pingora allows a retry.
struct Failure {
    error: CallError,
    retry: pingora::RetryType,
}

impl Failure {
    fn local(error: CallError) -> Self {
        Failure {
            error,
            retry: pingora::RetryType::Decided(false),
        }
    }

    /// Pingora marks errors on pooled connections that never reached the server as retryable.
    fn may_retry(&self, reused: bool) -> bool {
        let mut retry = self.retry;
        retry.decide_reuse(reused);
        retry.retry()
    }

    fn into_call_error(self) -> CallError {
        self.error
    }
}

impl From<Box<pingora::Error>> for Failure {
    fn from(e: Box<pingora::Error>) -> Self {
        Failure {
            error: classify(&e, false),
            retry: e.retry,
        }
    }
}

fn classify(e: &pingora::Error, connecting: bool) -> CallError {
    match CallError::from_pingora(e) {
        // Whatever else breaks while connecting, nothing was sent.
        CallError::Io | CallError::BadBody | CallError::Other if connecting => CallError::Connect,
        other => other,
    }
}

//! The client connection loop in front of Pingora's request processing.
//!
//! Pingora's own HTTP/1 loop starts the next request's processing (a session with its header
//! buffer, and the large per-request future) the moment the previous answer is sent, and keeps
//! it waiting while the client is idle. This loop instead waits for the next request itself,
//! in a task of its own and holding only the socket, reads what has arrived, puts it back,
//! and only then hands the connection to Pingora (`HttpProxy::process_new_http`) for one
//! request. That keeps an idle client at about 1.5 KiB, and gives three limits Pingora lacks:
//!
//! - `limits.keepalive_timeout`: an idle kept-alive connection is closed (nginx: 75 s);
//! - `limits.header_timeout`: the whole request head must arrive within it, however slowly it
//!   trickles (nginx's `client_header_timeout`, 60 s);
//! - a drain: once the listeners close, idle connections are closed, busy ones finish.
//!
//! HTTP/2 connections (TLS with ALPN h2) go to Pingora's own loop, which answers the drain with
//! GOAWAY and closes idle connections after `h2_idle_timeout`.

use std::cell::RefCell;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{ready, Poll};
use std::time::Duration;

use async_trait::async_trait;
use pingora::apps::{HttpPersistentSettings, HttpServerApp, ServerApp};
use pingora::protocols::http::ServerSession;
use pingora::protocols::{l4::stream as l4, Stream, ALPN};
use pingora::proxy::HttpProxy;
use pingora::server::ShutdownWatch;
use tokio::io::{AsyncRead, ReadBuf};

use crate::lifecycle::Lifecycle;
use crate::proxy::MigrationProxy;

tokio::task_local! {
    /// Set by the proxy's first hook once a request head has been read and parsed.
    static HEAD_READ: Arc<AtomicBool>;
}

/// Called by the proxy as soon as a request head is complete (outside this loop, a no-op).
pub(crate) fn head_read() {
    let _ = HEAD_READ.try_with(|h| h.store(true, Ordering::Relaxed));
}

/// Client connection limits, from `[limits]`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnectionLimits {
    pub keepalive_timeout: Duration,
    pub header_timeout: Duration,
}

pub(crate) struct Connections {
    proxy: Arc<HttpProxy<MigrationProxy>>,
    life: Arc<Lifecycle>,
    /// Pingora's shutdown watch for the requests and HTTP/2 connections it serves: it turns
    /// `true` when the drain begins (one receiver, shared by reference).
    drain: ShutdownWatch,
    limits: ConnectionLimits,
}

enum Wait {
    /// The first bytes of a request are there (put back for Pingora to read).
    Ready,
    /// The stream cannot be read ahead (TLS): Pingora waits for the head itself.
    Unknown,
    Close,
}

impl Connections {
    pub(crate) fn new(
        proxy: HttpProxy<MigrationProxy>,
        life: Arc<Lifecycle>,
        limits: ConnectionLimits,
    ) -> Self {
        Connections {
            proxy: Arc::new(proxy),
            drain: life.drain_watch(),
            life,
            limits,
        }
    }

    /// Waits, holding nothing but the socket, until the client sends something; closes the
    /// connection when the client leaves, stays idle too long, or the listeners close.
    async fn wait_for_request(
        &self,
        stream: &mut Idle,
        shutdown: &mut ShutdownWatch,
        fresh: bool,
    ) -> Wait {
        let Idle::Tcp(tcp) = stream else {
            return Wait::Unknown;
        };
        let read = tokio::time::timeout(self.limits.keepalive_timeout, read_ahead(tcp));
        // A connection that never sent anything is given its chance even during shutdown.
        let closing = async {
            if fresh {
                return std::future::pending().await;
            }
            while !*shutdown.borrow_and_update() {
                if shutdown.changed().await.is_err() {
                    return std::future::pending().await;
                }
            }
        };
        tokio::select! {
            got = read => match got {
                Ok(Ok(true)) => Wait::Ready,
                // The client closed, or the connection broke, between requests.
                Ok(Ok(false) | Err(_)) => Wait::Close,
                Err(_) => {
                    crate::metrics::metrics()
                        .connections_closed
                        .with_label_values(&["keepalive_timeout"])
                        .inc();
                    Wait::Close
                }
            },
            _ = closing => Wait::Close,
        }
    }

    /// One request, with the whole head due within `head_deadline`.
    async fn serve_one(
        &self,
        session: ServerSession,
        head_deadline: Duration,
    ) -> Option<pingora::apps::ReusedHttpStream> {
        let head = Arc::new(AtomicBool::new(false));
        let serving = HEAD_READ.scope(
            head.clone(),
            self.proxy.process_new_http(session, &self.drain),
        );
        tokio::pin!(serving);
        match tokio::time::timeout(head_deadline, &mut serving).await {
            Ok(reused) => reused,
            Err(_) if head.load(Ordering::Relaxed) => serving.await,
            Err(_) => {
                // Dropping the request closes the connection, as nginx does (it logs a 408).
                crate::metrics::metrics()
                    .connections_closed
                    .with_label_values(&["header_timeout"])
                    .inc();
                tracing::debug!("request head not complete in time; connection closed");
                None
            }
        }
    }
}

#[async_trait]
impl ServerApp for Connections {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        if matches!(stream.selected_alpn_proto(), Some(ALPN::H2)) {
            let _busy = self.life.busy();
            // Pingora's HTTP/2 loop, watching the drain so that it sends GOAWAY when it begins.
            return self.proxy.process_new(stream, &self.drain).await;
        }
        // The rest of the connection runs in a task of its own. Pingora's accept loop spawns one
        // task per connection whose state is sized for its TLS handshake (about 8.8 KB,
        // measured with heaptrack), and it would hold that for as long as the client stays
        // connected; our task holds only this loop's state. Returning `None` ends Pingora's.
        let this = Arc::clone(self);
        let shutdown = shutdown.clone();
        tokio::spawn(async move { this.serve_http1(stream, shutdown).await });
        None
    }

    async fn cleanup(&self) {
        self.proxy.http_cleanup().await;
    }
}

impl Connections {
    /// The requests of one HTTP/1 connection, one at a time, until it closes.
    async fn serve_http1(&self, stream: Stream, mut shutdown: ShutdownWatch) {
        let Some(mut stream) = Idle::new(stream) else {
            return;
        };
        let mut persistent: Option<HttpPersistentSettings> = None;
        let keepalive_secs = self.limits.keepalive_timeout.as_secs().max(1);
        let mut fresh = true;
        loop {
            let wait = self
                .wait_for_request(&mut stream, &mut shutdown, fresh)
                .await;
            let head_deadline = match wait {
                Wait::Close => return,
                Wait::Ready => self.limits.header_timeout,
                // Without a read ahead the deadline has to cover the idle wait too.
                Wait::Unknown if fresh => self.limits.header_timeout,
                Wait::Unknown => self.limits.keepalive_timeout + self.limits.header_timeout,
            };
            let _busy = self.life.busy();
            let mut session = ServerSession::new_http1(stream.into_stream());
            match persistent.take() {
                Some(p) => p.apply_to_session(&mut session),
                None => session.set_keepalive(Some(keepalive_secs)),
            }
            // Boxed: Pingora's per-request future is large (about 14 KB), and inline it would
            // size this loop's own state, which an idle kept-alive connection keeps all along.
            // Boxed, an idle connection holds a few hundred bytes; a request pays one
            // allocation.
            let Some(reused) = Box::pin(self.serve_one(session, head_deadline)).await else {
                return;
            };
            let (next, settings) = reused.consume();
            let Some(next) = Idle::new(next) else {
                return;
            };
            stream = next;
            persistent = settings;
            fresh = false;
        }
    }
}

/// A client connection between two requests.
enum Idle {
    /// Plain TCP (or a Unix socket): read ahead while waiting (`read_ahead`).
    Tcp(Box<l4::Stream>),
    /// TLS, whose bytes cannot be put back before they are decrypted.
    Tls(Stream),
}

impl Idle {
    /// `None` only if the stream says it is plain TCP and then is not, which cannot happen.
    fn new(stream: Stream) -> Option<Self> {
        match stream.as_any().is::<l4::Stream>() {
            true => stream.into_any().downcast().ok().map(Idle::Tcp),
            false => Some(Idle::Tls(stream)),
        }
    }

    fn into_stream(self) -> Stream {
        match self {
            Idle::Tcp(tcp) => tcp,
            Idle::Tls(tls) => tls,
        }
    }
}

thread_local! {
    /// The read-ahead buffer, one per worker thread: only borrowed within one poll.
    static READ_AHEAD: RefCell<Box<[u8]>> = RefCell::new(vec![0; READ_AHEAD_BYTES].into());
}

/// One read's worth for the start of a request: a typical request head and a small body.
const READ_AHEAD_BYTES: usize = 8 * 1024;

/// Waits until the client sends something and reads what has arrived; `false` when the client
/// closed. The bytes are put back in front of the stream (`rewind`) for Pingora's parser, so a
/// request costs one read instead of a one-byte read (Pingora's own `try_peek`) and then
/// Pingora's. Nothing is held while waiting: the read goes into the thread's buffer, borrowed
/// only within a poll, and only what arrived is copied out.
async fn read_ahead(stream: &mut l4::Stream) -> std::io::Result<bool> {
    std::future::poll_fn(|cx| {
        READ_AHEAD.with_borrow_mut(|buf| {
            let mut read = ReadBuf::new(buf);
            ready!(Pin::new(&mut *stream).poll_read(cx, &mut read))?;
            stream.rewind(read.filled());
            Poll::Ready(Ok(!read.filled().is_empty()))
        })
    })
    .await
}

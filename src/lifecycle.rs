//! The process's life: starting (not yet listening), serving, draining, exiting.
//!
//! ```text
//! start     listeners built by Pingora; a probe connects to each one: until every listener
//!           accepts, /healthz answers 503, and a panic (a listener that cannot be built) ends
//!           the process with one error line and exit code 1
//! SIGTERM   drain: /readyz answers 503 at once; the listeners keep accepting for
//!           `server.drain_delay` so that a load balancer that has not yet seen the 503 loses
//!           nothing; every answer says `Connection: close` (HTTP/1) and HTTP/2 connections get
//!           GOAWAY
//! then      the listeners close and idle kept-alive connections are closed; requests in flight
//!           (tunnels included) get `server.grace_period`; the process exits as soon as none is
//!           left, or when the grace period ends
//! ```

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::server::{ShutdownSignal, ShutdownSignalWatch};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

/// Shared by the connection loop, the proxy, the admin listener and the signal handler.
pub(crate) struct Lifecycle {
    drain: watch::Sender<bool>,
    listening: AtomicBool,
    /// Connections with a request (or an HTTP/2 connection) in progress.
    busy: AtomicUsize,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Lifecycle {
            drain: watch::channel(false).0,
            listening: AtomicBool::new(false),
            busy: AtomicUsize::new(0),
        }
    }
}

impl Lifecycle {
    pub(crate) fn is_draining(&self) -> bool {
        *self.drain.borrow()
    }

    /// Flips to `true` when the drain begins; Pingora reads it as its shutdown watch.
    pub(crate) fn drain_watch(&self) -> watch::Receiver<bool> {
        self.drain.subscribe()
    }

    pub(crate) fn begin_drain(&self) {
        self.drain.send_replace(true);
    }

    pub(crate) fn is_listening(&self) -> bool {
        self.listening.load(Ordering::Acquire)
    }

    pub(crate) fn busy_count(&self) -> usize {
        self.busy.load(Ordering::Acquire)
    }

    /// Marks a connection busy until the guard is dropped.
    pub(crate) fn busy(self: &Arc<Self>) -> Busy {
        self.busy.fetch_add(1, Ordering::AcqRel);
        Busy(self.clone())
    }
}

pub(crate) struct Busy(Arc<Lifecycle>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The drain timings, from `[server]`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Drain {
    pub delay: Duration,
    pub grace: Duration,
}

/// Pingora's signal handling with the drain in front of it: `SIGTERM` drains, `SIGINT` exits at
/// once, `SIGQUIT` hands the listeners to a new process (Pingora's upgrade).
pub(crate) struct Signals {
    pub life: Arc<Lifecycle>,
    pub drain: Drain,
}

#[async_trait]
impl ShutdownSignalWatch for Signals {
    async fn recv(&self) -> ShutdownSignal {
        let (Ok(mut term), Ok(mut int), Ok(mut quit)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
            signal(SignalKind::quit()),
        ) else {
            tracing::error!("cannot install signal handlers; SIGTERM will not drain");
            return std::future::pending().await;
        };
        tokio::select! {
            _ = int.recv() => return ShutdownSignal::FastShutdown,
            _ = quit.recv() => return ShutdownSignal::GracefulUpgrade,
            _ = term.recv() => {}
        }
        let Drain { delay, grace } = self.drain;
        self.life.begin_drain();
        tracing::info!(
            drain_delay = ?delay,
            "SIGTERM: draining; /readyz answers 503, answers say Connection: close, still accepting"
        );
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = int.recv() => return ShutdownSignal::FastShutdown,
        }
        tracing::info!(
            grace_period = ?grace,
            in_flight = self.life.busy_count(),
            "drain: listeners closing; waiting for the requests in flight"
        );
        exit_when_idle(self.life.clone(), grace);
        ShutdownSignal::GracefulTerminate
    }
}

/// Ends the process as soon as no connection is busy. Pingora, which closes the listeners once
/// this returns, would otherwise sleep the whole grace period; past it, Pingora stops the
/// runtimes itself and what is still open is closed.
fn exit_when_idle(life: Arc<Lifecycle>, grace: Duration) {
    let started = Instant::now();
    std::thread::spawn(move || {
        // Let Pingora close the listeners before the first look.
        std::thread::sleep(Duration::from_millis(50));
        while started.elapsed() < grace {
            if life.busy_count() == 0 {
                tracing::info!(after = ?started.elapsed(), "drained: nothing in flight; exiting");
                std::process::exit(0);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        tracing::warn!(
            in_flight = life.busy_count(),
            "grace period over: closing what is still open"
        );
    });
}

/// Until every listener accepts a connection, a panic is a failed start: one line, exit 1.
/// (Pingora builds its listeners in a service thread and panics there when one cannot be
/// built, which would otherwise leave a process running that serves nothing.)
pub(crate) fn watch_start(life: Arc<Lifecycle>, listeners: Vec<std::net::SocketAddr>) {
    let default_hook = std::panic::take_hook();
    let hook_life = life.clone();
    std::panic::set_hook(Box::new(move |info| {
        if !hook_life.is_listening() {
            let payload = info.payload();
            let message = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .unwrap_or("a panic");
            eprintln!(
                "error: the proxy could not start: {}",
                message.replace('\n', " ")
            );
            std::process::exit(1);
        }
        default_hook(info);
    }));
    std::thread::spawn(move || {
        let started = Instant::now();
        let probes: Vec<_> = listeners.iter().map(|a| probe_address(*a)).collect();
        loop {
            let up = probes.iter().all(|a| {
                std::net::TcpStream::connect_timeout(a, Duration::from_millis(200)).is_ok()
            });
            if up {
                life.listening.store(true, Ordering::Release);
                tracing::info!(listeners = ?listeners, "listening");
                return;
            }
            if started.elapsed() > Duration::from_secs(60) {
                eprintln!("error: the proxy's listeners did not accept connections within 60 s");
                std::process::exit(1);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
}

/// Where to connect to reach a listener: loopback for a wildcard address.
fn probe_address(a: std::net::SocketAddr) -> std::net::SocketAddr {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    match a.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => (Ipv4Addr::LOCALHOST, a.port()).into(),
        IpAddr::V6(ip) if ip.is_unspecified() => (Ipv6Addr::LOCALHOST, a.port()).into(),
        _ => a,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_guards_count_and_release() {
        let life = Arc::new(Lifecycle::default());
        let a = life.busy();
        let b = life.busy();
        assert_eq!(life.busy_count(), 2);
        drop(a);
        drop(b);
        assert_eq!(life.busy_count(), 0);
        let w = life.drain_watch();
        assert!(!life.is_draining());
        life.begin_drain();
        assert!(life.is_draining());
        assert!(w.has_changed().unwrap_or(false));
    }

    #[test]
    fn wildcards_are_probed_on_loopback() {
        assert_eq!(
            probe_address("0.0.0.0:80".parse().unwrap()),
            "127.0.0.1:80".parse().unwrap()
        );
        assert_eq!(
            probe_address("[::]:80".parse().unwrap()),
            "[::1]:80".parse().unwrap()
        );
    }
}

//! Builds and runs the Pingora server: the proxy service on its listeners and the admin
//! (health) service on the metrics listener.

use std::net::SocketAddr;
use std::sync::Arc;

use pingora::listeners::tls::TlsSettings;
use pingora::listeners::{L4BufferSettings, ListenerConfig, DEFAULT_L4_WRITE_BUFFER_SIZE};
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::{RunArgs, Server};
use pingora::services::listening::Service;

use crate::admin::Admin;
use crate::callers::CallerTable;
use crate::config::{FileConfig, Overrides, Settings};
use crate::connection::{ConnectionLimits, Connections};
use crate::legacy::{CallerCache, Legacy};
use crate::lifecycle::{Drain, Lifecycle, Signals};
use crate::migration::Live;
use crate::onezone::client::OnezoneClient;
use crate::proxy::MigrationProxy;
use crate::reload::Reloader;
use crate::verify::Verifier;

/// Where a reload reads the config from: the file (if any), the command-line overrides, and the
/// config the process started with.
pub struct ConfigSource {
    pub path: Option<std::path::PathBuf>,
    pub overrides: Overrides,
    pub file: FileConfig,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("upstream.url: cannot resolve {host}: {source}")]
    Resolve {
        host: String,
        source: std::io::Error,
    },
    #[error("listen.tls[{index}].{file}: {reason}")]
    Tls {
        index: usize,
        file: &'static str,
        reason: String,
    },
    #[error("{key}: cannot listen on {address}: {source}")]
    Bind {
        key: String,
        address: SocketAddr,
        source: std::io::Error,
    },
}

/// A server ready to run, with what its run needs besides Pingora.
pub struct Ready {
    server: Server,
    life: Arc<Lifecycle>,
    drain: Drain,
    listeners: Vec<SocketAddr>,
}

fn server_conf(settings: &Settings) -> ServerConf {
    let secs = |d: std::time::Duration| d.as_secs().max(1);
    ServerConf {
        threads: settings.server.threads,
        work_stealing: settings.server.work_stealing,
        // Pingora sleeps this long after the listeners close; the drain (lifecycle.rs) ends the
        // process earlier as soon as nothing is in flight.
        grace_period_seconds: Some(secs(settings.server.grace_period)),
        graceful_shutdown_timeout_seconds: Some(secs(settings.server.shutdown_timeout)),
        ca_file: settings
            .upstream
            .ca_file
            .as_ref()
            .map(|p| p.display().to_string()),
        ..ServerConf::default()
    }
}

/// What would make Pingora's listener setup panic, found first so that it can be said in one
/// line: TLS files that do not parse or do not match, and addresses already in use.
fn preflight(settings: &Settings) -> Result<(), StartError> {
    for (index, t) in settings.listen.tls.iter().enumerate() {
        crate::tls::check_cert_and_key(&t.cert, &t.key).map_err(|(file, reason)| {
            StartError::Tls {
                index,
                file,
                reason,
            }
        })?;
    }
    let http = settings.listen.http.iter().enumerate();
    let addresses = http
        .map(|(i, a)| (format!("listen.http[{i}]"), *a))
        .chain(
            settings
                .listen
                .tls
                .iter()
                .enumerate()
                .map(|(i, t)| (format!("listen.tls[{i}].address"), t.address)),
        )
        .chain(
            settings
                .listen
                .metrics
                .map(|a| ("listen.metrics".to_string(), a)),
        );
    for (key, address) in addresses {
        // Bound and released at once; Pingora binds it again a moment later.
        std::net::TcpListener::bind(address).map_err(|source| StartError::Bind {
            key,
            address,
            source,
        })?;
    }
    Ok(())
}

/// Resolves the upstream host once, at start; a name is looked up again only on restart.
fn resolve(up: &crate::config::Upstream) -> std::io::Result<SocketAddr> {
    use std::net::ToSocketAddrs;
    (up.host.as_str(), up.port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{} has no address", up.host),
            )
        })
}

/// Raises the open-files soft limit to the hard limit: every client and upstream connection
/// is a file, and a low soft limit (often 1024) makes new clients time out under load.
fn raise_open_files_limit() {
    match rlimit::Resource::NOFILE.get() {
        Ok((soft, hard)) if soft < hard => match rlimit::increase_nofile_limit(hard) {
            Ok(now) => tracing::info!(was = soft, now, hard, "open files limit raised"),
            Err(e) => tracing::warn!(soft, hard, error = %e, "cannot raise the open files limit"),
        },
        Ok((soft, hard)) => tracing::info!(soft, hard, "open files limit"),
        Err(e) => tracing::warn!(error = %e, "cannot read the open files limit"),
    }
}

/// Builds a ready-to-run server from validated settings.
pub fn build(settings: Settings, source: ConfigSource) -> Result<Ready, StartError> {
    preflight(&settings)?;
    raise_open_files_limit();
    let live = Arc::new(Live::new(settings.policies.clone()));
    let life = Arc::new(Lifecycle::default());
    let settings = Arc::new(settings);
    let addr = resolve(&settings.upstream).map_err(|source| StartError::Resolve {
        host: settings.upstream.host.clone(),
        source,
    })?;
    let peer = crate::upstream::peer(&settings.upstream, addr);

    let mut server = Server::new_with_opt_and_conf(Opt::default(), server_conf(&settings));
    server.bootstrap();
    let conf = server.configuration.clone();

    let client = OnezoneClient::new(
        &conf,
        peer.clone(),
        &settings.onezone.api_prefix,
        &settings.upstream,
    );
    let legacy = Arc::new(Legacy::new(
        client,
        CallerCache::new(
            settings.onezone.caller_cache_ttl,
            settings.onezone.caller_cache_size,
        ),
    ));

    let callers = Arc::new(CallerTable::new(settings.metrics.callers_table_size));
    let http_proxy = pingora::proxy::http_proxy(
        &conf,
        MigrationProxy::new(
            settings.clone(),
            peer,
            legacy.clone(),
            live.clone(),
            life.clone(),
            Verifier::new(legacy.clone(), &settings.verify),
            callers.clone(),
        ),
    );
    let limits = ConnectionLimits {
        keepalive_timeout: settings.limits.keepalive_timeout,
        header_timeout: settings.limits.header_timeout,
    };
    let mut proxy = Service::new(
        "onezone-migration-proxy".to_string(),
        Connections::new(http_proxy, life.clone(), limits),
    );
    for a in &settings.listen.http {
        // Pingora's default 64 KiB read buffer per connection is most of an idle keep-alive
        // client's cost; its HTTP/1 parser keeps its own buffer, so reads need none here.
        let buffers = L4BufferSettings::new(0, DEFAULT_L4_WRITE_BUFFER_SIZE);
        proxy.add_listener(ListenerConfig::tcp(a.to_string()).l4_buffer(buffers));
    }
    for (index, t) in settings.listen.tls.iter().enumerate() {
        let path = |p: &std::path::Path| p.display().to_string();
        let mut tls = TlsSettings::intermediate(&path(&t.cert), &path(&t.key)).map_err(|e| {
            StartError::Tls {
                index,
                file: "cert",
                reason: e.to_string(),
            }
        })?;
        tls.enable_h2();
        proxy.add_tls_with_settings(&t.address.to_string(), None, tls);
    }
    server.add_service(proxy);

    let watch = settings.reload.watch.then_some(settings.reload.interval);
    let reloader = Reloader::new(source.path, source.overrides, source.file, live, watch);
    server.add_service(pingora::services::background::background_service(
        "config reload",
        reloader,
    ));

    if let Some(metrics) = settings.listen.metrics {
        let mut admin = Service::new(
            "admin".to_string(),
            Admin::new(legacy, life.clone(), callers),
        );
        admin.add_tcp(&metrics.to_string());
        server.add_service(admin);
    }
    let listeners = settings
        .listen
        .http
        .iter()
        .copied()
        .chain(settings.listen.tls.iter().map(|t| t.address))
        .collect();
    Ok(Ready {
        server,
        life,
        drain: Drain {
            delay: settings.server.drain_delay,
            grace: settings.server.grace_period,
        },
        listeners,
    })
}

/// Runs until SIGTERM (drain, lifecycle.rs), SIGINT (fast) or SIGQUIT (hand-over to a new
/// process).
pub fn run(ready: Ready) {
    crate::lifecycle::watch_start(ready.life.clone(), ready.listeners);
    let signals = Signals {
        life: ready.life,
        drain: ready.drain,
    };
    ready.server.run(RunArgs {
        shutdown_signal: Box::new(signals),
    });
}

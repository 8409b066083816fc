//! Builds and runs the Pingora server: the proxy service on its listeners and the admin
//! (health) service on the metrics listener.

use std::sync::Arc;

use pingora::listeners::tls::TlsSettings;
use pingora::listeners::{L4BufferSettings, ListenerConfig, DEFAULT_L4_WRITE_BUFFER_SIZE};
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::{RunArgs, Server};
use pingora::services::listening::Service;

use crate::admin::Admin;
use crate::config::{FileConfig, Overrides, Settings};
use crate::legacy::{CallerCache, Legacy};
use crate::migration::Live;
use crate::onezone::client::OnezoneClient;
use crate::proxy::MigrationProxy;
use crate::reload::Reloader;

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
    #[error("listen.tls[{index}]: {reason}")]
    Tls { index: usize, reason: String },
}

fn server_conf(settings: &Settings) -> ServerConf {
    let secs = |d: std::time::Duration| d.as_secs().max(1);
    ServerConf {
        threads: settings.threads,
        work_stealing: settings.work_stealing,
        grace_period_seconds: Some(secs(settings.grace_period)),
        graceful_shutdown_timeout_seconds: Some(secs(settings.shutdown_timeout)),
        ca_file: settings
            .upstream
            .ca_file
            .as_ref()
            .map(|p| p.display().to_string()),
        ..ServerConf::default()
    }
}

/// Builds a ready-to-run server from validated settings.
pub fn build(settings: Settings, source: ConfigSource) -> Result<Server, StartError> {
    let live = Arc::new(Live::new(settings.policies.clone()));
    let settings = Arc::new(settings);
    let addr = settings
        .upstream
        .resolve()
        .map_err(|source| StartError::Resolve {
            host: settings.upstream.host.clone(),
            source,
        })?;
    let peer = crate::upstream::peer(&settings.upstream, addr);

    let mut server = Server::new_with_opt_and_conf(Opt::default(), server_conf(&settings));
    server.bootstrap();
    let conf = server.configuration.clone();

    let host = crate::upstream::host_override(&settings.upstream)
        .unwrap_or(&settings.upstream.authority)
        .to_string();
    let up = &settings.upstream;
    let client = OnezoneClient::new(
        &conf,
        peer.clone(),
        &settings.api_prefix,
        host,
        up.max_body_bytes,
        up.idle_timeout,
    );
    let legacy = Arc::new(Legacy::new(
        client,
        CallerCache::new(settings.caller_cache_ttl, settings.caller_cache_size),
    ));

    let mut proxy = pingora::proxy::http_proxy_service_with_name(
        &conf,
        MigrationProxy::new(settings.clone(), peer, legacy.clone(), live.clone()),
        "onezone-migration-proxy",
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
                reason: e.to_string(),
            }
        })?;
        tls.enable_h2();
        proxy.add_tls_with_settings(&t.address.to_string(), None, tls);
    }
    server.add_service(proxy);

    let watch = settings.reload_watch.then_some(settings.reload_interval);
    let reloader = Reloader::new(source.path, source.overrides, source.file, live, watch);
    server.add_service(pingora::services::background::background_service(
        "config reload",
        reloader,
    ));

    if let Some(metrics) = settings.listen.metrics {
        let mut admin = Service::new("admin".to_string(), Admin::new(legacy));
        admin.add_tcp(&metrics.to_string());
        server.add_service(admin);
    }
    Ok(server)
}

/// Runs until SIGTERM (graceful), SIGINT (fast) or SIGQUIT (hand-over to a new process).
pub fn run(server: Server) {
    server.run(RunArgs::default());
}

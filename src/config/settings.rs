//! The typed layer: validated settings, what the proxy runs on.

use super::*;

/// Validated settings: what the proxy runs on.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: Listen,
    pub upstream: Upstream,
    pub trusted_proxies: Vec<IpNet>,
    pub api_prefix: String,
    pub caller_cache_ttl: Duration,
    pub caller_cache_size: usize,
    pub threads: usize,
    pub work_stealing: bool,
    /// After SIGTERM: how long the listeners keep accepting (answers say `Connection: close`).
    pub drain_delay: Duration,
    /// Then: the longest wait for requests in flight.
    pub grace_period: Duration,
    /// Then: how long Pingora's runtimes get to stop.
    pub shutdown_timeout: Duration,
    pub log_format: LogFormat,
    pub log_level: String,
    pub reload_watch: bool,
    pub reload_interval: Duration,
    /// The header the metrics' `client` label is read from.
    pub client_header: http::HeaderName,
    pub clients: Vec<String>,
    pub limits: crate::hardening::Limits,
    pub client_timeout: Duration,
    pub keepalive_timeout: Duration,
    pub header_timeout: Duration,
    /// `None`: upgraded connections never time out.
    pub tunnel_idle_timeout: Option<Duration>,
    /// The live part: what `SIGHUP` reloads.
    pub policies: Policies,
}

#[derive(Debug, Clone)]
pub struct Listen {
    pub http: Vec<SocketAddr>,
    pub tls: Vec<TlsListener>,
    pub metrics: Option<SocketAddr>,
}

#[derive(Debug, Clone)]
pub struct TlsListener {
    pub address: SocketAddr,
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone)]
pub struct Upstream {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// `host[:port]` as written in the URL, for `Host` under [`HostPolicy::Upstream`].
    pub authority: String,
    pub sni: String,
    pub verify_tls: bool,
    pub ca_file: Option<PathBuf>,
    pub host_header: HostPolicy,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub total_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_body_bytes: usize,
    pub max_connections: usize,
}

impl Upstream {
    /// The scheme and authority, e.g. `https://onezone.example.org`.
    pub fn base_url(&self) -> String {
        format!(
            "{}://{}",
            if self.tls { "https" } else { "http" },
            self.authority
        )
    }
}

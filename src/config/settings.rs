//! The typed layer: validated settings, what the proxy runs on. One struct per section of the
//! file, each built by its own validator in `validate.rs`.

use super::*;

/// Validated settings: what the proxy runs on.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: Listen,
    pub upstream: Upstream,
    pub forwarding: Forwarding,
    pub onezone: Onezone,
    pub server: Server,
    pub log: Log,
    pub reload: Reload,
    pub limits: Limits,
    pub metrics: Metrics,
    pub verify: Verify,
    /// The live part (`[deprecation]` and `[routes.*]`): what `SIGHUP` reloads.
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

#[derive(Debug, Clone)]
pub struct Forwarding {
    pub trusted_proxies: Vec<IpNet>,
}

#[derive(Debug, Clone)]
pub struct Onezone {
    pub api_prefix: String,
    pub caller_cache_ttl: Duration,
    pub caller_cache_size: usize,
}

#[derive(Debug, Clone)]
pub struct Server {
    pub threads: usize,
    pub work_stealing: bool,
    /// After SIGTERM: how long the listeners keep accepting (answers say `Connection: close`).
    pub drain_delay: Duration,
    /// Then: the longest wait for requests in flight.
    pub grace_period: Duration,
    /// Then: how long Pingora's runtimes get to stop.
    pub shutdown_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct Log {
    pub format: LogFormat,
    pub level: String,
}

#[derive(Debug, Clone)]
pub struct Reload {
    pub watch: bool,
    pub interval: Duration,
}

#[derive(Debug, Clone)]
pub struct Limits {
    /// The request-head limits `hardening::check_head` enforces.
    pub head: crate::hardening::Limits,
    pub client_timeout: Duration,
    pub keepalive_timeout: Duration,
    pub header_timeout: Duration,
    /// `None`: upgraded connections never time out.
    pub tunnel_idle_timeout: Option<Duration>,
}

#[derive(Debug, Clone)]
pub struct Metrics {
    /// The header the metrics' `client` label is read from.
    pub client_header: http::HeaderName,
    pub clients: Vec<String>,
    pub callers_table_size: usize,
}

#[derive(Debug, Clone)]
pub struct Verify {
    pub concurrency: usize,
    pub queue: usize,
    pub timeout: Duration,
    pub time_tolerance: Duration,
}

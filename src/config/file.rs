//! The file layer: the TOML schema, every key optional with its default.

use super::*;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileConfig {
    pub listen: ListenFile,
    pub upstream: UpstreamFile,
    pub forwarding: ForwardingFile,
    pub onezone: OnezoneFile,
    pub server: ServerFile,
    pub log: LogFile,
    pub reload: ReloadFile,
    pub limits: LimitsFile,
    pub metrics: MetricsFile,
    pub verify: VerifyFile,
    pub deprecation: DeprecationFile,
    /// Per-route overrides of `[deprecation]`, keyed by Onezone operationId.
    pub routes: BTreeMap<String, RouteFile>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsFile {
    pub max_request_line: usize,
    pub max_header_bytes: usize,
    pub max_headers: usize,
    /// Longest wait for each read of a client's request body.
    pub client_timeout: String,
    /// How long an idle kept-alive client connection is kept open.
    pub keepalive_timeout: String,
    /// Deadline for a whole request head, from its first byte.
    pub header_timeout: String,
    /// How long an upgraded connection (WebSocket) may stay silent in one direction; "0": no limit.
    pub tunnel_idle_timeout: String,
}

impl Default for LimitsFile {
    fn default() -> Self {
        LimitsFile {
            max_request_line: 8 * 1024,
            max_header_bytes: 64 * 1024,
            max_headers: 100,
            client_timeout: "60s".into(),
            keepalive_timeout: "75s".into(),
            header_timeout: "60s".into(),
            tunnel_idle_timeout: "1h".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsFile {
    /// The request header whose product token names the client.
    pub client_header: String,
    /// Clients named in metrics; any other is `other`.
    pub clients: Vec<String>,
    /// Entries of the per-replica table of legacy callers (`GET /legacy/callers`).
    pub callers_table_size: usize,
}

/// At most this many named clients, to keep the series count bounded.
pub const MAX_CLIENTS: usize = 64;

impl Default for MetricsFile {
    fn default() -> Self {
        MetricsFile {
            client_header: "user-agent".into(),
            callers_table_size: 10_000,
            clients: [
                "onezone-rest-cli",
                "onedata-rest-cli",
                "oneprovider",
                "onepanel",
                "oneclient",
                "onedatafs",
                "curl",
                "python-requests",
                "python-urllib3",
                "Go-http-client",
                "Wget",
                "Mozilla",
            ]
            .map(String::from)
            .to_vec(),
        }
    }
}

/// How `mode = "verify"` checks run: in the background, bounded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VerifyFile {
    /// Checks that run at once (each makes a few read-only calls to Onezone).
    pub concurrency: usize,
    /// Checks that may wait for a free slot; past it a check is dropped and counted.
    pub queue: usize,
    /// The longest a check may take, its Onezone calls included.
    pub timeout: String,
    /// Clock skew allowed when comparing a client token's one-year expiry.
    pub time_tolerance: String,
}

impl Default for VerifyFile {
    fn default() -> Self {
        VerifyFile {
            concurrency: 4,
            queue: 256,
            timeout: "10s".into(),
            time_tolerance: "5m".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReloadFile {
    pub watch: bool,
    pub interval: String,
}

impl Default for ReloadFile {
    fn default() -> Self {
        ReloadFile {
            watch: false,
            interval: "5s".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeprecationFile {
    pub date: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sunset: Option<String>,
    pub docs_url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sunset_policy_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    pub mode: Mode,
    pub after_sunset: AfterSunset,
    pub rewrite_percent: u8,
    pub verify_percent: u8,
    pub brownouts: Vec<BrownoutFile>,
}

impl Default for DeprecationFile {
    fn default() -> Self {
        DeprecationFile {
            // The tokens API replaced these operations in onezone-swagger on this day.
            date: "2019-10-17T00:00:00Z".into(),
            sunset: None,
            docs_url: "https://onedata.org/#/home/api/stable/onezone?anchor=tag/Token".into(),
            sunset_policy_url: None,
            public_url: None,
            mode: Mode::Rewrite,
            after_sunset: AfterSunset::Keep,
            rewrite_percent: 100,
            verify_percent: 100,
            brownouts: Vec::new(),
        }
    }
}

/// Overrides for one route; anything left out comes from `[deprecation]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteFile {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sunset: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub docs_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sunset_policy_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after_sunset: Option<AfterSunset>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rewrite_percent: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify_percent: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub brownouts: Option<Vec<BrownoutFile>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrownoutFile {
    pub start: String,
    pub end: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ListenFile {
    pub http: Vec<String>,
    pub metrics: String,
    pub tls: Vec<TlsListenerFile>,
}

impl Default for ListenFile {
    fn default() -> Self {
        ListenFile {
            http: vec!["0.0.0.0:8080".into()],
            metrics: "127.0.0.1:9090".into(),
            tls: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsListenerFile {
    pub address: String,
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamFile {
    pub url: String,
    pub verify_tls: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    pub host_header: HostPolicy,
    pub connect_timeout: String,
    pub read_timeout: String,
    pub total_timeout: String,
    pub idle_timeout: String,
    pub max_body_bytes: u64,
    /// Most connections the tokens-API calls open to Onezone at once; more calls wait.
    pub max_connections: usize,
}

impl Default for UpstreamFile {
    fn default() -> Self {
        UpstreamFile {
            url: "https://onezone.internal".into(),
            verify_tls: true,
            ca_file: None,
            sni: None,
            host_header: HostPolicy::Client,
            connect_timeout: "5s".into(),
            read_timeout: "60s".into(),
            total_timeout: "30s".into(),
            idle_timeout: "60s".into(),
            max_body_bytes: 1024 * 1024,
            max_connections: 64,
        }
    }
}

/// Which `Host` the upstream sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HostPolicy {
    /// The client's own `Host` (the proxy stands on Onezone's public name).
    Client,
    /// The host of `upstream.url`.
    Upstream,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ForwardingFile {
    pub trusted_proxies: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OnezoneFile {
    pub api_prefix: String,
    pub caller_cache_ttl: String,
    pub caller_cache_size: usize,
}

impl Default for OnezoneFile {
    fn default() -> Self {
        OnezoneFile {
            api_prefix: "/api/v3/onezone".into(),
            caller_cache_ttl: "30s".into(),
            caller_cache_size: 10_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerFile {
    pub threads: usize,
    pub work_stealing: bool,
    pub drain_delay: String,
    pub grace_period: String,
    pub shutdown_timeout: String,
}

impl Default for ServerFile {
    fn default() -> Self {
        ServerFile {
            threads: 2,
            work_stealing: true,
            drain_delay: "5s".into(),
            grace_period: "25s".into(),
            shutdown_timeout: "1s".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogFile {
    pub format: LogFormat,
    pub level: String,
}

impl Default for LogFile {
    fn default() -> Self {
        LogFile {
            format: LogFormat::Human,
            level: "info".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Human,
    Json,
}

//! Reading a config file and checking every value into [`Settings`].

use super::*;

impl FileConfig {
    /// Parses TOML text; `file` names the source in errors.
    pub fn parse(text: &str, file: &str) -> Result<FileConfig, ConfigError> {
        let de = toml::Deserializer::new(text);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            let mut reason = for_people(e.inner().message().trim());
            if let Some(span) = e.inner().span() {
                let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
                reason.push_str(&format!(" (line {line})"));
            }
            ConfigError::invalid(file, if key == "." { "(top level)" } else { &key }, reason)
        })
    }

    /// Reads and parses a file.
    pub fn load(path: &Path) -> Result<FileConfig, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: file.clone(),
            source,
        })?;
        FileConfig::parse(&text, &file)
    }

    /// The effective configuration as TOML, for `check-config`.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }

    /// Checks every value and builds the typed settings, section by section. The file config is
    /// destructured whole, so a new section does not compile until it is validated here.
    pub fn validate(&self, file: &str) -> Result<Settings, ConfigError> {
        let FileConfig {
            listen,
            upstream,
            forwarding,
            onezone,
            server,
            log,
            reload,
            limits,
            metrics,
            verify,
            deprecation: _,
            routes: _,
        } = self;
        let c = Check { file };
        Ok(Settings {
            listen: listen.validate(&c)?,
            upstream: upstream.validate(&c)?,
            forwarding: forwarding.validate(&c)?,
            onezone: onezone.validate(&c)?,
            server: server.validate(&c)?,
            log: log.validate(&c)?,
            reload: reload.validate(&c)?,
            limits: limits.validate(&c)?,
            metrics: metrics.validate(&c)?,
            verify: verify.validate(&c)?,
            policies: self.validate_policies(file)?,
        })
    }

    fn validate_policies(&self, file: &str) -> Result<Policies, ConfigError> {
        let d = &self.deprecation;
        let public_url = match &d.public_url {
            Some(u) => Some(absolute_url(file, "deprecation.public_url", u)?),
            None => None,
        };
        let base = Base {
            date: &d.date,
            sunset: d.sunset.as_deref(),
            docs_url: &d.docs_url,
            sunset_policy_url: d.sunset_policy_url.as_deref(),
            mode: d.mode,
            after_sunset: d.after_sunset,
            rewrite_percent: d.rewrite_percent,
            verify_percent: d.verify_percent,
            brownouts: &d.brownouts,
        };
        let default = policy(file, "deprecation", &RouteFile::default(), &base)?;
        let mut by_operation = HashMap::new();
        for (name, route) in &self.routes {
            let key = format!("routes.{name}");
            if !ROUTES.iter().any(|r| r.operation == name) {
                return Err(ConfigError::invalid(
                    file,
                    key,
                    "not a deprecated operation (see `onezone-migration-proxy routes`)",
                ));
            }
            by_operation.insert(name.clone(), policy(file, &key, route, &base)?);
        }
        Ok(Policies {
            default,
            by_operation,
            public_url,
        })
    }
}

/// The checks every section uses; each error names the file and the key.
struct Check<'a> {
    file: &'a str,
}

impl Check<'_> {
    fn bad(&self, key: &str, reason: impl Into<String>) -> ConfigError {
        ConfigError::invalid(self.file, key, reason)
    }

    /// A duration; `"0"` (or `"0s"`) is allowed and means zero.
    fn duration_or_zero(&self, key: &str, value: &str) -> Result<Duration, ConfigError> {
        if value == "0" {
            return Ok(Duration::ZERO);
        }
        humantime::parse_duration(value).map_err(|e| {
            self.bad(
                key,
                format!("{value:?} is not a duration ({e}); e.g. \"5s\""),
            )
        })
    }

    fn duration(&self, key: &str, value: &str) -> Result<Duration, ConfigError> {
        let d = self.duration_or_zero(key, value)?;
        if d.is_zero() {
            return Err(self.bad(key, "must be greater than zero"));
        }
        Ok(d)
    }

    fn socket(&self, key: &str, value: &str) -> Result<SocketAddr, ConfigError> {
        value
            .parse::<SocketAddr>()
            .map_err(|_| self.bad(key, format!("{value:?} is not an IP:port address")))
    }

    fn positive(&self, key: &str, value: usize) -> Result<usize, ConfigError> {
        match value {
            0 => Err(self.bad(key, "must be greater than zero")),
            v => Ok(v),
        }
    }
}

impl ListenFile {
    fn validate(&self, c: &Check) -> Result<Listen, ConfigError> {
        let mut http = Vec::new();
        for (i, a) in self.http.iter().enumerate() {
            http.push(c.socket(&format!("listen.http[{i}]"), a)?);
        }
        let metrics = match self.metrics.is_empty() {
            true => None,
            false => Some(c.socket("listen.metrics", &self.metrics)?),
        };
        let mut tls = Vec::new();
        for (i, t) in self.tls.iter().enumerate() {
            let key = format!("listen.tls[{i}]");
            let address = c.socket(&format!("{key}.address"), &t.address)?;
            for (name, path) in [("cert", &t.cert), ("key", &t.key)] {
                readable_file(path).map_err(|reason| c.bad(&format!("{key}.{name}"), reason))?;
            }
            crate::tls::check_cert_and_key(&t.cert, &t.key)
                .map_err(|(which, reason)| c.bad(&format!("{key}.{which}"), reason))?;
            tls.push(TlsListener {
                address,
                cert: t.cert.clone(),
                key: t.key.clone(),
            });
        }
        if http.is_empty() && tls.is_empty() {
            return Err(c.bad("listen", "no listener: set listen.http or listen.tls"));
        }
        Ok(Listen { http, tls, metrics })
    }
}

impl UpstreamFile {
    fn validate(&self, c: &Check) -> Result<Upstream, ConfigError> {
        let url = &self.url;
        let uri: http::Uri = url
            .parse()
            .map_err(|e| c.bad("upstream.url", format!("{url:?} is not a URL: {e}")))?;
        let tls = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => {
                return Err(c.bad(
                    "upstream.url",
                    format!("{url:?} must start with http:// or https://"),
                ))
            }
        };
        let Some(authority) = uri.authority() else {
            return Err(c.bad("upstream.url", format!("{url:?} has no host")));
        };
        if authority.as_str().contains('@') {
            return Err(c.bad("upstream.url", "must not carry credentials"));
        }
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(c.bad(
                "upstream.url",
                format!(
                    "{url:?}: give scheme, host and port only; the API prefix is onezone.api_prefix"
                ),
            ));
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let port = authority.port_u16().unwrap_or(if tls { 443 } else { 80 });
        if let Some(ca) = &self.ca_file {
            readable_file(ca)
                .and_then(|_| crate::tls::check_ca_file(ca))
                .map_err(|reason| c.bad("upstream.ca_file", reason))?;
        }
        let max_body_bytes = usize::try_from(self.max_body_bytes).unwrap_or(usize::MAX);
        Ok(Upstream {
            tls,
            host: host.to_string(),
            port,
            authority: authority.as_str().to_string(),
            sni: self.sni.clone().unwrap_or_else(|| host.to_string()),
            verify_tls: self.verify_tls,
            ca_file: self.ca_file.clone(),
            host_header: self.host_header,
            connect_timeout: c.duration("upstream.connect_timeout", &self.connect_timeout)?,
            read_timeout: c.duration("upstream.read_timeout", &self.read_timeout)?,
            total_timeout: c.duration("upstream.total_timeout", &self.total_timeout)?,
            idle_timeout: c.duration("upstream.idle_timeout", &self.idle_timeout)?,
            max_body_bytes: c.positive("upstream.max_body_bytes", max_body_bytes)?,
            max_connections: c.positive("upstream.max_connections", self.max_connections)?,
        })
    }
}

impl ForwardingFile {
    fn validate(&self, c: &Check) -> Result<Forwarding, ConfigError> {
        let mut trusted_proxies = Vec::new();
        for (i, p) in self.trusted_proxies.iter().enumerate() {
            let net = p
                .parse::<IpNet>()
                .or_else(|_| p.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    c.bad(
                        &format!("forwarding.trusted_proxies[{i}]"),
                        format!("{p:?} is not an IP address or CIDR range"),
                    )
                })?;
            trusted_proxies.push(net);
        }
        Ok(Forwarding { trusted_proxies })
    }
}

impl OnezoneFile {
    fn validate(&self, c: &Check) -> Result<Onezone, ConfigError> {
        let prefix = &self.api_prefix;
        if !prefix.starts_with('/') || prefix.ends_with('/') || prefix.contains("//") {
            return Err(c.bad(
                "onezone.api_prefix",
                format!("{prefix:?} must start with '/' and not end with '/'"),
            ));
        }
        Ok(Onezone {
            api_prefix: prefix.clone(),
            caller_cache_ttl: c.duration("onezone.caller_cache_ttl", &self.caller_cache_ttl)?,
            caller_cache_size: self.caller_cache_size,
        })
    }
}

impl ServerFile {
    fn validate(&self, c: &Check) -> Result<Server, ConfigError> {
        if self.threads == 0 {
            return Err(c.bad("server.threads", "must be at least 1"));
        }
        Ok(Server {
            threads: self.threads,
            work_stealing: self.work_stealing,
            drain_delay: c.duration_or_zero("server.drain_delay", &self.drain_delay)?,
            grace_period: c.duration("server.grace_period", &self.grace_period)?,
            shutdown_timeout: c.duration("server.shutdown_timeout", &self.shutdown_timeout)?,
        })
    }
}

impl LogFile {
    fn validate(&self, c: &Check) -> Result<Log, ConfigError> {
        check_log_level(&self.level).map_err(|reason| c.bad("log.level", reason))?;
        Ok(Log {
            format: self.format,
            level: self.level.clone(),
        })
    }
}

impl ReloadFile {
    fn validate(&self, c: &Check) -> Result<Reload, ConfigError> {
        Ok(Reload {
            watch: self.watch,
            interval: c.duration("reload.interval", &self.interval)?,
        })
    }
}

impl LimitsFile {
    fn validate(&self, c: &Check) -> Result<Limits, ConfigError> {
        let head = crate::hardening::Limits {
            max_request_line: c.positive("limits.max_request_line", self.max_request_line)?,
            max_header_bytes: c.positive("limits.max_header_bytes", self.max_header_bytes)?,
            max_headers: c.positive("limits.max_headers", self.max_headers)?,
        };
        let tunnel_idle_timeout =
            c.duration_or_zero("limits.tunnel_idle_timeout", &self.tunnel_idle_timeout)?;
        Ok(Limits {
            head,
            client_timeout: c.duration("limits.client_timeout", &self.client_timeout)?,
            keepalive_timeout: c.duration("limits.keepalive_timeout", &self.keepalive_timeout)?,
            header_timeout: c.duration("limits.header_timeout", &self.header_timeout)?,
            tunnel_idle_timeout: (!tunnel_idle_timeout.is_zero()).then_some(tunnel_idle_timeout),
        })
    }
}

impl VerifyFile {
    fn validate(&self, c: &Check) -> Result<Verify, ConfigError> {
        Ok(Verify {
            concurrency: c.positive("verify.concurrency", self.concurrency)?,
            queue: self.queue,
            timeout: c.duration("verify.timeout", &self.timeout)?,
            time_tolerance: c.duration_or_zero("verify.time_tolerance", &self.time_tolerance)?,
        })
    }
}

impl MetricsFile {
    fn validate(&self, c: &Check) -> Result<Metrics, ConfigError> {
        let client_header =
            http::HeaderName::from_bytes(self.client_header.as_bytes()).map_err(|_| {
                c.bad(
                    "metrics.client_header",
                    format!("{:?} is not a header name", self.client_header),
                )
            })?;
        if self.clients.len() > MAX_CLIENTS {
            return Err(c.bad(
                "metrics.clients",
                format!("at most {MAX_CLIENTS} clients, to keep the metric series bounded"),
            ));
        }
        for (i, name) in self.clients.iter().enumerate() {
            let ok = (1..=64).contains(&name.len())
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
            if !ok {
                return Err(c.bad(
                    &format!("metrics.clients[{i}]"),
                    format!("{name:?} is not a product token (letters, digits, '.', '_', '-')"),
                ));
            }
        }
        Ok(Metrics {
            client_header,
            clients: self.clients.clone(),
            callers_table_size: self.callers_table_size,
        })
    }
}

/// serde names the Rust type a key expected ("expected struct UpstreamFile"); a person
/// needs the TOML shape ("expected a table").
fn for_people(message: &str) -> String {
    let Some(at) = message.find("expected struct ") else {
        return message.to_string();
    };
    let rest = &message[at + "expected struct ".len()..];
    let name_end = rest
        .find(|c: char| !c.is_alphanumeric() && c != '_')
        .unwrap_or(rest.len());
    format!("{}expected a table{}", &message[..at], &rest[name_end..])
}

/// A path that can be read as a file (a directory opens too, but cannot be read).
fn readable_file(path: &Path) -> Result<(), String> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => Ok(()),
        Ok(_) => Err(format!("{} is not a file", path.display())),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// `tracing`'s filter syntax takes a bare word as a target name, so a misspelt level such as
/// "inof" would parse and silence every log line: a bare word must be a level.
fn check_log_level(level: &str) -> Result<(), String> {
    const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];
    tracing_subscriber::EnvFilter::try_new(level).map_err(|e| format!("{level:?}: {e}"))?;
    for directive in level.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let bare = !directive.contains(['=', '[']);
        if bare && !LEVELS.iter().any(|l| l.eq_ignore_ascii_case(directive)) {
            return Err(format!(
                "{directive:?} is not a level: use one of {}, or target=level",
                LEVELS.join(", ")
            ));
        }
    }
    Ok(())
}

/// The `[deprecation]` values a route inherits.
struct Base<'a> {
    date: &'a str,
    sunset: Option<&'a str>,
    docs_url: &'a str,
    sunset_policy_url: Option<&'a str>,
    mode: Mode,
    after_sunset: AfterSunset,
    rewrite_percent: u8,
    verify_percent: u8,
    brownouts: &'a [BrownoutFile],
}

fn timestamp(file: &str, key: &str, value: &str) -> Result<SystemTime, ConfigError> {
    humantime::parse_rfc3339(value).map_err(|_| {
        ConfigError::invalid(
            file,
            key,
            format!("{value:?} is not a UTC timestamp like \"2026-06-30T00:00:00Z\""),
        )
    })
}

fn absolute_url(file: &str, key: &str, value: &str) -> Result<String, ConfigError> {
    let ok = value
        .parse::<http::Uri>()
        .is_ok_and(|u| matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some());
    if !ok || value.contains(['<', '>', '"', ' ']) {
        return Err(ConfigError::invalid(
            file,
            key,
            format!("{value:?} is not an absolute http(s) URL"),
        ));
    }
    Ok(value.trim_end_matches('/').to_string())
}

/// One route's effective policy: its overrides over the `[deprecation]` defaults.
fn policy(file: &str, key: &str, r: &RouteFile, base: &Base) -> Result<Policy, ConfigError> {
    let (date_key, date) = match &r.date {
        Some(d) => (format!("{key}.date"), d.as_str()),
        None => ("deprecation.date".to_string(), base.date),
    };
    let deprecation = timestamp(file, &date_key, date)?;
    let sunset = match (&r.sunset, base.sunset) {
        (Some(s), _) => Some((format!("{key}.sunset"), s.as_str())),
        (None, Some(s)) => Some(("deprecation.sunset".to_string(), s)),
        (None, None) => None,
    };
    let sunset = match sunset {
        Some((k, v)) => {
            let t = timestamp(file, &k, v)?;
            // RFC 9745 section 4: the sunset must not be earlier than the deprecation.
            if t < deprecation {
                return Err(ConfigError::invalid(
                    file,
                    k,
                    format!("{v:?} is earlier than the deprecation date {date:?}"),
                ));
            }
            Some(t)
        }
        None => None,
    };
    let docs_url = match &r.docs_url {
        Some(u) => absolute_url(file, &format!("{key}.docs_url"), u)?,
        None => absolute_url(file, "deprecation.docs_url", base.docs_url)?,
    };
    let sunset_policy_url = match (&r.sunset_policy_url, base.sunset_policy_url) {
        (Some(u), _) => Some(absolute_url(file, &format!("{key}.sunset_policy_url"), u)?),
        (None, Some(u)) => Some(absolute_url(file, "deprecation.sunset_policy_url", u)?),
        (None, None) => None,
    };
    let percent = |name: &str, own: Option<u8>, base: u8| {
        let value = own.unwrap_or(base);
        if value <= 100 {
            return Ok(value);
        }
        let k = match own {
            Some(_) => format!("{key}.{name}"),
            None => format!("deprecation.{name}"),
        };
        Err(ConfigError::invalid(file, k, "must be between 0 and 100"))
    };
    let rewrite_percent = percent("rewrite_percent", r.rewrite_percent, base.rewrite_percent)?;
    let verify_percent = percent("verify_percent", r.verify_percent, base.verify_percent)?;
    let (brownout_key, brownouts) = match &r.brownouts {
        Some(b) => (format!("{key}.brownouts"), b.as_slice()),
        None => ("deprecation.brownouts".to_string(), base.brownouts),
    };
    let mut windows = Vec::new();
    for (i, b) in brownouts.iter().enumerate() {
        let k = format!("{brownout_key}[{i}]");
        let start = timestamp(file, &format!("{k}.start"), &b.start)?;
        let end = timestamp(file, &format!("{k}.end"), &b.end)?;
        if end <= start {
            return Err(ConfigError::invalid(
                file,
                format!("{k}.end"),
                "must be after start",
            ));
        }
        windows.push(Window { start, end });
    }
    Ok(Policy {
        deprecation,
        sunset,
        docs_url,
        sunset_policy_url,
        mode: r.mode.unwrap_or(base.mode),
        after_sunset: r.after_sunset.unwrap_or(base.after_sunset),
        rewrite_percent,
        verify_percent,
        brownouts: windows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invalid(text: &str) -> (String, String) {
        match FileConfig::parse(text, "t.toml").and_then(|f| f.validate("t.toml")) {
            Err(ConfigError::Invalid { key, reason, .. }) => (key, reason),
            other => panic!("expected an invalid config, got {other:?}"),
        }
    }

    /// The embedded reference file and the Rust defaults must say the same thing.
    #[test]
    fn embedded_default_matches_code_defaults() {
        let parsed = FileConfig::parse(DEFAULT_CONFIG, "default").expect("default parses");
        assert_eq!(parsed, FileConfig::default());
        parsed.validate("default").expect("default validates");
    }

    #[test]
    fn empty_file_is_the_default() {
        assert_eq!(FileConfig::parse("", "e").unwrap(), FileConfig::default());
    }

    #[test]
    fn unknown_key_is_named() {
        let (key, reason) = invalid("[upstream]\nurll = \"http://x\"\n");
        assert_eq!(key, "upstream.urll");
        assert!(reason.contains("unknown field `urll`"), "{reason}");
    }

    #[test]
    fn a_wrong_shape_names_the_toml_shape_not_a_rust_type() {
        let (key, reason) = invalid("upstream = 3\n");
        assert_eq!(key, "upstream");
        assert!(reason.contains("expected a table"), "{reason}");
        assert!(!reason.contains("struct"), "{reason}");
        assert_eq!(
            for_people("invalid type: integer `3`, expected struct UpstreamFile"),
            "invalid type: integer `3`, expected a table"
        );
    }

    #[test]
    fn a_misspelt_log_level_is_refused() {
        let (key, reason) = invalid("[log]\nlevel = \"inof\"\n");
        assert_eq!(key, "log.level");
        assert!(reason.contains("\"inof\" is not a level"), "{reason}");
        for ok in [
            "info",
            "WARN",
            "info,access=debug",
            "pingora_core=warn",
            "off",
        ] {
            assert!(check_log_level(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn durations_that_may_be_zero() {
        let f = FileConfig::parse(
            "[limits]\ntunnel_idle_timeout = \"0\"\n[server]\ndrain_delay = \"0s\"\n",
            "t",
        )
        .unwrap();
        let s = f.validate("t").unwrap();
        assert_eq!(s.limits.tunnel_idle_timeout, None);
        assert_eq!(s.server.drain_delay, Duration::ZERO);
        let d = FileConfig::default().validate("d").unwrap();
        assert_eq!(
            d.limits.tunnel_idle_timeout,
            Some(Duration::from_secs(3600))
        );
        assert_eq!(
            invalid("[limits]\nkeepalive_timeout = \"0s\"").0,
            "limits.keepalive_timeout"
        );
    }

    #[test]
    fn wrong_type_is_named() {
        let (key, reason) = invalid("[upstream]\nverify_tls = \"yes\"\n");
        assert_eq!(key, "upstream.verify_tls");
        assert!(reason.contains("invalid type"), "{reason}");
    }

    #[test]
    fn bad_values_are_named() {
        let cases = [
            ("[upstream]\nurl = \"ftp://x\"", "upstream.url"),
            ("[upstream]\nurl = \"http://x/api\"", "upstream.url"),
            (
                "[upstream]\nconnect_timeout = \"soon\"",
                "upstream.connect_timeout",
            ),
            ("[upstream]\nread_timeout = \"0s\"", "upstream.read_timeout"),
            ("[upstream]\nmax_body_bytes = 0", "upstream.max_body_bytes"),
            ("[upstream]\nhost_header = \"both\"", "upstream.host_header"),
            ("[listen]\nhttp = [\"nowhere\"]", "listen.http[0]"),
            ("[listen]\nmetrics = \"1.2.3.4\"", "listen.metrics"),
            ("[listen]\nhttp = []", "listen"),
            (
                "[forwarding]\ntrusted_proxies = [\"10.0.0.0/8\", \"x\"]",
                "forwarding.trusted_proxies[1]",
            ),
            ("[onezone]\napi_prefix = \"api/\"", "onezone.api_prefix"),
            ("[server]\nthreads = 0", "server.threads"),
            ("[log]\nformat = \"xml\"", "log.format"),
            ("[deprecation]\ndate = \"2020\"", "deprecation.date"),
            ("[deprecation]\nsunset = \"2000-01-01T00:00:00Z\"", "deprecation.sunset"),
            ("[deprecation]\nrewrite_percent = 101", "deprecation.rewrite_percent"),
            ("[deprecation]\nmode = \"maybe\"", "deprecation.mode"),
            ("[deprecation]\ndocs_url = \"docs\"", "deprecation.docs_url"),
            ("[deprecation]\npublic_url = \"zone.example\"", "deprecation.public_url"),
            (
                "[deprecation]\nbrownouts = [{ start = \"2027-01-01T01:00:00Z\", end = \"2027-01-01T00:00:00Z\" }]",
                "deprecation.brownouts[0].end",
            ),
            ("[routes.no_such_operation]\nmode = \"reject\"", "routes.no_such_operation"),
            ("[routes.list_client_tokens]\nmodes = \"reject\"", "routes.list_client_tokens.modes"),
            (
                "[routes.list_client_tokens]\nsunset = \"2019-01-01T00:00:00Z\"",
                "routes.list_client_tokens.sunset",
            ),
            ("[routes.list_client_tokens]\nrewrite_percent = 200", "routes.list_client_tokens.rewrite_percent"),
            ("[deprecation]\nverify_percent = 101", "deprecation.verify_percent"),
            ("[routes.create_client_token]\nverify_percent = 300", "routes.create_client_token.verify_percent"),
            ("[reload]\ninterval = \"0s\"", "reload.interval"),
            ("[metrics]\nclient_header = \"bad header\"", "metrics.client_header"),
            ("[metrics]\nclients = [\"ok\", \"not ok\"]", "metrics.clients[1]"),
        ];
        for (text, want) in cases {
            let (key, _) = invalid(text);
            assert_eq!(key, want, "for {text:?}");
        }
    }

    #[test]
    fn route_overrides_inherit_the_defaults() {
        let s = FileConfig::parse(
            "[deprecation]\nsunset = \"2030-01-01T00:00:00Z\"\nrewrite_percent = 40\n\
             [routes.create_client_token]\nmode = \"reject\"\n",
            "t",
        )
        .unwrap()
        .validate("t")
        .unwrap();
        let p = &s.policies;
        let route = p.for_operation("create_client_token");
        assert_eq!(route.mode, Mode::Reject);
        assert_eq!(route.rewrite_percent, 40, "inherited");
        assert_eq!(route.sunset, p.default.sunset, "inherited");
        assert_eq!(p.for_operation("list_client_tokens"), &p.default);
    }

    #[test]
    fn tls_files_must_exist() {
        let (key, reason) = invalid(
            "[[listen.tls]]\naddress = \"127.0.0.1:8443\"\ncert = \"/nonexistent/c.pem\"\nkey = \"/nonexistent/k.pem\"\n",
        );
        assert_eq!(key, "listen.tls[0].cert");
        assert!(reason.contains("cannot read"), "{reason}");
    }

    #[test]
    fn upstream_is_typed() {
        let s = FileConfig::parse(
            "[upstream]\nurl = \"http://[::1]:9080\"\nhost_header = \"upstream\"\n[forwarding]\ntrusted_proxies = [\"10.1.2.3\", \"192.168.0.0/16\"]",
            "t",
        )
        .unwrap()
        .validate("t")
        .unwrap();
        assert!(!s.upstream.tls);
        assert_eq!(s.upstream.host, "::1");
        assert_eq!(s.upstream.port, 9080);
        assert_eq!(s.upstream.authority, "[::1]:9080");
        assert_eq!(s.upstream.host_header, HostPolicy::Upstream);
        assert_eq!(s.forwarding.trusted_proxies.len(), 2);
        assert_eq!(s.upstream.base_url(), "http://[::1]:9080");
    }

    #[test]
    fn overrides_replace_file_values() {
        let mut f = FileConfig::default();
        f.apply(&Overrides {
            listen: Some("127.0.0.1:1".into()),
            upstream: Some("http://127.0.0.1:2".into()),
            metrics_listen: Some("127.0.0.1:3".into()),
        });
        let s = f.validate("t").unwrap();
        assert_eq!(s.listen.http, vec!["127.0.0.1:1".parse().unwrap()]);
        assert_eq!(s.upstream.port, 2);
        assert_eq!(s.listen.metrics, Some("127.0.0.1:3".parse().unwrap()));
    }
}

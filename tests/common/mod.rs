//! Shared test harness: the real proxy binary on ephemeral loopback ports, a recording test
//! upstream, and a raw HTTP/1.1 client for requests a library client would normalise.
#![allow(dead_code, unreachable_pub)]

pub mod faults;
pub mod upstream;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_onezone-migration-proxy");

/// The binary the tests start: `OMP_BIN` names another build (to measure before and after a
/// change with the same tests); by default the one Cargo built.
pub fn bin() -> String {
    std::env::var("OMP_BIN").unwrap_or_else(|_| BIN.to_string())
}

/// Onezone's REST prefix, as the proxy and the stand-in use it by default.
pub const P: &str = "/api/v3/onezone";

/// A port that was free a moment ago (the proxy binds it itself).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A fresh scratch directory for one test.
pub fn scratch_dir(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "omp-test-{}-{}-{}",
        std::process::id(),
        tag,
        N.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// The proxy binary, running with a generated config until dropped.
pub struct Proxy {
    child: Child,
    pub addr: SocketAddr,
    pub metrics: SocketAddr,
    pub tls: Option<SocketAddr>,
    pub dir: PathBuf,
    /// The generated config without the builder's `extra` sections.
    base_config: String,
}

pub struct ProxyBuilder {
    upstream: String,
    extra: String,
    tls: bool,
    upstream_section: String,
    server_section: String,
    env: Vec<(String, String)>,
}

impl ProxyBuilder {
    /// Extra TOML appended to the generated config (whole sections).
    pub fn extra(mut self, toml: &str) -> Self {
        self.extra.push_str(toml);
        self.extra.push('\n');
        self
    }

    /// Extra keys for the `[upstream]` section.
    pub fn upstream_keys(mut self, toml: &str) -> Self {
        self.upstream_section.push_str(toml);
        self.upstream_section.push('\n');
        self
    }

    /// Extra keys for the `[server]` section (it already sets threads and a 1 s grace period).
    pub fn server_keys(mut self, toml: &str) -> Self {
        self.server_section.push_str(toml);
        self.server_section.push('\n');
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    pub fn tls(mut self) -> Self {
        self.tls = true;
        self
    }

    pub fn start(self) -> Proxy {
        let dir = scratch_dir("proxy");
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let metrics: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let tls = self.tls.then(|| {
            format!("127.0.0.1:{}", free_port())
                .parse::<SocketAddr>()
                .unwrap()
        });
        let mut config = format!("[listen]\nhttp = [\"{addr}\"]\nmetrics = \"{metrics}\"\n",);
        if let Some(t) = tls {
            config.push_str(&format!(
                "[[listen.tls]]\naddress = \"{t}\"\ncert = \"{}\"\nkey = \"{}\"\n",
                fixture("test-cert.pem").display(),
                fixture("test-key.pem").display()
            ));
        }
        config.push_str(&format!(
            "[upstream]\nurl = \"{}\"\n{}\n[server]\nthreads = 2\ngrace_period = \"1s\"\nshutdown_timeout = \"1s\"\n{}\n",
            self.upstream, self.upstream_section, self.server_section
        ));
        let config_path = dir.join("config.toml");
        std::fs::write(&config_path, format!("{config}{}", self.extra)).unwrap();
        let log = std::fs::File::create(dir.join("proxy.log")).unwrap();
        let child = Command::new(bin())
            .arg("--config")
            .arg(&config_path)
            .env("RUST_LOG", "info")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("proxy binary starts");
        let mut proxy = Proxy {
            child,
            addr,
            metrics,
            tls,
            dir,
            base_config: config,
        };
        proxy.wait_ready();
        proxy
    }
}

impl Proxy {
    pub fn builder(upstream_url: &str) -> ProxyBuilder {
        ProxyBuilder {
            upstream: upstream_url.to_string(),
            extra: String::new(),
            tls: false,
            upstream_section: String::new(),
            server_section: String::new(),
            env: Vec::new(),
        }
    }

    /// In front of a plain-HTTP upstream on `addr`.
    pub fn start(upstream: SocketAddr) -> Proxy {
        Proxy::builder(&format!("http://{upstream}")).start()
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut targets = vec![self.addr, self.metrics];
        targets.extend(self.tls);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("proxy exited early ({status}); log:\n{}", self.log());
            }
            let listening = targets
                .iter()
                .all(|a| TcpStream::connect_timeout(a, Duration::from_millis(100)).is_ok());
            // Healthy once its own listeners accept: the proxy says so on /healthz.
            if listening && self.healthy() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("proxy did not listen within 20 s; log:\n{}", self.log());
    }

    fn healthy(&self) -> bool {
        let Ok(mut s) = TcpStream::connect_timeout(&self.metrics, Duration::from_millis(100))
        else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        if s.write_all(b"GET /healthz HTTP/1.1\r\nHost: m\r\nConnection: close\r\n\r\n")
            .is_err()
        {
            return false;
        }
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
        buf.starts_with(b"HTTP/1.1 200")
    }

    /// Rewrites the config file with other extra sections (for reload tests).
    pub fn write_config(&self, extra: &str) {
        let text = format!("{}{extra}\n", self.base_config);
        std::fs::write(self.dir.join("config.toml"), text).unwrap();
    }

    /// The value of the sample `name` with exactly these labels (in any order), 0 when absent.
    pub fn sample(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        Scrape::take(self).value(name, labels)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the proxy has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("proxy.log")).unwrap_or_default()
    }

    /// A `/proc/<pid>/status` field in KiB, e.g. `VmRSS` or `VmHWM` (peak).
    pub fn memory_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find(|l| l.starts_with(&format!("{field}:")))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .expect("memory field")
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.pid().to_string()])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "kill -{sig} failed");
    }

    /// Waits for the process to exit on its own.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A reqwest client for plain HTTP/1.1 tests (no pooling surprises between tests).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// A raw HTTP/1.x answer.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }
}

/// Sends raw bytes and reads one answer until the server closes (send `Connection: close`).
pub fn raw_request(addr: SocketAddr, request: &[u8]) -> RawResponse {
    raw_request_within(addr, Duration::from_secs(15), request)
}

/// Like [`raw_request`], reading until the server closes or `wait` passes without data.
pub fn raw_request_within(addr: SocketAddr, wait: Duration, request: &[u8]) -> RawResponse {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(wait)).unwrap();
    s.write_all(request).expect("write");
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    parse_raw(&buf)
}

pub fn parse_raw(buf: &[u8]) -> RawResponse {
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(buf)));
    let head = String::from_utf8_lossy(&buf[..split]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    let raw_body = &buf[split + 4..];
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        dechunk(raw_body)
    } else {
        raw_body.to_vec()
    };
    RawResponse { status, head, body }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let line = std::str::from_utf8(&b[..eol]).unwrap();
        let size = usize::from_str_radix(line.split(';').next().unwrap().trim(), 16).unwrap();
        if size == 0 {
            break;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + size]);
        b = &b[eol + 2 + size + 2..];
    }
    out
}

/// Deterministic test bytes: the same generator on both ends of a streamed body.
pub fn pattern_byte(i: u64) -> u8 {
    (i.wrapping_mul(2_654_435_761) >> 13) as u8
}

/// A process's resident memory in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// One scrape of `/metrics`: every sample by name and labels.
pub struct Scrape(pub BTreeMap<(String, BTreeMap<String, String>), f64>);

impl Scrape {
    pub fn take(proxy: &Proxy) -> Scrape {
        let r = raw_request(
            proxy.metrics,
            b"GET /metrics HTTP/1.1\r\nHost: m\r\nConnection: close\r\n\r\n",
        );
        assert_eq!(r.status, 200);
        let mut samples = BTreeMap::new();
        for line in String::from_utf8(r.body).unwrap().lines() {
            if line.starts_with('#') || line.is_empty() {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').unwrap();
            let (name, labels) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let labels = labels
                .split("\",")
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap();
                    (k.to_string(), v.trim_matches('"').to_string())
                })
                .collect();
            samples.insert((name.to_string(), labels), value.parse().unwrap());
        }
        Scrape(samples)
    }

    /// The value of the series with exactly these labels (0 when absent).
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let want: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.0
            .get(&(name.to_string(), want))
            .copied()
            .unwrap_or(0.0)
    }

    /// The sum of every series of `name` that has these labels (and any others).
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.0
            .iter()
            .filter(|((n, l), _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|(_, v)| v)
            .sum()
    }

    pub fn series(&self) -> usize {
        self.0.len()
    }

    pub fn text(&self) -> String {
        format!("{:?}", self.0)
    }
}

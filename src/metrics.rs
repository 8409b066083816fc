//! Prometheus metrics, served on the admin listener at `/metrics`.
//!
//! One registry for the process. Every label comes from a bounded set (operationIds, modes,
//! outcome names, status classes, standard methods, allow-listed clients), never an id, a token
//! or a raw path. The proxy records a request's metrics once, in its `logging` phase.

use std::sync::OnceLock;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// OpenTelemetry's advised buckets for `http.server.request.duration`, in seconds.
pub(crate) const OTEL_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// Finer buckets for the tokens-API calls the proxy makes (loopback-fast to slow).
const CALL_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

pub(crate) struct Metrics {
    registry: Registry,
    /// Deprecated operations: `route`, `mode`, `outcome`, `status_class`, `client`.
    pub legacy_requests: IntCounterVec,
    /// Whole legacy answers: `route`, `mode`.
    pub legacy_duration: HistogramVec,
    /// Tokens-API calls made by the proxy: `call`.
    pub upstream_call_duration: HistogramVec,
    /// Ordinary pass-through calls: `method`, `status_class`.
    pub passthrough_requests: IntCounterVec,
    /// Every request, OpenTelemetry `http.server.request.duration`: `http_request_method`, `http_route`.
    pub server_duration: HistogramVec,
    /// `reason`: connect, timeout, reset, bad_body, too_large, tls, other.
    pub upstream_failures: IntCounterVec,
    /// `result`: success, failure.
    pub config_reloads: IntCounterVec,
    /// 1 when the config on disk changed settings that only a restart applies.
    pub restart_required: IntGauge,
    pub in_flight: IntGauge,
    /// Caller resolution: `result` hit, miss, shared (joined a look-up already in flight).
    pub caller_cache: IntCounterVec,
    /// Client connections the proxy closed: `reason` keepalive_timeout, header_timeout.
    pub connections_closed: IntCounterVec,
    /// `verify` checks: `route`, `result` (match, mismatch, unverifiable, error, dropped) and
    /// `field` (the first field that differed, from `verify::FIELDS`; `none` otherwise).
    pub verify_checks: IntCounterVec,
    /// `verify` checks queued or running.
    pub verify_pending: IntGauge,
}

// Metric definitions are constants of this file; a failure here is a programming error.
fn register<T: prometheus::core::Collector + Clone + 'static>(registry: &Registry, metric: T) -> T {
    registry
        .register(Box::new(metric.clone()))
        .unwrap_or_else(|e| panic!("metric registration: {e}"));
    metric
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels)
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    register(registry, c)
}

fn histogram(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: &[f64],
) -> HistogramVec {
    let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
    let h = HistogramVec::new(opts, labels).unwrap_or_else(|e| panic!("metric {name}: {e}"));
    register(registry, h)
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).unwrap_or_else(|e| panic!("metric {name}: {e}"));
    register(registry, g)
}

impl Metrics {
    fn new() -> Metrics {
        let r = Registry::new();
        let build = IntGaugeVec::new(
            Opts::new("migproxy_build_info", "Build information; always 1."),
            &["version"],
        )
        .unwrap_or_else(|e| panic!("build info: {e}"));
        register(&r, build.clone())
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        Metrics {
            legacy_requests: counter(
                &r,
                "migproxy_legacy_requests_total",
                "Calls to deprecated Onezone operations, by operation, mode taken, outcome, status class and client.",
                &["route", "mode", "outcome", "status_class", "client"],
            ),
            legacy_duration: histogram(
                &r,
                "migproxy_legacy_request_duration_seconds",
                "Time to answer a deprecated operation, by operation and mode.",
                &["route", "mode"],
                &OTEL_BUCKETS,
            ),
            upstream_call_duration: histogram(
                &r,
                "migproxy_upstream_call_duration_seconds",
                "Tokens-API calls the proxy made to Onezone, by call.",
                &["call"],
                &CALL_BUCKETS,
            ),
            passthrough_requests: counter(
                &r,
                "migproxy_passthrough_requests_total",
                "Ordinary calls passed through to Onezone, by method and status class.",
                &["method", "status_class"],
            ),
            server_duration: histogram(
                &r,
                "http_server_request_duration_seconds",
                "Duration of HTTP server requests (OpenTelemetry http.server.request.duration).",
                &["http_request_method", "http_route"],
                &OTEL_BUCKETS,
            ),
            upstream_failures: counter(
                &r,
                "migproxy_upstream_failures_total",
                "Failures talking to Onezone, by reason.",
                &["reason"],
            ),
            config_reloads: counter(
                &r,
                "migproxy_config_reloads_total",
                "Configuration reloads by result.",
                &["result"],
            ),
            restart_required: gauge(
                &r,
                "migproxy_config_restart_required",
                "1 when the config on disk changed settings that need a restart to apply.",
            ),
            in_flight: gauge(&r, "migproxy_in_flight_requests", "Requests being served."),
            caller_cache: counter(
                &r,
                "migproxy_caller_cache_total",
                "Caller resolutions answered from the per-replica cache (hit) or by Onezone (miss).",
                &["result"],
            ),
            connections_closed: counter(
                &r,
                "migproxy_connections_closed_total",
                "Client connections the proxy closed: idle past limits.keepalive_timeout, or a request head not complete within limits.header_timeout.",
                &["reason"],
            ),
            verify_checks: counter(
                &r,
                "migproxy_verify_total",
                "Checks of the rewrite against Onezone's own answers (mode verify), by result and the field that differed.",
                &["route", "result", "field"],
            ),
            verify_pending: gauge(
                &r,
                "migproxy_verify_pending",
                "Verify checks queued or running.",
            ),
            registry: r,
        }
    }

    /// The Prometheus text exposition of every metric.
    pub(crate) fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!(error = %e, "cannot encode metrics");
        }
        out
    }
}

/// The process-wide metrics.
pub(crate) fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

/// `2xx` .. `5xx`, or `none` when no answer was sent.
pub(crate) fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "none",
    }
}

/// The method as a bounded label: standard methods as they are, anything else `_OTHER`.
pub(crate) fn method_label(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "PATCH" => "PATCH",
        "OPTIONS" => "OPTIONS",
        "CONNECT" => "CONNECT",
        "TRACE" => "TRACE",
        _ => "_OTHER",
    }
}

/// The `client` label: the product token of the header (`curl` of `curl/8.1`), when it is on
/// the allow-list (matched without case, labelled as listed), else `other`.
pub(crate) fn client_label<'a>(header: Option<&str>, allowed: &'a [String]) -> &'a str {
    let product = header
        .and_then(|h| h.split_whitespace().next())
        .map(|p| p.split('/').next().unwrap_or(p));
    product
        .and_then(|p| allowed.iter().find(|a| a.eq_ignore_ascii_case(p)))
        .map_or("other", String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_stay_bounded() {
        let allowed = vec!["curl".to_string(), "onezone-rest-cli".to_string()];
        assert_eq!(client_label(Some("curl/8.1.2"), &allowed), "curl");
        assert_eq!(client_label(Some("CURL/7"), &allowed), "curl");
        assert_eq!(
            client_label(Some("onezone-rest-cli/21.02 (linux)"), &allowed),
            "onezone-rest-cli"
        );
        assert_eq!(client_label(Some("my-secret-token/1"), &allowed), "other");
        assert_eq!(client_label(Some(""), &allowed), "other");
        assert_eq!(client_label(None, &allowed), "other");
        assert_eq!(method_label("BREW"), "_OTHER");
        assert_eq!(status_class(204), "2xx");
        assert_eq!(status_class(0), "none");
    }

    #[test]
    fn every_family_renders() {
        let m = metrics();
        m.legacy_requests
            .with_label_values(&["r", "rewrite", "success", "2xx", "other"])
            .inc();
        let text = String::from_utf8(m.render()).unwrap();
        assert!(text.contains("migproxy_build_info{version="));
        assert!(text.contains("migproxy_legacy_requests_total{"));
    }
}

//! Prometheus metrics, served on the admin listener at `/metrics`.
//!
//! One registry for the process; every label is from a bounded set (route templates, modes,
//! outcome names, status classes, allow-listed clients), never an id, token or raw path.

use std::sync::OnceLock;

use prometheus::{Encoder, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};

pub struct Metrics {
    registry: Registry,
    /// Config reloads by result: `success`, `failure`.
    pub config_reloads: IntCounterVec,
    /// 1 when the loaded config changed settings that only a restart applies.
    pub restart_required: IntGauge,
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels)
        .unwrap_or_else(|e| panic!("metric {name} is malformed: {e}"));
    registry
        .register(Box::new(c.clone()))
        .unwrap_or_else(|e| panic!("metric {name} registered twice: {e}"));
    c
}

impl Metrics {
    fn new() -> Metrics {
        let registry = Registry::new();
        let build = IntCounterVec::new(
            Opts::new(
                "migproxy_build_info",
                "Build information; the value is always 1.",
            ),
            &["version"],
        )
        .unwrap_or_else(|e| panic!("build info: {e}"));
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).inc();
        registry
            .register(Box::new(build))
            .unwrap_or_else(|e| panic!("build info: {e}"));
        let restart_required = IntGauge::new(
            "migproxy_config_restart_required",
            "1 when the config on disk changed settings that need a restart to apply.",
        )
        .unwrap_or_else(|e| panic!("restart gauge: {e}"));
        registry
            .register(Box::new(restart_required.clone()))
            .unwrap_or_else(|e| panic!("restart gauge: {e}"));
        Metrics {
            config_reloads: counter(
                &registry,
                "migproxy_config_reloads_total",
                "Configuration reloads by result.",
                &["result"],
            ),
            restart_required,
            registry,
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!(error = %e, "cannot encode metrics");
        }
        out
    }
}

/// The process-wide metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

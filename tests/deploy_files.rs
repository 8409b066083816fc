//! The dashboard and the alert rules are built on metrics the proxy really exports: every
//! metric name they query appears in `/metrics` after a scripted mix of calls.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{client, raw_request, Proxy};
use onezone_standin::{demo::*, StandIn, World};

use common::P;

/// Metric names (our prefixes) mentioned in a text, with histogram suffixes removed.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for prefix in ["migproxy_", "http_server_"] {
        for (i, _) in text.match_indices(prefix) {
            let before = text[..i].chars().last();
            if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                continue;
            }
            let name: String = text[i..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let base = ["_bucket", "_count", "_sum"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(&name);
            // A bare prefix is a pattern (`migproxy_.*`), not a name.
            if base.len() > prefix.len() {
                names.insert(base.to_string());
            }
        }
    }
    names
}

fn exprs(v: &serde_json::Value, out: &mut String) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                if k == "expr" {
                    out.push_str(v.as_str().unwrap_or_default());
                    out.push('\n');
                }
                exprs(v, out);
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| exprs(v, out)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_and_alerts_query_only_exported_metrics() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy");
    let dashboard = std::fs::read_to_string(root.join("grafana/onezone-migration-proxy.json"))
        .expect("the dashboard exists");
    let dashboard: serde_json::Value =
        serde_json::from_str(&dashboard).expect("the dashboard is JSON");
    let mut queried = String::new();
    exprs(&dashboard, &mut queried);
    let mut wanted = metric_names(&queried);
    assert!(!wanted.is_empty(), "the dashboard queries our metrics");
    let alerts =
        std::fs::read_to_string(root.join("prometheus/alerts.yml")).expect("alert rules exist");
    wanted.extend(metric_names(&alerts));

    // A mix that makes every metric family appear.
    let zone = StandIn::start(World::demo()).await.unwrap();
    let proxy = Proxy::builder(&format!("http://{}", zone.addr()))
        .extra("[routes.get_user_space_alias]\nmode = \"reject\"")
        .extra("[routes.list_client_tokens]\nmode = \"verify\"")
        .start();
    let c = client();
    c.post(proxy.url(&format!("{P}/groups/{GROUP_ID}/users/token")))
        .header("x-auth-token", ALICE_TOKEN)
        .send()
        .await
        .unwrap();
    c.get(proxy.url(&format!("{P}/user/spaces/{SPACE_ID}/alias")))
        .send()
        .await
        .unwrap();
    c.get(proxy.url(&format!("{P}/configuration")))
        .send()
        .await
        .unwrap();
    // A verified call (this stand-in has no legacy code: Onezone's 404 differs).
    c.get(proxy.url(&format!("{P}/user/client_tokens")))
        .header("x-auth-token", ALICE_TOKEN)
        .send()
        .await
        .unwrap();
    raw_request(
        proxy.metrics,
        b"GET /readyz HTTP/1.1\r\nHost: m\r\nConnection: close\r\n\r\n",
    );
    proxy.write_config("");
    proxy.signal("HUP");
    zone.shutdown().await;
    c.get(proxy.url(&format!("{P}/configuration")))
        .send()
        .await
        .unwrap();

    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = raw_request(
            proxy.metrics,
            b"GET /metrics HTTP/1.1\r\nHost: m\r\nConnection: close\r\n\r\n",
        );
        let exported = metric_names(&String::from_utf8_lossy(&r.body));
        let missing: Vec<_> = wanted.difference(&exported).collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "queried but not exported: {missing:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

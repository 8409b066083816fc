//! The admin listener (`listen.metrics`): Prometheus metrics, liveness and readiness, and the
//! replica's table of legacy callers.

use std::sync::Arc;

use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

use crate::callers::CallerTable;
use crate::legacy::Legacy;
use crate::lifecycle::Lifecycle;
use crate::onezone::client::{Call, Forwarded};

pub(crate) struct Admin {
    legacy: Arc<Legacy>,
    life: Arc<Lifecycle>,
    callers: Arc<CallerTable>,
}

impl Admin {
    pub(crate) fn new(
        legacy: Arc<Legacy>,
        life: Arc<Lifecycle>,
        callers: Arc<CallerTable>,
    ) -> Admin {
        Admin {
            legacy,
            life,
            callers,
        }
    }

    /// Ready when Onezone answers its public `GET /configuration`.
    async fn upstream_ready(&self) -> bool {
        let call = Call::get("readiness", "/configuration");
        matches!(
            self.legacy.client.call(&call, &Forwarded::default()).await,
            Ok(reply) if reply.status == 200
        )
    }
}

fn reply(status: u16, content_type: &str, body: Vec<u8>) -> Response<Vec<u8>> {
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, content_type)
        .header(http::header::CONTENT_LENGTH, body.len())
        .body(body)
        .unwrap_or_default()
}

#[async_trait]
impl ServeHttp for Admin {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let path = session.req_header().uri.path().to_string();
        let json = "application/json";
        match path.as_str() {
            "/metrics" => reply(
                200,
                "text/plain; version=0.0.4; charset=utf-8",
                crate::metrics::metrics().render(),
            ),
            // Who still calls, on this replica since it started (`onezone-migration-proxy
            // report --from` merges the replicas).
            "/legacy/callers" => reply(200, json, self.callers.snapshot().to_string().into_bytes()),
            // Alive means serving: not before every proxy listener accepts connections.
            "/healthz" if !self.life.is_listening() => {
                reply(503, json, br#"{"status":"starting"}"#.to_vec())
            }
            "/healthz" => reply(200, json, br#"{"status":"ok"}"#.to_vec()),
            "/readyz" if !self.life.is_listening() => {
                reply(503, json, br#"{"status":"starting"}"#.to_vec())
            }
            // From SIGTERM on, so that the load balancer stops sending new requests.
            "/readyz" if self.life.is_draining() => {
                reply(503, json, br#"{"status":"draining"}"#.to_vec())
            }
            "/readyz" => {
                if self.upstream_ready().await {
                    reply(200, json, br#"{"status":"ready"}"#.to_vec())
                } else {
                    reply(503, json, br#"{"status":"upstream unavailable"}"#.to_vec())
                }
            }
            _ => reply(404, json, br#"{"status":"not found"}"#.to_vec()),
        }
    }
}

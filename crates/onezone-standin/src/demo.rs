//! The fixture used by the `demo` command and most tests, with fixed ids and credentials.
//!
//! - alice ([`ALICE_ID`], "Alice Admin"): access token [`ALICE_TOKEN`], Basic auth
//!   [`ALICE_BASIC`]; a member of the demo group, space, harvester and cluster with every
//!   member privilege there, so she may invite anyone (with custom privileges too). No
//!   Onezone admin privileges.
//! - bob ([`BOB_ID`]): access token [`BOB_TOKEN`]; a member of nothing, no privileges. He can
//!   still create access tokens and (the registration policy being open) a Oneprovider
//!   registration token for himself.
//! - a Oneprovider ([`PROVIDER_ID`]): access token [`PROVIDER_TOKEN`]; owns the cluster
//!   [`CLUSTER_ID`] (the same id), so it may invite users and groups to it.
//! - the special cluster [`ONEZONE_CLUSTER_ID`], with no members.

use super::world::{Kind, World};

pub const DOMAIN: &str = "onezone.local";

pub const ALICE_ID: &str = "18afc0189cd9da6cd0ddb2bf793f1467";
pub const ALICE_NAME: &str = "Alice Admin";
pub const ALICE_TOKEN: &str = "MDAx74tdp0rAQL30MYuLWFMSqLsuXMHsSXd5AT5dMAzEfx1WZnTmYaQBpWhPFHqV";
/// Basic auth login (also her username) and password.
pub const ALICE_BASIC: (&str, &str) = ("alice", "password");

pub const BOB_ID: &str = "142fe536f5ab84e88799fff9f127ee16";
pub const BOB_NAME: &str = "Bob Plain";
pub const BOB_TOKEN: &str = "MDAxQFYmtGRTSGZGorrkyZnpc7uA9hL5mrgx0Cpu5bBtdM3fQY7vFbd6TVm3oSBq";

pub const PROVIDER_ID: &str = "ce11f42907072969d87a89437c0153ea";
pub const PROVIDER_NAME: &str = "Demo Oneprovider";
pub const PROVIDER_TOKEN: &str = "MDAxHw007YFaSzbLhix8g00OxrUWwbcSNB14AdwvR4kZFwQx9mNz56p1XbJLxzC1";
/// The Oneprovider's cluster: in Onezone a cluster has the id of the Oneprovider owning it.
pub const CLUSTER_ID: &str = PROVIDER_ID;
/// Onezone's own cluster, present in every world.
pub const ONEZONE_CLUSTER_ID: &str = "onezone";

pub const GROUP_ID: &str = "17c7de8de3aac2234b4a7c749ce87d4f";
pub const GROUP_NAME: &str = "Demo Group";
pub const SPACE_ID: &str = "b70da5ad3a45ed3cade0227b73260ab5";
pub const SPACE_NAME: &str = "Demo Space";
pub const HARVESTER_ID: &str = "a94b178b8a69dacb817231c7accfc53e";
pub const HARVESTER_NAME: &str = "Demo Harvester";

impl World {
    /// The demo world described in [this module](self).
    pub fn demo() -> World {
        let mut world = World::new(DOMAIN);
        world
            .add_user(ALICE_ID, ALICE_NAME)
            .user_access_token(ALICE_ID, ALICE_TOKEN)
            .user_basic_auth(ALICE_ID, ALICE_BASIC.0, ALICE_BASIC.1)
            .add_user(BOB_ID, BOB_NAME)
            .user_access_token(BOB_ID, BOB_TOKEN)
            .add_provider(PROVIDER_ID, PROVIDER_NAME, PROVIDER_TOKEN)
            .add_group(GROUP_ID, GROUP_NAME)
            .add_space(SPACE_ID, SPACE_NAME)
            .add_harvester(HARVESTER_ID, HARVESTER_NAME)
            .grant(GROUP_ID, ALICE_ID, Kind::Group.privileges())
            .grant(SPACE_ID, ALICE_ID, Kind::Space.privileges())
            .grant(HARVESTER_ID, ALICE_ID, Kind::Harvester.privileges())
            .grant(CLUSTER_ID, ALICE_ID, Kind::Cluster.privileges());
        world
    }
}

/// The fixture as JSON, for scripts (the benchmark) that need its credentials and ids without
/// reading Rust source.
pub fn fixture_json() -> String {
    serde_json::json!({
        "api_prefix": super::API_PREFIX,
        "alice_id": ALICE_ID,
        "alice_token": ALICE_TOKEN,
        "bob_token": BOB_TOKEN,
        "provider_token": PROVIDER_TOKEN,
        "group_id": GROUP_ID,
        "space_id": SPACE_ID,
        "cluster_id": CLUSTER_ID,
    })
    .to_string()
}

/// Starts the demo stand-in on its own thread and runtime (the caller's thread is free for
/// Pingora) on an ephemeral loopback port, and returns its address. It serves until the
/// process exits.
pub fn spawn() -> std::io::Result<std::net::SocketAddr> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("onezone-standin".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            };
            rt.block_on(async move {
                match super::StandIn::start(World::demo()).await {
                    Ok(s) => {
                        let _ = tx.send(Ok(s.addr()));
                        // Keep the stand-in serving until the process exits.
                        let _serving = s;
                        std::future::pending::<()>().await
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                    }
                }
            });
        })?;
    rx.recv()
        .unwrap_or_else(|_| Err(std::io::Error::other("the Onezone stand-in did not start")))
}

/// The demo's instructions: curl commands against the proxy at `proxy` (with the API prefix
/// `prefix`), its admin listener at `metrics`, in front of the stand-in at `standin`.
pub fn curl_commands(proxy: &str, metrics: &str, standin: &str, prefix: &str) -> String {
    let base = format!("http://{proxy}{prefix}");
    let (user, password) = ALICE_BASIC;
    format!(
        r#"
Onezone stand-in on http://{standin}, onezone-migration-proxy on http://{proxy}
(metrics and health on http://{metrics}). Try, in another terminal:

# An ordinary call, passed through untouched:
curl -s {base}/configuration

# A legacy group invite, served through the tokens API (200 {{"token": ...}}):
curl -s -X POST -H 'X-Auth-Token: {ALICE_TOKEN}' {base}/groups/{GROUP_ID}/users/token

# The same as a user without the privilege (403 forbidden), and with no credential (401):
curl -s -X POST -H 'X-Auth-Token: {BOB_TOKEN}' {base}/groups/{GROUP_ID}/users/token
curl -s -X POST {base}/groups/{GROUP_ID}/users/token

# A Oneprovider inviting a user to its own cluster:
curl -s -X POST -H 'X-Auth-Token: {PROVIDER_TOKEN}' {base}/clusters/{CLUSTER_ID}/users/token

# Legacy client tokens: create one (Basic auth), list them:
curl -s -X POST -u {user}:{password} {base}/user/client_tokens
curl -s -H 'X-Auth-Token: {ALICE_TOKEN}' {base}/user/client_tokens

# What the tokens API holds now:
curl -s -H 'X-Auth-Token: {ALICE_TOKEN}' {base}/user/tokens/named

# Health:
curl -s http://{metrics}/readyz

Ctrl-C stops the demo.
"#
    )
}

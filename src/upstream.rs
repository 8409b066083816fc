//! The upstream Onezone as Pingora sees it: one [`HttpPeer`] template shared by the pass-through
//! path and the tokens-API client, so both use the same address, TLS, SNI and timeouts.

use std::net::SocketAddr;

use pingora::upstreams::peer::HttpPeer;

use crate::config::{HostPolicy, Upstream};

/// Builds the peer for the resolved upstream address.
pub(crate) fn peer(up: &Upstream, addr: SocketAddr) -> HttpPeer {
    let mut peer = HttpPeer::new(addr, up.tls, up.sni.clone());
    let o = &mut peer.options;
    o.connection_timeout = Some(up.connect_timeout);
    o.total_connection_timeout = Some(up.connect_timeout);
    o.read_timeout = Some(up.read_timeout);
    o.write_timeout = Some(up.read_timeout);
    o.idle_timeout = Some(up.idle_timeout);
    o.verify_cert = up.verify_tls;
    o.verify_hostname = up.verify_tls;
    // A custom CA is installed connector-wide through ServerConf::ca_file (see server.rs),
    // which, unlike the per-peer CA, loads every certificate of the PEM bundle.
    peer
}

/// The `Host` value the upstream should see, or `None` to keep the client's.
pub(crate) fn host_override(up: &Upstream) -> Option<&str> {
    match up.host_header {
        HostPolicy::Client => None,
        HostPolicy::Upstream => Some(&up.authority),
    }
}

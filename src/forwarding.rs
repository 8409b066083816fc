//! `X-Forwarded-For` and `X-Forwarded-Proto` for the upstream, per the trusted-proxy list.
//!
//! A peer on the list (a load balancer) has its forwarding headers kept and the peer appended;
//! anyone else could have forged them, so they are replaced by what the proxy itself saw.

use std::net::IpAddr;

use ipnet::IpNet;

pub(crate) const X_FORWARDED_FOR: &str = "x-forwarded-for";
pub(crate) const X_FORWARDED_PROTO: &str = "x-forwarded-proto";

/// The forwarding header values to send upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ForwardingHeaders {
    pub forwarded_for: String,
    /// `http` or `https`.
    pub forwarded_proto: &'static str,
}

pub(crate) fn is_trusted(peer: IpAddr, trusted: &[IpNet]) -> bool {
    let peer = match peer {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(peer, IpAddr::V4),
        v4 => v4,
    };
    trusted.iter().any(|net| net.contains(&peer))
}

/// `existing_for` / `existing_proto` are the client's headers (all lines joined with ", ").
pub(crate) fn forwarding_headers(
    peer: Option<IpAddr>,
    tls: bool,
    existing_for: Option<&str>,
    existing_proto: Option<&str>,
    trusted: &[IpNet],
) -> ForwardingHeaders {
    let own_proto = if tls { "https" } else { "http" };
    let Some(peer) = peer else {
        // A Unix-socket peer: nothing to add, nothing to trust.
        return ForwardingHeaders {
            forwarded_for: String::new(),
            forwarded_proto: own_proto,
        };
    };
    let trusted = is_trusted(peer, trusted);
    let forwarded_for = match existing_for.map(str::trim).filter(|v| !v.is_empty()) {
        Some(chain) if trusted => format!("{chain}, {peer}"),
        _ => peer.to_string(),
    };
    let forwarded_proto = match existing_proto.map(str::trim) {
        Some("http") if trusted => "http",
        Some("https") if trusted => "https",
        _ => own_proto,
    };
    ForwardingHeaders {
        forwarded_for,
        forwarded_proto,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(n: &[&str]) -> Vec<IpNet> {
        n.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn untrusted_peers_cannot_forge() {
        let h = forwarding_headers(
            Some("203.0.113.7".parse().unwrap()),
            false,
            Some("1.2.3.4"),
            Some("https"),
            &nets(&["10.0.0.0/8"]),
        );
        assert_eq!(h.forwarded_for, "203.0.113.7");
        assert_eq!(h.forwarded_proto, "http");
    }

    #[test]
    fn trusted_peers_are_appended() {
        let h = forwarding_headers(
            Some("10.1.2.3".parse().unwrap()),
            false,
            Some("198.51.100.1, 10.9.9.9"),
            Some("https"),
            &nets(&["10.0.0.0/8"]),
        );
        assert_eq!(h.forwarded_for, "198.51.100.1, 10.9.9.9, 10.1.2.3");
        assert_eq!(h.forwarded_proto, "https");
        let none = forwarding_headers(
            Some("10.1.2.3".parse().unwrap()),
            true,
            None,
            None,
            &nets(&["10.0.0.0/8"]),
        );
        assert_eq!(none.forwarded_for, "10.1.2.3");
        assert_eq!(none.forwarded_proto, "https");
    }

    #[test]
    fn mapped_v4_addresses_match_v4_ranges() {
        assert!(is_trusted(
            "::ffff:10.0.0.1".parse().unwrap(),
            &nets(&["10.0.0.0/8"])
        ));
        assert!(!is_trusted("::1".parse().unwrap(), &nets(&["127.0.0.0/8"])));
    }
}

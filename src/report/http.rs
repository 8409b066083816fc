//! A blocking HTTP/1.1 GET of the admin listener's JSON: `Connection: close`, one deadline for
//! the whole exchange. Plain http only: the admin listener has no TLS.

use std::time::Duration;

use pingora::connectors::http::Connector;
use pingora::http::RequestHeader;
use pingora::upstreams::peer::HttpPeer;

/// A larger answer is refused.
const MAX_ANSWER: usize = 64 << 20;

/// An `http://host[:port][/path]` URL.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Url {
    /// `host[:port]` as written, for the `Host` header.
    authority: String,
    /// `host:port`, to connect to.
    address: String,
    pub(crate) path: String,
}

impl Url {
    /// Parses an admin URL; `path` is the given one (default `/`).
    pub(crate) fn parse(url: &str) -> Result<Url, String> {
        let scheme_end = url.find("://").map_or(0, |i| i + 3);
        let scheme = url[..scheme_end].to_ascii_lowercase();
        if scheme == "https://" {
            return Err(format!(
                "{url}: https is not supported: the report reads the admin listener over plain \
                 http (http://host:port)"
            ));
        }
        if scheme != "http://" {
            return Err(format!("{url}: not an http://host:port URL"));
        }
        let rest = &url[scheme_end..];
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        if authority.contains('@') {
            // Not echoed: it would print the credentials.
            return Err("an admin URL must not carry credentials (user:password@)".into());
        }
        if authority.is_empty() {
            return Err(format!("{url}: no host"));
        }
        let has_port = match authority.rfind(']') {
            Some(bracket) => authority[bracket..].contains(':'),
            None => authority.contains(':'),
        };
        let address = match has_port {
            true => authority.to_string(),
            false => format!("{authority}:80"),
        };
        let path = tail.split(['?', '#']).next().unwrap_or("");
        Ok(Url {
            authority: authority.to_string(),
            address,
            path: if path.is_empty() {
                "/".into()
            } else {
                path.into()
            },
        })
    }

    /// The same host with another path.
    pub(crate) fn with_path(&self, path: &str) -> Url {
        Url {
            authority: self.authority.clone(),
            address: self.address.clone(),
            path: path.to_string(),
        }
    }
}

/// `GET url`, within `timeout` in all: the status and the body. The exchange is Pingora's
/// HTTP/1 client, the one the proxy uses for Onezone (framing, chunked bodies, an answer
/// without a length), on a runtime of its own: the report is a blocking command.
pub(crate) fn get(url: &Url, timeout: Duration) -> Result<(u16, Vec<u8>), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?;
    runtime.block_on(async {
        tokio::time::timeout(timeout, fetch(url))
            .await
            .map_err(|_| format!("no complete answer within {} s", timeout.as_secs()))?
    })
}

async fn fetch(url: &Url) -> Result<(u16, Vec<u8>), String> {
    let address = tokio::net::lookup_host(&url.address)
        .await
        .map_err(|e| format!("cannot resolve {}: {e}", url.authority))?
        .next()
        .ok_or_else(|| format!("{} resolves to no address", url.authority))?;
    let peer = HttpPeer::new(address, false, String::new());
    let (mut session, _) = Connector::new(None)
        .get_http_session(&peer)
        .await
        .map_err(|e| format!("cannot connect to {address}: {e}"))?;
    let failed = |e: Box<pingora::Error>| e.to_string();
    let mut request = RequestHeader::build("GET", url.path.as_bytes(), None).map_err(failed)?;
    for (name, value) in [
        ("Host", url.authority.as_str()),
        ("Accept", "application/json"),
        ("User-Agent", "onezone-migration-proxy-report"),
        ("Connection", "close"),
    ] {
        request.insert_header(name, value).map_err(failed)?;
    }
    session
        .write_request_header(Box::new(request))
        .await
        .map_err(failed)?;
    session.finish_request_body().await.map_err(failed)?;
    session.read_response_header().await.map_err(failed)?;
    let status = session.response_header().map_or(0, |h| h.status.as_u16());
    let mut body = Vec::new();
    while let Some(chunk) = session.read_response_body().await.map_err(failed)? {
        if body.len() + chunk.len() > MAX_ANSWER {
            return Err(format!("answer larger than {} MiB", MAX_ANSWER >> 20));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((status, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let url = Url::parse("http://10.0.0.5:9090").unwrap();
        assert_eq!(
            (url.address.as_str(), url.path.as_str()),
            ("10.0.0.5:9090", "/")
        );
        let url = Url::parse("HTTP://admin.local/base/?x=1").unwrap();
        assert_eq!(
            (url.address.as_str(), url.path.as_str()),
            ("admin.local:80", "/base/")
        );
        let url = Url::parse("http://[::1]:9090/").unwrap();
        assert_eq!(url.address, "[::1]:9090");
        assert_eq!(Url::parse("http://[::1]").unwrap().address, "[::1]:80");
        let https = Url::parse("https://10.0.0.5:9090").unwrap_err();
        assert!(https.contains("https is not supported"), "{https}");
        let creds = Url::parse("http://me:secret@10.0.0.5:9090").unwrap_err();
        assert!(!creds.contains("secret"), "{creds}");
        assert!(Url::parse("ftp://x").is_err());
        assert!(Url::parse("http:///legacy").is_err());
    }
}

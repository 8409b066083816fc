//! A minimal blocking HTTP/1.1 GET over a plain TCP connection, enough to read the admin
//! listener's JSON: `Connection: close`, one deadline for the whole exchange, a `200` answer
//! with a `Content-Length`, a chunked body or a body up to the end of the connection.
//! Plain http only: the admin listener has no TLS.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// A larger answer is refused.
const MAX_ANSWER: usize = 64 << 20;
/// Longer headers are refused.
const MAX_HEAD: usize = 64 << 10;

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

/// `GET url`, within `timeout` in all: the status and the body.
pub(crate) fn get(url: &Url, timeout: Duration) -> Result<(u16, Vec<u8>), String> {
    let deadline = Instant::now() + timeout;
    let left = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| format!("no complete answer within {} s", timeout.as_secs()))
    };
    let addresses = url
        .address
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {}: {e}", url.authority))?;
    let mut failure = format!("{} resolves to no address", url.authority);
    let mut stream = None;
    for address in addresses {
        match TcpStream::connect_timeout(&address, left()?) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => failure = format!("cannot connect to {address}: {e}"),
        }
    }
    let mut stream = stream.ok_or(failure)?;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nAccept: application/json\r\n\
         User-Agent: onezone-migration-proxy-report\r\nConnection: close\r\n\r\n",
        url.path, url.authority
    );
    let io = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
            format!("no complete answer within {} s", timeout.as_secs())
        }
        _ => e.to_string(),
    };
    stream.set_write_timeout(Some(left()?)).map_err(io)?;
    stream.write_all(request.as_bytes()).map_err(io)?;
    let mut answer = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    // Once the headers are in: where the body starts and, with a Content-Length, its end.
    let mut body_end: Option<Option<usize>> = None;
    loop {
        stream.set_read_timeout(Some(left()?)).map_err(io)?;
        let n = stream.read(&mut chunk).map_err(io)?;
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&chunk[..n]);
        if answer.len() > MAX_ANSWER {
            return Err(format!("answer larger than {} MiB", MAX_ANSWER >> 20));
        }
        if body_end.is_none() {
            if let Some((start, Ok(head))) = head(&answer) {
                body_end = Some(head.length.filter(|_| !head.chunked).map(|n| start + n));
            } else if answer.len() > MAX_HEAD {
                return Err(format!(
                    "no end of headers in the first {} KiB",
                    MAX_HEAD >> 10
                ));
            }
        }
        // A server that keeps the connection open anyway: stop at the announced length.
        if matches!(body_end, Some(Some(end)) if answer.len() >= end) {
            break;
        }
    }
    match parse(&answer) {
        None => Err("the connection closed before the end of the headers".into()),
        Some(Err(e)) => Err(e),
        Some(Ok((status, body, true))) => Ok((status, body)),
        Some(Ok((_, _, false))) => Err("the connection closed before the end of the body".into()),
    }
}

/// The status, the body, and whether the body is complete.
type Answer = (u16, Vec<u8>, bool);

/// The status line and the headers that matter here.
struct Head {
    status: u16,
    length: Option<usize>,
    chunked: bool,
}

/// The head of an answer read so far, and where its body starts; `None` before its end.
fn head(raw: &[u8]) -> Option<(usize, Result<Head, String>)> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    Some((end + 4, parse_head(&raw[..end])))
}

fn parse_head(head: &[u8]) -> Result<Head, String> {
    let head = String::from_utf8_lossy(head);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut words = status_line.split_whitespace();
    let status = match (words.next(), words.next()) {
        (Some(v), Some(code)) if v.starts_with("HTTP/1.") => code.parse::<u16>().ok(),
        _ => None,
    }
    .ok_or("not an HTTP/1.x answer")?;
    let mut parsed = Head {
        status,
        length: None,
        chunked: false,
    };
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("content-length") {
            parsed.length = Some(value.parse::<usize>().map_err(|_| "bad Content-Length")?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            parsed.chunked = value.to_ascii_lowercase().contains("chunked");
        }
    }
    Ok(parsed)
}

/// An answer read so far: `None` before the end of its headers, else the status, the body and
/// whether the body is complete (known only with a length or a chunked body; otherwise the
/// body runs to the end of the connection and is taken as complete).
fn parse(raw: &[u8]) -> Option<Result<Answer, String>> {
    let (start, head) = head(raw)?;
    Some(head.and_then(|head| {
        let (status, body) = (head.status, &raw[start..]);
        if head.chunked {
            return Ok(match dechunk(body)? {
                Some(body) => (status, body, true),
                None => (status, Vec::new(), false),
            });
        }
        Ok(match head.length {
            Some(n) if body.len() >= n => (status, body[..n].to_vec(), true),
            Some(_) => (status, Vec::new(), false),
            None => (status, body.to_vec(), true),
        })
    }))
}

/// A chunked body: `None` while incomplete.
fn dechunk(mut raw: &[u8]) -> Result<Option<Vec<u8>>, String> {
    let mut body = Vec::new();
    loop {
        let Some(eol) = raw.windows(2).position(|w| w == b"\r\n") else {
            return Ok(None);
        };
        let size_line = String::from_utf8_lossy(&raw[..eol]);
        let size_text = size_line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| "bad chunk size")?;
        raw = &raw[eol + 2..];
        if size == 0 {
            return Ok(Some(body));
        }
        if raw.len() < size + 2 {
            return Ok(None);
        }
        body.extend_from_slice(&raw[..size]);
        raw = &raw[size + 2..];
    }
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

    #[test]
    fn answers() {
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}extra";
        assert_eq!(parse(ok), Some(Ok((200, b"{}".to_vec(), true))));
        let short = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n{}";
        assert_eq!(parse(short), Some(Ok((200, Vec::new(), false))));
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{\"\r\n3;x=y\r\na\":\r\n1\r\n1\r\n0\r\n\r\n";
        assert_eq!(parse(chunked), Some(Ok((200, b"{\"a\":1".to_vec(), true))));
        assert_eq!(
            parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab"),
            Some(Ok((200, Vec::new(), false)))
        );
        let to_end = b"HTTP/1.0 404 Not Found\r\n\r\nnope";
        assert_eq!(parse(to_end), Some(Ok((404, b"nope".to_vec(), true))));
        assert_eq!(parse(b"HTTP/1.1 200 OK\r\n"), None);
        assert!(matches!(parse(b"SSH-2.0\r\n\r\n"), Some(Err(_))));
    }
}

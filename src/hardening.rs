//! Checks on a request's raw HTTP/1 head before anything reaches Onezone.
//!
//! Pingora 0.9.1 already refuses differing duplicate `Content-Length`, an unparseable one, and a
//! final coding other than `chunked`. It accepts `Content-Length` with `Transfer-Encoding`
//! (dropping the length), which RFC 9112 section 6.1 allows but which is the shape of every
//! CL.TE / TE.CL smuggling attempt, so the proxy refuses it as nginx does. It also refuses
//! repeated or decorated `Transfer-Encoding`, header names with spaces, and heads over the
//! configured limits.

use crate::onezone::error::OnezoneError;

/// Limits on the request head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_request_line: usize,
    pub max_header_bytes: usize,
    pub max_headers: usize,
}

/// Why a request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// 400: ambiguous or malformed framing (a smuggling vector).
    Framing(&'static str),
    /// 414: the request line is over the limit.
    UriTooLong,
    /// 431: too many header bytes or lines.
    HeadersTooLarge,
}

impl Refusal {
    pub fn error(&self) -> OnezoneError {
        match self {
            Refusal::Framing(why) => OnezoneError::bad_request(why),
            Refusal::UriTooLong => OnezoneError::uri_too_long(),
            Refusal::HeadersTooLarge => OnezoneError::headers_too_large(),
        }
    }
}

/// Checks the raw head (request line and header lines, as received).
pub fn check_head(raw: &[u8], limits: &Limits) -> Result<(), Refusal> {
    let mut lines = raw
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let request_line = lines.next().unwrap_or_default();
    if request_line.len() > limits.max_request_line {
        return Err(Refusal::UriTooLong);
    }
    if raw.len() > limits.max_header_bytes {
        return Err(Refusal::HeadersTooLarge);
    }
    let mut count = 0;
    let mut content_length: Option<&[u8]> = None;
    let mut transfer_encodings = 0;
    for line in lines.filter(|l| !l.is_empty()) {
        count += 1;
        if count > limits.max_headers {
            return Err(Refusal::HeadersTooLarge);
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return Err(Refusal::Framing("a header line without a name"));
        };
        let (name, value) = (&line[..colon], trim(&line[colon + 1..]));
        if name.is_empty() || name.iter().any(|b| b.is_ascii_whitespace()) {
            return Err(Refusal::Framing("white space in a header name"));
        }
        if name.eq_ignore_ascii_case(b"content-length") {
            if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
                return Err(Refusal::Framing("a Content-Length that is not a number"));
            }
            if content_length.is_some_and(|prev| prev != value) {
                return Err(Refusal::Framing("differing Content-Length values"));
            }
            content_length = Some(value);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            transfer_encodings += 1;
            if !value.eq_ignore_ascii_case(b"chunked") {
                return Err(Refusal::Framing(
                    "a Transfer-Encoding other than exactly chunked",
                ));
            }
        }
    }
    if transfer_encodings > 1 {
        return Err(Refusal::Framing("repeated Transfer-Encoding"));
    }
    if transfer_encodings == 1 && content_length.is_some() {
        return Err(Refusal::Framing(
            "both Content-Length and Transfer-Encoding",
        ));
    }
    Ok(())
}

fn trim(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t'))
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'\t'))
        .map_or(start, |e| e + 1);
    &v[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_request_line: 100,
        max_header_bytes: 1000,
        max_headers: 5,
    };

    fn check(head: &str) -> Result<(), Refusal> {
        check_head(head.as_bytes(), &LIMITS)
    }

    #[test]
    fn ordinary_heads_pass() {
        assert_eq!(
            check("POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n"),
            Ok(())
        );
        assert_eq!(
            check("POST /a HTTP/1.1\r\nHost: h\r\ntransfer-encoding:  Chunked \r\n\r\n"),
            Ok(())
        );
        assert_eq!(
            check("GET /a HTTP/1.1\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n"),
            Ok(())
        );
    }

    #[test]
    fn smuggling_shapes_are_refused() {
        for head in [
            "POST / HTTP/1.1\r\nContent-Length: 13\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 47\r\nContent-Length: 0\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: blahblahblah\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding : chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: ch\u{2013}nked\r\n\r\n",
            "POST / HTTP/1.1\r\nno colon here\r\n\r\n",
        ] {
            assert!(matches!(check(head), Err(Refusal::Framing(_))), "{head:?}");
        }
    }

    #[test]
    fn limits() {
        let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(100));
        assert_eq!(check(&long), Err(Refusal::UriTooLong));
        let many = format!("GET / HTTP/1.1\r\n{}\r\n", "X: 1\r\n".repeat(6));
        assert_eq!(check(&many), Err(Refusal::HeadersTooLarge));
        let big = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(1000));
        assert_eq!(check(&big), Err(Refusal::HeadersTooLarge));
    }
}

//! Every answer the proxy writes itself, decided and written in one place: the legacy answers
//! (legacy/ decides their content), 405/406/415, the 410 of a rejected operation, 408, 413, 414,
//! 431, and the 502/504 of a failed upstream. They are shaped as Onezone's REST layer shapes its
//! own (CORS on every answer, JSON bodies with an exact length, empty 405/406/415). Reading a
//! buffered request body lives here too.

use bytes::{Bytes, BytesMut};
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::{Error, ErrorSource, ErrorType, Result};

use crate::deprecation::{self, Headers};
use crate::legacy::Answer;
use crate::migration::Rejection;
use crate::onezone::client::CallError;
use crate::onezone::error::OnezoneError;

/// Resolves when the client closes its connection while it waits for the answer; never
/// otherwise. (Bytes that arrive instead are a pipelined request, which cannot be kept, so
/// the connection is not reused.)
pub(crate) async fn client_gone(session: &mut Session) {
    match session.as_downstream_mut().read_body_or_idle(true).await {
        Err(e) if e.etype() == &ErrorType::ConnectionClosed => {}
        _ => {
            session.set_keepalive(None);
            std::future::pending().await
        }
    }
}

/// Reads the whole request body, or `None` as soon as it is over `limit` bytes.
pub(crate) async fn read_body(session: &mut Session, limit: usize) -> Result<Option<Bytes>> {
    let declared = session
        .req_header()
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Ok(None);
    }
    let expects_continue = session
        .req_header()
        .headers
        .get(http::header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if expects_continue {
        session.write_continue_response().await?;
    }
    let mut buf = BytesMut::new();
    while let Some(chunk) = session.read_request_body().await? {
        if buf.len() + chunk.len() > limit {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Some(buf.freeze()))
}

/// `Deprecation` and `Sunset` replace any the upstream sent (one field line each); our `Link`
/// relations are added next to the upstream's own.
pub(crate) fn add_deprecation_headers(resp: &mut ResponseHeader, h: &Headers) -> Result<()> {
    resp.insert_header(deprecation::DEPRECATION, &h.deprecation)?;
    if let Some(sunset) = &h.sunset {
        resp.insert_header(deprecation::SUNSET, sunset)?;
    }
    resp.append_header(deprecation::LINK, &h.link)?;
    Ok(())
}

/// Writes a complete answer with an exact `Content-Length` (none for 204), shaped as Onezone's
/// REST layer shapes its own: `access-control-allow-origin: *` on every answer
/// (`rest_handler.erl:78`), `content-type: application/json` on bodies and on 204
/// (`cowboy_rest.erl:727-738`), no body and `content-length: 0` for 405, 406 and 415.
pub(crate) async fn write_answer(
    session: &mut Session,
    answer: &Answer,
    deprecation: Option<&Headers>,
) -> Result<()> {
    let body = answer
        .body
        .as_ref()
        // A `Value` always serializes.
        .map(|b| Bytes::from(serde_json::to_vec(b).unwrap_or_default()));
    let mut resp = ResponseHeader::build(answer.status, Some(7))?;
    resp.insert_header(http::header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")?;
    if let Some(h) = deprecation {
        add_deprecation_headers(&mut resp, h)?;
    }
    if let Some(allow) = &answer.allow {
        resp.insert_header(http::header::ALLOW, allow)?;
    }
    match &body {
        Some(body) => {
            resp.insert_header(http::header::CONTENT_TYPE, "application/json")?;
            resp.set_content_length(body.len())?;
        }
        None if answer.status == 204 => {
            resp.insert_header(http::header::CONTENT_TYPE, "application/json")?;
        }
        None => resp.set_content_length(0)?,
    }
    session
        .write_response_header(Box::new(resp), body.is_none())
        .await?;
    if let Some(body) = body {
        session.write_response_body(Some(body), true).await?;
    }
    Ok(())
}

/// The 410 of a deprecated operation the policy no longer serves, naming its successor.
pub(crate) fn rejected(why: Rejection, successor: Option<&str>) -> Answer {
    let text = match why {
        Rejection::Retired => "This deprecated operation has been retired.",
        Rejection::Brownout => {
            "This deprecated operation is in a scheduled brownout: it is unavailable for a while, ahead of its retirement."
        }
        Rejection::Sunset => "This deprecated operation has passed its sunset date and has been retired.",
    };
    Answer::error(OnezoneError::gone(text, successor))
}

/// What the proxy answers when proxying failed: Onezone-shaped 502 / 504 for an upstream
/// failure (one classification for every path, [`CallError`]), 408 for a client too slow with
/// its body, 400 for a malformed request, 500 otherwise; `None` when the client is gone.
pub(crate) fn for_error(e: &Error, upstream: Option<CallError>) -> Option<Answer> {
    let error = match (e.etype(), upstream) {
        (ErrorType::HTTPStatus(code), _) => OnezoneError {
            status: *code,
            ..OnezoneError::internal()
        },
        (_, Some(f)) => OnezoneError::upstream_failed(f),
        (ErrorType::ReadTimedout, None) => OnezoneError::request_timeout(),
        (ErrorType::ReadError | ErrorType::WriteError | ErrorType::ConnectionClosed, None) => {
            return None
        }
        _ if e.esource() == &ErrorSource::Downstream => OnezoneError {
            status: 400,
            ..OnezoneError::internal()
        },
        _ => OnezoneError::internal(),
    };
    Some(Answer::error(error))
}

//! Reading access logs: the JSON lines of `tracing_subscriber`'s JSON formatter.
//!
//! A legacy call is a line with `"target": "access"` whose `fields.route` is a deprecated
//! operation id; its `fields` may lack `subject`, `subject_kind` and `client_product` (lines
//! of older versions): no subject is an unidentified caller, and the client product then comes
//! from the `user_agent` product token. Every other well-formed line (pass-through, tunnel
//! lines, other targets) is an "other" line; a line that is not JSON, a truncated last line or
//! one without a usable timestamp is "malformed". Neither stops the reading.
//!
//! A line that starts with `[` carries a `kubectl logs --prefix` prefix: everything before its
//! first `{` is dropped. A source starting with the gzip magic bytes is decompressed (several
//! gzip members one after another, as `cat a.gz b.gz` gives, are read in turn).

use std::borrow::Cow;
use std::fs::File;
use std::io::{BufRead, BufReader, IsTerminal, Read};
use std::time::SystemTime;

use flate2::bufread::MultiGzDecoder;
use serde::Deserialize;

use crate::callers::day_of;

use super::tally::{operation_index, Calls, SourceStats, Tally};

/// Longer lines are malformed (the proxy's lines are well under 1 KiB).
const MAX_LINE: usize = 1 << 20;
/// Progress is shown every so many lines.
const PROGRESS_EVERY: u64 = 100_000;

/// `\r{lines} lines read` on standard error every [`PROGRESS_EVERY`] lines, when enabled.
pub(crate) struct Progress {
    enabled: bool,
    lines: u64,
    shown: bool,
}

impl Progress {
    pub(crate) fn new(enabled: bool) -> Self {
        Progress {
            enabled,
            lines: 0,
            shown: false,
        }
    }

    fn line(&mut self) {
        self.lines += 1;
        if self.enabled && self.lines.is_multiple_of(PROGRESS_EVERY) {
            eprint!("\r{} lines read", self.lines);
            self.shown = true;
        }
    }

    /// Ends the progress line, if one was shown.
    pub(crate) fn finish(&mut self) {
        if self.shown {
            eprintln!("\r{} lines read", self.lines);
            self.shown = false;
        }
    }
}

/// Reads one log source (a path, or `-` for standard input) into `tally`.
pub(crate) fn read(
    source: &str,
    tally: &mut Tally,
    progress: &mut Progress,
) -> Result<SourceStats, String> {
    let (name, raw): (String, Box<dyn Read>) = if source == "-" {
        let stdin = std::io::stdin();
        if stdin.is_terminal() {
            return Err("- reads the access log from standard input, which is a terminal".into());
        }
        ("(standard input)".into(), Box::new(stdin.lock()))
    } else {
        let file = File::open(source).map_err(|e| format!("{source}: {e}"))?;
        (source.to_string(), Box::new(file))
    };
    let mut input = BufReader::with_capacity(64 * 1024, raw);
    let gzip = input
        .fill_buf()
        .map_err(|e| format!("{name}: {e}"))?
        .starts_with(&[0x1f, 0x8b]);
    let mut lines: Box<dyn BufRead> = match gzip {
        true => Box::new(BufReader::with_capacity(
            64 * 1024,
            MultiGzDecoder::new(input),
        )),
        false => Box::new(input),
    };
    let mut stats = SourceStats {
        name,
        ..SourceStats::default()
    };
    let mut buf = Vec::with_capacity(1024);
    loop {
        buf.clear();
        let line = match next_line(&mut lines, &mut buf) {
            Ok(None) => break,
            Ok(Some(line)) => line,
            Err(e) => {
                // What was read before the error counts; a partial line is malformed.
                if !buf.iter().all(u8::is_ascii_whitespace) {
                    stats.counts.lines_read += 1;
                    stats.counts.malformed_lines += 1;
                }
                stats.error = Some(e.to_string());
                break;
            }
        };
        let Some(line) = line else {
            // Blank line.
            continue;
        };
        stats.counts.lines_read += 1;
        progress.line();
        match classify(line) {
            Class::Legacy(call) => {
                stats.counts.legacy_lines += 1;
                let day = [(day_of(call.at), 1)];
                tally.add(&Calls {
                    subject: &call.subject,
                    kind: &call.kind,
                    operation: call.operation,
                    client: &call.client,
                    mode: &call.mode,
                    calls: 1,
                    first_seen: call.at,
                    last_seen: call.at,
                    per_day: &day,
                });
            }
            Class::Other => stats.counts.other_lines += 1,
            Class::Malformed => stats.counts.malformed_lines += 1,
        }
    }
    Ok(stats)
}

/// The next line of `input` into `buf`: `None` at the end, `Some(None)` for a blank line,
/// `Some(Some(line))` without its line end. A line longer than [`MAX_LINE`] is cut there
/// (and so is malformed); the rest of it is skipped.
fn next_line<'b>(
    input: &mut dyn BufRead,
    buf: &'b mut Vec<u8>,
) -> std::io::Result<Option<Option<&'b [u8]>>> {
    let limit = u64::try_from(MAX_LINE).unwrap_or(u64::MAX);
    let n = (&mut *input).take(limit).read_until(b'\n', buf)?;
    if n == 0 {
        return Ok(None);
    }
    if buf.len() == MAX_LINE && buf.last() != Some(&b'\n') {
        skip_rest_of_line(input)?;
    }
    let line = buf.trim_ascii();
    Ok(Some((!line.is_empty()).then_some(line)))
}

fn skip_rest_of_line(input: &mut dyn BufRead) -> std::io::Result<()> {
    loop {
        let chunk = input.fill_buf()?;
        if chunk.is_empty() {
            return Ok(());
        }
        match chunk.iter().position(|&b| b == b'\n') {
            Some(end) => {
                input.consume(end + 1);
                return Ok(());
            }
            None => {
                let len = chunk.len();
                input.consume(len);
            }
        }
    }
}

/// A legacy call read from one line.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct LogCall {
    pub(crate) at: SystemTime,
    /// Index into `ROUTES`.
    pub(crate) operation: usize,
    pub(crate) subject: String,
    pub(crate) kind: String,
    pub(crate) client: String,
    pub(crate) mode: String,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Class {
    Legacy(LogCall),
    Other,
    Malformed,
}

#[derive(Deserialize)]
struct Line<'a> {
    #[serde(borrow)]
    timestamp: Option<Cow<'a, str>>,
    #[serde(borrow)]
    target: Option<Cow<'a, str>>,
    #[serde(borrow)]
    fields: Option<Fields<'a>>,
}

#[derive(Deserialize)]
struct Fields<'a> {
    #[serde(borrow)]
    route: Option<Cow<'a, str>>,
    #[serde(borrow)]
    mode: Option<Cow<'a, str>>,
    #[serde(borrow)]
    message: Option<Cow<'a, str>>,
    #[serde(borrow)]
    user_agent: Option<Cow<'a, str>>,
    #[serde(borrow)]
    subject: Option<Cow<'a, str>>,
    #[serde(borrow)]
    subject_kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    client_product: Option<Cow<'a, str>>,
}

/// What one non-blank line is.
pub(crate) fn classify(line: &[u8]) -> Class {
    let json = match line.first() {
        Some(b'[') => match line.iter().position(|&b| b == b'{') {
            Some(start) => &line[start..],
            None => return Class::Malformed,
        },
        _ => line,
    };
    let Ok(parsed) = serde_json::from_slice::<Line<'_>>(json) else {
        return Class::Malformed;
    };
    if parsed.target.as_deref() != Some("access") {
        return Class::Other;
    }
    let Some(fields) = parsed.fields else {
        return Class::Malformed;
    };
    if fields.message.as_deref() == Some("tunnel closed") {
        return Class::Other;
    }
    let Some(route) = fields.route else {
        return Class::Malformed;
    };
    let Some(operation) = operation_index(&route) else {
        // "passthrough", or an operation this build does not know.
        return Class::Other;
    };
    let Some(at) = parsed
        .timestamp
        .and_then(|t| humantime::parse_rfc3339_weak(&t).ok())
    else {
        return Class::Malformed;
    };
    let client = match fields.client_product.as_deref() {
        Some(product) => label(product),
        None => label(product_token(fields.user_agent.as_deref().unwrap_or(""))),
    };
    Class::Legacy(LogCall {
        at,
        operation,
        subject: fields.subject.map(Cow::into_owned).unwrap_or_default(),
        kind: fields.subject_kind.map(Cow::into_owned).unwrap_or_default(),
        client: client.to_string(),
        mode: fields.mode.as_deref().map_or("", mode_label).to_string(),
    })
}

/// The product of a `User-Agent` value: the text before the first `/` or space.
fn product_token(user_agent: &str) -> &str {
    let end = user_agent
        .find(|c: char| c == '/' || c.is_whitespace())
        .unwrap_or(user_agent.len());
    &user_agent[..end]
}

/// A client product name fit to print: short, of name characters only; anything else (which
/// could be a pasted secret) is `other`.
pub(crate) fn label(product: &str) -> &str {
    let fits = (1..=32).contains(&product.len())
        && product
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    match fits {
        true => product,
        false => "other",
    }
}

/// A mode label fit to print: as [`label`], and empty stays empty.
pub(crate) fn mode_label(mode: &str) -> &str {
    match mode {
        "" => "",
        m => label(m),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = r#"{"timestamp":"2026-12-01T22:27:55.123456Z","level":"INFO","fields":{"route":"create_user_group_invite_token","mode":"rewrite","method":"POST","status":200,"upstream_status":0,"latency_ms":3.2,"client":"10.0.0.7","user_agent":"onedatafs/21.02","subject":"u1","subject_kind":"user","client_product":"onedatafs","error":""},"target":"access"}"#;

    fn legacy(line: &str) -> LogCall {
        match classify(line.as_bytes()) {
            Class::Legacy(call) => call,
            other => panic!("{line}: {other:?}"),
        }
    }

    #[test]
    fn an_access_line_of_a_deprecated_operation_is_a_call() {
        let call = legacy(LINE);
        assert_eq!(
            call,
            LogCall {
                at: humantime::parse_rfc3339("2026-12-01T22:27:55.123456Z").unwrap(),
                operation: operation_index("create_user_group_invite_token").unwrap(),
                subject: "u1".into(),
                kind: "user".into(),
                client: "onedatafs".into(),
                mode: "rewrite".into(),
            }
        );
        let prefixed = format!("[pod/onezone-migration-proxy-7d9f/proxy] {LINE}");
        assert_eq!(legacy(&prefixed), call);
    }

    #[test]
    fn older_lines_without_subject_or_product_are_tolerated() {
        let old = LINE.replace(
            r#""subject":"u1","subject_kind":"user","client_product":"onedatafs","#,
            "",
        );
        let call = legacy(&old);
        assert_eq!((call.subject.as_str(), call.kind.as_str()), ("", ""));
        assert_eq!(call.client, "onedatafs");
        let curl = old.replace("onedatafs/21.02", "curl 8.1");
        assert_eq!(legacy(&curl).client, "curl");
        let secret = old.replace("onedatafs/21.02", &"MDAx".repeat(40));
        assert_eq!(legacy(&secret).client, "other");
        let none = old.replace(r#""user_agent":"onedatafs/21.02","#, "");
        assert_eq!(legacy(&none).client, "other");
    }

    #[test]
    fn other_and_malformed_lines_are_told_apart() {
        let passthrough = LINE.replace("create_user_group_invite_token", "passthrough");
        let info = r#"{"timestamp":"2026-12-01T22:00:00Z","level":"INFO","fields":{"message":"listening"},"target":"onezone_migration_proxy::server"}"#;
        let tunnel = r#"{"timestamp":"2026-12-01T22:00:00Z","level":"INFO","fields":{"message":"tunnel closed","route":"create_client_token","duration_s":1.5},"target":"access"}"#;
        for line in [passthrough.as_str(), info, tunnel] {
            assert_eq!(classify(line.as_bytes()), Class::Other, "{line}");
        }
        let truncated = &LINE[..LINE.len() / 2];
        let no_time = LINE.replace("2026-12-01T22:27:55.123456Z", "yesterday");
        let no_route = LINE.replace(r#""route":"create_user_group_invite_token","#, "");
        for line in [
            truncated,
            "plain text",
            "[pod/x/proxy] no json",
            &no_time,
            &no_route,
        ] {
            assert_eq!(classify(line.as_bytes()), Class::Malformed, "{line}");
        }
        assert_eq!(
            classify(b"{\"target\":\"access\",\"fields\":{\"route\":\"\xff\"}}"),
            Class::Malformed
        );
    }

    #[test]
    fn lines_are_split_and_bounded() {
        let long = "x".repeat(MAX_LINE + 10);
        let text = format!("a\n\n  \r\n{long}\nb\r\nc");
        let mut input = std::io::Cursor::new(text.into_bytes());
        let mut got = Vec::new();
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match next_line(&mut input, &mut buf).unwrap() {
                None => break,
                Some(None) => got.push("<blank>".to_string()),
                Some(Some(line)) => {
                    got.push(String::from_utf8_lossy(line).chars().take(3).collect())
                }
            }
        }
        assert_eq!(got, ["a", "<blank>", "<blank>", "xxx", "b", "c"]);
    }
}

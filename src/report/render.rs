//! The plain-text table (at most [`WIDTH`] columns) and the JSON object of the report, and
//! the text helpers the HTML page shares.

use std::borrow::Cow;
use std::io::{self, Write};
use std::time::SystemTime;

use serde_json::{json, Map, Value};

use crate::callers::{day_name, rfc3339};

use super::tally::{Report, SourceStats};

/// The table's width, in characters.
pub(crate) const WIDTH: usize = 100;
/// Shown for the caller of the calls without a subject.
pub(crate) const UNIDENTIFIED: &str = "(unidentified)";
/// Days of the table's trend column, ending with the report's day.
const TREND_DAYS: u32 = 7;
const SUBJECT_WIDTH: usize = 36;

/// The JSON object (schema in the module documentation of `report`).
pub(crate) fn json(report: &Report, out: &mut dyn Write) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, &to_json(report))?;
    writeln!(out)
}

pub(crate) fn to_json(report: &Report) -> Value {
    let days = |per_day: &std::collections::BTreeMap<u32, u64>| -> Map<String, Value> {
        per_day
            .iter()
            .map(|(&day, &n)| (day_name(day), Value::from(n)))
            .collect()
    };
    let time = |t: Option<SystemTime>| t.map(rfc3339);
    let operations: Vec<Value> = report
        .operations
        .iter()
        .map(|o| {
            json!({
                "operation": o.route.operation,
                "method": o.route.method,
                "template": o.route.template,
                "calls": o.calls,
                "callers": o.callers,
                "unidentified_calls": o.unidentified_calls,
                "last_call": time(o.last_call),
                "calls_per_day": days(&o.per_day),
            })
        })
        .collect();
    let callers: Vec<Value> = report
        .callers
        .iter()
        .map(|c| {
            let operations: Map<String, Value> = c
                .operations
                .iter()
                .map(|&(op, n)| (op.to_string(), Value::from(n)))
                .collect();
            json!({
                "subject": c.subject,
                "kind": c.kind,
                "calls": c.calls,
                "first_seen": rfc3339(c.first_seen),
                "last_seen": rfc3339(c.last_seen),
                "operations": operations,
                "clients": c.clients,
                "modes": c.modes,
            })
        })
        .collect();
    let quiet = report.quiet.as_ref().map(|q| {
        q.iter()
            .map(|&i| {
                let o = &report.operations[i];
                json!({"operation": o.route.operation, "last_call": time(o.last_call)})
            })
            .collect::<Vec<_>>()
    });
    let sources: Vec<Value> = report
        .sources
        .iter()
        .map(|s| {
            let mut o = serde_json::Map::new();
            o.insert("source".into(), json!(s.name));
            o.insert("type".into(), json!(if s.admin { "admin" } else { "log" }));
            s.counts.write_into(&mut o);
            o.insert("replica_started".into(), json!(time(s.replica_started)));
            o.insert("replica_now".into(), json!(time(s.replica_now)));
            o.insert("evicted".into(), json!(s.evicted));
            o.insert("error".into(), json!(s.error));
            Value::Object(o)
        })
        .collect();
    let mut input = serde_json::Map::new();
    input.insert("sources".into(), json!(report.sources.len()));
    report.totals().write_into(&mut input);
    input.insert("per_source".into(), Value::Array(sources));
    json!({
        "kind": "onezone-migration-proxy/legacy-report",
        "version": 1,
        "generated": rfc3339(report.generated),
        "quiet_since_s": report.quiet_since.map(|d| d.as_secs()),
        "quiet_cutoff": time(report.quiet_cutoff()),
        "totals": {
            "calls": report.calls(),
            "callers": report.identified_callers(),
            "unidentified_calls": report.unidentified_calls(),
        },
        "operations": operations,
        "callers": callers,
        "quiet_operations": quiet,
        "input": input,
    })
}

/// Writes lines of at most [`WIDTH`] characters.
struct Lines<'a> {
    out: &'a mut dyn Write,
}

impl Lines<'_> {
    fn line(&mut self, text: &str) -> io::Result<()> {
        writeln!(self.out, "{}", fit(text, WIDTH).trim_end())
    }

    fn blank(&mut self) -> io::Result<()> {
        writeln!(self.out)
    }
}

/// The plain-text report: operations, callers, quiet operations, input.
pub(crate) fn table(report: &Report, out: &mut dyn Write) -> io::Result<()> {
    let mut w = Lines { out };
    let t = report.totals();
    w.line(&format!(
        "Legacy callers report, generated {} UTC",
        minute(report.generated)
    ))?;
    let unidentified = match report.unidentified_calls() {
        0 => String::new(),
        n => format!(" and {}", plural(n, "unidentified call")),
    };
    w.line(&format!(
        "{} from {}{unidentified}, in {}",
        plural(report.calls(), "legacy call"),
        plural(report.identified_callers() as u64, "caller"),
        plural(report.sources.len() as u64, "source"),
    ))?;

    w.blank()?;
    w.line("Deprecated operations")?;
    let op_width = report
        .operations
        .iter()
        .map(|o| o.route.operation.chars().count())
        .max()
        .unwrap_or(9)
        .clamp(9, 52);
    w.line(&format!(
        "{:<op_width$}  {:>8}  {:>7}  {:<16}  {} DAYS",
        "OPERATION", "CALLS", "CALLERS", "LAST CALL (UTC)", TREND_DAYS
    ))?;
    let today = report.today();
    for o in &report.operations {
        w.line(&format!(
            "{:<op_width$}  {:>8}  {:>7}  {:<16}  {}",
            fit(o.route.operation, op_width),
            o.calls,
            o.callers,
            o.last_call.map_or_else(|| "never".into(), minute),
            trend(&o.per_day, today),
        ))?;
    }
    if report.unidentified_calls() > 0 {
        w.line(&format!(
            "CALLERS counts identified subjects; calls without one are under {UNIDENTIFIED}."
        ))?;
    }

    w.blank()?;
    w.line(&format!(
        "Callers, most recent first ({})",
        report.callers.len()
    ))?;
    if report.callers.is_empty() {
        w.line("    none")?;
    } else {
        w.line(&format!(
            "{:<SUBJECT_WIDTH$}  {:<8}  {:>8}  {:<16}  {:<16}",
            "SUBJECT", "KIND", "CALLS", "FIRST SEEN (UTC)", "LAST SEEN (UTC)"
        ))?;
    }
    for c in &report.callers {
        let subject = match c.subject.as_str() {
            "" => UNIDENTIFIED,
            s => s,
        };
        let kind = if c.kind.is_empty() { "-" } else { &c.kind };
        w.line(&format!(
            "{:<SUBJECT_WIDTH$}  {:<8}  {:>8}  {:<16}  {:<16}",
            fit(subject, SUBJECT_WIDTH),
            fit(kind, 8),
            c.calls,
            minute(c.first_seen),
            minute(c.last_seen),
        ))?;
        let operations: Vec<String> = c
            .operations
            .iter()
            .map(|(op, n)| format!("{op} {n}"))
            .collect();
        for line in wrap(&operations, "    ", WIDTH) {
            w.line(&line)?;
        }
        w.line(&format!(
            "    clients: {}; modes: {}",
            list(&c.clients),
            list(&c.modes)
        ))?;
    }

    if let (Some(quiet), Some(cutoff), Some(since)) =
        (&report.quiet, report.quiet_cutoff(), report.quiet_since)
    {
        w.blank()?;
        w.line(&format!(
            "Ready to switch to reject: no call since {} UTC ({})",
            minute(cutoff),
            humantime::format_duration(since)
        ))?;
        if quiet.is_empty() {
            w.line("    none: every deprecated operation was called since then")?;
        }
        for &i in quiet {
            let o = &report.operations[i];
            let last = match o.last_call {
                None => "never called in these inputs".to_string(),
                Some(t) => format!("last call {} UTC", minute(t)),
            };
            w.line(&format!(
                "    {:<op_width$}  {last}",
                fit(o.route.operation, op_width)
            ))?;
        }
    }

    w.blank()?;
    w.line("Input")?;
    w.line(&format!(
        "    {} read: {}; skipped: {}, {}",
        plural(t.lines_read, "line"),
        plural(t.legacy_lines, "legacy call"),
        plural(t.other_lines, "other line"),
        plural(t.malformed_lines, "malformed line"),
    ))?;
    if report.sources.iter().any(|s| s.admin) {
        w.line(&format!(
            "    admin tables: {} ({} skipped)",
            plural(t.admin_entries, "entry"),
            t.admin_entries_skipped
        ))?;
    }
    for s in &report.sources {
        w.line(&format!("  {}", fit_left(&s.name, WIDTH - 2)))?;
        w.line(&format!("      {}", source_figures(s)))?;
        if let Some(e) = &s.error {
            w.line(&format!(
                "      read error, the rest was not read: {}",
                clean(e)
            ))?;
        }
    }
    if report.sources.iter().any(|s| s.admin) {
        w.line(
            "An admin table counts since its replica started, for a bounded number of callers;",
        )?;
        w.line("a replica's table and its logs count the same calls: give one or the other.")?;
    }
    Ok(())
}

/// One source's figures, in words.
pub(crate) fn source_figures(s: &SourceStats) -> String {
    if !s.admin {
        return format!(
            "log: {} read, {} legacy, {} other, {} malformed",
            plural(s.counts.lines_read, "line"),
            s.counts.legacy_lines,
            s.counts.other_lines,
            s.counts.malformed_lines
        );
    }
    let started = s
        .replica_started
        .map_or_else(|| "?".into(), |t| format!("{} UTC", minute(t)));
    let evicted = match s.evicted {
        Some(0) | None => String::new(),
        Some(n) => format!(", {n} evicted: the oldest callers are missing"),
    };
    format!(
        "admin table: {} ({} skipped), since {started}{evicted}",
        plural(s.counts.admin_entries, "entry"),
        s.counts.admin_entries_skipped
    )
}

/// The last [`TREND_DAYS`] days as a bar per day, `·` for none.
fn trend(per_day: &std::collections::BTreeMap<u32, u64>, today: u32) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let first = today.saturating_sub(TREND_DAYS - 1);
    let counts: Vec<u64> = (first..=today)
        .map(|d| per_day.get(&d).copied().unwrap_or(0))
        .collect();
    let max = counts.iter().copied().max().unwrap_or(0).max(1);
    counts
        .iter()
        .map(|&n| match n {
            0 => '·',
            n => {
                let level = (n * 8).div_ceil(max).clamp(1, 8);
                BARS[usize::try_from(level - 1).unwrap_or(7)]
            }
        })
        .collect()
}

/// Items joined with `, `, in lines of at most `width` characters that start with `indent`.
fn wrap(items: &[String], indent: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::from(indent);
    for item in items {
        let item = fit(item, width - indent.len());
        let fresh = line.len() == indent.len();
        let len = line.chars().count() + item.chars().count() + if fresh { 0 } else { 2 };
        if !fresh && len > width {
            lines.push(std::mem::replace(&mut line, String::from(indent)));
        } else if !fresh {
            line.push_str(", ");
        }
        line.push_str(&item);
    }
    if line.len() > indent.len() {
        lines.push(line);
    }
    lines
}

fn list(items: &[String]) -> String {
    match items.is_empty() {
        true => "-".into(),
        false => clean(&items.join(", ")).into_owned(),
    }
}

pub(crate) fn plural(n: u64, what: &str) -> String {
    match (n, what) {
        (1, _) => format!("1 {what}"),
        (_, "entry") => format!("{n} entries"),
        _ => format!("{n} {what}s"),
    }
}

/// `YYYY-MM-DD HH:MM` (UTC).
pub(crate) fn minute(t: SystemTime) -> String {
    let mut s = rfc3339(t).replacen('T', " ", 1);
    s.truncate(16);
    s
}

/// Control characters (a terminal's escape sequences) shown as `?`.
pub(crate) fn clean(s: &str) -> Cow<'_, str> {
    match s.chars().any(char::is_control) {
        false => Cow::Borrowed(s),
        true => Cow::Owned(
            s.chars()
                .map(|c| if c.is_control() { '?' } else { c })
                .collect(),
        ),
    }
}

/// At most `width` characters, a cut shown by a final `…`.
pub(crate) fn fit(s: &str, width: usize) -> String {
    let s = clean(s);
    if s.chars().count() <= width {
        return s.into_owned();
    }
    let mut cut: String = s.chars().take(width.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// At most `width` characters, keeping the end (of a path), a cut shown by a leading `…`.
fn fit_left(s: &str, width: usize) -> String {
    let s = clean(s);
    let count = s.chars().count();
    if count <= width {
        return s.into_owned();
    }
    let skip = count - width.saturating_sub(1);
    std::iter::once('…').chain(s.chars().skip(skip)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn text_helpers() {
        assert_eq!(fit("abcdef", 4), "abc…");
        assert_eq!(fit("abcd", 4), "abcd");
        assert_eq!(fit("a\x1b[2Jb", 10), "a?[2Jb");
        assert_eq!(fit_left("/var/log/proxy.log", 10), "…proxy.log");
        assert_eq!(plural(1, "entry"), "1 entry");
        assert_eq!(plural(2, "entry"), "2 entries");
        assert_eq!(plural(0, "line"), "0 lines");
        let t = humantime::parse_rfc3339("2026-12-01T22:50:59Z").unwrap();
        assert_eq!(minute(t), "2026-12-01 22:50");
    }

    #[test]
    fn the_trend_has_a_bar_per_day() {
        let per_day = BTreeMap::from([(93, 8), (95, 1), (99, 4), (100, 100)]);
        assert_eq!(trend(&per_day, 99), "█·▁···▄");
        assert_eq!(trend(&BTreeMap::new(), 30), "·······");
    }

    #[test]
    fn wrapped_lines_fit() {
        let items: Vec<String> = (0..30).map(|i| format!("operation_{i} {i}")).collect();
        let lines = wrap(&items, "    ", 40);
        assert!(lines.len() > 1);
        assert!(lines
            .iter()
            .all(|l| l.chars().count() <= 40 && l.starts_with("    ")));
        let joined = lines
            .iter()
            .map(|l| l.trim())
            .collect::<Vec<_>>()
            .join(", ");
        assert_eq!(joined, items.join(", "));
    }
}

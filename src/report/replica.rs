//! Reading the legacy callers table of a running replica: `GET /legacy/callers` on its admin
//! listener (`--from http://host:port`), the document of `callers::CallerTable::snapshot`.
//!
//! Each entry adds its calls, first and last seen, client, mode and calls per day. An entry of
//! an operation this build does not know, or without its fields, is skipped and counted.
//! A replica that does not answer 200 with such a document is an error naming its URL.

use std::time::{Duration, SystemTime};

use serde_json::Value;

use crate::callers::{day_of, SNAPSHOT_KIND, SNAPSHOT_VERSION};

use super::http::{self, Url};
use super::logs::{label, mode_label};
use super::tally::{operation_index, Calls, SourceStats, Tally};

/// For connecting, sending and reading the whole answer.
const TIMEOUT: Duration = Duration::from_secs(10);
/// The admin listener's path of the table.
pub(crate) const PATH: &str = "/legacy/callers";

/// Whether a source is an admin URL rather than a file.
pub(crate) fn is_url(source: &str) -> bool {
    let lower = source.get(..8).unwrap_or(source).to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://")
}

/// Fetches one replica's table into `tally`.
pub(crate) fn read(source: &str, tally: &mut Tally) -> Result<SourceStats, String> {
    let base = Url::parse(source)?;
    // `http://host:port` or `http://host:port/prefix`: the table is below it.
    let url = match base.path.trim_end_matches('/') {
        p if p.ends_with(PATH) => base.with_path(p),
        p => base.with_path(&format!("{p}{PATH}")),
    };
    let (status, body) = http::get(&url, TIMEOUT).map_err(|e| format!("{source}: {e}"))?;
    if status != 200 {
        return Err(format!(
            "{source}: GET {} answered {status}, not 200 (is this the admin listener of a \
             proxy that keeps the legacy callers table?)",
            url.path
        ));
    }
    let doc: Value = serde_json::from_slice(&body)
        .map_err(|e| format!("{source}: GET {} did not answer JSON: {e}", url.path))?;
    read_snapshot(source, &doc, tally)
}

/// Adds a snapshot document to `tally`.
pub(crate) fn read_snapshot(
    source: &str,
    doc: &Value,
    tally: &mut Tally,
) -> Result<SourceStats, String> {
    if doc["kind"] != SNAPSHOT_KIND || doc["version"] != SNAPSHOT_VERSION {
        return Err(format!(
            "{source}: not a legacy callers table of version {SNAPSHOT_VERSION} \
             (kind {SNAPSHOT_KIND:?})"
        ));
    }
    let entries = doc["callers"]
        .as_array()
        .ok_or_else(|| format!("{source}: the legacy callers table has no `callers` list"))?;
    let time = |v: &Value| {
        v.as_str()
            .and_then(|t| humantime::parse_rfc3339_weak(t).ok())
    };
    let mut stats = SourceStats {
        name: source.to_string(),
        admin: true,
        replica_started: time(&doc["started"]),
        replica_now: time(&doc["now"]),
        evicted: doc["evicted"].as_u64(),
        ..SourceStats::default()
    };
    let mut per_day = Vec::with_capacity(32);
    for entry in entries {
        match add_entry(entry, tally, &mut per_day) {
            Some(()) => stats.counts.admin_entries += 1,
            None => stats.counts.admin_entries_skipped += 1,
        }
    }
    Ok(stats)
}

fn add_entry(entry: &Value, tally: &mut Tally, per_day: &mut Vec<(u32, u64)>) -> Option<()> {
    let text = |key: &str| entry[key].as_str();
    let time = |key: &str| humantime::parse_rfc3339_weak(text(key)?).ok();
    let operation = operation_index(text("route")?)?;
    let (first_seen, last_seen) = (time("first_seen")?, time("last_seen")?);
    per_day.clear();
    if let Some(days) = entry["calls_per_day"].as_object() {
        for (day, calls) in days {
            per_day.push((day_number(day)?, calls.as_u64()?));
        }
    }
    tally.add(&Calls {
        subject: text("subject")?,
        kind: text("kind").unwrap_or(""),
        operation,
        client: label(text("client").unwrap_or("")),
        mode: mode_label(text("mode").unwrap_or("")),
        calls: entry["calls"].as_u64()?,
        first_seen,
        last_seen,
        per_day,
    });
    Some(())
}

/// The UTC day number of `YYYY-MM-DD`.
fn day_number(day: &str) -> Option<u32> {
    if day.len() != 10 {
        return None;
    }
    let midnight: SystemTime = humantime::parse_rfc3339(&format!("{day}T00:00:00Z")).ok()?;
    Some(day_of(midnight))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_snapshot_adds_its_entries() {
        let doc = json!({
            "kind": SNAPSHOT_KIND, "version": 1,
            "started": "2026-12-01T22:00:00Z", "now": "2026-12-01T23:00:00Z",
            "capacity": 10, "entries": 3, "evicted": 4, "note": "",
            "callers": [
                {"subject": "u1", "kind": "user", "route": "create_client_token", "calls": 3,
                 "first_seen": "2026-11-30T22:10:00Z", "last_seen": "2026-12-01T22:50:00Z",
                 "client": "curl", "mode": "rewrite",
                 "calls_per_day": {"2026-11-30": 1, "2026-12-01": 2}},
                {"subject": "u1", "kind": "user", "route": "no_such_operation", "calls": 1,
                 "first_seen": "2026-12-01T22:10:00Z", "last_seen": "2026-12-01T22:50:00Z",
                 "client": "curl", "mode": "rewrite", "calls_per_day": {}},
                {"subject": "u2", "route": "create_client_token", "calls": "many"},
            ],
        });
        let mut tally = Tally::new();
        let stats = read_snapshot("http://r1:9090", &doc, &mut tally).unwrap();
        assert_eq!(
            (
                stats.counts.admin_entries,
                stats.counts.admin_entries_skipped
            ),
            (1, 2)
        );
        assert_eq!(stats.evicted, Some(4));
        let now = humantime::parse_rfc3339("2026-12-02T00:00:00Z").unwrap();
        let report = tally.finish(now, None, vec![stats]);
        let op = &report.operations[operation_index("create_client_token").unwrap()];
        assert_eq!(op.calls, 3);
        assert_eq!(op.per_day.values().copied().collect::<Vec<_>>(), [1, 2]);
        assert!(read_snapshot("x", &json!({"kind": "other"}), &mut Tally::new()).is_err());
    }

    #[test]
    fn sources_that_are_urls() {
        assert!(is_url("http://10.0.0.5:9090"));
        assert!(is_url("HTTPS://x"));
        assert!(!is_url("http.log"));
        assert!(!is_url("-"));
        assert!(!is_url("é"));
    }
}

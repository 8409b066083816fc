//! `report`: who still calls the deprecated operations, across every replica.
//!
//! The report merges any number of sources into one picture:
//! - access logs as the proxy writes them in JSON (`log.format = "json"`), plain or gzip
//!   (recognised by its magic bytes, not its name), `-` for standard input, with or without
//!   the `[pod/NAME/container] ` prefix of `kubectl logs --prefix` (`logs`);
//! - the `GET /legacy/callers` table of running replicas, `http://host:port` of their admin
//!   listener (`replica`). That table counts since the replica started and holds a bounded
//!   number of callers; give a replica's logs or its table, not both, or its calls count twice.
//!
//! It lists, per deprecated operation (every one of `routes::ROUTES`, called or not), the calls,
//! distinct callers, last call and calls per UTC day; per caller, the operations it still calls;
//! with a quiet period, the operations nobody called since `now - quiet_since`, ready to switch
//! to `reject`; and what was read and skipped. Nothing but subject ids, client product names,
//! modes, counts and times is printed: no raw line, no client address, no header value.
//!
//! Three formats (`render`, `html`): a plain-text table that fits 100 columns, one JSON
//! object, one self-contained HTML page.
//!
//! # The JSON format
//!
//! Keys always present, in this order; times are RFC 3339 UTC to the second, days `YYYY-MM-DD`
//! (UTC), `null` where there is nothing to say:
//!
//! ```json
//! {
//!   "kind": "onezone-migration-proxy/legacy-report",
//!   "version": 1,
//!   "generated": "2026-12-01T23:00:00Z",
//!   "quiet_since_s": 1209600,               // null without a quiet period
//!   "quiet_cutoff": "2026-11-17T23:00:00Z",  // generated - quiet_since, or null
//!   "totals": {"calls": 5, "callers": 2, "unidentified_calls": 1},
//!   "operations": [                          // every deprecated operation, in ROUTES order
//!     {"operation": "create_user_group_invite_token", "method": "POST",
//!      "template": "/groups/{id}/users/token",
//!      "calls": 3,
//!      "callers": 2,                         // distinct identified subjects
//!      "unidentified_calls": 1,              // calls without a subject
//!      "last_call": "2026-12-01T22:50:00Z",  // null when never called
//!      "calls_per_day": {"2026-12-01": 3}}
//!   ],
//!   "callers": [                             // by last_seen, most recent first
//!     {"subject": "u1",                      // "" for the unidentified calls
//!      "kind": "user",                       // "user", "provider" or ""
//!      "calls": 2,
//!      "first_seen": "2026-12-01T22:10:00Z", "last_seen": "2026-12-01T22:50:00Z",
//!      "operations": {"create_user_group_invite_token": 2},  // most called first
//!      "clients": ["onedatafs"],             // client products, sorted
//!      "modes": ["rewrite"]}
//!   ],
//!   "quiet_operations": [                    // null without a quiet period
//!     {"operation": "create_child_group_token", "last_call": null}
//!   ],
//!   "input": {
//!     "sources": 2, "lines_read": 10, "legacy_lines": 4, "other_lines": 4,
//!     "malformed_lines": 2, "admin_entries": 1, "admin_entries_skipped": 0,
//!     "per_source": [
//!       {"source": "replica-a.log", "type": "log",   // "log" or "admin"
//!        "lines_read": 10, "legacy_lines": 4, "other_lines": 4, "malformed_lines": 2,
//!        "admin_entries": 0, "admin_entries_skipped": 0,
//!        "replica_started": null, "replica_now": null, "evicted": null,  // admin only
//!        "error": null}                      // a read error that ended the source early
//!     ]
//!   }
//! }
//! ```
//!
//! `lines_read` = `legacy_lines` + `other_lines` + `malformed_lines` (blank lines are not
//! counted). Other lines are well-formed lines that are not legacy calls: pass-through access
//! lines, tunnel lines, lines of other targets. An admin entry's `calls_per_day` covers its last
//! 31 days only, so an operation's days may add up to less than its `calls`.

mod html;
mod http;
mod logs;
mod render;
mod replica;
mod tally;

use std::io::Write;
use std::time::{Duration, SystemTime};

/// The output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// Plain text, at most 100 columns.
    #[default]
    Table,
    /// One JSON object (schema in the module documentation).
    Json,
    /// One self-contained HTML page with a chart of calls per day.
    Html,
}

/// What to read and how to show it.
#[derive(Debug, Clone)]
pub struct ReportArgs {
    /// Access-log files, `-` for standard input, or `http://host:port` admin listeners.
    pub sources: Vec<String>,
    /// List the operations without a call for this long.
    pub quiet_since: Option<Duration>,
    pub format: Format,
    /// The report's "now": the end of the trend and of the quiet period.
    pub now: SystemTime,
}

/// The report's main figures, for the caller's own message or exit status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub sources: usize,
    pub lines_read: u64,
    pub legacy_lines: u64,
    pub other_lines: u64,
    pub malformed_lines: u64,
    pub admin_entries: u64,
    /// Legacy calls, from logs and admin tables.
    pub calls: u64,
    /// Distinct identified callers.
    pub callers: usize,
    pub unidentified_calls: u64,
    /// The operations without a call in the quiet period, when one was given.
    pub quiet_operations: Option<Vec<&'static str>>,
}

/// Reads every source, then writes the report to `stdout`. A source that cannot be opened or
/// fetched is an error naming it; lines that are not legacy calls are counted, never fatal.
/// With `stderr_is_terminal`, long inputs show their progress on standard error.
pub fn run(
    args: ReportArgs,
    stdout: &mut dyn Write,
    stderr_is_terminal: bool,
) -> Result<Summary, String> {
    if args.sources.is_empty() {
        return Err(
            "nothing to read: give access-log files (- for standard input) or admin URLs".into(),
        );
    }
    let mut tally = tally::Tally::new();
    let mut progress = logs::Progress::new(stderr_is_terminal);
    let mut sources = Vec::with_capacity(args.sources.len());
    for source in &args.sources {
        let stats = if replica::is_url(source) {
            replica::read(source, &mut tally)?
        } else {
            logs::read(source, &mut tally, &mut progress)?
        };
        sources.push(stats);
    }
    progress.finish();
    let report = tally.finish(args.now, args.quiet_since, sources);
    let written = match args.format {
        Format::Table => render::table(&report, stdout),
        Format::Json => render::json(&report, stdout),
        Format::Html => html::page(&report, stdout),
    };
    written
        .and_then(|()| stdout.flush())
        .map_err(|e| format!("writing the report: {e}"))?;
    Ok(report.summary())
}

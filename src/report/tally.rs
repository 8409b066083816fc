//! Adding up the legacy calls of every source, and the finished report the formats print.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, SystemTime};

use crate::callers::day_of;
use crate::routes::{Route, ROUTES};

use super::Summary;

/// Calls of one caller to one operation: one log line, or one admin table entry.
pub(crate) struct Calls<'a> {
    /// `""` when the caller is unidentified.
    pub(crate) subject: &'a str,
    pub(crate) kind: &'a str,
    /// Index into `ROUTES`.
    pub(crate) operation: usize,
    pub(crate) client: &'a str,
    pub(crate) mode: &'a str,
    pub(crate) calls: u64,
    pub(crate) first_seen: SystemTime,
    pub(crate) last_seen: SystemTime,
    /// (UTC day number, calls).
    pub(crate) per_day: &'a [(u32, u64)],
}

/// The running totals.
pub(crate) struct Tally {
    operations: Vec<OperationTally>,
    callers: HashMap<String, CallerTally>,
}

#[derive(Default)]
struct OperationTally {
    calls: u64,
    last_call: Option<SystemTime>,
    per_day: BTreeMap<u32, u64>,
}

struct CallerTally {
    kind: String,
    calls: u64,
    first_seen: SystemTime,
    last_seen: SystemTime,
    /// Calls per index into `ROUTES`.
    operations: BTreeMap<usize, u64>,
    clients: BTreeSet<String>,
    modes: BTreeSet<String>,
}

/// The index into `ROUTES` of a deprecated operation id.
pub(crate) fn operation_index(operation: &str) -> Option<usize> {
    ROUTES.iter().position(|r| r.operation == operation)
}

impl Tally {
    pub(crate) fn new() -> Self {
        Tally {
            operations: ROUTES.iter().map(|_| OperationTally::default()).collect(),
            callers: HashMap::new(),
        }
    }

    pub(crate) fn add(&mut self, c: &Calls<'_>) {
        let Some(op) = self.operations.get_mut(c.operation) else {
            return;
        };
        op.calls += c.calls;
        op.last_call = op.last_call.max(Some(c.last_seen));
        for &(day, n) in c.per_day {
            *op.per_day.entry(day).or_default() += n;
        }
        let caller = match self.callers.get_mut(c.subject) {
            Some(caller) => caller,
            None => self
                .callers
                .entry(c.subject.to_string())
                .or_insert_with(|| CallerTally {
                    kind: String::new(),
                    calls: 0,
                    first_seen: c.first_seen,
                    last_seen: c.last_seen,
                    operations: BTreeMap::new(),
                    clients: BTreeSet::new(),
                    modes: BTreeSet::new(),
                }),
        };
        caller.calls += c.calls;
        caller.first_seen = caller.first_seen.min(c.first_seen);
        // The kind of the most recent call that names one.
        if !c.kind.is_empty() && (caller.kind.is_empty() || c.last_seen >= caller.last_seen) {
            c.kind.clone_into(&mut caller.kind);
        }
        caller.last_seen = caller.last_seen.max(c.last_seen);
        *caller.operations.entry(c.operation).or_default() += c.calls;
        for (set, value) in [(&mut caller.clients, c.client), (&mut caller.modes, c.mode)] {
            if !value.is_empty() && !set.contains(value) {
                set.insert(value.to_string());
            }
        }
    }

    /// The report as of `now`.
    pub(crate) fn finish(
        self,
        now: SystemTime,
        quiet_since: Option<Duration>,
        sources: Vec<SourceStats>,
    ) -> Report {
        let mut callers: Vec<CallerRow> = self
            .callers
            .into_iter()
            .map(|(subject, c)| {
                let mut operations: Vec<(&'static str, u64)> = c
                    .operations
                    .iter()
                    .map(|(&i, &n)| (ROUTES[i].operation, n))
                    .collect();
                operations.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
                CallerRow {
                    subject,
                    kind: c.kind,
                    calls: c.calls,
                    first_seen: c.first_seen,
                    last_seen: c.last_seen,
                    operations,
                    clients: c.clients.into_iter().collect(),
                    modes: c.modes.into_iter().collect(),
                }
            })
            .collect();
        callers.sort_by(|a, b| {
            b.last_seen
                .cmp(&a.last_seen)
                .then_with(|| a.subject.cmp(&b.subject))
        });
        let operations: Vec<OperationRow> = ROUTES
            .iter()
            .zip(self.operations)
            .map(|(route, op)| {
                let calling = callers
                    .iter()
                    .filter(|c| c.operations.iter().any(|(o, _)| *o == route.operation));
                let (mut identified, mut unidentified) = (0, 0);
                for c in calling {
                    match c.subject.is_empty() {
                        true => unidentified += c.count(route.operation),
                        false => identified += 1,
                    }
                }
                OperationRow {
                    route,
                    calls: op.calls,
                    callers: identified,
                    unidentified_calls: unidentified,
                    last_call: op.last_call,
                    per_day: op.per_day,
                }
            })
            .collect();
        let quiet = quiet_since.map(|quiet| {
            let cutoff = now.checked_sub(quiet).unwrap_or(SystemTime::UNIX_EPOCH);
            (0..operations.len())
                .filter(|&i| operations[i].last_call.is_none_or(|t| t < cutoff))
                .collect()
        });
        Report {
            generated: now,
            quiet_since,
            operations,
            callers,
            quiet,
            sources,
        }
    }
}

/// What one source gave.
#[derive(Debug, Default)]
pub(crate) struct SourceStats {
    /// The path (`(standard input)` for `-`) or the admin URL.
    pub(crate) name: String,
    pub(crate) admin: bool,
    /// What was read from it.
    pub(crate) counts: Counts,
    pub(crate) replica_started: Option<SystemTime>,
    pub(crate) replica_now: Option<SystemTime>,
    pub(crate) evicted: Option<u64>,
    /// A read error that ended this source before its end (what came before it counts).
    pub(crate) error: Option<String>,
}

/// One deprecated operation in the report.
pub(crate) struct OperationRow {
    pub(crate) route: &'static Route,
    pub(crate) calls: u64,
    /// Distinct identified callers.
    pub(crate) callers: u64,
    pub(crate) unidentified_calls: u64,
    pub(crate) last_call: Option<SystemTime>,
    /// UTC day number to calls.
    pub(crate) per_day: BTreeMap<u32, u64>,
}

/// One caller in the report; `subject` is `""` for the unidentified calls.
pub(crate) struct CallerRow {
    pub(crate) subject: String,
    pub(crate) kind: String,
    pub(crate) calls: u64,
    pub(crate) first_seen: SystemTime,
    pub(crate) last_seen: SystemTime,
    /// Operation and calls, most called first.
    pub(crate) operations: Vec<(&'static str, u64)>,
    pub(crate) clients: Vec<String>,
    pub(crate) modes: Vec<String>,
}

impl CallerRow {
    fn count(&self, operation: &str) -> u64 {
        self.operations
            .iter()
            .find(|(o, _)| *o == operation)
            .map_or(0, |(_, n)| *n)
    }
}

/// Everything the formats print.
pub(crate) struct Report {
    pub(crate) generated: SystemTime,
    pub(crate) quiet_since: Option<Duration>,
    /// Every deprecated operation, in `ROUTES` order.
    pub(crate) operations: Vec<OperationRow>,
    /// By last seen, most recent first.
    pub(crate) callers: Vec<CallerRow>,
    /// Indices into `operations` of those without a call in the quiet period.
    pub(crate) quiet: Option<Vec<usize>>,
    pub(crate) sources: Vec<SourceStats>,
}

/// Lines and entries read: per source, and summed over all of them.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Counts {
    pub(crate) lines_read: u64,
    pub(crate) legacy_lines: u64,
    pub(crate) other_lines: u64,
    pub(crate) malformed_lines: u64,
    pub(crate) admin_entries: u64,
    /// Admin entries of an operation this build does not know, or without their fields.
    pub(crate) admin_entries_skipped: u64,
}

impl Counts {
    fn add(&mut self, o: &Counts) {
        self.lines_read += o.lines_read;
        self.legacy_lines += o.legacy_lines;
        self.other_lines += o.other_lines;
        self.malformed_lines += o.malformed_lines;
        self.admin_entries += o.admin_entries;
        self.admin_entries_skipped += o.admin_entries_skipped;
    }

    /// The counts as keys of a JSON object, in the documented order.
    pub(crate) fn write_into(&self, o: &mut serde_json::Map<String, serde_json::Value>) {
        for (key, n) in [
            ("lines_read", self.lines_read),
            ("legacy_lines", self.legacy_lines),
            ("other_lines", self.other_lines),
            ("malformed_lines", self.malformed_lines),
            ("admin_entries", self.admin_entries),
            ("admin_entries_skipped", self.admin_entries_skipped),
        ] {
            o.insert(key.to_string(), n.into());
        }
    }
}

impl Report {
    pub(crate) fn totals(&self) -> Counts {
        let mut t = Counts::default();
        for s in &self.sources {
            t.add(&s.counts);
        }
        t
    }

    pub(crate) fn calls(&self) -> u64 {
        self.operations.iter().map(|o| o.calls).sum()
    }

    pub(crate) fn identified_callers(&self) -> usize {
        self.callers
            .iter()
            .filter(|c| !c.subject.is_empty())
            .count()
    }

    pub(crate) fn unidentified_calls(&self) -> u64 {
        self.callers
            .iter()
            .filter(|c| c.subject.is_empty())
            .map(|c| c.calls)
            .sum()
    }

    /// `generated - quiet_since`, when a quiet period was given.
    pub(crate) fn quiet_cutoff(&self) -> Option<SystemTime> {
        let quiet = self.quiet_since?;
        Some(
            self.generated
                .checked_sub(quiet)
                .unwrap_or(SystemTime::UNIX_EPOCH),
        )
    }

    /// The UTC day of `generated`: the last day of the trend.
    pub(crate) fn today(&self) -> u32 {
        day_of(self.generated)
    }

    pub(crate) fn summary(&self) -> Summary {
        let t = self.totals();
        Summary {
            sources: self.sources.len(),
            lines_read: t.lines_read,
            legacy_lines: t.legacy_lines,
            other_lines: t.other_lines,
            malformed_lines: t.malformed_lines,
            admin_entries: t.admin_entries,
            calls: self.calls(),
            callers: self.identified_callers(),
            unidentified_calls: self.unidentified_calls(),
            quiet_operations: self.quiet.as_ref().map(|q| {
                q.iter()
                    .map(|&i| self.operations[i].route.operation)
                    .collect()
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> SystemTime {
        humantime::parse_rfc3339(s).unwrap()
    }

    #[test]
    fn calls_add_up_per_operation_and_per_caller() {
        let mut tally = Tally::new();
        let op = operation_index("create_client_token").unwrap();
        let other = operation_index("list_client_tokens").unwrap();
        let t1 = at("2026-12-01T10:00:00Z");
        let t2 = at("2026-12-02T10:00:00Z");
        let one = |subject, kind, operation, client, t, per_day| Calls {
            subject,
            kind,
            operation,
            client,
            mode: "rewrite",
            calls: 1,
            first_seen: t,
            last_seen: t,
            per_day,
        };
        let (d1, d2) = ([(day_of(t1), 1)], [(day_of(t2), 1)]);
        tally.add(&one("u1", "", op, "curl", t2, &d2));
        tally.add(&one("u1", "user", op, "onedatafs", t1, &d1));
        tally.add(&one("u1", "user", other, "curl", t1, &d1));
        tally.add(&one("", "", op, "other", t1, &d1));
        tally.add(&one("u2", "user", op, "curl", t1, &d1));
        let report = tally.finish(t2, Some(Duration::from_secs(3600)), Vec::new());
        let row = &report.operations[op];
        assert_eq!((row.calls, row.callers, row.unidentified_calls), (4, 2, 1));
        assert_eq!(row.last_call, Some(t2));
        assert_eq!(
            row.per_day,
            BTreeMap::from([(day_of(t1), 3), (day_of(t2), 1)])
        );
        let u1 = &report.callers[0];
        assert_eq!(
            (u1.subject.as_str(), u1.kind.as_str(), u1.calls),
            ("u1", "user", 3)
        );
        assert_eq!(
            u1.operations,
            [("create_client_token", 2), ("list_client_tokens", 1)]
        );
        assert_eq!(u1.clients, ["curl", "onedatafs"]);
        assert_eq!((u1.first_seen, u1.last_seen), (t1, t2));
        // Quiet for the last hour: everything but create_client_token.
        let quiet = report.summary().quiet_operations.unwrap();
        assert_eq!(quiet.len(), ROUTES.len() - 1);
        assert!(!quiet.contains(&"create_client_token"));
        assert_eq!(
            (report.identified_callers(), report.unidentified_calls()),
            (2, 1)
        );
    }
}

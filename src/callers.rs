//! Who still calls, as this replica saw it: a bounded table of legacy callers.
//!
//! One entry per (subject, operation): how many calls, when first and last seen, the client
//! product and mode of the last call, and the calls of each of the last [`DAYS_KEPT`] UTC days.
//! The table keeps at most `capacity` entries; when a new caller comes to a full table, the
//! entry seen least recently is dropped (and counted in `evicted`). Recording a call is one
//! lock, one hash look-up and a few index writes: the recency order is a doubly linked list
//! threaded through the entries' slots, so nothing is allocated for a caller already known.
//!
//! [`CallerTable::snapshot`] is the JSON that the admin listener serves at
//! `GET /legacy/callers` and that `report --from` reads back (schema in its doc). The table
//! lives in memory only: it covers this replica since it started and a restart empties it.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

/// The `kind` of a snapshot document.
pub(crate) const SNAPSHOT_KIND: &str = "onezone-migration-proxy/legacy-callers";
/// The `version` of a snapshot document.
pub(crate) const SNAPSHOT_VERSION: u64 = 1;
/// UTC days of per-day counts kept per entry: the newest day and the 30 before it.
pub(crate) const DAYS_KEPT: u32 = 31;
const NOTE: &str = "per replica, since this replica started; reset by a restart";
const SECS_PER_DAY: u64 = 86_400;
/// "No slot" in the recency list.
const NIL: usize = usize::MAX;

/// One legacy call, as the proxy knows it when it writes the access line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CallKey {
    /// The caller's user or provider id; empty when the call could not be attributed.
    pub(crate) subject: String,
    /// `"user"`, `"provider"` or `""`.
    pub(crate) kind: &'static str,
    /// The deprecated operation's id (`routes::ROUTES[..].operation`).
    pub(crate) route: &'static str,
    /// The bounded client product label (as in the metrics).
    pub(crate) client: String,
    pub(crate) mode: &'static str,
}

/// The legacy callers of this replica, at most `capacity` of them (see the module doc).
pub(crate) struct CallerTable {
    capacity: usize,
    started: SystemTime,
    inner: Mutex<Inner>,
}

struct Inner {
    /// (subject, route) to its slot.
    index: HashMap<(String, &'static str), usize>,
    /// The entries; never more than `capacity`, a slot is reused when its entry is evicted.
    slots: Vec<Slot>,
    /// Most recently seen slot, or NIL.
    head: usize,
    /// Least recently seen slot, or NIL: the next to be evicted.
    tail: usize,
    evicted: u64,
}

struct Slot {
    subject: String,
    route: &'static str,
    kind: &'static str,
    client: String,
    mode: &'static str,
    calls: u64,
    first_seen: SystemTime,
    last_seen: SystemTime,
    /// (UTC day number, calls), oldest first, at most DAYS_KEPT days.
    days: Vec<(u32, u64)>,
    /// Neighbours in the recency list: `prev` was seen more recently.
    prev: usize,
    next: usize,
}

impl CallerTable {
    /// An empty table for at most `capacity` entries (0 keeps none: every call is evicted).
    pub(crate) fn new(capacity: usize) -> Self {
        CallerTable {
            capacity,
            started: SystemTime::now(),
            inner: Mutex::new(Inner {
                index: HashMap::new(),
                slots: Vec::new(),
                head: NIL,
                tail: NIL,
                evicted: 0,
            }),
        }
    }

    /// Counts one legacy call made at `now`.
    pub(crate) fn record(&self, key: CallKey, now: SystemTime) {
        let mut inner = self.lock();
        inner.record(self.capacity, key, now);
    }

    /// The table as the JSON document of `GET /legacy/callers`, entries by last seen, newest
    /// first:
    ///
    /// ```json
    /// {"kind": "onezone-migration-proxy/legacy-callers", "version": 1,
    ///  "started": "2026-12-01T22:00:00Z", "now": "2026-12-01T23:00:00Z",
    ///  "capacity": 10000, "entries": 1, "evicted": 0,
    ///  "note": "per replica, since this replica started; reset by a restart",
    ///  "callers": [{"subject": "u1", "kind": "user", "route": "create_user_group_invite_token",
    ///    "calls": 3, "first_seen": "2026-12-01T22:10:00Z", "last_seen": "2026-12-01T22:50:00Z",
    ///    "client": "onedatafs", "mode": "rewrite", "calls_per_day": {"2026-12-01": 3}}]}
    /// ```
    ///
    /// Times are RFC 3339 UTC to the second; `subject` is `""` for unattributed calls;
    /// `client` and `mode` are those of the entry's last call; `calls_per_day` has at most the
    /// last 31 UTC days (so it may add up to less than `calls`).
    pub(crate) fn snapshot(&self) -> Value {
        self.snapshot_at(SystemTime::now())
    }

    fn snapshot_at(&self, now: SystemTime) -> Value {
        let inner = self.lock();
        let mut rows: Vec<&Slot> = inner.slots.iter().collect();
        rows.sort_by(|a, b| {
            b.last_seen
                .cmp(&a.last_seen)
                .then_with(|| a.subject.cmp(&b.subject))
                .then_with(|| a.route.cmp(b.route))
        });
        let oldest_day = day_of(now).saturating_sub(DAYS_KEPT - 1);
        let callers: Vec<Value> = rows
            .iter()
            .map(|s| {
                let per_day: Map<String, Value> = s
                    .days
                    .iter()
                    .filter(|(day, _)| *day >= oldest_day)
                    .map(|&(day, calls)| (day_name(day), Value::from(calls)))
                    .collect();
                json!({
                    "subject": s.subject,
                    "kind": s.kind,
                    "route": s.route,
                    "calls": s.calls,
                    "first_seen": rfc3339(s.first_seen),
                    "last_seen": rfc3339(s.last_seen),
                    "client": s.client,
                    "mode": s.mode,
                    "calls_per_day": per_day,
                })
            })
            .collect();
        json!({
            "kind": SNAPSHOT_KIND,
            "version": SNAPSHOT_VERSION,
            "started": rfc3339(self.started),
            "now": rfc3339(now),
            "capacity": self.capacity,
            "entries": inner.slots.len(),
            "evicted": inner.evicted,
            "note": NOTE,
            "callers": callers,
        })
    }

    /// An estimate of the heap the table holds, from its collections' capacities.
    #[cfg(test)]
    pub(crate) fn approx_bytes(&self) -> usize {
        let inner = self.lock();
        // A hashbrown bucket is the (key, value) pair plus one control byte.
        let bucket = std::mem::size_of::<((String, &'static str), usize)>() + 1;
        let keys: usize = inner.index.keys().map(|(s, _)| s.capacity()).sum();
        let slots: usize = inner
            .slots
            .iter()
            .map(|s| {
                s.subject.capacity()
                    + s.client.capacity()
                    + s.days.capacity() * std::mem::size_of::<(u32, u64)>()
            })
            .sum();
        std::mem::size_of::<Self>()
            + inner.index.capacity() * bucket
            + keys
            + inner.slots.capacity() * std::mem::size_of::<Slot>()
            + slots
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Inner {
    fn record(&mut self, capacity: usize, key: CallKey, now: SystemTime) {
        let CallKey {
            subject,
            kind,
            route,
            client,
            mode,
        } = key;
        let id = (subject, route);
        if let Some(&i) = self.index.get(&id) {
            let slot = &mut self.slots[i];
            slot.calls += 1;
            if !kind.is_empty() {
                slot.kind = kind;
            }
            slot.client = client;
            slot.mode = mode;
            // Calls recorded from several threads may arrive slightly out of order.
            slot.first_seen = slot.first_seen.min(now);
            slot.last_seen = slot.last_seen.max(now);
            count_day(&mut slot.days, day_of(now));
            self.unlink(i);
            self.push_front(i);
            return;
        }
        if capacity == 0 {
            self.evicted += 1;
            return;
        }
        let fresh = Slot {
            subject: id.0.clone(),
            route,
            kind,
            client,
            mode,
            calls: 1,
            first_seen: now,
            last_seen: now,
            days: Vec::new(),
            prev: NIL,
            next: NIL,
        };
        let i = if self.slots.len() < capacity {
            if self.slots.len() == self.slots.capacity() {
                // Grow by doubling, but never past the bound.
                let want = (self.slots.len() * 2).max(16).min(capacity);
                self.slots.reserve_exact(want - self.slots.len());
            }
            self.slots.push(fresh);
            if self.slots.len() == capacity {
                // From now on every new caller removes one key and adds another. The removed
                // keys leave tombstones, and a hash map at more than half of its room grows
                // when they fill it; with room for twice the bound it rehashes in place
                // instead. So the index takes its steady-state size once, now.
                self.index.reserve(capacity);
            }
            self.slots.len() - 1
        } else {
            let i = self.tail;
            self.unlink(i);
            let old = &mut self.slots[i];
            let mut days = std::mem::take(&mut old.days);
            let gone = (std::mem::take(&mut old.subject), old.route);
            self.index.remove(&gone);
            self.evicted += 1;
            days.clear();
            self.slots[i] = Slot { days, ..fresh };
            i
        };
        count_day(&mut self.slots[i].days, day_of(now));
        self.index.insert(id, i);
        self.push_front(i);
    }

    fn unlink(&mut self, i: usize) {
        let (prev, next) = (self.slots[i].prev, self.slots[i].next);
        match prev {
            NIL => self.head = next,
            p => self.slots[p].next = next,
        }
        match next {
            NIL => self.tail = prev,
            n => self.slots[n].prev = prev,
        }
        self.slots[i].prev = NIL;
        self.slots[i].next = NIL;
    }

    fn push_front(&mut self, i: usize) {
        self.slots[i].prev = NIL;
        self.slots[i].next = self.head;
        match self.head {
            NIL => self.tail = i,
            h => self.slots[h].prev = i,
        }
        self.head = i;
    }
}

/// Adds one call to `day`, keeping the days sorted and within [`DAYS_KEPT`] of the newest.
fn count_day(days: &mut Vec<(u32, u64)>, day: u32) {
    match days.iter().rposition(|&(d, _)| d <= day) {
        Some(p) if days[p].0 == day => {
            days[p].1 += 1;
            return;
        }
        Some(p) => days.insert(p + 1, (day, 1)),
        None => days.insert(0, (day, 1)),
    }
    let newest = days.last().map_or(day, |&(d, _)| d);
    let oldest = newest.saturating_sub(DAYS_KEPT - 1);
    days.retain(|&(d, _)| d >= oldest);
}

/// The UTC day number (days since 1970-01-01) of a time; times before 1970 count as day 0.
pub(crate) fn day_of(t: SystemTime) -> u32 {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    u32::try_from(secs / SECS_PER_DAY).unwrap_or(u32::MAX)
}

/// `YYYY-MM-DD` of a UTC day number.
pub(crate) fn day_name(day: u32) -> String {
    let t = UNIX_EPOCH + Duration::from_secs(u64::from(day) * SECS_PER_DAY);
    let mut s = rfc3339(t);
    s.truncate(10);
    s
}

/// RFC 3339 UTC, to the second.
pub(crate) fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> SystemTime {
        humantime::parse_rfc3339(s).unwrap()
    }

    fn key(subject: &str, route: &'static str) -> CallKey {
        CallKey {
            subject: subject.to_string(),
            kind: "user",
            route,
            client: "onedatafs".into(),
            mode: "rewrite",
        }
    }

    fn subjects(snapshot: &Value) -> Vec<String> {
        snapshot["callers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["subject"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn snapshot_has_the_documented_shape() {
        let mut table = CallerTable::new(10_000);
        table.started = at("2026-12-01T22:00:00Z");
        let route = "create_user_group_invite_token";
        for t in ["22:10:00", "22:30:00", "22:50:00"] {
            table.record(key("u1", route), at(&format!("2026-12-01T{t}Z")));
        }
        table.record(
            CallKey {
                subject: String::new(),
                kind: "",
                route: "list_client_tokens",
                client: "other".into(),
                mode: "annotate",
            },
            at("2026-12-01T22:20:00.750Z"),
        );
        let got = table.snapshot_at(at("2026-12-01T23:00:00Z"));
        let want = json!({
            "kind": "onezone-migration-proxy/legacy-callers", "version": 1,
            "started": "2026-12-01T22:00:00Z", "now": "2026-12-01T23:00:00Z",
            "capacity": 10000, "entries": 2, "evicted": 0,
            "note": "per replica, since this replica started; reset by a restart",
            "callers": [
                {"subject": "u1", "kind": "user", "route": route, "calls": 3,
                 "first_seen": "2026-12-01T22:10:00Z", "last_seen": "2026-12-01T22:50:00Z",
                 "client": "onedatafs", "mode": "rewrite", "calls_per_day": {"2026-12-01": 3}},
                {"subject": "", "kind": "", "route": "list_client_tokens", "calls": 1,
                 "first_seen": "2026-12-01T22:20:00Z", "last_seen": "2026-12-01T22:20:00Z",
                 "client": "other", "mode": "annotate", "calls_per_day": {"2026-12-01": 1}},
            ],
        });
        assert_eq!(got, want);
        // Key order is part of the format (serde_json keeps insertion order here).
        let text = serde_json::to_string(&got).unwrap();
        assert!(text.starts_with(
            r#"{"kind":"onezone-migration-proxy/legacy-callers","version":1,"started""#
        ));
    }

    #[test]
    fn the_bound_holds_under_100_000_distinct_callers() {
        let table = CallerTable::new(1_000);
        let t0 = at("2026-12-01T00:00:00Z");
        for n in 0..100_000u64 {
            let now = t0 + Duration::from_millis(n);
            table.record(key(&format!("user-{n}"), "create_client_token"), now);
        }
        let snap = table.snapshot_at(t0 + Duration::from_secs(3600));
        assert_eq!(snap["entries"], 1_000);
        assert_eq!(snap["evicted"], 100_000 - 1_000);
        let names = subjects(&snap);
        assert_eq!(names.len(), 1_000);
        // The survivors are the most recent callers, newest first.
        assert_eq!(names[0], "user-99999");
        assert_eq!(names[999], "user-99000");
        let inner = table.lock();
        assert_eq!(inner.index.len(), 1_000);
        assert!(inner.slots.capacity() <= 1_000);
    }

    #[test]
    fn the_least_recently_seen_entry_is_evicted() {
        let table = CallerTable::new(3);
        let t0 = at("2026-12-01T00:00:00Z");
        let s = |n| t0 + Duration::from_secs(n);
        let route = "create_client_token";
        table.record(key("a", route), s(1));
        table.record(key("b", route), s(2));
        table.record(key("c", route), s(3));
        // `a` is seen again: `b` is now the least recently seen.
        table.record(key("a", route), s(4));
        table.record(key("d", route), s(5));
        assert_eq!(subjects(&table.snapshot_at(s(6))), ["d", "a", "c"]);
        // The same subject on another operation is another entry.
        table.record(key("c", "list_client_tokens"), s(7));
        let snap = table.snapshot_at(s(8));
        assert_eq!(subjects(&snap), ["c", "d", "a"]);
        assert_eq!(snap["callers"][0]["route"], "list_client_tokens");
        assert_eq!(snap["callers"][2]["calls"], 2);
        assert_eq!(snap["evicted"], 2);
        // An evicted caller that comes back starts over.
        table.record(key("b", route), s(9));
        let snap = table.snapshot_at(s(10));
        assert_eq!(subjects(&snap), ["b", "c", "d"]);
        assert_eq!(snap["callers"][0]["calls"], 1);
        assert_eq!(snap["callers"][0]["first_seen"], rfc3339(s(9)));
    }

    #[test]
    fn calls_are_counted_per_utc_day_for_31_days() {
        let table = CallerTable::new(10);
        let route = "create_space_support_token";
        let day0 = at("2026-11-01T23:59:59Z");
        table.record(key("p", route), day0);
        table.record(key("p", route), day0 + Duration::from_secs(1)); // 2026-11-02
        table.record(key("p", route), day0 + Duration::from_secs(2));
        let snap = table.snapshot_at(day0 + Duration::from_secs(60));
        assert_eq!(
            snap["callers"][0]["calls_per_day"],
            json!({"2026-11-01": 1, "2026-11-02": 2})
        );
        // 31 days on (2026-12-02), 2026-11-01 is out of the window, 2026-11-02 still in.
        let later = day0 + Duration::from_secs(31 * SECS_PER_DAY);
        table.record(key("p", route), later);
        // A call stamped a little earlier than the last one lands on its own day, in order.
        table.record(key("p", route), later - Duration::from_secs(SECS_PER_DAY));
        let snap = table.snapshot_at(later);
        let entry = &snap["callers"][0];
        assert_eq!(
            entry["calls_per_day"],
            json!({"2026-11-02": 2, "2026-12-01": 1, "2026-12-02": 1})
        );
        assert_eq!(entry["calls"], 5);
        assert_eq!(entry["first_seen"], "2026-11-01T23:59:59Z");
        assert_eq!(entry["last_seen"], rfc3339(later));
        // The snapshot leaves out days too old for its own `now` as well.
        let snap = table.snapshot_at(later + Duration::from_secs(20 * SECS_PER_DAY));
        assert_eq!(
            snap["callers"][0]["calls_per_day"],
            json!({"2026-12-01": 1, "2026-12-02": 1})
        );
        let inner = table.lock();
        assert!(inner.slots[0].days.len() <= DAYS_KEPT as usize);
    }

    #[test]
    fn memory_stays_flat_once_the_table_is_full() {
        let table = CallerTable::new(10_000);
        let t0 = at("2026-12-01T00:00:00Z");
        let mut after_first = 0;
        for n in 0..100_000u64 {
            let now = t0 + Duration::from_millis(n * 10);
            table.record(key(&format!("subject-{n:08}"), "create_client_token"), now);
            if n == 9_999 {
                after_first = table.approx_bytes();
            }
        }
        let after_all = table.approx_bytes();
        assert!(after_first > 10_000 * std::mem::size_of::<Slot>());
        assert!(
            after_all * 10 <= after_first * 12,
            "{after_all} bytes after 100,000 callers, {after_first} after 10,000"
        );
    }

    #[test]
    fn the_same_callers_again_and_again_stay_five_entries() {
        let table = CallerTable::new(100);
        let t0 = at("2026-12-01T00:00:00Z");
        for n in 0..100_000u64 {
            let now = t0 + Duration::from_millis(n);
            table.record(key(&format!("u{}", n % 5), "create_client_token"), now);
        }
        let snap = table.snapshot_at(t0 + Duration::from_secs(3600));
        assert_eq!(snap["entries"], 5);
        assert_eq!(snap["evicted"], 0);
        let calls: u64 = snap["callers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["calls"].as_u64().unwrap())
            .sum();
        assert_eq!(calls, 100_000);
        assert_eq!(subjects(&snap), ["u4", "u3", "u2", "u1", "u0"]);
    }

    #[test]
    fn concurrent_records_are_all_counted() {
        let table = CallerTable::new(50);
        let t0 = at("2026-12-01T00:00:00Z");
        std::thread::scope(|scope| {
            for worker in 0..4u64 {
                let table = &table;
                scope.spawn(move || {
                    for n in 0..10_000u64 {
                        let now = t0 + Duration::from_millis(n);
                        table.record(
                            key(&format!("u{}", (n + worker) % 20), "create_client_token"),
                            now,
                        );
                    }
                });
            }
        });
        let snap = table.snapshot_at(t0 + Duration::from_secs(60));
        assert_eq!(snap["entries"], 20);
        let calls: u64 = snap["callers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["calls"].as_u64().unwrap())
            .sum();
        assert_eq!(calls, 40_000);
    }

    #[test]
    fn a_table_of_capacity_zero_keeps_nothing() {
        let table = CallerTable::new(0);
        table.record(key("u", "create_client_token"), SystemTime::now());
        let snap = table.snapshot();
        assert_eq!(snap["entries"], 0);
        assert_eq!(snap["evicted"], 1);
    }
}

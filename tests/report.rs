//! `report`: access logs of several replicas (plain, gzip, `kubectl logs --prefix`) and the
//! admin tables of running replicas, merged into one report whose figures are checked exactly.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use flate2::write::GzEncoder;
use onezone_migration_proxy::report::{run, Format, ReportArgs, Summary};
use onezone_migration_proxy::routes::ROUTES;
use serde_json::{json, Value};

fn scratch_dir(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "omp-report-{}-{tag}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn at(t: &str) -> SystemTime {
    humantime::parse_rfc3339(t).unwrap()
}

/// The report's "now" in these tests.
const NOW: &str = "2026-12-03T12:00:00Z";

/// An access line as the proxy writes it; `None` leaves the field out (older lines).
struct Access<'a> {
    at: &'a str,
    route: &'a str,
    subject: Option<(&'a str, &'a str)>,
    product: Option<&'a str>,
    user_agent: &'a str,
    mode: &'a str,
}

impl Access<'_> {
    fn line(&self) -> String {
        let mut fields = json!({
            "route": self.route, "mode": self.mode, "method": "POST", "status": 200,
            "upstream_status": 0, "latency_ms": 3.2, "client": "10.9.8.7",
            "user_agent": self.user_agent,
        });
        if let Some((subject, kind)) = self.subject {
            fields["subject"] = json!(subject);
            fields["subject_kind"] = json!(kind);
        }
        if let Some(product) = self.product {
            fields["client_product"] = json!(product);
        }
        fields["error"] = json!("");
        json!({"timestamp": self.at, "level": "INFO", "fields": fields, "target": "access"})
            .to_string()
    }
}

fn call<'a>(at: &'a str, route: &'a str, subject: &'a str, kind: &'a str) -> Access<'a> {
    Access {
        at,
        route,
        subject: Some((subject, kind)),
        product: Some("onedatafs"),
        user_agent: "onedatafs/21.02.7",
        mode: "rewrite",
    }
}

fn passthrough(at: &str) -> String {
    Access {
        route: "passthrough",
        mode: "",
        ..call(at, "", "u1", "user")
    }
    .line()
}

const SERVER_LINE: &str = r#"{"timestamp":"2026-12-01T09:00:00.000001Z","level":"INFO","fields":{"message":"listening on 0.0.0.0:8443"},"target":"onezone_migration_proxy::server"}"#;
const TUNNEL_LINE: &str = r#"{"timestamp":"2026-12-01T09:30:00Z","level":"INFO","fields":{"message":"tunnel closed","route":"create_client_token","duration_s":12.5,"bytes_to_client":10,"bytes_from_client":20,"end":"closed"},"target":"access"}"#;

/// Replica A, a plain file: 8 lines (and a blank one): 3 legacy, 3 other, 2 malformed, the
/// last of which is cut short.
fn replica_a(dir: &Path) -> PathBuf {
    let older = Access {
        subject: None,
        product: None,
        ..call("2026-12-02T11:00:00Z", "list_client_tokens", "", "")
    };
    let curl = Access {
        product: None,
        user_agent: "curl/8.5.0",
        ..call(
            "2026-12-02T09:00:00Z",
            "create_user_group_invite_token",
            "u2",
            "user",
        )
    };
    let cut = call("2026-12-03T11:00:00Z", "create_client_token", "u3", "user").line();
    let lines = [
        call(
            "2026-12-01T10:00:00.999999Z",
            "create_user_group_invite_token",
            "u1",
            "user",
        )
        .line(),
        passthrough("2026-12-01T10:00:01Z"),
        format!("[pod/onezone-migration-proxy-7d9f-a/proxy] {}", curl.line()),
        SERVER_LINE.to_string(),
        "thread 'main' panicked, not JSON".to_string(),
        TUNNEL_LINE.to_string(),
        older.line(),
        String::new(),
    ];
    let mut text = lines.join("\n");
    text.push('\n');
    text.push_str(&cut[..cut.len() / 2]);
    let path = dir.join("replica-a.log");
    std::fs::write(&path, text).unwrap();
    path
}

/// Replica B, `kubectl logs --prefix` output compressed as two gzip members, in a file whose
/// name does not say gzip: 5 lines, 3 legacy, 1 other, 1 malformed.
fn replica_b(dir: &Path) -> PathBuf {
    let prefix = "[pod/onezone-migration-proxy-7d9f-b/proxy] ";
    let curl = Access {
        product: Some("curl"),
        ..call("2026-12-03T08:00:00Z", "remove_client_token", "u1", "user")
    };
    let provider = Access {
        product: Some("other"),
        mode: "annotate",
        ..call(
            "2026-12-03T09:30:00Z",
            "verify_provider_identity",
            "p1",
            "provider",
        )
    };
    let lines = [
        call(
            "2026-12-02T20:00:00Z",
            "create_user_group_invite_token",
            "u1",
            "user",
        )
        .line(),
        curl.line(),
        provider.line(),
        passthrough("2026-12-03T10:00:00Z"),
        "{\"timestamp\": \"2026-12-03T10:00:00Z\", \"target\": \"acc".to_string(),
    ];
    let prefixed: Vec<String> = lines.iter().map(|l| format!("{prefix}{l}\n")).collect();
    let mut bytes = Vec::new();
    for part in [&prefixed[..2], &prefixed[2..]] {
        let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(part.concat().as_bytes()).unwrap();
        bytes.extend(gz.finish().unwrap());
    }
    let path = dir.join("replica-b.log.1");
    std::fs::write(&path, bytes).unwrap();
    path
}

fn report(
    sources: &[&str],
    quiet_since: Option<Duration>,
    format: Format,
) -> Result<(String, Summary), String> {
    let args = ReportArgs {
        sources: sources.iter().map(|s| s.to_string()).collect(),
        quiet_since,
        format,
        now: at(NOW),
    };
    let mut out = Vec::new();
    let summary = run(args, &mut out, false)?;
    Ok((String::from_utf8(out).unwrap(), summary))
}

fn json_report(sources: &[&str], quiet_since: Option<Duration>) -> Value {
    let (out, _) = report(sources, quiet_since, Format::Json).unwrap();
    serde_json::from_str(&out).unwrap()
}

fn operation<'a>(report: &'a Value, op: &str) -> &'a Value {
    report["operations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["operation"] == op)
        .unwrap_or_else(|| panic!("{op} in the report"))
}

fn text(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn logs_of_two_replicas_merge_into_exact_figures() {
    let dir = scratch_dir("merge");
    let (a, b) = (replica_a(&dir), replica_b(&dir));
    let r = json_report(&[text(&a), text(&b)], None);
    assert_eq!(r["kind"], "onezone-migration-proxy/legacy-report");
    assert_eq!(r["generated"], NOW);
    assert_eq!(
        r["totals"],
        json!({"calls": 6, "callers": 3, "unidentified_calls": 1})
    );

    // Every deprecated operation is listed, in ROUTES order, called or not.
    let ops: Vec<&str> = r["operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["operation"].as_str().unwrap())
        .collect();
    let all: Vec<&str> = ROUTES.iter().map(|r| r.operation).collect();
    assert_eq!(ops, all);
    assert_eq!(
        operation(&r, "create_user_group_invite_token"),
        &json!({"operation": "create_user_group_invite_token", "method": "POST",
                "template": "/groups/{id}/users/token", "calls": 3, "callers": 2,
                "unidentified_calls": 0, "last_call": "2026-12-02T20:00:00Z",
                "calls_per_day": {"2026-12-01": 1, "2026-12-02": 2}})
    );
    let list = operation(&r, "list_client_tokens");
    assert_eq!((&list["calls"], &list["callers"]), (&json!(1), &json!(0)));
    assert_eq!(list["unidentified_calls"], 1);
    assert_eq!(list["last_call"], "2026-12-02T11:00:00Z");
    let remove = operation(&r, "remove_client_token");
    assert_eq!(
        (&remove["calls"], &remove["callers"]),
        (&json!(1), &json!(1))
    );
    assert_eq!(remove["calls_per_day"], json!({"2026-12-03": 1}));
    let verify = operation(&r, "verify_provider_identity");
    assert_eq!(verify["last_call"], "2026-12-03T09:30:00Z");
    // A tunnel line names create_client_token, but is no call; u3's line is cut short.
    let never = operation(&r, "create_client_token");
    assert_eq!(never["calls"], 0);
    assert_eq!(never["last_call"], Value::Null);
    assert_eq!(never["calls_per_day"], json!({}));
    let called: u64 = r["operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["calls"].as_u64().unwrap())
        .sum();
    assert_eq!(called, 6);

    assert_eq!(
        r["callers"],
        json!([
            {"subject": "p1", "kind": "provider", "calls": 1,
             "first_seen": "2026-12-03T09:30:00Z", "last_seen": "2026-12-03T09:30:00Z",
             "operations": {"verify_provider_identity": 1},
             "clients": ["other"], "modes": ["annotate"]},
            {"subject": "u1", "kind": "user", "calls": 3,
             "first_seen": "2026-12-01T10:00:00Z", "last_seen": "2026-12-03T08:00:00Z",
             "operations": {"create_user_group_invite_token": 2, "remove_client_token": 1},
             "clients": ["curl", "onedatafs"], "modes": ["rewrite"]},
            {"subject": "", "kind": "", "calls": 1,
             "first_seen": "2026-12-02T11:00:00Z", "last_seen": "2026-12-02T11:00:00Z",
             "operations": {"list_client_tokens": 1},
             "clients": ["onedatafs"], "modes": ["rewrite"]},
            {"subject": "u2", "kind": "user", "calls": 1,
             "first_seen": "2026-12-02T09:00:00Z", "last_seen": "2026-12-02T09:00:00Z",
             "operations": {"create_user_group_invite_token": 1},
             "clients": ["curl"], "modes": ["rewrite"]},
        ])
    );
    assert_eq!(r["quiet_operations"], Value::Null);
    assert_eq!(r["quiet_since_s"], Value::Null);

    let source = |name: &Path, lines: u64, legacy: u64, other: u64, malformed: u64| {
        json!({"source": text(name), "type": "log", "lines_read": lines,
               "legacy_lines": legacy, "other_lines": other, "malformed_lines": malformed,
               "admin_entries": 0, "admin_entries_skipped": 0, "replica_started": null,
               "replica_now": null, "evicted": null, "error": null})
    };
    assert_eq!(
        r["input"],
        json!({"sources": 2, "lines_read": 13, "legacy_lines": 6, "other_lines": 4,
               "malformed_lines": 3, "admin_entries": 0, "admin_entries_skipped": 0,
               "per_source": [source(&a, 8, 3, 3, 2), source(&b, 5, 3, 1, 1)]})
    );

    // No format prints a client address or a raw line.
    for format in [Format::Table, Format::Json, Format::Html] {
        let (out, summary) = report(&[text(&a), text(&b)], None, format).unwrap();
        assert!(!out.contains("10.9.8.7"), "{format:?}");
        assert!(
            !out.contains("latency_ms") && !out.contains("curl/8.5.0"),
            "{format:?}"
        );
        assert_eq!(
            (
                summary.calls,
                summary.callers,
                summary.lines_read,
                summary.malformed_lines
            ),
            (6, 3, 13, 3)
        );
    }
}

/// Serves one canned answer on a local port; the request comes back on the channel.
fn serve_once(answer: Vec<u8>) -> (String, std::sync::mpsc::Receiver<String>) {
    serve(answer, Duration::ZERO)
}

/// Like `serve_once`, keeping the connection open for `linger` after the answer.
fn serve(answer: Vec<u8>, linger: Duration) -> (String, std::sync::mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut request = Vec::new();
        let mut byte = [0u8; 1];
        while !request.ends_with(b"\r\n\r\n") && conn.read(&mut byte).unwrap() == 1 {
            request.push(byte[0]);
        }
        let request = String::from_utf8(request).unwrap();
        conn.write_all(&answer).unwrap();
        tx.send(request).unwrap();
        std::thread::sleep(linger);
    });
    (url, rx)
}

fn ok_json(body: &Value) -> Vec<u8> {
    let body = body.to_string();
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[test]
fn an_admin_table_and_a_log_file_merge() {
    let dir = scratch_dir("admin");
    let log = dir.join("replica-c.log");
    let line = Access {
        product: Some("curl"),
        ..call(
            "2026-12-02T10:00:00Z",
            "create_user_group_invite_token",
            "u1",
            "user",
        )
    };
    std::fs::write(&log, line.line() + "\n").unwrap();
    let snapshot = json!({
        "kind": "onezone-migration-proxy/legacy-callers", "version": 1,
        "started": "2026-11-20T07:00:00Z", "now": "2026-12-03T11:59:00Z",
        "capacity": 10000, "entries": 2, "evicted": 0,
        "note": "per replica, since this replica started; reset by a restart",
        "callers": [
            {"subject": "u1", "kind": "user", "route": "create_user_group_invite_token",
             "calls": 5, "first_seen": "2026-11-20T08:00:00Z", "last_seen": "2026-12-01T12:00:00Z",
             "client": "onedatafs", "mode": "rewrite",
             "calls_per_day": {"2026-11-20": 2, "2026-12-01": 3}},
            {"subject": "p9", "kind": "provider", "route": "create_space_support_token",
             "calls": 2, "first_seen": "2026-11-25T08:00:00Z", "last_seen": "2026-11-25T09:00:00Z",
             "client": "other", "mode": "reject", "calls_per_day": {"2026-11-25": 2}},
        ],
    });
    let (url, request) = serve_once(ok_json(&snapshot));
    let r = json_report(&[text(&log), &url], None);
    let request = request.recv().unwrap();
    assert!(
        request.starts_with("GET /legacy/callers HTTP/1.1\r\n"),
        "{request}"
    );
    assert!(request.contains("Connection: close\r\n"), "{request}");

    assert_eq!(
        operation(&r, "create_user_group_invite_token"),
        &json!({"operation": "create_user_group_invite_token", "method": "POST",
                "template": "/groups/{id}/users/token", "calls": 6, "callers": 1,
                "unidentified_calls": 0, "last_call": "2026-12-02T10:00:00Z",
                "calls_per_day": {"2026-11-20": 2, "2026-12-01": 3, "2026-12-02": 1}})
    );
    let support = operation(&r, "create_space_support_token");
    assert_eq!(
        (&support["calls"], &support["callers"]),
        (&json!(2), &json!(1))
    );
    assert_eq!(
        r["callers"],
        json!([
            {"subject": "u1", "kind": "user", "calls": 6,
             "first_seen": "2026-11-20T08:00:00Z", "last_seen": "2026-12-02T10:00:00Z",
             "operations": {"create_user_group_invite_token": 6},
             "clients": ["curl", "onedatafs"], "modes": ["rewrite"]},
            {"subject": "p9", "kind": "provider", "calls": 2,
             "first_seen": "2026-11-25T08:00:00Z", "last_seen": "2026-11-25T09:00:00Z",
             "operations": {"create_space_support_token": 2},
             "clients": ["other"], "modes": ["reject"]},
        ])
    );
    assert_eq!(
        r["totals"],
        json!({"calls": 8, "callers": 2, "unidentified_calls": 0})
    );
    let input = &r["input"];
    assert_eq!(
        (
            &input["lines_read"],
            &input["legacy_lines"],
            &input["admin_entries"]
        ),
        (&json!(1), &json!(1), &json!(2))
    );
    assert_eq!(
        input["per_source"][1],
        json!({"source": url, "type": "admin", "lines_read": 0, "legacy_lines": 0,
               "other_lines": 0, "malformed_lines": 0, "admin_entries": 2,
               "admin_entries_skipped": 0, "replica_started": "2026-11-20T07:00:00Z",
               "replica_now": "2026-12-03T11:59:00Z", "evicted": 0, "error": null})
    );
}

#[test]
fn an_admin_table_may_come_chunked_or_from_a_server_that_stays_open() {
    let snapshot = json!({
        "kind": "onezone-migration-proxy/legacy-callers", "version": 1,
        "started": "2026-12-01T00:00:00Z", "now": "2026-12-03T00:00:00Z",
        "capacity": 10, "entries": 1, "evicted": 7, "note": "",
        "callers": [{"subject": "u5", "kind": "user", "route": "create_client_token",
            "calls": 4, "first_seen": "2026-12-02T00:00:00Z", "last_seen": "2026-12-02T01:00:00Z",
            "client": "onedatafs", "mode": "rewrite", "calls_per_day": {"2026-12-02": 4}}],
    })
    .to_string();
    let (head, tail) = snapshot.split_at(snapshot.len() / 2);
    let answer = format!(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{head}\r\n{:x}\r\n{tail}\r\n0\r\n\r\n",
        head.len(),
        tail.len()
    );
    let (url, _request) = serve_once(answer.into_bytes());
    let r = json_report(&[&format!("{url}/")], None);
    assert_eq!(operation(&r, "create_client_token")["calls"], 4);
    assert_eq!(r["input"]["per_source"][0]["evicted"], 7);
    // A server that keeps the connection open: the answer ends at its Content-Length.
    let doc: Value = serde_json::from_str(&snapshot).unwrap();
    let (url, _request) = serve(ok_json(&doc), Duration::from_secs(30));
    let started = std::time::Instant::now();
    let (table, _) = report(&[&url], None, Format::Table).unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    // The table says the oldest callers of that replica are missing.
    assert!(table.contains("7 evicted"), "{table}");
}

#[test]
fn sources_that_cannot_be_read_are_errors_naming_them() {
    let (url, _request) =
        serve_once(b"HTTP/1.1 404 Not Found\r\ncontent-length: 9\r\n\r\nnot found".to_vec());
    let e = report(&[&url], None, Format::Json).unwrap_err();
    assert!(e.contains(&url) && e.contains("404"), "{e}");
    let (url, _request) = serve_once(ok_json(&json!({"status": "ok"})));
    let e = report(&[&url], None, Format::Json).unwrap_err();
    assert!(
        e.contains(&url) && e.contains("legacy callers table"),
        "{e}"
    );
    let e = report(&["https://10.0.0.5:9090"], None, Format::Json).unwrap_err();
    assert!(
        e.contains("https://10.0.0.5:9090") && e.contains("http"),
        "{e}"
    );
    // A closed port: bind one, then let it go.
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let url = format!("http://{closed}");
    let e = report(&[&url], None, Format::Json).unwrap_err();
    assert!(e.contains(&url), "{e}");
    let dir = scratch_dir("missing");
    let missing = dir.join("no-such.log");
    let e = report(&[text(&missing)], None, Format::Json).unwrap_err();
    assert!(e.contains(text(&missing)), "{e}");
    assert!(report(&[], None, Format::Json).is_err());
}

#[test]
fn table_lines_fit_100_columns() {
    let dir = scratch_dir("a-directory-with-a-rather-long-name-to-push-the-paths-past-the-width");
    let (a, b) = (replica_a(&dir), replica_b(&dir));
    let long_subject = "x".repeat(150);
    let long = dir.join(format!("{}.log", "long-file-name-".repeat(8)));
    let mut lines = String::new();
    for (i, op) in ROUTES.iter().enumerate() {
        let subject = format!("{long_subject}{i}");
        let line = Access {
            product: Some("onedatafs"),
            ..call("2026-12-03T10:00:00Z", op.operation, &subject, "provider")
        };
        lines.push_str(&line.line());
        lines.push('\n');
        // Every operation also for one caller, whose operations wrap.
        lines.push_str(&call("2026-12-03T10:00:00Z", op.operation, "wide", "user").line());
        lines.push('\n');
    }
    std::fs::write(&long, lines).unwrap();
    let (out, _) = report(
        &[text(&a), text(&b), text(&long)],
        Some(Duration::from_secs(14 * 86_400)),
        Format::Table,
    )
    .unwrap();
    for line in out.lines() {
        assert!(
            line.chars().count() <= 100,
            "{} chars: {line}",
            line.chars().count()
        );
    }
    assert!(out.contains(&format!("{}…", &long_subject[..35])), "{out}");
    assert!(out.contains("(unidentified)"));
    for section in [
        "Deprecated operations",
        "Callers, most recent first",
        "Input",
    ] {
        assert!(
            out.lines().any(|l| l.starts_with(section)),
            "{section}: {out}"
        );
    }
    assert!(out.contains("3 malformed lines"), "{out}");
    assert!(out.contains("create_provider_registration_token_for_current_user"));
}

#[test]
fn quiet_operations_are_ready_to_switch_to_reject() {
    let dir = scratch_dir("quiet");
    let (a, b) = (replica_a(&dir), replica_b(&dir));
    // Now is 2026-12-03T12:00:00Z: quiet since 2026-12-02T12:00:00Z.
    let day = Some(Duration::from_secs(86_400));
    let r = json_report(&[text(&a), text(&b)], day);
    assert_eq!(r["quiet_since_s"], 86_400);
    assert_eq!(r["quiet_cutoff"], "2026-12-02T12:00:00Z");
    let busy = [
        "create_user_group_invite_token",
        "remove_client_token",
        "verify_provider_identity",
    ];
    let want: Vec<Value> = ROUTES
        .iter()
        .filter(|r| !busy.contains(&r.operation))
        .map(|r| {
            let last = match r.operation {
                "list_client_tokens" => json!("2026-12-02T11:00:00Z"),
                _ => Value::Null,
            };
            json!({"operation": r.operation, "last_call": last})
        })
        .collect();
    assert_eq!(r["quiet_operations"], Value::Array(want));

    let (table, summary) = report(&[text(&a), text(&b)], day, Format::Table).unwrap();
    let quiet = summary.quiet_operations.unwrap();
    assert_eq!(quiet.len(), ROUTES.len() - busy.len());
    assert!(quiet.contains(&"list_client_tokens") && !quiet.contains(&"remove_client_token"));
    assert!(table.contains("Ready to switch to reject: no call since 2026-12-02 12:00 UTC"));
    assert!(table.contains("last call 2026-12-02 11:00 UTC"), "{table}");
    assert!(table.contains("never called in these inputs"));

    // A short enough period: nothing is quiet.
    let (table, summary) = report(
        &[text(&b)],
        Some(Duration::from_secs(3 * 86_400)),
        Format::Table,
    )
    .unwrap();
    let quiet = summary.quiet_operations.unwrap();
    assert!(!quiet.contains(&"verify_provider_identity"));
    assert!(table.contains("Ready to switch to reject"));
}

#[test]
fn the_html_page_is_self_contained_and_escaped() {
    let dir = scratch_dir("html");
    let (a, b) = (replica_a(&dir), replica_b(&dir));
    let odd = dir.join("odd.log");
    let line = call(
        "2026-12-03T11:00:00Z",
        "create_space_user_invite_token",
        "<script>alert(1)</script>\"'&",
        "user",
    );
    std::fs::write(&odd, line.line()).unwrap();
    let (page, _) = report(
        &[text(&a), text(&b), text(&odd)],
        Some(Duration::from_secs(86_400)),
        Format::Html,
    )
    .unwrap();
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert!(page.contains(
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; \
         style-src 'unsafe-inline'\">"
    ));
    for external in [
        "<script", "<link", "<img", "src=", "href=", "url(", "@import",
    ] {
        assert!(!page.contains(external), "{external}");
    }
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#39;&amp;"));
    let called = [
        "create_user_group_invite_token",
        "create_space_user_invite_token",
        "list_client_tokens",
        "remove_client_token",
        "verify_provider_identity",
    ];
    assert_eq!(
        page.matches("<polyline class=\"series\"").count(),
        called.len()
    );
    for op in called {
        assert!(
            page.contains(&format!(
                "<polyline class=\"series\" data-operation=\"{op}\""
            )),
            "{op}"
        );
    }
    assert!(page.contains("<ul class=\"legend\">"));
    assert!(page.contains("Ready to switch to reject"));
    assert!(page.trim_end().ends_with("</html>"));
}

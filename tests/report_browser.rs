//! The HTML report in a real headless browser (Debian's Chromium): it renders, its chart has
//! one series per operation called, and the page makes no network request. Every request the
//! browser would make goes to a proxy of the test's own that counts connections: there must be
//! none. Without Chromium the test says so and skips, unless `OMP_REQUIRE_BROWSER` is set (CI
//! installs Chromium and sets it).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Chromium's own services, which it calls with any page (seen with an empty one).
const CHROMIUM_OWN: [&str; 6] = [
    "clients2.google.com",
    "update.googleapis.com",
    "accounts.google.com",
    "optimizationguide-pa.googleapis.com",
    "content-autofill.googleapis.com",
    "safebrowsingohttpgateway.googleapis.com",
];

static PROFILES: AtomicUsize = AtomicUsize::new(0);

/// The host a proxied request is for: `CONNECT host:443` or `GET http://host/...`.
fn request_host(line: &str) -> String {
    let target = line.split(' ').nth(1).unwrap_or("");
    let rest = target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"))
        .unwrap_or(target);
    let host = rest.split(['/', ':']).next().unwrap_or("");
    host.to_string()
}

fn chromium() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("OMP_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// Access lines of three operations over three days.
fn access_log() -> String {
    let mut out = String::new();
    let ops = [
        ("create_user_group_invite_token", 3),
        ("list_client_tokens", 5),
        ("create_client_token", 1),
    ];
    for day in 1..=3 {
        for (op, per_day) in ops {
            for n in 0..per_day * day {
                out.push_str(&format!(
                    "{{\"timestamp\":\"2026-11-{day:02}T10:{:02}:00.000000Z\",\"level\":\"INFO\",\"fields\":{{\"route\":\"{op}\",\"mode\":\"passthrough\",\"status\":200,\"subject\":\"u{n}\",\"subject_kind\":\"user\",\"client_product\":\"onedatafs\"}},\"target\":\"access\"}}\n",
                    n % 60
                ));
            }
        }
    }
    out
}

#[test]
fn the_html_report_renders_offline_with_one_series_per_operation() {
    let Some(browser) = chromium() else {
        assert!(
            std::env::var_os("OMP_REQUIRE_BROWSER").is_none(),
            "OMP_REQUIRE_BROWSER is set but no Chromium was found"
        );
        eprintln!("skipped: no Chromium (apt-get install chromium)");
        return;
    };
    let dir = common::scratch_dir("report-browser");
    let log = dir.join("access.log");
    std::fs::write(&log, access_log()).unwrap();
    let out = Command::new(common::bin())
        .args(["report", "--format", "html"])
        .arg(&log)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page = dir.join("report.html");
    std::fs::File::create(&page)
        .unwrap()
        .write_all(&out.stdout)
        .unwrap();

    // The browser's only way out: a proxy of the test's own that notes the host of every
    // request. Chromium asks Google's update and time services by itself, page or not, so
    // what counts is what the report's page adds to what an empty page does.
    let trap = TcpListener::bind("127.0.0.1:0").unwrap();
    let trap_addr = trap.local_addr().unwrap();
    trap.set_nonblocking(true).unwrap();
    let hosts = Arc::new(Mutex::new(Vec::<String>::new()));
    let done = Arc::new(AtomicBool::new(false));
    let counter = {
        let (hosts, done) = (hosts.clone(), done.clone());
        let stop = Instant::now() + Duration::from_secs(180);
        std::thread::spawn(move || {
            while !done.load(Ordering::SeqCst) && Instant::now() < stop {
                match trap.accept() {
                    Ok((mut conn, _)) => {
                        conn.set_nonblocking(false).unwrap();
                        conn.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                        let mut head = [0u8; 512];
                        let n = std::io::Read::read(&mut conn, &mut head).unwrap_or(0);
                        let line = String::from_utf8_lossy(&head[..n])
                            .lines()
                            .next()
                            .unwrap_or("")
                            .to_string();
                        hosts.lock().unwrap().push(request_host(&line));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        })
    };
    let run = |page: &PathBuf, extra: &[&str]| {
        let profile = dir.join(format!(
            "profile-{}",
            PROFILES.fetch_add(1, Ordering::SeqCst)
        ));
        let mut child = Command::new(&browser)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--window-size=1200,900",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(format!("--proxy-server=http://{trap_addr}"))
            .arg("--proxy-bypass-list=<-loopback>")
            .args(extra)
            .arg(format!("file://{}", page.display()))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(status.success(), "chromium: {status}");
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("chromium did not finish in 60 s");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let mut dom = String::new();
        std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut dom).unwrap();
        // What this page's load asked for.
        std::thread::sleep(Duration::from_millis(300));
        let seen: BTreeSet<String> = hosts.lock().unwrap().drain(..).collect();
        (dom, seen)
    };
    // The control: an empty page, and a page that does fetch something (the trap sees it).
    let empty = dir.join("empty.html");
    std::fs::write(&empty, "<!doctype html><title>empty</title>").unwrap();
    let (_, background) = run(&empty, &["--dump-dom"]);
    let fetching = dir.join("fetching.html");
    std::fs::write(
        &fetching,
        "<!doctype html><img src=\"http://report-canary.invalid/x.png\">",
    )
    .unwrap();
    let (_, fetched) = run(&fetching, &["--dump-dom"]);
    assert!(
        fetched.contains("report-canary.invalid"),
        "the trap sees a page's request: {fetched:?}"
    );

    let (dom, asked) = run(&page, &["--dump-dom"]);
    let screenshot = dir.join("report.png");
    let (_, asked_too) = run(&page, &[&format!("--screenshot={}", screenshot.display())]);

    // Rendered: the DOM after load has the chart, one series per operation called.
    assert!(dom.contains("<svg"), "{dom}");
    let series = dom.matches("class=\"series\"").count();
    assert_eq!(series, 3, "one series per operation with calls");
    for op in [
        "create_user_group_invite_token",
        "list_client_tokens",
        "create_client_token",
    ] {
        assert!(dom.contains(&format!("data-operation=\"{op}\"")), "{op}");
    }
    let png = std::fs::read(&screenshot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "a real screenshot"
    );
    // Offline: the report's page asked for nothing Chromium does not ask for on an empty page.
    let own = |h: &String| background.contains(h) || CHROMIUM_OWN.iter().any(|o| h == o);
    let added: Vec<&String> = asked.iter().chain(&asked_too).filter(|h| !own(h)).collect();
    assert!(
        added.is_empty(),
        "the report's page made requests: {added:?}"
    );
    done.store(true, Ordering::SeqCst);
    counter.join().unwrap();
    eprintln!("screenshot: {}", screenshot.display());
}

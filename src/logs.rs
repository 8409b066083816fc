//! Logging set-up, and limits on repeated lines.
//!
//! During an upstream outage every failed request would add a Pingora error line to its access
//! line (55,401 error lines, 64.5 MB, in 20 s of load, measured). The access line stays; the
//! repeated error lines are limited to [`ERROR_LINES_PER_WINDOW`] per [`WINDOW`], and what was
//! held back is counted in one line per window.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::config::{LogFormat, Settings};

pub const WINDOW: Duration = Duration::from_secs(10);
pub const ERROR_LINES_PER_WINDOW: u64 = 10;

/// Pingora's line for a pooled upstream connection that its idle watcher still held when it
/// was taken: Pingora drops that connection and opens another, which is ordinary, so it is
/// not an error an operator can act on. It is the only error line of that module.
const POOL_RACE_TARGET: &str = "pingora_core::connectors";

/// Installs the subscriber: `log.level` (or `RUST_LOG`), human or JSON lines.
pub fn init(settings: &Settings) {
    use tracing_subscriber::filter::{filter_fn, FilterExt};
    use tracing_subscriber::prelude::*;

    let level = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&settings.log.level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Pingora's debug and trace lines print whole request headers, credentials included: never
    // let them through, whatever level is asked for.
    let hint = level.max_level_hint();
    let pingora_filter = filter_fn(|meta| {
        let target = meta.target();
        if !target.starts_with("pingora") {
            return true;
        }
        let pool_race = target == POOL_RACE_TARGET && *meta.level() == tracing::Level::ERROR;
        *meta.level() <= tracing::Level::INFO && !pool_race
    });
    // Without the hint every Pingora `log::debug!` would be built and then dropped.
    let pingora_filter = match hint {
        Some(h) => pingora_filter.with_max_level_hint(h),
        None => pingora_filter,
    };
    let filter = level.and(pingora_filter);
    // Colours only for a person at a terminal; a file or a log collector gets plain text.
    let fmt = tracing_subscriber::fmt::layer().with_ansi(std::io::stdout().is_terminal());
    match settings.log.format {
        LogFormat::Json => tracing_subscriber::registry()
            .with(fmt.json().with_filter(filter))
            .init(),
        LogFormat::Human => tracing_subscriber::registry()
            .with(fmt.with_filter(filter))
            .init(),
    }
    std::thread::Builder::new()
        .name("log-summary".into())
        .spawn(|| loop {
            std::thread::sleep(WINDOW);
            error_lines().roll(Instant::now());
        })
        .ok();
}

/// Counts error lines per window.
pub struct ErrorLines {
    window: Mutex<Instant>,
    written: AtomicU64,
    held_back: AtomicU64,
}

impl ErrorLines {
    fn new(now: Instant) -> Self {
        ErrorLines {
            window: Mutex::new(now),
            written: AtomicU64::new(0),
            held_back: AtomicU64::new(0),
        }
    }

    /// Whether one more error line may be written now.
    pub fn allow(&self, now: Instant) -> bool {
        self.roll(now);
        if self.written.fetch_add(1, Ordering::Relaxed) < ERROR_LINES_PER_WINDOW {
            return true;
        }
        self.held_back.fetch_add(1, Ordering::Relaxed);
        false
    }

    /// Starts a new window when the current one is over, reporting what it held back.
    fn roll(&self, now: Instant) {
        let mut start = self.window.lock().unwrap_or_else(|p| p.into_inner());
        if now.duration_since(*start) < WINDOW {
            return;
        }
        *start = now;
        self.written.store(0, Ordering::Relaxed);
        let held = self.held_back.swap(0, Ordering::Relaxed);
        if held > 0 {
            tracing::warn!(
                suppressed = held,
                window_s = WINDOW.as_secs(),
                "similar error lines were suppressed (each request still has its access line)"
            );
        }
    }
}

pub fn error_lines() -> &'static ErrorLines {
    static LINES: OnceLock<ErrorLines> = OnceLock::new();
    LINES.get_or_init(|| ErrorLines::new(Instant::now()))
}

/// A warning written at most once a minute per `key`.
pub fn warn_rarely(key: &'static str, message: &str) {
    static LAST: OnceLock<Mutex<HashMap<&'static str, Instant>>> = OnceLock::new();
    let now = Instant::now();
    let mut last = LAST
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if last
        .get(key)
        .is_some_and(|at| now.duration_since(*at) < Duration::from_secs(60))
    {
        return;
    }
    last.insert(key, now);
    tracing::warn!("{message}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_lines_are_limited_per_window() {
        let t0 = Instant::now();
        let lines = ErrorLines::new(t0);
        let allowed = (0..100).filter(|_| lines.allow(t0)).count() as u64;
        assert_eq!(allowed, ERROR_LINES_PER_WINDOW);
        assert_eq!(lines.held_back.load(Ordering::Relaxed), 100 - allowed);
        // A new window starts over and reports (and clears) what was held back.
        assert!(lines.allow(t0 + WINDOW));
        assert_eq!(lines.held_back.load(Ordering::Relaxed), 0);
    }
}

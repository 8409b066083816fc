//! Live reload: on `SIGHUP` (and, with `reload.watch`, when the file changes) the config file is
//! read and validated again; if it is valid the migration policies are swapped atomically,
//! otherwise the old ones stay and the refusal is logged and counted.
//!
//! Only `[deprecation]` and `[routes]` apply live. A change anywhere else (listeners, upstream,
//! timeouts, ...) is reported as needing a restart, never silently half-applied.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use crate::config::{ConfigError, FileConfig, Overrides};
use crate::metrics::metrics;
use crate::migration::Live;

/// The outcome of one reload attempt.
#[derive(Debug, PartialEq)]
pub(crate) enum Outcome {
    Applied {
        /// Top-level sections that changed but need a restart.
        restart_needed: Vec<&'static str>,
    },
    Refused(String),
}

pub(crate) struct Reloader {
    path: Option<PathBuf>,
    overrides: Overrides,
    /// The config the process started with: what the non-live sections are compared against.
    started: FileConfig,
    live: Arc<Live>,
    watch: Option<Duration>,
    last_modified: Mutex<Option<SystemTime>>,
}

/// The sections that differ between two configs, except the live ones. Both configs are taken
/// apart field by field, so a new section does not compile until it is classed here as live
/// or as needing a restart.
pub(crate) fn restart_sections(old: &FileConfig, new: &FileConfig) -> Vec<&'static str> {
    let FileConfig {
        listen,
        upstream,
        forwarding,
        onezone,
        server,
        log,
        reload,
        limits,
        metrics,
        verify,
        // Live: applied by a reload.
        deprecation: _,
        routes: _,
    } = old;
    let restart = [
        ("listen", listen == &new.listen),
        ("upstream", upstream == &new.upstream),
        ("forwarding", forwarding == &new.forwarding),
        ("onezone", onezone == &new.onezone),
        ("server", server == &new.server),
        ("log", log == &new.log),
        ("reload", reload == &new.reload),
        ("limits", limits == &new.limits),
        ("metrics", metrics == &new.metrics),
        ("verify", verify == &new.verify),
    ];
    restart
        .into_iter()
        .filter(|(_, same)| !same)
        .map(|(name, _)| name)
        .collect()
}

impl Reloader {
    pub(crate) fn new(
        path: Option<PathBuf>,
        overrides: Overrides,
        started: FileConfig,
        live: Arc<Live>,
        watch: Option<Duration>,
    ) -> Reloader {
        let last_modified = Mutex::new(path.as_deref().and_then(modified));
        Reloader {
            path,
            overrides,
            started,
            live,
            watch,
            last_modified,
        }
    }

    /// Reads, validates and applies the config file once.
    pub(crate) fn reload(&self) -> Outcome {
        let Some(path) = &self.path else {
            return Outcome::Refused("running on the built-in config: no file to reload".into());
        };
        let name = path.display().to_string();
        let loaded = FileConfig::load(path).and_then(|mut f| {
            f.apply(&self.overrides);
            let settings = f.validate(&name)?;
            Ok::<_, ConfigError>((f, settings))
        });
        match loaded {
            Ok((file, settings)) => {
                self.live.replace(settings.policies);
                let restart_needed = restart_sections(&self.started, &file);
                Outcome::Applied { restart_needed }
            }
            Err(e) => Outcome::Refused(e.to_string()),
        }
    }

    fn reload_and_report(&self, why: &str) {
        match self.reload() {
            Outcome::Applied { restart_needed } => {
                metrics()
                    .config_reloads
                    .with_label_values(&["success"])
                    .inc();
                metrics()
                    .restart_required
                    .set(i64::from(!restart_needed.is_empty()));
                if restart_needed.is_empty() {
                    tracing::info!(trigger = why, "config reloaded");
                } else {
                    tracing::warn!(
                        trigger = why,
                        sections = ?restart_needed,
                        "config reloaded; changes to these sections need a restart and are not applied"
                    );
                }
            }
            Outcome::Refused(reason) => {
                metrics()
                    .config_reloads
                    .with_label_values(&["failure"])
                    .inc();
                tracing::error!(trigger = why, %reason, "config reload refused; the previous config stays active");
            }
        }
    }

    /// Whether the file changed since the last look.
    fn changed_on_disk(&self) -> bool {
        let Some(path) = &self.path else { return false };
        let now = modified(path);
        let mut last = self.last_modified.lock().unwrap_or_else(|p| p.into_inner());
        if now != *last {
            *last = now;
            true
        } else {
            false
        }
    }
}

fn modified(path: &std::path::Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

#[async_trait]
impl BackgroundService for Reloader {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGHUP; live reload is off");
                return;
            }
        };
        let mut tick = tokio::time::interval(self.watch.unwrap_or(Duration::from_secs(3600)));
        tick.tick().await;
        loop {
            tokio::select! {
                _ = hangup.recv() => {
                    // Keep the watcher from firing again for the same edit.
                    self.changed_on_disk();
                    self.reload_and_report("SIGHUP");
                }
                _ = tick.tick(), if self.watch.is_some() => {
                    if self.changed_on_disk() {
                        self.reload_and_report("file change");
                    }
                }
                _ = shutdown.changed() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migration::Mode;

    fn write(dir: &std::path::Path, text: &str) -> PathBuf {
        let p = dir.join("c.toml");
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn valid_files_apply_invalid_ones_are_refused() {
        let dir = std::env::temp_dir().join(format!("omp-reload-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = write(&dir, "");
        let started = FileConfig::load(&path).unwrap();
        let live = Arc::new(Live::new(started.validate("c").unwrap().policies));
        let r = Reloader::new(
            Some(path.clone()),
            Overrides::default(),
            started,
            live.clone(),
            None,
        );

        write(&dir, "[deprecation]\nmode = \"reject\"\n");
        assert_eq!(
            r.reload(),
            Outcome::Applied {
                restart_needed: vec![]
            }
        );
        assert_eq!(live.current().default.mode, Mode::Reject);

        write(
            &dir,
            "[deprecation]\nmode = \"passthrough\"\nsunset = \"2000-01-01T00:00:00Z\"\n",
        );
        match r.reload() {
            Outcome::Refused(reason) => assert!(reason.contains("deprecation.sunset"), "{reason}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            live.current().default.mode,
            Mode::Reject,
            "the old config stays"
        );

        write(
            &dir,
            "[listen]\nhttp = [\"127.0.0.1:1\"]\n[deprecation]\nmode = \"passthrough\"\n",
        );
        assert_eq!(
            r.reload(),
            Outcome::Applied {
                restart_needed: vec!["listen"]
            }
        );
        assert_eq!(live.current().default.mode, Mode::Passthrough);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn no_file_nothing_to_reload() {
        let started = FileConfig::default();
        let live = Arc::new(Live::new(started.validate("d").unwrap().policies));
        let r = Reloader::new(None, Overrides::default(), started, live, None);
        assert!(matches!(r.reload(), Outcome::Refused(_)));
    }
}

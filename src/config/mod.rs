//! Configuration: the TOML file schema, its defaults, and validation into typed [`Settings`].
//!
//! Two layers, so that every error can name the key it is about: [`FileConfig`] mirrors the file
//! (unknown keys rejected, every key optional with the default of
//! `config/onezone-migration-proxy.toml`), and [`FileConfig::validate`] turns it into [`Settings`],
//! which the rest of the proxy uses.
//!
//! - `file`: the file schema, section by section, with its defaults;
//! - `validate`: reading a file and checking every value, naming the key of any error;
//! - `settings`: the typed settings the proxy runs on;
//! - [`Overrides`]: the command-line flags that replace file values.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use std::collections::{BTreeMap, HashMap};
use std::time::SystemTime;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::migration::{AfterSunset, Mode, Policies, Policy, Window};
use crate::routes::ROUTES;

/// The built-in default configuration, also the documented reference of every key.
pub const DEFAULT_CONFIG: &str = include_str!("../../config/onezone-migration-proxy.toml");

/// A configuration problem, naming where it is and what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}: {key}: {reason}")]
    Invalid {
        file: String,
        key: String,
        reason: String,
    },
}

impl ConfigError {
    fn invalid(file: &str, key: impl Into<String>, reason: impl Into<String>) -> Self {
        ConfigError::Invalid {
            file: file.to_string(),
            key: key.into(),
            reason: reason.into(),
        }
    }

    /// The dotted key the error is about, when it is about one.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { key, .. } => Some(key),
            ConfigError::Read { .. } => None,
        }
    }
}

mod file;
mod settings;
mod validate;

pub use file::*;
pub use settings::*;

/// Command-line values that override the file.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub listen: Option<String>,
    pub upstream: Option<String>,
    pub metrics_listen: Option<String>,
}

impl FileConfig {
    /// Applies command-line overrides: `--listen` replaces the plain HTTP listeners.
    pub fn apply(&mut self, o: &Overrides) {
        if let Some(l) = &o.listen {
            self.listen.http = vec![l.clone()];
        }
        if let Some(u) = &o.upstream {
            self.upstream.url = u.clone();
        }
        if let Some(m) = &o.metrics_listen {
            self.listen.metrics = m.clone();
        }
    }
}

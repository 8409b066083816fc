//! onezone-migration-proxy: a reverse proxy in front of Onedata's Onezone that serves the
//! deprecated token endpoints through the tokens API, so legacy clients keep working while they
//! migrate, and passes every other call through untouched.
#![forbid(unsafe_code)]

pub(crate) mod admin;
pub(crate) mod answers;
pub(crate) mod callers;
pub mod config;
pub(crate) mod connection;
pub(crate) mod deprecation;
pub(crate) mod forwarding;
pub mod hardening;
pub mod legacy;
pub(crate) mod lifecycle;
pub mod logs;
pub(crate) mod metrics;
pub(crate) mod migration;
pub mod onezone;
pub(crate) mod proxy;
pub(crate) mod reload;
pub mod report;
pub mod routes;
pub mod server;
pub(crate) mod tls;
pub(crate) mod upstream;
pub(crate) mod verify;

//! onezone-migration-proxy: a reverse proxy in front of Onedata's Onezone that serves the
//! deprecated token endpoints through the tokens API, so legacy clients keep working while they
//! migrate, and passes every other call through untouched.
#![forbid(unsafe_code)]

pub mod admin;
pub mod config;
pub mod connection;
pub mod deprecation;
pub mod forwarding;
pub mod hardening;
pub mod legacy;
pub mod lifecycle;
pub mod logs;
pub mod metrics;
pub mod migration;
pub mod onezone;
pub mod proxy;
pub mod reload;
pub mod routes;
pub mod server;
pub mod standin;
pub mod tls;
pub mod upstream;

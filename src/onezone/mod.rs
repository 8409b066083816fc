//! Talking to Onezone: the tokens-API client and Onezone's error shape.

pub mod client;
pub mod error;

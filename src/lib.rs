//! calsync: a Postgres-backed calendar availability cache, compiled into a Node.js addon.
//!
//! The logic lives in plain Rust modules that `cargo test` exercises; `napi/` only converts types
//! and errors for JavaScript.

pub mod availability;
pub mod cache;
pub mod client;
pub mod config;
pub mod cron;
pub mod db;
pub mod error;
pub mod flags;
pub mod legacy;
pub mod log;
pub mod metrics;
pub mod model;
pub mod providers;
pub mod sync;
pub mod time;
pub mod webhook;

#[path = "napi/mod.rs"]
pub mod binding;

#[cfg(test)]
mod layers;

pub use client::Calsync;
pub use error::{Error, Result};

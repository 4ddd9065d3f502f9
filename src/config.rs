//! Options and their defaults from environment variables (SPEC §9). Secrets are redacted in `Debug`.

use std::fmt;
use std::time::Duration;

use crate::error::{Error, Result};

/// A string that must never be printed: database URLs, tokens.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The secret itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Everything calsync can be configured with.
#[derive(Debug, Clone)]
pub struct Config {
    /// Postgres connection string (`DATABASE_URL`).
    pub database_url: Secret,
    /// Upper bound of pooled connections.
    pub max_connections: u32,
    /// How long connecting (and waiting for a pooled connection) may take before `DB_UNAVAILABLE`.
    pub connect_timeout: Duration,
    /// How long a feature-flag answer is reused in-process.
    pub flag_cache_ttl: Duration,
    /// A calendar with neither a successful sync nor a channel confirmation for this long is stale.
    pub stale_after: Duration,
    /// The most calendars one `getCachedAvailability` call may name.
    pub max_calendars_per_read: usize,
}

impl Config {
    /// Defaults, with `DATABASE_URL` taken from the environment when set.
    pub fn from_env() -> Self {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Defaults, reading environment variables through `get` (tests pass a map).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Self {
        Config {
            database_url: Secret::new(get("DATABASE_URL").unwrap_or_default()),
            max_connections: 10,
            connect_timeout: Duration::from_secs(5),
            flag_cache_ttl: Duration::from_secs(30),
            stale_after: Duration::from_secs(24 * 3600),
            max_calendars_per_read: 1000,
        }
    }

    /// Checks the values once, at connect.
    pub fn validate(&self) -> Result<()> {
        if self.database_url.expose().is_empty() {
            return Err(Error::invalid(
                "no database configured: pass databaseUrl or set DATABASE_URL",
            ));
        }
        if self.max_connections == 0 {
            return Err(Error::invalid("maxConnections must be at least 1"));
        }
        if self.connect_timeout.is_zero() {
            return Err(Error::invalid("connectTimeoutMs must be positive"));
        }
        if self.max_calendars_per_read == 0 {
            return Err(Error::invalid("maxCalendarsPerRead must be at least 1"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_database_url() {
        let cfg = Config::from_lookup(|k| {
            (k == "DATABASE_URL").then(|| "postgres://u:hunter2@h/db".into())
        });
        let shown = format!("{cfg:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("[redacted]"));
        assert!(cfg.validate().is_ok());
    }

    #[test]
    fn missing_url_is_invalid_argument() {
        let cfg = Config::from_lookup(|_| None);
        assert_eq!(cfg.validate().unwrap_err().code(), "INVALID_ARGUMENT");
    }
}

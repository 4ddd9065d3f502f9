//! `Calsync`: the connected library, free of napi types so `cargo test` and other Rust callers can
//! use it directly. The JS class in `napi/` wraps one of these.

use sqlx::PgPool;

use crate::availability::{self, Answer, Query};
use crate::config::Config;
use crate::db;
use crate::error::Result;
use crate::flags::{Flags, Subject};

/// A connected calsync instance: the pool, the configuration and the flag cache.
pub struct Calsync {
    pool: PgPool,
    config: Config,
    flags: Flags,
}

impl Calsync {
    /// Connects (failing fast with `DB_UNAVAILABLE`) and checks the schema (`SCHEMA_MISMATCH`).
    pub async fn connect(config: Config) -> Result<Self> {
        config.validate()?;
        let pool = db::connect(&config).await?;
        if let Err(e) = db::schema::check(&pool).await {
            pool.close().await;
            return Err(e);
        }
        let flags = Flags::new(config.flag_cache_ttl);
        Ok(Calsync {
            pool,
            config,
            flags,
        })
    }

    /// The configuration this instance runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The connection pool (shared with every operation of this instance).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Busy blocks from the cache, plus the calendars it cannot answer for and why.
    pub async fn availability(&self, query: &Query) -> Result<Answer> {
        availability::read(&self.pool, &self.flags, query, self.config.stale_after).await
    }

    /// Evaluates a feature flag for a user or a team (SPEC §3), through the in-process cache.
    pub async fn is_feature_enabled(&self, slug: &str, who: Subject) -> Result<bool> {
        self.flags.is_enabled(&self.pool, slug, who).await
    }

    /// Closes the pool, waiting for connections in use to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

//! The database layer: connection pools, schema check and the SQL the other modules run.
//! It knows tables and rows, never providers. Every statement goes through [`sql`], which keeps
//! calsync working behind a transaction-mode pooler.

pub mod bookings;
pub mod calendars;
pub mod channels;
pub mod commit;
pub mod credentials;
pub mod events;
pub mod lease;
pub mod outbox;
pub mod reads;
pub mod schema;
pub mod sql;

use std::future::Future;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use crate::config::Config;
use crate::error::{Error, Result};

/// The two pools of an instance: `front` answers callers (reads, webhook answers, flags, status),
/// `back` does background work (syncs, token refreshes, cron). Background work can never take the
/// connections reads need, however slow the providers are (SPEC §12).
#[derive(Clone)]
pub struct Pools {
    pub front: PgPool,
    pub back: PgPool,
}

impl Pools {
    /// Closes both pools.
    pub async fn close(&self) {
        self.front.close().await;
        self.back.close().await;
    }
}

/// `work` bounded by `limit`; past it, `DB_UNAVAILABLE` naming `what`. For the statements whose
/// caller is waiting (a read, a webhook's answer): behind a transaction-mode pooler a statement sent
/// while the server is away waits in the pooler's queue (PgBouncer's `query_wait_timeout`, 120 s by
/// default) instead of failing, and one behind another session's lock waits as long as the lock.
pub async fn within<T>(limit: Duration, what: &str, work: impl Future<Output = Result<T>>) -> Result<T> {
    tokio::time::timeout(limit, work).await.unwrap_or_else(|_| {
        Err(Error::DbUnavailable(format!(
            "{what}: no answer within {} ms",
            limit.as_millis()
        )))
    })
}

/// Connection options that work directly and through a transaction-mode pooler: no
/// `extra_float_digits` startup parameter, which PgBouncer refuses unless told to ignore it (calsync
/// reads no floats), and a statement cache only where named statements may be used (`cache`: the
/// read path on a direct connection).
pub fn options(url: &str, cache: bool) -> Result<PgConnectOptions> {
    Ok(PgConnectOptions::from_str(url)
        .map_err(|_| Error::invalid("the database URL is not valid"))?
        .application_name("calsync")
        .statement_cache_capacity(if cache { 16 } else { 0 })
        .extra_float_digits(None))
}

fn pool(cfg: &Config, opts: &PgConnectOptions, size: u32) -> PgPool {
    PgPoolOptions::new()
        .max_connections(size)
        .min_connections(0)
        .acquire_timeout(cfg.connect_timeout)
        .connect_lazy_with(opts.clone())
}

/// Opens the pools and proves the server answers, failing within `connect_timeout`.
pub async fn connect(cfg: &Config) -> Result<Pools> {
    let url = cfg.database_url.expose();
    let back = cfg.background_pool_size();
    let pools = Pools {
        front: pool(cfg, &options(url, !cfg.behind_pooler())?, cfg.max_connections - back),
        back: pool(cfg, &options(url, false)?, back),
    };
    // sqlx retries refused connections until the acquire timeout; bound the whole attempt as well.
    let first = async { Ok(pools.front.acquire().await?) };
    drop(within(cfg.connect_timeout, "connecting", first).await?);
    Ok(pools)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn within_passes_answers_through_and_names_what_got_none() {
        let limit = Duration::from_millis(1500);
        assert_eq!(within(limit, "x", async { Ok(7) }).await.unwrap(), 7);
        let failed = within(limit, "x", async { Err::<(), _>(Error::invalid("bad")) }).await;
        assert_eq!(failed.unwrap_err().code(), "INVALID_ARGUMENT");
        let hung = within(limit, "looking up", std::future::pending::<Result<()>>()).await;
        let err = hung.unwrap_err();
        assert_eq!(err.code(), "DB_UNAVAILABLE");
        assert_eq!(
            err.to_string(),
            "database unavailable: looking up: no answer within 1500 ms"
        );
    }
}

//! The database layer: connection pools, schema check and the SQL the other modules run.
//! It knows tables and rows, never providers. Every statement goes through [`sql`], which keeps
//! calsync working behind a transaction-mode pooler.

pub mod binary;
pub mod bookings;
pub mod calendars;
pub mod channels;
pub mod commit;
pub mod credentials;
pub mod events;
pub mod lease;
pub mod outbox;
pub mod reads;
pub mod replicas;
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
/// connections reads need, however slow the providers are (SPEC §12). `replicas` serve reads
/// while they keep up (`readDatabaseUrl`).
pub struct Pools {
    pub front: PgPool,
    pub back: PgPool,
    pub replicas: replicas::Replicas,
}

impl Pools {
    /// Closes every pool.
    pub async fn close(&self) {
        self.front.close().await;
        self.back.close().await;
        self.replicas.close().await;
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

fn pool(opts: &PgConnectOptions, size: u32, acquire: Duration) -> PgPool {
    PgPoolOptions::new()
        .max_connections(size)
        .min_connections(0)
        .acquire_timeout(acquire)
        .connect_lazy_with(opts.clone())
}

/// How long a read may wait for a replica's connection: a quarter of the read's deadline at most,
/// so that a replica that refuses connections leaves the primary time to answer.
pub fn replica_acquire_timeout(cfg: &Config) -> Duration {
    cfg.connect_timeout.min(cfg.read_timeout / 4)
}

/// Opens the pools and proves the primary answers, failing within `connect_timeout`. Replicas are
/// not waited for: one that is down costs no read (see [`replicas`]).
pub async fn connect(cfg: &Config) -> Result<Pools> {
    let url = cfg.database_url.expose();
    let back = cfg.background_pool_size();
    let front = cfg.max_connections - back;
    let mut list = Vec::new();
    for (i, r) in cfg.read_database_urls.iter().enumerate() {
        let pooled = cfg.pooler_at(r.expose());
        let opts = options(r.expose(), !pooled)
            .map_err(|_| Error::invalid(format!("readDatabaseUrl #{} is not a valid database URL", i + 1)))?;
        list.push(replicas::Replica::new(
            pool(&opts, front, replica_acquire_timeout(cfg)),
            pooled,
            i + 1,
        ));
    }
    let pools = Pools {
        front: pool(&options(url, !cfg.behind_pooler())?, front, cfg.connect_timeout),
        back: pool(&options(url, false)?, back, cfg.connect_timeout),
        replicas: replicas::Replicas::new(list),
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

//! The database layer: connection pool, schema check and the SQL the other modules run.
//! It knows tables and rows, never providers.

pub mod calendars;
pub mod credentials;
pub mod events;
pub mod schema;

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use crate::config::Config;
use crate::error::{Error, Result};

/// Opens the pool and proves the server answers, failing within `connect_timeout`.
pub async fn connect(cfg: &Config) -> Result<PgPool> {
    let opts = PgConnectOptions::from_str(cfg.database_url.expose())
        .map_err(|_| Error::invalid("the database URL is not valid"))?
        .application_name("calsync");
    let pool = PgPoolOptions::new()
        .max_connections(cfg.max_connections)
        .min_connections(0)
        .acquire_timeout(cfg.connect_timeout)
        .connect_lazy_with(opts);
    // sqlx retries refused connections until the acquire timeout; bound the whole attempt as well.
    match tokio::time::timeout(cfg.connect_timeout, pool.acquire()).await {
        Ok(Ok(conn)) => drop(conn),
        Ok(Err(e)) => return Err(Error::from(e)),
        Err(_) => return Err(Error::DbUnavailable("timed out connecting".into())),
    }
    Ok(pool)
}

//! Claims in `"CalendarSyncLease"`: the cross-process exclusion that replaces locks held across
//! provider calls (SPEC §6.8). Taking, renewing and ending a claim are single short statements; a
//! claim whose process died expires by itself. A claim is an optimisation, never the only guard:
//! the write that ends the work checks that nothing moved underneath.

use std::time::Duration;

use sqlx::PgPool;

use super::sql::stmt;
use crate::error::{Error, Result};

/// A claim this process holds (until [`Lease::release`], or its expiry).
#[derive(Debug)]
pub struct Lease {
    pub key: String,
    holder: String,
}

const TAKE_SQL: &str = r#"
INSERT INTO "CalendarSyncLease" AS l ("key", "holder", "expiresAt")
SELECT k, $2, clock_timestamp() + $3 * interval '1 millisecond' FROM unnest($1) AS k
ON CONFLICT ("key") DO UPDATE SET "holder" = EXCLUDED."holder", "expiresAt" = EXCLUDED."expiresAt"
WHERE l."expiresAt" < clock_timestamp()
RETURNING "key""#;

fn ms(d: Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
}

/// Takes the claims among `keys` nobody holds (or whose holder's time ran out); returns those taken.
pub async fn try_take_many(pool: &PgPool, keys: &[String], ttl: Duration) -> Result<Vec<Lease>> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let holder = uuid::Uuid::new_v4().to_string();
    let rows = stmt(TAKE_SQL)
        .texts(keys)
        .text(holder.as_str())
        .bigint(ms(ttl))
        .fetch_all(pool)
        .await?;
    rows.iter()
        .map(|r| {
            Ok(Lease {
                key: sqlx::Row::try_get(r, 0)?,
                holder: holder.clone(),
            })
        })
        .collect()
}

/// Takes claim `key` if it is free.
pub async fn try_take(pool: &PgPool, key: &str, ttl: Duration) -> Result<Option<Lease>> {
    Ok(try_take_many(pool, &[key.to_string()], ttl).await?.pop())
}

/// Takes claim `key`, waiting up to `wait` for its holder to end it (or to die).
pub async fn take(pool: &PgPool, key: &str, ttl: Duration, wait: Duration) -> Result<Lease> {
    let mut waiting = Waiting::new(wait);
    loop {
        if let Some(lease) = try_take(pool, key, ttl).await? {
            return Ok(lease);
        }
        if !waiting.pause().await {
            return Err(waiting.timed_out(key));
        }
    }
}

/// The wait for a claim another process holds: pauses from 10 ms, doubling up to 250 ms, until
/// `wait` has passed.
pub struct Waiting {
    wait: Duration,
    deadline: tokio::time::Instant,
    pause: Duration,
}

impl Waiting {
    pub fn new(wait: Duration) -> Self {
        Waiting {
            wait,
            deadline: tokio::time::Instant::now() + wait,
            pause: Duration::from_millis(10),
        }
    }

    /// Sleeps before the next try; false (without sleeping) when that would pass the deadline.
    pub async fn pause(&mut self) -> bool {
        if tokio::time::Instant::now() + self.pause > self.deadline {
            return false;
        }
        tokio::time::sleep(self.pause).await;
        self.pause = (self.pause * 2).min(Duration::from_millis(250));
        true
    }

    /// The error once the wait for claim `key` ran out.
    pub fn timed_out(&self, key: &str) -> Error {
        Error::Database(format!(
            "timed out after {} s waiting for another process's claim on {key}",
            self.wait.as_secs()
        ))
    }
}

impl Lease {
    /// A claim taken by other means (`calendars::claim_group`) under `key` for `holder`.
    pub fn held(key: String, holder: String) -> Lease {
        Lease { key, holder }
    }

    /// Who holds it (this claim's random holder id).
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// Extends the claim by `ttl` from now; false when it was lost (expired and taken by another).
    pub async fn renew(&self, pool: &PgPool, ttl: Duration) -> Result<bool> {
        let n = stmt(
            r#"UPDATE "CalendarSyncLease" SET "expiresAt" = clock_timestamp() + $3 * interval '1 millisecond'
               WHERE "key" = $1 AND "holder" = $2"#,
        )
        .text(self.key.as_str())
        .text(self.holder.as_str())
        .bigint(ms(ttl))
        .execute(pool)
        .await?;
        Ok(n == 1)
    }

    /// Ends the claim. Failing to is harmless: it expires.
    pub async fn release(self, pool: &PgPool) {
        let done = stmt(r#"DELETE FROM "CalendarSyncLease" WHERE "key" = $1 AND "holder" = $2"#)
            .text(self.key.as_str())
            .text(self.holder.as_str())
            .execute(pool)
            .await;
        if let Err(e) = done {
            tracing::debug!(key = %self.key, error = %e, "could not end a claim; it will expire");
        }
    }
}

/// Ends several claims in one statement.
pub async fn release_all(pool: &PgPool, leases: Vec<Lease>) {
    if leases.is_empty() {
        return;
    }
    let keys: Vec<&str> = leases.iter().map(|l| l.key.as_str()).collect();
    let holders: Vec<&str> = leases.iter().map(|l| l.holder.as_str()).collect();
    let done = stmt(
        r#"DELETE FROM "CalendarSyncLease" l USING unnest($1, $2) AS x(k, h) WHERE l."key" = x.k AND l."holder" = x.h"#,
    )
    .texts(&keys)
    .texts(&holders)
    .execute(pool)
    .await;
    if let Err(e) = done {
        tracing::debug!(error = %e, "could not end claims; they will expire");
    }
}

/// Removes claims that expired (their holders died); for cleanup.
pub async fn purge_expired(pool: &PgPool) -> Result<u64> {
    stmt(r#"DELETE FROM "CalendarSyncLease" WHERE "expiresAt" < clock_timestamp()"#)
        .execute(pool)
        .await
}

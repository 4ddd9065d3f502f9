//! `cleanup` (SPEC §7): deletes cached events that ended before a cutoff, events of calendars no
//! longer watched, and expired legacy `CalendarCache` rows — each in batches of `batch_size` rows,
//! one short statement per batch, so a large table is never locked for long. Windows of synced
//! calendars move up to the cutoff, so the read path never answers for time it deleted.

use std::time::Instant;

use chrono::NaiveDateTime;
use sqlx::PgPool;

use super::elapsed_ms;
use crate::db::lease;
use crate::db::sql::{stmt, Stmt};
use crate::error::Result;

/// What a cleanup run did.
#[derive(Debug, Clone, Default)]
pub struct CleanupReport {
    /// Cached events that ended before the cutoff.
    pub ended_events: u64,
    /// Cached events of calendars that are no longer watched.
    pub unwatched_events: u64,
    /// Expired rows of the legacy JSON cache.
    pub legacy_rows: u64,
    /// Statements run.
    pub statements: u64,
    /// The longest single statement, in milliseconds.
    pub longest_statement_ms: f64,
}

const ENDED: &str = r#"DELETE FROM "CalendarCacheEvent" WHERE id IN (
  SELECT id FROM "CalendarCacheEvent" WHERE "start" < $1 AND "end" < $1 LIMIT $2)"#;
const UNWATCHED: &str = r#"DELETE FROM "CalendarCacheEvent" WHERE id IN (
  SELECT e.id FROM "CalendarCacheEvent" e JOIN "SelectedCalendar" sc ON sc.id = e."selectedCalendarId"
  WHERE sc."channelId" IS NULL LIMIT $1)"#;
const LEGACY: &str = r#"DELETE FROM "CalendarCache" WHERE ("credentialId", "key") IN (
  SELECT "credentialId", "key" FROM "CalendarCache" WHERE "expiresAt" < $1 LIMIT $2)"#;
const ADVANCE_WINDOWS: &str =
    r#"UPDATE "CalendarSyncState" SET "windowStart" = LEAST($1, "windowEnd") WHERE "windowStart" < $1"#;
const UNWATCHED_STATE: &str = r#"DELETE FROM "CalendarSyncState" st USING "SelectedCalendar" sc
  WHERE sc.id = st."selectedCalendarId" AND sc."channelId" IS NULL"#;
const UNWATCHED_PENDING: &str = r#"DELETE FROM "CalendarSyncPending" p USING "SelectedCalendar" sc
  WHERE sc.id = p."selectedCalendarId" AND sc."channelId" IS NULL"#;

/// Shadow-read differences not seen for 30 days.
const OLD_DIVERGENCES: &str = r#"DELETE FROM "CalendarSyncDivergence" WHERE "lastSeenAt" < $1"#;

/// Staged rows of sync runs that died (a live run stages and merges within minutes).
const DEAD_STAGES: &str = r#"DELETE FROM "CalendarSyncStage" WHERE "createdAt" < $1"#;

/// Runs the cleanup with events ending before `cutoff` and legacy rows expired before `now`.
pub async fn run(pool: &PgPool, cutoff: NaiveDateTime, now: NaiveDateTime, size: i64) -> Result<CleanupReport> {
    let mut report = CleanupReport::default();
    report.ended_events = batches(pool, &mut report, size, || stmt(ENDED).ts(cutoff).bigint(size)).await?;
    report.unwatched_events = batches(pool, &mut report, size, || stmt(UNWATCHED).bigint(size)).await?;
    report.legacy_rows = batches(pool, &mut report, size, || stmt(LEGACY).ts(now).bigint(size)).await?;
    // One row per calendar: small tables, one statement each.
    timed(pool, &mut report, stmt(ADVANCE_WINDOWS).ts(cutoff)).await?;
    timed(pool, &mut report, stmt(UNWATCHED_STATE)).await?;
    timed(pool, &mut report, stmt(UNWATCHED_PENDING)).await?;
    timed(
        pool,
        &mut report,
        stmt(DEAD_STAGES).ts(now - chrono::Duration::hours(1)),
    )
    .await?;
    timed(
        pool,
        &mut report,
        stmt(OLD_DIVERGENCES).ts(now - chrono::Duration::days(30)),
    )
    .await?;
    lease::purge_expired(pool).await?;
    Ok(report)
}

async fn timed(pool: &PgPool, report: &mut CleanupReport, q: Stmt) -> Result<u64> {
    let t = Instant::now();
    let n = q.execute(pool).await?;
    report.statements += 1;
    report.longest_statement_ms = report.longest_statement_ms.max(elapsed_ms(t));
    Ok(n)
}

/// Repeats a `LIMIT size` delete until a batch comes back short.
async fn batches(pool: &PgPool, report: &mut CleanupReport, size: i64, query: impl Fn() -> Stmt) -> Result<u64> {
    let mut total = 0;
    loop {
        let n = timed(pool, report, query()).await?;
        total += n;
        if n < size as u64 {
            return Ok(total);
        }
    }
}

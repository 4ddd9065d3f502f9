//! A sync's commit, assembled by the engine as plain data ([`Commit`]) and written here inside the
//! caller's transaction, top to bottom: the token check, the outbox, the rows, the window, the
//! calendar's new state. Nothing here reads back up into the engine.

use chrono::NaiveDateTime;
use sqlx::PgConnection;

use super::calendars;
use super::events;
use super::lease::Lease;
use super::outbox::{self, Found};
use crate::error::Result;
use crate::model::CacheEvent;

/// Everything one sync writes.
pub struct Commit<'a> {
    /// The calendar's owner row, and every row of its group (the same calendar selected again).
    pub owner_id: &'a str,
    pub row_ids: &'a [String],
    /// The stored cursor the sync started from: the commit writes only if it is still the one.
    pub started_from: Option<&'a str>,
    /// A notification mark is pending: the commit that clears it may skip the WAL flush wait.
    pub clears_mark: bool,
    /// The cursor to store for the next sync.
    pub token: Option<&'a str>,
    /// A full sync: the calendar's rows are replaced, not changed.
    pub full: bool,
    pub stamp: NaiveDateTime,
    /// Rows to write, each external id once.
    pub rows: Vec<CacheEvent>,
    /// External ids whose last change removed them.
    pub removed: Vec<String>,
    /// Resources replaced whole: their stored rows go before `rows` are written.
    pub resources: Vec<String>,
    /// Rows of this run staged earlier under `run_id` (`staged` of them; none: nothing staged).
    pub run_id: &'a str,
    pub staged: u64,
    /// The window a full sync covered.
    pub window: Option<(NaiveDateTime, NaiveDateTime)>,
    /// The booking changes two-way sync found, for the outbox (`None`: two-way sync is off).
    pub outbox: Option<Outbox<'a>>,
    /// When the sync started reading: marks older than this are covered by it.
    pub read_at: NaiveDateTime,
    /// The run's claim, released by the commit.
    pub claim: &'a Lease,
}

/// The booking changes of a run and whose they are.
pub struct Outbox<'a> {
    pub user_id: i32,
    pub integration: &'a str,
    pub found: &'a [Found],
}

/// What a commit did.
#[derive(Debug, PartialEq, Eq)]
pub enum Written {
    /// The calendar's row is gone (unselected while the sync ran).
    Gone,
    /// The stored cursor moved underneath (another sync committed first): nothing was written.
    Moved,
    /// Written: rows inserted or updated, and rows removed.
    Done { upserted: u64, deleted: u64 },
}

/// Writes `c` inside the caller's transaction. On [`Written::Gone`] and [`Written::Moved`] nothing
/// was written and the caller rolls back.
pub async fn write(tx: &mut PgConnection, c: Commit<'_>) -> Result<Written> {
    match calendars::lock_token(tx, c.owner_id, c.clears_mark).await? {
        None => return Ok(Written::Gone),
        Some(current) if current.as_deref() != c.started_from => return Ok(Written::Moved),
        Some(_) => {}
    }
    if let Some(o) = &c.outbox {
        outbox::write(tx, c.owner_id, o.user_id, o.integration, o.found, c.stamp).await?;
    }
    let (replaced, dropped) = if c.full {
        (events::delete_all(tx, c.row_ids).await?, 0)
    } else {
        (0, events::delete_resources(tx, c.owner_id, &c.resources).await?)
    };
    let mut rows = c.rows;
    let mut staged = c.staged;
    if c.full && staged > 0 && !rows.is_empty() {
        // A full sync that staged pages stages its last ones too (COPY, staged last so they win)
        // and moves them all in one statement: faster than a bulk upsert of the rest.
        staged += events::stage(tx, c.run_id, &rows, c.stamp).await?;
        rows.clear();
    }
    let mut upserted = 0;
    if staged > 0 {
        upserted += events::merge_stage(tx, c.owner_id, c.run_id, c.stamp, c.full).await?;
    }
    upserted += if c.full && staged == 0 {
        // The calendar is empty inside this transaction and the ids are unique: COPY.
        events::copy_insert(tx, c.owner_id, &rows, c.stamp).await?
    } else {
        events::upsert(tx, c.owner_id, &rows, c.stamp).await?
    };
    let deleted = dropped + events::delete(tx, c.owner_id, &c.removed).await?;
    if let Some((start, end)) = c.window {
        calendars::store_window(tx, c.owner_id, start, end, c.stamp).await?;
    }
    calendars::record_sync_success(tx, c.row_ids, c.token, c.stamp, c.read_at, c.claim).await?;
    Ok(Written::Done {
        upserted,
        // A full sync replaced every row: what it did not write again is gone.
        deleted: if c.full {
            replaced.saturating_sub(upserted)
        } else {
            deleted
        },
    })
}

//! Bulk writes of `CalendarCacheEvent`: one statement per batch, never one per event.

use chrono::NaiveDateTime;
use sqlx::PgConnection;

use crate::error::Result;
use crate::model::CacheEvent;

const UPSERT_SQL: &str = include_str!("upsert_events.sql");

/// Inserts or updates `events` for calendar `owner` with `updatedAt = stamp`. Later duplicates of an
/// external id in `events` win. Returns the number of rows written.
pub async fn upsert(conn: &mut PgConnection, owner: &str, events: &[CacheEvent], stamp: NaiveDateTime) -> Result<u64> {
    if events.is_empty() {
        return Ok(0);
    }
    let n = events.len();
    let mut ids = Vec::with_capacity(n);
    let mut ext = Vec::with_capacity(n);
    let mut etag = Vec::with_capacity(n);
    let mut uid = Vec::with_capacity(n);
    let mut seq = Vec::with_capacity(n);
    let mut summary = Vec::with_capacity(n);
    let mut description = Vec::with_capacity(n);
    let mut location = Vec::with_capacity(n);
    let mut start = Vec::with_capacity(n);
    let mut end = Vec::with_capacity(n);
    let mut all_day = Vec::with_capacity(n);
    let mut tz = Vec::with_capacity(n);
    let mut status = Vec::with_capacity(n);
    let mut recurring = Vec::with_capacity(n);
    let mut original = Vec::with_capacity(n);
    let mut created = Vec::with_capacity(n);
    let mut updated = Vec::with_capacity(n);
    for e in events {
        ids.push(uuid::Uuid::new_v4().to_string());
        ext.push(e.external_id.as_str());
        etag.push(e.etag.as_str());
        uid.push(e.ical_uid.as_deref());
        seq.push(e.ical_sequence);
        summary.push(e.summary.as_deref());
        description.push(e.description.as_deref());
        location.push(e.location.as_deref());
        start.push(e.start);
        end.push(e.end);
        all_day.push(e.is_all_day);
        tz.push(e.time_zone.as_deref());
        status.push(e.status);
        recurring.push(e.recurring_event_id.as_deref());
        original.push(e.original_start);
        created.push(e.external_created);
        updated.push(e.external_updated);
    }
    let done = sqlx::query(UPSERT_SQL)
        .bind(owner)
        .bind(stamp)
        .bind(&ids)
        .bind(&ext)
        .bind(&etag)
        .bind(&uid)
        .bind(&seq)
        .bind(&summary)
        .bind(&description)
        .bind(&location)
        .bind(&start)
        .bind(&end)
        .bind(&all_day)
        .bind(&tz)
        .bind(&status)
        .bind(&recurring)
        .bind(&original)
        .bind(&created)
        .bind(&updated)
        .execute(conn)
        .await?;
    Ok(done.rows_affected())
}

/// Deletes the rows of `owner` with these external ids. Returns how many existed.
pub async fn delete(conn: &mut PgConnection, owner: &str, external_ids: &[String]) -> Result<u64> {
    if external_ids.is_empty() {
        return Ok(0);
    }
    let done =
        sqlx::query(r#"DELETE FROM "CalendarCacheEvent" WHERE "selectedCalendarId" = $1 AND "externalId" = ANY($2)"#)
            .bind(owner)
            .bind(external_ids)
            .execute(conn)
            .await?;
    Ok(done.rows_affected())
}

/// After a full sync: deletes the rows of `owner` it did not write (those the provider no longer
/// returns), and the rows other members of the group may still hold.
pub async fn delete_unseen(
    conn: &mut PgConnection,
    owner: &str,
    others: &[String],
    stamp: NaiveDateTime,
) -> Result<u64> {
    let done = sqlx::query(
        r#"DELETE FROM "CalendarCacheEvent"
           WHERE ("selectedCalendarId" = $1 AND "updatedAt" <> $2) OR "selectedCalendarId" = ANY($3)"#,
    )
    .bind(owner)
    .bind(stamp)
    .bind(others)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

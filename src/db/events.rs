//! Bulk writes of `CalendarCacheEvent`: one statement per batch, never one per event.

use chrono::NaiveDateTime;
use sqlx::PgConnection;

use super::sql::{query, stmt};
use crate::error::Result;
use crate::model::CacheEvent;

const UPSERT_SQL: &str = concat!(
    include_str!("upsert_events.sql"),
    include_str!("upsert_events_unnest.sql"),
    include_str!("upsert_events_conflict.sql")
);
const MERGE_STAGE_SQL: &str = concat!(
    include_str!("upsert_events.sql"),
    include_str!("upsert_events_stage.sql"),
    include_str!("upsert_events_conflict.sql")
);
/// A full sync's merge: the calendar's rows were deleted in the same transaction and the staged rows
/// are distinct by external id, so nothing can conflict (a plain insert, without the speculative
/// insertion `ON CONFLICT` costs).
const INSERT_STAGE_SQL: &str = concat!(
    include_str!("upsert_events.sql"),
    include_str!("upsert_events_stage.sql")
);

/// A new row id: a time-ordered UUID (version 7), so inserts land at the right edge of the primary
/// key index instead of on random pages (about a quarter faster full syncs, and a denser index).
fn event_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Inserts or updates `events` for calendar `owner` with `updatedAt = stamp`, in one statement. Each
/// external id must appear once. Returns the number of rows written.
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
        ids.push(event_id());
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
    let done = query(UPSERT_SQL)
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

const COPY_SQL: &str = r#"COPY "CalendarCacheEvent" ("id", "selectedCalendarId", "externalId", "externalEtag", "iCalUID",
  "iCalSequence", "summary", "description", "location", "start", "end", "isAllDay", "timeZone", "status",
  "recurringEventId", "originalStartTime", "createdAt", "updatedAt", "externalCreatedAt", "externalUpdatedAt") FROM STDIN"#;
/// The same rows into the staging table, the run id in place of the calendar.
const COPY_STAGE_SQL: &str = r#"COPY "CalendarSyncStage" ("id", "runId", "externalId", "externalEtag", "iCalUID",
  "iCalSequence", "summary", "description", "location", "start", "end", "isAllDay", "timeZone", "status",
  "recurringEventId", "originalStartTime", "createdAt", "updatedAt", "externalCreatedAt", "externalUpdatedAt") FROM STDIN"#;

/// Appends a value in COPY text format (`\N` for NULL, backslash escapes).
fn field(buf: &mut String, v: Option<&str>) {
    let Some(s) = v else {
        buf.push_str("\\N");
        return;
    };
    for c in s.chars() {
        match c {
            '\\' => buf.push_str("\\\\"),
            '\t' => buf.push_str("\\t"),
            '\n' => buf.push_str("\\n"),
            '\r' => buf.push_str("\\r"),
            c => buf.push(c),
        }
    }
}

/// Appends a timestamp in COPY text format, or `\\N`.
fn time(buf: &mut String, t: Option<NaiveDateTime>) {
    use std::fmt::Write;
    match t {
        Some(t) => {
            let _ = write!(buf, "{}", t.format("%Y-%m-%d %H:%M:%S%.3f"));
        }
        None => buf.push_str("\\N"),
    }
}

/// Encodes events as COPY text rows for calendar `owner`.
pub fn copy_rows(owner: &str, events: &[CacheEvent], stamp: NaiveDateTime) -> String {
    let mut buf = String::with_capacity(events.len() * 320);
    for e in events {
        let id = event_id();
        let seq = e.ical_sequence.to_string();
        for v in [
            Some(id.as_str()),
            Some(owner),
            Some(&e.external_id),
            Some(&e.etag),
            e.ical_uid.as_deref(),
            Some(&seq),
        ] {
            field(&mut buf, v);
            buf.push('\t');
        }
        for v in [e.summary.as_deref(), e.description.as_deref(), e.location.as_deref()] {
            field(&mut buf, v);
            buf.push('\t');
        }
        time(&mut buf, Some(e.start));
        buf.push('\t');
        time(&mut buf, Some(e.end));
        buf.push('\t');
        for v in [
            Some(if e.is_all_day { "t" } else { "f" }),
            e.time_zone.as_deref(),
            Some(e.status),
            e.recurring_event_id.as_deref(),
        ] {
            field(&mut buf, v);
            buf.push('\t');
        }
        for t in [e.original_start, Some(stamp), Some(stamp), e.external_created] {
            time(&mut buf, t);
            buf.push('\t');
        }
        time(&mut buf, e.external_updated);
        buf.push('\n');
    }
    buf
}

/// Inserts `events` (none of them cached yet for `owner`) with `COPY`: the fast path of full syncs,
/// which start from an empty calendar inside their transaction. Returns the rows written.
pub async fn copy_insert(
    conn: &mut PgConnection,
    owner: &str,
    events: &[CacheEvent],
    stamp: NaiveDateTime,
) -> Result<u64> {
    copy_into(conn, COPY_SQL, owner, events, stamp).await
}

/// Stages `events` of sync run `run` (pages too many to keep in memory). Returns the rows written.
pub async fn stage(conn: &mut PgConnection, run: &str, events: &[CacheEvent], stamp: NaiveDateTime) -> Result<u64> {
    copy_into(conn, COPY_STAGE_SQL, run, events, stamp).await
}

/// Moves the staged rows of run `run` into calendar `owner`'s rows (the latest row of an external
/// id wins), inside the sync's final transaction. `emptied`: the calendar's rows were deleted
/// earlier in this transaction (a full sync). Returns the rows written.
pub async fn merge_stage(
    conn: &mut PgConnection,
    owner: &str,
    run: &str,
    stamp: NaiveDateTime,
    emptied: bool,
) -> Result<u64> {
    let done = query(if emptied { INSERT_STAGE_SQL } else { MERGE_STAGE_SQL })
        .bind(owner)
        .bind(stamp)
        .bind(run)
        .execute(conn)
        .await?;
    Ok(done.rows_affected())
}

/// Forgets the staged rows of a run (after its commit, or when it failed).
pub async fn drop_stage(pool: &sqlx::PgPool, run: &str) -> Result<u64> {
    stmt(r#"DELETE FROM "CalendarSyncStage" WHERE "runId" = $1"#)
        .text(run)
        .execute(pool)
        .await
}

async fn copy_into(
    conn: &mut PgConnection,
    sql: &'static str,
    owner: &str,
    events: &[CacheEvent],
    stamp: NaiveDateTime,
) -> Result<u64> {
    if events.is_empty() {
        return Ok(0);
    }
    let data = copy_rows(owner, events, stamp);
    let mut copy = conn.copy_in_raw(sql).await?;
    if let Err(e) = copy.send(data.as_bytes()).await {
        let _ = copy.abort("calsync: sending rows failed").await;
        return Err(e.into());
    }
    Ok(copy.finish().await?)
}

/// Deletes every cached row of these calendar rows (a full sync starts from nothing).
pub async fn delete_all(conn: &mut PgConnection, rows: &[String]) -> Result<u64> {
    let done = query(r#"DELETE FROM "CalendarCacheEvent" WHERE "selectedCalendarId" = ANY($1)"#)
        .bind(rows)
        .execute(conn)
        .await?;
    Ok(done.rows_affected())
}

/// Deletes the rows of `owner` with these external ids. Returns how many existed.
pub async fn delete(conn: &mut PgConnection, owner: &str, external_ids: &[String]) -> Result<u64> {
    if external_ids.is_empty() {
        return Ok(0);
    }
    let done = query(r#"DELETE FROM "CalendarCacheEvent" WHERE "selectedCalendarId" = $1 AND "externalId" = ANY($2)"#)
        .bind(owner)
        .bind(external_ids)
        .execute(conn)
        .await?;
    Ok(done.rows_affected())
}

/// Deletes every row of `owner` that belongs to one of these resources (`recurringEventId`).
/// Returns how many existed.
pub async fn delete_resources(conn: &mut PgConnection, owner: &str, resources: &[String]) -> Result<u64> {
    if resources.is_empty() {
        return Ok(0);
    }
    let done =
        query(r#"DELETE FROM "CalendarCacheEvent" WHERE "selectedCalendarId" = $1 AND "recurringEventId" = ANY($2)"#)
            .bind(owner)
            .bind(resources)
            .execute(conn)
            .await?;
    Ok(done.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_text_escapes_and_nulls() {
        let t = chrono::NaiveDate::from_ymd_opt(2026, 1, 2)
            .unwrap()
            .and_hms_milli_opt(3, 4, 5, 6)
            .unwrap();
        let e = CacheEvent {
            external_id: "x".into(),
            etag: "\"e\"".into(),
            ical_uid: None,
            ical_sequence: 2,
            summary: Some("a\tb\nc\\d".into()),
            description: None,
            location: None,
            start: t,
            end: t,
            is_all_day: true,
            time_zone: Some("UTC".into()),
            status: "tentative",
            recurring_event_id: None,
            original_start: None,
            external_created: Some(t),
            external_updated: None,
            organizer: true,
        };
        let row = copy_rows("cal", &[e], t);
        let cols: Vec<&str> = row.trim_end_matches('\n').split('\t').collect();
        assert_eq!(cols.len(), 20);
        assert_eq!(&cols[1..7], &["cal", "x", "\"e\"", "\\N", "2", "a\\tb\\nc\\\\d"]);
        assert_eq!(cols[9], "2026-01-02 03:04:05.006");
        assert_eq!(
            (cols[11], cols[13], cols[18], cols[19]),
            ("t", "tentative", "2026-01-02 03:04:05.006", "\\N")
        );
    }
}

//! The two-way sync outbox, `"CalendarSyncBookingChange"` (SPEC §5): booking changes written in the
//! transaction of the sync that found them, handed out at least once until acknowledged.

use std::time::Duration;

use chrono::NaiveDateTime;
use sqlx::{PgConnection, PgPool, Row};

use super::sql::{query, stmt};
use crate::error::Result;

/// A change of one of the app's bookings at a provider, as a sync found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The provider's id of the event (one per occurrence of a recurring booking).
    pub external_id: String,
    /// The booking uid (the event's iCalUID without `@cal.com`).
    pub uid: String,
    /// The new times; `None` when cancelled.
    pub start: Option<NaiveDateTime>,
    pub end: Option<NaiveDateTime>,
    pub cancelled: bool,
}

/// A change in the outbox, as the app takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    /// What acknowledges this state of the change (a later change of the same event gets another).
    pub id: i64,
    pub selected_calendar_id: String,
    pub external_id: String,
    pub uid: String,
    pub user_id: i32,
    pub integration: String,
    pub start: Option<NaiveDateTime>,
    pub end: Option<NaiveDateTime>,
    pub cancelled: bool,
    pub changed_at: NaiveDateTime,
    /// How many times it has been handed out, this time included.
    pub deliveries: i32,
}

/// Writes `found` for calendar `owner` inside the sync's transaction; a change of an event already
/// waiting replaces its state (the latest wins) under a new id. A change some taker holds keeps
/// its hold: the newer state is handed out only once that hold has ended, so no second taker can
/// apply it before the first has applied (or given up on) the older one.
pub async fn write(
    tx: &mut PgConnection,
    owner: &str,
    user_id: i32,
    integration: &str,
    found: &[Found],
    stamp: NaiveDateTime,
) -> Result<u64> {
    if found.is_empty() {
        return Ok(0);
    }
    let col = |f: fn(&Found) -> String| found.iter().map(f).collect::<Vec<String>>();
    let done = query(
        r#"INSERT INTO "CalendarSyncBookingChange"
             ("selectedCalendarId", "externalId", "uid", "userId", "integration", "start", "end", "cancelled", "changedAt")
           SELECT $1, e, u, $2, $3, s, en, c, $4
           FROM unnest($5::text[], $6::text[], $7::timestamp[], $8::timestamp[], $9::bool[]) AS f(e, u, s, en, c)
           ON CONFLICT ("selectedCalendarId", "externalId") DO UPDATE
           SET "id" = nextval('"CalendarSyncBookingChange_id_seq"'), "uid" = EXCLUDED."uid", "start" = EXCLUDED."start",
               "end" = EXCLUDED."end", "cancelled" = EXCLUDED."cancelled", "changedAt" = EXCLUDED."changedAt",
               "deliveries" = 0"#,
    )
    .bind(owner)
    .bind(user_id)
    .bind(integration)
    .bind(stamp)
    .bind(col(|f| f.external_id.clone()))
    .bind(col(|f| f.uid.clone()))
    .bind(found.iter().map(|f| f.start).collect::<Vec<_>>())
    .bind(found.iter().map(|f| f.end).collect::<Vec<_>>())
    .bind(found.iter().map(|f| f.cancelled).collect::<Vec<_>>())
    .execute(tx)
    .await?;
    Ok(done.rows_affected())
}

/// Hands out up to `limit` changes no other taker holds, oldest first, each held for `hold`: a
/// change not acknowledged by then is handed out again.
pub async fn take(pool: &PgPool, limit: i64, hold: Duration, now: NaiveDateTime) -> Result<Vec<Queued>> {
    let until = now + chrono::Duration::from_std(hold).unwrap_or(chrono::Duration::MAX);
    let rows = stmt(
        r#"UPDATE "CalendarSyncBookingChange" SET "takenUntil" = $2, "deliveries" = "deliveries" + 1
           WHERE "id" IN (SELECT "id" FROM "CalendarSyncBookingChange"
                          WHERE "takenUntil" IS NULL OR "takenUntil" <= $1
                          ORDER BY "id" LIMIT $3 FOR UPDATE SKIP LOCKED)
           RETURNING *"#,
    )
    .ts(now)
    .ts(until)
    .bigint(limit)
    .fetch_all(pool)
    .await?;
    let mut out = rows
        .iter()
        .map(|r| {
            Ok(Queued {
                id: r.try_get("id")?,
                selected_calendar_id: r.try_get("selectedCalendarId")?,
                external_id: r.try_get("externalId")?,
                uid: r.try_get("uid")?,
                user_id: r.try_get("userId")?,
                integration: r.try_get("integration")?,
                start: r.try_get("start")?,
                end: r.try_get("end")?,
                cancelled: r.try_get("cancelled")?,
                changed_at: r.try_get("changedAt")?,
                deliveries: r.try_get("deliveries")?,
            })
        })
        .collect::<std::result::Result<Vec<_>, sqlx::Error>>()?;
    out.sort_by_key(|q| q.id);
    Ok(out)
}

/// Removes the acknowledged changes; an id whose change was replaced by a newer one since removes
/// nothing. Returns how many were removed.
pub async fn ack(pool: &PgPool, ids: &[i64]) -> Result<u64> {
    if ids.is_empty() {
        return Ok(0);
    }
    stmt(r#"DELETE FROM "CalendarSyncBookingChange" WHERE "id" = ANY($1::int8[])"#)
        .bigints(ids)
        .execute(pool)
        .await
}

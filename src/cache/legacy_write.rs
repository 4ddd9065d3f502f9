//! The legacy dual-write: inside a sync's commit, Cal.com's legacy JSON cache rows of the synced
//! calendar's credential are rewritten from the SQL cache as that transaction sees it (SPEC §8).
//!
//! A row holds one Google freebusy answer for the selected Google calendars of one event-type
//! group of a credential (the user-level rows form one group), for the window from the first day of
//! this month to the first day of the month after next. It is rewritten inside the transaction of
//! every sync that commits for one of those calendars, from the SQL cache as that transaction sees
//! it, under a transaction-scoped lock per row, so concurrent syncs of the group's calendars leave
//! the row as the last of them saw it. A group with any calendar the SQL cache cannot vouch for
//! (the read path would not serve it) gets no row: its old row is deleted, so the legacy reader
//! asks Google itself, as it did before calsync.

use std::collections::HashMap;

use chrono::NaiveDateTime;
use sqlx::{PgConnection, Row};

use super::legacy_format::{google_instant, js_iso, key, value, window, TTL_DAYS};
use super::{assemble, CalendarRow, Query, Selection};
use crate::db::reads::rows_by_ids;
use crate::db::sql::{query, stmt};
use crate::error::Result;

/// What one refresh did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Refreshed {
    /// Legacy rows written.
    pub written: u32,
    /// Groups left to the legacy path (a calendar the SQL cache cannot vouch for); their old rows
    /// were deleted.
    pub skipped: u32,
}

/// A selected calendar: (`SelectedCalendar` id, external calendar id).
type Selected = (String, String);

/// One event-type group of a credential's selected Google calendars.
struct LegacyGroup {
    key: String,
    /// In the order the key lists them.
    rows: Vec<Selected>,
}

/// Rewrites the legacy rows of every group of `credential_id` that contains calendar `external_id`,
/// inside the caller's transaction. `synced_owner` is the row whose sync this transaction commits
/// (its own pending marks are covered by it).
pub async fn refresh(
    tx: &mut PgConnection,
    credential_id: i32,
    external_id: &str,
    synced_owner: &str,
    now: NaiveDateTime,
    bounds: &super::Staleness,
) -> Result<Refreshed> {
    let (min, max) = window(now);
    let (time_min, time_max) = (js_iso(min), js_iso(max));
    let rows = stmt(
        r#"SELECT id, "externalId", "eventTypeId", "userId" FROM "SelectedCalendar"
           WHERE "credentialId" = $1 AND integration = 'google_calendar'
           ORDER BY "createdAt" NULLS FIRST, id"#,
    )
    .int(credential_id)
    .fetch_all(&mut *tx)
    .await?;
    let mut by_type: Vec<(Option<i32>, Vec<Selected>)> = Vec::new();
    let mut user_id = None;
    for r in rows {
        let event_type: Option<i32> = r.try_get("eventTypeId")?;
        let pair = (r.try_get::<String, _>("id")?, r.try_get::<String, _>("externalId")?);
        user_id = Some(r.try_get::<i32, _>("userId")?);
        match by_type.iter_mut().find(|(t, _)| *t == event_type) {
            Some((_, list)) => list.push(pair),
            None => by_type.push((event_type, vec![pair])),
        }
    }
    let groups: Vec<LegacyGroup> = by_type
        .into_iter()
        .filter(|(_, rows)| rows.iter().any(|(_, ext)| ext == external_id))
        .map(|(_, rows)| {
            let ids: Vec<&str> = rows.iter().map(|(_, ext)| ext.as_str()).collect();
            LegacyGroup {
                key: key(&time_min, &time_max, &ids),
                rows,
            }
        })
        .collect();
    if groups.is_empty() {
        return Ok(Refreshed::default());
    }
    // One writer per legacy row at a time; the statements after the lock see every sync that
    // committed before it was granted (READ COMMITTED takes a snapshot per statement).
    let mut keys: Vec<String> = groups.iter().map(|g| format!("{credential_id}:{}", g.key)).collect();
    keys.sort();
    query("SELECT pg_advisory_xact_lock(hashtextextended(k, 0)) FROM unnest($1::text[]) AS k ORDER BY k")
        .bind(&keys)
        .execute(&mut *tx)
        .await?;
    let ids: Vec<String> = groups
        .iter()
        .flat_map(|g| g.rows.iter().map(|(id, _)| id.clone()))
        .collect();
    let mut read = rows_by_ids(&mut *tx, &ids, min.naive_utc(), max.naive_utc()).await?;
    for row in &mut read {
        if row.owner_id == synced_owner {
            row.pending_ms = None; // this transaction covers them
        }
    }
    let by_id: HashMap<String, CalendarRow> = read.into_iter().map(|r| (r.req_id.clone(), r)).collect();
    // Whether the user's calendars are served is the read flag's business, not the legacy row's.
    let flags: HashMap<i32, bool> = user_id.into_iter().map(|u| (u, true)).collect();
    let mut out = Refreshed::default();
    let expires = now + chrono::Duration::days(TTL_DAYS);
    for g in &groups {
        let group_ids: Vec<String> = g.rows.iter().map(|(id, _)| id.clone()).collect();
        let q = Query {
            selection: Selection::Ids(group_ids.clone()),
            time_min: min,
            time_max: max,
        };
        let rows: Vec<CalendarRow> = group_ids.iter().filter_map(|id| by_id.get(id).cloned()).collect();
        let answer = assemble(&q, rows, &flags, None, now, bounds);
        if !answer.uncached.is_empty() {
            query(r#"DELETE FROM "CalendarCache" WHERE "credentialId" = $1 AND "key" = $2"#)
                .bind(credential_id)
                .bind(&g.key)
                .execute(&mut *tx)
                .await?;
            out.skipped += 1;
            continue;
        }
        let external: HashMap<&str, &str> = g.rows.iter().map(|(id, ext)| (id.as_str(), ext.as_str())).collect();
        let mut busy: Vec<(String, Vec<(String, String)>)> = Vec::new();
        for (_, ext) in &g.rows {
            if !busy.iter().any(|(e, _)| e == ext) {
                busy.push((ext.clone(), Vec::new()));
            }
        }
        for b in answer.busy {
            let ext = external
                .get(b.selected_calendar_id.as_str())
                .copied()
                .unwrap_or_default();
            if let Some((_, list)) = busy.iter_mut().find(|(e, _)| e == ext) {
                list.push((google_instant(&b.start), google_instant(&b.end)));
            }
        }
        let value = value(&time_min, &time_max, &busy);
        query(
            r#"INSERT INTO "CalendarCache" ("id", "key", "value", "expiresAt", "updatedAt", "credentialId", "userId")
               VALUES (gen_random_uuid()::text, $1, $2::jsonb, $3, $4, $5, $6)
               ON CONFLICT ("credentialId", "key") DO UPDATE
               SET "value" = EXCLUDED."value", "expiresAt" = EXCLUDED."expiresAt", "updatedAt" = EXCLUDED."updatedAt""#,
        )
        .bind(&g.key)
        .bind(value.to_string())
        .bind(expires)
        .bind(now)
        .bind(credential_id)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
        out.written += 1;
    }
    Ok(out)
}

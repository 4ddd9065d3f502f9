//! Cal.com's legacy JSON cache, `"CalendarCache"` (SPEC §8): the exact key and value its readers
//! look up, and the dual-write that keeps those rows current from the SQL cache while
//! `calendar-cache-sql-write` is on for a user.
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
use std::time::Duration;

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, TimeZone, Utc};
use sqlx::{PgConnection, Row};

use crate::availability::{assemble, rows_by_ids, CalendarRow, Query, Selection, Span};
use crate::db::sql::{query, stmt};
use crate::error::Result;

/// How long a legacy row is valid after it is written (readers require `expiresAt >= now`).
pub const TTL_DAYS: i64 = 30;

/// `[first day of this month, first day of the month after next)` at midnight UTC.
pub fn window(now: NaiveDateTime) -> (DateTime<Utc>, DateTime<Utc>) {
    let first =
        |y: i32, m: u32| Utc.from_utc_datetime(&NaiveDate::from_ymd_opt(y, m, 1).expect("a valid month").into());
    let (y, m) = (now.year(), now.month());
    let (y2, m2) = if m > 10 { (y + 1, m - 10) } else { (y, m + 2) };
    (first(y, m), first(y2, m2))
}

/// The window of the key the legacy reader looks up for a request ending at `end`, made at `now`:
/// from the first day of this month to the first day of the month two months after a base month,
/// the base being this month when `end` falls in it or the next two, else `end`'s month.
pub fn lookup_window(now: NaiveDateTime, end: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    let end = end.naive_utc();
    let months = (end.year() - now.year()) * 12 + end.month() as i32 - now.month() as i32;
    let base = if (0..=2).contains(&months) { now } else { end };
    (window(now).0, window(base).1)
}

/// A calendar's entry in a legacy value: `{ "busy": [{ start, end }] }`, or Google's `errors`.
#[derive(serde::Deserialize)]
struct Entry<'a> {
    #[serde(borrow)]
    busy: Vec<Block<'a>>,
    #[serde(default)]
    errors: Option<Vec<serde::de::IgnoredAny>>,
}

#[derive(serde::Deserialize)]
struct Block<'a> {
    #[serde(borrow)]
    start: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    end: std::borrow::Cow<'a, str>,
}

/// The busy blocks of a calendar's entry in a legacy value (JSON text), sorted; `None` when the
/// entry is malformed or carries Google's `errors` for the calendar (its `busy` then means nothing).
pub fn busy_of(entry: &str) -> Option<Vec<Span>> {
    spans_of(serde_json::from_str(entry).ok()?)
}

fn spans_of(entry: Entry) -> Option<Vec<Span>> {
    if entry.errors.is_some_and(|e| !e.is_empty()) {
        return None;
    }
    let instant = |v: &str| DateTime::parse_from_rfc3339(v).ok().map(|t| t.naive_utc());
    let mut spans = entry
        .busy
        .iter()
        .map(|b| Some((instant(&b.start)?, instant(&b.end)?)))
        .collect::<Option<Vec<Span>>>()?;
    spans.sort_unstable();
    Some(spans)
}

/// An instant as JavaScript's `toISOString()` writes it (`2026-11-01T00:00:00.000Z`).
pub fn js_iso(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// The key the legacy reader looks a freebusy answer up by: `JSON.stringify({ timeMin, timeMax,
/// items })` with `items` = `[{ id }]` de-duplicated by id in their first-seen order.
pub fn key(time_min: &str, time_max: &str, calendar_ids: &[&str]) -> String {
    let mut seen = std::collections::HashSet::new();
    let items: Vec<serde_json::Value> = calendar_ids
        .iter()
        .filter(|id| seen.insert(**id))
        .map(|id| serde_json::json!({ "id": id }))
        .collect();
    // serde_json keeps insertion order only with `preserve_order`; write the object by hand.
    format!(
        "{{\"timeMin\":{},\"timeMax\":{},\"items\":{}}}",
        serde_json::Value::from(time_min),
        serde_json::Value::from(time_max),
        serde_json::Value::from(items)
    )
}

/// A Google freebusy response: `{ kind, timeMin, timeMax, calendars: { id: { busy: [...] } } }`.
pub fn value(time_min: &str, time_max: &str, busy: &[(String, Vec<(String, String)>)]) -> serde_json::Value {
    let calendars: serde_json::Map<String, serde_json::Value> = busy
        .iter()
        .map(|(id, spans)| {
            let list: Vec<serde_json::Value> = spans
                .iter()
                .map(|(s, e)| serde_json::json!({ "start": s, "end": e }))
                .collect();
            (id.clone(), serde_json::json!({ "busy": list }))
        })
        .collect();
    serde_json::json!({ "kind": "calendar#freeBusy", "timeMin": time_min, "timeMax": time_max, "calendars": calendars })
}

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
    stale_after: Duration,
    pending_grace: Duration,
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
        let answer = assemble(&q, rows, &flags, None, now, stale_after, pending_grace);
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

/// Which legacy rows `verify` looks at.
#[derive(Debug, Clone, Copy)]
pub enum Scope {
    All,
    User(i32),
    Team(i32),
}

/// One difference between a legacy row and the SQL cache: `missing_block` (busy in the SQL cache,
/// free in the legacy row), `extra_block` (the other way round) or `different_bounds` (both busy
/// there, with other start or end). Only the calendar id and the interval, never event contents.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Divergence {
    pub calendar: String,
    pub kind: &'static str,
    pub start: String,
    pub end: String,
}

/// What `verify` found for one legacy row.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub credential_id: i32,
    pub user_id: Option<i32>,
    /// `equal`, `diverged` or `not_comparable`.
    pub state: &'static str,
    /// Why a row is not comparable: `malformed_row`, `not_selected`, or the read path's reason
    /// (`not_subscribed`, `sync_failed`, `stale`, ...) for a calendar the SQL cache cannot vouch for.
    pub reason: Option<String>,
    pub divergences: Vec<Divergence>,
}

/// The parts of a legacy row `verify` compares: its window, calendars and busy blocks.
struct Parsed {
    min: DateTime<Utc>,
    max: DateTime<Utc>,
    calendars: Vec<(String, Vec<Span>)>,
}

fn parse_row(key: &str, value: &serde_json::Value) -> Option<Parsed> {
    let k: serde_json::Value = serde_json::from_str(key).ok()?;
    let instant = |v: &serde_json::Value| -> Option<DateTime<Utc>> {
        DateTime::parse_from_rfc3339(v.as_str()?)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    };
    let (min, max) = (instant(&k["timeMin"])?, instant(&k["timeMax"])?);
    let mut calendars = Vec::new();
    for item in k["items"].as_array()? {
        let id = item["id"].as_str()?.to_string();
        let spans = spans_of(serde::Deserialize::deserialize(&value["calendars"][&id]).ok()?)?;
        calendars.push((id, spans));
    }
    (max > min).then_some(Parsed { min, max, calendars })
}

/// The differences between the legacy blocks and the SQL cache's, both merged and clipped.
pub fn compare(calendar: &str, legacy: &[Span], sql: &[Span]) -> Vec<Divergence> {
    let overlaps = |a: &Span, b: &Span| a.0 < b.1 && b.0 < a.1;
    let div = |kind, (s, e): &Span| Divergence {
        calendar: calendar.to_string(),
        kind,
        start: crate::time::format_utc(*s),
        end: crate::time::format_utc(*e),
    };
    let mut out = Vec::new();
    for l in legacy {
        if sql.contains(l) {
            continue;
        }
        out.push(div(
            if sql.iter().any(|s| overlaps(s, l)) {
                "different_bounds"
            } else {
                "extra_block"
            },
            l,
        ));
    }
    for s in sql {
        if !legacy.iter().any(|l| overlaps(l, s)) {
            out.push(div("missing_block", s));
        }
    }
    out
}

/// Compares every live legacy row in `scope` with the SQL cache over the part of its window from
/// now on (time before now is never bookable, and the SQL cache keeps only a day of it).
pub async fn verify(
    pool: &sqlx::PgPool,
    scope: Scope,
    now: NaiveDateTime,
    stale_after: Duration,
    pending_grace: Duration,
) -> Result<Vec<Verdict>> {
    let exists = match scope {
        Scope::All => true,
        Scope::User(id) => stmt(r#"SELECT 1 FROM users WHERE id = $1"#)
            .int(id)
            .fetch_optional(pool)
            .await?
            .is_some(),
        Scope::Team(id) => stmt(r#"SELECT 1 FROM "Team" WHERE id = $1"#)
            .int(id)
            .fetch_optional(pool)
            .await?
            .is_some(),
    };
    if !exists {
        return Err(crate::error::Error::NotFound(match scope {
            Scope::User(id) => format!("no user {id}"),
            Scope::Team(id) => format!("no team {id}"),
            Scope::All => unreachable!(),
        }));
    }
    let (user, team) = match scope {
        Scope::All => (None, None),
        Scope::User(id) => (Some(id), None),
        Scope::Team(id) => (None, Some(id)),
    };
    let rows = stmt(
        r#"SELECT c."credentialId", cr."userId", c.key, c.value::text AS value FROM "CalendarCache" c
           JOIN "Credential" cr ON cr.id = c."credentialId"
           WHERE c."expiresAt" >= $1
             AND ($2::int4 IS NULL OR cr."userId" = $2)
             AND ($3::int4 IS NULL OR cr."userId" IN (SELECT "userId" FROM "Membership" WHERE "teamId" = $3 AND accepted))
           ORDER BY c."credentialId", c.key"#,
    )
    .ts(now)
    .int(user)
    .int(team)
    .fetch_all(pool)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let credential_id: i32 = r.try_get("credentialId")?;
        let user_id: Option<i32> = r.try_get("userId")?;
        let key: String = r.try_get("key")?;
        let value: String = r.try_get("value")?;
        let verdict = |state, reason: Option<String>, divergences| Verdict {
            credential_id,
            user_id,
            state,
            reason,
            divergences,
        };
        let parsed = serde_json::from_str::<serde_json::Value>(&value)
            .ok()
            .and_then(|v| parse_row(&key, &v));
        let Some(p) = parsed else {
            out.push(verdict("not_comparable", Some("malformed_row".into()), Vec::new()));
            continue;
        };
        let from = p.min.max(Utc.from_utc_datetime(&now));
        if from >= p.max {
            out.push(verdict("equal", None, Vec::new()));
            continue;
        }
        let externals: Vec<String> = p.calendars.iter().map(|(id, _)| id.clone()).collect();
        // The user-level row of each calendar, else any: the SQL cache is the same for all of them.
        let selected = stmt(
            r#"SELECT DISTINCT ON ("externalId") id, "externalId" FROM "SelectedCalendar"
               WHERE "credentialId" = $1 AND integration = 'google_calendar' AND "externalId" = ANY($2)
               ORDER BY "externalId", ("eventTypeId" IS NOT NULL), id"#,
        )
        .int(credential_id)
        .texts(&externals)
        .fetch_all(pool)
        .await?;
        let mut row_of: HashMap<String, String> = HashMap::new();
        for s in &selected {
            row_of.insert(s.try_get("externalId")?, s.try_get("id")?);
        }
        if externals.iter().any(|e| !row_of.contains_key(e)) {
            out.push(verdict("not_comparable", Some("not_selected".into()), Vec::new()));
            continue;
        }
        let ids: Vec<String> = externals.iter().map(|e| row_of[e].clone()).collect();
        let read = rows_by_ids(pool, &ids, from.naive_utc(), p.max.naive_utc()).await?;
        let flags: HashMap<i32, bool> = read.iter().map(|r| (r.user_id, true)).collect();
        let q = Query {
            selection: Selection::Ids(ids.clone()),
            time_min: from,
            time_max: p.max,
        };
        let answer = assemble(&q, read, &flags, None, now, stale_after, pending_grace);
        if let Some((_, why)) = answer.uncached.first() {
            out.push(verdict("not_comparable", Some(why.as_str().into()), Vec::new()));
            continue;
        }
        let mut divergences = Vec::new();
        for (ext, legacy_spans) in &p.calendars {
            let row = &row_of[ext];
            let mut sql: Vec<Span> = answer
                .busy
                .iter()
                .filter(|b| &b.selected_calendar_id == row)
                .filter_map(|b| {
                    let at = |v: &str| crate::time::parse_iso("busy", v).ok().map(|t| t.naive_utc());
                    Some((at(&b.start)?, at(&b.end)?))
                })
                .collect();
            sql.sort_unstable();
            let legacy =
                crate::availability::merge_busy(legacy_spans.iter().copied(), from.naive_utc(), p.max.naive_utc());
            divergences.extend(compare(ext, &legacy, &sql));
        }
        let state = if divergences.is_empty() { "equal" } else { "diverged" };
        out.push(verdict(state, None, divergences));
    }
    Ok(out)
}

/// How long a process waits before recording the same difference again.
const RECORD_EVERY: Duration = Duration::from_secs(60);

/// The differences shadow reads found, remembered so that each one is written (and logged) at
/// most once a minute per process, however many reads see it.
#[derive(Default)]
pub struct ShadowLog {
    recent: std::sync::Mutex<HashMap<Divergence, std::time::Instant>>,
}

impl ShadowLog {
    /// The differences of `found` not recorded within the last minute, marked as recorded now.
    pub fn fresh(&self, found: &[(&'static str, Divergence)]) -> Vec<(&'static str, Divergence)> {
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        if recent.len() > 10_000 {
            recent.retain(|_, at| at.elapsed() < RECORD_EVERY);
        }
        found
            .iter()
            .filter(|(_, d)| match recent.get(d) {
                Some(at) if at.elapsed() < RECORD_EVERY => false,
                _ => {
                    recent.insert(d.clone(), std::time::Instant::now());
                    true
                }
            })
            .cloned()
            .collect()
    }
}

/// Writes differences shadow reads found (`served` = the source the read served) to
/// `"CalendarSyncDivergence"`, and logs each with the calendar id and interval only.
pub async fn record(pool: &sqlx::PgPool, found: &[(&'static str, Divergence)], now: NaiveDateTime) -> Result<()> {
    let column = |f: fn(&(&'static str, Divergence)) -> String| found.iter().map(f).collect::<Vec<String>>();
    for (served, d) in found {
        tracing::warn!(calendar = %d.calendar, kind = d.kind, start = %d.start, end = %d.end, served = *served,
            "the legacy JSON cache and the SQL cache disagree");
    }
    stmt(
        r#"INSERT INTO "CalendarSyncDivergence" ("selectedCalendarId", "kind", "start", "end", "served", "firstSeenAt", "lastSeenAt")
           SELECT c, k, s::timestamptz AT TIME ZONE 'UTC', e::timestamptz AT TIME ZONE 'UTC', v, $6, $6
           FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) AS d(c, k, s, e, v)
           ON CONFLICT ("selectedCalendarId", "kind", "start", "end")
           DO UPDATE SET "served" = EXCLUDED."served", "lastSeenAt" = EXCLUDED."lastSeenAt""#,
    )
    .texts(&column(|(_, d)| d.calendar.clone()))
    .texts(&column(|(_, d)| d.kind.to_string()))
    .texts(&column(|(_, d)| d.start.clone()))
    .texts(&column(|(_, d)| d.end.clone()))
    .texts(&column(|(v, _)| v.to_string()))
    .ts(now)
    .execute(pool)
    .await?;
    Ok(())
}

/// Where the migration stands (`calsync migrate status`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stage {
    /// Users with legacy rows (live or expired).
    pub users: u64,
    /// Of those, users whose syncs keep the legacy rows current (`calendar-cache-sql-write`).
    pub writing: u64,
    /// Of those, users whose reads come from the SQL cache (`calendar-cache-sql`).
    pub reading_sql: u64,
    /// Legacy rows still valid, and expired.
    pub live_rows: u64,
    pub expired_rows: u64,
    /// Teams (and organizations) with a row for either migration flag, and where they stand.
    pub teams: Vec<TeamStage>,
    /// Differences shadow reads recorded (calendars and intervals), and the latest of them.
    pub divergences: u64,
    pub last_divergences: Vec<Recorded>,
}

/// A team's migration flags, as evaluated for the team (its own row, else its organization's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeamStage {
    pub team_id: i32,
    pub writing: bool,
    pub reading_sql: bool,
}

/// A difference a shadow read recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub selected_calendar_id: String,
    pub kind: String,
    pub start: NaiveDateTime,
    pub end: NaiveDateTime,
    /// The source the reads served: `sql` or `legacy`.
    pub served: String,
    pub first_seen_at: NaiveDateTime,
    pub last_seen_at: NaiveDateTime,
}

/// How many recorded differences `stage` lists.
const LAST_DIVERGENCES: i64 = 20;

async fn legacy_users(pool: &sqlx::PgPool) -> Result<Vec<i32>> {
    let rows: Vec<(i32,)> = stmt(
        r#"SELECT DISTINCT cr."userId" FROM "CalendarCache" c JOIN "Credential" cr ON cr.id = c."credentialId"
           WHERE cr."userId" IS NOT NULL ORDER BY 1"#,
    )
    .fetch_as(pool)
    .await?;
    Ok(rows.into_iter().map(|(u,)| u).collect())
}

/// Counts users at each stage and the legacy rows; lists the teams with migration flags and the
/// latest differences shadow reads recorded.
pub async fn stage(pool: &sqlx::PgPool, flags: &crate::flags::Flags, now: NaiveDateTime) -> Result<Stage> {
    use crate::flags::{Subject, CACHE_SQL_READ, CACHE_SQL_WRITE};
    let users = legacy_users(pool).await?;
    let on = |m: HashMap<i32, bool>| m.values().filter(|v| **v).count() as u64;
    let writing = on(flags.for_users(pool, CACHE_SQL_WRITE, &users).await?);
    let reading_sql = on(flags.for_users(pool, CACHE_SQL_READ, &users).await?);
    let row = stmt(
        r#"SELECT count(*) FILTER (WHERE "expiresAt" >= $1) AS live, count(*) FILTER (WHERE "expiresAt" < $1) AS expired,
                  (SELECT count(*) FROM "CalendarSyncDivergence") AS divergences
           FROM "CalendarCache""#,
    )
    .ts(now)
    .fetch_all(pool)
    .await?;
    let get =
        |c: &str| -> Result<u64> { Ok(row.first().map(|r| r.try_get::<i64, _>(c)).transpose()?.unwrap_or(0) as u64) };
    let team_ids: Vec<(i32,)> =
        stmt(r#"SELECT DISTINCT "teamId" FROM "TeamFeatures" WHERE "featureId" = ANY($1) ORDER BY 1"#)
            .texts(&[CACHE_SQL_WRITE, CACHE_SQL_READ])
            .fetch_as(pool)
            .await?;
    let mut teams = Vec::with_capacity(team_ids.len());
    for (team_id,) in team_ids {
        teams.push(TeamStage {
            team_id,
            writing: flags.is_enabled(pool, CACHE_SQL_WRITE, Subject::Team(team_id)).await?,
            reading_sql: flags.is_enabled(pool, CACHE_SQL_READ, Subject::Team(team_id)).await?,
        });
    }
    let last = stmt(
        r#"SELECT "selectedCalendarId", "kind", "start", "end", "served", "firstSeenAt", "lastSeenAt"
           FROM "CalendarSyncDivergence" ORDER BY "lastSeenAt" DESC, "selectedCalendarId", "start" LIMIT $1"#,
    )
    .bigint(LAST_DIVERGENCES)
    .fetch_all(pool)
    .await?;
    let last_divergences = last
        .iter()
        .map(|r| {
            Ok(Recorded {
                selected_calendar_id: r.try_get("selectedCalendarId")?,
                kind: r.try_get("kind")?,
                start: r.try_get("start")?,
                end: r.try_get("end")?,
                served: r.try_get("served")?,
                first_seen_at: r.try_get("firstSeenAt")?,
                last_seen_at: r.try_get("lastSeenAt")?,
            })
        })
        .collect::<std::result::Result<Vec<_>, sqlx::Error>>()?;
    Ok(Stage {
        users: users.len() as u64,
        writing,
        reading_sql,
        live_rows: get("live")?,
        expired_rows: get("expired")?,
        teams,
        divergences: get("divergences")?,
        last_divergences,
    })
}

/// The last stage: deletes every legacy row, in batches, once every user who has any reads from
/// the SQL cache; otherwise fails naming how many do not. Returns the rows deleted.
pub async fn drop_all(pool: &sqlx::PgPool, flags: &crate::flags::Flags, batch: i64) -> Result<u64> {
    let users = legacy_users(pool).await?;
    let reading = flags.for_users(pool, crate::flags::CACHE_SQL_READ, &users).await?;
    let behind = users
        .iter()
        .filter(|u| !reading.get(u).copied().unwrap_or(false))
        .count();
    if behind > 0 {
        return Err(crate::error::Error::invalid(format!(
            "{behind} of {} users with legacy cache rows still read from the legacy cache (calendar-cache-sql is off for them); \
             nothing was deleted",
            users.len()
        )));
    }
    let mut deleted = 0;
    loop {
        let n = stmt(
            r#"DELETE FROM "CalendarCache" WHERE ("credentialId", "key") IN (
                 SELECT "credentialId", "key" FROM "CalendarCache" LIMIT $1)"#,
        )
        .bigint(batch.max(1))
        .execute(pool)
        .await?;
        deleted += n;
        if n == 0 {
            return Ok(deleted);
        }
    }
}

/// `2026-11-25T09:00:00.000Z` → `2026-11-25T09:00:00Z`, as Google's freebusy writes instants.
fn google_instant(iso: &str) -> String {
    iso.strip_suffix(".000Z")
        .map_or_else(|| iso.to_string(), |s| format!("{s}Z"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(y: i32, m: u32, d: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, m, d).unwrap().and_hms_opt(13, 5, 0).unwrap()
    }

    #[test]
    fn window_wraps_years_and_ignores_the_day() {
        let w = |t| {
            let (a, b) = window(t);
            (js_iso(a), js_iso(b))
        };
        assert_eq!(
            w(at(2026, 11, 24)),
            ("2026-11-01T00:00:00.000Z".into(), "2027-01-01T00:00:00.000Z".into())
        );
        assert_eq!(
            w(at(2026, 12, 31)),
            ("2026-12-01T00:00:00.000Z".into(), "2027-02-01T00:00:00.000Z".into())
        );
        assert_eq!(
            w(at(2028, 2, 29)),
            ("2028-02-01T00:00:00.000Z".into(), "2028-04-01T00:00:00.000Z".into())
        );
        assert_eq!(
            w(at(2027, 1, 31)),
            ("2027-01-01T00:00:00.000Z".into(), "2027-03-01T00:00:00.000Z".into())
        );
    }

    #[test]
    fn lookup_window_widens_to_the_months_the_writer_covers() {
        let end = |y, m, d| {
            NaiveDate::from_ymd_opt(y, m, d)
                .unwrap()
                .and_hms_opt(0, 0, 0)
                .unwrap()
                .and_utc()
        };
        let w = |now, e| {
            let (a, b) = lookup_window(now, e);
            (js_iso(a), js_iso(b))
        };
        // Ending this month or in the next two: the window the writer writes.
        let written = ("2026-11-01T00:00:00.000Z".into(), "2027-01-01T00:00:00.000Z".into());
        assert_eq!(w(at(2026, 11, 24), end(2026, 11, 30)), written);
        assert_eq!(w(at(2026, 11, 24), end(2027, 1, 15)), written);
        // Further out: based on the end's month.
        assert_eq!(
            w(at(2026, 11, 24), end(2027, 2, 10)),
            ("2026-11-01T00:00:00.000Z".into(), "2027-04-01T00:00:00.000Z".into())
        );
    }

    #[test]
    fn busy_of_reads_google_entries_and_refuses_errors() {
        let ok = serde_json::json!({ "busy": [
            { "start": "2026-12-01T10:00:00Z", "end": "2026-12-01T11:00:00Z" },
            { "start": "2026-12-01T08:00:00+01:00", "end": "2026-12-01T08:30:00+01:00" }
        ] });
        let spans = busy_of(&ok.to_string()).unwrap();
        assert_eq!(crate::time::format_utc(spans[0].0), "2026-12-01T07:00:00.000Z");
        assert_eq!(spans.len(), 2);
        assert_eq!(busy_of(r#"{"busy":[]}"#), Some(vec![]));
        let errors = serde_json::json!({ "errors": [{ "domain": "global", "reason": "notFound" }], "busy": [] });
        assert_eq!(busy_of(&errors.to_string()), None);
        assert_eq!(busy_of(r#"{"busy":[{"start":"soon","end":"later"}]}"#), None);
        assert_eq!(busy_of(r#"{"busy":[{"start":"2026-12-01T10:00:00Z"}]}"#), None);
        assert_eq!(busy_of("null"), None);
        assert_eq!(
            busy_of(r#"{"busy":[{"start":"2026-12-01T10:00:00\u005a","end":"2026-12-01T11:00:00Z"}]}"#)
                .map(|v| v.len()),
            Some(1)
        );
    }

    #[test]
    fn key_is_json_stringify_with_first_seen_order() {
        assert_eq!(
            key(
                "2026-11-01T00:00:00.000Z",
                "2027-01-01T00:00:00.000Z",
                &["b@x.com", "a\"q", "b@x.com"]
            ),
            r#"{"timeMin":"2026-11-01T00:00:00.000Z","timeMax":"2027-01-01T00:00:00.000Z","items":[{"id":"b@x.com"},{"id":"a\"q"}]}"#
        );
    }

    #[test]
    fn divergences_by_kind() {
        let t = |h: u32| {
            NaiveDate::from_ymd_opt(2026, 12, 1)
                .unwrap()
                .and_hms_opt(h, 0, 0)
                .unwrap()
        };
        let sql = [(t(9), t(10)), (t(12), t(13)), (t(15), t(16))];
        let legacy = [(t(9), t(10)), (t(12), t(14)), (t(18), t(19))];
        let kinds: Vec<&str> = compare("c", &legacy, &sql).iter().map(|d| d.kind).collect();
        assert_eq!(kinds, ["different_bounds", "extra_block", "missing_block"]);
        assert!(compare("c", &sql, &sql).is_empty());
    }

    #[test]
    fn malformed_rows_are_not_parsed() {
        let v = serde_json::json!({ "calendars": { "a": { "busy": [] } } });
        let key = r#"{"timeMin":"2026-11-01T00:00:00.000Z","timeMax":"2027-01-01T00:00:00.000Z","items":[{"id":"a"}]}"#;
        assert!(parse_row(key, &v).is_some());
        assert!(parse_row("not json", &v).is_none());
        assert!(parse_row(key, &serde_json::json!({ "calendars": {} })).is_none());
        let backwards = r#"{"timeMin":"2027-01-01T00:00:00.000Z","timeMax":"2026-11-01T00:00:00.000Z","items":[]}"#;
        assert!(parse_row(backwards, &v).is_none());
    }

    #[test]
    fn instants_as_google_writes_them() {
        assert_eq!(google_instant("2026-11-25T09:00:00.000Z"), "2026-11-25T09:00:00Z");
        assert_eq!(google_instant("2026-11-25T09:00:00.250Z"), "2026-11-25T09:00:00.250Z");
    }
}

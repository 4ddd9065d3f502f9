//! The move off Cal.com's legacy JSON cache, `"CalendarCache"` (SPEC §8): comparing its rows with
//! the SQL cache (`verify`), remembering and recording what shadow reads found, where the migration
//! stands, and the last stage that deletes the rows. Their format and the dual-write that keeps
//! them current are in `cache::legacy_format` and `cache::legacy_write`.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{NaiveDateTime, TimeZone, Utc};
use sqlx::Row;

pub use crate::cache::legacy_format::Divergence;
use crate::cache::legacy_format::{compare, parse_row};
use crate::cache::{assemble, merge_busy, Query, Selection, Span, Staleness};
use crate::db::reads::rows_by_ids;
use crate::db::sql::stmt;
use crate::error::Result;

/// Which legacy rows `verify` looks at.
#[derive(Debug, Clone, Copy)]
pub enum Scope {
    All,
    User(i32),
    Team(i32),
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

/// Compares every live legacy row in `scope` with the SQL cache over the part of its window from
/// now on (time before now is never bookable, and the SQL cache keeps only a day of it).
pub async fn verify(pool: &sqlx::PgPool, scope: Scope, now: NaiveDateTime, bounds: &Staleness) -> Result<Vec<Verdict>> {
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
        let answer = assemble(&q, read, &flags, None, now, bounds);
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
            let legacy = merge_busy(legacy_spans.iter().copied(), from.naive_utc(), p.max.naive_utc());
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

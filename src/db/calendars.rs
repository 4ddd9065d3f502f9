//! `SelectedCalendar` queries for the sync engine: calendar groups, channels, sync bookkeeping.
//!
//! A *group* is every row that selects one provider calendar for one user (one row per event type).
//! Its *owner* holds the cached events and the `CalendarSyncState` row: the row that already has
//! the state, else the user-level row, else the lowest id (the read path uses the same rule).

use std::collections::HashMap;

use chrono::NaiveDateTime;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Row};

use super::lease::Lease;
use super::sql::{query, stmt};
use crate::error::Result;

/// The rows of one provider calendar, the owner first.
#[derive(Debug, Clone)]
pub struct Group {
    pub owner_id: String,
    pub row_ids: Vec<String>,
    pub user_id: i32,
    pub integration: String,
    pub external_id: String,
    pub credential_id: Option<i32>,
    /// The organisation's `DelegationCredential` the rows carry instead of a user credential.
    pub delegation_id: Option<String>,
    /// The user's email: whom a delegation credential acts as.
    pub user_email: String,
    pub channel_id: Option<String>,
    pub channel_resource_id: Option<String>,
    pub channel_expiration: Option<NaiveDateTime>,
    pub sync_token: Option<String>,
    pub sync_error_count: i32,
    pub has_state: bool,
    /// The end of the window the last full sync covered.
    pub window_end: Option<NaiveDateTime>,
    /// When this was read, on the database's clock: a sync clears the pending marks written before.
    pub read_at: NaiveDateTime,
    /// Whether a row of the group had a pending mark when it was read (known from
    /// [`claim_group`] only; `false` from [`group_of`]).
    pub pending: bool,
}

const GROUP_SQL: &str = r#"
SELECT sc.id, sc."userId", sc.integration, sc."externalId", sc."credentialId", sc."delegationCredentialId", sc."channelId",
       sc."channelResourceId", sc."channelExpiration", sc."syncToken", COALESCE(sc."syncErrorCount", 0) AS errors,
       (st."selectedCalendarId" IS NOT NULL) AS has_state, st."windowEnd" AS window_end,
       (clock_timestamp() AT TIME ZONE 'UTC')::timestamp(3) AS read_at, u.email
FROM "SelectedCalendar" sc
JOIN users u ON u.id = sc."userId"
LEFT JOIN "CalendarSyncState" st ON st."selectedCalendarId" = sc.id
WHERE (sc."userId", sc.integration, sc."externalId") IN (
  SELECT "userId", integration, "externalId" FROM "SelectedCalendar" WHERE id = $1
)
ORDER BY (st."selectedCalendarId" IS NULL), (sc."eventTypeId" IS NOT NULL), sc.id
"#;

fn group_from(rows: Vec<PgRow>) -> Result<Option<Group>> {
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let mut g = Group {
        owner_id: first.try_get("id")?,
        row_ids: Vec::with_capacity(rows.len()),
        user_id: first.try_get("userId")?,
        integration: first.try_get("integration")?,
        external_id: first.try_get("externalId")?,
        credential_id: None,
        delegation_id: None,
        user_email: first.try_get("email")?,
        channel_id: None,
        channel_resource_id: None,
        channel_expiration: None,
        sync_token: first.try_get("syncToken")?,
        sync_error_count: first.try_get("errors")?,
        has_state: first.try_get("has_state")?,
        window_end: first.try_get("window_end")?,
        read_at: first.try_get("read_at")?,
        pending: false,
    };
    for r in &rows {
        g.row_ids.push(r.try_get("id")?);
        // Any row's credential and live channel speak for the whole group.
        if g.credential_id.is_none() {
            g.credential_id = r.try_get("credentialId")?;
        }
        if g.delegation_id.is_none() {
            g.delegation_id = r.try_get("delegationCredentialId")?;
        }
        if g.channel_id.is_none() {
            let ch: Option<String> = r.try_get("channelId")?;
            if ch.is_some() {
                g.channel_id = ch;
                g.channel_resource_id = r.try_get("channelResourceId")?;
                g.channel_expiration = r.try_get("channelExpiration")?;
            }
        }
    }
    Ok(Some(g))
}

impl Group {
    /// The calendar as provider calls address it.
    pub fn target(&self) -> crate::model::Target<'_> {
        crate::model::Target {
            external_id: &self.external_id,
            acting_for: self.acting_for(),
            user_email: &self.user_email,
        }
    }

    /// Whom an organisation's delegation credential acts for when it gives this calendar's access
    /// (no user credential): the user's email; `None` when the user's own grant does.
    pub fn acting_for(&self) -> Option<&str> {
        let app_only = self.credential_id.is_none() && self.delegation_id.is_some();
        app_only.then_some(self.user_email.as_str())
    }
}

/// The user's time zone (`users."timeZone"`), UTC when it names none calsync knows.
pub async fn user_zone(pool: &PgPool, user_id: i32) -> Result<chrono_tz::Tz> {
    let name: Option<String> = stmt(r#"SELECT "timeZone" FROM users WHERE id = $1"#)
        .int(user_id)
        .fetch_optional(pool)
        .await?
        .map(|r| r.try_get("timeZone"))
        .transpose()?;
    Ok(name
        .as_deref()
        .and_then(crate::time::zone_named)
        .unwrap_or(chrono_tz::Tz::UTC))
}

/// The stored cursors of these rows (rows without one are left out).
pub async fn cursors(pool: &PgPool, ids: &[String]) -> Result<HashMap<String, String>> {
    let rows = stmt(r#"SELECT id, "syncToken" FROM "SelectedCalendar" WHERE id = ANY($1) AND "syncToken" IS NOT NULL"#)
        .texts(ids)
        .fetch_all(pool)
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("id")?, r.try_get("syncToken")?)))
        .collect()
}

/// Records a poll that found the calendar unchanged since `cursor`: its rows count as synced at
/// `now`, if the cursor is still the stored one and no failure is on record. Returns whether it was.
pub async fn mark_polled(pool: &PgPool, row_ids: &[String], cursor: &str, now: NaiveDateTime) -> Result<bool> {
    let done = query(
        r#"UPDATE "SelectedCalendar" SET "syncedAt" = GREATEST("syncedAt", $3)
           WHERE id = ANY($1) AND "syncToken" = $2 AND "syncErrorAt" IS NULL"#,
    )
    .bind(row_ids)
    .bind(cursor)
    .bind(now)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// The group of the row `id`, or `None` when there is no such row.
pub async fn group_of(pool: &PgPool, id: &str) -> Result<Option<Group>> {
    group_from(stmt(GROUP_SQL).text(id).fetch_all(pool).await?)
}

/// Row `id`'s group read after trying to take its sync claim for `holder` (one round trip; see
/// `calsync_sync_claim_v1` in sql/calsync.sql): the group, the claim's key, and whether the claim is
/// now `holder`'s. `None` when there is no such row.
pub async fn claim_group(
    pool: &PgPool,
    id: &str,
    holder: &str,
    ttl: std::time::Duration,
) -> Result<Option<(Group, String, bool)>> {
    let rows = stmt("SELECT * FROM calsync_sync_claim_v1($1, $2, $3)")
        .text(id)
        .text(holder)
        .bigint(ttl.as_millis().min(i64::MAX as u128) as i64)
        .fetch_all(pool)
        .await?;
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let (key, taken): (String, bool) = (first.try_get("claimKey")?, first.try_get("taken")?);
    let mut pending = false;
    for r in &rows {
        pending |= r.try_get::<bool, _>("pending")?;
    }
    Ok(group_from(rows)?.map(|g| (Group { pending, ..g }, key, taken)))
}

/// The channel a notification names: the row id it is stored on, with its resource id and provider.
#[derive(Debug, Clone)]
pub struct ChannelRow {
    pub selected_calendar_id: String,
    pub resource_id: Option<String>,
    pub integration: String,
    /// Known only from the channel ledger: being opened (not stored yet) or replaced but still live.
    pub from_ledger: bool,
    /// The channel ledger holds it: calsync opened it (channels of the TypeScript implementation,
    /// and calsync's own from before the ledger, are not there).
    pub in_ledger: bool,
}

/// For each of these channel ids, the `integration` calendar row carrying it, else the calendar the
/// channel ledger records it for (a channel whose opening has not stored it yet, or an old one not
/// yet stopped). One statement for a whole batch.
pub async fn by_channels(
    pool: &PgPool,
    integration: &str,
    channel_ids: &[String],
) -> Result<HashMap<String, ChannelRow>> {
    let rows = stmt(
        r#"SELECT DISTINCT ON (channel) channel, id, resource, integration, from_ledger,
                  EXISTS (SELECT 1 FROM "CalendarSyncChannel" l
                          WHERE l."channelId" = x.channel AND l.integration = $2) AS in_ledger
           FROM (
             SELECT sc."channelId" AS channel, sc.id, sc."channelResourceId" AS resource, sc.integration,
                    false AS from_ledger
             FROM "SelectedCalendar" sc WHERE sc."channelId" = ANY($1) AND sc.integration = $2
             UNION ALL
             SELECT l."channelId", sc.id, l."resourceId", sc.integration, true
             FROM "CalendarSyncChannel" l JOIN "SelectedCalendar" sc ON sc.id = l."selectedCalendarId"
             WHERE l."channelId" = ANY($1) AND l.integration = $2
           ) x ORDER BY channel, from_ledger, id"#,
    )
    .texts(channel_ids)
    .text(integration)
    .fetch_all(pool)
    .await?;
    let mut out = HashMap::with_capacity(rows.len());
    for r in rows {
        out.insert(
            r.try_get("channel")?,
            ChannelRow {
                selected_calendar_id: r.try_get("id")?,
                resource_id: r.try_get("resource")?,
                integration: r.try_get("integration")?,
                from_ledger: r.try_get("from_ledger")?,
                in_ledger: r.try_get("in_ledger")?,
            },
        );
    }
    Ok(out)
}

/// A new channel for every row of a group.
pub struct NewChannel<'a> {
    /// Its row in the channel ledger.
    pub ledger_id: &'a str,
    pub id: &'a str,
    pub kind: &'a str,
    pub resource_id: &'a str,
    pub resource_uri: Option<&'a str>,
    pub expiration: Option<NaiveDateTime>,
}

/// Stores a channel on the rows, completes its ledger row, and resets the subscription error count
/// (one statement: the ledger and the rows never disagree about a stored channel).
pub async fn store_channel(pool: &PgPool, row_ids: &[String], ch: &NewChannel<'_>, now: NaiveDateTime) -> Result<()> {
    stmt(
        r#"WITH ledger AS (
             UPDATE "CalendarSyncChannel" SET "channelId" = $2, "resourceId" = $4, "expiresAt" = $6 WHERE "id" = $8
           )
           UPDATE "SelectedCalendar" SET "channelId" = $2, "channelKind" = $3, "channelResourceId" = $4,
             "channelResourceUri" = $5, "channelExpiration" = $6, "syncSubscribedAt" = $7,
             "syncSubscribedErrorCount" = 0, "syncSubscribedErrorAt" = NULL
           WHERE id = ANY($1)"#,
    )
    .texts(row_ids)
    .text(ch.id)
    .text(ch.kind)
    .text(ch.resource_id)
    .text(ch.resource_uri)
    .ts(ch.expiration)
    .ts(now)
    .text(ch.ledger_id)
    .execute(pool)
    .await?;
    Ok(())
}

/// Stores a renewed channel's new expiration on the rows and in the ledger.
pub async fn store_expiration(
    pool: &PgPool,
    row_ids: &[String],
    channel_id: &str,
    expiration: Option<NaiveDateTime>,
    now: NaiveDateTime,
) -> Result<()> {
    stmt(
        r#"WITH ledger AS (UPDATE "CalendarSyncChannel" SET "expiresAt" = $2 WHERE "channelId" = $4)
           UPDATE "SelectedCalendar" SET "channelExpiration" = $2, "syncSubscribedAt" = $3,
             "syncSubscribedErrorCount" = 0, "syncSubscribedErrorAt" = NULL WHERE id = ANY($1)"#,
    )
    .texts(row_ids)
    .ts(expiration)
    .ts(now)
    .text(channel_id)
    .execute(pool)
    .await?;
    Ok(())
}

/// Copies the channel of row `from` onto the rows `to` (rows of one calendar share its channel).
pub async fn copy_channel(pool: &PgPool, from: &str, to: &[String]) -> Result<()> {
    stmt(
        r#"UPDATE "SelectedCalendar" t SET "channelId" = f."channelId", "channelKind" = f."channelKind",
             "channelResourceId" = f."channelResourceId", "channelResourceUri" = f."channelResourceUri",
             "channelExpiration" = f."channelExpiration", "syncSubscribedAt" = f."syncSubscribedAt"
           FROM "SelectedCalendar" f WHERE f.id = $1 AND t.id = ANY($2)"#,
    )
    .text(from)
    .texts(to)
    .execute(pool)
    .await?;
    Ok(())
}

/// Records a failed subscribe attempt on the rows.
pub async fn record_subscribe_failure(pool: &PgPool, row_ids: &[String], now: NaiveDateTime) -> Result<()> {
    stmt(
        r#"UPDATE "SelectedCalendar" SET "syncSubscribedErrorCount" = "syncSubscribedErrorCount" + 1,
             "syncSubscribedErrorAt" = $2 WHERE id = ANY($1)"#,
    )
    .texts(row_ids)
    .ts(now)
    .execute(pool)
    .await?;
    Ok(())
}

/// Forgets the channel, the sync token and the cached events of a group (unsubscribe), atomically.
pub async fn clear_subscription(pool: &PgPool, row_ids: &[String]) -> Result<u64> {
    let mut tx = pool.begin().await?;
    query(
        r#"UPDATE "SelectedCalendar" SET "channelId" = NULL, "channelKind" = NULL, "channelResourceId" = NULL,
             "channelResourceUri" = NULL, "channelExpiration" = NULL, "syncSubscribedAt" = NULL,
             "syncToken" = NULL, "syncedAt" = NULL WHERE id = ANY($1)"#,
    )
    .bind(row_ids)
    .execute(&mut *tx)
    .await?;
    let deleted = query(r#"DELETE FROM "CalendarCacheEvent" WHERE "selectedCalendarId" = ANY($1)"#)
        .bind(row_ids)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    query(r#"DELETE FROM "CalendarSyncPending" WHERE "selectedCalendarId" = ANY($1)"#)
        .bind(row_ids)
        .execute(&mut *tx)
        .await?;
    query(r#"DELETE FROM "CalendarSyncState" WHERE "selectedCalendarId" = ANY($1)"#)
        .bind(row_ids)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(deleted)
}

/// Locks the owner row of a calendar until the transaction ends and returns its sync token: the
/// final write of a sync checks that no other sync committed since it started. `NO KEY UPDATE`:
/// webhooks writing pending marks (whose foreign key takes a key-share lock on the row) never wait
/// for a sync's commit.
///
/// `clears_mark`: the transaction will delete a pending mark (SPEC §6.10). The same statement then
/// makes its commit asynchronous (`synchronous_commit = off`, for this transaction only): the
/// commit returns without waiting for its WAL flush. A crash that loses such a transaction loses
/// its deletion of the mark too, so the calendar is synced again and nothing acknowledged is lost;
/// WAL keeps commit order, so any later flushed commit makes it durable as well. Other syncs (cron,
/// sync-on-read, `syncCalendar`) have no mark to fall back on and commit as the server is set to.
pub async fn lock_token(conn: &mut PgConnection, owner_id: &str, clears_mark: bool) -> Result<Option<Option<String>>> {
    let row = query(
        r#"SELECT set_config('synchronous_commit', CASE WHEN $2 THEN 'off' ELSE current_setting('synchronous_commit') END, true),
                  "syncToken"
           FROM "SelectedCalendar" WHERE id = $1 FOR NO KEY UPDATE"#,
    )
    .bind(owner_id)
    .bind(clears_mark)
    .fetch_optional(conn)
    .await?;
    Ok(match row {
        Some(r) => Some(r.try_get("syncToken")?),
        None => None,
    })
}

/// Records that the provider announced a change to the calendars of these rows, before the webhook
/// answers (one short write; SPEC §6.10). The sync that covers it removes the mark. Gives up after
/// `within` (a locked table, an overloaded server): the webhook then answers 503 and the provider
/// retries, rather than hang.
pub async fn mark_pending(pool: &PgPool, row_ids: &[String], within: std::time::Duration) -> Result<()> {
    let write = stmt(
        r#"INSERT INTO "CalendarSyncPending" ("selectedCalendarId", "since", "last")
           SELECT id, t, t FROM unnest($1) AS id, (SELECT (clock_timestamp() AT TIME ZONE 'UTC')::timestamp(3) AS t) now
           ON CONFLICT ("selectedCalendarId") DO UPDATE SET "last" = EXCLUDED."last""#,
    )
    .texts(row_ids)
    .execute(pool);
    super::within(within, "recording a notification", write)
        .await
        .map(|_| ())
}

/// The rows with a change announced longer than `older_than_ms` ago that no sync has covered.
pub async fn pending(pool: &PgPool, older_than_ms: i64) -> Result<Vec<String>> {
    let rows: Vec<(String,)> = stmt(
        r#"SELECT p."selectedCalendarId" FROM "CalendarSyncPending" p
           JOIN "SelectedCalendar" sc ON sc.id = p."selectedCalendarId"
           WHERE p."since" < (clock_timestamp() AT TIME ZONE 'UTC') - $1 * interval '1 millisecond'
             AND sc."channelId" IS NOT NULL
             -- a calendar whose sync just failed waits for its backoff (the safety net retries it)
             AND (sc."syncErrorAt" IS NULL OR sc."syncErrorAt" < sc."syncedAt"
                  OR sc."syncErrorAt" < (clock_timestamp() AT TIME ZONE 'UTC') - interval '1 minute')"#,
    )
    .bigint(older_than_ms)
    .fetch_as(pool)
    .await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

/// Commits a successful sync's bookkeeping on every row of the group, inside the sync transaction,
/// in one statement: the new token, the failures forgotten (also one another process recorded
/// while this sync ran: the calendar is as fresh as this sync's start), the pending marks written before the
/// group was read (`read_at`) cleared, and the sync's claim ended with the commit. A webhook marking
/// the same calendar in that last instant waits for the commit (its mark then lands after it).
///
/// A mark renewed after `read_at` stays, but slides: this sync covered every change announced
/// before `read_at`, so what is still owed was announced after it, and the mark's age counts from
/// there. Without the slide, a calendar notified during every sync for longer than the grace
/// (a busy shared calendar, a slow provider) would read `stale` forever.
pub async fn record_sync_success(
    conn: &mut PgConnection,
    row_ids: &[String],
    sync_token: Option<&str>,
    now: NaiveDateTime,
    read_at: NaiveDateTime,
    claim: &Lease,
) -> Result<()> {
    query(
        r#"WITH failures AS (DELETE FROM "CalendarSyncFailure" WHERE "selectedCalendarId" = ANY($1)),
                marks AS (DELETE FROM "CalendarSyncPending" WHERE "selectedCalendarId" = ANY($1) AND "last" <= $4),
                slid AS (UPDATE "CalendarSyncPending" SET "since" = $4
                         WHERE "selectedCalendarId" = ANY($1) AND "last" > $4 AND "since" < $4),
                claim AS (DELETE FROM "CalendarSyncLease" WHERE "key" = $5 AND "holder" = $6)
           UPDATE "SelectedCalendar" SET "syncToken" = $2, "syncedAt" = $3, "syncErrorCount" = 0, "syncErrorAt" = NULL
           WHERE id = ANY($1)"#,
    )
    .bind(row_ids)
    .bind(sync_token)
    .bind(now)
    .bind(read_at)
    .bind(&claim.key)
    .bind(claim.holder())
    .execute(conn)
    .await?;
    Ok(())
}

/// Records the window a full sync covered.
pub async fn store_window(
    conn: &mut PgConnection,
    owner_id: &str,
    start: NaiveDateTime,
    end: NaiveDateTime,
    now: NaiveDateTime,
) -> Result<()> {
    query(
        r#"INSERT INTO "CalendarSyncState" ("selectedCalendarId", "windowStart", "windowEnd", "updatedAt")
           VALUES ($1, $2, $3, $4)
           ON CONFLICT ("selectedCalendarId") DO UPDATE SET "windowStart" = $2, "windowEnd" = $3, "updatedAt" = $4"#,
    )
    .bind(owner_id)
    .bind(start)
    .bind(end)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records a failed sync (and its error code, for `status()`) in one statement; with `drop_token`
/// the next sync is a full one. Returns the new error count.
pub async fn record_sync_failure(
    pool: &PgPool,
    row_ids: &[String],
    now: NaiveDateTime,
    drop_token: bool,
    code: &str,
) -> Result<i32> {
    let count: Option<i32> = stmt(
        r#"WITH failed AS (
             UPDATE "SelectedCalendar" SET "syncErrorCount" = COALESCE("syncErrorCount", 0) + 1, "syncErrorAt" = $2,
               "syncToken" = CASE WHEN $3 THEN NULL ELSE "syncToken" END
             WHERE id = ANY($1) RETURNING id, "syncErrorCount"
           ), why AS (
             INSERT INTO "CalendarSyncFailure" ("selectedCalendarId", "code", "failedAt")
             SELECT id, $4, $2 FROM failed
             ON CONFLICT ("selectedCalendarId") DO UPDATE SET "code" = EXCLUDED."code", "failedAt" = EXCLUDED."failedAt"
           )
           SELECT max("syncErrorCount") FROM failed"#,
    )
    .texts(row_ids)
    .ts(now)
    .bool(drop_token)
    .text(code)
    .scalar(pool)
    .await?;
    Ok(count.unwrap_or(0))
}

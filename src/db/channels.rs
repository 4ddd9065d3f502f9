//! The channel ledger, `"CalendarSyncChannel"`: every push channel calsync asked a provider for and
//! has not yet seen stopped or expired. A row is written before the provider call that opens the
//! channel, completed by the same statement that stores the channel on the calendar's rows, and
//! removed once the channel is stopped. Rows no calendar carries are the channels to stop.

use sqlx::{PgPool, Row};

use super::calendars::Group;
use super::sql::stmt;
use crate::error::Result;

/// Records that a channel is about to be opened for `group` (`channel_id`: the id calsync chose,
/// when the provider lets it choose).
pub async fn opening(pool: &PgPool, id: &str, channel_id: Option<&str>, group: &Group) -> Result<()> {
    stmt(
        r#"INSERT INTO "CalendarSyncChannel" ("id", "channelId", "selectedCalendarId", "userId", "integration",
             "externalId", "credentialId", "resourceId", "openedAt")
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, clock_timestamp() AT TIME ZONE 'UTC')"#,
    )
    .text(id)
    .text(channel_id)
    .text(group.owner_id.as_str())
    .int(group.user_id)
    .text(group.integration.as_str())
    .text(group.external_id.as_str())
    .int(group.credential_id)
    // The resource id of a calendar is the same for every channel on it: knowing it from an
    // earlier channel lets a leaked new one be stopped even if its own answer was never stored.
    .text(group.channel_resource_id.as_deref())
    .execute(pool)
    .await?;
    Ok(())
}

/// Forgets a ledger row: its channel was stopped, refused, or has expired.
pub async fn forget(pool: &PgPool, id: &str) -> Result<()> {
    stmt(r#"DELETE FROM "CalendarSyncChannel" WHERE "id" = $1"#)
        .text(id)
        .execute(pool)
        .await?;
    Ok(())
}

/// Forgets the ledger rows of a channel stopped by its provider id.
pub async fn forget_channel(pool: &PgPool, channel_id: &str) -> Result<()> {
    stmt(r#"DELETE FROM "CalendarSyncChannel" WHERE "channelId" = $1"#)
        .text(channel_id)
        .execute(pool)
        .await?;
    Ok(())
}

/// A channel in the ledger that no calendar row carries.
#[derive(Debug, Clone)]
pub struct Orphan {
    pub id: String,
    pub channel_id: Option<String>,
    pub user_id: i32,
    pub integration: String,
    pub external_id: String,
    pub credential_id: Option<i32>,
    /// Its own resource id, else the one the calendar's current channel has (the same resource).
    pub resource_id: Option<String>,
    /// True when it can no longer be live (its expiration has passed).
    pub expired: bool,
}

/// Forgets the ledger rows no calendar row carries whose channel cannot be live any more: past its
/// expiration, or — when the provider never answered with one (a failed or unanswered watch) —
/// opened longer ago than the longest lifetime calsync asks for (`max_ttl_ms`; a provider never
/// grants more than was asked). Nothing is asked of the provider; returns how many.
pub async fn forget_expired(pool: &PgPool, max_ttl_ms: i64) -> Result<u64> {
    let done = stmt(
        r#"DELETE FROM "CalendarSyncChannel" l
           WHERE COALESCE(l."expiresAt", l."openedAt" + $1 * interval '1 millisecond') < (clock_timestamp() AT TIME ZONE 'UTC')
             AND (l."channelId" IS NULL
                  OR NOT EXISTS (SELECT 1 FROM "SelectedCalendar" sc WHERE sc."channelId" = l."channelId"))"#,
    )
    .bigint(max_ttl_ms)
    .execute(pool)
    .await?;
    Ok(done)
}

/// Ledger rows whose channel no `"SelectedCalendar"` row carries and that calsync can act on: an
/// opening in progress, or one that died before storing its channel, or a channel replaced or
/// unsubscribed whose stop failed. A channel whose stop needs a resource id nobody knows cannot be
/// stopped; it is left out (so that such rows never crowd out the ones that can be stopped) until
/// the next channel of its calendar tells the resource id, or it expires.
/// `need_resource`: the integrations whose channels are stopped by resource id too.
pub async fn orphans(pool: &PgPool, limit: i64, need_resource: &[&str]) -> Result<Vec<Orphan>> {
    let rows = stmt(
        r#"SELECT * FROM (
             SELECT l."id", l."channelId", l."userId", l."integration", l."externalId", l."credentialId", l."openedAt",
                    COALESCE(l."resourceId", (SELECT sc."channelResourceId" FROM "SelectedCalendar" sc
                       WHERE sc."userId" = l."userId" AND sc."integration" = l."integration"
                         AND sc."externalId" = l."externalId" AND sc."channelResourceId" IS NOT NULL LIMIT 1)) AS resource,
                    COALESCE(l."expiresAt" < (clock_timestamp() AT TIME ZONE 'UTC'), false) AS expired
             FROM "CalendarSyncChannel" l
             WHERE l."channelId" IS NULL
                OR NOT EXISTS (SELECT 1 FROM "SelectedCalendar" sc WHERE sc."channelId" = l."channelId")
           ) o
           WHERE NOT (o."integration" = ANY($2) AND o.resource IS NULL)
           ORDER BY o."openedAt" LIMIT $1"#,
    )
    .bigint(limit)
    .texts(need_resource)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Orphan {
                id: r.try_get("id")?,
                channel_id: r.try_get("channelId")?,
                user_id: r.try_get("userId")?,
                integration: r.try_get("integration")?,
                external_id: r.try_get("externalId")?,
                credential_id: r.try_get("credentialId")?,
                resource_id: r.try_get("resource")?,
                expired: r.try_get("expired")?,
            })
        })
        .collect()
}

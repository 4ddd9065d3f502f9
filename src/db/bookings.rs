//! The app's bookings as two-way sync finds them (SPEC §5): which provider events are bookings, and
//! the cached rows of those that are.
//!
//! An event is a booking of the app when its `iCalUID` is `<uid>@cal.com` (where the provider lets
//! the app choose the iCalUID) or when Cal.com's `"BookingReference"` names it: the reference the
//! app wrote when it created the event in the organizer's calendar (`type` = the integration, `uid`
//! = the provider's event id, the credential or the calendar that holds it, not `deleted`), joined
//! to its `"Booking"` for the booking uid.

use std::collections::HashMap;

use chrono::NaiveDateTime;
use sqlx::{PgPool, Row};

use super::sql::{stmt, Stmt};
use crate::error::Result;

/// The calendar whose events are looked up, and how its bookings are recognised.
pub struct Scope<'a> {
    /// The row holding the calendar's cached events.
    pub owner: &'a str,
    pub integration: &'a str,
    pub credential_id: Option<i32>,
    pub delegation_id: Option<&'a str>,
    /// The provider's id of the calendar.
    pub external_id: &'a str,
    /// `Some("@cal.com")`: an iCalUID with this suffix marks a booking (else only references do).
    pub uid_suffix: Option<&'a str>,
}

impl Scope<'_> {
    /// Binds what a booking reference must match, as the next four parameters: the integration,
    /// then the credential, the delegation credential or the calendar that holds the event.
    fn bind(&self, stmt: Stmt) -> Stmt {
        stmt.text(self.integration)
            .int(self.credential_id)
            .text(self.delegation_id)
            .text(self.external_id)
    }
}

/// The booking uids of the events (by provider id) that `"BookingReference"` names for this
/// calendar. Ids not named are left out.
pub async fn referenced(pool: &PgPool, scope: &Scope<'_>, event_ids: &[String]) -> Result<HashMap<String, String>> {
    if event_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let query = stmt(
        r#"SELECT DISTINCT ON (r."uid") r."uid" AS event_id, b."uid" AS booking_uid
           FROM "BookingReference" r JOIN "Booking" b ON b."id" = r."bookingId"
           WHERE r."uid" = ANY($1) AND r."type" = $2 AND r."deleted" IS NOT TRUE
             AND (r."credentialId" = $3 OR r."delegationCredentialId" = $4 OR r."externalCalendarId" = $5)
           ORDER BY r."uid", r."id" DESC"#,
    )
    .texts(event_ids);
    let rows = scope.bind(query).fetch_all(pool).await?;
    rows.iter()
        .map(|r| Ok((r.try_get("event_id")?, r.try_get("booking_uid")?)))
        .collect::<std::result::Result<_, sqlx::Error>>()
        .map_err(Into::into)
}

/// A cached row of a booking: its booking uid and times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cached {
    pub uid: String,
    pub start: NaiveDateTime,
    pub end: NaiveDateTime,
}

/// The cached rows of the calendar that are bookings, by provider id: every one (`all`), or those
/// of `event_ids`.
pub async fn cached(
    pool: &PgPool,
    scope: &Scope<'_>,
    all: bool,
    event_ids: &[String],
) -> Result<HashMap<String, Cached>> {
    if !all && event_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let suffix = scope.uid_suffix.unwrap_or("");
    let query = stmt(
        r#"SELECT e."externalId",
                  COALESCE(ref.booking_uid, left(e."iCalUID", length(e."iCalUID") - length($4))) AS uid,
                  e."start", e."end"
           FROM "CalendarCacheEvent" e
           LEFT JOIN LATERAL (
             SELECT b."uid" AS booking_uid
             FROM "BookingReference" r JOIN "Booking" b ON b."id" = r."bookingId"
             WHERE r."type" = $5 AND r."uid" = e."externalId" AND r."deleted" IS NOT TRUE
               AND (r."credentialId" = $6 OR r."delegationCredentialId" = $7 OR r."externalCalendarId" = $8)
             ORDER BY r."id" DESC LIMIT 1
           ) ref ON true
           WHERE e."selectedCalendarId" = $1 AND ($2 OR e."externalId" = ANY($3))
             AND (ref.booking_uid IS NOT NULL OR ($4 <> '' AND right(e."iCalUID", length($4)) = $4))"#,
    )
    .text(scope.owner)
    .bool(all)
    .texts(event_ids)
    .text(suffix);
    let rows = scope.bind(query).fetch_all(pool).await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get("externalId")?,
                Cached {
                    uid: r.try_get("uid")?,
                    start: r.try_get("start")?,
                    end: r.try_get("end")?,
                },
            ))
        })
        .collect::<std::result::Result<_, sqlx::Error>>()
        .map_err(Into::into)
}

/// Which of these events the calendar has cached rows of (bookings or not).
pub async fn cached_ids(pool: &PgPool, owner: &str, event_ids: &[String]) -> Result<std::collections::HashSet<String>> {
    if event_ids.is_empty() {
        return Ok(Default::default());
    }
    let rows: Vec<(String,)> = stmt(
        r#"SELECT "externalId" FROM "CalendarCacheEvent" WHERE "selectedCalendarId" = $1 AND "externalId" = ANY($2)"#,
    )
    .text(owner)
    .texts(event_ids)
    .fetch_as(pool)
    .await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

-- The read path in one round trip. $1 = requested SelectedCalendar ids (or NULL), $2 = user id (or
-- NULL), $3 = event type id for $2 (NULL = the user's own calendars), $4/$5 = timeMin/timeMax.
-- One row per requested calendar. Rows that select the same provider calendar (one per event type)
-- share an "owner": the row holding the cached events and the sync window (the one with a
-- CalendarSyncState row, else the user-level row, else the lowest id). Events come once per owner.
WITH req AS (
  SELECT sc.id, sc."userId", sc.integration, sc."externalId", sc."credentialId"
  FROM "SelectedCalendar" sc
  WHERE ($1::text[] IS NOT NULL AND sc.id = ANY($1::text[]))
     OR ($2::int4 IS NOT NULL AND sc."userId" = $2::int4
         AND sc."eventTypeId" IS NOT DISTINCT FROM $3::int4)
), cal AS (
  SELECT r.id AS req_id, r."userId" AS user_id, r.integration, o.*,
         cr.invalid AS credential_invalid
  FROM req r
  CROSS JOIN LATERAL (
    SELECT sc.id AS owner_id, sc."channelId" AS channel_id, sc."channelExpiration" AS channel_expiration,
           sc."syncSubscribedAt" AS subscribed_at, sc."syncedAt" AS synced_at,
           sc."syncErrorAt" AS sync_error_at, st."windowStart" AS window_start, st."windowEnd" AS window_end
    FROM "SelectedCalendar" sc
    LEFT JOIN "CalendarSyncState" st ON st."selectedCalendarId" = sc.id
    WHERE sc."userId" = r."userId" AND sc.integration = r.integration AND sc."externalId" = r."externalId"
    ORDER BY (st."selectedCalendarId" IS NULL), (sc."eventTypeId" IS NOT NULL), sc.id
    LIMIT 1
  ) o
  LEFT JOIN "Credential" cr ON cr.id = r."credentialId"
), ev AS (
  SELECT e."selectedCalendarId" AS owner_id,
         array_agg(e.start ORDER BY e.start, e."end") AS starts,
         array_agg(e."end" ORDER BY e.start, e."end") AS ends
  FROM "CalendarCacheEvent" e
  WHERE e."selectedCalendarId" IN (SELECT owner_id FROM cal WHERE window_start IS NOT NULL)
    AND e.start < $5 AND e."end" > $4 AND e.status <> 'cancelled'
  GROUP BY e."selectedCalendarId"
)
SELECT cal.req_id, cal.user_id, cal.integration, cal.owner_id, cal.channel_id, cal.channel_expiration,
       cal.subscribed_at, cal.synced_at, cal.sync_error_at, cal.window_start, cal.window_end,
       COALESCE(cal.credential_invalid, false) AS credential_invalid,
       ev.starts, ev.ends
FROM cal LEFT JOIN ev ON ev.owner_id = cal.owner_id

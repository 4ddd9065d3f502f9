-- The read path in one round trip, after a `req` CTE (read_by_ids.sql or read_by_user.sql) names
-- the requested rows; $2/$3 = timeMin/timeMax. read_select.sql (or legacy_select.sql) follows.
-- One row per requested calendar. Rows that select the same provider calendar (one per event type)
-- share an "owner": the row holding the cached events and the sync window (the one with a
-- CalendarSyncState row, else the user-level row, else the lowest id). Events are looked up per
-- owner through a ("selectedCalendarId", …) index, unsorted (the caller sorts).
, cal AS (
  SELECT r.id AS req_id, r."userId" AS user_id, r.integration, o.*,
         -- A dead grant, or a delegation credential (the organisation's, when the row has no user
         -- credential) turned off.
         COALESCE(cr.invalid, false) OR COALESCE(NOT dc.enabled, false) AS credential_invalid,
         -- How long a change announced for any row of the calendar has waited for a sync.
         (extract(epoch FROM (clock_timestamp() AT TIME ZONE 'UTC') - o.pending_since) * 1000)::int8 AS pending_ms
  FROM req r
  -- The rows of the calendar, in one index scan: the owner, and the oldest pending mark of any.
  CROSS JOIN LATERAL (
    SELECT sc.id AS owner_id, sc."channelId" AS channel_id, sc."channelExpiration" AS channel_expiration,
           sc."syncSubscribedAt" AS subscribed_at, sc."syncedAt" AS synced_at,
           sc."syncErrorAt" AS sync_error_at, st."windowStart" AS window_start, st."windowEnd" AS window_end,
           COALESCE(sc."syncErrorCount", 0) AS sync_errors, min(p.since) OVER () AS pending_since
    FROM "SelectedCalendar" sc
    LEFT JOIN "CalendarSyncState" st ON st."selectedCalendarId" = sc.id
    LEFT JOIN "CalendarSyncPending" p ON p."selectedCalendarId" = sc.id
    WHERE sc."userId" = r."userId" AND sc.integration = r.integration AND sc."externalId" = r."externalId"
    ORDER BY (st."selectedCalendarId" IS NULL), (sc."eventTypeId" IS NOT NULL), sc.id
    LIMIT 1
  ) o
  LEFT JOIN "Credential" cr ON cr.id = r."credentialId"
  LEFT JOIN "DelegationCredential" dc ON dc.id = r."delegationCredentialId" AND r."credentialId" IS NULL
)
-- The events of every owner in one index scan (one bitmap over all of them, so calendars whose rows
-- share heap pages are read once), grouped per owner.
, ev AS (
  SELECT e."selectedCalendarId" AS owner_id, array_agg(e.start) AS starts, array_agg(e."end") AS ends
  FROM "CalendarCacheEvent" e
  WHERE e."selectedCalendarId" = ANY (ARRAY(SELECT owner_id FROM cal WHERE window_start IS NOT NULL))
    -- "+ interval '0'" keeps the (start, end) index out of the plan: the calendar's own rows are
    -- few, and scanning that index across every calendar's rows is what a misestimate would cost.
    AND e.start + interval '0' < $3 AND e."end" + interval '0' > $2 AND e.status <> 'cancelled'
  GROUP BY e."selectedCalendarId"
)

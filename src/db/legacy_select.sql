-- The read rows plus what Cal.com's legacy JSON cache ("CalendarCache", SPEC §8) holds for each
-- requested calendar, as the legacy reader looks it up: per credential, the key of its requested
-- Google calendars (de-duplicated, in the requested order) for the window $LMIN..$LMAX; a row
-- counts only while "expiresAt" >= $NOW. The calendar's part of the row comes back as JSON text, so
-- a malformed row is reported by the caller, never a failed read. Follows availability.sql as
-- `, base AS (read_select.sql)`.
, lkey AS (
  SELECT k."credentialId",
         '{"timeMin":' || to_json($LMIN::text) || ',"timeMax":' || to_json($LMAX::text) || ',"items":['
           || string_agg('{"id":' || to_json(k."externalId") || '}', ',' ORDER BY k.ord) || ']}' AS key
  FROM (SELECT "credentialId", "externalId", min(ord) AS ord FROM req
        WHERE integration = 'google_calendar' AND "credentialId" IS NOT NULL
        GROUP BY 1, 2) k
  GROUP BY k."credentialId"
)
, legacy AS (
  SELECT l."credentialId", c.value
  FROM lkey l
  JOIN "CalendarCache" c ON c."credentialId" = l."credentialId" AND c.key = l.key AND c."expiresAt" >= $NOW
)
SELECT base.*, (lg.value IS NOT NULL) AS legacy_found,
       (lg.value -> 'calendars' -> req."externalId")::text AS legacy_calendar
FROM base
JOIN req ON req.id = base.req_id
LEFT JOIN legacy lg ON lg."credentialId" = req."credentialId" AND req.integration = 'google_calendar'

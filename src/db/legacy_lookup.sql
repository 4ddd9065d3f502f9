-- What Cal.com's legacy JSON cache ("CalendarCache", SPEC §8) holds for the requested calendars (the
-- `req` CTE), as the legacy reader looks it up: per credential, the key of its requested Google
-- calendars (de-duplicated, in the requested order) for the window $LMIN..$LMAX; a row counts only
-- while "expiresAt" >= $NOW. legacy_select.sql or legacy_only.sql follows.
, lkey AS (
  SELECT k."credentialId",
         '{"timeMin":' || to_json($LMIN::text) || ',"timeMax":' || to_json($LMAX::text) || ',"items":['
           || string_agg('{"id":' || to_json(k."externalId") || '}', ',' ORDER BY k.ord) || ']}' AS key
  FROM (SELECT "credentialId", "externalId", min(ord) AS ord FROM req
        WHERE integration = 'google_calendar' AND "credentialId" IS NOT NULL
        GROUP BY 1, 2) k
  GROUP BY k."credentialId"
)
, legacy AS MATERIALIZED ( -- each row's calendars taken out of its (toasted) value once, not once per calendar
  SELECT l."credentialId", c.value -> 'calendars' AS calendars
  FROM lkey l
  JOIN "CalendarCache" c ON c."credentialId" = l."credentialId" AND c.key = l.key AND c."expiresAt" >= $NOW
)

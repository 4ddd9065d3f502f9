-- The calendars of a read: user $1's own ($4 NULL) or those selected for event type $4, in the
-- order the app lists them ("ord": creation order).
WITH req AS (
  SELECT sc.id, sc."userId", sc.integration, sc."externalId", sc."credentialId", sc."delegationCredentialId",
         row_number() OVER (ORDER BY sc."createdAt" NULLS FIRST, sc.id) AS ord
  FROM "SelectedCalendar" sc
  WHERE sc."userId" = $1 AND sc."eventTypeId" IS NOT DISTINCT FROM $4
)

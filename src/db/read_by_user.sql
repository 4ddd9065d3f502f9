-- The calendars of a read: user $1's own ($4 NULL) or those selected for event type $4.
WITH req AS (
  SELECT sc.id, sc."userId", sc.integration, sc."externalId", sc."credentialId"
  FROM "SelectedCalendar" sc
  WHERE sc."userId" = $1 AND sc."eventTypeId" IS NOT DISTINCT FROM $4
)

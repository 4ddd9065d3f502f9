-- Bulk upsert of cached events for calendar $1, updatedAt $2, in one statement: this head, then
-- the rows (upsert_events_unnest.sql: arrays, each external id once; upsert_events_stage.sql: a
-- staged run), then upsert_events_conflict.sql.
INSERT INTO "CalendarCacheEvent" AS c (
  "id", "selectedCalendarId", "externalId", "externalEtag", "iCalUID", "iCalSequence", "summary",
  "description", "location", "start", "end", "isAllDay", "timeZone", "status", "recurringEventId",
  "originalStartTime", "createdAt", "updatedAt", "externalCreatedAt", "externalUpdatedAt"
)

-- calsync's own bookkeeping: the one table the Cal.com schema has no place for.
-- Apply in production too (it never touches Cal.com's tables). Idempotent: safe to re-run.
--
-- "CalendarSyncState" records, for the SelectedCalendar row that holds a provider calendar's cached
-- events, the time window the last full sync covered. The read path serves only ranges inside it.
CREATE TABLE IF NOT EXISTS "CalendarSyncState" (
  "selectedCalendarId" TEXT PRIMARY KEY REFERENCES "SelectedCalendar" ("id") ON DELETE CASCADE,
  "windowStart" TIMESTAMP(3) NOT NULL,
  "windowEnd" TIMESTAMP(3) NOT NULL,
  "updatedAt" TIMESTAMP(3) NOT NULL
);

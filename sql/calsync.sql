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

-- Short claims that replace locks held across provider calls (SPEC §6.8): a sync of a calendar
-- (`sync:<id>`), a token refresh of a credential (`refresh:<id>`), a renewal pass over a calendar
-- (`renew:<id>`). A claim is one short write; it expires on its own if its process dies, and the
-- write that ends the work still checks that nothing moved underneath.
CREATE TABLE IF NOT EXISTS "CalendarSyncLease" (
  "key" TEXT PRIMARY KEY,
  "holder" TEXT NOT NULL,
  "expiresAt" TIMESTAMPTZ NOT NULL
);

-- Pages of a sync too large to keep in memory wait here (one set per sync run, "runId") until
-- the sync's short final transaction moves them into "CalendarCacheEvent". Same columns as that
-- table; rows of runs that died are removed by cleanup. Unlogged: staged rows are written once, not
-- twice (no WAL), and a crash that loses them only loses runs that died with it (their syncs start
-- over); the final transaction copies them into the logged table.
CREATE UNLOGGED TABLE IF NOT EXISTS "CalendarSyncStage" (
  "id" TEXT NOT NULL,
  "runId" TEXT NOT NULL,
  "externalId" TEXT NOT NULL,
  "externalEtag" TEXT NOT NULL,
  "iCalUID" TEXT,
  "iCalSequence" INTEGER NOT NULL,
  "summary" TEXT,
  "description" TEXT,
  "location" TEXT,
  "start" TIMESTAMP(3) NOT NULL,
  "end" TIMESTAMP(3) NOT NULL,
  "isAllDay" BOOLEAN NOT NULL,
  "timeZone" TEXT,
  "status" TEXT NOT NULL,
  "recurringEventId" TEXT,
  "originalStartTime" TIMESTAMP(3),
  "createdAt" TIMESTAMP(3) NOT NULL,
  "updatedAt" TIMESTAMP(3) NOT NULL,
  "externalCreatedAt" TIMESTAMP(3),
  "externalUpdatedAt" TIMESTAMP(3),
  PRIMARY KEY ("runId", "id")
);
ALTER TABLE "CalendarSyncStage" SET UNLOGGED; -- installs from before it was created unlogged

-- Why the last sync of a calendar failed (an error code, never a message with contents), for
-- status(); removed by the next successful sync.
CREATE TABLE IF NOT EXISTS "CalendarSyncFailure" (
  "selectedCalendarId" TEXT PRIMARY KEY REFERENCES "SelectedCalendar" ("id") ON DELETE CASCADE,
  "code" TEXT NOT NULL,
  "failedAt" TIMESTAMP(3) NOT NULL
);

-- Changes a provider announced that no sync has covered yet (SPEC §6.10): written by the webhook
-- before it answers, removed by the first sync that started after the last one ("last", database
-- clock). A mark older than `pendingGraceMs` makes reads report the calendar `stale`, and any
-- process (cron, a read, the next webhook) re-drives it.
CREATE TABLE IF NOT EXISTS "CalendarSyncPending" (
  "selectedCalendarId" TEXT PRIMARY KEY REFERENCES "SelectedCalendar" ("id") ON DELETE CASCADE,
  "since" TIMESTAMP(3) NOT NULL,
  "last" TIMESTAMP(3) NOT NULL
);

-- applySchema (`npx calsync schema`) also creates the read functions calsync_read_by_ids_v2,
-- calsync_read_by_user_v2 and their _legacy_ variants from the read statements in src/db/
-- (availability::read_functions): a read through any pooler is then one short call whose plan the
-- server session keeps.

-- Every push channel calsync opened that may still be live at the provider (SPEC §6, channel
-- changes). A row is written *before* the provider is asked for the channel, so a process killed
-- between the provider's answer and the write that stores the channel on "SelectedCalendar" leaves
-- a trace: renewWatches stops every channel recorded here that no calendar row carries any more
-- (after the claim time of the change that opened it), and forgets rows once stopped or expired.
-- "id" is calsync's own id: a Google channel's id (calsync chooses it), or for Graph an id for the
-- attempt, "channelId" then being the subscription id once Graph granted it.
CREATE TABLE IF NOT EXISTS "CalendarSyncChannel" (
  "id" TEXT PRIMARY KEY,
  "channelId" TEXT,
  "selectedCalendarId" TEXT NOT NULL,
  "userId" INTEGER NOT NULL,
  "integration" TEXT NOT NULL,
  "externalId" TEXT NOT NULL,
  "credentialId" INTEGER,
  "resourceId" TEXT,
  "expiresAt" TIMESTAMP(3),
  "openedAt" TIMESTAMP(3) NOT NULL
);
CREATE INDEX IF NOT EXISTS "CalendarSyncChannel_channelId_idx" ON "CalendarSyncChannel" ("channelId");

-- Differences shadow reads found between Cal.com's legacy JSON cache ("CalendarCache") and the SQL
-- cache while an installation migrates (SPEC §8), for `calsync migrate status`: which calendar,
-- which interval, which kind, and which source was served -- never event contents. Cleanup removes
-- rows not seen for 30 days; the table is empty and unused once the migration is over.
CREATE TABLE IF NOT EXISTS "CalendarSyncDivergence" (
  "selectedCalendarId" TEXT NOT NULL,
  "kind" TEXT NOT NULL,
  "start" TIMESTAMP(3) NOT NULL,
  "end" TIMESTAMP(3) NOT NULL,
  "served" TEXT NOT NULL,
  "firstSeenAt" TIMESTAMP(3) NOT NULL,
  "lastSeenAt" TIMESTAMP(3) NOT NULL,
  PRIMARY KEY ("selectedCalendarId", "kind", "start", "end")
);
CREATE INDEX IF NOT EXISTS "CalendarSyncDivergence_lastSeenAt_idx" ON "CalendarSyncDivergence" ("lastSeenAt");

-- The outbox of two-way sync (SPEC §5): changes of the app's own bookings (iCalUID "<uid>@cal.com")
-- that syncs found at the providers, written in the transaction of the sync that found them and kept
-- until the app acknowledges them (takeBookingChanges / ackBookingChanges, or the onBookingChanges
-- callback). One row per event of a calendar ("selectedCalendarId" = the row holding the calendar's
-- cached events, "externalId" = the provider's event id): a newer change of the same event replaces
-- the row's state and gets a new "id", so acknowledging the older one leaves the newer in place;
-- the newer state keeps a hold the older one is under, so takers see one event's changes in order.
-- "takenUntil": handed to a taker until then; after it, the change is handed out again.
CREATE SEQUENCE IF NOT EXISTS "CalendarSyncBookingChange_id_seq";
CREATE TABLE IF NOT EXISTS "CalendarSyncBookingChange" (
  "id" BIGINT NOT NULL DEFAULT nextval('"CalendarSyncBookingChange_id_seq"'),
  "selectedCalendarId" TEXT NOT NULL,
  "externalId" TEXT NOT NULL,
  "uid" TEXT NOT NULL,
  "userId" INTEGER NOT NULL,
  "integration" TEXT NOT NULL,
  "start" TIMESTAMP(3),
  "end" TIMESTAMP(3),
  "cancelled" BOOLEAN NOT NULL,
  "changedAt" TIMESTAMP(3) NOT NULL,
  "takenUntil" TIMESTAMP(3),
  "deliveries" INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY ("selectedCalendarId", "externalId")
);
CREATE UNIQUE INDEX IF NOT EXISTS "CalendarSyncBookingChange_id_key" ON "CalendarSyncBookingChange" ("id");

-- A sync's start in one round trip (SPEC §6.8): the calendar group of row p_id, its claim
-- "sync:<owner row>" taken if free (or expired), then the group read again after the take, so a sync
-- that got the claim sees what the previous holder committed. "taken": the claim is now this
-- holder's; "claimKey": the key tried; "pending": the row has a pending mark (SPEC §6.10). No rows:
-- no such calendar row. A function, so a pooler's server session keeps the plans (the call is the
-- only statement of its transaction). Its commit does not wait for the WAL flush: a claim is an
-- optimisation (the sync's write checks the token), and one lost in a crash only lets another
-- process sync the calendar too.
CREATE OR REPLACE FUNCTION calsync_sync_claim_v1(p_id TEXT, p_holder TEXT, p_ttl_ms BIGINT)
RETURNS TABLE (
  id TEXT, "userId" INTEGER, integration TEXT, "externalId" TEXT, "credentialId" INTEGER,
  "delegationCredentialId" TEXT, "channelId" TEXT, "channelResourceId" TEXT,
  "channelExpiration" TIMESTAMP(3), "syncToken" TEXT, errors INTEGER, has_state BOOLEAN,
  window_end TIMESTAMP(3), read_at TIMESTAMP(3), email TEXT, pending BOOLEAN, "claimKey" TEXT,
  taken BOOLEAN
) LANGUAGE plpgsql VOLATILE AS $calsync$
#variable_conflict use_column
DECLARE
  v_key TEXT;
  v_taken BOOLEAN := false;
BEGIN
  PERFORM set_config('synchronous_commit', 'off', true);
  SELECT 'sync:' || g.id INTO v_key
  FROM "SelectedCalendar" g
  LEFT JOIN "CalendarSyncState" s ON s."selectedCalendarId" = g.id
  WHERE (g."userId", g.integration, g."externalId") IN (
    SELECT r."userId", r.integration, r."externalId" FROM "SelectedCalendar" r WHERE r.id = p_id)
  ORDER BY (s."selectedCalendarId" IS NULL), (g."eventTypeId" IS NOT NULL), g.id
  LIMIT 1;
  IF v_key IS NULL THEN
    RETURN;
  END IF;
  INSERT INTO "CalendarSyncLease" AS l ("key", "holder", "expiresAt")
  VALUES (v_key, p_holder, clock_timestamp() + p_ttl_ms * interval '1 millisecond')
  ON CONFLICT ("key") DO UPDATE SET "holder" = EXCLUDED."holder", "expiresAt" = EXCLUDED."expiresAt"
  WHERE l."expiresAt" < clock_timestamp()
  RETURNING true INTO v_taken;
  RETURN QUERY
  SELECT sc.id::TEXT, sc."userId"::INTEGER, sc.integration::TEXT, sc."externalId"::TEXT,
         sc."credentialId"::INTEGER, sc."delegationCredentialId"::TEXT, sc."channelId"::TEXT,
         sc."channelResourceId"::TEXT, sc."channelExpiration"::TIMESTAMP(3), sc."syncToken"::TEXT,
         COALESCE(sc."syncErrorCount", 0)::INTEGER, (st."selectedCalendarId" IS NOT NULL),
         st."windowEnd"::TIMESTAMP(3), (clock_timestamp() AT TIME ZONE 'UTC')::TIMESTAMP(3),
         u.email::TEXT,
         EXISTS (SELECT 1 FROM "CalendarSyncPending" p WHERE p."selectedCalendarId" = sc.id),
         v_key, COALESCE(v_taken, false)
  FROM "SelectedCalendar" sc
  JOIN users u ON u.id = sc."userId"
  LEFT JOIN "CalendarSyncState" st ON st."selectedCalendarId" = sc.id
  WHERE (sc."userId", sc.integration, sc."externalId") IN (
    SELECT r."userId", r.integration, r."externalId" FROM "SelectedCalendar" r WHERE r.id = p_id)
  ORDER BY (st."selectedCalendarId" IS NULL), (sc."eventTypeId" IS NOT NULL), sc.id;
END
$calsync$;

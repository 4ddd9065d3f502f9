-- The subset of Cal.com's schema that calsync reads and writes, for tests, the demo and new installs.
-- In a Cal.com deployment Prisma owns these tables; calsync never alters them. Idempotent: safe to re-run.

DO $$ BEGIN
  CREATE TYPE "MembershipRole" AS ENUM ('MEMBER', 'ADMIN', 'OWNER');
EXCEPTION WHEN duplicate_object THEN NULL; END $$;

DO $$ BEGIN
  CREATE TYPE "FeatureType" AS ENUM ('RELEASE', 'EXPERIMENT', 'OPERATIONAL', 'KILL_SWITCH', 'PERMISSION');
EXCEPTION WHEN duplicate_object THEN NULL; END $$;

DO $$ BEGIN
  CREATE TYPE "CalendarCacheEventStatus" AS ENUM ('confirmed', 'tentative', 'cancelled');
EXCEPTION WHEN duplicate_object THEN NULL; END $$;

CREATE TABLE IF NOT EXISTS "users" (
  "id" SERIAL PRIMARY KEY,
  "username" TEXT,
  "name" TEXT,
  "email" TEXT NOT NULL,
  "timeZone" TEXT NOT NULL DEFAULT 'Europe/London',
  "createdDate" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE UNIQUE INDEX IF NOT EXISTS "users_email_key" ON "users" ("email");

CREATE TABLE IF NOT EXISTS "Team" (
  "id" SERIAL PRIMARY KEY,
  "name" TEXT NOT NULL,
  "slug" TEXT,
  "parentId" INTEGER REFERENCES "Team" ("id") ON DELETE CASCADE,
  "isOrganization" BOOLEAN NOT NULL DEFAULT false,
  "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX IF NOT EXISTS "Team_parentId_idx" ON "Team" ("parentId");

CREATE TABLE IF NOT EXISTS "Membership" (
  "id" SERIAL PRIMARY KEY,
  "teamId" INTEGER NOT NULL REFERENCES "Team" ("id") ON DELETE CASCADE,
  "userId" INTEGER NOT NULL REFERENCES "users" ("id") ON DELETE CASCADE,
  "accepted" BOOLEAN NOT NULL DEFAULT false,
  "role" "MembershipRole" NOT NULL DEFAULT 'MEMBER'
);
CREATE UNIQUE INDEX IF NOT EXISTS "Membership_userId_teamId_key" ON "Membership" ("userId", "teamId");
CREATE INDEX IF NOT EXISTS "Membership_teamId_idx" ON "Membership" ("teamId");

CREATE TABLE IF NOT EXISTS "Credential" (
  "id" SERIAL PRIMARY KEY,
  "type" TEXT NOT NULL,
  "key" JSONB NOT NULL,
  "userId" INTEGER REFERENCES "users" ("id") ON DELETE CASCADE,
  "teamId" INTEGER REFERENCES "Team" ("id") ON DELETE CASCADE,
  "appId" TEXT,
  "invalid" BOOLEAN DEFAULT false,
  "delegationCredentialId" TEXT
);
CREATE INDEX IF NOT EXISTS "Credential_userId_idx" ON "Credential" ("userId");

CREATE TABLE IF NOT EXISTS "SelectedCalendar" (
  "id" TEXT PRIMARY KEY,
  "userId" INTEGER NOT NULL REFERENCES "users" ("id") ON DELETE CASCADE,
  "integration" TEXT NOT NULL,
  "externalId" TEXT NOT NULL,
  "credentialId" INTEGER REFERENCES "Credential" ("id") ON DELETE CASCADE,
  "delegationCredentialId" TEXT,
  "eventTypeId" INTEGER,
  "createdAt" TIMESTAMP(3) DEFAULT CURRENT_TIMESTAMP,
  "updatedAt" TIMESTAMP(3),
  "channelId" TEXT,
  "channelKind" TEXT,
  "channelResourceId" TEXT,
  "channelResourceUri" TEXT,
  "channelExpiration" TIMESTAMP(3),
  "syncSubscribedAt" TIMESTAMP(3),
  "syncSubscribedErrorAt" TIMESTAMP(3),
  "syncSubscribedErrorCount" INTEGER NOT NULL DEFAULT 0,
  "syncToken" TEXT,
  "syncedAt" TIMESTAMP(3),
  "syncErrorAt" TIMESTAMP(3),
  "syncErrorCount" INTEGER DEFAULT 0
);
CREATE UNIQUE INDEX IF NOT EXISTS "SelectedCalendar_userId_integration_externalId_eventTypeId_key"
  ON "SelectedCalendar" ("userId", "integration", "externalId", "eventTypeId");
-- Postgres treats NULLs as distinct, so user-level rows (no event type) need their own unique index.
CREATE UNIQUE INDEX IF NOT EXISTS "SelectedCalendar_userId_integration_externalId_null_eventTypeId_key"
  ON "SelectedCalendar" ("userId", "integration", "externalId") WHERE "eventTypeId" IS NULL;
CREATE INDEX IF NOT EXISTS "SelectedCalendar_userId_idx" ON "SelectedCalendar" ("userId");
CREATE INDEX IF NOT EXISTS "SelectedCalendar_externalId_idx" ON "SelectedCalendar" ("externalId");
CREATE INDEX IF NOT EXISTS "SelectedCalendar_credentialId_idx" ON "SelectedCalendar" ("credentialId");
CREATE INDEX IF NOT EXISTS "SelectedCalendar_channelId_idx" ON "SelectedCalendar" ("channelId");

CREATE TABLE IF NOT EXISTS "CalendarCacheEvent" (
  "id" TEXT PRIMARY KEY,
  "selectedCalendarId" TEXT NOT NULL REFERENCES "SelectedCalendar" ("id") ON DELETE CASCADE ON UPDATE CASCADE,
  "externalId" TEXT NOT NULL,
  "externalEtag" TEXT NOT NULL,
  "iCalUID" TEXT,
  "iCalSequence" INTEGER NOT NULL DEFAULT 0,
  "summary" TEXT,
  "description" TEXT,
  "location" TEXT,
  "start" TIMESTAMP(3) NOT NULL,
  "end" TIMESTAMP(3) NOT NULL,
  "isAllDay" BOOLEAN NOT NULL DEFAULT false,
  "timeZone" TEXT,
  "status" "CalendarCacheEventStatus" NOT NULL DEFAULT 'confirmed',
  "recurringEventId" TEXT,
  "originalStartTime" TIMESTAMP(3),
  "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
  "updatedAt" TIMESTAMP(3) NOT NULL,
  "externalCreatedAt" TIMESTAMP(3),
  "externalUpdatedAt" TIMESTAMP(3)
);
CREATE UNIQUE INDEX IF NOT EXISTS "CalendarCacheEvent_selectedCalendarId_externalId_key"
  ON "CalendarCacheEvent" ("selectedCalendarId", "externalId");
CREATE INDEX IF NOT EXISTS "CalendarCacheEvent_start_end_status_idx"
  ON "CalendarCacheEvent" ("start", "end", "status");
CREATE INDEX IF NOT EXISTS "CalendarCacheEvent_selectedCalendarId_iCalUID_idx"
  ON "CalendarCacheEvent" ("selectedCalendarId", "iCalUID");

CREATE TABLE IF NOT EXISTS "CalendarCache" (
  "id" TEXT,
  "key" TEXT NOT NULL,
  "value" JSONB NOT NULL,
  "expiresAt" TIMESTAMP(3) NOT NULL,
  "updatedAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
  "credentialId" INTEGER NOT NULL REFERENCES "Credential" ("id") ON DELETE CASCADE,
  "userId" INTEGER,
  PRIMARY KEY ("credentialId", "key")
);
CREATE INDEX IF NOT EXISTS "CalendarCache_userId_key_idx" ON "CalendarCache" ("userId", "key");

CREATE TABLE IF NOT EXISTS "Feature" (
  "slug" TEXT PRIMARY KEY,
  "enabled" BOOLEAN NOT NULL DEFAULT false,
  "description" TEXT,
  "type" "FeatureType" DEFAULT 'RELEASE',
  "stale" BOOLEAN DEFAULT false,
  "lastUsedAt" TIMESTAMP(3),
  "createdAt" TIMESTAMP(3) DEFAULT CURRENT_TIMESTAMP,
  "updatedAt" TIMESTAMP(3) DEFAULT CURRENT_TIMESTAMP,
  "updatedBy" INTEGER
);

CREATE TABLE IF NOT EXISTS "UserFeatures" (
  "userId" INTEGER NOT NULL REFERENCES "users" ("id") ON DELETE CASCADE,
  "featureId" TEXT NOT NULL REFERENCES "Feature" ("slug") ON DELETE CASCADE,
  "enabled" BOOLEAN NOT NULL DEFAULT true,
  "assignedAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
  "assignedBy" TEXT NOT NULL,
  "updatedAt" TIMESTAMP(3) NOT NULL,
  PRIMARY KEY ("userId", "featureId")
);

CREATE TABLE IF NOT EXISTS "TeamFeatures" (
  "teamId" INTEGER NOT NULL REFERENCES "Team" ("id") ON DELETE CASCADE,
  "featureId" TEXT NOT NULL REFERENCES "Feature" ("slug") ON DELETE CASCADE,
  "enabled" BOOLEAN NOT NULL DEFAULT true,
  "assignedAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
  "assignedBy" TEXT NOT NULL,
  "updatedAt" TIMESTAMP(3) NOT NULL,
  PRIMARY KEY ("teamId", "featureId")
);

-- The flags calsync evaluates, created disabled (SPEC §3).
INSERT INTO "Feature" ("slug", "enabled", "description", "type", "updatedAt") VALUES
  ('calendar-subscription-cache', false, 'Serve availability from the calendar subscription cache', 'OPERATIONAL', CURRENT_TIMESTAMP),
  ('calendar-subscription-sync', false, 'Report provider changes to the app''s own bookings', 'OPERATIONAL', CURRENT_TIMESTAMP),
  ('calendar-cache-sql-write', false, 'Keep the legacy JSON calendar cache current from syncs', 'OPERATIONAL', CURRENT_TIMESTAMP),
  ('calendar-cache-sql', false, 'Serve reads from the SQL calendar cache instead of the legacy JSON cache', 'OPERATIONAL', CURRENT_TIMESTAMP)
ON CONFLICT ("slug") DO NOTHING;

-- FOR EMPTY DATABASES ONLY (tests, the demo, new installs). In a Cal.com deployment Prisma owns these
-- tables: never apply this file there; only calsync's own sql/calsync.sql belongs in such a database.
-- Idempotent on a database this file created: safe to re-run.
--
-- The subset of Cal.com's schema that calsync reads and writes, reproduced as Cal.com's Prisma
-- migrations create it (packages/prisma/schema.prisma in calcom/cal.com): for every table and column
-- included here the type, nullability, default, primary/unique keys, @@index indexes and foreign keys
-- (with Prisma's constraint names and ON DELETE / ON UPDATE actions) are the real ones, and nothing
-- is added that Cal.com lacks. Columns are a subset: every NOT NULL column without a default is
-- included, so Cal.com-shaped inserts behave as they do against Cal.com. Notable facts:
--   * "users"."uuid" is UUID NOT NULL with no database default (Prisma fills it): inserts must supply
--     it, e.g. gen_random_uuid(). The creation column is "created" (Prisma field createdDate).
--   * "Membership"."role", "UserFeatures"."enabled" and "TeamFeatures"."enabled" have no default.
--   * A "SelectedCalendar" row's calendar is unique only on (userId, integration, externalId,
--     eventTypeId); Postgres treats NULLs as distinct, so duplicate user-level rows (eventTypeId NULL)
--     can exist. (The other unique key, (googleChannelId, eventTypeId), is on a legacy column.)
--   * "EventType", "DelegationCredential", "WorkspacePlatform" and "App" are here only because real
--     foreign keys point at them; "EventType" carries only its required and key columns.

DO $$ BEGIN
  CREATE TYPE "MembershipRole" AS ENUM ('MEMBER', 'ADMIN', 'OWNER');
EXCEPTION WHEN duplicate_object THEN NULL; END $$;

DO $$ BEGIN
  CREATE TYPE "AppCategories" AS ENUM ('calendar', 'messaging', 'other', 'payment', 'video', 'web3', 'automation', 'analytics', 'conferencing', 'crm');
EXCEPTION WHEN duplicate_object THEN NULL; END $$;

DO $$ BEGIN
  CREATE TYPE "FeatureType" AS ENUM ('RELEASE', 'EXPERIMENT', 'OPERATIONAL', 'KILL_SWITCH', 'PERMISSION');
EXCEPTION WHEN duplicate_object THEN NULL; END $$;

DO $$ BEGIN
  CREATE TYPE "CalendarCacheEventStatus" AS ENUM ('confirmed', 'tentative', 'cancelled');
EXCEPTION WHEN duplicate_object THEN NULL; END $$;

-- Tables are created in foreign-key order, so every constraint can be declared inline.

CREATE TABLE IF NOT EXISTS "Team" (
  "id" SERIAL NOT NULL,
  "name" TEXT NOT NULL,
  "slug" TEXT,
  "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
  "parentId" INTEGER,
  "isOrganization" BOOLEAN NOT NULL DEFAULT false,
  CONSTRAINT "Team_pkey" PRIMARY KEY ("id"),
  CONSTRAINT "Team_parentId_fkey" FOREIGN KEY ("parentId") REFERENCES "Team" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);
CREATE INDEX IF NOT EXISTS "Team_parentId_idx" ON "Team" ("parentId");
CREATE UNIQUE INDEX IF NOT EXISTS "Team_slug_parentId_key" ON "Team" ("slug", "parentId");

CREATE TABLE IF NOT EXISTS "users" (
  "id" SERIAL NOT NULL,
  "uuid" UUID NOT NULL,
  "username" TEXT,
  "name" TEXT,
  "email" TEXT NOT NULL,
  "emailVerified" TIMESTAMP(3),
  "timeZone" TEXT NOT NULL DEFAULT 'Europe/London',
  "created" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
  "organizationId" INTEGER,
  CONSTRAINT "users_pkey" PRIMARY KEY ("id"),
  CONSTRAINT "users_organizationId_fkey" FOREIGN KEY ("organizationId") REFERENCES "Team" ("id") ON DELETE SET NULL ON UPDATE CASCADE
);
CREATE UNIQUE INDEX IF NOT EXISTS "users_uuid_key" ON "users" ("uuid");
CREATE INDEX IF NOT EXISTS "users_username_idx" ON "users" ("username");
CREATE INDEX IF NOT EXISTS "users_emailVerified_idx" ON "users" ("emailVerified");
CREATE UNIQUE INDEX IF NOT EXISTS "users_email_key" ON "users" ("email");
CREATE UNIQUE INDEX IF NOT EXISTS "users_email_username_key" ON "users" ("email", "username");
CREATE UNIQUE INDEX IF NOT EXISTS "users_username_organizationId_key" ON "users" ("username", "organizationId");

CREATE TABLE IF NOT EXISTS "Membership" (
  "id" SERIAL NOT NULL,
  "teamId" INTEGER NOT NULL,
  "userId" INTEGER NOT NULL,
  "accepted" BOOLEAN NOT NULL DEFAULT false,
  "role" "MembershipRole" NOT NULL,
  "createdAt" TIMESTAMP(3) DEFAULT CURRENT_TIMESTAMP,
  "updatedAt" TIMESTAMP(3),
  CONSTRAINT "Membership_pkey" PRIMARY KEY ("id"),
  CONSTRAINT "Membership_teamId_fkey" FOREIGN KEY ("teamId") REFERENCES "Team" ("id") ON DELETE CASCADE ON UPDATE CASCADE,
  CONSTRAINT "Membership_userId_fkey" FOREIGN KEY ("userId") REFERENCES "users" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);
CREATE INDEX IF NOT EXISTS "Membership_teamId_idx" ON "Membership" ("teamId");
CREATE INDEX IF NOT EXISTS "Membership_userId_idx" ON "Membership" ("userId");
CREATE INDEX IF NOT EXISTS "Membership_accepted_idx" ON "Membership" ("accepted");
CREATE INDEX IF NOT EXISTS "Membership_role_idx" ON "Membership" ("role");
CREATE UNIQUE INDEX IF NOT EXISTS "Membership_userId_teamId_key" ON "Membership" ("userId", "teamId");

-- Minimal: the columns without a default and the key columns (SelectedCalendar.eventTypeId → here).
CREATE TABLE IF NOT EXISTS "EventType" (
  "id" SERIAL NOT NULL,
  "title" TEXT NOT NULL,
  "slug" TEXT NOT NULL,
  "length" INTEGER NOT NULL,
  "userId" INTEGER,
  "teamId" INTEGER,
  "useEventLevelSelectedCalendars" BOOLEAN NOT NULL DEFAULT false,
  CONSTRAINT "EventType_pkey" PRIMARY KEY ("id"),
  CONSTRAINT "EventType_userId_fkey" FOREIGN KEY ("userId") REFERENCES "users" ("id") ON DELETE CASCADE ON UPDATE CASCADE,
  CONSTRAINT "EventType_teamId_fkey" FOREIGN KEY ("teamId") REFERENCES "Team" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);
CREATE INDEX IF NOT EXISTS "EventType_userId_idx" ON "EventType" ("userId");
CREATE INDEX IF NOT EXISTS "EventType_teamId_idx" ON "EventType" ("teamId");
CREATE UNIQUE INDEX IF NOT EXISTS "EventType_userId_slug_key" ON "EventType" ("userId", "slug");
CREATE UNIQUE INDEX IF NOT EXISTS "EventType_teamId_slug_key" ON "EventType" ("teamId", "slug");

-- Credential.appId → App.slug.
CREATE TABLE IF NOT EXISTS "App" (
  "slug" TEXT NOT NULL,
  "dirName" TEXT NOT NULL,
  "keys" JSONB,
  "categories" "AppCategories"[],
  "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
  "updatedAt" TIMESTAMP(3) NOT NULL,
  "enabled" BOOLEAN NOT NULL DEFAULT false,
  CONSTRAINT "App_pkey" PRIMARY KEY ("slug")
);
CREATE UNIQUE INDEX IF NOT EXISTS "App_slug_key" ON "App" ("slug");
CREATE UNIQUE INDEX IF NOT EXISTS "App_dirName_key" ON "App" ("dirName");
CREATE INDEX IF NOT EXISTS "App_enabled_idx" ON "App" ("enabled");

-- DelegationCredential.workspacePlatformId → here.
CREATE TABLE IF NOT EXISTS "WorkspacePlatform" (
  "id" SERIAL NOT NULL,
  "slug" TEXT NOT NULL,
  "name" TEXT NOT NULL,
  "description" TEXT NOT NULL,
  "defaultServiceAccountKey" JSONB NOT NULL,
  "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
  "updatedAt" TIMESTAMP(3) NOT NULL,
  "enabled" BOOLEAN NOT NULL DEFAULT false,
  CONSTRAINT "WorkspacePlatform_pkey" PRIMARY KEY ("id")
);
CREATE UNIQUE INDEX IF NOT EXISTS "WorkspacePlatform_slug_key" ON "WorkspacePlatform" ("slug");

-- Organisation-wide access (Google Workspace domain-wide delegation, a Microsoft tenant app).
-- Credential.delegationCredentialId and SelectedCalendar.delegationCredentialId → here.
CREATE TABLE IF NOT EXISTS "DelegationCredential" (
  "id" TEXT NOT NULL,
  "workspacePlatformId" INTEGER NOT NULL,
  "serviceAccountKey" JSONB NOT NULL,
  "enabled" BOOLEAN NOT NULL DEFAULT false,
  "lastEnabledAt" TIMESTAMP(3),
  "lastDisabledAt" TIMESTAMP(3),
  "organizationId" INTEGER NOT NULL,
  "domain" TEXT NOT NULL,
  "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
  "updatedAt" TIMESTAMP(3) NOT NULL,
  CONSTRAINT "DelegationCredential_pkey" PRIMARY KEY ("id"),
  CONSTRAINT "DelegationCredential_workspacePlatformId_fkey" FOREIGN KEY ("workspacePlatformId") REFERENCES "WorkspacePlatform" ("id") ON DELETE CASCADE ON UPDATE CASCADE,
  CONSTRAINT "DelegationCredential_organizationId_fkey" FOREIGN KEY ("organizationId") REFERENCES "Team" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);
CREATE INDEX IF NOT EXISTS "DelegationCredential_enabled_idx" ON "DelegationCredential" ("enabled");
CREATE UNIQUE INDEX IF NOT EXISTS "DelegationCredential_organizationId_domain_key" ON "DelegationCredential" ("organizationId", "domain");

CREATE TABLE IF NOT EXISTS "Credential" (
  "id" SERIAL NOT NULL,
  "type" TEXT NOT NULL,
  "key" JSONB NOT NULL,
  "encryptedKey" TEXT,
  "userId" INTEGER,
  "teamId" INTEGER,
  "appId" TEXT,
  "subscriptionId" TEXT,
  "paymentStatus" TEXT,
  "billingCycleStart" INTEGER,
  "invalid" BOOLEAN DEFAULT false,
  "delegationCredentialId" TEXT,
  CONSTRAINT "Credential_pkey" PRIMARY KEY ("id"),
  CONSTRAINT "Credential_userId_fkey" FOREIGN KEY ("userId") REFERENCES "users" ("id") ON DELETE CASCADE ON UPDATE CASCADE,
  CONSTRAINT "Credential_teamId_fkey" FOREIGN KEY ("teamId") REFERENCES "Team" ("id") ON DELETE CASCADE ON UPDATE CASCADE,
  CONSTRAINT "Credential_appId_fkey" FOREIGN KEY ("appId") REFERENCES "App" ("slug") ON DELETE CASCADE ON UPDATE CASCADE,
  CONSTRAINT "Credential_delegationCredentialId_fkey" FOREIGN KEY ("delegationCredentialId") REFERENCES "DelegationCredential" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);
CREATE INDEX IF NOT EXISTS "Credential_appId_idx" ON "Credential" ("appId");
CREATE INDEX IF NOT EXISTS "Credential_subscriptionId_idx" ON "Credential" ("subscriptionId");
CREATE INDEX IF NOT EXISTS "Credential_invalid_idx" ON "Credential" ("invalid");
CREATE INDEX IF NOT EXISTS "Credential_userId_delegationCredentialId_idx" ON "Credential" ("userId", "delegationCredentialId");
CREATE INDEX IF NOT EXISTS "Credential_teamId_idx" ON "Credential" ("teamId");

-- Two-way sync matches the app's bookings through these (Outlook events carry Exchange's iCalUID,
-- so the event id Cal.com stored in "BookingReference"."uid" is the only link). Minimal: the columns
-- without a default, the key columns and what calsync reads.
CREATE TABLE IF NOT EXISTS "Booking" (
  "id" SERIAL NOT NULL,
  "uid" TEXT NOT NULL,
  "userId" INTEGER,
  "eventTypeId" INTEGER,
  "title" TEXT NOT NULL,
  "startTime" TIMESTAMP(3) NOT NULL,
  "endTime" TIMESTAMP(3) NOT NULL,
  CONSTRAINT "Booking_pkey" PRIMARY KEY ("id"),
  CONSTRAINT "Booking_userId_fkey" FOREIGN KEY ("userId") REFERENCES "users" ("id") ON DELETE CASCADE ON UPDATE CASCADE,
  CONSTRAINT "Booking_eventTypeId_fkey" FOREIGN KEY ("eventTypeId") REFERENCES "EventType" ("id") ON DELETE SET NULL ON UPDATE CASCADE
);
CREATE UNIQUE INDEX IF NOT EXISTS "Booking_uid_key" ON "Booking" ("uid");
CREATE INDEX IF NOT EXISTS "Booking_eventTypeId_idx" ON "Booking" ("eventTypeId");
CREATE INDEX IF NOT EXISTS "Booking_userId_idx" ON "Booking" ("userId");
CREATE INDEX IF NOT EXISTS "Booking_uid_idx" ON "Booking" ("uid");

CREATE TABLE IF NOT EXISTS "BookingReference" (
  "id" SERIAL NOT NULL,
  "type" TEXT NOT NULL,
  "uid" TEXT NOT NULL,
  "bookingId" INTEGER,
  "externalCalendarId" TEXT,
  "deleted" BOOLEAN,
  "credentialId" INTEGER,
  "delegationCredentialId" TEXT,
  CONSTRAINT "BookingReference_pkey" PRIMARY KEY ("id"),
  CONSTRAINT "BookingReference_bookingId_fkey" FOREIGN KEY ("bookingId") REFERENCES "Booking" ("id") ON DELETE CASCADE ON UPDATE CASCADE,
  CONSTRAINT "BookingReference_credentialId_fkey" FOREIGN KEY ("credentialId") REFERENCES "Credential" ("id") ON DELETE SET NULL ON UPDATE CASCADE,
  CONSTRAINT "BookingReference_delegationCredentialId_fkey" FOREIGN KEY ("delegationCredentialId") REFERENCES "DelegationCredential" ("id") ON DELETE SET NULL ON UPDATE CASCADE
);
CREATE INDEX IF NOT EXISTS "BookingReference_bookingId_idx" ON "BookingReference" ("bookingId");
CREATE INDEX IF NOT EXISTS "BookingReference_type_idx" ON "BookingReference" ("type");
CREATE INDEX IF NOT EXISTS "BookingReference_uid_idx" ON "BookingReference" ("uid");

CREATE TABLE IF NOT EXISTS "SelectedCalendar" (
  "id" TEXT NOT NULL,
  "userId" INTEGER NOT NULL,
  "integration" TEXT NOT NULL,
  "externalId" TEXT NOT NULL,
  "credentialId" INTEGER,
  "createdAt" TIMESTAMP(3) DEFAULT CURRENT_TIMESTAMP,
  "updatedAt" TIMESTAMP(3),
  "googleChannelId" TEXT,
  "googleChannelKind" TEXT,
  "googleChannelResourceId" TEXT,
  "googleChannelResourceUri" TEXT,
  "googleChannelExpiration" TEXT,
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
  "syncErrorCount" INTEGER DEFAULT 0,
  "delegationCredentialId" TEXT,
  "error" TEXT,
  "lastErrorAt" TIMESTAMP(3),
  "watchAttempts" INTEGER NOT NULL DEFAULT 0,
  "unwatchAttempts" INTEGER NOT NULL DEFAULT 0,
  "maxAttempts" INTEGER NOT NULL DEFAULT 3,
  "eventTypeId" INTEGER,
  CONSTRAINT "SelectedCalendar_pkey" PRIMARY KEY ("id"),
  CONSTRAINT "SelectedCalendar_userId_fkey" FOREIGN KEY ("userId") REFERENCES "users" ("id") ON DELETE CASCADE ON UPDATE CASCADE,
  CONSTRAINT "SelectedCalendar_credentialId_fkey" FOREIGN KEY ("credentialId") REFERENCES "Credential" ("id") ON DELETE CASCADE ON UPDATE CASCADE,
  CONSTRAINT "SelectedCalendar_delegationCredentialId_fkey" FOREIGN KEY ("delegationCredentialId") REFERENCES "DelegationCredential" ("id") ON DELETE CASCADE ON UPDATE CASCADE,
  CONSTRAINT "SelectedCalendar_eventTypeId_fkey" FOREIGN KEY ("eventTypeId") REFERENCES "EventType" ("id") ON DELETE SET NULL ON UPDATE CASCADE
);
CREATE INDEX IF NOT EXISTS "SelectedCalendar_userId_idx" ON "SelectedCalendar" ("userId");
CREATE INDEX IF NOT EXISTS "SelectedCalendar_externalId_idx" ON "SelectedCalendar" ("externalId");
CREATE INDEX IF NOT EXISTS "SelectedCalendar_eventTypeId_idx" ON "SelectedCalendar" ("eventTypeId");
CREATE INDEX IF NOT EXISTS "SelectedCalendar_credentialId_idx" ON "SelectedCalendar" ("credentialId");
CREATE INDEX IF NOT EXISTS "SelectedCalendar_channelId_idx" ON "SelectedCalendar" ("channelId");
CREATE INDEX IF NOT EXISTS "SelectedCalendar_watch_idx"
  ON "SelectedCalendar" ("integration", "googleChannelExpiration", "error", "watchAttempts", "maxAttempts");
CREATE INDEX IF NOT EXISTS "SelectedCalendar_unwatch_idx"
  ON "SelectedCalendar" ("integration", "googleChannelExpiration", "error", "unwatchAttempts", "maxAttempts");
CREATE UNIQUE INDEX IF NOT EXISTS "SelectedCalendar_userId_integration_externalId_eventTypeId_key"
  ON "SelectedCalendar" ("userId", "integration", "externalId", "eventTypeId");
CREATE UNIQUE INDEX IF NOT EXISTS "SelectedCalendar_googleChannelId_eventTypeId_key"
  ON "SelectedCalendar" ("googleChannelId", "eventTypeId");

CREATE TABLE IF NOT EXISTS "CalendarCacheEvent" (
  "id" TEXT NOT NULL,
  "selectedCalendarId" TEXT NOT NULL,
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
  "externalUpdatedAt" TIMESTAMP(3),
  CONSTRAINT "CalendarCacheEvent_pkey" PRIMARY KEY ("id"),
  CONSTRAINT "CalendarCacheEvent_selectedCalendarId_fkey" FOREIGN KEY ("selectedCalendarId") REFERENCES "SelectedCalendar" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);
CREATE INDEX IF NOT EXISTS "CalendarCacheEvent_start_end_status_idx"
  ON "CalendarCacheEvent" ("start", "end", "status");
CREATE INDEX IF NOT EXISTS "CalendarCacheEvent_selectedCalendarId_iCalUID_idx"
  ON "CalendarCacheEvent" ("selectedCalendarId", "iCalUID");
CREATE UNIQUE INDEX IF NOT EXISTS "CalendarCacheEvent_selectedCalendarId_externalId_key"
  ON "CalendarCacheEvent" ("selectedCalendarId", "externalId");

CREATE TABLE IF NOT EXISTS "CalendarCache" (
  "id" TEXT,
  "key" TEXT NOT NULL,
  "value" JSONB NOT NULL,
  "expiresAt" TIMESTAMP(3) NOT NULL,
  "updatedAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
  "credentialId" INTEGER NOT NULL,
  "userId" INTEGER,
  CONSTRAINT "CalendarCache_pkey" PRIMARY KEY ("credentialId", "key"),
  CONSTRAINT "CalendarCache_credentialId_fkey" FOREIGN KEY ("credentialId") REFERENCES "Credential" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);
CREATE INDEX IF NOT EXISTS "CalendarCache_userId_key_idx" ON "CalendarCache" ("userId", "key");
CREATE UNIQUE INDEX IF NOT EXISTS "CalendarCache_credentialId_key_key" ON "CalendarCache" ("credentialId", "key");

CREATE TABLE IF NOT EXISTS "Feature" (
  "slug" TEXT NOT NULL,
  "enabled" BOOLEAN NOT NULL DEFAULT false,
  "description" TEXT,
  "type" "FeatureType" DEFAULT 'RELEASE',
  "stale" BOOLEAN DEFAULT false,
  "lastUsedAt" TIMESTAMP(3),
  "createdAt" TIMESTAMP(3) DEFAULT CURRENT_TIMESTAMP,
  "updatedAt" TIMESTAMP(3) DEFAULT CURRENT_TIMESTAMP,
  "updatedBy" INTEGER,
  CONSTRAINT "Feature_pkey" PRIMARY KEY ("slug")
);
CREATE UNIQUE INDEX IF NOT EXISTS "Feature_slug_key" ON "Feature" ("slug");
CREATE INDEX IF NOT EXISTS "Feature_enabled_idx" ON "Feature" ("enabled");
CREATE INDEX IF NOT EXISTS "Feature_stale_idx" ON "Feature" ("stale");

-- "enabled" has no default: an assignment must say whether it turns the flag on or off.
CREATE TABLE IF NOT EXISTS "UserFeatures" (
  "userId" INTEGER NOT NULL,
  "featureId" TEXT NOT NULL,
  "enabled" BOOLEAN NOT NULL,
  "assignedAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
  "assignedBy" TEXT NOT NULL,
  "updatedAt" TIMESTAMP(3) NOT NULL,
  CONSTRAINT "UserFeatures_pkey" PRIMARY KEY ("userId", "featureId"),
  CONSTRAINT "UserFeatures_userId_fkey" FOREIGN KEY ("userId") REFERENCES "users" ("id") ON DELETE CASCADE ON UPDATE CASCADE,
  CONSTRAINT "UserFeatures_featureId_fkey" FOREIGN KEY ("featureId") REFERENCES "Feature" ("slug") ON DELETE CASCADE ON UPDATE CASCADE
);
CREATE INDEX IF NOT EXISTS "UserFeatures_userId_featureId_idx" ON "UserFeatures" ("userId", "featureId");

CREATE TABLE IF NOT EXISTS "TeamFeatures" (
  "teamId" INTEGER NOT NULL,
  "featureId" TEXT NOT NULL,
  "enabled" BOOLEAN NOT NULL,
  "assignedAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
  "assignedBy" TEXT NOT NULL,
  "updatedAt" TIMESTAMP(3) NOT NULL,
  CONSTRAINT "TeamFeatures_pkey" PRIMARY KEY ("teamId", "featureId"),
  CONSTRAINT "TeamFeatures_teamId_fkey" FOREIGN KEY ("teamId") REFERENCES "Team" ("id") ON DELETE CASCADE ON UPDATE CASCADE,
  CONSTRAINT "TeamFeatures_featureId_fkey" FOREIGN KEY ("featureId") REFERENCES "Feature" ("slug") ON DELETE CASCADE ON UPDATE CASCADE
);
CREATE INDEX IF NOT EXISTS "TeamFeatures_teamId_featureId_idx" ON "TeamFeatures" ("teamId", "featureId");

-- The flags calsync evaluates, created disabled (SPEC §3).
INSERT INTO "Feature" ("slug", "enabled", "description", "type", "updatedAt") VALUES
  ('calendar-subscription-cache', false, 'Serve availability from the calendar subscription cache', 'OPERATIONAL', CURRENT_TIMESTAMP),
  ('calendar-subscription-sync', false, 'Report provider changes to the app''s own bookings', 'OPERATIONAL', CURRENT_TIMESTAMP),
  ('calendar-cache-sql-write', false, 'Keep the legacy JSON calendar cache current from syncs', 'OPERATIONAL', CURRENT_TIMESTAMP),
  ('calendar-cache-sql', false, 'Serve reads from the SQL calendar cache instead of the legacy JSON cache', 'OPERATIONAL', CURRENT_TIMESTAMP)
ON CONFLICT ("slug") DO NOTHING;

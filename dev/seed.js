'use strict'
// Fixtures for tests and the demo: rows as Cal.com (users, teams, flags, credentials, selected
// calendars) and calsync's sync engine (channels, sync state, cached events) would leave them.
// `db` is a node-postgres client connected to the target database.

const crypto = require('node:crypto')

const ALL_DAY_MS = 24 * 3600 * 1000

async function createUser(db, { email, name = null } = {}) {
  email = email ?? `user-${crypto.randomUUID()}@example.com`
  // "uuid" has no database default in Cal.com (Prisma fills it).
  const { rows } = await db.query(
    'INSERT INTO "users" ("uuid", "email", "name") VALUES (gen_random_uuid(), $1, $2) RETURNING id',
    [email, name],
  )
  return rows[0].id
}

async function createTeam(db, { name = 'team', parentId = null, isOrganization = false } = {}) {
  const { rows } = await db.query(
    'INSERT INTO "Team" ("name", "parentId", "isOrganization") VALUES ($1, $2, $3) RETURNING id',
    [name, parentId, isOrganization],
  )
  return rows[0].id
}

async function addMember(db, userId, teamId, { accepted = true, role = 'MEMBER' } = {}) {
  // "role" has no default in Cal.com.
  await db.query(
    'INSERT INTO "Membership" ("userId", "teamId", "accepted", "role") VALUES ($1, $2, $3, $4)',
    [userId, teamId, accepted, role],
  )
}

/** Sets the global switch of a flag (creating the Feature row if needed). */
async function setGlobalFlag(db, slug, enabled) {
  await db.query(
    `INSERT INTO "Feature" ("slug", "enabled", "type", "updatedAt") VALUES ($1, $2, 'OPERATIONAL', NOW())
     ON CONFLICT ("slug") DO UPDATE SET "enabled" = EXCLUDED."enabled"`,
    [slug, enabled],
  )
}

async function setUserFlag(db, userId, slug, enabled) {
  await db.query(
    `INSERT INTO "UserFeatures" ("userId", "featureId", "enabled", "assignedBy", "updatedAt") VALUES ($1, $2, $3, 'test', NOW())
     ON CONFLICT ("userId", "featureId") DO UPDATE SET "enabled" = EXCLUDED."enabled"`,
    [userId, slug, enabled],
  )
}

async function setTeamFlag(db, teamId, slug, enabled) {
  await db.query(
    `INSERT INTO "TeamFeatures" ("teamId", "featureId", "enabled", "assignedBy", "updatedAt") VALUES ($1, $2, $3, 'test', NOW())
     ON CONFLICT ("teamId", "featureId") DO UPDATE SET "enabled" = EXCLUDED."enabled"`,
    [teamId, slug, enabled],
  )
}

async function createCredential(db, { userId, type = 'google_calendar', key = {}, invalid = false }) {
  const { rows } = await db.query(
    'INSERT INTO "Credential" ("type", "key", "userId", "invalid") VALUES ($1, $2, $3, $4) RETURNING id',
    [type, JSON.stringify(key), userId, invalid],
  )
  return rows[0].id
}

async function createSelectedCalendar(db, { userId, integration = 'google_calendar', externalId, credentialId = null, eventTypeId = null, delegationCredentialId = null }) {
  const id = crypto.randomUUID()
  if (eventTypeId != null) {
    // SelectedCalendar.eventTypeId is a foreign key to "EventType": make sure the event type exists.
    await db.query(
      `INSERT INTO "EventType" ("id", "title", "slug", "length") VALUES ($1, $2, $2, 30) ON CONFLICT ("id") DO NOTHING`,
      [eventTypeId, `event-type-${eventTypeId}`],
    )
  }
  await db.query(
    `INSERT INTO "SelectedCalendar" ("id", "userId", "integration", "externalId", "credentialId", "eventTypeId", "delegationCredentialId")
     VALUES ($1, $2, $3, $4, $5, $6, $7)`,
    [id, userId, integration, externalId ?? `${crypto.randomUUID()}@example.com`, credentialId, eventTypeId, delegationCredentialId],
  )
  return id
}

/**
 * An organisation's delegation credential (Google Workspace domain-wide delegation, or a Microsoft
 * tenant app with `platform: 'office365'`) for `domain`; returns its id.
 */
async function createDelegationCredential(db, { organizationId, domain, serviceAccountKey, enabled = true, platform = 'google' }) {
  const { rows: [wp] } = await db.query(
    `INSERT INTO "WorkspacePlatform" ("slug", "name", "description", "defaultServiceAccountKey", "updatedAt", "enabled")
     VALUES ($1, $1, $1, '{}', now(), true)
     ON CONFLICT ("slug") DO UPDATE SET "enabled" = true RETURNING id`,
    [platform],
  )
  const id = crypto.randomUUID()
  await db.query(
    `INSERT INTO "DelegationCredential" ("id", "workspacePlatformId", "serviceAccountKey", "enabled", "organizationId", "domain", "updatedAt")
     VALUES ($1, $2, $3, $4, $5, $6, now())`,
    [id, wp.id, JSON.stringify(serviceAccountKey), enabled, organizationId, domain],
  )
  return id
}

/**
 * Puts a calendar in the state a successful subscribe + full sync leaves: a live channel, a sync
 * token, `syncedAt`, and the covered window. Override any field to make it unhealthy.
 */
async function markSynced(db, id, {
  now = new Date(),
  channelId = `ch-${crypto.randomUUID()}`,
  channelExpiration = new Date(now.getTime() + 7 * ALL_DAY_MS),
  syncedAt = now,
  subscribedAt = now,
  syncErrorAt = null,
  windowStart = new Date(now.getTime() - 30 * ALL_DAY_MS),
  windowEnd = new Date(now.getTime() + 90 * ALL_DAY_MS),
} = {}) {
  await db.query(
    `UPDATE "SelectedCalendar" SET "channelId" = $2, "channelKind" = 'web_hook', "channelExpiration" = $3,
       "syncSubscribedAt" = $4, "syncToken" = 'token', "syncedAt" = $5, "syncErrorAt" = $6,
       "syncErrorCount" = CASE WHEN $6::timestamp IS NULL THEN 0 ELSE 1 END
     WHERE id = $1`,
    [id, channelId, utc(channelExpiration), utc(subscribedAt), utc(syncedAt), utc(syncErrorAt)],
  )
  if (windowStart && windowEnd) {
    await db.query(
      `INSERT INTO "CalendarSyncState" ("selectedCalendarId", "windowStart", "windowEnd", "updatedAt")
       VALUES ($1, $2, $3, NOW())
       ON CONFLICT ("selectedCalendarId") DO UPDATE SET "windowStart" = $2, "windowEnd" = $3`,
      [id, utc(windowStart), utc(windowEnd)],
    )
  }
}

/** Inserts cached events `{ start, end, status?, summary? }` for a calendar, in one statement. */
async function insertEvents(db, selectedCalendarId, events) {
  if (events.length === 0) return
  await db.query(
    `INSERT INTO "CalendarCacheEvent" ("id", "selectedCalendarId", "externalId", "externalEtag", "iCalUID",
       "summary", "start", "end", "status", "updatedAt")
     SELECT gen_random_uuid()::text, $1, x.ext, '"etag"', x.ext || '@google.com', x.summary, x.s, x.e,
       x.status::"CalendarCacheEventStatus", NOW()
     FROM unnest($2::text[], $3::text[], $4::timestamp[], $5::timestamp[], $6::text[]) AS x(ext, summary, s, e, status)`,
    [
      selectedCalendarId,
      events.map((e) => e.externalId ?? crypto.randomUUID()),
      events.map((e) => e.summary ?? 'Busy'),
      events.map((e) => utc(e.start)),
      events.map((e) => utc(e.end)),
      events.map((e) => e.status ?? 'confirmed'),
    ],
  )
}

/** A Date or ISO string as the naive UTC text a TIMESTAMP(3) column takes. */
/**
 * A booking of the app whose calendar event is `eventId` in the organizer's calendar, as Cal.com
 * records it: a "Booking" row and a "BookingReference" naming the event (type = the integration,
 * uid = the provider's event id) with the credential and calendar that hold it.
 */
async function createBooking(db, { uid, userId, integration, eventId, credentialId = null, externalCalendarId = null, start, end, deleted = null }) {
  const { rows } = await db.query(
    'INSERT INTO "Booking" ("uid", "userId", "title", "startTime", "endTime") VALUES ($1, $2, $3, $4, $5) RETURNING id',
    [uid, userId, 'booking', utc(start), utc(end)],
  )
  await db.query(
    'INSERT INTO "BookingReference" ("type", "uid", "bookingId", "externalCalendarId", "credentialId", "deleted") VALUES ($1, $2, $3, $4, $5, $6)',
    [integration, eventId, rows[0].id, externalCalendarId, credentialId, deleted],
  )
  return rows[0].id
}

function utc(t) {
  if (t == null) return null
  return new Date(t).toISOString().replace('Z', '')
}

module.exports = {
  createUser, createTeam, addMember, setGlobalFlag, setUserFlag, setTeamFlag, createCredential,
  createSelectedCalendar, createDelegationCredential, markSynced, insertEvents, createBooking, utc,
}

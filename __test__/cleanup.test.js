'use strict'
// cleanup on a table of 1 000 000 cached events: deletes exactly what SPEC §7 says, in batches.
const test = require('node:test')
const assert = require('node:assert/strict')
const { freshDatabase, calsync } = require('./helpers')
const seed = require('../dev/seed')

let env
let sync
test.before(async () => {
  env = await freshDatabase()
  sync = await calsync.CalendarSync.connect({ databaseUrl: env.url })
})
test.after(async () => {
  await sync?.close()
  await env?.teardown()
})

test('cleanup of 1 000 000 cached events deletes ended and unwatched events and expired legacy rows, in batches', { timeout: 600_000 }, async () => {
  const db = env.pg
  await db.query('SET statement_timeout = 0') // the fixture's million-row inserts; calsync keeps the database's setting
  const userId = await seed.createUser(db)
  const credentialId = await seed.createCredential(db, { userId })
  // 1000 calendars, every other one watched; 1000 events each, half of them already over.
  await db.query(
    `INSERT INTO "SelectedCalendar" (id, "userId", integration, "externalId", "credentialId", "channelId", "channelExpiration")
     SELECT 'cal-' || i, $1, 'google_calendar', 'ext-' || i || '@example.com', $2,
            CASE WHEN i % 2 = 0 THEN 'ch-' || i END, CASE WHEN i % 2 = 0 THEN now() + interval '3 days' END
     FROM generate_series(1, 1000) i`,
    [userId, credentialId],
  )
  await db.query(
    `INSERT INTO "CalendarSyncState" ("selectedCalendarId", "windowStart", "windowEnd", "updatedAt")
     SELECT 'cal-' || i, now() - interval '30 days', now() + interval '90 days', now() FROM generate_series(1, 1000) i`,
  )
  await db.query(
    `INSERT INTO "CalendarCacheEvent" (id, "selectedCalendarId", "externalId", "externalEtag", start, "end", "updatedAt")
     SELECT 'ev-' || c || '-' || e, 'cal-' || c, 'e' || e, '"1"',
            now() + (CASE WHEN e % 2 = 0 THEN -1 ELSE 1 END) * (e * interval '37 minutes') - interval '1 hour',
            now() + (CASE WHEN e % 2 = 0 THEN -1 ELSE 1 END) * (e * interval '37 minutes'),
            now()
     FROM generate_series(1, 1000) c, generate_series(1, 1000) e`,
  )
  await db.query(
    `INSERT INTO "CalendarCache" ("key", value, "expiresAt", "credentialId", "userId")
     SELECT 'k' || i, '{}'::jsonb, now() + (CASE WHEN i % 2 = 0 THEN -1 ELSE 1 END) * interval '1 day', $1, $2
     FROM generate_series(1, 1000) i`,
    [credentialId, userId],
  )
  await db.query('ANALYZE "CalendarCacheEvent"')
  const count = async (sql) => (await db.query(sql)).rows[0].n
  assert.equal(await count('SELECT count(*)::int AS n FROM "CalendarCacheEvent"'), 1_000_000)

  const report = await sync.cleanup({ batchSize: 10_000 })
  console.log(`cleanup report: ${JSON.stringify(report)}`)
  assert.equal(report.endedEvents, 500_000)
  assert.equal(report.unwatchedEvents, 250_000)
  assert.equal(report.legacyRows, 500)
  assert.ok(report.statements >= 75 + 2, 'one statement per batch of at most 10 000 rows')
  assert.equal(await count('SELECT count(*)::int AS n FROM "CalendarCacheEvent"'), 250_000)
  assert.equal(await count(`SELECT count(*)::int AS n FROM "CalendarCacheEvent" WHERE "end" < now()`), 0)
  assert.equal(await count(`SELECT count(*)::int AS n FROM "CalendarCacheEvent" e JOIN "SelectedCalendar" sc ON sc.id = e."selectedCalendarId" WHERE sc."channelId" IS NULL`), 0)
  assert.equal(await count('SELECT count(*)::int AS n FROM "CalendarCache"'), 500)
  // The synced windows now start at the cutoff: the cache never answers for time it deleted.
  assert.equal(await count(`SELECT count(*)::int AS n FROM "CalendarSyncState" WHERE "windowStart" < now() - interval '1 minute'`), 0)
  assert.equal(await count('SELECT count(*)::int AS n FROM "CalendarSyncState"'), 500, 'unwatched calendars lose their sync state')
  const again = await sync.cleanup()
  assert.equal(again.endedEvents + again.unwatchedEvents + again.legacyRows, 0)
  await assert.rejects(sync.cleanup({ before: 'yesterday' }), { code: 'INVALID_ARGUMENT' })
})

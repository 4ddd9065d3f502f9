'use strict'
const test = require('node:test')
const assert = require('node:assert/strict')
const { Client } = require('pg')
const { freshDatabase, calsync } = require('./helpers')
const { createDatabase, withDatabase } = require('../dev/postgres')

const { CalendarSync, applySchema } = calsync
let env

test.before(async () => {
  env = await freshDatabase()
})
test.after(async () => {
  await env?.teardown()
})

test('connects, and close() makes later calls reject with CLOSED', async () => {
  const sync = await CalendarSync.connect({ databaseUrl: env.url })
  assert.equal(await sync.isFeatureEnabled('calendar-subscription-cache', { userId: 1 }), false)
  await sync.close()
  await sync.close() // harmless twice
  await assert.rejects(sync.isFeatureEnabled('x', { userId: 1 }), { code: 'CLOSED' })
  await assert.rejects(
    sync.getCachedAvailability({ userId: 1, timeMin: '2026-01-01T00:00:00Z', timeMax: '2026-01-02T00:00:00Z' }),
    { code: 'CLOSED' },
  )
})

test('connect takes DATABASE_URL from the environment', async () => {
  const saved = process.env.DATABASE_URL
  process.env.DATABASE_URL = env.url
  try {
    const sync = await CalendarSync.connect()
    await sync.close()
  } finally {
    if (saved === undefined) delete process.env.DATABASE_URL
    else process.env.DATABASE_URL = saved
  }
})

test('an unreachable database fails fast with DB_UNAVAILABLE and no secret in the message', async () => {
  const started = Date.now()
  const url = 'postgres://calsync:sup3r-secret-pw@127.0.0.1:1/nowhere'
  const err = await CalendarSync.connect({ databaseUrl: url, connectTimeoutMs: 1500 }).then(
    () => assert.fail('connected to nothing'),
    (e) => e,
  )
  assert.equal(err.code, 'DB_UNAVAILABLE')
  assert.ok(err instanceof Error)
  assert.ok(!err.message.includes('sup3r-secret-pw'), err.message)
  assert.ok(!err.message.includes(url), err.message)
  // Generous bound: it must not wait for sqlx's default 30 s.
  assert.ok(Date.now() - started < 15000, `took ${Date.now() - started} ms`)
})

test('a wrong password is DB_UNAVAILABLE without the password', async () => {
  // Straight to the server: the test PgBouncer (auth_type = any) would let anyone in.
  const u = new URL(env.directUrl)
  u.password = 'definitely-wrong-pw'
  u.username = 'nobody_here'
  const err = await CalendarSync.connect({ databaseUrl: u.toString(), connectTimeoutMs: 3000 }).then(
    () => null,
    (e) => e,
  )
  // A trust-auth server may let anyone in as a missing role only to refuse it: both are unavailability.
  assert.ok(err, 'connecting as a role that does not exist must fail')
  assert.equal(err.code, 'DB_UNAVAILABLE')
  assert.ok(!err.message.includes('definitely-wrong-pw'))
})

test('a malformed URL or none at all is INVALID_ARGUMENT', async () => {
  await assert.rejects(CalendarSync.connect({ databaseUrl: 'not a url at all' }), { code: 'INVALID_ARGUMENT' })
  const saved = process.env.DATABASE_URL
  delete process.env.DATABASE_URL
  try {
    await assert.rejects(CalendarSync.connect(), { code: 'INVALID_ARGUMENT', message: /DATABASE_URL/ })
  } finally {
    if (saved !== undefined) process.env.DATABASE_URL = saved
  }
  await assert.rejects(CalendarSync.connect({ databaseUrl: 42 }), { code: 'INVALID_ARGUMENT' })
})

test('a missing column or table is SCHEMA_MISMATCH naming it', async () => {
  const db = await createDatabase(env.serverUrl, 'calsync_test_schema')
  try {
    await applySchema({ databaseUrl: db.url })
    const pg = new Client({ connectionString: db.url })
    await pg.connect()
    try {
      await pg.query('ALTER TABLE "SelectedCalendar" DROP COLUMN "syncToken"')
      await pg.query('DROP TABLE "CalendarSyncState"')
    } finally {
      await pg.end()
    }
    const err = await CalendarSync.connect({ databaseUrl: db.url }).then(() => null, (e) => e)
    assert.equal(err?.code, 'SCHEMA_MISMATCH')
    assert.match(err.message, /"SelectedCalendar"\."syncToken"/)
    assert.match(err.message, /"CalendarSyncState"/)
    // calsync's own table can be added without touching Cal.com's tables.
    await applySchema({ databaseUrl: db.url, calcom: false })
    const again = await CalendarSync.connect({ databaseUrl: db.url }).then(() => null, (e) => e)
    assert.equal(again?.code, 'SCHEMA_MISMATCH')
    assert.doesNotMatch(again.message, /CalendarSyncState/)
  } finally {
    await db.drop()
  }
})

test('an empty database is SCHEMA_MISMATCH, and applying the schema twice is harmless', async () => {
  const db = await createDatabase(env.serverUrl, 'calsync_test_empty')
  try {
    await assert.rejects(CalendarSync.connect({ databaseUrl: db.url }), { code: 'SCHEMA_MISMATCH', message: /"SelectedCalendar"/ })
    await applySchema({ databaseUrl: db.url })
    await applySchema({ databaseUrl: db.url })
    const sync = await CalendarSync.connect({ databaseUrl: db.url })
    await sync.close()
  } finally {
    await db.drop()
  }
})

test('on a database that already has Cal.com\'s tables, applySchema adds only calsync\'s own', async () => {
  const fs = require('node:fs')
  const path = require('node:path')
  const db = await createDatabase(env.serverUrl, 'calsync_test_real')
  const pg = new Client({ connectionString: db.url })
  await pg.connect()
  try {
    // A Cal.com database as Prisma left it: its tables, no calsync table, no Feature rows of ours,
    // and duplicate user-level rows, which Cal.com's unique key allows.
    await pg.query(fs.readFileSync(path.join(__dirname, '..', 'sql', 'calcom-schema.sql'), 'utf8'))
    await pg.query('DELETE FROM "Feature"')
    await pg.query(`INSERT INTO users (id, uuid, email) VALUES (1, gen_random_uuid(), 'a@example.com')`)
    for (const id of ['dup-1', 'dup-2']) {
      await pg.query(
        `INSERT INTO "SelectedCalendar" (id, "userId", integration, "externalId") VALUES ($1, 1, 'google_calendar', 'same@example.com')`,
        [id],
      )
    }
    const snapshot = async () =>
      (
        await pg.query(
          `SELECT (SELECT json_agg(x ORDER BY x) FROM (SELECT tablename || ':' || indexdef AS x FROM pg_indexes WHERE schemaname = 'public') i) AS indexes,
                  (SELECT json_agg(x ORDER BY x) FROM (SELECT conrelid::regclass || ':' || pg_get_constraintdef(oid) AS x FROM pg_constraint WHERE connamespace = 'public'::regnamespace) c) AS constraints,
                  (SELECT json_agg(x ORDER BY x) FROM (SELECT table_name || '.' || column_name || ':' || data_type || ':' || is_nullable || ':' || coalesce(column_default, '') AS x FROM information_schema.columns WHERE table_schema = 'public') k) AS columns,
                  (SELECT count(*) FROM "Feature") AS features`,
        )
      ).rows[0]
    const before = await snapshot()
    assert.equal(await applySchema({ databaseUrl: db.url }), 'existing')
    const after = await snapshot()
    const ours = (list) => list.filter((x) => !/CalendarSync[A-Z][a-z]+/.test(x)) // calsync's own tables
    assert.deepEqual(ours(after.indexes), before.indexes)
    assert.deepEqual(ours(after.constraints), before.constraints)
    assert.deepEqual(ours(after.columns), before.columns)
    assert.equal(after.features, before.features, 'no Feature rows inserted')
    const sync = await CalendarSync.connect({ databaseUrl: db.url })
    await sync.close()
    assert.equal(await applySchema({ databaseUrl: db.url, calcom: false }), 'not_requested')
  } finally {
    await pg.end()
    await db.drop()
  }
})

test('the database name in a URL can be swapped without losing credentials', () => {
  assert.equal(withDatabase('postgres://u:p@h:5/a?sslmode=disable', 'b'), 'postgres://u:p@h:5/b?sslmode=disable')
})

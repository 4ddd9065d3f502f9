'use strict'
// Every failure after a change was announced is seen by the read path (SPEC §6.9), including those
// before the provider is reached: the token endpoint down, a claim another process never gives
// back, the background pool exhausted, calsync's own OAuth client misconfigured.
const test = require('node:test')
const assert = require('node:assert/strict')
const { channelToken } = require('./helpers')
const { Client } = require('pg')
const { startStack } = require('./stack')
const { CalendarSync } = require('../calsync.js')

const HOUR = 3600 * 1000
const day0 = Math.ceil(Date.now() / (24 * HOUR)) * 24 * HOUR
const range = { timeMin: new Date(day0).toISOString(), timeMax: new Date(day0 + 7 * 24 * HOUR).toISOString() }
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

let s
test.before(async () => {
  s = await startStack({ syncOnRead: false, pendingGraceMs: 300, claimTtlMs: 250 })
})
test.after(async () => {
  await s?.close()
})

const reasons = async (app, id) => (await app.getCachedAvailability({ selectedCalendarIds: [id], ...range })).uncached.map((u) => u.reason)
const failureCode = async (id) => (await s.db.query('SELECT code FROM "CalendarSyncFailure" WHERE "selectedCalendarId" = $1', [id])).rows[0]?.code

async function announced(app, cal) {
  const { rows: [row] } = await s.db.query('SELECT "channelId", "channelResourceId" FROM "SelectedCalendar" WHERE id = $1', [cal.id])
  await s.emu.google.insertEvent(cal.externalId, { summary: 'new', start: { dateTime: new Date(day0 + 30 * HOUR).toISOString() }, end: { dateTime: new Date(day0 + 31 * HOUR).toISOString() } }, { notify: false })
  const answer = await app.handleGoogleWebhook({
    headers: { 'x-goog-channel-id': row.channelId, 'x-goog-channel-token': channelToken(s.options.googleWebhookToken, row.channelId), 'x-goog-resource-id': row.channelResourceId, 'x-goog-resource-state': 'exists', 'x-goog-message-number': '9' },
  }, { waitForSync: true })
  return { code: answer.status, ...JSON.parse(answer.body) }
}

async function subscribedGoogle() {
  const user = await s.googleUser()
  const cal = await s.googleCalendar(user)
  await s.sync.subscribe(cal.id)
  return { user, cal }
}

test('the token endpoint is down: the failure is recorded and the calendar is not served', async () => {
  const { user, cal } = await subscribedGoogle()
  await s.db.query(`UPDATE "Credential" SET key = key || '{"expiry_date": 1}'::jsonb WHERE id = $1`, [user.credentialId])
  s.emu.inject({ endpoint: 'google.token', status: 503, times: 100 })
  try {
    assert.equal((await announced(s.sync, cal)).status, 'sync_failed')
  } finally {
    s.emu.clearFaults()
  }
  assert.equal(await failureCode(cal.id), 'PROVIDER_UNAVAILABLE')
  assert.deepEqual(await reasons(s.sync, cal.id), ['sync_failed'])
})

test('another process holds the sync claim and never gives it back: the wait times out, and the announced change makes reads say stale', async () => {
  const { cal } = await subscribedGoogle()
  await s.db.query(`INSERT INTO "CalendarSyncLease" VALUES ($1, 'a-stuck-process', now() + interval '1 hour')`, [`sync:${cal.id}`])
  try {
    // A database-side failure of a sync the answer waited for is a 503: Google redelivers.
    assert.deepEqual(await announced(s.sync, cal), { code: 503, status: 'unavailable', message: 'DB_ERROR' })
    // The waiter records no failure of the calendar (the holder's sync may well succeed); the
    // change it could not sync keeps its mark, so past the grace reads do not trust the cache.
    assert.equal(await failureCode(cal.id), undefined)
    await sleep(400)
    assert.deepEqual(await reasons(s.sync, cal.id), ['stale'])
  } finally {
    await s.db.query('DELETE FROM "CalendarSyncLease" WHERE key = $1', [`sync:${cal.id}`])
  }
})

test('a sync that waited in vain while the holder succeeded: the calendar reads served, not sync_failed', async () => {
  const { cal } = await subscribedGoogle()
  // The holder: a sync that is slow at Google, so the other one gives up waiting for it.
  const holderApp = await CalendarSync.connect({ ...s.options, claimTtlMs: 10_000 })
  const waiter = await CalendarSync.connect({ ...s.options, claimTtlMs: 100 }) // gives up after 4 × 100 ms
  try {
    s.emu.inject({ endpoint: 'google.events.list', latencyMs: 1500, times: 1 })
    const holder = holderApp.syncCalendar(cal.id)
    await sleep(200)
    await assert.rejects(waiter.syncCalendar(cal.id), (e) => e.code === 'DB_ERROR')
    await holder
  } finally {
    await waiter.close()
    await holderApp.close()
  }
  assert.equal(await failureCode(cal.id), undefined)
  assert.deepEqual(await reasons(s.sync, cal.id), [])
  const { rows: [sc] } = await s.db.query('SELECT "syncErrorAt", "syncedAt" FROM "SelectedCalendar" WHERE id = $1', [cal.id])
  assert.ok(sc.syncedAt && (sc.syncErrorAt === null || sc.syncErrorAt < sc.syncedAt))
})

test('the background pool is exhausted: the sync that cannot get a connection records DB_UNAVAILABLE', async () => {
  const a = await subscribedGoogle()
  const b = await subscribedGoogle()
  const app = await CalendarSync.connect({ ...s.options, maxConnections: 3, backgroundConnections: 1, connectTimeoutMs: 500 })
  const blocker = new Client({ connectionString: s.env.directUrl })
  await blocker.connect()
  try {
    // The one background connection waits on a locked table; the other sync finds none free.
    await blocker.query('BEGIN')
    await blocker.query('LOCK TABLE "CalendarSyncLease" IN ACCESS EXCLUSIVE MODE')
    const runs = [a, b].map(({ cal }) => app.syncCalendar(cal.id).then(() => null, (e) => e.code))
    await sleep(1500)
    await blocker.query('ROLLBACK')
    const codes = await Promise.all(runs)
    assert.ok(codes.includes('DB_UNAVAILABLE'), JSON.stringify(codes))
    const failed = [a, b][codes.indexOf('DB_UNAVAILABLE')].cal
    assert.equal(await failureCode(failed.id), 'DB_UNAVAILABLE')
    assert.deepEqual(await reasons(s.sync, failed.id), ['sync_failed'])
  } finally {
    await blocker.end()
    await app.close()
  }
})

test('calsync\'s OAuth client is misconfigured: nothing is written to Cal.com\'s rows, and the announced change makes reads say stale', async () => {
  const { user, cal } = await subscribedGoogle()
  await s.db.query(`UPDATE "Credential" SET key = key || '{"expiry_date": 1}'::jsonb WHERE id = $1`, [user.credentialId])
  const wrong = await CalendarSync.connect({ ...s.options, googleClientSecret: 'not-the-secret' })
  try {
    assert.equal((await announced(wrong, cal)).status, 'sync_failed')
  } finally {
    await wrong.close()
  }
  const { rows: [sc] } = await s.db.query('SELECT "syncErrorAt" FROM "SelectedCalendar" WHERE id = $1', [cal.id])
  assert.equal(sc.syncErrorAt, null)
  await sleep(400) // the grace period
  assert.deepEqual(await reasons(s.sync, cal.id), ['stale'])
})

'use strict'
// Defects a production review found (issue 23), one scenario each: each test fails without its fix.
const test = require('node:test')
const assert = require('node:assert/strict')
const { Client } = require('pg')
const { startStack, assertParity } = require('./stack')
const { calsync, channelToken } = require('./helpers')

const HOUR = 3600 * 1000
const day0 = Math.ceil(Date.now() / (24 * HOUR)) * 24 * HOUR
const at = (h) => new Date(day0 + h * HOUR).toISOString()
const timed = (h) => ({ summary: 'x', start: { dateTime: at(h) }, end: { dateTime: at(h + 1) } })
const range = { timeMin: at(0), timeMax: at(24 * 14) }
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const NO_SAFETY_NET = { resyncAfterMs: -1 }

let s
test.before(async () => {
  s = await startStack({ pendingGraceMs: 1000, syncOnRead: false })
})
test.after(async () => s?.close())

const googleParity = (cal, when) => assertParity(s, [cal], (id, a, b) => s.emu.google.freeBusyOf(id, a, b), when)
const graphParity = (cal, when) => assertParity(s, [cal], (id, a, b) => s.emu.microsoft.scheduleOf(id, a, b), when)

test('pending marks slide: a calendar notified during every sync for longer than the grace is still served', async () => {
  const cal = await s.googleCalendar(await s.googleUser())
  await s.sync.subscribe(cal.id)
  // What a webhook of another process writes: a mark, renewed by each later notification.
  const mark = () => s.db.query(
    `INSERT INTO "CalendarSyncPending" ("selectedCalendarId", "since", "last")
     VALUES ($1, clock_timestamp() AT TIME ZONE 'UTC', clock_timestamp() AT TIME ZONE 'UTC')
     ON CONFLICT ("selectedCalendarId") DO UPDATE SET "last" = EXCLUDED."last"`, [cal.id])
  await mark()
  const started = Date.now()
  while (Date.now() - started < 1800) { // longer than the 1 s grace, a notification inside every sync
    s.emu.inject({ endpoint: 'google.events.list', latencyMs: 300, times: 1 })
    const sync = s.sync.syncCalendar(cal.id)
    await sleep(100)
    await mark()
    await sync
  }
  const res = await s.sync.getCachedAvailability({ selectedCalendarIds: [cal.id], ...range })
  assert.deepEqual(res.uncached, [], 'each sync covered what was announced before it started')
  const { rows } = await s.db.query('SELECT count(*)::int AS n FROM "CalendarSyncPending" WHERE "selectedCalendarId" = $1', [cal.id])
  assert.equal(rows[0].n, 1, 'the last notification is still owed a sync')
})

test('a channel that lapsed is recreated by cron and the calendar synced: changes made meanwhile are not served as fresh (Google and Graph)', async () => {
  const g = await s.googleCalendar(await s.googleUser())
  const m = await s.outlookCalendar(await s.microsoftUser())
  await s.sync.subscribe(g.id)
  await s.sync.subscribe(m.id)
  // Both channels expire at the provider (Graph deletes an expired subscription: a PATCH is 404).
  for (const ch of s.emu.google.liveChannels(g.externalId)) ch.expiration = Date.now() - 1000
  for (const sub of s.emu.microsoft.liveSubscriptions(m.externalId)) sub.expirationDateTime = new Date(Date.now() - 1000).toISOString()
  await s.db.query(`UPDATE "SelectedCalendar" SET "channelExpiration" = now() AT TIME ZONE 'UTC' - interval '1 second' WHERE id = ANY($1)`, [[g.id, m.id]])
  // Changes while no channel is live: announced to nobody.
  await s.emu.google.insertEvent(g.externalId, timed(9))
  await s.emu.microsoft.insertEvent(m.externalId, { subject: 'x', start: { dateTime: at(9).slice(0, 19), timeZone: 'UTC' }, end: { dateTime: at(10).slice(0, 19), timeZone: 'UTC' } })
  const report = await s.sync.renewWatches(NO_SAFETY_NET)
  assert.equal(report.failed, 0)
  assert.equal(s.emu.google.liveChannels(g.externalId).length, 1)
  assert.equal(s.emu.microsoft.liveSubscriptions(m.externalId).length, 1)
  await googleParity(g, 'Google, after cron recreated the channel')
  await graphParity(m, 'Graph, after cron recreated the subscription')
})

test('ledger rows of failed watches expire without provider calls and never crowd out a real leaked channel', async () => {
  const user = await s.googleUser()
  const cal = await s.googleCalendar(user)
  await s.sync.subscribe(cal.id)
  // A channel that leaked (its opener died after Google granted it): live at Google, in the ledger.
  const { rows: [row] } = await s.db.query('SELECT "channelResourceId" FROM "SelectedCalendar" WHERE id = $1', [cal.id])
  const leaked = `leaked-${Date.now()}`
  const res = await fetch(`${s.emu.url}/calendar/v3/calendars/${encodeURIComponent(cal.externalId)}/events/watch`, {
    method: 'POST',
    headers: { authorization: `Bearer ${user.key.access_token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ id: leaked, type: 'web_hook', address: s.options.googleWebhookUrl, token: channelToken(s.options.googleWebhookToken, leaked) }),
  })
  assert.equal(res.status, 200)
  await s.db.query(
    `INSERT INTO "CalendarSyncChannel" ("id", "channelId", "selectedCalendarId", "userId", "integration", "externalId", "credentialId", "resourceId", "openedAt")
     VALUES (gen_random_uuid()::text, $1, $2, $3, 'google_calendar', $4, $5, $6, now() AT TIME ZONE 'UTC' - interval '1 minute')`,
    [leaked, cal.id, user.userId, cal.externalId, user.credentialId, row.channelResourceId])
  // 600 rows of watches that failed long ago on a calendar that never got a channel: no resource
  // id anywhere, no expiration ever granted. They can never be stopped.
  const other = await s.googleCalendar(user)
  await s.db.query(
    `INSERT INTO "CalendarSyncChannel" ("id", "channelId", "selectedCalendarId", "userId", "integration", "externalId", "credentialId", "openedAt")
     SELECT gen_random_uuid()::text, 'failed-' || i, $1, $2, 'google_calendar', $3, $4, now() AT TIME ZONE 'UTC' - interval '20 days' - i * interval '1 second'
     FROM generate_series(1, 600) AS i`,
    [other.id, user.userId, other.externalId, user.credentialId])
  const before = s.emu.counter('POST /calendar/v3/channels/stop')
  await s.sync.renewWatches(NO_SAFETY_NET)
  assert.deepEqual(s.emu.google.liveChannels(cal.externalId).map((c) => c.id).filter((id) => id === leaked), [], 'the leaked channel was stopped')
  const { rows: [left] } = await s.db.query(`SELECT count(*)::int AS n FROM "CalendarSyncChannel" WHERE "channelId" LIKE 'failed-%'`)
  assert.equal(left.n, 0, 'dead rows forgotten')
  assert.ok(s.emu.counter('POST /calendar/v3/channels/stop') - before < 10, 'without asking Google about each')
})

test('a replayed subscriptionRemoved for a live Graph subscription renews it, never adds one', async () => {
  const cal = await s.outlookCalendar(await s.microsoftUser())
  const sub = await s.sync.subscribe(cal.id)
  const patches = s.emu.counter(`PATCH /v1.0/subscriptions/${sub.channelId}`)
  const item = { subscriptionId: sub.channelId, clientState: s.options.microsoftWebhookToken, lifecycleEvent: 'subscriptionRemoved' }
  for (let i = 0; i < 3; i++) {
    const res = await s.sync.handleMicrosoftWebhook({ body: JSON.stringify({ value: [item] }) }, { waitForSync: true })
    assert.equal(res.status, 202)
  }
  assert.deepEqual(s.emu.microsoft.liveSubscriptions(cal.externalId).map((x) => x.id), [sub.channelId])
  const { rows: [row] } = await s.db.query('SELECT "channelId" FROM "SelectedCalendar" WHERE id = $1', [cal.id])
  assert.equal(row.channelId, sub.channelId)
  assert.equal(s.emu.counter(`PATCH /v1.0/subscriptions/${sub.channelId}`) - patches, 3)
})

test('Graph: an access token refused in the middle of a sync is refreshed once and the sync completes', async () => {
  const user = await s.microsoftUser()
  const cal = await s.outlookCalendar(user)
  await s.sync.subscribe(cal.id)
  await s.emu.microsoft.insertEvent(cal.externalId, { subject: 'x', start: { dateTime: at(9).slice(0, 19), timeZone: 'UTC' }, end: { dateTime: at(10).slice(0, 19), timeZone: 'UTC' } }, { notify: false })
  // Revoked at Microsoft although its expiry is hours away.
  const { rows: [cred] } = await s.db.query('SELECT key FROM "Credential" WHERE id = $1', [user.credentialId])
  s.emu.microsoft.accessTokens.delete(cred.key.access_token)
  const report = await s.sync.syncCalendar(cal.id)
  assert.equal(report.upserted, 1)
  await graphParity(cal, 'after the refresh')
})

test('Google notifications are looked up among Google channels only; webhook URLs must be https', async () => {
  const cal = await s.outlookCalendar(await s.microsoftUser())
  const sub = await s.sync.subscribe(cal.id)
  // A Google notification naming a Graph subscription's id, with the token that id would get.
  const res = await s.sync.handleGoogleWebhook({
    headers: { 'x-goog-channel-id': sub.channelId, 'x-goog-channel-token': channelToken(s.options.googleWebhookToken, sub.channelId), 'x-goog-resource-state': 'exists', 'x-goog-resource-id': 'r' },
  })
  assert.equal(res.status, 200)
  assert.match(res.body, /unknown_channel/)
  const { rows } = await s.db.query('SELECT 1 FROM "CalendarSyncPending" WHERE "selectedCalendarId" = $1', [cal.id])
  assert.equal(rows.length, 0, 'no mark for the Outlook calendar')
  await assert.rejects(calsync.CalendarSync.connect({ ...s.options, googleWebhookUrl: 'http://app.example.com/api/webhooks/calendar-subscription/google_calendar' }),
    (e) => e.code === 'INVALID_ARGUMENT' && /https/.test(e.message))
})

test('an empty Graph batch is answered without touching the database', async () => {
  const app = await calsync.CalendarSync.connect({ ...s.options, connectTimeoutMs: 500 })
  const blocker = new Client({ connectionString: s.env.directUrl })
  await blocker.connect()
  try {
    await blocker.query('BEGIN')
    await blocker.query('LOCK TABLE "SelectedCalendar" IN ACCESS EXCLUSIVE MODE')
    const res = await app.handleMicrosoftWebhook({ body: '{"value":[]}' })
    assert.equal(res.status, 202, 'a lookup would have waited for the lock and answered 503')
  } finally {
    await blocker.query('ROLLBACK')
    await blocker.end()
    await app.close()
  }
})

test('status() scans on the background pool: it answers while reads hold every front connection', async () => {
  const cal = await s.googleCalendar(await s.googleUser())
  await s.sync.subscribe(cal.id)
  const app = await calsync.CalendarSync.connect({ ...s.options, maxConnections: 3, backgroundConnections: 1, readTimeoutMs: 10_000, connectTimeoutMs: 1000 })
  const blocker = new Client({ connectionString: s.env.directUrl })
  await blocker.connect()
  try {
    await blocker.query('BEGIN')
    await blocker.query('LOCK TABLE "CalendarCacheEvent" IN ACCESS EXCLUSIVE MODE')
    // Both front connections wait on the lock inside reads.
    const reads = [1, 2].map(() => app.getCachedAvailability({ selectedCalendarIds: [cal.id], ...range }).catch((e) => e.code))
    await sleep(300)
    const health = await app.status()
    assert.ok(health.some((h) => h.integration === 'google_calendar'))
    await blocker.query('ROLLBACK')
    await Promise.all(reads)
  } finally {
    await blocker.end()
    await app.close()
  }
})

'use strict'
const test = require('node:test')
const assert = require('node:assert/strict')
const { channelToken } = require('./helpers')
const { startStack, spans } = require('./stack')
const seed = require('../dev/seed')
const { CalendarSync } = require('../calsync.js')

const HOUR = 3600 * 1000
const day0 = Math.ceil(Date.now() / (24 * HOUR)) * 24 * HOUR // tomorrow 00:00 UTC
const at = (h, m = 0) => new Date(day0 + h * HOUR + m * 60000).toISOString()
const range = { timeMin: at(0), timeMax: at(24 * 14) }

let s
test.before(async () => {
  s = await startStack({ googlePageSize: 10, maxAttempts: 3 })
})
test.after(async () => {
  await s?.close()
})

const timed = (startH, endH, extra = {}) => ({ summary: 'meeting', start: { dateTime: at(startH) }, end: { dateTime: at(endH) }, ...extra })

async function cached(id, r = range) {
  const res = await s.sync.getCachedAvailability({ selectedCalendarIds: [id], ...r })
  assert.deepEqual(res.uncached, [], `calendar ${id} not served: ${JSON.stringify(res.uncached)}`)
  return spans(res.busy)
}
const truth = (externalId, r = range) => spans(s.emu.google.freeBusyOf(externalId, r.timeMin, r.timeMax))

async function calendarRows(id) {
  const { rows } = await s.db.query(
    `SELECT "externalId", "externalEtag", "start", "end", "status"::text, "iCalUID", "iCalSequence" FROM "CalendarCacheEvent"
     WHERE "selectedCalendarId" = $1 ORDER BY "externalId"`,
    [id],
  )
  return rows
}

async function syncColumns(id) {
  const { rows } = await s.db.query(
    `SELECT "channelId", "channelResourceId", "syncToken", "syncedAt", "syncErrorAt", "syncErrorCount" FROM "SelectedCalendar" WHERE id = $1`,
    [id],
  )
  return rows[0]
}

test('subscribe watches the calendar, runs a full sync, and the cache equals free/busy', async () => {
  const user = await s.googleUser()
  const cal = await s.googleCalendar(user, { timeZone: 'Europe/Berlin' })
  await s.emu.google.insertEvent(cal.externalId, timed(9, 10))
  await s.emu.google.insertEvent(cal.externalId, { summary: 'holiday', start: { date: at(48).slice(0, 10) }, end: { date: at(72).slice(0, 10) } })
  await s.emu.google.insertEvent(cal.externalId, timed(11, 12, { transparency: 'transparent' }))
  const sub = await s.sync.subscribe(cal.id)
  assert.equal(sub.sync.full, true)
  assert.equal(sub.sync.fullReason, 'first_sync')
  assert.ok(Date.parse(sub.expiration) > Date.now() + 6 * 24 * HOUR)
  const cols = await syncColumns(cal.id)
  assert.equal(cols.channelId, sub.channelId)
  assert.ok(cols.channelResourceId && cols.syncToken && cols.syncedAt)
  assert.deepEqual(await cached(cal.id), truth(cal.externalId))
  assert.equal((await calendarRows(cal.id)).length, 2, 'the transparent event is not stored')
  // The all-day event spans Berlin midnights, not UTC ones.
  const allDay = (await cached(cal.id)).find(([a, b]) => b - a === 24 * HOUR)
  assert.equal(new Date(allDay[0]).toISOString(), new Date(day0 + 48 * HOUR - HOUR).toISOString())
})

test('a change at the provider is in the cache as soon as the delivered webhook returned', async () => {
  const user = await s.googleUser()
  const cal = await s.googleCalendar(user)
  await s.sync.subscribe(cal.id)
  assert.deepEqual(await cached(cal.id), [])
  const ev = await s.emu.google.insertEvent(cal.externalId, timed(13, 14)) // resolves once the webhook answered
  assert.deepEqual(await cached(cal.id), truth(cal.externalId))
  assert.equal((await cached(cal.id)).length, 1)
  await s.emu.google.updateEvent(cal.externalId, ev.id, { start: { dateTime: at(15) }, end: { dateTime: at(16) } })
  assert.deepEqual(await cached(cal.id), [[Date.parse(at(15)), Date.parse(at(16))]])
  await s.emu.google.deleteEvent(cal.externalId, ev.id)
  assert.deepEqual(await cached(cal.id), [])
  const deliveries = s.emu.google.deliveries.filter((d) => d.state === 'exists')
  assert.ok(deliveries.length >= 3 && deliveries.every((d) => d.status === 200), JSON.stringify(deliveries))
  // Every column of a stored event is written.
  await s.emu.google.insertEvent(cal.externalId, timed(17, 18, { status: 'tentative', iCalUID: 'uid-1@example.com', sequence: 4, location: 'Room 1', description: 'd' }))
  const { rows } = await s.db.query(`SELECT * FROM "CalendarCacheEvent" WHERE "selectedCalendarId" = $1`, [cal.id])
  assert.equal(rows.length, 1)
  const r = rows[0]
  assert.equal(r.status, 'tentative')
  assert.equal(r.iCalUID, 'uid-1@example.com')
  assert.equal(r.iCalSequence, 4)
  assert.equal(r.location, 'Room 1')
  assert.ok(r.externalEtag.length > 2 && r.externalCreatedAt && r.externalUpdatedAt && r.createdAt && r.updatedAt)
  assert.equal(r.isAllDay, false)
})

test('forged or missing tokens and a wrong resource id are rejected without any write', async () => {
  const user = await s.googleUser()
  const cal = await s.googleCalendar(user)
  const sub = await s.sync.subscribe(cal.id)
  const cols = await syncColumns(cal.id)
  await s.emu.google.insertEvent(cal.externalId, timed(9, 10), { notify: false }) // a change nobody was told about
  const before = { rows: await calendarRows(cal.id), cols: await syncColumns(cal.id), lists: s.emu.counter('google.events.list.sequence') }
  const headers = { 'x-goog-channel-id': sub.channelId, 'x-goog-resource-id': cols.channelResourceId, 'x-goog-resource-state': 'exists', 'x-goog-message-number': '9' }
  const cases = [
    [{ ...headers }, 401],
    [{ ...headers, 'x-goog-channel-token': 'forged' }, 403],
    [{ ...headers, 'x-goog-channel-token': channelToken('test-webhook-secret', sub.channelId), 'x-goog-resource-id': 'someone-elses-resource' }, 403],
    [{ 'x-goog-resource-state': 'exists' }, 400],
  ]
  for (const [h, status] of cases) {
    const res = await s.sync.handleGoogleWebhook({ headers: h })
    assert.equal(res.status, status, JSON.stringify(h))
  }
  assert.deepEqual(await calendarRows(cal.id), before.rows)
  assert.deepEqual(await syncColumns(cal.id), before.cols)
  assert.equal(s.emu.counter('google.events.list.sequence'), before.lists, 'no provider call either')
  // Nonsense never throws.
  for (const junk of [{}, { headers: null }, { headers: { 'x-goog-channel-id': 5 } }]) {
    const res = await s.sync.handleGoogleWebhook(junk)
    assert.ok(res.status >= 400 && res.status < 500)
  }
  // A handshake is answered without work; an unknown channel is acknowledged and ignored.
  const shared = { ...headers, 'x-goog-channel-token': 'test-webhook-secret' }
  assert.equal((await s.sync.handleGoogleWebhook({ headers: { ...shared, 'x-goog-resource-state': 'sync' } })).status, 200)
  const unknown = await s.sync.handleGoogleWebhook({ headers: { ...shared, 'x-goog-channel-id': 'nope' } })
  assert.equal(unknown.status, 200)
  assert.match(unknown.body, /unknown_channel/)
  assert.deepEqual(await calendarRows(cal.id), before.rows)
  // The plain shared token does not open a channel calsync opened (it sits in every header of the
  // TypeScript era's channels, so in proxy logs): only the channel's own token does.
  const sharedOnOurs = await s.sync.handleGoogleWebhook({ headers: shared })
  assert.equal(sharedOnOurs.status, 403)
  assert.deepEqual(await calendarRows(cal.id), before.rows)
  // A channel made by the TypeScript implementation (not in calsync's ledger) still takes it; the
  // answer comes at once and the sync follows in the background.
  await s.db.query('DELETE FROM "CalendarSyncChannel" WHERE "channelId" = $1', [sub.channelId])
  const legacy = await s.sync.handleGoogleWebhook({ headers: shared })
  assert.equal(legacy.status, 200)
  assert.match(legacy.body, /accepted/)
  await s.sync.settle()
  assert.equal((await calendarRows(cal.id)).length, 1)
})

test('an expired sync token leads to a full resync that leaves no stale row', async () => {
  const user = await s.googleUser()
  const cal = await s.googleCalendar(user)
  const keep = await s.emu.google.insertEvent(cal.externalId, timed(9, 10))
  const gone = await s.emu.google.insertEvent(cal.externalId, timed(11, 12))
  await s.sync.subscribe(cal.id)
  assert.equal((await calendarRows(cal.id)).length, 2)
  // Meanwhile, unannounced: one event deleted (its tombstone will never be listed again), one added.
  await s.emu.google.deleteEvent(cal.externalId, gone.id, { notify: false })
  const added = await s.emu.google.insertEvent(cal.externalId, timed(13, 14), { notify: false })
  s.emu.google.expireSyncTokens(cal.externalId)
  const report = await s.sync.syncCalendar(cal.id)
  assert.equal(report.full, true)
  assert.equal(report.fullReason, 'token_expired')
  assert.deepEqual((await calendarRows(cal.id)).map((r) => r.externalId).sort(), [keep.id, added.id].sort())
  assert.deepEqual(await cached(cal.id), truth(cal.externalId))
})

test('a 5xx on page 3 of 5 leaves the old token and rows untouched; the retry completes', async () => {
  const user = await s.googleUser()
  const cal = await s.googleCalendar(user)
  for (let i = 0; i < 45; i++) await s.emu.google.insertEvent(cal.externalId, timed(i, i + 1), { notify: false })
  await s.sync.subscribe(cal.id)
  for (let i = 45; i < 48; i++) await s.emu.google.insertEvent(cal.externalId, timed(i, i + 1), { notify: false })
  const before = { rows: await calendarRows(cal.id), cols: await syncColumns(cal.id) }
  s.emu.inject({ endpoint: 'google.events.list', status: 503, skip: 2, times: 100 })
  const err = await s.sync.syncCalendar(cal.id, { full: true }).then(() => null, (e) => e)
  s.emu.clearFaults()
  assert.equal(err?.code, 'PROVIDER_UNAVAILABLE')
  assert.deepEqual(await calendarRows(cal.id), before.rows)
  const after = await syncColumns(cal.id)
  assert.equal(after.syncToken, before.cols.syncToken)
  assert.equal(after.syncErrorCount, 1)
  assert.ok(after.syncErrorAt)
  // While the last sync failed, the cache does not answer for the calendar.
  const res = await s.sync.getCachedAvailability({ selectedCalendarIds: [cal.id], ...range })
  assert.deepEqual(res.uncached, [{ id: cal.id, reason: 'sync_failed' }])
  const report = await s.sync.syncCalendar(cal.id, { full: true })
  assert.equal(report.pages, 5)
  assert.equal((await calendarRows(cal.id)).length, 48)
  assert.equal((await syncColumns(cal.id)).syncErrorCount, 0)
  assert.deepEqual(await cached(cal.id), truth(cal.externalId))
})

test('200 concurrent notifications for one calendar cost at most 2 list sequences', async () => {
  const user = await s.googleUser()
  const cal = await s.googleCalendar(user)
  const sub = await s.sync.subscribe(cal.id)
  const cols = await syncColumns(cal.id)
  for (let i = 0; i < 20; i++) await s.emu.google.insertEvent(cal.externalId, timed(i, i + 1), { notify: false })
  const headers = {
    'X-Goog-Channel-ID': sub.channelId, 'X-Goog-Channel-Token': channelToken('test-webhook-secret', sub.channelId), 'X-Goog-Resource-ID': cols.channelResourceId,
    'X-Goog-Resource-State': 'exists',
  }
  const before = s.emu.counter('google.events.list.sequence')
  const results = await Promise.all(Array.from({ length: 200 }, () => s.sync.handleGoogleWebhook({ headers })))
  await s.sync.settle()
  const lists = s.emu.counter('google.events.list.sequence') - before
  assert.ok(results.every((r) => r.status === 200))
  assert.ok(lists >= 1 && lists <= 2, `${lists} list sequences`)
  assert.deepEqual(await cached(cal.id), truth(cal.externalId))
  // Replaying notifications changes nothing.
  const rows = await calendarRows(cal.id)
  await Promise.all(Array.from({ length: 20 }, () => s.sync.handleGoogleWebhook({ headers }, { waitForSync: true })))
  assert.deepEqual(await calendarRows(cal.id), rows)
})

test('notifications spread over the sync interval cost at most 2 list sequences; a quiet calendar syncs at once', async () => {
  // A second instance with the default interval (1 s), as the app would run it.
  const sync = await CalendarSync.connect({ ...s.options, syncMinIntervalMs: undefined })
  try {
    const user = await s.googleUser()
    const cal = await s.googleCalendar(user)
    const sub = await sync.subscribe(cal.id)
    const cols = await syncColumns(cal.id)
    const headers = {
      'x-goog-channel-id': sub.channelId, 'x-goog-channel-token': channelToken('test-webhook-secret', sub.channelId), 'x-goog-resource-id': cols.channelResourceId,
      'x-goog-resource-state': 'exists',
    }
    // The first notification of a quiet calendar is synced without delay.
    await s.emu.google.insertEvent(cal.externalId, timed(1, 2), { notify: false })
    let t = Date.now()
    assert.match((await sync.handleGoogleWebhook({ headers }, { waitForSync: true })).body, /synced/)
    assert.ok(Date.now() - t < 900, `first sync took ${Date.now() - t} ms`)
    await new Promise((r) => setTimeout(r, 1100))
    // 30 changes, each notified, one every 15 ms: each arrives after the previous sync finished.
    const before = s.emu.counter('google.events.list.sequence')
    t = Date.now()
    const answers = []
    for (let i = 0; i < 30; i++) {
      await s.emu.google.insertEvent(cal.externalId, timed(3 + i, 4 + i), { notify: false })
      answers.push(await sync.handleGoogleWebhook({ headers }))
      await new Promise((r) => setTimeout(r, 15))
    }
    const spread = Date.now() - t
    assert.ok(spread < 1000, `the burst must fit in the interval; it took ${spread} ms`)
    assert.ok(answers.every((a) => a.status === 200 && /accepted/.test(a.body)), JSON.stringify(answers.slice(0, 3)))
    await sync.settle()
    const lists = s.emu.counter('google.events.list.sequence') - before
    assert.equal(lists, 2, 'one sync at the first notification, one follow-up for the rest')
    assert.deepEqual(await cached(cal.id), truth(cal.externalId))
  } finally {
    await sync.close()
  }
})

test('429 with Retry-After: 1.5 is retried after 1.5 s; 403 rateLimitExceeded backs off; 404 is not retried', async () => {
  const user = await s.googleUser()
  const cal = await s.googleCalendar(user)
  await s.sync.subscribe(cal.id)
  const log = []
  const orig = s.emu.google.list.bind(s.emu.google)
  s.emu.google.list = (...args) => (log.push(Date.now()), orig(...args))
  try {
    const faulted = s.emu.counter('google.events.list.faulted')
    s.emu.inject({ endpoint: 'google.events.list', status: 429, retryAfter: '1.5', times: 1 })
    await s.sync.syncCalendar(cal.id)
    assert.equal(s.emu.counter('google.events.list.faulted') - faulted, 1)
    assert.equal(log.length, 1, 'the faulted request never reached the handler; the retry did')
    s.emu.google.list = orig
    const t0 = Date.now()
    s.emu.inject({ endpoint: 'google.events.list', status: 429, retryAfter: '1.5', times: 1 })
    await s.sync.syncCalendar(cal.id)
    assert.ok(Date.now() - t0 >= 1500, `retried after ${Date.now() - t0} ms`)

    const before = s.emu.counter('GET /calendar/v3/calendars/' + cal.externalId + '/events')
    s.emu.inject({ endpoint: 'google.events.list', status: 403, reason: 'rateLimitExceeded', times: 2 })
    await s.sync.syncCalendar(cal.id)
    assert.equal(s.emu.counter('GET /calendar/v3/calendars/' + cal.externalId + '/events') - before, 3, 'two 403s then success')
  } finally {
    s.emu.google.list = orig
    s.emu.clearFaults()
  }
  // A calendar the provider does not know: one request, NOT_FOUND, no retry.
  const missing = await s.googleCalendar(user)
  s.emu.google.calendars.delete(missing.externalId)
  const path = `GET /calendar/v3/calendars/${missing.externalId}/events`
  await assert.rejects(s.sync.syncCalendar(missing.id), { code: 'NOT_FOUND' })
  assert.equal(s.emu.counter(path), 1)
})

test('invalid_grant marks the credential invalid, is reported once, and stops provider calls', async () => {
  const user = await s.googleUser()
  const cal = await s.googleCalendar(user)
  await s.sync.subscribe(cal.id)
  // The access token expired and the user revoked access.
  await s.db.query(`UPDATE "Credential" SET key = key || '{"expiry_date": 1}'::jsonb WHERE id = $1`, [user.credentialId])
  s.emu.google.revokeRefreshToken(user.key.refresh_token)
  const tokenCalls = s.emu.counter('POST /token')
  const lists = s.emu.counter('google.events.list.sequence')
  await assert.rejects(s.sync.syncCalendar(cal.id), { code: 'PROVIDER_AUTH', message: /invalid_grant/ })
  const { rows } = await s.db.query('SELECT invalid, key FROM "Credential" WHERE id = $1', [user.credentialId])
  assert.equal(rows[0].invalid, true)
  assert.equal(rows[0].key.refresh_token, user.key.refresh_token, 'the key is kept for the app to show')
  await assert.rejects(s.sync.syncCalendar(cal.id), { code: 'PROVIDER_AUTH', message: /marked invalid/ })
  await assert.rejects(s.sync.syncCalendar(cal.id), { code: 'PROVIDER_AUTH' })
  assert.equal(s.emu.counter('POST /token') - tokenCalls, 1, 'one refresh attempt in all')
  assert.equal(s.emu.counter('google.events.list.sequence'), lists, 'no list call with a dead credential')
  const res = await s.sync.getCachedAvailability({ selectedCalendarIds: [cal.id], ...range })
  assert.deepEqual(res.uncached, [{ id: cal.id, reason: 'credential_invalid' }])
})

test('an expiring access token is refreshed and written back into Credential.key (merged)', async () => {
  const user = await s.googleUser()
  const cal = await s.googleCalendar(user)
  await s.db.query(`UPDATE "Credential" SET key = key || '{"expiry_date": 1, "custom": "kept"}'::jsonb WHERE id = $1`, [user.credentialId])
  await s.sync.subscribe(cal.id)
  const { rows } = await s.db.query('SELECT key FROM "Credential" WHERE id = $1', [user.credentialId])
  assert.notEqual(rows[0].key.access_token, user.key.access_token)
  assert.ok(rows[0].key.expiry_date > Date.now() + 30 * 60 * 1000, 'expiry_date in epoch milliseconds')
  assert.equal(rows[0].key.custom, 'kept')
  assert.equal(rows[0].key.refresh_token, user.key.refresh_token)
})

test('event-type rows of one calendar share one channel and one set of cached rows', async () => {
  const user = await s.googleUser()
  const cal = await s.googleCalendar(user)
  const forType = await seed.createSelectedCalendar(s.db, { userId: user.userId, externalId: cal.externalId, credentialId: user.credentialId, eventTypeId: 3 })
  await s.emu.google.insertEvent(cal.externalId, timed(9, 10))
  await s.sync.subscribe(forType)
  const { rows } = await s.db.query(`SELECT id, "channelId" FROM "SelectedCalendar" WHERE "externalId" = $1`, [cal.externalId])
  assert.equal(rows.length, 2)
  assert.equal(rows[0].channelId, rows[1].channelId)
  const { rows: stored } = await s.db.query(
    `SELECT "selectedCalendarId" FROM "CalendarCacheEvent" WHERE "selectedCalendarId" = ANY($1)`, [[cal.id, forType]])
  assert.deepEqual(stored.map((r) => r.selectedCalendarId), [cal.id], 'stored once, under the user-level row')
  assert.deepEqual(await cached(forType), truth(cal.externalId))
  assert.equal(s.emu.google.liveChannels(cal.externalId).length, 1)
  // Subscribing again replaces the channel: the old one is stopped after the new one is stored.
  await s.sync.subscribe(cal.id)
  assert.equal(s.emu.google.liveChannels(cal.externalId).length, 1)
  // Unsubscribing stops it and forgets the rows.
  await s.sync.unsubscribe(cal.id)
  assert.equal(s.emu.google.liveChannels(cal.externalId).length, 0)
  assert.deepEqual(await calendarRows(cal.id), [])
  const res = await s.sync.getCachedAvailability({ selectedCalendarIds: [forType], ...range })
  assert.equal(res.uncached[0].reason, 'not_subscribed')
})

test('two-way sync reports changed @cal.com bookings when its flag is on', async () => {
  const user = await s.googleUser()
  await seed.setGlobalFlag(s.db, 'calendar-subscription-sync', true)
  await seed.setUserFlag(s.db, user.userId, 'calendar-subscription-sync', true)
  const cal = await s.googleCalendar(user)
  await s.sync.subscribe(cal.id)
  const booking = await s.emu.google.insertEvent(cal.externalId, timed(9, 10, { iCalUID: 'bk-123@cal.com' }), { notify: false })
  await s.emu.google.insertEvent(cal.externalId, timed(11, 12), { notify: false })
  let report = await s.sync.syncCalendar(cal.id)
  assert.deepEqual(report.bookingChanges, [{ uid: 'bk-123', start: at(9), end: at(10), cancelled: false }])
  await s.emu.google.deleteEvent(cal.externalId, booking.id, { notify: false })
  report = await s.sync.syncCalendar(cal.id)
  assert.deepEqual(report.bookingChanges, [{ uid: 'bk-123', cancelled: true }])
  // Without the flag nothing is reported.
  await seed.setUserFlag(s.db, user.userId, 'calendar-subscription-sync', false)
  await s.emu.google.insertEvent(cal.externalId, timed(13, 14, { iCalUID: 'bk-9@cal.com' }), { notify: false })
  assert.deepEqual((await s.sync.syncCalendar(cal.id)).bookingChanges, [])
})

'use strict'
const test = require('node:test')
const assert = require('node:assert/strict')
const { freshDatabase, calsync } = require('./helpers')
const seed = require('../dev/seed')

const FLAG = 'calendar-subscription-cache'
const HOUR = 3600 * 1000
let env
let sync
let db

// Tomorrow, 00:00 UTC; the read range is 09:00-17:00 of that day.
const day = new Date(Math.ceil(Date.now() / (24 * HOUR)) * 24 * HOUR)
const at = (h, m = 0) => new Date(day.getTime() + h * HOUR + m * 60000)
const iso = (h, m = 0) => at(h, m).toISOString()
const range = { timeMin: iso(9), timeMax: iso(17) }

let user
let otherUser
const ids = {}

test.before(async () => {
  env = await freshDatabase()
  db = env.pg
  // These tests classify a fixed database state: no background sync may change it under them.
  sync = await calsync.CalendarSync.connect({ databaseUrl: env.url, maxCalendarsPerRead: 20, syncOnRead: false })
  await seed.setGlobalFlag(db, FLAG, true)
  user = await seed.createUser(db, { email: 'ada@example.com' })
  otherUser = await seed.createUser(db, { email: 'flagless@example.com' })
  await seed.setUserFlag(db, user, FLAG, true)
  const cred = await seed.createCredential(db, { userId: user })
  const badCred = await seed.createCredential(db, { userId: user, invalid: true })

  const cal = (externalId, extra = {}) => seed.createSelectedCalendar(db, { userId: user, externalId, credentialId: cred, ...extra })
  ids.main = await cal('ada@example.com')
  ids.mainForEventType = await cal('ada@example.com', { eventTypeId: 7 })
  ids.outlook = await cal('AAMkAD-outlook', { integration: 'office365_calendar' })
  ids.lark = await cal('lark-cal', { integration: 'lark_calendar' })
  ids.flagOff = await seed.createSelectedCalendar(db, { userId: otherUser, externalId: 'other@example.com' })
  ids.badCredential = await cal('bad-cred', { credentialId: badCred })
  ids.notSubscribed = await cal('not-subscribed')
  ids.neverSynced = await cal('never-synced')
  ids.failed = await cal('failed')
  ids.stale = await cal('stale')
  ids.narrowWindow = await cal('narrow-window')
  ids.expiredChannel = await cal('expired-channel')

  for (const id of [ids.main, ids.outlook, ids.lark, ids.flagOff, ids.badCredential]) await seed.markSynced(db, id)
  await seed.markSynced(db, ids.neverSynced, { syncedAt: null, windowStart: null })
  await seed.markSynced(db, ids.failed, { syncErrorAt: new Date(Date.now() + 1000) })
  const twoDaysAgo = new Date(Date.now() - 48 * HOUR)
  await seed.markSynced(db, ids.stale, { syncedAt: twoDaysAgo, subscribedAt: twoDaysAgo })
  await seed.markSynced(db, ids.narrowWindow, { windowStart: at(12), windowEnd: at(30) })
  await seed.markSynced(db, ids.expiredChannel, { channelExpiration: new Date(Date.now() - HOUR) })

  await seed.insertEvents(db, ids.main, [
    { start: at(8), end: at(9), summary: 'ends exactly at timeMin' },
    { start: at(10), end: at(11) },
    { start: at(11), end: at(11, 30), summary: 'touches the previous one' },
    { start: at(12), end: at(13), status: 'cancelled' },
    { start: at(14), end: at(15), status: 'tentative' },
    { start: at(16, 30), end: at(18), summary: 'runs past timeMax' },
    { start: at(17), end: at(18), summary: 'starts exactly at timeMax' },
  ])
  await seed.insertEvents(db, ids.outlook, [{ start: at(9, 15), end: at(9, 45) }])
  for (const id of [ids.lark, ids.flagOff, ids.badCredential, ids.stale, ids.failed, ids.narrowWindow]) {
    await seed.insertEvents(db, id, [{ start: at(10), end: at(11) }])
  }
})

test.after(async () => {
  await sync?.close()
  await env?.teardown()
})

const read = (args) => sync.getCachedAvailability({ ...range, ...args })

test('busy blocks respect half-open boundaries, merge touching events and skip cancelled ones', async () => {
  const res = await read({ selectedCalendarIds: [ids.main] })
  assert.deepEqual(res.served, [ids.main])
  assert.deepEqual(res.uncached, [])
  assert.deepEqual(
    res.busy.map((b) => [b.start, b.end]),
    [[iso(10), iso(11, 30)], [iso(14), iso(15)], [iso(16, 30), iso(17)]],
  )
  for (const b of res.busy) {
    assert.equal(b.selectedCalendarId, ids.main)
    assert.equal(b.source, 'google_calendar')
  }
})

test('an event ending exactly at timeMin or starting exactly at timeMax is not busy', async () => {
  const early = await read({ selectedCalendarIds: [ids.main], timeMin: iso(7), timeMax: iso(8) })
  assert.deepEqual(early.busy, [])
  const late = await read({ selectedCalendarIds: [ids.main], timeMin: iso(9), timeMax: iso(10) })
  assert.deepEqual(late.busy, [])
  const inside = await read({ selectedCalendarIds: [ids.main], timeMin: iso(8, 59), timeMax: iso(10, 1) })
  assert.deepEqual(inside.busy.map((b) => [b.start, b.end]), [[iso(8, 59), iso(9)], [iso(10), iso(10, 1)]])
})

test('several event-type rows for one calendar are served once, without duplicate blocks', async () => {
  const res = await read({ selectedCalendarIds: [ids.mainForEventType, ids.main, ids.outlook] })
  assert.deepEqual(res.served, [ids.mainForEventType, ids.main, ids.outlook])
  assert.deepEqual(res.uncached, [])
  const google = res.busy.filter((b) => b.source === 'google_calendar')
  assert.equal(google.length, 3, JSON.stringify(res.busy))
  assert.ok(google.every((b) => b.selectedCalendarId === ids.mainForEventType))
  assert.deepEqual(
    res.busy.map((b) => b.start),
    [iso(9, 15), iso(10), iso(14), iso(16, 30)],
    'sorted by start across calendars',
  )
  // The event-type row alone answers with the user-level row's events.
  const alone = await read({ selectedCalendarIds: [ids.mainForEventType] })
  assert.equal(alone.busy.length, 3)
})

test('by user: the user-level calendars, or those of one event type', async () => {
  const res = await read({ userId: user })
  assert.ok(res.served.includes(ids.main))
  assert.ok(!res.served.includes(ids.mainForEventType))
  assert.ok(res.served.includes(ids.outlook))
  assert.equal(res.busy.length, 4)
  const byType = await read({ userId: user, eventTypeId: 7 })
  assert.deepEqual(byType.served, [ids.mainForEventType])
  assert.deepEqual(byType.uncached, [])
  assert.equal(byType.busy.length, 3)
  const nobody = await read({ userId: 999999 })
  assert.deepEqual(nobody, { busy: [], served: [], uncached: [], servedBy: 'primary' })
})

test('every calendar the cache cannot answer for is listed with its reason, never as free', async () => {
  const missing = '00000000-0000-4000-8000-000000000000'
  const expected = {
    [missing]: 'not_found',
    [ids.lark]: 'unsupported_provider',
    [ids.flagOff]: 'flag_off',
    [ids.badCredential]: 'credential_invalid',
    [ids.notSubscribed]: 'not_subscribed',
    [ids.expiredChannel]: 'not_subscribed',
    [ids.neverSynced]: 'never_synced',
    [ids.failed]: 'sync_failed',
    [ids.stale]: 'stale',
    [ids.narrowWindow]: 'out_of_window',
  }
  const res = await read({ selectedCalendarIds: Object.keys(expected) })
  assert.deepEqual(res.served, [])
  assert.deepEqual(res.busy, [], 'no busy block may come from an unservable calendar')
  assert.deepEqual(Object.fromEntries(res.uncached.map((u) => [u.id, u.reason])), expected)
  // Inside its window the same calendar is served.
  const inWindow = await read({ selectedCalendarIds: [ids.narrowWindow], timeMin: iso(12), timeMax: iso(17) })
  assert.deepEqual(inWindow.served, [ids.narrowWindow])
})

test('a flag flip is honoured on the next read after the flag cache expires', async () => {
  const fresh = await calsync.CalendarSync.connect({ databaseUrl: env.url, flagCacheTtlMs: 0, syncOnRead: false })
  try {
    const before = await fresh.getCachedAvailability({ ...range, selectedCalendarIds: [ids.flagOff] })
    assert.deepEqual(before.uncached, [{ id: ids.flagOff, reason: 'flag_off' }])
    await seed.setUserFlag(db, otherUser, FLAG, true)
    const after = await fresh.getCachedAvailability({ ...range, selectedCalendarIds: [ids.flagOff] })
    assert.deepEqual(after.served, [ids.flagOff])
    assert.equal(after.busy.length, 1)
  } finally {
    await seed.setUserFlag(db, otherUser, FLAG, false)
    await fresh.close()
  }
})

test('invalid input is rejected with INVALID_ARGUMENT', async () => {
  const bad = [
    [{ selectedCalendarIds: [ids.main], timeMin: iso(10), timeMax: iso(10) }, /timeMax must be after timeMin/],
    [{ selectedCalendarIds: [ids.main], timeMin: iso(11), timeMax: iso(10) }, /timeMax must be after timeMin/],
    [{ selectedCalendarIds: [ids.main], timeMin: 'tomorrow', timeMax: iso(10) }, /timeMin must be an ISO-8601/],
    [{ selectedCalendarIds: [ids.main], timeMin: iso(9), timeMax: '2026-01-01T10:00:00' }, /timeMax must be an ISO-8601/],
    [{ selectedCalendarIds: [ids.main], userId: user, ...range }, /exactly one of/],
    [{ ...range }, /exactly one of/],
    [{ selectedCalendarIds: [], ...range }, /must not be empty/],
    [{ selectedCalendarIds: Array.from({ length: 21 }, (_, i) => `id-${i}`), ...range }, /at most 20/],
    [{ selectedCalendarIds: [''], ...range }, /non-empty strings/],
    [{ userId: -3, ...range }, /positive/],
    [{ selectedCalendarIds: [ids.main], eventTypeId: 7, ...range }, /eventTypeId goes with userId/],
    [{ selectedCalendarIds: [42], ...range }, /./],
    [{ selectedCalendarIds: [ids.main], timeMin: new Date(), timeMax: iso(10) }, /./],
  ]
  for (const [args, message] of bad) {
    await assert.rejects(sync.getCachedAvailability(args), { code: 'INVALID_ARGUMENT', message }, JSON.stringify(args))
  }
  await assert.rejects(sync.getCachedAvailability(), { code: 'INVALID_ARGUMENT' })
})

'use strict'
// Sync on read (SPEC §4): a read that finds a calendar it could serve after a sync schedules one
// background sync, deduplicated, and never waits for it.
const test = require('node:test')
const assert = require('node:assert/strict')
const { startStack } = require('./stack')
const { CalendarSync } = require('../calsync.js')

const HOUR = 3600 * 1000
const day0 = Math.ceil(Date.now() / (24 * HOUR)) * 24 * HOUR
const at = (h) => new Date(day0 + h * HOUR).toISOString()
const range = { timeMin: at(0), timeMax: at(24 * 35) }
const UTC_NOW = `(now() AT TIME ZONE 'UTC')`

let s
test.before(async () => {
  s = await startStack()
})
test.after(async () => {
  await s?.close()
})

async function subscribed() {
  const user = await s.googleUser()
  const cal = await s.googleCalendar(user)
  await s.emu.google.insertEvent(cal.externalId, { summary: 'm', start: { dateTime: at(5) }, end: { dateTime: at(6) } }, { notify: false })
  await s.sync.subscribe(cal.id)
  return cal
}
const read = (cal, sync = s.sync) => sync.getCachedAvailability({ selectedCalendarIds: [cal.id], ...range })
const reason = async (cal, sync) => (await read(cal, sync)).uncached[0]?.reason ?? 'served'
const lists = () => s.emu.counter('google.events.list.sequence')

for (const [name, breakIt, expected] of [
  ['stale', (id) => s.db.query(`UPDATE "SelectedCalendar" SET "syncedAt" = ${UTC_NOW} - interval '2 days', "syncSubscribedAt" = ${UTC_NOW} - interval '2 days' WHERE id = $1`, [id]), 'stale'],
  ['never synced', (id) => s.db.query('UPDATE "SelectedCalendar" SET "syncedAt" = NULL WHERE id = $1', [id]), 'never_synced'],
  ['out of window', (id) => s.db.query(`UPDATE "CalendarSyncState" SET "windowEnd" = ${UTC_NOW} + interval '10 days' WHERE "selectedCalendarId" = $1`, [id]), 'out_of_window'],
  ['sync failed, past its backoff', (id) => s.db.query(`UPDATE "SelectedCalendar" SET "syncedAt" = ${UTC_NOW} - interval '20 minutes', "syncErrorAt" = ${UTC_NOW} - interval '10 minutes', "syncErrorCount" = 3 WHERE id = $1`, [id]), 'sync_failed'],
]) {
  test(`${name}: concurrent reads schedule one background sync; the next read is served`, async () => {
    const cal = await subscribed()
    await breakIt(cal.id)
    s.emu.inject({ endpoint: 'google.events.list', latencyMs: 500 }) // the sync is still running while the reads arrive
    const before = lists()
    const answers = await Promise.all(Array.from({ length: 10 }, () => read(cal)))
    for (const a of answers) assert.deepEqual(a.uncached.map((u) => u.reason), [expected])
    await s.sync.settle()
    assert.equal(lists() - before, 1, 'one list sequence for ten reads')
    assert.equal(await reason(cal), 'served')
  })
}

test('a failure still within its backoff schedules nothing', async () => {
  const cal = await subscribed()
  await s.db.query(`UPDATE "SelectedCalendar" SET "syncErrorAt" = ${UTC_NOW}, "syncErrorCount" = 3 WHERE id = $1`, [cal.id])
  const before = lists()
  assert.equal(await reason(cal), 'sync_failed')
  await s.sync.settle()
  assert.equal(lists(), before)
})

test('the read does not wait for the sync it schedules', async () => {
  const cal = await subscribed()
  await s.db.query(`UPDATE "SelectedCalendar" SET "syncedAt" = NULL WHERE id = $1`, [cal.id])
  s.emu.inject({ endpoint: 'google.events.list', latencyMs: 1500 })
  const before = lists()
  assert.equal(await reason(cal), 'never_synced')
  // The sync is still waiting on Google: the next read sees the calendar unchanged.
  assert.equal(await reason(cal), 'never_synced')
  await s.sync.settle()
  assert.equal(lists() - before, 1)
  assert.equal(await reason(cal), 'served')
})

test('another process that read the same calendar within the minute does not sync it again', async () => {
  const cal = await subscribed()
  const other = await CalendarSync.connect(s.options)
  try {
    await s.db.query(`UPDATE "SelectedCalendar" SET "syncedAt" = NULL WHERE id = $1`, [cal.id])
    const before = lists()
    assert.equal(await reason(cal), 'never_synced')
    await s.sync.settle()
    await s.db.query(`UPDATE "SelectedCalendar" SET "syncedAt" = NULL WHERE id = $1`, [cal.id])
    assert.equal(await reason(cal, other), 'never_synced')
    await other.settle()
    assert.equal(lists() - before, 1)
  } finally {
    await other.close()
  }
})

test('syncOnRead: false schedules nothing', async () => {
  const cal = await subscribed()
  const quiet = await CalendarSync.connect({ ...s.options, syncOnRead: false })
  try {
    await s.db.query(`UPDATE "SelectedCalendar" SET "syncedAt" = NULL WHERE id = $1`, [cal.id])
    const before = lists()
    assert.equal(await reason(cal, quiet), 'never_synced')
    await quiet.settle()
    assert.equal(lists(), before)
  } finally {
    await quiet.close()
  }
})

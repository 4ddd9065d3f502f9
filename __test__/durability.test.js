'use strict'
// Durable before acknowledged (SPEC §6.10): a process that answered a notification and was killed
// before its sync finished loses nothing. Reads stop serving the old data once the grace period is
// over, and any other process re-drives the calendar.
const test = require('node:test')
const assert = require('node:assert/strict')
const { channelToken } = require('./helpers')
const path = require('node:path')
const { fork } = require('node:child_process')
const { startStack, spans } = require('./stack')

const HOUR = 3600 * 1000
const day0 = Math.ceil(Date.now() / (24 * HOUR)) * 24 * HOUR
const at = (h) => new Date(day0 + h * HOUR).toISOString()
const range = { timeMin: at(0), timeMax: at(24 * 7) }

let s
test.before(async () => {
  s = await startStack({ pendingGraceMs: 800, claimTtlMs: 1000 })
})
test.after(async () => {
  await s?.close()
})

function worker() {
  const child = fork(path.join(__dirname, 'fixtures', 'webhook-worker.js'), { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  let next = 0
  const call = (msg) => new Promise((resolve, reject) => {
    const id = ++next
    const onMessage = (m) => {
      if (m.id !== id) return
      child.off('message', onMessage)
      m.ok ? resolve(m) : reject(new Error(m.error))
    }
    child.on('message', onMessage)
    child.send({ ...msg, id })
  })
  return { child, call }
}

const pendingMarks = async (id) => (await s.db.query('SELECT 1 FROM "CalendarSyncPending" WHERE "selectedCalendarId" = $1', [id])).rows.length

test('a process killed after acknowledging a notification: reads report stale after the grace period, another process re-drives the change', async () => {
  const user = await s.googleUser()
  const cal = await s.googleCalendar(user)
  const sub = await s.sync.subscribe(cal.id)
  const { rows: [row] } = await s.db.query('SELECT "channelResourceId" FROM "SelectedCalendar" WHERE id = $1', [cal.id])
  const truth = () => spans(s.emu.google.freeBusyOf(cal.externalId, range.timeMin, range.timeMax))
  const read = () => s.sync.getCachedAvailability({ selectedCalendarIds: [cal.id], ...range })
  assert.deepEqual((await read()).served, [cal.id])

  // A meeting is booked at Google; its notification reaches an instance whose sync then hangs on
  // Google and is killed after the 200.
  await s.emu.google.insertEvent(cal.externalId, { summary: 'booked', start: { dateTime: at(30) }, end: { dateTime: at(31) } }, { notify: false })
  s.emu.inject({ endpoint: 'google.events.list', latencyMs: 10_000, times: 1 })
  const w = worker()
  try {
    await w.call({ type: 'connect', options: s.options })
    const answer = await w.call({
      type: 'google',
      request: { headers: { 'x-goog-channel-id': sub.channelId, 'x-goog-channel-token': channelToken(s.options.googleWebhookToken, sub.channelId), 'x-goog-resource-id': row.channelResourceId, 'x-goog-resource-state': 'exists', 'x-goog-message-number': '2' } },
    })
    assert.equal(answer.status, 200, answer.body)
    assert.equal(await pendingMarks(cal.id), 1, 'the change was recorded before the answer')
  } finally {
    w.child.kill('SIGKILL')
  }

  // Within the grace period the calendar is still served (the sync may be on its way) …
  const early = await read()
  assert.deepEqual(early.served, [cal.id])
  assert.notDeepEqual(spans(early.busy), truth(), 'the cache does not have the meeting yet')
  // … after it, never the old data: the calendar is stale (and sync-on-read repairs it).
  await new Promise((r) => setTimeout(r, 1000))
  assert.deepEqual((await read()).uncached.map((u) => u.reason), ['stale'])
  await s.sync.settle()
  assert.deepEqual(spans((await read()).busy), truth())
  assert.equal(await pendingMarks(cal.id), 0, 'the covering sync cleared the mark')
})

test('the cron re-drives a change whose acknowledging process died, without any read', async () => {
  const user = await s.googleUser()
  const cal = await s.googleCalendar(user)
  await s.sync.subscribe(cal.id)
  await s.emu.google.insertEvent(cal.externalId, { summary: 'booked', start: { dateTime: at(40) }, end: { dateTime: at(41) } }, { notify: false })
  // What a killed process leaves behind: the mark, no sync.
  await s.db.query(`INSERT INTO "CalendarSyncPending" VALUES ($1, (now() AT TIME ZONE 'UTC') - interval '10 seconds', (now() AT TIME ZONE 'UTC') - interval '10 seconds')`, [cal.id])
  const report = await s.sync.renewWatches({ resyncAfterMs: -1 })
  assert.ok(report.resynced >= 1, JSON.stringify(report))
  const res = await s.sync.getCachedAvailability({ selectedCalendarIds: [cal.id], ...range })
  assert.deepEqual(spans(res.busy), spans(s.emu.google.freeBusyOf(cal.externalId, range.timeMin, range.timeMax)))
  assert.equal(await pendingMarks(cal.id), 0)
})

test('a notification that cannot be recorded in time is answered 503, so the provider retries', async () => {
  const user = await s.googleUser()
  const cal = await s.googleCalendar(user)
  const sub = await s.sync.subscribe(cal.id)
  const { rows: [row] } = await s.db.query('SELECT "channelResourceId" FROM "SelectedCalendar" WHERE id = $1', [cal.id])
  const { Client } = require('pg')
  const { CalendarSync } = require('../calsync.js')
  // The mark cannot be written: its table is locked (a migration, say).
  const blocker = new Client({ connectionString: s.env.directUrl })
  await blocker.connect()
  const app = await CalendarSync.connect({ ...s.options, connectTimeoutMs: 1000 })
  try {
    await blocker.query('BEGIN')
    await blocker.query('LOCK TABLE "CalendarSyncPending" IN ACCESS EXCLUSIVE MODE')
    const answer = await app.handleGoogleWebhook({ headers: { 'x-goog-channel-id': sub.channelId, 'x-goog-channel-token': channelToken(s.options.googleWebhookToken, sub.channelId), 'x-goog-resource-id': row.channelResourceId, 'x-goog-resource-state': 'exists', 'x-goog-message-number': '3' } })
    assert.equal(answer.status, 503)
  } finally {
    await blocker.query('ROLLBACK').catch(() => {})
    await blocker.end()
    await app.close()
  }
})

test('settle() is bounded: it reports the syncs still running when its time runs out', async () => {
  const user = await s.googleUser()
  const cal = await s.googleCalendar(user)
  const sub = await s.sync.subscribe(cal.id)
  const { rows: [row] } = await s.db.query('SELECT "channelResourceId" FROM "SelectedCalendar" WHERE id = $1', [cal.id])
  s.emu.inject({ endpoint: 'google.events.list', latencyMs: 2500, times: 1 })
  const answer = await s.sync.handleGoogleWebhook({
    headers: { 'x-goog-channel-id': sub.channelId, 'x-goog-channel-token': channelToken(s.options.googleWebhookToken, sub.channelId), 'x-goog-resource-id': row.channelResourceId, 'x-goog-resource-state': 'exists', 'x-goog-message-number': '5' },
  })
  assert.equal(answer.status, 200)
  assert.deepEqual(await s.sync.settle({ timeoutMs: 100 }), { settled: false, running: 1 })
  await assert.rejects(s.sync.settle({ timeoutMs: -1 }), (e) => e.code === 'INVALID_ARGUMENT')
  assert.deepEqual(await s.sync.settle(), { settled: true, running: 0 })
})

'use strict'
// Two Node processes (for Google, then Outlook) handle notifications for the same calendars at the same time while the
// calendars keep changing: no duplicate rows, no lost change.
const test = require('node:test')
const assert = require('node:assert/strict')
const { channelToken } = require('./helpers')
const path = require('node:path')
const { fork } = require('node:child_process')
const { startStack, spans } = require('./stack')

const HOUR = 3600 * 1000
const day0 = Math.ceil(Date.now() / (24 * HOUR)) * 24 * HOUR
const at = (h) => new Date(day0 + h * HOUR).toISOString()

function worker() {
  const child = fork(path.join(__dirname, 'fixtures', 'notify-worker.js'), { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  let next = 0
  const waiting = new Map()
  child.on('message', (m) => {
    const w = waiting.get(m.id)
    waiting.delete(m.id)
    if (m.ok) w.resolve(m)
    else w.reject(new Error(m.error))
  })
  return {
    call: (msg) => new Promise((resolve, reject) => {
      const id = ++next
      waiting.set(id, { resolve, reject })
      child.send({ ...msg, id })
    }),
    child,
  }
}

let s
test.before(async () => {
  s = await startStack()
})
test.after(async () => {
  await s?.close()
})

test('Google: two processes handling the same notifications concurrently: no duplicates, no lost change', { timeout: 120_000 }, async () => {
  const g = s.emu.google
  const user = await s.googleUser()
  const cals = []
  for (let i = 0; i < 4; i++) {
    const cal = await s.googleCalendar(user)
    const sub = await s.sync.subscribe(cal.id)
    const { rows } = await s.db.query('SELECT "channelResourceId" FROM "SelectedCalendar" WHERE id = $1', [cal.id])
    cals.push({
      ...cal,
      events: [],
      headers: {
        'X-Goog-Channel-ID': sub.channelId, 'X-Goog-Channel-Token': channelToken('test-webhook-secret', sub.channelId),
        'X-Goog-Resource-ID': rows[0].channelResourceId, 'X-Goog-Resource-State': 'exists',
      },
    })
  }
  const workers = [worker(), worker()]
  try {
    await Promise.all(workers.map((w) => w.call({ type: 'connect', options: s.options })))
    const pending = []
    const lists = s.emu.counter('google.events.list.sequence')
    for (let round = 0; round < 12; round++) {
      for (const cal of cals) {
        // Changes the provider announces to "the app": here, to both processes at once.
        if (cal.events.length && round % 3 === 2) {
          const ev = cal.events.shift()
          await g.deleteEvent(cal.externalId, ev.id, { notify: false })
        } else if (cal.events.length && round % 3 === 1) {
          const ev = cal.events[0]
          cal.events[0] = await g.updateEvent(cal.externalId, ev.id, { start: { dateTime: at(round + 30) }, end: { dateTime: at(round + 31) } }, { notify: false })
        }
        cal.events.push(await g.insertEvent(cal.externalId, { start: { dateTime: at(round) }, end: { dateTime: at(round + 1) } }, { notify: false }))
      }
      for (const w of workers) pending.push(w.call({ type: 'notify', notifications: cals.map((c) => c.headers), copies: 3 }))
      await new Promise((r) => setTimeout(r, round % 2 ? 0 : 15))
    }
    const results = await Promise.all(pending)
    assert.ok(results.every((r) => r.statuses.every((st) => st === 200)), 'every notification answered 200')
    assert.ok(s.emu.counter('google.events.list.sequence') > lists, 'the workers synced')
  } finally {
    await Promise.all(workers.map((w) => w.call({ type: 'close' }).catch(() => {})))
  }
  const timeMin = at(0)
  const timeMax = at(24 * 7)
  for (const cal of cals) {
    const res = await s.sync.getCachedAvailability({ selectedCalendarIds: [cal.id], timeMin, timeMax })
    assert.deepEqual(res.uncached, [])
    assert.deepEqual(spans(res.busy), spans(g.freeBusyOf(cal.externalId, timeMin, timeMax)), `calendar ${cal.externalId}`)
    const { rows } = await s.db.query(
      `SELECT count(*)::int AS n, count(DISTINCT "externalId")::int AS d FROM "CalendarCacheEvent" WHERE "selectedCalendarId" = $1`, [cal.id])
    const live = [...g.calendar(cal.externalId).events.values()].filter((e) => e.status !== 'cancelled').length
    assert.equal(rows[0].n, rows[0].d, 'no duplicate rows')
    assert.equal(rows[0].n, live, 'exactly the live events are cached')
  }
})

test('Outlook: two processes handling the same notifications concurrently: no duplicates, no lost change', { timeout: 120_000 }, async () => {
  const m = s.emu.microsoft
  const user = await s.microsoftUser()
  const local = (h) => at(h).slice(0, 19)
  const cals = []
  for (let i = 0; i < 4; i++) {
    const cal = await s.outlookCalendar(user)
    const sub = await s.sync.subscribe(cal.id)
    const body = JSON.stringify({ value: [{ subscriptionId: sub.channelId, clientState: 'test-ms-client-state', changeType: 'updated' }] })
    cals.push({ ...cal, events: [], notification: { body } })
  }
  const workers = [worker(), worker()]
  try {
    await Promise.all(workers.map((w) => w.call({ type: 'connect', options: s.options })))
    const pending = []
    for (let round = 0; round < 12; round++) {
      for (const cal of cals) {
        if (cal.events.length && round % 3 === 2) {
          await m.deleteEvent(cal.externalId, cal.events.shift().id, { notify: false })
        } else if (cal.events.length && round % 3 === 1) {
          const ev = cal.events[0]
          cal.events[0] = await m.updateEvent(cal.externalId, ev.id, { start: { dateTime: local(round + 30), timeZone: 'UTC' }, end: { dateTime: local(round + 31), timeZone: 'UTC' } }, { notify: false })
        }
        cal.events.push(await m.insertEvent(cal.externalId, { start: { dateTime: local(round), timeZone: 'UTC' }, end: { dateTime: local(round + 1), timeZone: 'UTC' } }, { notify: false }))
      }
      for (const w of workers) pending.push(w.call({ type: 'notify', notifications: cals.map((c) => c.notification), copies: 3 }))
      await new Promise((r) => setTimeout(r, round % 2 ? 0 : 15))
    }
    const results = await Promise.all(pending)
    assert.ok(results.every((r) => r.statuses.every((st) => st === 202)), 'every notification answered 202')
  } finally {
    await Promise.all(workers.map((w) => w.call({ type: 'close' }).catch(() => {})))
  }
  const timeMin = at(0)
  const timeMax = at(24 * 7)
  for (const cal of cals) {
    const res = await s.sync.getCachedAvailability({ selectedCalendarIds: [cal.id], timeMin, timeMax })
    assert.deepEqual(res.uncached, [])
    assert.deepEqual(spans(res.busy), spans(m.scheduleOf(cal.externalId, timeMin, timeMax)), `calendar ${cal.externalId}`)
    const { rows } = await s.db.query(
      `SELECT count(*)::int AS n, count(DISTINCT "externalId")::int AS d FROM "CalendarCacheEvent" WHERE "selectedCalendarId" = $1`, [cal.id])
    assert.equal(rows[0].n, rows[0].d, 'no duplicate rows')
    assert.equal(rows[0].n, m.calendar(cal.externalId).events.size, 'exactly the live events are cached')
  }
})

'use strict'
// The cache keeps serving as time passes (SPEC §4): a simulated year, one day at a time, with the
// daily cron (renewWatches, cleanup) and changes at the providers. Every day, Cal.com's slot query
// ([start of today − 11 h, + 35 days)) is served for every calendar and equals the provider's
// free/busy. calsync's clock and the emulator's are shifted together.
const test = require('node:test')
const assert = require('node:assert/strict')
const { startStack, spans } = require('./stack')
const { shiftClockForTesting } = require('../calsync.js')

const HOUR = 3600 * 1000
const DAY = 24 * HOUR
const DAYS = Number(process.env.CALSYNC_SIMULATED_DAYS || 365)

let s
test.before(async () => {
  s = await startStack()
})
test.after(async () => {
  shiftClockForTesting(0)
  s?.emu.setClock(0)
  await s?.close()
})

function setDay(day) {
  shiftClockForTesting(day * DAY)
  s.emu.setClock(day * DAY)
}

test(`${DAYS} simulated days: the slot query is served every day and equals free/busy`, { timeout: 900_000 }, async () => {
  const base = Math.floor(Date.now() / DAY) * DAY // today 00:00 UTC, real time
  const iso = (ms) => new Date(ms).toISOString()
  const local = (ms) => iso(ms).slice(0, 19)

  const gUser = await s.googleUser()
  const gCal = await s.googleCalendar(gUser, { timeZone: 'America/Los_Angeles' })
  await s.emu.google.insertEvent(gCal.externalId, {
    summary: 'standup', start: { dateTime: iso(base + 17 * HOUR), timeZone: 'America/Los_Angeles' }, end: { dateTime: iso(base + 17.5 * HOUR), timeZone: 'America/Los_Angeles' },
    recurrence: ['RRULE:FREQ=DAILY'],
  }, { notify: false })
  const mUser = await s.microsoftUser()
  const mCal = await s.outlookCalendar(mUser)
  await s.emu.microsoft.insertEvent(mCal.externalId, {
    subject: 'weekly', start: { dateTime: local(base + 13 * HOUR), timeZone: 'UTC' }, end: { dateTime: local(base + 14 * HOUR), timeZone: 'UTC' },
    rrule: 'RRULE:FREQ=WEEKLY',
  }, { notify: false })
  await s.sync.subscribe(gCal.id)
  await s.sync.subscribe(mCal.id)

  const failures = []
  for (let day = 0; day < DAYS; day++) {
    setDay(day)
    // The simulated instant: today's time of day, `day` days on. (A fixed 09:00 made the test fail
    // whenever it ran after 10:00 UTC: the hour-long changes placed from 09:00 had ended by the
    // shifted clock, and cleanup rightly dropped them, while the oracle was clipped from 09:00.)
    const now = Date.now() + day * DAY
    if (day % 5 === 0) {
      // A change at each provider, announced by a notification, a week or so ahead.
      const at = now + (7 + (day % 11)) * DAY
      await s.emu.google.insertEvent(gCal.externalId, { summary: `d${day}`, start: { dateTime: iso(at) }, end: { dateTime: iso(at + HOUR) } })
      await s.emu.microsoft.insertEvent(mCal.externalId, { subject: `d${day}`, start: { dateTime: local(at + 2 * HOUR), timeZone: 'UTC' }, end: { dateTime: local(at + 3 * HOUR), timeZone: 'UTC' } })
      await s.sync.settle()
    }
    await s.sync.renewWatches()
    await s.sync.cleanup()
    const timeMin = iso(base + day * DAY - 11 * HOUR)
    const timeMax = iso(base + day * DAY + 35 * DAY)
    const res = await s.sync.getCachedAvailability({ selectedCalendarIds: [gCal.id, mCal.id], timeMin, timeMax })
    if (res.uncached.length) {
      failures.push(`day ${day}: ${JSON.stringify(res.uncached)}`)
      continue
    }
    // Time before now is never bookable: compare from now on (the rule for the past part of a range).
    const from = Math.max(Date.parse(timeMin), now)
    const clip = (list) => spans(list).map(([a, b]) => [Math.max(a, from), b]).filter(([a, b]) => b > a)
    const got = (id) => clip(res.busy.filter((b) => b.selectedCalendarId === id))
    const google = clip(s.emu.google.freeBusyOf(gCal.externalId, timeMin, timeMax))
    const outlook = clip(s.emu.microsoft.scheduleOf(mCal.externalId, timeMin, timeMax))
    if (JSON.stringify(got(gCal.id)) !== JSON.stringify(google)) failures.push(`day ${day}: Google differs`)
    if (JSON.stringify(got(mCal.id)) !== JSON.stringify(outlook)) failures.push(`day ${day}: Outlook differs`)
    if (failures.length > 5) break
  }
  assert.deepEqual(failures, [])
  const { rows } = await s.db.query('SELECT "selectedCalendarId", "windowEnd" FROM "CalendarSyncState"')
  for (const r of rows) {
    assert.ok(r.windowEnd.getTime() > base + (DAYS - 1) * DAY + 90 * DAY, 'the window slid forward')
  }
})

'use strict'
// Parity: for 200 seeded random Outlook calendars, the cached busy list equals the emulator's
// getSchedule answer, after a full delta sync and after incremental ones driven by notifications.
const test = require('node:test')
const assert = require('node:assert/strict')
const { startStack, assertParity } = require('./stack')
const { prng } = require('./helpers')
const { outlookEvent: randomEvent, OUTLOOK_ZONES: ZONES } = require('./random-events')

const HOUR = 3600 * 1000
const DAY = 24 * HOUR
const CALENDARS = 200

const day0 = Math.ceil(Date.now() / DAY) * DAY
const wall = (ms) => new Date(ms).toISOString().slice(0, 19) + '.0000000'

let s
test.before(async () => {
  s = await startStack({}, { microsoftOptions: { waitForSync: true } })
})
test.after(async () => {
  await s?.close()
})

test(`cache equals Outlook getSchedule for ${CALENDARS} random calendars, after full and incremental syncs`, { timeout: 600_000 }, async () => {
  const rnd = prng(Number(process.env.PARITY_SEED ?? 11235813))
  const m = s.emu.microsoft
  const user = await s.microsoftUser()
  const cals = []
  for (let i = 0; i < CALENDARS; i++) {
    const tz = ZONES[i % ZONES.length]
    const cal = await s.outlookCalendar(user)
    const events = []
    const n = Math.floor(rnd() * 13)
    for (let k = 0; k < n; k++) events.push(await m.insertEvent(cal.externalId, randomEvent(rnd, tz), { notify: false }))
    await exceptions(rnd, cal, events, false)
    cals.push({ ...cal, tz, events })
  }
  for (const cal of cals) await s.sync.subscribe(cal.id)
  await compareAll(cals, 'after the full sync')

  for (const cal of cals) {
    const live = cal.events.filter((e) => m.calendar(cal.externalId).events.has(e.id))
    const r = rnd()
    if (live.length && r < 0.3) {
      const e = live[Math.floor(rnd() * live.length)]
      const shift = (Math.floor(rnd() * 8) - 4) * HOUR
      const move = (t) => ({ dateTime: wall(Date.parse(t.dateTime.slice(0, 19) + 'Z') + shift), timeZone: t.timeZone })
      await m.updateEvent(cal.externalId, e.id, e.isAllDay ? { showAs: e.showAs === 'free' ? 'busy' : 'free' } : { start: move(e.start), end: move(e.end) })
    } else if (live.length && r < 0.45) {
      await m.deleteEvent(cal.externalId, live[Math.floor(rnd() * live.length)].id)
    } else if (r < 0.65) {
      cal.events.push(await m.insertEvent(cal.externalId, randomEvent(rnd, cal.tz)))
    } else if (r < 0.8) {
      await exceptions(rnd, cal, live, true)
    } else if (live.length && r < 0.9) {
      await m.updateEvent(cal.externalId, live[0].id, { isCancelled: true })
    }
  }
  await s.sync.settle()
  await compareAll(cals, 'after incremental syncs')
})

async function exceptions(rnd, cal, events, notify) {
  const m = s.emu.microsoft
  const store = m.calendar(cal.externalId)
  for (const e of events) {
    const master = store.events.get(e.id)
    if (!master?.rrule || rnd() < 0.4) continue
    const occ = m.occurrences(store, master, day0 + 60 * DAY)
    if (occ.length < 2) continue
    const victim = occ[Math.floor(rnd() * occ.length)]
    const r = rnd()
    if (r < 0.4) {
      await m.updateOccurrence(cal.externalId, e.id, victim.originalStart, { deleted: true }, { notify })
    } else if (r < 0.7 && !victim.isAllDay) {
      const move = (t) => ({ dateTime: wall(Date.parse(t.dateTime.slice(0, 19) + 'Z') + 2 * HOUR), timeZone: t.timeZone })
      await m.updateOccurrence(cal.externalId, e.id, victim.originalStart, { start: move(victim.start), end: move(victim.end) }, { notify })
    } else {
      await m.updateOccurrence(cal.externalId, e.id, victim.originalStart, { showAs: victim.showAs === 'free' ? 'oof' : 'free' }, { notify })
    }
  }
}

function compareAll(cals, when) {
  return assertParity(s, cals, (id, a, b) => s.emu.microsoft.scheduleOf(id, a, b), when)
}

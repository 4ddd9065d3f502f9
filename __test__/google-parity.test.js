'use strict'
// Parity: for 200 seeded random calendars, the cached busy list equals the emulator's freeBusy
// answer (the provider's own), after a full sync and after incremental syncs driven by webhooks.
const test = require('node:test')
const assert = require('node:assert/strict')
const { startStack, assertParity } = require('./stack')
const { prng } = require('./helpers')
const { googleEvent: randomEvent, GOOGLE_ZONES: ZONES } = require('./random-events')

const HOUR = 3600 * 1000
const DAY = 24 * HOUR
const CALENDARS = 200

const day0 = Math.ceil(Date.now() / DAY) * DAY

let s
test.before(async () => {
  s = await startStack()
})
test.after(async () => {
  await s?.close()
})

test(`cache equals Google free/busy for ${CALENDARS} random calendars, after full and incremental syncs`, { timeout: 600_000 }, async () => {
  const rnd = prng(Number(process.env.PARITY_SEED ?? 20261123))
  const g = s.emu.google
  const user = await s.googleUser()
  const cals = []
  for (let i = 0; i < CALENDARS; i++) {
    const tz = ZONES[i % ZONES.length]
    const cal = await s.googleCalendar(user, { timeZone: tz })
    const events = []
    const n = Math.floor(rnd() * 13)
    for (let k = 0; k < n; k++) events.push(await g.insertEvent(cal.externalId, randomEvent(rnd, tz), { notify: false }))
    await addExceptions(rnd, cal, events)
    for (const ev of events) if (rnd() < 0.05) await g.deleteEvent(cal.externalId, ev.id, { notify: false })
    cals.push({ ...cal, tz, events })
  }
  for (const cal of cals) await s.sync.subscribe(cal.id)
  await compareAll(cals, 'after the full sync')

  // Changes announced by webhooks: incremental syncs.
  for (const cal of cals) {
    const live = cal.events.filter((e) => g.calendar(cal.externalId).events.get(e.id)?.status !== 'cancelled')
    const r = rnd()
    if (live.length && r < 0.3) {
      const ev = live[Math.floor(rnd() * live.length)]
      if (ev.start.dateTime) {
        const shift = (Math.floor(rnd() * 8) - 4) * HOUR
        await g.updateEvent(cal.externalId, ev.id, {
          start: { dateTime: new Date(Date.parse(ev.start.dateTime) + shift).toISOString(), timeZone: cal.tz },
          end: { dateTime: new Date(Date.parse(ev.end.dateTime) + shift).toISOString(), timeZone: cal.tz },
        })
      } else {
        await g.updateEvent(cal.externalId, ev.id, { transparency: ev.transparency === 'transparent' ? 'opaque' : 'transparent' })
      }
    } else if (live.length && r < 0.5) {
      await g.deleteEvent(cal.externalId, live[Math.floor(rnd() * live.length)].id)
    } else if (r < 0.7) {
      cal.events.push(await g.insertEvent(cal.externalId, randomEvent(rnd, cal.tz)))
    } else if (r < 0.85) {
      await addExceptions(rnd, cal, live, true)
    }
  }
  await compareAll(cals, 'after incremental syncs')
})

async function addExceptions(rnd, cal, events, notify = false) {
  const g = s.emu.google
  const store = g.calendar(cal.externalId)
  for (const ev of events) {
    if (!ev.recurrence || rnd() < 0.4) continue
    const occ = g.occurrences(store, store.events.get(ev.id), day0 + 60 * DAY)
    if (occ.length < 2) continue
    const victim = occ[Math.floor(rnd() * occ.length)]
    const original = victim.originalStartTime.dateTime ?? victim.originalStartTime.date
    if (rnd() < 0.5) {
      await g.updateInstance(cal.externalId, ev.id, original, { status: 'cancelled' }, { notify })
    } else if (victim.start.dateTime) {
      const shift = 2 * HOUR
      await g.updateInstance(cal.externalId, ev.id, original, {
        start: { dateTime: new Date(Date.parse(victim.start.dateTime) + shift).toISOString(), timeZone: cal.tz },
        end: { dateTime: new Date(Date.parse(victim.end.dateTime) + shift).toISOString(), timeZone: cal.tz },
      }, { notify })
    } else {
      await g.updateInstance(cal.externalId, ev.id, original, { transparency: 'transparent' }, { notify })
    }
  }
}

function compareAll(cals, when) {
  return assertParity(s, cals, (id, a, b) => s.emu.google.freeBusyOf(id, a, b), when)
}

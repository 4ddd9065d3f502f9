'use strict'
// Data real providers send (SPEC §5): strings Postgres text cannot hold never poison a calendar.
// Google returns U+0000 in real events (the iCalUID of invitations that came from Exchange); a
// string cut in the middle of a UTF-16 pair reaches the JSON as a lone surrogate escape. Both are
// made storable once, in the mapping, and the calendar keeps parity through webhook, full and
// staged syncs, then keeps syncing.
const test = require('node:test')
const assert = require('node:assert/strict')
const { startStack, assertParity } = require('./stack')
const { calsync } = require('./helpers')

const HOUR = 3600 * 1000
const day0 = Math.ceil(Date.now() / (24 * HOUR)) * 24 * HOUR
const at = (h) => new Date(day0 + h * HOUR).toISOString()
const NUL = '\u0000'

let s
test.before(async () => {
  s = await startStack()
})
test.after(async () => s?.close())

const googleParity = (cals, when) => assertParity(s, cals, (id, a, b) => s.emu.google.freeBusyOf(id, a, b), when)
const graphParity = (cals, when) => assertParity(s, cals, (id, a, b) => s.emu.microsoft.scheduleOf(id, a, b), when)

test('Google: an invitation whose iCalUID and summary carry NUL, by webhook, full and staged syncs, then an ordinary change', async () => {
  const user = await s.googleUser()
  const cal = await s.googleCalendar(user)
  await s.sync.subscribe(cal.id)
  // Delivered by webhook (the stack waits for the sync).
  await s.emu.google.insertEvent(cal.externalId, {
    summary: `Weekly ${NUL}sync`, description: `from Exchange${NUL}`, location: `Room${NUL}1`,
    iCalUID: `040000008200E00074C5B7101A82E008${NUL}@outlook.com`,
    start: { dateTime: at(9) }, end: { dateTime: at(10) },
  })
  // A recurring series whose every occurrence carries NUL, and a title cut inside an emoji.
  await s.emu.google.insertEvent(cal.externalId, {
    summary: `stand-up ${NUL}\ud83d`, iCalUID: `series${NUL}@outlook.com`,
    start: { dateTime: at(11) }, end: { dateTime: at(11.5) }, recurrence: ['RRULE:FREQ=DAILY;COUNT=20'],
  })
  await googleParity([cal], 'after the webhook sync')
  const { rows } = await s.db.query('SELECT summary, "iCalUID" FROM "CalendarCacheEvent" WHERE "selectedCalendarId" = $1 ORDER BY start LIMIT 2', [cal.id])
  assert.equal(rows[0].summary, 'Weekly sync', 'NUL dropped, the rest kept')
  assert.equal(rows[0].iCalUID, '040000008200E00074C5B7101A82E008@outlook.com')
  assert.equal(rows[1].summary, 'stand-up \ufffd', 'half a UTF-16 pair becomes U+FFFD')

  const full = await s.sync.syncCalendar(cal.id, { full: true })
  assert.equal(full.full, true)
  await googleParity([cal], 'after a full sync')

  // Staged: pages beyond syncBufferEvents go through the stage table (COPY) first.
  const small = await calsync.CalendarSync.connect({ ...s.options, syncBufferEvents: 3, googlePageSize: 2 })
  try {
    const staged = await small.syncCalendar(cal.id, { full: true })
    assert.ok(staged.pages > 3)
  } finally {
    await small.close()
  }
  await googleParity([cal], 'after a staged full sync')

  // The calendar keeps syncing: a later ordinary change is served.
  await s.emu.google.insertEvent(cal.externalId, { summary: 'plain', start: { dateTime: at(14) }, end: { dateTime: at(15) } })
  await googleParity([cal], 'after a later change')
  const read = await s.sync.getCachedAvailability({ selectedCalendarIds: [cal.id], timeMin: at(0), timeMax: at(24) })
  assert.deepEqual(read.served, [cal.id])
})

test('Outlook: an event whose subject, preview and location carry NUL keeps parity', async () => {
  const user = await s.microsoftUser()
  const cal = await s.outlookCalendar(user)
  await s.sync.subscribe(cal.id)
  const ms = (h) => ({ dateTime: at(h).slice(0, 19), timeZone: 'UTC' })
  await s.emu.microsoft.insertEvent(cal.externalId, { subject: `a${NUL}b`, bodyPreview: `${NUL}`, location: { displayName: `x${NUL}` }, start: ms(9), end: ms(10) }, { notify: false })
  await s.sync.syncCalendar(cal.id)
  await graphParity([cal], 'after an incremental sync')
  await s.sync.syncCalendar(cal.id, { full: true })
  await graphParity([cal], 'after a full sync')
  const { rows } = await s.db.query('SELECT summary, location FROM "CalendarCacheEvent" WHERE "selectedCalendarId" = $1', [cal.id])
  assert.deepEqual(rows, [{ summary: 'ab', location: 'x' }])
})

'use strict'
// Two-way sync (SPEC §5): changes of the app's own bookings (iCalUID "<uid>@cal.com") that syncs
// find at Google or Outlook reach the outbox in the sync's transaction, and the app gets them at
// least once — through takeBookingChanges / ackBookingChanges and the onBookingChanges callback —
// whether the sync ran in the background after a webhook, as a full resync, or the taker died.
const test = require('node:test')
const assert = require('node:assert/strict')
const { startStack } = require('./stack')
const { until } = require('./helpers')
const { Worker } = require('./fault-matrix')
const seed = require('../dev/seed')

const HOUR = 3600 * 1000
const day0 = Math.ceil(Date.now() / (24 * HOUR)) * 24 * HOUR // tomorrow 00:00 UTC
const at = (h) => new Date(day0 + h * HOUR).toISOString()
const timed = (startH, endH, extra = {}) => ({ summary: 'booking', start: { dateTime: at(startH) }, end: { dateTime: at(endH) }, ...extra })
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const brief = (list) => list.map(({ uid, start, end, cancelled }) => ({ uid, start, end, cancelled }))

let s
test.before(async () => {
  // Webhooks answer at once and sync in the background, as in production.
  s = await startStack({}, { googleOptions: {}, microsoftOptions: {} })
  await seed.setGlobalFlag(s.db, 'calendar-subscription-sync', true)
})
test.after(async () => {
  s?.sync.onBookingChanges(null)
  await s?.close()
})

async function bookingUser(kind = 'google') {
  const user = kind === 'google' ? await s.googleUser() : await s.microsoftUser()
  await seed.setUserFlag(s.db, user.userId, 'calendar-subscription-sync', true)
  const cal = kind === 'google' ? await s.googleCalendar(user) : await s.outlookCalendar(user)
  await s.sync.subscribe(cal.id)
  return { user, cal }
}

/** Takes and acknowledges everything waiting (held changes included, once their hold ends). */
async function drain() {
  const all = []
  for (;;) {
    const batch = await s.sync.takeBookingChanges({ limit: 1000, holdMs: 1 })
    if (!batch.length) return all
    all.push(...batch)
    await s.sync.ackBookingChanges(batch.map((c) => c.id))
  }
}

test('a booking moved in Google reaches the callback and the outbox from a background sync', async () => {
  const { user, cal } = await bookingUser()
  await drain()
  const batches = []
  s.sync.onBookingChanges((changes) => batches.push(changes))
  const ev = await s.emu.google.insertEvent(cal.externalId, timed(9, 10, { iCalUID: 'bk-move@cal.com' }))
  await s.emu.google.insertEvent(cal.externalId, timed(11, 12)) // not a booking
  await until('the callback', () => batches.length > 0)
  let [change] = batches.flat()
  assert.deepEqual(brief([change]), [{ uid: 'bk-move', start: at(9), end: at(10), cancelled: false }])
  assert.equal(change.selectedCalendarId, cal.id)
  assert.equal(change.userId, user.userId)
  assert.equal(change.integration, 'google_calendar')
  assert.equal(change.externalId, ev.id)
  assert.equal(change.deliveries, 1)
  // Held for the callback's taker: nobody else gets it meanwhile.
  assert.deepEqual(await s.sync.takeBookingChanges(), [])
  assert.equal(await s.sync.ackBookingChanges([change.id]), 1)

  // The host moves it: the new times arrive the same way.
  await s.emu.google.updateEvent(cal.externalId, ev.id, { start: { dateTime: at(14) }, end: { dateTime: at(15) } })
  await until('the move', () => batches.flat().length > 1)
  change = batches.flat()[1]
  assert.deepEqual(brief([change]), [{ uid: 'bk-move', start: at(14), end: at(15), cancelled: false }])
  await s.sync.ackBookingChanges([change.id])
  // An edit that does not move it (a new title) is no booking change.
  await s.emu.google.updateEvent(cal.externalId, ev.id, { summary: 'renamed' })
  assert.equal((await s.sync.settle()).settled, true)
  s.sync.onBookingChanges(null)
  assert.deepEqual(await drain(), [])
})

test('a Google deletion carries no iCalUID (as Google sends it); the cached row names the booking', async () => {
  const { cal } = await bookingUser()
  const ev = await s.emu.google.insertEvent(cal.externalId, timed(9, 10, { iCalUID: 'bk-del@cal.com' }))
  await s.sync.settle()
  await drain()
  // What Google's incremental list says of a deleted event: its id and status, nothing else.
  const token = (await s.db.query('SELECT "syncToken" FROM "SelectedCalendar" WHERE id = $1', [cal.id])).rows[0].syncToken
  await s.emu.google.deleteEvent(cal.externalId, ev.id, { notify: false })
  const listed = await fetch(`${s.emu.url}/calendar/v3/calendars/${encodeURIComponent(cal.externalId)}/events?syncToken=${encodeURIComponent(token)}`,
    { headers: { authorization: `Bearer ${(await s.db.query('SELECT key FROM "Credential" WHERE id = (SELECT "credentialId" FROM "SelectedCalendar" WHERE id = $1)', [cal.id])).rows[0].key.access_token}` } })
  const item = (await listed.json()).items.find((i) => i.id === ev.id)
  assert.deepEqual(Object.keys(item).sort(), ['etag', 'id', 'kind', 'status'])
  const report = await s.sync.syncCalendar(cal.id)
  assert.deepEqual(report.bookingChanges, [{ uid: 'bk-del', cancelled: true }])
  assert.deepEqual(brief(await drain()), [{ uid: 'bk-del', start: undefined, end: undefined, cancelled: true }])
})

test('Outlook bookings are matched through Cal.com\'s BookingReference (Graph\'s iCalUId is Exchange\'s own); a removal and a move are reported', async () => {
  const { user, cal } = await bookingUser('microsoft')
  const ms = (h) => ({ dateTime: at(h).slice(0, 19), timeZone: 'UTC' })
  // As Graph does, the emulator refuses an iCalUId chosen by the caller.
  await assert.rejects(s.emu.microsoft.insertEvent(cal.externalId, { subject: 'b', iCalUId: 'x@cal.com', start: ms(9), end: ms(10) }), /read-only/)
  const moved = await s.emu.microsoft.insertEvent(cal.externalId, { subject: 'b', start: ms(9), end: ms(10) }, { notify: false })
  const gone = await s.emu.microsoft.insertEvent(cal.externalId, { subject: 'b', start: ms(11), end: ms(12) }, { notify: false })
  const other = await s.emu.microsoft.insertEvent(cal.externalId, { subject: 'not a booking', start: ms(13), end: ms(14) }, { notify: false })
  const ref = (uid, ev, extra = {}) => seed.createBooking(s.db, { uid, userId: user.userId, integration: 'office365_calendar', eventId: ev.id, credentialId: user.credentialId, start: at(9), end: at(10), ...extra })
  await ref('bk-ms-1', moved)
  await ref('bk-ms-2', gone)
  await ref('bk-ms-old', other, { deleted: true }) // a reference Cal.com marked deleted matches nothing
  await s.sync.syncCalendar(cal.id)
  await drain()
  await s.emu.microsoft.updateEvent(cal.externalId, moved.id, { start: ms(13), end: ms(14) }, { notify: false })
  await s.emu.microsoft.updateEvent(cal.externalId, other.id, { start: ms(15), end: ms(16) }, { notify: false })
  await s.emu.microsoft.deleteEvent(cal.externalId, gone.id) // the notification syncs in the background
  await until('both changes', async () => (await s.db.query('SELECT count(*)::int AS n FROM "CalendarSyncBookingChange" WHERE "selectedCalendarId" = $1', [cal.id])).rows[0].n === 2)
  assert.equal((await s.sync.settle()).settled, true)
  assert.deepEqual(brief(await drain()).sort((a, b) => a.uid.localeCompare(b.uid)), [
    { uid: 'bk-ms-1', start: at(13), end: at(14), cancelled: false },
    { uid: 'bk-ms-2', start: undefined, end: undefined, cancelled: true },
  ])
})

test('a full resync reports what it changed, by comparing the old rows with the new', async () => {
  const { cal } = await bookingUser()
  const a = await s.emu.google.insertEvent(cal.externalId, timed(9, 10, { iCalUID: 'bk-full-a@cal.com' }), { notify: false })
  const b = await s.emu.google.insertEvent(cal.externalId, timed(11, 12, { iCalUID: 'bk-full-b@cal.com' }), { notify: false })
  await s.emu.google.insertEvent(cal.externalId, timed(13, 14, { iCalUID: 'bk-full-c@cal.com' }), { notify: false })
  await s.sync.syncCalendar(cal.id)
  await drain()
  await s.emu.google.updateEvent(cal.externalId, a.id, { start: { dateTime: at(16) }, end: { dateTime: at(17) } }, { notify: false })
  await s.emu.google.deleteEvent(cal.externalId, b.id, { notify: false })
  s.emu.google.expireSyncTokens(cal.externalId) // the next sync is full (410)
  const report = await s.sync.syncCalendar(cal.id)
  assert.equal(report.full, true)
  assert.deepEqual(report.bookingChanges.sort((x, y) => x.uid.localeCompare(y.uid)), [
    { uid: 'bk-full-a', start: at(16), end: at(17), cancelled: false },
    { uid: 'bk-full-b', cancelled: true },
  ])
  assert.equal((await drain()).length, 2, 'and the outbox has them; the unchanged booking is not news')
})

test('a taker killed before acknowledging: the next take gets the change again; changes of one event coalesce', async () => {
  const { cal } = await bookingUser()
  const ev = await s.emu.google.insertEvent(cal.externalId, timed(9, 10, { iCalUID: 'bk-kill@cal.com' }), { notify: false })
  await s.sync.syncCalendar(cal.id)
  const worker = new Worker(s.options)
  await worker.ready
  const { changes } = await worker.call({ type: 'take', options: { holdMs: 400 } })
  assert.deepEqual(brief(changes), [{ uid: 'bk-kill', start: at(9), end: at(10), cancelled: false }])
  worker.child.kill('SIGKILL')
  await worker.exited
  assert.deepEqual(await s.sync.takeBookingChanges(), [], 'still held by the dead taker')
  await sleep(450)
  const [again] = await s.sync.takeBookingChanges({ holdMs: 60_000 })
  assert.equal(again.id, changes[0].id)
  assert.equal(again.deliveries, 2)

  // Moved twice more before anyone acknowledges: one change, the latest state, under a new id; the
  // old id acknowledges nothing. The newer state keeps the hold the older one is under: no second
  // taker can apply it before the first has applied (or given up on) the older one.
  await s.emu.google.updateEvent(cal.externalId, ev.id, { start: { dateTime: at(10) }, end: { dateTime: at(11) } }, { notify: false })
  await s.sync.syncCalendar(cal.id)
  await s.emu.google.updateEvent(cal.externalId, ev.id, { start: { dateTime: at(12) }, end: { dateTime: at(13) } }, { notify: false })
  await s.sync.syncCalendar(cal.id)
  assert.deepEqual(await s.sync.takeBookingChanges(), [], 'the newer state waits while the older one is held')
  assert.equal(await s.sync.ackBookingChanges([again.id]), 0)
  await s.db.query('UPDATE "CalendarSyncBookingChange" SET "takenUntil" = now() - interval \'1 second\' WHERE "externalId" = $1', [ev.id]) // the hold runs out
  const latest = await s.sync.takeBookingChanges()
  assert.deepEqual(brief(latest), [{ uid: 'bk-kill', start: at(12), end: at(13), cancelled: false }])
  assert.notEqual(latest[0].id, again.id)
  assert.equal(await s.sync.ackBookingChanges([latest[0].id]), 1)

  // Bad input is a clear error.
  await assert.rejects(s.sync.ackBookingChanges(['not-an-id']), (e) => e.code === 'INVALID_ARGUMENT')
  await assert.rejects(s.sync.takeBookingChanges({ limit: 0 }), (e) => e.code === 'INVALID_ARGUMENT')
})

test('without calendar-subscription-sync nothing is written to the outbox', async () => {
  const user = await s.googleUser()
  await seed.setUserFlag(s.db, user.userId, 'calendar-subscription-sync', false)
  const cal = await s.googleCalendar(user)
  await s.sync.subscribe(cal.id)
  await s.emu.google.insertEvent(cal.externalId, timed(9, 10, { iCalUID: 'bk-off@cal.com' }), { notify: false })
  assert.deepEqual((await s.sync.syncCalendar(cal.id)).bookingChanges, [])
  const { rows } = await s.db.query('SELECT count(*)::int AS n FROM "CalendarSyncBookingChange" WHERE "selectedCalendarId" = $1', [cal.id])
  assert.equal(rows[0].n, 0)
})

test('two takers never apply one event\'s changes out of order', async () => {
  const { cal } = await bookingUser()
  const ev = await s.emu.google.insertEvent(cal.externalId, timed(9, 10, { iCalUID: 'bk-order@cal.com' }), { notify: false })
  await s.sync.syncCalendar(cal.id)
  await drain()
  await s.emu.google.updateEvent(cal.externalId, ev.id, { start: { dateTime: at(10) }, end: { dateTime: at(11) } }, { notify: false })
  await s.sync.syncCalendar(cal.id)
  const worker = new Worker(s.options)
  await worker.ready
  try {
    const { changes: first } = await worker.call({ type: 'take', options: { holdMs: 60_000 } })
    assert.deepEqual(brief(first), [{ uid: 'bk-order', start: at(10), end: at(11), cancelled: false }])
    // Moved again while the first taker still applies the older state.
    await s.emu.google.updateEvent(cal.externalId, ev.id, { start: { dateTime: at(12) }, end: { dateTime: at(13) } }, { notify: false })
    await s.sync.syncCalendar(cal.id)
    assert.deepEqual(await s.sync.takeBookingChanges(), [], 'a second taker does not get the newer state meanwhile')
    // The first taker is done with its state; the newer one goes out once that hold ends.
    await worker.call({ type: 'ack', ids: first.map((c) => c.id) })
    await s.db.query('UPDATE "CalendarSyncBookingChange" SET "takenUntil" = now() - interval \'1 second\' WHERE "externalId" = $1', [ev.id])
    assert.deepEqual(brief(await drain()), [{ uid: 'bk-order', start: at(12), end: at(13), cancelled: false }])
  } finally {
    worker.child.kill('SIGKILL')
    await worker.exited
  }
})

test('a booking that turned free, its notification lost, is not reported cancelled by the next full sync (Google and Outlook)', async () => {
  const g = await bookingUser()
  const gev = await s.emu.google.insertEvent(g.cal.externalId, timed(9, 10, { iCalUID: 'bk-free@cal.com' }), { notify: false })
  const m = await bookingUser('microsoft')
  const ms = (h) => ({ dateTime: at(h).slice(0, 19), timeZone: 'UTC' })
  const mev = await s.emu.microsoft.insertEvent(m.cal.externalId, { subject: 'b', start: ms(9), end: ms(10) }, { notify: false })
  await seed.createBooking(s.db, { uid: 'bk-free-ms', userId: m.user.userId, integration: 'office365_calendar', eventId: mev.id, credentialId: m.user.credentialId, start: at(9), end: at(10) })
  await s.sync.syncCalendar(g.cal.id)
  await s.sync.syncCalendar(m.cal.id)
  await drain()
  // Show-as-free, with no notification; then the sync token expires, so the next sync is full.
  await s.emu.google.updateEvent(g.cal.externalId, gev.id, { transparency: 'transparent' }, { notify: false })
  await s.emu.microsoft.updateEvent(m.cal.externalId, mev.id, { showAs: 'free' }, { notify: false })
  s.emu.google.expireSyncTokens(g.cal.externalId)
  s.emu.microsoft.expireDeltaTokens(m.cal.externalId)
  const gr = await s.sync.syncCalendar(g.cal.id, { full: true })
  const mr = await s.sync.syncCalendar(m.cal.id, { full: true })
  assert.equal(gr.full && mr.full, true)
  assert.deepEqual([...gr.bookingChanges, ...mr.bookingChanges], [], 'free is not cancelled')
  assert.deepEqual(await drain(), [])
  // The cache no longer holds them (they are free)...
  const { rows } = await s.db.query('SELECT count(*)::int AS n FROM "CalendarCacheEvent" WHERE "selectedCalendarId" = ANY($1)', [[g.cal.id, m.cal.id]])
  assert.equal(rows[0].n, 0)
  // ...and a real deletion afterwards is still reported, each once.
  await s.emu.google.deleteEvent(g.cal.externalId, gev.id, { notify: false })
  await s.emu.microsoft.deleteEvent(m.cal.externalId, mev.id, { notify: false })
  await s.sync.syncCalendar(g.cal.id)
  await s.sync.syncCalendar(m.cal.id)
  assert.deepEqual(brief(await drain()).map((c) => [c.uid, c.cancelled]).sort(), [['bk-free', true], ['bk-free-ms', true]])
})

test('a booking moved beyond the sync window is reported moved, not cancelled (full Google sync, Graph delta)', async () => {
  const far = 24 * 400 // hours: beyond the 180-day window
  const g = await bookingUser()
  const gev = await s.emu.google.insertEvent(g.cal.externalId, timed(9, 10, { iCalUID: 'bk-far@cal.com' }), { notify: false })
  const m = await bookingUser('microsoft')
  const ms = (h) => ({ dateTime: at(h).slice(0, 19), timeZone: 'UTC' })
  const mev = await s.emu.microsoft.insertEvent(m.cal.externalId, { subject: 'b', start: ms(9), end: ms(10) }, { notify: false })
  await seed.createBooking(s.db, { uid: 'bk-far-ms', userId: m.user.userId, integration: 'office365_calendar', eventId: mev.id, credentialId: m.user.credentialId, start: at(9), end: at(10) })
  await s.sync.syncCalendar(g.cal.id)
  await s.sync.syncCalendar(m.cal.id)
  await drain()
  await s.emu.google.updateEvent(g.cal.externalId, gev.id, { start: { dateTime: at(far) }, end: { dateTime: at(far + 1) } }, { notify: false })
  await s.emu.microsoft.updateEvent(m.cal.externalId, mev.id, { start: ms(far), end: ms(far + 1) }, { notify: false })
  const gr = await s.sync.syncCalendar(g.cal.id, { full: true })
  const mr = await s.sync.syncCalendar(m.cal.id) // Graph's delta says @removed ("changed"): it left the view
  assert.deepEqual(brief(gr.bookingChanges.map((c) => ({ ...c }))), [{ uid: 'bk-far', start: at(far), end: at(far + 1), cancelled: false }])
  assert.deepEqual(brief(mr.bookingChanges.map((c) => ({ ...c }))), [{ uid: 'bk-far-ms', start: at(far), end: at(far + 1), cancelled: false }])
  assert.equal((await drain()).filter((c) => c.cancelled).length, 0)
})

test('only the organizer\'s copy reports: an attendee removing or moving their copy reports nothing', async () => {
  const { cal } = await bookingUser()
  const copy = await s.emu.google.insertEvent(cal.externalId, timed(9, 10, { iCalUID: 'bk-guest@cal.com', organizer: { email: 'host@example.com', self: false } }), { notify: false })
  await s.sync.syncCalendar(cal.id)
  assert.deepEqual(await drain(), [], 'an attendee\'s copy seen first is no news either')
  await s.emu.google.updateEvent(cal.externalId, copy.id, { start: { dateTime: at(11) }, end: { dateTime: at(12) } }, { notify: false })
  assert.deepEqual((await s.sync.syncCalendar(cal.id)).bookingChanges, [])
  await s.emu.google.deleteEvent(cal.externalId, copy.id, { notify: false })
  assert.deepEqual((await s.sync.syncCalendar(cal.id)).bookingChanges, [], 'removed from the attendee\'s calendar only')
  s.emu.google.expireSyncTokens(cal.externalId)
  assert.deepEqual((await s.sync.syncCalendar(cal.id)).bookingChanges, [])
  assert.deepEqual(await drain(), [])
})

'use strict'
// Dual-write of Cal.com's legacy JSON cache (SPEC §8): with `calendar-cache-sql-write` on, syncs
// keep the `"CalendarCache"` rows current. The rows are read back by `legacyRead` below, written
// from SPEC §8's facts alone (not from calsync's code): the key, the month window, `expiresAt`,
// the value's shape. Month boundaries are reached by moving calsync's and the emulator's clocks.
const test = require('node:test')
const assert = require('node:assert/strict')
const { startStack } = require('./stack')
const seed = require('../dev/seed')
const { shiftClockForTesting } = require('../calsync.js')

const HOUR = 3600 * 1000
const DAY = 24 * HOUR
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

// ---- the independent legacy reader ------------------------------------------------------------
const firstOfMonth = (y, m) => new Date(Date.UTC(y, m, 1))
/** The legacy lookup window for a request ending at `end`, made at `now`. */
function legacyWindow(now, end) {
  const n = new Date(now)
  const e = new Date(end)
  const months = (e.getUTCFullYear() - n.getUTCFullYear()) * 12 + e.getUTCMonth() - n.getUTCMonth()
  const base = months >= 0 && months <= 2 ? n : e
  return {
    timeMin: firstOfMonth(n.getUTCFullYear(), n.getUTCMonth()).toISOString(),
    timeMax: firstOfMonth(base.getUTCFullYear(), base.getUTCMonth() + 2).toISOString(),
  }
}
function legacyKey(timeMin, timeMax, externalIds) {
  const items = []
  for (const id of externalIds) if (!items.some((i) => i.id === id)) items.push({ id })
  return JSON.stringify({ timeMin, timeMax, items })
}
/** What the legacy reader gets for these calendars (in the order the app lists them): null on a miss. */
async function legacyRead(db, credentialId, externalIds, now, end) {
  const { timeMin, timeMax } = legacyWindow(now, end)
  const { rows } = await db.query('SELECT value FROM "CalendarCache" WHERE "credentialId" = $1 AND key = $2 AND "expiresAt" >= $3',
    [credentialId, legacyKey(timeMin, timeMax, externalIds), new Date(now)])
  if (!rows.length) return null
  const v = rows[0].value
  assert.equal(v.kind, 'calendar#freeBusy')
  assert.deepEqual([v.timeMin, v.timeMax].map(Date.parse), [Date.parse(timeMin), Date.parse(timeMax)])
  return { timeMin, timeMax, calendars: v.calendars }
}
const spans = (list) => list.map((b) => [Date.parse(b.start), Date.parse(b.end)])
// ------------------------------------------------------------------------------------------------

let s
test.before(async () => {
  s = await startStack({ syncOnRead: false })
  await seed.setGlobalFlag(s.db, 'calendar-cache-sql-write', true) // then it is up to each user's row
})
test.after(async () => {
  shiftClockForTesting(0)
  s?.emu.setClock(0)
  await s?.close()
})

function shiftTo(instant) {
  const offset = instant - Date.now()
  shiftClockForTesting(offset)
  s.emu.setClock(offset)
  return () => Date.now() + offset
}

/** A user with the write flag, Google calendars `names` and event-type selections `types`. */
async function setup(now, { names = ['a', 'b', 'c'], types = { 7: ['b', 'c'] }, flag = true } = {}) {
  const user = await s.googleUser()
  if (flag) await seed.setUserFlag(s.db, user.userId, 'calendar-cache-sql-write', true)
  const cals = {}
  for (const n of names) {
    cals[n] = await s.googleCalendar(user)
    await sleep(3) // creation order is the order the app lists them in
  }
  const typed = {}
  for (const [type, list] of Object.entries(types)) {
    typed[type] = []
    for (const n of list) {
      typed[type].push(await seed.createSelectedCalendar(s.db, { userId: user.userId, externalId: cals[n].externalId, credentialId: user.credentialId, eventTypeId: Number(type) }))
      await sleep(3)
    }
  }
  // Busy time from today to the month after next, in several calendars.
  let h = 2
  for (const n of names) {
    for (let k = 0; k < 4; k++) {
      const start = now() + (h += 11) * HOUR
      await s.emu.google.insertEvent(cals[n].externalId, { summary: 'x', start: { dateTime: new Date(start).toISOString() }, end: { dateTime: new Date(start + HOUR).toISOString() } }, { notify: false })
    }
  }
  const ext = (list) => list.map((n) => cals[n].externalId)
  return { user, cals, typed, ext }
}

function assertMatchesGoogle(got, externalIds, now) {
  assert.ok(got, 'the legacy reader finds the row')
  assert.deepEqual(Object.keys(got.calendars).sort(), [...new Set(externalIds)].sort())
  for (const id of externalIds) {
    // The SQL cache starts a day back; compare from there (the legacy row holds what it has).
    const from = new Date(Math.max(Date.parse(got.timeMin), now - DAY)).toISOString()
    const want = spans(s.emu.google.freeBusyOf(id, from, got.timeMax))
    const have = spans(got.calendars[id].busy).filter(([, e]) => e > Date.parse(from))
    assert.deepEqual(have, want, `calendar ${id}`)
  }
}

test('subscribing with the write flag on writes one legacy row per event-type group, as the legacy reader looks it up', async () => {
  const now = () => Date.now()
  const { user, cals, ext } = await setup(now)
  for (const c of Object.values(cals)) await s.sync.subscribe(c.id)
  const end = now() + 10 * DAY
  const userLevel = await legacyRead(s.db, user.credentialId, ext(['a', 'b', 'c']), now(), end)
  assertMatchesGoogle(userLevel, ext(['a', 'b', 'c']), now())
  const typed = await legacyRead(s.db, user.credentialId, ext(['b', 'c']), now(), end)
  assertMatchesGoogle(typed, ext(['b', 'c']), now())
  const { rows } = await s.db.query('SELECT "expiresAt", "userId" FROM "CalendarCache" WHERE "credentialId" = $1', [user.credentialId])
  assert.equal(rows.length, 2)
  for (const r of rows) {
    assert.equal(r.userId, user.userId)
    assert.ok(Math.abs(r.expiresAt - (now() + 30 * DAY)) < 60_000, 'expires 30 days after the write')
  }

  // A notification keeps them current.
  const start = now() + 5 * HOUR
  await s.emu.google.insertEvent(cals.c.externalId, { summary: 'new', start: { dateTime: new Date(start).toISOString() }, end: { dateTime: new Date(start + HOUR).toISOString() } })
  assertMatchesGoogle(await legacyRead(s.db, user.credentialId, ext(['b', 'c']), now(), end), ext(['b', 'c']), now())
  assertMatchesGoogle(await legacyRead(s.db, user.credentialId, ext(['a', 'b', 'c']), now(), end), ext(['a', 'b', 'c']), now())
})

test('a group with a calendar the SQL cache cannot vouch for gets no row, and its old one is deleted', async () => {
  const now = () => Date.now()
  const { user, cals, ext } = await setup(now, { names: ['a', 'b'], types: {} })
  await s.sync.subscribe(cals.a.id)
  // b has never synced: the group's row would claim b is free.
  assert.equal(await legacyRead(s.db, user.credentialId, ext(['a', 'b']), now(), now() + DAY), null)
  const report = await s.sync.syncCalendar(cals.a.id)
  assert.equal(report.legacySkipped, 1)
  assert.equal(report.legacyWritten, 0)
  await s.sync.subscribe(cals.b.id)
  assertMatchesGoogle(await legacyRead(s.db, user.credentialId, ext(['a', 'b']), now(), now() + DAY), ext(['a', 'b']), now())
  // b's sync fails from now on; the next sync of a finds it failing and removes the row.
  s.emu.inject({ endpoint: 'google.events.list', status: 400, reason: 'badRequest', times: 1 })
  await assert.rejects(s.sync.syncCalendar(cals.b.id))
  await s.sync.syncCalendar(cals.a.id)
  assert.equal(await legacyRead(s.db, user.credentialId, ext(['a', 'b']), now(), now() + DAY), null)
})

test('with the write flag off, syncs leave the legacy rows alone (rollback keeps the legacy path as it was)', async () => {
  const now = () => Date.now()
  const { user, cals, ext } = await setup(now, { names: ['a'], types: {}, flag: false })
  await s.sync.subscribe(cals.a.id)
  assert.equal(await legacyRead(s.db, user.credentialId, ext(['a']), now(), now() + DAY), null)
  await seed.setUserFlag(s.db, user.userId, 'calendar-cache-sql-write', true)
  await s.sync.syncCalendar(cals.a.id)
  const before = await legacyRead(s.db, user.credentialId, ext(['a']), now(), now() + DAY)
  assertMatchesGoogle(before, ext(['a']), now())
  await seed.setUserFlag(s.db, user.userId, 'calendar-cache-sql-write', false)
  const start = now() + 7 * HOUR
  await s.emu.google.insertEvent(cals.a.externalId, { summary: 'late', start: { dateTime: new Date(start).toISOString() }, end: { dateTime: new Date(start + HOUR).toISOString() } })
  assert.deepEqual(await legacyRead(s.db, user.credentialId, ext(['a']), now(), now() + DAY), before, 'untouched once the flag is off')
})

for (const [label, iso] of [
  ['the 31st of a month', '2027-01-31T15:00:00Z'],
  ['December (the window wraps into the next year)', '2027-12-15T09:00:00Z'],
  ['a leap 29 February', '2028-02-29T12:00:00Z'],
]) {
  test(`month boundaries: ${label}`, async () => {
    const now = shiftTo(Date.parse(iso))
    try {
      const { user, cals, ext } = await setup(now, { names: ['a', 'b'], types: { 9: ['b'] } })
      for (const c of Object.values(cals)) await s.sync.subscribe(c.id)
      for (const [list, end] of [[['a', 'b'], now() + 20 * DAY], [['b'], now() + 40 * DAY]]) {
        const got = await legacyRead(s.db, user.credentialId, ext(list), now(), end)
        assertMatchesGoogle(got, ext(list), now())
      }
    } finally {
      shiftClockForTesting(0)
      s.emu.setClock(0)
    }
  })
}

test('verifyLegacyCache: equal after dual-write; a corrupted row is diverged with each interval by kind; malformed and unvouched rows are not comparable', async () => {
  const now = () => Date.now()
  const { user, cals, ext } = await setup(now, { names: ['a', 'b'], types: {} })
  for (const c of Object.values(cals)) await s.sync.subscribe(c.id)
  assert.deepEqual((await s.sync.verifyLegacyCache({ userId: user.userId })).map((v) => v.state), ['equal'])

  // Corrupt the row: drop a's first future block, stretch b's first one.
  const { rows: [row] } = await s.db.query('SELECT key, value FROM "CalendarCache" WHERE "credentialId" = $1', [user.credentialId])
  const [a, b] = ext(['a', 'b'])
  const v = row.value
  const dropped = v.calendars[a].busy.shift()
  const stretched = v.calendars[b].busy[0]
  v.calendars[b].busy[0] = { start: stretched.start, end: new Date(Date.parse(stretched.end) + 30 * 60000).toISOString() }
  await s.db.query('UPDATE "CalendarCache" SET value = $3 WHERE "credentialId" = $1 AND key = $2', [user.credentialId, row.key, v])
  const [diverged] = await s.sync.verifyLegacyCache({ userId: user.userId })
  assert.equal(diverged.state, 'diverged')
  assert.deepEqual(diverged.divergences.map((d) => [d.calendar, d.kind, Date.parse(d.start)]), [
    [b, 'different_bounds', Date.parse(stretched.start)],
    [a, 'missing_block', Date.parse(dropped.start)],
  ].sort((x, y) => (x[0] === a ? -1 : 1) - (y[0] === a ? -1 : 1)))
  assert.ok(!JSON.stringify(diverged).includes('summary'), 'no event contents')

  // Rows older code may have written badly, and a row for a calendar calsync cannot vouch for.
  await s.db.query('UPDATE "CalendarCache" SET value = $3 WHERE "credentialId" = $1 AND key = $2', [user.credentialId, row.key, { calendars: 'nope' }])
  await s.db.query(`INSERT INTO "CalendarCache" (key, value, "expiresAt", "credentialId", "userId") VALUES ('not a key', '{}', now() + interval '1 day', $1, $2)`, [user.credentialId, user.userId])
  const { timeMin, timeMax } = legacyWindow(now(), now() + DAY)
  await s.db.query(`INSERT INTO "CalendarCache" (key, value, "expiresAt", "credentialId", "userId") VALUES ($1, $2, now() + interval '1 day', $3, $4)`,
    [legacyKey(timeMin, timeMax, ['unknown@example.com']), { kind: 'calendar#freeBusy', timeMin, timeMax, calendars: { 'unknown@example.com': { busy: [] } } }, user.credentialId, user.userId])
  const verdicts = await s.sync.verifyLegacyCache({ userId: user.userId })
  assert.deepEqual(verdicts.map((x) => [x.state, x.reason]), [['not_comparable', 'malformed_row'], ['not_comparable', 'malformed_row'], ['not_comparable', 'not_selected']])

  // Bad input is a clear error.
  await assert.rejects(s.sync.verifyLegacyCache({ userId: 987654 }), (e) => e.code === 'NOT_FOUND')
  await assert.rejects(s.sync.verifyLegacyCache({ teamId: 987654 }), (e) => e.code === 'NOT_FOUND')
  await assert.rejects(s.sync.verifyLegacyCache({ userId: 1, teamId: 1 }), (e) => e.code === 'INVALID_ARGUMENT')
})

test('migration status and the last stage: cleanup is refused while a user still reads the legacy cache, then deletes every row', async () => {
  const now = () => Date.now()
  const { cals } = await setup(now, { names: ['a'], types: {} })
  await s.sync.subscribe(cals.a.id)
  const st = await s.sync.legacyCacheStage()
  assert.ok(st.users >= 1 && st.writing >= 1 && st.liveRows >= 1, JSON.stringify(st))
  assert.equal(st.readingSql, 0)
  const rows = async () => Number((await s.db.query('SELECT count(*) FROM "CalendarCache"')).rows[0].count)
  const before = await rows()
  await assert.rejects(s.sync.dropLegacyCache(), (e) => e.code === 'INVALID_ARGUMENT' && /still read from the legacy cache/.test(e.message))
  assert.equal(await rows(), before, 'nothing deleted')
  // Everyone with legacy rows reads from SQL now.
  await seed.setGlobalFlag(s.db, 'calendar-cache-sql', true)
  const { rows: owners } = await s.db.query('SELECT DISTINCT cr."userId" FROM "CalendarCache" c JOIN "Credential" cr ON cr.id = c."credentialId"')
  for (const o of owners) await seed.setUserFlag(s.db, o.userId, 'calendar-cache-sql', true)
  assert.equal((await s.sync.legacyCacheStage()).readingSql, owners.length)
  assert.equal(await s.sync.dropLegacyCache({ batchSize: 2 }), before)
  assert.equal(await rows(), 0)
})

// ---- flag-switched reads (legacyReads) ---------------------------------------------------------
const { CalendarSync } = require('../calsync.js')
const TTL = 200 // flagCacheTtlMs of the readers below
const iso = (t) => new Date(t).toISOString()
const blocksOf = (result, id) => result.busy.filter((b) => b.selectedCalendarId === id).map((b) => [Date.parse(b.start), Date.parse(b.end)])
const clip = (list, min, max) => list.filter(([a, b]) => b > min && a < max).map(([a, b]) => [Math.max(a, min), Math.min(b, max)])

async function reader(mode) {
  const r = await CalendarSync.connect({ ...s.options, legacyReads: mode, flagCacheTtlMs: TTL })
  test.after(() => r.close())
  return r
}
async function readSource(user, slug, on) {
  await seed.setUserFlag(s.db, user.userId, slug, on)
  await sleep(TTL + 50) // past the readers' flag cache
}

test('legacyReads switch: calendar-cache-sql picks each user\'s source; the legacy side answers as the legacy reader does', async () => {
  const now = () => Date.now()
  await seed.setGlobalFlag(s.db, 'calendar-cache-sql', true)
  const { user, cals, ext } = await setup(now, { names: ['a', 'b'], types: { 11: ['b'] } })
  await seed.setUserFlag(s.db, user.userId, 'calendar-cache-sql', false)
  // An Outlook calendar of the same user: the legacy cache never held Outlook calendars.
  const msCredential = await seed.createCredential(s.db, { userId: user.userId, type: 'office365_calendar', key: s.emu.microsoft.addAccount() })
  const outlook = await s.outlookCalendar({ userId: user.userId, credentialId: msCredential })
  for (const c of [...Object.values(cals), outlook]) await s.sync.subscribe(c.id)
  const sw = await reader('switch')

  const [min, max] = [now(), now() + 10 * DAY]
  const range = { timeMin: iso(min), timeMax: iso(max) }
  let r = await sw.getCachedAvailability({ selectedCalendarIds: [cals.a.id, cals.b.id, outlook.id], ...range })
  assert.deepEqual(r.servedFromLegacy, [cals.a.id, cals.b.id])
  assert.deepEqual(r.served, [cals.a.id, cals.b.id])
  assert.deepEqual(r.uncached, [{ id: outlook.id, reason: 'legacy_miss' }])
  const row = await legacyRead(s.db, user.credentialId, ext(['a', 'b']), now(), max)
  for (const n of ['a', 'b']) {
    const want = clip(spans(s.emu.google.freeBusyOf(cals[n].externalId, range.timeMin, range.timeMax)), min, max)
    assert.ok(want.length > 0)
    assert.deepEqual(blocksOf(r, cals[n].id), want, `calendar ${n} as Google answers`)
    assert.deepEqual(blocksOf(r, cals[n].id), clip(spans(row.calendars[cals[n].externalId].busy), min, max), `calendar ${n} as the legacy row holds it`)
  }

  // By user: the user-level group's key; for an event type, that group's key.
  r = await sw.getCachedAvailability({ userId: user.userId, ...range })
  assert.deepEqual(r.servedFromLegacy.sort(), [cals.a.id, cals.b.id].sort())
  r = await sw.getCachedAvailability({ userId: user.userId, eventTypeId: 11, ...range })
  assert.equal(r.servedFromLegacy.length, 1)
  assert.deepEqual(blocksOf(r, r.served[0]), blocksOf(await sw.getCachedAvailability({ selectedCalendarIds: [cals.a.id, cals.b.id], ...range }), cals.b.id))
  // A set of calendars no group has: no row under that key.
  r = await sw.getCachedAvailability({ selectedCalendarIds: [cals.a.id], ...range })
  assert.deepEqual(r.uncached, [{ id: cals.a.id, reason: 'legacy_miss' }])

  // The key's window: a request ending in the month after next looks up this window but runs past
  // its end, which the row knows nothing of; one ending further out looks up a key never written.
  const n = new Date(now())
  const edge = Date.UTC(n.getUTCFullYear(), n.getUTCMonth() + 2, 1)
  const both = [cals.a.id, cals.b.id]
  r = await sw.getCachedAvailability({ selectedCalendarIds: both, timeMin: iso(min), timeMax: iso(edge) })
  assert.deepEqual(r.servedFromLegacy, both)
  r = await sw.getCachedAvailability({ selectedCalendarIds: both, timeMin: iso(min), timeMax: iso(edge + DAY) })
  assert.deepEqual(r.uncached.map((u) => u.reason), ['out_of_window', 'out_of_window'])
  r = await sw.getCachedAvailability({ selectedCalendarIds: both, timeMin: iso(min), timeMax: iso(edge + 70 * DAY) })
  assert.deepEqual(r.uncached.map((u) => u.reason), ['legacy_miss', 'legacy_miss'])
  // An expired row is a miss.
  await s.db.query(`UPDATE "CalendarCache" SET "expiresAt" = now() - interval '1 minute' WHERE "credentialId" = $1`, [user.credentialId])
  r = await sw.getCachedAvailability({ selectedCalendarIds: both, ...range })
  assert.deepEqual(r.uncached.map((u) => u.reason), ['legacy_miss', 'legacy_miss'])
  await s.sync.syncCalendar(cals.a.id) // rewrites both groups' rows

  // The flag moves the user to the SQL cache within the flag cache TTL, and back (rollback).
  await readSource(user, 'calendar-cache-sql', true)
  r = await sw.getCachedAvailability({ selectedCalendarIds: [cals.a.id, cals.b.id, outlook.id], ...range })
  assert.deepEqual(r.servedFromLegacy, [])
  assert.deepEqual(r.served, [cals.a.id, cals.b.id, outlook.id])
  const sql = await s.sync.getCachedAvailability({ selectedCalendarIds: [cals.a.id, cals.b.id, outlook.id], ...range })
  assert.deepEqual(r.busy, sql.busy, 'the SQL cache\'s own answer')
  await readSource(user, 'calendar-cache-sql', false)
  r = await sw.getCachedAvailability({ selectedCalendarIds: [cals.a.id, cals.b.id, outlook.id], ...range })
  assert.deepEqual(r.servedFromLegacy, [cals.a.id, cals.b.id])
  // With the write flag off as well, the legacy row stays as the last dual-write left it, and the
  // switched read still serves it while it lives: the legacy path works as before calsync.
  await seed.setUserFlag(s.db, user.userId, 'calendar-cache-sql-write', false)
  r = await sw.getCachedAvailability({ selectedCalendarIds: both, ...range })
  assert.deepEqual(r.servedFromLegacy, both)
})

test('legacyReads shadow: a corrupted legacy row is found and recorded (calendar and interval only), whichever source is served; malformed rows never fail a read', async () => {
  const now = () => Date.now()
  await seed.setGlobalFlag(s.db, 'calendar-cache-sql', true)
  const { user, cals, ext } = await setup(now, { names: ['a', 'b'], types: {} })
  await seed.setUserFlag(s.db, user.userId, 'calendar-cache-sql', false)
  for (const c of Object.values(cals)) await s.sync.subscribe(c.id)
  const sh = await reader('shadow')
  const both = [cals.a.id, cals.b.id]
  const range = { timeMin: iso(now()), timeMax: iso(now() + 20 * DAY) }
  let r = await sh.getCachedAvailability({ selectedCalendarIds: both, ...range })
  assert.deepEqual(r.shadow, { compared: 2, diverged: 0, notComparable: 0, divergences: [] })

  // Corrupt the row: drop a's first future block, stretch b's first one.
  const { rows: [row] } = await s.db.query('SELECT key, value FROM "CalendarCache" WHERE "credentialId" = $1', [user.credentialId])
  const [a, b] = ext(['a', 'b'])
  const v = row.value
  const future = (list) => list.findIndex((x) => Date.parse(x.start) > now())
  const [dropped] = v.calendars[a].busy.splice(future(v.calendars[a].busy), 1)
  const stretched = v.calendars[b].busy[future(v.calendars[b].busy)]
  stretched.end = iso(Date.parse(stretched.end) + 30 * 60000)
  await s.db.query('UPDATE "CalendarCache" SET value = $3 WHERE "credentialId" = $1 AND key = $2', [user.credentialId, row.key, v])

  const expected = (served) => [
    { selectedCalendarId: cals.a.id, kind: 'missing_block', start: iso(Date.parse(dropped.start)), end: iso(Date.parse(dropped.end)), served },
    { selectedCalendarId: cals.b.id, kind: 'different_bounds', start: iso(Date.parse(stretched.start)), end: stretched.end, served },
  ]
  r = await sh.getCachedAvailability({ selectedCalendarIds: both, ...range })
  assert.deepEqual(r.servedFromLegacy, both, 'the legacy row is served, as corrupt as it is')
  assert.ok(!blocksOf(r, cals.a.id).some(([st]) => st === Date.parse(dropped.start)))
  assert.equal(r.shadow.diverged, 2)
  assert.deepEqual(r.shadow.divergences, expected('legacy'))
  assert.equal((await s.sync.verifyLegacyCache({ userId: user.userId }))[0].state, 'diverged', 'migrate verify finds it too')

  // Served from SQL, compared with the legacy row.
  await readSource(user, 'calendar-cache-sql', true)
  r = await sh.getCachedAvailability({ selectedCalendarIds: both, ...range })
  assert.deepEqual(r.servedFromLegacy, [])
  assert.deepEqual(r.shadow.divergences, expected('sql'))
  await sh.settle()
  const st = await s.sync.legacyCacheStage()
  const recorded = st.lastDivergences.filter((d) => both.includes(d.selectedCalendarId))
  assert.deepEqual(recorded.map(({ selectedCalendarId, kind, start, end }) => ({ selectedCalendarId, kind, start, end })).sort((x, y) => x.kind.localeCompare(y.kind)),
    expected('sql').map(({ served, ...d }) => d).sort((x, y) => x.kind.localeCompare(y.kind)))
  assert.ok(st.divergences >= 2)
  assert.ok(!JSON.stringify(st).includes('"summary"') && !JSON.stringify(r).includes('summary'), 'no event contents')

  // A malformed row: the SQL-served read is unaffected (nothing to compare); a legacy-served one
  // reports the calendars unreadable.
  await s.db.query('UPDATE "CalendarCache" SET value = $3 WHERE "credentialId" = $1 AND key = $2', [user.credentialId, row.key, { calendars: 'nope' }])
  r = await sh.getCachedAvailability({ selectedCalendarIds: both, ...range })
  assert.deepEqual(r.served, both)
  assert.deepEqual(r.shadow, { compared: 0, diverged: 0, notComparable: 2, divergences: [] })
  await readSource(user, 'calendar-cache-sql', false)
  r = await sh.getCachedAvailability({ selectedCalendarIds: both, ...range })
  assert.deepEqual(r.uncached, both.map((id) => ({ id, reason: 'legacy_unreadable' })))

  // Recording the differences failing (here: the table gone) never fails the read.
  await s.db.query('UPDATE "CalendarCache" SET value = $3 WHERE "credentialId" = $1 AND key = $2', [user.credentialId, row.key, v])
  const fresh = await reader('shadow') // nothing recorded by this process yet
  await s.db.query('ALTER TABLE "CalendarSyncDivergence" RENAME TO "CalendarSyncDivergenceAway"')
  try {
    r = await fresh.getCachedAvailability({ selectedCalendarIds: both, ...range })
    assert.equal(r.shadow.diverged, 2)
    assert.equal((await fresh.settle()).settled, true)
  } finally {
    await s.db.query('ALTER TABLE "CalendarSyncDivergenceAway" RENAME TO "CalendarSyncDivergence"')
  }
})

test('legacyReads: a bad mode is INVALID_ARGUMENT at connect', async () => {
  await assert.rejects(CalendarSync.connect({ ...s.options, legacyReads: 'both' }), (e) => e.code === 'INVALID_ARGUMENT' && /legacyReads/.test(e.message))
})

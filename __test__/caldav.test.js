'use strict'
// CalDAV calendars against two real servers, Radicale and Xandikos (dev/caldav.js installs them):
// the cache equals the busy time the events define — worked out by hand below, never asked of a
// server, whose own expand and free-busy answers get zones and DST wrong — through creates,
// updates, deletes, an expired token and a server restart; an idle poll costs one request; a server
// that is down or refuses the password never reads free.

const test = require('node:test')
const assert = require('node:assert/strict')
const crypto = require('node:crypto')

const { freshDatabase, calsync } = require('./helpers')
const seed = require('../dev/seed')
// symmetricEncrypt: exactly what Cal.com's writes (Node's crypto, AES-256-CBC, latin1 key).
const { startCaldav, davClient, symmetricEncrypt } = require('../dev/caldav')

const { shiftClockForTesting } = calsync
const KEY = 'calsync-test-key-0123456789abcde' // 32 characters, as Cal.com requires
const OWNER = 'owner@example.com' // replaced by each test's owner
// calsync's clock for these tests: the window then covers both 2027 DST changes of New York and
// Berlin, whatever day the suite runs.
const NOW = Date.parse('2027-01-04T00:00:00Z')
const range = { timeMin: '2027-01-04T00:00:00.000Z', timeMax: '2027-06-30T00:00:00.000Z' }


const cal = (body) => `BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//calsync//test//EN\r\n${body}END:VCALENDAR\r\n`
const ev = (uid, lines) => `BEGIN:VEVENT\r\nUID:${uid}\r\nDTSTAMP:20261201T000000Z\r\n${lines.join('\r\n')}\r\nEND:VEVENT\r\n`

// Each object, and the busy blocks (UTC) it defines in `range`.
const OBJECTS = {
  'single.ics': [cal(ev('single', ['DTSTART:20270111T100000Z', 'DTEND:20270111T110000Z', 'SUMMARY:single'])),
    [['2027-01-11T10:00', '2027-01-11T11:00']]],
  // New York changes to summer time on 14 March: 09:00 local is 14:00Z before, 13:00Z after. One
  // instance excluded, one moved.
  'weekly.ics': [cal(
    ev('weekly', ['DTSTART;TZID=America/New_York:20270301T090000', 'DTEND;TZID=America/New_York:20270301T093000',
      'RRULE:FREQ=WEEKLY;COUNT=4', 'EXDATE;TZID=America/New_York:20270308T090000']) +
    ev('weekly', ['RECURRENCE-ID;TZID=America/New_York:20270315T090000',
      'DTSTART;TZID=America/New_York:20270315T110000', 'DTEND;TZID=America/New_York:20270315T120000'])),
  [['2027-03-01T14:00', '2027-03-01T14:30'], ['2027-03-15T15:00', '2027-03-15T16:00'], ['2027-03-22T13:00', '2027-03-22T13:30']]],
  // All-day dates in the calendar's zone (Berlin, UTC+1 in winter).
  'allday.ics': [cal(ev('allday', ['DTSTART;VALUE=DATE:20270201', 'DTEND;VALUE=DATE:20270203'])),
    [['2027-01-31T23:00', '2027-02-02T23:00']]],
  'transparent.ics': [cal(ev('transparent', ['DTSTART:20270112T100000Z', 'DTEND:20270112T110000Z', 'TRANSP:TRANSPARENT'])), []],
  'declined.ics': [cal(ev('declined', ['DTSTART:20270113T100000Z', 'DTEND:20270113T110000Z',
    'ORGANIZER:mailto:boss@example.com', 'ATTENDEE;PARTSTAT=ACCEPTED:mailto:boss@example.com',
    `ATTENDEE;PARTSTAT=DECLINED:mailto:${OWNER}`])), []],
  'cancelled.ics': [cal(ev('cancelled', ['DTSTART:20270113T120000Z', 'DTEND:20270113T130000Z', 'STATUS:CANCELLED'])), []],
  // A floating time: the calendar's zone.
  'floating.ics': [cal(ev('floating', ['DTSTART:20270114T090000', 'DTEND:20270114T100000'])),
    [['2027-01-14T08:00', '2027-01-14T09:00']]],
  // A zone under a private name (Xandikos reads it as UTC): its X-LIC-LOCATION says where it is.
  'custom-zone.ics': [cal(
    'BEGIN:VTIMEZONE\r\nTZID:Custom Berlin\r\nX-LIC-LOCATION:Europe/Berlin\r\nBEGIN:STANDARD\r\nDTSTART:19701025T030000\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nRRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\nEND:STANDARD\r\nBEGIN:DAYLIGHT\r\nDTSTART:19700329T020000\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\nRRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r\nEND:DAYLIGHT\r\nEND:VTIMEZONE\r\n' +
    ev('custom', ['DTSTART;TZID=Custom Berlin:20270329T090000', 'DTEND;TZID=Custom Berlin:20270329T100000'])),
  [['2027-03-29T07:00', '2027-03-29T08:00']]],
  // Apple's travel time is busy too.
  'travel.ics': [cal(ev('travel', ['DTSTART:20270115T100000Z', 'DTEND:20270115T110000Z', 'X-APPLE-TRAVEL-DURATION;VALUE=DURATION:PT30M'])),
    [['2027-01-15T09:30', '2027-01-15T11:00']]],
  // An unbounded series from 2020, expanded only inside the window.
  'monthly.ics': [cal(ev('monthly', ['DTSTART:20200120T120000Z', 'DURATION:PT15M', 'RRULE:FREQ=MONTHLY;BYMONTHDAY=20'])),
    ['01', '02', '03', '04', '05', '06'].map((m) => [`2027-${m}-20T12:00`, `2027-${m}-20T12:15`])],
  // 02:30 on 28 March does not exist in Berlin: read with the offset before the gap.
  'gap.ics': [cal(ev('gap', ['DTSTART;TZID=Europe/Berlin:20270328T023000', 'DURATION:PT1H'])),
    [['2027-03-28T01:30', '2027-03-28T02:30']]],
  // P1D is a day on the wall clock: 23 hours across New York's change.
  'nominal-day.ics': [cal(ev('nominal', ['DTSTART;TZID=America/New_York:20270313T120000', 'DURATION:P1D'])),
    [['2027-03-13T17:00', '2027-03-14T16:00']]],
  // A date-only override of an all-day series moves one Friday to Saturday.
  'fridays.ics': [cal(
    ev('fridays', ['DTSTART;VALUE=DATE:20270108', 'DTEND;VALUE=DATE:20270109', 'RRULE:FREQ=WEEKLY;COUNT=3']) +
    ev('fridays', ['RECURRENCE-ID;VALUE=DATE:20270115', 'DTSTART;VALUE=DATE:20270116', 'DTEND;VALUE=DATE:20270117'])),
  [['2027-01-07T23:00', '2027-01-08T23:00'], ['2027-01-15T23:00', '2027-01-16T23:00'], ['2027-01-21T23:00', '2027-01-22T23:00']]],
}

const iso = (t) => `${t}:00.000Z`
function expected(objects) {
  const all = Object.values(objects).flatMap(([, blocks]) => blocks).map(([a, b]) => [iso(a), iso(b)])
  all.sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0))
  return all // no two of the blocks above overlap or touch, so the read's merging keeps them apart
}

let env
let sync
test.before(async () => {
  env = await freshDatabase()
  sync = await calsync.CalendarSync.connect({ databaseUrl: env.url, calendsoEncryptionKey: KEY, retryBaseDelayMs: 10, maxAttempts: 2, flagCacheTtlMs: 0 })
  await seed.setGlobalFlag(env.pg, 'calendar-subscription-cache', true)
  shiftClockForTesting(NOW - Date.now())
})
test.after(async () => {
  shiftClockForTesting(0)
  await sync?.close()
  await env?.teardown()
})

async function served(id) {
  const res = await sync.getCachedAvailability({ selectedCalendarIds: [id], ...range })
  assert.deepEqual(res.uncached, [], `calendar not served: ${JSON.stringify(res.uncached)}`)
  return res.busy.map((b) => [b.start, b.end])
}

/** Requests calsync made to CalDAV servers so far, by the metrics. */
async function davRequests() {
  const text = await sync.metrics()
  let n = 0
  for (const m of text.matchAll(/^calsync_provider_requests_total\{endpoint="caldav\.[^"]+"[^}]*\} (\d+)/gm)) n += Number(m[1])
  return n
}

/** A Cal.com user with a CalDAV credential stored as Cal.com stores it. Their email is how calsync
 * knows which attendee of an invitation they are (a CalDAV server never says). */
async function account(server, { password = server.password, key = KEY } = {}) {
  const email = `owner-${crypto.randomUUID().slice(0, 8)}@example.com`
  const userId = await seed.createUser(env.pg, { email })
  await seed.setUserFlag(env.pg, userId, 'calendar-subscription-cache', true)
  const stored = symmetricEncrypt(JSON.stringify({ username: server.user, password, url: server.url }), key)
  const credentialId = await seed.createCredential(env.pg, { userId, type: 'caldav_calendar', key: stored })
  return { userId, credentialId, email }
}

for (const kind of ['radicale', 'xandikos']) {
  test(`${kind}: the cache equals the busy time the events define, through changes, an expired token and a restart`, { timeout: 120_000 }, async () => {
    const server = await startCaldav(kind)
    let id
    let id2
    try {
      const dav = davClient(server)
      const url = await dav.makeCalendar(`work-${crypto.randomUUID().slice(0, 8)}`, { timeZone: 'Europe/Berlin' })
      const { userId, credentialId, email } = await account(server)
      // The declined invitation names this test's owner.
      const objects = JSON.parse(JSON.stringify(OBJECTS))
      objects['declined.ics'][0] = objects['declined.ics'][0].replace(OWNER, email)
      for (const [name, [ics]] of Object.entries(objects)) await dav.put(url, name, ics)
      // Deleted before the first sync: Radicale still lists it (as a 404) in a first sync-collection.
      await dav.put(url, 'gone.ics', cal(ev('gone', ['DTSTART:20270105T100000Z', 'DTEND:20270105T110000Z'])))
      await dav.remove(url, 'gone.ics')
      id = await seed.createSelectedCalendar(env.pg, { userId, integration: 'caldav_calendar', externalId: url, credentialId })

      const first = await sync.subscribe(id)
      assert.equal(first.sync.full, true)
      assert.deepEqual(await served(id), expected(objects))

      // A second calendar of the same account.
      const url2 = await dav.makeCalendar(`home-${crypto.randomUUID().slice(0, 8)}`)
      await dav.put(url2, 'other.ics', cal(ev('other', ['DTSTART:20270120T100000Z', 'DTEND:20270120T110000Z'])))
      id2 = await seed.createSelectedCalendar(env.pg, { userId, integration: 'caldav_calendar', externalId: url2, credentialId })
      await sync.subscribe(id2)
      assert.deepEqual(await served(id2), [['2027-01-20T10:00:00.000Z', '2027-01-20T11:00:00.000Z']])

      // An idle poll: one request for the whole account (its calendar home's sync tokens).
      let before = await davRequests()
      let poll = await sync.pollCalendars({ intervalMs: 0 })
      assert.deepEqual([poll.due, poll.unchanged, poll.synced, poll.failed], [2, 2, 0, 0])
      assert.equal(await davRequests() - before, 1, 'one request per idle account')
      const health = await sync.status()
      assert.ok(health.some((h) => h.integration === 'caldav_calendar' && h.health === 'healthy' && h.calendars === 2), JSON.stringify(health))
      assert.deepEqual(await served(id), expected(objects))

      // Changes: one moved, one deleted, one added, one series' override cancelled.
      objects['single.ics'] = [cal(ev('single', ['DTSTART:20270111T120000Z', 'DTEND:20270111T130000Z'])), [['2027-01-11T12:00', '2027-01-11T13:00']]]
      await dav.put(url, 'single.ics', objects['single.ics'][0])
      await dav.remove(url, 'floating.ics')
      delete objects['floating.ics']
      objects['added.ics'] = [cal(ev('added', ['DTSTART:20270118T100000Z', 'DTEND:20270118T110000Z'])), [['2027-01-18T10:00', '2027-01-18T11:00']]]
      await dav.put(url, 'added.ics', objects['added.ics'][0])
      objects['weekly.ics'][0] = objects['weekly.ics'][0].replace('DTEND;TZID=America/New_York:20270315T120000', 'DTEND;TZID=America/New_York:20270315T120000\r\nSTATUS:CANCELLED')
      objects['weekly.ics'][1] = objects['weekly.ics'][1].filter(([a]) => a !== '2027-03-15T15:00')
      await dav.put(url, 'weekly.ics', objects['weekly.ics'][0])
      before = await davRequests()
      poll = await sync.pollCalendars({ intervalMs: 0 })
      // The home's answer shows which calendar changed: only that one is listed.
      assert.deepEqual([poll.due, poll.unchanged, poll.synced, poll.failed], [2, 1, 1, 0])
      assert.equal(await davRequests() - before, 3, 'the home, then the changed calendar: sync-collection and one multiget')
      assert.deepEqual(await served(id), expected(objects))
      assert.deepEqual(await served(id2), [['2027-01-20T10:00:00.000Z', '2027-01-20T11:00:00.000Z']])

      // A token the server no longer honours (Radicale: 403, Xandikos: 412): a full listing.
      await env.pg.query(`UPDATE "SelectedCalendar" SET "syncToken" = jsonb_set("syncToken"::jsonb, '{t}', '"http://expired.invalid/sync/1"')::text WHERE id = $1`, [id])
      const resync = await sync.syncCalendar(id)
      assert.equal(resync.full, true)
      assert.deepEqual(await served(id), expected(objects))

      // The server goes down: the calendar polled first reads sync_failed (the app asks live),
      // never free; the other is not asked again in this run and is still served.
      await server.stop()
      poll = await sync.pollCalendars({ intervalMs: 0, concurrency: 1 })
      assert.deepEqual([poll.failed, poll.deferred, poll.complete], [1, 1, false])
      const down = await sync.getCachedAvailability({ selectedCalendarIds: [id, id2], ...range })
      assert.equal(down.uncached.length, 1)
      assert.equal(down.uncached[0].reason, 'sync_failed')
      const failed = down.uncached[0].id
      assert.ok(down.busy.every((b) => b.selectedCalendarId !== failed))
      // Back, with its storage and tokens: the next sync serves it again.
      await server.restart()
      await dav.remove(url, 'added.ics')
      delete objects['added.ics']
      await sync.syncCalendar(failed)
      assert.deepEqual((await sync.getCachedAvailability({ selectedCalendarIds: [failed], ...range })).uncached, [])
      await sync.syncCalendar(id)
      assert.deepEqual(await served(id), expected(objects))
      const row = await env.pg.query('SELECT invalid FROM "Credential" WHERE id = $1', [credentialId])
      assert.equal(row.rows[0].invalid, false)
    } finally {
      // Later tests' polls see only their own calendars.
      for (const row of [id, id2].filter(Boolean)) {
        await sync.unsubscribe(row)
        await env.pg.query('DELETE FROM "SelectedCalendar" WHERE id = $1', [row])
      }
      await server.close()
    }
  })
}

test('a refused password marks the credential invalid; a wrong encryption key is a coded error that shows nothing', { timeout: 60_000 }, async () => {
  const server = await startCaldav('radicale')
  try {
    const dav = davClient(server)
    const url = await dav.makeCalendar('refused')
    const bad = await account(server, { password: 'not-the-password' })
    const id = await seed.createSelectedCalendar(env.pg, { userId: bad.userId, integration: 'caldav_calendar', externalId: url, credentialId: bad.credentialId })
    await assert.rejects(sync.syncCalendar(id), (e) => e.code === 'PROVIDER_AUTH' && !e.message.includes('not-the-password'))
    assert.equal((await env.pg.query('SELECT invalid FROM "Credential" WHERE id = $1', [bad.credentialId])).rows[0].invalid, true)
    const res = await sync.getCachedAvailability({ selectedCalendarIds: [id], ...range })
    assert.deepEqual(res.uncached, [{ id, reason: 'credential_invalid' }])

    const other = await account(server, { key: 'another-key-0123456789abcdefghij' })
    const stored = (await env.pg.query('SELECT key FROM "Credential" WHERE id = $1', [other.credentialId])).rows[0].key
    const id2 = await seed.createSelectedCalendar(env.pg, { userId: other.userId, integration: 'caldav_calendar', externalId: url, credentialId: other.credentialId })
    await assert.rejects(sync.syncCalendar(id2), (e) => {
      assert.equal(e.code, 'PROVIDER_AUTH')
      assert.match(e.message, /CALENDSO_ENCRYPTION_KEY/)
      assert.ok(!e.message.includes(stored) && !e.message.includes(server.password) && !e.message.includes(KEY))
      return true
    })
    // Not the user's fault: the credential stays valid.
    assert.equal((await env.pg.query('SELECT invalid FROM "Credential" WHERE id = $1', [other.credentialId])).rows[0].invalid, false)
  } finally {
    await server.close()
  }
})

test("a calendar with no zone of its own reads floating times and all-day dates in its user's", { timeout: 60_000 }, async () => {
  const server = await startCaldav('xandikos')
  let id
  try {
    const dav = davClient(server)
    const url = await dav.makeCalendar('no-zone') // no calendar-timezone
    await dav.put(url, 'day.ics', cal(ev('day', ['DTSTART;VALUE=DATE:20270120', 'DTEND;VALUE=DATE:20270121'])))
    await dav.put(url, 'float.ics', cal(ev('float', ['DTSTART:20270122T090000', 'DTEND:20270122T100000'])))
    const { userId, credentialId } = await account(server)
    await env.pg.query(`UPDATE users SET "timeZone" = 'America/Los_Angeles' WHERE id = $1`, [userId])
    id = await seed.createSelectedCalendar(env.pg, { userId, integration: 'caldav_calendar', externalId: url, credentialId })
    await sync.subscribe(id)
    assert.deepEqual(await served(id), [
      ['2027-01-20T08:00:00.000Z', '2027-01-21T08:00:00.000Z'],
      ['2027-01-22T17:00:00.000Z', '2027-01-22T18:00:00.000Z'],
    ])
  } finally {
    if (id) {
      await sync.unsubscribe(id)
      await env.pg.query('DELETE FROM "SelectedCalendar" WHERE id = $1', [id])
    }
    await server.close()
  }
})

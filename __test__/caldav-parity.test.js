'use strict'
// Randomized parity on both real CalDAV servers: calendars of random events (time zones with and
// without DST, both hemispheres, a half-hour zone, floating times, all-day dates, daily and weekly
// series with COUNT/UNTIL/INTERVAL/BYDAY, exceptions, moved and cancelled instances, free,
// cancelled and declined events, travel time), then random creates, updates and deletes. The
// expected busy time is computed here, independently of calsync: wall-clock recurrence in plain
// arithmetic, zones through Node's ICU (Intl), RFC 5545's rules for times in a DST gap (the offset
// before it) and repeated times (the first). Never a server's free-busy answer.

const test = require('node:test')
const assert = require('node:assert/strict')
const crypto = require('node:crypto')

const { freshDatabase, calsync, prng } = require('./helpers')
const seed = require('../dev/seed')
const { startCaldav, davClient, symmetricEncrypt } = require('../dev/caldav')

const { shiftClockForTesting } = calsync
const KEY = 'calsync-parity-key-0123456789abc'
const NOW = Date.parse('2027-01-04T00:00:00Z')
const { randomEvent, expectedBusy, localToUtc, range, CAL_ZONE } = require('./ical-oracle')

test('the oracle reads gaps and repeated times as RFC 5545 says', () => {
  // Berlin springs forward at 02:00 on 28 March 2027; falls back at 03:00 on 31 October.
  assert.equal(new Date(localToUtc(Date.UTC(2027, 2, 28, 2, 30), 'Europe/Berlin')).toISOString(), '2027-03-28T01:30:00.000Z')
  assert.equal(new Date(localToUtc(Date.UTC(2027, 9, 31, 2, 30), 'Europe/Berlin')).toISOString(), '2027-10-31T00:30:00.000Z')
  assert.equal(new Date(localToUtc(Date.UTC(2027, 0, 10, 9, 0), 'Asia/Kolkata')).toISOString(), '2027-01-10T03:30:00.000Z')
})

// ---- the test ---------------------------------------------------------------------------------

let env
let sync
test.before(async () => {
  env = await freshDatabase()
  sync = await calsync.CalendarSync.connect({ databaseUrl: env.url, calendsoEncryptionKey: KEY, retryBaseDelayMs: 10, flagCacheTtlMs: 0, caldavPageSize: 7 })
  await seed.setGlobalFlag(env.pg, 'calendar-subscription-cache', true)
  shiftClockForTesting(NOW - Date.now())
})
test.after(async () => {
  shiftClockForTesting(0)
  await sync?.close()
  await env?.teardown()
})

const encrypt = (text) => symmetricEncrypt(text, KEY)

for (const kind of ['radicale', 'xandikos']) {
  for (const seedValue of [1, 2]) {
    test(`${kind}, seed ${seedValue}: random calendars equal the busy time their events define, through random changes`, { timeout: 180_000 }, async () => {
      const rand = prng(seedValue * 7919 + (kind === 'xandikos' ? 1 : 0))
      const server = await startCaldav(kind)
      let id
      try {
        const dav = davClient(server)
        const url = await dav.makeCalendar(`parity-${seedValue}`, { timeZone: CAL_ZONE })
        const owner = `owner-${crypto.randomUUID().slice(0, 8)}@example.com`
        const userId = await seed.createUser(env.pg, { email: owner })
        await seed.setUserFlag(env.pg, userId, 'calendar-subscription-cache', true)
        const credentialId = await seed.createCredential(env.pg, {
          userId, type: 'caldav_calendar', key: encrypt(JSON.stringify({ username: server.user, password: server.password, url: server.url })),
        })
        const events = new Map()
        let next = 0
        const add = async () => {
          const name = `e${next++}.ics`
          const e = randomEvent(rand, name.replace('.ics', ''), owner)
          events.set(name, e)
          await dav.put(url, name, e.ics)
        }
        for (let i = 0; i < 40; i++) await add()
        id = await seed.createSelectedCalendar(env.pg, { userId, integration: 'caldav_calendar', externalId: url, credentialId })
        await sync.subscribe(id)
        const check = async (what) => {
          const res = await sync.getCachedAvailability({ selectedCalendarIds: [id], ...range })
          assert.deepEqual(res.uncached, [], `${what}: not served ${JSON.stringify(res.uncached)}`)
          assert.deepEqual(res.busy.map((b) => [b.start, b.end]), expectedBusy(events), what)
        }
        await check('after the first sync')
        for (let round = 0; round < 3; round++) {
          const names = [...events.keys()]
          for (let i = 0; i < 6; i++) {
            const name = names[Math.floor(rand() * names.length)]
            if (!events.has(name)) continue
            if (rand() < 0.4) {
              await dav.remove(url, name)
              events.delete(name)
            } else {
              const e = randomEvent(rand, name.replace('.ics', ''), owner)
              events.set(name, e)
              await dav.put(url, name, e.ics)
            }
          }
          for (let i = 0; i < 3; i++) await add()
          const poll = await sync.pollCalendars({ intervalMs: 0 })
          assert.equal(poll.failed, 0)
          await check(`after round ${round + 1} of changes`)
        }
      } finally {
        if (id) {
          await sync.unsubscribe(id)
          await env.pg.query('DELETE FROM "SelectedCalendar" WHERE id = $1', [id])
        }
        await server.close()
      }
    })
  }
}

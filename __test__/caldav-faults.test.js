'use strict'
// A CalDAV server that throttles, drops connections and answers slowly (a fault proxy in front of a
// real Radicale): polls retry what is worth retrying (honouring Retry-After), give up on a server
// that keeps failing without asking it again in the same run, and a calendar whose poll failed is
// never read as free.

const test = require('node:test')
const assert = require('node:assert/strict')
const crypto = require('node:crypto')

const { freshDatabase, calsync } = require('./helpers')
const seed = require('../dev/seed')
const { startCaldav, davClient, startFaultProxy, symmetricEncrypt } = require('../dev/caldav')

const { shiftClockForTesting } = calsync
const KEY = 'calsync-faults-key-0123456789abc'
const NOW = Date.parse('2027-01-04T00:00:00Z')
const range = { timeMin: '2027-01-04T00:00:00.000Z', timeMax: '2027-02-01T00:00:00.000Z' }
const event = (uid, day, summary = uid) => `BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//calsync//faults//EN\r\nBEGIN:VEVENT\r\nUID:${uid}\r\nDTSTAMP:20261201T000000Z\r\nSUMMARY:${summary}\r\nDTSTART:202701${day}T100000Z\r\nDTEND:202701${day}T110000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n`

let env, sync, server, proxy, ids, dav, urls
test.before(async () => {
  env = await freshDatabase()
  server = await startCaldav('radicale')
  proxy = await startFaultProxy(server.url)
  sync = await calsync.CalendarSync.connect({
    databaseUrl: env.url, calendsoEncryptionKey: KEY, flagCacheTtlMs: 0, retryBaseDelayMs: 20, maxAttempts: 3, requestTimeoutMs: 1000,
  })
  shiftClockForTesting(NOW - Date.now())
  await seed.setGlobalFlag(env.pg, 'calendar-subscription-cache', true)
  const userId = await seed.createUser(env.pg, { email: `owner-${crypto.randomUUID().slice(0, 8)}@example.com` })
  await seed.setUserFlag(env.pg, userId, 'calendar-subscription-cache', true)
  const key = symmetricEncrypt(JSON.stringify({ username: server.user, password: server.password, url: proxy.url }), KEY)
  const credentialId = await seed.createCredential(env.pg, { userId, type: 'caldav_calendar', key })
  dav = davClient(server)
  urls = [await dav.makeCalendar('one'), await dav.makeCalendar('two')]
  await dav.put(urls[0], 'a.ics', event('a', '11'))
  await dav.put(urls[1], 'b.ics', event('b', '12'))
  // The app's rows name the calendars through the proxy, as if it were the server.
  ids = []
  for (const u of urls) {
    ids.push(await seed.createSelectedCalendar(env.pg, { userId, integration: 'caldav_calendar', externalId: u.replace(server.url, proxy.url), credentialId }))
  }
  for (const id of ids) await sync.subscribe(id)
})
test.after(async () => {
  shiftClockForTesting(0)
  await sync?.close()
  await proxy?.close()
  await server?.close()
  await env?.teardown()
})

async function read() {
  return sync.getCachedAvailability({ selectedCalendarIds: ids, ...range })
}

const both = [['2027-01-11T10:00:00.000Z', '2027-01-11T11:00:00.000Z'], ['2027-01-12T10:00:00.000Z', '2027-01-12T11:00:00.000Z']]

test('one 503 with Retry-After, one slow answer: retried, and the poll goes through', async () => {
  assert.deepEqual((await read()).busy.map((b) => [b.start, b.end]), both)
  proxy.fail({ status: 503, retryAfter: 1, times: 1 })
  let before = proxy.requests
  let poll = await sync.pollCalendars({ intervalMs: 0 })
  assert.deepEqual([poll.unchanged, poll.failed], [2, 0])
  assert.equal(proxy.requests - before, 2, 'the refused request, then the same one after Retry-After')
  proxy.slow({ ms: 1500, times: 1 }) // longer than requestTimeoutMs: the attempt times out and is retried
  before = proxy.requests
  poll = await sync.pollCalendars({ intervalMs: 0 })
  assert.deepEqual([poll.unchanged, poll.failed], [2, 0])
  assert.equal(proxy.requests - before, 2)
  proxy.heal()
})

for (const [what, inject] of [
  ['a server that keeps answering 429', () => proxy.fail({ status: 429 })],
  ['a Retry-After longer than calsync waits', () => proxy.fail({ status: 503, retryAfter: 3600 })],
  ['dropped connections', () => proxy.drop()],
]) {
  test(`${what}: the poll gives up on that server for this run; the failed calendar reads sync_failed, never free`, async () => {
    // A change the server holds that calsync cannot fetch while the fault lasts.
    await dav.put(urls[0], 'c.ics', event('c', '13', `changed ${crypto.randomUUID()}`))
    inject()
    const poll = await sync.pollCalendars({ intervalMs: 0, concurrency: 1 })
    assert.deepEqual([poll.failed, poll.deferred, poll.synced, poll.complete], [1, 1, 0, false])
    const res = await read()
    assert.equal(res.uncached.length, 1)
    assert.equal(res.uncached[0].reason, 'sync_failed')
    assert.ok(res.busy.every((b) => b.selectedCalendarId !== res.uncached[0].id), 'nothing served for the failed calendar')
    proxy.heal()
    for (const id of ids) await sync.syncCalendar(id)
    const back = await read()
    assert.deepEqual(back.uncached, [])
    assert.ok(back.busy.some((b) => b.start === '2027-01-13T10:00:00.000Z'), 'the change is in once the server answers')
  })
}

test('a server without sync-collection: listed by ETag, every sync in full, still exact', async () => {
  proxy.fail({ status: 501, when: (method, body) => method === 'REPORT' && body.includes('sync-collection') })
  try {
    const report = await sync.syncCalendar(ids[1], { full: true })
    assert.equal(report.full, true)
    await dav.put(urls[1], 'd.ics', event('d', '14'))
    const again = await sync.syncCalendar(ids[1])
    assert.equal(again.full, true, 'with no token to list from, the next sync is full too')
    const res = await read()
    assert.deepEqual(res.uncached, [])
    assert.ok(res.busy.some((b) => b.start === '2027-01-14T10:00:00.000Z' && b.selectedCalendarId === ids[1]))
    assert.ok(res.busy.some((b) => b.start === '2027-01-12T10:00:00.000Z' && b.selectedCalendarId === ids[1]))
  } finally {
    proxy.heal()
  }
})

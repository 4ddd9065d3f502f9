'use strict'
// CalDAV in `npm run bench` (`--only=caldav`), against a real Radicale (dev/caldav.js): what a poll
// of an idle account costs, a 5 000-event calendar's first sync, and the read of a user whose
// calendars are Google, Outlook and CalDAV, beside what Cal.com does without the cache: one live
// `calendar-query` with `expand` per lookup.

const seed = require('../dev/seed')
const { startCaldav, davClient, symmetricEncrypt } = require('../dev/caldav')
const { CalendarSync } = require('../calsync.js')

const KEY = 'calsync-bench-key-0123456789abcd'
const DAY = 24 * 3600 * 1000

const encrypt = (text) => symmetricEncrypt(text, KEY)

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const p99 = (xs) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * 0.99))]

async function requests(sync) {
  let n = 0
  for (const m of (await sync.metrics()).matchAll(/^calsync_provider_requests_total\{endpoint="caldav\.[^"]+"[^}]*\} (\d+)/gm)) n += Number(m[1])
  return n
}

function ics(events) {
  return `BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//calsync//bench//EN\r\n${events.join('')}END:VCALENDAR\r\n`
}

/** `count` one-hour events over 150 days from tomorrow; every tenth a weekly series of 8 in Berlin. */
function events(count, prefix) {
  const day0 = Math.ceil(Date.now() / DAY) * DAY
  const out = []
  for (let i = 0; i < count; i++) {
    const start = new Date(day0 + ((i * 7919) % (150 * 24)) * 3600 * 1000)
    const stamp = start.toISOString().replace(/[-:]/g, '').slice(0, 15)
    const lines = i % 10 === 0
      ? [`DTSTART;TZID=Europe/Berlin:${stamp}`, 'DURATION:PT1H', 'RRULE:FREQ=WEEKLY;COUNT=8']
      : [`DTSTART:${stamp}Z`, 'DURATION:PT1H']
    out.push(`BEGIN:VEVENT\r\nUID:${prefix}-${i}\r\nDTSTAMP:20260101T000000Z\r\nSUMMARY:event ${i}\r\nLOCATION:Room 4\r\n${lines.join('\r\n')}\r\nEND:VEVENT\r\n`)
  }
  return out
}

async function caldavScenario({ url, pg, record, log, quick }) {
  const server = await startCaldav('radicale')
  const bigServer = await startCaldav('radicale')
  const dav = davClient(server)
  const bigDav = davClient(bigServer)
  const sync = await CalendarSync.connect({ databaseUrl: url, calendsoEncryptionKey: KEY, maxConnections: 20 })
  try {
    const db = await pg.connect()
    let userId, credentialId, bigCredential
    try {
      await seed.setGlobalFlag(db, 'calendar-subscription-cache', true)
      userId = await seed.createUser(db, { email: 'bench-caldav@example.com' })
      await seed.setUserFlag(db, userId, 'calendar-subscription-cache', true)
      credentialId = await seed.createCredential(db, { userId, type: 'caldav_calendar', key: encrypt(JSON.stringify({ username: server.user, password: server.password, url: server.url })) })
      bigCredential = await seed.createCredential(db, { userId, type: 'caldav_calendar', key: encrypt(JSON.stringify({ username: bigServer.user, password: bigServer.password, url: bigServer.url })) })
    } finally {
      db.release()
    }
    const select = (externalId) => seed.createSelectedCalendar(pg, { userId, integration: 'caldav_calendar', externalId, credentialId })

    // 1. Polls of an idle account of five calendars: one request for all five.
    const small = []
    for (let k = 0; k < 5; k++) {
      const u = await dav.makeCalendar(`small-${k}`)
      await dav.request('PUT', u, ics(events(20, `s${k}`)), { 'Content-Type': 'text/calendar; charset=utf-8' })
      const id = await select(u)
      await sync.subscribe(id)
      small.push(id)
    }
    const idle = async (scenario, calendars) => {
      const perPoll = []
      const before = await requests(sync)
      const polls = quick ? 10 : 30
      for (let i = 0; i < polls; i++) {
        const t0 = process.hrtime.bigint()
        const r = await sync.pollCalendars({ intervalMs: 0 })
        perPoll.push(Number(process.hrtime.bigint() - t0) / 1e6)
        // (An account with one due calendar is asked with that calendar's sync-collection: a sync
        // that finds nothing.)
        if (r.failed !== 0) throw new Error(`an idle poll failed ${r.failed}`)
      }
      const perAccount = ((await requests(sync)) - before) / polls
      record(scenario, 'requests per poll', perAccount, { unit: '', baselineName: 'one sync-collection per calendar', baseline: calendars, target: '1', pass: perAccount === 1 })
      record(scenario, 'poll p50', median(perPoll), { unit: 'ms' })
    }
    await idle('CalDAV poll, idle account of 5 calendars', 5)

    // 2. A 5 000-event calendar's first sync (uploaded whole: Radicale splits it by UID), on a server
    // of its own, then its idle polls (Radicale hashes every item for a token: the server's cost).
    const count = quick ? 2000 : 5000
    const big = await bigDav.makeCalendar('big', { timeZone: 'Europe/Berlin' })
    log(`caldav: uploading ${count} events to Radicale`)
    const up = await bigDav.request('PUT', big, ics(events(count, 'big')), { 'Content-Type': 'text/calendar; charset=utf-8' })
    if (up.status !== 201 && up.status !== 204) throw new Error(`upload: ${up.status}`)
    const bigId = await seed.createSelectedCalendar(pg, { userId, integration: 'caldav_calendar', externalId: big, credentialId: bigCredential })
    const before = await requests(sync)
    const t = Date.now()
    const sub = await sync.subscribe(bigId)
    const wall = Date.now() - t
    const rows = sub.sync.upserted
    log(`caldav: first sync of ${count} objects: ${rows} busy rows, ${sub.sync.pages} pages, ${wall} ms (${sub.sync.providerMs.toFixed(0)} ms at the server, ${sub.sync.databaseMs.toFixed(0)} ms writing)`)
    const name = `CalDAV first sync (${count.toLocaleString('en-US')} objects, Radicale)`
    record(name, 'objects/s', count / (wall / 1000), { unit: 'objects/s' })
    record(name, 'wall time', wall, { unit: 'ms' })
    record(name, 'share waiting for the server', sub.sync.providerMs / wall, { unit: '' })
    record(name, 'requests', (await requests(sync)) - before, { unit: '' })

    for (const id of small) await pg.query('UPDATE "SelectedCalendar" SET "syncedAt" = now() + interval \'1 day\' WHERE id = $1', [id])
    await idle('CalDAV poll, idle 5 000-object calendar (Radicale computes its token)', 1)
    for (const id of small) await pg.query('UPDATE "SelectedCalendar" SET "syncedAt" = now() WHERE id = $1', [id])

    // 3. The read of a user with a Google, an Outlook and three CalDAV calendars, beside the live
    // CalDAV lookup Cal.com makes without the cache (calendar-query with expand, per calendar).
    const stamp = Date.now()
    await pg.query(
      `INSERT INTO "SelectedCalendar" (id, "userId", integration, "externalId", "channelId", "channelExpiration", "syncSubscribedAt", "syncToken", "syncedAt")
       VALUES ($1, $3, 'google_calendar', 'g@bench.example', 'ch-g', now() + interval '6 days', now(), 't', now()),
              ($2, $3, 'office365_calendar', 'AAMk-bench', 'ch-o', now() + interval '2 days', now(), 't', now())`,
      [`g-${stamp}`, `o-${stamp}`, userId],
    )
    await pg.query(
      `INSERT INTO "CalendarSyncState" ("selectedCalendarId", "windowStart", "windowEnd", "updatedAt")
       VALUES ($1, now() - interval '1 day', now() + interval '180 days', now()), ($2, now() - interval '1 day', now() + interval '180 days', now())`,
      [`g-${stamp}`, `o-${stamp}`],
    )
    const timeMin = new Date(Math.ceil(Date.now() / DAY) * DAY).toISOString()
    const timeMax = new Date(Date.parse(timeMin) + 7 * DAY).toISOString()
    const ids = [`g-${stamp}`, `o-${stamp}`, ...small.slice(0, 3)]
    const check = await sync.getCachedAvailability({ selectedCalendarIds: ids, timeMin, timeMax })
    if (check.uncached.length) throw new Error(`mixed read: ${JSON.stringify(check.uncached)}`)
    const reads = []
    for (let i = 0; i < (quick ? 200 : 1000); i++) {
      const t0 = process.hrtime.bigint()
      await sync.getCachedAvailability({ selectedCalendarIds: ids, timeMin, timeMax })
      reads.push(Number(process.hrtime.bigint() - t0) / 1e6)
    }
    const calendarUrls = (await pg.query('SELECT "externalId" FROM "SelectedCalendar" WHERE id = ANY($1)', [small.slice(0, 3)])).rows.map((r) => r.externalId)
    const query = (a, b) => `<?xml version="1.0" encoding="utf-8"?><c:calendar-query xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav"><d:prop><d:getetag/><c:calendar-data><c:expand start="${a}" end="${b}"/></c:calendar-data></d:prop><c:filter><c:comp-filter name="VCALENDAR"><c:comp-filter name="VEVENT"><c:time-range start="${a}" end="${b}"/></c:comp-filter></c:comp-filter></c:filter></c:calendar-query>`
    const fmt = (iso) => iso.replace(/[-:]/g, '').replace(/\.\d+/, '')
    const live = []
    for (let i = 0; i < (quick ? 20 : 50); i++) {
      const t0 = process.hrtime.bigint()
      await Promise.all(calendarUrls.map((u) => dav.request('REPORT', u, query(fmt(timeMin), fmt(timeMax)), { Depth: '1' })))
      live.push(Number(process.hrtime.bigint() - t0) / 1e6)
    }
    const name3 = 'read: Google + Outlook + 3 CalDAV calendars, one week'
    record(name3, 'p50', median(reads), { unit: 'ms', baselineName: 'live CalDAV calendar-query with expand (3 calendars in parallel, local Radicale)', baseline: median(live) })
    record(name3, 'p99', p99(reads), { unit: 'ms', baselineName: 'live, p99', baseline: p99(live) })
    log(`caldav: mixed read p50 ${median(reads).toFixed(2)} ms; live CalDAV lookup p50 ${median(live).toFixed(1)} ms`)
  } finally {
    await sync.close()
    await server.close()
    await bigServer.close()
  }
}

module.exports = { caldavScenario }

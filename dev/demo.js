'use strict'
// The demo: the main job end to end. A Google and an Outlook calendar (served by the local
// emulator) are watched, synced into Postgres, and every change made at "Google" reaches the cache
// through a push notification; an Apple calendar (a real CalDAV server, Radicale, standing in for
// iCloud) is polled; the availability the app's slot computation would get is printed after each
// step.
// It runs against DATABASE_URL's server when reachable, otherwise an embedded Postgres, always in a
// database of its own that it drops at the end.

const { Client } = require('pg')
const { startServer, createDatabase } = require('./postgres')
const { startReceiver } = require('./receiver')
const seed = require('./seed')
const { startEmulator } = require('../emulator')
const { startCaldav, davClient, symmetricEncrypt } = require('./caldav')
const { CalendarSync, applySchema } = require('../calsync.js')

const HOUR = 3600 * 1000

async function run({ log = console.log } = {}) {
  const server = await startServer({ log })
  if (!server.embedded) log('Using the Postgres server from DATABASE_URL.')
  const db = await createDatabase(server.url, 'calsync_demo')
  const pg = new Client({ connectionString: db.url })
  const emu = await startEmulator()
  // The Apple calendar's server; the demo goes on without it where Python 3 cannot run one.
  const icloud = await startCaldav('radicale').catch((e) => {
    log(`(No local CalDAV server for the Apple calendar: ${String(e.message).split('\n')[0]}; it stays uncached.)`)
    return null
  })
  let sync
  const receiver = await startReceiver(() => sync)
  try {
    log(`Created database ${db.name}; applying the schema.`)
    await applySchema({ databaseUrl: db.url })
    await pg.connect()
    log(`Provider emulator (Google Calendar API, Microsoft Graph, OAuth, push) on ${emu.url}; webhook route on ${receiver.url}.`)
    const options = {
      databaseUrl: db.url,
      googleApiUrl: `${emu.url}/calendar/v3`,
      googleTokenUrl: `${emu.url}/token`,
      googleClientId: 'demo-client',
      googleClientSecret: 'demo-secret',
      googleWebhookToken: 'demo-webhook-secret',
      googleWebhookUrl: receiver.url,
      microsoftApiUrl: `${emu.url}/v1.0`,
      microsoftTokenUrl: `${emu.url}/common/oauth2/v2.0/token`,
      microsoftClientId: 'demo-ms-client',
      microsoftClientSecret: 'demo-ms-secret',
      microsoftWebhookToken: 'demo-ms-client-state',
      microsoftWebhookUrl: receiver.url,
      calendsoEncryptionKey: DEMO_KEY,
      ...(icloud ? { appleCaldavUrl: icloud.url } : {}),
    }
    sync = await CalendarSync.connect(options)
    sync.options = options

    const day = new Date(Math.ceil(Date.now() / (24 * HOUR)) * 24 * HOUR) // tomorrow 00:00 UTC
    const at = (h, m = 0) => new Date(day.getTime() + h * HOUR + m * 60000).toISOString()
    const calendarId = 'ada@acme.example'
    emu.google.createCalendar(calendarId, { timeZone: 'Europe/Berlin' })
    const outlookId = 'AAMkADdemo-outlook'
    emu.microsoft.createCalendar(outlookId)
    const appleUrl = icloud ? await davClient(icloud).makeCalendar('home', { timeZone: 'Europe/Berlin' }) : 'home'
    const ids = await seedDemo(pg, emu, calendarId, outlookId, icloud, appleUrl)
    const g = emu.google
    await g.insertEvent(calendarId, { summary: 'Standup', start: { dateTime: at(8) }, end: { dateTime: at(8, 15) }, recurrence: ['RRULE:FREQ=DAILY;COUNT=5'] })
    await g.insertEvent(calendarId, { summary: '1:1', start: { dateTime: at(9) }, end: { dateTime: at(10) } })
    await g.insertEvent(calendarId, { summary: 'Focus', start: { dateTime: at(13) }, end: { dateTime: at(15) }, transparency: 'transparent' })

    const timeMin = at(7)
    const timeMax = at(17)
    const show = async (title) => {
      const t = process.hrtime.bigint()
      const res = await sync.getCachedAvailability({ selectedCalendarIds: [ids.calendar, ids.outlook, ids.unsynced, ids.apple], timeMin, timeMax })
      const ms = Number(process.hrtime.bigint() - t) / 1e6
      log(`\n${title}`)
      for (const b of res.busy) log(`  busy ${b.start.slice(11, 16)}–${b.end.slice(11, 16)} UTC  (${ids.names[b.selectedCalendarId]})`)
      if (res.busy.length === 0) log('  (no busy blocks)')
      for (const u of res.uncached) log(`  not cached: ${ids.names[u.id]} — ${u.reason}; the app asks the provider live`)
      log(`  [${ms.toFixed(2)} ms]`)
    }

    await show(`Before subscribing, ${timeMin.slice(0, 10)} 07:00–17:00 UTC:`)
    const sub = await sync.subscribe(ids.calendar)
    log(`\nSubscribed: channel ${sub.channelId.slice(0, 8)}…, full sync read ${sub.sync.upserted} busy events in ${sub.sync.pages} page(s).`)
    await show('After the first sync (the transparent "Focus" block is free):')

    // Google gets its 200 at once and the incremental sync follows; `settle()` waits for it (a
    // change within a second of the previous sync waits out the throttle first).
    const lunch = await g.insertEvent(calendarId, { summary: 'Lunch with a customer', start: { dateTime: at(12) }, end: { dateTime: at(13) } })
    await sync.settle()
    await show('Ada books lunch in Google Calendar; Google pushes a notification, calsync syncs incrementally:')
    await g.updateEvent(calendarId, lunch.id, { start: { dateTime: at(11, 30) }, end: { dateTime: at(12, 30) } })
    await sync.settle()
    await show('She moves it half an hour earlier:')
    const standup = g.calendar(calendarId).events.values().next().value
    await g.updateInstance(calendarId, standup.id, at(8), { status: 'cancelled' })
    await sync.settle()
    await show("Tomorrow's standup is cancelled (one occurrence of a recurring series):")

    const outlookSub = await sync.subscribe(ids.outlook)
    log(`\nOutlook connected too: Graph validated the webhook, subscription ${outlookSub.channelId.slice(0, 8)}… until ${outlookSub.expiration.slice(0, 16)}Z.`)
    const wall = (h) => at(h).slice(0, 19)
    await emu.microsoft.insertEvent(outlookId, {
      subject: 'Board prep', showAs: 'busy',
      start: { dateTime: wall(15), timeZone: 'GMT Standard Time' }, end: { dateTime: wall(16), timeZone: 'GMT Standard Time' },
    })
    await sync.settle() // Graph got its 202 at once; wait for the background delta sync
    await show('A meeting lands in her Outlook calendar (times in a Windows time zone); Graph notifies, calsync runs a delta sync:')

    if (icloud) await appleStep({ sync, icloud, appleUrl, ids, day, show, log })

    await migrationStep({ pg, sync, ids, calendarId, timeMin, timeMax, log, options: sync.options })

    const n = 500
    const started = process.hrtime.bigint()
    for (let i = 0; i < n; i++) await sync.getCachedAvailability({ selectedCalendarIds: [ids.calendar], timeMin, timeMax })
    const perCall = Number(process.hrtime.bigint() - started) / 1e6 / n
    const fb = g.freeBusyOf(calendarId, timeMin, timeMax)
    log(`\n${n} more reads: ${perCall.toFixed(3)} ms per call on average, one SQL round trip each.`)
    log(`Google's own freeBusy for the same range: ${fb.map((b) => `${b.start.slice(11, 16)}–${b.end.slice(11, 16)}`).join(', ')} — the same as the cache.`)
    log(`Provider calls made: Google ${emu.counter('google.events.list.sequence')} list sequences and ${emu.counter('google.notifications.sent')} notifications; Graph ${emu.counter('microsoft.delta.sequence')} delta sequences and ${emu.counter('microsoft.notifications.sent')} notifications.`)
  } finally {
    await sync?.close()
    await receiver.close()
    await emu.close()
    await icloud?.close()
    await pg.end().catch(() => {})
    await db.drop().catch(() => {})
    await server.stop()
  }
}

// The move off Cal.com's legacy JSON cache (SPEC §8, MIGRATION.md): dual-write, then one read that
// serves each user from the cache their `calendar-cache-sql` flag picks, compared with the other.
async function migrationStep({ pg, sync, ids, calendarId, timeMin, timeMax, log, options }) {
  log('\nMigrating off the legacy JSON cache ("CalendarCache", which older Cal.com releases read):')
  const report = await sync.syncCalendar(ids.calendar)
  const { rows } = await pg.query('SELECT key, value FROM "CalendarCache"')
  log(`  1. calendar-cache-sql-write has been on for the organization since the start: every sync above, and this one, rewrote Ada's legacy row in its own transaction (${report.legacyWritten} written now, ${rows.length} in the table; the team-room calendar is never subscribed, so no row claims it is free).`)
  const [row] = rows
  log(`     key ${row.key}`)
  log(`     ${row.value.calendars[calendarId].busy.length} busy blocks for ${calendarId}, as Google's freebusy would answer`)
  const reader = await CalendarSync.connect({ ...options, legacyReads: 'shadow', flagCacheTtlMs: 100 })
  try {
    const read = async (title) => {
      const res = await reader.getCachedAvailability({ selectedCalendarIds: [ids.calendar], timeMin, timeMax })
      const from = res.servedFromLegacy.length ? 'the legacy JSON cache' : 'the SQL cache'
      log(`  ${title}: served from ${from}, ${res.busy.length} busy blocks; shadow compared ${res.shadow.compared} calendar(s) with the other cache, ${res.shadow.diverged} differed`)
    }
    await read("2. legacyReads: 'shadow', calendar-cache-sql off for Ada")
    const user = (await pg.query('SELECT "userId" FROM "SelectedCalendar" WHERE id = $1', [ids.calendar])).rows[0].userId
    await seed.setUserFlag(pg, user, 'calendar-cache-sql', true)
    await new Promise((resolve) => setTimeout(resolve, 150)) // the reader's flag cache TTL
    await read('3. calendar-cache-sql on for Ada')
    const st = await sync.legacyCacheStage()
    log(`  migrate status: ${st.users} user(s) with legacy rows, ${st.writing} writing them, ${st.readingSql} reading from SQL; ${st.liveRows} live row(s); ${st.divergences} differences recorded`)
  } finally {
    await reader.close()
  }
}

// Cal.com stores Apple and CalDAV credentials encrypted with CALENDSO_ENCRYPTION_KEY.
const DEMO_KEY = 'demo-encryption-key-0123456789ab'

// iCloud has no push for third parties: the calendar is polled (`pollCalendars` from a cron route),
// one request per account when nothing changed; recurrence is expanded by calsync itself.
async function appleStep({ sync, icloud, appleUrl, ids, day, show, log }) {
  const dav = davClient(icloud)
  const ymd = day.toISOString().slice(0, 10).replaceAll('-', '')
  const vevent = (uid, lines) => `BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//calsync//demo//EN\r\nBEGIN:VEVENT\r\nUID:${uid}\r\nDTSTAMP:${ymd}T000000Z\r\n${lines.join('\r\n')}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n`
  await dav.put(appleUrl, 'gym.ics', vevent('gym', [`DTSTART;TZID=Europe/Berlin:${ymd}T070000`, 'DURATION:PT1H', 'RRULE:FREQ=DAILY;COUNT=3', 'SUMMARY:Gym']))
  const sub = await sync.subscribe(ids.apple)
  log(`\nHer Apple calendar (a CalDAV server standing in for caldav.icloud.com; the stored password decrypted with CALENDSO_ENCRYPTION_KEY): no push, so no channel; the first sync read ${sub.sync.upserted} busy instance(s) of a daily series, expanded by calsync.`)
  await show('Her 07:00 gym sessions (Berlin time) lie before the range; nothing new in it yet:')
  await dav.put(appleUrl, 'dentist.ics', vevent('dentist', [`DTSTART;TZID=Europe/Berlin:${ymd}T170000`, `DTEND;TZID=Europe/Berlin:${ymd}T180000`, 'SUMMARY:Dentist', 'X-APPLE-TRAVEL-DURATION;VALUE=DURATION:PT30M']))
  const poll = await sync.pollCalendars({ intervalMs: 0 })
  await show(`She adds a dentist appointment on her iPhone (with 30 minutes' travel time); the next poll (${poll.synced} calendar synced) brings it in:`)
}

async function seedDemo(pg, emu, calendarId, outlookId, icloud, appleUrl) {
  await seed.setGlobalFlag(pg, 'calendar-subscription-cache', true)
  const org = await seed.createTeam(pg, { name: 'Acme (organization)', isOrganization: true })
  const team = await seed.createTeam(pg, { name: 'Acme Sales', parentId: org })
  // Enabled for the organization only: Ada inherits it through her team.
  await seed.setTeamFlag(pg, org, 'calendar-subscription-cache', true)
  // The migration off the legacy JSON cache (see migrationStep): dual-write for the organization.
  for (const slug of ['calendar-cache-sql-write', 'calendar-cache-sql']) await seed.setGlobalFlag(pg, slug, true)
  await seed.setTeamFlag(pg, org, 'calendar-cache-sql-write', true)
  const user = await seed.createUser(pg, { email: calendarId, name: 'Ada' })
  await seed.addMember(pg, user, team)
  const credentialId = await seed.createCredential(pg, { userId: user, type: 'google_calendar', key: emu.google.addAccount({ email: calendarId }) })
  const calendar = await seed.createSelectedCalendar(pg, { userId: user, externalId: calendarId, credentialId })
  const unsynced = await seed.createSelectedCalendar(pg, { userId: user, externalId: 'team-room@acme.example', credentialId, eventTypeId: 42 })
  // Apple stores { username, password } only: iCloud's address is fixed (appleCaldavUrl here).
  const appleCredential = icloud
    ? await seed.createCredential(pg, { userId: user, type: 'apple_calendar', key: symmetricEncrypt(JSON.stringify({ username: icloud.user, password: icloud.password }), DEMO_KEY) })
    : null
  const apple = await seed.createSelectedCalendar(pg, { userId: user, integration: 'apple_calendar', externalId: appleUrl, credentialId: appleCredential, eventTypeId: 42 })
  const msCredential = await seed.createCredential(pg, { userId: user, type: 'office365_calendar', key: emu.microsoft.addAccount({ email: calendarId }) })
  const outlook = await seed.createSelectedCalendar(pg, { userId: user, integration: 'office365_calendar', externalId: outlookId, credentialId: msCredential })
  const names = { [calendar]: `Google ${calendarId}`, [outlook]: 'Outlook calendar', [unsynced]: 'Google team-room (not subscribed)', [apple]: 'Apple calendar' }
  return { calendar, outlook, unsynced, apple, names }
}

module.exports = { run }

'use strict'
// The demo: what the app's slot computation gets from calsync for a user whose calendars are cached.
// It runs against DATABASE_URL's server when reachable, otherwise an embedded Postgres, always in a
// database of its own that it drops at the end.

const { Client } = require('pg')
const { startServer, createDatabase } = require('./postgres')
const seed = require('./seed')
const { CalendarSync, applySchema } = require('../calsync.js')

const HOUR = 3600 * 1000

async function run({ log = console.log } = {}) {
  const server = await startServer({ log })
  if (!server.embedded) log('Using the Postgres server from DATABASE_URL.')
  const db = await createDatabase(server.url, 'calsync_demo')
  const pg = new Client({ connectionString: db.url })
  let sync
  try {
    log(`Created database ${db.name}; applying the schema.`)
    await applySchema({ databaseUrl: db.url })
    await pg.connect()
    const day = new Date(Math.ceil(Date.now() / (24 * HOUR)) * 24 * HOUR) // tomorrow 00:00 UTC
    const at = (h, m = 0) => new Date(day.getTime() + h * HOUR + m * 60000)
    const ids = await seedDemo(pg, at)

    sync = await CalendarSync.connect({ databaseUrl: db.url })
    const timeMin = at(8).toISOString()
    const timeMax = at(18).toISOString()

    log(`\nAda's own calendars, ${timeMin} to ${timeMax} (getCachedAvailability({ userId })):`)
    const byUser = await timed(() => sync.getCachedAvailability({ userId: ids.user, timeMin, timeMax }))
    print(log, byUser.value, ids.names)
    log(`  (${byUser.ms.toFixed(2)} ms)`)

    log('\nThe calendars of her "Intro call" event type, plus two the cache cannot answer for:')
    const byIds = await timed(() =>
      sync.getCachedAvailability({ selectedCalendarIds: [ids.googleForEventType, ids.unsynced, ids.apple], timeMin, timeMax }),
    )
    print(log, byIds.value, ids.names)
    log(`  (${byIds.ms.toFixed(2)} ms)`)

    const n = 200
    const started = process.hrtime.bigint()
    for (let i = 0; i < n; i++) await sync.getCachedAvailability({ userId: ids.user, timeMin, timeMax })
    const perCall = Number(process.hrtime.bigint() - started) / 1e6 / n
    log(`\n${n} more reads: ${perCall.toFixed(3)} ms per call on average (one SQL round trip each).`)
    log('Uncached calendars are for the caller to fetch live from the provider; nothing is ever reported free by omission.')
  } finally {
    await sync?.close()
    await pg.end().catch(() => {})
    await db.drop().catch(() => {})
    await server.stop()
  }
}

async function seedDemo(pg, at) {
  await seed.setGlobalFlag(pg, 'calendar-subscription-cache', true)
  const org = await seed.createTeam(pg, { name: 'Acme (organization)', isOrganization: true })
  const team = await seed.createTeam(pg, { name: 'Acme Sales', parentId: org })
  // Enabled for the organization only: Ada inherits it through her team.
  await seed.setTeamFlag(pg, org, 'calendar-subscription-cache', true)
  const user = await seed.createUser(pg, { email: 'ada@acme.example', name: 'Ada' })
  await seed.addMember(pg, user, team)
  const google = await seed.createCredential(pg, { userId: user, type: 'google_calendar' })
  const outlook = await seed.createCredential(pg, { userId: user, type: 'office365_calendar' })

  const googleCal = await seed.createSelectedCalendar(pg, { userId: user, externalId: 'ada@acme.example', credentialId: google })
  const googleForEventType = await seed.createSelectedCalendar(pg, { userId: user, externalId: 'ada@acme.example', credentialId: google, eventTypeId: 42 })
  const outlookCal = await seed.createSelectedCalendar(pg, { userId: user, integration: 'office365_calendar', externalId: 'AAMkADdemo', credentialId: outlook })
  const unsynced = await seed.createSelectedCalendar(pg, { userId: user, externalId: 'team-room@acme.example', credentialId: google, eventTypeId: 42 })
  const apple = await seed.createSelectedCalendar(pg, { userId: user, integration: 'apple_calendar', externalId: 'home', eventTypeId: 42 })
  await seed.markSynced(pg, googleCal)
  await seed.markSynced(pg, outlookCal)

  await seed.insertEvents(pg, googleCal, [
    { start: at(9), end: at(10), summary: 'Standup + planning' },
    { start: at(9, 30), end: at(10, 30), summary: 'Overlapping 1:1' },
    { start: at(13), end: at(14), summary: 'Lunch with a customer', status: 'tentative' },
    { start: at(15), end: at(16), summary: 'Cancelled review', status: 'cancelled' },
  ])
  await seed.insertEvents(pg, outlookCal, [{ start: at(16), end: at(17, 30), summary: 'Board prep' }])
  const names = {
    [googleCal]: 'Google ada@acme.example',
    [googleForEventType]: 'Google ada@acme.example (event type 42)',
    [outlookCal]: 'Outlook calendar',
    [unsynced]: 'Google team-room (never synced)',
    [apple]: 'Apple calendar',
  }
  return { user, googleForEventType, unsynced, apple, names }
}

function print(log, res, names) {
  for (const b of res.busy) log(`  busy ${b.start} → ${b.end}  ${names[b.selectedCalendarId] ?? b.selectedCalendarId}`)
  if (res.busy.length === 0) log('  (no busy blocks)')
  for (const u of res.uncached) log(`  not cached: ${names[u.id] ?? u.id} — ${u.reason}`)
}

async function timed(fn) {
  const t = process.hrtime.bigint()
  const value = await fn()
  return { value, ms: Number(process.hrtime.bigint() - t) / 1e6 }
}

module.exports = { run }

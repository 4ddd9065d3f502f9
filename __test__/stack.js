'use strict'
// A full test stack: a fresh database, the provider emulator, a webhook receiver (what the app's
// Next.js route does) and a CalendarSync instance wired to all three.

const { freshDatabase, calsync } = require('./helpers')
const { startEmulator } = require('../emulator')
const seed = require('../dev/seed')
const { startReceiver } = require('../dev/receiver')

function connectOptions(env, emu, receiverUrl, extra = {}) {
  return {
    databaseUrl: env.url,
    ...(env.readUrl ? { readDatabaseUrl: env.readUrl } : {}),
    googleApiUrl: `${emu.url}/calendar/v3`,
    googleTokenUrl: `${emu.url}/token`,
    googleClientId: 'test-client',
    googleClientSecret: 'test-client-secret',
    googleWebhookToken: 'test-webhook-secret',
    googleWebhookUrl: receiverUrl,
    microsoftApiUrl: `${emu.url}/v1.0`,
    microsoftTokenUrl: `${emu.url}/common/oauth2/v2.0/token`,
    microsoftClientId: 'test-ms-client',
    microsoftClientSecret: 'test-ms-secret',
    microsoftWebhookToken: 'test-ms-client-state',
    microsoftWebhookUrl: receiverUrl,
    retryBaseDelayMs: 20,
    flagCacheTtlMs: 0,
    syncMinIntervalMs: 0, // every notification syncs (the throttle has tests of its own)
    ...extra,
  }
}

// Google deliveries are answered once synced, so a test can check the cache as soon as the
// emulator's call returns.
// `target()`, when given, picks what handles each webhook request instead of the stack's instance.
async function startStack(options = {}, { googleOptions = { waitForSync: true }, microsoftOptions, database, target } = {}) {
  const env = await freshDatabase(database)
  const emu = await startEmulator()
  const opts = connectOptions(env, emu, 'http://unused', options)
  emu.google.registerClient(opts.googleClientId, opts.googleClientSecret)
  emu.microsoft.registerClient(opts.microsoftClientId, opts.microsoftClientSecret)
  let sync
  const receiver = await startReceiver(() => target?.() ?? sync, { googleOptions, microsoftOptions })
  sync = await calsync.CalendarSync.connect(connectOptions(env, emu, receiver.url, options))
  await seed.setGlobalFlag(env.pg, 'calendar-subscription-cache', true)
  const stack = {
    env,
    emu,
    receiver,
    sync,
    db: env.pg,
    options: connectOptions(env, emu, receiver.url, options),
    /** A user with the cache flag and a Google credential registered at the emulator. */
    async googleUser({ flags = true } = {}) {
      const userId = await seed.createUser(env.pg)
      if (flags) await seed.setUserFlag(env.pg, userId, 'calendar-subscription-cache', true)
      const key = emu.google.addAccount()
      const credentialId = await seed.createCredential(env.pg, { userId, type: 'google_calendar', key })
      return { userId, credentialId, key }
    },
    /** An emulated Google calendar selected by `user`; returns the SelectedCalendar id. */
    async googleCalendar(user, { externalId, timeZone = 'UTC', eventTypeId = null } = {}) {
      externalId ??= `cal-${Math.random().toString(36).slice(2)}@example.com`
      emu.google.createCalendar(externalId, { timeZone })
      const id = await seed.createSelectedCalendar(env.pg, {
        userId: user.userId, integration: 'google_calendar', externalId, credentialId: user.credentialId, eventTypeId,
      })
      return { id, externalId }
    },
    /** A user with the cache flag and a Microsoft credential registered at the emulator. */
    async microsoftUser({ flags = true } = {}) {
      const userId = await seed.createUser(env.pg)
      if (flags) await seed.setUserFlag(env.pg, userId, 'calendar-subscription-cache', true)
      const key = emu.microsoft.addAccount()
      const credentialId = await seed.createCredential(env.pg, { userId, type: 'office365_calendar', key })
      return { userId, credentialId, key }
    },
    /** An emulated Outlook calendar selected by `user`; returns the SelectedCalendar id. */
    async outlookCalendar(user, { externalId, eventTypeId = null } = {}) {
      externalId ??= `AAMkAD${Math.random().toString(36).slice(2)}`
      emu.microsoft.createCalendar(externalId)
      const id = await seed.createSelectedCalendar(env.pg, {
        userId: user.userId, integration: 'office365_calendar', externalId, credentialId: user.credentialId, eventTypeId,
      })
      return { id, externalId }
    },
    async close() {
      await sync.close()
      await receiver.close()
      await emu.close()
      await env.teardown()
    },
  }
  return stack
}

/** Busy intervals as [startMs, endMs] pairs, for comparing answers whatever their ISO spelling. */
const spans = (list) => list.map((b) => [Date.parse(b.start), Date.parse(b.end)])

const DAY = 24 * 3600 * 1000

/**
 * Parity check: for three ranges, the cached busy blocks of every calendar in `cals` equal what
 * `oracle(externalId, timeMin, timeMax)` (the provider's own free/busy) says. Zero differences.
 */
async function assertParity(s, cals, oracle, when) {
  const assert = require('node:assert/strict')
  const day0 = Math.ceil(Date.now() / DAY) * DAY
  const ranges = [[day0, day0 + 14 * DAY], [day0 + 3 * DAY + 5 * 3600 * 1000, day0 + 45 * DAY], [day0 + 10 * DAY, day0 + 11 * DAY]]
  let compared = 0
  for (const [a, b] of ranges) {
    const timeMin = new Date(a).toISOString()
    const timeMax = new Date(b).toISOString()
    const res = await s.sync.getCachedAvailability({ selectedCalendarIds: cals.map((c) => c.id), timeMin, timeMax })
    assert.deepEqual(res.uncached, [], when)
    const byCal = new Map(cals.map((c) => [c.id, []]))
    for (const blk of res.busy) byCal.get(blk.selectedCalendarId).push(blk)
    const diffs = []
    for (const cal of cals) {
      const got = spans(byCal.get(cal.id)).sort((x, y) => x[0] - y[0])
      const want = spans(oracle(cal.externalId, timeMin, timeMax))
      if (JSON.stringify(got) !== JSON.stringify(want)) diffs.push({ cal: cal.externalId, tz: cal.tz, got, want })
      compared++
    }
    assert.equal(diffs.length, 0, `${when}, ${timeMin}..${timeMax}: ${diffs.length} of ${cals.length} calendars differ, first: ${JSON.stringify(diffs[0])}`)
  }
  assert.equal(compared, cals.length * ranges.length)
}

module.exports = { startStack, connectOptions, spans, assertParity }

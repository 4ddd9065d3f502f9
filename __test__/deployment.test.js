'use strict'
// Deployment shapes (SPEC §12): no Postgres connection is held while a provider is slow, reads keep
// their connections, and managed-Postgres timeouts (2 s here) do not break syncs. Run through
// PgBouncer too (CALSYNC_TEST_POOLER=pgbouncer).
const test = require('node:test')
const assert = require('node:assert/strict')
const { channelToken } = require('./helpers')
const { startStack, spans } = require('./stack')

const HOUR = 3600 * 1000
const day0 = Math.ceil(Date.now() / (24 * HOUR)) * 24 * HOUR
const at = (h) => new Date(day0 + h * HOUR).toISOString()
const range = { timeMin: at(0), timeMax: at(24 * 7) }
const SLOW_MS = 2500 // above the database's 2 s idle-in-transaction and statement timeouts

let s
test.before(async () => {
  // A small pool with a short acquire timeout: a sync that held a connection while the provider is
  // slow would starve the readers into DB_UNAVAILABLE.
  s = await startStack(
    { maxConnections: 4, backgroundConnections: 1, connectTimeoutMs: 1500, maxAttempts: 2 },
    { database: { timeouts: '2s' } },
  )
})
test.after(async () => {
  await s?.close()
})

/**
 * Sessions of this database that have sat inside a transaction, doing nothing, for over 300 ms: a
 * transaction held across a provider call (the provider takes 2.5 s here). A sync's own short write
 * transaction passes through that state only between its statements.
 */
async function idleInTransaction() {
  const { rows } = await s.db.query(
    `SELECT count(*)::int AS n FROM pg_stat_activity
     WHERE datname = current_database() AND state LIKE 'idle in transaction%'
       AND clock_timestamp() - state_change > interval '300 milliseconds'`,
  )
  return rows[0].n
}

/** Polls `idleInTransaction` until `done` settles; returns the highest count seen. */
async function watchWhile(done) {
  let settled = false
  done.finally(() => (settled = true)).catch(() => {})
  let worst = 0
  let samples = 0
  while (!settled) {
    worst = Math.max(worst, await idleInTransaction())
    samples++
    await new Promise((r) => setTimeout(r, 25))
  }
  return { worst, samples }
}

async function expireToken(credentialId) {
  await s.db.query(`UPDATE "Credential" SET key = key || '{"expiry_date": 1}'::jsonb WHERE id = $1`, [credentialId])
}

test('no transaction stays open while Google is slow: token refresh, list pages and watch', async () => {
  const user = await s.googleUser()
  const cal = await s.googleCalendar(user)
  for (let i = 0; i < 25; i++) {
    await s.emu.google.insertEvent(cal.externalId, { summary: `m${i}`, start: { dateTime: at(i * 5) }, end: { dateTime: at(i * 5 + 1) } }, { notify: false })
  }
  await expireToken(user.credentialId)
  s.emu.inject({ endpoint: 'google.token', latencyMs: SLOW_MS })
  s.emu.inject({ endpoint: 'google.events.watch', latencyMs: SLOW_MS })
  s.emu.inject({ endpoint: 'google.events.list', latencyMs: SLOW_MS, times: 2 })
  const subscribing = s.sync.subscribe(cal.id) // googlePageSize default: one page, plus a retry-free list
  const { worst, samples } = await watchWhile(subscribing)
  const sub = await subscribing
  assert.ok(samples > 20, `watched ${samples} samples`)
  assert.equal(worst, 0, 'a session sat idle in a transaction while the provider was slow')
  assert.equal(sub.sync.full, true)
  const res = await s.sync.getCachedAvailability({ selectedCalendarIds: [cal.id], ...range })
  assert.deepEqual(res.uncached, [])
  assert.deepEqual(spans(res.busy), spans(s.emu.google.freeBusyOf(cal.externalId, range.timeMin, range.timeMax)))
})

test('no transaction stays open while Graph is slow: rotating token refresh and delta pages', async () => {
  const user = await s.microsoftUser()
  const cal = await s.outlookCalendar(user)
  await s.sync.subscribe(cal.id)
  await s.emu.microsoft.insertEvent(cal.externalId, { subject: 'x', start: { dateTime: at(30).slice(0, 19), timeZone: 'UTC' }, end: { dateTime: at(31).slice(0, 19), timeZone: 'UTC' } }, { notify: false })
  await expireToken(user.credentialId)
  s.emu.inject({ endpoint: 'microsoft.token', latencyMs: SLOW_MS })
  s.emu.inject({ endpoint: 'microsoft.delta', latencyMs: SLOW_MS })
  const syncing = s.sync.syncCalendar(cal.id)
  const { worst } = await watchWhile(syncing)
  const report = await syncing
  assert.equal(worst, 0)
  assert.equal(report.upserted, 1)
  const { rows } = await s.db.query('SELECT key FROM "Credential" WHERE id = $1', [user.credentialId])
  assert.ok(rows[0].key.expiry_date > Date.now() / 1000, 'the rotated token was stored')
})

test('reads keep working while every sync waits on a slow provider with expired tokens', async () => {
  const cals = []
  for (let i = 0; i < 6; i++) {
    const user = await s.googleUser()
    const cal = await s.googleCalendar(user)
    await s.emu.google.insertEvent(cal.externalId, { summary: 'm', start: { dateTime: at(10 + i) }, end: { dateTime: at(11 + i) } }, { notify: false })
    await s.sync.subscribe(cal.id)
    await expireToken(user.credentialId)
    cals.push(cal)
  }
  s.emu.inject({ endpoint: 'google.token', latencyMs: SLOW_MS, times: 100 })
  s.emu.inject({ endpoint: 'google.events.list', latencyMs: SLOW_MS, times: 100 })
  const syncs = Promise.allSettled(cals.map((c) => s.sync.syncCalendar(c.id)))
  let settled = false
  syncs.then(() => (settled = true))
  const failures = []
  let reads = 0
  while (!settled) {
    const batch = await Promise.allSettled(
      Array.from({ length: 8 }, () => s.sync.getCachedAvailability({ selectedCalendarIds: cals.map((c) => c.id), ...range })),
    )
    for (const r of batch) {
      reads++
      if (r.status === 'rejected') failures.push(r.reason.code)
      else assert.equal(r.value.served.length, cals.length)
    }
  }
  s.emu.clearFaults()
  const outcomes = await syncs
  assert.ok(reads >= 40, `only ${reads} reads ran`)
  assert.deepEqual(failures, [], 'reads failed while the provider was slow')
  assert.deepEqual(outcomes.map((o) => o.status), cals.map(() => 'fulfilled'))
})

test('a renewal pass holds no transaction across the provider calls of its batch', async () => {
  const user = await s.googleUser()
  const cals = [await s.googleCalendar(user), await s.googleCalendar(user)]
  s.emu.inject({ endpoint: 'google.events.watch', latencyMs: SLOW_MS, times: 2 })
  const renewing = s.sync.renewWatches({ resyncAfterMs: 0 })
  const { worst } = await watchWhile(renewing)
  const report = await renewing
  assert.equal(worst, 0)
  assert.ok(report.created >= cals.length, JSON.stringify(report))
})

test('a sync larger than its memory buffer stages pages, commits them atomically and equals free/busy', async () => {
  const { CalendarSync } = require('../calsync.js')
  const small = await CalendarSync.connect({ ...s.options, syncBufferEvents: 7, googlePageSize: 5 })
  try {
    const user = await s.googleUser()
    const cal = await s.googleCalendar(user, { timeZone: 'America/Los_Angeles' })
    const ids = []
    for (let i = 0; i < 40; i++) {
      const ev = await s.emu.google.insertEvent(cal.externalId, { summary: `e${i}`, start: { dateTime: at(i * 3) }, end: { dateTime: at(i * 3 + 2) } }, { notify: false })
      ids.push(ev.id)
    }
    await s.emu.google.insertEvent(cal.externalId, { summary: 'repeat', start: { dateTime: at(5) }, end: { dateTime: at(6) }, recurrence: ['RRULE:FREQ=DAILY;COUNT=12'] }, { notify: false })
    const { sync: full } = await small.subscribe(cal.id)
    assert.equal(full.full, true)
    assert.ok(full.pages >= 10, `pages: ${full.pages}`)
    const truth = () => spans(s.emu.google.freeBusyOf(cal.externalId, range.timeMin, range.timeMax))
    const cached = async () => {
      const res = await small.getCachedAvailability({ selectedCalendarIds: [cal.id], ...range })
      assert.deepEqual(res.uncached, [])
      return spans(res.busy)
    }
    assert.deepEqual(await cached(), truth())
    // An incremental sync with more changes than the buffer: moves, deletions, a change made twice.
    for (let i = 0; i < 20; i++) {
      if (i % 3 === 0) await s.emu.google.deleteEvent(cal.externalId, ids[i], { notify: false })
      else await s.emu.google.updateEvent(cal.externalId, ids[i], { start: { dateTime: at(i * 3 + 1) }, end: { dateTime: at(i * 3 + 3) } }, { notify: false })
    }
    await s.emu.google.updateEvent(cal.externalId, ids[1], { transparency: 'transparent' }, { notify: false })
    const inc = await small.syncCalendar(cal.id)
    assert.equal(inc.full, false)
    assert.deepEqual(await cached(), truth())
    const { rows } = await s.db.query('SELECT count(*)::int AS n FROM "CalendarSyncStage"')
    assert.equal(rows[0].n, 0, 'staged rows are removed once merged')
  } finally {
    await small.close()
  }
})

test('behind a pooler nobody announced (no pgbouncer=true), reads notice and stay correct', { skip: !process.env.CALSYNC_TEST_POOLER && 'runs through a pooler only' }, async () => {
  const { CalendarSync } = require('../calsync.js')
  const url = new URL(s.env.url)
  url.searchParams.delete('pgbouncer')
  const user = await s.googleUser()
  const cal = await s.googleCalendar(user)
  await s.emu.google.insertEvent(cal.externalId, { summary: 'm', start: { dateTime: at(3) }, end: { dateTime: at(4) } }, { notify: false })
  await s.sync.subscribe(cal.id)
  const want = spans(s.emu.google.freeBusyOf(cal.externalId, range.timeMin, range.timeMax))
  const instances = await Promise.all([0, 1, 2].map(() => CalendarSync.connect({ databaseUrl: url.toString(), maxConnections: 3, flagCacheTtlMs: 0 })))
  try {
    for (let round = 0; round < 20; round++) {
      const answers = await Promise.all(instances.flatMap((i) => [
        i.getCachedAvailability({ selectedCalendarIds: [cal.id], ...range }),
        i.getCachedAvailability({ userId: user.userId, ...range }),
      ]))
      for (const a of answers) assert.deepEqual(spans(a.busy), want)
    }
  } finally {
    await Promise.all(instances.map((i) => i.close()))
  }
})

/** A subscribed Google calendar and the headers of a change notification on its channel. */
async function subscribedGoogleCalendar() {
  const cal = await s.googleCalendar(await s.googleUser())
  const sub = await s.sync.subscribe(cal.id)
  const { rows: [row] } = await s.db.query('SELECT "channelResourceId" FROM "SelectedCalendar" WHERE id = $1', [cal.id])
  const headers = {
    'x-goog-channel-id': sub.channelId,
    'x-goog-channel-token': channelToken(s.options.googleWebhookToken, sub.channelId),
    'x-goog-resource-id': row.channelResourceId,
    'x-goog-resource-state': 'exists',
    'x-goog-message-number': '7',
  }
  return { cal, headers }
}

test('a database that does not answer (a lock here): reads reject after readTimeoutMs, webhooks answer 503 after connectTimeoutMs, both work after', async () => {
  const { CalendarSync } = require('../calsync.js')
  const { Client } = require('pg')
  const { cal, headers } = await subscribedGoogleCalendar()
  const sync = await CalendarSync.connect({ ...s.options, connectTimeoutMs: 1000, readTimeoutMs: 1000 })
  const locker = new Client({ connectionString: s.env.directUrl })
  await locker.connect()
  // A migration's lock (or, through PgBouncer, a server that went away) leaves statements waiting;
  // both calls must give up before the database's own 2 s statement timeout would end them.
  const blocked = async (table, call, check) => {
    await locker.query('BEGIN')
    await locker.query(`LOCK TABLE "${table}" IN ACCESS EXCLUSIVE MODE`)
    try {
      const started = Date.now()
      await check(call())
      const waited = Date.now() - started
      assert.ok(waited >= 900 && waited < 1900, `${table} locked: the call gave up after ${waited} ms`)
    } finally {
      await locker.query('COMMIT')
    }
  }
  try {
    const read = () => sync.getCachedAvailability({ selectedCalendarIds: [cal.id], ...range })
    const notify = () => sync.handleGoogleWebhook({ headers, body: '' }, { waitForSync: true })
    assert.deepEqual((await read()).served, [cal.id])
    await blocked('CalendarCacheEvent', read, (p) => assert.rejects(p, { code: 'DB_UNAVAILABLE', message: /readTimeoutMs/ }))
    assert.deepEqual((await read()).served, [cal.id])
    await blocked('SelectedCalendar', notify, async (p) => assert.equal((await p).status, 503))
    await blocked('CalendarSyncPending', notify, async (p) => assert.equal((await p).status, 503))
    assert.equal((await notify()).status, 200)
  } finally {
    await locker.end()
    await sync.close()
  }
})

test('a pooler outage: reads reject with DB_UNAVAILABLE, webhooks answer 503, both recover', { skip: !require('../dev/pgbouncer').havePgBouncer() && 'pgbouncer is not installed' }, async () => {
  const { CalendarSync } = require('../calsync.js')
  const { startPgBouncer } = require('../dev/pgbouncer')
  const { cal, headers } = await subscribedGoogleCalendar()
  let bouncer = await startPgBouncer(s.env.serverUrl)
  const port = bouncer.port
  const sync = await CalendarSync.connect({ ...s.options, databaseUrl: bouncer.url(s.env.directUrl), connectTimeoutMs: 1500 })
  try {
    const read = () => sync.getCachedAvailability({ selectedCalendarIds: [cal.id], ...range })
    assert.deepEqual((await read()).served, [cal.id])
    await bouncer.stop()
    bouncer = null
    const started = Date.now()
    await assert.rejects(read(), { code: 'DB_UNAVAILABLE' })
    const answer = await sync.handleGoogleWebhook({ headers, body: '' })
    assert.equal(answer.status, 503)
    assert.ok(Date.now() - started < 10000, 'an outage must not hang the caller')
    bouncer = await startPgBouncer(s.env.serverUrl, { port })
    assert.deepEqual((await read()).served, [cal.id])
    assert.equal((await sync.handleGoogleWebhook({ headers, body: '' }, { waitForSync: true })).status, 200)
  } finally {
    await sync.close()
    await bouncer?.stop()
  }
})

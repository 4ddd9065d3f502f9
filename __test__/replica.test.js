'use strict'
// Reads on a streaming hot standby (readDatabaseUrl): a real primary and standby (dev/replica.js),
// no mock. Replica answers equal the primary's once it has caught up; a sync is never followed by an
// older read in the same process; replay paused, the replica killed, the primary down and the replica
// promoted each make reads go where the staleness bound allows, without an error.
const test = require('node:test')
const assert = require('node:assert/strict')
const { startStack } = require('./stack')
const { until } = require('./helpers')
const { Client } = require('pg')
const { CalendarSync } = require('../calsync.js')

const HOUR = 3600 * 1000
const day0 = Math.ceil(Date.now() / (24 * HOUR)) * 24 * HOUR
const at = (h) => new Date(day0 + h * HOUR).toISOString()
const range = { timeMin: at(0), timeMax: at(24 * 20) }
const BOUND_MS = 1000

let s
let primaryOnly
test.before(async () => {
  s = await startStack({ maxReplicaLagMs: BOUND_MS, readTimeoutMs: 3000 }, { database: { replica: true } })
  primaryOnly = await CalendarSync.connect({ ...s.options, readDatabaseUrl: [] })
})
test.after(async () => {
  await primaryOnly?.close()
  await s?.close()
})

const read = (cal, sync = s.sync) => sync.getCachedAvailability({ selectedCalendarIds: [cal.id], ...range })
const metric = async (sync, line) => {
  const text = await sync.metrics()
  const found = text.split('\n').find((l) => l.startsWith(line + ' '))
  return found ? Number(found.split(' ').pop()) : 0
}
const event = (h, summary = 'm') => ({ summary, start: { dateTime: at(h) }, end: { dateTime: at(h + 1) } })

async function subscribed(events = 3) {
  const user = await s.googleUser()
  const cal = await s.googleCalendar(user)
  for (let i = 0; i < events; i++) await s.emu.google.insertEvent(cal.externalId, event(5 + 7 * i), { notify: false })
  await s.sync.subscribe(cal.id)
  await s.sync.settle() // the first sync runs in the background
  return cal
}

/** Reads `cal` until the replica serves it again (it rests after a failure, then a probe brings it back). */
async function untilReplica(cal, sync = s.sync, ms = 20_000) {
  await until('reads served by the replica again', async () => (await read(cal, sync)).servedBy === 'replica', ms)
}

test('caught up, the replica serves reads, and its answers equal the primary\'s and the provider\'s', async () => {
  const cals = [await subscribed(), await subscribed(5)]
  await s.env.replica.caughtUp()
  const before = await metric(s.sync, 'calsync_reads_served_total{by="replica"}')
  for (const cal of cals) {
    const onReplica = await read(cal)
    const onPrimary = await read(cal, primaryOnly)
    assert.equal(onReplica.servedBy, 'replica')
    assert.equal(onPrimary.servedBy, 'primary')
    assert.deepEqual({ ...onReplica, servedBy: null }, { ...onPrimary, servedBy: null })
    assert.deepEqual(onReplica.served, [cal.id])
    const oracle = s.emu.google.freeBusyOf(cal.externalId, range.timeMin, range.timeMax)
    assert.deepEqual(onReplica.busy.map((b) => [b.start, b.end]), oracle.map((b) => [new Date(b.start).toISOString(), new Date(b.end).toISOString()]))
  }
  assert.equal(await metric(s.sync, 'calsync_reads_served_total{by="replica"}') - before, 2)
  // Flag reads go to the replica too.
  assert.equal(await s.sync.isFeatureEnabled('calendar-subscription-cache', { userId: 1 }), true)
})

test('a read right after a sync in this process is never older than the sync, even from a lagging replica', async () => {
  // A bound far above the replica's lag: only the causal check stands between a paused replica and
  // an answer older than the sync.
  const loose = await CalendarSync.connect({ ...s.options, maxReplicaLagMs: 15_000 })
  try {
    const cal = await subscribed(1)
    await s.env.replica.caughtUp()
    assert.equal((await read(cal, loose)).servedBy, 'replica')
    // Replaying, then paused: each sync is followed at once by a read.
    for (let i = 0; i < 10; i++) {
      if (i === 5) await s.env.replica.pause()
      await s.emu.google.insertEvent(cal.externalId, event(30 + 3 * i, `n${i}`), { notify: false })
      await loose.syncCalendar(cal.id)
      const answer = await read(cal, loose)
      const want = s.emu.google.freeBusyOf(cal.externalId, range.timeMin, range.timeMax).length
      assert.equal(answer.busy.length, want, `read ${i} (${answer.servedBy}) answered before the sync`)
    }
    assert.ok(await metric(loose, 'calsync_replica_fallbacks_total{reason="behind_sync",replica="1"}') > 0)
    await s.env.replica.resume()
    await s.env.replica.caughtUp()
    await untilReplica(cal, loose)
    assert.equal((await read(cal, loose)).busy.length, 11)
  } finally {
    await s.env.replica.resume().catch(() => {})
    await loose.close()
  }
})

test('a calendar this process created and synced is in reads by id and by user before the replica has its row', async () => {
  const loose = await CalendarSync.connect({ ...s.options, maxReplicaLagMs: 15_000 })
  try {
    // The user's first calendar is on the replica; the second is created, subscribed and synced
    // while the replica replays nothing, so the replica would answer with the first one alone.
    const user = await s.googleUser()
    const first = await s.googleCalendar(user)
    await s.emu.google.insertEvent(first.externalId, event(5), { notify: false })
    await loose.subscribe(first.id)
    await loose.settle()
    await s.env.replica.caughtUp()
    await s.env.replica.pause()
    const second = await s.googleCalendar(user)
    await s.emu.google.insertEvent(second.externalId, event(9), { notify: false })
    await loose.subscribe(second.id)
    await loose.settle()
    const byId = await loose.getCachedAvailability({ selectedCalendarIds: [first.id, second.id], ...range })
    assert.deepEqual(byId.served, [first.id, second.id], JSON.stringify(byId.uncached))
    assert.equal(byId.busy.length, 2)
    const byUser = await loose.getCachedAvailability({ userId: user.userId, ...range })
    assert.deepEqual(byUser.served.sort(), [first.id, second.id].sort())
    assert.equal(byUser.servedBy, 'primary')
  } finally {
    await s.env.replica.resume()
    await loose.close()
  }
})

test('replay paused: reads leave the replica once it lags past maxReplicaLagMs, and come back after resume', async () => {
  const cal = await subscribed()
  await s.env.replica.caughtUp()
  assert.equal((await read(cal)).servedBy, 'replica')
  await s.env.replica.pause()
  const pausedAt = Date.now()
  try {
    // The primary keeps writing (another process's sync): the replica receives it and replays nothing.
    await s.emu.google.insertEvent(cal.externalId, event(60), { notify: false })
    await primaryOnly.syncCalendar(cal.id)
    const answers = []
    while (Date.now() - pausedAt < BOUND_MS * 2.5) {
      const started = Date.now()
      answers.push({ started, answer: await read(cal) })
      await new Promise((r) => setTimeout(r, 50))
    }
    // No read failed; once the lag must exceed the bound (it is at least the time since the pause),
    // every read came from the primary, with the sync in it.
    const late = answers.filter((a) => a.started > pausedAt + BOUND_MS + 100)
    assert.ok(late.length > 3)
    for (const { answer } of late) {
      assert.equal(answer.servedBy, 'primary')
      assert.equal(answer.busy.length, 4)
    }
    assert.ok(await metric(s.sync, 'calsync_replica_fallbacks_total{reason="lagging",replica="1"}') > 0)
    // The gauge shows the lag the reads measured, past the bound.
    assert.ok(await metric(s.sync, 'calsync_replica_lag_seconds{replica="1"}') > BOUND_MS / 1000)
  } finally {
    await s.env.replica.resume()
  }
  await s.env.replica.caughtUp()
  await untilReplica(cal)
  assert.equal((await read(cal)).busy.length, 4)
})

test('the replica killed and restarted: reads and flag reads go to the primary without an error, then back', async () => {
  const cal = await subscribed()
  await s.env.replica.caughtUp()
  assert.equal((await read(cal)).servedBy, 'replica')
  await s.env.replica.kill()
  try {
    for (let i = 0; i < 10; i++) {
      const answer = await read(cal)
      assert.equal(answer.servedBy, 'primary')
      assert.deepEqual(answer.served, [cal.id])
      assert.equal(await s.sync.isFeatureEnabled('calendar-subscription-cache', { userId: 1 }), true)
    }
    assert.ok(await metric(s.sync, 'calsync_replica_fallbacks_total{reason="down",replica="1"}') > 0)
  } finally {
    await s.env.replica.start()
  }
  await s.env.replica.caughtUp()
  await untilReplica(cal)
})

test('the primary down: a replica within the bound keeps answering; past the bound, reads fail rather than serve older', async () => {
  const bound = 3000
  const own = await CalendarSync.connect({ ...s.options, maxReplicaLagMs: bound })
  try {
    const cal = await subscribed()
    // A commit just before the outage: the replica's last replayed commit is that fresh.
    await s.emu.google.insertEvent(cal.externalId, event(80), { notify: false })
    const committedAt = Date.now() // no later than the commit
    await own.syncCalendar(cal.id)
    await s.env.replica.caughtUp()
    await s.env.server.down()
    try {
      const during = await read(cal, own)
      assert.ok(Date.now() - committedAt < bound, 'the read came within the bound')
      assert.equal(during.servedBy, 'replica')
      assert.equal(during.busy.length, 4)
      await new Promise((r) => setTimeout(r, Math.max(0, committedAt + bound + 200 - Date.now())))
      await assert.rejects(read(cal, own), (e) => e.code === 'DB_UNAVAILABLE')
    } finally {
      await s.env.server.up()
    }
    // The fixture connection died with the server.
    await s.env.pg.end().catch(() => {})
    s.env.pg = new Client({ connectionString: s.env.directUrl })
    s.env.pg.on('error', () => {})
    await s.env.pg.connect()
    s.db = s.env.pg
    await s.env.replica.caughtUp()
    await untilReplica(cal, own)
  } finally {
    await own.close()
  }
})

test('the replica promoted: no longer a standby, so reads go to the primary', async () => {
  const cal = await subscribed()
  await s.env.replica.caughtUp()
  assert.equal((await read(cal)).servedBy, 'replica')
  await s.env.replica.promote()
  for (let i = 0; i < 5; i++) {
    const answer = await read(cal)
    assert.equal(answer.servedBy, 'primary')
    assert.deepEqual(answer.served, [cal.id])
  }
  assert.ok(await metric(s.sync, 'calsync_replica_fallbacks_total{reason="not_standby",replica="1"}') > 0)
})

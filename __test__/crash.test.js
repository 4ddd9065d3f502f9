'use strict'
// A Postgres crash (an immediate shutdown: no checkpoint, WAL not yet flushed is gone) right after
// syncs that cleared a pending mark committed without waiting for their flush (docs/durability.md,
// "Nothing acknowledged is lost"). A lost commit takes the mark's deletion with it, so the calendar is never
// left serving old data as current: it keeps its mark, and the cron syncs it again. The test starts
// its own embedded Postgres (even when DATABASE_URL is set) so that it can crash it, and makes the
// WAL writer lazy so that a crash right after a commit loses it.
const test = require('node:test')
const assert = require('node:assert/strict')
const { Client } = require('pg')
const { startStack, spans, assertParity } = require('./stack')
const { until } = require('./helpers')

const HOUR = 3600 * 1000
const day0 = Math.ceil(Date.now() / (24 * HOUR)) * 24 * HOUR
const at = (h) => new Date(day0 + h * HOUR).toISOString()
const ROUNDS = 4

let s
test.before(async () => {
  s = await startStack({ connectTimeoutMs: 1000, pendingGraceMs: 300 }, { database: { embedded: true } })
})
test.after(async () => {
  await s?.close()
})

async function direct(fn) {
  const c = new Client({ connectionString: s.env.directUrl })
  await c.connect()
  try {
    return await fn(c)
  } finally {
    await c.end()
  }
}

test('a Postgres crash right after syncs committed asynchronously: a lost commit keeps its mark, and the change is synced again', async (t) => {
  // The WAL writer flushes asynchronous commits every wal_writer_delay (200 ms by default).
  await direct((c) => c.query("ALTER SYSTEM SET wal_writer_delay = '10s'").then(() => c.query('SELECT pg_reload_conf()')))
  const cal = await s.googleCalendar(await s.googleUser())
  await s.sync.subscribe(cal.id)
  const truth = () => spans(s.emu.google.freeBusyOf(cal.externalId, at(0), at(24 * 30)))
  const cached = async () => {
    const r = await s.sync.getCachedAvailability({ selectedCalendarIds: [cal.id], timeMin: at(0), timeMax: at(24 * 30) })
    return r.served.length ? spans(r.busy) : null
  }
  let lost = 0
  for (let round = 0; round < ROUNDS; round++) {
    const h = 24 + round * 5
    // Answered once its sync has committed (the stack's receiver waits for it).
    await s.emu.google.insertEvent(cal.externalId, { summary: `crash ${round}`, start: { dateTime: at(h) }, end: { dateTime: at(h + 1) } })
    assert.deepEqual(await cached(), truth(), `round ${round}: the change is in the cache before the crash`)
    await s.env.server.crash()
    await s.env.server.up()
    const [{ rows: events }, { rows: marks }] = await direct((c) => Promise.all([
      c.query('SELECT count(*)::int AS n FROM "CalendarCacheEvent" WHERE "selectedCalendarId" = $1 AND "start" = $2', [cal.id, at(h)]),
      c.query('SELECT 1 FROM "CalendarSyncPending" WHERE "selectedCalendarId" = $1', [cal.id]),
    ]))
    if (events[0].n === 0) {
      lost++
      assert.equal(marks.length, 1, `round ${round}: the crash lost the sync's commit and with it must keep the mark`)
    }
    // Through PgBouncer, a login it tried while the server was down holds it off for its
    // server_login_retry: wait until calsync reaches the server again, as the next cron run would.
    await until('calsync to reach the restarted server', () => cached().then(() => true, (e) => {
      if (e.code !== 'DB_UNAVAILABLE') throw e
      return false
    }))
    // The cron re-drives the calendar (its mark is older than pendingGraceMs by now, or gone).
    await new Promise((r) => setTimeout(r, 400))
    await s.sync.renewWatches({})
    await s.sync.settle()
    await direct((c) => {
      s.db = c // the fixture's connection died with the server
      return assertParity(s, [cal], (id, a, b) => s.emu.google.freeBusyOf(id, a, b), `round ${round}, after the crash`)
    })
  }
  t.diagnostic(`${lost} of ${ROUNDS} crashes lost the sync's commit`)
  assert.ok(lost > 0, 'no crash lost an asynchronous commit: the case this test is for did not occur')
})

'use strict'
// A Postgres restart (SPEC §12) while webhooks, syncs, reads and a renewal run: nothing crashes or
// hangs, every failure carries a code (reads DB_UNAVAILABLE, webhooks 503, which the providers
// retry), the pools recover on their own once the server is back, and afterwards every calendar
// equals its provider's free/busy. The test starts its own embedded Postgres (even when
// DATABASE_URL is set) so that it can stop and start it.
const test = require('node:test')
const assert = require('node:assert/strict')
const { Client } = require('pg')
const { startStack, assertParity } = require('./stack')

const HOUR = 3600 * 1000
const day0 = Math.ceil(Date.now() / (24 * HOUR)) * 24 * HOUR
const at = (h) => new Date(day0 + h * HOUR).toISOString()
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

let s
test.before(async () => {
  s = await startStack({ connectTimeoutMs: 1000, readTimeoutMs: 1500, claimTtlMs: 2000 }, { googleOptions: {}, database: { embedded: true } })
  s.emu.retry.baseMs = 250
})
test.after(async () => {
  await s?.close()
})

test('Postgres restarts under load: coded errors, no hang, recovery within seconds, parity after', async (t) => {
  const google = []
  const outlook = []
  for (let i = 0; i < 4; i++) google.push(await s.googleCalendar(await s.googleUser()))
  for (let i = 0; i < 2; i++) outlook.push(await s.outlookCalendar(await s.microsoftUser()))
  for (const c of [...google, ...outlook]) await s.sync.subscribe(c.id)
  const all = [...google, ...outlook]
  const ids = all.map((c) => c.id)

  let running = true
  const reads = []
  const readLoop = (async () => {
    while (running) {
      const t = Date.now()
      try {
        await s.sync.getCachedAvailability({ selectedCalendarIds: ids, timeMin: at(0), timeMax: at(24 * 14) })
        reads.push({ t, ok: true, ms: Date.now() - t })
      } catch (e) {
        reads.push({ t, ok: false, code: e.code, ms: Date.now() - t })
      }
      await sleep(25)
    }
  })()
  let n = 0
  const changeLoop = (async () => {
    while (running) {
      const i = n++
      const cal = all[i % all.length]
      const h = 24 + (i % 200) * 3
      if (cal.externalId.startsWith('AAMk')) {
        await s.emu.microsoft.insertEvent(cal.externalId, { subject: `m${i}`, start: { dateTime: at(h).slice(0, 19), timeZone: 'UTC' }, end: { dateTime: at(h + 1).slice(0, 19), timeZone: 'UTC' } })
      } else {
        await s.emu.google.insertEvent(cal.externalId, { summary: `g${i}`, start: { dateTime: at(h) }, end: { dateTime: at(h + 1) } })
      }
      await sleep(60)
    }
  })()

  await sleep(400)
  const renewal = s.sync.renewWatches({ marginMs: 1e12 }).then((r) => ({ ok: true, r }), (e) => ({ ok: false, code: e.code }))
  await s.env.server.down()
  const downAt = Date.now()
  await sleep(2000)
  await s.env.server.up()
  const upAt = Date.now()
  // Recovery: the first read after the server is back that succeeds.
  let recovered = null
  while (!recovered && Date.now() - upAt < 20_000) {
    await sleep(50)
    recovered = reads.find((r) => r.ok && r.t >= upAt)
  }
  await sleep(500)
  running = false
  await Promise.all([readLoop, changeLoop])
  const renewed = await renewal

  assert.ok(recovered, 'reads work again after the restart')
  const recoveryMs = recovered.t + recovered.ms - upAt
  assert.ok(recoveryMs < 10_000, `recovered ${recoveryMs} ms after the server was back`)
  // Reads were in flight during the outage and failed with DB_UNAVAILABLE: directly within
  // connectTimeoutMs; through PgBouncer, a read sent just after the server went away waits in the
  // pooler's queue (CI once saw one wait out the whole outage and more) until readTimeoutMs ends it.
  const during = reads.filter((r) => r.t < upAt && r.t + r.ms > downAt)
  assert.ok(during.length > 0, 'reads ran while the server was down')
  const failed = reads.filter((r) => !r.ok)
  assert.ok(failed.length > 0, 'the outage was seen')
  assert.deepEqual([...new Set(failed.map((r) => r.code))], ['DB_UNAVAILABLE'])
  assert.ok(Math.max(...reads.map((r) => r.ms)) < 3000, 'no read outlasted readTimeoutMs')
  assert.ok(renewed.ok || renewed.code === 'DB_UNAVAILABLE', JSON.stringify(renewed))
  const statuses = new Set([...s.emu.google.deliveries, ...s.emu.microsoft.deliveries].map((d) => d.status))
  for (const st of statuses) assert.ok([200, 202, 503].includes(st), `webhook answered ${st}`)
  // A notification during the outage is refused with 503 (the provider redelivers it), through
  // PgBouncer too: its statements give up after connectTimeoutMs rather than wait in the queue.
  assert.ok(statuses.has(503), 'some notifications were refused with 503 during the outage')

  // The providers redeliver what was refused; background syncs finish; one cron pass re-drives
  // anything announced whose sync died with the connection. Then: parity, nothing lost.
  for (let i = 0; i < 200 && s.emu.retrying() > 0; i++) await sleep(100)
  assert.equal(s.emu.retrying(), 0)
  await s.sync.settle()
  await s.sync.renewWatches({})
  await s.sync.settle()
  s.db = new Client({ connectionString: s.env.directUrl }) // the fixture's connection died with the server
  await s.db.connect()
  try {
    await assertParity(s, google, (id, a, b) => s.emu.google.freeBusyOf(id, a, b), 'Google calendars after the restart')
    await assertParity(s, outlook, (id, a, b) => s.emu.microsoft.scheduleOf(id, a, b), 'Outlook calendars after the restart')
  } finally {
    await s.db.end()
  }
  t.diagnostic(`reads ${reads.length} (${failed.length} DB_UNAVAILABLE, longest ${Math.max(...reads.map((r) => r.ms))} ms), changes ${n}, webhook answers ${[...statuses].sort().join('/')}, recovered in ${recoveryMs} ms`)
})

'use strict'
// Serialized channel changes (SPEC §6): whatever subscribe, renewWatches, Graph lifecycle events
// and unsubscribe do concurrently, in any processes, each watched calendar ends with exactly the
// one live channel it stores at the provider; a channel whose opener failed or died after the
// provider granted it is stopped by the next cron pass; a notification on a channel that is still
// being stored is not dropped. Live channels are counted at the emulator.
const test = require('node:test')
const assert = require('node:assert/strict')
const { startStack } = require('./stack')
const { Worker } = require('./fault-matrix')
const { calsync } = require('./helpers')

const HOUR = 3600 * 1000
const day0 = Math.ceil(Date.now() / (24 * HOUR)) * 24 * HOUR
const at = (h) => new Date(day0 + h * HOUR).toISOString()

let s
let other // a second instance: its own pool, claims shared through the database like another process
test.before(async () => {
  s = await startStack({ claimTtlMs: 1500 }, { googleOptions: {} })
  other = await calsync.CalendarSync.connect(s.options)
})
test.after(async () => {
  await other?.close()
  await s?.close()
})

const stored = async (id) => (await s.db.query('SELECT "channelId" FROM "SelectedCalendar" WHERE id = $1', [id])).rows[0]?.channelId ?? null
const liveGoogle = (cal) => s.emu.google.liveChannels(cal.externalId).map((c) => c.id)
const liveGraph = (cal) => s.emu.microsoft.liveSubscriptions(cal.externalId).map((c) => c.id)
const settled = (promises) => Promise.allSettled(promises)
const shuffle = (list) => list.map((x) => [Math.random(), x]).sort((a, b) => a[0] - b[0]).map((x) => x[1])

async function assertOneLive(cal, live) {
  await s.sync.settle()
  await other.settle()
  const ch = await stored(cal.id)
  assert.deepEqual(live(cal), ch ? [ch] : [], `stored ${ch}, live ${JSON.stringify(live(cal))}`)
}

test('Google: concurrent subscribe, renewal and unsubscribe in two instances leave exactly the stored channel live', async () => {
  const user = await s.googleUser()
  const cal = await s.googleCalendar(user)
  for (let round = 0; round < 6; round++) {
    const ops = [
      () => s.sync.subscribe(cal.id),
      () => other.subscribe(cal.id),
      () => other.renewWatches({ marginMs: 1e12 }), // everything counts as expiring: renew
      () => s.sync.renewWatches({ marginMs: 1e12 }),
    ]
    if (round % 2 === 1) ops.push(() => other.unsubscribe(cal.id))
    const results = await settled(shuffle(ops).map((op) => op()))
    for (const r of results) if (r.status === 'rejected') assert.fail(`${r.reason.code}: ${r.reason.message}`)
    await assertOneLive(cal, liveGoogle)
  }
  await s.sync.subscribe(cal.id)
  await assertOneLive(cal, liveGoogle)
  assert.equal(liveGoogle(cal).length, 1)
})

test('Outlook: concurrent subscribe, renewal, lifecycle events and unsubscribe leave exactly the stored subscription live', async () => {
  const user = await s.microsoftUser()
  const cal = await s.outlookCalendar(user)
  await s.sync.subscribe(cal.id)
  for (let round = 0; round < 5; round++) {
    const current = await stored(cal.id)
    const ops = [
      () => s.sync.subscribe(cal.id),
      () => other.renewWatches({ marginMs: 1e12 }),
      () => (current ? s.emu.microsoft.lifecycle(current, round % 2 ? 'reauthorizationRequired' : 'subscriptionRemoved') : null),
      () => other.subscribe(cal.id),
    ]
    if (round === 3) ops.push(() => s.sync.unsubscribe(cal.id))
    const results = await settled(shuffle(ops).map((op) => op()))
    for (const r of results) if (r.status === 'rejected') assert.fail(`${r.reason.code}: ${r.reason.message}`)
    await assertOneLive(cal, liveGraph)
  }
})

test('a channel Google granted too late for its caller (timeout) is stopped by the next cron pass', async () => {
  const user = await s.googleUser()
  const cal = await s.googleCalendar(user)
  await s.sync.subscribe(cal.id)
  const first = await stored(cal.id)
  const impatient = await calsync.CalendarSync.connect({ ...s.options, requestTimeoutMs: 300 })
  try {
    // Google creates the channel but answers after the caller gave up; the retry then hears
    // channelIdNotUnique, as it would from Google.
    s.emu.inject({ endpoint: 'google.events.watch', answerDelayMs: 800, times: 1 })
    await assert.rejects(impatient.subscribe(cal.id))
  } finally {
    await impatient.close()
  }
  assert.equal(await stored(cal.id), first, 'the calendar kept its channel')
  assert.equal(liveGoogle(cal).length, 2, 'a second channel is live at Google')
  const report = await s.sync.renewWatches({})
  assert.equal(report.orphansStopped, 1, JSON.stringify(report))
  assert.deepEqual(liveGoogle(cal), [first])
  const { rows } = await s.db.query('SELECT "channelId" FROM "CalendarSyncChannel" WHERE "externalId" = $1', [cal.externalId])
  assert.deepEqual(rows.map((r) => r.channelId), [first], 'the ledger holds only the live channel')
})

async function killAfterGrant(options, id, endpoint, waitFor) {
  // A process that asks for a channel and is killed (kill -9) once the provider has granted it,
  // before the answer reaches it: its channel is live and stored nowhere but in the ledger.
  s.emu.inject({ endpoint, answerDelayMs: 5000, times: 1 })
  const w = new Worker(options)
  await w.ready
  w.call({ type: 'subscribe', calendarId: id }).catch(() => {})
  for (let i = 0; i < 1000 && !waitFor(); i++) await new Promise((r) => setTimeout(r, 5))
  await w.kill()
  assert.ok(waitFor(), 'the provider granted the channel before the kill')
}

test('kill -9 after Google granted a channel: the cron pass of another process stops it; notifications meanwhile are not dropped', async () => {
  const user = await s.googleUser()
  const cal = await s.googleCalendar(user)
  await s.sync.subscribe(cal.id)
  const first = await stored(cal.id)
  await killAfterGrant(s.options, cal.id, 'google.events.watch', () => liveGoogle(cal).length === 2)
  s.emu.clearFaults()
  const orphan = s.emu.google.liveChannels(cal.externalId).find((c) => c.id !== first)
  // A change announced on the orphan channel only (the old one already gone, say) is still taken.
  const { rows: [row] } = await s.db.query('SELECT "channelResourceId" FROM "SelectedCalendar" WHERE id = $1', [cal.id])
  await s.emu.google.insertEvent(cal.externalId, { summary: 'x', start: { dateTime: at(30) }, end: { dateTime: at(31) } }, { notify: false })
  const answer = await s.sync.handleGoogleWebhook({
    headers: { 'x-goog-channel-id': orphan.id, 'x-goog-channel-token': orphan.token, 'x-goog-resource-id': row.channelResourceId, 'x-goog-resource-state': 'exists', 'x-goog-message-number': '2' },
  }, { waitForSync: true })
  assert.equal(JSON.parse(answer.body).status, 'synced', answer.body)
  // The dead process's claim runs out (claimTtlMs); the next cron pass stops the orphan.
  await new Promise((r) => setTimeout(r, 1600))
  const report = await other.renewWatches({})
  assert.equal(report.orphansStopped, 1, JSON.stringify(report))
  assert.deepEqual(liveGoogle(cal), [first])
})

test('kill -9 after Graph granted a subscription: found again by listing and deleted', async () => {
  const user = await s.microsoftUser()
  const cal = await s.outlookCalendar(user)
  await s.sync.subscribe(cal.id)
  const first = await stored(cal.id)
  // Graph lost the subscription; the process recreating it dies before storing the new id.
  s.emu.microsoft.subscriptions.get(first).deleted = true
  await killAfterGrant(s.options, cal.id, 'microsoft.subscriptions.create', () => liveGraph(cal).length === 1)
  s.emu.clearFaults()
  assert.equal(await stored(cal.id), first, 'the dead process stored nothing')
  await new Promise((r) => setTimeout(r, 1600))
  const report = await other.renewWatches({ marginMs: 1e12 })
  assert.ok(report.orphansStopped >= 1, JSON.stringify(report))
  await assertOneLive(cal, liveGraph)
  assert.equal(liveGraph(cal).length, 1)
})

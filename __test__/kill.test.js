'use strict'
// kill -9 (SPEC §6.10, §12): app processes handling the webhook routes are killed at random points —
// while answering a notification, right after answering it, mid-sync, mid-commit, mid-renewal —
// 50 times over. Then one cron pass in a surviving process, and every calendar equals its
// provider's free/busy, with exactly its stored channel live at the provider.
const test = require('node:test')
const assert = require('node:assert/strict')
const { startStack, assertParity } = require('./stack')
const { prng } = require('./helpers')
const { Worker } = require('./fault-matrix')
const { googleEvent, outlookEvent, GOOGLE_ZONES, OUTLOOK_ZONES } = require('./random-events')

const KILLS = 50
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const seed = Number(process.env.KILL_SEED ?? Math.floor(Math.random() * 1e9))

let s
let worker = null
test.before(async () => {
  const router = {
    handleGoogleWebhook: (r, o) => (worker && !worker.dead ? worker.call({ type: 'google', request: r }) : s.sync.handleGoogleWebhook(r, o)),
    handleMicrosoftWebhook: (r, o) => (worker && !worker.dead ? worker.call({ type: 'microsoft', request: r }) : s.sync.handleMicrosoftWebhook(r, o)),
  }
  s = await startStack({ pendingGraceMs: 300, claimTtlMs: 1000, retryBaseDelayMs: 10 }, { googleOptions: {}, microsoftOptions: {}, target: () => router })
  s.emu.retry.baseMs = 40
})
test.after(async () => {
  await worker?.kill()
  await s?.close()
})

test(`${KILLS} processes killed at random points lose nothing and leak no channel (seed ${seed})`, { timeout: 600_000 }, async (t) => {
  const rnd = prng(seed)
  const pick = (xs) => xs[Math.floor(rnd() * xs.length)]
  const google = []
  const outlook = []
  for (let i = 0; i < 5; i++) google.push({ ...(await s.googleCalendar(await s.googleUser(), { timeZone: GOOGLE_ZONES[i] })), tz: GOOGLE_ZONES[i] })
  for (let i = 0; i < 5; i++) outlook.push({ ...(await s.outlookCalendar(await s.microsoftUser())), tz: OUTLOOK_ZONES[i] })
  for (const c of [...google, ...outlook]) await s.sync.subscribe(c.id)
  const change = (cal) => (google.includes(cal)
    ? s.emu.google.insertEvent(cal.externalId, googleEvent(rnd, cal.tz))
    : s.emu.microsoft.insertEvent(cal.externalId, outlookEvent(rnd, cal.tz)))

  const points = {}
  for (let k = 0; k < KILLS; k++) {
    worker = new Worker(s.options)
    await worker.ready
    const w = worker
    const point = pick(['answering', 'answered', 'mid-sync', 'mid-sync', 'mid-renewal'])
    points[point] = (points[point] ?? 0) + 1
    const cals = [pick([...google, ...outlook]), pick([...google, ...outlook])]
    if (point === 'mid-renewal') {
      // Every channel counts as expiring: Google channels are replaced, Graph ones PATCHed. Google
      // answers slowly, so some processes die after it opened a channel and before they stored it.
      s.emu.inject({ endpoint: 'google.events.watch', answerDelayMs: 150, times: 2 })
      w.call({ type: 'renew', options: { marginMs: 1e12 } }).catch(() => {})
      await sleep(Math.floor(rnd() * 500))
    } else {
      if (point === 'mid-sync') s.emu.inject({ endpoint: pick(['google.events.list', 'microsoft.delta']), latencyMs: 60, times: 1 })
      const deliveries = cals.map((c) => change(c))
      if (point === 'answering') await sleep(Math.floor(rnd() * 4))
      else await Promise.race([Promise.all(deliveries), sleep(300)])
      if (point === 'mid-sync') await sleep(5 + Math.floor(rnd() * 80))
    }
    await w.kill()
    s.emu.clearFaults()
  }
  worker = null
  // A surviving process: the providers redeliver what the dead ones never answered, the dead
  // processes' claims run out, and one cron pass runs.
  for (let i = 0; i < 400 && s.emu.retrying() > 0; i++) await sleep(25)
  await s.sync.settle()
  await sleep(1100)
  const report = await s.sync.renewWatches({})
  await s.sync.settle()
  t.diagnostic(`Google watch answers delayed for renewals that were killed: ${s.emu.counter('google.events.watch.answer_delayed')}`)
  t.diagnostic(`kill points ${JSON.stringify(points)}; cron pass ${JSON.stringify(report)}`)

  await assertParity(s, google, (id, a, b) => s.emu.google.freeBusyOf(id, a, b), `after ${KILLS} kills (seed ${seed})`)
  await assertParity(s, outlook, (id, a, b) => s.emu.microsoft.scheduleOf(id, a, b), `after ${KILLS} kills (seed ${seed})`)
  for (const cal of [...google, ...outlook]) {
    const { rows } = await s.db.query('SELECT "channelId" FROM "SelectedCalendar" WHERE id = $1', [cal.id])
    const live = google.includes(cal) ? s.emu.google.liveChannels(cal.externalId).map((c) => c.id) : s.emu.microsoft.liveSubscriptions(cal.externalId).map((x) => x.id)
    assert.deepEqual(live, [rows[0].channelId], `live channels of ${cal.externalId}`)
  }
})

'use strict'
// The randomized fault matrix: seeded scenarios of calendar changes (timed, all-day, recurring;
// created, moved, made free, deleted) under delivery faults (notifications dropped, duplicated,
// held and released reordered, delayed), provider faults (429, 5xx, expired sync tokens, timeouts),
// two app instances racing, and app processes killed with SIGKILL after acknowledging a
// notification, mid-sync, mid-commit or mid-renewal, and (`restartEvery`) Postgres restarted while
// changes arrive. Each scenario ends the way production does —
// the providers redeliver what was refused, and one cron pass runs in a surviving process — and
// then every calendar it touched must equal its provider's free/busy, with exactly one live channel.
//
// A dropped notification is only ever one that a later change of the same calendar follows (a
// provider that never says anything again cannot be noticed except by the safety net, which has
// its own test) — or one followed by a full sync (a lost notification, then an expired token), or
// by the cron pass that recreates a lapsed channel. `npm test` runs a small sample; `npm run soak`
// runs the full matrix.
//
// Real provider data and two-way sync ride along: events carry U+0000 (as Google's iCalUIDs of
// Exchange invitations do) and lone UTF-16 surrogates; some are the app's bookings (Google by
// iCalUID, Outlook through BookingReference), some of those attendees' copies, and they move, turn
// free and are deleted like the rest. Every cancellation the outbox reports is checked against the
// provider: the organizer's event must really be gone (a "phantom" cancellation otherwise). Graph
// lifecycle events are replayed, and must never add a subscription.

const path = require('node:path')
const { fork } = require('node:child_process')
const { Client } = require('pg')
const { startStack, spans } = require('./stack')
const { calsync, prng } = require('./helpers')
const { googleEvent, outlookEvent, GOOGLE_ZONES, OUTLOOK_ZONES, day0, DAY, HOUR, wall } = require('./random-events')
const fixtures = require('../dev/seed')

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const OPTIONS = { pendingGraceMs: 300, claimTtlMs: 1000, requestTimeoutMs: 800, retryBaseDelayMs: 10, syncMinIntervalMs: 0, maxReplicaLagMs: 200 }
const RANGES = [[0, 45], [3, 10], [20, 21]].map(([a, b]) => [new Date(day0 + a * DAY).toISOString(), new Date(day0 + b * DAY).toISOString()])

/** An app instance in its own process (fixtures/webhook-worker.js). */
class Worker {
  constructor(options) {
    this.child = fork(path.join(__dirname, 'fixtures', 'webhook-worker.js'), { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] })
    this.child.on('error', () => {}) // a send to a process being killed: that call rejects
    this.pending = new Map()
    this.next = 0
    this.dead = false
    this.child.on('message', (m) => {
      const p = this.pending.get(m.id)
      this.pending.delete(m.id)
      if (p) m.ok ? p.resolve(m) : p.reject(new Error(m.error))
    })
    this.exited = new Promise((resolve) => this.child.once('exit', () => {
      this.dead = true
      for (const p of this.pending.values()) p.reject(new Error('the worker was killed'))
      this.pending.clear()
      resolve()
    }))
    this.ready = this.call({ type: 'connect', options })
  }

  call(msg) {
    if (this.dead) return Promise.reject(new Error('the worker is dead'))
    const id = ++this.next
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject })
      this.child.send({ ...msg, id }, (err) => {
        if (err) {
          this.pending.delete(id)
          reject(err)
        }
      })
    })
  }

  kill() {
    if (!this.dead) this.child.kill('SIGKILL')
    return this.exited
  }
}

/**
 * Runs `scenarios` scenarios from `seed`; resolves to the figures. `log(line)` gets progress.
 * Throws (with the seed and scenario) on the first divergence unless `keepGoing`.
 */
async function runMatrix({ scenarios, seed, log = () => {}, keepGoing = false, restartEvery = 0 }) {
  let routeTo = () => 'A'
  let worker = null
  let onWorkerAnswer = null
  let onWorkerSend = null
  let A
  let B
  const handle = async (kind, request, o) => {
    const to = routeTo()
    if (to === 'W' && worker && !worker.dead) {
      // If the worker dies before answering, the receiver answers 500 and the provider redelivers.
      const w = worker
      onWorkerSend?.(w)
      const answer = await w.call({ type: kind, request })
      onWorkerAnswer?.(w)
      return answer
    }
    const inst = to === 'B' ? B : A
    return kind === 'google' ? inst.handleGoogleWebhook(request, o) : inst.handleMicrosoftWebhook(request, o)
  }
  const router = {
    handleGoogleWebhook: (r, o) => handle('google', r, o),
    handleMicrosoftWebhook: (r, o) => handle('microsoft', r, o),
  }
  // Postgres restarts need a server of the matrix's own: an embedded one.
  const s = await startStack(OPTIONS, { googleOptions: {}, microsoftOptions: {}, target: () => router, database: { embedded: restartEvery > 0 } })
  A = s.sync
  B = await calsync.CalendarSync.connect(s.options)
  s.emu.retry.baseMs = 40
  const g = s.emu.google
  const m = s.emu.microsoft
  const figures = {
    scenarios: 0, changes: 0, divergences: 0, kills: 0, renewalKills: 0, dropped: 0, duplicated: 0, reordered: 0, providerFaults: 0, expiredTokens: 0, timeouts: 0, races: 0, restarts: 0, checks: 0, retriedAfterBackoff: 0,
    unstorableStrings: 0, bookings: 0, attendeeCopies: 0, lostBeforeFullSync: 0, lapsedChannels: 0, replayedLifecycle: 0, replaysThatAddedSubscriptions: 0, bookingChanges: 0, cancellationsReported: 0, phantomCancellations: 0,
  }
  const failures = []
  const startedAt = Date.now()
  let restart = null // a Postgres restart under way: awaited before anything closes, even on failure
  try {
    // A pool of calendars that lives through the whole run, as real calendars do.
    const rndSetup = prng(seed)
    const pool = []
    for (let i = 0; i < 4; i++) {
      const tz = GOOGLE_ZONES[i % GOOGLE_ZONES.length]
      const cal = await s.googleCalendar(await s.googleUser(), { timeZone: tz })
      for (let k = 0; k < 3; k++) await g.insertEvent(cal.externalId, googleEvent(rndSetup, tz), { notify: false })
      pool.push({ ...cal, provider: 'google', tz })
    }
    for (let i = 0; i < 4; i++) {
      const tz = OUTLOOK_ZONES[i % OUTLOOK_ZONES.length]
      const cal = await s.outlookCalendar(await s.microsoftUser())
      for (let k = 0; k < 3; k++) await m.insertEvent(cal.externalId, outlookEvent(rndSetup, tz), { notify: false })
      pool.push({ ...cal, provider: 'outlook', tz })
    }
    // Two-way sync on for every user of the pool: bookings are reported, and checked.
    await fixtures.setGlobalFlag(s.db, 'calendar-subscription-sync', true)
    for (const cal of pool) {
      const { rows: [row] } = await s.db.query('SELECT "userId", "credentialId" FROM "SelectedCalendar" WHERE id = $1', [cal.id])
      Object.assign(cal, { userId: row.userId, credentialId: row.credentialId })
      await fixtures.setUserFlag(s.db, row.userId, 'calendar-subscription-sync', true)
    }
    const ctx = { s, g, m, figures }
    for (const cal of pool) await A.subscribe(cal.id)
    worker = new Worker(s.options)
    await worker.ready

    for (let n = 0; n < scenarios; n++) {
      const rnd = prng(seed * 7919 + n)
      const pick = (xs) => xs[Math.floor(rnd() * xs.length)]
      const chance = (p) => rnd() < p
      const touched = [...new Set([pick(pool), pick(pool)].slice(0, chance(0.5) ? 2 : 1))]
      const ops = Array.from({ length: 1 + Math.floor(rnd() * 5) }, () => ({ cal: pick(touched), kind: pick(['insert', 'insert', 'update', 'delete']) }))
      // A notification may be dropped only if a later, delivered one announces the same calendar.
      const announcedLater = new Set()
      for (let i = ops.length - 1; i >= 0; i--) {
        ops[i].dup = chance(0.15)
        ops[i].drop = announcedLater.has(ops[i].cal) && chance(0.25)
        if (!ops[i].drop) announcedLater.add(ops[i].cal)
      }
      // A calendar whose every notification of the scenario is lost, then a full sync (its token
      // expired) — or whose channel lapsed before the changes, then the cron pass recreates it.
      const silent = chance(0.1) ? pick(touched) : null
      const silentKind = silent ? pick(['full-sync', 'lapsed-channel']) : null
      if (silentKind === 'lapsed-channel') {
        figures.lapsedChannels++
        await lapse(ctx, silent)
      } else if (silent) figures.lostBeforeFullSync++
      for (const op of ops) if (op.cal === silent) op.drop = true
      const mode = pick(['A', 'A', 'B', 'mixed', 'worker', 'worker'])
      routeTo = mode === 'mixed' ? () => (rnd() < 0.5 ? 'A' : 'B') : mode === 'worker' ? () => 'W' : () => mode
      let killed = false
      const kill = async () => {
        const w = worker
        killed = true
        figures.kills++
        await w.kill()
      }
      const killPlan = mode === 'worker' && chance(0.6) ? pick(['at-answer', 'soon', 'later', 'before-answer']) : null
      let killing = null
      if (killPlan) {
        if (killPlan === 'before-answer') {
          // Killed while it handles a notification: before, during or just after writing the mark.
          onWorkerSend = (w) => {
            onWorkerSend = null
            killing = sleep(Math.floor(rnd() * 6)).then(() => (w === worker ? kill() : null))
          }
        } else {
          onWorkerAnswer = (w) => {
            onWorkerAnswer = null
            const delay = killPlan === 'at-answer' ? 0 : killPlan === 'soon' ? 5 + Math.floor(rnd() * 30) : 40 + Math.floor(rnd() * 200)
            killing = sleep(delay).then(() => (w === worker ? kill() : null))
          }
        }
      }
      // Provider faults during the scenario's syncs.
      for (const cal of touched) {
        if (chance(0.3)) {
          figures.providerFaults++
          const endpoint = cal.provider === 'google' ? 'google.events.list' : 'microsoft.delta'
          s.emu.inject({ endpoint, status: pick([429, 500, 502, 503]), times: 1 + Math.floor(rnd() * 3), retryAfter: 0 })
        }
        if (chance(0.1)) {
          figures.expiredTokens++
          if (cal.provider === 'google') g.expireSyncTokens(cal.externalId)
          else m.expireDeltaTokens(cal.externalId)
        }
        if (chance(0.04)) {
          figures.timeouts++
          s.emu.inject({ endpoint: cal.provider === 'google' ? 'google.events.list' : 'microsoft.delta', latencyMs: 1000, times: 1 })
        }
      }
      const hold = chance(0.2)
      if (hold) {
        g.delivery.hold = true
        m.delivery.hold = true
      }
      const delayed = chance(0.1)
      if (delayed) {
        g.delivery.delayMs = 30
        m.delivery.delayMs = 30
      }
      const races = []
      if (chance(0.2)) {
        figures.races++
        races.push(B.syncCalendar(pick(touched).id).catch(() => {}))
      }
      if (chance(0.05) && !worker.dead) {
        figures.renewalKills++
        const w = worker
        races.push(w.call({ type: 'renew', options: { marginMs: 1e12 } }).catch(() => {}))
        races.push(sleep(Math.floor(rnd() * 150)).then(() => (w === worker ? kill() : null)))
      }

      // Every `restartEvery`th scenario, Postgres stops for a second while its changes arrive.
      restart = null
      if (restartEvery && n % restartEvery === restartEvery - 1) {
        figures.restarts++
        restart = (async () => {
          await sleep(Math.floor(rnd() * 60))
          await s.env.server.down()
          await sleep(1000)
          await s.env.server.up()
        })()
        ctx.restart = restart
      }
      const pending = []
      for (const op of ops) {
        const prov = op.cal.provider === 'google' ? g : m
        prov.delivery.dropNext = op.drop ? 1 : 0
        prov.delivery.duplicateNext = op.dup ? 1 : 0
        if (op.drop) figures.dropped++
        if (op.dup) figures.duplicated++
        pending.push(change(op, rnd, ctx))
        figures.changes++
        await pending.at(-1)
        prov.delivery.dropNext = 0
        prov.delivery.duplicateNext = 0
      }
      if (hold) {
        figures.reordered++
        const order = pick(['fifo', 'reverse', 'shuffle'])
        await Promise.all([g.release(order), m.release(order)])
      }
      g.delivery.delayMs = 0
      m.delivery.delayMs = 0
      await Promise.all(races)
      await killing
      if (restart) {
        await restart
        restart = null
        ctx.restart = null
        await s.db.end().catch(() => {}) // the fixture's connection died with the server
        s.db = new Client({ connectionString: s.env.directUrl })
        s.db.on('error', () => {})
        await s.db.connect()
      }
      onWorkerAnswer = null
      onWorkerSend = null

      // What production does next: providers redeliver refused notifications; background syncs
      // finish; after a kill the dead process's claims run out; one cron pass in a survivor.
      routeTo = () => 'A'
      for (let i = 0; i < 400 && s.emu.retrying() > 0; i++) await sleep(25)
      s.emu.clearFaults()
      await Promise.all([A.settle(), B.settle(), worker.dead ? null : worker.call({ type: 'settle' }).catch(() => {})])
      // Graph lifecycle events replayed (or forged by someone who saw one clientState) for a live
      // subscription: at most a renewal, never a new subscription.
      for (const cal of touched.filter((c) => c.provider === 'outlook' && chance(0.1))) {
        figures.replayedLifecycle++
        const before = m.liveSubscriptions(cal.externalId).map((x) => x.id).sort().join()
        const item = { subscriptionId: before.split(',')[0], clientState: s.options.microsoftWebhookToken, lifecycleEvent: 'subscriptionRemoved' }
        for (let i = 0; i < 3; i++) await A.handleMicrosoftWebhook({ body: JSON.stringify({ value: [item] }) }, { waitForSync: true })
        if (before && m.liveSubscriptions(cal.externalId).map((x) => x.id).sort().join() !== before) figures.replaysThatAddedSubscriptions++
      }
      if (killed) await sleep(OPTIONS.claimTtlMs + 100)
      else await sleep(OPTIONS.pendingGraceMs + 50)
      if (silentKind === 'lapsed-channel') {
        // A renewal killed in this or an earlier scenario keeps its batch claim for ten claim
        // lifetimes; production's next cron run comes after it ran out. Let it run out now, so the
        // cron pass below is that run.
        await s.db.query(`UPDATE "CalendarSyncLease" SET "expiresAt" = now() - interval '1 second' WHERE key = $1`, [`renew:${silent.id}`])
      }
      await A.renewWatches({})
      await A.settle()
      if (silentKind === 'full-sync') {
        // Nothing announced its changes; a full sync (the safety net's, or a window refresh)
        // comes after its token expired. Should it fail, the backoff below retries it.
        figures.expiredTokens++
        if (silent.provider === 'google') g.expireSyncTokens(silent.externalId)
        else m.expireDeltaTokens(silent.externalId)
        await A.syncCalendar(silent.id).catch(() => {})
      }
      // A sync that failed under the scenario's faults waits out its backoff (a minute at first)
      // before any process retries it, and meanwhile reads report the calendar sync_failed. Let
      // that minute pass for those calendars; then what production does after it.
      const { rows: backingOff } = await s.db.query(
        `UPDATE "SelectedCalendar" SET "syncErrorAt" = "syncErrorAt" - interval '2 minutes'
         WHERE id = ANY($1) AND "syncErrorAt" IS NOT NULL AND ("syncedAt" IS NULL OR "syncErrorAt" > "syncedAt") RETURNING id`,
        [touched.map((c) => c.id)])
      if (backingOff.length) {
        figures.retriedAfterBackoff += backingOff.length
        await A.renewWatches({}) // re-drives the announced changes
        // A read finds the others (their failure was not of an announced change) and syncs them.
        await A.getCachedAvailability({ selectedCalendarIds: backingOff.map((r) => r.id), timeMin: RANGES[0][0], timeMax: RANGES[0][1] })
        await A.settle()
      }
      if (worker.dead) {
        worker = new Worker(s.options)
        await worker.ready
      }

      await checkBookingChanges(ctx, pool)
      // With a replica in the path, reads in this process see other processes' syncs once the
      // replica has replayed them (bounded staleness); this process's own are causal.
      if (s.env.replica) await s.env.replica.caughtUp()
      for (const cal of touched) {
        figures.checks++
        const diff = await divergence(s, cal)
        if (diff) {
          figures.divergences++
          const where = `scenario ${n} (seed ${seed}; reproduce: FAULT_SEED=${seed} FAULT_SCENARIOS=${n + 1})`
          const { rows: [why] } = await s.db.query(`SELECT sc."syncErrorCount", sc."syncErrorAt", sc."syncedAt", f.code, p.since AS pending
            FROM "SelectedCalendar" sc LEFT JOIN "CalendarSyncFailure" f ON f."selectedCalendarId" = sc.id
            LEFT JOIN "CalendarSyncPending" p ON p."selectedCalendarId" = sc.id WHERE sc.id = $1`, [cal.id])
          const detail = { where, mode, killPlan, ops: ops.map((o) => `${o.kind}${o.drop ? '/drop' : ''}${o.dup ? '/dup' : ''}`), hold, cal: cal.externalId, ...diff, state: why }
          failures.push(detail)
          if (!keepGoing) throw new Error(`divergence in ${where}: ${JSON.stringify(detail)}`)
        }
      }
      figures.scenarios++
      if ((n + 1) % 50 === 0) log(`${n + 1}/${scenarios} scenarios, ${figures.kills} kills, ${figures.divergences} divergences, ${Math.round((Date.now() - startedAt) / 1000)} s`)
    }
    // No channel leaked: each calendar has exactly its stored channel live at the provider.
    figures.leakedChannels = 0
    for (const cal of pool) {
      const { rows } = await s.db.query('SELECT "channelId" FROM "SelectedCalendar" WHERE id = $1', [cal.id])
      const live = cal.provider === 'google' ? g.liveChannels(cal.externalId).map((c) => c.id) : m.liveSubscriptions(cal.externalId).map((x) => x.id)
      if (live.length !== 1 || live[0] !== rows[0].channelId) figures.leakedChannels += Math.max(1, live.length - 1)
    }
  } finally {
    await restart?.catch(() => {})
    await worker?.kill()
    await B?.close()
    if (s.db !== s.env.pg) await s.db.end().catch(() => {})
    await s.close()
  }
  figures.seconds = Math.round((Date.now() - startedAt) / 1000)
  figures.replicaReads = s.replicaReads ?? 0
  figures.failures = failures
  return figures
}

const NUL = '\u0000'

/**
 * A random Google event, sometimes with strings Postgres text cannot hold as sent (NUL, half a
 * UTF-16 pair), sometimes one of the app's bookings (a single event whose iCalUID is
 * `<uid>@cal.com`), now and then an attendee's copy of one.
 */
function googleChange(rnd, tz, figures) {
  const ev = googleEvent(rnd, tz)
  if (rnd() < 0.1) {
    figures.unstorableStrings++
    ev.summary = `e${NUL}\ud83d`
    ev.iCalUID = `040000008200E00074C5B7101A82E008${Math.floor(rnd() * 1e9)}${NUL}@outlook.com`
  } else if (rnd() < 0.25) {
    figures.bookings++
    delete ev.recurrence
    ev.iCalUID = `bk-${Math.floor(rnd() * 1e12)}@cal.com`
    if (rnd() < 0.2) {
      figures.attendeeCopies++
      ev.organizer = { email: 'host@example.com', self: false }
    }
  }
  return ev
}

/** A random Outlook event; sometimes with NUL in its strings, sometimes one of the app's bookings. */
async function outlookChange(rnd, cal, { s, m, figures, restart }) {
  const ev = outlookEvent(rnd, cal.tz)
  if (rnd() < 0.1) {
    figures.unstorableStrings++
    ev.subject = `e${NUL}`
    ev.location = { displayName: `room${NUL}\udc00` }
  }
  // The app books only while its database is up: during a restart the insert is a plain event.
  const booking = !ev.rrule && rnd() < 0.25 && !restart
  const stored = await m.insertEvent(cal.externalId, ev)
  if (booking) {
    figures.bookings++
    await fixtures.createBooking(s.db, {
      uid: `bk-ms-${Math.floor(rnd() * 1e12)}`, userId: cal.userId, integration: 'office365_calendar', eventId: stored.id,
      credentialId: cal.credentialId, start: Date.parse(ev.start.dateTime.slice(0, 19) + 'Z'), end: Date.parse(ev.end.dateTime.slice(0, 19) + 'Z'),
    })
  }
  return stored
}

/** Lets the calendar's channel lapse: expired at the provider and on its row, changes go unannounced. */
async function lapse({ s, g, m }, cal) {
  const past = Date.now() - 1000
  if (cal.provider === 'google') for (const ch of g.liveChannels(cal.externalId)) ch.expiration = past
  else for (const sub of m.liveSubscriptions(cal.externalId)) sub.expirationDateTime = new Date(past).toISOString()
  await s.db.query(`UPDATE "SelectedCalendar" SET "channelExpiration" = now() AT TIME ZONE 'UTC' - interval '1 second' WHERE id = $1`, [cal.id])
}

/**
 * Takes every booking change waiting and checks each reported cancellation against the provider:
 * the event must be gone, and the calendar's copy the organizer's.
 */
async function checkBookingChanges({ s, g, m, figures }, pool) {
  const byId = new Map(pool.map((c) => [c.id, c]))
  for (;;) {
    const batch = await s.sync.takeBookingChanges({ limit: 1000, holdMs: 1 })
    if (!batch.length) return
    for (const c of batch) {
      figures.bookingChanges++
      if (!c.cancelled) continue
      figures.cancellationsReported++
      const cal = byId.get(c.selectedCalendarId)
      let real
      if (cal.provider === 'google') {
        const ev = g.calendar(cal.externalId).events.get(c.externalId)
        real = (!ev || ev.status === 'cancelled') && ev?.organizer?.self !== false
      } else {
        // Deleted, or cancelled by its organizer (Graph's isCancelled: the meeting is off).
        const ev = m.calendar(cal.externalId).events.get(c.externalId)
        real = !ev || ev.isCancelled === true
      }
      if (!real) figures.phantomCancellations++
    }
    await s.sync.ackBookingChanges(batch.map((c) => c.id))
  }
}

/** One change at the provider (notifying its watchers). */
async function change(op, rnd, ctx) {
  const { g, m, figures } = ctx
  const pick = (xs) => xs[Math.floor(rnd() * xs.length)]
  const ext = op.cal.externalId
  if (op.cal.provider === 'google') {
    const live = [...g.calendar(ext).events.values()].filter((e) => e.status !== 'cancelled' && !e.recurringEventId)
    if (op.kind === 'insert' || live.length === 0) return g.insertEvent(ext, googleChange(rnd, op.cal.tz, figures))
    const ev = pick(live)
    if (op.kind === 'delete') return g.deleteEvent(ext, ev.id)
    if (ev.start.dateTime && rnd() < 0.6) {
      const shift = (1 + Math.floor(rnd() * 6)) * HOUR * (rnd() < 0.5 ? -1 : 1)
      const move = (t) => ({ ...t, dateTime: new Date(Date.parse(t.dateTime) + shift).toISOString() })
      return g.updateEvent(ext, ev.id, { start: move(ev.start), end: move(ev.end) })
    }
    return g.updateEvent(ext, ev.id, { transparency: ev.transparency === 'transparent' ? 'opaque' : 'transparent' })
  }
  const live = [...m.calendar(ext).events.values()].filter((e) => !e.seriesMasterId && e.type !== 'occurrence' && e.type !== 'exception')
  if (op.kind === 'insert' || live.length === 0) return outlookChange(rnd, op.cal, ctx)
  const ev = pick(live)
  if (op.kind === 'delete') return m.deleteEvent(ext, ev.id)
  if (!ev.isAllDay && rnd() < 0.6) {
    const shift = (1 + Math.floor(rnd() * 6)) * HOUR * (rnd() < 0.5 ? -1 : 1)
    const move = (t) => ({ dateTime: wall(Date.parse(t.dateTime.slice(0, 19) + 'Z') + shift), timeZone: t.timeZone })
    return m.updateEvent(ext, ev.id, { start: move(ev.start), end: move(ev.end) })
  }
  return m.updateEvent(ext, ev.id, { showAs: pick(['busy', 'free', 'tentative', 'oof']) })
}

/** How the cache differs from the provider's free/busy for `cal` (null: it does not). */
async function divergence(s, cal) {
  for (const [timeMin, timeMax] of RANGES) {
    const res = await s.sync.getCachedAvailability({ selectedCalendarIds: [cal.id], timeMin, timeMax })
    if (res.servedBy === 'replica') s.replicaReads = (s.replicaReads ?? 0) + 1
    if (res.uncached.length) return { timeMin, uncached: res.uncached }
    const got = spans(res.busy).sort((x, y) => x[0] - y[0])
    const oracle = cal.provider === 'google' ? s.emu.google.freeBusyOf(cal.externalId, timeMin, timeMax) : s.emu.microsoft.scheduleOf(cal.externalId, timeMin, timeMax)
    const want = spans(oracle)
    if (JSON.stringify(got) !== JSON.stringify(want)) return { timeMin, timeMax, got, want }
  }
  return null
}

module.exports = { runMatrix, Worker }

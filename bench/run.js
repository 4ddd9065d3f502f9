'use strict'
// `npm run bench [-- --quick]`: calsync against what users would otherwise run, side by side, on the
// same database in the same run. Prints a table, writes bench/results.json (--quick:
// bench/results.quick.json) and the figures section of BENCHMARKS.md. The emulator runs in a child
// process so its cost is not counted against calsync.

const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { fork, execFileSync } = require('node:child_process')
const { watchGcPauses } = require('./gc-pauses')
const { Pool } = require('pg')
const { startServer, createDatabase } = require('../dev/postgres')
const { startReceiver } = require('../dev/receiver')
const seed = require('../dev/seed')
const { CalendarSync, applySchema } = require('../calsync.js')
const { replicaScenario } = require('./replica')
const { caldavScenario } = require('./caldav')

const QUICK = process.argv.includes('--quick')
// `--only=read,ingest` runs a subset while working on one scenario; results are then not written.
const ONLY = process.argv.find((a) => a.startsWith('--only='))?.slice(7).split(',')
const runs = (name) => !ONLY || ONLY.includes(name)
const SIZE = QUICK
  ? { readEvents: 100_000, users: 500, singleCalls: 300, throughputMs: 1500, ingest: 10_000, burst: 200, burstCalendars: 10, renew: 1000, memory: 20_000, slowReads: 400, freshness: 200, teamRows: [200_000, 1_000_000], renewGrowth: [1000, 5000] }
  : { readEvents: 1_000_000, users: 5000, singleCalls: 2000, throughputMs: 4000, ingest: 50_000, burst: 1000, burstCalendars: 50, renew: 10_000, memory: 200_000, slowReads: 800, freshness: 200, teamRows: [1_000_000, 10_000_000], renewGrowth: [1000, 10_000, 50_000] }
const CALLERS = 16
const DAY = 24 * 3600 * 1000
const FLAG = 'calendar-subscription-cache'
const READ_SQL = ['read_by_ids.sql', 'availability.sql', 'read_select.sql'].map((f) => fs.readFileSync(path.join(__dirname, '..', 'src', 'db', f), 'utf8')).join('')

const log = (...a) => console.error('[bench]', ...a)
const rows = []
const results = { quick: QUICK, sizes: SIZE, scenarios: {} }

function record(scenario, metric, value, { baseline, baselineName, target, pass, unit = '' } = {}) {
  const row = { scenario, metric, calsync: value, unit, baselineName: baselineName ?? null, baseline: baseline ?? null, target: target ?? null, pass: pass ?? null }
  if (baseline != null && value != null) row.ratio = value / baseline
  rows.push(row)
  ;(results.scenarios[scenario] ??= []).push(row)
}

function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]
}

async function latencies(n, fn) {
  const out = []
  for (let i = 0; i < n; i++) {
    const t = process.hrtime.bigint()
    await fn()
    out.push(Number(process.hrtime.bigint() - t) / 1e6)
  }
  out.sort((a, b) => a - b)
  return { p50: percentile(out, 50), p99: percentile(out, 99) }
}

async function throughput(ms, callers, fn) {
  let calls = 0
  const end = Date.now() + ms
  await Promise.all(Array.from({ length: callers }, async () => {
    while (Date.now() < end) {
      await fn()
      calls++
    }
  }))
  return calls / (ms / 1000)
}

function emulatorProcess() {
  const child = fork(path.join(__dirname, 'emulator-process.js'), { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  let next = 0
  const waiting = new Map()
  child.on('message', (m) => {
    const w = waiting.get(m.id)
    waiting.delete(m.id)
    if (m.ok) w.resolve(m.value)
    else w.reject(new Error(m.error))
  })
  const call = (cmd, args) => new Promise((resolve, reject) => {
    const id = ++next
    waiting.set(id, { resolve, reject })
    child.send({ id, cmd, args })
  })
  return { call, child }
}

// The Prisma 7 baseline (what Cal.com itself runs) lives in bench/prisma with dependencies of its
// own, installed and generated on first use; it runs under tsx in a child process and times itself.
// Returns null (with the reason logged) when it cannot be set up, for example without a registry.
async function prismaRead(args) {
  const dir = path.join(__dirname, 'prisma')
  const run = (cmd, argv, env = process.env) => execFileSync(cmd, argv, { cwd: dir, env, stdio: ['ignore', process.stderr, process.stderr] })
  try {
    if (!fs.existsSync(path.join(dir, 'node_modules', 'tsx'))) {
      log('read: installing the Prisma 7 baseline into bench/prisma (first run only)')
      run('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error'])
    }
    if (!fs.existsSync(path.join(dir, 'generated', 'client.ts'))) {
      // The schema engine cannot be downloaded here and generate does not need it: any executable will do.
      run(path.join(dir, 'node_modules', '.bin', 'prisma'), ['generate', '--schema', 'schema.prisma'], { ...process.env, PRISMA_SCHEMA_ENGINE_BINARY: process.execPath })
    }
  } catch (e) {
    log(`read: the Prisma baseline could not be set up (${e.message.split('\n')[0]}); skipped`)
    return null
  }
  const child = fork(path.join(dir, 'read.ts'), { cwd: dir, execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  try {
    const reply = await new Promise((resolve, reject) => {
      child.once('message', resolve)
      child.once('exit', (code) => reject(new Error(`the Prisma baseline exited with code ${code}`)))
      child.send(args)
    })
    if (!reply.ok) throw new Error(reply.error)
    return reply.value
  } finally {
    child.kill()
  }
}

// What Cal.com's repository does, through node-postgres: the events of the calendars in the
// range, mapped to { start, end, timeZone } in JS. An unnamed statement, as Prisma's pg adapter
// sends it: planned for its parameters on every call, so it never gets stuck on a generic plan
// that scans the (start, end) index across every calendar.
const pgBaselineRead = (pg, ids, timeMin, timeMax) => async () => {
  const r = await pg.query({
    text: `SELECT "start", "end", "timeZone" FROM "CalendarCacheEvent"
           WHERE "selectedCalendarId" = ANY($1) AND "start" < $3 AND "end" > $2 AND status <> 'cancelled'`,
    values: [ids, timeMin, timeMax],
  })
  return r.rows.map((e) => ({ start: e.start.toISOString(), end: e.end.toISOString(), timeZone: e.timeZone }))
}

// ------------------------------------------------------------------------------------- read --
/**
 * Seeds the read scenario's table: `SIZE.users` users with the cache on, 2 calendars each and 10 for
 * the target user, all synced over a wide window, `SIZE.readEvents` events in all. Returns
 * `{ target, ids }` (the target user and its calendars).
 */
async function seedReads(pg) {
  log(`read: seeding ${SIZE.readEvents} cached events for ${SIZE.users} users`)
  const db = await pg.connect()
  let target
  let ids
  try {
    await seed.setGlobalFlag(db, FLAG, true)
    await db.query(`INSERT INTO users (uuid, email) SELECT gen_random_uuid(), 'u' || i || '@bench.example' FROM generate_series(1, $1) i`, [SIZE.users])
    const { rows: [{ first }] } = await db.query('SELECT min(id) AS first FROM users')
    target = first
    await db.query(`INSERT INTO "UserFeatures" ("userId", "featureId", "enabled", "assignedBy", "updatedAt") SELECT id, $1, true, 'bench', now() FROM users`, [FLAG])
    // The target user has 10 calendars, everyone else 2; all subscribed and synced over a wide window.
    await db.query(
      `INSERT INTO "SelectedCalendar" (id, "userId", integration, "externalId", "channelId", "channelExpiration", "syncSubscribedAt", "syncToken", "syncedAt")
       SELECT 'cal-' || u.id || '-' || c, u.id, 'google_calendar', 'ext-' || u.id || '-' || c || '@bench.example', 'ch-' || u.id || '-' || c,
              now() + interval '6 days', now(), 'token', now()
       FROM users u, generate_series(1, 10) c WHERE c <= CASE WHEN u.id = $1 THEN 10 ELSE 2 END`,
      [target],
    )
    await db.query(
      `INSERT INTO "CalendarSyncState" ("selectedCalendarId", "windowStart", "windowEnd", "updatedAt")
       SELECT id, now() - interval '60 days', now() + interval '180 days', now() FROM "SelectedCalendar"`,
    )
    const { rows: [{ n: calendars }] } = await db.query('SELECT count(*)::int AS n FROM "SelectedCalendar"')
    const perCalendar = Math.ceil(SIZE.readEvents / calendars)
    await db.query(
      `INSERT INTO "CalendarCacheEvent" (id, "selectedCalendarId", "externalId", "externalEtag", "iCalUID", summary, start, "end", "timeZone", "updatedAt")
       SELECT sc.id || '-' || e, sc.id, 'e' || e, '"1"', 'e' || e || '@google.com', 'Busy',
              date_trunc('hour', now()) - interval '30 days' + ((e * 7919) % 2880) * interval '1 hour',
              date_trunc('hour', now()) - interval '30 days' + ((e * 7919) % 2880) * interval '1 hour' + interval '45 minutes',
              'UTC', now()
       FROM "SelectedCalendar" sc, generate_series(1, $1) e`,
      [perCalendar],
    )
    await db.query('ANALYZE')
    ids = (await db.query('SELECT id FROM "SelectedCalendar" WHERE "userId" = $1 ORDER BY id', [target])).rows.map((r) => r.id)
    const { rows: [{ n }] } = await db.query('SELECT count(*)::int AS n FROM "CalendarCacheEvent"')
    log(`read: ${n} events in ${calendars} calendars`)
  } finally {
    db.release()
  }
  return { target, ids }
}

async function readScenario(url, pg) {
  const { target, ids } = await seedReads(pg)
  const timeMin = new Date(Math.ceil(Date.now() / DAY) * DAY).toISOString()
  const timeMax = new Date(Date.parse(timeMin) + 31 * DAY).toISOString()
  const sync = await CalendarSync.connect({ databaseUrl: url, maxConnections: CALLERS + 1 })
  // The same read as a deployment behind a transaction-mode pooler makes it (the read function).
  const pooled = await CalendarSync.connect({ databaseUrl: url, maxConnections: CALLERS + 1, pooler: true })
  const args = { selectedCalendarIds: ids, timeMin, timeMax }
  const calsyncRead = () => sync.getCachedAvailability(args)
  const pooledRead = () => pooled.getCachedAvailability(args)
  // (a) what Cal.com's repository does, through node-postgres.
  const calcomRead = pgBaselineRead(pg, ids, timeMin, timeMax)
  // (b) the floor: calsync's own statement, prepared, raw rows, nothing done with them.
  const bareRead = () => pg.query({ name: 'bare-read', text: READ_SQL, values: [ids, timeMin, timeMax], rowMode: 'array' })
  const check = await calsyncRead()
  log(`read: ${check.busy.length} busy blocks from ${check.served.length} calendars`)
  if (check.served.length !== 10) throw new Error(`expected 10 served calendars: ${JSON.stringify(check.uncached)}`)
  for (const f of [calsyncRead, pooledRead, calcomRead, bareRead]) await latencies(200, f) // warm up (prepared statements, flag cache)
  const contenders = [['calsync', calsyncRead], ['pooled', pooledRead], ['pg', calcomRead], ['floor', bareRead]]
  const single = {}
  for (const [name, f] of contenders) single[name] = await latencies(SIZE.singleCalls, f)
  // Throughput on a shared 2-core machine drifts: three interleaved rounds, the median of each.
  const rounds = {}
  for (let round = 0; round < 3; round++) {
    for (const [name, f] of contenders) (rounds[name] ??= []).push(await throughput(SIZE.throughputMs, CALLERS, f))
  }
  const tput = Object.fromEntries(Object.entries(rounds).map(([name, r]) => [name, r.sort((a, b) => a - b)[1]]))
  log(`read: throughput rounds ${JSON.stringify(rounds)}`)
  await sync.close()
  await pooled.close()
  await legacyReads(url, pg, { target, ids, timeMin, timeMax, plain: single.calsync })
  log('read: Prisma 7 + @prisma/adapter-pg')
  const prisma = await prismaRead({ url, ids, timeMin, timeMax, warmup: 200, calls: SIZE.singleCalls, throughputMs: SIZE.throughputMs, callers: CALLERS })
  const events = (await pg.query({ text: 'SELECT count(*)::int AS n FROM "CalendarCacheEvent" WHERE "selectedCalendarId" = ANY($1) AND start < $3 AND "end" > $2', values: [ids, timeMin, timeMax] })).rows[0].n
  if (prisma && prisma.rows !== events) throw new Error(`the Prisma baseline read ${prisma.rows} events, not ${events}`)
  record('read', 'p50 latency', single.calsync.p50, { unit: 'ms', baselineName: 'bare SQL floor', baseline: single.floor.p50, target: '≤ 1.15× floor', pass: single.calsync.p50 <= 1.15 * single.floor.p50 })
  record('read', 'p99 latency', single.calsync.p99, { unit: 'ms', baselineName: 'bare SQL floor', baseline: single.floor.p99 })
  record('read', 'p50 latency', single.calsync.p50, { unit: 'ms', baselineName: 'node-postgres + JS mapping', baseline: single.pg.p50 })
  record('read', 'p99 latency', single.calsync.p99, { unit: 'ms', baselineName: 'node-postgres + JS mapping', baseline: single.pg.p99 })
  record('read', `throughput, ${CALLERS} callers`, tput.calsync, { unit: 'calls/s', baselineName: 'node-postgres + JS mapping', baseline: tput.pg, target: '≥ 2× node-postgres', pass: tput.calsync >= 2 * tput.pg })
  record('read', `throughput, ${CALLERS} callers`, tput.calsync, { unit: 'calls/s', baselineName: 'bare SQL floor', baseline: tput.floor })
  record('read', 'p50 latency, pooler mode', single.pooled.p50, { unit: 'ms', baselineName: 'calsync, direct', baseline: single.calsync.p50 })
  record('read', `throughput, ${CALLERS} callers, pooler mode`, tput.pooled, { unit: 'calls/s', baselineName: 'node-postgres + JS mapping', baseline: tput.pg, target: '≥ 1.5× node-postgres', pass: tput.pooled >= 1.5 * tput.pg })
  record('read', `throughput, ${CALLERS} callers, pooler mode`, tput.pooled, { unit: 'calls/s', baselineName: 'calsync, direct', baseline: tput.calsync, target: '≥ direct / 1.15', pass: tput.pooled * 1.15 >= tput.calsync })
  if (prisma) {
    record('read', 'p50 latency', single.calsync.p50, { unit: 'ms', baselineName: 'Prisma 7 + adapter-pg', baseline: prisma.p50 })
    record('read', 'p99 latency', single.calsync.p99, { unit: 'ms', baselineName: 'Prisma 7 + adapter-pg', baseline: prisma.p99 })
    record('read', `throughput, ${CALLERS} callers`, tput.calsync, { unit: 'calls/s', baselineName: 'Prisma 7 + adapter-pg', baseline: prisma.throughput })
  }
}

// ------------------------------------------------------------------------------- team reads --
// A round-robin team's read on a big installation: the cost of one read as the calendars per read
// grow (10 … 300, each its own host) and as the table grows (more calendars of the same density:
// 500 events each, about 2.8 a day from 20 days back to 160 ahead, like a busy work calendar), for
// calsync, node-postgres and Prisma 7, 31 days per read. Then, on the same table, the optional
// index Cal.com's table lacks ("selectedCalendarId", start) INCLUDE ("end", status), and the
// plans of the 300-calendar read with and without it. Cleanup is timed at each size.
const PER_CALENDAR = 500
const OPTIONAL_INDEX = `CREATE INDEX IF NOT EXISTS "CalendarCacheEvent_selectedCalendarId_start_idx" ON "CalendarCacheEvent" ("selectedCalendarId", "start") INCLUDE ("end", "status")`

async function seedTeamTable(pg, from, to) {
  // Drop the table's indexes while bulk-loading and rebuild them after, as a restore does; the
  // events are written server-side in chunks of 1 000 calendars (500 000 rows).
  const db = await pg.connect()
  try {
    const { rows: defs } = await db.query(`SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'CalendarCacheEvent' AND indexname <> 'CalendarCacheEvent_pkey'`)
    for (const d of defs) await db.query(`DROP INDEX "${d.indexname}"`)
    await db.query('ALTER TABLE "CalendarCacheEvent" DROP CONSTRAINT "CalendarCacheEvent_pkey"')
    await db.query(`INSERT INTO users (uuid, email) SELECT gen_random_uuid(), 'team' || i || '@bench.example' FROM generate_series($1::int, $2::int - 1) i`, [from, to])
    await db.query(
      `INSERT INTO "UserFeatures" ("userId", "featureId", "enabled", "assignedBy", "updatedAt")
       SELECT u.id, $3, true, 'bench', now() FROM generate_series($1::int, $2::int - 1) i JOIN users u ON u.email = 'team' || i || '@bench.example'`,
      [from, to, FLAG],
    )
    await db.query(
      `INSERT INTO "SelectedCalendar" (id, "userId", integration, "externalId", "channelId", "channelExpiration", "syncSubscribedAt", "syncToken", "syncedAt")
       SELECT 'team-' || lpad(i::text, 6, '0'), u.id, 'google_calendar', 'team' || i || '@bench.example', 'ch-team-' || i, now() + interval '6 days', now(), 'token', now()
       FROM generate_series($1::int, $2::int - 1) i JOIN users u ON u.email = 'team' || i || '@bench.example'`,
      [from, to],
    )
    await db.query(
      `INSERT INTO "CalendarSyncState" ("selectedCalendarId", "windowStart", "windowEnd", "updatedAt")
       SELECT id, now() - interval '21 days', now() + interval '180 days', now() FROM "SelectedCalendar" WHERE id >= $1 AND id < $2`,
      [`team-${String(from).padStart(6, '0')}`, `team-${String(to).padStart(6, '0')}`],
    )
    for (let at = from; at < to; at += 1000) {
      const t = Date.now()
      await db.query(
        `INSERT INTO "CalendarCacheEvent" (id, "selectedCalendarId", "externalId", "externalEtag", "iCalUID", summary, start, "end", "timeZone", "updatedAt")
         SELECT c.id || '-' || e, c.id, 'e' || e, '"1"', c.id || '-' || e || '@google.com', 'Busy', s, s + (30 + 30 * (e % 2)) * interval '1 minute', 'UTC', now()
         FROM (SELECT 'team-' || lpad(i::text, 6, '0') AS id, i FROM generate_series($1::int, $2::int - 1) i) c,
              generate_series(1, ${PER_CALENDAR}) e,
              LATERAL (SELECT date_trunc('day', now()) - interval '20 days' + ((e * 17 + c.i * 7) % 8640) * interval '30 minutes' AS s) x`,
        [at, Math.min(to, at + 1000)],
      )
      log(`team: calendars ${at}…${Math.min(to, at + 1000) - 1} seeded (${Date.now() - t} ms)`)
    }
    const t = Date.now()
    await db.query(`SET maintenance_work_mem = '1GB'`)
    await db.query('ALTER TABLE "CalendarCacheEvent" ADD CONSTRAINT "CalendarCacheEvent_pkey" PRIMARY KEY (id)')
    for (const d of defs) await db.query(d.indexdef)
    await db.query('VACUUM (ANALYZE) "CalendarCacheEvent"')
    await db.query('ANALYZE')
    log(`team: indexes rebuilt and vacuumed (${Date.now() - t} ms)`)
  } finally {
    db.release()
  }
}

async function teamScenario(url, pg) {
  const widths = [10, 50, 100, 300]
  const timeMin = new Date(Math.ceil(Date.now() / DAY) * DAY).toISOString()
  const timeMax = new Date(Date.parse(timeMin) + 31 * DAY).toISOString()
  const calls = QUICK ? 50 : 150
  const tputMs = QUICK ? 1000 : 2000
  const sync = await CalendarSync.connect({ databaseUrl: url, maxConnections: CALLERS + 1 })
  results.team = { perCalendar: PER_CALENDAR, sizes: {} }
  let calendars = 0
  try {
    for (const rowsWanted of SIZE.teamRows) {
      const want = rowsWanted / PER_CALENDAR
      const t = Date.now()
      await seedTeamTable(pg, calendars, want)
      calendars = want
      const { rows: [{ n }] } = await pg.query('SELECT count(*)::int AS n FROM "CalendarCacheEvent"')
      const size = `${(n / 1e6).toFixed(n < 1e6 ? 1 : 0)} M events`
      log(`team: ${n} events in ${calendars} calendars (${((Date.now() - t) / 1000).toFixed(0)} s to seed)`)
      const out = (results.team.sizes[size] = { events: n, calendars, seedSeconds: (Date.now() - t) / 1000, widths: {} })
      // Every host of the team a different user; every 7th calendar, spread over the table.
      const team = Array.from({ length: 300 }, (_, i) => `team-${String((i * 7) % calendars).padStart(6, '0')}`)
      const measureWidths = async (label, withPrisma) => {
        for (const w of widths) {
          const ids = team.slice(0, w)
          const args = { selectedCalendarIds: ids, timeMin, timeMax }
          const check = await sync.getCachedAvailability(args)
          if (check.served.length !== w) throw new Error(`team: ${w - check.served.length} calendars not served: ${JSON.stringify(check.uncached.slice(0, 3))}`)
          const calsyncRead = () => sync.getCachedAvailability(args)
          const pgRead = pgBaselineRead(pg, ids, timeMin, timeMax)
          const rowsRead = (await pgRead()).length
          for (const f of [calsyncRead, pgRead]) await latencies(20, f)
          const lat = { calsync: await latencies(calls, calsyncRead), pg: await latencies(calls, pgRead) }
          const tput = { calsync: await throughput(tputMs, CALLERS, calsyncRead), pg: await throughput(tputMs, CALLERS, pgRead) }
          const prisma = withPrisma ? await prismaRead({ url, ids, timeMin, timeMax, warmup: 20, calls, throughputMs: tputMs, callers: CALLERS }) : null
          if (prisma && prisma.rows !== rowsRead) throw new Error(`team: Prisma read ${prisma.rows} events, not ${rowsRead}`)
          log(`team ${size}${label}, ${w} calendars (${rowsRead} events, ${check.busy.length} busy blocks): p50 calsync ${lat.calsync.p50.toFixed(2)} / pg ${lat.pg.p50.toFixed(2)}${prisma ? ` / Prisma ${prisma.p50.toFixed(2)}` : ''} ms; throughput ${tput.calsync.toFixed(0)} / ${tput.pg.toFixed(0)}${prisma ? ` / ${prisma.throughput.toFixed(0)}` : ''} calls/s`)
          out.widths[`${w}${label}`] = { events: rowsRead, busyBlocks: check.busy.length, calsync: { ...lat.calsync, throughput: tput.calsync }, pg: { ...lat.pg, throughput: tput.pg }, prisma }
          const scenario = `team read, ${size}${label}`
          record(scenario, `${w} calendars, p50`, lat.calsync.p50, { unit: 'ms', baselineName: 'node-postgres + JS mapping', baseline: lat.pg.p50 })
          if (prisma) record(scenario, `${w} calendars, p50`, lat.calsync.p50, { unit: 'ms', baselineName: 'Prisma 7 + adapter-pg', baseline: prisma.p50 })
          record(scenario, `${w} calendars, throughput ${CALLERS} callers`, tput.calsync, { unit: 'calls/s', baselineName: 'node-postgres + JS mapping', baseline: tput.pg, target: '≥ 1.5× node-postgres', pass: tput.calsync >= 1.5 * tput.pg })
          if (prisma) record(scenario, `${w} calendars, throughput ${CALLERS} callers`, tput.calsync, { unit: 'calls/s', baselineName: 'Prisma 7 + adapter-pg', baseline: prisma.throughput })
        }
        const r10 = out.widths[`10${label}`].calsync.p50
        const r300 = out.widths[`300${label}`].calsync.p50
        record(`team read, ${size}${label}`, '300 calendars vs 10, p50', r300, { unit: 'ms', baselineName: '10 calendars', baseline: r10, target: calendars * PER_CALENDAR >= 1e7 ? '≤ 3×' : undefined, pass: calendars * PER_CALENDAR >= 1e7 ? r300 <= 3 * r10 : undefined })
      }
      const explain = async () => {
        const { rows } = await pg.query({
          text: `EXPLAIN (ANALYZE, BUFFERS) SELECT e."selectedCalendarId", array_agg(e.start), array_agg(e."end") FROM "CalendarCacheEvent" e
                 WHERE e."selectedCalendarId" = ANY($1) AND e.start + interval '0' < $3 AND e."end" + interval '0' > $2 AND e.status <> 'cancelled'
                 GROUP BY e."selectedCalendarId"`,
          values: [team, timeMin, timeMax],
        })
        return rows.map((r) => r['QUERY PLAN'])
      }
      await measureWidths('', true)
      out.explain = await explain()
      await pg.query(OPTIONAL_INDEX)
      await pg.query('VACUUM (ANALYZE) "CalendarCacheEvent"')
      await measureWidths(', optional index', false)
      out.explainWithIndex = await explain()
      await pg.query(`DROP INDEX "CalendarCacheEvent_selectedCalendarId_start_idx"`)
      // Cleanup of the events that ended (about 1 in 9 here), timed.
      const c0 = Date.now()
      const cleaned = await sync.cleanup()
      const cleanupSeconds = (Date.now() - c0) / 1000
      out.cleanup = { ...cleaned, seconds: cleanupSeconds }
      log(`team ${size}: cleanup removed ${cleaned.endedEvents} ended events in ${cleanupSeconds.toFixed(1)} s (${cleaned.statements} statements, longest ${cleaned.longestStatementMs.toFixed(0)} ms)`)
      record('growth', `cleanup, ${size}`, cleanupSeconds, { unit: 's' })
      record('growth', `cleanup, ${size}: longest statement`, cleaned.longestStatementMs, { unit: 'ms' })
    }
  } finally {
    await sync.close()
  }
}

// During the migration off Cal.com's legacy JSON cache (SPEC §8): the switched read, served from
// either cache, against the plain read and against the legacy reader itself (one lookup by key
// through node-postgres, busy flattened in JS).
async function legacyReads(url, pg, { target, ids, timeMin, timeMax, plain }) {
  log('read: legacyReads (the migration\'s switched and shadow reads)')
  const now = new Date()
  const first = (y, m) => new Date(Date.UTC(y, m, 1)).toISOString()
  const legacyMin = first(now.getUTCFullYear(), now.getUTCMonth())
  const legacyMax = first(now.getUTCFullYear(), now.getUTCMonth() + 2)
  // The range must end inside the key's window for the legacy side to answer.
  const end = new Date(Math.min(Date.parse(timeMax), Date.parse(legacyMax))).toISOString()
  const db = await pg.connect()
  let key
  let credentialId
  try {
    credentialId = await seed.createCredential(db, { userId: target, type: 'google_calendar' })
    await db.query('UPDATE "SelectedCalendar" SET "credentialId" = $1 WHERE id = ANY($2)', [credentialId, ids])
    const { rows: ext } = await db.query('SELECT "externalId" FROM "SelectedCalendar" WHERE id = ANY($1) ORDER BY array_position($1, id)', [ids])
    key = JSON.stringify({ timeMin: legacyMin, timeMax: legacyMax, items: ext.map((r) => ({ id: r.externalId })) })
    // The row a dual-write would have written: the SQL cache's events as a freebusy answer.
    await db.query(
      `INSERT INTO "CalendarCache" (id, key, value, "expiresAt", "updatedAt", "credentialId", "userId")
       SELECT gen_random_uuid()::text, $1, jsonb_build_object('kind', 'calendar#freeBusy', 'timeMin', $2::text, 'timeMax', $3::text, 'calendars',
         (SELECT jsonb_object_agg(sc."externalId", jsonb_build_object('busy', COALESCE((
            SELECT jsonb_agg(jsonb_build_object('start', to_char(e.start, 'YYYY-MM-DD"T"HH24:MI:SS"Z"'), 'end', to_char(e."end", 'YYYY-MM-DD"T"HH24:MI:SS"Z"')) ORDER BY e.start)
            FROM "CalendarCacheEvent" e WHERE e."selectedCalendarId" = sc.id AND e."end" > $2::timestamptz AND e.start < $3::timestamptz), '[]'::jsonb)))
          FROM "SelectedCalendar" sc WHERE sc.id = ANY($4))),
         now() + interval '30 days', now(), $5, $6`,
      [key, legacyMin, legacyMax, ids, credentialId, target],
    )
    await seed.setGlobalFlag(db, 'calendar-cache-sql', true)
  } finally {
    db.release()
  }
  const args = { selectedCalendarIds: ids, timeMin, timeMax: end }
  const measure = async (mode, onSql) => {
    await seed.setUserFlag(pg, target, 'calendar-cache-sql', onSql)
    const sync = await CalendarSync.connect({ databaseUrl: url, legacyReads: mode, flagCacheTtlMs: 600_000 })
    try {
      const check = await sync.getCachedAvailability(args)
      if (check.served.length !== ids.length || check.servedFromLegacy.length !== (onSql ? 0 : ids.length)) {
        throw new Error(`legacyReads ${mode}: unexpected answer ${JSON.stringify(check.uncached)}`)
      }
      await latencies(200, () => sync.getCachedAvailability(args))
      return await latencies(SIZE.singleCalls, () => sync.getCachedAvailability(args))
    } finally {
      await sync.close()
    }
  }
  const sqlSide = await measure('switch', true)
  const legacySide = await measure('switch', false)
  const shadow = await measure('shadow', false)
  const legacyReader = async () => {
    const r = await pg.query({ text: 'SELECT value FROM "CalendarCache" WHERE "credentialId" = $1 AND key = $2 AND "expiresAt" >= now()', values: [credentialId, key] })
    return Object.values(r.rows[0]?.value.calendars ?? {}).flatMap((c) => c.busy).filter((b) => b.end > timeMin && b.start < end)
  }
  await latencies(200, legacyReader)
  const baseline = await latencies(SIZE.singleCalls, legacyReader)
  record('read', 'p50 latency, legacyReads switch, SQL side', sqlSide.p50, { unit: 'ms', baselineName: 'calsync, legacyReads off', baseline: plain.p50 })
  record('read', 'p50 latency, legacyReads switch, legacy side', legacySide.p50, { unit: 'ms', baselineName: 'legacy reader via node-postgres', baseline: baseline.p50 })
  record('read', 'p50 latency, legacyReads shadow, legacy side', shadow.p50, { unit: 'ms', baselineName: 'calsync, legacyReads switch', baseline: legacySide.p50 })
}

// ----------------------------------------------------------------------------------- ingest --
async function googleCalendarRow(pg, emu, { calendarId, userId }) {
  const key = await emu.call('googleAccount')
  const db = await pg.connect()
  try {
    const credentialId = await seed.createCredential(db, { userId, type: 'google_calendar', key })
    return await seed.createSelectedCalendar(db, { userId, externalId: calendarId, credentialId })
  } finally {
    db.release()
  }
}

async function flaggedUser(pg) {
  const db = await pg.connect()
  try {
    const userId = await seed.createUser(db)
    await seed.setUserFlag(db, userId, FLAG, true)
    return userId
  } finally {
    db.release()
  }
}

async function ingestScenario(sync, pg, emu, count) {
  // Three calendars of `count` events, each synced in full once (a first sync: nothing to delete,
  // as for the \copy baseline); the median by database time.
  const userId = await flaggedUser(pg)
  const runs = []
  for (let k = 0; k < 3; k++) {
    const calendarId = `ingest-${count}-${k}@bench.example`
    await emu.call('googleCalendars', { ids: [calendarId] })
    log(`ingest: ${count} events at the emulator`)
    await emu.call('seedGoogle', { calendarId, count })
    const id = await googleCalendarRow(pg, emu, { calendarId, userId })
    const t = Date.now()
    const report = await sync.syncCalendar(id, { full: true })
    runs.push({ id, report, wall: Date.now() - t })
    log(`ingest: ${report.upserted} events in ${report.pages} pages, ${runs.at(-1).wall} ms (${report.providerMs.toFixed(0)} ms fetching, ${report.databaseMs.toFixed(0)} ms writing)`)
  }
  runs.sort((a, b) => a.report.databaseMs - b.report.databaseMs)
  const { id, report, wall } = runs[1]
  const writeRate = report.upserted / (report.databaseMs / 1000)
  // Baseline: the same rows written one upsert per row (Cal.com's repository), in one transaction.
  const { rows: events } = await pg.query(`SELECT * FROM "CalendarCacheEvent" WHERE "selectedCalendarId" = $1`, [id])
  const db = await pg.connect()
  let perRow
  try {
    const other = await seed.createSelectedCalendar(db, { userId, externalId: `per-row-${count}@bench.example` })
    const t0 = Date.now()
    await db.query('BEGIN')
    for (const e of events) {
      await db.query({
        name: 'per-row-upsert',
        text: `INSERT INTO "CalendarCacheEvent" (id, "selectedCalendarId", "externalId", "externalEtag", "iCalUID", "iCalSequence", summary, description, location,
                 start, "end", "isAllDay", "timeZone", status, "recurringEventId", "originalStartTime", "createdAt", "updatedAt", "externalCreatedAt", "externalUpdatedAt")
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, now(), now(), $17, $18)
               ON CONFLICT ("selectedCalendarId", "externalId") DO UPDATE SET "externalEtag" = EXCLUDED."externalEtag", start = EXCLUDED.start,
                 "end" = EXCLUDED."end", summary = EXCLUDED.summary, "updatedAt" = now()`,
        values: [e.id + '-b', other, e.externalId, e.externalEtag, e.iCalUID, e.iCalSequence, e.summary, e.description, e.location,
          e.start, e.end, e.isAllDay, e.timeZone, e.status, e.recurringEventId, e.originalStartTime, e.externalCreatedAt, e.externalUpdatedAt],
      })
    }
    await db.query('COMMIT')
    perRow = events.length / ((Date.now() - t0) / 1000)
  } finally {
    db.release()
  }
  const copyRate = await copyCeiling(pg.options.connectionString, id, userId, pg)
  const name = `ingest (${count.toLocaleString('en-US')} events${count >= 5000 ? ', staged' : ''})`
  record(name, 'database write rate', writeRate, { unit: 'events/s', baselineName: "psql's \\copy of the same rows", baseline: copyRate, target: copyRate ? '≥ 0.9× \\copy' : undefined, pass: copyRate ? writeRate >= 0.9 * copyRate : undefined })
  record(name, 'database write rate', writeRate, { unit: 'events/s', baselineName: 'one upsert per row (pg)', baseline: perRow })
  record(name, 'full sync incl. fetch', report.upserted / (wall / 1000), { unit: 'events/s' })
  ;(results.ingest ??= {})[count] = { events: report.upserted, pages: report.pages, wallMs: wall, providerMs: report.providerMs, databaseMs: report.databaseMs, perRowRate: perRow, copyRate }
}

// The ceiling of writing rows into CalendarCacheEvent: psql's \copy of the rows a full sync wrote,
// exported to CSV, into the same table (its indexes in place) for another calendar row, timed by
// psql itself (\timing: the COPY alone, not psql's start). Null when psql is not installed.
async function copyCeiling(url, id, userId, pg) {
  try {
    execFileSync('psql', ['--version'], { stdio: 'ignore' })
  } catch {
    log('ingest: psql is not installed; the \\copy ceiling is skipped')
    return null
  }
  const other = await seed.createSelectedCalendar(pg, { userId, externalId: 'copy-ceiling@bench.example' })
  const csv = path.join(os.tmpdir(), `calsync-bench-copy-${process.pid}.csv`)
  const cols = (await pg.query(`SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) AS c FROM pg_attribute WHERE attrelid = '"CalendarCacheEvent"'::regclass AND attnum > 0 AND NOT attisdropped`)).rows[0].c
  const select = cols.replace('"selectedCalendarId"', `'${other}' AS "selectedCalendarId"`).replace(/^id,|^"id",/, `id || '-c' AS id,`)
  const psql = (...cmds) => execFileSync('psql', [url, '-X', '-q', '-v', 'ON_ERROR_STOP=1', ...cmds.flatMap((c) => ['-c', c])], { encoding: 'utf8' })
  try {
    psql(`\\copy (SELECT ${select} FROM "CalendarCacheEvent" WHERE "selectedCalendarId" = '${id}') TO '${csv}' CSV`)
    const rows = fs.readFileSync(csv, 'utf8').split('\n').filter(Boolean).length
    const out = psql('\\timing on', `\\copy "CalendarCacheEvent" (${cols}) FROM '${csv}' CSV`)
    const ms = Number(out.match(/Time: ([\d.]+) ms/)[1])
    log(`ingest: psql \\copy of the same ${rows} rows: ${ms.toFixed(0)} ms`)
    return rows / (ms / 1000)
  } finally {
    fs.rmSync(csv, { force: true })
  }
}

// ------------------------------------------------------------------------------------ burst --
async function burstScenario(sync, pg, emu) {
  const userId = await flaggedUser(pg)
  const cals = []
  const ids = Array.from({ length: SIZE.burstCalendars }, (_, i) => `burst-${i}@bench.example`)
  await emu.call('googleCalendars', { ids })
  for (const calendarId of ids) {
    await emu.call('seedGoogle', { calendarId, count: 20, days: 30 })
    const id = await googleCalendarRow(pg, emu, { calendarId, userId })
    const sub = await sync.subscribe(id)
    const { rows: [r] } = await pg.query('SELECT "channelResourceId" FROM "SelectedCalendar" WHERE id = $1', [id])
    cals.push({ id, calendarId, headers: { 'x-goog-channel-id': sub.channelId, 'x-goog-channel-token': require('node:crypto').createHmac('sha256', 'bench-webhook-secret').update(sub.channelId).digest('hex'), 'x-goog-resource-id': r.channelResourceId, 'x-goog-resource-state': 'exists' } })
  }
  // Every calendar changed without a word; then the notifications come, all within one second.
  for (const c of cals) await emu.call('seedGoogle', { calendarId: c.calendarId, count: 3, days: 30, offset: 1 })
  // (a) Each calendar's notifications arrive together (a bulk change), calendars spread over the
  // second; (b) the same number spread evenly, one every millisecond, round robin over calendars.
  const shapes = {
    'per-calendar bursts': (i) => Math.floor((i % cals.length) * (1000 / cals.length)),
    'evenly spread': (i) => Math.floor((i * 1000) / SIZE.burst),
  }
  results.burst = {}
  for (const [shape, at] of Object.entries(shapes)) {
    for (const c of cals) await emu.call('seedGoogle', { calendarId: c.calendarId, count: 3, days: 30, offset: shape.length })
    const listsBefore = await emu.call('counter', { name: 'google.events.list.sequence' })
    const times = []
    const t0 = Date.now()
    await Promise.all(Array.from({ length: SIZE.burst }, (_, i) => new Promise((resolve) => {
      setTimeout(async () => {
        const t = process.hrtime.bigint()
        const res = await sync.handleGoogleWebhook({ headers: cals[i % cals.length].headers })
        times.push(Number(process.hrtime.bigint() - t) / 1e6)
        if (res.status !== 200 || !/accepted/.test(res.body)) log(`burst: unexpected ${res.status} ${res.body}`)
        resolve()
      }, at(i))
    })))
    await sync.settle() // the syncs the notifications started in the background
    const untilCorrect = Date.now() - t0
    const lists = (await emu.call('counter', { name: 'google.events.list.sequence' })) - listsBefore
    const timeMin = new Date().toISOString()
    const timeMax = new Date(Date.now() + 60 * DAY).toISOString()
    let wrong = 0
    for (const c of cals) {
      const res = await sync.getCachedAvailability({ selectedCalendarIds: [c.id], timeMin, timeMax })
      if (res.served.length !== 1) log(`burst: calendar not served: ${JSON.stringify(res.uncached)}`)
      const got = res.busy.map((b) => [Date.parse(b.start), Date.parse(b.end)])
      const want = (await emu.call('freeBusy', { calendarId: c.calendarId, timeMin, timeMax })).map((b) => [Date.parse(b.start), Date.parse(b.end)])
      if (JSON.stringify(got) !== JSON.stringify(want)) wrong++
    }
    times.sort((a, b) => a - b)
    const name = `burst (${shape})`
    record(name, 'list sequences per calendar', lists / cals.length, { target: '≤ 2', pass: lists <= 2 * cals.length })
    record(name, 'webhook p50', percentile(times, 50), { unit: 'ms' })
    record(name, 'webhook p99', percentile(times, 99), { unit: 'ms', target: '< 50 ms', pass: percentile(times, 99) < 50 })
    record(name, 'first notification → cache correct', untilCorrect, { unit: 'ms', target: 'every calendar equals freeBusy', pass: wrong === 0 })
    results.burst[shape] = { notifications: SIZE.burst, calendars: cals.length, listSequences: lists, calendarsWrong: wrong }
  }
}

// -------------------------------------------------------------------------------- freshness --
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const hrNow = () => performance.timeOrigin + performance.now() // comparable with the emulator process's

// Quiet calendars (no events, their last sync long enough ago): one change at the provider, then
// its notification. Measured from the emulator sending it to the first of back-to-back reads that
// shows the change (so the figure includes up to one read), and to `settle()` returning. The
// provider's share is the emulator's own time answering the requests the change caused (the
// events.list, its injected latency included); calsync's share is the rest: the webhook route's
// work, the pending-change ledger, the claim, the write and the read.
async function freshnessScenario(sync, pg, emu) {
  const trace = Boolean(process.env.BENCH_TRACE_FRESHNESS)
  const gc = trace ? watchGcPauses() : null // this process's garbage-collection pauses
  const userId = await flaggedUser(pg)
  const n = SIZE.freshness
  const ids = Array.from({ length: n }, (_, i) => `fresh-${i}@bench.example`)
  await emu.call('googleCalendars', { ids })
  log(`freshness: subscribing ${n} quiet calendars`)
  const cals = []
  for (const calendarId of ids) {
    const id = await googleCalendarRow(pg, emu, { calendarId, userId })
    await sync.subscribe(id)
    cals.push({ id, calendarId, lastAt: Date.now() })
  }
  const day0 = Math.ceil(Date.now() / DAY) * DAY
  const range = { timeMin: new Date(day0).toISOString(), timeMax: new Date(day0 + 20 * DAY).toISOString() }
  const visible = (busy, startMs) => busy.some((b) => Date.parse(b.start) === startMs)
  results.freshness = {}
  let round = 0
  for (const latency of [0, 50]) {
    round++
    if (latency) await emu.call('latency', { endpoints: ['google.events.list'], ms: latency })
    const total = []
    const own = []
    const provider = []
    const webhook = []
    const settled = []
    for (const c of cals) {
      const quiet = c.lastAt + 1100 - Date.now() // past syncMinIntervalMs (1 s): the notification syncs at once
      if (quiet > 0) await sleep(quiet)
      const startMs = day0 + round * DAY + 9 * 3600 * 1000
      const listsBefore = trace ? await emu.call('counter', { name: 'google.events.list.sequence' }) : 0
      const { sentAt, answeredAt, serviceBefore } = await emu.call('changeAndNotify', { calendarId: c.calendarId, startMs })
      // Visible: the first read that shows the change (reads back to back; one takes about 1 ms).
      let visibleAt = null
      let longestRead = 0
      let reads = 0
      for (let k = 0; k < 5000 && visibleAt === null; k++) {
        const readAt = hrNow()
        const read = await sync.getCachedAvailability({ selectedCalendarIds: [c.id], ...range })
        reads++
        longestRead = Math.max(longestRead, hrNow() - readAt)
        if (visible(read.busy, startMs)) visibleAt = hrNow()
      }
      if (visibleAt === null) throw new Error(`freshness: the change on ${c.calendarId} never became visible`)
      const providerMs = (await emu.call('serviceTime')) - serviceBefore
      await sync.settle() // what follows the commit (clearing the mark, releasing the claim) finishes
      const settledAt = hrNow()
      c.lastAt = Date.now()
      total.push(visibleAt - sentAt)
      webhook.push(answeredAt - sentAt)
      provider.push(providerMs)
      own.push(visibleAt - sentAt - providerMs)
      settled.push(settledAt - sentAt)
      if (trace && visibleAt - sentAt - providerMs > 25) log(`freshness: slow change at ${new Date(sentAt).toISOString()}: own ${(visibleAt - sentAt - providerMs).toFixed(1)} ms, webhook ${(answeredAt - sentAt).toFixed(1)} ms, provider ${providerMs.toFixed(1)} ms, list sequences ${(await emu.call('counter', { name: 'google.events.list.sequence' })) - listsBefore}, reads ${reads}, the longest ${longestRead.toFixed(1)} ms, collecting garbage: the emulator ${(await emu.call('gcPauses', { from: sentAt, to: visibleAt })).toFixed(1)} ms, this process ${gc.pausedMs(sentAt, visibleAt).toFixed(1)} ms`)
    }
    await emu.call('clearFaults')
    for (const a of [total, own, provider, webhook, settled]) a.sort((x, y) => x - y)
    const name = `freshness (provider latency ${latency} ms)`
    log(`${name}: total p50 ${percentile(total, 50).toFixed(1)} / p99 ${percentile(total, 99).toFixed(1)} ms; calsync's share p50 ${percentile(own, 50).toFixed(1)} / p99 ${percentile(own, 99).toFixed(1)} ms; the webhook's answer p50 ${percentile(webhook, 50).toFixed(1)} ms`)
    record(name, `notification → visible p50 (${n} changes)`, percentile(total, 50), { unit: 'ms' })
    record(name, 'notification → visible p99', percentile(total, 99), { unit: 'ms' })
    record(name, 'provider share p99', percentile(provider, 99), { unit: 'ms' })
    record(name, "calsync's share p50", percentile(own, 50), { unit: 'ms' })
    record(name, "calsync's share p99", percentile(own, 99), { unit: 'ms', target: '≤ 25 ms', pass: percentile(own, 99) <= 25 })
    record(name, 'notification → background work settled p99', percentile(settled, 99), { unit: 'ms' })
    results.freshness[`latency${latency}`] = { changes: n, settled: { p50: percentile(settled, 50), p99: percentile(settled, 99) }, webhookAnswer: { p50: percentile(webhook, 50), p99: percentile(webhook, 99) }, total: { p50: percentile(total, 50), p99: percentile(total, 99) }, own: { p50: percentile(own, 50), p99: percentile(own, 99) }, provider: { p50: percentile(provider, 50), p99: percentile(provider, 99) } }
  }

  // A burst with the default throttle: 10 of the calendars each change every 100 ms for 3 s. A
  // poller reads the 10 every 5 ms; a change is visible at the first poll that shows it.
  const burst = cals.slice(0, 10)
  const pending = new Map() // startMs → sentAt
  const fresh = []
  let polling = true
  const poller = (async () => {
    while (polling) {
      const r = await sync.getCachedAvailability({ selectedCalendarIds: burst.map((c) => c.id), ...range })
      const at = hrNow()
      for (const b of r.busy) {
        // Busy blocks of one calendar merge; every change is its own 30 minutes, apart from others.
        for (let t = Date.parse(b.start); t < Date.parse(b.end); t += 1800 * 1000) {
          if (pending.has(t)) {
            fresh.push(at - pending.get(t))
            pending.delete(t)
          }
        }
      }
      await sleep(5)
    }
  })()
  await sleep(1100)
  await Promise.all(burst.map(async (c, i) => {
    await sleep(i * 10)
    for (let k = 0; k < 30; k++) {
      const startMs = day0 + 3 * DAY + (i * 30 + k) * 2 * 1800 * 1000 // every other half hour
      const sent = emu.call('changeAndNotify', { calendarId: c.calendarId, startMs })
      const { sentAt } = await sent
      pending.set(startMs, sentAt)
      await sleep(100)
    }
  }))
  await sync.settle()
  const deadline = Date.now() + 10_000
  while (pending.size && Date.now() < deadline) await sleep(10) // the poller's last sightings
  polling = false
  await poller
  if (pending.size) throw new Error(`freshness burst: ${pending.size} changes never became visible`)
  fresh.sort((a, b) => a - b)
  record('freshness (burst, 1 s throttle)', `notification → visible p50 (${fresh.length} changes, 10 calendars, one every 100 ms each)`, percentile(fresh, 50), { unit: 'ms' })
  record('freshness (burst, 1 s throttle)', 'notification → visible p99', percentile(fresh, 99), { unit: 'ms', target: '≤ throttle + one sync', pass: percentile(fresh, 99) <= 1000 + 100 })
  results.freshness.burst = { changes: fresh.length, p50: percentile(fresh, 50), p99: percentile(fresh, 99), pollMs: 5 }
  gc?.stop()
}

// Google calendars `ids` at the emulator and one user's rows for them, each with a channel that
// expires within the renewal margin.
async function dueCalendars(pg, emu, ids) {
  await emu.call('googleCalendars', { ids })
  const userId = await flaggedUser(pg)
  const key = await emu.call('googleAccount')
  const db = await pg.connect()
  try {
    const credentialId = await seed.createCredential(db, { userId, type: 'google_calendar', key })
    await db.query(
      `INSERT INTO "SelectedCalendar" (id, "userId", integration, "externalId", "credentialId", "channelId", "channelKind", "channelResourceId", "channelExpiration", "syncSubscribedAt", "syncToken", "syncedAt")
       SELECT 'renew-' || i, $1, 'google_calendar', x, $2, 'old-' || i, 'web_hook', 'res-' || i, now() + interval '2 hours', now(), 'tok', now()
       FROM unnest($3::text[]) WITH ORDINALITY AS t(x, i)`,
      [userId, credentialId, ids],
    )
  } finally {
    db.release()
  }
}

// ---------------------------------------------------------------------------------- renewal --
async function renewScenario(sync, pg, emu) {
  log(`renewal: ${SIZE.renew} Google calendars due, 20 ms emulator latency per call`)
  await dueCalendars(pg, emu, Array.from({ length: SIZE.renew }, (_, i) => `renew-${i}@bench.example`))
  await emu.call('latency', { endpoints: ['google.events.watch', 'google.channels.stop'], ms: 20 })
  const concurrency = 16
  const t = Date.now()
  const report = await sync.renewWatches({ concurrency, resyncAfterMs: -1 })
  const wall = (Date.now() - t) / 1000
  await emu.call('clearFaults')
  log(`renewal: ${JSON.stringify(report)}`)
  record('renewal', `${SIZE.renew} calendars renewed`, wall, { unit: 's', target: '< 60 s', pass: wall < 60 && report.renewed === SIZE.renew })
  record('renewal', 'peak concurrency (Google)', report.peakGoogleConcurrency, { target: `≤ ${concurrency} (configured)`, pass: report.peakGoogleConcurrency <= concurrency })
  results.renewal = { ...report, wallSeconds: wall, concurrency }
}

// ----------------------------------------------------------------------------------- memory --
async function memoryScenario(sync, pg, emu, count) {
  const calendarId = `memory-${count}@bench.example`
  await emu.call('googleCalendars', { ids: [calendarId] })
  log(`memory: ${count} events at the emulator`)
  await emu.call('seedGoogle', { calendarId, count, days: 170 })
  const id = await googleCalendarRow(pg, emu, { calendarId, userId: await flaggedUser(pg) })
  global.gc?.()
  const before = process.memoryUsage().rss
  let peak = before
  const sampler = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss)
  }, 2)
  const report = await sync.syncCalendar(id, { full: true })
  clearInterval(sampler)
  peak = Math.max(peak, process.memoryUsage().rss)
  const growth = (peak - before) / (1024 * 1024)
  log(`memory: ${report.upserted} events synced; RSS ${(before / 1048576).toFixed(0)} MB → peak ${(peak / 1048576).toFixed(0)} MB`)
  if (count === SIZE.memory) record('memory', `peak RSS growth, full sync of ${count} events`, growth, { unit: 'MB', target: '< 64 MB', pass: growth < 64 })
  record('growth', `memory: peak RSS growth, full sync of ${count} events`, growth, { unit: 'MB' })
  ;(results.memory ??= {})[count] = { peakGrowthMb: growth, events: report.upserted }
}

// Renewal as the calendars grow: n Google calendars due, no provider latency (the cost of calsync
// and the database), 16 at a time. Each size in a database of its own.
async function renewGrowth(sync, pg, emu, n) {
  await dueCalendars(pg, emu, Array.from({ length: n }, (_, i) => `renew-${n}-${i}@bench.example`))
  const t = Date.now()
  const report = await sync.renewWatches({ concurrency: 16, resyncAfterMs: -1 })
  const wall = (Date.now() - t) / 1000
  if (report.renewed !== n) throw new Error(`renewal growth: ${report.renewed} of ${n} renewed: ${JSON.stringify(report)}`)
  log(`renewal growth: ${n} calendars in ${wall.toFixed(1)} s`)
  record('growth', `renewal of ${n.toLocaleString('en-US')} calendars (no provider latency)`, wall, { unit: 's' })
  record('growth', `renewal of ${n.toLocaleString('en-US')} calendars, per calendar`, (wall * 1000) / n, { unit: 'ms' })
  ;(results.renewalGrowth ??= {})[n] = { seconds: wall }
}

// ------------------------------------------------------------------------------ slow provider --
// 30 calendars syncing against a provider that answers in 3 s, every access token expired (so every
// sync refreshes first), while 16 callers read: reads must neither fail nor slow down (SPEC §12).
async function slowProviderScenario(sync, pg, emu) {
  const userId = await flaggedUser(pg)
  const ids = Array.from({ length: 30 }, (_, i) => `slow-${i}@bench.example`)
  await emu.call('googleCalendars', { ids })
  const cals = []
  for (const calendarId of ids) {
    await emu.call('seedGoogle', { calendarId, count: 40, days: 30 })
    const id = await googleCalendarRow(pg, emu, { calendarId, userId })
    await sync.subscribe(id)
    cals.push(id)
  }
  const day0 = Math.ceil(Date.now() / DAY) * DAY
  const reads = SIZE.slowReads
  let next = 0
  const read = () => {
    const i = next++ % cals.length
    const selectedCalendarIds = Array.from({ length: 10 }, (_, k) => cals[(i + k) % cals.length])
    return sync.getCachedAvailability({ selectedCalendarIds, timeMin: new Date(day0).toISOString(), timeMax: new Date(day0 + 14 * DAY).toISOString() })
  }
  // 16 callers read `reads` times, or until `until` settles; latencies of the reads that succeed,
  // and the failures by code.
  const readers = async (until) => {
    const times = []
    const errors = {}
    let left = reads
    let settled = false
    until?.finally(() => (settled = true))
    await Promise.all(Array.from({ length: CALLERS }, async () => {
      while (until ? !settled : left-- > 0) {
        const t = process.hrtime.bigint()
        try {
          await read()
          times.push(Number(process.hrtime.bigint() - t) / 1e6)
        } catch (e) {
          errors[e.code] = (errors[e.code] ?? 0) + 1
        }
      }
    }))
    times.sort((a, b) => a - b)
    return { reads: times.length, p50: percentile(times, 50), p99: percentile(times, 99), errors: Object.values(errors).reduce((a, b) => a + b, 0), byCode: errors }
  }
  await readers() // warm up: every pooled connection open
  const idle = await readers()
  await pg.query(`UPDATE "Credential" SET key = key || '{"expiry_date": 1}'::jsonb WHERE "userId" = $1`, [userId])
  await emu.call('latency', { endpoints: ['google.token', 'google.events.list'], ms: 3000 })
  const syncs = Promise.allSettled(cals.map((id) => sync.syncCalendar(id)))
  const busy = await readers(syncs) // for as long as the syncs run (two 3 s provider calls each)
  const outcomes = await syncs
  await emu.call('clearFaults')
  const failedSyncs = outcomes.filter((o) => o.status === 'rejected').length
  log(`slow provider: idle p99 ${idle.p99.toFixed(2)} ms; while 30 syncs wait 3 s: ${busy.reads} reads, p99 ${busy.p99.toFixed(2)} ms, ${busy.errors} read errors ${JSON.stringify(busy.byCode)}, ${failedSyncs} failed syncs`)
  record('slow provider', 'read p99, provider idle', idle.p99, { unit: 'ms' })
  record('slow provider', 'read p99 while 30 syncs wait 3 s', busy.p99, { unit: 'ms', baselineName: 'idle p99', baseline: idle.p99, target: '≤ 3× idle p99', pass: busy.p99 <= 3 * idle.p99 })
  record('slow provider', `read errors of ${busy.reads + busy.errors}`, busy.errors, { target: '0', pass: busy.errors === 0 })
  record('slow provider', 'syncs that failed', failedSyncs, { target: '0', pass: failedSyncs === 0 })
  results.slowProvider = { reads, idle, busy, failedSyncs }
}

// --------------------------------------------------------------------------------- reporting --
const fmt = (v) => (v == null ? '' : typeof v === 'boolean' ? String(v) : Math.abs(v) >= 100 ? Math.round(v).toLocaleString('en-US') : v.toFixed(v < 1 ? 3 : 2))

function table() {
  const head = ['scenario', 'metric', 'calsync', 'baseline', 'ratio', 'target', 'met']
  const body = rows.map((r) => [r.scenario, r.metric, `${fmt(r.calsync)} ${r.unit}`.trim(), r.baseline == null ? '' : `${fmt(r.baseline)} ${r.unit} (${r.baselineName})`, r.ratio == null ? '' : `${r.ratio.toFixed(2)}×`, r.target ?? '', r.pass == null ? '' : r.pass ? 'yes' : 'NO'])
  return [head, ...body]
}

function markdown(machine) {
  const t = table()
  const line = (cells) => `| ${cells.join(' | ')} |`
  return [
    `Measured ${new Date().toISOString().slice(0, 10)} on ${machine.cpu} × ${machine.cores}, ${machine.memoryGb} GB, ${machine.postgres}, Node ${process.version}${QUICK ? ' (--quick sizes)' : ''}.`,
    '',
    line(t[0]),
    line(t[0].map(() => '---')),
    ...t.slice(1).map(line),
  ].join('\n')
}

async function main() {
  const started = Date.now()
  const server = await startServer({ log })
  const emu = emulatorProcess()
  const { url: emuUrl } = await emu.call('start')
  let current // the CalendarSync the webhook receiver hands requests to
  const receiver = await startReceiver(() => current)
  const open = async (name) => {
    const database = await createDatabase(server.url, `calsync_bench_${name}`)
    await applySchema({ databaseUrl: database.url })
    const pg = new Pool({ connectionString: database.url, max: CALLERS })
    pg.on('error', (e) => log(`an idle baseline connection failed: ${e.message}`))
    await pg.query(`UPDATE "Feature" SET enabled = true WHERE slug = $1`, [FLAG])
    // Each group leaves with a checkpoint, so the next one is not measured during its writes.
    const close = async () => {
      await pg.query('CHECKPOINT').catch(() => {})
      await pg.end()
      await database.drop().catch(() => {})
    }
    return { database, pg, close }
  }
  const connect = (url) => CalendarSync.connect({
    databaseUrl: url, maxConnections: 20, googleApiUrl: `${emuUrl}/calendar/v3`, googleTokenUrl: `${emuUrl}/token`,
    googleClientId: 'bench', googleClientSecret: 'bench', googleWebhookToken: 'bench-webhook-secret', googleWebhookUrl: receiver.url,
  })
  try {
    // Each group of scenarios gets a database of its own, so none pays for another's rows.
    const read = await open('read')
    results.machine = {
      cpu: os.cpus()[0].model.trim(), cores: os.cpus().length, memoryGb: Math.round(os.totalmem() / 2 ** 30),
      postgres: `PostgreSQL ${(await read.pg.query('SHOW server_version')).rows[0].server_version.split(' ')[0]}`,
    }
    try {
      if (runs('read')) await readScenario(read.database.url, read.pg)
    } finally {
      await read.close()
    }
    const syncs = await open('sync')
    current = await connect(syncs.database.url)
    try {
      // 4 000 events fit the sync's buffer (syncBufferEvents) and go straight in with COPY; more are
      // staged page by page (bounded memory) and moved in the final transaction.
      if (runs('ingest')) for (const count of [4000, SIZE.ingest]) await ingestScenario(current, syncs.pg, emu, count)
      // The latency scenarios start with a checkpoint too: the ingest leaves some 200 MB of dirty
      // pages in the OS cache, and the kernel's writeback of them ~30 s later held WAL flushes (the
      // webhook's pending mark) for 60–400 ms, which a trace of the slow changes showed.
      if (runs('burst')) await syncs.pg.query('CHECKPOINT').then(() => burstScenario(current, syncs.pg, emu))
      if (runs('freshness')) await syncs.pg.query('CHECKPOINT').then(() => freshnessScenario(current, syncs.pg, emu))
      if (runs('memory')) for (const count of [SIZE.memory / 10, SIZE.memory / 2, SIZE.memory]) await memoryScenario(current, syncs.pg, emu, count)
    } finally {
      await current.close()
      await syncs.close()
    }
    if (runs('slow')) {
      const slow = await open('slow')
      // The default pool (10 connections, 3 of them for background work), as an app would run it.
      current = await CalendarSync.connect({
        databaseUrl: slow.database.url, googleApiUrl: `${emuUrl}/calendar/v3`, googleTokenUrl: `${emuUrl}/token`,
        googleClientId: 'bench', googleClientSecret: 'bench', googleWebhookToken: 'bench-webhook-secret', googleWebhookUrl: receiver.url,
      })
      try {
        await slowProviderScenario(current, slow.pg, emu)
      } finally {
        await current.close()
        await slow.close()
      }
    }
    const renewal = await open('renewal')
    current = await connect(renewal.database.url)
    try {
      if (runs('renewal')) await renewScenario(current, renewal.pg, emu)
    } finally {
      await current.close()
      await renewal.close()
    }
    if (runs('renewal')) {
      for (const n of SIZE.renewGrowth) {
        const db = await open(`renew_${n}`)
        current = await connect(db.database.url)
        try {
          await renewGrowth(current, db.pg, emu, n)
        } finally {
          await current.close()
          await db.close()
        }
      }
    }
    if (runs('replica')) await replicaScenario({ record, log, quick: QUICK, seedReads, throughput, latencies, callers: CALLERS, seconds: SIZE.throughputMs })
    if (runs('caldav')) {
      const cd = await open('caldav')
      try {
        await caldavScenario({ url: cd.database.url, pg: cd.pg, record, log, quick: QUICK })
      } finally {
        await cd.close()
      }
    }
    // Last: seeding and cleaning 10 M rows leaves gigabytes of dirty pages and WAL behind, whose
    // checkpoint would slow the commits of any scenario measured after it.
    if (runs('team')) {
      const team = await open('team')
      try {
        await teamScenario(team.database.url, team.pg)
      } finally {
        await team.close()
      }
    }
    const machine = results.machine

    const t = table()
    const widths = t[0].map((_, i) => Math.max(...t.map((r) => String(r[i]).length)))
    console.log(t.map((r) => r.map((c, i) => String(c).padEnd(widths[i])).join('  ')).join('\n'))
    results.finishedInSeconds = (Date.now() - started) / 1000
    if (ONLY) return log(`done in ${results.finishedInSeconds.toFixed(0)} s (--only: nothing written)`)
    const json = QUICK ? 'results.quick.json' : 'results.json' // a quick run never replaces the full figures
    fs.writeFileSync(path.join(__dirname, json), JSON.stringify(results, null, 2) + '\n')
    const mdPath = path.join(__dirname, '..', 'BENCHMARKS.md')
    const md = fs.readFileSync(mdPath, 'utf8')
    const section = `<!-- figures:${QUICK ? 'quick' : 'full'} -->\n${markdown(machine)}\n<!-- /figures:${QUICK ? 'quick' : 'full'} -->`
    const re = new RegExp(`<!-- figures:${QUICK ? 'quick' : 'full'} -->[\\s\\S]*?<!-- /figures:${QUICK ? 'quick' : 'full'} -->`)
    fs.writeFileSync(mdPath, re.test(md) ? md.replace(re, section) : `${md.trimEnd()}\n\n${section}\n`)
    log(`done in ${results.finishedInSeconds.toFixed(0)} s; wrote bench/${json} and BENCHMARKS.md`)
  } finally {
    await receiver.close()
    await emu.call('stop').catch(() => {})
    await server.stop()
  }
}

main().catch((e) => {
  console.error(e)
  process.exitCode = 1
})

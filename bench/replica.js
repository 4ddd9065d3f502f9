'use strict'
// Read replicas in `npm run bench` (`--only=replica`): the read scenario's table on a primary with a
// streaming hot standby (dev/replica.js, both embedded Postgres on this machine), read with and
// without `readDatabaseUrl`. What it shows is where the load goes: the statements each server ran
// (pg_stat_statements) while calsync read through the replica, and reads while the standby's replay
// is paused and the primary keeps writing (errors, latency, who answered). Both servers share this
// machine's cores, so the throughput beside them says nothing about the gain of a second machine.

const { Pool } = require('pg')
const { startReplicated } = require('../dev/replica')
const { createDatabase, withDatabase } = require('../dev/postgres')
const { CalendarSync, applySchema } = require('../calsync.js')

const DAY = 24 * 3600 * 1000
const BOUND_MS = 1000

const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]

/** Calls of statements on `pool`'s database since the last reset, the monitoring's own excluded. */
async function statements(pool) {
  const { rows: [{ n }] } = await pool.query(`SELECT COALESCE(sum(calls), 0)::int8 AS n FROM pg_stat_statements
    WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND query NOT LIKE '%pg_stat_statements%'`)
  return Number(n)
}

async function replicaScenario({ record, log, seedReads, throughput, latencies, callers, seconds }) {
  log('replica: starting a primary and a streaming standby (pg_stat_statements loaded on both)')
  const servers = await startReplicated({ log, flags: ['-c', 'shared_preload_libraries=pg_stat_statements'] })
  const db = await createDatabase(servers.primary.url, 'calsync_bench_replica')
  const primary = new Pool({ connectionString: db.url, max: 4 })
  const standby = new Pool({ connectionString: withDatabase(servers.replica.url, db.name), max: 2 })
  const syncs = []
  try {
    await applySchema({ databaseUrl: db.url })
    await primary.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements')
    await primary.query(`UPDATE "Feature" SET enabled = true WHERE slug = 'calendar-subscription-cache'`)
    const { ids } = await seedReads(primary)
    // Vacuumed now rather than by autovacuum during the measurement: a vacuum's WAL carries no
    // commit, and a standby replaying it next to an idle primary reads as lagging by the age of its
    // last replayed commit (conservative: see docs/deployment.md#read-replicas).
    await primary.query('VACUUM (ANALYZE)')
    await primary.query('CHECKPOINT')
    await servers.replica.caughtUp(300_000)
    const timeMin = new Date(Math.ceil(Date.now() / DAY) * DAY).toISOString()
    const args = { selectedCalendarIds: ids, timeMin: timeMin, timeMax: new Date(Date.parse(timeMin) + 31 * DAY).toISOString() }
    const readUrl = withDatabase(servers.replica.url, db.name)
    const onPrimary = await CalendarSync.connect({ databaseUrl: db.url, maxConnections: callers + 1 })
    syncs.push(onPrimary)
    const withReplica = await CalendarSync.connect({ databaseUrl: db.url, readDatabaseUrl: readUrl, maxConnections: callers + 1, maxReplicaLagMs: BOUND_MS })
    syncs.push(withReplica)
    const want = JSON.stringify((await onPrimary.getCachedAvailability(args)).busy)
    const got = await withReplica.getCachedAvailability(args)
    if (got.servedBy !== 'replica' || JSON.stringify(got.busy) !== want) throw new Error('the replica did not answer as the primary does')
    for (const s of syncs) await latencies(200, () => s.getCachedAvailability(args)) // warm up

    // (1) Where the statements go.
    const counted = async (sync) => {
      await primary.query('SELECT pg_stat_statements_reset()')
      await standby.query('SELECT pg_stat_statements_reset()')
      const ms = []
      const tput = await throughput(seconds, callers, async () => {
        const t = process.hrtime.bigint()
        await sync.getCachedAvailability(args)
        ms.push(Number(process.hrtime.bigint() - t) / 1e6)
      })
      ms.sort((a, b) => a - b)
      const reads = ms.length
      return { tput, reads, p50: percentile(ms, 50), p99: percentile(ms, 99), primary: await statements(primary), replica: await statements(standby) }
    }
    const direct = await counted(onPrimary)
    const replicated = await counted(withReplica)
    log(`replica: reads on the primary alone ${JSON.stringify(direct)}; with the replica ${JSON.stringify(replicated)}`)
    log((await withReplica.metrics()).split('\n').filter((l) => /^calsync_replica_fallbacks_total.* [1-9]/.test(l)).join('; '))
    record('replica', 'statements on the primary per read, reads through the replica', replicated.primary / replicated.reads, {
      baselineName: 'reads on the primary alone', baseline: direct.primary / direct.reads, target: '0', pass: replicated.primary === 0,
    })
    record('replica', 'statements on the replica per read', replicated.replica / replicated.reads)
    record('replica', `throughput, ${callers} callers, through the replica`, replicated.tput, { unit: 'calls/s', baselineName: 'on the primary alone (same machine)', baseline: direct.tput })

    // (2) Replay paused while the primary keeps committing: no read fails, none is served from the
    // replica past the bound, and each takes about one extra round trip at most.
    await primary.query('CREATE TABLE IF NOT EXISTS bench_tick (n int)')
    await primary.query('INSERT INTO bench_tick VALUES (0)')
    await servers.replica.caughtUp()
    await servers.replica.pause()
    const pausedAt = Date.now()
    let writing = true
    const writer = (async () => {
      while (writing) {
        await primary.query('UPDATE bench_tick SET n = n + 1')
        await new Promise((r) => setTimeout(r, 20))
      }
    })()
    const calls = []
    let errors = 0
    try {
      const end = pausedAt + Math.max(3 * BOUND_MS, seconds)
      await Promise.all(Array.from({ length: callers }, async () => {
        while (Date.now() < end) {
          const started = Date.now()
          const t = process.hrtime.bigint()
          try {
            const a = await withReplica.getCachedAvailability(args)
            calls.push({ ms: Number(process.hrtime.bigint() - t) / 1e6, by: a.servedBy, since: started - pausedAt })
          } catch {
            errors++
          }
        }
      }))
    } finally {
      writing = false
      await writer
      await servers.replica.resume()
    }
    const ms = calls.map((c) => c.ms).sort((a, b) => a - b)
    const lastReplica = Math.max(0, ...calls.filter((c) => c.by === 'replica').map((c) => c.since))
    const share = calls.filter((c) => c.by === 'replica').length / calls.length
    log(`replica: paused replay: ${calls.length} reads, ${errors} errors, ${(share * 100).toFixed(0)} % by the replica, the last ${lastReplica} ms after the pause`)
    record('replica', 'reads failed, replay paused', errors, { target: '0', pass: errors === 0 })
    record('replica', `p50 latency, ${callers} callers, replay paused`, percentile(ms, 50), { unit: 'ms', baselineName: 'replica caught up', baseline: replicated.p50 })
    record('replica', `p99 latency, ${callers} callers, replay paused`, percentile(ms, 99), { unit: 'ms', baselineName: 'replica caught up', baseline: replicated.p99 })
    record('replica', 'the last replica-served read after the pause', lastReplica, { unit: 'ms', baselineName: 'maxReplicaLagMs', baseline: BOUND_MS, target: '≤ maxReplicaLagMs', pass: lastReplica <= BOUND_MS })
  } finally {
    for (const s of syncs) await s.close()
    await standby.end()
    await primary.end()
    await db.drop().catch(() => {})
    await servers.stop()
  }
}

module.exports = { replicaScenario }

'use strict'
// Each test file gets its own freshly created database with the schema applied, dropped afterwards.

const { Client } = require('pg')
const { startServer, createDatabase, withDatabase } = require('../dev/postgres')
const { startPgBouncer } = require('../dev/pgbouncer')
const { startReplicated } = require('../dev/replica')
const calsync = require('../calsync.js')

// CALSYNC_TEST_POOLER=pgbouncer runs calsync through a PgBouncer in transaction mode (SPEC §12);
// fixtures and assertions (`pg`, `directUrl`) still talk to the server directly.
// CALSYNC_TEST_DB_TIMEOUTS=2s sets idle_in_transaction_session_timeout and statement_timeout on the
// test database, as managed Postgres services often do.
// CALSYNC_TEST_REPLICA=1 puts a streaming hot standby in the path: the test's own embedded primary,
// a standby copied from it (dev/replica.js), and calsync reading through `readDatabaseUrl`.
const pooler = process.env.CALSYNC_TEST_POOLER || ''
const dbTimeouts = process.env.CALSYNC_TEST_DB_TIMEOUTS || ''
const replicaEnv = process.env.CALSYNC_TEST_REPLICA === '1'

/** Sets the managed-Postgres timeouts on database `name` (new sessions get them). */
async function setTimeouts(serverUrl, name, value) {
  const admin = new Client({ connectionString: serverUrl })
  await admin.connect()
  try {
    for (const setting of ['idle_in_transaction_session_timeout', 'statement_timeout']) {
      await admin.query(`ALTER DATABASE "${name}" SET ${setting} = '${value.replace(/[^0-9a-z]/gi, '')}'`)
    }
  } finally {
    await admin.end()
  }
}

/**
 * A fresh database with the schema applied: `{ url, directUrl, serverUrl, pooled, server, pg,
 * teardown() }`; with `replica` (default: CALSYNC_TEST_REPLICA=1) also `readUrl` (the database on a
 * streaming standby, through its own PgBouncer when the suite runs through one) and `replica`
 * (dev/replica.js's handle: caughtUp, pause, resume, kill, start, promote).
 */
async function freshDatabase({ timeouts = dbTimeouts, embedded = false, replica = replicaEnv } = {}) {
  const replicated = replica ? await startReplicated() : null
  const server = replicated ? replicated.primary : await startServer({ embedded })
  const stopServers = () => (replicated ? replicated.stop() : server.stop())
  let db
  let bouncer
  let replicaBouncer
  let readUrl
  try {
    db = await createDatabase(server.url, 'calsync_test')
    if (timeouts) await setTimeouts(server.url, db.name, timeouts)
    if (pooler === 'pgbouncer') bouncer = await startPgBouncer(server.url)
    else if (pooler) throw new Error(`CALSYNC_TEST_POOLER=${pooler}: only 'pgbouncer' is known`)
    await calsync.applySchema({ databaseUrl: bouncer ? bouncer.url(db.url) : db.url })
    if (replicated) {
      await replicated.replica.caughtUp()
      const direct = withDatabase(replicated.replica.url, db.name)
      if (bouncer) replicaBouncer = await startPgBouncer(replicated.replica.url)
      readUrl = replicaBouncer ? replicaBouncer.url(direct) : direct
    }
  } catch (e) {
    if (bouncer) await bouncer.stop()
    if (replicaBouncer) await replicaBouncer.stop()
    if (db) await db.drop().catch(() => {})
    await stopServers()
    throw e
  }
  const pg = new Client({ connectionString: db.url })
  // A restart or crash of the server ends this idle fixture connection: its next query fails (and
  // the test with it); the 'error' event itself must not take the test process down.
  pg.on('error', () => {})
  await pg.connect()
  return {
    url: bouncer ? bouncer.url(db.url) : db.url,
    directUrl: db.url,
    serverUrl: server.url,
    pooled: Boolean(bouncer),
    server,
    pg,
    readUrl,
    replica: replicated?.replica,
    async teardown() {
      await pg.end().catch(() => {})
      if (bouncer) await bouncer.stop()
      if (replicaBouncer) await replicaBouncer.stop()
      await db.drop()
      await stopServers()
    },
  }
}

/** A small seeded PRNG (mulberry32): the same seed gives the same random scenario. */
function prng(seed) {
  return () => {
    seed |= 0
    seed = (seed + 0x6d2b79f5) | 0
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** Polls `check` until it returns something truthy (returned), failing after `ms`. */
async function until(what, check, ms = 10_000) {
  const end = Date.now() + ms
  for (;;) {
    const v = await check()
    if (v) return v
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 25))
  }
}

/** The token calsync gives Google channel `channelId`: hex HMAC-SHA256 of the id keyed by the secret. */
function channelToken(secret, channelId) {
  return require('node:crypto').createHmac('sha256', secret).update(channelId).digest('hex')
}

module.exports = { freshDatabase, calsync, prng, until, channelToken }

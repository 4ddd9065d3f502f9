'use strict'
// Each test file gets its own freshly created database with the schema applied, dropped afterwards.

const { Client } = require('pg')
const { startServer, createDatabase } = require('../dev/postgres')
const { startPgBouncer } = require('../dev/pgbouncer')
const calsync = require('../calsync.js')

// CALSYNC_TEST_POOLER=pgbouncer runs calsync through a PgBouncer in transaction mode (SPEC §12);
// fixtures and assertions (`pg`, `directUrl`) still talk to the server directly.
const pooler = process.env.CALSYNC_TEST_POOLER || ''

async function freshDatabase() {
  const server = await startServer()
  let db
  let bouncer
  try {
    db = await createDatabase(server.url, 'calsync_test')
    if (pooler === 'pgbouncer') bouncer = await startPgBouncer(server.url)
    else if (pooler) throw new Error(`CALSYNC_TEST_POOLER=${pooler}: only 'pgbouncer' is known`)
    await calsync.applySchema({ databaseUrl: bouncer ? bouncer.url(db.url) : db.url })
  } catch (e) {
    if (bouncer) await bouncer.stop()
    if (db) await db.drop().catch(() => {})
    await server.stop()
    throw e
  }
  const pg = new Client({ connectionString: db.url })
  await pg.connect()
  return {
    url: bouncer ? bouncer.url(db.url) : db.url,
    directUrl: db.url,
    serverUrl: server.url,
    pooled: Boolean(bouncer),
    pg,
    async teardown() {
      await pg.end().catch(() => {})
      if (bouncer) await bouncer.stop()
      await db.drop()
      await server.stop()
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

module.exports = { freshDatabase, calsync, prng }

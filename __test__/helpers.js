'use strict'
// Each test file gets its own freshly created database with the schema applied, dropped afterwards.

const { Client } = require('pg')
const { startServer, createDatabase } = require('../dev/postgres')
const calsync = require('../calsync.js')

async function freshDatabase() {
  const server = await startServer()
  let db
  try {
    db = await createDatabase(server.url, 'calsync_test')
    await calsync.applySchema({ databaseUrl: db.url })
  } catch (e) {
    if (db) await db.drop().catch(() => {})
    await server.stop()
    throw e
  }
  const pg = new Client({ connectionString: db.url })
  await pg.connect()
  return {
    url: db.url,
    serverUrl: server.url,
    pg,
    async teardown() {
      await pg.end().catch(() => {})
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

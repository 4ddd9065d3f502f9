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

module.exports = { freshDatabase, calsync }

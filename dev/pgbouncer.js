'use strict'
// A PgBouncer in transaction mode in front of a Postgres server, as most serverless deployments
// reach their database (SPEC §12). Tests run through it when CALSYNC_TEST_POOLER=pgbouncer.
// Needs the `pgbouncer` binary (Debian: `apt-get install -y pgbouncer`).

const { spawn, spawnSync } = require('node:child_process')
const fs = require('node:fs')
const net = require('node:net')
const os = require('node:os')
const path = require('node:path')
const { freePort } = require('./postgres')

function binary() {
  for (const candidate of [process.env.PGBOUNCER, '/usr/sbin/pgbouncer', '/usr/bin/pgbouncer', 'pgbouncer']) {
    if (candidate && spawnSync(candidate, ['--version']).status === 0) return candidate
  }
  throw new Error('pgbouncer is not installed (Debian: apt-get install -y pgbouncer)')
}

function waitForPort(port, deadline) {
  return new Promise((resolve, reject) => {
    const attempt = () => {
      const sock = net.connect(port, '127.0.0.1')
      sock.once('connect', () => {
        sock.destroy()
        resolve()
      })
      sock.once('error', () => {
        sock.destroy()
        if (Date.now() > deadline) reject(new Error('pgbouncer did not start listening'))
        else setTimeout(attempt, 50)
      })
    }
    attempt()
  })
}

/**
 * Starts PgBouncer (pool_mode = transaction) for the server of `serverUrl`; every database name is
 * passed through. Returns `{ url(dbUrl), stop() }`: `url` turns a direct URL into one through the
 * pooler, with Prisma's `pgbouncer=true` parameter as Cal.com's URLs carry it.
 */
async function startPgBouncer(serverUrl, { poolSize = 20, port } = {}) {
  const bin = binary()
  const server = new URL(serverUrl)
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'calsync-pgbouncer-'))
  fs.chmodSync(dir, 0o777)
  port ??= await freePort()
  const target = [
    `host=${server.hostname}`,
    `port=${server.port || 5432}`,
    `user=${decodeURIComponent(server.username || 'postgres')}`,
    server.password ? `password=${decodeURIComponent(server.password)}` : '',
  ]
    .filter(Boolean)
    .join(' ')
  const ini = path.join(dir, 'pgbouncer.ini')
  fs.writeFileSync(
    ini,
    [
      '[databases]',
      `* = ${target}`,
      '[pgbouncer]',
      'listen_addr = 127.0.0.1',
      `listen_port = ${port}`,
      "unix_socket_dir = ''",
      'auth_type = any',
      'pool_mode = transaction',
      `default_pool_size = ${poolSize}`,
      'max_client_conn = 500',
      // After a failed server login PgBouncer waits server_login_retry (default 15 s) before it
      // tries again: a restarted Postgres would stay unreachable that long through it.
      'server_login_retry = 1',
      `logfile = ${path.join(dir, 'pgbouncer.log')}`,
      '',
    ].join('\n'),
    { mode: 0o644 },
  )
  // PgBouncer refuses to run as root.
  const asRoot = typeof process.getuid === 'function' && process.getuid() === 0
  const args = asRoot ? ['-u', 'nobody', ini] : [ini]
  const child = spawn(bin, args, { stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr.on('data', (d) => (stderr += d))
  const exited = new Promise((resolve) => child.once('exit', resolve))
  try {
    await Promise.race([
      waitForPort(port, Date.now() + 10000),
      exited.then((code) => {
        throw new Error(`pgbouncer exited (${code}): ${stderr.trim()}`)
      }),
    ])
  } catch (e) {
    child.kill('SIGKILL')
    fs.rmSync(dir, { recursive: true, force: true })
    throw e
  }
  return {
    port,
    url(dbUrl) {
      const u = new URL(dbUrl)
      u.hostname = '127.0.0.1'
      u.port = String(port)
      u.searchParams.set('pgbouncer', 'true')
      return u.toString()
    },
    async stop() {
      child.kill('SIGTERM')
      await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))])
      child.kill('SIGKILL')
      fs.rmSync(dir, { recursive: true, force: true })
    },
  }
}

/** Whether a pgbouncer binary is installed. */
function havePgBouncer() {
  try {
    binary()
    return true
  } catch {
    return false
  }
}

module.exports = { startPgBouncer, havePgBouncer }

'use strict'
// The documented Next.js setup (docs/cal-com.md), as a new user builds it: examples/ (the routes, lib/calsync.ts,
// next.config.mjs) in a fresh project that installs calsync from its packed tarballs, built with
// `next build` and served by `next start`, driven over HTTP with the emulator pushing webhooks into it.
const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const os = require('node:os')
const net = require('node:net')
const path = require('node:path')
const { spawn } = require('node:child_process')
const { ROOT, npm, packTarballs, built } = require('./pack')
const { startServer, createDatabase } = require('../dev/postgres')
const { startEmulator } = require('../emulator')
const seed = require('../dev/seed')
const calsync = require('../calsync.js')
const { until } = require('./helpers')
const { Client } = require('pg')

const version = (name) => JSON.parse(fs.readFileSync(path.join(ROOT, 'node_modules', name, 'package.json'))).version

/**
 * A TCP proxy in front of Postgres that can refuse connections (`up = false`): the database as the
 * app sees it when it is unreachable. `connections` counts attempts.
 */
async function startProxy(target) {
  const proxy = { up: false, connections: 0 }
  const sockets = new Set()
  const server = net.createServer((socket) => {
    proxy.connections++
    if (!proxy.up) return socket.destroy()
    const upstream = net.connect(Number(target.port), target.hostname)
    for (const s of [socket, upstream]) {
      sockets.add(s)
      s.on('error', () => {})
      s.on('close', () => sockets.delete(s))
    }
    socket.pipe(upstream).pipe(socket)
  })
  await new Promise((r) => server.listen(0, '127.0.0.1', r))
  proxy.port = server.address().port
  proxy.close = () => new Promise((r) => {
    for (const s of sockets) s.destroy()
    server.close(r)
  })
  return proxy
}

/** Runs `next <args>` in `app`; resolves to its output, rejects with it when it fails. */
function next(app, args, env) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(app, 'node_modules', 'next', 'dist', 'bin', 'next'), ...args], { cwd: app, env })
    let out = ''
    child.stdout.on('data', (c) => (out += c))
    child.stderr.on('data', (c) => (out += c))
    child.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`next ${args.join(' ')} exited ${code}:\n${out}`))))
  })
}

let server
let db
let work
let emu
let proxy
let app // the `next start` child process
test.before(async () => {
  server = await startServer()
  db = await createDatabase(server.url, 'calsync_test_next')
  await calsync.applySchema({ databaseUrl: db.url })
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'calsync-next-'))
  emu = await startEmulator()
  proxy = await startProxy(new URL(db.url))
})
test.after(async () => {
  if (app && app.exitCode === null) await new Promise((r) => { app.once('exit', r); app.kill('SIGTERM') })
  await proxy?.close()
  await emu?.close()
  await db?.drop()
  await server?.stop()
  if (work) fs.rmSync(work, { recursive: true, force: true })
})

test('the documented Next.js routes in a production build: lazy connect, webhook → availability, cron and metrics auth, the Outlook handshake; from tarballs and from a directory', { skip: !built() && 'the binary is not built', timeout: 900_000 }, async (t) => {
  const { main, platform } = packTarballs(work)
  const dir = path.join(work, 'app')
  fs.cpSync(path.join(ROOT, 'examples'), dir, { recursive: true, filter: (src) => !/(tsconfig\.json|README\.md)$/.test(src) })
  fs.writeFileSync(path.join(dir, 'tsconfig.json'), JSON.stringify({
    compilerOptions: {
      target: 'ES2022', lib: ['dom', 'dom.iterable', 'esnext'], strict: true, noEmit: true, esModuleInterop: true, skipLibCheck: true,
      module: 'esnext', moduleResolution: 'bundler', resolveJsonModule: true, isolatedModules: true, jsx: 'preserve', incremental: true,
      plugins: [{ name: 'next' }], paths: { '@/*': ['./*'] },
    },
    include: ['next-env.d.ts', '**/*.ts', '**/*.tsx', '.next/types/**/*.ts'],
    exclude: ['node_modules'],
  }, null, 2))
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({
    name: 'calsync-next-app', version: '1.0.0', private: true,
    dependencies: {
      calsync: `file:${main.tarball}`, [platform.name]: `file:${platform.tarball}`,
      next: version('next'), react: version('react'), 'react-dom': version('react-dom'),
    },
    devDependencies: { typescript: version('typescript'), '@types/node': version('@types/node'), '@types/react': version('@types/react') },
  }, null, 2))
  t.diagnostic('npm install (next, react, typescript and the two calsync tarballs)')
  npm(['install', '--prefer-offline', '--no-audit', '--no-fund'], dir)

  // The build loads every route module: it must not open a database connection.
  const env = { ...process.env, NEXT_TELEMETRY_DISABLED: '1', CALSYNC_LOG: 'off' }
  env.DATABASE_URL = db.url.replace(/@[^/]+\//, `@127.0.0.1:${proxy.port}/`)
  t.diagnostic('next build')
  const buildOutput = await next(dir, ['build'], env)
  assert.equal(proxy.connections, 0, 'no database connection during next build')
  assert.doesNotMatch(buildOutput, /DB_UNAVAILABLE|calsync/i)

  // Start it, the database still unreachable.
  const port = await new Promise((r) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = s.address().port
      s.close(() => r(p))
    })
  })
  const base = `http://127.0.0.1:${port}`
  Object.assign(env, {
    GOOGLE_API_CREDENTIALS: JSON.stringify({ web: { client_id: 'next-client', client_secret: 'next-secret' } }),
    GOOGLE_API_URL: `${emu.url}/calendar/v3`, GOOGLE_TOKEN_URL: `${emu.url}/token`,
    GOOGLE_WEBHOOK_TOKEN: 'next-webhook-token', GOOGLE_WEBHOOK_URL: base,
    CRON_API_KEY: 'cron-key-0123456789', METRICS_TOKEN: 'metrics-token-0123456789',
    MICROSOFT_WEBHOOK_TOKEN: 'next-ms-client-state',
  })
  emu.google.registerClient('next-client', 'next-secret')
  app = spawn(process.execPath, [path.join(dir, 'node_modules', 'next', 'dist', 'bin', 'next'), 'start', '-p', String(port), '-H', '127.0.0.1'], { cwd: dir, env, stdio: 'ignore' })
  const req = (method, route, { body, headers = {} } = {}) => fetch(base + route, { method, headers, body })
  await until('next start serving', () => req('GET', '/api/metrics').then((r) => r.status === 401, () => false), 60_000)

  // No database at the first requests: the webhook answers 503 (the provider redelivers), a read
  // fails; both recover as soon as the database is back, without a restart.
  assert.equal((await req('POST', '/api/webhooks/calendar-subscription/google_calendar', { headers: { 'x-goog-channel-id': 'x', 'x-goog-resource-state': 'exists' } })).status, 503)
  const range = () => {
    const day = new Date(Date.now() + 86_400_000).toISOString().slice(0, 10)
    return { timeMin: `${day}T00:00:00.000Z`, timeMax: `${day}T23:59:59.000Z`, day }
  }
  let served = 0 // reads the route answered: each one calsync_reads_total{outcome="ok"} must count
  const read = async (ids) => {
    const r = await req('POST', '/api/availability', { body: JSON.stringify({ selectedCalendarIds: ids, timeMin: range().timeMin, timeMax: range().timeMax }) })
    if (r.status === 200) served++
    return r
  }
  assert.equal((await read(['nothing'])).status, 503)
  assert.ok(proxy.connections > 0, 'the first request tried to connect')
  proxy.up = true
  const first = await read(['nothing'])
  assert.equal(first.status, 200, 'the next request connects')
  assert.deepEqual((await first.json()).uncached, [{ id: 'nothing', reason: 'not_found' }])
  assert.equal((await req('POST', '/api/availability', { body: '{not json' })).status, 400)

  // A user with a Google calendar; the cron route subscribes it.
  const pg = new Client({ connectionString: db.url })
  await pg.connect()
  try {
    await seed.setGlobalFlag(pg, 'calendar-subscription-cache', true)
    const userId = await seed.createUser(pg)
    await seed.setUserFlag(pg, userId, 'calendar-subscription-cache', true)
    const externalId = 'next-user@example.com'
    emu.google.createCalendar(externalId)
    const credentialId = await seed.createCredential(pg, { userId, type: 'google_calendar', key: emu.google.addAccount() })
    const id = await seed.createSelectedCalendar(pg, { userId, externalId, credentialId })

    assert.equal((await req('GET', '/api/cron/calendar-subscriptions')).status, 401)
    assert.equal((await req('GET', '/api/cron/calendar-subscriptions', { headers: { authorization: 'wrong' } })).status, 401)
    const cron = await req('GET', '/api/cron/calendar-subscriptions', { headers: { authorization: env.CRON_API_KEY } })
    assert.equal(cron.status, 200)
    assert.equal((await cron.json()).ok, true)
    assert.equal(emu.google.liveChannels(externalId).length, 1)
    assert.ok(emu.google.liveChannels(externalId)[0].address.startsWith(`${base}/api/webhooks/calendar-subscription/google_calendar`))

    // A change at "Google": its push notification reaches the webhook route, the sync runs in
    // after(), and the availability route serves the event.
    const { day } = range()
    await emu.google.insertEvent(externalId, { summary: 'x', start: { dateTime: `${day}T09:00:00Z` }, end: { dateTime: `${day}T10:00:00Z` } })
    await until('the event through the availability route', async () => {
      const r = await (await read([id])).json()
      return r.served?.includes(id) && r.busy.length === 1 && r.busy[0].start === `${day}T09:00:00.000Z`
    }, 20_000)
    assert.ok(emu.counter('google.notifications.sent') >= 2, 'the sync message and the change were delivered')

    // Metrics: closed without the token; with it, the reads of every route counted in one instance.
    assert.equal((await req('GET', '/api/metrics')).status, 401)
    const metrics = await req('GET', '/api/metrics', { headers: { authorization: `Bearer ${env.METRICS_TOKEN}` } })
    assert.equal(metrics.status, 200)
    const text = await metrics.text()
    assert.match(text, new RegExp(`^calsync_reads_total\\{outcome="ok"\\} ${served}$`, 'm'), 'every read of the route, in the one instance the metrics route reports')
    assert.match(text, /^calsync_webhook_notifications_total\{outcome="accepted",provider="google"\} [1-9]/m)

    // The Outlook route answers Graph's validation handshake.
    const handshake = await req('POST', '/api/webhooks/calendar-subscription/office365_calendar?validationToken=hello%20graph')
    assert.equal(handshake.status, 200)
    assert.equal(await handshake.text(), 'hello graph')
    assert.match(handshake.headers.get('content-type'), /^text\/plain/)
  } finally {
    await pg.end()
  }

  // Installed from the checkout directory instead (a symlink out of node_modules): it builds and
  // serves too.
  await new Promise((r) => { app.once('exit', r); app.kill('SIGTERM') })
  npm(['install', '--prefer-offline', '--no-audit', '--no-fund', ROOT], dir)
  assert.ok(fs.lstatSync(path.join(dir, 'node_modules', 'calsync')).isSymbolicLink())
  t.diagnostic('next build (calsync installed from a directory)')
  await next(dir, ['build'], env)
  app = spawn(process.execPath, [path.join(dir, 'node_modules', 'next', 'dist', 'bin', 'next'), 'start', '-p', String(port), '-H', '127.0.0.1'], { cwd: dir, env, stdio: 'ignore' })
  await until('next start serving', () => req('GET', '/api/metrics').then((r) => r.status === 401, () => false), 60_000)
  const again = await read(['nothing'])
  assert.equal(again.status, 200)
  assert.deepEqual((await again.json()).uncached, [{ id: 'nothing', reason: 'not_found' }])
})
